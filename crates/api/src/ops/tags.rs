//! TagResource, UntagResource and ListTagsOfResource: a table's tags, addressed by its ARN.
//!
//! DynamoDB checks the ARN's form before anything else (a missing ARN, then one that does not
//! start with `arn:`), then the field constraints, then what the ARN names (service, resource
//! type, region, account, a valid table name), then the tags themselves, and only then whether
//! the table exists. Tag rules: at most 50 tags a table; keys of 1 to 128 and values of 0 to 256
//! Unicode characters drawn from letters, digits, white space and `_ . : / = + - @`; no key
//! starting with `aws:` in any case.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::control::TagInput;
use super::update_table::modify_table;
use crate::Service;
use crate::catalog::TableMeta;
use crate::error::{DynamoError, Violations};

/// Most tags one table may carry.
const MAX_TAGS: usize = 50;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TagResourceInput {
    resource_arn: Option<String>,
    tags: Option<Vec<TagInput>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UntagResourceInput {
    resource_arn: Option<String>,
    tag_keys: Option<Vec<Option<String>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListTagsOfResourceInput {
    resource_arn: Option<String>,
    next_token: Option<String>,
}

fn invalid_arn(arn: &str) -> DynamoError {
    DynamoError::validation(format!(
        "Invalid TableArn: Invalid ResourceArn provided as input {arn}"
    ))
}

fn not_found(arn: &str) -> DynamoError {
    DynamoError::ResourceNotFound(format!(
        "Requested resource not found: ResourceArn: {arn} not found"
    ))
}

/// The checks made before the field constraints: an ARN is present and looks like one.
fn check_arn_present(arn: Option<&str>) -> Result<&str, DynamoError> {
    let arn = arn.ok_or_else(|| DynamoError::validation("Invalid TableArn"))?;
    if !arn.starts_with("arn:") {
        return Err(DynamoError::validation(format!(
            "One or more parameter values were invalid: ARNs must start with 'arn:': {arn}"
        )));
    }
    Ok(arn)
}

/// Reads `arn:<partition>:dynamodb:<region>:<account>:table/<name>` and answers the table name.
fn table_name_of<'a>(service: &Service, arn: &'a str) -> Result<&'a str, DynamoError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, _partition, service_name, region, account, resource] = parts[..] else {
        return Err(invalid_arn(arn));
    };
    if service_name != "dynamodb" {
        return Err(DynamoError::validation(format!(
            "One or more parameter values were invalid: Provided Arn is not a DynamoDB resource arn: {arn}"
        )));
    }
    let Some(path) = resource.strip_prefix("table/") else {
        return Err(invalid_arn(arn));
    };
    let (name, rest) = path.split_once('/').unwrap_or((path, ""));
    if !rest.is_empty() {
        if rest.starts_with("stream/") {
            return Err(not_found(arn));
        }
        return Err(DynamoError::validation(format!(
            "One or more parameter values were invalid: Invalid resource arn provided, only table or stream is accepted. Provided resource arn: {arn}"
        )));
    }
    let mut violations = Violations::new();
    violations.name("tableName", Some(name));
    if violations.into_result().is_err() || region != service.config.region {
        return Err(invalid_arn(arn));
    }
    if account != service.config.account {
        return Err(DynamoError::AccessDenied("Access is denied".into()));
    }
    Ok(name)
}

fn table_lookup<'a>(
    service: &'a Service,
    arn: &'a str,
    name: &'a str,
) -> impl Fn() -> Result<Arc<TableMeta>, DynamoError> + 'a {
    move || service.catalog.get(name)?.ok_or_else(|| not_found(arn))
}

fn allowed_tag_char(c: char) -> bool {
    c.is_alphabetic()
        || c.is_numeric()
        || (c.is_whitespace() && !c.is_control())
        || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
}

fn valid_tag_text(text: &str, max_chars: usize) -> bool {
    text.chars().count() <= max_chars && text.chars().all(allowed_tag_char)
}

