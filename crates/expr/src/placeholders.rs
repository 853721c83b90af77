//! ExpressionAttributeNames and ExpressionAttributeValues: the `#name` and `:value` substitutions of a
//! request. Every expression of one request resolves through the same tracker, because DynamoDB
//! rejects a request that defines a placeholder none of its expressions uses.
//!
//! The tracker borrows both maps and remembers the placeholders used by reference into them:
//! ExpressionAttributeValues are an [`Item`] as the request was read (copying them into another
//! map cost an UpdateItem about 1,400 instructions), and marking a placeholder used allocates
//! nothing.

use std::collections::{BTreeSet, HashMap};

use haven_model::{AttributeValue, Item};

use crate::ExprError;

/// Resolves placeholders and remembers which ones were used.
#[derive(Debug, Default)]
pub struct Placeholders<'a> {
    names: Option<&'a HashMap<String, String>>,
    values: Option<&'a Item>,
    used_names: BTreeSet<&'a str>,
    used_values: BTreeSet<&'a str>,
}

impl<'a> Placeholders<'a> {
    /// Checks the maps as DynamoDB does before parsing: they must not be empty, and every key must be
    /// a well-formed `#name` / `:value`.
    pub fn new(
        names: Option<&'a HashMap<String, String>>,
        values: Option<&'a Item>,
    ) -> Result<Placeholders<'a>, ExprError> {
        if names.is_some_and(HashMap::is_empty) {
            return Err(ExprError::new("ExpressionAttributeNames must not be empty"));
        }
        if let Some(key) = names.and_then(|n| first_long_key(n.keys())) {
            return Err(ExprError(format!(
                "ExpressionAttributeNames contains invalid key: The expression attribute map contains a key that is too long; size of key: {}",
                key.len()
            )));
        }
        if let Some(key) = names.and_then(|n| first_bad_key(n.keys(), '#')) {
            return Err(ExprError(format!(
                "ExpressionAttributeNames contains invalid key: Syntax error; key: \"{key}\""
            )));
        }
        if let Some(key) = names.and_then(first_empty_name) {
            return Err(ExprError(format!(
                "ExpressionAttributeNames contains invalid value: Empty attribute name for key {key}"
            )));
        }
        if let Some(key) = names.and_then(first_long_name) {
            return Err(ExprError(format!(
                "ExpressionAttributeNames contains invalid value: Attribute name is too large, must be less than 65536 bytes for key {key}"
            )));
        }
        if values.is_some_and(Item::is_empty) {
            return Err(ExprError::new(
                "ExpressionAttributeValues must not be empty",
            ));
        }
        if values.is_some_and(|v| first_long_key(v.keys()).is_some()) {
            // Unlike the names' message, this one does not give the size (DynamoDB Local).
            return Err(ExprError::new(
                "ExpressionAttributeValues contains invalid key: The expression attribute map contains a key that is too long;",
            ));
        }
        if let Some(key) = values.and_then(|v| first_bad_key(v.keys(), ':')) {
            return Err(ExprError(format!(
                "ExpressionAttributeValues contains invalid key: Syntax error; key: \"{key}\""
            )));
        }
        Ok(Placeholders {
            names,
            values,
            ..Placeholders::default()
        })
    }

    /// The attribute name `#name` stands for, marking it used.
    pub(crate) fn name(&mut self, placeholder: &str) -> Option<String> {
        let (key, name) = self.names?.get_key_value(placeholder)?;
        self.used_names.insert(key);
        Some(name.clone())
    }

    /// The value `:value` stands for, marking it used.
    pub(crate) fn value(&mut self, placeholder: &str) -> Option<AttributeValue> {
        let (key, value) = self.values?.get_key_value(placeholder)?;
        self.used_values.insert(key);
        Some(value.clone())
    }

    /// DynamoDB's error for placeholders that no expression of the request used; names are reported
    /// before values, keys sorted.
    pub fn check_all_used(&self) -> Result<(), ExprError> {
        let unused = |defined: Option<Vec<&String>>, used: &BTreeSet<&str>| {
            let mut keys: Vec<&String> = defined
                .unwrap_or_default()
                .into_iter()
                .filter(|k| !used.contains(k.as_str()))
                .collect();
            keys.sort();
            keys.iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let names = unused(self.names.map(|n| n.keys().collect()), &self.used_names);
        if !names.is_empty() {
            return Err(ExprError(format!(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{names}}}"
            )));
        }
        let values = unused(self.values.map(|v| v.keys().collect()), &self.used_values);
        if !values.is_empty() {
            return Err(ExprError(format!(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{values}}}"
            )));
        }
        Ok(())
    }
}

