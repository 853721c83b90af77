//! What one region asks another about its copy of a global table:
//! `HavenReplication_20261207.ManageReplica`, beside the shipper's `ReplicateChanges`.
//!
//! Why it exists: a global table's membership lives in each region's own metadata (storage is
//! the truth, region by region), and the operations that change it act on several regions at
//! once. CreateGlobalTable and UpdateGlobalTable (version 2017.11.29) must look at every
//! region's table before joining them (`Inspect`) and then join them (`Join`); deleting a
//! replica deletes the table in its region (`Delete`), and a region whose table is deleted
//! tells the others to drop it from their lists (`Leave`); the global table settings update
//! every region's table (`UpdateTable`). Every action is idempotent, so a caller may repeat it.
//!
//! [`ask`] runs an action in any region: in this one directly, in another through its peer's
//! [`super::Transport`] (blocking HTTP, so on a blocking thread).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{GlobalTable, Replica, SendError};
use crate::Service;
use crate::catalog::TableMeta;
use crate::error::DynamoError;
use crate::ops::modify_table;

/// One action on a region's copy of a table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "Action", rename_all_fields = "PascalCase")]
pub(crate) enum Manage {
    /// Answers `{"Table": <its TableDescription, or null>, "Empty": <holds no item>}`.
    Inspect { table_name: String },
    /// Makes the table a global table of version 2017.11.29 held by `regions` (this one
    /// included); regions new to it start CREATING, the others keep their status.
    Join {
        table_name: String,
        regions: Vec<String>,
        since_ms: u64,
    },
    /// `region` no longer holds a replica of the table.
    Leave { table_name: String, region: String },
    /// Deletes this region's table (its replica), which tells the other regions to leave it.
    Delete { table_name: String },
    /// Runs UpdateTable with `request` on this region's table.
    UpdateTable { request: Value },
}

/// The operation's entry point, in the region asked.
pub(crate) async fn manage(service: &Service, action: Manage) -> Result<Value, DynamoError> {
    match action {
        Manage::Inspect { table_name } => inspect(service, &table_name),
        Manage::Join {
            table_name,
            regions,
            since_ms,
        } => {
            let lookup = || crate::items::table(service, &table_name);
            let local = &service.config.region;
            let change = |meta: &mut TableMeta| join(meta, local, &regions, since_ms);
            change_global(service, lookup, change).await?;
            Ok(json!({}))
        }
        Manage::Leave { table_name, region } => {
            let lookup = || crate::items::table(service, &table_name);
            match change_global(service, lookup, |meta| leave(meta, &region)).await {
                Ok(()) | Err(DynamoError::ResourceNotFound(_)) => Ok(json!({})),
                Err(error) => Err(error),
            }
        }
        Manage::Delete { table_name } => {
            let request = json!({ "TableName": table_name });
            match Box::pin(service.call("DeleteTable", request)).await {
                Ok(_) | Err(DynamoError::ResourceNotFound(_)) => Ok(json!({})),
                Err(error) => Err(error),
            }
        }
        Manage::UpdateTable { request } => Box::pin(service.call("UpdateTable", request)).await,
    }
}

/// Runs `action` in `region`: here, or in the peer region of that name.
pub(crate) async fn ask(
    service: &Service,
    region: &str,
    action: Manage,
) -> Result<Value, DynamoError> {
    if region == service.config.region {
        return Box::pin(manage(service, action)).await;
    }
    let send = sender(service, region, &action)?;
    let answer = tokio::task::spawn_blocking(send)
        .await
        .map_err(|_| DynamoError::InternalServerError)?;
    answer.map_err(|error| {
        tracing::warn!(%region, %error, ?action, "a peer region did not do what a global table operation asked");
        DynamoError::InternalServerError
    })
}

