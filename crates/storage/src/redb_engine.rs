//! The embedded engine: redb as the ordered index, item values in a log Haven writes itself.
//!
//! Durability comes from group commit. Every batch goes to a single committer thread that drains
//! whatever is queued and applies the batches in arrival order (checking each batch's
//! expectations against the state left by the batches before it). On disk, the group's effects
//! become one record of the value log (`value_log.rs`), appended and synced once, and only then
//! does the index see them, in a redb transaction committed without a sync of its own; every so
//! often that commit is durable and records how far the log is covered (a checkpoint), and opening
//! replays the log after it. So a batch is acknowledged only once it is on disk, throughput grows
//! with the number of concurrent writers, and a 1 KB item costs about its own bytes on disk
//! instead of redb's copied pages (docs/storage-format.md, "The value log"). In memory (tests,
//! throw-away servers) there is no log: values stay in the index.
//!
//! Readers never wait: a snapshot is a redb read transaction plus the set of segment files open
//! when it began. Values of at least [`INLINE_MAX`] bytes are read from their segment; smaller
//! ones (counters, catalog entries) are kept in the index entry itself. A compactor rewrites the
//! live values of mostly dead segments and then removes them ([`Compactor`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{
    Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, TableDefinition,
    TableHandle,
};
use tokio::sync::oneshot;

use crate::batch::{CommitError, PendingCommit, WriteBatch, WriteOp};
use crate::log::{self, LogEntry, LogPosition};
use crate::value_log::{self, Effect, FsDir, LogDir, LogFile, Record, Segments, Target};
use crate::{CacheStats, Engine, SimulatedDisk, Snapshot, StorageError};

/// Key → index entry: [`INLINE`] and the value, or [`POINTER`] and where the value lies in the log.
const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
/// Key → value, as an engine before the value log kept them; moved into [`ENTRIES`] on open.
const OLD_DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
/// The change log: `table id | position` (see `log::entry_key`) → the encoded record, and the
/// head under [`HEAD_ENTRY`].
const LOG: TableDefinition<&[u8], &[u8]> = TableDefinition::new("log");
/// The log's own state: per table, [`log::horizon_key`] (and, in a database last written before
/// the head moved to [`HEAD_ENTRY`], the head under [`log::HEAD_KEY`]).
const LOG_STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("log-state");
/// The value log's state in the index: [`CHECKPOINT`], and the live bytes of each segment
/// ([`live_key`]), which the compactor chooses by.
const VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("value-log");
/// Where the log stood at the last durable index commit: segment (u32 BE), offset (u64 BE).
const CHECKPOINT: &[u8] = b"checkpoint";
/// The key of the log head in [`LOG`]: after every record (no table has the id `u64::MAX`, and
/// every scan of records stops before it). Each group commit that appends stores the head; kept
/// in its own table, that store copied one more B-tree's pages on every group, while here it
/// lands on the right edge the newest logged table's appends write anyway.
const HEAD_ENTRY: [u8; 24] = [0xFF; 24];
/// Upper bound on batches folded into one transaction, so that one commit's latency stays bounded.
const MAX_GROUP: usize = 1024;
const DATABASE_FILE: &str = "haven.redb";
const LOCK_FILE: &str = "LOCK";

const INLINE: u8 = 0;
const POINTER: u8 = 1;
/// Values at least this long live in the log; shorter ones in their index entry (a pointer is 17
/// bytes, and a counter moved by every write would otherwise cost a segment read per batch).
pub(crate) const INLINE_MAX: usize = 64;
/// A segment is sealed, and the next one started, once it holds this much.
const SEGMENT_BYTES: u64 = 64 << 20;
/// The index is committed durably (a checkpoint) after this many groups or this long, whichever
/// comes first, and after a second without writes: replay at start-up is bounded by either.
const CHECKPOINT_GROUPS: u32 = 256;
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// The compactor takes at most this many bytes of a segment's records per step.
const COMPACTION_STEP: u64 = 1 << 20;
/// Under a steady stream of writes, one compaction step every this many groups.
const COMPACTION_EVERY: u32 = 8;
/// Compaction steps after a second without writes, at most (each checks for a waiting batch).
const IDLE_STEPS: usize = 256;

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

/// What the committer and the readers share: the open index and log, and how to open them again.
///
/// redb latches any I/O failure (a full disk, EIO): from then on every operation of that
/// `Database` answers `PreviousIo` until it is dropped and the file opened again; and after a
/// failed append the log's tail is unknown. The engine therefore closes both after a failed
/// commit and reopens them on next use, which runs the same recovery as a start after a crash:
/// redb returns to its last durable commit, the log's torn tail is cut and the rest replayed.
/// Requests fail with an error while the medium fails, and succeed again by themselves once it
/// recovers.
struct Shared {
    /// `None` after a failure closed it, until the next use reopens it.
    open: RwLock<Option<Open>>,
    /// Opens the index; `None` for the in-memory engine, which has nothing to reopen.
    opener: Option<Opener>,
    /// The segment files; `None` in memory.
    dir: Option<Arc<dyn LogDir>>,
    segment_bytes: u64,
}

struct Open {
    database: Database,
    values: Option<Arc<Values>>,
}

/// The value log as the committer writes it and readers read it.
struct Values {
    dir: Arc<dyn LogDir>,
    segments: RwLock<Arc<Segments>>,
    writer: Mutex<Writer>,
    segment_bytes: u64,
}

