//! Point-in-time recovery: UpdateContinuousBackups, DescribeContinuousBackups and
//! RestoreTableToPointInTime, built from a base image and the change log.
//!
//! Enabling PITR bumps the table's schema version (so every write committed after it appends its
//! log record, as for a stream: `changes::stage`), then takes a base image from a snapshot taken
//! after that commit and records the snapshot's log head: every change after the image is in the
//! log from that position on. The log worker keeps a PITR table's records from its base position
//! (`log_floor`), not only the stream retention. A restore to a moment T writes the base image,
//! then replays the table's log records after the base position committed at or before T.
//!
//! Re-basing: a worker (`spawn`, one node under the `haven-pitr` lease) takes a new base image
//! once the current one is older than the re-base interval (`ServiceConfig::pitr_rebase`, a day by
//! default). The older bases stay while a moment of the recovery period still needs them (a
//! restore starts from the newest base taken at or before its moment); once a newer base is itself
//! older than the recovery period, the ones before it are deleted, and the log's floor (what the
//! trimmer keeps) moves up to the oldest base kept. So the log a PITR table keeps is bounded by the
//! recovery period plus one interval, and a restore replays at most about one interval of changes.

use std::collections::HashMap;
use std::sync::Arc;

use haven_storage::{CommitError, Engine, LogPosition, Snapshot};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ops::blocking;
use super::store::BackupStore;
use super::{BackupRecord, RestoreSummary};
use crate::Service;
use crate::catalog::{Catalog, TableMeta};
use crate::error::{DynamoError, Violations};
use crate::retry::Retries;

/// A table's PITR setting, kept in its metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PitrMeta {
    pub enabled_ms: u64,
    pub recovery_days: u32,
    /// The store key of the base image's record, once taken.
    pub base: Option<String>,
    /// The log position the base image was taken at: its changes are the records after it.
    pub base_position: Option<(u64, u64)>,
    /// Older bases that moments of the recovery period still need, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<PitrBase>,
}

/// A base image: its store key, and the log position it was taken at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PitrBase {
    pub key: String,
    pub position: (u64, u64),
}

impl PitrMeta {
    /// Every base, oldest first (the current one last).
    fn bases(&self) -> Vec<PitrBase> {
        let current = self
            .base
            .clone()
            .zip(self.base_position)
            .map(|(key, position)| PitrBase { key, position });
        self.earlier.iter().cloned().chain(current).collect()
    }

    /// The base a restore to `moment_ms` starts from: the newest taken at or before it.
    pub(crate) fn base_for(&self, moment_ms: u64) -> Option<PitrBase> {
        let bases = self.bases();
        bases
            .iter()
            .rev()
            .find(|b| b.position.0 <= moment_ms)
            .cloned()
    }

    /// Makes `base` the current base; returns the bases no moment after `period_start_ms` needs
    /// any more (all those before the newest one taken at or before it), now forgotten.
    fn rebase(&mut self, base: PitrBase, period_start_ms: u64) -> Vec<PitrBase> {
        self.earlier = self.bases();
        self.base = Some(base.key);
        self.base_position = Some(base.position);
        let needed_from = self
            .bases()
            .iter()
            .rposition(|b| b.position.0 <= period_start_ms)
            .unwrap_or(0);
        self.earlier.drain(..needed_from).collect()
    }
}

pub(crate) fn enabled(meta: &TableMeta) -> bool {
    meta.pitr.is_some()
}

/// The earliest log position each table's log must keep for point-in-time recovery, by table
/// id: a PITR table's oldest base's, and the base position of every point-in-time restore still
/// replaying that table's log (which disabling PITR meanwhile must not cut short).
pub(crate) fn log_floor(catalog: &Arc<Catalog>) -> HashMap<u64, LogPosition> {
    let mut floors: HashMap<u64, LogPosition> = HashMap::new();
    let mut keep = |table_id: u64, (timestamp_ms, sequence): (u64, u64)| {
        let position = LogPosition {
            timestamp_ms,
            sequence,
        };
        let floor = floors.entry(table_id).or_insert(position);
        *floor = (*floor).min(position);
    };
    for name in catalog.names() {
        let Ok(Some(meta)) = catalog.get(&name) else {
            continue;
        };
        if let Some(pitr) = &meta.pitr {
            let oldest = pitr.bases().first().map(|b| b.position);
            keep(meta.id, oldest.unwrap_or((pitr.enabled_ms, 0)));
        }
        if let Some(at) = restoring_from_point_in_time(&meta) {
            keep(at.table_id, at.base_position);
        }
    }
    floors
}