fn first_empty_name(names: &HashMap<String, String>) -> Option<&String> {
    let mut empty: Vec<&String> = names
        .iter()
        .filter(|(_, v)| v.is_empty())
        .map(|(k, _)| k)
        .collect();
    empty.sort();
    empty.first().copied()
}

/// DynamoDB's limit on a placeholder's length, in UTF-8 bytes.
const MAX_KEY_BYTES: usize = 255;

/// DynamoDB's limit on an attribute name given through a placeholder: under 64 KiB.
const MAX_NAME_BYTES: usize = 65535;

fn first_long_key<'k>(keys: impl Iterator<Item = &'k String>) -> Option<&'k String> {
    let mut long: Vec<&String> = keys.filter(|k| k.len() > MAX_KEY_BYTES).collect();
    long.sort();
    long.first().copied()
}

fn first_long_name(names: &HashMap<String, String>) -> Option<&String> {
    let mut long: Vec<&String> = names
        .iter()
        .filter(|(_, v)| v.len() > MAX_NAME_BYTES)
        .map(|(k, _)| k)
        .collect();
    long.sort();
    long.first().copied()
}

fn first_bad_key<'k>(keys: impl Iterator<Item = &'k String>, sigil: char) -> Option<&'k String> {
    let mut bad: Vec<&String> = keys
        .filter(|k| {
            let mut chars = k.chars();
            chars.next() != Some(sigil)
                || k.len() < 2
                || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .collect();
    bad.sort();
    bad.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_maps_are_rejected() {
        let names = HashMap::new();
        let err = Placeholders::new(Some(&names), None).unwrap_err();
        assert_eq!(err.0, "ExpressionAttributeNames must not be empty");
        let values = Item::new();
        let err = Placeholders::new(None, Some(&values)).unwrap_err();
        assert_eq!(err.0, "ExpressionAttributeValues must not be empty");
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let names = HashMap::from([("a".to_string(), "a".to_string())]);
        let err = Placeholders::new(Some(&names), None).unwrap_err();
        assert_eq!(
            err.0,
            "ExpressionAttributeNames contains invalid key: Syntax error; key: \"a\""
        );
        let values = Item::from([("b".to_string(), AttributeValue::Null)]);
        let err = Placeholders::new(None, Some(&values)).unwrap_err();
        assert_eq!(
            err.0,
            "ExpressionAttributeValues contains invalid key: Syntax error; key: \"b\""
        );
    }

    #[test]
    fn unused_names_are_reported_before_values_and_sorted() {
        let names = HashMap::from([
            ("#b".to_string(), "b".to_string()),
            ("#a".to_string(), "a".to_string()),
            ("#c".to_string(), "c".to_string()),
        ]);
        let values = Item::from([(":v".to_string(), AttributeValue::Null)]);
        let mut p = Placeholders::new(Some(&names), Some(&values)).unwrap();
        assert_eq!(p.name("#c").as_deref(), Some("c"));
        assert_eq!(
            p.check_all_used().unwrap_err().0,
            "Value provided in ExpressionAttributeNames unused in expressions: keys: {#a, #b}"
        );
        p.name("#a");
        p.name("#b");
        assert_eq!(
            p.check_all_used().unwrap_err().0,
            "Value provided in ExpressionAttributeValues unused in expressions: keys: {:v}"
        );
        p.value(":v");
        assert!(p.check_all_used().is_ok());
    }
}
