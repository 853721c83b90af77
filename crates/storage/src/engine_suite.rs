//! The behavioural suite every engine must pass, written once and run against each of them.
//!
//! Layers above the storage trait rely on one set of semantics (consistent snapshots, byte-ordered
//! range reads, expectations checked at commit in arrival order, counters, range deletes, a change
//! log in commit order), so every engine is held to the same tests rather than to copies that
//! could drift apart. A crate with an engine invokes [`engine_suite!`](crate::engine_suite) with a
//! function that makes fresh, empty engines; each test below becomes one `#[test]` there. This
//! crate runs it on redb in memory and on disk (`engine_tests.rs`); `haven-storage-postgres` on a
//! real PostgreSQL.

use std::any::Any;
use std::future::Future;
use std::ops::Bound;
use std::sync::Arc;

use crate::{
    CommitError, Engine, LogEntry, LogPosition, LogRecord, Origin, Snapshot, WriteBatch,
    read_counter,
};

/// A fresh, empty engine for one test, with whatever must live as long as it (a directory, a
/// database).
pub struct TestEngine {
    /// Names the configuration in failure messages.
    pub name: String,
    pub engine: Arc<dyn Engine>,
    pub keep: Box<dyn Any>,
}

/// Makes the engines a test runs against (each fresh and empty).
pub type Engines = dyn Fn() -> Vec<TestEngine>;

/// Runs `future` on a multi-threaded runtime of two workers, as the server's.
fn on_runtime<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

pub fn put(engine: &dyn Engine, key: &[u8], value: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.put(key.to_vec(), value.to_vec());
    engine.commit(batch).wait().unwrap();
}

fn keys_of(snapshot: &dyn Snapshot, reverse: bool) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    snapshot
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

fn keys_in(engine: &dyn Engine, reverse: bool) -> Vec<Vec<u8>> {
    keys_of(&*engine.snapshot().unwrap(), reverse)
}

pub fn puts_gets_and_deletes(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
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

pub fn scans_in_key_order_both_ways_and_stops_early(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
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

pub fn snapshots_do_not_see_later_writes(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
        put(&*engine, b"k", b"old");
        let snapshot = engine.snapshot().unwrap();
        assert_eq!(snapshot.get(b"k").unwrap(), Some(b"old".to_vec()), "{name}");
        put(&*engine, b"k", b"new");
        put(&*engine, b"later", b"x");
        assert_eq!(snapshot.get(b"k").unwrap(), Some(b"old".to_vec()), "{name}");
        assert_eq!(snapshot.get(b"later").unwrap(), None, "{name}");
        assert_eq!(keys_of(&*snapshot, false), [b"k".to_vec()], "{name}");
        drop(snapshot);
        // A snapshot taken after a write is acknowledged sees it, even before reading anything.
        let snapshot = engine.snapshot().unwrap();
        assert_eq!(snapshot.get(b"k").unwrap(), Some(b"new".to_vec()), "{name}");
    }
}

pub fn get_many_answers_in_the_order_asked(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
        put(&*engine, b"a", b"1");
        put(&*engine, b"c", b"3");
        let keys = [b"c", b"b", b"a", b"c"].map(|k| k.to_vec());
        let snapshot = engine.snapshot().unwrap();
        assert_eq!(
            snapshot.get_many(&keys).unwrap(),
            [
                Some(b"3".to_vec()),
                None,
                Some(b"1".to_vec()),
                Some(b"3".to_vec())
            ],
            "{name}"
        );
        assert!(snapshot.get_many(&[]).unwrap().is_empty(), "{name}");
    }
}

pub fn one_shot_reads_see_every_acknowledged_write(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
        let read = |keys: &[&[u8]]| {
            let keys = keys.iter().map(|k| k.to_vec()).collect();
            on_runtime(engine.read(keys)).unwrap()
        };
        put(&*engine, b"a", b"1");
        put(&*engine, b"c", b"3");
        let (one, three) = (Some(b"1".to_vec()), Some(b"3".to_vec()));
        assert_eq!(
            read(&[b"c", b"b", b"a", b"c"]),
            [three.clone(), None, one, three],
            "{name}"
        );
        put(&*engine, b"b", b"2");
        put(&*engine, b"c", b"new");
        assert_eq!(
            read(&[b"c", b"b"]),
            [Some(b"new".to_vec()), Some(b"2".to_vec())],
            "{name}"
        );
        assert!(read(&[]).is_empty(), "{name}");
    }
}

