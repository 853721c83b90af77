//! The group commit's second stage: making groups durable, showing them to readers, answering.
//!
//! The committer applies group *n* to the index and appends its record, commits the index
//! transaction (not durably) and hands the group here; it then goes straight on to group *n* + 1,
//! whose expectations see group *n*'s effects, while this thread's `fdatasync` of group *n* is in
//! flight. So the disk is kept syncing back to back, each sync covering every record appended
//! before it, instead of idling while the committer checks and applies the next group
//! (docs/storage-format.md, "The value log").
//!
//! What keeps the guarantees:
//! - Readers do not begin their own redb read transactions (they would see committed but unsynced
//!   groups): they share the one this thread publishes ([`Visible`]), taken by the committer right
//!   after the group's commit and published only once the group's record is synced, before any of
//!   its callers is answered.
//! - A failed sync fails its group and every later group of the same log (each was decided on top
//!   of it): none is published, the index file is fenced (`fence.rs`: closing it then leaves it
//!   at its last durable commit), the log is cut where the failed record began and marked broken
//!   ([`Values::sync_failure`]) before any of them is answered, and the next use of the storage
//!   reopens it and recovers (redb returns to its last durable commit, which never covers an
//!   unsynced record, and replays the log), as after any failed commit.
//! - A durable index commit (a checkpoint) covers every group committed before it, so the
//!   committer first waits until every group handed here is synced ([`Pipeline::drain`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, RwLock, mpsc};
use std::time::Instant;

use redb::ReadableDatabase;

use super::{CommitRequest, Open, Values, io_error, segment_error};
use crate::StorageError;
use crate::batch::CommitError;
use crate::value_log::LogFile;

/// The index state readers see: the read transaction of the newest group that is committed and,
/// on disk, synced.
pub(super) struct Visible(RwLock<Arc<redb::ReadTransaction>>);

impl Visible {
    pub fn new(database: &redb::Database) -> Result<Arc<Visible>, StorageError> {
        let txn = database.begin_read().map_err(io_error)?;
        Ok(Arc::new(Visible(RwLock::new(Arc::new(txn)))))
    }

    pub fn current(&self) -> Arc<redb::ReadTransaction> {
        self.0.read().unwrap().clone()
    }

    fn publish(&self, txn: redb::ReadTransaction) {
        *self.0.write().unwrap() = Arc::new(txn);
    }
}

/// A group the committer has committed to the index (not durably), for this thread.
pub(super) struct Committed {
    pub outcomes: Vec<Result<(), CommitError>>,
    /// The group's record, when it was appended but not synced yet.
    pub unsynced: Option<Unsynced>,
    /// Where readers find the index state, and the read transaction that shows this group.
    pub visible: Arc<Visible>,
    pub txn: redb::ReadTransaction,
    /// The log the group was appended to (none in memory).
    pub values: Option<Arc<Values>>,
}

/// A record appended to `file` at `start` and not yet synced.
pub(super) struct Unsynced {
    pub file: Arc<dyn LogFile>,
    pub segment: u32,
    pub start: u64,
}

/// One group handed over: its callers, when the committer took it up, and what became of it.
struct Handed {
    group: Vec<CommitRequest>,
    started: Instant,
    result: Result<Committed, StorageError>,
}

/// A committed (or failed) group, for the thread that answers its callers.
type Answers = (
    Vec<CommitRequest>,
    Result<Vec<Result<(), CommitError>>, StorageError>,
);

/// The committer's end of the second stage.
pub(super) struct Pipeline {
    to_sync: mpsc::Sender<Handed>,
    /// Groups handed over so far.
    handed: u64,
    /// Groups the syncer has finished (synced or failed, published, passed on to be answered).
    finished: Arc<(Mutex<u64>, Condvar)>,
}

impl Pipeline {
    /// Starts the syncer and the answering thread; the pipeline's drop ends both.
    pub fn start() -> Result<(Pipeline, Vec<std::thread::JoinHandle<()>>), StorageError> {
        let (to_sync, handed) = mpsc::channel();
        let (answers, to_answer) = mpsc::channel();
        let finished = Arc::new((Mutex::new(0), Condvar::new()));
        let progress = finished.clone();
        let syncer = std::thread::Builder::new()
            .name("haven-syncer".into())
            .spawn(move || sync(handed, answers, &progress))
            .map_err(io_error)?;
        let answerer = std::thread::Builder::new()
            .name("haven-answers".into())
            .spawn(move || answer(to_answer))
            .map_err(io_error)?;
        let pipeline = Pipeline {
            to_sync,
            handed: 0,
            finished,
        };
        Ok((pipeline, vec![syncer, answerer]))
    }