/// A tag key's own rules (UntagResource checks the keys it removes by the same rules).
fn check_tag_key(key: Option<&str>) -> Result<&str, DynamoError> {
    match key {
        Some(key) if !key.is_empty() && valid_tag_text(key, MAX_KEY_CHARS) => {
            if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
                return Err(DynamoError::validation(format!(
                    "Tag Key cannot be prefixed with aws:, Key: {key}"
                )));
            }
            Ok(key)
        }
        _ => Err(DynamoError::validation(format!(
            "The Tag Key provided is invalid, Key: {}",
            key.unwrap_or("null")
        ))),
    }
}

/// Checks a list of tags as DynamoDB does (TagResource; CreateTable's Tags follow the same rules).
pub(crate) fn check_tags(tags: &[TagInput]) -> Result<Vec<(String, String)>, DynamoError> {
    let mut checked: Vec<(String, String)> = Vec::with_capacity(tags.len());
    for tag in tags {
        let key = check_tag_key(tag.key.as_deref())?;
        let value = match tag.value.as_deref() {
            Some(value) if valid_tag_text(value, MAX_VALUE_CHARS) => value,
            value => {
                return Err(DynamoError::validation(format!(
                    "The Tag Value provided is invalid, Value: {}",
                    value.unwrap_or("null")
                )));
            }
        };
        if checked.iter().any(|(k, _)| k == key) {
            return Err(DynamoError::validation(format!(
                "Duplicate Tag Keys provided as input: Duplicate Tag Key found {key}"
            )));
        }
        checked.push((key.to_owned(), value.to_owned()));
    }
    Ok(checked)
}

fn too_many_tags() -> DynamoError {
    DynamoError::validation("Number of Tags exceed the current limit for the provided ResourceArn")
}

pub(crate) async fn tag_resource(
    service: &Service,
    input: TagResourceInput,
) -> Result<Value, DynamoError> {
    let arn = check_arn_present(input.resource_arn.as_deref())?;
    let Some(tags) = &input.tags else {
        let mut violations = Violations::new();
        violations.null("tags");
        return Err(violations.into_result().unwrap_err());
    };
    let name = table_name_of(service, arn)?;
    if tags.is_empty() {
        return Err(DynamoError::validation(
            "Atleast one Tag needs to be provided as Input.",
        ));
    }
    let tags = check_tags(tags)?;
    modify_table(service, table_lookup(service, arn, name), |meta| {
        let mut updated = meta.clone();
        for (key, value) in &tags {
            match updated.tags.iter_mut().find(|(k, _)| k == key) {
                Some(existing) => existing.1 = value.clone(),
                None => updated.tags.push((key.clone(), value.clone())),
            }
        }
        if updated.tags.len() > MAX_TAGS {
            return Err(too_many_tags());
        }
        let changed = updated.tags != meta.tags;
        Ok((changed.then_some(updated), json!({})))
    })
    .await
}

pub(crate) async fn untag_resource(
    service: &Service,
    input: UntagResourceInput,
) -> Result<Value, DynamoError> {
    let arn = check_arn_present(input.resource_arn.as_deref())?;
    let Some(keys) = &input.tag_keys else {
        let mut violations = Violations::new();
        violations.null("tagKeys");
        return Err(violations.into_result().unwrap_err());
    };
    let name = table_name_of(service, arn)?;
    if keys.is_empty() {
        return Err(DynamoError::validation(
            "Atleast one Tag Key needs to be provided as Input.",
        ));
    }
    let keys = keys
        .iter()
        .map(|key| check_tag_key(key.as_deref()).map(str::to_owned))
        .collect::<Result<Vec<String>, DynamoError>>()?;
    if keys.len() > MAX_TAGS {
        return Err(too_many_tags());
    }
    modify_table(service, table_lookup(service, arn, name), |meta| {
        let mut updated = meta.clone();
        updated.tags.retain(|(key, _)| !keys.contains(key));
        let changed = updated.tags != meta.tags;
        Ok((changed.then_some(updated), json!({})))
    })
    .await
}

