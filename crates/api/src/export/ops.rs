//! The three export operations: validation in AWS's order and words, the PITR window checks,
//! ClientToken idempotency, and the listing.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ExportRecord, Incremental};
use crate::Service;
use crate::backup::ops::blocking;
use crate::backup::{PointInTime, pitr};
use crate::catalog::TableMeta;
use crate::error::{DynamoError, Violations};
use crate::ops::enum_violation;

/// How long a ClientToken names one export (AWS: 8 hours).
const TOKEN_WINDOW_MS: u64 = 8 * 3600 * 1000;
/// The longest incremental export window (AWS: 24 hours).
const MAX_WINDOW_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct IncrementalSpecification {
    export_from_time: Option<f64>,
    export_to_time: Option<f64>,
    export_view_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ExportInput {
    table_arn: Option<String>,
    export_time: Option<f64>,
    #[serde(skip_serializing)]
    client_token: Option<String>,
    s3_bucket: Option<String>,
    s3_bucket_owner: Option<String>,
    s3_prefix: Option<String>,
    s3_sse_algorithm: Option<String>,
    s3_sse_kms_key_id: Option<String>,
    export_format: Option<String>,
    export_type: Option<String>,
    incremental_export_specification: Option<IncrementalSpecification>,
}

impl ExportInput {
    fn check(&self) -> Result<(), DynamoError> {
        let mut violations = Violations::new();
        violations.required_length("tableArn", self.table_arn.as_deref(), 1, 1024);
        self.check_bucket(&mut violations);
        if let Some(prefix) = &self.s3_prefix {
            violations.length("s3Prefix", prefix, 0, 1024);
        }
        if let Some(token) = &self.client_token
            && token.contains('$')
        {
            violations.push(format!("Value '{token}' at 'clientToken' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[^\\$]+$"));
        }
        let enums: [(&str, &Option<String>, &[&str]); 3] = [
            ("s3SseAlgorithm", &self.s3_sse_algorithm, &["AES256", "KMS"]),
            (
                "exportFormat",
                &self.export_format,
                &["DYNAMODB_JSON", "ION"],
            ),
            (
                "exportType",
                &self.export_type,
                &["FULL_EXPORT", "INCREMENTAL_EXPORT"],
            ),
        ];
        for (field, value, allowed) in enums {
            if let Some(value) = value {
                enum_violation(&mut violations, field, value, allowed);
            }
        }
        if let Some(view) = self
            .incremental_export_specification
            .as_ref()
            .and_then(|s| s.export_view_type.as_ref())
        {
            enum_violation(
                &mut violations,
                "incrementalExportSpecification.exportViewType",
                view,
                &["NEW_IMAGE", "NEW_AND_OLD_IMAGES"],
            );
        }
        violations.into_result()?;
        if self.s3_sse_algorithm.as_deref() == Some("KMS") || self.s3_sse_kms_key_id.is_some() {
            return Err(DynamoError::validation(
                "Haven does not export with SSE-KMS: S3SseAlgorithm KMS is not supported (use AES256)",
            ));
        }
        Ok(())
    }

    /// S3Bucket's pattern and length, S3BucketOwner's 12 digits.
    fn check_bucket(&self, violations: &mut Violations) {
        let (bucket, owner) = (self.s3_bucket.as_deref(), self.s3_bucket_owner.as_deref());
        crate::backup::s3::check_bucket(violations, "", bucket, owner);
    }

    fn incremental(&self) -> bool {
        self.export_type.as_deref() == Some("INCREMENTAL_EXPORT")
    }
}

pub(crate) async fn export_table_to_point_in_time(
    service: &Service,
    input: ExportInput,
) -> Result<Value, DynamoError> {
    input.check()?;
    let arn = input.table_arn.clone().unwrap_or_default();
    let meta = table(service, &arn)?;
    let now = crate::streams::now_ms();
    let request = serde_json::to_value(&input).unwrap_or_default();
    if let Some(token) = input.client_token.clone() {
        let lookup = (token, request.clone(), now);
        let earlier = blocking(&service.backups, move |store| {
            same_token(store, &lookup.0, &lookup.1, lookup.2)
        })
        .await?;
        if let Some(earlier) = earlier {
            return Ok(json!({ "ExportDescription": earlier.description() }));
        }
    }
    let record = plan(service, &input, &meta, request, now)?;
    super::note_in_flight(&*service.engine, record.id()).await?;
    let saved = record.clone();
    blocking(&service.backups, move |store| {
        Ok(super::save(store, &saved)?)
    })
    .await?;
    super::worker::Exporter::new(service).spawn(record.clone());
    Ok(json!({ "ExportDescription": record.description() }))
}

/// The table an export names by ARN; TableNotFoundException if it has none of this server's.
fn table(service: &Service, arn: &str) -> Result<std::sync::Arc<TableMeta>, DynamoError> {
    let not_found = || DynamoError::TableNotFound(format!("Table not found: {arn}"));
    let (_, name) = arn.rsplit_once(":table/").ok_or_else(not_found)?;
    service.catalog.refresh()?;
    let meta = service.catalog.get(name)?.ok_or_else(not_found)?;
    if meta.arn != arn {
        return Err(not_found());
    }
    Ok(meta)
}

/// The export a ClientToken already names: the same export for the same parameters,
/// ExportConflictException for others.
fn same_token(
    store: &dyn crate::backup::store::BackupStore,
    token: &str,
    request: &Value,
    now: u64,
) -> Result<Option<ExportRecord>, DynamoError> {
    let earlier = super::all(store)?
        .into_iter()
        .find(|r| r.client_token.as_deref() == Some(token) && r.start_ms + TOKEN_WINDOW_MS > now);
    match earlier {
        Some(record) if &record.request != request => Err(DynamoError::ExportConflict(format!(
            "There was a conflict when attempting to export: ClientToken {token} was used with other parameters for {}",
            record.arn
        ))),
        found => Ok(found),
    }
}

/// The new export's record: the table, the moment or window (checked against the table's
/// point-in-time recovery window), and where it goes.
fn plan(
    service: &Service,
    input: &ExportInput,
    meta: &TableMeta,
    request: Value,
    now: u64,
) -> Result<ExportRecord, DynamoError> {
    let pitr_meta = meta
        .pitr
        .clone()
        .filter(|p| p.base.is_some())
        .ok_or_else(|| {
            DynamoError::PointInTimeRecoveryUnavailable(format!(
                "Point in time recovery is not enabled for table '{}'",
                meta.name
            ))
        })?;
    let window = pitr::window(service, &pitr_meta)?;
    let (full, incremental) = if input.incremental() {
        (None, Some(incremental_window(service, input, window)?))
    } else {
        let moment = full_moment(input, window)?;
        let base = pitr_meta
            .base_for(moment)
            .ok_or(DynamoError::InternalServerError)?;
        let at = PointInTime {
            base: base.key,
            table_id: meta.id,
            base_position: base.position,
            until_ms: moment,
        };
        (Some(at), None)
    };
    let id = crate::backup::new_backup_id(now);
    Ok(ExportRecord {
        arn: format!("{}/export/{id}", meta.arn),
        status: "IN_PROGRESS".into(),
        start_ms: now,
        end_ms: None,
        table_arn: meta.arn.clone(),
        table_name: meta.name.clone(),
        table_id: meta.table_uuid.clone(),
        table_number: meta.id,
        client_token: input.client_token.clone(),
        bucket: input.s3_bucket.clone().unwrap_or_default(),
        bucket_owner: input.s3_bucket_owner.clone(),
        prefix: input.s3_prefix.clone(),
        sse_algorithm: input.s3_sse_algorithm.clone().unwrap_or("AES256".into()),
        format: input
            .export_format
            .clone()
            .unwrap_or("DYNAMODB_JSON".into()),
        export_type: input.export_type.clone().unwrap_or("FULL_EXPORT".into()),
        full,
        incremental,
        item_count: 0,
        billed_size_bytes: 0,
        failure: None,
        request,
    })
}

fn millis(seconds: f64) -> u64 {
    (seconds * 1000.0).round().max(0.0) as u64
}

fn outside(what: &str, ms: u64, (earliest, latest): (u64, u64)) -> DynamoError {
    DynamoError::InvalidExportTime(format!(
        "{what} {} is not within the point in time recovery window [{}, {}]",
        ms as f64 / 1000.0,
        earliest as f64 / 1000.0,
        latest as f64 / 1000.0
    ))
}

/// A full export's moment: ExportTime (default now), inside the recovery window.
fn full_moment(input: &ExportInput, window: (u64, u64)) -> Result<u64, DynamoError> {
    if input.incremental_export_specification.is_some() {
        return Err(DynamoError::validation(
            "IncrementalExportSpecification is only valid with ExportType INCREMENTAL_EXPORT",
        ));
    }
    let moment = input.export_time.map_or(window.1, millis);
    if moment < window.0 || moment > window.1 {
        return Err(outside("ExportTime", moment, window));
    }
    Ok(moment)
}

/// An incremental export's window: from ExportFromTime to ExportToTime (default now), at least
/// the configured minimum (AWS's 15 minutes) and at most 24 hours long, inside the recovery window.
fn incremental_window(
    service: &Service,
    input: &ExportInput,
    window: (u64, u64),
) -> Result<Incremental, DynamoError> {
    if input.export_time.is_some() {
        return Err(DynamoError::validation(
            "ExportTime is not valid with ExportType INCREMENTAL_EXPORT; use IncrementalExportSpecification",
        ));
    }
    let spec = input.incremental_export_specification.as_ref();
    let from = spec.and_then(|s| s.export_from_time).ok_or_else(|| {
        DynamoError::validation(
            "IncrementalExportSpecification.ExportFromTime is required for ExportType INCREMENTAL_EXPORT",
        )
    })?;
    let (from_ms, to_ms) = (
        millis(from),
        spec.and_then(|s| s.export_to_time).map_or(window.1, millis),
    );
    let min_ms = service.config.export_min_window.as_millis() as u64;
    let length = to_ms.saturating_sub(from_ms);
    if to_ms <= from_ms || length < min_ms || length > MAX_WINDOW_MS {
        return Err(DynamoError::validation(format!(
            "The duration between ExportFromTime and ExportToTime must be at least {} minutes and at most 24 hours",
            min_ms as f64 / 60_000.0
        )));
    }
    if from_ms < window.0 {
        return Err(outside("ExportFromTime", from_ms, window));
    }
    if to_ms > window.1 {
        return Err(outside("ExportToTime", to_ms, window));
    }
    let view_type = spec.and_then(|s| s.export_view_type.clone());
    Ok(Incremental {
        from_ms,
        to_ms,
        view_type: view_type.unwrap_or("NEW_AND_OLD_IMAGES".into()),
    })
}

/// Whether an export is of this service's account and region (servers of several accounts or
/// regions may share one backup store).
fn owned(service: &Service, record: &ExportRecord) -> bool {
    let prefix = format!(
        "arn:aws:dynamodb:{}:{}:table/",
        service.config.region, service.config.account
    );
    record.table_arn.starts_with(&prefix)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescribeExportInput {
    export_arn: Option<String>,
}

pub(crate) async fn describe_export(
    service: &Service,
    input: DescribeExportInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    violations.required_length("exportArn", input.export_arn.as_deref(), 37, 1024);
    violations.into_result()?;
    let arn = input.export_arn.unwrap_or_default();
    let lookup = arn.clone();
    let record = blocking(&service.backups, move |store| super::load(store, &lookup)).await?;
    if !owned(service, &record) {
        return Err(DynamoError::ExportNotFound(format!(
            "Export not found: {arn}"
        )));
    }
    Ok(json!({ "ExportDescription": record.description() }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListExportsInput {
    table_arn: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

pub(crate) async fn list_exports(
    service: &Service,
    input: ListExportsInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    if let Some(limit) = input.max_results {
        violations.range("maxResults", limit, 1, 25);
    }
    if let Some(arn) = &input.table_arn {
        violations.length("tableArn", arn, 1, 1024);
    }
    violations.into_result()?;
    let records = blocking(&service.backups, |store| Ok(super::all(store)?)).await?;
    let mut selected: Vec<&ExportRecord> = records
        .iter()
        .filter(|r| {
            input
                .table_arn
                .as_ref()
                .is_none_or(|arn| &r.table_arn == arn)
        })
        .collect();
    if let Some(token) = &input.next_token {
        let position = selected.iter().position(|r| &r.arn == token);
        let position = position
            .ok_or_else(|| DynamoError::validation(format!("Invalid NextToken: {token}")))?;
        selected.drain(..position);
    }
    let limit = input.max_results.unwrap_or(25) as usize;
    let mut response = json!({
        "ExportSummaries": selected.iter().take(limit).map(|r| r.summary()).collect::<Vec<_>>(),
    });
    if let Some(next) = selected.get(limit) {
        response["NextToken"] = json!(next.arn);
    }
    Ok(response)
}
