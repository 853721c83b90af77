//! Global tables of version 2017.11.29: CreateGlobalTable, UpdateGlobalTable,
//! DescribeGlobalTable and ListGlobalTables (their settings are in `settings.rs`).
//!
//! Why this shape: AWS's legacy version joins tables that already exist, one per region, into
//! a replication group, where the current version creates the replicas itself. Haven keeps one
//! replication path for both: a legacy global table is a table whose `GlobalTable` has
//! `legacy_since_ms` set, shipped and received exactly as one made by UpdateTable's
//! ReplicaUpdates. What is legacy is only the control plane: each region's table is inspected
//! first (AWS's rules: same name, same key schema and global indexes, streams with
//! NEW_AND_OLD_IMAGES, no items) and then told to join (`control::Manage`). The global table is
//! described from the metadata of the region asked, which must itself be in the group.

use serde::Deserialize;
use serde_json::{Value, json};

use super::GlobalTable;
use super::control::{Manage, ask};
use crate::Service;
use crate::error::{DynamoError, Violations};
use crate::streams::now_ms;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RegionMember {
    region_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateInput {
    global_table_name: Option<String>,
    replication_group: Option<Vec<RegionMember>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct NameInput {
    pub global_table_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateInput {
    global_table_name: Option<String>,
    replica_updates: Option<Vec<ReplicaUpdate>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReplicaUpdate {
    create: Option<RegionMember>,
    delete: Option<RegionMember>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListInput {
    exclusive_start_global_table_name: Option<String>,
    limit: Option<i64>,
    region_name: Option<String>,
}

/// A legacy global table as the region asked holds it.
pub(crate) struct Group {
    pub name: String,
    pub global: GlobalTable,
}

impl Group {
    /// Every region of the group, this one included, in name order.
    pub fn regions(&self) -> Vec<String> {
        let mut regions: Vec<String> = self
            .global
            .replicas
            .iter()
            .map(|r| r.region.clone())
            .collect();
        regions.push(self.global.region.clone());
        regions.sort();
        regions
    }

    /// The status of `region`'s replica (this region's own: ACTIVE).
    pub fn status(&self, region: &str) -> &str {
        self.global
            .replicas
            .iter()
            .find(|r| r.region == region)
            .map_or("ACTIVE", |r| r.status.as_str())
    }

    /// The GlobalTableDescription.
    fn describe(&self, service: &Service) -> Value {
        let regions = self.regions();
        let creating = regions.iter().any(|r| self.status(r) != "ACTIVE");
        describe_group(service, &self.name, &regions, self.since_ms(), creating)
    }

    fn since_ms(&self) -> u64 {
        self.global.legacy_since_ms.unwrap_or_default()
    }
}

fn describe_group(
    service: &Service,
    name: &str,
    regions: &[String],
    since_ms: u64,
    creating: bool,
) -> Value {
    let group: Vec<Value> = regions.iter().map(|r| json!({ "RegionName": r })).collect();
    json!({
        "GlobalTableName": name,
        "GlobalTableArn": format!("arn:aws:dynamodb::{}:global-table/{name}", service.config.account),
        "CreationDateTime": since_ms as f64 / 1000.0,
        "GlobalTableStatus": if creating { "CREATING" } else { "ACTIVE" },
        "ReplicationGroup": group,
    })
}

/// The legacy global table `name` of this region, or GlobalTableNotFoundException.
pub(crate) fn group(service: &Service, name: &str) -> Result<Group, DynamoError> {
    let meta = service.catalog.get(name)?;
    let global = meta
        .and_then(|meta| meta.global.clone())
        .filter(|g| g.legacy_since_ms.is_some());
    let global = global.ok_or_else(|| {
        DynamoError::GlobalTableNotFound(format!("Global table not found: {name}"))
    })?;
    Ok(Group {
        name: name.to_string(),
        global,
    })
}

/// Checks the global table name member (`globalTableName`).
pub(crate) fn check_name(violations: &mut Violations, name: Option<&str>) -> String {
    violations.name("globalTableName", name);
    name.unwrap_or_default().to_string()
}

/// The regions of a replication group, each checked (`replicationGroup.N.member.regionName`).
fn regions_of(violations: &mut Violations, members: &[RegionMember]) -> Vec<String> {
    let mut regions = Vec::new();
    for (i, member) in members.iter().enumerate() {
        match &member.region_name {
            Some(region) => regions.push(region.clone()),
            None => violations.null(&format!("replicationGroup.{}.member.regionName", i + 1)),
        }
    }
    regions
}

pub(crate) async fn create(service: &Service, input: CreateInput) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    let name = check_name(&mut violations, input.global_table_name.as_deref());
    if input.replication_group.is_none() {
        violations.null("replicationGroup");
    }
    let members = input.replication_group.as_deref().unwrap_or_default();
    let regions = regions_of(&mut violations, members);
    violations.into_result()?;
    let local = service.config.region.clone();
    check_group(&regions, &local)?;
    let reference = eligible(service, &name, &local, None).await?;
    for region in regions.iter().filter(|r| **r != local) {
        eligible(service, &name, region, Some(&reference)).await?;
    }
    let since_ms = now_ms();
    join_all(service, &name, &regions, since_ms).await?;
    let description = group(service, &name)?.describe(service);
    Ok(json!({ "GlobalTableDescription": description }))
}

/// A replication group must name this region, and each region once.
fn check_group(regions: &[String], local: &str) -> Result<(), DynamoError> {
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = regions.iter().find(|r| !seen.insert(r.as_str())) {
        return Err(DynamoError::validation(format!(
            "One or more parameter values were invalid: Region {twice} appears more than once in the replication group"
        )));
    }
    if !regions.iter().any(|r| r == local) {
        return Err(DynamoError::validation(format!(
            "One or more parameter values were invalid: The replication group must include the region the request is sent to ({local})"
        )));
    }
    Ok(())
}

/// Tells every region of `regions` (this one last) that they hold the global table together.
async fn join_all(
    service: &Service,
    name: &str,
    regions: &[String],
    since_ms: u64,
) -> Result<(), DynamoError> {
    let local = &service.config.region;
    let others = regions.iter().filter(|r| *r != local);
    for region in others.chain(regions.iter().filter(|r| *r == local)) {
        let join = Manage::Join {
            table_name: name.to_string(),
            regions: regions.to_vec(),
            since_ms,
        };
        ask(service, region, join).await?;
    }
    Ok(())
}

/// Checks that `region` holds a table `name` that may join a global table (AWS's rules), the
/// same as `reference` (this region's) in keys; answers its TableDescription.
async fn eligible(
    service: &Service,
    name: &str,
    region: &str,
    reference: Option<&Value>,
) -> Result<Value, DynamoError> {
    let inspect = Manage::Inspect {
        table_name: name.to_string(),
    };
    let answer = ask(service, region, inspect).await?;
    let table = &answer["Table"];
    if table.is_null() {
        return Err(DynamoError::TableNotFound(format!(
            "Table: {name} not found in region {region}"
        )));
    }
    let invalid = |why: &str| {
        Err(DynamoError::validation(format!(
            "One or more parameter values were invalid: Table {name} in region {region} {why}"
        )))
    };
    if table.get("GlobalTableVersion").is_some() {
        return Err(DynamoError::GlobalTableAlreadyExists(format!(
            "Table {name} in region {region} is already part of a global table"
        )));
    }
    let stream = &table["StreamSpecification"];
    if stream["StreamEnabled"] != true || stream["StreamViewType"] != "NEW_AND_OLD_IMAGES" {
        return invalid(
            "must have DynamoDB Streams enabled with StreamViewType NEW_AND_OLD_IMAGES",
        );
    }
    if answer["Empty"] != true {
        return invalid("must be empty to join a global table");
    }
    if reference.is_some_and(|reference| keys(table) != keys(reference)) {
        return invalid(
            "must have the same key schema and global secondary indexes (names and keys) as the other replicas",
        );
    }
    Ok(table.clone())
}

/// What replicas must share: the key schema and attribute types, and each global index's name
/// and key schema.
fn keys(table: &Value) -> Value {
    let indexes: Vec<Value> = table["GlobalSecondaryIndexes"]
        .as_array()
        .map(|indexes| {
            indexes
                .iter()
                .map(|i| json!([i["IndexName"], i["KeySchema"]]))
                .collect()
        })
        .unwrap_or_default();
    let mut definitions: Vec<Value> = table["AttributeDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    definitions.sort_by_key(|d| d["AttributeName"].to_string());
    let keyed: Vec<&Value> = definitions
        .iter()
        .filter(|d| {
            table["KeySchema"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k["AttributeName"] == d["AttributeName"]))
        })
        .collect();
    json!([table["KeySchema"], keyed, indexes])
}

pub(crate) async fn update(service: &Service, input: UpdateInput) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    let name = check_name(&mut violations, input.global_table_name.as_deref());
    let updates = input.replica_updates.as_deref().unwrap_or_default();
    if input.replica_updates.is_none() {
        violations.null("replicaUpdates");
    }
    violations.into_result()?;
    let current = group(service, &name)?;
    let mut regions = current.regions();
    let mut deleted = Vec::new();
    let reference = eligible_reference(service, &name).await?;
    for update in updates {
        match (&update.create, &update.delete) {
            (Some(create), None) => {
                let region = member_region(create, "create")?;
                if regions.contains(&region) {
                    return Err(DynamoError::ReplicaAlreadyExists(format!(
                        "Replica already exists in region {region}"
                    )));
                }
                eligible(service, &name, &region, Some(&reference)).await?;
                regions.push(region);
            }
            (None, Some(delete)) => {
                let region = member_region(delete, "delete")?;
                if !regions.contains(&region) {
                    return Err(DynamoError::ReplicaNotFound(format!(
                        "Replica not found in region {region}"
                    )));
                }
                regions.retain(|r| *r != region);
                deleted.push(region);
            }
            _ => {
                return Err(DynamoError::validation(
                    "One or more parameter values were invalid: One of ReplicaUpdate.Create or ReplicaUpdate.Delete must be specified",
                ));
            }
        }
    }
    regions.sort();
    join_all(service, &name, &regions, current.since_ms()).await?;
    for region in &deleted {
        let delete = Manage::Delete {
            table_name: name.clone(),
        };
        ask(service, region, delete).await?;
    }
    let description = match group(service, &name) {
        Ok(group) => group.describe(service),
        Err(_) => describe_group(service, &name, &regions, current.since_ms(), false),
    };
    Ok(json!({ "GlobalTableDescription": description }))
}

/// This region's table as the replicas a new one must match: its TableDescription.
async fn eligible_reference(service: &Service, name: &str) -> Result<Value, DynamoError> {
    let inspect = Manage::Inspect {
        table_name: name.to_string(),
    };
    Ok(ask(service, &service.config.region, inspect).await?["Table"].clone())
}

fn member_region(member: &RegionMember, action: &str) -> Result<String, DynamoError> {
    member.region_name.clone().ok_or_else(|| {
        DynamoError::validation(format!(
            "1 validation error detected: Value null at 'replicaUpdates.1.member.{action}.regionName' failed to satisfy constraint: Member must not be null"
        ))
    })
}

pub(crate) fn describe(service: &Service, input: NameInput) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    let name = check_name(&mut violations, input.global_table_name.as_deref());
    violations.into_result()?;
    Ok(json!({ "GlobalTableDescription": group(service, &name)?.describe(service) }))
}

pub(crate) fn list(service: &Service, input: ListInput) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    if let Some(start) = &input.exclusive_start_global_table_name {
        violations.name("exclusiveStartGlobalTableName", Some(start));
    }
    if let Some(limit) = input.limit {
        violations.range("limit", limit, 1, i64::from(i32::MAX));
    }
    violations.into_result()?;
    let limit = input.limit.unwrap_or(100) as usize;
    service.catalog.refresh()?;
    let mut groups = Vec::new();
    let names = service.catalog.names().into_iter().filter(|name| {
        input
            .exclusive_start_global_table_name
            .as_ref()
            .is_none_or(|start| name > start)
    });
    for name in names {
        let Ok(group) = group(service, &name) else {
            continue;
        };
        let regions = group.regions();
        if input
            .region_name
            .as_ref()
            .is_some_and(|r| !regions.contains(r))
        {
            continue;
        }
        if groups.len() == limit {
            let last = &groups.last().map(|g: &Value| g["GlobalTableName"].clone());
            return Ok(json!({ "GlobalTables": groups, "LastEvaluatedGlobalTableName": last }));
        }
        let group: Vec<Value> = regions.iter().map(|r| json!({ "RegionName": r })).collect();
        groups.push(json!({ "GlobalTableName": name, "ReplicationGroup": group }));
    }
    Ok(json!({ "GlobalTables": groups }))
}
