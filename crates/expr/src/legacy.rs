//! The legacy (pre-expression) request parameters, checked with DynamoDB's messages and turned into
//! the expression trees: `Expected` + `ConditionalOperator`, `QueryFilter` / `ScanFilter`,
//! `KeyConditions` (into a [`KeyCondition`]), `AttributeUpdates` and `AttributesToGet`.

use haven_model::{AttributeValue, Item};

use crate::apply::{self, UpdatedPaths};
use crate::ast::{Comparator, Condition, Operand};
use crate::key_condition::Part;
use crate::update::long_type_name;
use crate::{
    ExprError, KeyCondition, KeyPredicate, KeySchema, MultiKeySchema, Path, RangeKeyCondition,
};

const INVALID: &str = "One or more parameter values were invalid: ";

/// A legacy ComparisonOperator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComparisonOperator {
    Eq,
    Ne,
    Le,
    Lt,
    Ge,
    Gt,
    NotNull,
    Null,
    Contains,
    NotContains,
    BeginsWith,
    In,
    Between,
}

impl ComparisonOperator {
    const ALL: [(&'static str, ComparisonOperator); 13] = [
        ("EQ", ComparisonOperator::Eq),
        ("NE", ComparisonOperator::Ne),
        ("LE", ComparisonOperator::Le),
        ("LT", ComparisonOperator::Lt),
        ("GE", ComparisonOperator::Ge),
        ("GT", ComparisonOperator::Gt),
        ("NOT_NULL", ComparisonOperator::NotNull),
        ("NULL", ComparisonOperator::Null),
        ("CONTAINS", ComparisonOperator::Contains),
        ("NOT_CONTAINS", ComparisonOperator::NotContains),
        ("BEGINS_WITH", ComparisonOperator::BeginsWith),
        ("IN", ComparisonOperator::In),
        ("BETWEEN", ComparisonOperator::Between),
    ];

    /// The operator for its AWS name (`EQ`, `NOT_NULL`...).
    pub fn from_name(name: &str) -> Option<ComparisonOperator> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, op)| *op)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("", |(n, _)| n)
    }

    fn argument_count_ok(self, count: usize) -> bool {
        match self {
            ComparisonOperator::NotNull | ComparisonOperator::Null => count == 0,
            ComparisonOperator::In => count > 0,
            ComparisonOperator::Between => count == 2,
            _ => count == 1,
        }
    }

    fn accepts(self, value: &AttributeValue) -> bool {
        let t = value.type_name();
        match self {
            ComparisonOperator::Eq | ComparisonOperator::Ne => true,
            ComparisonOperator::Contains | ComparisonOperator::NotContains => {
                matches!(t, "S" | "N" | "B" | "BOOL" | "NULL")
            }
            ComparisonOperator::BeginsWith => matches!(t, "S" | "B"),
            _ => matches!(t, "S" | "N" | "B"),
        }
    }
}

/// Whether the conditions of a map must all hold or one suffices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConditionalOperator {
    #[default]
    And,
    Or,
}

/// One entry of `Expected` (or, without `exists`/`value`, of a filter or KeyConditions map).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExpectedAttribute {
    pub value: Option<AttributeValue>,
    pub exists: Option<bool>,
    pub comparison_operator: Option<ComparisonOperator>,
    pub attribute_value_list: Option<Vec<AttributeValue>>,
}

/// Translates a map of legacy conditions (`(attribute name, condition)` in request order) into one
/// condition; `None` for an empty map.
pub fn translate_conditions(
    entries: &[(String, ExpectedAttribute)],
    operator: ConditionalOperator,
) -> Result<Option<Condition>, ExprError> {
    let mut combined: Option<Condition> = None;
    for (name, entry) in entries {
        let condition = translate_one(name, entry)?;
        combined = Some(match (combined, operator) {
            (None, _) => condition,
            (Some(c), ConditionalOperator::And) => Condition::And(Box::new(c), Box::new(condition)),
            (Some(c), ConditionalOperator::Or) => Condition::Or(Box::new(c), Box::new(condition)),
        });
    }
    Ok(combined)
}

fn invalid(message: String) -> ExprError {
    ExprError(format!("{INVALID}{message}"))
}

fn value_operand(value: &AttributeValue) -> Operand {
    Operand::Value {
        placeholder: ":legacy".to_string(),
        value: value.clone(),
    }
}

