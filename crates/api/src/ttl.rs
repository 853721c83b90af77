//! Time to live: the expiry index and the worker that deletes expired items.
//!
//! Finding expired items must not scan the table, so every write of a table with TTL enabled keeps
//! the item's entry in an expiry-ordered index in the same batch (`changes::stage` calls
//! [`stage_expiry`]): `INDEXES | table id | FFFFFFFF | expiry (u64 BE seconds) | item storage key`,
//! an index id no secondary index can have, so the entries go with the table's other index data
//! when it is deleted. An item has an entry when its TTL attribute is a non-negative Number of
//! epoch seconds (fractions dropped); any other value is ignored, as DynamoDB does.
//!
//! The worker, every `--ttl-interval-ms`, reads the entries due (expiry at or before now) in
//! bounded steps and deletes each item through the normal write path (`items::stage_item_write`:
//! counters, secondary indexes, the stream record with the TTL service's identity), as a
//! conditional delete: the batch expects the bytes it read, so an item rewritten meanwhile (its TTL
//! moved to the future, say) is refused at commit and looked at again. Entries that no longer match
//! their item (left from a time TTL was off) are dropped. When TTL is enabled on a table that
//! already has items, the worker first copies the existing items' expiry times into the index
//! chunk by chunk, as index backfill does, and records that it has (`STATS | table id | 't'`).
//! Like DynamoDB, expired items stay readable until the worker gets to them; items whose expiry is
//! more than five years in the past are never deleted.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use haven_model::item_codec::decode_item;
use haven_model::{AttributeValue, Item};
use haven_storage::{CommitError, Engine, Origin, Snapshot, StorageError, WriteBatch, WriteOp};

use crate::background::{Stop, spawn_periodic};
use crate::catalog::{Catalog, TableMeta, TimeToLive, prefix};

/// The index id of the expiry index (secondary indexes count up from 0).
const EXPIRY_INDEX: u32 = u32::MAX;
/// `STATS | table id | 't'`: the `enabled_version` whose backfill finished.
const BACKFILLED_STAT: u8 = b't';
/// Items one backfill batch copies, and backfill batches per table in one round.
const BACKFILL_CHUNK: usize = 256;
const BACKFILL_CHUNKS_PER_ROUND: usize = 16;
/// Entries due the worker handles per table in one round.
const DELETES_PER_ROUND: usize = 100;
/// DynamoDB leaves alone items whose TTL is more than five years in the past.
const MAX_AGE_SECONDS: u64 = 5 * 365 * 24 * 3600;

/// The enabled TTL setting of a table.
pub(crate) fn enabled(meta: &TableMeta) -> Option<&TimeToLive> {
    // A mirrored table's expiries arrive from its source as deletions (`crate::mirror`).
    let local = meta.mirror.is_none();
    meta.time_to_live
        .as_ref()
        .filter(|ttl| ttl.enabled && local)
}

/// Epoch seconds of a non-negative Number (fractions dropped); None for anything else.
fn epoch_seconds(value: &AttributeValue) -> Option<u64> {
    let AttributeValue::N(number) = value else {
        return None;
    };
    if number.is_negative() {
        return None;
    }
    let (coefficient, exponent) = (number.coefficient(), number.exponent());
    let seconds = if exponent >= 0 {
        coefficient.checked_mul(10u128.checked_pow(exponent as u32)?)?
    } else {
        10u128
            .checked_pow(exponent.unsigned_abs())
            .map_or(0, |divisor| coefficient / divisor)
    };
    u64::try_from(seconds).ok()
}

fn expiry_of(ttl: &TimeToLive, item: &Item) -> Option<u64> {
    item.get(&ttl.attribute_name).and_then(epoch_seconds)
}

fn index_prefix(meta: &TableMeta) -> Vec<u8> {
    let mut key = vec![prefix::INDEXES];
    key.extend_from_slice(&meta.id.to_be_bytes());
    key.extend_from_slice(&EXPIRY_INDEX.to_be_bytes());
    key
}

fn entry_key(meta: &TableMeta, expiry: u64, storage_key: &[u8]) -> Vec<u8> {
    let mut key = index_prefix(meta);
    key.extend_from_slice(&expiry.to_be_bytes());
    key.extend_from_slice(storage_key);
    key
}

