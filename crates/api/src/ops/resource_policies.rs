//! GetResourcePolicy, PutResourcePolicy and DeleteResourcePolicy, and CreateTable's
//! ResourcePolicy: the resource-based policy of a table or of one of its streams, addressed by
//! ARN and stored in the table's metadata (`TableMeta::resource_policies`), so it is as durable
//! as the table and goes with it. Authorization reads it (`crate::access`).
//!
//! Revisions are the change's time in milliseconds, strictly increasing per table, as DynamoDB's
//! are; putting a document equal to the current one (as JSON) changes nothing and answers the
//! current revision. `ExpectedRevisionId` makes a put or delete conditional (`NO_POLICY`: only if
//! there is none); a mismatch is PolicyNotFoundException, with DynamoDB's messages. DynamoDB's
//! eventual consistency (a Get that lags a Put by a second or two, the 15-second window between
//! two changes of one table's policy) is not reproduced: a change is visible, and enforced, at once.

use serde::Deserialize;
use serde_json::{Value, json};

use super::update_table::modify_table;
use crate::access::Principal;
use crate::access::resource::{Attached, StoredPolicy, check_document};
use crate::catalog::TableMeta;
use crate::error::{DynamoError, Violations};
use crate::{Service, access};

/// `ExpectedRevisionId` for "only if the resource has no policy".
const NO_POLICY: &str = "NO_POLICY";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetResourcePolicyInput {
    resource_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutResourcePolicyInput {
    resource_arn: Option<String>,
    policy: Option<String>,
    expected_revision_id: Option<String>,
    confirm_remove_self_resource_access: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeleteResourcePolicyInput {
    resource_arn: Option<String>,
    expected_revision_id: Option<String>,
}

/// What a resource ARN names: a table, or one of its streams by label.
struct Target<'a> {
    arn: &'a str,
    table: &'a str,
    stream: Option<&'a str>,
}

impl Target<'_> {
    fn attached(&self) -> Attached {
        match self.stream {
            Some(_) => Attached::Stream,
            None => Attached::Table,
        }
    }
}

fn invalid(message: String) -> DynamoError {
    DynamoError::validation(format!(
        "One or more parameter values were invalid: {message}"
    ))
}

/// Field constraints, then the ARN's form and what it names, as DynamoDB checks them.
fn check_fields(
    arn: Option<&str>,
    policy: Option<Option<&str>>,
    expected_revision: Option<&str>,
) -> Result<(), DynamoError> {
    let mut violations = Violations::new();
    violations.required_length("resourceArn", arn, 1, 1283);
    if let Some(None) = policy {
        violations.null("policy");
    }
    if let Some(revision) = expected_revision {
        violations.length("expectedRevisionId", revision, 1, 255);
    }
    violations.into_result()
}

/// Reads `arn:aws:dynamodb:<region>:<account>:table/<name>[/stream/<label>]`.
fn target<'a>(service: &Service, arn: &'a str) -> Result<Target<'a>, DynamoError> {
    if !arn.starts_with("arn:") {
        return Err(invalid(format!("ARNs must start with 'arn:': {arn}")));
    }
    let not_dynamodb = || {
        invalid(format!(
            "Provided Arn is not a DynamoDB resource arn: {arn}"
        ))
    };
    let invalid_arn = || invalid(format!("Invalid resource Arn: {arn}"));
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, partition, service_name, region, account, resource] = parts[..] else {
        return Err(invalid_arn());
    };
    if service_name != "dynamodb" {
        return Err(not_dynamodb());
    }
    if partition != "aws" || region != service.config.region {
        return Err(invalid_arn());
    }
    if account != service.config.account {
        return Err(DynamoError::validation(
            "This action is only supported by accounts that match the resource owner\u{2019}s account.",
        ));
    }
    let path = resource.strip_prefix("table/").ok_or_else(not_dynamodb)?;
    let (table, rest) = path.split_once('/').unwrap_or((path, ""));
    let stream = match rest {
        "" => None,
        _ if rest.starts_with("index/") => {
            return Err(invalid(format!(
                "Invalid resource arn provided, only table or stream is accepted. Provided resource arn: {arn}"
            )));
        }
        _ => Some(rest.strip_prefix("stream/").ok_or_else(not_dynamodb)?),
    };
    let mut violations = Violations::new();
    violations.name("tableName", Some(table));
    if violations.into_result().is_err() {
        return Err(invalid_arn());
    }
    Ok(Target { arn, table, stream })
}

