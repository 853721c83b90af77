//! The thread that fills an imported table: it lists the source's objects, streams each one
//! through its decompression and format, counts and logs (tracing `warn`, where AWS writes to
//! CloudWatch) each record that is not an item, and writes the items in batches of
//! `ITEMS_PER_BATCH` under a lease, so that of several nodes sharing an engine one runs it. A
//! source that cannot be read fails the import and deletes its table; anything else (storage,
//! the lease) pauses and runs the import again from its first object.

use std::sync::Arc;
use std::time::Duration;

use haven_model::Item;
use haven_storage::Engine;

use super::formats::{Csv, Format, split_csv};
use super::source::{self, Bucket, ImportSourceConfig, Record, SourceError};
use super::{ImportRecord, import_id, load_record, save_record};
use crate::backup::store::BackupStore;
use crate::backup::{Change, write_changes};
use crate::catalog::{Catalog, TableMeta};
use crate::lease::Lease;

/// Items per write batch.
const ITEMS_PER_BATCH: usize = 64;
/// Batches between two saves of the record's counters (DescribeImport's progress).
const BATCHES_PER_SAVE: u64 = 256;
/// Runs of an import (each after a pause) before it waits for the next start.
const ATTEMPTS: u32 = 30;
/// How long after its table's creation an import's record may still be on its way (ImportTable
/// creates the table, then stores the record): another node starting meanwhile waits for it.
const RECORD_GRACE_SECS: f64 = 60.0;
/// How long a node's claim on an import lasts unrenewed.
const LEASE: Duration = Duration::from_secs(10);

/// Why a run stopped short.
enum Stop {
    /// The source cannot be read: the import fails.
    Failed(SourceError),
    /// Something that may pass (storage, another node's lease): run again later.
    Retry(String),
}

impl From<SourceError> for Stop {
    fn from(error: SourceError) -> Stop {
        Stop::Failed(error)
    }
}

impl From<crate::DynamoError> for Stop {
    fn from(error: crate::DynamoError) -> Stop {
        Stop::Retry(error.message().unwrap_or_else(|| error.name().into()))
    }
}

impl From<crate::backup::store::StoreError> for Stop {
    fn from(error: crate::backup::store::StoreError) -> Stop {
        Stop::Retry(error.0)
    }
}

impl From<haven_storage::StorageError> for Stop {
    fn from(error: haven_storage::StorageError) -> Stop {
        Stop::Retry(error.to_string())
    }
}

/// What a worker needs of the service.
pub(crate) struct Importer {
    engine: Arc<dyn Engine>,
    catalog: Arc<Catalog>,
    store: Arc<dyn BackupStore>,
    source: ImportSourceConfig,
    collection_limit: u64,
}

impl Importer {
    pub(crate) fn new(
        engine: &Arc<dyn Engine>,
        catalog: &Arc<Catalog>,
        store: &Arc<dyn BackupStore>,
        config: &crate::ServiceConfig,
    ) -> Importer {
        Importer {
            engine: engine.clone(),
            catalog: catalog.clone(),
            store: store.clone(),
            source: config.import_source.clone(),
            collection_limit: config.item_collection_limit,
        }
    }

