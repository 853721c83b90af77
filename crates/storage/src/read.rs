//! One-shot reads: the values of a few known keys, without a snapshot to keep.
//!
//! A GetItem reads one key and nothing else. Through a [`Snapshot`](crate::Snapshot) an engine
//! across the network must open a transaction for it (the snapshot might be read again) and end it
//! afterwards; a single statement, though, is already a consistent view of its own. So
//! [`Engine::read`](crate::Engine::read) asks for the keys at once, and the answer is a future:
//! an engine with an async client answers it without blocking a thread of the caller's runtime,
//! and an embedded engine answers it at once ([`PendingRead::ready`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::StorageError;

/// The values of the keys asked (None where absent), in the order asked.
pub type Values = Vec<Option<Vec<u8>>>;

/// Resolves with a one-shot read's values.
pub struct PendingRead(Answer);

enum Answer {
    Ready(Option<Result<Values, StorageError>>),
    Waiting(oneshot::Receiver<Result<Values, StorageError>>),
}

impl PendingRead {
    /// A read already answered.
    pub fn ready(result: Result<Values, StorageError>) -> PendingRead {
        PendingRead(Answer::Ready(Some(result)))
    }

    /// A read to answer later through the sender (dropping it unanswered resolves as
    /// [`StorageError::Closed`]).
    pub fn channel() -> (oneshot::Sender<Result<Values, StorageError>>, PendingRead) {
        let (sender, receiver) = oneshot::channel();
        (sender, PendingRead(Answer::Waiting(receiver)))
    }
}

impl Future for PendingRead {
    type Output = Result<Values, StorageError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Answer::Ready(result) => {
                Poll::Ready(result.take().unwrap_or(Err(StorageError::Closed)))
            }
            Answer::Waiting(receiver) => Pin::new(receiver)
                .poll(cx)
                .map(|answer| answer.unwrap_or(Err(StorageError::Closed))),
        }
    }
}
