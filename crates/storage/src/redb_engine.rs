//! The embedded engine: one redb database holding every key in one ordered table.
//!
//! Durability comes from group commit. redb allows one write transaction at a time and a durable
//! commit costs an fsync (about a millisecond here), so a write-per-commit server would top out
//! near a thousand writes per second however many clients it had. Instead every batch goes to a
//! single committer thread that drains whatever is queued, applies the batches in arrival order
//! inside one redb transaction (checking each batch's expectations against the state left by the
//! batches before it), commits and syncs once, and only then answers each caller. A batch is thus
//! acknowledged only after it is on disk, and throughput grows with the number of concurrent
//! writers. Readers never wait: redb's snapshots are MVCC.

use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread::JoinHandle;

use redb::{
    Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, StorageBackend,
    TableDefinition,
};
use tokio::sync::oneshot;

use crate::batch::{CommitError, PendingCommit, WriteBatch, WriteOp};
use crate::log::{self, LogEntry, LogPosition, LogRecord};
use crate::{CacheStats, Engine, Snapshot, StorageError};

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
/// The change log: `table id | position` (see `log::entry_key`) → the encoded record, and the
/// head under [`HEAD_ENTRY`].
const LOG: TableDefinition<&[u8], &[u8]> = TableDefinition::new("log");
/// The log's own state: per table, [`log::horizon_key`] (and, in a database last written before
/// the head moved to [`HEAD_ENTRY`], the head under [`log::HEAD_KEY`]).
const LOG_STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("log-state");
/// The key of the log head in [`LOG`]: after every record (no table has the id `u64::MAX`, and
/// every scan of records stops before it). Each group commit that appends stores the head; kept
/// in its own table, that store copied one more B-tree's pages on every group, while here it
/// lands on the right edge the newest logged table's appends write anyway.
const HEAD_ENTRY: [u8; 24] = [0xFF; 24];
/// Upper bound on batches folded into one transaction, so that one commit's latency stays bounded.
const MAX_GROUP: usize = 1024;
const DATABASE_FILE: &str = "haven.redb";
const LOCK_FILE: &str = "LOCK";

type CommitRequest = (WriteBatch, oneshot::Sender<Result<(), CommitError>>);
/// A committed (or failed) group, for the thread that answers its callers.
type Answers = (
    Vec<CommitRequest>,
    Result<Vec<Result<(), CommitError>>, StorageError>,
);
type Opener = Box<dyn Fn() -> Result<Database, StorageError> + Send + Sync>;

/// The embedded engine, on disk or in memory.
pub struct RedbEngine {
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<CommitRequest>>>,
    /// The committer, then the thread that answers its groups' callers: joined in that order.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Held for the engine's lifetime: a second server on the same directory is refused.
    _lock: Option<File>,
}

/// What the committer and the readers share: the open database and how to open it again.
///
/// redb latches any I/O failure (a full disk, EIO): from then on every operation of that
/// `Database` answers `PreviousIo` until it is dropped and the file opened again. The engine
/// therefore closes the database after a failed commit and reopens it on next use; the reopen
/// runs redb's crash recovery, which returns the file to its last successful commit. Requests
/// fail with an error while the medium fails, and succeed again by themselves once it recovers.
struct Shared {
    /// `None` after a failure closed it, until the next use reopens it.
    database: RwLock<Option<Database>>,
    /// Opens the database; `None` for the in-memory engine, which has nothing to reopen.
    opener: Option<Opener>,
    durability: Durability,
}

fn io_error(error: impl std::fmt::Display) -> StorageError {
    StorageError::Io(error.to_string())
}

/// Describes a failure to open `file`, naming it; damage found by the checksums is `Corrupted`.
fn open_error(file: &str, error: DatabaseError) -> StorageError {
    match error {
        DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => StorageError::Corrupted {
            file: file.to_string(),
            detail,
        },
        other => StorageError::Io(format!("{file}: {other}")),
    }
}

