//! Behaviour tests for the parsers and evaluators. Expected messages were taken from DynamoDB
//! (DynamoDB Local, and the real service's messages recorded by dynalite's test suite).

mod condition;
mod key_condition;
mod legacy;
mod projection;
mod robustness;
mod roundtrip;
mod update;

use std::collections::{BTreeMap, HashMap};

use haven_model::{AttributeValue, Item, Number};

pub(crate) fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_string())
}

pub(crate) fn n(text: &str) -> AttributeValue {
    AttributeValue::N(Number::parse(text).unwrap())
}

pub(crate) fn l(values: Vec<AttributeValue>) -> AttributeValue {
    AttributeValue::L(values)
}

pub(crate) fn m(entries: Vec<(&str, AttributeValue)>) -> AttributeValue {
    AttributeValue::M(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

pub(crate) fn ss(members: &[&str]) -> AttributeValue {
    AttributeValue::Ss(members.iter().map(|m| m.to_string()).collect())
}

pub(crate) fn item(entries: Vec<(&str, AttributeValue)>) -> Item {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect::<BTreeMap<_, _>>()
}

/// ExpressionAttributeNames / Values for a test.
#[derive(Default)]
pub(crate) struct Env {
    pub names: HashMap<String, String>,
    pub values: BTreeMap<String, AttributeValue>,
}

impl Env {
    pub fn new() -> Env {
        Env::default()
    }

    pub fn name(mut self, placeholder: &str, name: &str) -> Env {
        self.names.insert(placeholder.into(), name.into());
        self
    }

    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Env {
        self.values.insert(placeholder.into(), value);
        self
    }

    pub fn placeholders(&self) -> crate::Placeholders<'_> {
        let names = (!self.names.is_empty()).then_some(&self.names);
        let values = (!self.values.is_empty()).then_some(&self.values);
        crate::Placeholders::new(names, values).unwrap()
    }
}
