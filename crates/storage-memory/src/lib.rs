//! The engine behind `haven serve --in-memory`: the whole key space as versions of a persistent
//! ordered map.
//!
//! Why not the embedded engine with an in-memory backend: redb is built for a disk. Its
//! in-memory backend still copies and zero-fills a page per write, and every batch still crosses
//! to a committer thread and back; a memory engine needs neither. Here a committed state is an
//! immutable [`Version`] (the data, the change log, the log's head and horizons), each map an
//! `imbl::OrdMap`: a B-tree whose nodes are shared between versions, so that a new version copies
//! only the nodes on the paths it changes. That gives the trait's semantics directly:
//! - a snapshot is a reference to the version current when it was taken: consistent, ordered
//!   range reads both ways, and nothing a later commit does can change it;
//! - a commit runs on the caller's thread under the version's write lock (arrival order): it checks
//!   the batch's expectations against the current version, applies the ops, stamps the log records
//!   with the next sequence numbers, and publishes the result. A batch refused by an expectation
//!   publishes nothing, so it appends nothing and spends no sequence number;
//! - when no snapshot holds the current version (the common case: a write's own read has ended),
//!   the commit changes it in place; only when one does is the version copied first, paths and
//!   all, as a persistent map must. Copying on every commit cost a PutItem about a fifth of its
//!   instructions (the copied paths, then freeing the old ones: docs/benchmarks.md, "Issue 26").
//!   Once the expectations hold, applying the ops cannot fail, so a batch is applied whole;
//! - old versions are reclaimed as soon as no snapshot holds them (reference counts), so memory is
//!   the current data plus whatever live snapshots still see.
//!
//! Snapshots take the lock only to clone the current version's `Arc`, never while a version is read;
//! a one-shot read (`Engine::read`: GetItem's) looks its keys up under the read lock instead, without
//! counting a reference. The data map's keys hold their first bytes inline ([`key`]), so that a
//! lookup's comparisons seldom leave the map's nodes.
//! docs/storage-format.md has the measurements behind the choice.

mod key;

use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use bytes::Bytes;
use haven_storage::{
    CommitError, Engine, LogEntry, LogPosition, LogRecord, PendingCommit, PendingRead, Snapshot,
    StorageError, WriteBatch, WriteOp, decode_counter,
};
use imbl::OrdMap;

use crate::key::Key;

/// A record's place in the log: its table, then its position, so a table's records are contiguous
/// and in log order.
type LogKey = (u64, LogPosition);

/// The engine: the version new snapshots see; its write lock makes commits one at a time.
#[derive(Default)]
pub struct MemoryEngine {
    current: RwLock<Arc<Version>>,
}

/// One committed state of the engine. Cloning it is cheap: the maps share their nodes.
#[derive(Clone, Default)]
struct Version {
    data: OrdMap<Key, Bytes>,
    log: OrdMap<LogKey, Arc<LogRecord>>,
    /// The position of the last record appended, of any table.
    head: LogPosition,
    /// Per table, where its log was last trimmed.
    horizons: OrdMap<u64, LogPosition>,
}

impl MemoryEngine {
    pub fn new() -> MemoryEngine {
        MemoryEngine::default()
    }

    /// Applies `batch` if its expectations hold against the current version, and publishes the
    /// result: in place when no snapshot holds the current version, else on a copy.
    fn apply(&self, batch: WriteBatch) -> Result<(), CommitError> {
        let WriteBatch { expectations, ops } = batch;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let holds = expectations.into_iter().all(|(key, expected)| {
            current.data.get(&Key::from(key)).map(|v| &v[..]) == expected.as_deref()
        });
        if !holds {
            return Err(CommitError::Conflict);
        }
        let now_ms = unix_millis();
        let next = Arc::make_mut(&mut current);
        for op in ops {
            next.apply(op, now_ms);
        }
        Ok(())
    }

