//! UpdateTimeToLive and DescribeTimeToLive: which attribute, if any, holds an item's expiry time.
//! Only the setting lives here; the expiry index and the worker that deletes expired items are
//! `crate::ttl`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::control::TableNameInput;
use super::update_table::modify_table;
use crate::Service;
use crate::catalog::TimeToLive;
use crate::error::{DynamoError, Violations};

/// DynamoDB's length limits on an attribute name.
const MAX_ATTRIBUTE_NAME_LENGTH: usize = 255;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateTimeToLiveInput {
    table_name: Option<String>,
    time_to_live_specification: Option<TimeToLiveSpecification>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TimeToLiveSpecification {
    enabled: Option<bool>,
    attribute_name: Option<String>,
}

fn check(input: &UpdateTimeToLiveInput) -> Result<(bool, String), DynamoError> {
    let mut violations = Violations::new();
    violations.name("tableName", input.table_name.as_deref());
    match &input.time_to_live_specification {
        None => violations.null("timeToLiveSpecification"),
        Some(spec) => {
            if spec.enabled.is_none() {
                violations.null("timeToLiveSpecification.enabled");
            }
            match &spec.attribute_name {
                None => violations.null("timeToLiveSpecification.attributeName"),
                Some(name) if name.is_empty() => violations.push(
                    "Value '' at 'timeToLiveSpecification.attributeName' failed to satisfy constraint: Member must have length greater than or equal to 1",
                ),
                Some(name) if name.len() > MAX_ATTRIBUTE_NAME_LENGTH => violations.push(format!(
                    "Value '{name}' at 'timeToLiveSpecification.attributeName' failed to satisfy constraint: Member must have length less than or equal to {MAX_ATTRIBUTE_NAME_LENGTH}"
                )),
                Some(_) => {}
            }
        }
    }
    violations.into_result()?;
    let spec = input.time_to_live_specification.as_ref().expect("checked");
    Ok((
        spec.enabled.unwrap_or_default(),
        spec.attribute_name.clone().unwrap_or_default(),
    ))
}

/// What a request asks of the current setting: the new setting, or DynamoDB's refusal.
fn transition(
    current: Option<&TimeToLive>,
    enabled: bool,
    attribute_name: &str,
) -> Result<Option<TimeToLive>, DynamoError> {
    let active = current.filter(|ttl| ttl.enabled);
    match active {
        Some(ttl) if ttl.attribute_name != attribute_name => Err(DynamoError::validation(format!(
            "TimeToLive is active on a different AttributeName: current AttributeName is {}",
            ttl.attribute_name
        ))),
        Some(_) if enabled => Err(DynamoError::validation("TimeToLive is already enabled")),
        Some(_) => Ok(None),
        None if !enabled => Err(DynamoError::validation("TimeToLive is already disabled")),
        None => Ok(Some(TimeToLive {
            attribute_name: attribute_name.to_owned(),
            enabled: true,
            enabled_version: 0,
        })),
    }
}

pub(crate) async fn update_time_to_live(
    service: &Service,
    input: UpdateTimeToLiveInput,
) -> Result<Value, DynamoError> {
    let (enabled, attribute_name) = check(&input)?;
    let table = TableNameInput {
        table_name: input.table_name.clone(),
    };
    modify_table(
        service,
        || table.lookup(service),
        |meta| {
            let mut updated = meta.clone();
            updated.time_to_live =
                transition(meta.time_to_live.as_ref(), enabled, &attribute_name)?;
            // Writes planned before the change re-plan: they keep the expiry index (or stop).
            updated.schema_version += 1;
            if let Some(ttl) = &mut updated.time_to_live {
                ttl.enabled_version = updated.schema_version;
            }
            Ok((Some(updated), ()))
        },
    )
    .await?;
    Ok(json!({
        "TimeToLiveSpecification": { "AttributeName": attribute_name, "Enabled": enabled }
    }))
}

pub(crate) fn describe_time_to_live(
    service: &Service,
    input: TableNameInput,
) -> Result<Value, DynamoError> {
    let meta = input.lookup(service)?;
    let description = match meta.time_to_live.as_ref().filter(|ttl| ttl.enabled) {
        Some(ttl) => json!({ "TimeToLiveStatus": "ENABLED", "AttributeName": ttl.attribute_name }),
        None => json!({ "TimeToLiveStatus": "DISABLED" }),
    };
    Ok(json!({ "TimeToLiveDescription": description }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(input: Value) -> String {
        let input: UpdateTimeToLiveInput = serde_json::from_value(input).unwrap();
        check(&input).unwrap_err().message().unwrap().to_owned()
    }

    #[test]
    fn specification_constraints() {
        assert_eq!(
            message(json!({"TableName": "abc"})),
            "1 validation error detected: Value null at 'timeToLiveSpecification' failed to satisfy constraint: Member must not be null"
        );
        assert_eq!(
            message(json!({"TableName": "abc", "TimeToLiveSpecification": {}})),
            "2 validation errors detected: Value null at 'timeToLiveSpecification.enabled' failed to satisfy constraint: Member must not be null; Value null at 'timeToLiveSpecification.attributeName' failed to satisfy constraint: Member must not be null"
        );
        assert_eq!(
            message(
                json!({"TableName": "a;", "TimeToLiveSpecification": {"AttributeName": "", "Enabled": true}})
            ),
            "3 validation errors detected: Value 'a;' at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value 'a;' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 3; Value '' at 'timeToLiveSpecification.attributeName' failed to satisfy constraint: Member must have length greater than or equal to 1"
        );
    }

    fn refusal(current: Option<TimeToLive>, enabled: bool, name: &str) -> String {
        transition(current.as_ref(), enabled, name)
            .unwrap_err()
            .message()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn transitions() {
        let on = |name: &str| {
            Some(TimeToLive {
                attribute_name: name.into(),
                enabled: true,
                enabled_version: 0,
            })
        };
        assert_eq!(
            refusal(None, false, "ttl"),
            "TimeToLive is already disabled"
        );
        assert_eq!(
            refusal(on("ttl"), true, "ttl"),
            "TimeToLive is already enabled"
        );
        assert_eq!(
            refusal(on("ttl"), true, "exp"),
            "TimeToLive is active on a different AttributeName: current AttributeName is ttl"
        );
        assert_eq!(
            refusal(on("ttl"), false, "exp"),
            "TimeToLive is active on a different AttributeName: current AttributeName is ttl"
        );
        assert_eq!(transition(None, true, "ttl").unwrap(), on("ttl"));
        assert_eq!(transition(on("ttl").as_ref(), false, "ttl").unwrap(), None);
    }
}