/// Keeps an item's expiry entry in step with a write that takes it from `old` to `new`.
pub(crate) fn stage_expiry(
    meta: &TableMeta,
    storage_key: &[u8],
    old: Option<&Item>,
    new: Option<&Item>,
    batch: &mut WriteBatch,
) {
    let Some(ttl) = enabled(meta) else {
        return;
    };
    let (before, after) = (
        old.and_then(|i| expiry_of(ttl, i)),
        new.and_then(|i| expiry_of(ttl, i)),
    );
    if before == after {
        return;
    }
    if let Some(expiry) = before {
        batch.delete(entry_key(meta, expiry, storage_key));
    }
    if let Some(expiry) = after {
        batch.put(entry_key(meta, expiry, storage_key), Vec::new());
    }
}

/// Starts the TTL worker.
pub(crate) fn spawn(
    engine: Arc<dyn Engine>,
    catalog: Arc<Catalog>,
    interval: Duration,
    collection_limit: u64,
    stop: Stop,
) {
    let mut worker = Worker {
        engine: engine.clone(),
        catalog,
        collection_limit,
        cursors: HashMap::new(),
    };
    spawn_periodic("haven-ttl", engine, interval, stop, move || worker.round());
}

struct Worker {
    engine: Arc<dyn Engine>,
    catalog: Arc<Catalog>,
    collection_limit: u64,
    /// Backfill progress per table id: the enabling it is for and the last item key copied.
    cursors: HashMap<u64, (u64, Option<Vec<u8>>)>,
}

fn now_seconds() -> u64 {
    crate::streams::now_ms() / 1000
}

/// Commits `batch`; false if a concurrent write changed what it read.
fn commit(engine: &dyn Engine, batch: WriteBatch) -> Result<bool, StorageError> {
    match engine.commit(batch).wait() {
        Ok(()) => Ok(true),
        Err(CommitError::Conflict) => Ok(false),
        Err(CommitError::Storage(error)) => Err(error),
    }
}

impl Worker {
    fn round(&mut self) -> Result<(), StorageError> {
        for name in self.catalog.names() {
            let Some(meta) = self.catalog.get(&name)? else {
                continue;
            };
            let Some(ttl) = enabled(&meta) else {
                self.cursors.remove(&meta.id);
                continue;
            };
            self.backfill(&meta, ttl)?;
            self.delete_expired(&meta, ttl)?;
        }
        Ok(())
    }

    fn backfilled_key(meta: &TableMeta) -> Vec<u8> {
        meta.stat_key(BACKFILLED_STAT)
    }

