//! Point-in-time recovery: UpdateContinuousBackups, DescribeContinuousBackups and
//! RestoreTableToPointInTime, built from a base image and the change log.
//!
//! Enabling PITR bumps the table's schema version (so every write committed after it appends its
//! log record, as for a stream: `changes::stage`), then takes a base image from a snapshot taken
//! after that commit and records the snapshot's log head: every change after the image is in the
//! log from that position on. The log worker keeps a PITR table's records from its base position
//! (`log_floor`), not only the stream retention. A restore to a moment T writes the base image,
//! then replays the table's log records after the base position committed at or before T.
//! Re-basing (a newer image so the log can be trimmed to the recovery period) is not built yet.

use std::collections::HashMap;
use std::sync::Arc;

use haven_storage::LogPosition;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ops::blocking;
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
}

pub(crate) fn enabled(meta: &TableMeta) -> bool {
    meta.pitr.is_some()
}

/// The earliest log position each PITR table needs kept, by table id.
pub(crate) fn log_floor(catalog: &Arc<Catalog>) -> HashMap<u64, LogPosition> {
    let mut floors = HashMap::new();
    for name in catalog.names() {
        if let Ok(Some(meta)) = catalog.get(&name)
            && let Some(pitr) = &meta.pitr
        {
            let (timestamp_ms, sequence) = pitr.base_position.unwrap_or((pitr.enabled_ms, 0));
            floors.insert(
                meta.id,
                LogPosition {
                    timestamp_ms,
                    sequence,
                },
            );
        }
    }
    floors
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
                });
                updated.schema_version += 1;
            }
            (Some(_), false) => {
                updated.pitr = None;
                updated.schema_version += 1;
            }
            (None, false) => break current,
        }
        if service.catalog.update(&current, updated).await? {
            break lookup(service, &name)?;
        }
        retries.conflict().await?;
    };
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
    let head = snapshot.log_head()?;
    let stats = Catalog::stats(&*snapshot, &stored)?;
    let created_ms = crate::streams::now_ms();
    let id = super::new_backup_id(created_ms);
    let record = BackupRecord {
        arn: format!("{}/backup/{id}", stored.arn),
        name: "pitr-base".into(),
        status: "AVAILABLE".into(),
        created: created_ms as f64 / 1000.0,
        size_bytes: stats.size_bytes,
        item_count: stats.item_count,
        parts: 0,
        table: stored.clone(),
    };
    let base_key = format!("pitr/{}/{id}", stored.table_uuid);
    let key = base_key.clone();
    let record = blocking(&service.backups, move |store| {
        let written = super::image::write(&*snapshot, &record.table, store, |part| {
            format!("{key}/part-{part:05}.json")
        })?;
        let record = BackupRecord {
            parts: written.parts,
            ..record
        };
        // The base's record lives under pitr/, apart from the backups ListBackups reads.
        store.put(
            &format!("{key}.json"),
            &serde_json::to_vec(&record).unwrap_or_default(),
        )?;
        Ok(record)
    })
    .await?;
    let mut updated = stored.clone();
    if let Some(pitr) = &mut updated.pitr {
        pitr.base = Some(base_key);
        pitr.base_position = Some((head.timestamp_ms, head.sequence));
    }
    drop(record);
    service.catalog.update(&stored, updated).await?;
    lookup(service, &meta.name)
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
fn window(service: &Service, pitr: &PitrMeta) -> Result<(u64, u64), DynamoError> {
    let now = crate::streams::now_ms().max(service.engine.snapshot()?.log_head()?.timestamp_ms);
    let base = pitr
        .base_position
        .map_or(pitr.enabled_ms, |(ms, _)| ms.max(pitr.enabled_ms));
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
    let base_key = pitr.base.clone().unwrap_or_default();
    let key = format!("{base_key}.json");
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
            base: base_key,
            table_id: meta.id,
            base_position: pitr.base_position.unwrap_or_default(),
            until_ms: moment,
        }),
    };
    let target = input.target_table_name.clone().unwrap_or_default();
    super::restore::start(service, &input.overrides, &record, &target, summary).await
}
