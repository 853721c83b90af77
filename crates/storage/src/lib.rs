//! The storage layer: an ordered key-value [`Engine`] that knows nothing of DynamoDB.
//!
//! The contract is deliberately small so that a replicated engine (TiKV, FoundationDB, etcd...) can
//! implement it later without touching the layers above:
//! - [`Snapshot`]: a consistent, read-only view for point reads and ordered range reads;
//! - [`WriteBatch`]: an atomic set of writes guarded by *expectations* (the values the writer read),
//!   validated at commit time. This is optimistic concurrency: if any expected value changed since
//!   it was read, the whole batch is refused with [`CommitError::Conflict`] and the caller re-reads
//!   and retries. Counter increments ([`WriteOp::AddCounter`]) commute, so they need no expectation.
//!
//! - the change log ([`log`]): records appended by batches, stamped with their position by the
//!   committer, read back per table in commit order.
//!
//! [`RedbEngine`] is the embedded default (redb as the ordered index, values in a log of its own);
//! see `docs/storage-format.md` for why, the on-disk layout and the measurements behind the choice.

mod batch;
#[cfg(any(test, feature = "test-support"))]
pub mod engine_suite;
mod lazy;
pub mod log;
pub mod model_check;
mod read;
mod redb_engine;
mod sim_disk;
mod value_log;

use std::ops::Bound;

pub use batch::{CommitError, PendingCommit, WriteBatch, WriteOp, decode_counter};
pub use haven_metrics::CacheStats;
pub use lazy::LazySnapshot;
pub use log::{LogEntry, LogPosition, LogRecord, Origin, Partial};
pub use read::{PendingRead, Values};
pub use redb_engine::{DEFAULT_CACHE_BYTES, RedbEngine};
pub use sim_disk::SimulatedDisk;

/// A failure of the storage medium or engine; the API layer answers InternalServerError.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("the data directory {0} is in use by another Haven server")]
    Locked(String),
    #[error("the storage engine has shut down")]
    Closed,
    /// The checksums found damage; the operator restores the file (docs/operations.md).
    #[error("the data file {file} is corrupted ({detail}); restore it from a backup")]
    Corrupted { file: String, detail: String },
    /// The storage cannot be used as configured (a server that cannot be reached, refused
    /// credentials, a database owned by a newer Haven); the message says what to fix.
    #[error("{0}")]
    Unusable(String),
}

/// A consistent read-only view of the whole key space, as of one moment: no earlier than the call
/// to [`Engine::snapshot`] (it sees every write acknowledged before), and no later than its first
/// read (an engine over the network fixes the view with that read, to spare a round trip).
pub trait Snapshot: Send {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// The values of `keys` (None where absent), in the order asked. Engines that pay a round trip
    /// per read answer them all at once; callers with many known keys use it.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    /// Visits the pairs in `range` in ascending (or, if `reverse`, descending) key order until
    /// `visit` returns false.
    fn scan(
        &self,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StorageError>;

    /// Visits `table`'s change log records with positions in `range`, in log order (or reverse),
    /// until `visit` returns false.
    fn scan_log(
        &self,
        table: u64,
        range: (Bound<LogPosition>, Bound<LogPosition>),
        reverse: bool,
        visit: &mut dyn FnMut(LogEntry) -> bool,
    ) -> Result<(), StorageError>;

    /// The position of the last record appended to the log, of any table ([`LogPosition::START`]
    /// before the first). Every record committed later has a greater position.
    fn log_head(&self) -> Result<LogPosition, StorageError>;

    /// Where `table`'s log was last trimmed: records before this position are gone.
    fn log_horizon(&self, table: u64) -> Result<LogPosition, StorageError>;

    /// The smallest table id above `after` (or the smallest, for None) that has log records.
    fn next_log_table(&self, after: Option<u64>) -> Result<Option<u64>, StorageError>;
}

/// An ordered, transactional key-value store.
pub trait Engine: Send + Sync + 'static {
    fn snapshot(&self) -> Result<Box<dyn Snapshot>, StorageError>;

    /// The values of `keys` (None where absent, in the order asked) as of one moment no earlier
    /// than the call: what a snapshot read once with [`Snapshot::get_many`] answers. An engine
    /// across the network answers it with one statement and no transaction (`read.rs`).
    fn read(&self, keys: Vec<Vec<u8>>) -> PendingRead {
        PendingRead::ready(
            self.snapshot()
                .and_then(|snapshot| snapshot.get_many(&keys)),
        )
    }

    /// Commits a batch atomically, durably if the engine is durable. Resolves once the batch is
    /// applied (and synced) or refused.
    fn commit(&self, batch: WriteBatch) -> PendingCommit;

    /// The page cache's figures since the engine opened, for `/metrics`; None for an engine
    /// without a page cache of its own (memory) or whose cache lives elsewhere (PostgreSQL's).
    fn cache_stats(&self) -> Option<CacheStats> {
        None
    }

    /// Whether other processes (other nodes) may commit to this engine's data, so that a node
    /// must look for their changes; false for an engine this process alone opens.
    fn shared(&self) -> bool {
        false
    }
}

/// Reads a counter written by [`WriteOp::AddCounter`] (absent counters are zero).
pub fn read_counter(snapshot: &dyn Snapshot, key: &[u8]) -> Result<i64, StorageError> {
    Ok(snapshot
        .get(key)?
        .map(|bytes| decode_counter(&bytes))
        .unwrap_or(0))
}

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod fault_tests;
