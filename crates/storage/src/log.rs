//! The change log: one record per committed change of an item, appended in the same atomic batch
//! as the change itself, so that the log never disagrees with the data.
//!
//! Streams, TTL clean-up, backups and replication all read the committed changes in commit order;
//! keeping one log under every write (rather than one mechanism per reader) is what makes them agree
//! with each other. The storage layer stays ignorant of DynamoDB: a record is a table id, the
//! changed key and its old and new values as opaque bytes, and where the change came from.
//!
//! Writers stage a [`LogRecord`] with [`crate::WriteBatch::append_log`]; the engine's committer
//! gives it its [`LogPosition`] when the batch commits: a sequence number one above the last one
//! (strictly increasing in commit order, across restarts) and the commit time in milliseconds,
//! never below the previous record's (so positions ordered by time are ordered by sequence too).
//! A refused batch appends nothing. Readers scan a table's records from any position through a
//! [`crate::Snapshot`]; [`crate::WriteOp::TrimLog`] drops a table's oldest records and remembers
//! how far the log was trimmed, so that a reader asking for trimmed records can tell.

use std::ops::Bound;

use crate::StorageError;

/// Where a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client's request.
    User,
    /// The time-to-live worker deleting an expired item.
    Ttl,
    /// A change applied from another region or an upstream table.
    Replication,
}

impl Origin {
    fn code(self) -> u8 {
        match self {
            Origin::User => 0,
            Origin::Ttl => 1,
            Origin::Replication => 2,
        }
    }

    fn from_code(code: u8) -> Option<Origin> {
        Some(match code {
            0 => Origin::User,
            1 => Origin::Ttl,
            2 => Origin::Replication,
            _ => return None,
        })
    }
}

/// One change of one key, as a writer stages it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Which table (the layer above's numbering; records are read back by table).
    pub table: u64,
    /// The changed key.
    pub key: Vec<u8>,
    /// The value before the change (None: the key was absent).
    pub old: Option<Vec<u8>>,
    /// The value after the change (None: the key was deleted).
    pub new: Option<Vec<u8>>,
    pub origin: Origin,
    /// Which of `old` and `new` the writer kept only in part.
    pub partial: Partial,
}

/// Which values of a record are partial: the layer above keeps of a value no reader of the table
/// needs only what identifies the change (for Haven, the item's key attributes), so that the log
/// does not pay for images nobody reads. A present but partial value still says the key existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Partial {
    pub old: bool,
    pub new: bool,
}

/// Where a record sits in the log: the commit time and the sequence number the committer gave it.
/// Both grow with commit order, so positions compare as the log is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogPosition {
    /// Milliseconds since the Unix epoch at commit (never below the previous record's).
    pub timestamp_ms: u64,
    /// Strictly increasing over the whole log, starting at 1.
    pub sequence: u64,
}

impl LogPosition {
    /// Before every record.
    pub const START: LogPosition = LogPosition {
        timestamp_ms: 0,
        sequence: 0,
    };

    /// The position of the record the committer stamps after this one, at wall time `now_ms`.
    pub fn next(self, now_ms: u64) -> LogPosition {
        LogPosition {
            timestamp_ms: now_ms.max(self.timestamp_ms),
            sequence: self.sequence + 1,
        }
    }

    /// 16 bytes, big-endian: time then sequence, so that byte order is log order.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        bytes[8..].copy_from_slice(&self.sequence.to_be_bytes());
        bytes
    }

    /// Reads [`LogPosition::to_bytes`]; None unless exactly 16 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<LogPosition> {
        let bytes: &[u8; 16] = bytes.try_into().ok()?;
        let (time, sequence) = bytes.split_at(8);
        Some(LogPosition {
            timestamp_ms: u64::from_be_bytes(time.try_into().ok()?),
            sequence: u64::from_be_bytes(sequence.try_into().ok()?),
        })
    }
}

/// The log-state key of the last stamped position (16 bytes, [`LogPosition::to_bytes`]); an
/// engine keeps its log state apart from the data.
pub const HEAD_KEY: &[u8] = b"head";

/// The log-state key of how far a table's log was trimmed: `"horizon/" | table id (u64 BE)`.
pub fn horizon_key(table: u64) -> [u8; 16] {
    let mut key = *b"horizon/\0\0\0\0\0\0\0\0";
    key[8..].copy_from_slice(&table.to_be_bytes());
    key
}

/// A committed record and its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub position: LogPosition,
    pub record: LogRecord,
}

