//! Key schemas: which attributes form an item's primary key, and of which scalar type.

use crate::{AttributeValue, Item, key_codec};

/// The scalar types a key attribute may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarType {
    S,
    N,
    B,
}

impl ScalarType {
    pub fn parse(name: &str) -> Option<ScalarType> {
        match name {
            "S" => Some(ScalarType::S),
            "N" => Some(ScalarType::N),
            "B" => Some(ScalarType::B),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ScalarType::S => "S",
            ScalarType::N => "N",
            ScalarType::B => "B",
        }
    }

    pub fn matches(self, value: &AttributeValue) -> bool {
        matches!(
            (self, value),
            (ScalarType::S, AttributeValue::S(_))
                | (ScalarType::N, AttributeValue::N(_))
                | (ScalarType::B, AttributeValue::B(_))
        )
    }
}

/// One attribute of a primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttribute {
    pub name: String,
    pub scalar_type: ScalarType,
}

/// A table's (or index's) primary key: a partition key and an optional sort key. A table or a
/// local index has one attribute in each; a global index may have up to four in each
/// (multi-attribute keys), compared left to right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySchema {
    /// The partition key's attributes, in order (never empty).
    pub partition: Vec<KeyAttribute>,
    /// The sort key's attributes, in order (empty without a sort key).
    pub sort: Vec<KeyAttribute>,
}

impl KeySchema {
    /// The first partition attribute: a table's only one.
    pub fn hash(&self) -> &KeyAttribute {
        &self.partition[0]
    }

    /// The first sort attribute: a table's only one.
    pub fn range(&self) -> Option<&KeyAttribute> {
        self.sort.first()
    }

    /// Whether the partition or the sort key has more than one attribute.
    pub fn is_multi_attribute(&self) -> bool {
        self.partition.len() > 1 || self.sort.len() > 1
    }

    /// Key attributes in schema order (partition first).
    pub fn attributes(&self) -> impl Iterator<Item = &KeyAttribute> {
        self.partition.iter().chain(&self.sort)
    }

    pub fn is_key_attribute(&self, name: &str) -> bool {
        self.attributes().any(|a| a.name == name)
    }

    /// The storage key of a table item whose key attributes were already validated.
    pub fn storage_key(&self, prefix: &[u8], item: &Item) -> Vec<u8> {
        let partition = &item[&self.hash().name];
        let sort = self.range().map(|s| &item[&s.name]);
        key_codec::item_key(prefix, partition, sort)
    }

    /// Only the key attributes of an item.
    pub fn project_key(&self, item: &Item) -> Item {
        self.attributes()
            .filter_map(|a| item.get(&a.name).map(|v| (a.name.clone(), v.clone())))
            .collect()
    }
}
