//! The three operations: ImportTable (checks, idempotency by ClientToken, the table created
//! CREATING, the record stored, the worker started), DescribeImport and ListImports.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::worker::Importer;
use super::{ImportRecord, all_records, load_record, save_record};
use crate::Service;
use crate::backup::ops::blocking;
use crate::error::{DynamoError, Violations};
use crate::ops::{CreateTableInput, enum_violation, new_table_meta};
use crate::retry::Retries;

/// How long a ClientToken names its import (AWS: 8 hours).
const TOKEN_WINDOW_SECS: f64 = 8.0 * 3600.0;
/// Imports in progress at once (AWS's quota per account).
const MAX_IN_PROGRESS: usize = 50;
/// The length of a ListImports NextToken (AWS: 112 to 1024 hex digits, in groups of 16).
const TOKEN_LENGTH: usize = 112;

#[derive(Deserialize, Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct S3BucketSource {
    #[serde(skip_serializing_if = "Option::is_none")]
    s3_bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    s3_bucket_owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    s3_key_prefix: Option<String>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct CsvOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    delimiter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header_list: Option<Vec<String>>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct InputFormatOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    csv: Option<CsvOptions>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ImportTableInput {
    #[serde(skip_serializing)]
    client_token: Option<String>,
    s3_bucket_source: Option<S3BucketSource>,
    input_format: Option<String>,
    input_format_options: Option<InputFormatOptions>,
    input_compression_type: Option<String>,
    table_creation_parameters: Option<Value>,
}

pub(crate) async fn import_table(
    service: &Service,
    input: ImportTableInput,
) -> Result<Value, DynamoError> {
    check(&input)?;
    let creation = input.table_creation_parameters.clone().unwrap_or_default();
    let parameters: CreateTableInput = crate::ops::parse(creation.clone())?;
    let mut meta = new_table_meta(service, &parameters).map_err(under_parameters)?;
    let fingerprint = serde_json::to_string(&input).unwrap_or_default();
    let records = {
        let all = blocking(&service.backups, |store| Ok(all_records(store)?));
        all.await?
    };
    if let Some(existing) = same_token(&records, &input, &fingerprint)? {
        return Ok(json!({ "ImportTableDescription": described(service, existing) }));
    }
    if records.iter().filter(|r| r.status == "IN_PROGRESS").count() >= MAX_IN_PROGRESS {
        return Err(DynamoError::LimitExceeded(format!(
            "There is a limit of {MAX_IN_PROGRESS} concurrent imports per account"
        )));
    }
    let now = crate::ops::now();
    let id = crate::backup::new_backup_id((now * 1000.0) as u64);
    let arn = format!("{}/import/{id}", meta.arn);
    meta.import = Some(arn.clone());
    let name = meta.name.clone();
    let in_use = || DynamoError::ResourceInUse(format!("Table already exists: {name}"));
    service.catalog.refresh()?;
    if service.catalog.get(&name)?.is_some() {
        return Err(in_use());
    }
    let meta = service
        .catalog
        .create(meta, &mut Retries::new("ImportTable"))
        .await?
        .ok_or_else(in_use)?;
    let record = ImportRecord {
        arn,
        status: "IN_PROGRESS".into(),
        table_name: name.clone(),
        table_arn: meta.arn.clone(),
        table_id: meta.table_uuid.clone(),
        client_token: input.client_token.clone(),
        fingerprint,
        source: json!(input.s3_bucket_source),
        format: input.input_format.clone().unwrap_or_default(),
        format_options: input.input_format_options.as_ref().map(|o| json!(o)),
        compression: input
            .input_compression_type
            .clone()
            .unwrap_or_else(|| "NONE".into()),
        creation,
        start: now,
        end: None,
        processed_bytes: 0,
        processed_items: 0,
        imported_items: 0,
        errors: 0,
        failure_code: None,
        failure_message: None,
    };
    let saved = record.clone();
    blocking(&service.backups, move |store| {
        Ok(save_record(store, &saved)?)
    })
    .await?;
    Importer::new(
        &service.engine,
        &service.catalog,
        &service.backups,
        &service.config,
    )
    .spawn(name);
    Ok(json!({ "ImportTableDescription": described(service, record) }))
}

