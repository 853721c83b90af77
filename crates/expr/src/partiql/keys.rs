//! What a statement's WHERE clause says about the key, given the key schema of the table (or
//! index) it names: which partitions a SELECT reads and how its sort-key range narrows
//! ([`read_plan`]), and which item a write or a single-item read names ([`item_key`]). The whole
//! clause is still evaluated on every item read, so these only decide what is read.

use haven_model::{AttributeValue, Item};

use crate::ast::{Comparator, Condition, Operand};
use crate::key_condition::mirror;
use crate::{KeySchema, RangeKeyCondition};

const CONDITION_TYPE: &str = "One or more parameter values were invalid: Condition parameter type does not match schema type";

fn key_type_error(name: &str) -> String {
    format!("Key attribute's data type should match its data type in table's schema: Key {name}")
}

/// How a SELECT reads its table or index.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadPlan {
    /// The partition key values whose partitions are read, in key order and each once; `None`
    /// for a scan.
    pub partitions: Option<Vec<AttributeValue>>,
    /// A sort-key condition that narrows each partition's range.
    pub range: Option<RangeKeyCondition>,
}

/// Plans a SELECT: an equality, an IN, or an OR of equalities on the partition key (as one of the
/// clause's top-level AND terms) selects partitions, and then a comparison, BETWEEN or
/// begins_with on the sort key narrows them. Key values of the wrong type are refused.
pub fn read_plan(condition: Option<&Condition>, schema: &KeySchema) -> Result<ReadPlan, String> {
    let Some(condition) = condition else {
        return Ok(ReadPlan {
            partitions: None,
            range: None,
        });
    };
    let terms = conjuncts(condition);
    let (hash, hash_type) = schema.hash;
    let mut partitions = None;
    for term in &terms {
        if let Some((values, checked)) = partition_values(term, hash) {
            if checked && values.iter().any(|v| v.type_name() != hash_type) {
                return Err(key_type_error(hash));
            }
            partitions = Some(sorted_distinct(values));
            break;
        }
    }
    let range = match (&partitions, schema.range) {
        (Some(_), Some((name, wanted))) => range_condition(&terms, name, wanted)?,
        _ => None,
    };
    check_key_types(condition, schema)?;
    Ok(ReadPlan { partitions, range })
}

/// The top-level AND terms of a condition, in order.
fn conjuncts(condition: &Condition) -> Vec<&Condition> {
    let mut terms = Vec::new();
    let mut stack = vec![condition];
    while let Some(c) = stack.pop() {
        match c {
            Condition::And(a, b) => {
                stack.push(b);
                stack.push(a);
            }
            other => terms.push(other),
        }
    }
    terms
}

/// The attribute an operand names, when it is a top-level attribute.
fn attribute(operand: &Operand) -> Option<&str> {
    match operand {
        Operand::Path(path) if path.0.len() == 1 => Some(path.root()),
        _ => None,
    }
}

fn value(operand: &Operand) -> Option<&AttributeValue> {
    match operand {
        Operand::Value { value, .. } => Some(value),
        _ => None,
    }
}

/// `key = value` (either way round): the value.
fn equality<'c>(term: &'c Condition, key: &str) -> Option<&'c AttributeValue> {
    let Condition::Compare(a, Comparator::Eq, b) = term else {
        return None;
    };
    match (attribute(a), attribute(b)) {
        (Some(name), _) if name == key => value(b),
        (_, Some(name)) if name == key => value(a),
        _ => None,
    }
}

/// The partition key values a term selects, and whether their types are checked here (an OR
/// of equalities is checked with the other conditions).
fn partition_values<'c>(term: &'c Condition, key: &str) -> Option<(Vec<&'c AttributeValue>, bool)> {
    if let Some(v) = equality(term, key) {
        return Some((vec![v], true));
    }
    match term {
        Condition::In(a, list) if attribute(a) == Some(key) => {
            let values: Option<Vec<_>> = list.iter().map(value).collect();
            values.map(|v| (v, true))
        }
        Condition::Or(a, b) => {
            let (mut left, _) = partition_values(a, key)?;
            let (right, _) = partition_values(b, key)?;
            left.extend(right);
            Some((left, false))
        }
        _ => None,
    }
}

fn sorted_distinct(values: Vec<&AttributeValue>) -> Vec<AttributeValue> {
    let mut distinct: Vec<AttributeValue> = Vec::with_capacity(values.len());
    for v in values {
        if !distinct.iter().any(|d| d.same_value(v)) {
            distinct.push(v.clone());
        }
    }
    distinct.sort_by(|a, b| crate::eval::compare(a, b).unwrap_or(std::cmp::Ordering::Equal));
    distinct
}

