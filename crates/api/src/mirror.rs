//! What the API layer does for `haven mirror` (the `haven-mirror` crate), which keeps a table as a
//! live copy of a table on another DynamoDB endpoint.
//!
//! A mirrored table carries a [`MirrorOrigin`] in its metadata. While it does, every client write
//! (PutItem, UpdateItem, DeleteItem, batches, transactions, PartiQL) is refused where item writes are
//! staged (`items::stage_item_write`), so no path can diverge the copy from its source; the TTL
//! worker leaves it alone too, since the source's expiries arrive as deletions. The mirror itself
//! writes through [`Service::apply_mirrored`], the same staging without the refusal, in batches, and keeps
//! its position in the source's stream next to the table's counters, so the position goes with the
//! table when the table is deleted. Promotion clears the origin: the table becomes an ordinary one.

use std::sync::Arc;

use haven_model::Item;
use haven_storage::{CommitError, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::Service;
use crate::catalog::TableMeta;
use crate::error::DynamoError;
use crate::items::{current_meta, read_stored, stage_any_item_write, table};
use crate::ops::modify_table;
use crate::retry::Retries;

/// `STATS | table id | 'm'`: the mirror's checkpoint (opaque bytes the mirror encodes).
const CHECKPOINT_STAT: u8 = b'm';

/// Where a mirrored table's data comes from, for the refusal's message and the status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorOrigin {
    /// The source's endpoint URL.
    pub endpoint: String,
    /// The source table's ARN (or name when the source gives no ARN).
    pub table: String,
}

/// One change of a mirrored table, as its source made it.
#[derive(Debug, Clone, PartialEq)]
pub enum MirroredWrite {
    /// The whole new item.
    Put(Item),
    /// The key of a deleted item.
    Delete(Item),
}

/// Changes of the source committed together at most: a Scan page of small items in a few commits,
/// and a commit still of a bounded size.
const APPLY_BATCH: usize = 100;

/// A validated change: the item's key (and its storage key) and the new item (None deletes).
struct Planned {
    key: Item,
    storage_key: Vec<u8>,
    new: Option<Item>,
}

fn plan(meta: &TableMeta, write: MirroredWrite) -> Result<Planned, DynamoError> {
    let (key, new) = match write {
        MirroredWrite::Put(item) => {
            crate::items::validate_item(meta, &item)?;
            (meta.keys().project_key(&item), Some(item))
        }
        MirroredWrite::Delete(key) => {
            crate::items::validate_key(meta, &key)?;
            (key, None)
        }
    };
    let storage_key = meta.keys().storage_key(&meta.item_prefix(), &key);
    Ok(Planned {
        key,
        storage_key,
        new,
    })
}

/// Commits changes of distinct items in one batch, each expecting the item it read; on a
/// conflict (the table's schema changed, or it was promoted) plans again from fresh metadata, a
/// bounded number of times.
async fn commit_mirrored(
    service: &Service,
    meta: &Arc<TableMeta>,
    writes: &[Planned],
) -> Result<(), DynamoError> {
    if writes.is_empty() {
        return Ok(());
    }
    let mut meta = meta.clone();
    let mut retries = Retries::new("mirrored write");
    loop {
        check_still_mirrored(&meta)?;
        let keys: Vec<(&TableMeta, &Item)> = writes.iter().map(|w| (&*meta, &w.key)).collect();
        let current = read_stored(&*service.engine, &keys).await?;
        let mut batch = WriteBatch::new();
        // Staging reads only what it then expects (or adds to a counter), so a later view than
        // the items' is safe: the commit checks both against the same state.
        let snapshot = service.engine.snapshot()?;
        for (write, current) in writes.iter().zip(&current) {
            if let Some(item) = &write.new {
                crate::indexes::validate_index_keys(&meta, item)?;
            }
            stage_any_item_write(
                &*snapshot,
                &meta,
                crate::items::ItemKey::new(&meta, &write.key),
                current.as_ref(),
                write.new.as_ref(),
                &mut batch,
                service.config.item_collection_limit,
            )?;
        }
        drop(snapshot);
        match service.engine.commit(batch).await {
            Ok(()) => return Ok(()),
            Err(CommitError::Conflict) => {
                retries.conflict().await?;
                meta = current_meta(service, &meta)?;
            }
            Err(CommitError::Storage(error)) => return Err(error.into()),
        }
    }
}

