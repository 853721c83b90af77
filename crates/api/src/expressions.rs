//! The bridge between a request's expression parameters and the `haven-expr` crate: reading
//! ExpressionAttributeNames/Values, parsing every expression of the request through one placeholder
//! tracker, and the request-level rules DynamoDB checks around them.

use std::borrow::Cow;
use std::collections::HashMap;

use haven_expr::{
    AttributeAction, AttributeUpdate, AttributeUpdates, ComparisonOperator, Condition,
    ConditionKind, ConditionalOperator, ExpectedAttribute, ExprError, FilterCondition,
    KeyPredicate, MultiKeySchema, Path, Placeholders, UpdateExpression, UpdatedPaths,
    attributes_to_get, translate_conditions, translate_filter, translate_key_conditions,
    translate_multi_key_conditions,
};
use haven_model::{AttributeValue, Item};
use serde_json::{Map, Value};

use crate::error::DynamoError;
use crate::wire::parse_item;
use crate::wire_item::WireItem;

impl From<ExprError> for DynamoError {
    fn from(error: ExprError) -> DynamoError {
        DynamoError::Validation(error.0)
    }
}

/// ExpressionAttributeValues as a request holds them: read into values already, when the request
/// was read straight and they were clean (`crate::wire_item`: then no value can be refused, and
/// the map's keys are checked as always), or as sent.
#[derive(Clone, Copy)]
pub(crate) enum SentValues<'r> {
    Read(&'r Item),
    Sent(&'r Value),
}

impl<'r> From<&'r Value> for SentValues<'r> {
    fn from(value: &'r Value) -> SentValues<'r> {
        SentValues::Sent(value)
    }
}

impl<'r> From<&'r WireItem> for SentValues<'r> {
    fn from(values: &'r WireItem) -> SentValues<'r> {
        match values {
            WireItem::Read(item) => SentValues::Read(item),
            WireItem::Sent(value) => SentValues::Sent(value),
        }
    }
}

/// The expressions of one request, each optional.
#[derive(Default)]
pub(crate) struct ExpressionTexts<'r> {
    pub condition: Option<&'r str>,
    pub update: Option<&'r str>,
    pub projection: Option<&'r str>,
    pub key_condition: Option<&'r str>,
    pub filter: Option<&'r str>,
    /// How DynamoDB names the operation's expressions that can use values when none was given,
    /// e.g. "UpdateExpression and ConditionExpression are null" (empty: no such suffix).
    pub missing_value_expressions: &'static str,
}

impl ExpressionTexts<'_> {
    /// Whether the request gave any expression (destructured, so that a new one is not forgotten).
    fn any(&self) -> bool {
        let ExpressionTexts {
            condition,
            update,
            projection,
            key_condition,
            filter,
            missing_value_expressions: _,
        } = self;
        [condition, update, projection, key_condition, filter]
            .iter()
            .any(|text| text.is_some())
    }
}

/// The parsed expressions of one request.
#[derive(Default)]
pub(crate) struct Expressions {
    pub condition: Option<Condition>,
    pub update: Option<UpdateExpression>,
    pub projection: Option<Vec<Path>>,
    pub key_condition: Option<Condition>,
    pub filter: Option<Condition>,
}