/// Where the next record goes, and how much the index's durable state lags behind the log.
struct Writer {
    segment: u32,
    end: u64,
    file: Arc<dyn LogFile>,
    groups_since_checkpoint: u32,
    checkpointed: Instant,
}

fn io_error(error: impl std::fmt::Display) -> StorageError {
    StorageError::Io(error.to_string())
}

fn segment_error(segment: u32, error: impl std::fmt::Display) -> StorageError {
    StorageError::Io(format!("value log segment {segment}: {error}"))
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
        Self::open_in(dir, cache_bytes, SEGMENT_BYTES)
    }

    fn open_in(
        dir: &Path,
        cache_bytes: usize,
        segment_bytes: u64,
    ) -> Result<RedbEngine, StorageError> {
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
        let segments = Arc::new(FsDir(dir.to_path_buf()));
        Self::start(
            Some(Box::new(opener)),
            Some(segments),
            segment_bytes,
            Some(lock),
        )
    }

    /// A durable engine whose index file and segment files are on `disk`, for fault-injection
    /// tests; it reopens on the same disk after a failure.
    pub fn on_simulated_disk(disk: &SimulatedDisk) -> Result<RedbEngine, StorageError> {
        Self::on_simulated_disk_with(disk, SEGMENT_BYTES)
    }

    fn on_simulated_disk_with(
        disk: &SimulatedDisk,
        segment_bytes: u64,
    ) -> Result<RedbEngine, StorageError> {
        let backend = disk.clone();
        let opener = move || {
            builder("simulated.redb", DEFAULT_CACHE_BYTES)
                .create_with_backend(backend.clone())
                .map_err(|e| open_error("simulated.redb", e))
        };
        let segments = Arc::new(disk.clone());
        Self::start(Some(Box::new(opener)), Some(segments), segment_bytes, None)
    }

    /// A database that lives only in memory (for tests and throw-away servers).
    pub fn in_memory() -> Result<RedbEngine, StorageError> {
        Self::start(None, None, SEGMENT_BYTES, None)
    }

    fn start(
        opener: Option<Opener>,
        dir: Option<Arc<dyn LogDir>>,
        segment_bytes: u64,
        lock: Option<File>,
    ) -> Result<RedbEngine, StorageError> {
        let mut shared = Shared {
            open: RwLock::new(None),
            opener,
            dir,
            segment_bytes,
        };
        let open = match &shared.opener {
            Some(_) => shared.open_now()?,
            None => {
                let database = Database::builder()
                    .create_with_backend(redb::backends::InMemoryBackend::new())
                    .map_err(io_error)?;
                prepare(&database)?;
                Open {
                    database,
                    values: None,
                }
            }
        };
        shared.open = RwLock::new(Some(open));
        let shared = Arc::new(shared);
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

    /// Stops accepting batches, waits for the queued ones to commit and be answered, checkpoints
    /// (so that the next start replays nothing) and stops the committer.
    pub fn shutdown(&self) {
        self.sender.lock().unwrap().take();
        for thread in self.threads.lock().unwrap().drain(..) {
            let _ = thread.join();
        }
    }
}

/// Creates the tables and moves an older engine's values into [`ENTRIES`].
fn prepare(database: &Database) -> Result<(), StorageError> {
    let mut txn = database.begin_write().map_err(io_error)?;
    let migrate = (txn.list_tables().map_err(io_error)?).any(|table| table.name() == "data");
    if !migrate {
        // Creating missing tables need not be synced: a crash before the first checkpoint
        // leaves them to be created again.
        txn.set_durability(Durability::None).map_err(io_error)?;
    }
    for table in [ENTRIES, LOG, LOG_STATE, VALUES] {
        txn.open_table(table).map_err(io_error)?;
    }
    if migrate {
        {
            let old = txn.open_table(OLD_DATA).map_err(io_error)?;
            let mut entries = txn.open_table(ENTRIES).map_err(io_error)?;
            let mut entry = Vec::new();
            for pair in old.iter().map_err(io_error)? {
                let (key, value) = pair.map_err(io_error)?;
                inline(&mut entry, value.value());
                entries.insert(key.value(), &entry[..]).map_err(io_error)?;
            }
        }
        txn.delete_table(OLD_DATA).map_err(io_error)?;
        tracing::info!("moved the values of an older data file into the index");
    }
    txn.commit().map_err(io_error)
}

impl Shared {
    /// Opens the index and the log: the torn tail cut, the records after the checkpoint replayed.
    fn open_now(&self) -> Result<Open, StorageError> {
        let opener = self.opener.as_ref().ok_or(StorageError::Closed)?;
        let database = opener()?;
        prepare(&database)?;
        let values = match &self.dir {
            Some(dir) => Some(Arc::new(recover(
                &database,
                dir.clone(),
                self.segment_bytes,
            )?)),
            None => None,
        };
        Ok(Open { database, values })
    }

    /// Runs `use_open` on the open index and log, reopening them first if a failure closed them.
    fn with_open<T>(
        &self,
        use_open: impl FnOnce(&Open) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if let Some(open) = self.open.read().unwrap().as_ref() {
            return use_open(open);
        }
        let mut slot = self.open.write().unwrap();
        if slot.is_none() {
            *slot = Some(self.open_now()?);
            tracing::info!("storage reopened after a failure");
        }
        use_open(slot.as_ref().expect("just opened"))
    }

    /// Drops the index and log after a failed commit, so that the next use reopens them. Readers
    /// hold the lock only while they begin a snapshot; a snapshot begun earlier answers errors.
    fn close_after_failure(&self) {
        if self.opener.is_some() {
            self.open.write().unwrap().take();
        }
    }
}

