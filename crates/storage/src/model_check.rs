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
//! - after a power loss the database reopens at the state of the last acknowledged commit, or at a
//!   state a failed commit since then may have left (one that readers were able to observe).

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
    /// The space comes back and no failure is armed.
    ClearFaults,
    /// A clean shutdown and reopen.
    Restart,
    /// Power loss: unsynced writes are lost; the engine reopens.
    Crash,
}

/// Plays `steps`; panics if the engine departs from the model.
pub fn run(steps: &[Step]) {
    let mut harness = Harness::new();
    for step in steps {
        harness.play(step);
    }
    harness.crash();
}

struct Harness {
    disk: SimulatedDisk,
    engine: Option<RedbEngine>,
    /// The state every reader must see now.
    model: State,
    /// The states a power loss may return to: the last acknowledged one, then each state a
    /// failed commit left since (newest last).
    recoverable: Vec<State>,
}

fn open(disk: &SimulatedDisk) -> Result<RedbEngine, StorageError> {
    let backend = disk.clone();
    RedbEngine::on_backend("simulated.redb", move || backend.clone())
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
            Step::ClearFaults => self.disk.clear_faults(),
            Step::Restart => self.restart(),
            Step::Crash => self.crash(),
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
                let observed = self.observe();
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
        self.check_reads();
    }

    /// Reads the whole key space; if the engine cannot recover while faults are armed, the faults
    /// are cleared (the space comes back) and it must recover then.
    fn observe(&self) -> State {
        read_all(self.engine()).unwrap_or_else(|_| {
            self.disk.clear_faults();
            read_all(self.engine()).expect("the engine recovers once the faults are gone")
        })
    }

    fn check_reads(&self) {
        assert_eq!(
            self.observe(),
            self.model,
            "the engine and the model differ"
        );
    }

    fn restart(&mut self) {
        self.engine.take();
        self.engine = Some(open(&self.disk).unwrap_or_else(|_| {
            self.disk.clear_faults();
            open(&self.disk).expect("the database reopens once the faults are gone")
        }));
        self.check_reads();
    }

    fn crash(&mut self) {
        self.disk.power_off();
        self.engine.take();
        self.disk.power_on();
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
                let current = state
                    .get(key)
                    .map_or(0, |v| crate::batch::decode_counter(v));
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
