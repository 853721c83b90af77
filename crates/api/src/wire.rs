//! DynamoDB's JSON representation of attribute values (`{"S": "x"}`, `{"N": "1"}`, `{"B": "<base64>"}`...)
//! and the validation DynamoDB applies while reading them. The model types never see JSON.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use haven_model::{AttributeValue, Item, Number};
use serde_json::Value;

use crate::error::DynamoError;

/// DynamoDB's limit on nested documents: counting a top-level attribute as level 1, a value may sit
/// at level 32 at most (31 maps or lists around a scalar), as real DynamoDB and DynamoDB Local answer.
const MAX_NESTING_DEPTH: usize = 32;

fn invalid(message: &str) -> DynamoError {
    DynamoError::validation(format!(
        "One or more parameter values were invalid: {message}"
    ))
}

fn serialization(message: impl Into<String>) -> DynamoError {
    DynamoError::Serialization(message.into())
}

/// A request body read as `T`: as text when it is UTF-8, so its strings skip serde_json's UTF-8
/// check. `from_slice` runs `str::from_utf8` once per string, a call apiece (a 25-item
/// BatchWriteItem has about 300 strings), where checking the whole body costs one call. A body
/// that is not UTF-8 is read as bytes, as before, so the result and any error are the same.
pub fn from_body<'de, T: serde::Deserialize<'de>>(body: &'de [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
}

/// Reads a map of attribute values (an item, a key, ExpressionAttributeValues...).
pub fn parse_item(value: &Value) -> Result<Item, DynamoError> {
    parse_map(value, 0)
}

pub fn parse_value(value: &Value) -> Result<AttributeValue, DynamoError> {
    parse_value_at(value, 0)
}

fn parse_map(value: &Value, depth: usize) -> Result<BTreeMap<String, AttributeValue>, DynamoError> {
    let object = value
        .as_object()
        .ok_or_else(|| serialization("Start of structure or map found where not expected"))?;
    let map = object
        .iter()
        .map(|(name, v)| Ok((name.clone(), parse_value_at(v, depth)?)))
        .collect::<Result<BTreeMap<_, _>, DynamoError>>()?;
    // DynamoDB reads every value before it looks at the names.
    if map.contains_key("") {
        return Err(DynamoError::validation("Empty attribute name"));
    }
    Ok(map)
}

