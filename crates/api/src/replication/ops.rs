//! The control plane of global tables: UpdateTable's ReplicaUpdates, the Replicas and
//! GlobalTableVersion members of a TableDescription, and the metadata changes the shipper and the
//! receiver make (a replica becoming ACTIVE, a table becoming a replica).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{GLOBAL_TABLE_VERSION, GlobalTable, LEGACY_VERSION, Replica};
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
/// or removes them (deleting the table in that region).
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
    for update in &updates {
        if let Update::Delete(region) = update {
            delete_replica(service, name, region).await;
        }
    }
    let description = crate::ops::describe(service, &meta, "UPDATING")?;
    Ok(json!({ "TableDescription": description }))
}

/// Deletes the table in `region`, which has just left the group (as AWS deletes a removed
/// replica). A region unreachable now keeps its table, refused by this region's receiver from
/// then on; the error is logged, the replica has left all the same.
async fn delete_replica(service: &Service, name: &str, region: &str) {
    let delete = super::control::Manage::Delete {
        table_name: name.to_string(),
    };
    let _ = super::control::ask(service, region, delete).await;
}

fn apply(service: &Service, meta: &mut TableMeta, update: &Update) -> Result<(), DynamoError> {
    let local = &service.config.region;
    if meta
        .global
        .as_ref()
        .is_some_and(|g| g.legacy_since_ms.is_some())
    {
        return Err(DynamoError::validation(format!(
            "One or more parameter values were invalid: Table {} is a global table of version {LEGACY_VERSION}: use UpdateGlobalTable",
            meta.name
        )));
    }
    let global = meta.global.get_or_insert_with(|| GlobalTable {
        region: local.clone(),
        replicas: Vec::new(),
        legacy_since_ms: None,
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
    drop_if_alone(meta);
    Ok(())
}

/// A table of version 2019.11.21 whose last replica went is a plain table again (one of
/// version 2017.11.29 stays a global table of one region, as in AWS).
pub(crate) fn drop_if_alone(meta: &mut TableMeta) {
    if meta
        .global
        .as_ref()
        .is_some_and(|g| g.replicas.is_empty() && g.legacy_since_ms.is_none())
    {
        meta.global = None;
    }
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
    change_blocking(catalog, name, |meta| {
        let replica = meta
            .global
            .as_mut()
            .and_then(|g| g.replicas.iter_mut().find(|r| r.region == region));
        if let Some(replica) = replica {
            replica.status = "ACTIVE".into();
        }
    })
}

/// `region` refused the shipper's batch because its replica of `name` is gone: it leaves this
/// region's list (see `control::peer_left`).
pub(crate) fn forget(
    catalog: &Arc<Catalog>,
    name: &str,
    region: &str,
) -> Result<(), haven_storage::StorageError> {
    tracing::info!(table = %name, %region, "the replica region no longer holds the table; dropping it");
    change_blocking(catalog, name, |meta| {
        super::control::leave(meta, region);
        meta.schema_version += 1;
    })
}

/// Commits `change` of `name`'s metadata from a worker thread; a lost race changes nothing (the
/// worker tries again at its next round).
fn change_blocking(
    catalog: &Arc<Catalog>,
    name: &str,
    change: impl FnOnce(&mut TableMeta),
) -> Result<(), haven_storage::StorageError> {
    let Some(meta) = catalog.get(name)? else {
        return Ok(());
    };
    let mut updated = (*meta).clone();
    change(&mut updated);
    if updated.global == meta.global {
        return Ok(());
    }
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
    let version = match global.legacy_since_ms {
        Some(_) => LEGACY_VERSION,
        None => GLOBAL_TABLE_VERSION,
    };
    description["GlobalTableVersion"] = json!(version);
}
