//! The value log: the durable engine's write-ahead log, which is also where item values live.
//!
//! redb's copy-on-write B-tree wrote 7.4 KB and synced scattered pages for every 1.1 KB PutItem
//! (docs/storage-format.md, "The write path at high concurrency"). Here each group commit is one
//! record appended to a segment file and made durable with one `fdatasync`: about the item's own
//! bytes, written sequentially. redb stays the ordered index, committed without a sync per group
//! (`Durability::None`); a checkpoint commits it durably now and then and records how much of the
//! log it covers, and opening replays the records after that point into it.
//!
//! A record is `payload length (u32 LE) | CRC-32 of the payload (u32 LE) | payload`, the payload
//! the group's effects on the index in order, each resolved so that replaying it needs no decision
//! (counters as their new value, change-log appends with the position the committer stamped):
//! `kind (u8) | table (u8) | u32 LE length | bytes [| u32 LE length | bytes]`. A value stored in
//! the log is read back at its offset inside its record, so nothing is written twice. Replaying a
//! record the index already holds changes nothing (every effect sets or removes keys whatever was
//! there), so a checkpoint older than the index's state is harmless.
//!
//! Files are reached through [`LogDir`] and [`LogFile`]: the data directory's files, or files on a
//! [`crate::SimulatedDisk`] whose power cuts keep any subset of the unsynced writes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::StorageError;

/// Which index table an effect changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Entries = 0,
    Log = 1,
    LogState = 2,
}

impl Target {
    fn from_code(code: u8) -> Option<Target> {
        Some(match code {
            0 => Target::Entries,
            1 => Target::Log,
            2 => Target::LogState,
            _ => return None,
        })
    }
}

const PUT: u8 = 0;
const DELETE: u8 = 1;
const DELETE_RANGE: u8 = 2;

/// One effect of a group on the index, as recorded and replayed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Effect<'a> {
    /// The value and, when it lies in the log, its offset in the segment.
    Put(Target, &'a [u8], &'a [u8], u64),
    Delete(Target, &'a [u8]),
    DeleteRange(Target, &'a [u8], &'a [u8]),
}

/// A record's header: payload length and checksum.
pub(crate) const HEADER: usize = 8;

/// A group's record as the committer builds it, starting at `start` in segment `segment`.
pub(crate) struct Record {
    pub segment: u32,
    pub start: u64,
    /// Header (filled by [`Record::seal`]) then payload.
    pub bytes: Vec<u8>,
}

