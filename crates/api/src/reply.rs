//! What an operation answers: a JSON object, written as text once, at the edge.
//!
//! Most operations build their answer as a `serde_json::Value`. The reads (GetItem, Query, Scan,
//! BatchGetItem) and the item writes' ReturnValues hand over their items in model form instead, and the items are written as DynamoDB
//! JSON text only when the answer is ([`crate::item_json`]): building a `Value` per attribute and
//! serialising it again cost about a third of a 1 KB GetItem (docs/benchmarks.md).

use haven_model::Item;
use serde_json::Value;

use crate::item_json::{write_item, write_items, write_object};

/// The buffer an answer is first written into: room for an item of a few KB, so a GetItem's answer
/// is written without growing it (from 256 bytes, a 1 KB item's answer grew it several times, each
/// copying what was written: about 1% of a GetItem's instructions).
const FIRST_CAPACITY: usize = 4096;

/// An operation's answer: the members of a JSON object, in order.
#[derive(Default)]
pub struct Reply {
    members: Vec<(String, Member)>,
}

/// One member of a [`Reply`].
pub(crate) enum Member {
    Json(Value),
    Item(Item),
    Items(Vec<Item>),
    /// BatchGetItem's `Responses`: items by table name.
    ItemsByTable(Vec<(String, Vec<Item>)>),
}

impl Reply {
    /// Appends a member (callers never add a name twice).
    pub(crate) fn push(&mut self, name: &str, member: Member) {
        self.members.push((name.to_string(), member));
    }

    /// The answer as JSON text.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIRST_CAPACITY);
        let members = self.members.iter().map(|(name, member)| (name, member));
        write_object(&mut out, members, |out, member| member.write(out));
        out
    }

    /// The answer as a `Value`, for callers that inspect it (tests, examples).
    pub fn into_value(self) -> Value {
        serde_json::from_slice(&self.to_json_bytes()).expect("replies are JSON")
    }
}

impl Member {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Member::Json(value) => {
                serde_json::to_writer(&mut *out, value).expect("writing to a Vec cannot fail")
            }
            Member::Item(item) => write_item(out, item),
            Member::Items(items) => write_items(out, items),
            Member::ItemsByTable(tables) => {
                let tables = tables.iter().map(|(table, items)| (table, items));
                write_object(out, tables, |out, items| write_items(out, items));
            }
        }
    }
}

impl From<Value> for Reply {
    /// An answer built as a `Value`; operations always answer JSON objects.
    fn from(value: Value) -> Self {
        let Value::Object(map) = value else {
            unreachable!("operations answer JSON objects, not {value}")
        };
        Reply {
            members: map.into_iter().map(|(k, v)| (k, Member::Json(v))).collect(),
        }
    }
}
