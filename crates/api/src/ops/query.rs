//! Query: one partition of the table or of a secondary index, read in sort-key order (forwards or
//! backwards) as a single range read. The key condition becomes byte bounds over the
//! order-preserving key encoding (see docs/storage-format.md).

use std::ops::Bound;

use haven_expr::{Condition, KeyPredicate, RangeKeyCondition};
use haven_model::key_codec::{encode_key_value, partition_hash};
use haven_model::schema::KeySchema;
use haven_model::{AttributeValue, Item};
use serde_json::Value;

use crate::Service;
use crate::error::{DynamoError, Violations};
use crate::expressions::LegacyParams;
use crate::items::table;
use crate::pages::{
    ReadCommon, ReadTarget, condition_roots, prefix_successor, read_input, read_page, render_page,
};
use crate::reply::Reply;

pub(crate) struct QueryInput {
    common: ReadCommon,
    scan_index_forward: Option<bool>,
    key_condition_expression: Option<String>,
    key_conditions: Option<serde_json::Map<String, Value>>,
    query_filter: Option<serde_json::Map<String, Value>>,
}

read_input!(QueryInput {
    scan_index_forward: Option<bool>,
    key_condition_expression: Option<String>,
    key_conditions: Option<serde_json::Map<String, Value>>,
    query_filter: Option<serde_json::Map<String, Value>>,
});

pub(crate) fn query(service: &Service, input: QueryInput) -> Result<Reply, DynamoError> {
    let common = &input.common;
    let mut violations = Violations::new();
    let capacity = common.check(&mut violations);
    violations.into_result()?;
    let plan = input.plan()?;
    let key_condition = key_condition(&plan)?;

    let meta = table(service, common.table_name())?;
    let target = common.target(&meta, plan.consistent)?;
    let schema = target.keys();
    let range = KeyRange::new(key_condition.resolve(&schema)?, &schema, &target)?;
    if let Some(filter) = &plan.conditions.filter {
        let parameter = if input.query_filter.is_some() {
            "QueryFilter"
        } else {
            "Filter Expression"
        };
        reject_key_attributes(filter, &schema, parameter)?;
    }
    let reverse = !input.scan_index_forward.unwrap_or(true);
    let (mut lower, mut upper) = (range.lower.clone(), range.upper.clone());
    if let Some(start) = &plan.start_key {
        let start = range.start_after(start, &schema, &target)?;
        if reverse {
            upper = Bound::Excluded(start);
        } else {
            lower = Bound::Excluded(start);
        }
    }
    let request = plan.page_request(&target, (lower, upper), reverse, common.limit)?;
    target.admit(service)?;
    let snapshot = service.engine.snapshot()?;
    let page = read_page(&*snapshot, &target, &request)?;
    let capacity = target.capacity(service, capacity, &page, plan.consistent);
    Ok(render_page(page, plan.select, capacity))
}

/// The partition key value a Query request reads, as IAM's `dynamodb:LeadingKeys` compares it;
/// None when the request is not a valid Query (the operation then refuses it).
pub(crate) fn partition_key(service: &Service, request: &Value) -> Option<String> {
    let input: QueryInput = crate::ops::parse(request.clone()).ok()?;
    let plan = input.plan().ok()?;
    let meta = table(service, input.common.table_name()).ok()?;
    let target = input.common.target(&meta, plan.consistent).ok()?;
    let predicate = key_condition(&plan).ok()?.resolve(&target.keys()).ok()?;
    crate::access::leading_key_text_of(predicate.hash.first()?)
}

impl QueryInput {
    fn plan(&self) -> Result<crate::pages::ReadPlan, DynamoError> {
        let legacy = LegacyParams {
            key_conditions: self.key_conditions.as_ref(),
            query_filter: self.query_filter.as_ref(),
            ..LegacyParams::default()
        };
        self.common
            .plan(self.key_condition_expression.as_deref(), legacy)
    }
}

fn key_condition(
    plan: &crate::pages::ReadPlan,
) -> Result<&crate::expressions::KeyConditionSource, DynamoError> {
    plan.conditions.key_condition.as_ref().ok_or_else(|| {
        DynamoError::validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")
    })
}

/// The key range a key condition selects: one partition, optionally narrowed by sort key.
pub(crate) struct KeyRange {
    condition: KeyPredicate,
    /// Storage-key prefix of the partition.
    partition_prefix: Vec<u8>,
    pub lower: Bound<Vec<u8>>,
    pub upper: Bound<Vec<u8>>,
}

fn encoded(value: &AttributeValue) -> Vec<u8> {
    let mut out = Vec::new();
    encode_key_value(value, &mut out);
    out
}

