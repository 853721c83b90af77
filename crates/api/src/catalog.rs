//! The catalog: which tables exist, their schemas and settings, and where their data lives.
//!
//! Each table's metadata is one JSON record in the engine under `META | name`, written in the same
//! batch as the data it governs; an in-memory copy answers lookups without touching storage.
//! Every table gets a fresh numeric id at creation, and its items live under `ITEMS | id`, so a
//! table deleted and re-created under the same name never sees the old table's items.
//! (Layout: docs/storage-format.md.)

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use haven_model::schema::{KeyAttribute, KeySchema, ScalarType};
use haven_storage::{CommitError, Engine, Snapshot, StorageError, WriteBatch, read_counter};
use serde::{Deserialize, Serialize};

use crate::background::{Job, OnDemand};
use crate::error::DynamoError;
use crate::retry::Retries;

/// Key-space prefixes: the first byte of every storage key.
pub mod prefix {
    /// `META | table name` → table metadata (JSON).
    pub const META: u8 = 0x00;
    /// `ITEMS | table id (u64 BE) | item key` → encoded item.
    pub const ITEMS: u8 = 0x01;
    /// `STATS | table id | kind` → counters (item count, size in bytes).
    pub const STATS: u8 = 0x02;
    /// `SYSTEM | name` → server-wide values such as the table id sequence.
    pub const SYSTEM: u8 = 0x03;
    /// `INDEXES | table id | index id (u32 BE) | index key | base key` → projected item.
    pub const INDEXES: u8 = 0x04;
    /// `REPLICATION | table id | ...` → a global table's item versions and peer cursors
    /// (`crate::replication`).
    pub const REPLICATION: u8 = 0x05;
}

const NEXT_TABLE_ID: &[u8] = &[prefix::SYSTEM, b'n', b'e', b'x', b't', b'-', b'i', b'd'];
/// `SYSTEM | "catalog-generation"`: a counter every metadata change adds one to, so that a node
/// can tell with one read whether its cache missed a change made elsewhere.
const CATALOG_GENERATION: &[u8] = b"\x03catalog-generation";
const STAT_ITEM_COUNT: u8 = b'c';
const STAT_SIZE_BYTES: u8 = b's';
const STAT_INDEX_COUNT: u8 = b'C';
const STAT_INDEX_SIZE: u8 = b'S';
/// `STATS | table id | 'v'` holds the table's schema version: every item write expects it, so a
/// write planned against an older set of indexes is refused and re-planned.
const STAT_SCHEMA_VERSION: u8 = b'v';
const STAT_COLLECTION_SIZE: u8 = b'p';

/// One attribute definition as declared at CreateTable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDefinition {
    pub attribute_name: String,
    pub attribute_type: String,
}

/// One key schema element as declared (`KeyType` is HASH or RANGE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeySchemaElement {
    pub attribute_name: String,
    pub key_type: String,
}

/// Provisioned throughput settings and their history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub read_capacity_units: i64,
    pub write_capacity_units: i64,
    pub last_increase: Option<f64>,
    pub last_decrease: Option<f64>,
    pub decreases_today: i64,
}

/// Time to live setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeToLive {
    pub attribute_name: String,
    pub enabled: bool,
    /// The schema version the enabling set: the expiry index is complete for this enabling once
    /// the TTL worker's backfill has recorded it (`crate::ttl`).
    #[serde(default)]
    pub enabled_version: u64,
}

