//! The value log's own behaviour: replay, torn tails, compaction, and opening older data files.

use super::*;
use crate::log::{LogRecord, Origin};

fn record() -> LogRecord {
    LogRecord {
        table: 1,
        key: b"k".to_vec(),
        old: None,
        new: Some(b"v".to_vec()),
        origin: Origin::User,
        partial: Default::default(),
    }
}

fn put(engine: &RedbEngine, key: &[u8], value: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.put(key.to_vec(), value.to_vec());
    engine.commit(batch).wait().unwrap();
}

fn get(engine: &RedbEngine, key: &[u8]) -> Option<Vec<u8>> {
    engine.snapshot().unwrap().get(key).unwrap()
}

fn value(i: u32, round: u32) -> Vec<u8> {
    format!("{i:06}-{round:06}-").repeat(40).into_bytes()
}

/// The segment files in `dir` and their bytes in all.
fn segments_in(dir: &Path) -> (usize, u64) {
    let ids = FsDir(dir.to_path_buf()).list().unwrap();
    let bytes = (ids.iter())
        .map(|id| {
            std::fs::metadata(dir.join(format!("values-{id:08}.log")))
                .unwrap()
                .len()
        })
        .sum();
    (ids.len(), bytes)
}

#[test]
fn a_head_stored_where_it_used_to_be_is_read_and_numbering_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let before = LogPosition {
        timestamp_ms: 5,
        sequence: 41,
    };
    {
        let database = Database::create(dir.path().join(DATABASE_FILE)).unwrap();
        prepare(&database).unwrap();
        let txn = database.begin_write().unwrap();
        txn.open_table(LOG_STATE)
            .unwrap()
            .insert(log::HEAD_KEY, &before.to_bytes()[..])
            .unwrap();
        txn.commit().unwrap();
    }
    let engine = RedbEngine::open(dir.path()).unwrap();
    assert_eq!(engine.snapshot().unwrap().log_head().unwrap(), before);
    let mut batch = WriteBatch::new();
    batch.append_log(record());
    engine.commit(batch).wait().unwrap();
    let snapshot = engine.snapshot().unwrap();
    let head = snapshot.log_head().unwrap();
    assert_eq!(head.sequence, 42);
    let mut entries = Vec::new();
    let all = (Bound::Unbounded, Bound::Unbounded);
    snapshot
        .scan_log(1, all, false, &mut |entry| {
            entries.push(entry.position);
            true
        })
        .unwrap();
    assert_eq!(entries, [head]);
    assert_eq!(snapshot.next_log_table(Some(1)).unwrap(), None);
}

#[test]
fn a_data_file_written_before_the_value_log_opens_with_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let large = vec![7u8; 3000];
    {
        // What an engine before the value log left: values straight in the "data" table.
        let database = Database::create(dir.path().join(DATABASE_FILE)).unwrap();
        let txn = database.begin_write().unwrap();
        {
            let mut data = txn.open_table(OLD_DATA).unwrap();
            data.insert(&b"small"[..], &b"s"[..]).unwrap();
            data.insert(&b"large"[..], &large[..]).unwrap();
            data.insert(&b"count"[..], &5i64.to_be_bytes()[..]).unwrap();
        }
        txn.open_table(LOG).unwrap();
        txn.open_table(LOG_STATE).unwrap();
        txn.commit().unwrap();
    }
    {
        let engine = RedbEngine::open(dir.path()).unwrap();
        assert_eq!(get(&engine, b"small"), Some(b"s".to_vec()));
        assert_eq!(get(&engine, b"large"), Some(large.clone()));
        let mut batch = WriteBatch::new();
        batch.expect(b"large".to_vec(), Some(large.clone()));
        batch.add_counter(b"count".to_vec(), 2);
        batch.put(b"large".to_vec(), vec![8; 3000]);
        engine.commit(batch).wait().unwrap();
    }
    let engine = RedbEngine::open(dir.path()).unwrap();
    assert_eq!(get(&engine, b"small"), Some(b"s".to_vec()));
    assert_eq!(get(&engine, b"large"), Some(vec![8; 3000]));
    assert_eq!(get(&engine, b"count"), Some(7i64.to_be_bytes().to_vec()));
}