/// The key of a record in an ordered store: table, then position (24 bytes, big-endian), so that
/// one table's records are contiguous and in log order.
pub fn entry_key(table: u64, position: LogPosition) -> [u8; 24] {
    let mut key = [0; 24];
    key[..8].copy_from_slice(&table.to_be_bytes());
    key[8..].copy_from_slice(&position.to_bytes());
    key
}

/// The first entry key after every record of `table` (saturating at the last table id).
pub fn table_end(table: u64) -> [u8; 24] {
    match table.checked_add(1) {
        Some(next) => entry_key(next, LogPosition::START),
        None => [0xFF; 24],
    }
}

/// The entry keys of `table`'s records with positions in `range`, for an ordered store.
pub fn entry_range(
    table: u64,
    range: (Bound<LogPosition>, Bound<LogPosition>),
) -> (Bound<[u8; 24]>, Bound<[u8; 24]>) {
    let start = match range.0 {
        Bound::Unbounded => Bound::Included(entry_key(table, LogPosition::START)),
        bound => bound.map(|position| entry_key(table, position)),
    };
    let end = match range.1 {
        Bound::Unbounded => Bound::Excluded(table_end(table)),
        bound => bound.map(|position| entry_key(table, position)),
    };
    (start, end)
}

/// Reads an [`entry_key`]: the table and the position.
pub fn parse_entry_key(key: &[u8]) -> Option<(u64, LogPosition)> {
    let (table, position) = key.split_at_checked(8)?;
    Some((
        u64::from_be_bytes(table.try_into().ok()?),
        LogPosition::from_bytes(position)?,
    ))
}

/// Reads a stored entry: its [`entry_key`] and its [`encode_record`] value.
pub fn decode_entry(key: &[u8], value: &[u8]) -> Result<LogEntry, StorageError> {
    let (table, position) =
        parse_entry_key(key).ok_or_else(|| StorageError::Io("damaged change log key".into()))?;
    let record = decode_record(table, value)?;
    Ok(LogEntry { position, record })
}

const HAS_OLD: u8 = 1;
const HAS_NEW: u8 = 2;
/// The new value is stored as a change of the old one (see [`encode_record`]).
const NEW_AS_DELTA: u8 = 4;
/// The old value is partial ([`Partial`]); only with `HAS_OLD`.
const OLD_PARTIAL: u8 = 8;
/// The new value is partial ([`Partial`]); only with `HAS_NEW`.
const NEW_PARTIAL: u8 = 16;
const KNOWN_FLAGS: u8 = HAS_OLD | HAS_NEW | NEW_AS_DELTA | OLD_PARTIAL | NEW_PARTIAL;
/// The bytes a delta spends besides the changed bytes: the two lengths it keeps from the old value.
const DELTA_OVERHEAD: usize = 8;

/// A record's stored value (the table is in the key): origin (1 byte), flags (old and new
/// present, new stored as a delta, old or new partial), then the key, the old and the new value, each as a u32
/// big-endian length and bytes.
///
/// Most changes of an item rewrite a few of its attributes, so its old and new encodings share a
/// long prefix and suffix; both 1 KB images of a one-attribute update would double the log's
/// bytes, and the log's bytes are what its appends cost (the pages the commit writes and syncs).
/// When both images are present and sharing saves bytes, the new value is stored as a delta:
/// the length of the prefix and of the suffix it shares with the old value (u32 big-endian each),
/// then the bytes between them as a part. Records written before deltas existed have no
/// `NEW_AS_DELTA` flag and read as they always did, as do records from before partial values
/// (no `*_PARTIAL` flag: both values whole).
pub fn encode_record(record: &LogRecord) -> Vec<u8> {
    let delta = match (&record.old, &record.new) {
        (Some(old), Some(new)) => Delta::between(old, new),
        _ => None,
    };
    let mut bytes = Vec::with_capacity(2 + encoded_size(record, delta.as_ref()));
    let flags = if record.old.is_some() { HAS_OLD } else { 0 }
        | if record.new.is_some() { HAS_NEW } else { 0 }
        | if delta.is_some() { NEW_AS_DELTA } else { 0 }
        | if record.old.is_some() && record.partial.old {
            OLD_PARTIAL
        } else {
            0
        }
        | if record.new.is_some() && record.partial.new {
            NEW_PARTIAL
        } else {
            0
        };
    bytes.push(record.origin.code());
    bytes.push(flags);
    for part in [Some(&record.key), record.old.as_ref()]
        .into_iter()
        .flatten()
    {
        push_part(&mut bytes, part);
    }
    match (delta, &record.new) {
        (Some(delta), _) => delta.write(&mut bytes),
        (None, Some(new)) => push_part(&mut bytes, new),
        (None, None) => {}
    }
    bytes
}

