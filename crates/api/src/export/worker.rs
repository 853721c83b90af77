//! The thread that writes one export: reads the table's image at the export's moment (or its
//! changes over the window) and streams it into data files, then the manifests, then marks the
//! export COMPLETED, or FAILED with the reason.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use haven_model::Item;
use haven_storage::Engine;
use md5::{Digest, Md5};
use serde_json::json;

use super::ExportRecord;
use super::files::{Change, DataFiles, Format};
use crate::backup::restore::{last_changes, position, scan_changes};
use crate::backup::s3::S3Endpoint;
use crate::backup::store::{BackupStore, StoreError};
use crate::backup::{BackupRecord, PointInTime};
use crate::catalog::{Catalog, TableMeta};
use crate::error::DynamoError;
use crate::lease::Lease;
use crate::{Service, ServiceConfig};

/// How long a node's claim on an export lasts unrenewed: another node takes over an export this
/// long after its writer stops.
const EXPORT_LEASE: Duration = Duration::from_secs(10);

/// Waits for an export's lease, a second each, before leaving it to whoever holds it: a restarted
/// server's claim from before the restart runs out within `EXPORT_LEASE`.
const CLAIM_ATTEMPTS: u32 = 2 * EXPORT_LEASE.as_secs() as u32;

/// Why an export stopped: it failed (its StopCode and StopMessage), or another node took it
/// over.
enum Stop {
    Failed(String, String),
    Lost,
}

fn failure(code: &str, message: impl Into<String>) -> Stop {
    Stop::Failed(code.into(), message.into())
}

impl From<StoreError> for Stop {
    fn from(error: StoreError) -> Stop {
        let code = if error.0.contains("NoSuchBucket") {
            "S3NoSuchBucket"
        } else if error.0.contains("AccessDenied") {
            "S3AccessDenied"
        } else {
            "UNKNOWN"
        };
        failure(code, error.0)
    }
}

impl From<DynamoError> for Stop {
    fn from(error: DynamoError) -> Stop {
        failure("UNKNOWN", error.to_string())
    }
}

impl From<String> for Stop {
    fn from(message: String) -> Stop {
        failure("UNKNOWN", message)
    }
}

/// What an export's writer needs of the service.
pub(crate) struct Exporter {
    engine: Arc<dyn Engine>,
    catalog: Arc<Catalog>,
    backups: Arc<dyn BackupStore>,
    s3: Option<S3Endpoint>,
}

/// Writes again every export a stopped server left IN_PROGRESS, on a thread (the backup store may
/// be a bucket) that starts only if the engine notes an export in flight (`super::in_flight`).
pub(crate) fn resume(
    engine: &Arc<dyn Engine>,
    catalog: &Arc<Catalog>,
    backups: &Arc<dyn BackupStore>,
    config: &ServiceConfig,
) {
    let ids = match super::in_flight(&**engine) {
        Ok(ids) if ids.is_empty() => return,
        Ok(ids) => ids,
        Err(error) => {
            tracing::error!(%error, "cannot read which exports to resume");
            return;
        }
    };
    let exporter = Exporter {
        engine: engine.clone(),
        catalog: catalog.clone(),
        backups: backups.clone(),
        s3: config.s3_endpoint.clone(),
    };
    let spawned = std::thread::Builder::new()
        .name("haven-export".into())
        .spawn(move || ids.iter().for_each(|id| exporter.resume(id)));
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the export resumer");
    }
}

impl Exporter {
    pub(crate) fn new(service: &Service) -> Exporter {
        Exporter {
            engine: service.engine.clone(),
            catalog: service.catalog.clone(),
            backups: service.backups.clone(),
            s3: service.config.s3_endpoint.clone(),
        }
    }

    /// Writes the export `id` again if it is still IN_PROGRESS and of one of this engine's
    /// tables; forgets the note of one that ended or that no run can write (its record is gone, or
    /// its table).
    fn resume(&self, id: &str) {
        match super::stored(&*self.backups, id) {
            Ok(Some(record)) if record.status == "IN_PROGRESS" && self.owns(&record) => {
                self.run(record)
            }
            Ok(_) => self.forget(id),
            Err(error) => tracing::error!(export = id, %error, "cannot read an export to resume"),
        }
    }

