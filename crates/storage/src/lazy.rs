//! A snapshot taken at its first read, for work that may read nothing.
//!
//! An item write reads its item with a one-shot read, then stages: on a plain table staging reads
//! nothing, and only a table with global-table stamps or an index being created reads a few keys.
//! Taking a snapshot up front costs every write a read transaction (redb) it mostly never uses;
//! taken at its first read, the view still honours [`Snapshot`]'s promise (no earlier than the
//! request for it, no later than its first read).

use std::cell::OnceCell;
use std::ops::Bound;

use crate::{Engine, LogEntry, LogPosition, Snapshot, StorageError};

/// `engine`'s snapshot, taken when first read.
pub struct LazySnapshot<'e> {
    engine: &'e dyn Engine,
    taken: OnceCell<Box<dyn Snapshot>>,
}

impl<'e> LazySnapshot<'e> {
    pub fn new(engine: &'e dyn Engine) -> LazySnapshot<'e> {
        LazySnapshot {
            engine,
            taken: OnceCell::new(),
        }
    }

    fn view(&self) -> Result<&dyn Snapshot, StorageError> {
        if self.taken.get().is_none() {
            let _ = self.taken.set(self.engine.snapshot()?);
        }
        Ok(&**self.taken.get().ok_or(StorageError::Closed)?)
    }
}

impl Snapshot for LazySnapshot<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.view()?.get(key)
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.view()?.get_many(keys)
    }

    fn scan(
        &self,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StorageError> {
        self.view()?.scan(range, reverse, visit)
    }

    fn scan_log(
        &self,
        table: u64,
        range: (Bound<LogPosition>, Bound<LogPosition>),
        reverse: bool,
        visit: &mut dyn FnMut(LogEntry) -> bool,
    ) -> Result<(), StorageError> {
        self.view()?.scan_log(table, range, reverse, visit)
    }

    fn log_head(&self) -> Result<LogPosition, StorageError> {
        self.view()?.log_head()
    }

    fn log_horizon(&self, table: u64) -> Result<LogPosition, StorageError> {
        self.view()?.log_horizon(table)
    }

    fn next_log_table(&self, after: Option<u64>) -> Result<Option<u64>, StorageError> {
        self.view()?.next_log_table(after)
    }
}
