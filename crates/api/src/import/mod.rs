//! Import from S3 (ImportTable, DescribeImport, ListImports): a new table filled from the objects
//! under a bucket's prefix, in DynamoDB JSON, Amazon Ion or CSV, plain, gzip or zstd.
//!
//! ImportTable validates the table's parameters as CreateTable does (the same code), creates the
//! table at once with the import's ARN in its metadata (so it is CREATING, refuses the data plane
//! and DeleteTable, and a restart finds it), stores the import's record in the backup store beside
//! the backups' records (`imports/<id>.json`, so it outlives the data directory) and hands the
//! work to a thread (`worker`). The worker streams each object (`source`: never a whole object in
//! memory, lines bounded), turns each line into an item (`formats`), counts and logs the lines
//! that are not items, and writes the items in bounded batches through the same path a restore
//! uses (`backup::write_changes`: index entries and counters with each item). The record is
//! marked COMPLETED before the table turns ACTIVE, and FAILED before the table is deleted, so a
//! crash between the two is finished by the next start (`resume_imports`), which otherwise runs an
//! interrupted import again from its first object: an import is never COMPLETED with items
//! missing. Differences from AWS (logs, failure codes): docs/backups.md.

mod formats;
mod ops;
mod source;
mod worker;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use source::ImportSourceConfig;

use crate::backup::store::{BackupStore, StoreError};
use crate::catalog::{Catalog, TableMeta};
use haven_storage::Engine;

pub(crate) use ops::{describe_import, import_table, list_imports};

/// What the store keeps about one import.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImportRecord {
    pub arn: String,
    /// IN_PROGRESS, COMPLETED or FAILED.
    pub status: String,
    pub table_name: String,
    pub table_arn: String,
    pub table_id: String,
    pub client_token: Option<String>,
    /// The request's parameters as compared for a reused ClientToken.
    pub fingerprint: String,
    /// S3BucketSource, InputFormatOptions and TableCreationParameters as the request gave them.
    pub source: Value,
    pub format: String,
    pub format_options: Option<Value>,
    pub compression: String,
    pub creation: Value,
    pub start: f64,
    pub end: Option<f64>,
    pub processed_bytes: i64,
    pub processed_items: i64,
    pub imported_items: i64,
    pub errors: i64,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
}

impl ImportRecord {
    /// ImportTableDescription (ImportTable, DescribeImport).
    pub(crate) fn description(&self, region: &str, account: &str) -> Value {
        let mut description = self.summary(region, account);
        let fields = [
            ("TableId", json!(self.table_id)),
            ("ClientToken", json!(self.client_token)),
            ("ErrorCount", json!(self.errors)),
            ("InputCompressionType", json!(self.compression)),
            ("InputFormatOptions", json!(self.format_options)),
            ("TableCreationParameters", self.creation.clone()),
            ("ProcessedSizeBytes", json!(self.processed_bytes)),
            ("ProcessedItemCount", json!(self.processed_items)),
            ("ImportedItemCount", json!(self.imported_items)),
            ("FailureCode", json!(self.failure_code)),
            ("FailureMessage", json!(self.failure_message)),
        ];
        for (name, value) in fields {
            if !value.is_null() {
                description[name] = value;
            }
        }
        description
    }

    /// ImportSummary (ListImports).
    pub(crate) fn summary(&self, region: &str, account: &str) -> Value {
        let mut summary = json!({
            "ImportArn": self.arn,
            "ImportStatus": self.status,
            "TableArn": self.table_arn,
            "S3BucketSource": self.source,
            "CloudWatchLogGroupArn": format!(
                "arn:aws:logs:{region}:{account}:log-group:/aws-dynamodb/imports:*"
            ),
            "InputFormat": self.format,
            "StartTime": self.start,
        });
        if let Some(end) = self.end {
            summary["EndTime"] = json!(end);
        }
        summary
    }
}

fn record_key(id: &str) -> String {
    format!("imports/{id}.json")
}

/// The id an import ARN names (`<table arn>/import/<id>`), when it has the shape of one.
pub(crate) fn import_id(arn: &str) -> Option<&str> {
    crate::backup::job_id(arn, "/import/")
}

pub(crate) fn save_record(
    store: &dyn BackupStore,
    record: &ImportRecord,
) -> Result<(), StoreError> {
    let id = import_id(&record.arn).unwrap_or_default();
    let bytes = serde_json::to_vec(record).map_err(|e| StoreError(e.to_string()))?;
    store.put(&record_key(id), &bytes)
}

/// The record of the import an ARN names, if there is one.
pub(crate) fn load_record(
    store: &dyn BackupStore,
    arn: &str,
) -> Result<Option<ImportRecord>, StoreError> {
    let Some(id) = import_id(arn) else {
        return Ok(None);
    };
    let Some(bytes) = store.get(&record_key(id))? else {
        return Ok(None);
    };
    let record: ImportRecord = serde_json::from_slice(&bytes)
        .map_err(|error| StoreError(format!("import record {id} is damaged: {error}")))?;
    Ok((record.arn == arn).then_some(record))
}

/// Every import record in the store, oldest first.
pub(crate) fn all_records(store: &dyn BackupStore) -> Result<Vec<ImportRecord>, StoreError> {
    let mut records = Vec::new();
    for key in store.list("imports/")? {
        let Some(bytes) = store.get(&key)? else {
            continue; // removed since the listing
        };
        match serde_json::from_slice::<ImportRecord>(&bytes) {
            Ok(record) => records.push(record),
            Err(error) => tracing::warn!(key, %error, "skipping a damaged import record"),
        }
    }
    records.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.arn.cmp(&b.arn)));
    Ok(records)
}

/// A table being filled by an import is CREATING.
pub(crate) fn describe_into(description: &mut Value, meta: &TableMeta) {
    if meta.import.is_some() {
        description["TableStatus"] = json!("CREATING");
    }
}

/// Starts a worker for every table whose import a previous run left unfinished.
pub(crate) fn resume_imports(
    engine: &Arc<dyn Engine>,
    catalog: &Arc<Catalog>,
    store: &Arc<dyn BackupStore>,
    config: &crate::ServiceConfig,
) {
    for name in catalog.names() {
        if let Ok(Some(meta)) = catalog.get(&name)
            && meta.import.is_some()
        {
            worker::Importer::new(engine, catalog, store, config).spawn(name);
        }
    }
}