/// redb's open settings for a durable database stored in `file`.
///
/// Every open verifies the checksum of every page of the committed trees: a file damaged outside
/// redb is refused with `Corrupted` instead of being trusted (a plain open trusts a cleanly closed
/// file and may return garbage or panic). If the newest commit fails its checksum while an older
/// one verifies, redb rolls back to the older one, which is how it recovers a commit torn by a
/// power loss; that is logged, naming the file.
///
/// `cache_bytes` bounds redb's own page cache, which is most of the server's memory: redb's default
/// (1 GiB) let a server holding 1 million 1 KB items grow to 1.4 GB. Pages outside it are read
/// through the operating system's page cache, which the kernel can reclaim.
fn builder(file: &str, cache_bytes: usize) -> redb::Builder {
    let mut builder = Database::builder();
    let file = file.to_string();
    builder
        .set_cache_size(cache_bytes)
        .set_check_integrity_on_open(true)
        .set_repair_callback(move |session| {
            // redb reports progress 0.3 only when it falls back past a damaged newest commit.
            if session.progress() == 0.3 {
                tracing::warn!(
                    file,
                    "the newest commit failed its checksum (interrupted by a crash or an I/O \
                     error, or damaged): rolled back to the previous commit"
                );
            }
        });
    builder
}

/// The page cache of a durable engine unless configured otherwise: 128 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 128 * 1024 * 1024;

impl RedbEngine {
    /// Opens (creating if needed) the database in `dir` with the default page cache
    /// ([`DEFAULT_CACHE_BYTES`]); every commit is synced to disk.
    pub fn open(dir: &Path) -> Result<RedbEngine, StorageError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// [`RedbEngine::open`] with a page cache of at most `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: usize) -> Result<RedbEngine, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(format!("{}: {e}", dir.display())))?;
        let lock = File::create(dir.join(LOCK_FILE)).map_err(io_error)?;
        lock.try_lock()
            .map_err(|_| StorageError::Locked(dir.display().to_string()))?;
        let path: PathBuf = dir.join(DATABASE_FILE);
        let file = path.display().to_string();
        let opener = move || {
            builder(&file, cache_bytes)
                .create(&path)
                .map_err(|e| open_error(&file, e))
        };
        Self::start_durable(Box::new(opener), Some(lock))
    }

    /// A durable engine on backends made by `backend` (one per open; they must share the same
    /// bytes), for fault-injection tests on a [`crate::SimulatedDisk`]. `name` names the file in
    /// messages.
    pub fn on_backend<B: StorageBackend>(
        name: &str,
        backend: impl Fn() -> B + Send + Sync + 'static,
    ) -> Result<RedbEngine, StorageError> {
        let file = name.to_string();
        let opener = move || {
            builder(&file, DEFAULT_CACHE_BYTES)
                .create_with_backend(backend())
                .map_err(|e| open_error(&file, e))
        };
        Self::start_durable(Box::new(opener), None)
    }

    fn start_durable(opener: Opener, lock: Option<File>) -> Result<RedbEngine, StorageError> {
        let database = opener()?;
        Self::start(database, Some(opener), Durability::Immediate, lock)
    }

    /// A database that lives only in memory (for tests and throw-away servers).
    pub fn in_memory() -> Result<RedbEngine, StorageError> {
        let database = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(io_error)?;
        Self::start(database, None, Durability::None, None)
    }

    fn start(
        database: Database,
        opener: Option<Opener>,
        durability: Durability,
        lock: Option<File>,
    ) -> Result<RedbEngine, StorageError> {
        create_data_table(&database)?;
        let shared = Arc::new(Shared {
            database: RwLock::new(Some(database)),
            opener,
            durability,
        });
        let (sender, receiver) = mpsc::channel();
        let (answers, to_answer) = mpsc::channel();
        let answerer = std::thread::Builder::new()
            .name("haven-answers".into())
            .spawn(move || answer(to_answer))
            .map_err(io_error)?;
        let committer_shared = shared.clone();
        let committer = std::thread::Builder::new()
            .name("haven-committer".into())
            .spawn(move || run_committer(&committer_shared, receiver, answers))
            .map_err(io_error)?;
        Ok(RedbEngine {
            shared,
            sender: Mutex::new(Some(sender)),
            threads: Mutex::new(vec![committer, answerer]),
            _lock: lock,
        })
    }

    /// Stops accepting batches, waits for the queued ones to commit and be answered, and stops the
    /// committer.
    pub fn shutdown(&self) {
        self.sender.lock().unwrap().take();
        for thread in self.threads.lock().unwrap().drain(..) {
            let _ = thread.join();
        }
    }
}

fn create_data_table(database: &Database) -> Result<(), StorageError> {
    let txn = database.begin_write().map_err(io_error)?;
    for table in [DATA, LOG, LOG_STATE] {
        txn.open_table(table).map_err(io_error)?;
    }
    txn.commit().map_err(io_error)
}

