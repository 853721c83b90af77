//! Evaluation of conditions against an item, with DynamoDB's semantics: a missing attribute or a type
//! mismatch makes a comparison false (and `<>` true), ordering exists only within S, N and B.

use std::borrow::Cow;
use std::cmp::Ordering;

use haven_model::{AttributeValue, Item, Number};

use crate::ExprError;
use crate::ast::{Comparator, Condition, Operand};

/// Order of two values of the same scalar type (S by UTF-8 bytes, N numerically, B by bytes).
pub(crate) fn compare(a: &AttributeValue, b: &AttributeValue) -> Option<Ordering> {
    match (a, b) {
        (AttributeValue::S(x), AttributeValue::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (AttributeValue::N(x), AttributeValue::N(y)) => Some(x.cmp(y)),
        (AttributeValue::B(x), AttributeValue::B(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// DynamoDB's `size`: characters of a string (as UTF-16 units, like the service), bytes of a
/// binary, members of a set, list or map. Other types have no size.
pub(crate) fn size(value: &AttributeValue) -> Option<usize> {
    Some(match value {
        AttributeValue::S(s) => s.encode_utf16().count(),
        AttributeValue::B(b) => b.len(),
        AttributeValue::Ss(s) => s.len(),
        AttributeValue::Ns(s) => s.len(),
        AttributeValue::Bs(s) => s.len(),
        AttributeValue::L(l) => l.len(),
        AttributeValue::M(m) => m.len(),
        _ => return None,
    })
}

fn number(n: usize) -> AttributeValue {
    AttributeValue::N(Number::parse(&n.to_string()).expect("a size is a valid number"))
}

impl Operand {
    /// The operand's value for `item`; `None` when it reads a missing attribute or has no size.
    /// Borrowed from the item or the expression where possible: filters run on every scanned item.
    pub fn value<'a>(&'a self, item: Option<&'a Item>) -> Option<Cow<'a, AttributeValue>> {
        match self {
            Operand::Path(path) => item.and_then(|i| path.resolve(i)).map(Cow::Borrowed),
            Operand::Value { value, .. } => Some(Cow::Borrowed(value)),
            Operand::Size(inner) => inner
                .value(item)
                .and_then(|v| size(&v))
                .map(|n| Cow::Owned(number(n))),
        }
    }
}

impl Condition {
    /// Whether `item` (None when there is no item) satisfies the condition.
    pub fn evaluate(&self, item: Option<&Item>) -> Result<bool, ExprError> {
        Ok(self.holds(item))
    }

    fn holds(&self, item: Option<&Item>) -> bool {
        match self {
            Condition::Compare(a, op, b) => {
                let (a, b) = (a.value(item), b.value(item));
                match (a, b) {
                    (Some(a), Some(b)) => compare_with(&a, *op, &b),
                    _ => *op == Comparator::Ne,
                }
            }
            Condition::Between(a, low, high) => {
                match (a.value(item), low.value(item), high.value(item)) {
                    (Some(a), Some(low), Some(high)) => {
                        compare(&a, &low).is_some_and(Ordering::is_ge)
                            && compare(&a, &high).is_some_and(Ordering::is_le)
                    }
                    _ => false,
                }
            }
            Condition::In(a, list) => a.value(item).is_some_and(|a| {
                list.iter()
                    .any(|o| o.value(item).is_some_and(|v| a.same_value(&v)))
            }),
            Condition::AttributeExists(path) => item.and_then(|i| path.resolve(i)).is_some(),
            Condition::AttributeNotExists(path) => item.and_then(|i| path.resolve(i)).is_none(),
            Condition::AttributeType(a, t) => match (a.value(item), t.value(item).as_deref()) {
                (Some(a), Some(AttributeValue::S(t))) => a.type_name() == t,
                _ => false,
            },
            Condition::BeginsWith(a, prefix) => {
                match (a.value(item).as_deref(), prefix.value(item).as_deref()) {
                    (Some(AttributeValue::S(s)), Some(AttributeValue::S(p))) => {
                        s.starts_with(p.as_str())
                    }
                    (Some(AttributeValue::B(b)), Some(AttributeValue::B(p))) => b.starts_with(p),
                    _ => false,
                }
            }
            Condition::Contains(a, b) => match (a.value(item), b.value(item)) {
                (Some(a), Some(b)) => contains(&a, &b),
                _ => false,
            },
            Condition::Not(c) => !c.holds(item),
            Condition::And(a, b) => a.holds(item) && b.holds(item),
            Condition::Or(a, b) => a.holds(item) || b.holds(item),
        }
    }
}

fn compare_with(a: &AttributeValue, op: Comparator, b: &AttributeValue) -> bool {
    match op {
        Comparator::Eq => a.same_value(b),
        Comparator::Ne => !a.same_value(b),
        Comparator::Lt => compare(a, b).is_some_and(Ordering::is_lt),
        Comparator::Le => compare(a, b).is_some_and(Ordering::is_le),
        Comparator::Gt => compare(a, b).is_some_and(Ordering::is_gt),
        Comparator::Ge => compare(a, b).is_some_and(Ordering::is_ge),
    }
}

/// `contains`: substring of a string, member of a set of the matching type, or element of a list.
pub(crate) fn contains(haystack: &AttributeValue, needle: &AttributeValue) -> bool {
    match (haystack, needle) {
        (AttributeValue::S(s), AttributeValue::S(n)) => s.contains(n.as_str()),
        (AttributeValue::B(s), AttributeValue::B(n)) => {
            n.is_empty() || s.windows(n.len()).any(|w| w == n.as_slice())
        }
        (AttributeValue::Ss(set), AttributeValue::S(n)) => set.contains(n),
        (AttributeValue::Ns(set), AttributeValue::N(n)) => set.contains(n),
        (AttributeValue::Bs(set), AttributeValue::B(n)) => set.contains(n),
        (AttributeValue::L(list), n) => list.iter().any(|v| v.same_value(n)),
        _ => false,
    }
}
