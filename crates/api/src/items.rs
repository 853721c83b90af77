//! What every item operation shares: finding the table, validating keys and items against the key
//! schema, reading an item, the optimistic read-decide-write loop, and consumed capacity.

use std::borrow::Cow;
use std::sync::Arc;

use haven_model::item_codec::{decode_item, encode_item};
use haven_model::{AttributeValue, Item, item_size};
use haven_storage::{CommitError, Engine, Snapshot, WriteBatch};
use serde_json::{Value, json};

use crate::Service;
use crate::catalog::TableMeta;
use crate::error::{DynamoError, Violations};
use crate::indexes::IndexUse;
use crate::retry::Retries;

const MAX_PARTITION_KEY_BYTES: usize = 2048;
const MAX_SORT_KEY_BYTES: usize = 1024;

fn invalid(message: impl std::fmt::Display) -> DynamoError {
    DynamoError::validation(format!(
        "One or more parameter values were invalid: {message}"
    ))
}

/// Finds the table a data-plane request names (DynamoDB's data-plane wording when it is missing);
/// a table still being restored, or still CREATING (`--transient-status-ms`), is not there yet
/// for the data plane, as in DynamoDB.
pub(crate) fn table(service: &Service, name: &str) -> Result<Arc<TableMeta>, DynamoError> {
    let setting = service.config.transient_status;
    let creating = |meta: &TableMeta| {
        !setting.is_zero()
            && crate::transient::table_status(
                meta,
                setting,
                crate::streams::now_ms() as f64 / 1000.0,
            ) == "CREATING"
    };
    service
        .catalog
        .get(name)?
        .filter(|meta| !crate::backup::restoring(meta) && !creating(meta))
        .ok_or_else(DynamoError::table_not_found)
}

/// Checks a table name field; the caller adds further violations before reporting.
pub(crate) fn check_table_name(violations: &mut Violations, name: Option<&str>) {
    violations.name("tableName", name);
}

pub(crate) fn empty_key_value(name: &str, value: &AttributeValue) -> Option<DynamoError> {
    let kind = empty_kind(value)?;
    Some(DynamoError::validation(format!(
        "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty {kind} value. Key: {name}"
    )))
}

/// "string" or "binary" when `value` is an empty S or B (which no key may hold), else None.
pub(crate) fn empty_kind(value: &AttributeValue) -> Option<&'static str> {
    match value {
        AttributeValue::S(s) if s.is_empty() => Some("string"),
        AttributeValue::B(b) if b.is_empty() => Some("binary"),
        _ => None,
    }
}

fn key_size_error(is_partition: bool, value: &AttributeValue) -> Option<DynamoError> {
    let size = match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::B(b) => b.len(),
        _ => return None,
    };
    if is_partition && size > MAX_PARTITION_KEY_BYTES {
        Some(invalid(
            "Size of hashkey has exceeded the maximum size limit of2048 bytes",
        ))
    } else if !is_partition && size > MAX_SORT_KEY_BYTES {
        Some(invalid(
            "Aggregated size of all range keys has exceeded the size limit of 1024 bytes",
        ))
    } else {
        None
    }
}

/// A `Key` parameter must hold exactly the table's key attributes, with the declared types.
pub(crate) fn validate_key(meta: &TableMeta, key: &Item) -> Result<(), DynamoError> {
    let schema = meta.keys();
    let mismatch = || DynamoError::validation("The provided key element does not match the schema");
    if key.len() != schema.attributes().count() {
        return Err(mismatch());
    }
    for (index, attribute) in schema.attributes().enumerate() {
        let value = key.get(&attribute.name).ok_or_else(mismatch)?;
        if !attribute.scalar_type.matches(value) {
            return Err(mismatch());
        }
        if let Some(error) =
            empty_key_value(&attribute.name, value).or_else(|| key_size_error(index == 0, value))
        {
            return Err(error);
        }
    }
    Ok(())
}

/// An item must contain the key attributes with the declared types.
pub(crate) fn validate_item(meta: &TableMeta, item: &Item) -> Result<(), DynamoError> {
    for (index, attribute) in meta.keys().attributes().enumerate() {
        let value = item
            .get(&attribute.name)
            .ok_or_else(|| invalid(format!("Missing the key {} in the item", attribute.name)))?;
        if !attribute.scalar_type.matches(value) {
            return Err(invalid(format!(
                "Type mismatch for key {} expected: {} actual: {}",
                attribute.name,
                attribute.scalar_type.name(),
                value.type_name()
            )));
        }
        if let Some(error) =
            empty_key_value(&attribute.name, value).or_else(|| key_size_error(index == 0, value))
        {
            return Err(error);
        }
    }
    Ok(())
}

