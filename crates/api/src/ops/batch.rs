//! BatchGetItem and BatchWriteItem: many single-item reads or writes, across tables, in one call.
//! Reads come from one snapshot; the writes of a batch commit together in one storage batch (each
//! put or delete is atomic, as DynamoDB promises, and here the whole batch is too).

use std::collections::{BTreeMap, HashMap, HashSet};

use haven_model::{Item, item_size};
use haven_storage::{CommitError, WriteBatch};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Service;
use crate::catalog::TableMeta;
use crate::error::{DynamoError, Violations};
use crate::expressions::{ExpressionTexts, LegacyParams, parse_request_conditions};
use crate::indexes::IndexUnits;
use crate::items::{
    Capacity, CapacityReport, ItemKey, check_item_size, collection_metrics, read_item_at,
    read_many, read_units, refresh_tables, stage_item_write, validate_item, validate_key,
};
use crate::reply::{Member, Reply};
use crate::retry::Retries;
use crate::wire::{item_to_json, parse_item};
use crate::wire_item::{WireItem, parse_optional};

const MAX_GET_KEYS: usize = 100;
const MAX_WRITE_REQUESTS: usize = 25;
/// BatchGetItem returns at most this much; the rest goes to UnprocessedKeys.
const MAX_GET_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// In a batch, DynamoDB words every key mismatch the same way, even for a PutRequest's item.
fn batch_key_error(error: DynamoError) -> DynamoError {
    match error {
        DynamoError::Validation(message)
            if message.contains("Missing the key") || message.contains("Type mismatch for key") =>
        {
            DynamoError::validation("The provided key element does not match the schema")
        }
        other => other,
    }
}

