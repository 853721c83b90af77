//! Write batches, their expectations, and the future a committer resolves.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::StorageError;

/// One write inside a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    /// Adds to an i64 counter stored as 8 big-endian bytes (absent = 0); a counter that reaches 0
    /// is deleted.
    AddCounter(Vec<u8>, i64),
    /// Deletes every key in `[start, end)`.
    DeleteRange(Vec<u8>, Vec<u8>),
}

/// An atomic group of writes, applied only if every expectation still holds at commit time.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    /// `(key, value the writer read)`; `None` means the key was absent.
    pub expectations: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub ops: Vec<WriteOp>,
}

impl WriteBatch {
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Requires `key` to still hold `value` (or be absent) when the batch commits.
    pub fn expect(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) -> &mut Self {
        self.expectations.push((key, value));
        self
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> &mut Self {
        self.ops.push(WriteOp::Put(key, value));
        self
    }

    pub fn delete(&mut self, key: Vec<u8>) -> &mut Self {
        self.ops.push(WriteOp::Delete(key));
        self
    }

    pub fn add_counter(&mut self, key: Vec<u8>, delta: i64) -> &mut Self {
        if delta != 0 {
            self.ops.push(WriteOp::AddCounter(key, delta));
        }
        self
    }

    pub fn delete_range(&mut self, start: Vec<u8>, end: Vec<u8>) -> &mut Self {
        self.ops.push(WriteOp::DeleteRange(start, end));
        self
    }
}

/// Why a batch did not commit.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// An expectation failed: another writer changed a key this batch read. Re-read and retry.
    #[error("a key read by this batch was changed by a concurrent write")]
    Conflict,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Resolves when the engine has applied or refused a batch.
pub struct PendingCommit(pub(crate) oneshot::Receiver<Result<(), CommitError>>);

impl PendingCommit {
    /// Waits on the current thread (for code outside an async runtime).
    pub fn wait(self) -> Result<(), CommitError> {
        self.0
            .blocking_recv()
            .unwrap_or(Err(CommitError::Storage(StorageError::Closed)))
    }
}

impl Future for PendingCommit {
    type Output = Result<(), CommitError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|result| result.unwrap_or(Err(CommitError::Storage(StorageError::Closed))))
    }
}

pub(crate) fn decode_counter(bytes: &[u8]) -> i64 {
    bytes.try_into().map(i64::from_be_bytes).unwrap_or(0)
}