/// Parses a request's expressions with its ExpressionAttributeNames/Values, checking that the maps
/// are only given with expressions and that every placeholder they define is used.
fn parse_expressions(
    texts: ExpressionTexts,
    names: Option<&HashMap<String, String>>,
    values: Option<SentValues>,
) -> Result<Expressions, DynamoError> {
    let any_expression = texts.any();
    let values: Option<Cow<Item>> = match values {
        // Their keys are checked by `Placeholders::new` below, as `parse_values` checks them.
        Some(SentValues::Read(values)) => Some(Cow::Borrowed(values)),
        Some(SentValues::Sent(v)) if any_expression => Some(Cow::Owned(parse_values(v, names)?)),
        Some(SentValues::Sent(v)) => Some(Cow::Owned(parse_item(v)?)),
        None => None,
    };
    if !any_expression {
        if names.is_some() {
            return Err(DynamoError::validation(
                "ExpressionAttributeNames can only be specified when using expressions",
            ));
        }
        if values.is_some() {
            let mut message =
                "ExpressionAttributeValues can only be specified when using expressions"
                    .to_string();
            if !texts.missing_value_expressions.is_empty() {
                message = format!("{message}: {}", texts.missing_value_expressions);
            }
            return Err(DynamoError::validation(message));
        }
        return Ok(Expressions::default());
    }
    let mut placeholders = Placeholders::new(names, values.as_deref())?;
    let expressions = Expressions {
        update: texts
            .update
            .map(|t| haven_expr::parse_update(t, &mut placeholders))
            .transpose()?,
        condition: texts
            .condition
            .map(|t| haven_expr::parse_condition(t, &mut placeholders, ConditionKind::Condition))
            .transpose()?,
        projection: texts
            .projection
            .map(|t| haven_expr::parse_projection(t, &mut placeholders))
            .transpose()?,
        key_condition: texts
            .key_condition
            .map(|t| haven_expr::parse_condition(t, &mut placeholders, ConditionKind::KeyCondition))
            .transpose()?,
        filter: texts
            .filter
            .map(|t| haven_expr::parse_condition(t, &mut placeholders, ConditionKind::Filter))
            .transpose()?,
    };
    placeholders.check_all_used()?;
    Ok(expressions)
}

/// Reads ExpressionAttributeValues. DynamoDB checks the maps' keys before their values, and names
/// the placeholder whose value is invalid: "ExpressionAttributeValues contains invalid value: <the
/// value's error> for key :v" (dynalite `test/updateItem.js`, `test/deleteItem.js`).
fn parse_values(
    values: &Value,
    names: Option<&HashMap<String, String>>,
) -> Result<Item, DynamoError> {
    let Some(object) = values.as_object() else {
        // Not a map: the wire reader's own error.
        return parse_item(values);
    };
    let keys: Item = object
        .keys()
        .map(|k| (k.clone(), AttributeValue::Null))
        .collect();
    Placeholders::new(names, Some(&keys))?;
    let mut entries: Vec<(&String, &Value)> = object.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
        .into_iter()
        .map(|(key, value)| match crate::wire::parse_value(value) {
            Ok(value) => Ok((key.clone(), value)),
            Err(DynamoError::Validation(message)) => Err(DynamoError::validation(format!(
                "ExpressionAttributeValues contains invalid value: {message} for key {key}"
            ))),
            Err(other) => Err(other),
        })
        .collect()
}

/// ReturnValuesOnConditionCheckFailure: whether a failed condition returns the item.
pub(crate) fn return_item_on_failure(
    value: Option<&str>,
    violations: &mut crate::error::Violations,
) -> bool {
    match value {
        None | Some("NONE") => false,
        Some("ALL_OLD") => true,
        Some(other) => {
            violations.push(format!(
                "Value '{other}' at 'returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]"
            ));
            false
        }
    }
}

/// Evaluates an optional condition against the current item; a false condition is
/// ConditionalCheckFailedException, carrying the item when the request asked for it.
pub(crate) fn check_condition(
    condition: Option<&Condition>,
    current: Option<&Item>,
    return_item: bool,
) -> Result<(), DynamoError> {
    let Some(condition) = condition else {
        return Ok(());
    };
    if condition.evaluate(current)? {
        return Ok(());
    }
    Err(DynamoError::ConditionalCheckFailed {
        message: "The conditional request failed".into(),
        item: current.filter(|_| return_item).cloned(),
    })
}

/// The legacy (pre-expression) parameters of a request, as sent.
#[derive(Default)]
pub(crate) struct LegacyParams<'r> {
    pub expected: Option<&'r Map<String, Value>>,
    pub attribute_updates: Option<&'r Map<String, Value>>,
    pub attributes_to_get: Option<&'r [String]>,
    pub key_conditions: Option<&'r Map<String, Value>>,
    pub query_filter: Option<&'r Map<String, Value>>,
    pub scan_filter: Option<&'r Map<String, Value>>,
    pub conditional_operator: Option<&'r str>,
}

/// An update in either form.
pub(crate) enum Update {
    Expression(UpdateExpression),
    Legacy(AttributeUpdates),
}

