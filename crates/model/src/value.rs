//! The ten DynamoDB attribute types and the item size arithmetic that AWS documents
//! (it decides the 400 KB item limit and, later, capacity units).

use std::collections::BTreeMap;

use crate::Number;

/// Largest item DynamoDB accepts, in bytes as [`item_size`] counts them.
pub const MAX_ITEM_SIZE: usize = 400 * 1024;

/// An item: attribute names to values.
pub type Item = BTreeMap<String, AttributeValue>;

/// One DynamoDB attribute value. Sets keep their members in the order written, without duplicates.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    S(String),
    N(Number),
    B(Vec<u8>),
    Bool(bool),
    Null,
    M(BTreeMap<String, AttributeValue>),
    L(Vec<AttributeValue>),
    Ss(Vec<String>),
    Ns(Vec<Number>),
    Bs(Vec<Vec<u8>>),
}

impl AttributeValue {
    /// The type descriptor DynamoDB uses on the wire (`S`, `N`, `BOOL`, `SS`...).
    pub fn type_name(&self) -> &'static str {
        match self {
            AttributeValue::S(_) => "S",
            AttributeValue::N(_) => "N",
            AttributeValue::B(_) => "B",
            AttributeValue::Bool(_) => "BOOL",
            AttributeValue::Null => "NULL",
            AttributeValue::M(_) => "M",
            AttributeValue::L(_) => "L",
            AttributeValue::Ss(_) => "SS",
            AttributeValue::Ns(_) => "NS",
            AttributeValue::Bs(_) => "BS",
        }
    }

    /// Set equality ignores member order; everything else compares structurally.
    pub fn same_value(&self, other: &AttributeValue) -> bool {
        fn same_set<T: PartialEq>(a: &[T], b: &[T]) -> bool {
            a.len() == b.len() && a.iter().all(|x| b.contains(x))
        }
        match (self, other) {
            (AttributeValue::Ss(a), AttributeValue::Ss(b)) => same_set(a, b),
            (AttributeValue::Ns(a), AttributeValue::Ns(b)) => same_set(a, b),
            (AttributeValue::Bs(a), AttributeValue::Bs(b)) => same_set(a, b),
            (AttributeValue::M(a), AttributeValue::M(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| b.get(k).is_some_and(|w| v.same_value(w)))
            }
            (AttributeValue::L(a), AttributeValue::L(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_value(y))
            }
            _ => self == other,
        }
    }
}

/// Bytes a Number occupies, as DynamoDB counts them: its digits are stored in base-100 pairs aligned
/// on even powers of ten, plus one byte of exponent, plus one for a negative sign.
fn number_size(n: &Number) -> usize {
    if n.is_zero() {
        return 1;
    }
    let digits = n.digit_count() as usize;
    let even_exponent = n.scientific_exponent() % 2 == 0;
    let pairs = if even_exponent {
        1 + (digits - 1).div_ceil(2)
    } else {
        digits.div_ceil(2)
    };
    pairs + 1 + n.is_negative() as usize
}

/// Size of a value without its attribute name.
pub fn attribute_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.len(),
        AttributeValue::Bool(_) | AttributeValue::Null => 1,
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() + attribute_size(v) + 1)
                .sum::<usize>()
        }
        AttributeValue::L(l) => 3 + l.iter().map(|v| attribute_size(v) + 1).sum::<usize>(),
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::Ns(s) => s.iter().map(number_size).sum(),
        AttributeValue::Bs(s) => s.iter().map(Vec::len).sum(),
    }
}

/// Size of an item: attribute names plus values.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + attribute_size(value))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_documented_rules() {
        let mut item = Item::new();
        item.insert("id".into(), AttributeValue::S("abc".into()));
        assert_eq!(item_size(&item), 5);
        item.insert(
            "n".into(),
            AttributeValue::N(Number::parse("12345").unwrap()),
        );
        assert_eq!(item_size(&item), 5 + 1 + 4);
        item.insert(
            "m".into(),
            AttributeValue::M(BTreeMap::from([("k".into(), AttributeValue::Null)])),
        );
        assert_eq!(item_size(&item), 10 + 1 + 3 + 1 + 1 + 1);
    }

    #[test]
    fn number_sizes_match_dynamodb() {
        // Sizes measured on DynamoDB Local (TableSizeBytes of one-attribute items).
        for (text, size) in [
            ("1", 2),
            ("-1", 3),
            ("1.5", 3),
            ("-1.5", 4),
            ("123", 3),
            ("123456789", 6),
            ("1000", 2),
        ] {
            assert_eq!(
                attribute_size(&AttributeValue::N(Number::parse(text).unwrap())),
                size,
                "{text}"
            );
        }
    }

    #[test]
    fn set_equality_ignores_order() {
        let a = AttributeValue::Ss(vec!["x".into(), "y".into()]);
        let b = AttributeValue::Ss(vec!["y".into(), "x".into()]);
        assert!(a.same_value(&b));
        assert_ne!(a, b);
    }
}
