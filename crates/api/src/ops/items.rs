//! Single-item operations: PutItem, GetItem, DeleteItem.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Service;
use crate::error::{DynamoError, Violations};
use crate::expressions::{
    ExpressionTexts, LegacyParams, RequestConditions, check_condition, parse_request_conditions,
    return_item_on_failure,
};
use crate::items::{
    Capacity, CapacityReport, WriteOutcome, check_item_size, check_table_name, collection_metrics,
    read_many, read_units, table, validate_item, validate_key, write_item, write_units,
};
use crate::reply::{Member, Reply};
use crate::wire_item::{WireItem, parse_optional};

const RETURN_VALUES: &[&str] = &["ALL_NEW", "UPDATED_OLD", "ALL_OLD", "NONE", "UPDATED_NEW"];

/// Checks the ReturnValues enum; Put and Delete then accept only NONE and ALL_OLD.
pub(super) fn check_return_values(violations: &mut Violations, value: Option<&str>) {
    if let Some(value) = value.filter(|v| !RETURN_VALUES.contains(v)) {
        violations.push(format!(
            "Value '{value}' at 'returnValues' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            RETURN_VALUES.join(", ")
        ));
    }
}

pub(super) fn check_item_collection_metrics(violations: &mut Violations, value: Option<&str>) {
    if let Some(value) = value.filter(|v| !["SIZE", "NONE"].contains(v)) {
        violations.push(format!(
            "Value '{value}' at 'returnItemCollectionMetrics' failed to satisfy constraint: Member must satisfy enum value set: [SIZE, NONE]"
        ));
    }
}

fn only_all_old_or_none(return_values: Option<&str>) -> Result<bool, DynamoError> {
    match return_values {
        None | Some("NONE") => Ok(false),
        Some("ALL_OLD") => Ok(true),
        Some(_) => Err(DynamoError::validation(
            "ReturnValues can only be ALL_OLD or NONE",
        )),
    }
}

/// Builds a write response: `Attributes` when asked for and present, plus ConsumedCapacity.
pub(super) fn write_response(
    attributes: Option<haven_model::Item>,
    checks: &WriteChecks,
    table: &str,
    outcome: &WriteOutcome,
    item_collection_metrics: Option<&str>,
) -> Reply {
    let capacity = checks.capacity.render_with_indexes(
        Capacity::Write,
        table,
        write_units(outcome),
        &outcome.index_units,
    );
    let mut reply = Reply::default();
    if let Some(item) = attributes {
        reply.push("Attributes", Member::Item(item));
    }
    if let Some(capacity) = capacity {
        reply.push("ConsumedCapacity", Member::Json(capacity));
    }
    // Only tables with local indexes have item collections to report.
    if let (Some("SIZE"), Some(collection)) = (item_collection_metrics, &outcome.collection) {
        reply.push(
            "ItemCollectionMetrics",
            Member::Json(collection_metrics(collection)),
        );
    }
    reply
}

/// The members PutItem, UpdateItem and DeleteItem share (read with each input's own members by
/// [`write_input!`]).
pub(crate) struct WriteCommon {
    pub table_name: Option<String>,
    pub return_values: Option<String>,
    pub return_consumed_capacity: Option<String>,
    pub return_item_collection_metrics: Option<String>,
    pub expected: Option<Map<String, Value>>,
    pub conditional_operator: Option<String>,
    pub condition_expression: Option<String>,
    pub expression_attribute_names: Option<HashMap<String, String>>,
    pub expression_attribute_values: Option<WireItem>,
    pub return_values_on_condition_check_failure: Option<String>,
}

/// Implements `Deserialize` for a write's input: [`WriteCommon`]'s members and its own
/// (`super::flat_input!`).
macro_rules! write_input {
    ($name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        super::flat_input!($name, WriteCommon {
            table_name: Option<String>,
            return_values: Option<String>,
            return_consumed_capacity: Option<String>,
            return_item_collection_metrics: Option<String>,
            expected: Option<serde_json::Map<String, serde_json::Value>>,
            conditional_operator: Option<String>,
            condition_expression: Option<String>,
            expression_attribute_names: Option<std::collections::HashMap<String, String>>,
            expression_attribute_values: Option<crate::wire_item::WireItem>,
            return_values_on_condition_check_failure: Option<String>,
        }, { $($field: $ty),* });
    };
}
pub(crate) use write_input;

/// UpdateItem's UpdateExpression and AttributeUpdates, as sent.
pub(crate) type UpdateParameters<'r> = (Option<&'r str>, Option<&'r Map<String, Value>>);

/// What the shared members ask of the response.
pub(crate) struct WriteChecks {
    pub capacity: CapacityReport,
    pub return_item_on_failure: bool,
}

impl WriteCommon {
    /// Field constraints, in DynamoDB's member order; `payload` names the Item or Key member and
    /// says whether the request has it.
    pub fn check(&self, payload: (&str, bool)) -> Result<WriteChecks, DynamoError> {
        let mut violations = Violations::new();
        check_table_name(&mut violations, self.table_name.as_deref());
        if !payload.1 {
            violations.null(payload.0);
        }
        check_return_values(&mut violations, self.return_values.as_deref());
        let capacity =
            CapacityReport::parse(&mut violations, self.return_consumed_capacity.as_deref());
        check_item_collection_metrics(
            &mut violations,
            self.return_item_collection_metrics.as_deref(),
        );
        let return_item_on_failure = return_item_on_failure(
            self.return_values_on_condition_check_failure.as_deref(),
            &mut violations,
        );
        violations.into_result()?;
        Ok(WriteChecks {
            capacity,
            return_item_on_failure,
        })
    }

