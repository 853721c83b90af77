//! The four DynamoDB Streams operations (target `DynamoDBStreams_20120810`): ListStreams,
//! DescribeStream, GetShardIterator and GetRecords. Each reads one snapshot, so the shards it
//! sees and the records it returns agree.

use std::sync::Arc;

use haven_storage::{LogPosition, Snapshot};
use serde::Deserialize;
use serde_json::{Value, json};

use super::iterator::ShardIterator;
use super::now_ms;
use super::records::stream_record;
use super::retired;
use super::shards::{Layout, ShardRange, Stream, parse_sequence_number};
use crate::Service;
use crate::catalog::TableMeta;
use crate::error::{DynamoError, Violations};

/// Most streams or shards a page lists.
const MAX_PAGE: usize = 100;
/// Most records one GetRecords returns, and most bytes (SizeBytes summed).
const MAX_RECORDS: usize = 1000;
const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Adds a length violation of `field` when `value` is outside `min..=max` characters.
fn check_length(violations: &mut Violations, field: &str, value: &str, min: usize, max: usize) {
    let length = value.chars().count();
    let bound = if length < min {
        format!("greater than or equal to {min}")
    } else if length > max {
        format!("less than or equal to {max}")
    } else {
        return;
    };
    violations.push(format!(
        "Value '{value}' at '{field}' failed to satisfy constraint: Member must have length {bound}"
    ));
}

fn check_arn(violations: &mut Violations, field: &str, arn: Option<&str>) {
    match arn {
        None => violations.null(field),
        Some(arn) => check_length(violations, field, arn, 37, 1024),
    }
}

fn check_shard_id(violations: &mut Violations, field: &str, id: Option<&str>) {
    match id {
        None => violations.null(field),
        Some(id) => check_length(violations, field, id, 28, 65),
    }
}

/// `limit` at least 1, and at most `max` with DynamoDB Local's wording for each operation.
fn check_limit(violations: &mut Violations, limit: Option<i64>) {
    if let Some(limit) = limit.filter(|l| *l < 1) {
        violations.push(format!(
            "Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
        ));
    }
}

fn too_large(limit: Option<i64>, max: usize, message: &str) -> Result<usize, DynamoError> {
    match limit {
        Some(limit) if limit as usize > max => Err(DynamoError::validation(format!(
            "One or more parameter values were invalid: {message}"
        ))),
        Some(limit) => Ok(limit as usize),
        None => Ok(max),
    }
}

/// DescribeStream's answer for a stream it cannot find.
fn stream_not_found(arn: &str) -> DynamoError {
    DynamoError::ResourceNotFound(format!(
        "Requested resource not found: Stream: {arn} not found"
    ))
}

/// GetShardIterator's and GetRecords' answer for a stream they cannot find (DynamoDB Local's words).
fn stream_does_not_exist() -> DynamoError {
    DynamoError::ResourceNotFound("Stream does not exist".into())
}

/// The table whose stream `arn` names, and the stream's label.
fn table_of(service: &Service, arn: &str) -> Result<(Arc<TableMeta>, String), DynamoError> {
    let (table_arn, label) = arn
        .rsplit_once("/stream/")
        .ok_or_else(|| stream_not_found(arn))?;
    let name = table_arn
        .rsplit_once(":table/")
        .map(|(_, name)| name)
        .ok_or_else(|| stream_not_found(arn))?;
    let oldest = oldest_readable_ms(service);
    let has_stream = |meta: &TableMeta| {
        meta.arn == table_arn
            && meta
                .streams
                .iter()
                .any(|s| s.label == label && s.readable(oldest))
    };
    if let Some(meta) = service.catalog.get(name)?.filter(|meta| has_stream(meta)) {
        return Ok((meta, label.to_owned()));
    }
    let snapshot = service.engine.snapshot()?;
    let deleted = retired::tables(&*snapshot, Some(name), oldest)?;
    let meta = deleted
        .into_iter()
        .find(|meta| has_stream(meta))
        .ok_or_else(|| stream_not_found(arn))?;
    Ok((Arc::new(meta), label.to_owned()))
}

