//! The shipper: for every (global table, peer region), sends the peer what changed after the
//! position it acknowledged, and fills a new replica first.
//!
//! A cursor per (table, peer) is stored at `REPLICATION | table id | 'c' | region`:
//! - `Seeding { from, after }`: a new replica is being filled by a scan of the table's items and
//!   tombstones in key order (`after`: the last key sent); `from` is the log head when the fill
//!   began, so every change the scan may have missed is in the log after it, and every delete
//!   before it is a tombstone the scan sends;
//! - `Following(position)`: the peer has every change up to `position`.
//!
//! Every step reads one snapshot, sends one bounded batch and moves the cursor only once the peer
//! has answered, so a lost answer means the batch is sent again, which changes nothing (the
//! receiver keeps the newer version). A cursor the log trimming has overtaken starts a new fill.
//! A round makes at most [`STEPS_PER_ROUND`] steps per pair, so one busy table cannot starve the
//! others.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use base64::Engine as _;
use haven_storage::{CommitError, Engine, LogPosition, Origin, Snapshot, StorageError, WriteBatch};
use serde_json::{Value, json};

use super::tombstones::Collector;
use super::version::{Stamp, stamp_key_of_suffix, stamp_range, table_start};
use super::{GlobalTable, Lag, Peer, ReplicationSettings};
use crate::background::{Stop, spawn_periodic};
use crate::catalog::{Catalog, TableMeta};
use crate::streams::now_ms;

/// Items or log records one batch covers at most.
const BATCH: usize = 500;
/// Item bytes one batch carries at most (beyond its first item), so that a request stays well
/// under the server's 16 MB body limit once base64-encoded, and the memory a batch takes bounded.
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Batches per (table, peer) in one round.
const STEPS_PER_ROUND: usize = 20;

/// Starts the shipper (one node of a region runs it, under the lease `haven-replication`).
pub(crate) fn spawn(
    engine: Arc<dyn Engine>,
    catalog: Arc<Catalog>,
    settings: ReplicationSettings,
    lag: Lag,
    stop: Stop,
) {
    if settings.peers.is_empty() {
        return;
    }
    let period = settings.interval;
    let shipper = Shipper {
        engine: engine.clone(),
        catalog,
        peers: settings.peers,
        lag,
        collector: Collector::new(settings.tombstone_grace),
    };
    spawn_periodic("haven-replication", engine, period, stop, move || {
        shipper.round()
    });
}

struct Shipper {
    engine: Arc<dyn Engine>,
    catalog: Arc<Catalog>,
    peers: Vec<Peer>,
    lag: Lag,
    collector: Collector,
}

/// Where a peer stands (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
enum Cursor {
    Seeding { from: LogPosition, after: Vec<u8> },
    Following(LogPosition),
}

impl Cursor {
    fn encode(&self) -> Vec<u8> {
        match self {
            Cursor::Following(position) => {
                let mut bytes = vec![0];
                bytes.extend_from_slice(&position.to_bytes());
                bytes
            }
            Cursor::Seeding { from, after } => {
                let mut bytes = vec![1];
                bytes.extend_from_slice(&from.to_bytes());
                bytes.extend_from_slice(after);
                bytes
            }
        }
    }

    fn decode(bytes: &[u8]) -> Option<Cursor> {
        let (tag, rest) = bytes.split_first()?;
        let (position, after) = rest.split_at_checked(16)?;
        let position = LogPosition::from_bytes(position)?;
        match tag {
            0 if after.is_empty() => Some(Cursor::Following(position)),
            1 => Some(Cursor::Seeding {
                from: position,
                after: after.to_vec(),
            }),
            _ => None,
        }
    }
}

fn cursor_key(table: u64, peer: &str) -> Vec<u8> {
    let mut key = table_start(table);
    key.push(b'c');
    key.extend_from_slice(peer.as_bytes());
    key
}

/// One batch ready to send: the request body, the cursor once acknowledged, and the commit time
/// of its oldest change (for the lag).
struct Step {
    body: Value,
    next: Cursor,
    oldest_ms: Option<u64>,
}

