//! Query: one partition, read in sort-key order (forwards or backwards) as a single range read.
//! The KeyConditionExpression is turned into byte bounds over the order-preserving key encoding.

use std::collections::HashMap;
use std::ops::Bound;

use haven_expr::{Comparator, Condition, Operand, PathElement};
use haven_model::key_codec::{encode_key_value, partition_hash};
use haven_model::schema::{KeyAttribute, KeySchema};
use haven_model::{AttributeValue, Item};
use serde::Deserialize;
use serde_json::Value;

use crate::Service;
use crate::catalog::TableMeta;
use crate::error::{DynamoError, Violations};
use crate::expressions::{ExpressionTexts, LegacyParams, parse_request_conditions};
use crate::items::{CapacityReport, check_table_name, table};
use crate::pages::{
    PageRequest, check_limit, check_select, page_capacity, prefix_successor, projection_parameter,
    read_page, render_page, resolve_select, validate_start_key,
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
    if let Some(index) = &input.index_name {
        return Err(DynamoError::validation(format!(
            "The table does not have the specified index: {index}"
        )));
    }
    let schema = meta.keys();
    let range = KeyRange::from_condition(key_condition, &schema, &meta)?;
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
        let start = range.start_after(start, &schema, &meta)?;
        if reverse {
            upper = Bound::Excluded(start);
        } else {
            lower = Bound::Excluded(start);
        }
    }
    let consistent = input.consistent_read.unwrap_or(false);
    let snapshot = service.engine.snapshot()?;
    let request = PageRequest {
        lower,
        upper,
        reverse,
        limit: input.limit.map(|l| l as usize),
        filter: expressions.filter.as_ref(),
        projection: expressions.projection.as_deref(),
        select,
    };
    let page = read_page(&*snapshot, &meta, &request)?;
    let capacity = page_capacity(capacity, &meta.name, &page, consistent);
    Ok(render_page(page, select, capacity))
}

/// The key range a key condition selects: one partition, optionally narrowed by sort key.
struct KeyRange {
    partition_value: AttributeValue,
    /// Storage-key prefix of the partition.
    partition_prefix: Vec<u8>,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    sort_condition: Option<SortCondition>,
}

/// A condition on the sort key, normalised so the key attribute is on the left.
enum SortCondition {
    Compare(Comparator, AttributeValue),
    Between(AttributeValue, AttributeValue),
    BeginsWith(AttributeValue),
}

fn invalid_operator(name: &str) -> DynamoError {
    DynamoError::validation(format!(
        "Invalid operator used in KeyConditionExpression: {name}"
    ))
}

/// Splits the top-level ANDs of a key condition into its simple conditions.
fn conjuncts<'c>(
    condition: &'c Condition,
    out: &mut Vec<&'c Condition>,
) -> Result<(), DynamoError> {
    match condition {
        Condition::And(a, b) => {
            conjuncts(a, out)?;
            conjuncts(b, out)
        }
        Condition::Or(..) => Err(invalid_operator("OR")),
        Condition::Not(..) => Err(invalid_operator("NOT")),
        Condition::In(..) => Err(invalid_operator("IN")),
        Condition::AttributeExists(..) => Err(invalid_operator("attribute_exists")),
        Condition::AttributeNotExists(..) => Err(invalid_operator("attribute_not_exists")),
        Condition::AttributeType(..) => Err(invalid_operator("attribute_type")),
        Condition::Contains(..) => Err(invalid_operator("contains")),
        Condition::Compare(_, Comparator::Ne, _) => Err(invalid_operator("<>")),
        simple => {
            out.push(simple);
            Ok(())
        }
    }
}

/// The attribute a key-condition operand names, or the value it carries.
enum Side<'c> {
    Attribute(&'c str),
    Value(&'c AttributeValue),
}

fn side(operand: &Operand) -> Result<Side<'_>, DynamoError> {
    match operand {
        Operand::Path(path) => match path.0.as_slice() {
            [PathElement::Name(name)] => Ok(Side::Attribute(name)),
            _ => Err(DynamoError::validation(
                "KeyConditionExpressions cannot contain nested attributes",
            )),
        },
        Operand::Value { value, .. } => Ok(Side::Value(value)),
        Operand::Size(..) => Err(invalid_operator("size")),
    }
}

fn flip(comparator: Comparator) -> Comparator {
    match comparator {
        Comparator::Lt => Comparator::Gt,
        Comparator::Le => Comparator::Ge,
        Comparator::Gt => Comparator::Lt,
        Comparator::Ge => Comparator::Le,
        other => other,
    }
}

