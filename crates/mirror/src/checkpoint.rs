//! The mirror's position, kept in Haven's own storage next to the table (`Service::
//! save_mirror_checkpoint`), so that a restarted mirror resumes where it was: which Scan segments
//! of the initial copy are done, where in the stream it follows from (taken before the Scan
//! began, `crate::position`), and per stream shard the last record applied.
//!
//! Re-applying records after the checkpoint is harmless (each record sets an item to its image),
//! so a checkpoint saved after each applied page is enough: a kill loses no change and duplicates
//! no item.

use std::collections::BTreeMap;

use haven_api::Service;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The source stream being followed.
    pub stream_arn: String,
    /// The initial copy's progress while it runs; None once it is complete.
    pub copy: Option<CopyProgress>,
    /// Per shard of the stream: where the mirror is in it.
    pub shards: BTreeMap<String, ShardPosition>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CopyProgress {
    pub total_segments: u32,
    /// The segments whose Scan was applied to the end.
    pub done: Vec<u32>,
    /// The stream position was taken (before any segment began): never again for this copy,
    /// since items a first attempt copied may have changed since.
    #[serde(default)]
    pub position_taken: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardPosition {
    /// The sequence number of the last record applied (None: none yet).
    pub after: Option<String>,
    /// While none is applied: the first record made after the Scan began, read from (inclusive).
    /// Neither: the shard is read from its oldest record.
    #[serde(default)]
    pub from: Option<String>,
    /// The shard is closed and every record of it is applied.
    pub finished: bool,
}

impl Checkpoint {
    pub fn load(service: &Service, table: &str) -> anyhow::Result<Option<Checkpoint>> {
        let Some(bytes) = service.mirror_checkpoint(table)? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(&bytes)?))
    }

    pub async fn save(&self, service: &Service, table: &str) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(self)?;
        service.save_mirror_checkpoint(table, bytes).await?;
        Ok(())
    }

    pub fn shard(&self, id: &str) -> ShardPosition {
        self.shards.get(id).cloned().unwrap_or_default()
    }
}
