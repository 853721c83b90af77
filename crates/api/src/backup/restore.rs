//! RestoreTableFromBackup: the new table is created at once (CREATING, with its RestoreSummary)
//! and a worker thread fills it from the image through the normal batch path, which writes index
//! entries and counters with each item; the table turns ACTIVE once every part is in. A restart
//! resumes any restore its metadata says is in progress (`resume_restores`).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use haven_model::Item;
use haven_model::item_codec::decode_item;
use haven_storage::{CommitError, Engine, LogPosition, WriteBatch};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ops::{blocking, check_backup_arn};
use super::store::BackupStore;
use super::{BackupRecord, RestoreSummary, load_record};
use crate::catalog::{Catalog, IndexKind, TableMeta, Throughput};
use crate::error::{DynamoError, Violations};
use crate::lease::Lease;
use crate::ops::{ProvisionedThroughputInput, check_billing, check_throughput, enum_violation};
use crate::retry::Retries;
use crate::{Service, ServiceConfig};

/// One change a restore writes: an item holding the key, and the item to write (None deletes).
pub(crate) type Change = (Item, Option<Item>);

/// Items per write batch while restoring.
const ITEMS_PER_BATCH: usize = 64;
/// Commit attempts of one batch before the restore pauses and starts over.
const BATCH_ATTEMPTS: u32 = 256;
/// Attempts of a whole restore (each after a pause) before it waits for the next restart.
const RESTORE_ATTEMPTS: u32 = 30;
/// How long a node's claim on a restore lasts unrenewed: another node takes the restore over
/// this long after its worker stops.
const RESTORE_LEASE: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IndexOverride {
    index_name: Option<String>,
}

/// The members RestoreTableFromBackup and RestoreTableToPointInTime share.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Overrides {
    billing_mode_override: Option<String>,
    global_secondary_index_override: Option<Vec<IndexOverride>>,
    local_secondary_index_override: Option<Vec<IndexOverride>>,
    provisioned_throughput_override: Option<ProvisionedThroughputInput>,
}