/// Replays the log after the index's checkpoint, cuts a torn tail, and checkpoints.
fn recover(
    database: &Database,
    dir: Arc<dyn LogDir>,
    segment_bytes: u64,
) -> Result<Values, StorageError> {
    let ids = dir.list().map_err(io_error)?;
    let mut segments = Segments::default();
    for &id in &ids {
        let file = dir.open(id, false).map_err(|e| segment_error(id, e))?;
        segments.0.insert(id, file);
    }
    // Not synced: the log it replays is durable, and a full disk need not stop reads. The index
    // then lags the log until the next checkpoint, as between any two.
    let mut txn = database.begin_write().map_err(io_error)?;
    txn.set_durability(Durability::None).map_err(io_error)?;
    let (segment, end, replayed) = {
        let mut index = Index::open(&txn, true, true)?;
        let checkpoint = index.checkpoint()?;
        let covered = checkpoint.unwrap_or((ids.first().copied().unwrap_or(1), 0));
        if checkpoint.is_some() && !segments.0.contains_key(&covered.0) {
            return Err(StorageError::Corrupted {
                file: dir.name(covered.0),
                detail: "the segment the index was last checkpointed in is missing".into(),
            });
        }
        let (mut segment, mut end) = covered;
        let mut replayed = 0u32;
        for (&id, file) in &segments.0 {
            let damaged = |detail: String| StorageError::Corrupted {
                file: dir.name(id),
                detail,
            };
            let len = file.len().map_err(|e| segment_error(id, e))?;
            let mut bytes = vec![0; len as usize];
            file.read_at(0, &mut bytes)
                .map_err(|e| segment_error(id, e))?;
            // Every record's checksum is verified, as redb verifies every page of the index;
            // those after the checkpoint are replayed.
            let intact = value_log::intact_records(&bytes, |payload, at| {
                let start = (at - value_log::HEADER) as u64;
                if (id, start) < covered {
                    return Ok(());
                }
                replayed += 1;
                value_log::effects(payload, at as u64, |effect| index.apply(effect, Some(id)))
            })?;
            if id == covered.0 && (intact as u64) < covered.1 {
                return Err(damaged(format!(
                    "a damaged record before offset {}, which the index covers",
                    covered.1
                )));
            }
            (segment, end) = (id, intact as u64);
            if intact < bytes.len() {
                if Some(&id) != ids.last() || value_log::record_follows(&bytes, intact) {
                    return Err(damaged(format!("a damaged record at offset {intact}")));
                }
                tracing::warn!(
                    file = dir.name(id),
                    offset = end,
                    "the value log ends in a record that was never completed (interrupted by a \
                     crash or an I/O error): cut there"
                );
                file.set_len(end).map_err(|e| segment_error(id, e))?;
                file.sync().map_err(|e| segment_error(id, e))?;
            }
        }
        if segments.0.is_empty() {
            let file = dir
                .open(segment, true)
                .map_err(|e| segment_error(segment, e))?;
            segments.0.insert(segment, file);
        }
        if replayed > 0 {
            tracing::info!(groups = replayed, "replayed the value log into the index");
        }
        index.finish()?;
        (segment, end, replayed)
    };
    txn.commit().map_err(io_error)?;
    let file = segments.0[&segment].clone();
    Ok(Values {
        dir,
        segments: RwLock::new(Arc::new(segments)),
        writer: Mutex::new(Writer {
            segment,
            end,
            file,
            groups_since_checkpoint: replayed,
            checkpointed: Instant::now(),
        }),
        segment_bytes,
    })
}

impl Values {
    fn segments(&self) -> Arc<Segments> {
        self.segments.read().unwrap().clone()
    }

    /// Seals the writer's segment and starts the next one.
    fn roll(&self, writer: &mut Writer) -> Result<(), StorageError> {
        let next = writer.segment + 1;
        let file = self
            .dir
            .open(next, true)
            .map_err(|e| segment_error(next, e))?;
        let mut segments = self.segments.write().unwrap();
        *segments = Arc::new(segments.with(next, file.clone()));
        (writer.segment, writer.end, writer.file) = (next, 0, file);
        Ok(())
    }
}

impl Drop for RedbEngine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Engine for RedbEngine {
    fn snapshot(&self) -> Result<Box<dyn Snapshot>, StorageError> {
        self.shared.with_open(|open| {
            // The segments first: a segment the transaction can reach is then in the set, or
            // newer than it (see `RedbSnapshot::read`).
            let segments = open.values.as_ref().map(|values| values.segments());
            let txn = open.database.begin_read().map_err(io_error)?;
            let table = txn.open_table(ENTRIES).map_err(io_error)?;
            Ok(Box::new(RedbSnapshot {
                txn,
                table,
                segments,
                values: open.values.clone(),
            }) as Box<dyn Snapshot>)
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
            .with_open(|open| Ok(open.database.cache_stats()))
            .ok()?;
        Some(CacheStats {
            hits: stats.read_hits() + stats.write_hits(),
            misses: stats.read_misses() + stats.write_misses(),
            evictions: stats.evictions(),
            bytes: stats.used_bytes() as u64,
        })
    }
}

/// An index entry, decoded.
enum Entry<'a> {
    Inline(&'a [u8]),
    Pointer { segment: u32, offset: u64, len: u32 },
}

fn inline(entry: &mut Vec<u8>, value: &[u8]) {
    entry.clear();
    entry.push(INLINE);
    entry.extend_from_slice(value);
}

fn pointer(segment: u32, offset: u64, len: u32) -> [u8; 17] {
    let mut entry = [POINTER; 17];
    entry[1..5].copy_from_slice(&segment.to_be_bytes());
    entry[5..13].copy_from_slice(&offset.to_be_bytes());
    entry[13..].copy_from_slice(&len.to_be_bytes());
    entry
}

/// The value an index entry stands for: its inline bytes, or those `read_pointer` reads from the
/// log at (segment, offset, length).
fn entry_value<'e>(
    entry: &'e [u8],
    read_pointer: impl FnOnce(u32, u64, usize) -> Result<Vec<u8>, StorageError>,
) -> Result<Cow<'e, [u8]>, StorageError> {
    Ok(match parse_entry(entry)? {
        Entry::Inline(value) => Cow::Borrowed(value),
        Entry::Pointer {
            segment,
            offset,
            len,
        } => Cow::Owned(read_pointer(segment, offset, len as usize)?),
    })
}