/// DynamoDB's 400 KB item limit.
pub(crate) fn check_item_size(item: &Item) -> Result<(), DynamoError> {
    if item_size(item) > haven_model::MAX_ITEM_SIZE {
        return Err(DynamoError::validation(
            "Item size has exceeded the maximum allowed size",
        ));
    }
    Ok(())
}

/// Reads one item by its (validated) key from a snapshot; returns its stored bytes too.
pub(crate) fn read_item(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    key: &Item,
) -> Result<Option<(Vec<u8>, Item)>, DynamoError> {
    read_item_at(snapshot, meta, &ItemKey::new(meta, key).storage)
}

/// [`read_item`] by the item's storage key.
pub(crate) fn read_item_at(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    storage_key: &[u8],
) -> Result<Option<(Vec<u8>, Item)>, DynamoError> {
    with_item(meta, snapshot.get(storage_key)?)
}

/// An item's key: attributes holding the key attributes (the key alone, or the whole item), and
/// the storage key they encode to, computed once for the read and the write of an item.
pub(crate) struct ItemKey<'k> {
    pub attributes: &'k Item,
    pub storage: Vec<u8>,
}

impl<'k> ItemKey<'k> {
    /// The key of `attributes` (validated against the key schema) in `meta`'s table.
    pub fn new(meta: &TableMeta, attributes: &'k Item) -> ItemKey<'k> {
        let storage = meta.keys().storage_key(&meta.item_prefix(), attributes);
        ItemKey {
            attributes,
            storage,
        }
    }
}

/// Reads the items at `keys` (validated keys, each with its table) as of one moment, in one
/// one-shot read (`Engine::read`), so that an engine across the network (PostgreSQL) answers a
/// GetItem, a BatchGetItem or a TransactGetItems with one statement: one round trip, and no
/// transaction to begin and end.
pub(crate) async fn read_many(
    engine: &dyn Engine,
    keys: &[(&TableMeta, &Item)],
) -> Result<Vec<Option<Item>>, DynamoError> {
    let found = read_stored(engine, keys).await?;
    Ok(found
        .into_iter()
        .map(|found| found.map(|(_, item)| item))
        .collect())
}

/// [`read_many`], each item with its stored bytes (what a write expects).
pub(crate) async fn read_stored(
    engine: &dyn Engine,
    keys: &[(&TableMeta, &Item)],
) -> Result<Vec<Option<(Vec<u8>, Item)>>, DynamoError> {
    let storage_keys: Vec<Vec<u8>> = keys
        .iter()
        .map(|(meta, key)| ItemKey::new(meta, key).storage)
        .collect();
    let found = engine.read(storage_keys).await?;
    found
        .into_iter()
        .zip(keys)
        .map(|(bytes, (meta, _))| with_item(meta, bytes))
        .collect()
}

/// Stored bytes (if any) with the item they decode to.
fn with_item(
    meta: &TableMeta,
    bytes: Option<Vec<u8>>,
) -> Result<Option<(Vec<u8>, Item)>, DynamoError> {
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    let item = decode_stored(meta, &bytes)?;
    Ok(Some((bytes, item)))
}

/// Decodes an item's stored bytes; an undecodable value is logged and answers InternalServerError.
fn decode_stored(meta: &TableMeta, bytes: &[u8]) -> Result<Item, DynamoError> {
    decode_item(bytes).map_err(|error| {
        tracing::error!(table = %meta.name, %error, "undecodable item");
        DynamoError::InternalServerError
    })
}

/// The before and after images of a single-item write (the new one as the decision gave it:
/// PutItem's item is borrowed from its request, not copied).
pub(crate) struct WriteOutcome<'i> {
    pub old: Option<Item>,
    pub new: Option<Cow<'i, Item>>,
    /// Write units the secondary indexes spent.
    pub index_units: crate::indexes::IndexUnits,
    /// The item collection and its size, for tables with local indexes.
    pub collection: Option<(Item, i64)>,
    /// The size of the larger of the two images, which write units are counted on.
    pub size: usize,
}

