//! A small linearizability checker for histories of operations on independent integer registers.
//!
//! **Model.** Each key is a register that is absent or holds a `u64`. Operations: a read (returns the
//! value or absence), an unconditional put, a delete, and conditional puts and deletes
//! (`attribute_not_exists` or `v = :expected`) that either succeed or fail with
//! ConditionalCheckFailed, leaving the register untouched.
//!
//! **History.** Every operation carries an invoke time and a complete time from one clock (a shared
//! counter ticked before the request is sent and after its answer arrives); real-time order is
//! "a completed before b was invoked". An operation whose outcome is unknown (a timeout, a transport
//! error) may have taken effect at any point after its invoke, or never: it is given an infinite
//! complete time and is optional. A read with an unknown outcome tells nothing and is dropped.
//!
//! **Search.** Keys are independent, so the history is split per key and each part is checked on
//! its own (P-compositionality: a history is linearizable iff every per-key sub-history is). Each
//! part is checked by the Wing–Gong search with Lowe's memoisation, as in Porcupine: call and
//! return events are kept in time order in a doubly linked list; walking it from the head, a call
//! whose operation the model accepts in the current state is *linearized* (its call and return are
//! unlinked, the operation and the previous state pushed on a stack) and the walk restarts from the
//! head; reaching a return whose call is still in the list means that operation can no longer be
//! placed, so the last choice is undone (popped, relinked) and the walk resumes after it. A cache
//! of (set of linearized operations, model state) prunes configurations already explored, which
//! keeps the search polynomial for bounded concurrency. Reaching the end of the list means every
//! operation with a known outcome has been placed: the history is linearizable. Backtracking past
//! the first choice means it is not; the deepest prefix found is reported as the counterexample.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// The condition of a conditional write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// `attribute_not_exists(pk)`: the register is absent.
    NotExists,
    /// `v = :expected`: the register holds exactly this value (absent fails).
    Equals(u64),
}

impl Cond {
    fn holds(self, state: Option<u64>) -> bool {
        match self {
            Cond::NotExists => state.is_none(),
            Cond::Equals(expected) => state == Some(expected),
        }
    }
}

/// What an operation asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Read,
    Put(u64),
    Delete,
    PutIf(Cond, u64),
    DeleteIf(Cond),
}

/// What it got back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    /// A read's answer.
    Value(Option<u64>),
    /// A write succeeded.
    Ok,
    /// A conditional write was refused (ConditionalCheckFailed).
    CheckFailed,
    /// No answer (timeout, transport error, 5xx): may have taken effect or not.
    Unknown,
}

/// One operation of a history. `complete` is ignored when `ret` is `Unknown`.
#[derive(Clone, Debug)]
pub struct Operation<K> {
    pub key: K,
    /// Which client issued it (for reports only).
    pub client: usize,
    pub invoke: u64,
    pub complete: u64,
    pub call: Call,
    pub ret: Ret,
}

impl<K: fmt::Debug> fmt::Display for Operation<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: Option<u64>| v.map_or("absent".to_string(), |v| v.to_string());
        let call = match self.call {
            Call::Read => "read".to_string(),
            Call::Put(v) => format!("put {v}"),
            Call::Delete => "delete".to_string(),
            Call::PutIf(Cond::NotExists, v) => format!("put {v} if absent"),
            Call::PutIf(Cond::Equals(e), v) => format!("put {v} if = {e}"),
            Call::DeleteIf(Cond::NotExists) => "delete if absent".to_string(),
            Call::DeleteIf(Cond::Equals(e)) => format!("delete if = {e}"),
        };
        let ret = match self.ret {
            Ret::Value(v) => show(v),
            Ret::Ok => "ok".to_string(),
            Ret::CheckFailed => "ConditionalCheckFailed".to_string(),
            Ret::Unknown => "unknown".to_string(),
        };
        let complete = if self.ret == Ret::Unknown {
            "∞".to_string()
        } else {
            self.complete.to_string()
        };
        write!(
            f,
            "[{}..{}] client {} key {:?}: {call} -> {ret}",
            self.invoke, complete, self.client, self.key
        )
    }
}

