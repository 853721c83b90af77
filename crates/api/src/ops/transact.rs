//! TransactWriteItems and TransactGetItems: all-or-nothing writes across items and tables, and
//! reads from one snapshot.
//!
//! A write transaction reads every item it touches from one snapshot, evaluates every condition,
//! and commits all its writes (with their index entries) in one storage batch that expects every
//! item it read to be unchanged. If another write got in between, the engine refuses the batch and
//! the transaction is evaluated again, so transactions are serializable with respect to every other
//! read and write path. A ClientRequestToken is recorded in the same batch, so a retry within ten
//! minutes returns the first result without applying twice, even across a restart.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::time::{SystemTime, UNIX_EPOCH};

use haven_model::{Item, attribute_size, item_size};
use haven_storage::{CommitError, Snapshot, WriteBatch};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::Service;
use crate::catalog::{TableMeta, prefix};
use crate::error::{CancellationReason, DynamoError, Violations};
use crate::expressions::{
    ExpressionTexts, LegacyParams, RequestConditions, parse_request_conditions,
};
use crate::indexes::IndexUnits;
use crate::items::{
    Capacity, CapacityReport, ItemKey, check_item_size, collection_metrics, read_item,
    read_item_at, refresh_tables, stage_item_write, table, validate_item, validate_key,
};
use crate::retry::Retries;
use crate::wire::{item_to_json, parse_item};

const MAX_ACTIONS: usize = 100;
/// DynamoDB's limit on a TransactWriteItems request's payload (see [`payload_size`]).
const MAX_WRITE_PAYLOAD: usize = 4 * 1024 * 1024;
/// DynamoDB's limit on a TransactGetItems response (see [`response_size`]).
const MAX_READ_PAYLOAD: usize = 4 * 1024 * 1024;
/// How long a ClientRequestToken is remembered.
const TOKEN_WINDOW_SECONDS: u64 = 600;

/// One action of a TransactWriteItems request, as sent (Put uses `item`, the others `key`).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ActionInput {
    table_name: Option<String>,
    key: Option<Value>,
    item: Option<Value>,
    condition_expression: Option<String>,
    update_expression: Option<String>,
    expression_attribute_names: Option<HashMap<String, String>>,
    expression_attribute_values: Option<Value>,
    return_values_on_condition_check_failure: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TransactWriteItem {
    condition_check: Option<ActionInput>,
    put: Option<ActionInput>,
    delete: Option<ActionInput>,
    update: Option<ActionInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TransactWriteItemsInput {
    transact_items: Option<Vec<TransactWriteItem>>,
    return_consumed_capacity: Option<String>,
    return_item_collection_metrics: Option<String>,
    client_request_token: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    ConditionCheck,
    Put,
    Delete,
    Update,
}

impl Kind {
    /// The member's name in DynamoDB's constraint messages.
    fn member_name(self) -> &'static str {
        match self {
            Kind::ConditionCheck => "conditionCheck",
            Kind::Put => "put",
            Kind::Delete => "delete",
            Kind::Update => "update",
        }
    }
}

/// A validated action, ready to be evaluated against the current state.
pub(crate) struct Action {
    kind: Kind,
    meta: std::sync::Arc<TableMeta>,
    key: Item,
    item: Option<Item>,
    conditions: RequestConditions,
    return_item_on_failure: bool,
    /// The cancellation reason a false condition gives.
    failure: Failure,
}

/// A cancellation reason's code and message.
#[derive(Clone, Copy)]
pub(crate) struct Failure {
    pub code: &'static str,
    pub message: &'static str,
}

/// What a false condition answers, unless the action says otherwise.
const CONDITION_FAILED: Failure = Failure {
    code: "ConditionalCheckFailed",
    message: "The conditional request failed",
};

impl Action {
    /// An action built elsewhere (a PartiQL statement of ExecuteTransaction); `key` must be
    /// valid for the table, and `item` is the Put's item.
    pub(crate) fn new(
        kind: Kind,
        meta: std::sync::Arc<TableMeta>,
        key: Item,
        item: Option<Item>,
        conditions: RequestConditions,
        return_item_on_failure: bool,
    ) -> Action {
        Action {
            kind,
            meta,
            key,
            item,
            conditions,
            return_item_on_failure,
            failure: CONDITION_FAILED,
        }
    }