/// What sends `action` to the peer `region` (blocking).
fn sender(
    service: &Service,
    region: &str,
    action: &Manage,
) -> Result<impl FnOnce() -> Result<Value, SendError> + Send + 'static, DynamoError> {
    let peer = service
        .config
        .replication
        .peers
        .iter()
        .find(|p| p.region == region)
        .ok_or_else(|| unknown_region(region))?;
    let transport = peer.transport.clone();
    let body = serde_json::to_value(action).expect("an action serialises");
    Ok(move || transport.send("ManageReplica", &body))
}

/// A region that is neither this one nor a peer of the configuration file.
pub(crate) fn unknown_region(region: &str) -> DynamoError {
    DynamoError::validation(format!(
        "One or more parameter values were invalid: Region {region} is not a region of this deployment ([[regions]] in the configuration file)"
    ))
}

/// Tells every region that held a replica of the deleted table `meta` that this region no longer
/// does, in the background (a region unreachable now learns it from its shipper's next batch,
/// which this region refuses).
pub(crate) fn table_deleted(service: &Service, meta: &TableMeta) {
    let Some(global) = &meta.global else { return };
    let leave = Manage::Leave {
        table_name: meta.name.clone(),
        region: global.region.clone(),
    };
    for replica in &global.replicas {
        if let Ok(send) = sender(service, &replica.region, &leave) {
            let region = replica.region.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(error) = send() {
                    tracing::info!(%region, %error, "a peer region did not hear of a replica's deletion; its shipper will");
                }
            });
        }
    }
}

/// Whether the shipper's peer refused a batch because its table is gone: the peer left the
/// global table. (A table there that is not, or not yet, a replica of this region's answers
/// ResourceInUseException: a join in progress, tried again later.)
pub(crate) fn peer_left(error: &SendError) -> bool {
    matches!(error, SendError::Refused { error, .. } if error == "ResourceNotFoundException")
}

fn inspect(service: &Service, name: &str) -> Result<Value, DynamoError> {
    let Some(meta) = service.catalog.get(name)? else {
        return Ok(json!({ "Table": null, "Empty": true }));
    };
    let description = crate::ops::describe(service, &meta, "ACTIVE")?;
    let snapshot = service.engine.snapshot()?;
    let (start, end) = (meta.item_prefix(), meta.item_prefix_end());
    let range = (
        std::ops::Bound::Included(start.as_slice()),
        std::ops::Bound::Excluded(end.as_slice()),
    );
    let mut empty = true;
    snapshot.scan(range, false, &mut |_, _| {
        empty = false;
        false
    })?;
    Ok(json!({ "Table": description, "Empty": empty }))
}

/// Commits a change of a table's global-table state (bumping its schema version: whether writes
/// log and stamp depends on it).
pub(crate) async fn change_global(
    service: &Service,
    lookup: impl Fn() -> Result<std::sync::Arc<TableMeta>, DynamoError>,
    change: impl Fn(&mut TableMeta),
) -> Result<(), DynamoError> {
    modify_table(service, lookup, |meta| {
        let mut updated = meta.clone();
        change(&mut updated);
        if updated.global == meta.global {
            return Ok((None, ()));
        }
        updated.schema_version += 1;
        Ok((Some(updated), ()))
    })
    .await
}

fn join(meta: &mut TableMeta, local: &str, regions: &[String], since_ms: u64) {
    let previous = meta.global.take();
    let status = |name: &str| {
        previous
            .as_ref()
            .and_then(|g| g.replicas.iter().find(|r| r.region == name))
            .map_or("CREATING".into(), |r| r.status.clone())
    };
    let replicas = regions
        .iter()
        .filter(|r| *r != local)
        .map(|r| Replica {
            region: r.clone(),
            status: status(r),
        })
        .collect();
    meta.global = Some(GlobalTable {
        region: local.to_string(),
        replicas,
        legacy_since_ms: Some(since_ms),
    });
}

pub(crate) fn leave(meta: &mut TableMeta, region: &str) {
    if let Some(global) = &mut meta.global {
        global.replicas.retain(|r| r.region != region);
    }
    super::ops::drop_if_alone(meta);
}
