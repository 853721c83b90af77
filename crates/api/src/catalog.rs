//! The catalog: which tables exist, their schemas and settings, and where their data lives.
//!
//! Each table's metadata is one JSON record in the engine under `META | name`, written in the same
//! batch as the data it governs; an in-memory copy answers lookups without touching storage.
//! Every table gets a fresh numeric id at creation, and its items live under `ITEMS | id`, so a
//! table deleted and re-created under the same name never sees the old table's items.
//! (Layout: docs/storage-format.md.)

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use haven_model::schema::{KeyAttribute, KeySchema, ScalarType};
use haven_storage::{Engine, Snapshot, StorageError, WriteBatch, read_counter};
use serde::{Deserialize, Serialize};

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
}

const NEXT_TABLE_ID: &[u8] = &[prefix::SYSTEM, b'n', b'e', b'x', b't', b'-', b'i', b'd'];
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
    /// Bumped whenever the set of indexes changes (see `schema_version_key`).
    #[serde(default)]
    pub schema_version: u64,
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
    pub fn keys(&self) -> KeySchema {
        self.typed_keys(&self.key_schema)
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
        let mut prefix = vec![prefix::INDEXES];
        prefix.extend_from_slice(&self.id.to_be_bytes());
        prefix.extend_from_slice(&index.id.to_be_bytes());
        prefix
    }

    /// Exclusive upper bound of one index's entries.
    pub fn index_prefix_end(&self, index: &IndexMeta) -> Vec<u8> {
        let mut end = vec![prefix::INDEXES];
        end.extend_from_slice(&self.id.to_be_bytes());
        end.extend_from_slice(&(index.id + 1).to_be_bytes());
        end
    }

    fn typed_keys(&self, elements: &[KeySchemaElement]) -> KeySchema {
        let attribute = |key_type: &str| {
            elements
                .iter()
                .find(|k| k.key_type == key_type)
                .map(|k| KeyAttribute {
                    name: k.attribute_name.clone(),
                    scalar_type: self
                        .attribute_definitions
                        .iter()
                        .find(|d| d.attribute_name == k.attribute_name)
                        .and_then(|d| ScalarType::parse(&d.attribute_type))
                        .unwrap_or(ScalarType::S),
                })
        };
        KeySchema {
            partition: attribute("HASH").expect("validated at CreateTable"),
            sort: attribute("RANGE"),
        }
    }

    /// Storage prefix of this table's items.
    pub fn item_prefix(&self) -> Vec<u8> {
        let mut prefix = vec![prefix::ITEMS];
        prefix.extend_from_slice(&self.id.to_be_bytes());
        prefix
    }

    /// Exclusive upper bound of this table's items.
    pub fn item_prefix_end(&self) -> Vec<u8> {
        let mut end = vec![prefix::ITEMS];
        end.extend_from_slice(&(self.id + 1).to_be_bytes());
        end
    }

    fn stat_key(&self, kind: u8) -> Vec<u8> {
        let mut key = vec![prefix::STATS];
        key.extend_from_slice(&self.id.to_be_bytes());
        key.push(kind);
        key
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
    let mut key = vec![prefix];
    key.extend_from_slice(&table_id.to_be_bytes());
    key
}

fn meta_key(name: &str) -> Vec<u8> {
    let mut key = vec![prefix::META];
    key.extend_from_slice(name.as_bytes());
    key
}

fn encode_meta(meta: &TableMeta) -> Vec<u8> {
    serde_json::to_vec(meta).expect("metadata serialises")
}

/// The set of tables, cached in memory and persisted in the engine.
pub struct Catalog {
    tables: RwLock<BTreeMap<String, Arc<TableMeta>>>,
}