impl KeyRange {
    pub fn new(
        condition: KeyPredicate,
        schema: &KeySchema,
        target: &ReadTarget,
    ) -> Result<KeyRange, DynamoError> {
        reject_empty_values(&condition, schema, target)?;
        let encoded_partition: Vec<u8> = condition.hash.iter().flat_map(encoded).collect();
        let mut partition_prefix = target.prefix().0;
        partition_prefix.extend_from_slice(&partition_hash(&encoded_partition));
        partition_prefix.extend_from_slice(&encoded_partition);
        let (lower, upper) = match condition.range.split_last() {
            Some((last, equal)) => {
                let mut prefix = partition_prefix.clone();
                for condition in equal {
                    prefix.extend(condition.values().into_iter().flat_map(encoded));
                }
                sort_bounds(last, &prefix)
            }
            None => (
                Bound::Included(partition_prefix.clone()),
                prefix_successor(&partition_prefix),
            ),
        };
        Ok(KeyRange {
            condition,
            partition_prefix,
            lower,
            upper,
        })
    }

    /// Validates ExclusiveStartKey against the query and returns its storage key.
    pub fn start_after(
        &self,
        start: &Item,
        schema: &KeySchema,
        target: &ReadTarget,
    ) -> Result<Vec<u8>, DynamoError> {
        let storage_key = target.start_key(start)?;
        let outside = || {
            DynamoError::validation(
                "The provided starting key does not match the range key predicate",
            )
        };
        let same_partition = schema
            .partition
            .iter()
            .zip(&self.condition.hash)
            .all(|(attribute, value)| start[&attribute.name].same_value(value));
        let in_range = schema
            .sort
            .iter()
            .zip(&self.condition.range)
            .all(|(attribute, range)| range.matches(&start[&attribute.name]));
        if !same_partition || !in_range {
            return Err(outside());
        }
        debug_assert!(storage_key.starts_with(&self.partition_prefix));
        Ok(storage_key)
    }
}

/// Key conditions may not compare with an empty string or binary.
fn reject_empty_values(
    condition: &KeyPredicate,
    schema: &KeySchema,
    target: &ReadTarget,
) -> Result<(), DynamoError> {
    let partition = schema
        .partition
        .iter()
        .zip(condition.hash.iter().map(|v| vec![v]));
    let sort = schema
        .sort
        .iter()
        .zip(condition.range.iter().map(RangeKeyCondition::values));
    for (attribute, values) in partition.chain(sort) {
        if let Some(error) = values
            .into_iter()
            .find_map(|v| empty_key_value(target, &attribute.name, v))
        {
            return Err(error);
        }
    }
    Ok(())
}

/// An empty string or binary in a key condition, in the words of the table or of the index read.
fn empty_key_value(target: &ReadTarget, name: &str, value: &AttributeValue) -> Option<DynamoError> {
    match target.index {
        Some(index) => crate::indexes::empty_index_key(&index.name, name, value),
        None => crate::items::empty_key_value(name, value),
    }
}

/// Byte bounds of a sort-key condition within the partition whose storage prefix is `p`. Bounds on
/// an index partition also cover every table key that follows the index sort key.
fn sort_bounds(range: &RangeKeyCondition, p: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let at = |v: &AttributeValue| [p, &encoded(v)].concat();
    let partition_start = Bound::Included(p.to_vec());
    let partition_end = prefix_successor(p);
    match range {
        RangeKeyCondition::Eq(v) => (Bound::Included(at(v)), prefix_successor(&at(v))),
        RangeKeyCondition::Lt(v) => (partition_start, Bound::Excluded(at(v))),
        RangeKeyCondition::Le(v) => (partition_start, prefix_successor(&at(v))),
        RangeKeyCondition::Gt(v) => {
            // Past every key that starts with v's encoding (index entries append table keys).
            let lower = match prefix_successor(&at(v)) {
                Bound::Excluded(end) => Bound::Included(end),
                other => other,
            };
            (lower, partition_end)
        }
        RangeKeyCondition::Ge(v) => (Bound::Included(at(v)), partition_end),
        RangeKeyCondition::Between(low, high) => {
            (Bound::Included(at(low)), prefix_successor(&at(high)))
        }
        RangeKeyCondition::BeginsWith(prefix) => {
            let raw = match prefix {
                AttributeValue::S(s) => s.as_bytes(),
                AttributeValue::B(b) => b.as_slice(),
                _ => &[],
            };
            // The encoding of every value starting with `raw` starts with `raw`'s escaped bytes.
            let mut start = p.to_vec();
            for &b in raw {
                start.push(b);
                if b == 0 {
                    start.push(0xFF);
                }
            }
            let end = prefix_successor(&start);
            (Bound::Included(start), end)
        }
    }
}

/// A Query filter may not name key attributes (they belong in the key condition).
fn reject_key_attributes(
    filter: &Condition,
    schema: &KeySchema,
    parameter: &str,
) -> Result<(), DynamoError> {
    let mut roots = Vec::new();
    condition_roots(filter, &mut roots);
    match roots.into_iter().find(|root| schema.is_key_attribute(root)) {
        Some(key) => Err(DynamoError::validation(format!(
            "{parameter} can only contain non-primary key attributes: Primary key attribute: {key}"
        ))),
        None => Ok(()),
    }
}
