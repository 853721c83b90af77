//! The SDKs' attribute values to Haven's model. The DynamoDB and the DynamoDB Streams SDKs each
//! generate their own `AttributeValue` type with the same shape, so one macro writes both
//! conversions.

use haven_model::{AttributeValue, Item, Number};

/// A value the source sent that Haven cannot hold (a number beyond 38 digits, an unknown type):
/// the source is not DynamoDB-compatible, and the copy must not silently differ.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

macro_rules! converter {
    ($name:ident, $items:ident, $sdk:path) => {
        /// Converts one of the SDK's attribute values.
        pub fn $name(value: &$sdk) -> Result<AttributeValue, Unsupported> {
            use $sdk as V;
            Ok(match value {
                V::S(s) => AttributeValue::S(s.clone()),
                V::N(n) => AttributeValue::N(number(n)?),
                V::B(b) => AttributeValue::B(b.as_ref().to_vec()),
                V::Bool(b) => AttributeValue::Bool(*b),
                V::Null(_) => AttributeValue::Null,
                V::M(map) => AttributeValue::M($items(map)?),
                V::L(list) => AttributeValue::L(list.iter().map($name).collect::<Result<_, _>>()?),
                V::Ss(set) => AttributeValue::Ss(set.clone()),
                V::Ns(set) => AttributeValue::Ns(
                    set.iter()
                        .map(String::as_str)
                        .map(number)
                        .collect::<Result<_, _>>()?,
                ),
                V::Bs(set) => AttributeValue::Bs(set.iter().map(|b| b.as_ref().to_vec()).collect()),
                other => return Err(Unsupported(format!("unknown attribute type {other:?}"))),
            })
        }

        /// Converts an item (or a key) of the SDK.
        pub fn $items(map: &std::collections::HashMap<String, $sdk>) -> Result<Item, Unsupported> {
            map.iter()
                .map(|(name, value)| Ok((name.clone(), $name(value)?)))
                .collect()
        }
    };
}

converter!(
    table_value,
    table_item,
    aws_sdk_dynamodb::types::AttributeValue
);
converter!(
    stream_value,
    stream_item,
    aws_sdk_dynamodbstreams::types::AttributeValue
);

fn number(text: &str) -> Result<Number, Unsupported> {
    Number::parse(text).map_err(|error| Unsupported(format!("number {text:?}: {error}")))
}
