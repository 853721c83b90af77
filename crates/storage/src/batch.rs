//! Write batches, their expectations, and the future a committer resolves.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::StorageError;
use crate::log::{LogPosition, LogRecord};

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
    /// Appends a record to the change log; the committer gives it its position (see `log`).
    AppendLog(LogRecord),
    /// Drops `table`'s log records before `before` and remembers that the log was trimmed there.
    /// The caller bounds the work by choosing `before` (see `Snapshot::scan_log`).
    TrimLog {
        table: u64,
        before: LogPosition,
    },
}

impl WriteOp {
    /// Whether this op writes `key`.
    fn touches(&self, key: &[u8]) -> bool {
        match self {
            WriteOp::Put(k, _) | WriteOp::Delete(k) | WriteOp::AddCounter(k, _) => k == key,
            WriteOp::DeleteRange(start, end) => start.as_slice() <= key && key < end.as_slice(),
            WriteOp::AppendLog(_) | WriteOp::TrimLog { .. } => false,
        }
    }
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

    /// Whether the batch already requires `key` to hold `value` (or be absent).
    pub fn expects(&self, key: &[u8], value: Option<&[u8]>) -> bool {
        (self.expectations.iter()).any(|(k, v)| k == key && v.as_deref() == value)
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> &mut Self {
        self.ops.push(WriteOp::Put(key, value));
        self
    }

    pub fn delete(&mut self, key: Vec<u8>) -> &mut Self {
        self.ops.push(WriteOp::Delete(key));
        self
    }

    /// Adds `delta` to a counter. A batch often moves one counter many times (a table's item count
    /// and size, once per item of a BatchWriteItem); consecutive additions to a key are merged into
    /// one op, which spares the committer a tree lookup and an insert per addition.
    pub fn add_counter(&mut self, key: Vec<u8>, delta: i64) -> &mut Self {
        if delta == 0 {
            return self;
        }
        let last_touch = self.ops.iter_mut().rev().find(|op| op.touches(&key));
        match last_touch {
            Some(WriteOp::AddCounter(_, total)) => *total += delta,
            _ => self.ops.push(WriteOp::AddCounter(key, delta)),
        }
        self
    }

    pub fn delete_range(&mut self, start: Vec<u8>, end: Vec<u8>) -> &mut Self {
        self.ops.push(WriteOp::DeleteRange(start, end));
        self
    }

    /// Appends `record` to the change log if (and when) the batch commits.
    pub fn append_log(&mut self, record: LogRecord) -> &mut Self {
        self.ops.push(WriteOp::AppendLog(record));
        self
    }

    /// Trims `table`'s log before `before`.
    pub fn trim_log(&mut self, table: u64, before: LogPosition) -> &mut Self {
        self.ops.push(WriteOp::TrimLog { table, before });
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
pub struct PendingCommit(Outcome);

enum Outcome {
    /// Decided before the commit returned (an engine that commits on the caller's thread).
    Ready(Option<Result<(), CommitError>>),
    Waiting(oneshot::Receiver<Result<(), CommitError>>),
}

impl PendingCommit {
    /// A commit already decided: no channel to allocate and signal (the memory engine's, where
    /// that was a tenth of a commit's instructions).
    pub fn ready(outcome: Result<(), CommitError>) -> PendingCommit {
        PendingCommit(Outcome::Ready(Some(outcome)))
    }

    /// A commit to resolve later through the sender (an engine's committer answers on it;
    /// dropping it unanswered resolves as [`StorageError::Closed`]).
    pub fn channel() -> (oneshot::Sender<Result<(), CommitError>>, PendingCommit) {
        let (sender, receiver) = oneshot::channel();
        (sender, PendingCommit(Outcome::Waiting(receiver)))
    }

    /// Waits on the current thread (for code outside an async runtime).
    pub fn wait(self) -> Result<(), CommitError> {
        match self.0 {
            Outcome::Ready(outcome) => outcome.unwrap_or(Err(closed())),
            Outcome::Waiting(receiver) => receiver.blocking_recv().unwrap_or(Err(closed())),
        }
    }
}

fn closed() -> CommitError {
    CommitError::Storage(StorageError::Closed)
}

impl Future for PendingCommit {
    type Output = Result<(), CommitError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Outcome::Ready(outcome) => Poll::Ready(outcome.take().unwrap_or(Err(closed()))),
            Outcome::Waiting(receiver) => Pin::new(receiver)
                .poll(cx)
                .map(|result| result.unwrap_or(Err(closed()))),
        }
    }
}

/// A counter's value: 8 bytes big-endian; anything else counts as 0.
pub fn decode_counter(bytes: &[u8]) -> i64 {
    bytes.try_into().map(i64::from_be_bytes).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_additions_to_a_counter_are_merged() {
        let mut batch = WriteBatch::new();
        batch
            .add_counter(b"count".to_vec(), 1)
            .put(b"item".to_vec(), b"x".to_vec())
            .add_counter(b"size".to_vec(), 10)
            .add_counter(b"count".to_vec(), 1)
            .add_counter(b"size".to_vec(), -4);
        assert_eq!(
            batch.ops,
            [
                WriteOp::AddCounter(b"count".to_vec(), 2),
                WriteOp::Put(b"item".to_vec(), b"x".to_vec()),
                WriteOp::AddCounter(b"size".to_vec(), 6),
            ]
        );
    }

    #[test]
    fn an_addition_after_another_write_of_the_key_is_kept_apart() {
        let mut batch = WriteBatch::new();
        batch
            .add_counter(b"c".to_vec(), 1)
            .put(b"c".to_vec(), 7i64.to_be_bytes().to_vec())
            .add_counter(b"c".to_vec(), 1)
            .delete_range(b"a".to_vec(), b"d".to_vec())
            .add_counter(b"c".to_vec(), 2);
        assert_eq!(batch.ops.len(), 5);
    }
}
