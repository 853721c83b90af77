//! Storage faults: a full disk, I/O errors, power loss and damaged files, on the simulated disk
//! (`sim_disk.rs`) and on real files. The random scenarios are `model_check::run`'s.

use std::ops::Bound;

use proptest::prelude::*;

use crate::model_check::{self, Step};
use crate::{CommitError, Engine, RedbEngine, SimulatedDisk, StorageError, WriteBatch};

fn put(engine: &RedbEngine, key: &[u8], value: &[u8]) -> Result<(), CommitError> {
    let mut batch = WriteBatch::new();
    batch.put(key.to_vec(), value.to_vec());
    engine.commit(batch).wait()
}

fn simulated(disk: &SimulatedDisk) -> RedbEngine {
    RedbEngine::on_simulated_disk(disk).unwrap()
}

fn get(engine: &RedbEngine, key: &[u8]) -> Option<Vec<u8>> {
    engine.snapshot().unwrap().get(key).unwrap()
}

#[test]
fn a_full_disk_fails_writes_then_they_succeed_once_space_returns() {
    let disk = SimulatedDisk::new();
    let engine = simulated(&disk);
    disk.set_quota(Some(disk.len() + 256 * 1024));
    let mut acknowledged = Vec::new();
    let error = (0u32..)
        .find_map(|i| {
            let key = i.to_be_bytes();
            match put(&engine, &key, &[7; 4000]) {
                Ok(()) => {
                    acknowledged.push(key);
                    None
                }
                Err(error) => Some(error),
            }
        })
        .unwrap();
    assert!(
        matches!(error, CommitError::Storage(StorageError::Io(_))),
        "{error:?}"
    );
    assert!(
        acknowledged.len() > 10,
        "only {} writes fit",
        acknowledged.len()
    );
    // Still full: a write that needs more space fails too; acknowledged data stays readable.
    assert!((0u8..5).any(|i| put(&engine, &[b'm', i], &[8; 4000]).is_err()));
    assert_eq!(get(&engine, &acknowledged[0]), Some(vec![7; 4000]));

    disk.clear_faults();
    put(&engine, b"after", b"space returned").unwrap();
    for key in &acknowledged {
        assert_eq!(get(&engine, key), Some(vec![7; 4000]));
    }
    drop(engine);
    let engine = simulated(&disk);
    assert_eq!(get(&engine, b"after"), Some(b"space returned".to_vec()));
    assert_eq!(
        get(&engine, acknowledged.last().unwrap()),
        Some(vec![7; 4000])
    );
}

#[test]
fn an_io_error_in_a_commit_fails_it_and_the_engine_reopens() {
    let disk = SimulatedDisk::new();
    let engine = simulated(&disk);
    put(&engine, b"before", b"1").unwrap();
    disk.fail_after(0);
    assert!(matches!(
        put(&engine, b"failed", b"2"),
        Err(CommitError::Storage(_))
    ));
    put(&engine, b"after", b"3").unwrap();
    assert_eq!(get(&engine, b"before"), Some(b"1".to_vec()));
    assert_eq!(get(&engine, b"failed"), None);
    assert_eq!(get(&engine, b"after"), Some(b"3".to_vec()));
}

#[test]
fn a_power_loss_keeps_every_acknowledged_commit() {
    model_check::run(&[
        Step::Put(vec![(1, 10), (2, 5000)]),
        Step::Crash(0),
        Step::FailAfter(3),
        Step::Put(vec![(3, 100)]),
        Step::Put(vec![(4, 100)]),
        Step::Crash(u64::MAX),
        Step::DeleteRange(0, 3),
        Step::Crash(0x5555_5555_5555_5555),
    ]);
}

/// A data directory holding `marker` and 50 more values, closed cleanly; returns the index file.
fn dir_with_marker(dir: &std::path::Path, marker: &[u8]) -> std::path::PathBuf {
    {
        let engine = RedbEngine::open(dir).unwrap();
        put(&engine, b"marker", marker).unwrap();
        // Later commits share the marker's page, so no older commit holds an intact copy.
        for i in 0u32..50 {
            put(&engine, &i.to_be_bytes(), &[1; 100]).unwrap();
        }
    }
    dir.join("haven.redb")
}

fn open_error(dir: &std::path::Path) -> StorageError {
    match RedbEngine::open(dir) {
        Ok(_) => panic!("a damaged file opened"),
        Err(error) => error,
    }
}

/// Flips a bit of `marker` in `file`, opens the directory and expects `Corrupted` naming `file`.
fn flip_and_expect_refusal(dir: &std::path::Path, file: &std::path::Path, marker: &[u8]) {
    let mut bytes = std::fs::read(file).unwrap();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the value is in the file");
    bytes[at + 10] ^= 0x01;
    std::fs::write(file, bytes).unwrap();
    let error = open_error(dir);
    assert!(matches!(error, StorageError::Corrupted { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&file.display().to_string()),
        "{error}"
    );
}

#[test]
fn a_flipped_byte_in_a_value_kept_in_the_index_is_reported_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let marker = b"haven-marker-0123456789".repeat(2);
    assert!(marker.len() < crate::redb_engine::INLINE_MAX);
    let file = dir_with_marker(dir.path(), &marker);
    flip_and_expect_refusal(dir.path(), &file, &marker);
}

#[test]
fn a_flipped_byte_in_a_value_in_the_log_is_reported_naming_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let marker = b"haven-marker-value-0123456789".repeat(4);
    dir_with_marker(dir.path(), &marker);
    let segment = dir.path().join("values-00000001.log");
    flip_and_expect_refusal(dir.path(), &segment, &marker);
}

#[test]
fn a_truncated_file_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir_with_marker(dir.path(), b"marker");
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let error = open_error(dir.path());
    assert!(
        error.to_string().contains(&file.display().to_string()),
        "{error}"
    );
}

#[test]
fn an_intact_file_reopens_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let marker = b"haven-marker-value-0123456789".repeat(4);
    dir_with_marker(dir.path(), &marker);
    let engine = RedbEngine::open(dir.path()).unwrap();
    assert_eq!(get(&engine, b"marker"), Some(marker));
    let mut count = 0;
    engine
        .snapshot()
        .unwrap()
        .scan((Bound::Unbounded, Bound::Unbounded), false, &mut |_, _| {
            count += 1;
            true
        })
        .unwrap();
    assert_eq!(count, 51);
}

fn step() -> impl Strategy<Value = Step> {
    let key = 0u8..24;
    let size = prop_oneof![0u16..64, 1000u16..6000];
    prop_oneof![
        6 => prop::collection::vec((key.clone(), size.clone()), 1..5).prop_map(Step::Put),
        2 => key.clone().prop_map(Step::Delete),
        1 => (key.clone(), key.clone()).prop_map(|(a, b)| Step::DeleteRange(a, b)),
        2 => (0u8..8, any::<i8>()).prop_map(|(k, d)| Step::AddCounter(k, d)),
        2 => (key, size, any::<bool>())
            .prop_map(|(key, size, correct)| Step::Conditional { key, size, correct }),
        1 => (0u16..64).prop_map(Step::Quota),
        1 => (0u8..40).prop_map(Step::FailAfter),
        1 => (0u8..40, any::<u64>()).prop_map(|(calls, mask)| Step::PowerLossAfter(calls, mask)),
        1 => Just(Step::ClearFaults),
        1 => Just(Step::Restart),
        1 => any::<u64>().prop_map(Step::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_engine_matches_the_model_under_faults_and_crashes(
        steps in prop::collection::vec(step(), 1..40)
    ) {
        model_check::run(&steps);
    }
}
