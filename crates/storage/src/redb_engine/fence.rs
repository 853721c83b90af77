//! The index file's backend, fenced once a sync of the value log fails.
//!
//! The committer commits each group to the index (not durably) before its record is synced
//! ([`super::pipeline`]). If that sync fails, the index holds groups the log lost, and the engine
//! reopens, which must bring the index back to its last durable commit, as a crash would. But
//! closing a redb database makes its pending non-durable commits durable. So a failed sync fences
//! the backend first: from then on every write to the file fails, redb's close writes nothing,
//! and the next open finds the file as it was at the last durable commit (a checkpoint, which
//! never covers an unsynced record) and replays the log after it.

use std::fmt;
use std::io;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{BackendError, StorageBackend};

/// A backend whose writes fail once its fence is raised.
pub(super) struct Fenced<B> {
    backend: B,
    fence: Arc<AtomicBool>,
}

impl<B> Fenced<B> {
    /// Wraps `backend`; raising the returned fence stops its writes.
    pub fn new(backend: B) -> (Fenced<B>, Arc<AtomicBool>) {
        let fence = Arc::new(AtomicBool::new(false));
        let fenced = Fenced {
            backend,
            fence: fence.clone(),
        };
        (fenced, fence)
    }

    fn open(&self) -> io::Result<()> {
        if self.fence.load(Ordering::SeqCst) {
            return Err(io::Error::other(
                "the index is fenced after a failed sync of the value log",
            ));
        }
        Ok(())
    }
}

impl<B: fmt::Debug> fmt::Debug for Fenced<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.backend.fmt(f)
    }
}

impl<B: StorageBackend> StorageBackend for Fenced<B> {
    fn len(&self) -> io::Result<u64> {
        self.backend.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.backend.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.open()?;
        self.backend.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.open()?;
        self.backend.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.open()?;
        self.backend.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.backend.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.backend.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.backend.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.backend.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.backend.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.backend.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.backend.query_lock_range(start, end)
    }
}
