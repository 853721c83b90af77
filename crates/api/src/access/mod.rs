//! Authorization: which permissions a request needs, and whether the caller's policy and the
//! resource-based policies of what it touches grant them.
//!
//! The server authenticates a request (SigV4) and resolves its access key's policy; it passes both
//! here as a [`Principal`] in the [`RequestContext`](crate::RequestContext). Authorization lives in
//! this crate because it needs what only this crate knows: the members of each operation's
//! request, each table's key schema (for `dynamodb:LeadingKeys`) and each table's resource policies
//! (`resource`). It runs on the request's JSON before the operation does, so an operation never
//! starts work it is not allowed to do.
//!
//! The permissions follow DynamoDB's IAM actions: each table of a BatchGetItem or BatchWriteItem
//! needs that batch action on the table; each item of a transaction needs its own action
//! (a TransactWriteItems Put needs `dynamodb:PutItem` on its table, a ConditionCheck
//! `dynamodb:ConditionCheckItem`); a Query or Scan of an index needs the action on the index ARN;
//! ListTables is on `table/*`; each PartiQL statement (alone, in a batch or in a transaction) needs
//! `dynamodb:PartiQLSelect`, `PartiQLInsert`, `PartiQLUpdate` or `PartiQLDelete` on the table or
//! index it names. DescribeStream, GetShardIterator and GetRecords are on the stream's ARN
//! (GetRecords reads it from the iterator); ListStreams is on `*`.

mod policy;
pub(crate) mod resource;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use crate::ops::Operation;
use crate::{DynamoError, Service};

pub use policy::Policy;
use policy::{Caller, Decision, Permission};

/// Who sent a request, as the server authenticated it.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user named in AccessDeniedException messages: the key's name, or its id when unnamed.
    pub user: String,
    /// The key's policy; a key without one has full access (credentials files from before
    /// policies keep working).
    pub policy: Option<Arc<Policy>>,
}

/// Refuses the request with AccessDeniedException unless every permission it needs is granted.
///
/// Within one account IAM combines a key's own (identity-based) policy with the resource-based
/// policy of the table or stream a permission is on: an explicit Deny in either denies; otherwise
/// an Allow in either allows. A key without a policy has full access, which a resource policy's
/// Deny still restricts.
pub(crate) fn authorize(
    service: &Service,
    operation: Operation,
    request: &Value,
    principal: &Principal,
) -> Result<(), DynamoError> {
    let arn = principal.arn(service);
    let caller = Caller {
        account: &service.config.account,
        arn: &arn,
    };
    let identity = principal.policy.as_deref();
    let needed = Permissions::new(service, false).of(operation, request);
    let governing: Vec<Option<Arc<Policy>>> = needed
        .iter()
        .map(|p| resource::governing(service, &p.resource))
        .collect();
    let with_keys = identity.is_some_and(Policy::uses_leading_keys)
        || governing.iter().flatten().any(|p| p.uses_leading_keys());
    let needed = match with_keys {
        true => Permissions::new(service, true).of(operation, request),
        false => needed,
    };
    for (permission, resource_policy) in needed.iter().zip(&governing) {
        let decide = |policy: Option<&Policy>, default| {
            policy.map_or(default, |p| p.decide_for(Some(caller), permission))
        };
        let by_key = decide(identity, Decision::Allowed);
        let by_resource = decide(resource_policy.as_deref(), Decision::NotAllowed);
        if let Some(reason) = refusal(by_key, by_resource, permission.action) {
            return Err(DynamoError::AccessDenied(format!(
                "User: {arn} is not authorized to perform: dynamodb:{} on resource: {} {reason}",
                permission.action, permission.resource
            )));
        }
    }
    Ok(())
}

/// Why IAM refuses a permission, given what the key's policy and the resource's policy decide
/// (None: granted), in the words of AccessDeniedException.
fn refusal(by_key: Decision, by_resource: Decision, action: &str) -> Option<String> {
    Some(match (by_key, by_resource) {
        (Decision::ExplicitlyDenied, _) => {
            "with an explicit deny in an identity-based policy".into()
        }
        (_, Decision::ExplicitlyDenied) => {
            "with an explicit deny in a resource-based policy".into()
        }
        (Decision::Allowed, _) | (_, Decision::Allowed) => return None,
        _ => format!("because no identity-based policy allows the dynamodb:{action} action"),
    })
}

/// Whether `policy`, attached to `resource`, would explicitly deny `principal` changing that
/// resource's policy again (PutResourcePolicy's self-lockout check).
pub(crate) fn locks_out(
    service: &Service,
    policy: &Policy,
    resource: &str,
    principal: &Principal,
) -> bool {
    let arn = principal.arn(service);
    let caller = Caller {
        account: &service.config.account,
        arn: &arn,
    };
    let permission = Permission {
        action: Operation::PutResourcePolicy.name(),
        resource: resource.to_owned(),
        leading_keys: Vec::new(),
    };
    policy.decide_for(Some(caller), &permission) == Decision::ExplicitlyDenied
}