fn capacity_list(report: CapacityReport, units: &BTreeMap<String, f64>) -> Option<Value> {
    let tables = units
        .iter()
        .map(|(table, units)| (table.as_str(), *units, &[][..]));
    report.render_tables(Capacity::Read, tables)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KeysAndAttributes {
    keys: Option<Vec<Value>>,
    consistent_read: Option<bool>,
    projection_expression: Option<String>,
    expression_attribute_names: Option<HashMap<String, String>>,
    attributes_to_get: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchGetItemInput {
    request_items: Option<BTreeMap<String, KeysAndAttributes>>,
    return_consumed_capacity: Option<String>,
}

pub(crate) async fn batch_get_item(
    service: &Service,
    input: BatchGetItemInput,
) -> Result<Reply, DynamoError> {
    let mut violations = Violations::new();
    if input.request_items.is_none() {
        violations.null("requestItems");
    }
    let report = CapacityReport::parse(&mut violations, input.return_consumed_capacity.as_deref());
    violations.into_result()?;
    let requests = input.request_items.unwrap_or_default();
    if requests.is_empty() {
        return Err(DynamoError::validation(
            "BatchGetItem must have some requests set",
        ));
    }
    let mut total = 0;
    for (table, request) in &requests {
        let keys = request.keys.as_deref().unwrap_or_default();
        if keys.is_empty() {
            return Err(DynamoError::validation(format!(
                "The list of keys in RequestItems for BatchGetItem is required: {table} has empty list"
            )));
        }
        total += keys.len();
    }
    if total > MAX_GET_KEYS {
        return Err(DynamoError::validation(
            "Too many items requested for the BatchGetItem call",
        ));
    }

    let mut responses = Vec::new();
    let mut unprocessed = Map::new();
    let mut units = BTreeMap::new();
    let mut response_bytes = 0;
    let mut admission = Admission::default();
    for (table_name, request) in &requests {
        let texts = ExpressionTexts {
            projection: request.projection_expression.as_deref(),
            ..ExpressionTexts::default()
        };
        let legacy = LegacyParams {
            attributes_to_get: request.attributes_to_get.as_deref(),
            ..LegacyParams::default()
        };
        let expressions = parse_request_conditions(
            texts,
            legacy,
            request.expression_attribute_names.as_ref(),
            None,
        )?;
        let meta = crate::items::table(service, table_name)?;
        let keys: Vec<Item> = request
            .keys
            .iter()
            .flatten()
            .map(parse_item)
            .collect::<Result<_, _>>()?;
        for (i, key) in keys.iter().enumerate() {
            validate_key(&meta, key)?;
            if keys[..i].iter().any(|k| k == key) {
                return Err(DynamoError::validation(
                    "Provided list of item keys contains duplicates",
                ));
            }
        }
        let consistent = request.consistent_read.unwrap_or(false);
        let mut found = Vec::new();
        let (keys, mut skipped): (Vec<&Item>, Vec<&Item>) = keys.iter().partition(|_| {
            admission.admits(service, &meta, Capacity::Read, read_units(0, consistent))
        });
        let mut skipped: Vec<Value> = skipped.drain(..).map(item_to_json).collect();
        let refs: Vec<(&TableMeta, &Item)> = keys.iter().map(|key| (&*meta, *key)).collect();
        let items = read_many(&*service.engine, &refs).await?;
        for (key, item) in keys.into_iter().zip(items) {
            if response_bytes >= MAX_GET_RESPONSE_BYTES {
                skipped.push(item_to_json(key));
                continue;
            }
            let item_units = read_units(item.as_ref().map_or(0, item_size), consistent);
            service
                .capacity
                .charge(&meta, Capacity::Read, item_units, &[]);
            *units.entry(table_name.clone()).or_insert(0.0) += item_units;
            if let Some(item) = item {
                response_bytes += item_size(&item);
                let item = match &expressions.projection {
                    Some(paths) => haven_expr::project(&item, paths),
                    None => item,
                };
                found.push(item);
            }
        }
        responses.push((table_name.clone(), found));
        if !skipped.is_empty() {
            let mut entry = json!({ "Keys": skipped });
            if let Some(text) = &request.projection_expression {
                entry["ProjectionExpression"] = json!(text);
            }
            if let Some(names) = &request.expression_attribute_names {
                entry["ExpressionAttributeNames"] = json!(names);
            }
            if let Some(consistent) = request.consistent_read {
                entry["ConsistentRead"] = json!(consistent);
            }
            unprocessed.insert(table_name.clone(), entry);
        }
    }
    admission.refuse_if_none_admitted()?;
    let mut reply = Reply::default();
    reply.push("Responses", Member::ItemsByTable(responses));
    reply.push("UnprocessedKeys", Member::Json(Value::Object(unprocessed)));
    if let Some(capacity) = capacity_list(report, &units) {
        reply.push("ConsumedCapacity", Member::Json(capacity));
    }
    Ok(reply)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutRequest {
    item: Option<WireItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeleteRequest {
    key: Option<WireItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WriteRequest {
    put_request: Option<PutRequest>,
    delete_request: Option<DeleteRequest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchWriteItemInput {
    request_items: Option<BTreeMap<String, Vec<WriteRequest>>>,
    return_consumed_capacity: Option<String>,
    return_item_collection_metrics: Option<String>,
}

/// One validated write: the table, the item's key (for a put, the item itself, which holds it),
/// its storage key in that table, and whether it puts the item or deletes the key.
struct PlannedWrite {
    meta: std::sync::Arc<TableMeta>,
    key: Item,
    storage_key: Vec<u8>,
    put: bool,
}

impl PlannedWrite {
    /// The new item (None deletes).
    fn item(&self) -> Option<&Item> {
        self.put.then_some(&self.key)
    }

    /// The write units it will at least consume (a delete's item is not read yet: one).
    fn units(&self) -> f64 {
        self.item()
            .map_or(1, |item| item_size(item).div_ceil(1024).max(1)) as f64
    }
}

/// Which items of a batch its tables' capacity admits (`crate::capacity::Reservation`): the
/// others are answered as unprocessed, and if none is admitted the batch is refused.
#[derive(Default)]
struct Admission {
    reservation: crate::capacity::Reservation,
    admitted: usize,
    refusal: Option<DynamoError>,
}

impl Admission {
    /// Whether one more item (`units` on `meta`'s `capacity`) is admitted.
    fn admits(
        &mut self,
        service: &Service,
        meta: &TableMeta,
        capacity: Capacity,
        units: f64,
    ) -> bool {
        let reserved =
            (service.capacity).reserve(&mut self.reservation, meta, None, capacity, units);
        match reserved {
            Ok(()) => {
                self.admitted += 1;
                true
            }
            Err(error) => {
                self.refusal.get_or_insert(error);
                false
            }
        }
    }

    /// DynamoDB refuses a batch whose items were all throttled, and answers the rest as
    /// unprocessed when some went through.
    fn refuse_if_none_admitted(&mut self) -> Result<(), DynamoError> {
        match self.refusal.take() {
            Some(refusal) if self.admitted == 0 => Err(crate::capacity::batch_refusal(refusal)),
            _ => Ok(()),
        }
    }
}

/// The writes a batch could not admit, as UnprocessedItems lists them per table.
fn unprocessed_writes(throttled: &[PlannedWrite]) -> Value {
    let mut tables = Map::new();
    for write in throttled {
        let request = match write.item() {
            Some(item) => json!({ "PutRequest": { "Item": item_to_json(item) } }),
            None => json!({ "DeleteRequest": { "Key": item_to_json(&write.key) } }),
        };
        let entry = tables
            .entry(write.meta.name.clone())
            .or_insert_with(|| json!([]));
        if let Value::Array(requests) = entry {
            requests.push(request);
        }
    }
    Value::Object(tables)
}

fn plan_writes(
    service: &Service,
    requests: BTreeMap<String, Vec<WriteRequest>>,
) -> Result<Vec<PlannedWrite>, DynamoError> {
    let more_than_one = || {
        DynamoError::validation(
            "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
        )
    };
    let mut planned: Vec<PlannedWrite> = Vec::new();
    // The (table, storage key) pairs planned so far: two writes of one item have one storage key.
    let mut seen = HashSet::new();
    for (table_name, writes) in requests {
        let meta = crate::items::table(service, &table_name)?;
        for write in writes {
            let (key, put) = match (write.put_request, write.delete_request) {
                (Some(put), None) => {
                    let item = parse_optional(put.item)?;
                    check_item_size(&item)?;
                    validate_item(&meta, &item).map_err(batch_key_error)?;
                    (item, true)
                }
                (None, Some(delete)) => {
                    let key = parse_optional(delete.key)?;
                    validate_key(&meta, &key)?;
                    (key, false)
                }
                _ => return Err(more_than_one()),
            };
            let storage_key = ItemKey::new(&meta, &key).storage;
            if !seen.insert((meta.id, storage_key.clone())) {
                return Err(DynamoError::validation(
                    "Provided list of item keys contains duplicates",
                ));
            }
            planned.push(PlannedWrite {
                meta: meta.clone(),
                key,
                storage_key,
                put,
            });
        }
    }
    Ok(planned)
}

pub(crate) async fn batch_write_item(
    service: &Service,
    input: BatchWriteItemInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    if input.request_items.is_none() {
        violations.null("requestItems");
    }
    let report = CapacityReport::parse(&mut violations, input.return_consumed_capacity.as_deref());
    if let Some(value) = input
        .return_item_collection_metrics
        .as_deref()
        .filter(|v| !["SIZE", "NONE"].contains(v))
    {
        violations.push(format!(
            "Value '{value}' at 'returnItemCollectionMetrics' failed to satisfy constraint: Member must satisfy enum value set: [SIZE, NONE]"
        ));
    }
    violations.into_result()?;
    let requests = input.request_items.unwrap_or_default();
    if requests.is_empty() {
        return Err(DynamoError::validation(
            "BatchWriteItem cannot have a null or no requests set",
        ));
    }
    for (table, writes) in &requests {
        if writes.is_empty() {
            return Err(DynamoError::validation(format!(
                "The batch write request list for a table cannot be null or empty: {table}"
            )));
        }
    }
    if requests.values().map(Vec::len).sum::<usize>() > MAX_WRITE_REQUESTS {
        return Err(DynamoError::validation(
            "Too many items requested for the BatchWriteItem call",
        ));
    }
    let mut admission = Admission::default();
    let (planned, throttled): (Vec<PlannedWrite>, Vec<PlannedWrite>) =
        plan_writes(service, requests)?
            .into_iter()
            .partition(|write| {
                admission.admits(service, &write.meta, Capacity::Write, write.units())
            });
    admission.refuse_if_none_admitted()?;
    let (units, collections) = commit_writes(service, &planned).await?;
    let tables = units
        .iter()
        .map(|(t, (units, indexes))| (t.as_str(), *units, &indexes[..]));
    let metas = planned.iter().map(|write| &*write.meta);
    (service.capacity).charge_tables(metas, Capacity::Write, tables.clone());
    let mut response = json!({ "UnprocessedItems": unprocessed_writes(&throttled) });
    if input.return_item_collection_metrics.as_deref() == Some("SIZE") && !collections.is_empty() {
        response["ItemCollectionMetrics"] = json!(collections);
    }
    if let Some(capacity) = report.render_tables(Capacity::Write, tables) {
        response["ConsumedCapacity"] = capacity;
    }
    Ok(response)
}

/// Commits every planned write in one batch, guarded by the items read, retrying on conflict.
/// Returns the write units consumed per table (on the table and on its indexes) and, for tables
/// with local indexes, the metrics of the item collections written.
async fn commit_writes(
    service: &Service,
    planned: &[PlannedWrite],
) -> Result<
    (
        BTreeMap<String, (f64, IndexUnits)>,
        BTreeMap<String, Vec<Value>>,
    ),
    DynamoError,
> {
    let mut retries = Retries::new("BatchWriteItem");
    loop {
        let snapshot = service.engine.snapshot()?;
        let mut batch = WriteBatch::new();
        let mut units: BTreeMap<String, (f64, IndexUnits)> = BTreeMap::new();
        let mut collections: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for write in planned {
            // The table's current metadata: its indexes may have changed since the plan (and a
            // table of the same name created since has other storage keys).
            let meta = crate::items::table(service, &write.meta.name)?;
            if let Some(item) = write.item() {
                crate::indexes::validate_index_keys(&meta, item)?;
            }
            let item_key = if meta.id == write.meta.id {
                ItemKey {
                    attributes: &write.key,
                    storage: write.storage_key.clone(),
                }
            } else {
                ItemKey::new(&meta, &write.key)
            };
            let current = read_item_at(&*snapshot, &meta, &item_key.storage)?;
            let staged = stage_item_write(
                &*snapshot,
                &meta,
                item_key,
                current.as_ref(),
                write.item(),
                &mut batch,
                service.config.item_collection_limit,
            )?;
            let table_units = units.entry(meta.name.clone()).or_default();
            table_units.0 += staged.size.div_ceil(1024).max(1) as f64;
            table_units.1.extend(staged.index_units);
            if let Some(collection) = &staged.collection {
                collections
                    .entry(meta.name.clone())
                    .or_default()
                    .push(collection_metrics(collection));
            }
        }
        drop(snapshot);
        match service.engine.commit(batch).await {
            Ok(()) => return Ok((units, collections)),
            Err(CommitError::Conflict) => {
                retries.conflict().await?;
                refresh_tables(service, planned.iter().map(|write| &write.meta))?;
            }
            Err(CommitError::Storage(error)) => return Err(error.into()),
        }
    }
}
