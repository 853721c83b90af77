//! An item (or key) member of a request, read straight from the body's bytes into Haven's item type.
//!
//! `wire::parse_item` reads an item from a `serde_json::Value` tree, and that tree (a map with a
//! hash index per attribute value, `preserve_order`) cost more than the rest of decoding: about a
//! fifth of a PutItem's instructions and most of a BatchWriteItem item's (docs/benchmarks.md,
//! "Issue 26"). When the server reads a request straight into its input type (`ops::decoded`), a
//! [`WireItem`] reads itself into an [`Item`] on the way, but only if it is clean: exactly one
//! known type per value, numbers and base64 that parse, sets non-empty without duplicates, names
//! non-empty and not repeated, nesting well within DynamoDB's limit. Anything else fails that read,
//! and the request takes the general path, where the item stays a `Value` and `wire::parse_item`
//! answers DynamoDB's error at the same point as always. So an answer never depends on the path.

use std::cell::Cell;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use haven_model::{AttributeValue, Item, Number};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::error::DynamoError;

/// Nesting a clean item stays within: one level under `wire`'s limit of 32, so that the edge is
/// always judged by `wire::parse_item`.
const MAX_CLEAN_DEPTH: usize = 31;

thread_local! {
    /// Set while `ops::decoded` reads a body straight into its input type.
    static STRAIGHT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `read` with [`WireItem`]s reading themselves into items (clean ones only).
pub(crate) fn reading_straight<T>(read: impl FnOnce() -> T) -> T {
    /// Ends the straight read however `read` ends.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            STRAIGHT.set(false);
        }
    }
    STRAIGHT.set(true);
    let _reset = Reset;
    read()
}

/// An item or key as a request sent it: read already, or the `Value` `wire::parse_item` reads.
pub(crate) enum WireItem {
    Read(Item),
    Sent(Value),
}

impl WireItem {
    /// The item, or DynamoDB's error for it.
    pub fn parse(self) -> Result<Item, DynamoError> {
        match self {
            WireItem::Read(item) => Ok(item),
            WireItem::Sent(value) => crate::wire::parse_item(&value),
        }
    }
}

/// Reads an optional item member: absent is None, as for any optional member.
pub(crate) fn parse_optional(item: Option<WireItem>) -> Result<Item, DynamoError> {
    item.map_or_else(|| crate::wire::parse_item(&Value::Null), WireItem::parse)
}

impl<'de> Deserialize<'de> for WireItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if STRAIGHT.get() {
            ItemSeed { depth: 0 }
                .deserialize(deserializer)
                .map(WireItem::Read)
        } else {
            Value::deserialize(deserializer).map(WireItem::Sent)
        }
    }
}

fn unclean<E: de::Error>() -> E {
    E::custom("not a clean item: read on the general path")
}

/// A map of attribute values whose values sit at `depth` (as `wire::parse_map` counts).
struct ItemSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ItemSeed {
    type Value = Item;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Item, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed {
    type Value = Item;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a map of attribute values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let mut item = Item::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(ValueSeed { depth: self.depth })?;
            if name.is_empty() || item.insert(name, value).is_some() {
                return Err(unclean());
            }
        }
        Ok(item)
    }
}

/// One attribute value (`{"S": "x"}`...) at `depth`.
struct ValueSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = AttributeValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        if self.depth >= MAX_CLEAN_DEPTH {
            return Err(unclean());
        }
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = AttributeValue;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an attribute value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttributeValue, A::Error> {
        // The data type, borrowed from the body: a name written with escapes does not borrow,
        // and is left to the general path with any other unclean value.
        let type_name: &'de str = map.next_key()?.ok_or_else(unclean)?;
        let inner = self.depth + 1;
        let value = match type_name {
            "S" => AttributeValue::S(map.next_value()?),
            "N" => AttributeValue::N(number(map.next_value()?)?),
            "B" => AttributeValue::B(binary(map.next_value()?)?),
            "BOOL" => AttributeValue::Bool(map.next_value()?),
            "NULL" => match map.next_value()? {
                true => AttributeValue::Null,
                false => return Err(unclean()),
            },
            "M" => AttributeValue::M(map.next_value_seed(ItemSeed { depth: inner })?),
            "L" => AttributeValue::L(map.next_value_seed(ListSeed { depth: inner })?),
            "SS" => AttributeValue::Ss(set(map.next_value::<Vec<String>>()?)?),
            "NS" => {
                let members: Vec<&'de str> = map.next_value()?;
                let members = members.into_iter().map(number).collect::<Result<_, _>>()?;
                AttributeValue::Ns(set(members)?)
            }
            "BS" => {
                let members: Vec<&'de str> = map.next_value()?;
                let members = members.into_iter().map(binary).collect::<Result<_, _>>()?;
                AttributeValue::Bs(set(members)?)
            }
            _ => return Err(unclean()),
        };
        match map.next_key::<de::IgnoredAny>()? {
            None => Ok(value),
            Some(_) => Err(unclean()),
        }
    }
}

