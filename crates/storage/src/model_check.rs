//! Checks the embedded engine against a `BTreeMap` model under injected faults and crashes.
//!
//! [`run`] plays a sequence of [`Step`]s on a [`RedbEngine`] over a [`SimulatedDisk`] and on the
//! model, and panics at the first difference. The proptest in `fault_tests.rs` (in CI, small sizes)
//! and the cargo-fuzz target `fuzz/fuzz_targets/storage_faults.rs` (long runs) both drive it, so
//! the rules below are written once:
//! - an acknowledged batch is applied whole; a refused one (`Conflict`) changes nothing, and only a
//!   batch whose expectation really failed is refused;
//! - a batch that failed with a storage error is applied whole or not at all, and the engine
//!   recovers by itself: once the faults are gone, the next read or write succeeds;
//! - after a power loss (whichever unsynced writes survive it) the database reopens at the state of
//!   the last acknowledged commit, or at a state a failed commit since then may have left (one that
//!   readers were able to observe).

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::{CommitError, Engine, RedbEngine, SimulatedDisk, StorageError, WriteBatch, WriteOp};

type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// Keys are one byte below this; counters live above it, so a put never makes a counter invalid.
const COUNTER_BASE: u8 = 200;

/// One step of a scenario.
#[derive(Debug, Clone)]
pub enum Step {
    /// Puts `(key, value size)`: the value is `size` copies of the key byte.
    Put(Vec<(u8, u16)>),
    Delete(u8),
    DeleteRange(u8, u8),
    AddCounter(u8, i8),
    /// A put of `key` that expects it to hold what the model holds (`true`) or something else.
    Conditional {
        key: u8,
        size: u16,
        correct: bool,
    },
    /// The disk may grow by at most this many KiB from its current length.
    Quota(u16),
    /// The write, extension or sync after this many more fails with EIO.
    FailAfter(u8),
    /// The power goes at the write, extension or sync after this many more (in a commit, a
    /// restart or a recovery); the mask picks the unsynced writes that survive, as in `Crash`.
    PowerLossAfter(u8, u64),
    /// The space comes back and no failure is armed.
    ClearFaults,
    /// A clean shutdown and reopen.
    Restart,
    /// Power loss: of the writes since the last sync, those the mask picks survive (see
    /// [`SimulatedDisk::power_on`]); the engine reopens.
    Crash(u64),
}

/// Plays `steps`; panics if the engine departs from the model.
pub fn run(steps: &[Step]) {
    let mut harness = Harness::new();
    for step in steps {
        harness.play(step);
    }
    harness.crash(0);
}

struct Harness {
    disk: SimulatedDisk,
    engine: Option<RedbEngine>,
    /// The state every reader must see now.
    model: State,
    /// The states a power loss may return to: the last acknowledged one, then each state a
    /// failed commit left since (newest last).
    recoverable: Vec<State>,
    /// Which unsynced writes survive the armed power loss (`Step::PowerLossAfter`).
    survivors: u64,
    /// Power losses so far, so that a step can tell whether one interrupted it.
    crashes: u64,
}

fn open(disk: &SimulatedDisk) -> Result<RedbEngine, StorageError> {
    RedbEngine::on_simulated_disk(disk)
}

impl Harness {
    fn new() -> Harness {
        let disk = SimulatedDisk::new();
        let engine = open(&disk).expect("a new database opens");
        Harness {
            disk,
            engine: Some(engine),
            model: State::new(),
            recoverable: vec![State::new()],
            survivors: 0,
            crashes: 0,
        }
    }

    fn engine(&self) -> &RedbEngine {
        self.engine.as_ref().expect("the engine is open")
    }

    fn play(&mut self, step: &Step) {
        match step {
            Step::Put(puts) => {
                let mut batch = WriteBatch::new();
                for &(key, size) in puts {
                    batch.put(vec![key % COUNTER_BASE], value(key, size));
                }
                self.commit(batch, true);
            }
            Step::Delete(key) => {
                let mut batch = WriteBatch::new();
                batch.delete(vec![*key]);
                self.commit(batch, true);
            }
            Step::DeleteRange(start, end) => {
                let mut batch = WriteBatch::new();
                batch.delete_range(vec![*start], vec![*end]);
                self.commit(batch, true);
            }
            Step::AddCounter(key, delta) => {
                let mut batch = WriteBatch::new();
                batch.add_counter(vec![COUNTER_BASE + key % 8], i64::from(*delta));
                self.commit(batch, true);
            }
            Step::Conditional { key, size, correct } => {
                let key = vec![key % COUNTER_BASE];
                let mut expected = self.model.get(&key).cloned();
                if !correct {
                    expected = Some(
                        expected
                            .unwrap_or_default()
                            .into_iter()
                            .chain([1])
                            .collect(),
                    );
                }
                let mut batch = WriteBatch::new();
                batch.expect(key.clone(), expected);
                batch.put(key.clone(), value(key[0], *size));
                self.commit(batch, *correct);
            }
            Step::Quota(kib) => self
                .disk
                .set_quota(Some(self.disk.len() + u64::from(*kib) * 1024)),
            Step::FailAfter(calls) => self.disk.fail_after(u64::from(*calls)),
            Step::PowerLossAfter(calls, survivors) => {
                self.survivors = *survivors;
                self.disk.power_off_after(u64::from(*calls));
            }
            Step::ClearFaults => self.disk.clear_faults(),
            Step::Restart => self.restart(),
            Step::Crash(survivors) => self.crash(*survivors),
        }
    }