impl Update {
    pub fn check_key_attributes(&self, key_names: &[&str]) -> Result<(), DynamoError> {
        match self {
            Update::Expression(update) => Ok(update.check_key_attributes(key_names)?),
            Update::Legacy(_) => Ok(()),
        }
    }

    /// The update applied to `item` (the caller's own copy, dropped if the update fails).
    pub fn apply_to(
        &self,
        mut item: Item,
        key_names: &[&str],
    ) -> Result<(Item, UpdatedPaths), DynamoError> {
        match self {
            Update::Expression(update) => Ok(update.apply_to(item, key_names)?),
            Update::Legacy(updates) => {
                let updated = updates.apply(&mut item, key_names)?;
                Ok((item, updated))
            }
        }
    }
}

/// Every expression or legacy parameter of a request, parsed into the one AST.
#[derive(Default)]
pub(crate) struct RequestConditions {
    pub condition: Option<Condition>,
    pub update: Option<Update>,
    pub projection: Option<Vec<Path>>,
    pub key_condition: Option<KeyConditionSource>,
    pub filter: Option<Condition>,
}

/// A Query's key condition as sent; it can only be checked once the key schema (of the table or
/// of the index queried) is known.
pub(crate) enum KeyConditionSource {
    Expression(Box<Condition>),
    Legacy(Vec<(String, FilterCondition)>),
}

impl KeyConditionSource {
    /// Checks the condition against a key schema and reduces it to the partition values and the
    /// sort-key conditions.
    pub fn resolve(
        &self,
        schema: &haven_model::schema::KeySchema,
    ) -> Result<KeyPredicate, DynamoError> {
        if schema.is_multi_attribute() {
            let multi = MultiKeySchema {
                hash: typed_names(&schema.partition),
                range: typed_names(&schema.sort),
            };
            return Ok(match self {
                KeyConditionSource::Expression(condition) => {
                    haven_expr::multi_key_condition(condition, &multi)?
                }
                KeyConditionSource::Legacy(entries) => {
                    translate_multi_key_conditions(entries, &multi)?
                }
            });
        }
        let expr_schema = crate::partiql::expr_schema(schema);
        Ok(match self {
            KeyConditionSource::Expression(condition) => {
                haven_expr::key_condition(condition, &expr_schema)?
            }
            KeyConditionSource::Legacy(entries) => translate_key_conditions(entries, &expr_schema)?,
        }
        .into())
    }
}

/// Key attributes as the expression language names them: (name, type).
fn typed_names(attributes: &[haven_model::schema::KeyAttribute]) -> Vec<(&str, &str)> {
    attributes
        .iter()
        .map(|a| (a.name.as_str(), a.scalar_type.name()))
        .collect()
}

/// Parses a request's expressions or legacy parameters (never both: DynamoDB refuses the mix).
pub(crate) fn parse_request_conditions(
    texts: ExpressionTexts,
    legacy: LegacyParams,
    names: Option<&HashMap<String, String>>,
    values: Option<SentValues>,
) -> Result<RequestConditions, DynamoError> {
    if nothing_given(&texts, &legacy) && names.is_none() && values.is_none() {
        // Most GetItems and PutItems: nothing to check (the checks below find nothing either).
        return Ok(RequestConditions::default());
    }
    check_no_mix(&texts, &legacy)?;
    let expressions = parse_expressions(texts, names, values)?;
    let operator = conditional_operator(legacy.conditional_operator)?;
    check_legacy_shapes(&legacy)?;
    let legacy_condition =
        |map: Option<&Map<String, Value>>| -> Result<Option<Condition>, DynamoError> {
            match map {
                Some(map) => Ok(translate_conditions(&expected_entries(map)?, operator)?),
                None => Ok(None),
            }
        };
    let update = match (expressions.update, legacy.attribute_updates) {
        (Some(update), _) => Some(Update::Expression(update)),
        (None, Some(map)) => Some(Update::Legacy(AttributeUpdates::new(
            &attribute_update_entries(map)?,
        )?)),
        (None, None) => None,
    };
    Ok(RequestConditions {
        condition: expressions.condition.or(legacy_condition(legacy.expected)?),
        update,
        projection: expressions
            .projection
            .or_else(|| legacy.attributes_to_get.map(attributes_to_get)),
        key_condition: match (expressions.key_condition, legacy.key_conditions) {
            (Some(condition), _) => Some(KeyConditionSource::Expression(Box::new(condition))),
            (None, Some(map)) => Some(KeyConditionSource::Legacy(filter_entries(
                map,
                "keyConditions",
            )?)),
            (None, None) => None,
        },
        filter: match (expressions.filter, legacy.query_filter, legacy.scan_filter) {
            (Some(filter), ..) => Some(filter),
            (None, Some(map), _) => {
                translate_filter(&filter_entries(map, "queryFilter")?, operator)?
            }
            (None, None, Some(map)) => {
                translate_filter(&filter_entries(map, "scanFilter")?, operator)?
            }
            (None, None, None) => None,
        },
    })
}