    /// The table and key of the item the action touches.
    pub(crate) fn item(&self) -> (&std::sync::Arc<TableMeta>, &Item) {
        (&self.meta, &self.key)
    }

    /// The reason a false condition gives instead of ConditionalCheckFailed's.
    pub(crate) fn failing_with(self, failure: Failure) -> Action {
        Action { failure, ..self }
    }
}

fn check_transact_items(violations: &mut Violations, count: Option<usize>) {
    match count {
        None => violations.null("transactItems"),
        Some(0) => violations.push(
            "Value '[]' at 'transactItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ),
        Some(n) if n > MAX_ACTIONS => violations.push(format!(
            "Value '[...{n} items]' at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to {MAX_ACTIONS}"
        )),
        Some(_) => {}
    }
}

/// An action checked on its own, before its table is looked up.
struct ParsedAction {
    kind: Kind,
    table_name: String,
    /// The Put's item, or the other actions' key.
    attributes: Item,
    conditions: RequestConditions,
    return_item_on_failure: bool,
}

/// Validates the request's actions in DynamoDB's order (as DynamoDB Local shows it): each action on
/// its own (members, expressions, values, item size) with the payload limit counted as they go,
/// then each against its table, then that no two touch the same item.
fn plan_actions(
    service: &Service,
    items: Vec<TransactWriteItem>,
) -> Result<Vec<Action>, DynamoError> {
    let mut parsed = Vec::with_capacity(items.len());
    let mut payload = 0;
    for (i, write) in items.into_iter().enumerate() {
        let (action, input) = parse_action(i + 1, write)?;
        payload += payload_size(&input, &action.attributes)?;
        if payload > MAX_WRITE_PAYLOAD {
            // The real service's wording, which repeats itself (docs/compatibility.md).
            return Err(DynamoError::validation(format!(
                "Transaction payload size cannot exceed 4MB. Payload Size: : Transaction payload size cannot exceed 4MB. Payload Size: {payload}"
            )));
        }
        parsed.push(action);
    }
    let actions: Vec<Action> = parsed
        .into_iter()
        .map(|action| resolve_action(service, action))
        .collect::<Result<_, _>>()?;
    reject_repeated_items(actions.iter().map(Action::item), REPEATED_ITEM)?;
    Ok(actions)
}

/// DynamoDB's refusal of a transaction that touches one item twice.
pub(crate) const REPEATED_ITEM: &str =
    "Transaction request cannot include multiple operations on one item";

/// Refuses, with `message`, a request that names one item twice.
pub(crate) fn reject_repeated_items<'a>(
    items: impl IntoIterator<Item = (&'a std::sync::Arc<TableMeta>, &'a Item)>,
    message: &str,
) -> Result<(), DynamoError> {
    let mut seen: Vec<(&std::sync::Arc<TableMeta>, &Item)> = Vec::new();
    for (meta, key) in items {
        if seen.iter().any(|(m, k)| m.id == meta.id && *k == key) {
            return Err(DynamoError::validation(message));
        }
        seen.push((meta, key));
    }
    Ok(())
}

/// What one action adds to the transaction's payload, as DynamoDB counts it (measured against
/// DynamoDB Local): the size of its item (Put) or key, the bytes of its condition and update
/// expressions, the sizes of its ExpressionAttributeValues values and the bytes of its
/// ExpressionAttributeNames values. Table names and placeholders do not count.
fn payload_size(input: &ActionInput, attributes: &Item) -> Result<usize, DynamoError> {
    let expressions = [&input.condition_expression, &input.update_expression]
        .into_iter()
        .flatten()
        .map(String::len)
        .sum::<usize>();
    let names = input
        .expression_attribute_names
        .iter()
        .flat_map(HashMap::values)
        .map(String::len)
        .sum::<usize>();
    let values = match &input.expression_attribute_values {
        Some(values) => parse_item(values)?.values().map(attribute_size).sum(),
        None => 0,
    };
    Ok(item_size(attributes) + expressions + names + values)
}

