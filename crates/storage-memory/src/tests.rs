//! What only this engine promises beyond the suite: old versions go as soon as no snapshot holds
//! them, and snapshots held across random batches keep answering as the model did when they were
//! taken (a proptest against a `BTreeMap`).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;

fn put(engine: &MemoryEngine, key: &[u8], value: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.put(key.to_vec(), value.to_vec());
    engine.commit(batch).wait().unwrap();
}

#[test]
fn an_old_version_is_freed_once_its_last_snapshot_drops() {
    let engine = MemoryEngine::new();
    put(&engine, b"k", b"old");
    let held = engine.current();
    let version = Arc::downgrade(&held);
    let snapshot = engine.snapshot().unwrap();
    drop(held);
    put(&engine, b"k", b"new");
    assert!(version.upgrade().is_some(), "the snapshot still sees it");
    assert_eq!(snapshot.get(b"k").unwrap(), Some(b"old".to_vec()));
    drop(snapshot);
    assert!(version.upgrade().is_none(), "no one can see it any more");
}

#[test]
fn a_commit_no_snapshot_sees_changes_the_version_in_place() {
    let engine = MemoryEngine::new();
    put(&engine, b"k", b"old");
    let before = Arc::as_ptr(&engine.current());
    put(&engine, b"k", b"new");
    assert_eq!(Arc::as_ptr(&engine.current()), before, "not copied");
    let snapshot = engine.snapshot().unwrap();
    put(&engine, b"k", b"newer");
    assert_ne!(
        Arc::as_ptr(&engine.current()),
        before,
        "copied for the snapshot"
    );
    assert_eq!(snapshot.get(b"k").unwrap(), Some(b"new".to_vec()));
}

#[test]
fn inverted_ranges_are_empty_not_a_panic() {
    let engine = MemoryEngine::new();
    put(&engine, b"b", b"");
    let snapshot = engine.snapshot().unwrap();
    for (start, end) in [
        (Bound::Included(&b"c"[..]), Bound::Included(&b"a"[..])),
        (Bound::Included(&b"b"[..]), Bound::Excluded(&b"b"[..])),
        (Bound::Excluded(&b"b"[..]), Bound::Included(&b"b"[..])),
        (Bound::Excluded(&b"b"[..]), Bound::Excluded(&b"b"[..])),
    ] {
        snapshot
            .scan((start, end), false, &mut |_, _| {
                panic!("nothing in {start:?}..{end:?}")
            })
            .unwrap();
    }
    let mut batch = WriteBatch::new();
    batch
        .delete_range(b"c".to_vec(), b"a".to_vec())
        .trim_log(1, LogPosition::START);
    engine.commit(batch).wait().unwrap();
    assert_eq!(engine.snapshot().unwrap().get(b"b").unwrap(), Some(vec![]));
}

#[derive(Debug, Clone)]
enum Step {
    Put(u8, u8),
    Delete(u8),
    DeleteRange(u8, u8),
    AddCounter(u8, i8),
    /// A put of the key expecting what the model holds (true) or something else.
    Conditional(u8, bool),
    /// Takes a snapshot and remembers the model at that moment.
    Snapshot,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..16u8, any::<u8>()).prop_map(|(k, v)| Step::Put(k, v)),
        (0..16u8).prop_map(Step::Delete),
        (0..16u8, 0..16u8).prop_map(|(a, b)| Step::DeleteRange(a, b)),
        (16..20u8, any::<i8>()).prop_map(|(k, d)| Step::AddCounter(k, d)),
        (0..16u8, any::<bool>()).prop_map(|(k, ok)| Step::Conditional(k, ok)),
        Just(Step::Snapshot),
    ]
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Plays `step` on the engine and the model alike.
fn play(engine: &MemoryEngine, model: &mut Model, step: &Step) {
    let mut batch = WriteBatch::new();
    match *step {
        Step::Put(k, v) => {
            batch.put(vec![k], vec![v]);
            model.insert(vec![k], vec![v]);
        }
        Step::Delete(k) => {
            batch.delete(vec![k]);
            model.remove(&vec![k]);
        }
        Step::DeleteRange(a, b) => {
            batch.delete_range(vec![a], vec![b]);
            model.retain(|key, _| !(vec![a] <= *key && *key < vec![b]));
        }
        Step::AddCounter(k, delta) => {
            batch.add_counter(vec![k], delta.into());
            let total = model.get(&vec![k]).map_or(0, |v| decode_counter(v)) + i64::from(delta);
            if total == 0 {
                model.remove(&vec![k]);
            } else {
                model.insert(vec![k], total.to_be_bytes().to_vec());
            }
        }
        Step::Conditional(k, correct) => {
            let held = model.get(&vec![k]).cloned();
            let expected = if correct {
                held
            } else {
                Some(b"never".to_vec())
            };
            batch.expect(vec![k], expected).put(vec![k], b"c".to_vec());
            let outcome = engine.commit(batch).wait();
            assert_eq!(outcome.is_ok(), correct, "{outcome:?}");
            if correct {
                model.insert(vec![k], b"c".to_vec());
            }
            return;
        }
        Step::Snapshot => return,
    }
    engine.commit(batch).wait().unwrap();
}

fn contents(snapshot: &dyn Snapshot, reverse: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs = Vec::new();
    let all = (Bound::Unbounded, Bound::Unbounded);
    snapshot
        .scan(all, reverse, &mut |k, v| {
            pairs.push((k.to_vec(), v.to_vec()));
            true
        })
        .unwrap();
    pairs
}

proptest! {
    #[test]
    fn snapshots_keep_the_state_they_were_taken_at(steps in prop::collection::vec(step(), 1..60)) {
        let engine = MemoryEngine::new();
        let mut model = Model::new();
        let mut held: Vec<(Box<dyn Snapshot>, Model)> = Vec::new();
        for step in &steps {
            play(&engine, &mut model, step);
            if let Step::Snapshot = step {
                held.push((engine.snapshot().unwrap(), model.clone()));
            }
        }
        held.push((engine.snapshot().unwrap(), model));
        for (snapshot, seen) in &held {
            let expected: Vec<_> = seen.clone().into_iter().collect();
            prop_assert_eq!(&contents(&**snapshot, false), &expected);
            let mut reversed = expected.clone();
            reversed.reverse();
            prop_assert_eq!(contents(&**snapshot, true), reversed);
            for key in 0..20u8 {
                prop_assert_eq!(snapshot.get(&[key]).unwrap(), seen.get(&vec![key]).cloned());
            }
        }
    }
}
