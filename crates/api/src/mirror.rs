//! What the API layer does for `haven mirror` (the `haven-mirror` crate), which keeps a table as a
//! live copy of a table on another DynamoDB endpoint.
//!
//! A mirrored table carries a [`MirrorOrigin`] in its metadata. While it does, every client write
//! (PutItem, UpdateItem, DeleteItem, batches, transactions, PartiQL) is refused where item writes are
//! staged (`items::stage_item_write`), so no path can diverge the copy from its source; the TTL
//! worker leaves it alone too, since the source's expiries arrive as deletions. The mirror itself
//! writes through [`Service::apply_mirrored`], the same write path without the refusal, and keeps
//! its position in the source's stream next to the table's counters, so the position goes with the
//! table when the table is deleted. Promotion clears the origin: the table becomes an ordinary one.

use haven_model::Item;
use haven_storage::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::Service;
use crate::catalog::TableMeta;
use crate::error::DynamoError;
use crate::items::{Writer, table, write_item_by};
use crate::ops::modify_table;

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

/// Checks that `writer` may write to the table as its metadata stands: clients only to a table
/// that is not mirrored, the mirror only to one that still is (not promoted meanwhile).
pub(crate) fn check_writer(meta: &TableMeta, writer: Writer) -> Result<(), DynamoError> {
    match writer {
        Writer::Client => refuse_client_write(meta),
        Writer::Mirror if meta.mirror.is_none() => Err(DynamoError::ResourceInUse(format!(
            "table {} is no longer a mirror: it was promoted",
            meta.name
        ))),
        Writer::Mirror => Ok(()),
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

    /// Applies one change of the source to a mirrored table; applying it twice is harmless. A
    /// table no longer mirrored (promoted) refuses it.
    pub async fn apply_mirrored(
        &self,
        name: &str,
        write: MirroredWrite,
    ) -> Result<(), DynamoError> {
        let meta = table(self, name)?;
        if meta.mirror.is_none() {
            return Err(DynamoError::ResourceInUse(format!(
                "table {name} is no longer a mirror: it was promoted"
            )));
        }
        let (key, new) = match write {
            MirroredWrite::Put(item) => {
                crate::items::validate_item(&meta, &item)?;
                (meta.keys().project_key(&item), Some(item))
            }
            MirroredWrite::Delete(key) => {
                crate::items::validate_key(&meta, &key)?;
                (key, None)
            }
        };
        write_item_by(self, &meta, &key, Writer::Mirror, |_| Ok(new.clone())).await?;
        Ok(())
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