fn translate_one(name: &str, entry: &ExpectedAttribute) -> Result<Condition, ExprError> {
    let path = Path::attribute(name);
    let Some(op) = entry.comparison_operator else {
        if entry.value.is_some() && entry.attribute_value_list.is_some() {
            return Err(invalid(format!(
                "Value and AttributeValueList cannot be used together for Attribute: {name}"
            )));
        }
        if entry.attribute_value_list.is_some() {
            return Err(invalid(format!(
                "AttributeValueList can only be used with a ComparisonOperator for Attribute: {name}"
            )));
        }
        return exists_condition(name, path, entry);
    };
    if entry.exists.is_some() {
        return Err(invalid(format!(
            "Exists and ComparisonOperator cannot be used together for Attribute: {name}"
        )));
    }
    let values: Vec<AttributeValue> = match (&entry.value, &entry.attribute_value_list) {
        (Some(_), Some(_)) => {
            return Err(invalid(format!(
                "Value and AttributeValueList cannot be used together for Attribute: {name}"
            )));
        }
        (Some(v), None) => vec![v.clone()],
        (None, Some(list)) => list.clone(),
        (None, None) if !matches!(op, ComparisonOperator::Null | ComparisonOperator::NotNull) => {
            return Err(invalid(format!(
                "Value or AttributeValueList must be used with ComparisonOperator: {} for Attribute: {name}",
                op.name()
            )));
        }
        (None, None) => vec![],
    };
    check_arguments(op, &values)?;
    Ok(comparison(op, path, &values))
}

fn exists_condition(
    name: &str,
    path: Path,
    entry: &ExpectedAttribute,
) -> Result<Condition, ExprError> {
    match (entry.exists, &entry.value) {
        (Some(false), None) => Ok(Condition::AttributeNotExists(path)),
        (Some(false), Some(_)) => Err(invalid(format!(
            "Value cannot be used when Exists is false for Attribute: {name}"
        ))),
        (exists, None) => Err(invalid(format!(
            "Value must be provided when Exists is {} for Attribute: {name}",
            if exists.is_some() { "true" } else { "null" }
        ))),
        (_, Some(value)) => Ok(Condition::Compare(
            Operand::Path(path),
            Comparator::Eq,
            value_operand(value),
        )),
    }
}

fn check_arguments(op: ComparisonOperator, values: &[AttributeValue]) -> Result<(), ExprError> {
    if !op.argument_count_ok(values.len()) {
        return Err(invalid(format!(
            "Invalid number of argument(s) for the {} ComparisonOperator",
            op.name()
        )));
    }
    if let Some(bad) = values.iter().find(|v| !op.accepts(v)) {
        return Err(invalid(format!(
            "ComparisonOperator {} is not valid for {} AttributeValue type",
            op.name(),
            bad.type_name()
        )));
    }
    if values
        .windows(2)
        .any(|w| w[0].type_name() != w[1].type_name())
    {
        return Err(invalid(
            "AttributeValues inside AttributeValueList must be of same type".to_string(),
        ));
    }
    if op == ComparisonOperator::Between
        && crate::eval::compare(&values[0], &values[1]) == Some(std::cmp::Ordering::Greater)
    {
        return Err(ExprError::new(
            "The BETWEEN condition was provided a range where the lower bound is greater than the upper bound",
        ));
    }
    Ok(())
}

fn comparison(op: ComparisonOperator, path: Path, values: &[AttributeValue]) -> Condition {
    let subject = Operand::Path(path.clone());
    let compare = |c: Comparator| Condition::Compare(subject.clone(), c, value_operand(&values[0]));
    match op {
        ComparisonOperator::Eq => compare(Comparator::Eq),
        ComparisonOperator::Ne => compare(Comparator::Ne),
        ComparisonOperator::Le => compare(Comparator::Le),
        ComparisonOperator::Lt => compare(Comparator::Lt),
        ComparisonOperator::Ge => compare(Comparator::Ge),
        ComparisonOperator::Gt => compare(Comparator::Gt),
        ComparisonOperator::NotNull => Condition::AttributeExists(path),
        ComparisonOperator::Null => Condition::AttributeNotExists(path),
        ComparisonOperator::Contains => Condition::Contains(subject, value_operand(&values[0])),
        // Unlike `NOT contains(...)`, NOT_CONTAINS is false for a missing attribute.
        ComparisonOperator::NotContains => Condition::And(
            Box::new(Condition::AttributeExists(path)),
            Box::new(Condition::Not(Box::new(Condition::Contains(
                subject,
                value_operand(&values[0]),
            )))),
        ),
        ComparisonOperator::BeginsWith => Condition::BeginsWith(subject, value_operand(&values[0])),
        ComparisonOperator::In => {
            Condition::In(subject, values.iter().map(value_operand).collect())
        }
        ComparisonOperator::Between => Condition::Between(
            subject,
            value_operand(&values[0]),
            value_operand(&values[1]),
        ),
    }
}