fn parse_entry(entry: &[u8]) -> Result<Entry<'_>, StorageError> {
    match entry.split_first() {
        Some((&INLINE, value)) => Ok(Entry::Inline(value)),
        Some((&POINTER, rest)) if rest.len() == 16 => Ok(Entry::Pointer {
            segment: u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")),
            offset: u64::from_be_bytes(rest[4..12].try_into().expect("8 bytes")),
            len: u32::from_be_bytes(rest[12..].try_into().expect("4 bytes")),
        }),
        _ => Err(StorageError::Io("an index entry does not decode".into())),
    }
}

fn live_key(segment: u32) -> [u8; 8] {
    let mut key = *b"live\0\0\0\0";
    key[4..].copy_from_slice(&segment.to_be_bytes());
    key
}

/// A read transaction and the segments open when it began; the log's tables are opened only
/// when a log reader asks.
struct RedbSnapshot {
    txn: redb::ReadTransaction,
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    segments: Option<Arc<Segments>>,
    values: Option<Arc<Values>>,
}

impl RedbSnapshot {
    fn log_state(&self, key: &[u8]) -> Result<LogPosition, StorageError> {
        let state = self.txn.open_table(LOG_STATE).map_err(io_error)?;
        read_position(&state, key)
    }

    fn log_table(&self) -> Result<redb::ReadOnlyTable<&'static [u8], &'static [u8]>, StorageError> {
        self.txn.open_table(LOG).map_err(io_error)
    }

    /// The value an index entry stands for.
    fn value<'e>(&self, entry: &'e [u8]) -> Result<Cow<'e, [u8]>, StorageError> {
        entry_value(entry, |segment, offset, len| match &self.segments {
            Some(set) if set.0.contains_key(&segment) => set.read(segment, offset, len),
            // Started after this snapshot took its set: the current set holds it.
            _ => {
                let values = self.values.as_ref().ok_or(StorageError::Closed)?;
                values.segments().read(segment, offset, len)
            }
        })
    }
}