fn parse_value_at(value: &Value, depth: usize) -> Result<AttributeValue, DynamoError> {
    // `depth` counts the containers around this value, so the value is at level `depth + 1`.
    if depth >= MAX_NESTING_DEPTH {
        return Err(DynamoError::nesting_exceeded());
    }
    let object = value
        .as_object()
        .ok_or_else(|| serialization("Unexpected value type in payload"))?;
    let mut found = None;
    for (type_name, payload) in object {
        let parsed = match type_name.as_str() {
            "S" => AttributeValue::S(string(payload)?),
            "N" => AttributeValue::N(number(payload)?),
            "B" => AttributeValue::B(binary(payload)?),
            "BOOL" => AttributeValue::Bool(
                payload
                    .as_bool()
                    .ok_or_else(|| serialization("Unexpected token in BOOL"))?,
            ),
            "NULL" => match payload.as_bool() {
                Some(true) => AttributeValue::Null,
                Some(false) => {
                    return Err(invalid(
                        "Null attribute value types must have the value of true",
                    ));
                }
                None => return Err(serialization("Unexpected token in NULL")),
            },
            "M" => AttributeValue::M(parse_map(payload, depth + 1)?),
            "L" => AttributeValue::L(
                array(payload)?
                    .iter()
                    .map(|v| parse_value_at(v, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            "SS" => AttributeValue::Ss(set(
                payload,
                "An string set  may not be empty",
                string,
                |members| {
                    invalid(&format!(
                        "Input collection [{}] contains duplicates.",
                        members.join(", ")
                    ))
                },
            )?),
            "NS" => AttributeValue::Ns(set(
                payload,
                "An number set  may not be empty",
                number,
                |_| DynamoError::validation("Input collection contains duplicates"),
            )?),
            "BS" => AttributeValue::Bs(set(
                payload,
                "Binary sets should not be empty",
                binary,
                |members| {
                    let listed: Vec<String> = members.iter().map(|b| BASE64.encode(b)).collect();
                    invalid(&format!(
                        "Input collection [{}]of type BS contains duplicates.",
                        listed.join(", ")
                    ))
                },
            )?),
            // Unknown members are ignored, as DynamoDB's deserializer does.
            _ => continue,
        };
        if found.is_some() {
            return Err(DynamoError::validation(
                "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
            ));
        }
        found = Some(parsed);
    }
    found.ok_or_else(|| {
        DynamoError::validation(
            "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes",
        )
    })
}

fn string(value: &Value) -> Result<String, DynamoError> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| serialization("Unexpected value type in payload"))
}

fn number(value: &Value) -> Result<Number, DynamoError> {
    let text = value
        .as_str()
        .ok_or_else(|| serialization("Unexpected value type in payload"))?;
    if text.is_empty() {
        // DynamoDB leaves out the ": <value>" tail when the value is empty.
        return Err(DynamoError::validation(
            "The parameter cannot be converted to a numeric value",
        ));
    }
    Number::parse(text).map_err(|e| DynamoError::validation(e.to_string()))
}

fn binary(value: &Value) -> Result<Vec<u8>, DynamoError> {
    let text = value
        .as_str()
        .ok_or_else(|| serialization("Unexpected value type in payload"))?;
    BASE64.decode(text).map_err(|_| {
        serialization("Base64 encoded length is expected a multiple of 4 bytes but found: 1")
    })
}

fn array(value: &Value) -> Result<&Vec<Value>, DynamoError> {
    value
        .as_array()
        .ok_or_else(|| serialization("Unexpected value type in payload"))
}

/// Reads a set: non-empty and free of duplicates (each set type words the duplicate error its own
/// way, so `duplicates` builds it from the members).
fn set<T: PartialEq>(
    value: &Value,
    empty_message: &str,
    member: fn(&Value) -> Result<T, DynamoError>,
    duplicates: fn(&[T]) -> DynamoError,
) -> Result<Vec<T>, DynamoError> {
    let members = array(value)?
        .iter()
        .map(member)
        .collect::<Result<Vec<T>, _>>()?;
    if members.is_empty() {
        return Err(invalid(empty_message));
    }
    let has_duplicates = members
        .iter()
        .enumerate()
        .any(|(i, m)| members[..i].contains(m));
    if has_duplicates {
        return Err(duplicates(&members));
    }
    Ok(members)
}

/// An item as a `Value` of DynamoDB JSON (for answers built as `Value`s; reads write their items
/// as text directly, see [`crate::item_json`]).
pub fn item_to_json(item: &Item) -> Value {
    let mut text = Vec::new();
    crate::item_json::write_item(&mut text, item);
    serde_json::from_slice(&text).expect("written items are JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(value: Value) -> String {
        parse_value(&value)
            .unwrap_err()
            .message()
            .unwrap()
            .to_string()
    }

    #[test]
    fn round_trips_every_type() {
        let item = json!({
            "s": {"S": "x"}, "n": {"N": "1.50"}, "b": {"B": "AAE="}, "t": {"BOOL": true}, "z": {"NULL": true},
            "m": {"M": {"k": {"L": [{"S": ""}]}}}, "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["2", "1"]}, "bs": {"BS": ["AA=="]}
        });
        let parsed = parse_item(&item).unwrap();
        let mut expected = item.clone();
        expected["n"] = json!({"N": "1.5"});
        assert_eq!(item_to_json(&parsed), expected);
    }

    #[test]
    fn rejects_malformed_values_with_dynamodb_messages() {
        assert_eq!(
            message(json!({})),
            "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
        );
        assert_eq!(
            message(json!({"S": "a", "N": "1"})),
            "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes"
        );
        assert_eq!(
            message(json!({"SS": []})),
            "One or more parameter values were invalid: An string set  may not be empty"
        );
        assert_eq!(
            message(json!({"SS": ["a", "a"]})),
            "One or more parameter values were invalid: Input collection [a, a] contains duplicates."
        );
        assert_eq!(
            message(json!({"NS": ["1", "1.0"]})),
            "Input collection contains duplicates"
        );
        assert_eq!(
            message(json!({"BS": ["Yg==", "Yg=="]})),
            "One or more parameter values were invalid: Input collection [Yg==, Yg==]of type BS contains duplicates."
        );
        assert_eq!(
            message(json!({"N": ""})),
            "The parameter cannot be converted to a numeric value"
        );
        assert_eq!(
            message(json!({"M": {"": {"S": "x"}}})),
            "Empty attribute name"
        );
        assert_eq!(
            message(json!({"N": "x"})),
            "The parameter cannot be converted to a numeric value: x"
        );
        assert_eq!(
            message(json!({"NULL": false})),
            "One or more parameter values were invalid: Null attribute value types must have the value of true"
        );
    }

    #[test]
    fn bounds_nesting_depth() {
        let wrap = |levels: usize, container: &str| {
            let mut value = json!({"S": "leaf"});
            for _ in 0..levels {
                value = if container == "L" {
                    json!({"L": [value]})
                } else {
                    json!({"M": {"a": value}})
                };
            }
            value
        };
        for container in ["L", "M"] {
            // 31 containers: the leaf is at level 32, the deepest DynamoDB accepts.
            assert!(parse_value(&wrap(31, container)).is_ok());
            for levels in [32, 40] {
                assert_eq!(
                    message(wrap(levels, container)),
                    "Nesting Levels have exceeded supported limits: Attributes in the item have nested levels beyond supported limit"
                );
            }
        }
    }
}