/// Everything Haven keeps about a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableMeta {
    /// Internal id: the storage prefix of the table's items.
    pub id: u64,
    pub name: String,
    /// The public TableId (a UUID).
    pub table_uuid: String,
    pub arn: String,
    pub created: f64,
    pub attribute_definitions: Vec<AttributeDefinition>,
    pub key_schema: Vec<KeySchemaElement>,
    /// `PROVISIONED` or `PAY_PER_REQUEST`.
    pub billing_mode: String,
    /// When the billing mode last became PAY_PER_REQUEST.
    pub pay_per_request_since: Option<f64>,
    pub throughput: Throughput,
    pub tags: Vec<(String, String)>,
    pub time_to_live: Option<TimeToLive>,
    pub deletion_protection: bool,
    /// `STANDARD` or `STANDARD_INFREQUENT_ACCESS`, when set explicitly.
    pub table_class: Option<String>,
    /// Local and global secondary indexes, in declaration order (locals first).
    #[serde(default)]
    pub indexes: Vec<IndexMeta>,
    /// Bumped whenever the set of indexes changes (see `schema_version_key`), and whenever what a
    /// write must stage besides the item changes (the change log's readers, by
    /// `Catalog::update_batch` itself; TTL switched; replicas).
    #[serde(default)]
    pub schema_version: u64,
    /// Bumped by every change of this metadata, so that caches install changes in order.
    #[serde(default)]
    pub version: u64,
    /// The table's streams, oldest first; the last one is enabled unless it has been disabled
    /// (`crate::streams`).
    #[serde(default)]
    pub streams: Vec<crate::streams::StreamMeta>,
    /// The other regions holding the table, when it is a global table (`crate::replication`).
    #[serde(default)]
    pub global: Option<crate::replication::GlobalTable>,
    /// Set while `haven mirror` keeps this table as a copy of another endpoint's: clients may
    /// read it but not write it (`crate::mirror`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<crate::mirror::MirrorOrigin>,
    /// Set on a table restored from a backup (`crate::backup`); in progress while it is filled.
    #[serde(default)]
    pub restore: Option<crate::backup::RestoreSummary>,
    /// Point-in-time recovery, while enabled (`crate::backup::pitr`).
    #[serde(default)]
    pub pitr: Option<crate::backup::pitr::PitrMeta>,
    /// When an UpdateTable last changed the table (not for deletion protection alone): the table
    /// reports UPDATING for the transient-status window after it (`crate::transient`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<f64>,
    /// Resource-based policies of the table and of its streams (`crate::access::resource`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_policies: Vec<crate::access::resource::StoredPolicy>,
    /// Contributor insights settings of the table and of its global indexes
    /// (`crate::ops::contributor_insights`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contributor_insights: Vec<crate::ops::InsightsSetting>,
    /// OnDemandThroughput, once set (`crate::capacity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand: Option<crate::capacity::settings::OnDemandMaximum>,
    /// WarmThroughput, once set (`crate::capacity::settings`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<crate::capacity::settings::Warm>,
    /// The ARN of the import filling this table, while it runs (`crate::import`): the table is
    /// CREATING until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<String>,
    /// The highest id of an index this table has dropped (0: none, or dropped before this was
    /// kept): new index ids go above it ([`TableMeta::next_index_id`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_index_ids: u32,
    /// The typed key schema, built from `key_schema` and `attribute_definitions` on first use
    /// ([`TableMeta::keys`]); not stored.
    #[serde(skip)]
    pub key_cache: KeysCache,
}

/// A table's typed key schema, built once: every item operation asks for it several times (to
/// validate, encode and project keys), and rebuilding it each time (two vectors, a name copied per
/// attribute, a search of the definitions) cost a write about 2% of its instructions. A table's
/// key schema never changes, so the cache never goes stale; it is no part of the metadata's value.
#[derive(Clone, Default)]
pub struct KeysCache(std::sync::OnceLock<KeySchema>);

impl PartialEq for KeysCache {
    fn eq(&self, _: &KeysCache) -> bool {
        true
    }
}

impl std::fmt::Debug for KeysCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeysCache")
    }
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// Whether an index shares the table's partition key (local) or has its own (global).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexKind {
    Local,
    Global,
}

/// A secondary index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    /// Storage id, unique within the table and never reused.
    pub id: u32,
    pub name: String,
    pub kind: IndexKind,
    pub key_schema: Vec<KeySchemaElement>,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection_type: String,
    pub non_key_attributes: Option<Vec<String>>,
    /// `CREATING`, `ACTIVE` or `DELETING`.
    pub status: String,
    /// True while a CREATING index is being filled from the table.
    pub backfilling: bool,
    /// Provisioned throughput of a global index on a PROVISIONED table.
    pub throughput: Option<Throughput>,
    /// A global index's OnDemandThroughput, once set (`crate::capacity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand: Option<crate::capacity::settings::OnDemandMaximum>,
    /// A global index's WarmThroughput, once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<crate::capacity::settings::Warm>,
}

