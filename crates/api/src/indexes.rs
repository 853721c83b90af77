//! Secondary indexes: their storage entries, projections, and their maintenance on every write.
//!
//! An index entry lives under `INDEXES | table id | index id | hash(index partition key) | index
//! partition key | index sort key | table partition key | table sort key` (each key value in the
//! order-preserving encoding), and holds the projected item. Entries with equal index keys are thus
//! ordered by table key, and an index Query is one range read like a table Query. Entries are
//! written in the same storage batch as the item they derive from, so an index never disagrees with
//! its table once a write is acknowledged.

use haven_model::item_codec::encode_item;
use haven_model::key_codec::{encode_key_value, partition_hash};
use haven_model::schema::KeyAttribute;
use haven_model::{AttributeValue, Item, item_size};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use haven_model::item_codec::decode_item;
use haven_storage::{CommitError, Engine, Snapshot, StorageError, WriteBatch};

use crate::catalog::{Catalog, IndexMeta, TableMeta};
use crate::error::DynamoError;
use crate::lease::Lease;

/// Key size limits of index keys, as for table keys (each attribute of a multi-attribute key).
const MAX_INDEX_PARTITION_KEY_BYTES: usize = 2048;
const MAX_INDEX_SORT_KEY_BYTES: usize = 1024;

/// Whether an S or B key value is longer than `limit` bytes.
fn oversized(value: &AttributeValue, limit: usize) -> bool {
    match value {
        AttributeValue::S(s) => s.len() > limit,
        AttributeValue::B(b) => b.len() > limit,
        _ => false,
    }
}

/// The storage key of `item`'s entry in `index`, or None when the item lacks any attribute of the
/// index key (sparse index). Writes validated their key attributes; items that predate the index
/// (backfill) may violate its key (wrong type, empty or oversized string or binary) and then have
/// no entry, as in DynamoDB. The attributes of a multi-attribute key are encoded one after the
/// other, each self-delimiting and order-preserving, so entries sort by them left to right; for a
/// key of one attribute each this is the single-attribute layout, unchanged.
pub(crate) fn entry_key(meta: &TableMeta, index: &IndexMeta, item: &Item) -> Option<Vec<u8>> {
    let index_keys = meta.index_keys(index);
    let encode = |attributes: &[KeyAttribute], limit: usize| {
        let mut out = Vec::with_capacity(32);
        for attribute in attributes {
            let value = item.get(&attribute.name)?;
            let empty = crate::items::empty_kind(value).is_some();
            if !attribute.scalar_type.matches(value) || empty || oversized(value, limit) {
                return None;
            }
            encode_key_value(value, &mut out);
        }
        Some(out)
    };
    let encoded_partition = encode(&index_keys.partition, MAX_INDEX_PARTITION_KEY_BYTES)?;
    let encoded_sort = encode(&index_keys.sort, MAX_INDEX_SORT_KEY_BYTES)?;
    let mut key = meta.index_prefix(index);
    key.extend_from_slice(&partition_hash(&encoded_partition));
    key.extend_from_slice(&encoded_partition);
    key.extend_from_slice(&encoded_sort);
    let table_keys = meta.keys();
    for attribute in table_keys.attributes() {
        encode_key_value(item.get(&attribute.name)?, &mut key);
    }
    Some(key)
}

