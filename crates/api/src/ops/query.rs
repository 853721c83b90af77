//! Query: one partition of the table or of a secondary index, read in sort-key order (forwards or
//! backwards) as a single range read. The key condition becomes byte bounds over the
//! order-preserving key encoding (see docs/storage-format.md).

use std::collections::HashMap;
use std::ops::Bound;

use haven_expr::{Condition, KeyCondition, RangeKeyCondition};
use haven_model::key_codec::{encode_key_value, partition_hash};
use haven_model::schema::KeySchema;
use haven_model::{AttributeValue, Item};
use serde::Deserialize;
use serde_json::Value;

use crate::Service;
use crate::error::{DynamoError, Violations};
use crate::expressions::{ExpressionTexts, LegacyParams, parse_request_conditions};
use crate::items::{CapacityReport, check_table_name, table};
use crate::pages::{
    PageRequest, ReadTarget, attribute_roots, check_limit, check_select, condition_roots,
    prefix_successor, projection_parameter, read_page, render_page, resolve_select,
};
use crate::wire::parse_item;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QueryInput {
    table_name: Option<String>,
    index_name: Option<String>,
    select: Option<String>,
    limit: Option<i64>,
    consistent_read: Option<bool>,
    scan_index_forward: Option<bool>,
    exclusive_start_key: Option<Value>,
    return_consumed_capacity: Option<String>,
    projection_expression: Option<String>,
    filter_expression: Option<String>,
    key_condition_expression: Option<String>,
    attributes_to_get: Option<Vec<String>>,
    key_conditions: Option<serde_json::Map<String, Value>>,
    query_filter: Option<serde_json::Map<String, Value>>,
    conditional_operator: Option<String>,
    expression_attribute_names: Option<HashMap<String, String>>,
    expression_attribute_values: Option<Value>,
}

pub(crate) fn query(service: &Service, input: QueryInput) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    check_table_name(&mut violations, input.table_name.as_deref());
    check_select(&mut violations, input.select.as_deref());
    check_limit(&mut violations, input.limit);
    let capacity =
        CapacityReport::parse(&mut violations, input.return_consumed_capacity.as_deref());
    violations.into_result()?;
    let texts = ExpressionTexts {
        key_condition: input.key_condition_expression.as_deref(),
        filter: input.filter_expression.as_deref(),
        projection: input.projection_expression.as_deref(),
        ..ExpressionTexts::default()
    };
    let legacy = LegacyParams {
        attributes_to_get: input.attributes_to_get.as_deref(),
        key_conditions: input.key_conditions.as_ref(),
        query_filter: input.query_filter.as_ref(),
        conditional_operator: input.conditional_operator.as_deref(),
        ..LegacyParams::default()
    };
    let expressions = parse_request_conditions(
        texts,
        legacy,
        input.expression_attribute_names.as_ref(),
        input.expression_attribute_values.as_ref(),
    )?;
    let projection = projection_parameter(
        input.projection_expression.is_some(),
        input.attributes_to_get.is_some(),
    );
    let select = resolve_select(
        input.select.as_deref(),
        projection,
        input.index_name.as_deref(),
    )?;
    let key_condition = expressions.key_condition.as_ref().ok_or_else(|| {
        DynamoError::validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")
    })?;
    let start_key = input
        .exclusive_start_key
        .as_ref()
        .map(parse_item)
        .transpose()?;

    let meta = table(service, input.table_name.as_deref().unwrap_or_default())?;
    let target = ReadTarget::new(&meta, input.index_name.as_deref())?;
    let consistent = input.consistent_read.unwrap_or(false);
    if consistent
        && target
            .index
            .is_some_and(|i| i.kind == crate::catalog::IndexKind::Global)
    {
        return Err(DynamoError::validation(
            "Consistent reads are not supported on global secondary indexes",
        ));
    }
    let schema = target.keys();
    let range = KeyRange::new(key_condition.resolve(&schema)?, &schema, &target)?;
    if let Some(filter) = &expressions.filter {
        let parameter = if input.query_filter.is_some() {
            "QueryFilter"
        } else {
            "Filter Expression"
        };
        reject_key_attributes(filter, &schema, parameter)?;
    }
    let reverse = !input.scan_index_forward.unwrap_or(true);
    let (mut lower, mut upper) = (range.lower.clone(), range.upper.clone());
    if let Some(start) = &start_key {
        let start = range.start_after(start, &schema, &target)?;
        if reverse {
            upper = Bound::Excluded(start);
        } else {
            lower = Bound::Excluded(start);
        }
    }
    let roots = attribute_roots(
        expressions.projection.as_deref(),
        expressions.filter.as_ref(),
    );
    let request = PageRequest {
        lower,
        upper,
        reverse,
        limit: input.limit.map(|l| l as usize),
        filter: expressions.filter.as_ref(),
        projection: expressions.projection.as_deref(),
        select,
        fetch_from_table: target.fetches_from_table(select, &roots.0, &roots.1)?,
        consistent,
    };
    let snapshot = service.engine.snapshot()?;
    let page = read_page(&*snapshot, &target, &request)?;
    let capacity = target.capacity(capacity, &page, consistent);
    Ok(render_page(page, select, capacity))
}

/// The key range a key condition selects: one partition, optionally narrowed by sort key.
struct KeyRange {
    condition: KeyCondition,
    /// Storage-key prefix of the partition.
    partition_prefix: Vec<u8>,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
}

fn encoded(value: &AttributeValue) -> Vec<u8> {
    let mut out = Vec::new();
    encode_key_value(value, &mut out);
    out
}

impl KeyRange {
    fn new(
        condition: KeyCondition,
        schema: &KeySchema,
        target: &ReadTarget,
    ) -> Result<KeyRange, DynamoError> {
        if let Some(error) = crate::items::empty_key_value(&schema.partition.name, &condition.hash)
        {
            return Err(error);
        }
        if let (Some(range), Some(sort)) = (&condition.range, &schema.sort)
            && let Some(error) = range
                .values()
                .into_iter()
                .find_map(|v| crate::items::empty_key_value(&sort.name, v))
        {
            return Err(error);
        }
        let encoded_partition = encoded(&condition.hash);
        let mut partition_prefix = target.prefix().0;
        partition_prefix.extend_from_slice(&partition_hash(&encoded_partition));
        partition_prefix.extend_from_slice(&encoded_partition);
        let (lower, upper) = match &condition.range {
            Some(range) => sort_bounds(range, &partition_prefix),
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
    fn start_after(
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
        if !start[&schema.partition.name].same_value(&self.condition.hash) {
            return Err(outside());
        }
        if let (Some(range), Some(sort)) = (&self.condition.range, &schema.sort)
            && !range.matches(&start[&sort.name])
        {
            return Err(outside());
        }
        debug_assert!(storage_key.starts_with(&self.partition_prefix));
        Ok(storage_key)
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