/// The request's own members, checked as AWS's front end checks them.
fn check(input: &ImportTableInput) -> Result<(), DynamoError> {
    let mut violations = Violations::new();
    if let Some(token) = &input.client_token
        && (token.is_empty() || token.contains('$'))
    {
        violations.push(format!(
            "Value '{token}' at 'clientToken' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[^\\$]+$"
        ));
    }
    match &input.s3_bucket_source {
        None => violations.null("s3BucketSource"),
        Some(source) => check_source(&mut violations, source),
    }
    match &input.input_format {
        None => violations.null("inputFormat"),
        Some(format) => enum_violation(
            &mut violations,
            "inputFormat",
            format,
            &["DYNAMODB_JSON", "ION", "CSV"],
        ),
    }
    if let Some(compression) = &input.input_compression_type {
        enum_violation(
            &mut violations,
            "inputCompressionType",
            compression,
            &["GZIP", "ZSTD", "NONE"],
        );
    }
    if let Some(csv) = input
        .input_format_options
        .as_ref()
        .and_then(|o| o.csv.as_ref())
    {
        check_csv(&mut violations, csv);
    }
    if input.table_creation_parameters.is_none() {
        violations.null("tableCreationParameters");
    }
    violations.into_result()
}

fn check_source(violations: &mut Violations, source: &S3BucketSource) {
    let (bucket, owner) = (
        source.s3_bucket.as_deref(),
        source.s3_bucket_owner.as_deref(),
    );
    crate::backup::s3::check_bucket(violations, "s3BucketSource.", bucket, owner);
    if let Some(prefix) = &source.s3_key_prefix {
        violations.length("s3BucketSource.s3KeyPrefix", prefix, 0, 1024);
    }
}

fn check_csv(violations: &mut Violations, csv: &CsvOptions) {
    if let Some(delimiter) = &csv.delimiter
        && !(delimiter.chars().count() == 1 && ",;:|\t ".contains(delimiter.as_str()))
    {
        violations.push(format!(
            "Value '{delimiter}' at 'inputFormatOptions.csv.delimiter' failed to satisfy constraint: Member must satisfy regular expression pattern: [,;:|\\t ]"
        ));
    }
    if let Some(header) = &csv.header_list {
        if header.is_empty() || header.len() > 255 {
            violations.push(format!(
                "Value '[{}]' at 'inputFormatOptions.csv.headerList' failed to satisfy constraint: Member must have length between 1 and 255",
                header.join(", ")
            ));
        }
        for (i, name) in header.iter().enumerate() {
            let field = format!("inputFormatOptions.csv.headerList.{}.member", i + 1);
            violations.length(&field, name, 1, 65536);
        }
    }
}

/// CreateTable's checks name their members from the table's parameters; ImportTable's from the
/// request (`tableCreationParameters.tableName`).
fn under_parameters(error: DynamoError) -> DynamoError {
    match error {
        DynamoError::Validation(message) if message.contains(" validation error") => {
            DynamoError::Validation(message.replace(" at '", " at 'tableCreationParameters."))
        }
        other => other,
    }
}

/// The import a reused ClientToken names (same parameters, within its window); an
/// ImportConflictException when its parameters differ.
fn same_token(
    records: &[ImportRecord],
    input: &ImportTableInput,
    fingerprint: &str,
) -> Result<Option<ImportRecord>, DynamoError> {
    let Some(token) = &input.client_token else {
        return Ok(None);
    };
    let now = crate::ops::now();
    let earlier = records
        .iter()
        .rev()
        .find(|r| r.client_token.as_ref() == Some(token) && now - r.start < TOKEN_WINDOW_SECS);
    match earlier {
        Some(record) if record.fingerprint == fingerprint => Ok(Some(record.clone())),
        Some(_) => Err(DynamoError::ImportConflict(format!(
            "Import with ClientToken {token} already exists with different parameters"
        ))),
        None => Ok(None),
    }
}

fn described(service: &Service, record: ImportRecord) -> Value {
    as_seen(service, record).description(&service.config.region, &service.config.account)
}