impl Shared {
    /// Runs `use_database` on the open database, reopening it first if a failure closed it.
    fn with_database<T>(
        &self,
        use_database: impl FnOnce(&Database) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if let Some(database) = self.database.read().unwrap().as_ref() {
            return use_database(database);
        }
        let mut slot = self.database.write().unwrap();
        if slot.is_none() {
            let opener = self.opener.as_ref().ok_or(StorageError::Closed)?;
            let database = opener()?;
            create_data_table(&database)?;
            tracing::info!("storage reopened after a failure");
            *slot = Some(database);
        }
        use_database(slot.as_ref().expect("just opened"))
    }

    /// Drops the database after a failed commit, so that the next use reopens it. Readers hold
    /// the lock only while they begin a snapshot; a snapshot begun earlier answers errors.
    fn close_after_failure(&self) {
        if self.opener.is_some() {
            self.database.write().unwrap().take();
        }
    }
}

impl Drop for RedbEngine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Engine for RedbEngine {
    fn snapshot(&self) -> Result<Box<dyn Snapshot>, StorageError> {
        self.shared.with_database(|database| {
            let txn = database.begin_read().map_err(io_error)?;
            let table = txn.open_table(DATA).map_err(io_error)?;
            Ok(Box::new(RedbSnapshot { txn, table }) as Box<dyn Snapshot>)
        })
    }

    fn commit(&self, batch: WriteBatch) -> PendingCommit {
        let (reply, pending) = PendingCommit::channel();
        if let Some(sender) = self.sender.lock().unwrap().as_ref() {
            // A send error means the committer is gone; dropping `reply` resolves as Closed.
            let _ = sender.send((batch, reply));
        }
        pending
    }

    fn cache_stats(&self) -> Option<CacheStats> {
        let stats = self
            .shared
            .with_database(|database| Ok(database.cache_stats()))
            .ok()?;
        Some(CacheStats {
            hits: stats.read_hits() + stats.write_hits(),
            misses: stats.read_misses() + stats.write_misses(),
            evictions: stats.evictions(),
            bytes: stats.used_bytes() as u64,
        })
    }
}

/// A read transaction; the data table is opened at once (every read uses it), the log's tables
/// only when a log reader asks.
struct RedbSnapshot {
    txn: redb::ReadTransaction,
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl RedbSnapshot {
    fn log_state(&self, key: &[u8]) -> Result<LogPosition, StorageError> {
        let state = self.txn.open_table(LOG_STATE).map_err(io_error)?;
        read_position(&state, key)
    }

    fn log_table(&self) -> Result<redb::ReadOnlyTable<&'static [u8], &'static [u8]>, StorageError> {
        self.txn.open_table(LOG).map_err(io_error)
    }
}

impl Snapshot for RedbSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .table
            .get(key)
            .map_err(io_error)?
            .map(|v| v.value().to_vec()))
    }

    fn scan(
        &self,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StorageError> {
        self::scan(&self.table, range, reverse, &mut |key, value| {
            Ok(visit(key, value))
        })
    }

    fn scan_log(
        &self,
        table: u64,
        range: (Bound<LogPosition>, Bound<LogPosition>),
        reverse: bool,
        visit: &mut dyn FnMut(LogEntry) -> bool,
    ) -> Result<(), StorageError> {
        let (start, end) = log::entry_range(table, range);
        let bounds = (start.as_ref().map(|k| &k[..]), end.as_ref().map(|k| &k[..]));
        self::scan(&self.log_table()?, bounds, reverse, &mut |key, value| {
            Ok(visit(log::decode_entry(key, value)?))
        })
    }

    fn log_head(&self) -> Result<LogPosition, StorageError> {
        let state = self.txn.open_table(LOG_STATE).map_err(io_error)?;
        read_head(&self.log_table()?, &state)
    }

    fn log_horizon(&self, table: u64) -> Result<LogPosition, StorageError> {
        self.log_state(&log::horizon_key(table))
    }

    fn next_log_table(&self, after: Option<u64>) -> Result<Option<u64>, StorageError> {
        let start = match after {
            Some(table) => log::table_end(table),
            None => [0; 24],
        };
        let mut found = None;
        self::scan(
            &self.log_table()?,
            (
                Bound::Included(&start[..]),
                Bound::Excluded(&HEAD_ENTRY[..]),
            ),
            false,
            &mut |key, _| {
                found = log::parse_entry_key(key).map(|(table, _)| table);
                Ok(false)
            },
        )?;
        Ok(found)
    }
}

/// What [`scan`] calls for each pair: whether to go on.
type Visitor<'v> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StorageError> + 'v;