/// Checks one action on its own; `position` is its 1-based place in TransactItems, as DynamoDB's
/// member paths (`transactItems.2.member.put.item`) name it. Returns the action and its input (for
/// [`payload_size`]).
fn parse_action(
    position: usize,
    write: TransactWriteItem,
) -> Result<(ParsedAction, ActionInput), DynamoError> {
    let (kind, input) = match (write.condition_check, write.put, write.delete, write.update) {
        (Some(a), None, None, None) => (Kind::ConditionCheck, a),
        (None, Some(a), None, None) => (Kind::Put, a),
        (None, None, Some(a), None) => (Kind::Delete, a),
        (None, None, None, Some(a)) => (Kind::Update, a),
        _ => {
            return Err(DynamoError::validation(
                "TransactItems can only contain one of Check, Put, Update or Delete",
            ));
        }
    };
    let member = format!("transactItems.{position}.member.{}", kind.member_name());
    let mut violations = Violations::new();
    violations.name(&format!("{member}.tableName"), input.table_name.as_deref());
    let (payload, present) = if kind == Kind::Put {
        ("item", input.item.is_some())
    } else {
        ("key", input.key.is_some())
    };
    if !present {
        violations.null(&format!("{member}.{payload}"));
    }
    if kind == Kind::ConditionCheck && input.condition_expression.is_none() {
        violations.null(&format!("{member}.conditionExpression"));
    }
    let return_item_on_failure = crate::expressions::return_item_on_failure(
        input.return_values_on_condition_check_failure.as_deref(),
        &mut violations,
    );
    violations.into_result()?;
    let texts = ExpressionTexts {
        condition: input.condition_expression.as_deref(),
        update: input.update_expression.as_deref(),
        ..ExpressionTexts::default()
    };
    let conditions = parse_request_conditions(
        texts,
        LegacyParams::default(),
        input.expression_attribute_names.as_ref(),
        input.expression_attribute_values.as_ref().map(Into::into),
    )?;
    let sent = if kind == Kind::Put {
        &input.item
    } else {
        &input.key
    };
    let attributes = parse_item(sent.as_ref().unwrap_or(&Value::Null))?;
    if kind == Kind::Put {
        check_item_size(&attributes)?;
    }
    let action = ParsedAction {
        kind,
        table_name: input.table_name.clone().unwrap_or_default(),
        attributes,
        conditions,
        return_item_on_failure,
    };
    Ok((action, input))
}

/// Checks a parsed action against its table.
fn resolve_action(service: &Service, parsed: ParsedAction) -> Result<Action, DynamoError> {
    let meta = table(service, &parsed.table_name)?;
    let (key, item) = if parsed.kind == Kind::Put {
        validate_item(&meta, &parsed.attributes)?;
        (
            meta.keys().project_key(&parsed.attributes),
            Some(parsed.attributes),
        )
    } else {
        validate_key(&meta, &parsed.attributes)?;
        (parsed.attributes, None)
    };
    if let Some(update) = &parsed.conditions.update {
        let schema = meta.keys();
        let names: Vec<&str> = schema.attributes().map(|a| a.name.as_str()).collect();
        update.check_key_attributes(&names)?;
    }
    Ok(Action::new(
        parsed.kind,
        meta,
        key,
        item,
        parsed.conditions,
        parsed.return_item_on_failure,
    ))
}

/// The outcome of evaluating one action: the new item (for writes), or why the action fails.
enum Evaluation {
    Write(Option<Item>),
    Check,
    Failed(CancellationReason),
}

fn evaluate(action: &Action, current: Option<&Item>) -> Evaluation {
    if let Some(condition) = &action.conditions.condition {
        match condition.evaluate(current) {
            Ok(true) => {}
            Ok(false) => {
                return Evaluation::Failed(CancellationReason {
                    code: action.failure.code,
                    message: Some(action.failure.message.into()),
                    item: current.filter(|_| action.return_item_on_failure).cloned(),
                });
            }
            Err(error) => return Evaluation::Failed(validation_reason(error.0)),
        }
    }
    match action.kind {
        Kind::ConditionCheck => Evaluation::Check,
        Kind::Put => Evaluation::Write(action.item.clone()),
        Kind::Delete => Evaluation::Write(None),
        Kind::Update => {
            let mut item = current.cloned().unwrap_or_else(|| action.key.clone());
            if let Some(update) = &action.conditions.update {
                let schema = action.meta.keys();
                let names: Vec<&str> = schema.attributes().map(|a| a.name.as_str()).collect();
                match update.apply_to(item, &names) {
                    Ok((updated, _)) => item = updated,
                    Err(error) => {
                        return Evaluation::Failed(validation_reason(
                            error.message().unwrap_or_default(),
                        ));
                    }
                }
            }
            if check_item_size(&item).is_err() {
                return Evaluation::Failed(validation_reason(
                    "Item size to update has exceeded the maximum allowed size".into(),
                ));
            }
            Evaluation::Write(Some(item))
        }
    }
}