/// Runs `decide` on the item's current state and writes what it returns (None deletes), atomically
/// with respect to every other writer: if the item (or the table's set of indexes) changed between
/// the read and the commit, the engine refuses the batch and the decision is made again on the fresh
/// state, with the table's current metadata (a bounded number of times, see `retry`), holding the
/// item's lock so that this node's other writers of the item wait their turn (`hot_items`). `key`
/// holds the item's key attributes (it may be the whole item).
pub(crate) async fn write_item<'i>(
    service: &Service,
    meta: &Arc<TableMeta>,
    key: &Item,
    mut decide: impl FnMut(Option<&Item>) -> Result<Option<Cow<'i, Item>>, DynamoError>,
) -> Result<WriteOutcome<'i>, DynamoError> {
    service.capacity.admit(meta, None, Capacity::Write)?;
    let mut meta = Arc::clone(meta);
    let mut retries = Retries::new("item write");
    // The item's lock (`hot_items`): taken before the first attempt only while other writers of
    // the item queue on it, else after the first conflict.
    let stripe = crate::hot_items::stripe(&ItemKey::new(&meta, key).storage);
    let mut lock = None;
    if stripe.contended() {
        lock = Some(stripe.lock().await);
        retries.restart_clock();
    }
    loop {
        let item_key = ItemKey::new(&meta, key);
        let current = service
            .engine
            .read(vec![item_key.storage.clone()])
            .await?
            .pop()
            .flatten();
        let current = with_item(&meta, current)?;
        let old = current.as_ref().map(|(_, item)| item);
        let new = decide(old)?;
        if let Some(item) = &new {
            crate::indexes::validate_index_keys(&meta, item)?;
        }
        let mut batch = WriteBatch::new();
        // Staging reads only what it then expects (or adds to a counter), as the item is, so a
        // later view than the item's is safe: the commit checks both against the same state. On a
        // plain table it reads nothing, so its snapshot is taken only if it does.
        let snapshot = haven_storage::LazySnapshot::new(&*service.engine);
        let staged = stage_item_write(
            &snapshot,
            &meta,
            item_key,
            current.as_ref(),
            new.as_deref(),
            &mut batch,
            service.config.item_collection_limit,
        )?;
        drop(snapshot);
        match service.engine.commit(batch).await {
            Ok(()) => {
                let outcome = WriteOutcome {
                    old: current.map(|(_, item)| item),
                    new,
                    index_units: staged.index_units,
                    collection: staged.collection,
                    size: staged.size,
                };
                let units = write_units(&outcome);
                (service.capacity).charge(&meta, Capacity::Write, units, &outcome.index_units);
                return Ok(outcome);
            }
            Err(CommitError::Conflict) => {
                retries.conflict().await?;
                if lock.is_none() {
                    lock = Some(stripe.lock().await);
                    retries.restart_clock();
                }
                meta = current_meta(service, &meta)?;
            }
            Err(CommitError::Storage(error)) => return Err(error.into()),
        }
    }
}

/// The table's metadata for the next attempt of a write that conflicted: the cached one, unless
/// storage holds another schema version (the set of indexes changed, or the table went), in which
/// case the cache is behind and the metadata is read again from storage.
pub(crate) fn current_meta(
    service: &Service,
    meta: &Arc<TableMeta>,
) -> Result<Arc<TableMeta>, DynamoError> {
    let cached = table(service, &meta.name)?;
    let stored_version = service
        .engine
        .snapshot()?
        .get(&cached.schema_version_key())?;
    if stored_version == cached.schema_version_expectation() {
        return Ok(cached);
    }
    service
        .catalog
        .reload(&meta.name)?
        .ok_or_else(DynamoError::table_not_found)
}

/// After a conflict of a batch that writes to several tables: brings each table's cached metadata
/// up to date (see [`current_meta`]) before the next attempt plans again from the cache.
pub(crate) fn refresh_tables<'m>(
    service: &Service,
    metas: impl IntoIterator<Item = &'m Arc<TableMeta>>,
) -> Result<(), DynamoError> {
    let mut seen = std::collections::BTreeSet::new();
    for meta in metas {
        if seen.insert(meta.id) {
            current_meta(service, meta)?;
        }
    }
    Ok(())
}

