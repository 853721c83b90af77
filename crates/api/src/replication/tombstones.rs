//! Tombstone collection: a deleted item of a global table leaves its stamp behind (a tombstone,
//! `version.rs`) so that an older put arriving late cannot bring it back. Kept for ever, they
//! would grow storage without bound under a workload that deletes; this collects them once no
//! peer can still need them.
//!
//! The rule: a tombstone goes once every peer has acknowledged log positions later than its time
//! plus the grace period (`[replication] tombstone_grace_ms`, by default the log's 24 hours).
//! The peers' acknowledged positions are the shipper's cursors, so the delete itself has reached
//! every peer; the grace covers what is still in flight towards this region (a peer's batch read
//! before the delete reached it, a commit that stamped its time before it committed). A
//! table without replicas (a legacy global table of one region) measures against its log head.
//!
//! It runs in the shipper's rounds (under its lease), in bounded steps: at most
//! [`STAMPS_PER_STEP`] stamps of a table are read per round, from where the last round stopped,
//! and the tombstones among them are deleted in one batch that expects each stamp unchanged and
//! its item still absent (a concurrent write wins; the next pass sees its stamp).

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Mutex;

use haven_storage::{CommitError, Engine, LogPosition, StorageError, WriteBatch};

use super::Lag;
use super::version::{Stamp, stamp_range};
use crate::catalog::TableMeta;

/// Stamps one round reads per table at most.
const STAMPS_PER_STEP: usize = 1000;

/// Collects tombstones, resuming each table's pass where the last round stopped.
pub(crate) struct Collector {
    grace_ms: u64,
    /// Per table id, the last stamp key read (None: start over).
    resume: Mutex<HashMap<u64, Vec<u8>>>,
}

impl Collector {
    pub(crate) fn new(grace: std::time::Duration) -> Collector {
        Collector {
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            resume: Mutex::new(HashMap::new()),
        }
    }

    /// One step over `meta`'s stamps; `acknowledged` is the earliest position every peer has
    /// acknowledged (None: some peer is still being filled, nothing may go).
    pub(crate) fn step(
        &self,
        engine: &dyn Engine,
        meta: &TableMeta,
        acknowledged: Option<LogPosition>,
        lag: &Lag,
    ) -> Result<(), StorageError> {
        let Some(acknowledged) = acknowledged else {
            return Ok(());
        };
        let horizon = acknowledged.timestamp_ms.saturating_sub(self.grace_ms);
        let (start, end) = stamp_range(meta.id);
        let after = self.resumed(meta.id);
        let lower = match &after {
            Some(key) => Bound::Excluded(key.as_slice()),
            None => Bound::Included(start.as_slice()),
        };
        let snapshot = engine.snapshot()?;
        let (mut batch, mut read, mut last, mut collected) = (WriteBatch::new(), 0, None, 0);
        let range = (lower, Bound::Excluded(end.as_slice()));
        snapshot.scan(range, false, &mut |key, value| {
            read += 1;
            last = Some(key.to_vec());
            if Stamp::decode(value).is_some_and(|s| s.deleted && s.version.timestamp_ms < horizon) {
                let mut item_key = meta.item_prefix();
                item_key.extend_from_slice(&key[start.len()..]);
                batch
                    .expect(key.to_vec(), Some(value.to_vec()))
                    .expect(item_key, None)
                    .delete(key.to_vec());
                collected += 1;
            }
            read < STAMPS_PER_STEP
        })?;
        drop(snapshot);
        self.remember(meta.id, (read == STAMPS_PER_STEP).then_some(last).flatten());
        if collected == 0 {
            return Ok(());
        }
        match engine.commit(batch).wait() {
            Ok(()) => {
                lag.count_collected(&meta.name, collected);
                Ok(())
            }
            Err(CommitError::Conflict) => Ok(()),
            Err(CommitError::Storage(error)) => Err(error),
        }
    }

    fn resumed(&self, table: u64) -> Option<Vec<u8>> {
        let resume = self.resume.lock().unwrap_or_else(|p| p.into_inner());
        resume.get(&table).cloned()
    }

    fn remember(&self, table: u64, last: Option<Vec<u8>>) {
        let mut resume = self.resume.lock().unwrap_or_else(|p| p.into_inner());
        match last {
            Some(key) => resume.insert(table, key),
            None => resume.remove(&table),
        };
    }
}
