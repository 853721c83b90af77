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

/// A record's stored value (the table is in the key): origin (1 byte), flags (old and new
/// present), then the key, the old and the new value, each as a u32 big-endian length and bytes.
pub fn encode_record(record: &LogRecord) -> Vec<u8> {
    let parts = [Some(&record.key), record.old.as_ref(), record.new.as_ref()];
    let size: usize = parts.iter().flatten().map(|p| 4 + p.len()).sum();
    let mut bytes = Vec::with_capacity(2 + size);
    let flags = if record.old.is_some() { HAS_OLD } else { 0 }
        | if record.new.is_some() { HAS_NEW } else { 0 };
    bytes.push(record.origin.code());
    bytes.push(flags);
    for part in parts.into_iter().flatten() {
        bytes.extend_from_slice(&(part.len() as u32).to_be_bytes());
        bytes.extend_from_slice(part);
    }
    bytes
}

/// Reads [`encode_record`]; a damaged value is an error, never a panic.
pub fn decode_record(table: u64, bytes: &[u8]) -> Result<LogRecord, StorageError> {
    let damaged = || StorageError::Io(format!("damaged change log record of table {table}"));
    let [origin, flags, rest @ ..] = bytes else {
        return Err(damaged());
    };
    let origin = Origin::from_code(*origin).ok_or_else(damaged)?;
    let mut rest = rest;
    let mut part = |present: bool| -> Result<Option<Vec<u8>>, StorageError> {
        if !present {
            return Ok(None);
        }
        let (length, tail) = rest.split_at_checked(4).ok_or_else(damaged)?;
        let length = u32::from_be_bytes(length.try_into().expect("4 bytes")) as usize;
        let (value, tail) = tail.split_at_checked(length).ok_or_else(damaged)?;
        rest = tail;
        Ok(Some(value.to_vec()))
    };
    let key = part(true)?.expect("present");
    let old = part(flags & HAS_OLD != 0)?;
    let new = part(flags & HAS_NEW != 0)?;
    if !rest.is_empty() {
        return Err(damaged());
    }
    Ok(LogRecord {
        table,
        key,
        old,
        new,
        origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_an_error() {
        for (old, new, origin) in [
            (None, Some(b"new".to_vec()), Origin::User),
            (Some(b"old".to_vec()), Some(Vec::new()), Origin::Replication),
            (Some(b"old".to_vec()), None, Origin::Ttl),
        ] {
            let record = LogRecord {
                table: 7,
                key: b"key".to_vec(),
                old,
                new,
                origin,
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