/// Visits a redb table's pairs in `range` until `visit` answers false or an error.
fn scan(
    table: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    range: (Bound<&[u8]>, Bound<&[u8]>),
    reverse: bool,
    visit: &mut Visitor,
) -> Result<(), StorageError> {
    let iter = table.range::<&[u8]>(range).map_err(io_error)?;
    let entries: Box<dyn Iterator<Item = _>> = if reverse {
        Box::new(iter.rev())
    } else {
        Box::new(iter)
    };
    for entry in entries {
        let (key, value) = entry.map_err(io_error)?;
        if !visit(key.value(), value.value())? {
            break;
        }
    }
    Ok(())
}

/// The committer loop: one redb transaction and one sync per group of queued batches. The group
/// then goes to the answering thread, so that waking its callers (and freeing its batches)
/// overlaps the next group's commit instead of delaying it.
fn run_committer(
    shared: &Shared,
    receiver: mpsc::Receiver<CommitRequest>,
    answers: mpsc::Sender<Answers>,
) {
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let result =
            shared.with_database(|database| commit_group(database, shared.durability, &group));
        haven_metrics::commit(
            group.len(),
            started.elapsed().as_secs_f64(),
            result.is_err(),
        );
        if let Err(error) = &result {
            tracing::error!(%error, "group commit failed; the storage will be reopened");
            shared.close_after_failure();
        }
        // The answering thread outlives the committer (it ends when this sender drops).
        let _ = answers.send((group, result));
    }
}

/// Answers each group's callers with their batches' outcomes, or the group's storage error.
fn answer(groups: mpsc::Receiver<Answers>) {
    for (group, result) in groups {
        match result {
            Ok(outcomes) => {
                for ((_, reply), outcome) in group.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                for (_, reply) in group {
                    let _ = reply.send(Err(CommitError::Storage(error.clone())));
                }
            }
        }
    }
}

/// Applies each batch whose expectations hold, then commits; returns each batch's outcome.
fn commit_group(
    database: &Database,
    durability: Durability,
    group: &[CommitRequest],
) -> Result<Vec<Result<(), CommitError>>, StorageError> {
    let mut txn = database.begin_write().map_err(io_error)?;
    txn.set_durability(durability).map_err(io_error)?;
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut table = txn.open_table(DATA).map_err(io_error)?;
        let logs = group
            .iter()
            .any(|(batch, _)| batch.ops.iter().any(is_log_op));
        let mut log = logs.then(|| LogWriter::open(&txn)).transpose()?;
        for (batch, _) in group {
            if expectations_hold(&table, batch)? {
                apply(&mut table, log.as_mut(), batch)?;
                outcomes.push(Ok(()));
            } else {
                outcomes.push(Err(CommitError::Conflict));
            }
        }
        if let Some(log) = log {
            log.finish()?;
        }
    }
    txn.commit().map_err(io_error)?;
    Ok(outcomes)
}

fn is_log_op(op: &WriteOp) -> bool {
    matches!(op, WriteOp::AppendLog(_) | WriteOp::TrimLog { .. })
}

/// The log's tables inside one group's transaction, and the head as the group moves it. Every
/// record of the group is stamped with the group's start time (never below the previous head).
struct LogWriter<'t> {
    log: redb::Table<'t, &'static [u8], &'static [u8]>,
    state: redb::Table<'t, &'static [u8], &'static [u8]>,
    head: LogPosition,
    moved: bool,
    now_ms: u64,
}