/// Tags in the order they were first set. A table holds at most 50 tags, so one page always holds
/// them all; NextToken (the last key of a page) is honoured should a page ever be cut short.
pub(crate) fn list_tags_of_resource(
    service: &Service,
    input: ListTagsOfResourceInput,
) -> Result<Value, DynamoError> {
    let arn = check_arn_present(input.resource_arn.as_deref())?;
    let name = table_name_of(service, arn)?;
    let meta = table_lookup(service, arn, name)()?;
    let start = match &input.next_token {
        None => 0,
        Some(token) => meta
            .tags
            .iter()
            .position(|(key, _)| key == token)
            .map_or(meta.tags.len(), |i| i + 1),
    };
    let page: Vec<&(String, String)> = meta.tags.iter().skip(start).take(MAX_TAGS).collect();
    let mut response = json!({
        "Tags": page
            .iter()
            .map(|(key, value)| json!({ "Key": key, "Value": value }))
            .collect::<Vec<_>>(),
    });
    if start + page.len() < meta.tags.len() {
        response["NextToken"] = json!(page.last().map(|(key, _)| key));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: Option<&str>, value: Option<&str>) -> TagInput {
        TagInput {
            key: key.map(str::to_owned),
            value: value.map(str::to_owned),
        }
    }

    fn error(result: Result<Vec<(String, String)>, DynamoError>) -> String {
        result.unwrap_err().message().unwrap().to_owned()
    }

    #[test]
    fn tag_keys_and_values_follow_aws_rules() {
        let long_key = "k".repeat(129);
        assert_eq!(
            error(check_tags(&[tag(Some(&long_key), Some("v"))])),
            format!("The Tag Key provided is invalid, Key: {long_key}")
        );
        assert_eq!(
            error(check_tags(&[tag(Some(""), Some("v"))])),
            "The Tag Key provided is invalid, Key: "
        );
        assert_eq!(
            error(check_tags(&[tag(None, Some("v"))])),
            "The Tag Key provided is invalid, Key: null"
        );
        assert_eq!(
            error(check_tags(&[tag(Some("k"), None)])),
            "The Tag Value provided is invalid, Value: null"
        );
        assert_eq!(
            error(check_tags(&[tag(Some("k"), Some("100%"))])),
            "The Tag Value provided is invalid, Value: 100%"
        );
        assert_eq!(
            error(check_tags(&[tag(Some("AWS:x"), Some("v"))])),
            "Tag Key cannot be prefixed with aws:, Key: AWS:x"
        );
        assert_eq!(
            error(check_tags(&[
                tag(Some("dup"), Some("1")),
                tag(Some("dup"), Some("2"))
            ])),
            "Duplicate Tag Keys provided as input: Duplicate Tag Key found dup"
        );
        let fine = [
            tag(Some(&"k".repeat(128)), Some(&"v".repeat(256))),
            tag(Some("ключ café 表"), Some("")),
            tag(Some("myaws:x"), Some("a+b-c=d.e_f:g/h@i")),
            tag(Some(" lead"), Some("nbsp\u{a0}ideographic\u{3000}")),
        ];
        assert_eq!(check_tags(&fine).unwrap().len(), 4);
        assert!(check_tags(&[tag(Some("k"), Some("🔑"))]).is_err());
        assert!(check_tags(&[tag(Some("tab\t"), Some("v"))]).is_err());
    }

    #[test]
    fn arn_presence_comes_first() {
        assert_eq!(
            check_arn_present(None).unwrap_err().message(),
            Some("Invalid TableArn".to_string())
        );
        assert_eq!(
            check_arn_present(Some("tab")).unwrap_err().message(),
            Some(
                "One or more parameter values were invalid: ARNs must start with 'arn:': tab"
                    .to_string()
            )
        );
    }
}