/// The answer to a retried request: nothing is applied again, and the capacity consumed is the
/// transactional read of the items involved (two units per 4 KB), as DynamoDB charges for a replay.
fn replayed_response(
    service: &Service,
    snapshot: &dyn haven_storage::Snapshot,
    actions: &[Action],
    report: CapacityReport,
) -> Result<Value, DynamoError> {
    let mut response = Map::new();
    if report != CapacityReport::None {
        let mut units: BTreeMap<String, f64> = BTreeMap::new();
        for action in actions {
            let meta = table(service, &action.meta.name)?;
            let size =
                read_item(snapshot, &meta, &action.key)?.map_or(0, |(_, item)| item_size(&item));
            *units.entry(meta.name.clone()).or_insert(0.0) +=
                2.0 * size.div_ceil(4096).max(1) as f64;
        }
        let capacity: Vec<Value> = units
            .iter()
            .filter_map(|(t, u)| report.render(Capacity::Read, t, *u))
            .collect();
        response.insert("ConsumedCapacity".into(), Value::Array(capacity));
    }
    Ok(Value::Object(response))
}

fn validation_reason(message: String) -> CancellationReason {
    CancellationReason {
        code: "ValidationError",
        message: Some(message),
        item: None,
    }
}

/// A recorded ClientRequestToken: which request used it, when, and what it answered.
#[derive(Serialize, Deserialize)]
struct TokenRecord {
    request_hash: String,
    created: u64,
    response: Value,
}