fn encoded_size(record: &LogRecord, delta: Option<&Delta>) -> usize {
    let new = match (delta, &record.new) {
        (Some(delta), _) => DELTA_OVERHEAD + 4 + delta.middle.len(),
        (None, new) => new.as_ref().map_or(0, |new| 4 + new.len()),
    };
    4 + record.key.len() + record.old.as_ref().map_or(0, |old| 4 + old.len()) + new
}

fn push_part(bytes: &mut Vec<u8>, part: &[u8]) {
    bytes.extend_from_slice(&(part.len() as u32).to_be_bytes());
    bytes.extend_from_slice(part);
}

/// A new value as a change of an old one: the old value's first `prefix` bytes, then `middle`,
/// then the old value's last `suffix` bytes.
struct Delta<'a> {
    prefix: usize,
    suffix: usize,
    middle: &'a [u8],
}

impl<'a> Delta<'a> {
    /// The delta from `old` to `new`; None when it would not be smaller than `new` itself.
    fn between(old: &[u8], new: &'a [u8]) -> Option<Delta<'a>> {
        let prefix = common_length(old.iter(), new.iter());
        // The suffix may not overlap the prefix in either value.
        let suffix = common_length(old[prefix..].iter().rev(), new[prefix..].iter().rev());
        (prefix + suffix > DELTA_OVERHEAD).then(|| Delta {
            prefix,
            suffix,
            middle: &new[prefix..new.len() - suffix],
        })
    }

    fn write(&self, bytes: &mut Vec<u8>) {
        bytes.extend_from_slice(&(self.prefix as u32).to_be_bytes());
        bytes.extend_from_slice(&(self.suffix as u32).to_be_bytes());
        push_part(bytes, self.middle);
    }

    /// The new value, given the old one; None if the lengths do not fit it (a damaged record).
    fn apply(prefix: usize, suffix: usize, middle: &[u8], old: &[u8]) -> Option<Vec<u8>> {
        let tail_start = old.len().checked_sub(suffix)?;
        if prefix > tail_start {
            return None;
        }
        Some([&old[..prefix], middle, &old[tail_start..]].concat())
    }
}

fn common_length<'b>(a: impl Iterator<Item = &'b u8>, b: impl Iterator<Item = &'b u8>) -> usize {
    a.zip(b).take_while(|(x, y)| x == y).count()
}

/// Reads [`encode_record`]; a damaged value is an error, never a panic.
pub fn decode_record(table: u64, bytes: &[u8]) -> Result<LogRecord, StorageError> {
    let damaged = || StorageError::Io(format!("damaged change log record of table {table}"));
    let [origin, flags, rest @ ..] = bytes else {
        return Err(damaged());
    };
    let origin = Origin::from_code(*origin).ok_or_else(damaged)?;
    let mut reader = Reader { rest };
    let key = reader.part().ok_or_else(damaged)?;
    let old = (flags & HAS_OLD != 0)
        .then(|| reader.part())
        .map(|part| part.ok_or_else(damaged))
        .transpose()?;
    let new = match (flags & HAS_NEW != 0, flags & NEW_AS_DELTA != 0) {
        (false, false) => None,
        (true, false) => Some(reader.part().ok_or_else(damaged)?),
        (true, true) => Some(reader.delta(old.as_deref()).ok_or_else(damaged)?),
        (false, true) => return Err(damaged()),
    };
    let partial = Partial {
        old: flags & OLD_PARTIAL != 0,
        new: flags & NEW_PARTIAL != 0,
    };
    let stray = (partial.old && old.is_none()) || (partial.new && new.is_none());
    if !reader.rest.is_empty() || flags & !KNOWN_FLAGS != 0 || stray {
        return Err(damaged());
    }
    Ok(LogRecord {
        table,
        key,
        old,
        new,
        origin,
        partial,
    })
}

/// Reads a record's parts in turn; None when the bytes run out.
struct Reader<'r> {
    rest: &'r [u8],
}

