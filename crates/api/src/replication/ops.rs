//! The control plane of global tables: UpdateTable's ReplicaUpdates, the Replicas and
//! GlobalTableVersion members of a TableDescription, and the metadata changes the shipper and the
//! receiver make (a replica becoming ACTIVE, a table becoming a replica).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{GLOBAL_TABLE_VERSION, GlobalTable, Replica};
use crate::Service;
use crate::catalog::{Catalog, TableMeta};
use crate::error::DynamoError;
use crate::ops::modify_table;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReplicaUpdate {
    create: Option<RegionInput>,
    update: Option<RegionInput>,
    delete: Option<RegionInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegionInput {
    region_name: Option<String>,
}

/// One validated replica update.
enum Update {
    Create(String),
    Delete(String),
}

fn parse(updates: &[Value]) -> Result<Vec<Update>, DynamoError> {
    updates
        .iter()
        .map(|update| {
            let update: ReplicaUpdate = serde_json::from_value(update.clone())
                .map_err(|e| DynamoError::Serialization(e.to_string()))?;
            let region = |input: &RegionInput| {
                input.region_name.clone().ok_or_else(|| {
                    DynamoError::validation(
                        "1 validation error detected: Value null at 'replicaUpdates.1.member.regionName' failed to satisfy constraint: Member must not be null",
                    )
                })
            };
            match (&update.create, &update.update, &update.delete) {
                (Some(create), None, None) => Ok(Update::Create(region(create)?)),
                (None, None, Some(delete)) => Ok(Update::Delete(region(delete)?)),
                (None, Some(_), None) => Err(DynamoError::validation(
                    "One or more parameter values were invalid: Replica Update is not supported by Haven (it has no per-replica settings)",
                )),
                _ => Err(DynamoError::validation(
                    "One or more parameter values were invalid: One of ReplicationGroupUpdate.Create, ReplicationGroupUpdate.Update, or ReplicationGroupUpdate.Delete must be specified",
                )),
            }
        })
        .collect()
}

/// UpdateTable with ReplicaUpdates: adds replicas (CREATING until the shipper has filled them)
/// or removes them.
pub(crate) async fn update_replicas(
    service: &Service,
    name: &str,
    updates: &[Value],
) -> Result<Value, DynamoError> {
    let updates = parse(updates)?;
    let lookup = || {
        service.catalog.get(name)?.ok_or_else(|| {
            DynamoError::ResourceNotFound(format!(
                "Requested resource not found: Table: {name} not found"
            ))
        })
    };
    let meta = modify_table(service, lookup, |meta| {
        let mut updated = meta.clone();
        for update in &updates {
            apply(service, &mut updated, update)?;
        }
        updated.schema_version += 1;
        Ok((Some(updated.clone()), updated))
    })
    .await?;
    let description = crate::ops::describe(service, &meta, "UPDATING")?;
    Ok(json!({ "TableDescription": description }))
}

fn apply(service: &Service, meta: &mut TableMeta, update: &Update) -> Result<(), DynamoError> {
    let local = &service.config.region;
    let global = meta.global.get_or_insert_with(|| GlobalTable {
        region: local.clone(),
        replicas: Vec::new(),
    });
    match update {
        Update::Create(region) => {
            if region == local || global.replicas.iter().any(|r| &r.region == region) {
                return Err(DynamoError::validation(format!(
                    "Failed to create a the new replica of table with name: '{}' because one or more replicas already existed as tables.",
                    meta.name
                )));
            }
            if !service
                .config
                .replication
                .peers
                .iter()
                .any(|p| &p.region == region)
            {
                return Err(DynamoError::validation(format!(
                    "One or more parameter values were invalid: Region {region} is not a region of this deployment ([[regions]] in the configuration file)"
                )));
            }
            global.replicas.push(Replica {
                region: region.clone(),
                status: "CREATING".into(),
            });
        }
        Update::Delete(region) => {
            let before = global.replicas.len();
            global.replicas.retain(|r| &r.region != region);
            if global.replicas.len() == before {
                return Err(DynamoError::validation(format!(
                    "One or more parameter values were invalid: No replica of table {} in region {region}",
                    meta.name
                )));
            }
        }
    }
    if meta.global.as_ref().is_some_and(|g| g.replicas.is_empty()) {
        meta.global = None;
    }
    Ok(())
}

/// Makes `name` a replica (or a plain table again, for None); used by the receiver for a table
/// it has just created.
pub(crate) async fn set_global(
    service: &Service,
    name: &str,
    global: Option<GlobalTable>,
) -> Result<(), DynamoError> {
    let lookup = || crate::items::table(service, name);
    modify_table(service, lookup, |meta| {
        let mut updated = meta.clone();
        updated.global = global.clone();
        updated.schema_version += 1;
        Ok((Some(updated), ()))
    })
    .await
}

/// The shipper has filled `region`'s replica of `name`: it becomes ACTIVE. A lost race leaves it
/// CREATING until the next round.
pub(crate) fn mark_active(
    catalog: &Arc<Catalog>,
    name: &str,
    region: &str,
) -> Result<(), haven_storage::StorageError> {
    let Some(meta) = catalog.get(name)? else {
        return Ok(());
    };
    let mut updated = (*meta).clone();
    let Some(replica) = updated
        .global
        .as_mut()
        .and_then(|g| g.replicas.iter_mut().find(|r| r.region == region))
    else {
        return Ok(());
    };
    replica.status = "ACTIVE".into();
    let (batch, installation) = Catalog::update_batch(&meta, updated);
    match catalog.commit_blocking(batch, installation) {
        Ok(()) | Err(haven_storage::CommitError::Conflict) => Ok(()),
        Err(haven_storage::CommitError::Storage(error)) => Err(error),
    }
}

/// Adds Replicas and GlobalTableVersion to a TableDescription of a global table.
pub(crate) fn describe_into(description: &mut Value, meta: &TableMeta) {
    let Some(global) = &meta.global else { return };
    let replicas: Vec<Value> = global
        .replicas
        .iter()
        .map(|r| json!({ "RegionName": r.region, "ReplicaStatus": r.status }))
        .collect();
    description["Replicas"] = Value::Array(replicas);
    description["GlobalTableVersion"] = json!(GLOBAL_TABLE_VERSION);
}