/// A hash of the request that ignores the order of JSON object members (SDKs build maps from hash
/// tables, so a retry may list an item's attributes in another order).
pub(crate) fn request_fingerprint(request: &Value) -> String {
    fn canonical(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (name, member) in members {
                    out.push_str(&Value::String(name.clone()).to_string());
                    out.push(':');
                    canonical(member, out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for item in items {
                    canonical(item, out);
                    out.push(',');
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut text = String::new();
    canonical(request, &mut text);
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
}

fn token_key(token: &str) -> Vec<u8> {
    let mut key = vec![prefix::SYSTEM];
    key.extend_from_slice(b"token/");
    key.extend_from_slice(token.as_bytes());
    key
}

/// `SYSTEM | "token-expiry/" | created (u64 BE) | token`: the tokens in the order they expire, so
/// that expired records can be found without reading them all.
fn token_expiry_key(created: u64, token: &str) -> Vec<u8> {
    let mut key = vec![prefix::SYSTEM];
    key.extend_from_slice(TOKEN_EXPIRY_TAG);
    key.extend_from_slice(&created.to_be_bytes());
    key.extend_from_slice(token.as_bytes());
    key
}

const TOKEN_EXPIRY_TAG: &[u8] = b"token-expiry/";

/// Expired tokens removed by each transaction that records one: bounded work per request that
/// keeps the token records from growing without end (each write removes up to this many, and adds
/// one).
const EXPIRED_TOKENS_SWEPT_PER_WRITE: usize = 8;

/// Stages the recording of `token`, with its expiry entry, and the removal of a few tokens whose
/// window has passed.
fn stage_token_record(
    snapshot: &dyn Snapshot,
    batch: &mut WriteBatch,
    token: &str,
    record: &TokenRecord,
) -> Result<(), DynamoError> {
    let key = token_key(token);
    let previous = snapshot.get(&key)?;
    batch
        .expect(key.clone(), previous)
        .put(key, serde_json::to_vec(record).expect("record serialises"))
        .put(token_expiry_key(record.created, token), Vec::new());
    sweep_expired_tokens(snapshot, batch, record.created, token)
}

/// Deletes up to [`EXPIRED_TOKENS_SWEPT_PER_WRITE`] expired token records and their expiry entries.
/// A record is deleted only if it is still the one the entry describes (the token may have been
/// used again since), and the batch expects it unchanged, so a concurrent reuse is never lost.
fn sweep_expired_tokens(
    snapshot: &dyn Snapshot,
    batch: &mut WriteBatch,
    now: u64,
    recording: &str,
) -> Result<(), DynamoError> {
    let start = token_expiry_key(0, "");
    let end = token_expiry_key(now.saturating_sub(TOKEN_WINDOW_SECONDS) + 1, "");
    let mut expired = Vec::new();
    snapshot.scan(
        (Bound::Included(&start), Bound::Excluded(&end)),
        false,
        &mut |key, _| {
            expired.push(key.to_vec());
            expired.len() < EXPIRED_TOKENS_SWEPT_PER_WRITE
        },
    )?;
    let tag_end = 1 + TOKEN_EXPIRY_TAG.len();
    for entry in expired {
        let created = u64::from_be_bytes(entry[tag_end..tag_end + 8].try_into().expect("8 bytes"));
        let token = String::from_utf8_lossy(&entry[tag_end + 8..]).into_owned();
        batch.delete(entry);
        if token == recording {
            continue;
        }
        let record_key = token_key(&token);
        if let Some(bytes) = snapshot.get(&record_key)?
            && serde_json::from_slice::<TokenRecord>(&bytes).is_ok_and(|r| r.created == created)
        {
            batch
                .expect(record_key.clone(), Some(bytes))
                .delete(record_key);
        }
    }
    Ok(())
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

pub(crate) async fn transact_write_items(
    service: &Service,
    request: Value,
) -> Result<Value, DynamoError> {
    let request_hash = request_fingerprint(&request);
    let input: TransactWriteItemsInput = super::parse(request)?;
    let mut violations = Violations::new();
    check_transact_items(&mut violations, input.transact_items.as_ref().map(Vec::len));
    let report = CapacityReport::parse(&mut violations, input.return_consumed_capacity.as_deref());
    super::items::check_item_collection_metrics(
        &mut violations,
        input.return_item_collection_metrics.as_deref(),
    );
    check_token(&mut violations, input.client_request_token.as_deref());
    violations.into_result()?;
    let actions = plan_actions(service, input.transact_items.unwrap_or_default())?;
    let write = TransactWrite {
        operation: "TransactWriteItems",
        token: input.client_request_token.as_deref(),
        request_hash,
        report,
        item_collection_metrics: input.return_item_collection_metrics.as_deref() == Some("SIZE"),
        mismatch: "Request parameters do not match the original request parameters for the ClientRequestToken",
    };
    commit_actions(service, &actions, &write).await
}

/// How a write transaction was asked for: its idempotency token and request hash, what the
/// answer reports, and the operation's words for a token reused with other parameters.
pub(crate) struct TransactWrite<'r> {
    pub operation: &'static str,
    pub token: Option<&'r str>,
    pub request_hash: String,
    pub report: CapacityReport,
    pub item_collection_metrics: bool,
    pub mismatch: &'static str,
}

/// Checks a ClientRequestToken's length.
pub(crate) fn check_token(violations: &mut Violations, token: Option<&str>) {
    if let Some(token) = token
        && (token.is_empty() || token.len() > 36)
    {
        let bound = if token.is_empty() {
            "greater than or equal to 1"
        } else {
            "less than or equal to 36"
        };
        violations.push(format!(
            "Value '{token}' at 'clientRequestToken' failed to satisfy constraint: Member must have length {bound}"
        ));
    }
}

/// Evaluates every action on one snapshot and commits them all in one batch, or cancels the
/// transaction; a repeated token answers what its first request did. Retries on conflict.
pub(crate) async fn commit_actions(
    service: &Service,
    actions: &[Action],
    write: &TransactWrite<'_>,
) -> Result<Value, DynamoError> {
    let (token, request_hash, report) = (write.token, &write.request_hash, write.report);
    let metas = actions.iter().map(|action| &*action.meta);
    (service.capacity).admit_all(metas.clone(), Capacity::Write)?;
    let mut retries = Retries::giving_up_with(write.operation, || DynamoError::TransactionConflict);
    loop {
        let snapshot = service.engine.snapshot()?;
        if let Some(token) = token
            && let Some(bytes) = snapshot.get(&token_key(token))?
            && let Ok(record) = serde_json::from_slice::<TokenRecord>(&bytes)
            && now_seconds() < record.created + TOKEN_WINDOW_SECONDS
        {
            if record.request_hash != *request_hash {
                return Err(DynamoError::IdempotentParameterMismatch(
                    write.mismatch.into(),
                ));
            }
            return replayed_response(service, &*snapshot, actions, report);
        }
        let mut batch = WriteBatch::new();
        let mut reasons = Vec::with_capacity(actions.len());
        let mut units: BTreeMap<String, (f64, IndexUnits)> = BTreeMap::new();
        let mut cancelled = false;
        let mut collections: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for action in actions {
            let meta = table(service, &action.meta.name)?;
            let item_key = ItemKey::new(&meta, &action.key);
            let current = read_item_at(&*snapshot, &meta, &item_key.storage)?;
            let old = current.as_ref().map(|(_, item)| item);
            let size = match evaluate(action, old) {
                Evaluation::Failed(reason) => {
                    cancelled = true;
                    reasons.push(reason);
                    continue;
                }
                Evaluation::Check => {
                    batch.expect(
                        item_key.storage,
                        current.as_ref().map(|(bytes, _)| bytes.clone()),
                    );
                    old.map_or(0, item_size)
                }
                Evaluation::Write(new) => {
                    if let Some(item) = &new {
                        crate::indexes::validate_index_keys(&meta, item)?;
                    }
                    match stage_item_write(
                        &*snapshot,
                        &meta,
                        item_key,
                        current.as_ref(),
                        new.as_ref(),
                        &mut batch,
                        service.config.item_collection_limit,
                    ) {
                        Ok(staged) => {
                            // Index writes cost double in a transaction too.
                            let table_units = units.entry(meta.name.clone()).or_default();
                            table_units.1.extend(
                                staged
                                    .index_units
                                    .into_iter()
                                    .map(|(kind, name, u)| (kind, name, 2.0 * u)),
                            );
                            if let Some(collection) = &staged.collection {
                                collections
                                    .entry(meta.name.clone())
                                    .or_default()
                                    .push(collection_metrics(collection));
                            }
                        }
                        Err(DynamoError::ItemCollectionSizeLimitExceeded) => {
                            cancelled = true;
                            reasons.push(CancellationReason {
                                code: "ItemCollectionSizeLimitExceeded",
                                message: Some("Collection size exceeded.".into()),
                                item: None,
                            });
                            continue;
                        }
                        Err(other) => return Err(other),
                    }
                    old.map_or(0, item_size)
                        .max(new.as_ref().map_or(0, item_size))
                }
            };
            reasons.push(CancellationReason {
                code: "None",
                message: None,
                item: None,
            });
            // Transactions cost two write units per KB of each item.
            units.entry(meta.name.clone()).or_default().0 +=
                2.0 * size.div_ceil(1024).max(1) as f64;
        }
        if cancelled {
            return Err(DynamoError::TransactionCanceled(reasons));
        }
        let mut response = Map::new();
        let tables = units
            .iter()
            .map(|(t, (units, indexes))| (t.as_str(), *units, &indexes[..]));
        let charge = tables.clone();
        if let Some(capacity) = report.render_tables(Capacity::Write, tables) {
            response.insert("ConsumedCapacity".into(), capacity);
        }
        if write.item_collection_metrics && !collections.is_empty() {
            response.insert("ItemCollectionMetrics".into(), json!(collections));
        }
        let response = Value::Object(response);
        if let Some(token) = token {
            let record = TokenRecord {
                request_hash: request_hash.to_string(),
                created: now_seconds(),
                response: response.clone(),
            };
            stage_token_record(&*snapshot, &mut batch, token, &record)?;
        }
        drop(snapshot);
        match service.engine.commit(batch).await {
            Ok(()) => {
                (service.capacity).charge_tables(metas, Capacity::Write, charge);
                return Ok(response);
            }
            Err(CommitError::Conflict) => {
                retries.conflict().await?;
                refresh_tables(service, actions.iter().map(|action| &action.meta))?;
            }
            Err(CommitError::Storage(error)) => return Err(error.into()),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetInput {
    table_name: Option<String>,
    key: Option<Value>,
    projection_expression: Option<String>,
    expression_attribute_names: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TransactGetItem {
    get: Option<GetInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TransactGetItemsInput {
    transact_items: Option<Vec<TransactGetItem>>,
    return_consumed_capacity: Option<String>,
}

pub(crate) async fn transact_get_items(
    service: &Service,
    input: TransactGetItemsInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    check_transact_items(&mut violations, input.transact_items.as_ref().map(Vec::len));
    let report = CapacityReport::parse(&mut violations, input.return_consumed_capacity.as_deref());
    violations.into_result()?;
    let mut gets = Vec::new();
    for entry in input.transact_items.unwrap_or_default() {
        let get = entry.get.ok_or_else(|| {
            DynamoError::validation("1 validation error detected: Value null at 'transactItems.1.member.get' failed to satisfy constraint: Member must not be null")
        })?;
        let texts = ExpressionTexts {
            projection: get.projection_expression.as_deref(),
            ..ExpressionTexts::default()
        };
        let conditions = parse_request_conditions(
            texts,
            LegacyParams::default(),
            get.expression_attribute_names.as_ref(),
            None,
        )?;
        let meta = table(service, get.table_name.as_deref().unwrap_or_default())?;
        let key = parse_item(get.key.as_ref().unwrap_or(&Value::Null))?;
        validate_key(&meta, &key)?;
        if gets
            .iter()
            .any(|(m, k, _): &(std::sync::Arc<TableMeta>, Item, _)| m.id == meta.id && *k == key)
        {
            return Err(DynamoError::validation(
                "Transaction request cannot include multiple operations on one item",
            ));
        }
        gets.push((meta, key, conditions.projection));
    }
    let keys: Vec<_> = gets
        .iter()
        .map(|(meta, key, _)| (meta.clone(), key.clone()))
        .collect();
    read_items(service, &keys, report, |i, item| match &gets[i].2 {
        Some(paths) => haven_expr::project(&item, paths),
        None => item,
    })
    .await
}

/// Reads the items of a read transaction as of one moment: `project(i, item)` shapes what the
/// i-th read returns. The answer's `Responses` and `ConsumedCapacity`.
pub(crate) async fn read_items(
    service: &Service,
    keys: &[(std::sync::Arc<TableMeta>, Item)],
    report: CapacityReport,
    project: impl Fn(usize, Item) -> Item,
) -> Result<Value, DynamoError> {
    let refs: Vec<(&TableMeta, &Item)> = keys.iter().map(|(meta, key)| (&**meta, key)).collect();
    let metas = refs.iter().map(|(meta, _)| *meta);
    (service.capacity).admit_all(metas.clone(), Capacity::Read)?;
    let items = crate::items::read_many(&*service.engine, &refs).await?;
    let mut responses = Vec::with_capacity(keys.len());
    let mut units: BTreeMap<String, f64> = BTreeMap::new();
    let mut size = 0;
    for (i, ((meta, _), found)) in keys.iter().zip(items).enumerate() {
        *units.entry(meta.name.clone()).or_insert(0.0) +=
            2.0 * found.as_ref().map_or(0, item_size).div_ceil(4096).max(1) as f64;
        let item = found.map(|item| project(i, item));
        size += response_size(item.as_ref());
        if size > MAX_READ_PAYLOAD {
            // DynamoDB Local's wording (the real service's is not recorded).
            return Err(DynamoError::validation(format!(
                "Payload in response is too large.{size}"
            )));
        }
        responses.push(match item {
            Some(item) => json!({ "Item": item_to_json(&item) }),
            None => json!({}),
        });
    }
    let mut response = json!({ "Responses": responses });
    let tables = units.iter().map(|(t, units)| (t.as_str(), *units, &[][..]));
    (service.capacity).charge_tables(metas, Capacity::Read, tables.clone());
    if let Some(capacity) = report.render_tables(Capacity::Read, tables) {
        response["ConsumedCapacity"] = capacity;
    }
    Ok(response)
}

/// What one Get adds to a TransactGetItems response, as DynamoDB Local counts it: 4 bytes, plus the
/// size of the item found (after the projection).
fn response_size(item: Option<&Item>) -> usize {
    4 + item.map_or(0, item_size)
}

#[cfg(test)]
mod tests {
    use haven_storage::{Engine, RedbEngine};

    use super::*;

    fn record(created: u64) -> TokenRecord {
        TokenRecord {
            request_hash: "hash".into(),
            created,
            response: json!({}),
        }
    }

    fn record_token(engine: &RedbEngine, token: &str, created: u64) {
        let snapshot = engine.snapshot().unwrap();
        let mut batch = WriteBatch::new();
        stage_token_record(&*snapshot, &mut batch, token, &record(created)).unwrap();
        drop(snapshot);
        engine.commit(batch).wait().unwrap();
    }

    fn system_keys(engine: &RedbEngine) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        let (start, end) = ([prefix::SYSTEM], [prefix::SYSTEM + 1]);
        engine
            .snapshot()
            .unwrap()
            .scan(
                (Bound::Included(&start[..]), Bound::Excluded(&end[..])),
                false,
                &mut |key, _| {
                    keys.push(key.to_vec());
                    true
                },
            )
            .unwrap();
        keys
    }

    /// The payload of one action as `payload_size` counts it.
    fn payload(action: Value) -> usize {
        let input: ActionInput = serde_json::from_value(action).unwrap();
        let attributes = parse_item(input.item.as_ref().or(input.key.as_ref()).unwrap()).unwrap();
        payload_size(&input, &attributes).unwrap()
    }

    #[test]
    fn payload_counts_what_dynamodb_local_counts() {
        // Each figure is what the action added to DynamoDB Local 11.1.0's "Payload Size".
        assert_eq!(
            payload(json!({"TableName": "t", "Item": {"pk": {"S": "x"}}})),
            3
        );
        assert_eq!(
            payload(json!({"TableName": "t", "Item": {"pk": {"S": "x"}},
                "ConditionExpression": "attribute_not_exists(pk)"})),
            27
        );
        assert_eq!(
            payload(json!({"TableName": "t", "Key": {"pk": {"S": "x"}},
                "ConditionExpression": "a = :v",
                "ExpressionAttributeValues": {":v": {"S": "0123456789"}}})),
            19
        );
        assert_eq!(
            payload(json!({"TableName": "t", "Key": {"pk": {"S": "x"}},
                "UpdateExpression": "SET #n = :v", "ExpressionAttributeNames": {"#n": "abcdef"},
                "ExpressionAttributeValues": {":v": {"S": "0123456789"}}})),
            30
        );
        assert_eq!(
            payload(json!({"TableName": "t", "Key": {"pk": {"S": "x"}},
                "UpdateExpression": "SET a = :v", "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": {":v": {"N": "12345"}}})),
            37
        );
        assert_eq!(
            payload(json!({"TableName": "t", "Key": {"pk": {"S": "x"}},
                "UpdateExpression": "SET #n = :v", "ExpressionAttributeNames": {"#n": "ééé"},
                "ExpressionAttributeValues": {":v": {"S": "ééé"}}})),
            3 + 11 + 6 + 6
        );
    }

    #[test]
    fn expired_tokens_are_removed_by_later_writes_a_few_at_a_time() {
        let engine = RedbEngine::in_memory().unwrap();
        for i in 0..10 {
            record_token(&engine, &format!("old-{i}"), 1_000);
        }
        record_token(&engine, "young", 1_500);
        assert_eq!(system_keys(&engine).len(), 22);

        // 1,600 is past the old tokens' window (1,000 + 600) but not the young one's.
        record_token(&engine, "first-sweeper", 1_600);
        let keys = system_keys(&engine);
        assert_eq!(keys.len(), 22 + 2 - 2 * EXPIRED_TOKENS_SWEPT_PER_WRITE);
        record_token(&engine, "second-sweeper", 1_600);
        let keys = system_keys(&engine);
        let remaining: Vec<_> = keys
            .iter()
            .filter(|k| k.starts_with(&token_key("")))
            .map(|k| String::from_utf8_lossy(&k[token_key("").len()..]).into_owned())
            .collect();
        assert_eq!(remaining, ["first-sweeper", "second-sweeper", "young"]);
        assert_eq!(keys.len(), 6);
    }

    #[test]
    fn a_token_used_again_after_expiry_keeps_its_new_record() {
        let engine = RedbEngine::in_memory().unwrap();
        record_token(&engine, "reused", 1_000);
        record_token(&engine, "reused", 1_700);
        // The old expiry entry went with the second write; the new record and entry stay.
        record_token(&engine, "sweeper", 1_800);
        let snapshot = engine.snapshot().unwrap();
        let bytes = snapshot.get(&token_key("reused")).unwrap().unwrap();
        let kept: TokenRecord = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(kept.created, 1_700);
        assert!(
            snapshot
                .get(&token_expiry_key(1_700, "reused"))
                .unwrap()
                .is_some()
        );
        assert!(
            snapshot
                .get(&token_expiry_key(1_000, "reused"))
                .unwrap()
                .is_none()
        );
    }
}
