//! The log worker: trims every table's change log to the retention the readers need, and appends
//! a heartbeat when a shard window has ended on an idle server.
//!
//! Trimming is bounded: a batch drops at most [`TRIM_STEP`] records, and a round makes at most
//! [`TRIM_STEPS_PER_ROUND`] batches per table, so the committer is never held for long. The
//! heartbeat is needed because a shard closes only once the log head has passed the end of its
//! window (a later commit could otherwise still land in it); when nothing is written, one record
//! under table id [`HEARTBEAT_TABLE`] (no table has it: ids start at 1) moves the head.

use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use haven_storage::{Engine, LogPosition, LogRecord, Origin, Snapshot, StorageError, WriteBatch};

use super::shards::Stream;
use super::{StreamSettings, enabled_stream, now_ms};
use crate::background::{Stop, spawn_periodic};
use crate::catalog::Catalog;

/// The log id of heartbeat records.
pub(crate) const HEARTBEAT_TABLE: u64 = 0;
/// Records one trimming batch drops at most.
const TRIM_STEP: usize = 1000;
/// Trimming batches per table in one round.
const TRIM_STEPS_PER_ROUND: usize = 50;
/// Longest pause between rounds.
const MAX_PERIOD: Duration = Duration::from_secs(1);

/// Starts the log worker.
pub(crate) fn spawn(
    engine: Arc<dyn Engine>,
    catalog: Arc<Catalog>,
    settings: StreamSettings,
    stop: Stop,
) {
    let period = (settings.shard_interval / 4).clamp(Duration::from_millis(10), MAX_PERIOD);
    spawn_periodic("haven-log", engine.clone(), period, stop, move || {
        heartbeat_if_due(&*engine, &catalog)?;
        trim_all(
            &*engine,
            &settings.retention,
            &crate::backup::pitr::log_floor(&catalog),
        )?;
        let oldest = now_ms().saturating_sub(settings.retention.as_millis() as u64);
        super::retired::sweep(&*engine, oldest)
    });
}

/// Whether the log holds records, or deleted tables' streams are still kept (`super::retired`),
/// from a previous run: the worker must trim them even if no table calls for it any more.
pub(crate) fn has_leftovers(engine: &dyn Engine) -> Result<bool, StorageError> {
    let snapshot = engine.snapshot()?;
    Ok(snapshot.next_log_table(None)?.is_some() || super::retired::any(&*snapshot)?)
}

/// Appends a heartbeat when some enabled stream's current shard window has ended without a commit
/// after it.
fn heartbeat_if_due(engine: &dyn Engine, catalog: &Arc<Catalog>) -> Result<(), StorageError> {
    let head = engine.snapshot()?.log_head()?;
    let now = now_ms();
    let mut due = false;
    for name in catalog.names() {
        let Some(meta) = catalog.get(&name)? else {
            continue;
        };
        if let Some(stream) = enabled_stream(&meta) {
            let stream = Stream::find(&meta, &stream.label).expect("the table's own stream");
            due |= stream.next_window_start(head.timestamp_ms) <= now;
        }
    }
    if !due {
        return Ok(());
    }
    let mut batch = WriteBatch::new();
    batch.append_log(LogRecord {
        table: HEARTBEAT_TABLE,
        key: Vec::new(),
        old: None,
        new: None,
        origin: Origin::User,
        partial: Default::default(),
    });
    commit(engine, batch)
}

pub(super) fn commit(engine: &dyn Engine, batch: WriteBatch) -> Result<(), StorageError> {
    match engine.commit(batch).wait() {
        Ok(()) | Err(haven_storage::CommitError::Conflict) => Ok(()),
        Err(haven_storage::CommitError::Storage(error)) => Err(error),
    }
}

/// Trims every table's log (and the heartbeats) of the records older than `retention`.
/// A table with point-in-time recovery keeps its records from its `floors` position on.
fn trim_all(
    engine: &dyn Engine,
    retention: &Duration,
    floors: &std::collections::HashMap<u64, LogPosition>,
) -> Result<(), StorageError> {
    let cutoff = LogPosition {
        timestamp_ms: now_ms().saturating_sub(retention.as_millis() as u64),
        sequence: 0,
    };
    let mut table = engine.snapshot()?.next_log_table(None)?;
    while let Some(id) = table {
        for _ in 0..TRIM_STEPS_PER_ROUND {
            let cutoff = floors.get(&id).map_or(cutoff, |floor| cutoff.min(*floor));
            if !trim_step(engine, id, cutoff)? {
                break;
            }
        }
        table = engine.snapshot()?.next_log_table(Some(id))?;
    }
    Ok(())
}

/// Drops up to [`TRIM_STEP`] of `table`'s records before `cutoff`; true if there may be more.
fn trim_step(engine: &dyn Engine, table: u64, cutoff: LogPosition) -> Result<bool, StorageError> {
    let snapshot: Box<dyn Snapshot> = engine.snapshot()?;
    let (mut count, mut last) = (0, None);
    let range = (Bound::Unbounded, Bound::Excluded(cutoff));
    snapshot.scan_log(table, range, false, &mut |entry| {
        count += 1;
        last = Some(entry.position);
        count < TRIM_STEP
    })?;
    drop(snapshot);
    let Some(last) = last else {
        return Ok(false);
    };
    let mut batch = WriteBatch::new();
    let before = LogPosition {
        sequence: last.sequence + 1,
        ..last
    };
    batch.trim_log(table, before);
    commit(engine, batch)?;
    Ok(count == TRIM_STEP)
}
