//! On-demand backups and their restore (CreateBackup, DescribeBackup, ListBackups, DeleteBackup,
//! RestoreTableFromBackup).
//!
//! A backup is a consistent image of one table at one moment: the request takes an engine
//! snapshot, reads the table's metadata from that same snapshot, and a thread of its own writes
//! the snapshot's items to the backup store (`store`) while writers carry on, since a snapshot
//! never blocks a commit. The store is outside the data directory (a directory or a bucket), so
//! the backups outlive it, and holds everything a backup is: a record (`backups/<id>.json`: the
//! status, sizes and the table's metadata as it was) and the image (`backups/<id>/part-NNNNN.json`,
//! one `{"Item": ...}` line per item in DynamoDB JSON, the line format of AWS's exports).
//!
//! A restore creates the new table through the catalog at once (status CREATING, with a
//! RestoreSummary) and a worker thread writes the image's items through the normal batch path
//! (`items::stage_item_write`), which writes the index entries with them; the table turns ACTIVE
//! when the last part is in. The restore is recorded in the table's metadata, so a restart resumes
//! it (re-writing an item is harmless). Layout and differences from AWS: docs/backups.md.

pub(crate) mod image;
pub(crate) mod ops;
pub mod pitr;
pub(crate) mod restore;
pub mod s3;
pub mod store;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalog::{IndexKind, TableMeta};
use crate::error::DynamoError;
use store::{BackupStore, StoreError};

pub(crate) use ops::{create_backup, delete_backup, describe_backup, list_backups};
pub(crate) use pitr::{
    describe_continuous_backups, restore_table_to_point_in_time, update_continuous_backups,
};
pub(crate) use restore::{Change, restore_table_from_backup, resume_restores, write_changes};

/// Where a server keeps its backups.
#[derive(Debug, Clone, Default)]
pub enum BackupStoreConfig {
    /// In the server's memory (the default of `--in-memory`): gone with the server.
    #[default]
    Memory,
    /// Files under a directory.
    Directory(std::path::PathBuf),
    /// Objects in an S3 bucket, on any S3-compatible endpoint.
    S3(s3::S3Config),
}

impl BackupStoreConfig {
    pub(crate) fn open(&self) -> Arc<dyn BackupStore> {
        match self {
            BackupStoreConfig::Memory => Arc::new(store::MemoryStore::default()),
            BackupStoreConfig::Directory(root) => Arc::new(store::DirStore::new(root)),
            BackupStoreConfig::S3(config) => Arc::new(s3::S3Store::new(config.clone())),
        }
    }
}

impl From<StoreError> for DynamoError {
    fn from(error: StoreError) -> DynamoError {
        tracing::error!(%error, "backup store failure");
        DynamoError::InternalServerError
    }
}

/// What the store keeps about one backup besides its image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BackupRecord {
    pub arn: String,
    pub name: String,
    /// `CREATING` until the whole image is stored, then `AVAILABLE`.
    pub status: String,
    pub created: f64,
    pub size_bytes: i64,
    pub item_count: i64,
    /// How many image parts there are (known once AVAILABLE).
    pub parts: u32,
    /// While CREATING: when the writer last said it is alive (seconds since the epoch; 0 in
    /// records written before heartbeats, which count from `created`).
    #[serde(default)]
    pub heartbeat: f64,
    /// The table's metadata at the backup's moment.
    pub table: TableMeta,
}

/// A backup's id: its creation time in milliseconds (14 digits) and 8 random hex digits, as AWS
/// spells them (`01576616366715-b4e58d3a`).
pub(crate) fn new_backup_id(created_ms: u64) -> String {
    let random = uuid::Uuid::new_v4().as_u128() as u32;
    format!("{created_ms:014}-{random:08x}")
}

/// The id an ARN names (`<table arn>/backup/<id>`), when it has the shape of one.
pub(crate) fn backup_id(arn: &str) -> Option<&str> {
    job_id(arn, "/backup/")
}

/// The id after `marker` in a backup's, an import's or an export's ARN (`<table arn><marker><id>`), when it
/// has the shape AWS gives both: milliseconds (14 digits), `-`, 8 hex digits.
pub(crate) fn job_id<'a>(arn: &'a str, marker: &str) -> Option<&'a str> {
    let (_, id) = arn.rsplit_once(marker)?;
    let (millis, random) = id.split_once('-')?;
    let well_formed = millis.len() == 14
        && millis.bytes().all(|b| b.is_ascii_digit())
        && random.len() == 8
        && random.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then_some(id)
}

pub(crate) fn record_key(id: &str) -> String {
    format!("backups/{id}.json")
}

