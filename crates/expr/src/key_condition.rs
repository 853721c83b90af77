//! KeyConditionExpression: a parsed condition checked against the table's (or index's) key schema
//! and reduced to what a Query needs, an equality on the partition key and at most one condition
//! on the sort key. A global index's multi-attribute key ([`MultiKeySchema`]) has rules and
//! messages of its own: equality on every partition attribute, and conditions on a prefix of the
//! sort attributes, equalities but for the last. The messages are DynamoDB's.

use std::cmp::Ordering;

use haven_model::AttributeValue;

use crate::ast::{Comparator, Condition, Operand};
use crate::eval::compare;
use crate::{ExprError, Path, PathElement};

/// Key attribute names and their types (`S`, `N` or `B`).
#[derive(Debug, Clone, Copy)]
pub struct KeySchema<'a> {
    pub hash: (&'a str, &'a str),
    pub range: Option<(&'a str, &'a str)>,
}

/// The condition on the sort key.
#[derive(Debug, Clone, PartialEq)]
pub enum RangeKeyCondition {
    Eq(AttributeValue),
    Lt(AttributeValue),
    Le(AttributeValue),
    Gt(AttributeValue),
    Ge(AttributeValue),
    Between(AttributeValue, AttributeValue),
    BeginsWith(AttributeValue),
}

impl RangeKeyCondition {
    /// Whether a sort key value satisfies the condition.
    pub fn matches(&self, value: &AttributeValue) -> bool {
        let order = |bound: &AttributeValue| compare(value, bound);
        match self {
            RangeKeyCondition::Eq(b) => order(b) == Some(Ordering::Equal),
            RangeKeyCondition::Lt(b) => order(b).is_some_and(Ordering::is_lt),
            RangeKeyCondition::Le(b) => order(b).is_some_and(Ordering::is_le),
            RangeKeyCondition::Gt(b) => order(b).is_some_and(Ordering::is_gt),
            RangeKeyCondition::Ge(b) => order(b).is_some_and(Ordering::is_ge),
            RangeKeyCondition::Between(low, high) => {
                order(low).is_some_and(Ordering::is_ge) && order(high).is_some_and(Ordering::is_le)
            }
            RangeKeyCondition::BeginsWith(prefix) => match (value, prefix) {
                (AttributeValue::S(s), AttributeValue::S(p)) => s.starts_with(p.as_str()),
                (AttributeValue::B(b), AttributeValue::B(p)) => b.starts_with(p),
                _ => false,
            },
        }
    }

    pub fn values(&self) -> Vec<&AttributeValue> {
        match self {
            RangeKeyCondition::Eq(v)
            | RangeKeyCondition::Lt(v)
            | RangeKeyCondition::Le(v)
            | RangeKeyCondition::Gt(v)
            | RangeKeyCondition::Ge(v)
            | RangeKeyCondition::BeginsWith(v) => vec![v],
            RangeKeyCondition::Between(a, b) => vec![a, b],
        }
    }
}

/// What a Query reads: one partition, optionally narrowed by a sort key condition.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyCondition {
    pub hash: AttributeValue,
    pub range: Option<RangeKeyCondition>,
}

/// What a Query reads on any key schema: the partition key's values (in schema order), and
/// conditions on a prefix of the sort key's attributes, every one an equality but the last.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPredicate {
    pub hash: Vec<AttributeValue>,
    pub range: Vec<RangeKeyCondition>,
}

impl From<KeyCondition> for KeyPredicate {
    fn from(key: KeyCondition) -> KeyPredicate {
        KeyPredicate {
            hash: vec![key.hash],
            range: key.range.into_iter().collect(),
        }
    }
}

/// A multi-attribute key: names and types of the partition attributes, then of the sort ones.
#[derive(Debug, Clone)]
pub struct MultiKeySchema<'a> {
    pub hash: Vec<(&'a str, &'a str)>,
    pub range: Vec<(&'a str, &'a str)>,
}

/// One leaf of the key condition: the key attribute it names and what it requires.
pub(crate) struct Part {
    pub name: String,
    /// What it requires, in sort-key form (a partition key needs [`RangeKeyCondition::Eq`]).
    pub condition: RangeKeyCondition,
}

fn error(message: &str) -> ExprError {
    ExprError::new(message)
}