/// The table the target belongs to; a stream it names must be one of the table's.
fn lookup(service: &Service, target: &Target) -> Result<std::sync::Arc<TableMeta>, DynamoError> {
    let meta = service.catalog.get(target.table)?.ok_or_else(|| {
        DynamoError::ResourceNotFound(format!(
            "Requested resource not found: Table: {} not found",
            target.table
        ))
    })?;
    if let Some(label) = target.stream
        && !meta.streams.iter().any(|s| s.label == label)
    {
        return Err(DynamoError::ResourceNotFound(format!(
            "Requested resource not found: Stream: {label} not found for Table: {}",
            target.table
        )));
    }
    Ok(meta)
}

fn current<'m>(meta: &'m TableMeta, target: &Target) -> Option<&'m StoredPolicy> {
    meta.resource_policies
        .iter()
        .find(|p| p.resource == target.arn)
}

fn policy_not_found(detail: String) -> DynamoError {
    DynamoError::PolicyNotFound(format!(
        "Resource-based policy not found for the provided ResourceArn: {detail}"
    ))
}

/// DynamoDB's check of `ExpectedRevisionId` against the current policy.
fn check_expected(
    expected: Option<&str>,
    current: Option<&StoredPolicy>,
    table: &str,
) -> Result<(), DynamoError> {
    match (expected, current) {
        (None, _) | (Some(NO_POLICY), None) => Ok(()),
        (Some(NO_POLICY), Some(current)) => Err(policy_not_found(format!(
            "Requested policy update expecting none to be present for table {table}, but a policy exists with revision id {}.",
            current.revision
        ))),
        (Some(expected), Some(current)) if expected == current.revision => Ok(()),
        (Some(expected), Some(current)) => Err(policy_not_found(format!(
            "Requested update for policy with revision id {expected}, but the policy associated to target table {table} has revision id {}.",
            current.revision
        ))),
        (Some(expected), None) => Err(policy_not_found(format!(
            "Requested update for policy with revision id {expected}, but table {table} has no associated policy."
        ))),
    }
}