/// The members of an `L` at `depth`.
struct ListSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = Vec<AttributeValue>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListSeed {
    type Value = Vec<AttributeValue>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a list of attribute values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = seq.next_element_seed(ValueSeed { depth: self.depth })? {
            members.push(member);
        }
        Ok(members)
    }
}

// Numbers and base64 are read from the body's text in place (a string written with escapes does
// not borrow, and is left to the general path): only their parsed form is kept.

fn number<E: de::Error>(text: &str) -> Result<Number, E> {
    Number::parse(text).map_err(|_| unclean())
}

fn binary<E: de::Error>(text: &str) -> Result<Vec<u8>, E> {
    BASE64.decode(text).map_err(|_| unclean())
}

/// A set's members when it is non-empty and free of duplicates (`wire`'s own check).
fn set<T: PartialEq, E: de::Error>(members: Vec<T>) -> Result<Vec<T>, E> {
    let duplicates = (1..members.len()).any(|i| members[..i].contains(&members[i]));
    if members.is_empty() || duplicates {
        return Err(unclean());
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn straight(text: &str) -> Option<Item> {
        let read = reading_straight(|| serde_json::from_str::<WireItem>(text));
        match read.ok()? {
            WireItem::Read(item) => Some(item),
            WireItem::Sent(_) => panic!("read as a Value"),
        }
    }

    fn general(text: &str) -> Result<Item, DynamoError> {
        crate::wire::parse_item(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn a_clean_item_reads_as_the_general_path_reads_it() {
        let text = r#"{"pk":{"S":"a"},"n":{"N":"1.50"},"b":{"B":"AAE="},"t":{"BOOL":true},
            "z":{"NULL":true},"m":{"M":{"x":{"L":[{"S":"y"},{"NS":["1","2"]}]}}},
            "ss":{"SS":["a","b"]},"bs":{"BS":["AA==","AQ=="]}}"#;
        assert_eq!(straight(text), Some(general(text).unwrap()));
    }

    #[test]
    fn anything_the_general_path_might_refuse_is_left_to_it() {
        let mut deep = r#"{"S":"x"}"#.to_string();
        for _ in 0..MAX_CLEAN_DEPTH {
            deep = format!(r#"{{"L":[{deep}]}}"#);
        }
        let deep = format!(r#"{{"a":{deep}}}"#);
        for text in [
            r#"{"a":{"S":"x","N":"1"}}"#,
            r#"{"a":{"\u0053":"x"}}"#,
            r#"{"a":{"S":"x","Other":1}}"#,
            r#"{"a":{}}"#,
            r#"{"a":{"N":"one"}}"#,
            // Escaped digits are a number, but read on the general path.
            r#"{"a":{"N":"\u0031"}}"#,
            r#"{"a":{"N":""}}"#,
            r#"{"a":{"B":"A"}}"#,
            r#"{"a":{"NULL":false}}"#,
            r#"{"a":{"SS":[]}}"#,
            r#"{"a":{"SS":["x","x"]}}"#,
            r#"{"a":{"NS":["1","1"]}}"#,
            r#"{"":{"S":"x"}}"#,
            r#"{"a":{"S":"x"},"a":{"S":"y"}}"#,
            r#"{"a":{"S":1}}"#,
            r#"{"a":"x"}"#,
            r#"[]"#,
            &deep,
        ] {
            assert_eq!(straight(text), None, "{text}");
        }
    }

    #[test]
    fn outside_a_straight_read_the_item_stays_a_value() {
        let read: WireItem = serde_json::from_str(r#"{"a":{"S":"x"}}"#).unwrap();
        assert!(matches!(read, WireItem::Sent(_)));
    }
}
