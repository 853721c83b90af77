//! One behavioural suite run against every engine configuration.

use std::ops::Bound;
use std::sync::Arc;

use crate::{
    CommitError, Engine, LogEntry, LogPosition, LogRecord, Origin, RedbEngine, StorageError,
    WriteBatch, read_counter,
};

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

fn record(table: u64, key: &[u8]) -> LogRecord {
    LogRecord {
        table,
        key: key.to_vec(),
        old: None,
        new: Some(key.to_vec()),
        origin: Origin::User,
    }
}

fn append(engine: &dyn Engine, table: u64, key: &[u8]) {
    let mut batch = WriteBatch::new();
    batch
        .put(key.to_vec(), b"v".to_vec())
        .append_log(record(table, key));
    engine.commit(batch).wait().unwrap();
}

/// Every record of `table`, in log order (or reverse) within `range`.
fn log_of(
    engine: &dyn Engine,
    table: u64,
    range: (Bound<LogPosition>, Bound<LogPosition>),
    reverse: bool,
) -> Vec<LogEntry> {
    let mut entries = Vec::new();
    engine
        .snapshot()
        .unwrap()
        .scan_log(table, range, reverse, &mut |entry| {
            entries.push(entry);
            true
        })
        .unwrap();
    entries
}

fn whole_log(engine: &dyn Engine, table: u64) -> Vec<LogEntry> {
    log_of(engine, table, (Bound::Unbounded, Bound::Unbounded), false)
}

#[test]
fn log_records_are_appended_with_their_batch_and_read_back_by_table() {
    for (name, engine, _dir) in engines() {
        assert_eq!(
            engine.snapshot().unwrap().log_head().unwrap(),
            LogPosition::START
        );
        let mut batch = WriteBatch::new();
        batch
            .put(b"item".to_vec(), b"new".to_vec())
            .append_log(LogRecord {
                table: 3,
                key: b"item".to_vec(),
                old: Some(b"old".to_vec()),
                new: Some(b"new".to_vec()),
                origin: Origin::Ttl,
            });
        engine.commit(batch).wait().unwrap();
        append(&*engine, 4, b"other");
        append(&*engine, 3, b"second");

        let entries = whole_log(&*engine, 3);
        assert_eq!(entries.len(), 2, "{name}");
        assert_eq!(
            entries[0].record.old.as_deref(),
            Some(&b"old"[..]),
            "{name}"
        );
        assert_eq!(entries[0].record.origin, Origin::Ttl, "{name}");
        assert_eq!(entries[1].record.key, b"second", "{name}");
        assert_eq!(
            entries
                .iter()
                .map(|e| e.position.sequence)
                .collect::<Vec<_>>(),
            [1, 3],
            "{name}"
        );
        let snapshot = engine.snapshot().unwrap();
        assert_eq!(snapshot.log_head().unwrap(), entries[1].position, "{name}");
        assert_eq!(snapshot.next_log_table(None).unwrap(), Some(3), "{name}");
        assert_eq!(snapshot.next_log_table(Some(3)).unwrap(), Some(4), "{name}");
        assert_eq!(snapshot.next_log_table(Some(4)).unwrap(), None, "{name}");
        assert_eq!(
            snapshot.next_log_table(Some(u64::MAX)).unwrap(),
            None,
            "{name}"
        );

        let after_first = (Bound::Excluded(entries[0].position), Bound::Unbounded);
        assert_eq!(
            log_of(&*engine, 3, after_first, false),
            entries[1..],
            "{name}"
        );
        let reversed = log_of(&*engine, 3, (Bound::Unbounded, Bound::Unbounded), true);
        assert_eq!(reversed[0], entries[1], "{name}");
    }
}