/// Checks `condition` against `schema` and reduces it to a [`KeyCondition`].
pub fn key_condition(condition: &Condition, schema: &KeySchema) -> Result<KeyCondition, ExprError> {
    let mut leaves = Vec::new();
    collect(condition, &mut leaves)?;
    let leaf_count = leaves.len();
    let parts = leaves
        .into_iter()
        .map(part)
        .collect::<Result<Vec<Part>, ExprError>>()?;
    let mut hash = None;
    let mut range = None;
    for part in parts {
        let slot = if part.name == schema.hash.0 {
            &mut hash
        } else if schema.range.is_some_and(|(name, _)| name == part.name) {
            &mut range
        } else {
            return Err(if leaf_count > 2 {
                error("Conditions can be of length 1 or 2 only")
            } else {
                missed(schema, hash.is_some())
            });
        };
        if slot.is_some() {
            return Err(error(
                "KeyConditionExpressions must only contain one condition per key",
            ));
        }
        *slot = Some(part.condition);
    }
    // Two conditions on one key are reported before too many conditions, as DynamoDB does.
    if leaf_count > 2 {
        return Err(error("Conditions can be of length 1 or 2 only"));
    }
    let hash = match hash {
        Some(RangeKeyCondition::Eq(value)) => value,
        Some(_) => return Err(error("Query key condition not supported")),
        None => return Err(missed(schema, false)),
    };
    let key = KeyCondition { hash, range };
    check_types(&key, schema)?;
    Ok(key)
}

/// Checks `condition` against a multi-attribute key and reduces it to a [`KeyPredicate`].
pub fn multi_key_condition(
    condition: &Condition,
    schema: &MultiKeySchema,
) -> Result<KeyPredicate, ExprError> {
    let mut leaves = Vec::new();
    collect(condition, &mut leaves)?;
    let parts = leaves
        .into_iter()
        .map(part)
        .collect::<Result<Vec<Part>, ExprError>>()?;
    reduce_multi(parts, schema)
}

/// The rules of a multi-attribute key, in the order DynamoDB applies them.
pub(crate) fn reduce_multi(
    parts: Vec<Part>,
    schema: &MultiKeySchema,
) -> Result<KeyPredicate, ExprError> {
    for (i, part) in parts.iter().enumerate() {
        if parts[..i].iter().any(|p| p.name == part.name) {
            return Err(error(
                "KeyConditionExpressions must only contain one condition per key",
            ));
        }
    }
    if parts.len() > schema.hash.len() + schema.range.len() {
        return Err(error("Query key condition not supported"));
    }
    let find = |name: &str| parts.iter().find(|p| p.name == name).map(|p| &p.condition);
    let is_eq = |c: Option<&RangeKeyCondition>| matches!(c, Some(RangeKeyCondition::Eq(_)));
    let unequal: Vec<&str> = schema
        .hash
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !is_eq(find(name)))
        .collect();
    if !unequal.is_empty() {
        return Err(ExprError(format!(
            "HASH key attributes {} must have equality conditions specified in the query",
            unequal.join(", ")
        )));
    }
    let in_schema = |name: &str| {
        schema
            .hash
            .iter()
            .chain(&schema.range)
            .any(|(n, _)| *n == name)
    };
    if parts.iter().any(|p| !in_schema(&p.name)) {
        return Err(error("Query condition missed key schema element"));
    }
    let sort: Vec<Option<&RangeKeyCondition>> =
        schema.range.iter().map(|(name, _)| find(name)).collect();
    check_sort_prefix(&sort, schema)?;
    let predicate = KeyPredicate {
        hash: schema
            .hash
            .iter()
            .filter_map(|(name, _)| find(name).map(|c| c.values()[0].clone()))
            .collect(),
        range: sort.into_iter().map_while(|c| c.cloned()).collect(),
    };
    check_multi_types(&predicate, schema)?;
    Ok(predicate)
}

/// A condition on a sort attribute needs equalities on every sort attribute before it.
fn check_sort_prefix(
    sort: &[Option<&RangeKeyCondition>],
    schema: &MultiKeySchema,
) -> Result<(), ExprError> {
    for (j, condition) in sort.iter().enumerate() {
        let unequal: Vec<&str> = (0..j)
            .filter(|&i| !matches!(sort[i], Some(RangeKeyCondition::Eq(_))))
            .map(|i| schema.range[i].0)
            .collect();
        if condition.is_some() && !unequal.is_empty() {
            return Err(ExprError(format!(
                "RANGE key attributes {} must have equality conditions specified in the query because a condition is present on key attribute {}",
                unequal.join(", "),
                schema.range[j].0
            )));
        }
    }
    Ok(())
}

/// Key values must have the types the multi-attribute key declares.
fn check_multi_types(key: &KeyPredicate, schema: &MultiKeySchema) -> Result<(), ExprError> {
    let hash = key.hash.iter().zip(&schema.hash).map(|(v, s)| (v, s.1));
    let range = key
        .range
        .iter()
        .zip(&schema.range)
        .flat_map(|(c, s)| c.values().into_iter().map(move |v| (v, s.1)));
    if hash.chain(range).any(|(value, t)| value.type_name() != t) {
        return Err(error(
            "One or more parameter values were invalid: Condition parameter type does not match schema type",
        ));
    }
    Ok(())
}

/// Key values must have the types the key schema declares.
pub(crate) fn check_types(key: &KeyCondition, schema: &KeySchema) -> Result<(), ExprError> {
    let wrong_type = |value: &AttributeValue, t: &str| value.type_name() != t;
    if wrong_type(&key.hash, schema.hash.1)
        || key.range.as_ref().is_some_and(|r| {
            let t = schema.range.map_or("", |(_, t)| t);
            r.values().into_iter().any(|v| wrong_type(v, t))
        })
    {
        return Err(error(
            "One or more parameter values were invalid: Condition parameter type does not match schema type",
        ));
    }
    Ok(())
}

