//! Resource-based policies: the documents attached to a table or to one of its streams
//! (PutResourcePolicy, CreateTable's ResourcePolicy), kept in the table's metadata, and how
//! authorization finds the one that governs a permission.
//!
//! A document is checked when it is attached, with DynamoDB's messages for what DynamoDB refuses
//! (size, JSON, empty Statement, a missing Resource or Principal, repeated Sids, an Allow to
//! everyone, actions that do not apply to the resource) and then read by [`Policy::parse_resource`],
//! which refuses what Haven could not enforce. The parsed policy is cached beside the stored text,
//! so a request under `--auth` does not parse JSON again.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Policy;
use crate::{DynamoError, Service};

/// DynamoDB's size limit for one policy document, whitespace included.
pub(crate) const MAX_POLICY_BYTES: usize = 20 * 1024;

/// The actions of DynamoDB Streams: the only ones a stream's policy may name, and ones a
/// table's policy may not.
const STREAM_ACTIONS: [&str; 3] = [
    "dynamodb:describestream",
    "dynamodb:getrecords",
    "dynamodb:getshariterator",
];

/// A policy attached to a table or to one of its streams.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPolicy {
    /// The ARN the policy is attached to: the table's, or one of its streams'.
    pub resource: String,
    /// The document as the client sent it.
    pub document: String,
    /// The revision: the change's time in milliseconds, as DynamoDB's revisions are.
    pub revision: String,
    #[serde(skip)]
    parsed: OnceLock<Option<Arc<Policy>>>,
}

impl PartialEq for StoredPolicy {
    fn eq(&self, other: &StoredPolicy) -> bool {
        (&self.resource, &self.document, &self.revision)
            == (&other.resource, &other.document, &other.revision)
    }
}

impl StoredPolicy {
    pub(crate) fn new(resource: String, document: String, revision: String) -> StoredPolicy {
        StoredPolicy {
            resource,
            document,
            revision,
            parsed: OnceLock::new(),
        }
    }

    /// The parsed policy (None only if a stored document no longer parses, which then grants
    /// nothing and denies nothing).
    fn policy(&self) -> Option<Arc<Policy>> {
        let parse = || {
            let document = serde_json::from_str(&self.document).ok()?;
            Policy::parse_resource(document).ok().map(Arc::new)
        };
        self.parsed.get_or_init(parse).clone()
    }

    /// Whether `document` says the same as the stored one (JSON equality: whitespace and member
    /// order do not make a new revision).
    pub(crate) fn same_document(&self, document: &str) -> bool {
        let parse = |text: &str| serde_json::from_str::<Value>(text).ok();
        parse(&self.document).is_some_and(|stored| Some(stored) == parse(document))
    }
}

/// What a policy is attached to: the actions it may name differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attached {
    Table,
    Stream,
}

fn invalid_document(message: &str) -> DynamoError {
    DynamoError::validation(format!(
        "One or more parameter values were invalid: Invalid policy document: {message}"
    ))
}

/// Checks a document as DynamoDB does when it is attached, and reads it.
pub(crate) fn check_document(text: &str, attached: Attached) -> Result<Arc<Policy>, DynamoError> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(DynamoError::validation(format!(
            "One or more parameter values were invalid: Maximum policy size of {MAX_POLICY_BYTES} bytes exceeded"
        )));
    }
    let document: Value = serde_json::from_str(text)
        .map_err(|_| invalid_document("This policy contains invalid Json"))?;
    let statements = match &document["Statement"] {
        Value::Array(list) => list.iter().collect(),
        single @ Value::Object(_) => vec![single],
        _ => Vec::new(),
    };
    if statements.is_empty() {
        return Err(invalid_document(
            "Could not parse the policy: Statement is empty!",
        ));
    }
    check_statements(&statements, attached)?;
    let policy = Policy::parse_resource(document).map_err(|message| {
        if message.starts_with("Invalid principal") {
            DynamoError::validation(format!(
                "One or more parameter values were invalid: {message}"
            ))
        } else {
            invalid_document(&message)
        }
    })?;
    Ok(Arc::new(policy))
}

/// DynamoDB's checks of the statements, in the order it reports them.
fn check_statements(statements: &[&Value], attached: Attached) -> Result<(), DynamoError> {
    for field in ["Resource", "Principal"] {
        if statements.iter().any(|s| s.get(field).is_none()) {
            return Err(invalid_document(&format!("Missing required field {field}")));
        }
    }
    let sids: Vec<&str> = statements
        .iter()
        .filter_map(|s| s["Sid"].as_str())
        .collect();
    if sids
        .iter()
        .enumerate()
        .any(|(i, sid)| sids[..i].contains(sid))
    {
        return Err(invalid_document(
            "The Statement Ids in the policy are not unique",
        ));
    }
    let invalid: Vec<String> = statements
        .iter()
        .flat_map(|s| actions(s))
        .filter(|action| {
            let stream_action = STREAM_ACTIONS.contains(&action.to_ascii_lowercase().as_str());
            let wildcard = action.contains('*');
            !wildcard && stream_action != (attached == Attached::Stream)
        })
        .map(|action| format!("\"{action}\""))
        .collect();
    if !invalid.is_empty() {
        return Err(invalid_document(&format!(
            "The following action names are invalid: {}",
            invalid.join(", ")
        )));
    }
    if statements.iter().any(|s| grants_everyone(s)) {
        return Err(DynamoError::validation(
            "Resource-based policy grants unbounded access in one or more elements. Please revise the policy to ensure least-privilege form of access",
        ));
    }
    Ok(())
}

fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(list) => list
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// An Allow, without a condition, to `*` or `{"AWS": "*"}`.
fn grants_everyone(statement: &Value) -> bool {
    let everyone = |v: &Value| match v {
        Value::String(s) => s == "*",
        Value::Array(list) => list.iter().any(|p| p.as_str() == Some("*")),
        _ => false,
    };
    let principal = &statement["Principal"];
    statement["Effect"] == "Allow"
        && statement.get("Condition").is_none()
        && (everyone(principal) || everyone(&principal["AWS"]))
}

/// The resource policy governing a permission on `resource` (a table, index or stream ARN of
/// this service): an index's is its table's; a stream's is the stream's own.
pub(crate) fn governing(service: &Service, resource: &str) -> Option<Arc<Policy>> {
    let config = &service.config;
    let prefix = format!(
        "arn:aws:dynamodb:{}:{}:table/",
        config.region, config.account
    );
    let path = resource.strip_prefix(&prefix)?;
    let (table, rest) = path.split_once('/').unwrap_or((path, ""));
    // A storage failure reads as "no resource policy": the key's own policy still decides.
    let meta = service.catalog.get(table).ok()??;
    if meta.resource_policies.is_empty() {
        return None;
    }
    let attached_to = match rest.strip_prefix("stream/") {
        Some(label) => format!("{}/stream/{label}", meta.arn),
        None => meta.arn.clone(),
    };
    let stored = meta
        .resource_policies
        .iter()
        .find(|p| p.resource == attached_to)?;
    stored.policy()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(text: &str, attached: Attached) -> String {
        check_document(text, attached)
            .unwrap_err()
            .message()
            .unwrap()
    }

    const PREFIX: &str = "One or more parameter values were invalid: ";

    #[test]
    fn documents_are_refused_with_dynamodb_messages() {
        let table = Attached::Table;
        let big = format!(
            r#"{{"Statement": [{{"Effect": "Deny", "Principal": "*", "Action": "dynamodb:*", "Resource": "*"}}]{}}}"#,
            " ".repeat(MAX_POLICY_BYTES)
        );
        assert_eq!(
            refusal(&big, table),
            format!("{PREFIX}Maximum policy size of 20480 bytes exceeded")
        );
        for text in ["", "{not json"] {
            assert_eq!(
                refusal(text, table),
                format!("{PREFIX}Invalid policy document: This policy contains invalid Json")
            );
        }
        assert_eq!(
            refusal(r#"{"Version": "2012-10-17", "Statement": []}"#, table),
            format!(
                "{PREFIX}Invalid policy document: Could not parse the policy: Statement is empty!"
            )
        );
        assert_eq!(
            refusal(
                r#"{"Statement": {"Effect": "Deny", "Principal": "*", "Action": "dynamodb:*"}}"#,
                table
            ),
            format!("{PREFIX}Invalid policy document: Missing required field Resource")
        );
        assert_eq!(
            refusal(
                r#"{"Statement": [{"Sid": "a", "Effect": "Deny", "Principal": "*", "Action": "dynamodb:*", "Resource": "*"},
                                  {"Sid": "a", "Effect": "Deny", "Principal": "*", "Action": "dynamodb:*", "Resource": "*"}]}"#,
                table
            ),
            format!(
                "{PREFIX}Invalid policy document: The Statement Ids in the policy are not unique"
            )
        );
        assert_eq!(
            refusal(
                r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": ["dynamodb:GetRecords", "dynamodb:GetItem"], "Resource": "*"}}"#,
                table
            ),
            format!(
                "{PREFIX}Invalid policy document: The following action names are invalid: \"dynamodb:GetRecords\""
            )
        );
        assert_eq!(
            refusal(
                r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "dynamodb:GetItem", "Resource": "*"}}"#,
                Attached::Stream
            ),
            format!(
                "{PREFIX}Invalid policy document: The following action names are invalid: \"dynamodb:GetItem\""
            )
        );
        assert_eq!(
            refusal(
                r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "dynamodb:GetItem", "Resource": "*"}}"#,
                table
            ),
            "Resource-based policy grants unbounded access in one or more elements. Please revise the policy to ensure least-privilege form of access"
        );
        assert_eq!(
            refusal(
                r#"{"Statement": {"Effect": "Allow", "Principal": {"Service": "x"}, "Action": "dynamodb:GetItem", "Resource": "*"}}"#,
                table
            ),
            format!("{PREFIX}Invalid principal in policy document.")
        );
    }

    #[test]
    fn a_valid_document_is_read() {
        let text = r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "dynamodb:DeleteItem", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:user/bob"]},
             "Action": "dynamodb:*", "Resource": "*"}]}"#;
        assert!(check_document(text, Attached::Table).is_ok());
        let stream = r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": "123456789012"},
            "Action": ["dynamodb:GetRecords", "dynamodb:Get*"], "Resource": "*"}}"#;
        assert!(check_document(stream, Attached::Stream).is_ok());
    }
}
