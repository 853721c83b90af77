//! Export to S3: ExportTableToPointInTime, DescribeExport, ListExports.
//!
//! An export reads the table as point-in-time recovery keeps it, never the live table, so a
//! FULL_EXPORT at any moment of the recovery window costs the table's writers nothing: the
//! newest PITR base image at or before the moment, overlaid with the last change of each key in
//! the change log up to it (`backup::restore::last_changes`, the replay a point-in-time restore
//! does). An INCREMENTAL_EXPORT reads only the log between its two times and writes, per item
//! changed, its key, its image at the window's end and (NEW_AND_OLD_IMAGES) at its start.
//!
//! The request answers at once (IN_PROGRESS); a thread (`worker`) writes the files AWS writes,
//! in AWS's layout under `<S3Prefix>/AWSDynamoDB/<ExportId>/` in the bucket named, on the S3
//! endpoint the server is given (`ServiceConfig::s3_endpoint`): `_started`, gzip-compressed data
//! files of bounded size (`files`; DynamoDB JSON lines or text Ion, `ion`),
//! `manifest-files.json` and `manifest-summary.json` with their `.checksum`s; then the export
//! turns COMPLETED, or FAILED with a FailureCode and FailureMessage. Its record lives in the
//! backup store (`exports/<id>.json`), beside the backups, so exports outlive a restart and
//! every node sharing the store lists them; an export left IN_PROGRESS by a stopped server is
//! written again from the start by the next one (under a lease, so by one node). Which exports
//! those are the engine itself notes (`in_flight`), so that a start with none to resume reads one
//! range of its own storage instead of listing the backup store (a bucket, perhaps) on a thread of
//! its own. docs/backups.md has the layout and the differences from AWS.

mod files;
mod ion;
mod ops;
mod worker;

use std::ops::Bound;

use haven_storage::{CommitError, Engine, StorageError, WriteBatch};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::backup::PointInTime;
use crate::backup::store::{BackupStore, StoreError};
use crate::error::DynamoError;

pub(crate) use ops::{describe_export, export_table_to_point_in_time, list_exports};
pub(crate) use worker::resume;

/// What the backup store keeps about one export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExportRecord {
    pub arn: String,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    pub status: String,
    pub start_ms: u64,
    pub end_ms: Option<u64>,
    pub table_arn: String,
    pub table_name: String,
    /// The table's TableId (a UUID) and its number in storage (its log's).
    pub table_id: String,
    pub table_number: u64,
    pub client_token: Option<String>,
    pub bucket: String,
    pub bucket_owner: Option<String>,
    pub prefix: Option<String>,
    pub sse_algorithm: String,
    /// `DYNAMODB_JSON` or `ION`.
    pub format: String,
    /// `FULL_EXPORT` or `INCREMENTAL_EXPORT`.
    pub export_type: String,
    /// A full export's moment and what it is read from.
    pub full: Option<PointInTime>,
    pub incremental: Option<Incremental>,
    pub item_count: u64,
    pub billed_size_bytes: u64,
    pub failure: Option<(String, String)>,
    /// The request's parameters besides ClientToken: a token used again must come with these.
    pub request: Value,
}

/// An incremental export's window (from inclusive, to exclusive) and view type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Incremental {
    pub from_ms: u64,
    pub to_ms: u64,
    /// `NEW_AND_OLD_IMAGES` or `NEW_IMAGE`.
    pub view_type: String,
}

impl ExportRecord {
    fn id(&self) -> &str {
        self.arn.rsplit('/').next().unwrap_or_default()
    }

    /// `<prefix>/AWSDynamoDB/<id>`: where the export's objects go.
    pub(crate) fn root(&self) -> String {
        match self.prefix.as_deref().map(|p| p.trim_end_matches('/')) {
            Some(prefix) if !prefix.is_empty() => format!("{prefix}/AWSDynamoDB/{}", self.id()),
            _ => format!("AWSDynamoDB/{}", self.id()),
        }
    }

    fn manifest_key(&self) -> String {
        format!("{}/manifest-summary.json", self.root())
    }

    /// ExportDescription (ExportTableToPointInTime, DescribeExport).
    pub(crate) fn description(&self) -> Value {
        let mut description = json!({
            "ExportArn": self.arn,
            "ExportStatus": self.status,
            "StartTime": seconds(self.start_ms),
            "TableArn": self.table_arn,
            "TableId": self.table_id,
            "S3Bucket": self.bucket,
            "S3SseAlgorithm": self.sse_algorithm,
            "ExportFormat": self.format,
            "ExportType": self.export_type,
        });
        let optional = [
            ("EndTime", self.end_ms.map(seconds)),
            ("ClientToken", self.client_token.clone().map(Value::from)),
            ("S3BucketOwner", self.bucket_owner.clone().map(Value::from)),
            ("S3Prefix", self.prefix.clone().map(Value::from)),
            (
                "ExportTime",
                self.full.as_ref().map(|f| seconds(f.until_ms)),
            ),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                description[name] = value;
            }
        }
        if let Some(window) = &self.incremental {
            description["IncrementalExportSpecification"] = json!({
                "ExportFromTime": seconds(window.from_ms),
                "ExportToTime": seconds(window.to_ms),
                "ExportViewType": window.view_type,
            });
        }
        if self.status == "COMPLETED" {
            description["ExportManifest"] = json!(self.manifest_key());
            description["ItemCount"] = json!(self.item_count);
            description["BilledSizeBytes"] = json!(self.billed_size_bytes);
        }
        if let Some((code, message)) = &self.failure {
            description["FailureCode"] = json!(code);
            description["FailureMessage"] = json!(message);
        }
        description
    }

    /// ExportSummary (ListExports).
    fn summary(&self) -> Value {
        json!({
            "ExportArn": self.arn,
            "ExportStatus": self.status,
            "ExportType": self.export_type,
        })
    }
}