/// The next revision of a table's policies: now in milliseconds, after every revision it has.
fn next_revision(meta: &TableMeta, now_ms: u64) -> String {
    let latest = meta
        .resource_policies
        .iter()
        .filter_map(|p| p.revision.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    now_ms.max(latest + 1).to_string()
}

fn now_ms() -> u64 {
    (super::now() * 1000.0) as u64
}

pub(crate) fn get_resource_policy(
    service: &Service,
    input: GetResourcePolicyInput,
) -> Result<Value, DynamoError> {
    check_fields(input.resource_arn.as_deref(), None, None)?;
    let target = target(service, input.resource_arn.as_deref().unwrap_or_default())?;
    let meta = lookup(service, &target)?;
    let policy = current(&meta, &target).ok_or_else(|| policy_not_found(target.arn.into()))?;
    Ok(json!({ "Policy": policy.document, "RevisionId": policy.revision }))
}

pub(crate) async fn put_resource_policy(
    service: &Service,
    input: PutResourcePolicyInput,
    caller: Option<&Principal>,
) -> Result<Value, DynamoError> {
    let expected = input.expected_revision_id.as_deref();
    check_fields(
        input.resource_arn.as_deref(),
        Some(input.policy.as_deref()),
        expected,
    )?;
    let target = target(service, input.resource_arn.as_deref().unwrap_or_default())?;
    lookup(service, &target)?;
    let document = input.policy.unwrap_or_default();
    let policy = check_document(&document, target.attached())?;
    if let Some(caller) = caller
        && input.confirm_remove_self_resource_access != Some(true)
        && access::locks_out(service, &policy, target.arn, caller)
    {
        return Err(DynamoError::AccessDenied(
            "The new resource policy will not allow you to update the resource policy in the future."
                .into(),
        ));
    }
    let lookup = || lookup(service, &target);
    modify_table(service, lookup, |meta| {
        let existing = current(meta, &target);
        check_expected(expected, existing, target.table)?;
        if let Some(existing) = existing.filter(|p| p.same_document(&document)) {
            return Ok((None, json!({ "RevisionId": existing.revision })));
        }
        let revision = next_revision(meta, now_ms());
        let mut updated = meta.clone();
        updated
            .resource_policies
            .retain(|p| p.resource != target.arn);
        updated.resource_policies.push(StoredPolicy::new(
            target.arn.to_owned(),
            document.clone(),
            revision.clone(),
        ));
        Ok((Some(updated), json!({ "RevisionId": revision })))
    })
    .await
}

pub(crate) async fn delete_resource_policy(
    service: &Service,
    input: DeleteResourcePolicyInput,
) -> Result<Value, DynamoError> {
    let expected = input.expected_revision_id.as_deref();
    check_fields(input.resource_arn.as_deref(), None, expected)?;
    let target = target(service, input.resource_arn.as_deref().unwrap_or_default())?;
    let lookup = || lookup(service, &target);
    modify_table(service, lookup, |meta| {
        let existing = current(meta, &target);
        check_expected(expected.filter(|e| *e != NO_POLICY), existing, target.table)?;
        // Deleting where there is no policy is a success that changes nothing, as in DynamoDB.
        let Some(existing) = existing else {
            return Ok((None, json!({})));
        };
        let mut updated = meta.clone();
        updated
            .resource_policies
            .retain(|p| p.resource != target.arn);
        Ok((Some(updated), json!({ "RevisionId": existing.revision })))
    })
    .await
}

/// CreateTable's ResourcePolicy, checked as PutResourcePolicy checks it, as the table's first
/// revision.
pub(crate) fn for_new_table(
    arn: &str,
    document: Option<&str>,
    created: f64,
) -> Result<Vec<StoredPolicy>, DynamoError> {
    let Some(document) = document else {
        return Ok(Vec::new());
    };
    check_document(document, Attached::Table)?;
    let revision = ((created * 1000.0) as u64).to_string();
    Ok(vec![StoredPolicy::new(
        arn.to_owned(),
        document.to_owned(),
        revision,
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(revision: &str) -> StoredPolicy {
        StoredPolicy::new("arn".into(), "{}".into(), revision.into())
    }

    fn message(result: Result<(), DynamoError>) -> String {
        result.unwrap_err().message().unwrap()
    }

    #[test]
    fn expected_revisions_follow_dynamodb() {
        let current = stored("1700000000001");
        assert!(check_expected(None, Some(&current), "t").is_ok());
        assert!(check_expected(Some("1700000000001"), Some(&current), "t").is_ok());
        assert!(check_expected(Some(NO_POLICY), None, "t").is_ok());
        assert_eq!(
            message(check_expected(Some(NO_POLICY), Some(&current), "t")),
            "Resource-based policy not found for the provided ResourceArn: Requested policy update expecting none to be present for table t, but a policy exists with revision id 1700000000001."
        );
        assert_eq!(
            message(check_expected(Some("1"), Some(&current), "t")),
            "Resource-based policy not found for the provided ResourceArn: Requested update for policy with revision id 1, but the policy associated to target table t has revision id 1700000000001."
        );
        assert_eq!(
            message(check_expected(Some("1"), None, "t")),
            "Resource-based policy not found for the provided ResourceArn: Requested update for policy with revision id 1, but table t has no associated policy."
        );
    }
}