    /// Commits `batch`, whose expectations hold in the model exactly when `holds`.
    fn commit(&mut self, batch: WriteBatch, holds: bool) {
        let applied = apply(&self.model, &batch.ops);
        match self.engine().commit(batch).wait() {
            Ok(()) => {
                assert!(holds, "a batch with a failed expectation was applied");
                self.model = applied;
                self.recoverable = vec![self.model.clone()];
            }
            Err(CommitError::Conflict) => {
                assert!(!holds, "a batch whose expectations hold was refused")
            }
            Err(CommitError::Storage(error)) => {
                // Until the outcome is observed, a power loss may find the batch applied whole.
                let candidates = self.recoverable.len();
                if holds {
                    self.recoverable.push(applied.clone());
                }
                let crashes = self.crashes;
                let observed = self.observe();
                if self.crashes == crashes {
                    self.recoverable.truncate(candidates);
                    assert!(
                        observed == self.model || (holds && observed == applied),
                        "a failed commit ({error}) was applied in part"
                    );
                    if observed != self.model {
                        self.model = observed;
                        self.recoverable.push(self.model.clone());
                    }
                }
            }
        }
        self.check_reads();
    }

    /// Reads the whole key space. If the engine cannot recover while faults are armed, the faults
    /// are cleared (the space comes back) and it must recover then; if the power went, the
    /// machine restarts and the state is what it recovered.
    fn observe(&mut self) -> State {
        for attempt in 0..2 {
            match read_all(self.engine()) {
                Ok(state) => return state,
                Err(_) if self.disk.is_powered_off() => {
                    self.crash(self.survivors);
                    return self.model.clone();
                }
                Err(error) if attempt == 1 => {
                    panic!("the engine does not recover once the faults are gone: {error}")
                }
                Err(_) => self.disk.clear_faults(),
            }
        }
        unreachable!("the second attempt returns or panics")
    }

    fn check_reads(&mut self) {
        let observed = self.observe();
        assert_eq!(observed, self.model, "the engine and the model differ");
    }

    fn restart(&mut self) {
        self.engine.take();
        match open(&self.disk) {
            Ok(engine) => self.engine = Some(engine),
            Err(_) if self.disk.is_powered_off() => return self.crash(self.survivors),
            Err(_) => {
                self.disk.clear_faults();
                let engine =
                    open(&self.disk).expect("the database reopens once the faults are gone");
                self.engine = Some(engine);
            }
        }
        self.check_reads();
    }

    fn crash(&mut self, survivors: u64) {
        self.crashes += 1;
        self.disk.power_off();
        self.engine.take();
        self.disk.power_on(survivors);
        let engine = open(&self.disk).expect("the database reopens after a power loss");
        let state = read_all(&engine).expect("reads after a power loss");
        assert!(
            self.recoverable.contains(&state),
            "after a power loss the state is neither the last acknowledged one nor one a failed \
             commit left ({} keys; {} candidate states)",
            state.len(),
            self.recoverable.len()
        );
        self.engine = Some(engine);
        self.model = state;
        self.recoverable = vec![self.model.clone()];
    }
}

fn value(key: u8, size: u16) -> Vec<u8> {
    vec![key; usize::from(size)]
}

/// The model's version of the engine's `apply`.
fn apply(state: &State, ops: &[WriteOp]) -> State {
    let mut state = state.clone();
    for op in ops {
        match op {
            WriteOp::Put(key, value) => {
                state.insert(key.clone(), value.clone());
            }
            WriteOp::Delete(key) => {
                state.remove(key);
            }
            WriteOp::AddCounter(key, delta) => {
                let current = state.get(key).map_or(0, |v| crate::decode_counter(v));
                match current + delta {
                    0 => state.remove(key),
                    updated => state.insert(key.clone(), updated.to_be_bytes().to_vec()),
                };
            }
            WriteOp::DeleteRange(start, end) => {
                if start < end {
                    state.retain(|key, _| key < start || key >= end);
                }
            }
            // The scenarios write no change log (engine_tests.rs covers it); the model holds
            // only the data.
            WriteOp::AppendLog(_) | WriteOp::TrimLog { .. } => {}
        }
    }
    state
}

fn read_all(engine: &RedbEngine) -> Result<State, StorageError> {
    let mut state = State::new();
    engine.snapshot()?.scan(
        (Bound::Unbounded, Bound::Unbounded),
        false,
        &mut |key, value| {
            state.insert(key.to_vec(), value.to_vec());
            true
        },
    )?;
    Ok(state)
}