impl<'t> LogWriter<'t> {
    fn open(txn: &'t redb::WriteTransaction) -> Result<LogWriter<'t>, StorageError> {
        let log = txn.open_table(LOG).map_err(io_error)?;
        let state = txn.open_table(LOG_STATE).map_err(io_error)?;
        let head = read_head(&log, &state)?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        Ok(LogWriter {
            log,
            state,
            head,
            moved: false,
            now_ms,
        })
    }

    fn append(&mut self, record: &LogRecord) -> Result<(), StorageError> {
        let position = self.head.next(self.now_ms);
        let key = log::entry_key(record.table, position);
        self.log
            .insert(&key[..], log::encode_record(record).as_slice())
            .map_err(io_error)?;
        self.head = position;
        self.moved = true;
        Ok(())
    }

    fn trim(&mut self, table: u64, before: LogPosition) -> Result<(), StorageError> {
        let (start, end) = (
            log::entry_key(table, LogPosition::START),
            log::entry_key(table, before),
        );
        self.log
            .retain_in::<&[u8], _>(&start[..]..&end[..], |_, _| false)
            .map_err(io_error)?;
        let key = log::horizon_key(table);
        let horizon = read_position(&self.state, &key)?.max(before);
        self.state
            .insert(&key[..], &horizon.to_bytes()[..])
            .map_err(io_error)?;
        Ok(())
    }

    /// Stores the head the group's appends reached.
    fn finish(mut self) -> Result<(), StorageError> {
        if self.moved {
            self.log
                .insert(&HEAD_ENTRY[..], &self.head.to_bytes()[..])
                .map_err(io_error)?;
        }
        Ok(())
    }
}

/// The log head: under [`HEAD_ENTRY`], or where a database written before it kept the head.
fn read_head(
    log: &impl ReadableTable<&'static [u8], &'static [u8]>,
    state: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<LogPosition, StorageError> {
    match log.get(&HEAD_ENTRY[..]).map_err(io_error)? {
        Some(stored) => Ok(LogPosition::from_bytes(stored.value()).unwrap_or(LogPosition::START)),
        None => read_position(state, log::HEAD_KEY),
    }
}

fn read_position(
    state: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<LogPosition, StorageError> {
    let stored = state.get(key).map_err(io_error)?;
    Ok(stored
        .and_then(|v| LogPosition::from_bytes(v.value()))
        .unwrap_or(LogPosition::START))
}

fn expectations_hold(
    table: &redb::Table<&[u8], &[u8]>,
    batch: &WriteBatch,
) -> Result<bool, StorageError> {
    for (key, expected) in &batch.expectations {
        let current = table.get(key.as_slice()).map_err(io_error)?;
        if current.as_ref().map(|v| v.value()) != expected.as_deref() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn apply(
    table: &mut redb::Table<&[u8], &[u8]>,
    mut log: Option<&mut LogWriter>,
    batch: &WriteBatch,
) -> Result<(), StorageError> {
    for op in &batch.ops {
        match op {
            WriteOp::Put(key, value) => {
                table
                    .insert(key.as_slice(), value.as_slice())
                    .map_err(io_error)?;
            }
            WriteOp::Delete(key) => {
                table.remove(key.as_slice()).map_err(io_error)?;
            }
            WriteOp::AddCounter(key, delta) => {
                let current = table
                    .get(key.as_slice())
                    .map_err(io_error)?
                    .map(|v| crate::decode_counter(v.value()));
                let updated = current.unwrap_or(0) + delta;
                if updated == 0 {
                    table.remove(key.as_slice()).map_err(io_error)?;
                } else {
                    table
                        .insert(key.as_slice(), updated.to_be_bytes().as_slice())
                        .map_err(io_error)?;
                }
            }
            WriteOp::DeleteRange(start, end) => {
                table
                    .retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false)
                    .map_err(io_error)?;
            }
            WriteOp::AppendLog(record) => log.as_mut().expect("opened").append(record)?,
            WriteOp::TrimLog { table, before } => {
                log.as_mut().expect("opened").trim(*table, *before)?
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Origin;

    fn record() -> LogRecord {
        LogRecord {
            table: 1,
            key: b"k".to_vec(),
            old: None,
            new: Some(b"v".to_vec()),
            origin: Origin::User,
            partial: Default::default(),
        }
    }

    #[test]
    fn a_head_stored_where_it_used_to_be_is_read_and_numbering_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let before = LogPosition {
            timestamp_ms: 5,
            sequence: 41,
        };
        {
            let database = Database::create(dir.path().join(DATABASE_FILE)).unwrap();
            create_data_table(&database).unwrap();
            let txn = database.begin_write().unwrap();
            txn.open_table(LOG_STATE)
                .unwrap()
                .insert(log::HEAD_KEY, &before.to_bytes()[..])
                .unwrap();
            txn.commit().unwrap();
        }
        let engine = RedbEngine::open(dir.path()).unwrap();
        assert_eq!(engine.snapshot().unwrap().log_head().unwrap(), before);
        let mut batch = WriteBatch::new();
        batch.append_log(record());
        engine.commit(batch).wait().unwrap();
        let snapshot = engine.snapshot().unwrap();
        let head = snapshot.log_head().unwrap();
        assert_eq!(head.sequence, 42);
        let mut entries = Vec::new();
        let all = (Bound::Unbounded, Bound::Unbounded);
        snapshot
            .scan_log(1, all, false, &mut |entry| {
                entries.push(entry.position);
                true
            })
            .unwrap();
        assert_eq!(entries, [head]);
        assert_eq!(snapshot.next_log_table(Some(1)).unwrap(), None);
    }
}