impl IndexMeta {
    /// Index entries are written for CREATING and ACTIVE indexes (never for DELETING ones).
    pub fn maintained(&self) -> bool {
        self.status != "DELETING"
    }

    /// Queries and scans may read only ACTIVE indexes.
    pub fn readable(&self) -> bool {
        self.status == "ACTIVE"
    }
}

impl TableMeta {
    /// The typed key schema (validated at CreateTable, so every lookup succeeds).
    pub fn keys(&self) -> &KeySchema {
        self.key_cache
            .0
            .get_or_init(|| self.typed_keys(&self.key_schema))
    }

    /// The typed key schema of one of the table's indexes.
    pub fn index_keys(&self, index: &IndexMeta) -> KeySchema {
        self.typed_keys(&index.key_schema)
    }

    /// DynamoDB keeps AttributeDefinitions to the attributes some key of the table or of an index
    /// uses; call after the set of indexes changes.
    pub fn drop_unused_definitions(&mut self) {
        let used: Vec<String> = self
            .key_schema
            .iter()
            .chain(self.indexes.iter().flat_map(|i| &i.key_schema))
            .map(|k| k.attribute_name.clone())
            .collect();
        self.attribute_definitions
            .retain(|d| used.contains(&d.attribute_name));
    }

    pub fn index(&self, name: &str) -> Option<&IndexMeta> {
        self.indexes.iter().find(|i| i.name == name)
    }

    fn index_stat_key(&self, kind: u8, index: &IndexMeta) -> Vec<u8> {
        let mut key = self.stat_key(kind);
        key.extend_from_slice(&index.id.to_be_bytes());
        key
    }

    pub fn index_count_key(&self, index: &IndexMeta) -> Vec<u8> {
        self.index_stat_key(STAT_INDEX_COUNT, index)
    }

    pub fn index_size_key(&self, index: &IndexMeta) -> Vec<u8> {
        self.index_stat_key(STAT_INDEX_SIZE, index)
    }

    /// `STATS | table id | 'p' | partition key`: the size of one item collection (tables with local
    /// indexes only).
    pub fn collection_size_key(&self, partition: &haven_model::AttributeValue) -> Vec<u8> {
        let mut key = self.stat_key(STAT_COLLECTION_SIZE);
        haven_model::key_codec::encode_key_value(partition, &mut key);
        key
    }

    /// The storage id of the next index: above every index the table has and every one it
    /// dropped, so that an id is never reused (a new index must neither see a dropped one's
    /// entries nor lose its own to their removal).
    pub fn next_index_id(&self) -> u32 {
        self.indexes
            .iter()
            .map(|i| i.id)
            .chain([self.dropped_index_ids])
            .max()
            .unwrap_or(0)
            + 1
    }

    pub fn has_local_indexes(&self) -> bool {
        self.indexes.iter().any(|i| i.kind == IndexKind::Local)
    }

    pub fn schema_version_key(&self) -> Vec<u8> {
        self.stat_key(STAT_SCHEMA_VERSION)
    }

    /// The bytes the schema version key holds for this metadata.
    pub fn schema_version_value(&self) -> Vec<u8> {
        self.schema_version.to_be_bytes().to_vec()
    }

    /// What an item write expects the schema version key to hold (tables from before versioning
    /// have no key).
    pub fn schema_version_expectation(&self) -> Option<Vec<u8>> {
        (self.schema_version > 0).then(|| self.schema_version_value())
    }

    /// Storage prefix of one index's entries.
    pub fn index_prefix(&self, index: &IndexMeta) -> Vec<u8> {
        key_of(&[
            &[prefix::INDEXES],
            &self.id.to_be_bytes(),
            &index.id.to_be_bytes(),
        ])
    }

    /// Exclusive upper bound of one index's entries.
    pub fn index_prefix_end(&self, index: &IndexMeta) -> Vec<u8> {
        key_of(&[
            &[prefix::INDEXES],
            &self.id.to_be_bytes(),
            &(index.id + 1).to_be_bytes(),
        ])
    }

