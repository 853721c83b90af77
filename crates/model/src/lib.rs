//! Haven's data model: what DynamoDB stores, independent of any wire format or storage engine.
//!
//! - [`Number`]: DynamoDB's decimal number (38 significant digits, exponent -130..=125), never a float.
//! - [`AttributeValue`] and [`Item`]: the ten DynamoDB types and their size rules.
//! - [`key_codec`]: the order-preserving byte encoding of key attributes used as storage keys.
//! - [`item_codec`]: the compact binary encoding of whole items stored as values.
//! - [`schema`]: key schemas and the table description that the catalog keeps.

pub mod item_codec;
pub mod key_codec;
mod number;
pub mod schema;
mod value;

pub use number::{Number, NumberError};
pub use value::{AttributeValue, Item, MAX_ITEM_SIZE, attribute_size, item_size};