    /// Fills `table` on a thread of its own.
    pub(crate) fn spawn(self, table: String) {
        let spawned = std::thread::Builder::new()
            .name("haven-import".into())
            .spawn(move || self.attempts(&table));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start an import worker");
        }
    }

    fn attempts(&self, table: &str) {
        for attempt in 1..=ATTEMPTS {
            match self.run(table) {
                Ok(()) => return,
                Err(Stop::Failed(error)) => {
                    if let Err(Stop::Retry(reason)) = self.fail(table, error) {
                        tracing::warn!(table, reason, "cannot record a failed import");
                    }
                    return;
                }
                Err(Stop::Retry(reason)) => {
                    tracing::warn!(
                        table,
                        attempt,
                        reason,
                        "import interrupted; running it again"
                    );
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        tracing::error!(table, "import gave up; it runs again at the next start");
    }

    /// One run of the import filling `table`, or the end of one a crash interrupted.
    fn run(&self, table: &str) -> Result<(), Stop> {
        let Some(meta) = self.catalog.reload(table)? else {
            return Ok(()); // the table went
        };
        let Some(arn) = meta.import.clone() else {
            return Ok(()); // done meanwhile
        };
        let Some(mut record) = load_record(&*self.store, &arn)? else {
            if crate::ops::now() - meta.created < RECORD_GRACE_SECS {
                return Err(Stop::Retry("the import's record is not stored yet".into()));
            }
            // The import was never acknowledged: its table goes.
            return self.delete_table(table);
        };
        match record.status.as_str() {
            "COMPLETED" => return self.finish_table(table),
            "FAILED" => return self.delete_table(table),
            _ => {}
        }
        let lease = Lease::new(&format!("import/{}", import_id(&arn).unwrap_or("")), LEASE);
        let format = format_of(&record, &meta);
        let mut fill = Fill::new(self, table, &lease, &mut record);
        fill.all_objects(&format)?;
        fill.flush()?;
        record.status = "COMPLETED".into();
        record.end = Some(crate::ops::now());
        save_record(&*self.store, &record)?;
        tracing::info!(import = %arn, items = record.imported_items, errors = record.errors, "import completed");
        self.finish_table(table)
    }

    /// Records the failure, then deletes the half-filled table (as AWS leaves no table behind).
    fn fail(&self, table: &str, error: SourceError) -> Result<(), Stop> {
        let Some(arn) = self.catalog.reload(table)?.and_then(|m| m.import.clone()) else {
            return Ok(());
        };
        if let Some(mut record) = load_record(&*self.store, &arn)? {
            tracing::warn!(import = %arn, code = error.code, error = error.message, "import failed");
            record.status = "FAILED".into();
            record.end = Some(crate::ops::now());
            record.failure_code = Some(error.code.into());
            record.failure_message = Some(error.message);
            save_record(&*self.store, &record)?;
        }
        self.delete_table(table)
    }

    fn delete_table(&self, table: &str) -> Result<(), Stop> {
        for _ in 0..ATTEMPTS {
            let Some(meta) = self.catalog.reload(table)? else {
                return Ok(());
            };
            if meta.import.is_none() || self.catalog.delete_blocking(&meta)? {
                return Ok(());
            }
        }
        Err(Stop::Retry("the table kept changing".into()))
    }

    /// The table turns ACTIVE.
    fn finish_table(&self, table: &str) -> Result<(), Stop> {
        Ok(self
            .catalog
            .update_blocking(table, |meta| meta.import.take().is_some())?)
    }
}

/// The format of an import's records, with the types CSV gives key attributes.
fn format_of(record: &ImportRecord, meta: &TableMeta) -> Format {
    match record.format.as_str() {
        "ION" => Format::Ion,
        "CSV" => {
            let csv = record.format_options.as_ref().and_then(|o| o.get("Csv"));
            let text = |name: &str| csv.and_then(|c| c.get(name));
            let delimiter = text("Delimiter")
                .and_then(|d| d.as_str()?.chars().next())
                .unwrap_or(',');
            let header = text("HeaderList").and_then(|h| serde_json::from_value(h.clone()).ok());
            let key_types = meta
                .attribute_definitions
                .iter()
                .filter(|d| d.attribute_type != "S")
                .map(|d| (d.attribute_name.clone(), d.attribute_type.clone()))
                .collect();
            Format::Csv(Csv {
                delimiter,
                header,
                key_types,
            })
        }
        _ => Format::DynamoDbJson,
    }
}

/// One run's progress: the counters (in the record) and the batch being gathered.
struct Fill<'a> {
    importer: &'a Importer,
    table: &'a str,
    lease: &'a Lease,
    record: &'a mut ImportRecord,
    pending: Vec<Change>,
    batches: u64,
}

impl<'a> Fill<'a> {
    fn new(
        importer: &'a Importer,
        table: &'a str,
        lease: &'a Lease,
        record: &'a mut ImportRecord,
    ) -> Fill<'a> {
        record.processed_bytes = 0;
        record.processed_items = 0;
        record.imported_items = 0;
        record.errors = 0;
        Fill {
            importer,
            table,
            lease,
            record,
            pending: Vec::with_capacity(ITEMS_PER_BATCH),
            batches: 0,
        }
    }

    fn all_objects(&mut self, format: &Format) -> Result<(), Stop> {
        let source = &self.record.source;
        let field = |name: &str| source.get(name).and_then(|v| v.as_str()).unwrap_or("");
        let (bucket_name, prefix) = (
            field("S3Bucket").to_string(),
            field("S3KeyPrefix").to_string(),
        );
        let bucket = Bucket::open(&self.importer.source, &bucket_name)?;
        for key in bucket.list(&bucket_name, &prefix)? {
            let reader = bucket.read(&bucket_name, &key)?;
            self.object(
                source::decompressed(reader, &self.record.compression)?,
                &key,
                format,
            )?;
        }
        Ok(())
    }

    /// Reads one object's records.
    fn object(
        &mut self,
        mut reader: Box<dyn std::io::BufRead>,
        key: &str,
        format: &Format,
    ) -> Result<(), Stop> {
        let mut header = match format {
            Format::Csv(Csv {
                header: Some(list), ..
            }) => Some(list.clone()),
            _ => None,
        };
        let needs_header = matches!(format, Format::Csv(_));
        let mut buffer = Vec::new();
        for line in 1u64.. {
            let (record, bytes) = source::next_record(&mut *reader, &mut buffer, format.quoted())
                .map_err(|e| unreadable(&self.record.compression, key, e))?;
            self.record.processed_bytes += bytes as i64;
            let parsed = match record {
                Record::End => return Ok(()),
                Record::TooLong => Err(format!("longer than {} bytes", source::MAX_RECORD_BYTES)),
                Record::Read if buffer.iter().all(u8::is_ascii_whitespace) => continue,
                Record::Read if needs_header && header.is_none() => {
                    let text = String::from_utf8_lossy(&buffer);
                    match split_csv(&text, csv_delimiter(format)) {
                        Ok(names) => header = Some(names),
                        Err(error) => self.error(key, line, &error),
                    }
                    continue;
                }
                Record::Read => format.item(&buffer, header.as_deref().unwrap_or_default()),
            };
            self.record.processed_items += 1;
            match parsed.and_then(|item| self.checked(item)) {
                Ok(item) => self.push(item)?,
                Err(error) => self.error(key, line, &error),
            }
        }
        Ok(())
    }

    /// The item, if the table can hold it (key attributes, indexes' keys, size).
    fn checked(&self, item: Item) -> Result<Item, String> {
        let meta = self
            .meta()
            .map_err(|_| "the table is unreadable".to_string())?;
        let text = |e: crate::DynamoError| e.message().unwrap_or_default();
        crate::items::validate_item(&meta, &item).map_err(text)?;
        crate::items::check_item_size(&item).map_err(text)?;
        crate::indexes::validate_index_keys(&meta, &item).map_err(text)?;
        Ok(item)
    }

    fn meta(&self) -> Result<Arc<TableMeta>, Stop> {
        let meta = self.importer.catalog.get(self.table)?;
        meta.ok_or_else(|| Stop::Retry("the table went".into()))
    }

    fn error(&mut self, key: &str, line: u64, error: &str) {
        self.record.errors += 1;
        tracing::warn!(import = %self.record.arn, object = key, line, error, "import: a record is not an item; skipped");
    }

    /// Adds an item to the batch (replacing an earlier one with its key: the last one wins);
    /// writes the batch once full.
    fn push(&mut self, item: Item) -> Result<(), Stop> {
        self.record.imported_items += 1;
        let keys = self.meta()?.keys().clone();
        let key = keys.project_key(&item);
        match self
            .pending
            .iter_mut()
            .find(|(other, _)| keys.project_key(other) == key)
        {
            Some(slot) => *slot = (item.clone(), Some(item)),
            None => self.pending.push((item.clone(), Some(item))),
        }
        if self.pending.len() >= ITEMS_PER_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Stop> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let importer = self.importer;
        if !self.lease.hold(&*importer.engine)? {
            return Err(Stop::Retry("another node is running this import".into()));
        }
        let written = write_changes(
            &importer.engine,
            &importer.catalog,
            importer.collection_limit,
            self.table,
            &self.pending,
        )?;
        if !written {
            return Err(Stop::Retry("the table went".into()));
        }
        self.pending.clear();
        self.batches += 1;
        if self.batches.is_multiple_of(BATCHES_PER_SAVE) {
            save_record(&*importer.store, self.record)?;
        }
        Ok(())
    }
}

fn csv_delimiter(format: &Format) -> char {
    match format {
        Format::Csv(csv) => csv.delimiter,
        _ => ',',
    }
}

/// An object that cannot be read to its end (damaged compression, a dropped connection).
fn unreadable(compression: &str, key: &str, error: std::io::Error) -> SourceError {
    let code = if compression == "NONE" {
        "S3Error"
    } else {
        "DecompressionError"
    };
    SourceError {
        code,
        message: format!("{key}: {error}"),
    }
}