fn part_key(id: &str, part: u32) -> String {
    format!("backups/{id}/part-{part:05}.json")
}

/// How often a backup's writer renews its record's heartbeat while it writes the image.
pub(crate) const HEARTBEAT_SECS: f64 = 30.0;
/// A backup CREATING whose heartbeat is older than this lost its writer (its server died): AWS
/// has no failed state for a backup, so it is removed as if the creation had never happened.
const ABANDONED_SECS: f64 = 10.0 * HEARTBEAT_SECS;

/// Whether `record` is a backup whose writer is gone, as of `now` (seconds since the epoch).
fn abandoned(record: &BackupRecord, now: f64) -> bool {
    record.status == "CREATING" && now - record.heartbeat.max(record.created) > ABANDONED_SECS
}

/// Removes a backup whose writer is gone; answers whether `record` was one.
fn removed_if_abandoned(
    store: &dyn BackupStore,
    record: &BackupRecord,
) -> Result<bool, StoreError> {
    let now = crate::streams::now_ms() as f64 / 1000.0;
    if !abandoned(record, now) {
        return Ok(false);
    }
    tracing::warn!(backup = %record.arn, "removing a backup whose creation was interrupted");
    delete_image(store, record)?;
    Ok(true)
}

/// Reads the record of the backup an ARN names; BackupNotFoundException if there is none (or
/// if its creation was interrupted, when it is removed).
pub(crate) fn load_record(store: &dyn BackupStore, arn: &str) -> Result<BackupRecord, DynamoError> {
    let not_found = || DynamoError::BackupNotFound(format!("Backup not found: {arn}"));
    let id = backup_id(arn).ok_or_else(not_found)?;
    let bytes = store.get(&record_key(id))?.ok_or_else(not_found)?;
    let record: BackupRecord = serde_json::from_slice(&bytes)
        .map_err(|error| StoreError(format!("backup record {id} is damaged: {error}")))?;
    if record.arn != arn || removed_if_abandoned(store, &record)? {
        return Err(not_found());
    }
    Ok(record)
}

pub(crate) fn save_record(
    store: &dyn BackupStore,
    record: &BackupRecord,
) -> Result<(), StoreError> {
    let id = backup_id(&record.arn).unwrap_or_default();
    let bytes = serde_json::to_vec(record).map_err(|e| StoreError(e.to_string()))?;
    store.put(&record_key(id), &bytes)
}

/// Removes a backup: its record first (so it is gone for readers at once), then its parts.
pub(crate) fn delete_image(
    store: &dyn BackupStore,
    record: &BackupRecord,
) -> Result<(), StoreError> {
    let id = backup_id(&record.arn).unwrap_or_default();
    store.delete(&record_key(id))?;
    for part in store.list(&format!("backups/{id}/"))? {
        store.delete(&part)?;
    }
    Ok(())
}

/// Every backup record in the store, oldest first (those whose creation was interrupted are
/// removed instead).
pub(crate) fn all_records(store: &dyn BackupStore) -> Result<Vec<BackupRecord>, DynamoError> {
    let mut records = Vec::new();
    for key in store.list("backups/")? {
        let Some(bytes) = store.get(&key)? else {
            continue; // deleted since the listing
        };
        match serde_json::from_slice::<BackupRecord>(&bytes) {
            Ok(record) if removed_if_abandoned(store, &record)? => {}
            Ok(record) => records.push(record),
            Err(error) => tracing::warn!(key, %error, "skipping a damaged backup record"),
        }
    }
    records.sort_by(|a, b| a.created.total_cmp(&b.created));
    Ok(records)
}

/// BackupDetails (CreateBackup, and inside a BackupDescription).
pub(crate) fn details(record: &BackupRecord) -> Value {
    json!({
        "BackupArn": record.arn,
        "BackupName": record.name,
        "BackupSizeBytes": record.size_bytes,
        "BackupStatus": record.status,
        "BackupType": "USER",
        "BackupCreationDateTime": record.created,
    })
}

/// BackupSummary (ListBackups).
pub(crate) fn summary(record: &BackupRecord) -> Value {
    let mut summary = details(record);
    summary["TableName"] = json!(record.table.name);
    summary["TableId"] = json!(record.table.table_uuid);
    summary["TableArn"] = json!(record.table.arn);
    summary
}