/// Whether a request has neither an expression nor a legacy parameter.
fn nothing_given(texts: &ExpressionTexts, legacy: &LegacyParams) -> bool {
    let LegacyParams {
        expected,
        attribute_updates,
        attributes_to_get,
        key_conditions,
        query_filter,
        scan_filter,
        conditional_operator,
    } = legacy;
    !texts.any()
        && [
            expected,
            attribute_updates,
            key_conditions,
            query_filter,
            scan_filter,
        ]
        .iter()
        .all(|map| map.is_none())
        && attributes_to_get.is_none()
        && conditional_operator.is_none()
}

/// DynamoDB's refusal of requests that mix expressions with legacy parameters.
fn check_no_mix(texts: &ExpressionTexts, legacy: &LegacyParams) -> Result<(), DynamoError> {
    let legacy_names: Vec<&str> = [
        ("AttributesToGet", legacy.attributes_to_get.is_some()),
        ("QueryFilter", legacy.query_filter.is_some()),
        ("ScanFilter", legacy.scan_filter.is_some()),
        ("ConditionalOperator", legacy.conditional_operator.is_some()),
        ("AttributeUpdates", legacy.attribute_updates.is_some()),
        ("KeyConditions", legacy.key_conditions.is_some()),
        ("Expected", legacy.expected.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    let expression_names: Vec<&str> = [
        ("ProjectionExpression", texts.projection.is_some()),
        ("FilterExpression", texts.filter.is_some()),
        ("UpdateExpression", texts.update.is_some()),
        ("KeyConditionExpression", texts.key_condition.is_some()),
        ("ConditionExpression", texts.condition.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    if legacy_names.is_empty() || expression_names.is_empty() {
        return Ok(());
    }
    Err(DynamoError::validation(format!(
        "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {{{}}} Expression parameters: {{{}}}",
        legacy_names.join(", "),
        expression_names.join(", ")
    )))
}

fn conditional_operator(value: Option<&str>) -> Result<ConditionalOperator, DynamoError> {
    match value {
        None | Some("AND") => Ok(ConditionalOperator::And),
        Some("OR") => Ok(ConditionalOperator::Or),
        Some(other) => Err(DynamoError::validation(format!(
            "1 validation error detected: Value '{other}' at 'conditionalOperator' failed to satisfy constraint: Member must satisfy enum value set: [AND, OR]"
        ))),
    }
}

fn expected_entries(
    map: &Map<String, Value>,
) -> Result<Vec<(String, ExpectedAttribute)>, DynamoError> {
    map.iter()
        .map(|(name, entry)| {
            let field = |member: &str| entry.get(member).filter(|v| !v.is_null());
            let comparison_operator = match field("ComparisonOperator").and_then(Value::as_str) {
                None => None,
                Some(op) => Some(ComparisonOperator::from_name(op).ok_or_else(|| {
                    DynamoError::validation(format!(
                        "1 validation error detected: Value '{op}' at 'expected.{name}.member.comparisonOperator' failed to satisfy constraint: Member must satisfy enum value set: [IN, NULL, BETWEEN, LT, NOT_CONTAINS, EQ, GT, NOT_NULL, NE, LE, BEGINS_WITH, GE, CONTAINS]"
                    ))
                })?),
            };
            let attribute_value_list = field("AttributeValueList")
                .map(|list| {
                    list.as_array()
                        .ok_or_else(|| DynamoError::Serialization("Unexpected value type in payload".into()))?
                        .iter()
                        .map(crate::wire::parse_value)
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            let entry = ExpectedAttribute {
                value: field("Value").map(crate::wire::parse_value).transpose()?,
                exists: field("Exists").and_then(Value::as_bool),
                comparison_operator,
                attribute_value_list,
            };
            Ok((name.clone(), entry))
        })
        .collect()
}

fn attribute_update_entries(
    map: &Map<String, Value>,
) -> Result<Vec<(String, AttributeUpdate)>, DynamoError> {
    map.iter()
        .map(|(name, entry)| {
            let action = match entry.get("Action").and_then(Value::as_str) {
                None => None,
                Some("PUT") => Some(AttributeAction::Put),
                Some("ADD") => Some(AttributeAction::Add),
                Some("DELETE") => Some(AttributeAction::Delete),
                Some(other) => {
                    return Err(DynamoError::validation(format!(
                        "1 validation error detected: Value '{other}' at 'attributeUpdates.{name}.member.action' failed to satisfy constraint: Member must satisfy enum value set: [ADD, PUT, DELETE]"
                    )));
                }
            };
            let value = entry.get("Value").filter(|v| !v.is_null()).map(crate::wire::parse_value).transpose()?;
            Ok((name.clone(), AttributeUpdate { action, value }))
        })
        .collect()
}

/// Reads a QueryFilter, ScanFilter or KeyConditions map (entries in request order).
fn filter_entries(
    map: &Map<String, Value>,
    field: &str,
) -> Result<Vec<(String, FilterCondition)>, DynamoError> {
    map.iter()
        .map(|(name, entry)| {
            let operator = entry.get("ComparisonOperator").and_then(Value::as_str).ok_or_else(|| {
                DynamoError::validation(format!(
                    "1 validation error detected: Value null at '{field}.{name}.member.comparisonOperator' failed to satisfy constraint: Member must not be null"
                ))
            })?;
            let comparison_operator = ComparisonOperator::from_name(operator).ok_or_else(|| {
                DynamoError::validation(format!(
                    "1 validation error detected: Value '{operator}' at '{field}.{name}.member.comparisonOperator' failed to satisfy constraint: Member must satisfy enum value set: [IN, NULL, BETWEEN, LT, NOT_CONTAINS, EQ, GT, NOT_NULL, NE, LE, BEGINS_WITH, GE, CONTAINS]"
                ))
            })?;
            let attribute_value_list = match entry.get("AttributeValueList").filter(|v| !v.is_null()) {
                None => Vec::new(),
                Some(list) => list
                    .as_array()
                    .ok_or_else(|| DynamoError::Serialization("Unexpected value type in payload".into()))?
                    .iter()
                    .map(crate::wire::parse_value)
                    .collect::<Result<_, _>>()?,
            };
            Ok((name.clone(), FilterCondition { comparison_operator, attribute_value_list }))
        })
        .collect()
}

/// DynamoDB's rules on the shape of legacy parameters: ConditionalOperator needs a map of two or
/// more conditions to combine; AttributesToGet is non-empty and names each attribute once.
fn check_legacy_shapes(legacy: &LegacyParams) -> Result<(), DynamoError> {
    if legacy.conditional_operator.is_some() {
        let conditions = legacy
            .expected
            .or(legacy.query_filter)
            .or(legacy.scan_filter);
        match conditions {
            None => {
                return Err(DynamoError::validation(
                    "ConditionalOperator cannot be used without Filter or Expected",
                ));
            }
            Some(map) if map.len() < 2 => {
                return Err(DynamoError::validation(
                    "ConditionalOperator can only be used when Filter or Expected has two or more elements",
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(names) = legacy.attributes_to_get {
        if names.is_empty() {
            return Err(DynamoError::validation(
                "1 validation error detected: Value '[]' at 'attributesToGet' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        if let Some(duplicate) = names
            .iter()
            .enumerate()
            .find(|(i, name)| names[..*i].contains(name))
            .map(|(_, n)| n)
        {
            return Err(DynamoError::validation(format!(
                "One or more parameter values were invalid: Duplicate value in attribute name: {duplicate}"
            )));
        }
    }
    Ok(())
}