    /// Hands a group over to be made durable, shown and answered.
    pub fn hand(
        &mut self,
        group: Vec<CommitRequest>,
        started: Instant,
        result: Result<Committed, StorageError>,
    ) {
        self.handed += 1;
        // The syncer outlives the committer (it ends when this sender drops).
        let _ = self.to_sync.send(Handed {
            group,
            started,
            result,
        });
    }

    /// Waits until every group handed over is synced (or failed) and published.
    pub fn drain(&self) {
        let (finished, changed) = &*self.finished;
        let mut done = finished.lock().unwrap();
        while *done < self.handed {
            done = changed.wait(done).unwrap();
        }
    }

    /// Commits the index durably once every group before is synced (see [`super::checkpoint`]).
    pub fn checkpoint(&self, open: &Open) -> Result<(), StorageError> {
        self.drain();
        super::checkpoint(open)
    }
}

/// The syncer: takes every group handed over since its last sync, syncs their records with one
/// `fdatasync` per segment file, publishes the newest group readers may see, and passes the
/// groups on to be answered, in order.
fn sync(
    handed: mpsc::Receiver<Handed>,
    answers: mpsc::Sender<Answers>,
    finished: &(Mutex<u64>, Condvar),
) {
    while let Ok(first) = handed.recv() {
        let mut round = vec![first];
        round.extend(handed.try_iter());
        make_durable(&mut round);
        let count = round.len() as u64;
        for handed in round {
            let result = handed.result.map(|committed| {
                committed.visible.publish(committed.txn);
                committed.outcomes
            });
            haven_metrics::commit(
                handed.group.len(),
                handed.started.elapsed().as_secs_f64(),
                result.is_err(),
            );
            // The answering thread outlives the syncer (it ends when this sender drops).
            let _ = answers.send((handed.group, result));
        }
        let (done, changed) = finished;
        *done.lock().unwrap() += count;
        changed.notify_all();
    }
}

/// Syncs the round's records (one `fdatasync` per run of records in one file: it covers every
/// write before it) and turns into failures the groups of a log whose sync failed.
fn make_durable(round: &mut [Handed]) {
    let mut at = 0;
    while at < round.len() {
        let Some((file, segment)) = unsynced(&round[at]) else {
            fail_if_broken(&mut round[at]);
            at += 1;
            continue;
        };
        let run = round[at..]
            .iter()
            .take_while(|handed| unsynced(handed).is_none_or(|(f, _)| Arc::ptr_eq(&f, &file)))
            .count();
        fail_if_broken(&mut round[at]);
        if round[at].result.is_err() {
            // A sync failed before: nothing of this log is to be synced any more.
        } else if let Err(error) = file.sync() {
            let error = segment_error(segment, error);
            tracing::error!(%error, "syncing the value log failed; the storage will be reopened");
            break_log(&round[at], error);
        }
        for handed in &mut round[at..at + run] {
            fail_if_broken(handed);
        }
        at += run;
    }
}

fn unsynced(handed: &Handed) -> Option<(Arc<dyn LogFile>, u32)> {
    let unsynced = handed.result.as_ref().ok()?.unsynced.as_ref()?;
    Some((unsynced.file.clone(), unsynced.segment))
}

/// After a failed sync: marks the log broken (the committer then reopens it) and cuts it where
/// the group's record began, durably, so that recovery does not bring back the groups that fail.
fn break_log(handed: &Handed, error: StorageError) {
    let Ok(Committed {
        values: Some(values),
        unsynced: Some(unsynced),
        ..
    }) = &handed.result
    else {
        return;
    };
    // Holding the writer: the committer appends nothing more after the cut.
    let _writer = values.writer.lock().unwrap();
    values.fence.store(true, Ordering::SeqCst);
    *values.sync_failure.lock().unwrap() = Some(error);
    let file = &unsynced.file;
    if let Err(cut) = file.set_len(unsynced.start).and_then(|()| file.sync()) {
        tracing::error!(%cut, "cutting the value log after a failed sync failed");
    }
}

/// Fails a group committed on a log whose sync failed: it was decided on top of the lost groups.
fn fail_if_broken(handed: &mut Handed) {
    if let Ok(Committed {
        values: Some(values),
        ..
    }) = &handed.result
        && let Some(error) = values.sync_failure()
    {
        handed.result = Err(error);
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