pub(crate) fn missed(schema: &KeySchema, hash_found: bool) -> ExprError {
    let name = match schema.range {
        Some((range, _)) if hash_found => range,
        _ => schema.hash.0,
    };
    ExprError(format!("Query condition missed key schema element: {name}"))
}

/// Flattens the AND tree; OR and NOT are not allowed.
fn collect<'c>(condition: &'c Condition, leaves: &mut Vec<&'c Condition>) -> Result<(), ExprError> {
    match condition {
        Condition::And(a, b) => {
            collect(a, leaves)?;
            collect(b, leaves)
        }
        Condition::Or(..) => Err(error("Invalid operator used in KeyConditionExpression: OR")),
        Condition::Not(_) => Err(error(
            "Invalid operator used in KeyConditionExpression: NOT",
        )),
        leaf => {
            leaves.push(leaf);
            Ok(())
        }
    }
}

fn invalid_operator(name: &str) -> ExprError {
    ExprError(format!(
        "Invalid operator used in KeyConditionExpression: {name}"
    ))
}

fn part(leaf: &Condition) -> Result<Part, ExprError> {
    match leaf {
        Condition::Compare(a, op, b) => {
            if *op == Comparator::Ne {
                return Err(invalid_operator("<>"));
            }
            let (name, value, flipped) = key_and_value(&[a, b])?;
            let op = if flipped { mirror(*op) } else { *op };
            let value = value[0].clone();
            let condition = match op {
                Comparator::Eq => RangeKeyCondition::Eq(value),
                Comparator::Lt => RangeKeyCondition::Lt(value),
                Comparator::Le => RangeKeyCondition::Le(value),
                Comparator::Gt => RangeKeyCondition::Gt(value),
                Comparator::Ge => RangeKeyCondition::Ge(value),
                Comparator::Ne => unreachable!("rejected above"),
            };
            Ok(Part { name, condition })
        }
        Condition::Between(a, low, high) => {
            let (name, values, _) = key_and_value(&[a, low, high])?;
            Ok(Part {
                name,
                condition: RangeKeyCondition::Between(values[0].clone(), values[1].clone()),
            })
        }
        Condition::BeginsWith(a, prefix) => {
            let (name, values, flipped) = key_and_value(&[a, prefix])?;
            if flipped {
                return Err(error(
                    "Invalid condition in KeyConditionExpression: begins_with operator must have the key attribute as its first operand",
                ));
            }
            Ok(Part {
                name,
                condition: RangeKeyCondition::BeginsWith(values[0].clone()),
            })
        }
        Condition::In(..) => Err(invalid_operator("IN")),
        Condition::Contains(..) => Err(invalid_operator("contains")),
        Condition::AttributeExists(_) => Err(invalid_operator("attribute_exists")),
        Condition::AttributeNotExists(_) => Err(invalid_operator("attribute_not_exists")),
        Condition::AttributeType(..) => Err(invalid_operator("attribute_type")),
        Condition::And(..) | Condition::Or(..) | Condition::Not(_) => {
            unreachable!("flattened by collect")
        }
    }
}

/// The one key attribute among `operands` and the values, and whether the key was not first.
fn key_and_value<'o>(
    operands: &[&'o Operand],
) -> Result<(String, Vec<&'o AttributeValue>, bool), ExprError> {
    if operands.iter().any(|o| matches!(o, Operand::Size(_))) {
        return Err(error(
            "KeyConditionExpressions cannot contain nested operations",
        ));
    }
    let paths: Vec<(usize, &Path)> = operands
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            Operand::Path(p) => Some((i, p)),
            _ => None,
        })
        .collect();
    let (position, path) = match paths.as_slice() {
        [] => {
            return Err(error(
                "Invalid condition in KeyConditionExpression: No key attribute specified",
            ));
        }
        [one] => *one,
        _ => {
            return Err(error(
                "Invalid condition in KeyConditionExpression: Multiple attribute names used in one condition",
            ));
        }
    };
    let [PathElement::Name(name)] = path.0.as_slice() else {
        return Err(ExprError(format!(
            "Key attributes must be scalars; list random access '[]' and map lookup '.' are not allowed: Key: {}",
            path.root()
        )));
    };
    let values = operands
        .iter()
        .filter_map(|o| match o {
            Operand::Value { value, .. } => Some(value),
            _ => None,
        })
        .collect();
    Ok((name.clone(), values, position != 0))
}

/// The comparator with its operands swapped: `:v < k` is `k > :v`.
pub(crate) fn mirror(op: Comparator) -> Comparator {
    match op {
        Comparator::Lt => Comparator::Gt,
        Comparator::Le => Comparator::Ge,
        Comparator::Gt => Comparator::Lt,
        Comparator::Ge => Comparator::Le,
        other => other,
    }
}