impl Reader<'_> {
    fn length(&mut self) -> Option<usize> {
        let (length, tail) = self.rest.split_first_chunk::<4>()?;
        self.rest = tail;
        Some(u32::from_be_bytes(*length) as usize)
    }

    fn part(&mut self) -> Option<Vec<u8>> {
        let length = self.length()?;
        let (value, tail) = self.rest.split_at_checked(length)?;
        self.rest = tail;
        Some(value.to_vec())
    }

    /// A new value stored as a [`Delta`] of `old`.
    fn delta(&mut self, old: Option<&[u8]>) -> Option<Vec<u8>> {
        let (prefix, suffix) = (self.length()?, self.length()?);
        let middle = self.part()?;
        Delta::apply(prefix, suffix, &middle, old?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_an_error() {
        let whole = Partial::default();
        let both = Partial {
            old: true,
            new: true,
        };
        for (old, new, origin, partial) in [
            (None, Some(b"new".to_vec()), Origin::User, whole),
            (
                Some(b"old".to_vec()),
                Some(Vec::new()),
                Origin::Replication,
                whole,
            ),
            (Some(b"old".to_vec()), None, Origin::Ttl, whole),
            (
                Some(b"k1".to_vec()),
                Some(b"k1".to_vec()),
                Origin::User,
                both,
            ),
            (
                None,
                Some(b"k1".to_vec()),
                Origin::User,
                Partial { old: false, ..both },
            ),
            (
                Some(b"old".to_vec()),
                Some(b"k1".to_vec()),
                Origin::User,
                Partial { old: false, ..both },
            ),
        ] {
            let record = LogRecord {
                table: 7,
                key: b"key".to_vec(),
                old,
                new,
                origin,
                partial,
            };
            let bytes = encode_record(&record);
            assert_eq!(decode_record(7, &bytes).unwrap(), record);
            for cut in 0..bytes.len() {
                assert!(decode_record(7, &bytes[..cut]).is_err(), "cut at {cut}");
            }
        }
        assert!(decode_record(1, &[9, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn a_new_value_close_to_the_old_one_is_stored_as_a_delta() {
        let old: Vec<u8> = (0..1000).map(|i| (i % 251) as u8).collect();
        let mut changed = old.clone();
        changed.splice(400..500, [7; 120]);
        let shorter = old[..990].to_vec();
        let longer = [old.clone(), b"tail".to_vec()].concat();
        let prepended = [b"head".to_vec(), old.clone()].concat();
        for new in [changed, shorter, longer, prepended, old.clone()] {
            let record = LogRecord {
                table: 3,
                key: b"k".to_vec(),
                old: Some(old.clone()),
                new: Some(new.clone()),
                origin: Origin::User,
                partial: Partial::default(),
            };
            let bytes = encode_record(&record);
            assert_eq!(bytes[1], HAS_OLD | HAS_NEW | NEW_AS_DELTA);
            assert!(bytes.len() < 2 + 4 + 1 + 4 + old.len() + 4 + 130);
            assert_eq!(decode_record(3, &bytes).unwrap(), record);
            for cut in 0..bytes.len() {
                assert!(decode_record(3, &bytes[..cut]).is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn a_delta_that_does_not_fit_the_old_value_is_damage() {
        let mut bytes = vec![0, HAS_OLD | HAS_NEW | NEW_AS_DELTA];
        for part in [&b"k"[..], b"old"] {
            push_part(&mut bytes, part);
        }
        bytes.extend_from_slice(&2u32.to_be_bytes());
        bytes.extend_from_slice(&2u32.to_be_bytes());
        push_part(&mut bytes, b"x");
        assert!(decode_record(1, &bytes).is_err());
        // A delta without an old value, and unknown flags.
        assert!(decode_record(1, &[0, HAS_NEW | NEW_AS_DELTA, 0, 0, 0, 0]).is_err());
        assert!(decode_record(1, &[0, 32, 0, 0, 0, 0]).is_err());
        // A partial value that is absent.
        assert!(decode_record(1, &[0, OLD_PARTIAL, 0, 0, 0, 0]).is_err());
        assert!(decode_record(1, &[0, HAS_OLD | NEW_PARTIAL, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn records_written_before_deltas_still_read() {
        // origin User, old and new present, each part a u32 length and bytes.
        let bytes = [
            0, 3, 0, 0, 0, 1, b'k', 0, 0, 0, 3, b'o', b'l', b'd', 0, 0, 0, 3, b'o', b'l', b'e',
        ];
        let record = decode_record(2, &bytes).unwrap();
        assert_eq!(record.old.as_deref(), Some(&b"old"[..]));
        assert_eq!(record.new.as_deref(), Some(&b"ole"[..]));
    }

    #[test]
    fn keys_sort_by_table_then_position() {
        let a = LogPosition {
            timestamp_ms: 5,
            sequence: 9,
        };
        let b = a.next(3);
        assert_eq!(
            b,
            LogPosition {
                timestamp_ms: 5,
                sequence: 10
            }
        );
        assert!(entry_key(1, a) < entry_key(1, b));
        assert!(entry_key(1, b) < entry_key(2, LogPosition::START));
        assert_eq!(parse_entry_key(&entry_key(3, b)), Some((3, b)));
        assert_eq!(LogPosition::from_bytes(&b.to_bytes()), Some(b));
    }
}
