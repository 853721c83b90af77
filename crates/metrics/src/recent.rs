//! Per-thread handles of the series the request path records into.
//!
//! Finding a labelled series in its family hashes the labels and takes the family's read lock,
//! and the per-table ones first build their labels as owned strings: about 1,800 instructions of
//! every item request went there (docs/benchmarks.md, "Issue 26"). A series, once created, is a
//! shared handle, so each thread keeps the few it used last and records with an atomic add after
//! a comparison of labels. Per-table series are dropped when their table is deleted
//! (`Metrics::forget_deleted`), which bumps [`GENERATION`]: a thread's handles of an older
//! generation are forgotten before use, so a table created again under the same name counts into
//! its new series.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bumped whenever per-table series are dropped.
pub(crate) static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Handles kept per thread and per kind of series: enough for the tables and operations a busy
/// server touches at once; beyond it the oldest is forgotten (it is found again in its family).
const KEPT: usize = 16;

/// The series one thread recorded into lately, by labels, most recent last.
pub(crate) struct Recent<K, M> {
    generation: u64,
    entries: Vec<(K, M)>,
}

impl<K, M> Recent<K, M> {
    pub(crate) const fn new() -> Recent<K, M> {
        Recent {
            generation: 0,
            entries: Vec::new(),
        }
    }

    /// The series `matches` picks among those kept, or `resolve`'s (then kept).
    pub(crate) fn get(
        &mut self,
        matches: impl Fn(&K) -> bool,
        resolve: impl FnOnce() -> (K, M),
    ) -> &M {
        let generation = GENERATION.load(Ordering::Acquire);
        if generation != self.generation {
            self.entries.clear();
            self.generation = generation;
        }
        let found = self.entries.iter().rposition(|(key, _)| matches(key));
        let at = found.unwrap_or_else(|| {
            if self.entries.len() == KEPT {
                self.entries.remove(0);
            }
            self.entries.push(resolve());
            self.entries.len() - 1
        });
        &self.entries[at].1
    }
}

/// Runs `f` on this thread's `Recent` in `cell`.
pub(crate) fn with<K, M, R>(
    cell: &'static std::thread::LocalKey<RefCell<Recent<K, M>>>,
    f: impl FnOnce(&mut Recent<K, M>) -> R,
) -> R {
    cell.with(|recent| f(&mut recent.borrow_mut()))
}