    /// The current version, for a snapshot.
    fn current(&self) -> Arc<Version> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Version {
    fn apply(&mut self, op: WriteOp, now_ms: u64) {
        match op {
            WriteOp::Put(key, value) => {
                self.data.insert(Key::from(key), Bytes::from(value));
            }
            WriteOp::Delete(key) => {
                self.data.remove(&Key::from(key));
            }
            WriteOp::AddCounter(key, delta) => self.add_counter(Key::from(key), delta),
            WriteOp::DeleteRange(start, end) => {
                let (start, end) = (Key::from(start), Key::from(end));
                let doomed = keys_in(&self.data, (Bound::Included(&start), Bound::Excluded(&end)));
                for key in doomed {
                    self.data.remove(&key);
                }
            }
            WriteOp::AppendLog(record) => {
                self.head = self.head.next(now_ms);
                self.log.insert((record.table, self.head), Arc::new(record));
            }
            WriteOp::TrimLog { table, before } => self.trim_log(table, before),
        }
    }

    /// Adds `delta` to the counter at `key` (absent is 0); a counter that reaches 0 is removed.
    /// A counter that exists and stays is changed where it lies: one descent of the map, not a
    /// lookup and then an insert (every item write moves two counters).
    fn add_counter(&mut self, key: Key, delta: i64) {
        let counter = |total: i64| Bytes::copy_from_slice(&total.to_be_bytes());
        if let Some(value) = self.data.get_mut(&key) {
            let total = decode_counter(value).wrapping_add(delta);
            if total != 0 {
                *value = counter(total);
            } else {
                self.data.remove(&key);
            }
        } else if delta != 0 {
            self.data.insert(key, counter(delta));
        }
    }

    fn trim_log(&mut self, table: u64, before: LogPosition) {
        let (start, end) = ((table, LogPosition::START), (table, before));
        let doomed = keys_in(&self.log, (Bound::Included(&start), Bound::Excluded(&end)));
        for key in doomed {
            self.log.remove(&key);
        }
        let horizon = self.horizon(table).max(before);
        self.horizons.insert(table, horizon);
    }

    fn horizon(&self, table: u64) -> LogPosition {
        self.horizons
            .get(&table)
            .copied()
            .unwrap_or(LogPosition::START)
    }
}

/// The keys of `map` in `range` (none if the range is inverted).
fn keys_in<K, V, Q>(map: &OrdMap<K, V>, range: (Bound<&Q>, Bound<&Q>)) -> Vec<K>
where
    K: Ord + Clone + std::borrow::Borrow<Q>,
    V: Clone,
    Q: Ord + ?Sized,
{
    if is_empty(range) {
        return Vec::new();
    }
    map.range(range).map(|(key, _)| key.clone()).collect()
}

/// Whether no key can lie in `range`; an ordered map's range read refuses (panics on) an inverted
/// range, which a caller's bounds must never reach.
fn is_empty<Q: Ord + ?Sized>(range: (Bound<&Q>, Bound<&Q>)) -> bool {
    match range {
        (Bound::Included(start), Bound::Included(end)) => start > end,
        (Bound::Included(start) | Bound::Excluded(start), Bound::Excluded(end))
        | (Bound::Excluded(start), Bound::Included(end)) => start >= end,
        _ => false,
    }
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

impl Engine for MemoryEngine {
    fn snapshot(&self) -> Result<Box<dyn Snapshot>, StorageError> {
        Ok(Box::new(MemorySnapshot(self.current())))
    }

    /// Reads the current version under its read lock, without a snapshot: a GetItem then counts no
    /// reference to the version (two atomic operations on one shared counter, from both cores at
    /// once) and allocates no snapshot.
    fn read(&self, keys: Vec<Vec<u8>>) -> PendingRead {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let values = keys
            .into_iter()
            .map(|key| {
                current
                    .data
                    .get(&Key::from(key))
                    .map(|value| value.to_vec())
            })
            .collect();
        PendingRead::ready(Ok(values))
    }

    /// Commits at once on the caller's thread: there is nothing to wait for.
    fn commit(&self, batch: WriteBatch) -> PendingCommit {
        let started = Instant::now();
        let outcome = self.apply(batch);
        haven_metrics::commit(1, started.elapsed().as_secs_f64(), false);
        PendingCommit::ready(outcome)
    }
}

/// A snapshot: the version that was current when it was taken, kept alive as long as it is.
struct MemorySnapshot(Arc<Version>);

impl Snapshot for MemorySnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .0
            .data
            .get(&Key::copied(key))
            .map(|value| value.to_vec()))
    }

    fn scan(
        &self,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StorageError> {
        let (start, end) = (range.0.map(Key::copied), range.1.map(Key::copied));
        visit_range(
            &self.0.data,
            (start.as_ref(), end.as_ref()),
            reverse,
            &mut |key, value| visit(key.bytes(), value),
        );
        Ok(())
    }

    fn scan_log(
        &self,
        table: u64,
        range: (Bound<LogPosition>, Bound<LogPosition>),
        reverse: bool,
        visit: &mut dyn FnMut(LogEntry) -> bool,
    ) -> Result<(), StorageError> {
        let start = match range.0 {
            Bound::Unbounded => Bound::Included((table, LogPosition::START)),
            bound => bound.map(|position| (table, position)),
        };
        let end = match range.1 {
            Bound::Unbounded => Bound::Included((table, LAST_POSITION)),
            bound => bound.map(|position| (table, position)),
        };
        visit_range(
            &self.0.log,
            (start.as_ref(), end.as_ref()),
            reverse,
            &mut |&(_, position), record| {
                let record = LogRecord::clone(record);
                visit(LogEntry { position, record })
            },
        );
        Ok(())
    }

    fn log_head(&self) -> Result<LogPosition, StorageError> {
        Ok(self.0.head)
    }

    fn log_horizon(&self, table: u64) -> Result<LogPosition, StorageError> {
        Ok(self.0.horizon(table))
    }

    fn next_log_table(&self, after: Option<u64>) -> Result<Option<u64>, StorageError> {
        let first = match after {
            None => 0,
            Some(table) => match table.checked_add(1) {
                Some(next) => next,
                None => return Ok(None),
            },
        };
        let start = (first, LogPosition::START);
        let mut found = self
            .0
            .log
            .range((Bound::Included(&start), Bound::Unbounded))
            .map(|((table, _), _)| *table);
        Ok(found.next())
    }
}

/// The greatest position, which no record reaches: the end of a table's records.
const LAST_POSITION: LogPosition = LogPosition {
    timestamp_ms: u64::MAX,
    sequence: u64::MAX,
};

/// Visits the pairs of `map` in `range`, ascending or descending, until `visit` answers false.
fn visit_range<K, V, Q>(
    map: &OrdMap<K, V>,
    range: (Bound<&Q>, Bound<&Q>),
    reverse: bool,
    visit: &mut dyn FnMut(&K, &V) -> bool,
) where
    K: Ord + Clone + std::borrow::Borrow<Q>,
    V: Clone,
    Q: Ord + ?Sized,
{
    if is_empty(range) {
        return;
    }
    let pairs = map.range(range);
    if reverse {
        for (key, value) in pairs.rev() {
            if !visit(key, value) {
                break;
            }
        }
    } else {
        for (key, value) in pairs {
            if !visit(key, value) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests;
