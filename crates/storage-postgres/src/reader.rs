//! One-shot reads (`Engine::read`), several to a statement under load.
//!
//! A GetItem is one `SELECT ... WHERE key = ANY($1)`, whose execution is the small part of what it
//! costs PostgreSQL: the backend's wake-up, the protocol messages, the transaction around the
//! statement and the reply cost more than the index lookup (under workload A on 2 cores, about
//! 90 µs of backend CPU per read for 20 µs of execution, before the pool's connections kept one
//! generic plan: `READ_OPTIONS` in lib.rs; docs/scale-out.md). So reads go to the
//! node's reader task, which lets at most [`STATEMENTS_IN_FLIGHT`] statements run at once: a read
//! that finds one free is sent at once (an idle node pays no wait), and the reads that arrive while
//! every statement is busy go together in the next one, as batches share a group commit. A single
//! statement sees one consistent state, which begins after every read it carries was asked: each
//! still sees every write acknowledged before it was asked.

use std::sync::Arc;

use deadpool_postgres::Pool;
use haven_storage::{StorageError, Values};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::snapshot;

/// A read's keys and where to answer.
pub(crate) type ReadRequest = (Vec<Vec<u8>>, oneshot::Sender<Result<Values, StorageError>>);

/// Statements the reader keeps in flight at once: enough to overlap round trips, few enough that
/// reads arriving under load wait for the next statement instead of costing one each.
const STATEMENTS_IN_FLIGHT: usize = 2;
/// At most this many keys in one statement (a BatchGetItem asks for up to 100).
const MAX_KEYS: usize = 1000;

/// Answers reads until every sender is gone.
pub(crate) async fn run(pool: Pool, mut requests: mpsc::UnboundedReceiver<ReadRequest>) {
    let statements = Arc::new(Semaphore::new(STATEMENTS_IN_FLIGHT));
    while let Some(first) = requests.recv().await {
        let permit = Arc::clone(&statements)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut reads = vec![first];
        let mut keys = reads[0].0.len();
        while keys < MAX_KEYS {
            let Ok(next) = requests.try_recv() else {
                break;
            };
            keys += next.0.len();
            reads.push(next);
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            answer(&pool, reads).await;
            drop(permit);
        });
    }
}

/// Reads every key of `reads` in one statement and answers each read its own values.
async fn answer(pool: &Pool, reads: Vec<ReadRequest>) {
    let mut keys = Vec::new();
    let mut replies = Vec::with_capacity(reads.len());
    for (read_keys, reply) in reads {
        replies.push((read_keys.len(), reply));
        keys.extend(read_keys);
    }
    match snapshot::read_once(pool, keys).await {
        Ok(values) => {
            let mut values = values.into_iter();
            for (count, reply) in replies {
                let _ = reply.send(Ok(values.by_ref().take(count).collect()));
            }
        }
        Err(error) => {
            for (_, reply) in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}