#[test]
fn a_power_cut_between_checkpoints_replays_to_the_last_acknowledged_group() {
    let disk = SimulatedDisk::new();
    let engine = RedbEngine::on_simulated_disk(&disk).unwrap();
    // A checkpoint comes every 256 groups or second: these groups come after the first one.
    for i in 0..50u32 {
        let mut batch = WriteBatch::new();
        batch.put(i.to_be_bytes().to_vec(), value(i, 0));
        batch.add_counter(b"~count".to_vec(), 1);
        batch.append_log(record());
        engine.commit(batch).wait().unwrap();
    }
    disk.power_off();
    drop(engine);
    disk.power_on(0);
    let engine = RedbEngine::on_simulated_disk(&disk).unwrap();
    for i in 0..50u32 {
        assert_eq!(
            get(&engine, &i.to_be_bytes()),
            Some(value(i, 0)),
            "item {i}"
        );
    }
    assert_eq!(get(&engine, b"~count"), Some(50i64.to_be_bytes().to_vec()));
    assert_eq!(engine.snapshot().unwrap().log_head().unwrap().sequence, 50);
}

#[test]
fn a_torn_tail_is_cut_and_the_log_goes_on_after_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = RedbEngine::open(dir.path()).unwrap();
        put(&engine, b"kept", &value(1, 1));
    }
    let segment = dir.path().join("values-00000001.log");
    let intact = std::fs::metadata(&segment).unwrap().len();
    // Half a record (a header claiming more than follows), as a crash mid-append leaves it.
    let mut torn = Vec::new();
    torn.extend_from_slice(&1000u32.to_le_bytes());
    torn.extend_from_slice(&[0xAB; 300]);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&torn);
    std::fs::write(&segment, bytes).unwrap();
    {
        let engine = RedbEngine::open(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&segment).unwrap().len(), intact);
        assert_eq!(get(&engine, b"kept"), Some(value(1, 1)));
        put(&engine, b"after", &value(2, 2));
    }
    let engine = RedbEngine::open(dir.path()).unwrap();
    assert_eq!(get(&engine, b"kept"), Some(value(1, 1)));
    assert_eq!(get(&engine, b"after"), Some(value(2, 2)));
}

/// Overwrites `keys` keys `rounds` times, ten keys a batch.
fn overwrite(engine: &RedbEngine, keys: u32, rounds: std::ops::Range<u32>) {
    for round in rounds {
        for first in (0..keys).step_by(10) {
            let mut batch = WriteBatch::new();
            for i in first..(first + 10).min(keys) {
                batch.put(i.to_be_bytes().to_vec(), value(i, round));
            }
            engine.commit(batch).wait().unwrap();
        }
    }
}

/// Waits (at most 20 s) until `done` holds.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

#[test]
fn disk_use_stays_bounded_under_overwrites_and_a_snapshot_still_reads_a_compacted_segment() {
    let dir = tempfile::tempdir().unwrap();
    // 100 keys of 960 bytes: about 96 KB live; segments of 64 KB.
    let engine = RedbEngine::open_in(dir.path(), DEFAULT_CACHE_BYTES, 64 * 1024).unwrap();
    overwrite(&engine, 100, 0..1);
    let old = engine.snapshot().unwrap();
    overwrite(&engine, 100, 1..40);
    // 40 rounds wrote ~3.8 MB; compaction must bring the files near the live data.
    assert!(
        eventually(|| segments_in(dir.path()).1 < 640 * 1024),
        "segments: {:?}",
        segments_in(dir.path())
    );
    assert!(!dir.path().join("values-00000001.log").exists());
    // The old snapshot still reads the first round, from segments that are gone.
    for i in 0..100u32 {
        assert_eq!(old.get(&i.to_be_bytes()).unwrap(), Some(value(i, 0)));
    }
    drop(old);
    for i in 0..100u32 {
        assert_eq!(get(&engine, &i.to_be_bytes()), Some(value(i, 39)));
    }
    drop(engine);
    let engine = RedbEngine::open_in(dir.path(), DEFAULT_CACHE_BYTES, 64 * 1024).unwrap();
    for i in 0..100u32 {
        assert_eq!(get(&engine, &i.to_be_bytes()), Some(value(i, 39)));
    }
}

#[test]
fn compaction_on_a_simulated_disk_survives_a_power_cut() {
    let disk = SimulatedDisk::new();
    let engine = RedbEngine::on_simulated_disk_with(&disk, 16 * 1024).unwrap();
    overwrite(&engine, 30, 0..30);
    assert!(
        eventually(|| disk.segment_count() <= 8),
        "{} segments",
        disk.segment_count()
    );
    disk.power_off();
    drop(engine);
    disk.power_on(0x5555_5555_5555_5555);
    let engine = RedbEngine::on_simulated_disk_with(&disk, 16 * 1024).unwrap();
    for i in 0..30u32 {
        assert_eq!(
            get(&engine, &i.to_be_bytes()),
            Some(value(i, 29)),
            "item {i}"
        );
    }
}