    /// The typed attributes of a declared key schema, partition first (a global index may have
    /// several of each kind; the declared order is the key's order).
    fn typed_keys(&self, elements: &[KeySchemaElement]) -> KeySchema {
        let attributes = |key_type: &str| {
            elements
                .iter()
                .filter(|k| k.key_type == key_type)
                .map(|k| KeyAttribute {
                    name: k.attribute_name.clone(),
                    scalar_type: self
                        .attribute_definitions
                        .iter()
                        .find(|d| d.attribute_name == k.attribute_name)
                        .and_then(|d| ScalarType::parse(&d.attribute_type))
                        .unwrap_or(ScalarType::S),
                })
                .collect::<Vec<_>>()
        };
        let schema = KeySchema {
            partition: attributes("HASH"),
            sort: attributes("RANGE"),
        };
        assert!(!schema.partition.is_empty(), "validated at CreateTable");
        schema
    }

    /// Storage prefix of this table's items.
    pub fn item_prefix(&self) -> Vec<u8> {
        table_range(prefix::ITEMS, self.id)
    }

    /// Exclusive upper bound of this table's items.
    pub fn item_prefix_end(&self) -> Vec<u8> {
        table_range(prefix::ITEMS, self.id + 1)
    }

    pub(crate) fn stat_key(&self, kind: u8) -> Vec<u8> {
        let mut key = [kind; 10];
        key[..9].copy_from_slice(&table_range_bytes(prefix::STATS, self.id));
        key.to_vec()
    }

    pub fn item_count_key(&self) -> Vec<u8> {
        self.stat_key(STAT_ITEM_COUNT)
    }

    pub fn size_bytes_key(&self) -> Vec<u8> {
        self.stat_key(STAT_SIZE_BYTES)
    }
}

/// Live counters for DescribeTable.
pub struct TableStats {
    pub item_count: i64,
    pub size_bytes: i64,
}

/// `prefix | table id`: the start of a table's range under a per-table prefix.
fn table_range(prefix: u8, table_id: u64) -> Vec<u8> {
    table_range_bytes(prefix, table_id).to_vec()
}

/// [`table_range`] on the stack: every item write builds such keys (its table's prefix, counters
/// and schema version), and assembling them from slices cost twice as much as copying them whole.
fn table_range_bytes(prefix: u8, table_id: u64) -> [u8; 9] {
    let mut key = [prefix; 9];
    key[1..].copy_from_slice(&table_id.to_be_bytes());
    key
}