#[test]
fn a_refused_batch_appends_nothing() {
    for (name, engine, _dir) in engines() {
        append(&*engine, 1, b"a");
        let head = engine.snapshot().unwrap().log_head().unwrap();
        let mut stale = WriteBatch::new();
        stale
            .expect(b"a".to_vec(), Some(b"not what it holds".to_vec()))
            .append_log(record(1, b"refused"));
        assert!(
            matches!(engine.commit(stale).wait(), Err(CommitError::Conflict)),
            "{name}"
        );
        assert_eq!(whole_log(&*engine, 1).len(), 1, "{name}");
        assert_eq!(
            engine.snapshot().unwrap().log_head().unwrap(),
            head,
            "{name}"
        );
        append(&*engine, 1, b"b");
        assert_eq!(
            whole_log(&*engine, 1)[1].position.sequence,
            head.sequence + 1,
            "{name}: no sequence number is spent on a refused batch"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_follow_commit_order_under_concurrent_writers() {
    for (name, engine, _dir) in engines() {
        let tasks: Vec<_> = (0..8u8)
            .map(|writer| {
                let engine = engine.clone();
                tokio::spawn(async move {
                    for i in 0..25u8 {
                        let mut batch = WriteBatch::new();
                        batch.append_log(record(9, &[writer, i]));
                        engine.commit(batch).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let entries = whole_log(&*engine, 9);
        assert_eq!(entries.len(), 200, "{name}");
        for pair in entries.windows(2) {
            assert_eq!(
                pair[1].position.sequence,
                pair[0].position.sequence + 1,
                "{name}"
            );
            assert!(
                pair[1].position.timestamp_ms >= pair[0].position.timestamp_ms,
                "{name}"
            );
        }
        // Each writer's own records appear in the order it committed them.
        for writer in 0..8u8 {
            let own: Vec<u8> = entries
                .iter()
                .filter(|e| e.record.key[0] == writer)
                .map(|e| e.record.key[1])
                .collect();
            assert_eq!(own, (0..25).collect::<Vec<_>>(), "{name}");
        }
    }
}

#[test]
fn trimming_drops_the_oldest_records_and_remembers_where() {
    for (name, engine, _dir) in engines() {
        for key in [b"a", b"b", b"c"] {
            append(&*engine, 2, key);
        }
        append(&*engine, 5, b"kept");
        let entries = whole_log(&*engine, 2);
        let mut batch = WriteBatch::new();
        batch.trim_log(2, entries[2].position);
        engine.commit(batch).wait().unwrap();
        assert_eq!(whole_log(&*engine, 2), entries[2..], "{name}");
        assert_eq!(whole_log(&*engine, 5).len(), 1, "{name}");
        let snapshot = engine.snapshot().unwrap();
        assert_eq!(
            snapshot.log_horizon(2).unwrap(),
            entries[2].position,
            "{name}"
        );
        assert_eq!(
            snapshot.log_horizon(5).unwrap(),
            LogPosition::START,
            "{name}"
        );
        // A trim to an older position never moves the horizon back.
        let mut batch = WriteBatch::new();
        batch.trim_log(2, entries[0].position);
        engine.commit(batch).wait().unwrap();
        assert_eq!(
            engine.snapshot().unwrap().log_horizon(2).unwrap(),
            entries[2].position,
            "{name}"
        );
    }
}

#[test]
fn the_log_and_its_sequence_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let engine = RedbEngine::open(dir.path()).unwrap();
        append(&engine, 1, b"a");
        append(&engine, 1, b"b");
        let mut batch = WriteBatch::new();
        batch.trim_log(1, whole_log(&engine, 1)[1].position);
        engine.commit(batch).wait().unwrap();
        whole_log(&engine, 1)
    };
    let engine = RedbEngine::open(dir.path()).unwrap();
    assert_eq!(whole_log(&engine, 1), before);
    assert_eq!(
        engine.snapshot().unwrap().log_head().unwrap(),
        before[0].position
    );
    assert_eq!(
        engine.snapshot().unwrap().log_horizon(1).unwrap(),
        before[0].position
    );
    append(&engine, 1, b"c");
    let after = whole_log(&engine, 1);
    assert_eq!(after[1].position.sequence, before[0].position.sequence + 1);
    assert!(after[1].position > before[0].position);
}
