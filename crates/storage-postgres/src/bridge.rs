//! The engine's own runtime, and how synchronous callers wait on it.
//!
//! `Snapshot` is a synchronous trait (the embedded engine answers reads from memory-mapped pages),
//! but a PostgreSQL read is a network round trip on an async client. The engine runs every
//! connection and the committer on a small runtime of its own; a snapshot's read is spawned there
//! and the caller waits for its answer. Waiting on a worker of the server's multi-threaded runtime
//! goes through `block_in_place`, so that the server's other tasks move to another thread instead
//! of stalling behind the round trip; elsewhere (a plain thread, a single-threaded runtime in a
//! test) the caller simply blocks. The connections never run on the caller's runtime, so a caller
//! that blocks can never starve the I/O it waits for.

use std::future::Future;
use std::sync::mpsc;

use haven_storage::StorageError;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// Cores per thread of the engine's runtime: the connections' I/O and the committer are light,
/// and every thread more is a wake-up more per read when a read's task and its connection's task
/// land on different threads (on 2 cores, one thread cut the CPU per GetItem; docs/benchmarks.md).
const CORES_PER_THREAD: usize = 4;
/// At most this many threads, however many cores.
const MAX_THREADS: usize = 4;

pub(crate) fn runtime() -> Result<Runtime, StorageError> {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads((cores / CORES_PER_THREAD).clamp(1, MAX_THREADS))
        .thread_name("haven-postgres")
        .enable_all()
        .build()
        .map_err(|e| StorageError::Io(format!("cannot start the PostgreSQL runtime: {e}")))
}

/// A handle on the engine's runtime that synchronous code can wait on.
#[derive(Clone)]
pub(crate) struct Bridge(pub(crate) Handle);

impl Bridge {
    /// Runs `future` on the engine's runtime and waits for its output; `Closed` if the engine
    /// shut down first.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (sender, receiver) = mpsc::sync_channel(1);
        self.0.spawn(async move {
            let _ = sender.send(future.await);
        });
        wait_blocking(|| receiver.recv()).map_err(|_| StorageError::Closed)
    }
}

/// Runs a blocking `wait`, letting the server's runtime move its other tasks away meanwhile.
fn wait_blocking<T>(wait: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_from_plain_threads_and_from_either_kind_of_runtime() {
        let engine = runtime().unwrap();
        let bridge = Bridge(engine.handle().clone());
        assert_eq!(bridge.run(async { 1 }).unwrap(), 1);
        for runtime in [
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            tokio::runtime::Builder::new_multi_thread().build().unwrap(),
        ] {
            let bridge = bridge.clone();
            let answer = runtime.block_on(async move {
                tokio::spawn(async move { bridge.run(async { 2 }).unwrap() })
                    .await
                    .unwrap()
            });
            assert_eq!(answer, 2);
        }
        engine.shutdown_background();
        assert!(matches!(bridge.run(async { 3 }), Err(StorageError::Closed)));
    }
}