impl Snapshot for RedbSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match self.table.get(key).map_err(io_error)? {
            Some(entry) => Ok(Some(self.value(entry.value())?.into_owned())),
            None => Ok(None),
        }
    }

    fn scan(
        &self,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StorageError> {
        self::scan(&self.table, range, reverse, &mut |key, entry| {
            Ok(visit(key, &self.value(entry)?))
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

/// The committer loop: one log record, one sync and one index commit per group of queued
/// batches. The group then goes to the answering thread, so that waking its callers (and freeing
/// its batches) overlaps the next group's commit instead of delaying it. Between groups, a
/// compaction step now and then; after a second without writes, a checkpoint.
fn run_committer(
    shared: &Shared,
    receiver: mpsc::Receiver<CommitRequest>,
    answers: mpsc::Sender<Answers>,
) {
    let mut compactor = Compactor::default();
    let mut groups = 0u32;
    let mut arrived = None;
    loop {
        let first = match arrived.take() {
            Some(first) => first,
            None => match receiver.recv_timeout(CHECKPOINT_INTERVAL) {
                Ok(first) => first,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    arrived = idle(shared, &mut compactor, &receiver);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let result = match shared.with_open(|open| Ok(commit_group(open, &group))) {
            Ok(Ok(outcomes)) => Ok(outcomes),
            Ok(Err(GroupFailure { error, reopen })) => {
                if reopen {
                    tracing::error!(%error, "group commit failed; the storage will be reopened");
                    shared.close_after_failure();
                } else {
                    tracing::error!(%error, "group commit failed; its record was cut from the log");
                }
                Err(error)
            }
            Err(error) => Err(error),
        };
        haven_metrics::commit(
            group.len(),
            started.elapsed().as_secs_f64(),
            result.is_err(),
        );
        // The answering thread outlives the committer (it ends when this sender drops).
        let _ = answers.send((group, result));
        groups = groups.wrapping_add(1);
        if groups.is_multiple_of(COMPACTION_EVERY) {
            compact(shared, &mut compactor);
        }
    }
    if let Err(error) = shared.with_open(checkpoint) {
        tracing::warn!(%error, "the checkpoint at shutdown failed; the next start replays the log");
    }
}

/// With no writes waiting: a checkpoint if the index lags the log, then compaction steps while
/// there is work, at most [`IDLE_STEPS`], until a batch arrives (returned, to commit next).
fn idle(
    shared: &Shared,
    compactor: &mut Compactor,
    receiver: &mpsc::Receiver<CommitRequest>,
) -> Option<CommitRequest> {
    let lagging = shared.with_open(|open| {
        Ok((open.values.as_ref())
            .is_some_and(|values| values.writer.lock().unwrap().groups_since_checkpoint > 0))
    });
    if matches!(lagging, Ok(true))
        && let Err(error) = shared.with_open(checkpoint)
    {
        tracing::error!(%error, "checkpoint failed; the storage will be reopened");
        shared.close_after_failure();
    }
    for _ in 0..IDLE_STEPS {
        if !compact(shared, compactor) {
            return None;
        }
        if let Ok(arrived) = receiver.try_recv() {
            return Some(arrived);
        }
    }
    None
}

/// One compaction step; whether there is more to do.
fn compact(shared: &Shared, compactor: &mut Compactor) -> bool {
    match shared.with_open(|open| compactor.step(open)) {
        Ok(more) => more,
        Err(error) => {
            tracing::error!(%error, "compaction step failed; the storage will be reopened");
            shared.close_after_failure();
            false
        }
    }
}

/// Commits the index durably, recording the log position it covers.
fn checkpoint(open: &Open) -> Result<(), StorageError> {
    let Some(values) = &open.values else {
        return Ok(());
    };
    let mut writer = values.writer.lock().unwrap();
    let txn = open.database.begin_write().map_err(io_error)?;
    {
        let mut index = Index::open(&txn, false, true)?;
        index.set_checkpoint(writer.segment, writer.end)?;
        index.finish()?;
    }
    txn.commit().map_err(io_error)?;
    writer.groups_since_checkpoint = 0;
    writer.checkpointed = Instant::now();
    Ok(())
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

/// Applies each batch whose expectations hold, appends and syncs the group's record, then commits
/// the index; returns each batch's outcome.
fn commit_group(
    open: &Open,
    group: &[CommitRequest],
) -> Result<Vec<Result<(), CommitError>>, GroupFailure> {
    let mut writer = open.values.as_ref().map(|v| v.writer.lock().unwrap());
    if let (Some(values), Some(writer)) = (&open.values, writer.as_deref_mut())
        && writer.end >= values.segment_bytes
    {
        values.roll(writer)?;
    }
    let checkpoint_due = writer.as_ref().is_some_and(|w| {
        w.groups_since_checkpoint + 1 >= CHECKPOINT_GROUPS
            || w.checkpointed.elapsed() >= CHECKPOINT_INTERVAL
    });
    let mut record = writer.as_ref().map(|w| Record::new(w.segment, w.end));
    let segments = open.values.as_ref().map(|values| values.segments());
    let mut txn = open.database.begin_write().map_err(io_error)?;
    let durability = if checkpoint_due {
        Durability::Immediate
    } else {
        Durability::None
    };
    txn.set_durability(durability).map_err(io_error)?;
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let logs = group
            .iter()
            .any(|(batch, _)| batch.ops.iter().any(is_log_op));
        let mut index = Index::open(&txn, logs, open.values.is_some())?;
        let mut stamp = logs.then(|| index.log_stamp()).transpose()?;
        for (batch, _) in group {
            let reader = Reader {
                record: record.as_ref(),
                segments: segments.as_deref(),
            };
            if expectations_hold(&index, &reader, batch)? {
                let mut out = Out {
                    index: &mut index,
                    record: record.as_mut(),
                };
                apply(&mut out, segments.as_deref(), stamp.as_mut(), batch)?;
                outcomes.push(Ok(()));
            } else {
                outcomes.push(Err(CommitError::Conflict));
            }
        }
        if let Some(stamp) = stamp.filter(|stamp| stamp.moved) {
            let mut out = Out {
                index: &mut index,
                record: record.as_mut(),
            };
            out.emit(Effect::Put(
                Target::Log,
                &HEAD_ENTRY,
                &stamp.head.to_bytes(),
                0,
            ))?;
        }
        if let (Some(mut record), Some(writer)) = (record.take(), writer.as_deref_mut()) {
            if !record.is_empty() {
                record.seal();
                let file = &writer.file;
                let appended =
                    (file.write_at(record.start, &record.bytes)).and_then(|()| file.sync());
                if let Err(error) = appended {
                    // The index transaction is dropped unapplied, so redb is untouched; cutting
                    // what the append left (durably, lest a crash bring it back) is all it takes
                    // to go on. If even that fails, the storage is reopened and recovered.
                    let cut = file.set_len(record.start).and_then(|()| file.sync());
                    return Err(GroupFailure {
                        error: segment_error(writer.segment, error),
                        reopen: cut.is_err(),
                    });
                }
                writer.end += record.bytes.len() as u64;
                writer.groups_since_checkpoint += 1;
            }
            if checkpoint_due {
                index.set_checkpoint(writer.segment, writer.end)?;
            }
        }
        index.finish()?;
    }
    txn.commit().map_err(io_error)?;
    if let Some(writer) = writer.as_deref_mut().filter(|_| checkpoint_due) {
        writer.groups_since_checkpoint = 0;
        writer.checkpointed = Instant::now();
    }
    Ok(outcomes)
}

/// Why a group failed, and whether the index and log must be reopened (anything but an append
/// whose leftovers were cut).
struct GroupFailure {
    error: StorageError,
    reopen: bool,
}

impl From<StorageError> for GroupFailure {
    fn from(error: StorageError) -> GroupFailure {
        GroupFailure {
            error,
            reopen: true,
        }
    }
}

fn is_log_op(op: &WriteOp) -> bool {
    matches!(op, WriteOp::AppendLog(_) | WriteOp::TrimLog { .. })
}

/// The index's tables inside one write transaction, and the effects on them. Shared by the
/// committer and by replay, so that replaying a record does exactly what committing it did.
struct Index<'t> {
    entries: redb::Table<'t, &'static [u8], &'static [u8]>,
    log: Option<redb::Table<'t, &'static [u8], &'static [u8]>>,
    state: Option<redb::Table<'t, &'static [u8], &'static [u8]>>,
    values: Option<redb::Table<'t, &'static [u8], &'static [u8]>>,
    /// Changes of each segment's live bytes, stored by [`Index::finish`].
    live: BTreeMap<u32, i64>,
    scratch: Vec<u8>,
}

impl<'t> Index<'t> {
    fn open(
        txn: &'t redb::WriteTransaction,
        logs: bool,
        durable: bool,
    ) -> Result<Index<'t>, StorageError> {
        let table = |definition| txn.open_table(definition).map_err(io_error);
        Ok(Index {
            entries: table(ENTRIES)?,
            log: logs.then(|| table(LOG)).transpose()?,
            state: logs.then(|| table(LOG_STATE)).transpose()?,
            values: durable.then(|| table(VALUES)).transpose()?,
            live: BTreeMap::new(),
            scratch: Vec::new(),
        })
    }

    fn table(
        &mut self,
        target: Target,
    ) -> Result<&mut redb::Table<'t, &'static [u8], &'static [u8]>, StorageError> {
        let table = match target {
            Target::Entries => Some(&mut self.entries),
            Target::Log => self.log.as_mut(),
            Target::LogState => self.state.as_mut(),
        };
        table.ok_or_else(|| StorageError::Io("a log effect outside a logging group".into()))
    }

    fn log_stamp(&self) -> Result<Stamp, StorageError> {
        let (Some(log), Some(state)) = (&self.log, &self.state) else {
            return Err(StorageError::Io("the log's tables are not open".into()));
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        Ok(Stamp {
            head: read_head(log, state)?,
            moved: false,
            now_ms,
        })
    }

    /// Applies one effect; `segment` is where a put's value lies at its offset, if in the log.
    fn apply(&mut self, effect: Effect, segment: Option<u32>) -> Result<(), StorageError> {
        let live = &mut self.live;
        match effect {
            Effect::Put(Target::Entries, key, value, offset) => {
                let logged = segment.filter(|_| value.len() >= INLINE_MAX);
                let entry: &[u8] = match logged {
                    Some(segment) => {
                        self.scratch.clear();
                        let len = u32::try_from(value.len()).map_err(io_error)?;
                        self.scratch
                            .extend_from_slice(&pointer(segment, offset, len));
                        *live.entry(segment).or_default() += i64::from(len);
                        &self.scratch
                    }
                    None => {
                        inline(&mut self.scratch, value);
                        &self.scratch
                    }
                };
                if let Some(old) = self.entries.insert(key, entry).map_err(io_error)? {
                    release(live, old.value());
                }
            }
            Effect::Delete(Target::Entries, key) => {
                if let Some(old) = self.entries.remove(key).map_err(io_error)? {
                    release(live, old.value());
                }
            }
            Effect::DeleteRange(Target::Entries, start, end) => {
                (self.entries)
                    .retain_in::<&[u8], _>(start..end, |_, entry| {
                        release(live, entry);
                        false
                    })
                    .map_err(io_error)?;
            }
            Effect::Put(target, key, value, _) => {
                self.table(target)?.insert(key, value).map_err(io_error)?;
            }
            Effect::Delete(target, key) => {
                self.table(target)?.remove(key).map_err(io_error)?;
            }
            Effect::DeleteRange(target, start, end) => {
                (self.table(target)?)
                    .retain_in::<&[u8], _>(start..end, |_, _| false)
                    .map_err(io_error)?;
            }
        }
        Ok(())
    }

    fn checkpoint(&self) -> Result<Option<(u32, u64)>, StorageError> {
        let Some(values) = &self.values else {
            return Ok(None);
        };
        let stored = values.get(CHECKPOINT).map_err(io_error)?;
        Ok(stored.and_then(|stored| {
            let bytes: [u8; 12] = stored.value().try_into().ok()?;
            Some((
                u32::from_be_bytes(bytes[..4].try_into().ok()?),
                u64::from_be_bytes(bytes[4..].try_into().ok()?),
            ))
        }))
    }

    fn set_checkpoint(&mut self, segment: u32, end: u64) -> Result<(), StorageError> {
        let mut bytes = [0; 12];
        bytes[..4].copy_from_slice(&segment.to_be_bytes());
        bytes[4..].copy_from_slice(&end.to_be_bytes());
        if let Some(values) = &mut self.values {
            values.insert(CHECKPOINT, &bytes[..]).map_err(io_error)?;
        }
        Ok(())
    }

    fn live_bytes(&self, segment: u32) -> Result<i64, StorageError> {
        let Some(values) = &self.values else {
            return Ok(0);
        };
        let stored = values.get(&live_key(segment)[..]).map_err(io_error)?;
        Ok(stored.map_or(0, |v| crate::decode_counter(v.value())))
    }

    /// Stores the live bytes' changes.
    fn finish(mut self) -> Result<(), StorageError> {
        let live = std::mem::take(&mut self.live);
        for (segment, delta) in live.into_iter().filter(|(_, delta)| *delta != 0) {
            let updated = self.live_bytes(segment)? + delta;
            if let Some(values) = &mut self.values {
                values
                    .insert(&live_key(segment)[..], &updated.to_be_bytes()[..])
                    .map_err(io_error)?;
            }
        }
        Ok(())
    }
}

/// Takes a value's bytes off its segment's live count when its entry is replaced or removed.
fn release(live: &mut BTreeMap<u32, i64>, entry: &[u8]) {
    if let Ok(Entry::Pointer { segment, len, .. }) = parse_entry(entry) {
        *live.entry(segment).or_default() -= i64::from(len);
    }
}

/// Where the committer writes a group's effects: the index and, on disk, the group's record.
struct Out<'i, 't, 'r> {
    index: &'i mut Index<'t>,
    record: Option<&'r mut Record>,
}

impl Out<'_, '_, '_> {
    fn emit(&mut self, effect: Effect) -> Result<(), StorageError> {
        let Some(record) = self.record.as_deref_mut() else {
            return self.index.apply(effect, None);
        };
        let effect = match effect {
            Effect::Put(target, key, value, _) => {
                Effect::Put(target, key, value, record.put(target, key, value))
            }
            Effect::Delete(target, key) => {
                record.delete(target, key);
                effect
            }
            Effect::DeleteRange(target, start, end) => {
                record.delete_range(target, start, end);
                effect
            }
        };
        self.index.apply(effect, Some(record.segment))
    }
}

/// Reads values that lie in the log: in the group's record not yet written, or in a segment.
struct Reader<'r> {
    record: Option<&'r Record>,
    segments: Option<&'r Segments>,
}

impl Reader<'_> {
    fn value<'e>(&self, entry: &'e [u8]) -> Result<Cow<'e, [u8]>, StorageError> {
        entry_value(entry, |segment, offset, len| {
            if let Some(bytes) = self.record.and_then(|r| r.read(segment, offset, len)) {
                return Ok(bytes.to_vec());
            }
            let segments = self.segments.ok_or(StorageError::Closed)?;
            segments.read(segment, offset, len)
        })
    }

    /// Whether `entry` stands for `expected`, reading the log only when the lengths agree.
    fn holds(&self, entry: &[u8], expected: &[u8]) -> Result<bool, StorageError> {
        match parse_entry(entry)? {
            Entry::Inline(value) => Ok(value == expected),
            Entry::Pointer { len, .. } if len as usize != expected.len() => Ok(false),
            Entry::Pointer { .. } => Ok(self.value(entry)?.as_ref() == expected),
        }
    }
}