impl Principal {
    /// The caller's IAM ARN, as resource policies name it and AccessDeniedException words it.
    fn arn(&self, service: &Service) -> String {
        format!("arn:aws:iam::{}:user/{}", service.config.account, self.user)
    }
}

/// The tables a request names (for the audit log), in request order, each once.
pub fn tables(service: &Service, operation: Operation, request: &Value) -> Vec<String> {
    let prefix = Permissions::new(service, false).table_arn("");
    let mut tables: Vec<String> = Vec::new();
    for permission in Permissions::new(service, false).of(operation, request) {
        let Some(path) = permission.resource.strip_prefix(&prefix) else {
            continue;
        };
        let table = path.split('/').next().unwrap_or_default();
        if table != "*" && !tables.iter().any(|t| t == table) {
            tables.push(table.to_owned());
        }
    }
    tables
}

/// Reads the permissions a request needs from its JSON. A member that is missing or of the wrong
/// type adds nothing here: the operation refuses the request for it anyway, with its own error.
struct Permissions<'s> {
    service: &'s Service,
    /// Whether to find the partition keys the request touches (only a LeadingKeys condition
    /// needs them).
    with_keys: bool,
    needed: Vec<Permission>,
}

impl<'s> Permissions<'s> {
    fn new(service: &'s Service, with_keys: bool) -> Self {
        Permissions {
            service,
            with_keys,
            needed: Vec::new(),
        }
    }

    fn of(mut self, operation: Operation, request: &Value) -> Vec<Permission> {
        use Operation::*;
        let table = request.get("TableName").and_then(Value::as_str);
        let action = operation.name();
        match operation {
            GetItem | DeleteItem | UpdateItem => self.items(action, table, [&request["Key"]]),
            PutItem => self.items(action, table, [&request["Item"]]),
            Query => {
                let key = self
                    .with_keys
                    .then(|| crate::ops::query_partition_key(self.service, request))
                    .flatten();
                self.on(action, self.read_target(request), key.into_iter().collect());
            }
            Scan => self.on(action, self.read_target(request), Vec::new()),
            BatchGetItem => self.batch_get(request),
            BatchWriteItem => self.batch_write(request),
            TransactGetItems => self.transaction(request, &[("Get", "GetItem")]),
            TransactWriteItems => self.transaction(
                request,
                &[
                    ("Put", "PutItem"),
                    ("Update", "UpdateItem"),
                    ("Delete", "DeleteItem"),
                    ("ConditionCheck", "ConditionCheckItem"),
                ],
            ),
            // CreateTable with a ResourcePolicy also attaches it (DynamoDB asks for both).
            CreateTable if request.get("ResourcePolicy").is_some() => {
                if let Some(table) = table {
                    self.on(action, Some(self.table_arn(table)), Vec::new());
                    self.on("PutResourcePolicy", Some(self.table_arn(table)), Vec::new());
                }
            }
            CreateTable | DescribeTable | DeleteTable | UpdateTable | UpdateTimeToLive
            | DescribeTimeToLive => {
                if let Some(table) = table {
                    self.on(action, Some(self.table_arn(table)), Vec::new());
                }
            }
            ListTables => self.on(action, Some(self.table_arn("*")), Vec::new()),
            ExecuteStatement => self.statement(request),
            BatchExecuteStatement => {
                for entry in request["Statements"].as_array().into_iter().flatten() {
                    self.statement(entry);
                }
            }
            ExecuteTransaction => {
                for entry in request["TransactStatements"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    self.statement(entry);
                }
            }
            DescribeContributorInsights | UpdateContributorInsights => {
                self.on(action, self.read_target(request), Vec::new());
            }
            TagResource | UntagResource | ListTagsOfResource | GetResourcePolicy
            | PutResourcePolicy | DeleteResourcePolicy => {
                let arn = request.get("ResourceArn").and_then(Value::as_str);
                self.on(action, arn.map(str::to_owned), Vec::new());
            }
            DescribeStream | GetShardIterator => {
                let arn = request.get("StreamArn").and_then(Value::as_str);
                self.on(action, arn.map(str::to_owned), Vec::new());
            }
            GetRecords => {
                let iterator = request.get("ShardIterator").and_then(Value::as_str);
                let arn = iterator.and_then(|text| text.split('|').next());
                self.on(action, arn.map(str::to_owned), Vec::new());
            }
            // Endpoint discovery needs no permission in DynamoDB.
            DescribeEndpoints => {}
            // Account-wide operations, and every operation Haven does not build yet (they do
            // nothing): a permission on `*`, so that a new operation is never open by default.
            _ => self.on(action, Some("*".into()), Vec::new()),
        }
        self.needed
    }