fn seconds(ms: u64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// An export's id, when `arn` has the shape `<table arn>/export/<14 digits>-<8 hex digits>`.
fn export_id(arn: &str) -> Option<&str> {
    crate::backup::job_id(arn, "/export/")
}

fn record_key(id: &str) -> String {
    format!("exports/{id}.json")
}

pub(crate) fn save(store: &dyn BackupStore, record: &ExportRecord) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(record).map_err(|e| StoreError(e.to_string()))?;
    store.put(&record_key(record.id()), &bytes)
}

/// The record of the export `arn` names; ExportNotFoundException if there is none.
fn load(store: &dyn BackupStore, arn: &str) -> Result<ExportRecord, DynamoError> {
    let not_found = || DynamoError::ExportNotFound(format!("Export not found: {arn}"));
    let id = export_id(arn).ok_or_else(not_found)?;
    let record = stored(store, id)?.ok_or_else(not_found)?;
    if record.arn != arn {
        return Err(not_found());
    }
    Ok(record)
}

/// The record of the export with id `id`, if the store has one.
fn stored(store: &dyn BackupStore, id: &str) -> Result<Option<ExportRecord>, StoreError> {
    let Some(bytes) = store.get(&record_key(id))? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| StoreError(format!("export record {id} is damaged: {error}")))
}

/// `SYSTEM | "export-in-flight/" | export id` → nothing: the engine's note that an export of one
/// of its tables may still be IN_PROGRESS. Committed before the export's record is saved and
/// deleted once its end is recorded (or a start finds it ended), so every export a stopped server
/// left IN_PROGRESS has one.
const IN_FLIGHT: &[u8] = b"\x03export-in-flight/";
/// The first key after every `IN_FLIGHT` key ('0' follows '/').
const IN_FLIGHT_END: &[u8] = b"\x03export-in-flight0";

fn in_flight_key(id: &str) -> Vec<u8> {
    [IN_FLIGHT, id.as_bytes()].concat()
}

/// Notes that the export `id` is in flight, before its record is saved.
async fn note_in_flight(engine: &dyn Engine, id: &str) -> Result<(), DynamoError> {
    let mut batch = WriteBatch::new();
    batch.put(in_flight_key(id), Vec::new());
    match engine.commit(batch).await {
        Ok(()) => Ok(()),
        Err(CommitError::Storage(error)) => Err(error.into()),
        Err(CommitError::Conflict) => Err(DynamoError::InternalServerError), // it expects nothing
    }
}

/// Deletes the note that the export `id` is in flight.
fn forget_in_flight(engine: &dyn Engine, id: &str) -> Result<(), CommitError> {
    let mut batch = WriteBatch::new();
    batch.delete(in_flight_key(id));
    engine.commit(batch).wait()
}

/// The ids of the exports the engine notes as in flight.
fn in_flight(engine: &dyn Engine) -> Result<Vec<String>, StorageError> {
    let mut ids = Vec::new();
    let range = (Bound::Included(IN_FLIGHT), Bound::Excluded(IN_FLIGHT_END));
    engine.snapshot()?.scan(range, false, &mut |key, _| {
        ids.push(String::from_utf8_lossy(&key[IN_FLIGHT.len()..]).into_owned());
        true
    })?;
    Ok(ids)
}

/// Every export record in the store, oldest first.
pub(crate) fn all(store: &dyn BackupStore) -> Result<Vec<ExportRecord>, StoreError> {
    let mut records = Vec::new();
    for key in store.list("exports/")? {
        let Some(bytes) = store.get(&key)? else {
            continue; // deleted since the listing
        };
        match serde_json::from_slice::<ExportRecord>(&bytes) {
            Ok(record) => records.push(record),
            Err(error) => tracing::warn!(key, %error, "skipping a damaged export record"),
        }
    }
    records.sort_by(|a, b| (a.start_ms, &a.arn).cmp(&(b.start_ms, &b.arn)));
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_ids_are_read_back_only_from_well_formed_arns() {
        let arn = "arn:aws:dynamodb:us-east-1:000000000000:table/t/export/01604475114253-3d7e0f34";
        assert_eq!(export_id(arn), Some("01604475114253-3d7e0f34"));
        for bad in [
            "arn:aws:dynamodb:us-east-1:000000000000:table/t/export/../../x",
            "arn:aws:dynamodb:us-east-1:000000000000:table/t/export/0160447511425-3d7e0f34",
            "arn:aws:dynamodb:us-east-1:000000000000:table/t/backup/01604475114253-3d7e0f34",
        ] {
            assert_eq!(export_id(bad), None, "{bad}");
        }
    }
}
