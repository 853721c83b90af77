//! Global tables: a table replicated between Haven regions as DynamoDB's global tables (version
//! 2019.11.21) replicate it, asynchronously and with last-writer-wins.
//!
//! Why this shape:
//! - **One log, one cursor per peer.** While a table has replicas every write appends a change
//!   log record (`changes::stage`); the shipper (`shipper.rs`, one node per region under a lease)
//!   reads the log after the position the peer acknowledged and sends the keys it names. The
//!   cursor is stored in the engine and moved only after the peer answered, so a restart or a cut
//!   link resumes where the peer stopped: nothing is skipped, and a batch sent twice changes
//!   nothing the second time (see below).
//! - **State, not operations.** A batch carries each changed key's *current* item (or its
//!   absence) with its version, read from one snapshot, never the operation that made it. Applying
//!   a state is idempotent and commutative under last-writer-wins, which is what makes resending
//!   safe and lets a new replica be filled by the same messages (a scan of the table's items and
//!   tombstones, then the log from the position the scan started at).
//! - **Versions beside the item.** Each item of a global table has a stamp (`version.rs`): the
//!   time in milliseconds and the region of the write that made it, and whether that write was a
//!   delete (a tombstone outlives the item, so a late older put is still refused). A local write
//!   stamps `max(now, previous + 1)`, so a region's writes to an item always outrank what it has
//!   seen; one that changes nothing stamps nothing (it logs nothing, so no peer would learn the
//!   stamp, and the regions would rank later writes differently); a replicated write is applied only when its stamp is greater than the local one
//!   (time, then region name: a deterministic tie-break), and is logged with origin
//!   `Replication`, so it shows in Streams but is not shipped back.
//! - **Haven's own write path.** The receiver (`receiver.rs`) stages its writes with
//!   `items::stage_item_write`, so indexes, counters, streams and TTL stay right, and commits them
//!   with the same expectations as any writer (a concurrent local write makes it re-decide).
//!
//! The transport is not here: `haven-api` knows nothing of HTTP. The binary gives each peer a
//! [`Transport`] that sends a JSON body to one of the peer region's nodes, SigV4-signed with the
//! replication credential, as the operation `HavenReplication_20261207.ReplicateChanges`.

pub(crate) mod control;
mod lag;
pub(crate) mod legacy;
pub(crate) mod ops;
pub(crate) mod receiver;
pub(crate) mod settings;
mod shipper;
mod tombstones;
pub(crate) mod version;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use lag::Lag;
pub(crate) use shipper::spawn;

/// The version of global tables UpdateTable's ReplicaUpdates make.
pub(crate) const GLOBAL_TABLE_VERSION: &str = "2019.11.21";
/// The default of [`ReplicationSettings::tombstone_grace`]: the change log's retention, past
/// which a peer that has not acknowledged is filled again from a scan anyway.
pub const DEFAULT_TOMBSTONE_GRACE: Duration = Duration::from_secs(24 * 3600);
/// The version CreateGlobalTable makes.
pub(crate) const LEGACY_VERSION: &str = "2017.11.29";

/// Sends one replication request to a peer region and returns its answer.
pub trait Transport: Send + Sync {
    /// `operation` is one of the replication operations (`ReplicateChanges`, `ManageReplica`)
    /// and `body` its JSON request.
    fn send(
        &self,
        operation: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, SendError>;
}

/// Why a peer did not answer 200.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    /// No node of the peer answered (refused connection, timeout, TLS failure...): try later.
    Unreachable(String),
    /// A node answered with an error: its `__type` name (`ResourceNotFoundException`) and message.
    Refused { error: String, message: String },
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Unreachable(reason) => write!(f, "unreachable: {reason}"),
            SendError::Refused { error, message } => write!(f, "{error}: {message}"),
        }
    }
}

/// A region this one may replicate to.
#[derive(Clone)]
pub struct Peer {
    pub region: String,
    pub transport: Arc<dyn Transport>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("region", &self.region)
            .finish()
    }
}

/// The regions this one knows (from the configuration file's `[[regions]]`) and how often the
/// shipper looks for new changes.
#[derive(Debug, Clone)]
pub struct ReplicationSettings {
    pub peers: Vec<Peer>,
    pub interval: Duration,
    /// How much older than every peer's acknowledged position a tombstone must be before it is
    /// collected (`tombstones.rs`).
    pub tombstone_grace: Duration,
}

impl Default for ReplicationSettings {
    fn default() -> ReplicationSettings {
        ReplicationSettings {
            peers: Vec::new(),
            interval: Duration::from_millis(100),
            tombstone_grace: DEFAULT_TOMBSTONE_GRACE,
        }
    }
}

/// A table's global-table state, stored in its metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalTable {
    /// The region this copy of the table lives in.
    pub region: String,
    /// The other regions holding a replica.
    pub replicas: Vec<Replica>,
    /// Set when CreateGlobalTable (version 2017.11.29) made the table global: when, in
    /// milliseconds (`legacy.rs`). Such a table stays global with no other region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_since_ms: Option<u64>,
}

/// One other region's replica and its status (`CREATING` until it has been filled, then
/// `ACTIVE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replica {
    pub region: String,
    pub status: String,
}
