//! CreateBackup, DescribeBackup, ListBackups and DeleteBackup: validation in DynamoDB's order,
//! then the store. Store calls run on blocking threads (`blocking`).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::store::BackupStore;
use super::{BackupRecord, all_records, description, details, load_record, save_record};
use crate::Service;
use crate::catalog::TableMeta;
use crate::error::{DynamoError, Violations};

/// Runs store work on a blocking thread, off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Arc<dyn BackupStore>,
    work: impl FnOnce(&dyn BackupStore) -> Result<T, DynamoError> + Send + 'static,
) -> Result<T, DynamoError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || work(&*store))
        .await
        .map_err(|_| DynamoError::InternalServerError)?
}

/// Checks a BackupArn member's length (AWS: 37 to 1024 characters).
pub(crate) fn check_backup_arn(violations: &mut Violations, arn: Option<&str>) {
    violations.required_length("backupArn", arn, 37, 1024);
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateBackupInput {
    table_name: Option<String>,
    backup_name: Option<String>,
}

pub(crate) async fn create_backup(
    service: &Service,
    input: CreateBackupInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    violations.name("tableName", input.table_name.as_deref());
    violations.name("backupName", input.backup_name.as_deref());
    violations.into_result()?;
    let name = input.table_name.unwrap_or_default();
    service.catalog.refresh()?;
    let not_found = || DynamoError::TableNotFound(format!("Table not found: {name}"));
    let cached = service.catalog.get(&name)?.ok_or_else(not_found)?;
    if super::restoring(&cached) {
        return Err(DynamoError::TableInUse(format!(
            "Table is being restored: {name}"
        )));
    }
    // The image and the metadata come from one snapshot: the backup's moment.
    let snapshot = service.engine.snapshot()?;
    let meta = service
        .catalog
        .stored_meta(&*snapshot, &name)?
        .ok_or_else(not_found)?;
    let stats = crate::Catalog::stats(&*snapshot, &meta)?;
    let created_ms = crate::streams::now_ms();
    let id = super::new_backup_id(created_ms);
    let record = BackupRecord {
        arn: format!("{}/backup/{id}", meta.arn),
        name: input.backup_name.unwrap_or_default(),
        status: "CREATING".into(),
        created: created_ms as f64 / 1000.0,
        size_bytes: stats.size_bytes,
        item_count: stats.item_count,
        parts: 0,
        heartbeat: created_ms as f64 / 1000.0,
        table: meta,
    };
    let saved = record.clone();
    blocking(&service.backups, move |store| {
        Ok(save_record(store, &saved)?)
    })
    .await?;
    super::image::spawn_writer(service.backups.clone(), snapshot, record.clone(), id);
    Ok(json!({ "BackupDetails": details(&record) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BackupArnInput {
    backup_arn: Option<String>,
}

impl BackupArnInput {
    fn validated(self) -> Result<String, DynamoError> {
        let mut violations = Violations::new();
        check_backup_arn(&mut violations, self.backup_arn.as_deref());
        violations.into_result()?;
        Ok(self.backup_arn.unwrap_or_default())
    }
}

pub(crate) async fn describe_backup(
    service: &Service,
    input: BackupArnInput,
) -> Result<Value, DynamoError> {
    let arn = input.validated()?;
    let record = blocking(&service.backups, move |store| load_record(store, &arn)).await?;
    Ok(json!({ "BackupDescription": description(&record) }))
}

pub(crate) async fn delete_backup(
    service: &Service,
    input: BackupArnInput,
) -> Result<Value, DynamoError> {
    let arn = input.validated()?;
    let lookup = arn.clone();
    let record = blocking(&service.backups, move |store| load_record(store, &lookup)).await?;
    if record.status == "CREATING" {
        return Err(in_use(&arn, "being created"));
    }
    service.catalog.refresh()?;
    if restoring_from(service, &arn)? {
        return Err(in_use(&arn, "being restored"));
    }
    let deleting = record.clone();
    blocking(&service.backups, move |store| {
        super::delete_image(store, &deleting)?;
        Ok(())
    })
    .await?;
    let mut described = description(&record);
    described["BackupDetails"]["BackupStatus"] = json!("DELETED");
    Ok(json!({ "BackupDescription": described }))
}

/// BackupInUseException for a backup another operation is using.
fn in_use(arn: &str, doing: &str) -> DynamoError {
    DynamoError::BackupInUse(format!("Backup is {doing}: {arn}"))
}

/// Whether some table is still being restored from the backup.
fn restoring_from(service: &Service, arn: &str) -> Result<bool, DynamoError> {
    for name in service.catalog.names() {
        let restoring = service
            .catalog
            .get(&name)?
            .is_some_and(|meta: Arc<TableMeta>| {
                meta.restore
                    .as_ref()
                    .is_some_and(|r| r.in_progress && r.source_backup_arn.as_deref() == Some(arn))
            });
        if restoring {
            return Ok(true);
        }
    }
    Ok(false)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListBackupsInput {
    table_name: Option<String>,
    limit: Option<i64>,
    time_range_lower_bound: Option<f64>,
    time_range_upper_bound: Option<f64>,
    exclusive_start_backup_arn: Option<String>,
    backup_type: Option<String>,
}

impl ListBackupsInput {
    fn check(&self) -> Result<(), DynamoError> {
        let mut violations = Violations::new();
        if let Some(name) = &self.table_name {
            violations.name("tableName", Some(name));
        }
        violations.page_limit(self.limit);
        if let Some(kind) = &self.backup_type {
            crate::ops::enum_violation(
                &mut violations,
                "backupType",
                kind,
                &["USER", "SYSTEM", "AWS_BACKUP", "ALL"],
            );
        }
        if let Some(arn) = &self.exclusive_start_backup_arn {
            check_backup_arn(&mut violations, Some(arn));
        }
        violations.into_result()
    }

    /// Whether a backup passes the table, time range and type filters.
    fn selects(&self, record: &BackupRecord) -> bool {
        let table = self
            .table_name
            .as_ref()
            .is_none_or(|t| *t == record.table.name);
        let after = self
            .time_range_lower_bound
            .is_none_or(|lower| record.created >= lower);
        let before = self
            .time_range_upper_bound
            .is_none_or(|upper| record.created < upper);
        let kind = self
            .backup_type
            .as_deref()
            .is_none_or(|kind| matches!(kind, "USER" | "ALL"));
        table && after && before && kind
    }
}

pub(crate) async fn list_backups(
    service: &Service,
    input: ListBackupsInput,
) -> Result<Value, DynamoError> {
    input.check()?;
    if let (Some(lower), Some(upper)) = (input.time_range_lower_bound, input.time_range_upper_bound)
        && lower >= upper
    {
        return Err(DynamoError::validation(
            "TimeRangeUpperBound must be greater than TimeRangeLowerBound",
        ));
    }
    let records = blocking(&service.backups, all_records).await?;
    let mut selected = records.iter().filter(|record| input.selects(record));
    if let Some(start) = &input.exclusive_start_backup_arn {
        selected.by_ref().find(|record| record.arn == *start);
    }
    let selected: Vec<&BackupRecord> = selected.collect();
    let limit = input.limit.unwrap_or(100) as usize;
    let page: Vec<Value> = selected
        .iter()
        .take(limit)
        .map(|r| super::summary(r))
        .collect();
    let mut response = json!({ "BackupSummaries": page });
    if selected.len() > limit {
        response["LastEvaluatedBackupArn"] = json!(selected[limit - 1].arn);
    }
    Ok(response)
}
