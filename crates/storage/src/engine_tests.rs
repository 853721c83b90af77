//! One behavioural suite run against every engine configuration.

use std::ops::Bound;
use std::sync::Arc;

use crate::{CommitError, Engine, RedbEngine, StorageError, WriteBatch, read_counter};

fn engines() -> Vec<(&'static str, Arc<dyn Engine>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    vec![
        ("memory", Arc::new(RedbEngine::in_memory().unwrap()), None),
        (
            "disk",
            Arc::new(RedbEngine::open(dir.path()).unwrap()),
            Some(dir),
        ),
    ]
}

fn put(engine: &dyn Engine, key: &[u8], value: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.put(key.to_vec(), value.to_vec());
    engine.commit(batch).wait().unwrap();
}

fn keys_in(engine: &dyn Engine, reverse: bool) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    engine
        .snapshot()
        .unwrap()
        .scan(
            (Bound::Unbounded, Bound::Unbounded),
            reverse,
            &mut |k, _| {
                keys.push(k.to_vec());
                true
            },
        )
        .unwrap();
    keys
}

#[test]
fn puts_gets_and_deletes() {
    for (name, engine, _dir) in engines() {
        put(&*engine, b"a", b"1");
        assert_eq!(
            engine.snapshot().unwrap().get(b"a").unwrap(),
            Some(b"1".to_vec()),
            "{name}"
        );
        let mut batch = WriteBatch::new();
        batch.delete(b"a".to_vec());
        engine.commit(batch).wait().unwrap();
        assert_eq!(
            engine.snapshot().unwrap().get(b"a").unwrap(),
            None,
            "{name}"
        );
    }
}

#[test]
fn scans_in_key_order_both_ways_and_stops_early() {
    for (name, engine, _dir) in engines() {
        for key in [b"c", b"a", b"b"] {
            put(&*engine, key, b"");
        }
        assert_eq!(
            keys_in(&*engine, false),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()],
            "{name}"
        );
        assert_eq!(
            keys_in(&*engine, true),
            vec![b"c".to_vec(), b"b".to_vec(), b"a".to_vec()],
            "{name}"
        );
        let mut seen = 0;
        let range = (Bound::Excluded(&b"a"[..]), Bound::Unbounded);
        engine
            .snapshot()
            .unwrap()
            .scan(range, false, &mut |_, _| {
                seen += 1;
                false
            })
            .unwrap();
        assert_eq!(seen, 1, "{name}");
    }
}

#[test]
fn snapshots_do_not_see_later_writes() {
    for (name, engine, _dir) in engines() {
        put(&*engine, b"k", b"old");
        let snapshot = engine.snapshot().unwrap();
        put(&*engine, b"k", b"new");
        assert_eq!(snapshot.get(b"k").unwrap(), Some(b"old".to_vec()), "{name}");
    }
}

#[test]
fn a_stale_expectation_refuses_the_whole_batch() {
    for (name, engine, _dir) in engines() {
        put(&*engine, b"k", b"v1");
        let mut stale = WriteBatch::new();
        stale
            .expect(b"k".to_vec(), Some(b"v0".to_vec()))
            .put(b"k".to_vec(), b"v2".to_vec())
            .put(b"other".to_vec(), b"x".to_vec());
        assert!(
            matches!(engine.commit(stale).wait(), Err(CommitError::Conflict)),
            "{name}"
        );
        let snapshot = engine.snapshot().unwrap();
        assert_eq!(snapshot.get(b"k").unwrap(), Some(b"v1".to_vec()), "{name}");
        assert_eq!(snapshot.get(b"other").unwrap(), None, "{name}");

        let mut absent = WriteBatch::new();
        absent
            .expect(b"new".to_vec(), None)
            .put(b"new".to_vec(), b"1".to_vec());
        engine.commit(absent.clone()).wait().unwrap();
        assert!(
            matches!(engine.commit(absent).wait(), Err(CommitError::Conflict)),
            "{name}"
        );
    }
}

#[test]
fn counters_add_and_vanish_at_zero() {
    for (name, engine, _dir) in engines() {
        let mut batch = WriteBatch::new();
        batch
            .add_counter(b"c".to_vec(), 5)
            .add_counter(b"c".to_vec(), -2);
        engine.commit(batch).wait().unwrap();
        assert_eq!(
            read_counter(&*engine.snapshot().unwrap(), b"c").unwrap(),
            3,
            "{name}"
        );
        let mut batch = WriteBatch::new();
        batch.add_counter(b"c".to_vec(), -3);
        engine.commit(batch).wait().unwrap();
        assert_eq!(
            engine.snapshot().unwrap().get(b"c").unwrap(),
            None,
            "{name}"
        );
    }
}

#[test]
fn delete_range_removes_exactly_the_half_open_range() {
    for (name, engine, _dir) in engines() {
        for key in [b"a", b"b", b"c", b"d"] {
            put(&*engine, key, b"");
        }
        let mut batch = WriteBatch::new();
        batch.delete_range(b"b".to_vec(), b"d".to_vec());
        engine.commit(batch).wait().unwrap();
        assert_eq!(
            keys_in(&*engine, false),
            vec![b"a".to_vec(), b"d".to_vec()],
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_optimistic_increments_never_lose_an_update() {
    for (name, engine, _dir) in engines() {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let engine = engine.clone();
                tokio::spawn(async move {
                    for _ in 0..25 {
                        loop {
                            let current = engine.snapshot().unwrap().get(b"n").unwrap();
                            let value = current
                                .as_deref()
                                .map(|v| u32::from_be_bytes(v.try_into().unwrap()))
                                .unwrap_or(0);
                            let mut batch = WriteBatch::new();
                            batch
                                .expect(b"n".to_vec(), current)
                                .put(b"n".to_vec(), (value + 1).to_be_bytes().to_vec());
                            match engine.commit(batch).await {
                                Ok(()) => break,
                                Err(CommitError::Conflict) => continue,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let value = engine.snapshot().unwrap().get(b"n").unwrap().unwrap();
        assert_eq!(u32::from_be_bytes(value.try_into().unwrap()), 200, "{name}");
    }
}

#[test]
fn a_second_engine_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = RedbEngine::open(dir.path()).unwrap();
    assert!(matches!(
        RedbEngine::open(dir.path()),
        Err(StorageError::Locked(_))
    ));
}

#[test]
fn committed_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = RedbEngine::open(dir.path()).unwrap();
        put(&engine, b"durable", b"yes");
    }
    let engine = RedbEngine::open(dir.path()).unwrap();
    assert_eq!(
        engine.snapshot().unwrap().get(b"durable").unwrap(),
        Some(b"yes".to_vec())
    );
}