/// The model: the state after applying `call` with answer `ret` to `state`, or `None` if that
/// answer is impossible in that state. An unknown outcome is checked as a success (not taking
/// effect is modelled by leaving the operation out).
fn step(state: Option<u64>, call: Call, ret: Ret) -> Option<Option<u64>> {
    let succeeded = match ret {
        Ret::Ok | Ret::Unknown => true,
        Ret::CheckFailed => false,
        Ret::Value(v) => return (call == Call::Read && v == state).then_some(state),
    };
    let (cond, new) = match call {
        Call::Read => return None,
        Call::Put(v) => (None, Some(v)),
        Call::Delete => (None, None),
        Call::PutIf(c, v) => (Some(c), Some(v)),
        Call::DeleteIf(c) => (Some(c), None),
    };
    let holds = cond.is_none_or(|c| c.holds(state));
    match (succeeded, holds) {
        (true, true) => Some(new),
        (false, false) => Some(state),
        _ => None,
    }
}

/// Why a key's history is not linearizable.
#[derive(Debug)]
pub struct Counterexample<K> {
    pub key: K,
    /// Operations on the key (after dropping unknown reads).
    pub operations: usize,
    /// The deepest valid linearization found, in order.
    pub prefix: Vec<Operation<K>>,
    /// The register's state after that prefix.
    pub state: Option<u64>,
    /// The operations that could have gone next by real time, none of which the model accepts
    /// (or whose every continuation fails).
    pub stuck: Vec<Operation<K>>,
}

impl<K: fmt::Debug> fmt::Display for Counterexample<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key {:?} ({} operations): longest linearizable prefix has {} operations",
            self.key,
            self.operations,
            self.prefix.len()
        )?;
        let skip = self.prefix.len().saturating_sub(8);
        if skip > 0 {
            writeln!(f, "  ... {skip} earlier operations")?;
        }
        for op in &self.prefix[skip..] {
            writeln!(f, "  {op}")?;
        }
        let state = self.state.map_or("absent".to_string(), |v| v.to_string());
        writeln!(f, "then, with the register {state}, none of these fits:")?;
        for op in &self.stuck {
            writeln!(f, "  {op}")?;
        }
        Ok(())
    }
}

/// Search effort, summed over keys.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub operations: usize,
    pub keys: usize,
    pub steps: u64,
    pub backtracks: u64,
}

#[derive(Debug)]
pub enum Outcome<K> {
    Linearizable,
    NotLinearizable(Box<Counterexample<K>>),
    /// The step budget ran out before a verdict.
    Undecided {
        key: K,
    },
}

#[derive(Debug)]
pub struct Verdict<K> {
    pub outcome: Outcome<K>,
    pub stats: Stats,
}