/// An `AttributeUpdates` action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttributeAction {
    #[default]
    Put,
    Add,
    Delete,
}

/// One entry of `AttributeUpdates`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttributeUpdate {
    pub action: Option<AttributeAction>,
    pub value: Option<AttributeValue>,
}

/// A checked `AttributeUpdates` map, applied with its own (older) semantics: ADD also appends lists,
/// and type mismatches have their own message.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeUpdates {
    entries: Vec<(String, AttributeAction, Option<AttributeValue>)>,
}

const TYPE_MISMATCH: &str = "Type mismatch for attribute to update";

impl AttributeUpdates {
    /// Checks the entries (in request order) with DynamoDB's messages.
    pub fn new(entries: &[(String, AttributeUpdate)]) -> Result<AttributeUpdates, ExprError> {
        let mut checked = Vec::with_capacity(entries.len());
        for (name, update) in entries {
            let action = update.action.unwrap_or_default();
            match (action, &update.value) {
                (AttributeAction::Delete, None) => {}
                (_, None) => {
                    return Err(invalid(
                        "Only DELETE action is allowed when no attribute value is specified"
                            .to_string(),
                    ));
                }
                (AttributeAction::Delete, Some(v)) if !is_set(v) => {
                    return Err(invalid(format!(
                        "DELETE action with value is not supported for the type {}",
                        long_type_name(v)
                    )));
                }
                (AttributeAction::Add, Some(v))
                    if !is_set(v) && !matches!(v, AttributeValue::N(_) | AttributeValue::L(_)) =>
                {
                    return Err(invalid(format!(
                        "ADD action is not supported for the type {}",
                        long_type_name(v)
                    )));
                }
                _ => {}
            }
            checked.push((name.clone(), action, update.value.clone()));
        }
        Ok(AttributeUpdates { entries: checked })
    }

    /// Applies the updates to `item`; nothing changes when one fails.
    pub fn apply(
        &self,
        item: &mut Item,
        key_attribute_names: &[&str],
    ) -> Result<UpdatedPaths, ExprError> {
        if let Some((name, ..)) = self
            .entries
            .iter()
            .find(|(name, ..)| key_attribute_names.contains(&name.as_str()))
        {
            return Err(apply::key_attribute_error(name));
        }
        let mut new = item.clone();
        let mut updated = UpdatedPaths::default();
        for (name, action, value) in &self.entries {
            let changed = match (action, value) {
                (AttributeAction::Put, Some(v)) => Some(v.clone()),
                (AttributeAction::Add, Some(v)) => Some(add(new.get(name), v)?),
                (AttributeAction::Delete, Some(v)) => delete(new.get(name), v)?,
                (_, None) => None,
            };
            match changed {
                Some(v) => {
                    new.insert(name.clone(), v);
                }
                None => {
                    new.remove(name);
                }
            }
            updated.0.push(Path::attribute(name));
        }
        *item = new;
        Ok(updated)
    }
}

fn is_set(value: &AttributeValue) -> bool {
    matches!(
        value,
        AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_)
    )
}

fn add(
    existing: Option<&AttributeValue>,
    value: &AttributeValue,
) -> Result<AttributeValue, ExprError> {
    let mismatch = || ExprError::new(TYPE_MISMATCH);
    Ok(match (existing, value) {
        (None, v) => v.clone(),
        (Some(AttributeValue::N(a)), AttributeValue::N(b)) => {
            AttributeValue::N(a.checked_add(*b).map_err(apply::arithmetic_error)?)
        }
        (Some(AttributeValue::L(a)), AttributeValue::L(b)) => {
            AttributeValue::L(a.iter().chain(b).cloned().collect())
        }
        (Some(a), b) => apply::set_union(a, b).ok_or_else(mismatch)?,
    })
}

/// The set left after removing `value`'s members; `None` when nothing is left (or nothing was there).
fn delete(
    existing: Option<&AttributeValue>,
    value: &AttributeValue,
) -> Result<Option<AttributeValue>, ExprError> {
    let Some(existing) = existing else {
        return Ok(None);
    };
    let remaining = apply::set_difference(existing, value).ok_or(ExprError::new(TYPE_MISMATCH))?;
    Ok((crate::eval::size(&remaining) != Some(0)).then_some(remaining))
}

/// `AttributesToGet` as projection paths.
pub fn attributes_to_get(names: &[String]) -> Vec<Path> {
    names.iter().map(|n| Path::attribute(n)).collect()
}

/// One entry of `QueryFilter`, `ScanFilter` or `KeyConditions`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterCondition {
    pub comparison_operator: ComparisonOperator,
    pub attribute_value_list: Vec<AttributeValue>,
}