/// The first term that bounds the sort key `name` (of type `wanted`).
fn range_condition(
    terms: &[&Condition],
    name: &str,
    wanted: &str,
) -> Result<Option<RangeKeyCondition>, String> {
    for term in terms {
        let Some(range) = sort_key_term(term, name) else {
            continue;
        };
        if range.values().iter().any(|v| v.type_name() != wanted) {
            return Err(key_type_error(name));
        }
        return Ok(Some(range));
    }
    Ok(None)
}

fn sort_key_term(term: &Condition, name: &str) -> Option<RangeKeyCondition> {
    let is_key = |o: &Operand| attribute(o) == Some(name);
    match term {
        Condition::Compare(a, op, b) if *op != Comparator::Ne => {
            let (op, v) = if is_key(a) {
                (*op, value(b)?)
            } else if is_key(b) {
                (mirror(*op), value(a)?)
            } else {
                return None;
            };
            let v = v.clone();
            Some(match op {
                Comparator::Eq => RangeKeyCondition::Eq(v),
                Comparator::Lt => RangeKeyCondition::Lt(v),
                Comparator::Le => RangeKeyCondition::Le(v),
                Comparator::Gt => RangeKeyCondition::Gt(v),
                Comparator::Ge => RangeKeyCondition::Ge(v),
                Comparator::Ne => unreachable!("excluded above"),
            })
        }
        Condition::Between(a, low, high) if is_key(a) => Some(RangeKeyCondition::Between(
            value(low)?.clone(),
            value(high)?.clone(),
        )),
        Condition::BeginsWith(a, prefix) if is_key(a) => {
            Some(RangeKeyCondition::BeginsWith(value(prefix)?.clone()))
        }
        _ => None,
    }
}

/// Every comparison of a key attribute with a value must use the key's type.
fn check_key_types(condition: &Condition, schema: &KeySchema) -> Result<(), String> {
    let keys = std::iter::once(schema.hash).chain(schema.range);
    let key_type = |o: &Operand| {
        let name = attribute(o)?;
        keys.clone().find(|(k, _)| *k == name).map(|(_, t)| t)
    };
    let mismatch = |operands: &[&Operand]| {
        operands.iter().filter_map(|o| key_type(o)).any(|t| {
            operands
                .iter()
                .filter_map(|o| value(o))
                .any(|v| v.type_name() != t)
        })
    };
    let wrong = match condition {
        Condition::Compare(a, _, b) | Condition::BeginsWith(a, b) | Condition::Contains(a, b) => {
            mismatch(&[a, b])
        }
        Condition::Between(a, low, high) => mismatch(&[a, low, high]),
        Condition::In(a, list) => {
            let mut operands = vec![a];
            operands.extend(list);
            mismatch(&operands)
        }
        Condition::Not(inner) => return check_key_types(inner, schema),
        Condition::And(a, b) | Condition::Or(a, b) => {
            check_key_types(a, schema)?;
            return check_key_types(b, schema);
        }
        Condition::AttributeExists(_)
        | Condition::AttributeNotExists(_)
        | Condition::AttributeType(..) => false,
    };
    if wrong {
        return Err(CONDITION_TYPE.into());
    }
    Ok(())
}

/// Why a WHERE clause does not name one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// A key attribute has no equality.
    Missing,
    /// A key attribute has equalities with different values.
    Multiple(String),
    /// A key attribute is compared with a value of another type.
    WrongType(String),
}

impl KeyError {
    pub fn message(&self) -> String {
        match self {
            KeyError::Missing => {
                "Where clause does not contain a mandatory equality on all key attributes".into()
            }
            KeyError::Multiple(name) => format!(
                "Multiple conditions on same key {name}. Only single item Update/Insert/Delete are supported"
            ),
            KeyError::WrongType(name) => key_type_error(name),
        }
    }
}

/// The key of the one item a WHERE clause names with equalities on every key attribute (as
/// top-level AND terms), and the rest of the clause.
pub fn item_key(
    condition: Option<&Condition>,
    schema: &KeySchema,
) -> Result<(Item, Option<Condition>), KeyError> {
    let terms = condition.map(conjuncts).unwrap_or_default();
    let mut used = vec![false; terms.len()];
    let mut key = Item::new();
    for (name, wanted) in std::iter::once(schema.hash).chain(schema.range) {
        let mut found: Option<&AttributeValue> = None;
        for (i, term) in terms.iter().enumerate() {
            let Some(v) = equality(term, name) else {
                continue;
            };
            if found.is_some_and(|f| !f.same_value(v)) {
                return Err(KeyError::Multiple(name.into()));
            }
            found = Some(v);
            used[i] = true;
        }
        let v = found.ok_or(KeyError::Missing)?;
        if v.type_name() != wanted {
            return Err(KeyError::WrongType(name.into()));
        }
        key.insert(name.to_string(), v.clone());
    }
    let rest = terms
        .into_iter()
        .zip(used)
        .filter(|(_, used)| !used)
        .map(|(term, _)| term.clone())
        .reduce(|a, b| Condition::And(Box::new(a), Box::new(b)));
    Ok((key, rest))
}