    fn forget(&self, id: &str) {
        if let Err(error) = super::forget_in_flight(&*self.engine, id) {
            tracing::warn!(export = id, %error, "cannot forget an ended export");
        }
    }

    /// Whether `record` is an export of one of this engine's tables (engines of several
    /// accounts or regions may share one backup store).
    fn owns(&self, record: &ExportRecord) -> bool {
        let meta = self.catalog.get(&record.table_name).ok().flatten();
        meta.is_some_and(|m| m.id == record.table_number && m.arn == record.table_arn)
    }

    /// Writes `record`'s export on a thread of its own.
    pub(crate) fn spawn(self, record: ExportRecord) {
        let spawned = std::thread::Builder::new()
            .name("haven-export".into())
            .spawn(move || self.run(record));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start an export writer");
        }
    }

    /// Writes the export while this node holds its lease, and records how it ended.
    fn run(&self, record: ExportRecord) {
        let lease = Lease::new(&format!("export/{}", record.arn), EXPORT_LEASE);
        let Some(mut record) = self.claim(&record.arn, &lease) else {
            return;
        };
        match self.write(&mut record, &lease) {
            Ok(()) => record.status = "COMPLETED".into(),
            Err(Stop::Lost) => return, // another node writes it
            Err(Stop::Failed(code, message)) => {
                tracing::warn!(export = record.arn, code, message, "export failed");
                record.status = "FAILED".into();
                record.failure = Some((code, message));
            }
        }
        record.end_ms = Some(crate::streams::now_ms());
        match super::save(&*self.backups, &record) {
            Ok(()) => self.forget(record.id()),
            Err(error) => {
                tracing::error!(export = record.arn, %error, "cannot record how an export ended")
            }
        }
    }

    /// Takes the export's lease (waiting a bounded time for a holder's claim to run out) and
    /// answers its record as stored then; None if it is no longer IN_PROGRESS or the lease stays
    /// another node's.
    fn claim(&self, arn: &str, lease: &Lease) -> Option<ExportRecord> {
        for _ in 0..CLAIM_ATTEMPTS {
            if lease.hold(&*self.engine).unwrap_or(false) {
                let record = super::load(&*self.backups, arn).ok()?;
                return (record.status == "IN_PROGRESS").then_some(record);
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        None
    }

    /// Writes every object of the export while this node holds its lease.
    fn write(&self, record: &mut ExportRecord, lease: &Lease) -> Result<(), Stop> {
        let endpoint = self.s3.as_ref().ok_or_else(|| {
            failure(
                "UNKNOWN",
                "this server has no S3 endpoint to export to (haven serve --s3-endpoint)",
            )
        })?;
        let bucket = endpoint.bucket(&record.bucket);
        let root = record.root();
        bucket.put(&format!("{root}/_started"), b"")?;
        let format = Format::parse(&record.format);
        let mut files = DataFiles::new(&bucket, &root, format);
        let mut sink = Sink {
            files: &mut files,
            lease,
            engine: &*self.engine,
            items: 0,
            bytes: 0,
        };
        self.lines(record, format, &mut sink)?;
        let (items, bytes) = (sink.items, sink.bytes);
        if !lease.hold(&*self.engine).unwrap_or(false) {
            return Err(Stop::Lost);
        }
        record.item_count = items;
        record.billed_size_bytes = bytes;
        write_manifests(&bucket, record, files.finish()?)
    }

    /// Adds the export's lines to `sink`: the table's items at the moment, or its changes over
    /// the window.
    fn lines(&self, record: &ExportRecord, format: Format, sink: &mut Sink) -> Result<(), Stop> {
        match (&record.full, &record.incremental) {
            (Some(at), _) => self.full(at, &mut |item| {
                sink.add(&format.item_line(&item), haven_model::item_size(&item))
            }),
            (None, Some(window)) => {
                let old_image = window.view_type == "NEW_AND_OLD_IMAGES";
                for change in self.changes(record, window.from_ms, window.to_ms)? {
                    let size = change.new.as_ref().map_or(0, haven_model::item_size);
                    sink.add(&format.change_line(&change, old_image), size)?;
                }
                Ok(())
            }
            (None, None) => Err(failure(
                "UNKNOWN",
                "an export with neither a moment nor a window",
            )),
        }
    }

    /// Visits every item of the table at `at`'s moment: the base image's items, each replaced by
    /// the last change of its key up to the moment, then the keys the base did not have.
    fn full(
        &self,
        at: &PointInTime,
        visit: &mut dyn FnMut(Item) -> Result<(), Stop>,
    ) -> Result<(), Stop> {
        let mut changes = last_changes(&*self.engine, at)?;
        let base = self.base(&format!("{}.json", at.base))?;
        let (keys, prefix) = (base.table.keys(), base.table.item_prefix());
        for part in 0..base.parts {
            let key = format!("{}/part-{part:05}.json", at.base);
            for item in crate::backup::image::read_part(&*self.backups, &key)? {
                let storage_key = keys.storage_key(&prefix, &keys.project_key(&item));
                match changes.remove(&storage_key) {
                    Some((_, later)) => later.map_or(Ok(()), &mut *visit)?,
                    None => visit(item)?,
                }
            }
        }
        for (_, later) in changes.into_values() {
            later.map_or(Ok(()), &mut *visit)?;
        }
        Ok(())
    }

    fn base(&self, key: &str) -> Result<BackupRecord, Stop> {
        let bytes = self.backups.get(key)?;
        let bytes = bytes.ok_or_else(|| format!("the PITR base image {key} is missing"))?;
        serde_json::from_slice(&bytes).map_err(|e| Stop::from(format!("{key}: {e}")))
    }

    /// Each item changed in [from, to): its image as the window began and as it ended, and the
    /// time of its last write; items whose images are equal (written back, or created and
    /// deleted inside the window) are left out.
    fn changes(
        &self,
        record: &ExportRecord,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<Change>, Stop> {
        let meta = self.table(record)?;
        let keys = meta.keys();
        let mut changed: BTreeMap<Vec<u8>, Change> = BTreeMap::new();
        let range = (
            Bound::Included(position((from_ms, 0))),
            Bound::Excluded(position((to_ms, 0))),
        );
        scan_changes(&*self.engine, meta.id, range, &mut |key, old, new, ms| {
            let change = changed.entry(key.to_vec()).or_insert_with(|| Change {
                keys: keys.project_key(new.as_ref().or(old.as_ref()).unwrap_or(&Item::new())),
                old,
                new: None,
                micros: 0,
            });
            change.new = new;
            change.micros = ms * 1000;
        })?;
        Ok(changed.into_values().filter(|c| c.old != c.new).collect())
    }

    fn table(&self, record: &ExportRecord) -> Result<Arc<TableMeta>, Stop> {
        let meta = self
            .catalog
            .get(&record.table_name)
            .map_err(|e| e.to_string())?;
        meta.filter(|m| m.id == record.table_number)
            .ok_or_else(|| Stop::from(format!("table {} was deleted", record.table_name)))
    }
}

/// Where an export's lines go: the data files, with the totals and the lease kept on the way.
struct Sink<'a, 's> {
    files: &'a mut DataFiles<'s>,
    lease: &'a Lease,
    engine: &'a dyn Engine,
    items: u64,
    bytes: u64,
}

impl Sink<'_, '_> {
    fn add(&mut self, line: &str, size: usize) -> Result<(), Stop> {
        self.items += 1;
        self.bytes += size as u64;
        if self.files.add(line)? && !self.lease.hold(self.engine).unwrap_or(false) {
            return Err(Stop::Lost);
        }
        Ok(())
    }
}

/// `manifest-files.json` (a line per data file), `manifest-summary.json`, and the MD5 of each in
/// its `.checksum`.
fn write_manifests(
    bucket: &dyn BackupStore,
    record: &ExportRecord,
    files: Vec<serde_json::Value>,
) -> Result<(), Stop> {
    let root = record.root();
    let lines: String = files.iter().map(|f| format!("{f}\n")).collect();
    let files_key = format!("{root}/manifest-files.json");
    put_with_checksum(bucket, &files_key, lines.as_bytes())?;
    let iso = |ms: u64| format!("{}Z", crate::streams::label(ms));
    let end = crate::streams::now_ms();
    let mut summary = json!({
        "version": "2020-06-30",
        "exportArn": record.arn,
        "startTime": iso(record.start_ms),
        "endTime": iso(end),
        "tableArn": record.table_arn,
        "tableId": record.table_id,
        "s3Bucket": record.bucket,
        "s3Prefix": record.prefix,
        "s3SseAlgorithm": record.sse_algorithm,
        "s3SseKmsKeyId": null,
        "manifestFilesS3Key": files_key,
        "billedSizeBytes": record.billed_size_bytes,
        "itemCount": record.item_count,
        "outputFormat": record.format,
        "exportType": record.export_type,
    });
    if let Some(at) = &record.full {
        summary["exportTime"] = json!(iso(at.until_ms));
    }
    if let Some(window) = &record.incremental {
        summary["version"] = json!("2023-08-01");
        summary["exportFromTime"] = json!(iso(window.from_ms));
        summary["exportToTime"] = json!(iso(window.to_ms));
        summary["outputView"] = json!(window.view_type);
    }
    let summary_key = format!("{root}/manifest-summary.json");
    put_with_checksum(bucket, &summary_key, summary.to_string().as_bytes())
}

fn put_with_checksum(bucket: &dyn BackupStore, key: &str, body: &[u8]) -> Result<(), Stop> {
    bucket.put(key, body)?;
    let checksum = super::files::hex(&Md5::digest(body));
    let checksum_key = format!("{}.checksum", key.trim_end_matches(".json"));
    Ok(bucket.put(&checksum_key, checksum.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::store::MemoryStore;
    use haven_storage::RedbEngine;

    fn record(id: &str, status: &str) -> ExportRecord {
        let table = "arn:aws:dynamodb:us-east-1:000000000000:table/gone";
        serde_json::from_value(json!({
            "arn": format!("{table}/export/{id}"), "status": status, "start_ms": 1,
            "table_arn": table, "table_name": "gone", "table_id": "x", "table_number": 1,
            "bucket": "b", "sse_algorithm": "AES256", "format": "DYNAMODB_JSON",
            "export_type": "FULL_EXPORT", "item_count": 0, "billed_size_bytes": 0, "request": {},
        }))
        .unwrap()
    }

    /// A start finds the exports to resume in the engine's notes, and forgets the notes of those
    /// no run can write: ended, never saved, or of a table the engine no longer has.
    #[test]
    fn notes_of_exports_no_run_can_write_are_forgotten() {
        let engine: Arc<dyn Engine> = Arc::new(RedbEngine::in_memory().unwrap());
        let backups: Arc<dyn BackupStore> = Arc::new(MemoryStore::default());
        let catalog = Catalog::load(engine.clone(), Duration::ZERO).unwrap();
        assert!(super::super::in_flight(&*engine).unwrap().is_empty());
        let ids = [
            "01604475114253-00000001",
            "01604475114253-00000002",
            "01604475114253-00000003",
        ];
        super::super::save(&*backups, &record(ids[0], "COMPLETED")).unwrap();
        super::super::save(&*backups, &record(ids[1], "IN_PROGRESS")).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for id in ids {
            runtime
                .block_on(super::super::note_in_flight(&*engine, id))
                .unwrap();
        }
        assert_eq!(super::super::in_flight(&*engine).unwrap(), ids);
        let exporter = Exporter {
            engine: engine.clone(),
            catalog,
            backups,
            s3: None,
        };
        for id in ids {
            exporter.resume(id);
        }
        assert!(super::super::in_flight(&*engine).unwrap().is_empty());
    }
}