/// What a table being restored to a point in time replays, while it does.
fn restoring_from_point_in_time(meta: &TableMeta) -> Option<&super::PointInTime> {
    let restore = meta.restore.as_ref().filter(|r| r.in_progress)?;
    restore.point_in_time.as_ref()
}

/// Deletes those of `bases` that nothing needs any more: neither a table's PITR (its current or
/// an earlier base) nor a point-in-time restore in progress. Whoever drops a base's last use
/// calls this: re-basing, disabling PITR, a restore finishing.
pub(crate) fn delete_unused_bases(
    catalog: &Arc<Catalog>,
    store: &dyn BackupStore,
    bases: &[String],
) {
    if bases.is_empty() {
        return;
    }
    if let Err(error) = catalog.refresh() {
        tracing::warn!(%error, "cannot tell which PITR base images are in use; keeping them");
        return;
    }
    let mut in_use = std::collections::HashSet::new();
    for name in catalog.names() {
        let Ok(Some(meta)) = catalog.get(&name) else {
            tracing::warn!(
                name,
                "cannot tell which PITR base images are in use; keeping them"
            );
            return;
        };
        if let Some(pitr) = &meta.pitr {
            in_use.extend(pitr.bases().into_iter().map(|base| base.key));
        }
        if let Some(at) = restoring_from_point_in_time(&meta) {
            in_use.insert(at.base.clone());
        }
    }
    for key in bases.iter().filter(|key| !in_use.contains(*key)) {
        delete_base(store, key);
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PitrSpecification {
    point_in_time_recovery_enabled: Option<bool>,
    recovery_period_in_days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateContinuousBackupsInput {
    table_name: Option<String>,
    point_in_time_recovery_specification: Option<PitrSpecification>,
}

fn table_not_found(name: &str) -> DynamoError {
    DynamoError::TableNotFound(format!("Table not found: {name}"))
}

fn lookup(service: &Service, name: &str) -> Result<Arc<TableMeta>, DynamoError> {
    service.catalog.refresh()?;
    service
        .catalog
        .get(name)?
        .ok_or_else(|| table_not_found(name))
}

pub(crate) async fn update_continuous_backups(
    service: &Service,
    input: UpdateContinuousBackupsInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    violations.name("tableName", input.table_name.as_deref());
    let field = "pointInTimeRecoverySpecification";
    match &input.point_in_time_recovery_specification {
        None => violations.null(field),
        Some(spec) => {
            if spec.point_in_time_recovery_enabled.is_none() {
                violations.null(&format!("{field}.pointInTimeRecoveryEnabled"));
            }
            if let Some(days) = spec.recovery_period_in_days {
                violations.range(&format!("{field}.recoveryPeriodInDays"), days, 1, 35);
            }
        }
    }
    violations.into_result()?;
    let spec = input.point_in_time_recovery_specification.unwrap();
    let name = input.table_name.unwrap_or_default();
    let enable = spec.point_in_time_recovery_enabled.unwrap_or(false);
    let days = spec.recovery_period_in_days.unwrap_or(35) as u32;
    let mut retries = Retries::new("UpdateContinuousBackups");
    let mut dropped = Vec::new();
    let meta = loop {
        let current = lookup(service, &name)?;
        let mut updated = (*current).clone();
        match (&mut updated.pitr, enable) {
            (Some(pitr), true) => pitr.recovery_days = days,
            (None, true) => {
                updated.pitr = Some(PitrMeta {
                    enabled_ms: crate::streams::now_ms(),
                    recovery_days: days,
                    base: None,
                    base_position: None,
                    earlier: Vec::new(),
                });
            }
            (Some(pitr), false) => {
                dropped = pitr.bases().into_iter().map(|base| base.key).collect();
                updated.pitr = None;
            }
            (None, false) => break current,
        }
        if service.catalog.update(&current, updated).await? {
            break lookup(service, &name)?;
        }
        retries.conflict().await?;
    };
    // PITR off: its base images go from the store, unless a restore is still reading one.
    let catalog = service.catalog.clone();
    blocking(&service.backups, move |store| {
        delete_unused_bases(&catalog, store, &dropped);
        Ok(())
    })
    .await?;
    let meta = match meta.pitr.as_ref().filter(|p| p.base.is_none()) {
        Some(_) => take_base(service, &meta).await?,
        None => meta,
    };
    Ok(json!({ "ContinuousBackupsDescription": description(service, &meta)? }))
}

/// Takes the base image of a table whose PITR has just been enabled, and records it.
async fn take_base(
    service: &Service,
    meta: &Arc<TableMeta>,
) -> Result<Arc<TableMeta>, DynamoError> {
    let snapshot = service.engine.snapshot()?;
    let stored = service.catalog.stored_meta(&*snapshot, &meta.name)?;
    let Some(stored) = stored.filter(|m| m.id == meta.id && m.pitr.is_some()) else {
        return lookup(service, &meta.name);
    };
    let table = stored.clone();
    let base = blocking(&service.backups, move |store| {
        write_base(store, &*snapshot, &table)
    })
    .await?;
    let mut updated = stored.clone();
    if let Some(pitr) = &mut updated.pitr {
        pitr.base = Some(base.key);
        pitr.base_position = Some(base.position);
    }
    service.catalog.update(&stored, updated).await?;
    lookup(service, &meta.name)
}

/// Writes a base image of `table` as `snapshot` holds it, and its record, under `pitr/` (apart
/// from the backups ListBackups reads).
fn write_base(
    store: &dyn BackupStore,
    snapshot: &dyn Snapshot,
    table: &TableMeta,
) -> Result<PitrBase, DynamoError> {
    let head = snapshot.log_head()?;
    let stats = Catalog::stats(snapshot, table)?;
    let created_ms = crate::streams::now_ms();
    let id = super::new_backup_id(created_ms);
    let key = format!("pitr/{}/{id}", table.table_uuid);
    let written = super::image::write(snapshot, table, store, |part| {
        format!("{key}/part-{part:05}.json")
    })?;
    let record = BackupRecord {
        arn: format!("{}/backup/{id}", table.arn),
        name: "pitr-base".into(),
        status: "AVAILABLE".into(),
        created: created_ms as f64 / 1000.0,
        size_bytes: stats.size_bytes,
        item_count: stats.item_count,
        parts: written.parts,
        heartbeat: 0.0,
        table: table.clone(),
    };
    store.put(
        &format!("{key}.json"),
        &serde_json::to_vec(&record).unwrap_or_default(),
    )?;
    Ok(PitrBase {
        key,
        position: (head.timestamp_ms, head.sequence),
    })
}

/// Deletes a base image: its record, then its parts.
fn delete_base(store: &dyn BackupStore, key: &str) {
    let parts = store.list(&format!("{key}/"));
    let deleted = store
        .delete(&format!("{key}.json"))
        .and(parts)
        .and_then(|parts| parts.iter().try_for_each(|part| store.delete(part)));
    if let Err(error) = deleted {
        tracing::warn!(key, %error, "cannot delete an old PITR base image; it stays in the store");
    }
}

/// Starts the re-basing worker: every table with PITR gets a new base once its current one is
/// older than `every`.
pub(crate) fn spawn(
    engine: Arc<dyn Engine>,
    catalog: Arc<Catalog>,
    store: Arc<dyn BackupStore>,
    every: std::time::Duration,
    stop: crate::background::Stop,
) {
    let period = (every / 4).clamp(
        std::time::Duration::from_millis(200),
        std::time::Duration::from_secs(60),
    );
    let worker = engine.clone();
    crate::background::spawn_periodic("haven-pitr", worker, period, stop, move || {
        rebase_due(&engine, &catalog, &*store, every)
    });
}

/// One round of the re-basing worker.
fn rebase_due(
    engine: &Arc<dyn Engine>,
    catalog: &Arc<Catalog>,
    store: &dyn BackupStore,
    every: std::time::Duration,
) -> Result<(), DynamoError> {
    let every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
    for name in catalog.names() {
        let Some(meta) = catalog.get(&name)? else {
            continue;
        };
        let due = meta
            .pitr
            .as_ref()
            .and_then(|p| p.base_position)
            .is_some_and(|(taken_ms, _)| {
                crate::streams::now_ms() >= taken_ms.saturating_add(every_ms)
            });
        if due {
            rebase(engine, catalog, store, &meta)?;
        }
    }
    Ok(())
}

/// Takes a new base of `meta`'s table, and forgets (and deletes) the bases no longer needed. A
/// concurrent change of the table's metadata wins: the new image is deleted and the next round
/// tries again.
fn rebase(
    engine: &Arc<dyn Engine>,
    catalog: &Arc<Catalog>,
    store: &dyn BackupStore,
    meta: &TableMeta,
) -> Result<(), DynamoError> {
    let snapshot = engine.snapshot()?;
    let stored = catalog.stored_meta(&*snapshot, &meta.name)?;
    let Some(stored) = stored.filter(|m| m.id == meta.id && m.pitr == meta.pitr) else {
        return Ok(());
    };
    let base = write_base(store, &*snapshot, &stored)?;
    drop(snapshot);
    let mut updated = stored.clone();
    let Some(pitr) = updated.pitr.as_mut() else {
        return Ok(());
    };
    let period_ms = u64::from(pitr.recovery_days) * 86_400_000;
    let period_start = crate::streams::now_ms().saturating_sub(period_ms);
    let forgotten = pitr.rebase(base.clone(), period_start);
    let (batch, installation) = Catalog::update_batch(&stored, updated);
    match catalog.commit_blocking(batch, installation) {
        Ok(()) => {
            tracing::info!(
                table = meta.name,
                base = base.key,
                "PITR base image renewed"
            );
            let forgotten: Vec<String> = forgotten.into_iter().map(|old| old.key).collect();
            delete_unused_bases(catalog, store, &forgotten);
            Ok(())
        }
        Err(CommitError::Conflict) => {
            delete_base(store, &base.key);
            catalog.reload(&meta.name)?;
            Ok(())
        }
        Err(CommitError::Storage(error)) => Err(error.into()),
    }
}

/// ContinuousBackupsDescription.
fn description(service: &Service, meta: &TableMeta) -> Result<Value, DynamoError> {
    let Some(pitr) = &meta.pitr else {
        return Ok(json!({
            "ContinuousBackupsStatus": "ENABLED",
            "PointInTimeRecoveryDescription": { "PointInTimeRecoveryStatus": "DISABLED" },
        }));
    };
    let (earliest, latest) = window(service, pitr)?;
    Ok(json!({
        "ContinuousBackupsStatus": "ENABLED",
        "PointInTimeRecoveryDescription": {
            "PointInTimeRecoveryStatus": "ENABLED",
            "RecoveryPeriodInDays": pitr.recovery_days,
            "EarliestRestorableDateTime": earliest as f64 / 1000.0,
            "LatestRestorableDateTime": latest as f64 / 1000.0,
        },
    }))
}

/// The restorable window in milliseconds: from the base image (or the recovery period's start,
/// if later) to now.
pub(crate) fn window(service: &Service, pitr: &PitrMeta) -> Result<(u64, u64), DynamoError> {
    let now = crate::streams::now_ms().max(service.engine.snapshot()?.log_head()?.timestamp_ms);
    let oldest = pitr.bases().first().map(|b| b.position.0);
    let base = oldest.map_or(pitr.enabled_ms, |ms| ms.max(pitr.enabled_ms));
    let period_start = now.saturating_sub(u64::from(pitr.recovery_days) * 86_400_000);
    Ok((base.max(period_start), now))
}

pub(crate) fn describe_continuous_backups(
    service: &Service,
    input: crate::ops::TableNameInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    violations.name("tableName", input.table_name.as_deref());
    violations.into_result()?;
    let meta = lookup(service, input.table_name.as_deref().unwrap_or_default())?;
    Ok(json!({ "ContinuousBackupsDescription": description(service, &meta)? }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RestoreToPointInTimeInput {
    source_table_name: Option<String>,
    source_table_arn: Option<String>,
    target_table_name: Option<String>,
    use_latest_restorable_time: Option<bool>,
    restore_date_time: Option<f64>,
    #[serde(flatten)]
    overrides: super::restore::Overrides,
}

pub(crate) async fn restore_table_to_point_in_time(
    service: &Service,
    input: RestoreToPointInTimeInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    violations.name("targetTableName", input.target_table_name.as_deref());
    if let Some(name) = &input.source_table_name {
        violations.name("sourceTableName", Some(name));
    }
    input.overrides.check(&mut violations);
    violations.into_result()?;
    let source = match (&input.source_table_name, &input.source_table_arn) {
        (Some(name), None) => name.clone(),
        (None, Some(arn)) => arn
            .rsplit_once(":table/")
            .map_or(arn.clone(), |(_, n)| n.to_string()),
        _ => {
            return Err(DynamoError::validation(
                "One or more parameter values were invalid: Exactly one of SourceTableName or SourceTableArn must be specified",
            ));
        }
    };
    let meta = lookup(service, &source)?;
    let pitr = meta
        .pitr
        .clone()
        .filter(|p| p.base.is_some())
        .ok_or_else(|| {
            DynamoError::PointInTimeRecoveryUnavailable(format!(
                "Point in time recovery is not enabled for table '{source}'"
            ))
        })?;
    let (earliest, latest) = window(service, &pitr)?;
    let moment = match (input.use_latest_restorable_time, input.restore_date_time) {
        (Some(true), None) => latest,
        (None | Some(false), Some(at)) => (at * 1000.0).round() as u64,
        _ => {
            return Err(DynamoError::validation(
                "One or more parameter values were invalid: Exactly one of RestoreDateTime or UseLatestRestorableTime must be specified",
            ));
        }
    };
    if moment < earliest || moment > latest {
        return Err(DynamoError::InvalidRestoreTime(format!(
            "Restore time {} is not within the restorable window [{}, {}]",
            moment as f64 / 1000.0,
            earliest as f64 / 1000.0,
            latest as f64 / 1000.0
        )));
    }
    let base = pitr
        .base_for(moment)
        .ok_or(DynamoError::InternalServerError)?;
    let key = format!("{}.json", base.key);
    let record = blocking(&service.backups, move |store| {
        let bytes = store.get(&key)?.ok_or(DynamoError::InternalServerError)?;
        serde_json::from_slice::<BackupRecord>(&bytes).map_err(|_| DynamoError::InternalServerError)
    })
    .await?;
    let summary = RestoreSummary {
        source_backup_arn: None,
        source_table_arn: meta.arn.clone(),
        restore_date_time: moment as f64 / 1000.0,
        in_progress: true,
        point_in_time: Some(super::PointInTime {
            base: base.key,
            table_id: meta.id,
            base_position: base.position,
            until_ms: moment,
        }),
    };
    let target = input.target_table_name.clone().unwrap_or_default();
    super::restore::start(service, &input.overrides, &record, &target, summary).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(ms: u64) -> PitrBase {
        PitrBase {
            key: format!("pitr/t/{ms}"),
            position: (ms, ms * 10),
        }
    }

    fn times(bases: &[PitrBase]) -> Vec<u64> {
        bases.iter().map(|b| b.position.0).collect()
    }

    #[test]
    fn a_base_is_forgotten_once_a_newer_one_covers_the_recovery_period() {
        let mut pitr = PitrMeta {
            enabled_ms: 100,
            recovery_days: 1,
            base: Some(base(100).key),
            base_position: Some(base(100).position),
            earlier: Vec::new(),
        };
        // Nothing is older than the period's start: every base stays.
        assert!(pitr.rebase(base(200), 50).is_empty());
        assert!(pitr.rebase(base(300), 150).is_empty());
        assert_eq!(times(&pitr.bases()), [100, 200, 300]);
        // The period now starts at 250: 200 is the newest base at or before it, so 100 goes.
        assert_eq!(times(&pitr.rebase(base(400), 250)), [100]);
        assert_eq!(times(&pitr.bases()), [200, 300, 400]);
        // A restore starts from the newest base at or before its moment.
        assert_eq!(pitr.base_for(299).map(|b| b.position.0), Some(200));
        assert_eq!(pitr.base_for(300).map(|b| b.position.0), Some(300));
        assert_eq!(pitr.base_for(1_000).map(|b| b.position.0), Some(400));
        assert_eq!(pitr.base_for(199), None);
        // The period starts after every base but the newest: only the newest stays.
        assert_eq!(times(&pitr.rebase(base(500), 600)), [200, 300, 400]);
        assert_eq!(times(&pitr.bases()), [500]);
    }
}