impl Record {
    pub fn new(segment: u32, start: u64) -> Record {
        Record {
            segment,
            start,
            bytes: vec![0; HEADER],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.len() == HEADER
    }

    fn push_bytes(&mut self, bytes: &[u8]) -> u64 {
        self.bytes
            .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        let at = self.start + self.bytes.len() as u64;
        self.bytes.extend_from_slice(bytes);
        at
    }

    /// Records a put; answers the value's offset in the segment.
    pub fn put(&mut self, target: Target, key: &[u8], value: &[u8]) -> u64 {
        self.bytes.extend_from_slice(&[PUT, target as u8]);
        self.push_bytes(key);
        self.push_bytes(value)
    }

    pub fn delete(&mut self, target: Target, key: &[u8]) {
        self.bytes.extend_from_slice(&[DELETE, target as u8]);
        self.push_bytes(key);
    }

    pub fn delete_range(&mut self, target: Target, start: &[u8], end: &[u8]) {
        self.bytes.extend_from_slice(&[DELETE_RANGE, target as u8]);
        self.push_bytes(start);
        self.push_bytes(end);
    }

    /// The bytes at `offset` in the segment, if this record (not yet written) holds them.
    pub fn read(&self, segment: u32, offset: u64, len: usize) -> Option<&[u8]> {
        let at = usize::try_from(offset.checked_sub(self.start)?).ok()?;
        (segment == self.segment).then(|| self.bytes.get(at..at + len))?
    }

    /// Fills the header; the record is then ready to append.
    pub fn seal(&mut self) {
        let payload_len = (self.bytes.len() - HEADER) as u32;
        let crc = crc32fast::hash(&self.bytes[HEADER..]);
        self.bytes[..4].copy_from_slice(&payload_len.to_le_bytes());
        self.bytes[4..HEADER].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Reads the effects of the record whose payload is `payload`, at `payload_at` in its segment.
pub(crate) fn effects(
    payload: &[u8],
    payload_at: u64,
    mut each: impl FnMut(Effect) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let damaged = || StorageError::Io("a value log record does not decode".to_string());
    let mut at = 0usize;
    let take = |at: &mut usize| -> Result<(&[u8], u64), StorageError> {
        let len_bytes = payload.get(*at..*at + 4).ok_or_else(damaged)?;
        let len = u32::from_le_bytes(len_bytes.try_into().map_err(|_| damaged())?) as usize;
        let start = *at + 4;
        let bytes = payload.get(start..start + len).ok_or_else(damaged)?;
        *at = start + len;
        Ok((bytes, payload_at + start as u64))
    };
    while at < payload.len() {
        let kind = payload[at];
        let target = payload
            .get(at + 1)
            .and_then(|&code| Target::from_code(code))
            .ok_or_else(damaged)?;
        at += 2;
        let (key, _) = take(&mut at)?;
        let effect = match kind {
            PUT => {
                let (value, offset) = take(&mut at)?;
                Effect::Put(target, key, value, offset)
            }
            DELETE => Effect::Delete(target, key),
            DELETE_RANGE => Effect::DeleteRange(target, key, take(&mut at)?.0),
            _ => return Err(damaged()),
        };
        each(effect)?;
    }
    Ok(())
}

/// Where the next record after the intact ones in `bytes` starts (`bytes` begins at a record),
/// calling `each` with every intact record's payload and its offset in `bytes`. A record cut
/// short, zeroed or failing its checksum ends the intact part: it is a torn tail.
pub(crate) fn intact_records(
    bytes: &[u8],
    mut each: impl FnMut(&[u8], usize) -> Result<(), StorageError>,
) -> Result<usize, StorageError> {
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if len == 0 || crc32fast::hash(payload) != crc {
            break;
        }
        each(payload, at + HEADER)?;
        at += HEADER + len;
    }
    Ok(at)
}

/// Whether an intact record starts right after the one claimed at `at` (which did not read back
/// intact): then the bad record is damage in the middle of the log, not a torn tail.
pub(crate) fn record_follows(bytes: &[u8], at: usize) -> bool {
    let Some(header) = bytes.get(at..at + HEADER) else {
        return false;
    };
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let next = at + HEADER + len;
    next < bytes.len() && intact_records(&bytes[next..], |_, _| Ok(())).is_ok_and(|end| end > 0)
}

/// One segment file.
pub trait LogFile: Send + Sync {
    fn read_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()>;
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    fn sync(&self) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
}

/// Where the segment files live, named by number.
pub trait LogDir: Send + Sync {
    /// The segments present, in ascending order.
    fn list(&self) -> io::Result<Vec<u32>>;
    /// Opens segment `id`, creating it (durably: its name survives a power cut) if asked.
    fn open(&self, id: u32, create: bool) -> io::Result<Arc<dyn LogFile>>;
    /// Removes segment `id` for good.
    fn remove(&self, id: u32) -> io::Result<()>;
    /// Names segment `id` in messages.
    fn name(&self, id: u32) -> String;
}

/// Segment files `values-NNNNNNNN.log` in the data directory.
pub(crate) struct FsDir(pub PathBuf);

const PREFIX: &str = "values-";
const SUFFIX: &str = ".log";

impl FsDir {
    fn path(&self, id: u32) -> PathBuf {
        self.0.join(format!("{PREFIX}{id:08}{SUFFIX}"))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.0)?.sync_all()
    }
}

impl LogDir for FsDir {
    fn list(&self) -> io::Result<Vec<u32>> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&self.0)? {
            let name = entry?.file_name();
            let id = name.to_str().and_then(|name| {
                name.strip_prefix(PREFIX)?
                    .strip_suffix(SUFFIX)?
                    .parse::<u32>()
                    .ok()
            });
            ids.extend(id);
        }
        ids.sort_unstable();
        Ok(ids)
    }

    fn open(&self, id: u32, create: bool) -> io::Result<Arc<dyn LogFile>> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(self.path(id))?;
        if create {
            self.sync_dir()?;
        }
        Ok(Arc::new(file))
    }

    fn remove(&self, id: u32) -> io::Result<()> {
        std::fs::remove_file(self.path(id))?;
        self.sync_dir()
    }

    fn name(&self, id: u32) -> String {
        self.path(id).display().to_string()
    }
}

impl LogFile for File {
    fn read_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.read_exact_at(out, offset)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.write_all_at(data, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

/// The segments open at one moment. Immutable: the committer replaces the whole set when it adds
/// or removes a segment, and a snapshot keeps the set it started with, so a segment the compactor
/// removed stays readable (its file handle open) until the last snapshot that can reach it ends.
#[derive(Default, Clone)]
pub(crate) struct Segments(pub BTreeMap<u32, Arc<dyn LogFile>>);

impl Segments {
    pub fn read(&self, segment: u32, offset: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        let file = self
            .0
            .get(&segment)
            .ok_or_else(|| StorageError::Io(format!("value log segment {segment} is missing")))?;
        let mut out = vec![0; len];
        file.read_at(offset, &mut out)
            .map_err(|e| StorageError::Io(format!("value log segment {segment}: {e}")))?;
        Ok(out)
    }

    pub fn with(&self, id: u32, file: Arc<dyn LogFile>) -> Segments {
        let mut set = self.clone();
        set.0.insert(id, file);
        set
    }

    pub fn without(&self, id: u32) -> Segments {
        let mut set = self.clone();
        set.0.remove(&id);
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_its_effects_and_a_torn_tail_ends_the_intact_part() {
        let mut record = Record::new(3, 100);
        let at = record.put(Target::Entries, b"k", b"value");
        record.delete(Target::Log, b"gone");
        record.delete_range(Target::Entries, b"a", b"b");
        assert_eq!(record.read(3, at, 5), Some(&b"value"[..]));
        assert_eq!(record.read(2, at, 5), None);
        record.seal();
        let mut file = record.bytes.clone();
        file.extend_from_slice(&record.bytes[..record.bytes.len() - 1]);
        let mut seen = Vec::new();
        let end = intact_records(&file, |payload, at| {
            effects(payload, 100 + at as u64, |effect| {
                seen.push(format!("{effect:?}"));
                Ok(())
            })
        })
        .unwrap();
        assert_eq!(end, record.bytes.len());
        assert_eq!(seen.len(), 3);
        assert!(seen[0].contains(&format!("{at}")), "{seen:?}");
    }
}