    /// Copies the expiry times of items written before TTL was enabled into the index, a few
    /// chunks per round, then records that the enabling is complete.
    fn backfill(&mut self, meta: &TableMeta, ttl: &TimeToLive) -> Result<(), StorageError> {
        let done =
            haven_storage::read_counter(&*self.engine.snapshot()?, &Self::backfilled_key(meta))?;
        if done as u64 == ttl.enabled_version {
            return Ok(());
        }
        let cursor = self
            .cursors
            .entry(meta.id)
            .or_insert((ttl.enabled_version, None));
        if cursor.0 != ttl.enabled_version {
            *cursor = (ttl.enabled_version, None);
        }
        for _ in 0..BACKFILL_CHUNKS_PER_ROUND {
            match backfill_chunk(&*self.engine, meta, ttl, cursor.1.as_deref())? {
                Chunk::Copied(last) => cursor.1 = Some(last),
                Chunk::Conflict => {}
                Chunk::Done => {
                    let mut batch = WriteBatch::new();
                    batch
                        .expect(meta.schema_version_key(), meta.schema_version_expectation())
                        .put(
                            Self::backfilled_key(meta),
                            ttl.enabled_version.to_be_bytes().to_vec(),
                        );
                    commit(&*self.engine, batch)?;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Deletes up to [`DELETES_PER_ROUND`] items whose expiry has passed.
    fn delete_expired(&self, meta: &TableMeta, ttl: &TimeToLive) -> Result<(), StorageError> {
        let now = now_seconds();
        let start = index_prefix(meta);
        let end = entry_key(meta, now.saturating_add(1), &[]);
        let mut due = Vec::new();
        self.engine.snapshot()?.scan(
            (Bound::Included(&start), Bound::Excluded(&end)),
            false,
            &mut |key, _| {
                due.push(key.to_vec());
                due.len() < DELETES_PER_ROUND
            },
        )?;
        for entry in due {
            self.expire(meta, ttl, &entry, now)?;
        }
        Ok(())
    }

    /// Deletes the item of one due entry if it is still expired, or drops a stale entry.
    fn expire(
        &self,
        meta: &TableMeta,
        ttl: &TimeToLive,
        entry: &[u8],
        now: u64,
    ) -> Result<(), StorageError> {
        let at = index_prefix(meta).len();
        let expiry = u64::from_be_bytes(entry[at..at + 8].try_into().expect("8 bytes"));
        let storage_key = &entry[at + 8..];
        let snapshot = self.engine.snapshot()?;
        let current = match snapshot.get(storage_key)? {
            Some(bytes) => {
                let item = decode_item(&bytes)
                    .map_err(|e| StorageError::Io(format!("table {}: {e}", meta.name)))?;
                Some((bytes, item))
            }
            None => None,
        };
        let matches = current
            .as_ref()
            .is_some_and(|(_, item)| expiry_of(ttl, item) == Some(expiry));
        let mut batch = WriteBatch::new();
        let deletes_item = matches && expiry + MAX_AGE_SECONDS >= now;
        match current {
            Some(current) if deletes_item => {
                let key = meta.keys().project_key(&current.1);
                let staged = crate::items::stage_item_write(
                    &*snapshot,
                    meta,
                    crate::items::ItemKey::new(meta, &key),
                    Some(&current),
                    None,
                    &mut batch,
                    self.collection_limit,
                );
                if staged.is_err() {
                    return Ok(());
                }
                for op in &mut batch.ops {
                    if let WriteOp::AppendLog(record) = op {
                        record.origin = Origin::Ttl;
                    }
                }
            }
            current => {
                batch
                    .expect(storage_key.to_vec(), current.map(|(bytes, _)| bytes))
                    .delete(entry.to_vec());
            }
        }
        drop(snapshot);
        if commit(&*self.engine, batch)? && deletes_item {
            haven_metrics::ttl_deletion(&meta.name);
        }
        Ok(())
    }
}

/// What one backfill chunk did.
enum Chunk {
    /// Copied the items up to this key.
    Copied(Vec<u8>),
    /// A write changed an item read: the chunk will be read again.
    Conflict,
    /// Every item has been seen.
    Done,
}

fn backfill_chunk(
    engine: &dyn Engine,
    meta: &TableMeta,
    ttl: &TimeToLive,
    after: Option<&[u8]>,
) -> Result<Chunk, StorageError> {
    let snapshot: Box<dyn Snapshot> = engine.snapshot()?;
    let chunk = crate::indexes::table_chunk(&*snapshot, meta, after, BACKFILL_CHUNK)?;
    let Some((last, _)) = chunk.last() else {
        return Ok(Chunk::Done);
    };
    let last = last.clone();
    let mut batch = WriteBatch::new();
    for (key, value) in chunk {
        let item = decode_item(&value)
            .map_err(|e| StorageError::Io(format!("table {}: {e}", meta.name)))?;
        let Some(expiry) = expiry_of(ttl, &item) else {
            continue;
        };
        let entry = entry_key(meta, expiry, &key);
        if snapshot.get(&entry)?.is_none() {
            batch.expect(key, Some(value)).put(entry, Vec::new());
        }
    }
    drop(snapshot);
    Ok(if batch.ops.is_empty() || commit(engine, batch)? {
        Chunk::Copied(last)
    } else {
        Chunk::Conflict
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_model::Number;

    #[test]
    fn only_non_negative_numbers_are_expiry_times() {
        let n = |text: &str| AttributeValue::N(Number::parse(text).unwrap());
        assert_eq!(epoch_seconds(&n("1700000000")), Some(1_700_000_000));
        assert_eq!(epoch_seconds(&n("1700000000.9")), Some(1_700_000_000));
        assert_eq!(epoch_seconds(&n("17e8")), Some(1_700_000_000));
        assert_eq!(epoch_seconds(&n("0.5")), Some(0));
        assert_eq!(epoch_seconds(&n("1e-100")), Some(0));
        assert_eq!(epoch_seconds(&n("-5")), None);
        assert_eq!(epoch_seconds(&n("1e30")), None);
        assert_eq!(epoch_seconds(&AttributeValue::S("1700000000".into())), None);
    }
}