    /// Parses the condition (and, for UpdateItem, its UpdateExpression or AttributeUpdates) in
    /// expression or legacy form.
    pub fn conditions(
        &self,
        update: Option<UpdateParameters>,
    ) -> Result<RequestConditions, DynamoError> {
        let (update_expression, attribute_updates) = update.unwrap_or_default();
        let texts = ExpressionTexts {
            condition: self.condition_expression.as_deref(),
            update: update_expression,
            missing_value_expressions: match update {
                Some(_) => "UpdateExpression and ConditionExpression are null",
                None => "ConditionExpression is null",
            },
            ..ExpressionTexts::default()
        };
        let legacy = LegacyParams {
            expected: self.expected.as_ref(),
            conditional_operator: self.conditional_operator.as_deref(),
            attribute_updates,
            ..LegacyParams::default()
        };
        parse_request_conditions(
            texts,
            legacy,
            self.expression_attribute_names.as_ref(),
            self.expression_attribute_values.as_ref().map(Into::into),
        )
    }

    pub fn table_name(&self) -> &str {
        self.table_name.as_deref().unwrap_or_default()
    }
}

pub(crate) struct PutItemInput {
    common: WriteCommon,
    item: Option<WireItem>,
}

write_input!(PutItemInput { item: Option<WireItem> });

pub(crate) async fn put_item(service: &Service, input: PutItemInput) -> Result<Reply, DynamoError> {
    let common = &input.common;
    let checks = common.check(("item", input.item.is_some()))?;
    let item = parse_optional(input.item)?;
    let return_old = only_all_old_or_none(common.return_values.as_deref())?;
    let expressions = common.conditions(None)?;
    check_item_size(&item)?;

    let meta = table(service, common.table_name())?;
    validate_item(&meta, &item)?;
    // The item holds its key: it serves as the key too, and is written as it is, uncopied.
    let mut outcome = write_item(service, &meta, &item, |current| {
        check_condition(
            expressions.condition.as_ref(),
            current,
            checks.return_item_on_failure,
        )?;
        Ok(Some(Cow::Borrowed(&item)))
    })
    .await?;
    let attributes = outcome.old.take().filter(|_| return_old);
    Ok(write_response(
        attributes,
        &checks,
        &meta.name,
        &outcome,
        common.return_item_collection_metrics.as_deref(),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetItemInput {
    table_name: Option<String>,
    key: Option<WireItem>,
    consistent_read: Option<bool>,
    return_consumed_capacity: Option<String>,
    projection_expression: Option<String>,
    expression_attribute_names: Option<HashMap<String, String>>,
    attributes_to_get: Option<Vec<String>>,
}

pub(crate) async fn get_item(service: &Service, input: GetItemInput) -> Result<Reply, DynamoError> {
    let mut violations = Violations::new();
    check_table_name(&mut violations, input.table_name.as_deref());
    if input.key.is_none() {
        violations.null("key");
    }
    let capacity =
        CapacityReport::parse(&mut violations, input.return_consumed_capacity.as_deref());
    violations.into_result()?;
    let key = parse_optional(input.key)?;

    let texts = ExpressionTexts {
        projection: input.projection_expression.as_deref(),
        ..ExpressionTexts::default()
    };
    let legacy = LegacyParams {
        attributes_to_get: input.attributes_to_get.as_deref(),
        ..LegacyParams::default()
    };
    let expressions = parse_request_conditions(
        texts,
        legacy,
        input.expression_attribute_names.as_ref(),
        None,
    )?;

    let meta = table(service, input.table_name.as_deref().unwrap_or_default())?;
    validate_key(&meta, &key)?;
    service.capacity.admit(&meta, None, Capacity::Read)?;
    let found = read_many(&*service.engine, &[(&meta, &key)])
        .await?
        .pop()
        .flatten();
    let size = found.as_ref().map_or(0, haven_model::item_size);
    let units = read_units(size, input.consistent_read.unwrap_or(false));
    service.capacity.charge(&meta, Capacity::Read, units, &[]);
    let mut reply = Reply::default();
    if let Some(item) = found {
        let item = match &expressions.projection {
            Some(paths) => haven_expr::project(&item, paths),
            None => item,
        };
        reply.push("Item", Member::Item(item));
    }
    if let Some(capacity) = capacity.render(Capacity::Read, &meta.name, units) {
        reply.push("ConsumedCapacity", Member::Json(capacity));
    }
    Ok(reply)
}

pub(crate) struct DeleteItemInput {
    common: WriteCommon,
    key: Option<WireItem>,
}

write_input!(DeleteItemInput { key: Option<WireItem> });

pub(crate) async fn delete_item(
    service: &Service,
    input: DeleteItemInput,
) -> Result<Reply, DynamoError> {
    let common = &input.common;
    let checks = common.check(("key", input.key.is_some()))?;
    let key = parse_optional(input.key)?;
    let return_old = only_all_old_or_none(common.return_values.as_deref())?;
    let expressions = common.conditions(None)?;

    let meta = table(service, common.table_name())?;
    validate_key(&meta, &key)?;
    let mut outcome: WriteOutcome = write_item(service, &meta, &key, |current| {
        check_condition(
            expressions.condition.as_ref(),
            current,
            checks.return_item_on_failure,
        )?;
        Ok(None)
    })
    .await?;
    let attributes = outcome.old.take().filter(|_| return_old);
    Ok(write_response(
        attributes,
        &checks,
        &meta.name,
        &outcome,
        common.return_item_collection_metrics.as_deref(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_and_delete_accept_only_all_old_or_none() {
        assert_eq!(only_all_old_or_none(Some("ALL_OLD")), Ok(true));
        assert_eq!(only_all_old_or_none(None), Ok(false));
        assert!(only_all_old_or_none(Some("ALL_NEW")).is_err());
    }
}