pub fn a_stale_expectation_refuses_the_whole_batch(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
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

pub fn counters_add_and_vanish_at_zero(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
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

pub fn delete_range_removes_exactly_the_half_open_range(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
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

pub fn concurrent_optimistic_increments_never_lose_an_update(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
        on_runtime(async {
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
        });
        let value = engine.snapshot().unwrap().get(b"n").unwrap().unwrap();
        assert_eq!(u32::from_be_bytes(value.try_into().unwrap()), 200, "{name}");
    }
}

fn record(table: u64, key: &[u8]) -> LogRecord {
    LogRecord {
        table,
        key: key.to_vec(),
        old: None,
        new: Some(key.to_vec()),
        origin: Origin::User,
        partial: Default::default(),
    }
}

pub fn append(engine: &dyn Engine, table: u64, key: &[u8]) {
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

pub fn whole_log(engine: &dyn Engine, table: u64) -> Vec<LogEntry> {
    log_of(engine, table, (Bound::Unbounded, Bound::Unbounded), false)
}

pub fn log_records_are_appended_with_their_batch_and_read_back_by_table(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
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
                partial: Default::default(),
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

pub fn a_refused_batch_appends_nothing(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
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

pub fn sequence_numbers_follow_commit_order_under_concurrent_writers(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
        on_runtime(async {
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
        });
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

pub fn trimming_drops_the_oldest_records_and_remembers_where(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
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

pub fn binary_keys_sort_by_unsigned_bytes(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
        let keys: [&[u8]; 7] = [b"", b"\0", b"\0\0", b"a", b"a\0", b"a\xff", b"\xff"];
        for key in keys.iter().rev() {
            put(&*engine, key, key);
        }
        let expected: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        assert_eq!(keys_in(&*engine, false), expected, "{name}");
        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(keys_in(&*engine, true), reversed, "{name}");
        assert_eq!(
            engine.snapshot().unwrap().get(b"").unwrap(),
            Some(Vec::new()),
            "{name}: an empty key holds an empty value"
        );
    }
}

/// A scan longer than any engine's read-ahead, with every kind of bound, in both directions.
pub fn long_scans_honour_their_bounds_both_ways(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
        let mut batch = WriteBatch::new();
        for i in 0u16..3000 {
            batch.put(i.to_be_bytes().to_vec(), vec![i as u8; 10]);
        }
        engine.commit(batch).wait().unwrap();
        let (low, high) = (100u16.to_be_bytes(), 2900u16.to_be_bytes());
        let bounds = [
            (
                Bound::Included(&low[..]),
                Bound::Excluded(&high[..]),
                100..2900,
            ),
            (
                Bound::Excluded(&low[..]),
                Bound::Included(&high[..]),
                101..2901,
            ),
            (Bound::Unbounded, Bound::Excluded(&high[..]), 0..2900),
            (Bound::Included(&low[..]), Bound::Unbounded, 100..3000),
        ];
        let snapshot = engine.snapshot().unwrap();
        for (start, end, expected) in bounds {
            for reverse in [false, true] {
                let mut seen = Vec::new();
                snapshot
                    .scan((start, end), reverse, &mut |key, value| {
                        let i = u16::from_be_bytes(key.try_into().unwrap());
                        assert_eq!(value, vec![i as u8; 10]);
                        seen.push(i);
                        true
                    })
                    .unwrap();
                let mut want: Vec<u16> = expected.clone().collect();
                if reverse {
                    want.reverse();
                }
                assert_eq!(seen, want, "{name}: {start:?}..{end:?} reverse {reverse}");
            }
        }
        let mut visited = 0;
        snapshot
            .scan((Bound::Unbounded, Bound::Unbounded), false, &mut |_, _| {
                visited += 1;
                visited < 1500
            })
            .unwrap();
        assert_eq!(visited, 1500, "{name}: a scan stops when told");
    }
}

/// Batches queued together are checked in arrival order, each against the state the ones before
/// it left: the second of two batches that both insert a key expected absent is refused.
pub fn queued_batches_are_checked_in_arrival_order(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
        let pending: Vec<_> = (0..20u8)
            .map(|i| {
                let mut batch = WriteBatch::new();
                batch
                    .expect(b"once".to_vec(), None)
                    .put(b"once".to_vec(), vec![i])
                    .add_counter(b"winners".to_vec(), 1);
                engine.commit(batch)
            })
            .collect();
        let outcomes: Vec<bool> = pending.into_iter().map(|p| p.wait().is_ok()).collect();
        assert!(outcomes[0], "{name}: the first batch commits");
        assert!(outcomes[1..].iter().all(|ok| !ok), "{name}: {outcomes:?}");
        let snapshot = engine.snapshot().unwrap();
        assert_eq!(snapshot.get(b"once").unwrap(), Some(vec![0]), "{name}");
        assert_eq!(read_counter(&*snapshot, b"winners").unwrap(), 1, "{name}");
    }
}

/// Within one batch, ops apply in order: a put after a range delete survives it, a counter added
/// after a put of its key adds to that value, and a counter in a deleted range starts from zero.
pub fn ops_apply_in_batch_order(engines: &Engines) {
    for TestEngine { name, engine, .. } in engines() {
        for key in [b"r1", b"r2", b"r3"] {
            put(&*engine, key, b"old");
        }
        let mut batch = WriteBatch::new();
        batch
            .add_counter(b"r2".to_vec(), 5)
            .delete_range(b"r1".to_vec(), b"r4".to_vec())
            .put(b"r3".to_vec(), b"new".to_vec())
            .add_counter(b"r2".to_vec(), 2)
            .put(b"c".to_vec(), 40i64.to_be_bytes().to_vec())
            .add_counter(b"c".to_vec(), 2);
        engine.commit(batch).wait().unwrap();
        let snapshot = engine.snapshot().unwrap();
        assert_eq!(snapshot.get(b"r1").unwrap(), None, "{name}");
        assert_eq!(read_counter(&*snapshot, b"r2").unwrap(), 2, "{name}");
        assert_eq!(
            snapshot.get(b"r3").unwrap(),
            Some(b"new".to_vec()),
            "{name}"
        );
        assert_eq!(read_counter(&*snapshot, b"c").unwrap(), 42, "{name}");

        // The next batch's expectations see this one's range delete.
        let mut batch = WriteBatch::new();
        batch.expect(b"r1".to_vec(), Some(b"old".to_vec()));
        assert!(
            matches!(engine.commit(batch).wait(), Err(CommitError::Conflict)),
            "{name}"
        );
    }
}

/// What an engine with storage of its own keeps across a restart: `open` opens the same storage
/// each time (the suite drops one engine before opening the next). Not part of
/// [`engine_suite!`]: each durable engine calls it with its own way of reopening.
pub fn data_and_log_survive_reopening(open: &dyn Fn() -> Box<dyn Engine>) {
    let before = {
        let engine = open();
        put(&*engine, b"durable", b"yes");
        append(&*engine, 1, b"a");
        append(&*engine, 1, b"b");
        let mut batch = WriteBatch::new();
        batch.trim_log(1, whole_log(&*engine, 1)[1].position);
        engine.commit(batch).wait().unwrap();
        whole_log(&*engine, 1)
    };
    let engine = open();
    let snapshot = engine.snapshot().unwrap();
    assert_eq!(snapshot.get(b"durable").unwrap(), Some(b"yes".to_vec()));
    assert_eq!(snapshot.log_head().unwrap(), before[0].position);
    assert_eq!(snapshot.log_horizon(1).unwrap(), before[0].position);
    drop(snapshot);
    assert_eq!(whole_log(&*engine, 1), before);
    append(&*engine, 1, b"c");
    let after = whole_log(&*engine, 1);
    assert_eq!(after[1].position.sequence, before[0].position.sequence + 1);
    assert!(after[1].position > before[0].position);
}

/// Generates one `#[test]` per test of the suite, each run against the engines `$engines` (a
/// `fn() -> Vec<TestEngine>`) makes.
#[macro_export]
macro_rules! engine_suite {
    ($engines:path) => {
        $crate::engine_suite!(@tests $engines;
            puts_gets_and_deletes,
            scans_in_key_order_both_ways_and_stops_early,
            snapshots_do_not_see_later_writes,
            get_many_answers_in_the_order_asked,
            one_shot_reads_see_every_acknowledged_write,
            a_stale_expectation_refuses_the_whole_batch,
            counters_add_and_vanish_at_zero,
            delete_range_removes_exactly_the_half_open_range,
            concurrent_optimistic_increments_never_lose_an_update,
            log_records_are_appended_with_their_batch_and_read_back_by_table,
            a_refused_batch_appends_nothing,
            sequence_numbers_follow_commit_order_under_concurrent_writers,
            trimming_drops_the_oldest_records_and_remembers_where,
            binary_keys_sort_by_unsigned_bytes,
            long_scans_honour_their_bounds_both_ways,
            queued_batches_are_checked_in_arrival_order,
            ops_apply_in_batch_order,
        );
    };
    (@tests $engines:path; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $crate::engine_suite::$test(&$engines);
            }
        )*
    };
}