impl Shipper {
    fn round(&self) -> Result<(), StorageError> {
        for name in self.catalog.names() {
            let Some(meta) = self.catalog.get(&name)? else {
                continue;
            };
            let Some(global) = &meta.global else { continue };
            for replica in &global.replicas {
                let Some(peer) = self.peers.iter().find(|p| p.region == replica.region) else {
                    tracing::warn!(table = %name, region = %replica.region, "replica region not in [[regions]]");
                    continue;
                };
                if !self.ship(&meta, peer)? {
                    super::ops::forget(&self.catalog, &name, &peer.region)?;
                    continue;
                }
                if replica.status == "CREATING" && self.filled(&meta, peer)? {
                    super::ops::mark_active(&self.catalog, &name, &peer.region)?;
                }
            }
            let acknowledged = self.acknowledged(&meta, global)?;
            self.collector
                .step(&*self.engine, &meta, acknowledged, &self.lag)?;
        }
        Ok(())
    }

    /// The earliest log position every peer of `meta` has acknowledged (the log head when it has
    /// none); None while a peer is being filled.
    fn acknowledged(
        &self,
        meta: &TableMeta,
        global: &GlobalTable,
    ) -> Result<Option<LogPosition>, StorageError> {
        let snapshot = self.engine.snapshot()?;
        let mut earliest = snapshot.log_head()?;
        for replica in &global.replicas {
            let stored = snapshot.get(&cursor_key(meta.id, &replica.region))?;
            match stored.as_deref().and_then(Cursor::decode) {
                Some(Cursor::Following(position)) if position < earliest => earliest = position,
                Some(Cursor::Following(_)) => {}
                _ => return Ok(None),
            }
        }
        Ok(Some(earliest))
    }

    /// Up to [`STEPS_PER_ROUND`] batches of `meta` to `peer`; stops at the first failure. False
    /// when the peer answered that it no longer holds a replica.
    fn ship(&self, meta: &TableMeta, peer: &Peer) -> Result<bool, StorageError> {
        let key = cursor_key(meta.id, &peer.region);
        for _ in 0..STEPS_PER_ROUND {
            let snapshot = self.engine.snapshot()?;
            let stored = snapshot.get(&key)?;
            let cursor = match stored.as_deref().and_then(Cursor::decode) {
                Some(cursor) => cursor,
                None => Cursor::Seeding {
                    from: snapshot.log_head()?,
                    after: Vec::new(),
                },
            };
            let Some(step) = self.plan(&*snapshot, meta, cursor)? else {
                self.lag
                    .record(&meta.name, &peer.region, |s| s.behind_ms = 0);
                return Ok(true);
            };
            drop(snapshot);
            if let Some(oldest) = step.oldest_ms {
                let behind = now_ms().saturating_sub(oldest);
                self.lag
                    .record(&meta.name, &peer.region, |s| s.behind_ms = behind);
            }
            if let Err(error) = peer.transport.send("ReplicateChanges", &step.body) {
                if super::control::peer_left(&error) {
                    return Ok(false);
                }
                let message = error.to_string();
                if self.lag.failed(&meta.name, &peer.region, &message) {
                    tracing::warn!(table = %meta.name, region = %peer.region, error = %message, "replication batch not delivered; retrying later");
                } else {
                    tracing::debug!(table = %meta.name, region = %peer.region, error = %message, "replication batch not delivered; retrying later");
                }
                return Ok(true);
            }
            self.lag.delivered(&meta.name, &peer.region);
            if let Some(oldest) = step.oldest_ms {
                let latency = now_ms().saturating_sub(oldest);
                self.lag
                    .record(&meta.name, &peer.region, |s| s.latency_ms = latency);
            }
            if !self.advance(&key, stored, &step.next)? {
                return Ok(true);
            }
        }
        Ok(true)
    }

    /// Whether `peer`'s replica has been filled (its cursor follows the log).
    fn filled(&self, meta: &TableMeta, peer: &Peer) -> Result<bool, StorageError> {
        let stored = self
            .engine
            .snapshot()?
            .get(&cursor_key(meta.id, &peer.region))?;
        Ok(matches!(
            stored.as_deref().and_then(Cursor::decode),
            Some(Cursor::Following(_))
        ))
    }

