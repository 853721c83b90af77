//! UpdateItem: edits an item in place (creating it if absent) with an UpdateExpression, under an
//! optional ConditionExpression, and returns the attributes ReturnValues asks for.

use std::borrow::Cow;

use haven_expr::UpdatedPaths;
use haven_model::Item;
use serde_json::{Map, Value};

use crate::Service;
use crate::catalog::TableMeta;
use crate::error::DynamoError;
use crate::expressions::check_condition;
use crate::items::{check_item_size, table, validate_key, write_item};
use crate::reply::Reply;
use crate::wire_item::{WireItem, parse_optional};

use super::items::{WriteCommon, write_input};

pub(crate) struct UpdateItemInput {
    common: WriteCommon,
    key: Option<WireItem>,
    update_expression: Option<String>,
    attribute_updates: Option<Map<String, Value>>,
}

write_input!(UpdateItemInput {
    key: Option<WireItem>,
    update_expression: Option<String>,
    attribute_updates: Option<Map<String, Value>>,
});

/// What ReturnValues asks UpdateItem to return (and RETURNING a PartiQL UPDATE).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnValues {
    None,
    AllOld,
    UpdatedOld,
    AllNew,
    UpdatedNew,
}

impl ReturnValues {
    fn parse(value: Option<&str>) -> ReturnValues {
        match value {
            Some("ALL_OLD") => ReturnValues::AllOld,
            Some("UPDATED_OLD") => ReturnValues::UpdatedOld,
            Some("ALL_NEW") => ReturnValues::AllNew,
            Some("UPDATED_NEW") => ReturnValues::UpdatedNew,
            _ => ReturnValues::None,
        }
    }

    /// The attributes to return, given the item before and after and the paths the update touched.
    pub(crate) fn select(
        self,
        old: Option<&Item>,
        new: Option<&Item>,
        updated: &UpdatedPaths,
    ) -> Option<Item> {
        let attributes = match self {
            ReturnValues::None => return None,
            ReturnValues::AllOld => old?.clone(),
            ReturnValues::AllNew => new?.clone(),
            ReturnValues::UpdatedOld => haven_expr::project(old?, &updated.0),
            ReturnValues::UpdatedNew => haven_expr::project(new?, &updated.0),
        };
        (!attributes.is_empty()).then_some(attributes)
    }
}

pub(crate) async fn update_item(
    service: &Service,
    input: UpdateItemInput,
) -> Result<Reply, DynamoError> {
    let common = &input.common;
    let checks = common.check(("key", input.key.is_some()))?;
    let key = parse_optional(input.key)?;
    let return_values = ReturnValues::parse(common.return_values.as_deref());
    let expressions = common.conditions(Some((
        input.update_expression.as_deref(),
        input.attribute_updates.as_ref(),
    )))?;

    let meta = table(service, common.table_name())?;
    validate_key(&meta, &key)?;
    let schema = meta.keys();
    let key_names: Vec<&str> = schema.attributes().map(|a| a.name.as_str()).collect();
    if let Some(update) = &expressions.update {
        update.check_key_attributes(&key_names)?;
    }
    let mut updated = UpdatedPaths::default();
    let outcome = write_item(service, &meta, &key, |current| {
        check_condition(
            expressions.condition.as_ref(),
            current,
            checks.return_item_on_failure,
        )?;
        let (item, paths) = updated_item(&meta, &key, current, |item| match &expressions.update {
            Some(update) => update.apply_to(item, &key_names),
            None => Ok((item, UpdatedPaths::default())),
        })?;
        updated = paths;
        Ok(Some(Cow::Owned(item)))
    })
    .await?;

    let attributes = return_values.select(outcome.old.as_ref(), outcome.new.as_deref(), &updated);
    Ok(super::items::write_response(
        attributes,
        &checks,
        &meta.name,
        &outcome,
        common.return_item_collection_metrics.as_deref(),
    ))
}

/// What an update (`apply`) makes of the current item (of its key alone when there is none),
/// checked as DynamoDB checks an updated item: its size, and its secondary index keys.
pub(crate) fn updated_item(
    meta: &TableMeta,
    key: &Item,
    current: Option<&Item>,
    apply: impl FnOnce(Item) -> Result<(Item, UpdatedPaths), DynamoError>,
) -> Result<(Item, UpdatedPaths), DynamoError> {
    let (item, updated) = apply(current.cloned().unwrap_or_else(|| key.clone()))?;
    // UpdateItem words the limit its own way (as DynamoDB and DynamoDB Local do).
    check_item_size(&item).map_err(|_| {
        DynamoError::validation("Item size to update has exceeded the maximum allowed size")
    })?;
    crate::indexes::validate_index_keys(meta, &item).map_err(|error| match error {
        // An update that empties an index key gets its own wording.
        DynamoError::Validation(message) if message.contains("cannot contain an empty") => DynamoError::validation(
            "One or more parameter values are not valid. The update expression attempted to update a secondary index key to a value that is not supported. The AttributeValue for a key attribute cannot contain an empty string value.",
        ),
        other => other,
    })?;
    Ok((item, updated))
}