impl Catalog {
    /// Loads every table's metadata from storage.
    pub fn load(engine: &dyn Engine) -> Result<Catalog, StorageError> {
        let snapshot = engine.snapshot()?;
        let mut tables = BTreeMap::new();
        let mut corrupt = None;
        let start = [prefix::META];
        let end = [prefix::META + 1];
        let range = (
            std::ops::Bound::Included(&start[..]),
            std::ops::Bound::Excluded(&end[..]),
        );
        snapshot.scan(
            range,
            false,
            &mut |key, value| match serde_json::from_slice::<TableMeta>(value) {
                Ok(meta) => {
                    tables.insert(meta.name.clone(), Arc::new(meta));
                    true
                }
                Err(error) => {
                    corrupt = Some(format!(
                        "table metadata {:?}: {error}",
                        String::from_utf8_lossy(&key[1..])
                    ));
                    false
                }
            },
        )?;
        match corrupt {
            Some(message) => Err(StorageError::Io(message)),
            None => Ok(Catalog {
                tables: RwLock::new(tables),
            }),
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<TableMeta>> {
        self.tables.read().unwrap().get(name).cloned()
    }

    /// Table names in DynamoDB's (byte-wise) order.
    pub fn names(&self) -> Vec<String> {
        self.tables.read().unwrap().keys().cloned().collect()
    }

    /// Allocates a table id and records the table; false if the name is taken.
    pub async fn create(
        &self,
        engine: &dyn Engine,
        mut meta: TableMeta,
    ) -> Result<Option<Arc<TableMeta>>, StorageError> {
        loop {
            let snapshot = engine.snapshot()?;
            if snapshot.get(&meta_key(&meta.name))?.is_some() {
                return Ok(None);
            }
            let current_id = snapshot.get(NEXT_TABLE_ID)?;
            let id = current_id
                .as_deref()
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(1);
            meta.id = id;
            meta.schema_version = 1;
            let mut batch = WriteBatch::new();
            batch
                .expect(NEXT_TABLE_ID.to_vec(), current_id)
                .expect(meta_key(&meta.name), None)
                .put(NEXT_TABLE_ID.to_vec(), (id + 1).to_be_bytes().to_vec())
                .put(meta_key(&meta.name), encode_meta(&meta))
                .put(meta.schema_version_key(), meta.schema_version_value());
            match engine.commit(batch).await {
                Ok(()) => {
                    let meta = Arc::new(meta);
                    self.tables
                        .write()
                        .unwrap()
                        .insert(meta.name.clone(), meta.clone());
                    return Ok(Some(meta));
                }
                Err(haven_storage::CommitError::Conflict) => continue,
                Err(haven_storage::CommitError::Storage(e)) => return Err(e),
            }
        }
    }

    /// The batch that replaces a table's metadata if it is still `current` (plus the schema version
    /// key when the set of indexes changed). Commit it, then [`Catalog::install`] the new metadata.
    pub fn update_batch(current: &TableMeta, updated: &TableMeta) -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch
            .expect(meta_key(&current.name), Some(encode_meta(current)))
            .put(meta_key(&updated.name), encode_meta(updated));
        if updated.schema_version != current.schema_version {
            batch.put(updated.schema_version_key(), updated.schema_version_value());
        }
        batch
    }

    /// Makes committed metadata visible to requests.
    pub fn install(&self, updated: TableMeta) {
        self.tables
            .write()
            .unwrap()
            .insert(updated.name.clone(), Arc::new(updated));
    }

    /// Replaces a table's metadata (UpdateTable, tags, TTL...) if it is still `current`.
    pub async fn update(
        &self,
        engine: &dyn Engine,
        current: &TableMeta,
        updated: TableMeta,
    ) -> Result<bool, StorageError> {
        match engine
            .commit(Catalog::update_batch(current, &updated))
            .await
        {
            Ok(()) => {
                self.install(updated);
                Ok(true)
            }
            Err(haven_storage::CommitError::Conflict) => Ok(false),
            Err(haven_storage::CommitError::Storage(e)) => Err(e),
        }
    }

    /// Removes a table with all its items and counters in one batch; false if it was already gone.
    pub async fn delete(
        &self,
        engine: &dyn Engine,
        meta: &TableMeta,
    ) -> Result<bool, StorageError> {
        let mut batch = WriteBatch::new();
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
            );
        match engine.commit(batch).await {
            Ok(()) => {
                self.tables.write().unwrap().remove(&meta.name);
                Ok(true)
            }
            Err(haven_storage::CommitError::Conflict) => Ok(false),
            Err(haven_storage::CommitError::Storage(e)) => Err(e),
        }
    }

    pub fn stats(snapshot: &dyn Snapshot, meta: &TableMeta) -> Result<TableStats, StorageError> {
        Ok(TableStats {
            item_count: read_counter(snapshot, &meta.item_count_key())?,
            size_bytes: read_counter(snapshot, &meta.size_bytes_key())?,
        })
    }
}