impl Overrides {
    pub(crate) fn check(&self, violations: &mut Violations) {
        if let Some(mode) = &self.billing_mode_override {
            enum_violation(
                violations,
                "billingModeOverride",
                mode,
                &["PROVISIONED", "PAY_PER_REQUEST"],
            );
        }
        if let Some(throughput) = &self.provisioned_throughput_override {
            check_throughput(violations, "provisionedThroughputOverride", throughput);
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RestoreTableFromBackupInput {
    target_table_name: Option<String>,
    backup_arn: Option<String>,
    #[serde(flatten)]
    overrides: Overrides,
}

pub(crate) async fn restore_table_from_backup(
    service: &Service,
    input: RestoreTableFromBackupInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    violations.name("targetTableName", input.target_table_name.as_deref());
    check_backup_arn(&mut violations, input.backup_arn.as_deref());
    input.overrides.check(&mut violations);
    violations.into_result()?;
    let arn = input.backup_arn.clone().unwrap_or_default();
    let lookup = arn.clone();
    let record = blocking(&service.backups, move |store| load_record(store, &lookup)).await?;
    if record.status != "AVAILABLE" {
        return Err(DynamoError::BackupInUse(format!(
            "Backup is being created: {arn}"
        )));
    }
    let summary = RestoreSummary {
        source_backup_arn: Some(arn),
        source_table_arn: record.table.arn.clone(),
        restore_date_time: crate::ops::now(),
        in_progress: true,
        point_in_time: None,
    };
    let target = input.target_table_name.clone().unwrap_or_default();
    start(service, &input.overrides, &record, &target, summary).await
}

/// Creates the restored table (CREATING) from the image's metadata and starts filling it.
pub(crate) async fn start(
    service: &Service,
    overrides: &Overrides,
    record: &BackupRecord,
    target: &str,
    summary: RestoreSummary,
) -> Result<Value, DynamoError> {
    let exists = || DynamoError::TableAlreadyExists(format!("Table already exists: {target}"));
    service.catalog.refresh()?;
    if service.catalog.get(target)?.is_some() {
        return Err(exists());
    }
    let meta = restored_meta(service, overrides, record, target, summary)?;
    let meta = service
        .catalog
        .create(meta, &mut Retries::new("RestoreTable"))
        .await?
        .ok_or_else(exists)?;
    Restorer::new(service).spawn(target.to_string());
    let description = crate::ops::describe(service, &meta, "CREATING")?;
    Ok(json!({ "TableDescription": description }))
}

/// The new table's metadata: the backed-up table's schema under the new name, with the overrides
/// applied; streams, TTL, tags and deletion protection are not restored (as in AWS).
fn restored_meta(
    service: &Service,
    input: &Overrides,
    record: &BackupRecord,
    target: &str,
    summary: RestoreSummary,
) -> Result<TableMeta, DynamoError> {
    let mut meta = record.table.clone();
    let now = crate::ops::now();
    meta.indexes.retain(|index| index.status != "DELETING");
    keep_indexes(
        &mut meta,
        IndexKind::Global,
        &input.global_secondary_index_override,
    )?;
    keep_indexes(
        &mut meta,
        IndexKind::Local,
        &input.local_secondary_index_override,
    )?;
    for index in &mut meta.indexes {
        index.status = "ACTIVE".into();
        index.backfilling = false;
    }
    meta.drop_unused_definitions();
    override_billing(&mut meta, input, now)?;
    meta.arn = format!(
        "arn:aws:dynamodb:{}:{}:table/{target}",
        service.config.region, service.config.account
    );
    meta.name = target.to_string();
    meta.table_uuid = uuid::Uuid::new_v4().to_string();
    meta.created = now;
    meta.version = 0;
    meta.tags = Vec::new();
    meta.time_to_live = None;
    meta.deletion_protection = false;
    meta.streams = Vec::new();
    meta.pitr = None;
    meta.resource_policies = Vec::new();
    meta.contributor_insights = Vec::new();
    meta.restore = Some(summary);
    Ok(meta)
}

/// Keeps only the indexes of `kind` an override names (all of them without an override); an
/// override naming an index the backup does not have is refused.
fn keep_indexes(
    meta: &mut TableMeta,
    kind: IndexKind,
    keep: &Option<Vec<IndexOverride>>,
) -> Result<(), DynamoError> {
    let Some(keep) = keep else { return Ok(()) };
    let names: Vec<&str> = keep
        .iter()
        .filter_map(|i| i.index_name.as_deref())
        .collect();
    if let Some(unknown) = names.iter().find(|name| {
        !meta
            .indexes
            .iter()
            .any(|i| i.kind == kind && i.name == **name)
    }) {
        return Err(DynamoError::validation(format!(
            "One or more parameter values were invalid: The index {unknown} does not exist in the backup"
        )));
    }
    meta.indexes
        .retain(|index| index.kind != kind || names.contains(&index.name.as_str()));
    Ok(())
}

/// Applies BillingModeOverride and ProvisionedThroughputOverride, checked as CreateTable checks
/// its billing members.
fn override_billing(meta: &mut TableMeta, input: &Overrides, now: f64) -> Result<(), DynamoError> {
    let mode = input
        .billing_mode_override
        .clone()
        .unwrap_or_else(|| meta.billing_mode.clone());
    let throughput = input.provisioned_throughput_override.as_ref();
    if input.billing_mode_override.is_some() || throughput.is_some() {
        let kept = ProvisionedThroughputInput {
            read_capacity_units: Some(meta.throughput.read_capacity_units),
            write_capacity_units: Some(meta.throughput.write_capacity_units),
        };
        let fallback =
            (mode == "PROVISIONED" && meta.billing_mode == "PROVISIONED").then_some(&kept);
        check_billing(&mode, throughput.or(fallback))?;
    }
    if mode == "PAY_PER_REQUEST" {
        meta.throughput = Throughput::default();
        meta.pay_per_request_since.get_or_insert(now);
        meta.indexes.iter_mut().for_each(|i| i.throughput = None);
    } else if let Some(t) = throughput {
        meta.throughput = Throughput {
            read_capacity_units: t.read_capacity_units.unwrap_or(0),
            write_capacity_units: t.write_capacity_units.unwrap_or(0),
            ..Throughput::default()
        };
    }
    meta.billing_mode = mode;
    Ok(())
}

/// The last change of each key (by storage key) in the source table's log after the base image,
/// up to the moment `at` names: what a point-in-time restore replays over the base image, and
/// what a full export overlays on it (`crate::export`).
pub(crate) fn last_changes(
    engine: &dyn Engine,
    at: &super::PointInTime,
) -> Result<BTreeMap<Vec<u8>, Change>, DynamoError> {
    let from = position(at.base_position);
    let until = position((at.until_ms, u64::MAX));
    let mut last: BTreeMap<Vec<u8>, Change> = BTreeMap::new();
    let range = (Bound::Excluded(from), Bound::Included(until));
    scan_changes(engine, at.table_id, range, &mut |key, old, new, _| {
        if let Some(key_source) = new.clone().or(old) {
            last.insert(key.to_vec(), (key_source, new));
        }
    })?;
    Ok(last)
}

pub(crate) fn position((timestamp_ms, sequence): (u64, u64)) -> LogPosition {
    LogPosition {
        timestamp_ms,
        sequence,
    }
}

/// What `scan_changes` calls for each record: storage key, old item, new item, commit ms.
pub(crate) type ChangeVisitor<'a> = dyn FnMut(&[u8], Option<Item>, Option<Item>, u64) + 'a;

/// Visits table `table_id`'s log records in `range`, oldest first, with their items decoded:
/// (storage key, old item, new item, commit time in ms). An undecodable item is an
/// InternalServerError (logged).
pub(crate) fn scan_changes(
    engine: &dyn Engine,
    table_id: u64,
    range: (Bound<LogPosition>, Bound<LogPosition>),
    visit: &mut ChangeVisitor<'_>,
) -> Result<(), DynamoError> {
    let mut damaged = None;
    let snapshot = engine.snapshot()?;
    snapshot.scan_log(table_id, range, false, &mut |entry| {
        let decode = |bytes: &Option<Vec<u8>>| bytes.as_deref().map(decode_item).transpose();
        match (decode(&entry.record.old), decode(&entry.record.new)) {
            (Ok(old), Ok(new)) => {
                visit(&entry.record.key, old, new, entry.position.timestamp_ms);
            }
            (Err(error), _) | (_, Err(error)) => damaged = Some(error),
        }
        damaged.is_none()
    })?;
    if let Some(error) = damaged {
        tracing::error!(%error, "undecodable item in the change log");
        return Err(DynamoError::InternalServerError);
    }
    Ok(())
}

/// What a restore worker needs of the service.
struct Restorer {
    engine: Arc<dyn Engine>,
    catalog: Arc<Catalog>,
    store: Arc<dyn BackupStore>,
    collection_limit: u64,
}

/// Starts a worker for every table whose restore a previous run left in progress.
pub(crate) fn resume_restores(
    engine: &Arc<dyn Engine>,
    catalog: &Arc<Catalog>,
    store: &Arc<dyn BackupStore>,
    config: &ServiceConfig,
) {
    for name in catalog.names() {
        let Ok(Some(meta)) = catalog.get(&name) else {
            continue;
        };
        if meta.restore.as_ref().is_some_and(|r| r.in_progress) {
            let restorer = Restorer {
                engine: engine.clone(),
                catalog: catalog.clone(),
                store: store.clone(),
                collection_limit: config.item_collection_limit,
            };
            restorer.spawn(name);
        }
    }
}

impl Restorer {
    fn new(service: &Service) -> Restorer {
        Restorer {
            engine: service.engine.clone(),
            catalog: service.catalog.clone(),
            store: service.backups.clone(),
            collection_limit: service.config.item_collection_limit,
        }
    }

    /// Fills `table` from the backup on a thread of its own, pausing and starting over after a
    /// failure (a bounded number of times; a restart resumes it after that).
    fn spawn(self, table: String) {
        let spawned = std::thread::Builder::new()
            .name("haven-restore".into())
            .spawn(move || {
                for attempt in 1..=RESTORE_ATTEMPTS {
                    match self.run(&table) {
                        Ok(()) => return,
                        Err(error) => {
                            tracing::warn!(table, attempt, %error, "restore failed; retrying");
                            std::thread::sleep(Duration::from_secs(1));
                        }
                    }
                }
                tracing::error!(table, "restore gave up; it resumes at the next start");
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start a restore worker");
        }
    }

    fn run(&self, table: &str) -> Result<(), String> {
        let text = |e: DynamoError| e.message().unwrap_or_else(|| e.name().into());
        let meta = self.catalog.get(table).map_err(|e| e.to_string())?;
        let Some((id, summary)) = meta.and_then(|m| Some((m.id, m.restore.clone()?))) else {
            return Ok(()); // the table went
        };
        // Nodes sharing an engine all resume a restore at start; one at a time does the work.
        let lease = Lease::new(&format!("restore/{id}"), RESTORE_LEASE);
        let (record_key, parts_key) = match (&summary.point_in_time, &summary.source_backup_arn) {
            (Some(at), _) => (format!("{}.json", at.base), at.base.clone()),
            (None, Some(arn)) => {
                let id = super::backup_id(arn).unwrap_or_default();
                (super::record_key(id), format!("backups/{id}"))
            }
            (None, None) => return Err("a restore with no source".into()),
        };
        let record = self.record(&record_key)?;
        for part in 0..record.parts {
            let key = format!("{parts_key}/part-{part:05}.json");
            let items = super::image::read_part(&*self.store, &key)?;
            let changes: Vec<Change> = items.into_iter().map(|i| (i.clone(), Some(i))).collect();
            if !self.write_all(table, &changes, &lease)? {
                return Ok(()); // the table went
            }
        }
        if let Some(at) = &summary.point_in_time {
            let changes = last_changes(&*self.engine, at).map_err(text)?;
            let changes: Vec<Change> = changes.into_values().collect();
            if !self.write_all(table, &changes, &lease)? {
                return Ok(());
            }
        }
        self.finish(table).map_err(text)
    }

    fn record(&self, key: &str) -> Result<BackupRecord, String> {
        let bytes = self.store.get(key).map_err(|e| e.to_string())?;
        let bytes = bytes.ok_or_else(|| format!("{key} is missing"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{key}: {e}"))
    }

    /// Writes changes in batches while this node holds the restore's lease; false if the table
    /// went.
    fn write_all(&self, table: &str, changes: &[Change], lease: &Lease) -> Result<bool, String> {
        let text = |e: DynamoError| e.message().unwrap_or_else(|| e.name().into());
        for chunk in changes.chunks(ITEMS_PER_BATCH) {
            if !lease.hold(&*self.engine).map_err(|e| e.to_string())? {
                return Err("another node is running this restore".into());
            }
            if !self.write(table, chunk).map_err(text)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn write(&self, table: &str, changes: &[Change]) -> Result<bool, DynamoError> {
        write_changes(
            &self.engine,
            &self.catalog,
            self.collection_limit,
            table,
            changes,
        )
    }

    /// Marks the restore done: the table turns ACTIVE. A point-in-time restore's base image goes
    /// if its table no longer needs it (PITR disabled or re-based meanwhile).
    fn finish(&self, table: &str) -> Result<(), DynamoError> {
        let mut base = None;
        self.catalog
            .update_blocking(table, |meta| match meta.restore.as_mut() {
                Some(restore) if restore.in_progress => {
                    restore.in_progress = false;
                    base = restore.point_in_time.as_ref().map(|at| at.base.clone());
                    true
                }
                _ => false,
            })?;
        let bases: Vec<String> = base.into_iter().collect();
        super::pitr::delete_unused_bases(&self.catalog, &*self.store, &bases);
        Ok(())
    }
}

/// Writes a chunk of changes (those not already there as they are) through the normal batch
/// path, index entries and counters included, retrying conflicts; false if the table went. A
/// restore and an import (`crate::import`) fill their tables with it.
pub(crate) fn write_changes(
    engine: &Arc<dyn Engine>,
    catalog: &Arc<Catalog>,
    collection_limit: u64,
    table: &str,
    changes: &[Change],
) -> Result<bool, DynamoError> {
    for _ in 0..BATCH_ATTEMPTS {
        let Some(meta) = catalog.get(table)? else {
            return Ok(false);
        };
        let snapshot = engine.snapshot()?;
        let mut batch = WriteBatch::new();
        for (key_source, item) in changes {
            let key = meta.keys().project_key(key_source);
            let current = crate::items::read_item(&*snapshot, &meta, &key)?;
            if current.as_ref().map(|(_, stored)| stored) == item.as_ref() {
                continue;
            }
            crate::items::stage_item_write(
                &*snapshot,
                &meta,
                crate::items::ItemKey::new(&meta, &key),
                current.as_ref(),
                item.as_ref(),
                &mut batch,
                collection_limit,
            )?;
        }
        drop(snapshot);
        match engine.commit(batch).wait() {
            Ok(()) => return Ok(true),
            Err(CommitError::Conflict) => {
                catalog.reload(table)?;
            }
            Err(CommitError::Storage(error)) => return Err(error.into()),
        }
    }
    Err(DynamoError::InternalServerError)
}