/// The attributes of `item` that `index` projects: ALL, KEYS_ONLY (table and index keys) or
/// INCLUDE (keys plus the listed attributes).
pub(crate) fn project(meta: &TableMeta, index: &IndexMeta, item: &Item) -> Item {
    if index.projection_type == "ALL" {
        return item.clone();
    }
    let table_keys = meta.keys();
    let index_keys = meta.index_keys(index);
    let included = index.non_key_attributes.as_deref().unwrap_or_default();
    item.iter()
        .filter(|(name, _)| {
            table_keys.is_key_attribute(name)
                || index_keys.is_key_attribute(name)
                || included.contains(name)
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// Whether `index` projects every attribute named in `names`.
pub(crate) fn projects_all(meta: &TableMeta, index: &IndexMeta, names: &[&str]) -> bool {
    if index.projection_type == "ALL" {
        return true;
    }
    let included = index.non_key_attributes.as_deref().unwrap_or_default();
    names.iter().all(|name| {
        meta.keys().is_key_attribute(name)
            || meta.index_keys(index).is_key_attribute(name)
            || included.iter().any(|i| i == name)
    })
}

/// Adds to `batch` the index entry changes that take `old` to `new`, with their counters.
///
/// An ACTIVE index holds an entry for every item that has its keys, so the old entry is known to
/// exist. A CREATING index is still being backfilled: whether the old entry exists yet is read from
/// `snapshot` and pinned by an expectation, so that the counters stay exact whichever of the
/// backfill and the write gets to an item first.
pub(crate) fn maintain(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    old: Option<&Item>,
    new: Option<&Item>,
    batch: &mut WriteBatch,
) -> Result<IndexUnits, StorageError> {
    let mut units = IndexUnits::new();
    for index in meta.indexes.iter().filter(|i| i.maintained()) {
        let entry = |item: Option<&Item>| {
            item.and_then(|i| entry_key(meta, index, i).map(|k| (k, project(meta, index, i))))
        };
        let mut old_entry = entry(old);
        let new_entry = entry(new);
        if index.status == "CREATING"
            && let Some((key, _)) = &old_entry
        {
            let stored = snapshot.get(key)?;
            batch.expect(key.clone(), stored.clone());
            if stored.is_none() {
                old_entry = None;
            }
        }
        if old_entry == new_entry {
            continue;
        }
        units.push((
            index.kind,
            index.name.clone(),
            entry_write_units(old_entry.as_ref(), new_entry.as_ref()),
        ));
        let (mut count, mut size) = (0, 0);
        if let Some((key, projected)) = &old_entry {
            if new_entry.as_ref().is_none_or(|(new_key, _)| new_key != key) {
                batch.delete(key.clone());
            }
            count -= 1;
            size -= item_size(projected) as i64;
        }
        if let Some((key, projected)) = &new_entry {
            batch.put(key.clone(), encode_item(projected));
            count += 1;
            size += item_size(projected) as i64;
        }
        batch
            .add_counter(meta.index_count_key(index), count)
            .add_counter(meta.index_size_key(index), size);
    }
    Ok(units)
}

/// Write units an index spends on one item write: one per started KB of each entry written or
/// deleted (an entry that moves to another key is a delete plus a put).
fn entry_write_units(old: Option<&(Vec<u8>, Item)>, new: Option<&(Vec<u8>, Item)>) -> f64 {
    let kb = |entry: &(Vec<u8>, Item)| item_size(&entry.1).div_ceil(1024).max(1) as f64;
    match (old, new) {
        (Some(o), Some(n)) if o.0 == n.0 => kb(o).max(kb(n)),
        (Some(o), Some(n)) => kb(o) + kb(n),
        (Some(o), None) => kb(o),
        (None, Some(n)) => kb(n),
        (None, None) => 0.0,
    }
}

/// Capacity spent on secondary indexes by a write: (kind, index name, units).
pub(crate) type IndexUnits = Vec<IndexUse>;

/// The units one index consumed: its kind, its name, the units.
pub(crate) type IndexUse = (crate::catalog::IndexKind, String, f64);

/// DynamoDB's checks of index key attributes on an item about to be written: the declared type,
/// and no empty strings or binaries.
pub(crate) fn validate_index_keys(meta: &TableMeta, item: &Item) -> Result<(), DynamoError> {
    for index in meta.indexes.iter().filter(|i| i.maintained()) {
        let index_keys = meta.index_keys(index);
        for attribute in index_keys.attributes() {
            let Some(value) = item.get(&attribute.name) else {
                continue;
            };
            if !attribute.scalar_type.matches(value) {
                return Err(DynamoError::validation(format!(
                    "One or more parameter values were invalid: Type mismatch for Index Key {} Expected: {} Actual: {} IndexName: {}",
                    attribute.name,
                    attribute.scalar_type.name(),
                    value.type_name(),
                    index.name
                )));
            }
            let limit = if index_keys.partition.contains(attribute) {
                MAX_INDEX_PARTITION_KEY_BYTES
            } else {
                MAX_INDEX_SORT_KEY_BYTES
            };
            if oversized(value, limit) {
                return Err(DynamoError::validation(
                    "One or more parameter values were invalid: Size limit exceeded",
                ));
            }
            if let Some(error) = empty_index_key(&index.name, &attribute.name, value) {
                return Err(error);
            }
        }
    }
    Ok(())
}

/// DynamoDB's refusal of an empty string or binary as a secondary index key value (in a write, or
/// in a Query's key condition on the index).
pub(crate) fn empty_index_key(
    index: &str,
    attribute: &str,
    value: &AttributeValue,
) -> Option<DynamoError> {
    let kind = crate::items::empty_kind(value)?;
    Some(DynamoError::validation(format!(
        "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty {kind} value. IndexName: {index}, IndexKey: {attribute}"
    )))
}

/// Items a backfill step copies into a new index in one batch.
const BACKFILL_CHUNK: usize = 256;

/// How long an index worker's lease lasts: of several nodes sharing one engine, one backfills or
/// removes an index, and another takes over once the lease runs out.
const INDEX_LEASE: Duration = Duration::from_secs(4);

/// The first pause after an index worker failed (a storage error); it doubles up to a minute.
const FIRST_WORKER_BACKOFF: Duration = Duration::from_millis(100);
const MAX_WORKER_BACKOFF: Duration = Duration::from_secs(60);

/// Starts the background work a CREATING or DELETING index needs. The catalog calls it whenever it
/// installs metadata with such an index and no worker runs for it (after UpdateTable, at start-up
/// when a previous run stopped half-way, or when another node made the change). It runs on its own
/// thread, owned by no request, and goes through the same expectations as every write, so it never
/// races with foreground writes. A failure (a storage error) is retried with backoff, so the index
/// never stays CREATING or DELETING until a restart.
pub(crate) fn spawn_index_worker(
    catalog: Arc<Catalog>,
    table: String,
    table_id: u64,
    index_id: u32,
) {
    let name = format!("haven-index-{index_id}");
    let worker_catalog = catalog.clone();
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        let catalog = worker_catalog;
        let mut backoff = FIRST_WORKER_BACKOFF;
        while let Err(error) = run_index_worker(&catalog, &table, table_id, index_id) {
            tracing::error!(%error, table, index_id, ?backoff, "index worker failed; retrying");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_WORKER_BACKOFF);
        }
        catalog.index_worker_done(table_id, index_id);
    });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start an index worker");
        catalog.index_worker_done(table_id, index_id);
    }
}