    fn on(&mut self, action: &'static str, resource: Option<String>, leading_keys: Vec<String>) {
        if let Some(resource) = resource {
            self.needed.push(Permission {
                action,
                resource,
                leading_keys,
            });
        }
    }

    /// `action` on `table` for the items (keys or whole items) given.
    fn items<'v>(
        &mut self,
        action: &'static str,
        table: Option<&str>,
        items: impl IntoIterator<Item = &'v Value>,
    ) {
        if let Some(table) = table {
            let keys = self.leading_keys(table, items);
            self.on(action, Some(self.table_arn(table)), keys);
        }
    }

    fn batch_get(&mut self, request: &Value) {
        for (table, entry) in request["RequestItems"].as_object().into_iter().flatten() {
            let keys = entry["Keys"].as_array().into_iter().flatten();
            self.items("BatchGetItem", Some(table), keys);
        }
    }

    fn batch_write(&mut self, request: &Value) {
        for (table, writes) in request["RequestItems"].as_object().into_iter().flatten() {
            let items =
                writes.as_array().into_iter().flatten().flat_map(|write| {
                    [&write["PutRequest"]["Item"], &write["DeleteRequest"]["Key"]]
                });
            self.items(
                "BatchWriteItem",
                Some(table),
                items.filter(|v| !v.is_null()),
            );
        }
    }

    /// Each action of a transaction needs its own item-level permission (`members`: the request
    /// member and the IAM action it needs).
    fn transaction(&mut self, request: &Value, members: &[(&str, &'static str)]) {
        for entry in request["TransactItems"].as_array().into_iter().flatten() {
            for &(member, action) in members {
                let Some(item) = entry.get(member) else {
                    continue;
                };
                let table = item.get("TableName").and_then(Value::as_str);
                let key = if member == "Put" {
                    &item["Item"]
                } else {
                    &item["Key"]
                };
                self.items(action, table, [key]);
            }
        }
    }

    /// A PartiQL statement needs the PartiQL action of its kind (`PartiQLSelect`, also for
    /// EXISTS, `PartiQLInsert`, `PartiQLUpdate`, `PartiQLDelete`) on the table or index it names.
    fn statement(&mut self, entry: &Value) {
        let Some((action, table, index, keys)) =
            crate::partiql::statement_permission(self.service, entry, self.with_keys)
        else {
            return;
        };
        let table = self.table_arn(&table);
        let resource = match index {
            Some(index) => format!("{table}/index/{index}"),
            None => table,
        };
        self.on(action, Some(resource), keys);
    }

    /// The table or index ARN a Query or Scan reads.
    fn read_target(&self, request: &Value) -> Option<String> {
        let table = self.table_arn(request.get("TableName")?.as_str()?);
        Some(match request.get("IndexName").and_then(Value::as_str) {
            Some(index) => format!("{table}/index/{index}"),
            None => table,
        })
    }

    fn table_arn(&self, table: &str) -> String {
        let config = &self.service.config;
        format!(
            "arn:aws:dynamodb:{}:{}:table/{table}",
            config.region, config.account
        )
    }

    /// The partition key values of `items` in `table` (none when the table does not exist or an
    /// item lacks its partition key: a LeadingKeys condition then refuses the request).
    fn leading_keys<'v>(
        &self,
        table: &str,
        items: impl IntoIterator<Item = &'v Value>,
    ) -> Vec<String> {
        if !self.with_keys {
            return Vec::new();
        }
        // A storage failure reads as "no keys", which refuses a request a LeadingKeys rule governs.
        let Ok(Some(meta)) = self.service.catalog.get(table) else {
            return Vec::new();
        };
        let partition = meta.keys().hash().name.clone();
        let keys: Option<Vec<String>> = items
            .into_iter()
            .map(|item| leading_key_text(&item[partition.as_str()]))
            .collect();
        keys.unwrap_or_default()
    }
}

/// The text IAM compares for a partition key value: the string of an S, N or B (base64) value.
pub(crate) fn leading_key_text_of(value: &haven_model::AttributeValue) -> Option<String> {
    use haven_model::AttributeValue::{B, N, S};
    match value {
        S(text) => Some(text.clone()),
        N(number) => Some(number.to_string()),
        B(bytes) => Some(BASE64.encode(bytes)),
        _ => None,
    }
}

/// [`leading_key_text_of`] for a value still in DynamoDB JSON (`{"S": "x"}`).
pub(crate) fn leading_key_text(value: &Value) -> Option<String> {
    let [(_, text)] = value.as_object()?.iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    text.as_str().map(str::to_owned)
}