/// One simple condition as (attribute, sort-style condition).
fn simple_condition(condition: &Condition) -> Result<(&str, SortCondition), DynamoError> {
    let unsupported = || DynamoError::validation("Query key condition not supported");
    match condition {
        Condition::Compare(a, comparator, b) => match (side(a)?, side(b)?) {
            (Side::Attribute(name), Side::Value(v)) => {
                Ok((name, SortCondition::Compare(*comparator, v.clone())))
            }
            (Side::Value(v), Side::Attribute(name)) => {
                Ok((name, SortCondition::Compare(flip(*comparator), v.clone())))
            }
            _ => Err(unsupported()),
        },
        Condition::Between(a, low, high) => match (side(a)?, side(low)?, side(high)?) {
            (Side::Attribute(name), Side::Value(l), Side::Value(h)) => {
                Ok((name, SortCondition::Between(l.clone(), h.clone())))
            }
            _ => Err(unsupported()),
        },
        Condition::BeginsWith(a, prefix) => match (side(a)?, side(prefix)?) {
            (Side::Attribute(name), Side::Value(p)) => {
                Ok((name, SortCondition::BeginsWith(p.clone())))
            }
            _ => Err(unsupported()),
        },
        _ => Err(unsupported()),
    }
}

fn encoded(value: &AttributeValue) -> Vec<u8> {
    let mut out = Vec::new();
    encode_key_value(value, &mut out);
    out
}

/// `{N:3}`: how DynamoDB prints a value inside key-condition messages.
fn message_form(value: &AttributeValue) -> String {
    let json = crate::wire::value_to_json(value);
    let (kind, payload) = json
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("one member");
    format!("{{{kind}:{}}}", payload.as_str().unwrap_or_default())
}

fn type_mismatch() -> DynamoError {
    DynamoError::validation(
        "One or more parameter values were invalid: Condition parameter type does not match schema type",
    )
}

impl SortCondition {
    fn values(&self) -> Vec<&AttributeValue> {
        match self {
            SortCondition::Compare(_, v) | SortCondition::BeginsWith(v) => vec![v],
            SortCondition::Between(l, h) => vec![l, h],
        }
    }

    /// Checks operand types against the key attribute's declared type.
    fn check(&self, key: &KeyAttribute) -> Result<(), DynamoError> {
        if let SortCondition::BeginsWith(v) = self
            && !matches!(v, AttributeValue::S(_) | AttributeValue::B(_))
        {
            return Err(DynamoError::validation(format!(
                "Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: {}",
                v.type_name()
            )));
        }
        if self.values().iter().any(|v| !key.scalar_type.matches(v)) {
            return Err(type_mismatch());
        }
        if let SortCondition::Between(low, high) = self
            && encoded(low) > encoded(high)
        {
            return Err(DynamoError::validation(format!(
                "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {}, upper bound operand: AttributeValue: {}",
                message_form(low),
                message_form(high)
            )));
        }
        Ok(())
    }

