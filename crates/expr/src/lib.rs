//! DynamoDB's expression language: the condition, filter, key-condition, update and projection
//! expressions of a request, from text to a checked syntax tree to its effect on an item.
//!
//! Why a crate of its own: every item operation of the API evaluates expressions, and DynamoDB's
//! exact error messages for them (which clients match on) are a large, self-contained piece of
//! behaviour. The legacy request parameters (`Expected`, `AttributeUpdates`, `AttributesToGet`...)
//! translate into the same trees, so the API layer evaluates one thing.
//!
//! Flow for one request: build one [`Placeholders`] from its ExpressionAttributeNames/Values, parse
//! each expression through it ([`parse_condition`], [`parse_update`], [`parse_projection`]), then call
//! [`Placeholders::check_all_used`]; evaluate with [`Condition::evaluate`], [`UpdateExpression::apply`]
//! and [`project`]. A Query reduces its KeyConditionExpression with [`key_condition`].
//!
//! Legacy parameters: `Expected` → [`translate_conditions`], `QueryFilter`/`ScanFilter` →
//! [`translate_filter`], `KeyConditions` → [`translate_key_conditions`], `AttributeUpdates` →
//! [`AttributeUpdates`], `AttributesToGet` → [`attributes_to_get`].
//!
//! Where DynamoDB Local and the real service disagree, and which is followed, is listed in
//! `docs/compatibility.md` (section "Expressions").

mod apply;
mod ast;
mod condition;
mod describe;
mod eval;
mod key_condition;
mod legacy;
mod lexer;
mod parser;
pub mod partiql;
mod path;
mod placeholders;
mod projection;
mod reserved;
mod update;

pub use apply::{UpdatedPaths, key_attribute_error};
pub use ast::{Comparator, Condition, Operand, SetValue, UpdateAction, UpdateOperand};
pub use condition::{ConditionKind, parse_condition};
pub use key_condition::{
    KeyCondition, KeyPredicate, KeySchema, MultiKeySchema, RangeKeyCondition, key_condition,
    multi_key_condition,
};
pub use legacy::{
    AttributeAction, AttributeUpdate, AttributeUpdates, ComparisonOperator, ConditionalOperator,
    ExpectedAttribute, FilterCondition, attributes_to_get, translate_conditions, translate_filter,
    translate_key_conditions, translate_multi_key_conditions,
};
pub use path::{Path, PathElement};
pub use placeholders::Placeholders;
pub use projection::{parse_projection, project};
pub use update::{UpdateExpression, parse_update};

use std::fmt;

/// A request error in DynamoDB's exact words; the API layer sends it as a ValidationException.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError(pub String);

impl ExprError {
    pub(crate) fn new(message: &str) -> ExprError {
        ExprError(message.to_string())
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExprError {}

#[cfg(test)]
mod tests;
