//! DescribeGlobalTableSettings and UpdateGlobalTableSettings (version 2017.11.29): each region's
//! capacity settings of a legacy global table, read from and written to that region's own table.
//!
//! Why this shape: the settings are nothing but the replicas' table settings (billing mode, the
//! write capacity every replica shares, each replica's read capacity, the same for each global
//! index), so they are read with `Manage::Inspect` (the region's TableDescription) and changed
//! with one UpdateTable per region (`Manage::UpdateTable`), this region first so that a bad
//! value is refused before any region changes. Haven has no auto scaling: the auto scaling
//! settings are described as disabled, and updates of them are refused.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::control::{Manage, ask};
use super::legacy::{Group, check_name, group};
use crate::Service;
use crate::error::{DynamoError, Violations};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateInput {
    global_table_name: Option<String>,
    global_table_billing_mode: Option<String>,
    global_table_provisioned_write_capacity_units: Option<i64>,
    global_table_provisioned_write_capacity_auto_scaling_settings_update: Option<Value>,
    #[serde(default)]
    global_table_global_secondary_index_settings_update: Vec<IndexWrite>,
    #[serde(default)]
    replica_settings_update: Vec<ReplicaSettings>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IndexWrite {
    index_name: Option<String>,
    provisioned_write_capacity_units: Option<i64>,
    provisioned_write_capacity_auto_scaling_settings_update: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReplicaSettings {
    region_name: Option<String>,
    replica_provisioned_read_capacity_units: Option<i64>,
    replica_provisioned_read_capacity_auto_scaling_settings_update: Option<Value>,
    #[serde(default)]
    replica_global_secondary_index_settings_update: Vec<IndexRead>,
    replica_table_class: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IndexRead {
    index_name: Option<String>,
    provisioned_read_capacity_units: Option<i64>,
    provisioned_read_capacity_auto_scaling_settings_update: Option<Value>,
}

pub(crate) async fn describe(
    service: &Service,
    input: super::legacy::NameInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    let name = check_name(&mut violations, input.global_table_name.as_deref());
    violations.into_result()?;
    settings(service, &group(service, &name)?).await
}

/// The DescribeGlobalTableSettings answer: every region's settings, read from that region.
async fn settings(service: &Service, group: &Group) -> Result<Value, DynamoError> {
    let mut replicas = Vec::new();
    for region in group.regions() {
        let table = table_of(service, &group.name, &region).await?;
        replicas.push(replica_settings(&region, group.status(&region), &table));
    }
    Ok(json!({ "GlobalTableName": group.name, "ReplicaSettings": replicas }))
}

async fn table_of(service: &Service, name: &str, region: &str) -> Result<Value, DynamoError> {
    let inspect = Manage::Inspect {
        table_name: name.to_string(),
    };
    let answer = ask(service, region, inspect).await?;
    Ok(answer["Table"].clone())
}

const NO_AUTO_SCALING: fn() -> Value = || json!({ "AutoScalingDisabled": true });

/// A ReplicaSettingsDescription from the region's TableDescription.
fn replica_settings(region: &str, status: &str, table: &Value) -> Value {
    let billing = match table["BillingModeSummary"].is_object() {
        true => table["BillingModeSummary"].clone(),
        false => json!({ "BillingMode": "PROVISIONED" }),
    };
    let throughput = &table["ProvisionedThroughput"];
    let indexes: Vec<Value> = table["GlobalSecondaryIndexes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|index| {
            let throughput = &index["ProvisionedThroughput"];
            json!({
                "IndexName": index["IndexName"],
                "IndexStatus": index["IndexStatus"],
                "ProvisionedReadCapacityUnits": throughput["ReadCapacityUnits"],
                "ProvisionedReadCapacityAutoScalingSettings": NO_AUTO_SCALING(),
                "ProvisionedWriteCapacityUnits": throughput["WriteCapacityUnits"],
                "ProvisionedWriteCapacityAutoScalingSettings": NO_AUTO_SCALING(),
            })
        })
        .collect();
    let mut settings = json!({
        "RegionName": region,
        "ReplicaStatus": status,
        "ReplicaBillingModeSummary": billing,
        "ReplicaProvisionedReadCapacityUnits": throughput["ReadCapacityUnits"],
        "ReplicaProvisionedReadCapacityAutoScalingSettings": NO_AUTO_SCALING(),
        "ReplicaProvisionedWriteCapacityUnits": throughput["WriteCapacityUnits"],
        "ReplicaProvisionedWriteCapacityAutoScalingSettings": NO_AUTO_SCALING(),
        "ReplicaGlobalSecondaryIndexSettings": indexes,
    });
    if table["TableClassSummary"].is_object() {
        settings["ReplicaTableClassSummary"] = table["TableClassSummary"].clone();
    }
    settings
}

pub(crate) async fn update(service: &Service, input: UpdateInput) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    let name = check_name(&mut violations, input.global_table_name.as_deref());
    violations.into_result()?;
    refuse_auto_scaling(&input)?;
    let group = group(service, &name)?;
    let regions = group.regions();
    if let Some(unknown) = input
        .replica_settings_update
        .iter()
        .filter_map(|r| r.region_name.as_ref())
        .find(|r| !regions.contains(r))
    {
        return Err(DynamoError::ReplicaNotFound(format!(
            "Replica not found in region {unknown}"
        )));
    }
    let local = service.config.region.clone();
    let order = std::iter::once(&local).chain(regions.iter().filter(|r| **r != local));
    for region in order {
        let table = table_of(service, &name, region).await?;
        let replica = input
            .replica_settings_update
            .iter()
            .find(|r| r.region_name.as_deref() == Some(region.as_str()));
        if let Some(request) = update_request(&name, &input, replica, &table) {
            ask(service, region, Manage::UpdateTable { request }).await?;
        }
    }
    settings(service, &group).await
}

fn refuse_auto_scaling(input: &UpdateInput) -> Result<(), DynamoError> {
    let any = input
        .global_table_provisioned_write_capacity_auto_scaling_settings_update
        .is_some()
        || input
            .global_table_global_secondary_index_settings_update
            .iter()
            .any(|i| {
                i.provisioned_write_capacity_auto_scaling_settings_update
                    .is_some()
            })
        || input.replica_settings_update.iter().any(|r| {
            r.replica_provisioned_read_capacity_auto_scaling_settings_update
                .is_some()
                || r.replica_global_secondary_index_settings_update
                    .iter()
                    .any(|i| {
                        i.provisioned_read_capacity_auto_scaling_settings_update
                            .is_some()
                    })
        });
    if any {
        return Err(DynamoError::validation(
            "One or more parameter values were invalid: Auto scaling settings are not supported by Haven (it has no auto scaling)",
        ));
    }
    Ok(())
}

/// The UpdateTable request that gives one region's table (described by `table`) the requested
/// settings; None when nothing changes there.
fn update_request(
    name: &str,
    input: &UpdateInput,
    replica: Option<&ReplicaSettings>,
    table: &Value,
) -> Option<Value> {
    let mut request = Map::new();
    if let Some(mode) = &input.global_table_billing_mode {
        request.insert("BillingMode".into(), json!(mode));
    }
    if let Some(class) = replica.and_then(|r| r.replica_table_class.as_ref()) {
        request.insert("TableClass".into(), json!(class));
    }
    let read = replica.and_then(|r| r.replica_provisioned_read_capacity_units);
    let write = input.global_table_provisioned_write_capacity_units;
    if read.is_some() || write.is_some() {
        let current = &table["ProvisionedThroughput"];
        request.insert(
            "ProvisionedThroughput".into(),
            throughput(current, read, write),
        );
    }
    let indexes = index_updates(input, replica, table);
    if !indexes.is_empty() {
        request.insert("GlobalSecondaryIndexUpdates".into(), Value::Array(indexes));
    }
    if request.is_empty() {
        return None;
    }
    request.insert("TableName".into(), json!(name));
    Some(Value::Object(request))
}

/// `{"ReadCapacityUnits", "WriteCapacityUnits"}`: the new value where one is given, else the
/// current one.
fn throughput(current: &Value, read: Option<i64>, write: Option<i64>) -> Value {
    json!({
        "ReadCapacityUnits": read.map_or(current["ReadCapacityUnits"].clone(), Value::from),
        "WriteCapacityUnits": write.map_or(current["WriteCapacityUnits"].clone(), Value::from),
    })
}

/// One `{"Update": ...}` per global index whose write (every region) or read (this region)
/// capacity is set.
fn index_updates(
    input: &UpdateInput,
    replica: Option<&ReplicaSettings>,
    table: &Value,
) -> Vec<Value> {
    let reads = replica.map_or(&[][..], |r| {
        &r.replica_global_secondary_index_settings_update
    });
    let mut names: Vec<&str> = input
        .global_table_global_secondary_index_settings_update
        .iter()
        .filter_map(|i| i.index_name.as_deref())
        .chain(reads.iter().filter_map(|i| i.index_name.as_deref()))
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let current = table["GlobalSecondaryIndexes"]
                .as_array()
                .and_then(|all| all.iter().find(|i| i["IndexName"] == name))
                .map_or(Value::Null, |i| i["ProvisionedThroughput"].clone());
            let write = input
                .global_table_global_secondary_index_settings_update
                .iter()
                .find(|i| i.index_name.as_deref() == Some(name))
                .and_then(|i| i.provisioned_write_capacity_units);
            let read = reads
                .iter()
                .find(|i| i.index_name.as_deref() == Some(name))
                .and_then(|i| i.provisioned_read_capacity_units);
            json!({ "Update": {
                "IndexName": name,
                "ProvisionedThroughput": throughput(&current, read, write),
            }})
        })
        .collect()
}