    /// Byte bounds within a partition whose storage prefix is `p`.
    fn bounds(&self, p: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        let at = |v: &AttributeValue| [p, &encoded(v)].concat();
        let partition_start = Bound::Included(p.to_vec());
        let partition_end = prefix_successor(p);
        match self {
            SortCondition::Compare(Comparator::Eq, v) => {
                (Bound::Included(at(v)), Bound::Included(at(v)))
            }
            SortCondition::Compare(Comparator::Lt, v) => (partition_start, Bound::Excluded(at(v))),
            SortCondition::Compare(Comparator::Le, v) => (partition_start, Bound::Included(at(v))),
            SortCondition::Compare(Comparator::Gt, v) => (Bound::Excluded(at(v)), partition_end),
            SortCondition::Compare(_, v) => (Bound::Included(at(v)), partition_end),
            SortCondition::Between(low, high) => {
                (Bound::Included(at(low)), Bound::Included(at(high)))
            }
            SortCondition::BeginsWith(prefix) => {
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

    fn contains(&self, value: &AttributeValue, p: &[u8]) -> bool {
        let key = [p, &encoded(value)].concat();
        let (lower, upper) = self.bounds(p);
        let above = match &lower {
            Bound::Included(l) => key >= *l,
            Bound::Excluded(l) => key > *l,
            Bound::Unbounded => true,
        };
        let below = match &upper {
            Bound::Included(u) => key <= *u,
            Bound::Excluded(u) => key < *u,
            Bound::Unbounded => true,
        };
        above && below
    }
}

impl KeyRange {
    fn from_condition(
        condition: &Condition,
        schema: &KeySchema,
        meta: &TableMeta,
    ) -> Result<KeyRange, DynamoError> {
        let mut parts = Vec::new();
        conjuncts(condition, &mut parts)?;
        let parts_count = parts.len();
        let mut partition = None;
        let mut sort = None;
        for part in parts {
            let (name, condition) = simple_condition(part)?;
            let slot = if name == schema.partition.name {
                &mut partition
            } else if schema.sort.as_ref().is_some_and(|s| s.name == name) {
                &mut sort
            } else {
                return Err(missed_key(schema, partition.is_none()));
            };
            if slot.replace(condition).is_some() {
                return Err(DynamoError::validation(
                    "KeyConditionExpressions must only contain one condition per key",
                ));
            }
        }
        if parts_count > 2 {
            return Err(DynamoError::validation(
                "Conditions can be of length 1 or 2 only",
            ));
        }
        let partition_value = match partition {
            Some(SortCondition::Compare(Comparator::Eq, value)) => value,
            Some(_) => return Err(DynamoError::validation("Query key condition not supported")),
            None => return Err(missed_key(schema, true)),
        };
        if !schema.partition.scalar_type.matches(&partition_value) {
            return Err(type_mismatch());
        }
        if let (Some(condition), Some(key)) = (&sort, &schema.sort) {
            condition.check(key)?;
        }
        if let Some(error) = crate::items::empty_key_value(&schema.partition.name, &partition_value)
        {
            return Err(error);
        }
        if let (Some(condition), Some(key)) = (&sort, &schema.sort)
            && let Some(error) = condition
                .values()
                .into_iter()
                .find_map(|v| crate::items::empty_key_value(&key.name, v))
        {
            return Err(error);
        }
        let mut partition_prefix = meta.item_prefix();
        let encoded_partition = encoded(&partition_value);
        partition_prefix.extend_from_slice(&partition_hash(&encoded_partition));
        partition_prefix.extend_from_slice(&encoded_partition);
        let (lower, upper) = match &sort {
            Some(condition) => condition.bounds(&partition_prefix),
            None => (
                Bound::Included(partition_prefix.clone()),
                prefix_successor(&partition_prefix),
            ),
        };
        Ok(KeyRange {
            partition_value,
            partition_prefix,
            lower,
            upper,
            sort_condition: sort,
        })
    }

    /// Validates ExclusiveStartKey against the query and returns its storage key.
    fn start_after(
        &self,
        start: &Item,
        schema: &KeySchema,
        meta: &TableMeta,
    ) -> Result<Vec<u8>, DynamoError> {
        validate_start_key(meta, start)?;
        let outside = || {
            DynamoError::validation(
                "The provided starting key does not match the range key predicate",
            )
        };
        if !start[&schema.partition.name].same_value(&self.partition_value) {
            return Err(outside());
        }
        if let (Some(condition), Some(sort)) = (&self.sort_condition, &schema.sort)
            && !condition.contains(&start[&sort.name], &self.partition_prefix)
        {
            return Err(outside());
        }
        Ok(schema.storage_key(&meta.item_prefix(), start))
    }
}

/// "Query condition missed key schema element: <name>", naming the partition key if it is missing.
fn missed_key(schema: &KeySchema, partition_missing: bool) -> DynamoError {
    let name = match (&schema.sort, partition_missing) {
        (Some(sort), false) => &sort.name,
        _ => &schema.partition.name,
    };
    DynamoError::validation(format!("Query condition missed key schema element: {name}"))
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

/// The top-level attribute names a condition reads, in order of appearance.
fn condition_roots<'c>(condition: &'c Condition, out: &mut Vec<&'c str>) {
    fn operand_roots<'c>(operand: &'c Operand, out: &mut Vec<&'c str>) {
        match operand {
            Operand::Path(path) => out.push(path.root()),
            Operand::Size(inner) => operand_roots(inner, out),
            Operand::Value { .. } => {}
        }
    }
    match condition {
        Condition::Compare(a, _, b)
        | Condition::AttributeType(a, b)
        | Condition::BeginsWith(a, b)
        | Condition::Contains(a, b) => {
            operand_roots(a, out);
            operand_roots(b, out);
        }
        Condition::Between(a, low, high) => [a, low, high]
            .into_iter()
            .for_each(|o| operand_roots(o, out)),
        Condition::In(a, list) => std::iter::once(a)
            .chain(list)
            .for_each(|o| operand_roots(o, out)),
        Condition::AttributeExists(path) | Condition::AttributeNotExists(path) => {
            out.push(path.root())
        }
        Condition::Not(inner) => condition_roots(inner, out),
        Condition::And(a, b) | Condition::Or(a, b) => {
            condition_roots(a, out);
            condition_roots(b, out);
        }
    }
}