/// Moves the index through its transition until storage shows it ACTIVE or gone, while it holds the
/// index's lease. Each step reads the table's metadata from storage, not from the cache, so that it
/// acts on what is committed.
fn run_index_worker(
    catalog: &Arc<Catalog>,
    table: &str,
    table_id: u64,
    index_id: u32,
) -> Result<(), StorageError> {
    let mut resume_after: Option<Vec<u8>> = None;
    let lease = Lease::new(&format!("index/{table_id}/{index_id}"), INDEX_LEASE);
    loop {
        let Some(meta) = catalog.reload(table)?.filter(|meta| meta.id == table_id) else {
            return Ok(());
        };
        let Some(index) = meta.indexes.iter().find(|i| i.id == index_id).cloned() else {
            return Ok(());
        };
        let now = crate::ops::now();
        if let Some(left) = crate::transient::update_remaining(&meta, catalog.transient(), now) {
            // The index stays CREATING or DELETING for its table's transient-status window.
            std::thread::sleep(left.min(INDEX_LEASE / 4));
            continue;
        }
        let engine = &**catalog.engine();
        if !lease.hold(engine)? {
            // Another node works on this index; look again later (it may finish, or stop).
            std::thread::sleep(INDEX_LEASE / 4);
            resume_after = None;
            continue;
        }
        match index.status.as_str() {
            "CREATING" => match backfill_step(engine, &meta, &index, resume_after.as_deref())? {
                Step::Continue(next) => resume_after = next,
                Step::Retry => {}
                Step::Backfilled => {
                    finish_step(catalog, &meta, &index, |updated| {
                        if let Some(i) = updated.indexes.iter_mut().find(|i| i.id == index.id) {
                            i.status = "ACTIVE".into();
                            i.backfilling = false;
                        }
                    })?;
                }
            },
            "DELETING" => finish_step(catalog, &meta, &index, |updated| {
                updated.indexes.retain(|i| i.id != index.id);
                updated.dropped_index_ids = updated.dropped_index_ids.max(index.id);
                updated.drop_unused_definitions();
            })?,
            _ => return Ok(()),
        }
    }
}

