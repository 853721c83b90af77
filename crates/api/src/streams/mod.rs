//! DynamoDB Streams: a table's stream is a reader of the change log, not a second copy of the data.
//!
//! Writes append one log record per changed item while the table has an enabled stream
//! (`crate::changes`); the stream's shards are windows of that log, computed rather than stored:
//! - a stream covers the table's log records after the log head at the moment it was enabled (the
//!   whole log for a stream created with the table) and before the next stream's start;
//! - shard `k` holds the records committed in `[origin + k × interval, origin + (k + 1) × interval)`
//!   (the origin is the stream's creation time; the interval is `haven serve
//!   --stream-shard-interval-secs`, fixed per stream when it is created), so rollover needs no
//!   write, survives restarts, and each shard's parent is shard `k − 1`;
//! - a shard is closed once the log head has passed its window (every later commit has a later
//!   time), or when the stream is disabled. The log worker (`worker`) appends a heartbeat record
//!   when a window ends on an idle server, so that shards still close;
//! - a record's SequenceNumber is its log position: commit time in milliseconds then sequence
//!   number (33 digits), increasing within a shard and across a stream.
//!
//! Enabling or disabling a stream bumps the table's schema version, so that a write planned
//! before the change is refused at commit and planned again: every write acknowledged after the
//! change has (or has not) its record. Here: the stream metadata, what a StreamSpecification on
//! CreateTable and UpdateTable does (`ops::table_features` checks it), and the stream members of a
//! TableDescription; the operations are
//! in `ops`, shard arithmetic in `shards`, iterators in `iterator`, records in `records`.

mod iterator;
mod ops;
mod records;
mod retired;
mod shards;
pub(crate) mod worker;

use std::time::Duration;

use haven_storage::LogPosition;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalog::TableMeta;
use crate::error::DynamoError;

pub(crate) use ops::{describe_stream, get_records, get_shard_iterator, list_streams};

/// Stream settings of a server.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// How long a shard stays open before a child replaces it (AWS: about 4 hours).
    pub shard_interval: Duration,
    /// How long records stay readable (AWS: 24 hours).
    pub retention: Duration,
    /// How long a shard iterator may be used (AWS: 15 minutes).
    pub iterator_lifetime: Duration,
}

impl Default for StreamSettings {
    fn default() -> StreamSettings {
        StreamSettings {
            shard_interval: Duration::from_secs(4 * 3600),
            retention: Duration::from_secs(24 * 3600),
            iterator_lifetime: Duration::from_secs(15 * 60),
        }
    }
}

/// One stream of a table, as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    /// StreamLabel: the creation time, `2026-12-07T00:13:16.484` (unique within the table).
    pub label: String,
    pub view_type: String,
    /// Creation time in milliseconds: the origin of the shard windows.
    pub created_ms: u64,
    /// Shard window length in milliseconds.
    pub shard_interval_ms: u64,
    /// The log position after which the stream's records start.
    pub start_ms: u64,
    pub start_sequence: u64,
    /// When the stream was disabled (None while enabled).
    pub disabled_ms: Option<u64>,
}

impl StreamMeta {
    pub(crate) fn start(&self) -> LogPosition {
        LogPosition {
            timestamp_ms: self.start_ms,
            sequence: self.start_sequence,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.disabled_ms.is_none()
    }

    /// Whether the stream is still readable for a reader whose retention reaches back to
    /// `oldest_ms`: enabled, or disabled (or its table deleted) since then.
    pub(crate) fn readable(&self, oldest_ms: u64) -> bool {
        self.disabled_ms.is_none_or(|at| at >= oldest_ms)
    }

    pub(crate) fn arn(&self, table: &TableMeta) -> String {
        format!("{}/stream/{}", table.arn, self.label)
    }
}

/// The stream a write must log to, if the table has an enabled one.
pub(crate) fn enabled_stream(meta: &TableMeta) -> Option<&StreamMeta> {
    meta.streams.last().filter(|stream| stream.enabled())
}

/// Stages, in DeleteTable's batch, what keeps the table's streams readable for the retention
/// period (`retired`).
pub(crate) fn retire(batch: &mut haven_storage::WriteBatch, meta: &TableMeta) {
    retired::stage(batch, meta, now_ms());
}

/// What a valid StreamSpecification asks for: a stream with this view type, or none
/// (`ops::table_features` checks the request).
pub(crate) type Requested = Option<String>;

/// The stream a table created with `view_type` starts with: it covers the whole (new) table's log.
pub(crate) fn new_table_stream(view_type: &str, now_ms: u64, interval: Duration) -> StreamMeta {
    new_stream(view_type, now_ms, LogPosition::START, interval)
}

fn new_stream(
    view_type: &str,
    created_ms: u64,
    start: LogPosition,
    interval: Duration,
) -> StreamMeta {
    StreamMeta {
        label: label(created_ms),
        view_type: view_type.to_owned(),
        created_ms,
        shard_interval_ms: (interval.as_millis() as u64).max(1),
        start_ms: start.timestamp_ms,
        start_sequence: start.sequence,
        disabled_ms: None,
    }
}

/// `2026-12-07T00:13:16.484` for a time in milliseconds (UTC).
pub(crate) fn label(ms: u64) -> String {
    let seconds = (ms / 1000) as i64;
    let (year, month, day) = crate::ops::civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        ms % 1000
    )
}

/// UpdateTable's StreamSpecification: the table's metadata with the stream enabled or disabled.
/// `head` is the log head now (a new stream starts after it), `now_ms` the time.
pub(crate) fn change_stream(
    meta: &TableMeta,
    requested: &Requested,
    head: LogPosition,
    now_ms: u64,
    settings: &StreamSettings,
) -> Result<TableMeta, DynamoError> {
    let mut updated = meta.clone();
    let retention = settings.retention.as_millis() as u64;
    updated
        .streams
        .retain(|s| s.readable((now_ms + 1).saturating_sub(retention)));
    match (
        requested,
        updated.streams.last_mut().filter(|s| s.enabled()),
    ) {
        (Some(_), Some(_)) => {
            let message = format!(
                "Table already has an enabled stream: TableName: {}",
                meta.name
            );
            return Err(DynamoError::validation(message));
        }
        (None, None) => {
            let message = format!("Table has no stream to disable: TableName: {}", meta.name);
            return Err(DynamoError::validation(message));
        }
        (None, Some(stream)) => stream.disabled_ms = Some(now_ms.max(head.timestamp_ms)),
        (Some(view_type), None) => {
            // Labels identify streams: never reuse the previous one's millisecond.
            let created = meta
                .streams
                .last()
                .map_or(now_ms, |s| now_ms.max(s.created_ms + 1));
            let stream = new_stream(view_type, created, head, settings.shard_interval);
            updated.streams.push(stream);
        }
    }
    Ok(updated)
}

/// Adds StreamSpecification (while a stream is enabled), LatestStreamLabel and LatestStreamArn
/// (once the table has had a stream) to a TableDescription.
pub(crate) fn describe_into(description: &mut Value, meta: &TableMeta) {
    let Some(latest) = meta.streams.last() else {
        return;
    };
    if latest.enabled() {
        description["StreamSpecification"] =
            json!({ "StreamEnabled": true, "StreamViewType": latest.view_type });
    }
    description["LatestStreamLabel"] = json!(latest.label);
    description["LatestStreamArn"] = json!(latest.arn(meta));
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_iso_times_with_milliseconds() {
        assert_eq!(label(1_796_602_396_484), "2026-12-07T00:13:16.484");
        assert_eq!(label(0), "1970-01-01T00:00:00.000");
    }
}
