//! The engine suite (`engine_suite.rs`) on the embedded engine, in memory and on disk, and the
//! tests only an engine with files has: its lock, and what survives reopening.

use crate::engine_suite::TestEngine;
use crate::{RedbEngine, StorageError};

fn engines() -> Vec<TestEngine> {
    let dir = tempfile::tempdir().unwrap();
    vec![
        TestEngine {
            name: "memory".into(),
            engine: std::sync::Arc::new(RedbEngine::in_memory().unwrap()),
            keep: Box::new(()),
        },
        TestEngine {
            name: "disk".into(),
            engine: std::sync::Arc::new(RedbEngine::open(dir.path()).unwrap()),
            keep: Box::new(dir),
        },
    ]
}

crate::engine_suite!(engines);

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
fn data_and_log_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    crate::engine_suite::data_and_log_survive_reopening(&|| {
        Box::new(RedbEngine::open(dir.path()).unwrap())
    });
}