    /// Stores the new cursor if no other shipper moved it meanwhile.
    fn advance(
        &self,
        key: &[u8],
        stored: Option<Vec<u8>>,
        next: &Cursor,
    ) -> Result<bool, StorageError> {
        let mut batch = WriteBatch::new();
        batch
            .expect(key.to_vec(), stored)
            .put(key.to_vec(), next.encode());
        match self.engine.commit(batch).wait() {
            Ok(()) => Ok(true),
            Err(CommitError::Conflict) => Ok(false),
            Err(CommitError::Storage(error)) => Err(error),
        }
    }

    /// The next batch from `cursor`, or None when the peer has everything.
    fn plan(
        &self,
        snapshot: &dyn Snapshot,
        meta: &TableMeta,
        cursor: Cursor,
    ) -> Result<Option<Step>, StorageError> {
        match cursor {
            Cursor::Seeding { from, after } => seed_step(snapshot, meta, from, after).map(Some),
            Cursor::Following(position) if position < snapshot.log_horizon(meta.id)? => {
                tracing::warn!(table = %meta.name, "a replica fell behind the change log's retention; filling it again");
                let from = snapshot.log_head()?;
                seed_step(snapshot, meta, from, Vec::new()).map(Some)
            }
            Cursor::Following(position) => follow_step(snapshot, meta, position),
        }
    }
}

/// The next keys of the table after `after` in key order: [`BATCH`] items at most (fewer if they
/// reach [`BATCH_BYTES`]) and [`BATCH`] tombstones at most. The tombstones carry the deletes made
/// before `from`, which the log after it does not: the peer may hold such an item (sent before
/// the fill began, or before the log's retention overtook its cursor), and would keep it for ever.
fn seed_step(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    from: LogPosition,
    after: Vec<u8>,
) -> Result<Step, StorageError> {
    let (items, items_full) = seed_items(snapshot, meta, &after)?;
    let upper = items.last().filter(|_| items_full).cloned();
    let (tombstones, tombstones_full) = seed_tombstones(snapshot, meta, &after, upper.as_deref())?;
    // Each list holds every key of its kind up to its last one; past the last of a full list, the
    // other list may lack keys: the batch stops there.
    let bound = match tombstones.last() {
        Some(last) if tombstones_full => Some(last.clone()),
        _ => upper,
    };
    let mut keys: Vec<Vec<u8>> = items
        .into_iter()
        .filter(|key| bound.as_ref().is_none_or(|bound| key <= bound))
        .chain(tombstones)
        .collect();
    keys.sort();
    let next = match bound {
        Some(last) => Cursor::Seeding { from, after: last },
        None => Cursor::Following(from),
    };
    let body = batch_body(snapshot, meta, &keys, true)?;
    Ok(Step {
        body,
        next,
        oldest_ms: None,
    })
}

/// The item keys (suffixes) of the next [`BATCH`] items after `after`, or fewer if they reach
/// [`BATCH_BYTES`]; true if the batch is full (more may follow).
fn seed_items(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    after: &[u8],
) -> Result<(Vec<Vec<u8>>, bool), StorageError> {
    let prefix = meta.item_prefix();
    let mut start = prefix.clone();
    start.extend_from_slice(after);
    let end = meta.item_prefix_end();
    let lower = if after.is_empty() {
        Bound::Included(start.as_slice())
    } else {
        Bound::Excluded(start.as_slice())
    };
    let (mut keys, mut bytes, mut full) = (Vec::new(), 0, false);
    let range = (lower, Bound::Excluded(end.as_slice()));
    snapshot.scan(range, false, &mut |key, value| {
        keys.push(key[prefix.len()..].to_vec());
        bytes += value.len();
        full = keys.len() == BATCH || bytes >= BATCH_BYTES;
        !full
    })?;
    Ok((keys, full))
}