/// The first position a reader of `shard` would miss because retention trimmed it, if any.
fn trimmed(
    snapshot: &dyn Snapshot,
    table: &TableMeta,
    range: &ShardRange,
    after: LogPosition,
) -> Result<bool, DynamoError> {
    let horizon = snapshot.log_horizon(table.id)?;
    let last_trimmed = LogPosition {
        sequence: horizon.sequence.saturating_sub(1),
        ..horizon
    };
    Ok(horizon != LogPosition::START && after.max(range.after) < last_trimmed)
}

fn oldest_readable_ms(service: &Service) -> u64 {
    now_ms().saturating_sub(service.config.streams.retention.as_millis() as u64)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListStreamsInput {
    table_name: Option<String>,
    limit: Option<i64>,
    exclusive_start_stream_arn: Option<String>,
}

pub(crate) fn list_streams(
    service: &Service,
    input: ListStreamsInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    if let Some(name) = &input.table_name {
        violations.name("tableName", Some(name));
    }
    check_limit(&mut violations, input.limit);
    if let Some(arn) = &input.exclusive_start_stream_arn {
        check_arn(&mut violations, "exclusiveStartStreamArn", Some(arn));
    }
    violations.into_result()?;
    let limit = too_large(
        input.limit,
        MAX_PAGE,
        "Limit cannot be greater than the maximum allowed size: 100",
    )?;
    let oldest = oldest_readable_ms(service);
    let names = match &input.table_name {
        Some(name) => vec![name.clone()],
        None => service.catalog.names(),
    };
    // Newest first, as DynamoDB lists them.
    let mut streams: Vec<(u64, String, String, String)> = Vec::new();
    let mut tables = Vec::new();
    for name in &names {
        tables.extend(service.catalog.get(name)?);
    }
    let snapshot = service.engine.snapshot()?;
    let deleted = retired::tables(&*snapshot, input.table_name.as_deref(), oldest)?;
    drop(snapshot);
    tables.extend(deleted.into_iter().map(Arc::new));
    for meta in &tables {
        for stream in Stream::all(meta) {
            if stream.meta.readable(oldest) {
                let (created, label) = (stream.meta.created_ms, stream.meta.label.clone());
                streams.push((created, stream.arn(), meta.name.clone(), label));
            }
        }
    }
    streams.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let start = match &input.exclusive_start_stream_arn {
        Some(arn) => match streams.iter().position(|s| &s.1 == arn) {
            Some(at) => at + 1,
            None => streams.len(),
        },
        None => 0,
    };
    let page: Vec<Value> = streams[start..]
        .iter()
        .take(limit)
        .map(|(_, arn, table, label)| {
            json!({ "StreamArn": arn, "TableName": table, "StreamLabel": label })
        })
        .collect();
    let mut response = json!({});
    if streams.len() > start + limit {
        response["LastEvaluatedStreamArn"] = page.last().expect("a full page")["StreamArn"].clone();
    }
    response["Streams"] = Value::Array(page);
    Ok(response)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescribeStreamInput {
    stream_arn: Option<String>,
    limit: Option<i64>,
    exclusive_start_shard_id: Option<String>,
}

pub(crate) fn describe_stream(
    service: &Service,
    input: DescribeStreamInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    check_arn(&mut violations, "streamArn", input.stream_arn.as_deref());
    check_limit(&mut violations, input.limit);
    if let Some(id) = &input.exclusive_start_shard_id {
        check_shard_id(&mut violations, "exclusiveStartShardId", Some(id));
    }
    violations.into_result()?;
    let limit = too_large(
        input.limit,
        MAX_PAGE,
        "Limit cannot be greater than the maximum: 100",
    )?;
    let arn = input.stream_arn.as_deref().unwrap_or_default();
    let (meta, label) = table_of(service, arn)?;
    let stream = Stream::find(&meta, &label).ok_or_else(|| stream_not_found(arn))?;
    let snapshot = service.engine.snapshot()?;
    let layout = stream.layout(&*snapshot, oldest_readable_ms(service))?;
    // A shard id that is not one of this stream's starts the listing from the first shard.
    let first = input
        .exclusive_start_shard_id
        .as_deref()
        .and_then(|id| stream.parse_shard_id(id))
        .map_or(layout.first, |shard| (shard + 1).max(layout.first));
    let shown: Vec<u64> = (first..=layout.last).take(limit).collect();
    let shards: Vec<Value> = shown
        .iter()
        .map(|shard| stream.describe_shard(&*snapshot, &layout, *shard))
        .collect::<Result<_, _>>()?;
    let status = if stream.meta.enabled() {
        "ENABLED"
    } else {
        "DISABLED"
    };
    let mut description = json!({
        "StreamArn": arn,
        "StreamLabel": stream.meta.label,
        "StreamStatus": status,
        "StreamViewType": stream.meta.view_type,
        "CreationRequestDateTime": stream.meta.created_ms as f64 / 1000.0,
        "TableName": meta.name,
        "KeySchema": meta.key_schema,
        "Shards": shards,
    });
    if let Some(last) = shown.last().filter(|last| **last < layout.last) {
        description["LastEvaluatedShardId"] = json!(stream.shard_id(*last));
    }
    Ok(json!({ "StreamDescription": description }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetShardIteratorInput {
    stream_arn: Option<String>,
    shard_id: Option<String>,
    shard_iterator_type: Option<String>,
    sequence_number: Option<String>,
}

const ITERATOR_TYPES: [&str; 4] = [
    "TRIM_HORIZON",
    "LATEST",
    "AT_SEQUENCE_NUMBER",
    "AFTER_SEQUENCE_NUMBER",
];

fn check_iterator_request(input: &GetShardIteratorInput) -> Result<(), DynamoError> {
    let mut violations = Violations::new();
    check_arn(&mut violations, "streamArn", input.stream_arn.as_deref());
    check_shard_id(&mut violations, "shardId", input.shard_id.as_deref());
    match input.shard_iterator_type.as_deref() {
        None => violations.null("shardIteratorType"),
        Some(kind) if !ITERATOR_TYPES.contains(&kind) => violations.push(format!(
            "Value '{kind}' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            ITERATOR_TYPES.join(", ")
        )),
        Some(_) => {}
    }
    if let Some(number) = &input.sequence_number {
        check_length(&mut violations, "sequenceNumber", number, 21, 40);
    }
    violations.into_result()
}

pub(crate) fn get_shard_iterator(
    service: &Service,
    input: GetShardIteratorInput,
) -> Result<Value, DynamoError> {
    check_iterator_request(&input)?;
    let kind = input.shard_iterator_type.as_deref().unwrap_or_default();
    let by_number = kind.ends_with("SEQUENCE_NUMBER");
    let invalid = |m: &str| {
        DynamoError::validation(format!("One or more parameter values were invalid: {m}"))
    };
    if !by_number && input.sequence_number.is_some() {
        return Err(invalid(
            "SequenceNumber should not be passed for this iterator type",
        ));
    }
    let arn = input.stream_arn.as_deref().unwrap_or_default();
    let (meta, label) = table_of(service, arn).map_err(|_| stream_does_not_exist())?;
    let stream = Stream::find(&meta, &label).ok_or_else(stream_does_not_exist)?;
    let snapshot = service.engine.snapshot()?;
    let layout = stream.layout(&*snapshot, oldest_readable_ms(service))?;
    let shard = input
        .shard_id
        .as_deref()
        .and_then(|id| stream.parse_shard_id(id))
        .filter(|shard| layout.contains(*shard))
        .ok_or_else(|| DynamoError::ResourceNotFound("Shard does not exist".into()))?;
    let range = stream.range(&layout, shard);
    let after = if by_number {
        let position = input
            .sequence_number
            .as_deref()
            .and_then(parse_sequence_number)
            .filter(|p| stream.shard_of(&layout, *p) == shard)
            .ok_or_else(|| invalid("Invalid SequenceNumber"))?;
        if kind == "AT_SEQUENCE_NUMBER" {
            LogPosition {
                sequence: position.sequence.saturating_sub(1),
                ..position
            }
        } else {
            position
        }
    } else {
        start_of(&*snapshot, &meta, &layout, shard, &range, kind == "LATEST")?
    };
    if trimmed(&*snapshot, &meta, &range, after)? {
        return Err(DynamoError::TrimmedDataAccess);
    }
    let iterator = ShardIterator {
        table_id: meta.id,
        shard,
        after,
        issued_ms: now_ms(),
    };
    Ok(json!({ "ShardIterator": iterator.encode(arn) }))
}

/// Where a TRIM_HORIZON iterator (the oldest record still kept) or a LATEST one (after the last
/// record so far) starts reading.
fn start_of(
    snapshot: &dyn Snapshot,
    table: &TableMeta,
    layout: &Layout,
    shard: u64,
    range: &ShardRange,
    latest: bool,
) -> Result<LogPosition, DynamoError> {
    let before_last = |p: LogPosition| LogPosition {
        sequence: p.sequence.saturating_sub(1),
        ..p
    };
    if latest {
        let head = snapshot.log_head()?;
        let end = match range.before {
            Some(before) if layout.closed(shard) => head.min(before_last(before)),
            _ => head,
        };
        return Ok(range.after.max(end));
    }
    let horizon = snapshot.log_horizon(table.id)?;
    Ok(range.after.max(before_last(horizon)))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetRecordsInput {
    shard_iterator: Option<String>,
    limit: Option<i64>,
}

pub(crate) fn get_records(service: &Service, input: GetRecordsInput) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    match input.shard_iterator.as_deref() {
        None => violations.null("shardIterator"),
        Some(text) => check_length(&mut violations, "shardIterator", text, 1, 2048),
    }
    check_limit(&mut violations, input.limit);
    violations.into_result()?;
    let limit = too_large(
        input.limit,
        MAX_RECORDS,
        "Limit should be less than or equal to 1000",
    )?;
    let text = input.shard_iterator.as_deref().unwrap_or_default();
    let (arn, iterator) = ShardIterator::decode(text)
        .ok_or_else(|| DynamoError::validation("Invalid ShardIterator"))?;
    let lifetime = service.config.streams.iterator_lifetime.as_millis() as u64;
    if now_ms() > iterator.issued_ms.saturating_add(lifetime) {
        return Err(DynamoError::ExpiredIterator);
    }
    let (meta, label) = table_of(service, arn).map_err(|_| stream_does_not_exist())?;
    let stream = Stream::find(&meta, &label)
        .filter(|_| meta.id == iterator.table_id)
        .ok_or_else(stream_does_not_exist)?;
    let snapshot = service.engine.snapshot()?;
    let layout = stream.layout(&*snapshot, oldest_readable_ms(service))?;
    if iterator.shard > layout.last {
        return Err(DynamoError::ResourceNotFound("Shard does not exist".into()));
    }
    let range = stream.range(&layout, iterator.shard);
    if iterator.shard < layout.first || trimmed(&*snapshot, &meta, &range, iterator.after)? {
        return Err(DynamoError::TrimmedDataAccess);
    }
    let page = read_page(service, &*snapshot, &stream, &range, iterator.after, limit)?;
    haven_metrics::stream_records(&meta.name, page.records.len());
    let mut response = json!({ "Records": page.records });
    if page.more || !layout.closed(iterator.shard) {
        let next = ShardIterator {
            after: page.last,
            issued_ms: now_ms(),
            ..iterator
        };
        response["NextShardIterator"] = json!(next.encode(arn));
    }
    Ok(response)
}

/// One GetRecords page: the records, the position of the last one (or where the read started),
/// and whether the shard may hold more after it.
struct Page {
    records: Vec<Value>,
    last: LogPosition,
    more: bool,
}

fn read_page(
    service: &Service,
    snapshot: &dyn Snapshot,
    stream: &Stream,
    range: &ShardRange,
    after: LogPosition,
    limit: usize,
) -> Result<Page, DynamoError> {
    let mut page = Page {
        records: Vec::new(),
        last: after,
        more: false,
    };
    let (mut bytes, mut failure) = (0, None);
    snapshot.scan_log(stream.table.id, range.bounds(after), false, &mut |entry| {
        if page.records.len() >= limit || bytes >= MAX_RECORD_BYTES {
            page.more = true;
            return false;
        }
        let region = &service.config.region;
        match stream_record(stream.table, &entry, &stream.meta.view_type, region) {
            Ok(record) => {
                bytes += record.size;
                page.records.push(record.json);
                page.last = entry.position;
                true
            }
            Err(error) => {
                failure = Some(error);
                false
            }
        }
    })?;
    match failure {
        Some(error) => Err(error),
        None => Ok(page),
    }
}