/// BackupDescription (DescribeBackup, DeleteBackup): the backup, its source table and the
/// table's features at the backup's moment.
pub(crate) fn description(record: &BackupRecord) -> Value {
    let table = &record.table;
    let source = json!({
        "TableName": table.name,
        "TableId": table.table_uuid,
        "TableArn": table.arn,
        "TableSizeBytes": record.size_bytes,
        "KeySchema": table.key_schema,
        "TableCreationDateTime": table.created,
        "ProvisionedThroughput": {
            "ReadCapacityUnits": table.throughput.read_capacity_units,
            "WriteCapacityUnits": table.throughput.write_capacity_units,
        },
        "ItemCount": record.item_count,
        "BillingMode": table.billing_mode,
    });
    json!({
        "BackupDetails": details(record),
        "SourceTableDetails": source,
        "SourceTableFeatureDetails": features(table),
    })
}

/// SourceTableFeatureDetails: indexes, stream and TTL of the table as it was.
fn features(table: &TableMeta) -> Value {
    let mut features = json!({});
    for (kind, field) in [
        (IndexKind::Local, "LocalSecondaryIndexes"),
        (IndexKind::Global, "GlobalSecondaryIndexes"),
    ] {
        let indexes: Vec<Value> = table
            .indexes
            .iter()
            .filter(|index| index.kind == kind && index.status == "ACTIVE")
            .map(|index| {
                let mut described = json!({
                    "IndexName": index.name,
                    "KeySchema": index.key_schema,
                    "Projection": crate::ops::projection(index),
                });
                if let Some(throughput) = &index.throughput {
                    described["ProvisionedThroughput"] = json!({
                        "ReadCapacityUnits": throughput.read_capacity_units,
                        "WriteCapacityUnits": throughput.write_capacity_units,
                    });
                }
                described
            })
            .collect();
        if !indexes.is_empty() {
            features[field] = Value::Array(indexes);
        }
    }
    if let Some(stream) = table.streams.last().filter(|s| s.enabled()) {
        features["StreamDescription"] =
            json!({ "StreamEnabled": true, "StreamViewType": stream.view_type });
    }
    if let Some(ttl) = table.time_to_live.as_ref().filter(|t| t.enabled) {
        features["TimeToLiveDescription"] =
            json!({ "TimeToLiveStatus": "ENABLED", "AttributeName": ttl.attribute_name });
    }
    features
}

/// What a table restored from a backup remembers of it (DescribeTable's RestoreSummary); kept in
/// the table's metadata so that a restart resumes a restore left half-way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreSummary {
    /// The backup restored (None for a point-in-time restore).
    pub source_backup_arn: Option<String>,
    pub source_table_arn: String,
    pub restore_date_time: f64,
    pub in_progress: bool,
    /// What a point-in-time restore replays (`pitr`).
    #[serde(default)]
    pub point_in_time: Option<PointInTime>,
}

/// A point-in-time restore's source: a base image and the source table's log after it, up to
/// the moment restored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointInTime {
    /// The store key of the base image (its record is `<base>.json`, its parts `<base>/part-N`).
    pub base: String,
    pub table_id: u64,
    pub base_position: (u64, u64),
    pub until_ms: u64,
}

/// The table's status and RestoreSummary in a TableDescription: a table being restored is
/// CREATING.
pub(crate) fn describe_into(description: &mut Value, meta: &TableMeta) {
    let Some(restore) = &meta.restore else {
        return;
    };
    if restore.in_progress {
        description["TableStatus"] = json!("CREATING");
    }
    let mut summary = json!({
        "SourceTableArn": restore.source_table_arn,
        "RestoreDateTime": restore.restore_date_time,
        "RestoreInProgress": restore.in_progress,
    });
    if let Some(arn) = &restore.source_backup_arn {
        summary["SourceBackupArn"] = json!(arn);
    }
    description["RestoreSummary"] = summary;
}

/// Whether a table is still being filled by a restore or an import (`crate::import`): it then
/// refuses DeleteTable, backups and the data plane.
pub(crate) fn restoring(meta: &TableMeta) -> bool {
    meta.restore.as_ref().is_some_and(|r| r.in_progress) || meta.import.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_ids_are_read_back_only_from_well_formed_arns() {
        let id = new_backup_id(1_576_616_366_715);
        assert_eq!(id.len(), 23);
        let arn = format!("arn:aws:dynamodb:us-east-1:000000000000:table/t/backup/{id}");
        assert_eq!(backup_id(&arn), Some(id.as_str()));
        for bad in [
            "arn:aws:dynamodb:us-east-1:000000000000:table/t/backup/../../x",
            "arn:aws:dynamodb:us-east-1:000000000000:table/t/backup/0157661636671-b4e58d3a",
            "arn:aws:dynamodb:us-east-1:000000000000:table/t/backup/01576616366715-b4e58d3g",
            "arn:aws:dynamodb:us-east-1:000000000000:table/t",
        ] {
            assert_eq!(backup_id(bad), None, "{bad}");
        }
    }
}
