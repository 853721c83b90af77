//! A simulated disk for fault-injection tests and fuzzing of the embedded engine.
//!
//! [`SimulatedDisk`] holds the engine's files in memory, the index's (it is a redb
//! [`StorageBackend`]) and the value log's segments (it is a [`LogDir`]), and behaves like a disk
//! in the ways that matter for durability:
//! - what reads see (the OS page cache) and what survives a power loss (what the last successful
//!   sync of each file made durable) are kept apart: after [`SimulatedDisk::power_off`], power
//!   returns with the durable bytes plus an arbitrary subset of the writes made since the last
//!   sync (the kernel may have written any of them back, in any order), as a crash of the machine
//!   would leave;
//! - a quota makes a write or a file extension that would take the files past it fail with
//!   `StorageFull` (ENOSPC), as a full disk does, and lifting the quota is the space coming back;
//! - [`SimulatedDisk::fail_after`] makes one later write, extension or sync (of any file) fail
//!   with an I/O error (EIO); a failed sync makes nothing durable, as on Linux.
//!
//! Creating and removing a segment file is durable at once (the engine syncs the directory).
//! Handles are cheap clones of one shared disk, so a test keeps one to steer the faults while the
//! engine opens (and, after a failure, reopens) its files on the same bytes.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::StorageBackend;

use crate::value_log::{LogDir, LogFile};

/// One simulated disk holding the index file and the segment files; clones share it.
#[derive(Clone, Default)]
pub struct SimulatedDisk(Arc<Mutex<Disk>>);

/// Which file: the index (`None`) or a segment.
type Name = Option<u32>;

#[derive(Default)]
struct Disk {
    files: BTreeMap<Name, SimFile>,
    /// The files together may not grow past this many bytes.
    quota: Option<u64>,
    /// Mutating calls (write, set_len, sync) left before one fails with EIO.
    fail_in: Option<u64>,
    /// Mutating calls left before the power goes at the next one.
    power_off_in: Option<u64>,
    /// False between `power_off` and `power_on`: every call fails.
    powered_off: bool,
}

#[derive(Default)]
struct SimFile {
    /// What reads see: every write so far, synced or not.
    contents: Vec<u8>,
    /// What a power loss leaves for sure: `contents` as of the last successful sync.
    durable: Vec<u8>,
    /// The writes since the last successful sync, `(offset, bytes)` in order; any of them may
    /// survive a power loss.
    unsynced: Vec<(usize, Vec<u8>)>,
}

impl std::fmt::Debug for SimulatedDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedDisk").finish_non_exhaustive()
    }
}

impl SimulatedDisk {
    pub fn new() -> SimulatedDisk {
        SimulatedDisk::default()
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Limits the files to `bytes` in all (None: unlimited). Growth past it fails as on a full
    /// disk.
    pub fn set_quota(&self, bytes: Option<u64>) {
        self.disk().quota = bytes;
    }

    /// The files' current length in all.
    pub fn len(&self) -> u64 {
        self.disk().total()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many segment files the value log has.
    pub fn segment_count(&self) -> usize {
        self.disk()
            .files
            .keys()
            .filter(|name| name.is_some())
            .count()
    }

    /// After `calls` more successful writes, extensions or syncs, the next one fails with EIO.
    pub fn fail_after(&self, calls: u64) {
        self.disk().fail_in = Some(calls);
    }

    /// After `calls` more successful writes, extensions or syncs, the power goes at the next one.
    pub fn power_off_after(&self, calls: u64) {
        self.disk().power_off_in = Some(calls);
    }

    /// Lifts the quota and any pending injected failure or power loss.
    pub fn clear_faults(&self) {
        let mut disk = self.disk();
        disk.quota = None;
        disk.fail_in = None;
        disk.power_off_in = None;
    }

    pub fn is_powered_off(&self) -> bool {
        self.disk().powered_off
    }

    /// The machine loses power: every call fails until [`SimulatedDisk::power_on`].
    pub fn power_off(&self) {
        self.disk().powered_off = true;
    }

    /// Power returns, with no faults armed: each file is what its last successful sync left plus
    /// the unsynced writes that `survivors` picks (a file's write `i` survives if bit `i % 64` is
    /// set; 0 loses them all). Files keep their latest length.
    pub fn power_on(&self, survivors: u64) {
        let mut disk = self.disk();
        for file in disk.files.values_mut() {
            let mut contents = file.durable.clone();
            contents.resize(file.contents.len(), 0);
            for (i, (offset, bytes)) in file.unsynced.iter().enumerate() {
                let end = offset + bytes.len();
                if survivors & (1 << (i % 64)) != 0 && end <= contents.len() {
                    contents[*offset..end].copy_from_slice(bytes);
                }
            }
            file.durable = contents.clone();
            file.contents = contents;
            file.unsynced.clear();
        }
        disk.powered_off = false;
        disk.quota = None;
        disk.fail_in = None;
        disk.power_off_in = None;
    }
}

fn powered_off() -> io::Error {
    io::Error::other("simulated power loss")
}

fn missing() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such simulated file")
}

impl Disk {
    fn total(&self) -> u64 {
        self.files.values().map(|f| f.contents.len() as u64).sum()
    }