/// A storage key made of `parts`, allocated once at its length (every item write builds several).
fn key_of(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn meta_key(name: &str) -> Vec<u8> {
    key_of(&[&[prefix::META], name.as_bytes()])
}

fn encode_meta(meta: &TableMeta) -> Vec<u8> {
    serde_json::to_vec(meta).expect("metadata serialises")
}

fn decode_meta(name: &str, bytes: &[u8]) -> Result<TableMeta, StorageError> {
    serde_json::from_slice(bytes)
        .map_err(|error| StorageError::Io(format!("table metadata {name:?}: {error}")))
}

/// The id the next table created will get (every existing table's id is below it).
fn next_table_id(snapshot: &dyn Snapshot) -> Result<u64, StorageError> {
    Ok(decode_table_id(snapshot.get(NEXT_TABLE_ID)?.as_deref()))
}

fn decode_table_id(stored: Option<&[u8]>) -> u64 {
    stored
        .and_then(|bytes| bytes.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(1)
}

/// The catalog thread: reloads the cache whenever the stored generation moves, until the catalog
/// is dropped. Storage errors are logged and tried again at the next tick.
fn follow_storage(catalog: Weak<Catalog>) {
    loop {
        std::thread::sleep(REFRESH_INTERVAL);
        let Some(catalog) = catalog.upgrade() else {
            return;
        };
        if let Err(error) = catalog.refresh() {
            tracing::warn!(%error, "cannot refresh the catalog from storage");
        }
    }
}

/// A change to the catalog's cache that follows a committed metadata batch.
pub(crate) enum Installation {
    /// The table's metadata as committed.
    Install(Box<TableMeta>),
    /// The table was deleted.
    Remove { name: String, id: u64 },
}

/// One name's cache entry: the newest metadata seen for it, or a tombstone for a deleted table.
#[derive(Clone)]
struct Entry {
    meta: Option<Arc<TableMeta>>,
    /// `(table id, metadata version)`: ids only grow and each change bumps the version, so a
    /// committed change is installed only over an older one, whatever order installers run in.
    /// A tombstone holds `(id, u64::MAX)`: nothing of the deleted table can come back.
    order: (u64, u64),
}

/// The set of tables: stored in the engine (the truth), cached in memory (to save reads).
///
/// The cache can lag storage only briefly and never wedges a table:
/// - every metadata change is committed and installed by a task of its own ([`Catalog::commit`]),
///   so a request dropped by its client (hyper drops the future when the connection goes) cannot
///   leave storage at version N+1 and the cache at N;
/// - a name missing from the cache is looked up in storage before "not found" is answered, so a
///   table created elsewhere (another node on a shared engine) is usable at once;
/// - a writer whose batch conflicts re-reads the table's metadata from storage ([`Catalog::reload`]);
/// - every change bumps a stored generation counter; control-plane reads, and on storage other
///   nodes share a background thread, compare it with the cache's and reload everything when it
///   moved ([`Catalog::refresh`]).
///
/// Installing the cache also keeps the background work the metadata asks for running: an index in
/// CREATING or DELETING gets its worker whichever request, restart or node made it so, and a table
/// with a stream, TTL or point-in-time recovery the service's worker for it (`background::Job`).
pub struct Catalog {
    engine: Arc<dyn Engine>,
    tables: RwLock<BTreeMap<String, Entry>>,
    /// The stored generation the cache last reloaded everything at.
    generation: AtomicI64,
    /// `(table id, index id)` of the index workers running.
    index_workers: Mutex<HashSet<(u64, u32)>>,
    /// The transient-status window: an index worker finishes an index only once its table's
    /// last update is older (`crate::transient`).
    transient: Duration,
    /// The service's background jobs the tables have called for.
    jobs: OnDemand,
}

/// How often the background thread (on storage other nodes share) compares the stored catalog
/// generation with the cache's.
const REFRESH_INTERVAL: Duration = Duration::from_millis(500);
/// Attempts of a metadata change from a worker thread before it gives up (each lost race means
/// another change went in).
const UPDATE_ATTEMPTS: u32 = 256;

impl Catalog {
    /// Loads every table's metadata from storage and starts the work the metadata asks for (index
    /// backfills and removals left half-way; the jobs it wants start with `OnDemand::start_with`).
    /// On storage other nodes share, a thread keeps the cache following their changes; on storage
    /// this process alone changes, every change is installed by the catalog that made it.
    pub fn load(
        engine: Arc<dyn Engine>,
        transient: Duration,
    ) -> Result<Arc<Catalog>, StorageError> {
        let catalog = Arc::new(Catalog {
            engine,
            tables: RwLock::new(BTreeMap::new()),
            generation: AtomicI64::new(-1),
            index_workers: Mutex::new(HashSet::new()),
            transient,
            jobs: OnDemand::default(),
        });
        catalog.refresh()?;
        if !catalog.engine.shared() {
            return Ok(catalog);
        }
        let weak = Arc::downgrade(&catalog);
        let spawned = std::thread::Builder::new()
            .name("haven-catalog".into())
            .spawn(move || follow_storage(weak));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the catalog refresher");
        }
        Ok(catalog)
    }

    pub(crate) fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// The transient-status window (`crate::transient`).
    pub(crate) fn transient(&self) -> Duration {
        self.transient
    }

    /// The service's background jobs the tables have called for.
    pub(crate) fn jobs(&self) -> &OnDemand {
        &self.jobs
    }

    /// The table's metadata: from the cache, or from storage when the cache does not have it.
    pub fn get(self: &Arc<Self>, name: &str) -> Result<Option<Arc<TableMeta>>, StorageError> {
        if let Some(Entry {
            meta: Some(meta), ..
        }) = self.tables.read().unwrap().get(name)
        {
            return Ok(Some(meta.clone()));
        }
        self.reload(name)
    }

    /// Table names in DynamoDB's (byte-wise) order.
    pub fn names(&self) -> Vec<String> {
        let tables = self.tables.read().unwrap();
        tables
            .iter()
            .filter(|(_, entry)| entry.meta.is_some())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Re-reads one table's metadata from storage into the cache (after a conflict suggests the
    /// cache is behind) and answers the newest metadata known.
    pub fn reload(self: &Arc<Self>, name: &str) -> Result<Option<Arc<TableMeta>>, StorageError> {
        let snapshot = self.engine.snapshot()?;
        let stored = snapshot.get(&meta_key(name))?;
        let next_id = next_table_id(&*snapshot)?;
        drop(snapshot);
        match stored {
            Some(bytes) => self.apply(Installation::Install(Box::new(decode_meta(name, &bytes)?))),
            None => self.forget_if_older(name, next_id),
        }
        Ok(self.cached(name))
    }

    /// Reloads every table's metadata if the stored generation moved since the last reload.
    pub fn refresh(self: &Arc<Self>) -> Result<(), StorageError> {
        let snapshot = self.engine.snapshot()?;
        let generation = read_counter(&*snapshot, CATALOG_GENERATION)?;
        if generation == self.generation.load(Ordering::Acquire) {
            return Ok(());
        }
        let next_id = next_table_id(&*snapshot)?;
        let mut stored = Vec::new();
        let mut corrupt = None;
        let (start, end) = ([prefix::META], [prefix::META + 1]);
        let range = (Bound::Included(&start[..]), Bound::Excluded(&end[..]));
        snapshot.scan(range, false, &mut |key, value| {
            let name = String::from_utf8_lossy(&key[1..]);
            match decode_meta(&name, value) {
                Ok(meta) => stored.push(meta),
                Err(error) => corrupt = Some(error),
            }
            corrupt.is_none()
        })?;
        drop(snapshot);
        if let Some(error) = corrupt {
            return Err(error);
        }
        let stored_names: HashSet<String> = stored.iter().map(|m| m.name.clone()).collect();
        for meta in stored {
            self.apply(Installation::Install(Box::new(meta)));
        }
        for name in self.names() {
            if !stored_names.contains(&name) {
                self.forget_if_older(&name, next_id);
            }
        }
        self.generation.fetch_max(generation, Ordering::AcqRel);
        Ok(())
    }

    /// Allocates a table id and records the table; None if the name is taken.
    pub(crate) async fn create(
        self: &Arc<Self>,
        mut meta: TableMeta,
        retries: &mut Retries,
    ) -> Result<Option<Arc<TableMeta>>, DynamoError> {
        loop {
            let snapshot = self.engine.snapshot()?;
            if snapshot.get(&meta_key(&meta.name))?.is_some() {
                return Ok(None);
            }
            let current_id = snapshot.get(NEXT_TABLE_ID)?;
            drop(snapshot);
            let id = decode_table_id(current_id.as_deref());
            meta.id = id;
            meta.schema_version = 1;
            let mut batch = WriteBatch::new();
            batch
                .expect(NEXT_TABLE_ID.to_vec(), current_id)
                .expect(meta_key(&meta.name), None)
                .put(NEXT_TABLE_ID.to_vec(), (id + 1).to_be_bytes().to_vec())
                .put(meta_key(&meta.name), encode_meta(&meta))
                .put(meta.schema_version_key(), meta.schema_version_value());
            match self
                .commit(batch, Installation::Install(Box::new(meta.clone())))
                .await
            {
                Ok(()) => return Ok(self.cached(&meta.name)),
                Err(CommitError::Conflict) => retries.conflict().await?,
                Err(CommitError::Storage(e)) => return Err(e.into()),
            }
        }
    }

    /// The batch that replaces a table's metadata if it is still `current` (plus the schema version
    /// key when what an item write stages changed), and the metadata to install once it commits
    /// (its version bumped). Commit both with [`Catalog::commit`]. A change of the log's readers
    /// always bumps the schema version: a write planned from metadata cached before it (on this
    /// node or another) then conflicts and plans again, so no record written after a reader
    /// arrived lacks an image it needs (`crate::changes`).
    pub(crate) fn update_batch(
        current: &TableMeta,
        mut updated: TableMeta,
    ) -> (WriteBatch, Installation) {
        updated.version = current.version + 1;
        if !current.log_readers().eq(updated.log_readers()) {
            updated.schema_version = updated.schema_version.max(current.schema_version + 1);
        }
        let mut batch = WriteBatch::new();
        batch
            .expect(meta_key(&current.name), Some(encode_meta(current)))
            .put(meta_key(&updated.name), encode_meta(&updated));
        if updated.schema_version != current.schema_version {
            batch.put(updated.schema_version_key(), updated.schema_version_value());
        }
        (batch, Installation::Install(Box::new(updated)))
    }

    /// Replaces a table's metadata (UpdateTable, tags, TTL...) if it is still `current`; false
    /// when another change got there first (the cache then holds the stored metadata).
    pub(crate) async fn update(
        self: &Arc<Self>,
        current: &TableMeta,
        updated: TableMeta,
    ) -> Result<bool, StorageError> {
        let (batch, installation) = Catalog::update_batch(current, updated);
        self.settle(&current.name, self.commit(batch, installation).await)
    }

    /// Removes a table with all its items and counters in one batch, with whatever `batch` already
    /// holds (a tombstone: `crate::transient`); false if it changed or went meanwhile (the cache
    /// then holds what storage holds).
    pub(crate) async fn delete(
        self: &Arc<Self>,
        meta: &TableMeta,
        batch: WriteBatch,
    ) -> Result<bool, StorageError> {
        let (batch, removal) = Catalog::delete_batch(meta, batch);
        self.settle(&meta.name, self.commit(batch, removal).await)
    }

    /// [`Catalog::delete`] for a thread outside the async runtime (a failed import's worker).
    pub(crate) fn delete_blocking(
        self: &Arc<Self>,
        meta: &TableMeta,
    ) -> Result<bool, StorageError> {
        let (batch, removal) = Catalog::delete_batch(meta, WriteBatch::new());
        self.settle(&meta.name, self.commit_blocking(batch, removal))
    }

    fn delete_batch(meta: &TableMeta, mut batch: WriteBatch) -> (WriteBatch, Installation) {
        batch
            .expect(meta_key(&meta.name), Some(encode_meta(meta)))
            .delete(meta_key(&meta.name))
            .delete_range(meta.item_prefix(), meta.item_prefix_end())
            .delete_range(
                table_range(prefix::INDEXES, meta.id),
                table_range(prefix::INDEXES, meta.id + 1),
            )
            .delete_range(
                table_range(prefix::STATS, meta.id),
                table_range(prefix::STATS, meta.id + 1),
            )
            .delete_range(
                table_range(prefix::REPLICATION, meta.id),
                table_range(prefix::REPLICATION, meta.id + 1),
            );
        crate::streams::retire(&mut batch, meta);
        let removal = Installation::Remove {
            name: meta.name.clone(),
            id: meta.id,
        };
        (batch, removal)
    }

    /// Commits a metadata batch and installs its outcome in the cache. Both happen in a task of
    /// their own: once handed to storage, a change reaches the cache even if the request that
    /// made it is dropped. Outside a runtime (the index workers' threads) it waits in place.
    pub(crate) async fn commit(
        self: &Arc<Self>,
        mut batch: WriteBatch,
        installation: Installation,
    ) -> Result<(), CommitError> {
        batch.add_counter(CATALOG_GENERATION.to_vec(), 1);
        let pending = self.engine.commit(batch);
        let catalog = self.clone();
        let task = tokio::spawn(async move {
            let result = pending.await;
            if result.is_ok() {
                catalog.apply(installation);
            }
            result
        });
        task.await
            .unwrap_or(Err(CommitError::Storage(StorageError::Closed)))
    }

    /// [`Catalog::commit`] for a thread outside the async runtime.
    pub(crate) fn commit_blocking(
        self: &Arc<Self>,
        mut batch: WriteBatch,
        installation: Installation,
    ) -> Result<(), CommitError> {
        batch.add_counter(CATALOG_GENERATION.to_vec(), 1);
        let result = self.engine.commit(batch).wait();
        if result.is_ok() {
            self.apply(installation);
        }
        result
    }

    /// Changes a table's metadata from a thread outside the async runtime (a restore's or an
    /// import's worker), retrying lost races: `change` edits the metadata and answers whether
    /// there is anything to store. Ok also when the table went.
    pub(crate) fn update_blocking(
        self: &Arc<Self>,
        name: &str,
        mut change: impl FnMut(&mut TableMeta) -> bool,
    ) -> Result<(), DynamoError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let Some(current) = self.reload(name)? else {
                return Ok(());
            };
            let mut updated = (*current).clone();
            if !change(&mut updated) {
                return Ok(());
            }
            let (batch, installation) = Catalog::update_batch(&current, updated);
            match self.commit_blocking(batch, installation) {
                Ok(()) => return Ok(()),
                Err(CommitError::Conflict) => continue,
                Err(CommitError::Storage(error)) => return Err(error.into()),
            }
        }
        Err(DynamoError::InternalServerError)
    }

    /// Turns a metadata commit's outcome into "done" or "lost the race"; losing means the cache
    /// was behind, so it reloads the table before the caller looks again.
    fn settle(
        self: &Arc<Self>,
        name: &str,
        outcome: Result<(), CommitError>,
    ) -> Result<bool, StorageError> {
        match outcome {
            Ok(()) => Ok(true),
            Err(CommitError::Conflict) => {
                self.reload(name)?;
                Ok(false)
            }
            Err(CommitError::Storage(e)) => Err(e),
        }
    }

    fn cached(&self, name: &str) -> Option<Arc<TableMeta>> {
        self.tables.read().unwrap().get(name)?.meta.clone()
    }

    /// Installs a change unless the cache already holds something newer for the name.
    fn apply(self: &Arc<Self>, installation: Installation) {
        let (name, entry) = match installation {
            Installation::Install(meta) => (
                meta.name.clone(),
                Entry {
                    order: (meta.id, meta.version),
                    meta: Some(Arc::new(*meta)),
                },
            ),
            Installation::Remove { name, id } => (
                name,
                Entry {
                    meta: None,
                    order: (id, u64::MAX),
                },
            ),
        };
        let installed = {
            let mut tables = self.tables.write().unwrap();
            match tables.get(&name) {
                Some(existing) if existing.order >= entry.order => None,
                _ => {
                    tables.insert(name, entry.clone());
                    entry.meta
                }
            }
        };
        if let Some(meta) = installed {
            self.start_index_workers(&meta);
            self.jobs.want(self, Job::wanted_by(&meta));
        }
    }

    /// A table storage no longer holds: drop it from the cache, unless the cached table was
    /// created after the storage read (its id is not below the id sequence that read saw).
    fn forget_if_older(self: &Arc<Self>, name: &str, next_id: u64) {
        let cached_id = match self.tables.read().unwrap().get(name) {
            Some(Entry {
                meta: Some(meta), ..
            }) => meta.id,
            _ => return,
        };
        if cached_id < next_id {
            self.apply(Installation::Remove {
                name: name.to_string(),
                id: cached_id,
            });
        }
    }

    /// Starts a worker for each index in CREATING or DELETING that has none.
    fn start_index_workers(self: &Arc<Self>, meta: &TableMeta) {
        for index in meta.indexes.iter().filter(|i| i.status != "ACTIVE") {
            let job = (meta.id, index.id);
            if self.index_workers.lock().unwrap().insert(job) {
                crate::indexes::spawn_index_worker(
                    self.clone(),
                    meta.name.clone(),
                    meta.id,
                    index.id,
                );
            }
        }
    }

    /// Called by an index worker as it ends, so that a later change can start another.
    pub(crate) fn index_worker_done(&self, table_id: u64, index_id: u32) {
        self.index_workers
            .lock()
            .unwrap()
            .remove(&(table_id, index_id));
    }

    /// The table's metadata as `snapshot` holds it (not the cache's): what a backup records
    /// beside the items of the same snapshot.
    pub(crate) fn stored_meta(
        &self,
        snapshot: &dyn Snapshot,
        name: &str,
    ) -> Result<Option<TableMeta>, StorageError> {
        snapshot
            .get(&meta_key(name))?
            .map(|bytes| decode_meta(name, &bytes))
            .transpose()
    }

    pub fn stats(snapshot: &dyn Snapshot, meta: &TableMeta) -> Result<TableStats, StorageError> {
        Ok(TableStats {
            item_count: read_counter(snapshot, &meta.item_count_key())?,
            size_bytes: read_counter(snapshot, &meta.size_bytes_key())?,
        })
    }
}