/// Checks a whole history, key by key (in key order), stopping at the first key that fails.
/// `budget` caps the search steps per key.
pub fn check<K: Ord + Clone + fmt::Debug>(history: &[Operation<K>], budget: u64) -> Verdict<K> {
    let mut parts: BTreeMap<&K, Vec<Operation<K>>> = BTreeMap::new();
    for op in history {
        if op.call == Call::Read && op.ret == Ret::Unknown {
            continue;
        }
        assert!(
            matches!(
                (op.call, op.ret),
                (Call::Read, Ret::Value(_))
                    | (Call::Put(_) | Call::Delete, Ret::Ok | Ret::Unknown)
                    | (
                        Call::PutIf(..) | Call::DeleteIf(_),
                        Ret::Ok | Ret::CheckFailed | Ret::Unknown
                    )
            ),
            "malformed operation: {op}"
        );
        assert!(
            op.ret == Ret::Unknown || op.complete >= op.invoke,
            "completes before its invoke: {op}"
        );
        parts.entry(&op.key).or_default().push(op.clone());
    }
    let mut stats = Stats::default();
    for (key, ops) in parts {
        stats.keys += 1;
        stats.operations += ops.len();
        let outcome = check_one(key, ops, budget, &mut stats);
        if !matches!(outcome, Outcome::Linearizable) {
            return Verdict { outcome, stats };
        }
    }
    Verdict {
        outcome: Outcome::Linearizable,
        stats,
    }
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// Call and return events of one key's operations as a doubly linked list in time order, with
/// dancing-links removal and restoration.
struct Events {
    /// Node `i` (from 1) is event `i`: (operation index, is it the call).
    nodes: Vec<(usize, bool)>,
    next: Vec<usize>,
    prev: Vec<usize>,
    call_node: Vec<usize>,
    /// `NIL` for an operation with an unknown outcome (it never returns).
    return_node: Vec<usize>,
}

impl Events {
    fn new<K>(ops: &[Operation<K>]) -> Events {
        // (time, calls before returns at equal times: overlapping is the permissive reading, op)
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            events.push((op.invoke, false, i));
            if op.ret != Ret::Unknown {
                events.push((op.complete, true, i));
            }
        }
        events.sort_unstable();
        let mut nodes = vec![(NIL, false)];
        let mut call_node = vec![NIL; ops.len()];
        let mut return_node = vec![NIL; ops.len()];
        for (n, &(_, is_return, op)) in events.iter().enumerate() {
            nodes.push((op, !is_return));
            if is_return {
                return_node[op] = n + 1;
            } else {
                call_node[op] = n + 1;
            }
        }
        let count = nodes.len();
        let next = (0..count)
            .map(|i| if i + 1 < count { i + 1 } else { NIL })
            .collect();
        let prev = (0..count).map(|i| i.wrapping_sub(1)).collect();
        Events {
            nodes,
            next,
            prev,
            call_node,
            return_node,
        }
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n != NIL {
            self.prev[n] = node;
        }
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call_node[op]);
        if self.return_node[op] != NIL {
            self.unlink(self.return_node[op]);
        }
    }

    fn unlift(&mut self, op: usize) {
        if self.return_node[op] != NIL {
            self.relink(self.return_node[op]);
        }
        self.relink(self.call_node[op]);
    }
}

fn check_one<K: Clone>(
    key: &K,
    ops: Vec<Operation<K>>,
    budget: u64,
    stats: &mut Stats,
) -> Outcome<K> {
    let mut events = Events::new(&ops);
    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut state: Option<u64> = None;
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut best: Vec<(usize, Option<u64>)> = Vec::new();
    let mut best_state = None;
    let mut steps = 0u64;
    let mut node = events.next[HEAD];
    loop {
        if node == NIL {
            // Every operation with a known outcome is placed; what is left may never have happened.
            stats.steps += steps;
            return Outcome::Linearizable;
        }
        steps += 1;
        if steps > budget {
            stats.steps += steps;
            return Outcome::Undecided { key: key.clone() };
        }
        let (op, is_call) = events.nodes[node];
        if is_call {
            if let Some(next_state) = step(state, ops[op].call, ops[op].ret) {
                linearized[op / 64] |= 1 << (op % 64);
                if cache.insert((linearized.clone(), next_state)) {
                    stack.push((op, state));
                    state = next_state;
                    events.lift(op);
                    node = events.next[HEAD];
                    continue;
                }
                linearized[op / 64] &= !(1 << (op % 64));
            }
            node = events.next[node];
        } else {
            // `op` must have been placed before its return: undo the last choice.
            if stack.len() > best.len() {
                best.clone_from(&stack);
                best_state = Some(state);
            }
            let Some((last, previous)) = stack.pop() else {
                stats.steps += steps;
                return Outcome::NotLinearizable(Box::new(counterexample(
                    key,
                    &ops,
                    &best,
                    best_state.unwrap_or(None),
                )));
            };
            stats.backtracks += 1;
            linearized[last / 64] &= !(1 << (last % 64));
            state = previous;
            events.unlift(last);
            node = events.next[events.call_node[last]];
        }
    }
}