    fn readable(&self) -> io::Result<()> {
        if self.powered_off {
            return Err(powered_off());
        }
        Ok(())
    }

    /// Counts down the injected failure and power loss, and refuses calls while powered off.
    fn mutate(&mut self) -> io::Result<()> {
        match self.power_off_in {
            Some(0) => self.powered_off = true,
            Some(n) => self.power_off_in = Some(n - 1),
            None => {}
        }
        self.readable()?;
        match self.fail_in {
            Some(0) => {
                self.fail_in = None;
                Err(io::Error::other("simulated I/O error (EIO)"))
            }
            Some(n) => {
                self.fail_in = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Refuses to grow `name` to `end` bytes if that takes the files past the quota.
    fn check_quota(&self, name: Name, end: u64) -> io::Result<()> {
        let current = self.files.get(&name).map_or(0, |f| f.contents.len() as u64);
        match self.quota {
            Some(quota) if end > current && self.total() - current + end > quota => Err(
                io::Error::new(io::ErrorKind::StorageFull, "simulated full disk (ENOSPC)"),
            ),
            _ => Ok(()),
        }
    }

    fn file(&mut self, name: Name) -> io::Result<&mut SimFile> {
        match name {
            None => Ok(self.files.entry(None).or_default()),
            Some(_) => self.files.get_mut(&name).ok_or_else(missing),
        }
    }

    fn len(&mut self, name: Name) -> io::Result<u64> {
        self.readable()?;
        Ok(self.file(name)?.contents.len() as u64)
    }

    fn read(&mut self, name: Name, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.readable()?;
        let file = self.file(name)?;
        let range = range(&file.contents, offset, out.len())?;
        out.copy_from_slice(&file.contents[range]);
        Ok(())
    }

    fn set_len(&mut self, name: Name, len: u64) -> io::Result<()> {
        self.check_quota(name, len)?;
        self.mutate()?;
        let len = usize::try_from(len).map_err(|_| out_of_range())?;
        self.file(name)?.contents.resize(len, 0);
        Ok(())
    }

    fn sync(&mut self, name: Name) -> io::Result<()> {
        self.mutate()?;
        let file = self.file(name)?;
        file.durable = file.contents.clone();
        file.unsynced.clear();
        Ok(())
    }

    /// Writes `data` at `offset`; past the end only if `extend` (redb extends with `set_len`
    /// first, a segment is appended to).
    fn write(&mut self, name: Name, offset: u64, data: &[u8], extend: bool) -> io::Result<()> {
        self.check_quota(name, offset + data.len() as u64)?;
        self.mutate()?;
        let file = self.file(name)?;
        let end = offset as usize + data.len();
        if extend && end > file.contents.len() {
            file.contents.resize(end, 0);
        }
        let range = range(&file.contents, offset, data.len())?;
        file.unsynced.push((range.start, data.to_vec()));
        file.contents[range].copy_from_slice(data);
        Ok(())
    }
}

fn range(contents: &[u8], offset: u64, len: usize) -> io::Result<std::ops::Range<usize>> {
    let start = usize::try_from(offset).map_err(|_| out_of_range())?;
    let end = start.checked_add(len).ok_or_else(out_of_range)?;
    if end > contents.len() {
        return Err(out_of_range());
    }
    Ok(start..end)
}

fn out_of_range() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "offset past the end of the file",
    )
}

impl StorageBackend for SimulatedDisk {
    fn len(&self) -> io::Result<u64> {
        self.disk().len(None)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.disk().read(None, offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.disk().set_len(None, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.disk().sync(None)
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.disk().write(None, offset, data, false)
    }
}

/// A segment file on a simulated disk.
struct Segment {
    disk: SimulatedDisk,
    id: u32,
}

impl LogFile for Segment {
    fn read_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.disk.disk().read(Some(self.id), offset, out)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.disk.disk().write(Some(self.id), offset, data, true)
    }

    fn sync(&self) -> io::Result<()> {
        self.disk.disk().sync(Some(self.id))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.disk.disk().set_len(Some(self.id), len)
    }

    fn len(&self) -> io::Result<u64> {
        self.disk.disk().len(Some(self.id))
    }
}

impl LogDir for SimulatedDisk {
    fn list(&self) -> io::Result<Vec<u32>> {
        let disk = self.disk();
        disk.readable()?;
        Ok(disk.files.keys().filter_map(|name| *name).collect())
    }

    fn open(&self, id: u32, create: bool) -> io::Result<Arc<dyn LogFile>> {
        let mut disk = self.disk();
        if create {
            disk.mutate()?;
            disk.files.entry(Some(id)).or_default();
        } else {
            disk.readable()?;
            disk.files.get(&Some(id)).ok_or_else(missing)?;
        }
        Ok(Arc::new(Segment {
            disk: self.clone(),
            id,
        }))
    }

    fn remove(&self, id: u32) -> io::Result<()> {
        let mut disk = self.disk();
        disk.mutate()?;
        disk.files.remove(&Some(id)).map(|_| ()).ok_or_else(missing)
    }

    fn name(&self, id: u32) -> String {
        format!("simulated segment {id}")
    }
}
