//! What each mirrored table is doing and how far behind its source it is: served as JSON on
//! `GET /mirror/status` next to the API, logged when it changes phase and every
//! `LAG_LOG_INTERVAL` while following, and exported as Prometheus metrics (`haven-metrics`:
//! `haven_mirror_lag_seconds`, records applied, source errors).
//!
//! The lag is now minus the moment up to which the copy is known to hold every change the source
//! made (`crate::follow` says how a round finds it). Under a steady write rate it is the delay of
//! the stream and of applying, not the time since the stream was last empty; when the source is
//! gone it grows, and says how old the copy being served may be.

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

/// How often the lag is logged while following.
const LAG_LOG_INTERVAL: f64 = 60.0;

#[derive(Default)]
struct Progress {
    phase: Option<Phase>,
    /// The moment (Unix seconds) up to which the copy holds every change of the source.
    complete_until: Option<f64>,
    /// When the lag was last logged.
    logged_at: f64,
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
        haven_metrics::mirror_source_error(&self.table);
        let mut progress = self.progress.lock().unwrap();
        progress.source_reachable = false;
        progress.last_error = Some(reason);
    }

    /// A failure of the mirror itself (the worker retries from its checkpoint).
    pub fn failed(&self, reason: String) {
        self.progress.lock().unwrap().last_error = Some(reason);
    }

    /// The copy holds every change the source made up to `at` (Unix seconds); never moves back.
    pub fn complete_until(&self, at: f64) {
        let mut progress = self.progress.lock().unwrap();
        let until = progress.complete_until.map_or(at, |before| before.max(at));
        progress.complete_until = Some(until);
        let now = now_seconds();
        if now - progress.logged_at >= LAG_LOG_INTERVAL {
            progress.logged_at = now;
            let lag_seconds = (now - until).max(0.0);
            tracing::info!(table = %self.table, lag_seconds, applied_records = self.applied_records.load(Ordering::Relaxed), "mirror lag");
        }
    }

    /// Counts `records` stream records applied.
    pub fn applied(&self, records: u64) {
        self.applied_records.fetch_add(records, Ordering::Relaxed);
        haven_metrics::mirror_applied(&self.table, records);
    }

    /// Seconds the copy is behind its source (None until the stream is first read).
    pub fn lag_seconds(&self) -> Option<f64> {
        let until = self.progress.lock().unwrap().complete_until?;
        Some((now_seconds() - until).max(0.0))
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
            "complete_until": progress.complete_until,
            "lag_seconds": progress.complete_until.map(|at| (now - at).max(0.0)),
            "last_error": progress.last_error,
        })
    }
}
