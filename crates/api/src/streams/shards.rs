//! A stream's shards as windows of the table's change log, and the sequence numbers of records.
//!
//! Nothing here is stored: which shards exist, which are closed and which records each holds
//! follow from the stream's metadata and one snapshot (its log head, the table's trim horizon and
//! at most two reads of the log), so two requests on the same snapshot always agree.

use std::ops::Bound;

use haven_storage::{LogEntry, LogPosition, Snapshot, StorageError};
use serde_json::{Value, json};

use super::StreamMeta;
use crate::catalog::TableMeta;

/// One stream of a table, with where its records end (the next stream's start).
pub(crate) struct Stream<'m> {
    pub table: &'m TableMeta,
    pub meta: &'m StreamMeta,
    /// Records after this position belong to the next stream (None: this is the latest).
    next_start: Option<LogPosition>,
}

/// Which shards of a stream exist in a snapshot: `first..=last`; all are closed but the last,
/// which is open while the stream is enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub first: u64,
    pub last: u64,
    pub open: bool,
}

impl Layout {
    pub fn contains(&self, shard: u64) -> bool {
        (self.first..=self.last).contains(&shard)
    }

    pub fn closed(&self, shard: u64) -> bool {
        shard < self.last || !self.open
    }
}

/// The records of one shard: positions after `after` and (when bounded) before `before`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardRange {
    pub after: LogPosition,
    pub before: Option<LogPosition>,
}

impl ShardRange {
    pub fn bounds(&self, from: LogPosition) -> (Bound<LogPosition>, Bound<LogPosition>) {
        (
            Bound::Excluded(from.max(self.after)),
            self.before.map_or(Bound::Unbounded, Bound::Excluded),
        )
    }
}

/// The position just after `position` in log order (an inclusive bound made exclusive).
fn just_after(position: LogPosition) -> LogPosition {
    LogPosition {
        sequence: position.sequence + 1,
        ..position
    }
}