/// Refuses a client's write to a mirrored table. DynamoDB answers ResourceInUseException for a
/// table whose state forbids the operation; the message says why and how to end that state.
pub(crate) fn refuse_client_write(meta: &TableMeta) -> Result<(), DynamoError> {
    let Some(origin) = &meta.mirror else {
        return Ok(());
    };
    Err(DynamoError::ResourceInUse(format!(
        "Attempt to change a resource which is still in use: table {} is a read-only mirror of {} at {}; \
         run `haven mirror promote {}` to stop mirroring and make it writable",
        meta.name, origin.table, origin.endpoint, meta.name
    )))
}

/// Refuses the mirror's write to a table that is no longer mirrored (promoted meanwhile).
fn check_still_mirrored(meta: &TableMeta) -> Result<(), DynamoError> {
    match meta.mirror {
        Some(_) => Ok(()),
        None => Err(DynamoError::ResourceInUse(format!(
            "table {} is no longer a mirror: it was promoted",
            meta.name
        ))),
    }
}

impl Service {
    /// The origin of a mirrored table: Ok(None) for a table that is not (or no longer) mirrored,
    /// ResourceNotFoundException for a missing table.
    pub fn mirror_origin(&self, name: &str) -> Result<Option<MirrorOrigin>, DynamoError> {
        Ok(table(self, name)?.mirror.clone())
    }

    /// Marks a table as mirrored from `origin` (read-only to clients), or with None promotes it
    /// (writable again). The schema version moves with it, so a write planned under the other
    /// state fails at commit and is planned again under this one.
    pub async fn set_mirror_origin(
        &self,
        name: &str,
        origin: Option<MirrorOrigin>,
    ) -> Result<(), DynamoError> {
        modify_table(
            self,
            || table(self, name),
            |meta| {
                if meta.mirror == origin {
                    return Ok((None, ()));
                }
                let mut updated = meta.clone();
                updated.mirror = origin.clone();
                updated.schema_version += 1;
                Ok((Some(updated), ()))
            },
        )
        .await
    }

    /// Applies changes of the source to a mirrored table, in order; applying them twice is
    /// harmless. They are committed together, `APPLY_BATCH` at most and never two of one item
    /// in a commit (a later change of an item waits for the commit of the earlier one), so an
    /// initial copy or a stream page costs a few commits instead of one per item. A table no
    /// longer mirrored (promoted) refuses them.
    pub async fn apply_mirrored(
        &self,
        name: &str,
        writes: Vec<MirroredWrite>,
    ) -> Result<(), DynamoError> {
        let meta = table(self, name)?;
        check_still_mirrored(&meta)?;
        let planned = writes
            .into_iter()
            .map(|write| plan(&meta, write))
            .collect::<Result<Vec<_>, _>>()?;
        let mut chunk: Vec<Planned> = Vec::new();
        for write in planned {
            if chunk.len() == APPLY_BATCH
                || chunk.iter().any(|w| w.storage_key == write.storage_key)
            {
                commit_mirrored(self, &meta, &chunk).await?;
                chunk.clear();
            }
            chunk.push(write);
        }
        commit_mirrored(self, &meta, &chunk).await
    }

    /// The checkpoint the mirror last saved for a table.
    pub fn mirror_checkpoint(&self, name: &str) -> Result<Option<Vec<u8>>, DynamoError> {
        let meta = table(self, name)?;
        Ok(self
            .engine
            .snapshot()?
            .get(&meta.stat_key(CHECKPOINT_STAT))?)
    }

    /// Saves the mirror's checkpoint for a table (durably, as every commit is).
    pub async fn save_mirror_checkpoint(
        &self,
        name: &str,
        checkpoint: Vec<u8>,
    ) -> Result<(), DynamoError> {
        let meta = table(self, name)?;
        let mut batch = WriteBatch::new();
        batch.put(meta.stat_key(CHECKPOINT_STAT), checkpoint);
        self.engine
            .commit(batch)
            .await
            .map_err(|error| match error {
                haven_storage::CommitError::Storage(error) => error.into(),
                haven_storage::CommitError::Conflict => DynamoError::InternalServerError,
            })
    }
}