/// Adds one item write to `batch`: the expectations that make it safe (the item's stored bytes and
/// the table's schema version), the put or delete, the table counters and the index entries.
/// A mirrored table refuses it (only `haven mirror` writes there, `Service::apply_mirrored`).
pub(crate) fn stage_item_write(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    key: ItemKey,
    current: Option<&(Vec<u8>, Item)>,
    new: Option<&Item>,
    batch: &mut WriteBatch,
    collection_limit: u64,
) -> Result<StagedWrite, DynamoError> {
    crate::mirror::refuse_client_write(meta)?;
    stage_any_item_write(snapshot, meta, key, current, new, batch, collection_limit)
}

/// [`stage_item_write`] without the mirror's refusal.
pub(crate) fn stage_any_item_write(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    key: ItemKey,
    current: Option<&(Vec<u8>, Item)>,
    new: Option<&Item>,
    batch: &mut WriteBatch,
    collection_limit: u64,
) -> Result<StagedWrite, DynamoError> {
    let ItemKey {
        attributes: key,
        storage: storage_key,
    } = key;
    let old = current.map(|(_, item)| item);
    batch.expect(storage_key.clone(), current.map(|(bytes, _)| bytes.clone()));
    // The items of one table in a batch (BatchWriteItem's, a transaction's) expect one schema
    // version: checking it once is enough.
    let (version_key, version) = (meta.schema_version_key(), meta.schema_version_expectation());
    if !batch.expects(&version_key, version.as_deref()) {
        batch.expect(version_key, version);
    }
    let new_bytes = new.map(encode_item);
    let logged = crate::changes::stage(meta, &storage_key, current, new, new_bytes.as_ref(), batch);
    if logged {
        let deleted = new.is_none();
        crate::replication::version::stage_local(snapshot, meta, &storage_key, deleted, batch)?;
    }
    match new_bytes {
        Some(bytes) => batch.put(storage_key, bytes),
        None => batch.delete(storage_key),
    };
    let old_size = old.map_or(0, item_size) as i64;
    let new_size = new.map_or(0, item_size) as i64;
    batch
        .add_counter(
            meta.item_count_key(),
            new.is_some() as i64 - old.is_some() as i64,
        )
        .add_counter(meta.size_bytes_key(), new_size - old_size);
    let collection = stage_collection_size(snapshot, meta, key, old, new, batch, collection_limit)?;
    let index_units = crate::indexes::maintain(snapshot, meta, old, new, batch)?;
    Ok(StagedWrite {
        index_units,
        collection,
        size: old_size.max(new_size) as usize,
    })
}

/// What staging one item write found out: index capacity, and (for a table with local indexes) the
/// item collection's key and its size after the write.
pub(crate) struct StagedWrite {
    pub index_units: crate::indexes::IndexUnits,
    pub collection: Option<(Item, i64)>,
    /// The size of the larger of the old and the new item.
    pub size: usize,
}

/// Keeps the item collection size of a table with local indexes (items of one partition plus their
/// local index entries) and refuses a write that would take it past the limit.
fn stage_collection_size(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    key: &Item,
    old: Option<&Item>,
    new: Option<&Item>,
    batch: &mut WriteBatch,
    limit: u64,
) -> Result<Option<(Item, i64)>, DynamoError> {
    if !meta.has_local_indexes() {
        return Ok(None);
    }
    let collection_bytes = |item: Option<&Item>| -> i64 {
        let Some(item) = item else { return 0 };
        let local_entries: usize = meta
            .indexes
            .iter()
            .filter(|i| i.kind == crate::catalog::IndexKind::Local)
            .filter(|i| crate::indexes::entry_key(meta, i, item).is_some())
            .map(|i| item_size(&crate::indexes::project(meta, i, item)))
            .sum();
        (item_size(item) + local_entries) as i64
    };
    let delta = collection_bytes(new) - collection_bytes(old);
    let partition_name = meta.keys().hash().name.clone();
    let counter_key = meta.collection_size_key(&key[&partition_name]);
    let size = haven_storage::read_counter(snapshot, &counter_key)? + delta;
    if delta > 0 && size as u64 > limit {
        return Err(DynamoError::ItemCollectionSizeLimitExceeded);
    }
    batch.add_counter(counter_key, delta);
    let collection_key: Item = [(partition_name.clone(), key[&partition_name].clone())]
        .into_iter()
        .collect();
    Ok(Some((collection_key, size)))
}