/// The head of the change log as a group moves it. Every record of the group is stamped with the
/// group's start time (never below the previous head).
struct Stamp {
    head: LogPosition,
    moved: bool,
    now_ms: u64,
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
    index: &Index,
    reader: &Reader,
    batch: &WriteBatch,
) -> Result<bool, StorageError> {
    for (key, expected) in &batch.expectations {
        let current = index.entries.get(key.as_slice()).map_err(io_error)?;
        let holds = match (current, expected) {
            (None, None) => true,
            (Some(entry), Some(expected)) => reader.holds(entry.value(), expected)?,
            _ => false,
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

fn apply(
    out: &mut Out,
    segments: Option<&Segments>,
    mut stamp: Option<&mut Stamp>,
    batch: &WriteBatch,
) -> Result<(), StorageError> {
    for op in &batch.ops {
        match op {
            WriteOp::Put(key, value) => out.emit(Effect::Put(Target::Entries, key, value, 0))?,
            WriteOp::Delete(key) => out.emit(Effect::Delete(Target::Entries, key))?,
            WriteOp::AddCounter(key, delta) => {
                let current = match out.index.entries.get(key.as_slice()).map_err(io_error)? {
                    Some(entry) => {
                        let reader = Reader {
                            record: out.record.as_deref(),
                            segments,
                        };
                        crate::decode_counter(&reader.value(entry.value())?)
                    }
                    None => 0,
                };
                let updated = current + delta;
                if updated == 0 {
                    out.emit(Effect::Delete(Target::Entries, key))?;
                } else {
                    let bytes = updated.to_be_bytes();
                    out.emit(Effect::Put(Target::Entries, key, &bytes, 0))?;
                }
            }
            WriteOp::DeleteRange(start, end) => {
                out.emit(Effect::DeleteRange(Target::Entries, start, end))?
            }
            WriteOp::AppendLog(record) => {
                let stamp = stamp.as_deref_mut().expect("opened for a logging group");
                let position = stamp.head.next(stamp.now_ms);
                let key = log::entry_key(record.table, position);
                let encoded = log::encode_record(record);
                out.emit(Effect::Put(Target::Log, &key, &encoded, 0))?;
                stamp.head = position;
                stamp.moved = true;
            }
            WriteOp::TrimLog { table, before } => {
                let (start, end) = (
                    log::entry_key(*table, LogPosition::START),
                    log::entry_key(*table, *before),
                );
                out.emit(Effect::DeleteRange(Target::Log, &start, &end))?;
                let key = log::horizon_key(*table);
                let state = out.index.table(Target::LogState)?;
                let horizon = read_position(state, &key)?.max(*before);
                out.emit(Effect::Put(Target::LogState, &key, &horizon.to_bytes(), 0))?;
            }
        }
    }
    Ok(())
}

/// Rewrites the live values of mostly dead sealed segments, then removes them, so that disk use
/// follows the live data instead of every write ever made.
///
/// A segment is a target once less than half its bytes are live (the index's per-segment count).
/// Each step reads at most [`COMPACTION_STEP`] bytes of its records from where the last one
/// stopped and, for every value whose index entry still points there, commits a batch (through
/// the normal group path) that expects the key to still hold that value and puts it again, which
/// lands it in the active segment. A step is one more group, so commits wait at most one such
/// group. After the last record, the segment holds nothing live: a checkpoint makes that durable
/// and the segment is removed from the set (snapshots holding the older set still read it) and
/// unlinked.
#[derive(Default)]
struct Compactor {
    /// The segment being compacted and how far its records have been read.
    target: Option<(u32, u64)>,
    /// Segments whose records did not all read back intact: left alone (and reported).
    skip: BTreeSet<u32>,
}

impl Compactor {
    /// Compacts the next part of the target segment (choosing one if needed); answers whether
    /// there is more to do.
    fn step(&mut self, open: &Open) -> Result<bool, StorageError> {
        let Some(values) = &open.values else {
            return Ok(false);
        };
        let segments = values.segments();
        if self.target.is_none() {
            self.target = self.choose(open, values, &segments)?.map(|id| (id, 0));
        }
        let Some((segment, cursor)) = self.target else {
            return Ok(false);
        };
        let Some(file) = segments.0.get(&segment) else {
            // Gone since it was chosen (the storage was reopened): choose again.
            self.target = None;
            return Ok(true);
        };
        let len = file.len().map_err(|e| segment_error(segment, e))?;
        if cursor >= len {
            self.remove(open, values, segment)?;
            return Ok(true);
        }
        let mut bytes = vec![0; (len - cursor).min(COMPACTION_STEP) as usize];
        file.read_at(cursor, &mut bytes)
            .map_err(|e| segment_error(segment, e))?;
        if bytes.len() >= value_log::HEADER {
            // A record larger than the step is read whole.
            let payload = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as u64;
            let whole = (value_log::HEADER as u64 + payload).min(len - cursor);
            if whole > bytes.len() as u64 {
                bytes = vec![0; whole as usize];
                file.read_at(cursor, &mut bytes)
                    .map_err(|e| segment_error(segment, e))?;
            }
        }
        let mut batch = WriteBatch::new();
        let txn = open.database.begin_read().map_err(io_error)?;
        let entries = txn.open_table(ENTRIES).map_err(io_error)?;
        let read = value_log::intact_records(&bytes, |payload, at| {
            value_log::effects(payload, cursor + at as u64, |effect| {
                if let Effect::Put(Target::Entries, key, value, offset) = effect
                    && value.len() >= INLINE_MAX
                {
                    let here = pointer(segment, offset, value.len() as u32);
                    let current = entries.get(key).map_err(io_error)?;
                    if current.is_some_and(|entry| entry.value() == here) {
                        batch.expect(key.to_vec(), Some(value.to_vec()));
                        batch.put(key.to_vec(), value.to_vec());
                    }
                }
                Ok(())
            })
        })?;
        drop((entries, txn));
        if read == 0 {
            tracing::warn!(
                segment,
                cursor,
                "compaction found a damaged record; segment kept"
            );
            self.skip.insert(segment);
            self.target = None;
            return Ok(true);
        }
        self.target = Some((segment, cursor + read as u64));
        if !batch.ops.is_empty() {
            let (reply, _) = oneshot::channel();
            commit_group(open, &[(batch, reply)]).map_err(|failure| failure.error)?;
        }
        if cursor + read as u64 >= len {
            self.remove(open, values, segment)?;
        }
        Ok(true)
    }

    /// The oldest sealed segment less than half live, if any.
    fn choose(
        &self,
        open: &Open,
        values: &Values,
        segments: &Segments,
    ) -> Result<Option<u32>, StorageError> {
        let active = values.writer.lock().unwrap().segment;
        let txn = open.database.begin_read().map_err(io_error)?;
        let table = txn.open_table(VALUES).map_err(io_error)?;
        for (&id, file) in segments.0.range(..active) {
            if self.skip.contains(&id) {
                continue;
            }
            let live = (table.get(&live_key(id)[..]).map_err(io_error)?)
                .map_or(0, |v| crate::decode_counter(v.value()));
            let size = file.len().map_err(|e| segment_error(id, e))?;
            if (live.max(0) as u64) * 2 < size {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Removes a segment all of whose values were rewritten, once a checkpoint covers that.
    fn remove(&mut self, open: &Open, values: &Values, segment: u32) -> Result<(), StorageError> {
        self.target = None;
        checkpoint(open)?;
        let txn = open.database.begin_write().map_err(io_error)?;
        {
            let index = Index::open(&txn, false, true)?;
            let live = index.live_bytes(segment)?;
            if live != 0 {
                tracing::warn!(segment, live, "compaction left live values; segment kept");
                self.skip.insert(segment);
                return Ok(());
            }
            if let Some(mut table) = index.values {
                table.remove(&live_key(segment)[..]).map_err(io_error)?;
            }
        }
        txn.commit().map_err(io_error)?;
        {
            let mut set = values.segments.write().unwrap();
            *set = Arc::new(set.without(segment));
        }
        values
            .dir
            .remove(segment)
            .map_err(|e| segment_error(segment, e))?;
        tracing::info!(segment, "compacted a value log segment away");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