/// The record as clients see it: an import whose table has not yet turned ACTIVE (or gone, after
/// a failure) is still IN_PROGRESS, whatever the worker already recorded.
fn as_seen(service: &Service, mut record: ImportRecord) -> ImportRecord {
    let table = service.catalog.get(&record.table_name).ok().flatten();
    if table.is_some_and(|meta| meta.import.as_ref() == Some(&record.arn)) {
        record.status = "IN_PROGRESS".into();
        record.end = None;
        record.failure_code = None;
        record.failure_message = None;
    }
    record
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescribeImportInput {
    import_arn: Option<String>,
}

pub(crate) async fn describe_import(
    service: &Service,
    input: DescribeImportInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    violations.required_length("importArn", input.import_arn.as_deref(), 37, 1024);
    violations.into_result()?;
    let arn = input.import_arn.unwrap_or_default();
    let lookup = arn.clone();
    service.catalog.refresh()?;
    let record = blocking(&service.backups, move |store| {
        Ok(load_record(store, &lookup)?)
    })
    .await?
    .ok_or_else(|| DynamoError::ImportNotFound(format!("Import not found: {arn}")))?;
    Ok(json!({ "ImportTableDescription": described(service, record) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListImportsInput {
    table_arn: Option<String>,
    page_size: Option<i64>,
    next_token: Option<String>,
}

pub(crate) async fn list_imports(
    service: &Service,
    input: ListImportsInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    if let Some(arn) = &input.table_arn {
        violations.length("tableArn", arn, 1, 1024);
    }
    if let Some(size) = input.page_size {
        violations.range("pageSize", size, 1, 25);
    }
    let after = input
        .next_token
        .as_ref()
        .map(|token| read_token(&mut violations, token));
    violations.into_result()?;
    let records = blocking(&service.backups, |store| Ok(all_records(store)?)).await?;
    service.catalog.refresh()?;
    let page_size = input.page_size.unwrap_or(25) as usize;
    let matching: Vec<&ImportRecord> = records
        .iter()
        .filter(|r| {
            input
                .table_arn
                .as_ref()
                .is_none_or(|arn| &r.table_arn == arn)
        })
        .skip_while(|r| after.as_ref().is_some_and(|after| &r.arn != after))
        .skip(usize::from(after.is_some()))
        .collect();
    let page = &matching[..matching.len().min(page_size)];
    let (region, account) = (&service.config.region, &service.config.account);
    let summaries: Vec<Value> = page
        .iter()
        .map(|r| as_seen(service, (*r).clone()).summary(region, account))
        .collect();
    let mut response = json!({ "ImportSummaryList": summaries });
    if matching.len() > page_size
        && let Some(last) = page.last()
    {
        response["NextToken"] = json!(token(&last.arn));
    }
    Ok(response)
}

/// A NextToken: the last listed import's ARN in hex, zero-padded to AWS's token length.
fn token(arn: &str) -> String {
    let mut hex: String = arn.bytes().map(|b| format!("{b:02x}")).collect();
    let padded = hex.len().max(TOKEN_LENGTH).div_ceil(16) * 16;
    hex.extend(std::iter::repeat_n('0', padded - hex.len()));
    hex
}

/// The ARN a NextToken names (a violation when it is not one of ours).
fn read_token(violations: &mut Violations, token: &str) -> String {
    let bytes: Option<Vec<u8>> = (0..token.len() / 2)
        .map(|i| u8::from_str_radix(token.get(2 * i..2 * i + 2)?, 16).ok())
        .take_while(|b| *b != Some(0))
        .collect();
    let well_formed = token.len() >= TOKEN_LENGTH
        && token.len().is_multiple_of(16)
        && token
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    match bytes.and_then(|b| String::from_utf8(b).ok()) {
        Some(arn) if well_formed => arn,
        _ => {
            violations.push(format!(
                "Value '{token}' at 'nextToken' failed to satisfy constraint: Member must satisfy regular expression pattern: ([0-9a-f]{{16}})+"
            ));
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_tokens_read_back_and_strangers_are_refused() {
        let arn = "arn:aws:dynamodb:us-east-1:000000000000:table/t/import/01576616366715-b4e58d3a";
        let made = token(arn);
        assert!(made.len() >= TOKEN_LENGTH && made.len().is_multiple_of(16));
        let mut violations = Violations::new();
        assert_eq!(read_token(&mut violations, &made), arn);
        assert!(violations.into_result().is_ok());
        for bad in ["abc", &"g".repeat(112), &made.to_uppercase()] {
            let mut violations = Violations::new();
            read_token(&mut violations, bad);
            assert!(violations.into_result().is_err(), "{bad}");
        }
    }
}