/// Translates `QueryFilter` / `ScanFilter` (entries in request order) into one condition; `None` for
/// an empty map.
pub fn translate_filter(
    entries: &[(String, FilterCondition)],
    operator: ConditionalOperator,
) -> Result<Option<Condition>, ExprError> {
    let mut combined: Option<Condition> = None;
    for (name, entry) in entries {
        check_arguments(entry.comparison_operator, &entry.attribute_value_list)?;
        let condition = comparison(
            entry.comparison_operator,
            Path::attribute(name),
            &entry.attribute_value_list,
        );
        combined = Some(match (combined, operator) {
            (None, _) => condition,
            (Some(c), ConditionalOperator::And) => Condition::And(Box::new(c), Box::new(condition)),
            (Some(c), ConditionalOperator::Or) => Condition::Or(Box::new(c), Box::new(condition)),
        });
    }
    Ok(combined)
}

/// Checks legacy `KeyConditions` against the key schema and reduces them to a [`KeyCondition`].
pub fn translate_key_conditions(
    entries: &[(String, FilterCondition)],
    schema: &KeySchema,
) -> Result<KeyCondition, ExprError> {
    match entries.len() {
        0 => return Err(ExprError::new("Conditions must be at least length 1")),
        1 | 2 => {}
        _ => return Err(ExprError::new("Conditions can be of length 1 or 2 only")),
    }
    let mut hash = None;
    let mut range = None;
    for (name, entry) in entries {
        let (op, values) = (entry.comparison_operator, &entry.attribute_value_list);
        check_arguments(op, values)?;
        if name == schema.hash.0 {
            hash = Some(hash_key_value(op, values)?);
        } else if schema
            .range
            .is_some_and(|(range_name, _)| range_name == name)
        {
            range = Some(range_key_condition(op, values)?);
        } else {
            return Err(crate::key_condition::missed(schema, hash.is_some()));
        }
    }
    let hash = hash.ok_or_else(|| crate::key_condition::missed(schema, false))?;
    let key = KeyCondition { hash, range };
    crate::key_condition::check_types(&key, schema)?;
    Ok(key)
}

/// Checks legacy `KeyConditions` against a multi-attribute key and reduces them to a
/// [`KeyPredicate`], by the rules of [`crate::multi_key_condition`].
pub fn translate_multi_key_conditions(
    entries: &[(String, FilterCondition)],
    schema: &MultiKeySchema,
) -> Result<KeyPredicate, ExprError> {
    if entries.is_empty() {
        return Err(ExprError::new("Conditions must be at least length 1"));
    }
    let parts = entries
        .iter()
        .map(|(name, entry)| {
            let (op, values) = (entry.comparison_operator, &entry.attribute_value_list);
            check_arguments(op, values)?;
            Ok(Part {
                name: name.clone(),
                condition: range_key_condition(op, values)?,
            })
        })
        .collect::<Result<Vec<Part>, ExprError>>()?;
    crate::key_condition::reduce_multi(parts, schema)
}

fn hash_key_value(
    op: ComparisonOperator,
    values: &[AttributeValue],
) -> Result<AttributeValue, ExprError> {
    match op {
        ComparisonOperator::Eq => Ok(values[0].clone()),
        ComparisonOperator::Null | ComparisonOperator::NotNull => Err(ExprError::new(
            "Only scalar types can be used as Hash Key values",
        )),
        _ => Err(ExprError::new("Query key condition not supported")),
    }
}

fn range_key_condition(
    op: ComparisonOperator,
    values: &[AttributeValue],
) -> Result<RangeKeyCondition, ExprError> {
    let first = || values[0].clone();
    Ok(match op {
        ComparisonOperator::Eq => RangeKeyCondition::Eq(first()),
        ComparisonOperator::Lt => RangeKeyCondition::Lt(first()),
        ComparisonOperator::Le => RangeKeyCondition::Le(first()),
        ComparisonOperator::Gt => RangeKeyCondition::Gt(first()),
        ComparisonOperator::Ge => RangeKeyCondition::Ge(first()),
        ComparisonOperator::BeginsWith => RangeKeyCondition::BeginsWith(first()),
        ComparisonOperator::Between => RangeKeyCondition::Between(first(), values[1].clone()),
        ComparisonOperator::Null | ComparisonOperator::NotNull => {
            return Err(ExprError::new(
                "Only scalar types can be used as Range Key values",
            ));
        }
        _ => {
            return Err(ExprError::new(
                "Attempted conditional constraint is not an indexable operation",
            ));
        }
    })
}
