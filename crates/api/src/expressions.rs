//! The bridge between a request's expression parameters and the `haven-expr` crate: reading
//! ExpressionAttributeNames/Values, parsing every expression of the request through one placeholder
//! tracker, and the request-level rules DynamoDB checks around them.

use std::collections::HashMap;

use haven_expr::{Condition, ConditionKind, ExprError, Path, Placeholders, UpdateExpression};
use haven_model::{AttributeValue, Item};
use serde_json::Value;

use crate::error::DynamoError;
use crate::wire::parse_item;

impl From<ExprError> for DynamoError {
    fn from(error: ExprError) -> DynamoError {
        DynamoError::Validation(error.0)
    }
}

/// The expressions of one request, each optional.
#[derive(Default)]
pub(crate) struct ExpressionTexts<'r> {
    pub condition: Option<&'r str>,
    pub update: Option<&'r str>,
    pub projection: Option<&'r str>,
    pub key_condition: Option<&'r str>,
    pub filter: Option<&'r str>,
}

/// The parsed expressions of one request.
#[derive(Default)]
pub(crate) struct Expressions {
    pub condition: Option<Condition>,
    pub update: Option<UpdateExpression>,
    pub projection: Option<Vec<Path>>,
    pub key_condition: Option<Condition>,
    pub filter: Option<Condition>,
}

/// Parses a request's expressions with its ExpressionAttributeNames/Values, checking that the maps
/// are only given with expressions and that every placeholder they define is used.
pub(crate) fn parse_expressions(
    texts: ExpressionTexts,
    names: Option<&HashMap<String, String>>,
    values: Option<&Value>,
) -> Result<Expressions, DynamoError> {
    let values: Option<HashMap<String, AttributeValue>> = values
        .map(|v| parse_item(v).map(|item| item.into_iter().collect()))
        .transpose()?;
    let any_expression = texts.condition.is_some()
        || texts.update.is_some()
        || texts.projection.is_some()
        || texts.key_condition.is_some()
        || texts.filter.is_some();
    if !any_expression {
        if names.is_some() {
            return Err(DynamoError::validation(
                "ExpressionAttributeNames can only be specified when using expressions",
            ));
        }
        if values.is_some() {
            return Err(DynamoError::validation(
                "ExpressionAttributeValues can only be specified when using expressions",
            ));
        }
        return Ok(Expressions::default());
    }
    let mut placeholders = Placeholders::new(names, values.as_ref())?;
    let expressions = Expressions {
        update: texts
            .update
            .map(|t| haven_expr::parse_update(t, &mut placeholders))
            .transpose()?,
        condition: texts
            .condition
            .map(|t| haven_expr::parse_condition(t, &mut placeholders, ConditionKind::Condition))
            .transpose()?,
        projection: texts
            .projection
            .map(|t| haven_expr::parse_projection(t, &mut placeholders))
            .transpose()?,
        key_condition: texts
            .key_condition
            .map(|t| haven_expr::parse_condition(t, &mut placeholders, ConditionKind::KeyCondition))
            .transpose()?,
        filter: texts
            .filter
            .map(|t| haven_expr::parse_condition(t, &mut placeholders, ConditionKind::Filter))
            .transpose()?,
    };
    placeholders.check_all_used()?;
    Ok(expressions)
}

/// ReturnValuesOnConditionCheckFailure: whether a failed condition returns the item.
pub(crate) fn return_item_on_failure(
    value: Option<&str>,
    violations: &mut crate::error::Violations,
) -> bool {
    match value {
        None | Some("NONE") => false,
        Some("ALL_OLD") => true,
        Some(other) => {
            violations.push(format!(
                "Value '{other}' at 'returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]"
            ));
            false
        }
    }
}

/// Evaluates an optional condition against the current item; a false condition is
/// ConditionalCheckFailedException, carrying the item when the request asked for it.
pub(crate) fn check_condition(
    condition: Option<&Condition>,
    current: Option<&Item>,
    return_item: bool,
) -> Result<(), DynamoError> {
    let Some(condition) = condition else {
        return Ok(());
    };
    if condition.evaluate(current)? {
        return Ok(());
    }
    Err(DynamoError::ConditionalCheckFailed {
        message: "The conditional request failed".into(),
        item: current.filter(|_| return_item).cloned(),
    })
}