/// The item keys (suffixes) of the next [`BATCH`] tombstones after `after`, up to `upper` if
/// given; true if the batch is full (more may follow).
fn seed_tombstones(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    after: &[u8],
    upper: Option<&[u8]>,
) -> Result<(Vec<Vec<u8>>, bool), StorageError> {
    let (start, end) = stamp_range(meta.id);
    let from = [start.as_slice(), after].concat();
    let lower = if after.is_empty() {
        Bound::Included(from.as_slice())
    } else {
        Bound::Excluded(from.as_slice())
    };
    let last = upper.map(|upper| [start.as_slice(), upper].concat());
    let higher = match &last {
        Some(last) => Bound::Included(last.as_slice()),
        None => Bound::Excluded(end.as_slice()),
    };
    let (mut keys, mut full) = (Vec::new(), false);
    snapshot.scan((lower, higher), false, &mut |key, value| {
        if Stamp::decode(value).is_some_and(|stamp| stamp.deleted) {
            keys.push(key[start.len()..].to_vec());
            full = keys.len() == BATCH;
        }
        !full
    })?;
    Ok((keys, full))
}

/// The keys changed by the next [`BATCH`] log records after `position`, or fewer records if their
/// images reach [`BATCH_BYTES`] (replicated changes are passed over: their origin region ships
/// them).
fn follow_step(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    position: LogPosition,
) -> Result<Option<Step>, StorageError> {
    let prefix_len = meta.item_prefix().len();
    let (mut count, mut bytes, mut last, mut oldest) = (0, 0, None, None);
    let mut keys = BTreeMap::new();
    let range = (Bound::Excluded(position), Bound::Unbounded);
    snapshot.scan_log(meta.id, range, false, &mut |entry| {
        count += 1;
        // The logged image's size stands for the item's: a later change of it is counted too.
        bytes += entry.record.new.as_ref().map_or(0, Vec::len);
        last = Some(entry.position);
        if entry.record.origin != Origin::Replication {
            oldest.get_or_insert(entry.position.timestamp_ms);
            if let Some(suffix) = entry.record.key.get(prefix_len..) {
                keys.insert(suffix.to_vec(), ());
            }
        }
        count < BATCH && bytes < BATCH_BYTES
    })?;
    let Some(last) = last else { return Ok(None) };
    let keys: Vec<Vec<u8>> = keys.into_keys().collect();
    Ok(Some(Step {
        body: batch_body(snapshot, meta, &keys, false)?,
        next: Cursor::Following(last),
        oldest_ms: oldest,
    }))
}

/// The request carrying the current state and version of `keys` (suffixes of item keys); `fill`
/// while a new replica is being filled (only then may the peer create the table).
fn batch_body(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    keys: &[Vec<u8>],
    fill: bool,
) -> Result<Value, StorageError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let prefix = meta.item_prefix();
    let mut lookups = Vec::with_capacity(keys.len() * 2);
    for suffix in keys {
        let mut item_key = prefix.clone();
        item_key.extend_from_slice(suffix);
        lookups.push(item_key);
        lookups.push(stamp_key_of_suffix(meta.id, suffix));
    }
    let values = snapshot.get_many(&lookups)?;
    let global = meta.global.as_ref().expect("a global table");
    let changes: Vec<Value> = keys
        .iter()
        .zip(values.chunks(2))
        .map(|(suffix, pair)| {
            // An item written before the table became global has no stamp: the oldest version.
            let stamp = pair[1].as_deref().and_then(Stamp::decode);
            let (time, region) = stamp.map_or((0, global.region.clone()), |s| {
                (s.version.timestamp_ms, s.version.region)
            });
            json!({
                "K": b64.encode(suffix),
                "I": pair[0].as_ref().map(|item| b64.encode(item)),
                "T": time,
                "R": region,
            })
        })
        .collect();
    let mut regions: Vec<&str> = global.replicas.iter().map(|r| r.region.as_str()).collect();
    regions.push(&global.region);
    Ok(json!({
        "TableName": meta.name,
        "SourceRegion": global.region,
        "Fill": fill,
        "Table": {
            "AttributeDefinitions": meta.attribute_definitions,
            "KeySchema": meta.key_schema,
            "Regions": regions,
        },
        "Changes": changes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let position = LogPosition {
            timestamp_ms: 7,
            sequence: 9,
        };
        for cursor in [
            Cursor::Following(position),
            Cursor::Seeding {
                from: position,
                after: b"key".to_vec(),
            },
            Cursor::Seeding {
                from: position,
                after: Vec::new(),
            },
        ] {
            assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        }
        assert_eq!(Cursor::decode(&[0; 5]), None);
    }
}