enum Step {
    /// Resume after this table key (None: from the start).
    Continue(Option<Vec<u8>>),
    /// A concurrent write changed what the step read: do it again.
    Retry,
    /// Every item of the table has its entry.
    Backfilled,
}

/// Stored items: (key, bytes).
pub(crate) type StoredItems = Vec<(Vec<u8>, Vec<u8>)>;

/// The table's next `limit` items (stored key and bytes) after the item key `after` (from the
/// first item for None): one chunk of a pass over the whole table (index and expiry backfill).
pub(crate) fn table_chunk(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<StoredItems, StorageError> {
    let start = match after {
        Some(key) => Bound::Excluded(key.to_vec()),
        None => Bound::Included(meta.item_prefix()),
    };
    let end = meta.item_prefix_end();
    let mut chunk = StoredItems::new();
    let range = (
        start.as_ref().map(Vec::as_slice),
        Bound::Excluded(end.as_slice()),
    );
    snapshot.scan(range, false, &mut |key, value| {
        chunk.push((key.to_vec(), value.to_vec()));
        chunk.len() < limit
    })?;
    Ok(chunk)
}

/// Copies the next chunk of table items into the index.
fn backfill_step(
    engine: &dyn Engine,
    meta: &TableMeta,
    index: &IndexMeta,
    after: Option<&[u8]>,
) -> Result<Step, StorageError> {
    let snapshot = engine.snapshot()?;
    let chunk = table_chunk(&*snapshot, meta, after, BACKFILL_CHUNK)?;
    let Some((last_key, _)) = chunk.last() else {
        return Ok(Step::Backfilled);
    };
    let (last_key, scanned) = (last_key.clone(), chunk.len());
    let mut batch = WriteBatch::new();
    batch.expect(meta.schema_version_key(), meta.schema_version_expectation());
    let mut entries = Vec::new();
    for (key, value) in &chunk {
        let item = decode_item(value)
            .map_err(|e| StorageError::Io(format!("table {}: {e}", meta.name)))?;
        batch.expect(key.clone(), Some(value.clone()));
        if let Some(entry) = entry_key(meta, index, &item) {
            entries.push((entry, item));
        }
    }
    // One read for the whole chunk: an engine over the network pays a round trip per read.
    let keys: Vec<Vec<u8>> = entries.iter().map(|(entry, _)| entry.clone()).collect();
    let existing = snapshot.get_many(&keys)?;
    let (mut count, mut size) = (0, 0);
    for ((entry, item), existing) in entries.into_iter().zip(existing) {
        if existing.is_some() {
            // A write since the index was created already put the entry for this very item.
            continue;
        }
        let projected = project(meta, index, &item);
        batch
            .expect(entry.clone(), None)
            .put(entry, encode_item(&projected));
        count += 1;
        size += item_size(&projected) as i64;
    }
    batch
        .add_counter(meta.index_count_key(index), count)
        .add_counter(meta.index_size_key(index), size);
    drop(snapshot);
    match engine.commit(batch).wait() {
        Ok(()) => {
            haven_metrics::backfilled(&meta.name, &index.name, scanned);
            Ok(Step::Continue(Some(last_key)))
        }
        Err(CommitError::Conflict) => Ok(Step::Retry),
        Err(CommitError::Storage(error)) => Err(error),
    }
}

/// Commits a metadata change that ends an index's transition (with the index's data removed when
/// the index itself goes), bumping the schema version so that in-flight writes re-plan. A conflict
/// is not an error: the worker's next step reads the metadata again and sees where things stand.
fn finish_step(
    catalog: &Arc<Catalog>,
    meta: &TableMeta,
    index: &IndexMeta,
    change: impl FnOnce(&mut TableMeta),
) -> Result<(), StorageError> {
    let mut updated = meta.clone();
    change(&mut updated);
    updated.schema_version += 1;
    let index_removed = !updated.indexes.iter().any(|i| i.id == index.id);
    let (mut batch, installation) = Catalog::update_batch(meta, updated);
    if index_removed {
        batch
            .delete_range(meta.index_prefix(index), meta.index_prefix_end(index))
            .delete(meta.index_count_key(index))
            .delete(meta.index_size_key(index));
    }
    match catalog.commit_blocking(batch, installation) {
        Ok(()) | Err(CommitError::Conflict) => Ok(()),
        Err(CommitError::Storage(error)) => Err(error),
    }
}
