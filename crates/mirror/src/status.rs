//! What each mirrored table is doing and how far behind its source it is: served as JSON on
//! `GET /mirror/status` next to the API, and logged when it changes phase.
//!
//! Staleness is the time since the mirror last knew it held every change the source had made
//! (its last read of the stream's end). While the source answers, that is a poll interval at most;
//! when the source is gone it grows, and says how old the copy being served may be.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// The phases of one table's mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Starting,
    /// The initial parallel Scan.
    Copying,
    /// Applying the stream's records.
    Following,
    /// `haven mirror promote` made the table writable; the mirror stopped.
    Promoted,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Copying => "copying",
            Phase::Following => "following",
            Phase::Promoted => "promoted",
        }
    }
}

#[derive(Default)]
struct Progress {
    phase: Option<Phase>,
    /// When (Unix seconds) the mirror last reached the end of every open shard.
    caught_up_at: Option<f64>,
    /// The source's time (Unix seconds) of the newest change applied.
    last_change_at: Option<f64>,
    source_reachable: bool,
    last_error: Option<String>,
}

/// One table's state, shared by its worker (writer) and the status page (reader).
pub struct TableStatus {
    pub table: String,
    pub source: String,
    pub copied_items: AtomicU64,
    pub applied_records: AtomicU64,
    progress: Mutex<Progress>,
}

pub(crate) fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl TableStatus {
    pub fn new(table: &str, source: &str) -> TableStatus {
        TableStatus {
            table: table.to_string(),
            source: source.to_string(),
            copied_items: AtomicU64::new(0),
            applied_records: AtomicU64::new(0),
            progress: Mutex::new(Progress {
                phase: Some(Phase::Starting),
                source_reachable: true,
                ..Progress::default()
            }),
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        let mut progress = self.progress.lock().unwrap();
        if progress.phase != Some(phase) {
            tracing::info!(table = %self.table, phase = phase.name(), "mirror phase");
            progress.phase = Some(phase);
        }
    }

    pub fn phase(&self) -> Option<Phase> {
        self.progress.lock().unwrap().phase
    }

    pub fn source_answered(&self) {
        self.progress.lock().unwrap().source_reachable = true;
    }

    pub fn source_failed(&self, reason: String) {
        let mut progress = self.progress.lock().unwrap();
        progress.source_reachable = false;
        progress.last_error = Some(reason);
    }

    /// A failure of the mirror itself (the worker retries from its checkpoint).
    pub fn failed(&self, reason: String) {
        self.progress.lock().unwrap().last_error = Some(reason);
    }

    pub fn caught_up(&self) {
        self.progress.lock().unwrap().caught_up_at = Some(now_seconds());
    }

    /// Counts one applied stream record made at `at` (Unix seconds) on the source.
    pub fn applied(&self, at: Option<f64>) {
        self.applied_records.fetch_add(1, Ordering::Relaxed);
        if let Some(at) = at {
            self.progress.lock().unwrap().last_change_at = Some(at);
        }
    }

    /// The JSON of the status page.
    pub fn report(&self) -> Value {
        let progress = self.progress.lock().unwrap();
        let now = now_seconds();
        json!({
            "table": self.table,
            "source": self.source,
            "phase": progress.phase.map(Phase::name),
            "copied_items": self.copied_items.load(Ordering::Relaxed),
            "applied_records": self.applied_records.load(Ordering::Relaxed),
            "source_reachable": progress.source_reachable,
            "caught_up_at": progress.caught_up_at,
            "staleness_seconds": progress.caught_up_at.map(|at| (now - at).max(0.0)),
            "last_change_at": progress.last_change_at,
            "last_error": progress.last_error,
        })
    }
}