fn counterexample<K: Clone>(
    key: &K,
    ops: &[Operation<K>],
    best: &[(usize, Option<u64>)],
    state: Option<u64>,
) -> Counterexample<K> {
    let mut events = Events::new(ops);
    for &(op, _) in best {
        events.lift(op);
    }
    // The candidates for the next place: calls up to the first return still in the list.
    let mut stuck = Vec::new();
    let mut node = events.next[HEAD];
    while node != NIL {
        let (op, is_call) = events.nodes[node];
        if !is_call {
            // Its own call is already listed (it precedes its return).
            break;
        }
        stuck.push(ops[op].clone());
        node = events.next[node];
    }
    Counterexample {
        key: key.clone(),
        operations: ops.len(),
        prefix: best.iter().map(|&(op, _)| ops[op].clone()).collect(),
        state,
        stuck,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: u64 = 1_000_000;

    /// An operation on key "k" by client 0.
    fn op(invoke: u64, complete: u64, call: Call, ret: Ret) -> Operation<&'static str> {
        on("k", invoke, complete, call, ret)
    }

    fn on(
        key: &'static str,
        invoke: u64,
        complete: u64,
        call: Call,
        ret: Ret,
    ) -> Operation<&'static str> {
        Operation {
            key,
            client: 0,
            invoke,
            complete,
            call,
            ret,
        }
    }

    fn verdict(history: &[Operation<&'static str>]) -> Verdict<&'static str> {
        check(history, BUDGET)
    }

    fn linearizable(history: &[Operation<&'static str>]) -> bool {
        match verdict(history).outcome {
            Outcome::Linearizable => true,
            Outcome::NotLinearizable(c) => {
                eprintln!("{c}");
                false
            }
            Outcome::Undecided { .. } => panic!("undecided"),
        }
    }

    use Call::*;
    use Cond::*;
    use Ret::{CheckFailed, Ok as Done, Unknown, Value};

    #[test]
    fn empty_and_sequential_histories_are_linearizable() {
        assert!(linearizable(&[]));
        assert!(linearizable(&[
            op(0, 1, Read, Value(None)),
            op(2, 3, Put(1), Done),
            op(4, 5, Read, Value(Some(1))),
            op(6, 7, PutIf(NotExists, 2), CheckFailed),
            op(8, 9, PutIf(Equals(1), 3), Done),
            op(10, 11, PutIf(Equals(1), 4), CheckFailed),
            op(12, 13, DeleteIf(Equals(1)), CheckFailed),
            op(14, 15, Read, Value(Some(3))),
            op(16, 17, Delete, Done),
            op(18, 19, Read, Value(None)),
            op(20, 21, PutIf(NotExists, 5), Done),
            op(22, 23, DeleteIf(Equals(5)), Done),
            op(24, 25, PutIf(Equals(5), 6), CheckFailed),
        ]));
    }

    #[test]
    fn concurrent_reads_may_see_either_side_of_a_write() {
        // A write overlapping two reads: one sees the old value, the later one the new.
        assert!(linearizable(&[
            op(0, 1, Put(1), Done),
            op(2, 9, Put(2), Done),
            op(3, 4, Read, Value(Some(1))),
            op(5, 6, Read, Value(Some(2))),
            op(7, 8, Read, Value(Some(2))),
        ]));
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_rejected() {
        assert!(!linearizable(&[
            op(0, 1, Put(1), Done),
            op(2, 3, Put(2), Done),
            op(4, 5, Read, Value(Some(1))),
        ]));
        // Also when the reads overlap the write but go backwards in time: new then old.
        assert!(!linearizable(&[
            op(0, 1, Put(1), Done),
            op(2, 9, Put(2), Done),
            op(3, 4, Read, Value(Some(2))),
            op(5, 6, Read, Value(Some(1))),
        ]));
    }

    #[test]
    fn two_successful_conditional_creates_are_rejected() {
        // Even fully concurrent: only one `attribute_not_exists` can win.
        assert!(!linearizable(&[
            op(0, 5, PutIf(NotExists, 1), Done),
            op(1, 4, PutIf(NotExists, 2), Done),
        ]));
        // Unless a delete in between makes room.
        assert!(linearizable(&[
            op(0, 5, PutIf(NotExists, 1), Done),
            op(1, 4, PutIf(NotExists, 2), Done),
            op(2, 3, Delete, Done),
        ]));
        // Two compare-and-sets from the same expected value cannot both win either.
        assert!(!linearizable(&[
            op(0, 1, Put(1), Done),
            op(2, 5, PutIf(Equals(1), 2), Done),
            op(3, 6, PutIf(Equals(1), 3), Done),
        ]));
    }

    #[test]
    fn a_read_of_a_value_never_written_is_rejected() {
        assert!(!linearizable(&[
            op(0, 1, Put(1), Done),
            op(2, 3, Read, Value(Some(7))),
        ]));
        assert!(!linearizable(&[op(0, 1, Read, Value(Some(1)))]));
        // A refused write does not take effect.
        assert!(!linearizable(&[
            op(0, 1, Put(1), Done),
            op(2, 3, PutIf(NotExists, 2), CheckFailed),
            op(4, 5, Read, Value(Some(2))),
        ]));
    }

    #[test]
    fn a_write_seen_before_its_invoke_is_rejected() {
        assert!(!linearizable(&[
            op(0, 1, Read, Value(Some(1))),
            op(2, 3, Put(1), Done),
        ]));
        // The same read overlapping the write is fine.
        assert!(linearizable(&[
            op(0, 3, Read, Value(Some(1))),
            op(2, 4, Put(1), Done),
        ]));
        // A failed condition that needs a write not yet invoked.
        assert!(!linearizable(&[
            op(0, 1, PutIf(NotExists, 1), CheckFailed),
            op(2, 3, Put(2), Done),
        ]));
    }

    #[test]
    fn a_failed_condition_needs_a_witness() {
        // Absent throughout: `attribute_not_exists` cannot fail.
        assert!(!linearizable(&[op(0, 1, PutIf(NotExists, 1), CheckFailed)]));
        // `v = 1` fails on absence.
        assert!(linearizable(&[op(0, 1, PutIf(Equals(1), 2), CheckFailed)]));
    }

    #[test]
    fn the_search_backtracks() {
        // The greedy walk places put 1 then put 2 (list order), then cannot place the read of 1;
        // it must undo both and try put 2 first.
        let history = [
            op(0, 3, Put(1), Done),
            op(1, 4, Put(2), Done),
            op(5, 6, Read, Value(Some(1))),
        ];
        let v = verdict(&history);
        assert!(matches!(v.outcome, Outcome::Linearizable), "{v:?}");
        assert!(v.stats.backtracks >= 2, "{:?}", v.stats);

        // A deeper one: a create and a compare-and-set on it fix the order of three concurrent
        // writes; the blind put invoked first must go last, so every early placement of it fails.
        let history = [
            op(0, 10, Put(1), Done),
            op(1, 11, PutIf(NotExists, 2), Done),
            op(2, 12, PutIf(Equals(2), 3), Done),
            op(13, 14, Read, Value(Some(1))),
        ];
        let v = verdict(&history);
        assert!(matches!(v.outcome, Outcome::Linearizable), "{v:?}");
        assert!(v.stats.backtracks >= 2, "{:?}", v.stats);
    }

    #[test]
    fn unknown_outcomes_may_or_may_not_take_effect() {
        // Took effect, even long after its invoke.
        assert!(linearizable(&[
            op(0, 0, Put(1), Unknown),
            op(5, 6, Read, Value(None)),
            op(7, 8, Read, Value(Some(1))),
        ]));
        // Never took effect.
        assert!(linearizable(&[
            op(0, 0, PutIf(NotExists, 1), Unknown),
            op(5, 6, PutIf(NotExists, 2), Done),
            op(7, 8, Read, Value(Some(2))),
        ]));
        // But it cannot take effect before it was invoked, nor twice.
        assert!(!linearizable(&[
            op(0, 1, Read, Value(Some(1))),
            op(2, 0, Put(1), Unknown),
        ]));
        assert!(!linearizable(&[
            op(0, 0, Put(1), Unknown),
            op(1, 2, Read, Value(Some(1))),
            op(3, 4, Put(2), Done),
            op(5, 6, Read, Value(Some(1))),
        ]));
        // An unknown read is ignored.
        assert!(linearizable(&[op(0, 0, Read, Unknown)]));
    }

    #[test]
    fn keys_are_independent_and_the_counterexample_names_the_key() {
        let history = [
            on("a", 0, 1, Put(1), Done),
            on("b", 0, 1, Put(2), Done),
            on("a", 2, 3, Read, Value(Some(1))),
            on("b", 2, 3, Read, Value(Some(1))),
        ];
        let v = verdict(&history);
        assert_eq!(v.stats.keys, 2);
        let Outcome::NotLinearizable(c) = v.outcome else {
            panic!("{v:?}")
        };
        assert_eq!(c.key, "b");
        assert_eq!(c.prefix.len(), 1);
        assert_eq!(c.state, Some(2));
        assert_eq!(c.stuck.len(), 1);
        assert!(c.to_string().contains("read -> 1"), "{c}");
    }

    #[test]
    fn a_long_concurrent_history_is_checked_quickly() {
        // 8 clients in lock step, 500 rounds: each round all write concurrently, then all read
        // the winner (the last invoked). The cache keeps this linear-ish.
        let mut history = Vec::new();
        let mut t = 0;
        for round in 0..500u64 {
            let start = t;
            for c in 0..8u64 {
                history.push(Operation {
                    key: "k",
                    client: c as usize,
                    invoke: start + c,
                    complete: start + 20 + c,
                    call: Put(round * 8 + c),
                    ret: Done,
                });
            }
            for c in 0..8u64 {
                history.push(Operation {
                    key: "k",
                    client: c as usize,
                    invoke: start + 30 + c,
                    complete: start + 40 + c,
                    call: Read,
                    ret: Value(Some(round * 8 + 7)),
                });
            }
            t += 50;
        }
        let v = verdict(&history);
        assert!(matches!(v.outcome, Outcome::Linearizable), "{v:?}");
        assert!(v.stats.steps < 500_000, "{:?}", v.stats);
    }

    /// The definition, by brute force: some order of all known operations (and any subset of the
    /// unknown ones) that respects real time and that the model accepts.
    fn brute_force(ops: &[Operation<&'static str>]) -> bool {
        fn search(
            ops: &[Operation<&'static str>],
            placed: &mut Vec<bool>,
            state: Option<u64>,
        ) -> bool {
            if (0..ops.len()).all(|i| placed[i] || ops[i].ret == Unknown) {
                return true;
            }
            for i in 0..ops.len() {
                if placed[i] {
                    continue;
                }
                let blocked = (0..ops.len()).any(|j| {
                    !placed[j] && ops[j].ret != Unknown && ops[j].complete < ops[i].invoke
                });
                if blocked {
                    continue;
                }
                if let Some(next) = step(state, ops[i].call, ops[i].ret) {
                    placed[i] = true;
                    let found = search(ops, placed, next);
                    placed[i] = false;
                    if found {
                        return true;
                    }
                }
            }
            false
        }
        let ops: Vec<_> = ops
            .iter()
            .filter(|op| !(op.call == Read && op.ret == Unknown))
            .cloned()
            .collect();
        search(&ops, &mut vec![false; ops.len()], None)
    }

    #[test]
    fn agrees_with_brute_force_on_random_small_histories() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut below = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut accepted, mut rejected) = (0, 0);
        for _ in 0..3000 {
            let len = 1 + below(6) as usize;
            let history: Vec<_> = (0..len)
                .map(|_| {
                    let invoke = below(12);
                    let complete = invoke + below(6);
                    // Few values, so reads and conditions often match by chance.
                    let v = 1 + below(3);
                    let cond = if below(2) == 0 {
                        NotExists
                    } else {
                        Equals(1 + below(3))
                    };
                    let (call, ret) = match below(6) {
                        0 | 1 => (Read, Value((below(3) > 0).then_some(v))),
                        2 => (Put(v), Done),
                        3 => (Delete, Done),
                        4 => (
                            PutIf(cond, v),
                            if below(2) == 0 { Done } else { CheckFailed },
                        ),
                        _ => (
                            DeleteIf(cond),
                            if below(2) == 0 { Done } else { CheckFailed },
                        ),
                    };
                    let ret = if below(8) == 0 { Unknown } else { ret };
                    op(invoke, complete, call, ret)
                })
                .collect();
            let expected = brute_force(&history);
            let got = matches!(verdict(&history).outcome, Outcome::Linearizable);
            assert_eq!(got, expected, "disagreement on {history:#?}");
            if expected {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
        // Both verdicts are well represented.
        assert!(
            accepted > 300 && rejected > 300,
            "{accepted} accepted, {rejected} rejected"
        );
    }
}