impl<'m> Stream<'m> {
    /// The stream of `table` labelled `label`.
    pub fn find(table: &'m TableMeta, label: &str) -> Option<Stream<'m>> {
        let index = table.streams.iter().position(|s| s.label == label)?;
        Some(Stream::at(table, index))
    }

    /// Every stream of `table`, oldest first.
    pub fn all(table: &'m TableMeta) -> impl Iterator<Item = Stream<'m>> {
        (0..table.streams.len()).map(move |index| Stream::at(table, index))
    }

    fn at(table: &'m TableMeta, index: usize) -> Stream<'m> {
        Stream {
            table,
            meta: &table.streams[index],
            next_start: table.streams.get(index + 1).map(StreamMeta::start),
        }
    }

    pub fn arn(&self) -> String {
        self.meta.arn(self.table)
    }

    fn interval(&self) -> u64 {
        self.meta.shard_interval_ms.max(1)
    }

    fn window_start(&self, shard: u64) -> u64 {
        self.meta
            .created_ms
            .saturating_add(shard.saturating_mul(self.interval()))
    }

    /// The window a commit time falls in (times before the origin fall in the first).
    fn window_of(&self, timestamp_ms: u64) -> u64 {
        timestamp_ms.saturating_sub(self.meta.created_ms) / self.interval()
    }

    /// When the window after the one holding `timestamp_ms` starts.
    pub fn next_window_start(&self, timestamp_ms: u64) -> u64 {
        self.window_start(self.window_of(timestamp_ms) + 1)
    }

    /// Where the stream's records end: before the position after the next stream's start.
    fn before(&self) -> Option<LogPosition> {
        self.next_start.map(just_after)
    }

    /// The shards that exist in `snapshot`: those whose records may still be read, given the
    /// table's trim horizon and that records older than `oldest_ms` are past retention.
    pub fn layout(&self, snapshot: &dyn Snapshot, oldest_ms: u64) -> Result<Layout, StorageError> {
        let horizon = snapshot.log_horizon(self.table.id)?;
        let last = match self.meta.disabled_ms {
            None => self.window_of(snapshot.log_head()?.timestamp_ms),
            Some(disabled) => {
                // A record committed while the disabling was planned may be later still.
                let last_record = self.edge_record(snapshot, self.whole(), true)?;
                let latest = last_record.map_or(0, |e| e.position.timestamp_ms);
                self.window_of(disabled.max(latest))
            }
        };
        let first = self
            .window_of(horizon.timestamp_ms.max(oldest_ms))
            .min(last);
        Ok(Layout {
            first,
            last,
            open: self.meta.enabled(),
        })
    }

    fn whole(&self) -> ShardRange {
        ShardRange {
            after: self.meta.start(),
            before: self.before(),
        }
    }

    /// The records of `shard` in `layout`.
    pub fn range(&self, layout: &Layout, shard: u64) -> ShardRange {
        let window_after = LogPosition {
            timestamp_ms: self.window_start(shard),
            sequence: 0,
        };
        let after = if shard == 0 {
            self.meta.start()
        } else {
            self.meta.start().max(window_after)
        };
        let window_end = (shard < layout.last).then(|| LogPosition {
            timestamp_ms: self.window_start(shard + 1),
            sequence: 0,
        });
        let before = match (window_end, self.before()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ShardRange { after, before }
    }

    /// The shard a sequence number's record belongs to in `layout`.
    pub fn shard_of(&self, layout: &Layout, position: LogPosition) -> u64 {
        self.window_of(position.timestamp_ms).min(layout.last)
    }

    /// The first (or, `last`, the last) record of a range.
    fn edge_record(
        &self,
        snapshot: &dyn Snapshot,
        range: ShardRange,
        last: bool,
    ) -> Result<Option<LogEntry>, StorageError> {
        let mut found = None;
        snapshot.scan_log(
            self.table.id,
            range.bounds(LogPosition::START),
            last,
            &mut |entry| {
                found = Some(entry);
                false
            },
        )?;
        Ok(found)
    }

    /// `shardId-<window start, 20 digits>-<8 hex digits>`, as AWS shapes shard ids.
    pub fn shard_id(&self, shard: u64) -> String {
        let tag = xxhash_rust::xxh3::xxh3_64(
            format!("{}|{}|{shard}", self.table.table_uuid, self.meta.label).as_bytes(),
        );
        format!(
            "shardId-{:020}-{:08x}",
            self.window_start(shard),
            tag as u32
        )
    }

    /// The shard a shard id names, if it is one of this stream's.
    pub fn parse_shard_id(&self, id: &str) -> Option<u64> {
        let (start, _) = id.strip_prefix("shardId-")?.split_once('-')?;
        let start: u64 = start.parse().ok()?;
        let offset = start.checked_sub(self.meta.created_ms)?;
        let shard = offset / self.interval();
        (offset % self.interval() == 0 && self.shard_id(shard) == id).then_some(shard)
    }

    /// One entry of DescribeStream's Shards.
    pub fn describe_shard(
        &self,
        snapshot: &dyn Snapshot,
        layout: &Layout,
        shard: u64,
    ) -> Result<Value, StorageError> {
        let range = self.range(layout, shard);
        let empty = LogPosition {
            timestamp_ms: self.window_start(shard),
            sequence: 0,
        };
        let first = self.edge_record(snapshot, range, false)?;
        let starting = first.as_ref().map_or(empty, |e| e.position);
        let mut sequence_range = json!({ "StartingSequenceNumber": sequence_number(starting) });
        if layout.closed(shard) {
            let last = match first {
                Some(_) => self.edge_record(snapshot, range, true)?,
                None => None,
            };
            let ending = last.map_or(starting, |e| e.position);
            sequence_range["EndingSequenceNumber"] = json!(sequence_number(ending));
        }
        let mut described = json!({
            "ShardId": self.shard_id(shard),
            "SequenceNumberRange": sequence_range,
        });
        if shard > 0 {
            described["ParentShardId"] = json!(self.shard_id(shard - 1));
        }
        Ok(described)
    }
}

const SEQUENCE_DIGITS: u128 = 100_000_000_000_000_000_000;

/// A record's SequenceNumber: its commit time in milliseconds (13 digits) then its sequence number
/// (20 digits). Numbers grow with log order, and strings of one length sort as numbers.
pub(crate) fn sequence_number(position: LogPosition) -> String {
    format!("{:013}{:020}", position.timestamp_ms, position.sequence)
}

/// The log position a SequenceNumber names (None if it cannot be one of Haven's).
pub(crate) fn parse_sequence_number(text: &str) -> Option<LogPosition> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u128 = text.parse().ok()?;
    Some(LogPosition {
        timestamp_ms: u64::try_from(value / SEQUENCE_DIGITS).ok()?,
        sequence: u64::try_from(value % SEQUENCE_DIGITS).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_round_trip_and_sort_as_the_log() {
        let a = LogPosition {
            timestamp_ms: 1_796_602_396_484,
            sequence: 7,
        };
        let b = LogPosition {
            timestamp_ms: 1_796_602_396_484,
            sequence: 12,
        };
        let (sa, sb) = (sequence_number(a), sequence_number(b));
        assert_eq!(sa.len(), 33);
        assert!(sa < sb);
        assert_eq!(parse_sequence_number(&sa), Some(a));
        assert_eq!(parse_sequence_number("12a"), None);
        assert_eq!(parse_sequence_number(&"9".repeat(40)), None);
    }
}