/// DynamoDB's ItemCollectionMetrics for a collection of `size` bytes: its key and a size estimate
/// range in GB.
pub(crate) fn collection_metrics(collection: &(Item, i64)) -> Value {
    let gb = collection.1.max(0) as f64 / (1024.0 * 1024.0 * 1024.0);
    let lower = gb.floor();
    json!({
        "ItemCollectionKey": crate::wire::item_to_json(&collection.0),
        "SizeEstimateRangeGB": [lower, lower + 1.0],
    })
}

pub(crate) use haven_metrics::Capacity;

/// ReturnConsumedCapacity: NONE (default), TOTAL or INDEXES.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CapacityReport {
    None,
    Total,
    Indexes,
}

impl CapacityReport {
    pub fn parse(violations: &mut Violations, value: Option<&str>) -> CapacityReport {
        match value {
            None | Some("NONE") => CapacityReport::None,
            Some("TOTAL") => CapacityReport::Total,
            Some("INDEXES") => CapacityReport::Indexes,
            Some(other) => {
                violations.push(format!(
                    "Value '{other}' at 'returnConsumedCapacity' failed to satisfy constraint: Member must satisfy enum value set: [INDEXES, TOTAL, NONE]"
                ));
                CapacityReport::None
            }
        }
    }

    /// The ConsumedCapacity structure for `units` of `kind` spent on `table`, or None when not
    /// asked for.
    pub fn render(self, kind: Capacity, table: &str, units: f64) -> Option<Value> {
        self.render_with_indexes(kind, table, units, &[])
    }

    /// The ConsumedCapacity list of a request that touched several tables (batches,
    /// transactions): an entry per table, or None when not asked for.
    pub fn render_tables<'a>(
        self,
        kind: Capacity,
        tables: impl IntoIterator<Item = (&'a str, f64, &'a [IndexUse])>,
    ) -> Option<Value> {
        let entries: Vec<Value> = tables
            .into_iter()
            .filter_map(|(table, units, indexes)| {
                self.render_with_indexes(kind, table, units, indexes)
            })
            .collect();
        (self != CapacityReport::None).then_some(Value::Array(entries))
    }

    /// ConsumedCapacity for `table_units` on the table plus what each index spent: TOTAL adds them
    /// up, INDEXES also lists them (GlobalSecondaryIndexes / LocalSecondaryIndexes). Every
    /// consumption passes here, asked for or not, so this is where the metrics count it.
    pub fn render_with_indexes(
        self,
        kind: Capacity,
        table: &str,
        table_units: f64,
        index_units: &[IndexUse],
    ) -> Option<Value> {
        haven_metrics::consumed(kind, table, None, table_units);
        for (_, index, units) in index_units {
            haven_metrics::consumed(kind, table, Some(index), *units);
        }
        let total = table_units + index_units.iter().map(|(_, _, u)| u).sum::<f64>();
        match self {
            CapacityReport::None => None,
            CapacityReport::Total => Some(json!({ "TableName": table, "CapacityUnits": total })),
            CapacityReport::Indexes => {
                let mut capacity = json!({ "TableName": table, "CapacityUnits": total, "Table": { "CapacityUnits": table_units } });
                for (kind, name, units) in index_units {
                    let field = match kind {
                        crate::catalog::IndexKind::Local => "LocalSecondaryIndexes",
                        crate::catalog::IndexKind::Global => "GlobalSecondaryIndexes",
                    };
                    let entry = capacity[field].as_object().cloned().unwrap_or_default();
                    let mut entry = entry;
                    let previous = entry
                        .get(name)
                        .and_then(|e| e["CapacityUnits"].as_f64())
                        .unwrap_or(0.0);
                    entry.insert(name.clone(), json!({ "CapacityUnits": previous + units }));
                    capacity[field] = Value::Object(entry);
                }
                Some(capacity)
            }
        }
    }
}

/// Write units: one per started KB of the larger of the old and new item, at least one.
pub(crate) fn write_units(outcome: &WriteOutcome) -> f64 {
    outcome.size.div_ceil(1024).max(1) as f64
}

/// Read units: one per started 4 KB (at least one), halved for eventually consistent reads.
pub(crate) fn read_units(size: usize, consistent: bool) -> f64 {
    let units = size.div_ceil(4096).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}
