//! The engine suite (`haven_storage::engine_suite`) on a real PostgreSQL, and what only a shared
//! database has: several engines (nodes) on one database, reconnecting, the schema version, and
//! the start-up errors.

use std::sync::Arc;

use haven_storage::engine_suite::{TestEngine, put, whole_log};
use haven_storage::{CommitError, Engine, StorageError, WriteBatch, read_counter};
use haven_storage_postgres::PostgresEngine;
use haven_storage_postgres::testing::{TestPostgres, free_port};

fn engines() -> Vec<TestEngine> {
    let url = TestPostgres::shared().fresh_database();
    vec![TestEngine {
        name: "postgres".into(),
        engine: Arc::new(PostgresEngine::connect(&url).unwrap()),
        keep: Box::new(()),
    }]
}

haven_storage::engine_suite!(engines);

#[test]
fn data_and_log_survive_reconnecting() {
    let url = TestPostgres::shared().fresh_database();
    haven_storage::engine_suite::data_and_log_survive_reopening(&|| {
        Box::new(PostgresEngine::connect(&url).unwrap())
    });
}

/// Two nodes on one database: each sees the other's commits at once, an insert of a key both
/// expect absent is won by exactly one, counters add up, and the change log's sequence numbers
/// are one run in commit order across both.
#[test]
fn nodes_sharing_a_database_conflict_and_count_as_one_engine() {
    let url = TestPostgres::shared().fresh_database();
    let nodes: Vec<Arc<dyn Engine>> = (0..2)
        .map(|_| Arc::new(PostgresEngine::connect(&url).unwrap()) as Arc<dyn Engine>)
        .collect();
    put(&*nodes[0], b"seen", b"by both");
    assert_eq!(
        nodes[1].snapshot().unwrap().get(b"seen").unwrap(),
        Some(b"by both".to_vec())
    );

    let writers: Vec<_> = (0..8u8)
        .map(|writer| {
            let node = nodes[writer as usize % 2].clone();
            std::thread::spawn(move || {
                let mut won = 0;
                for key in 0..40u8 {
                    let mut batch = WriteBatch::new();
                    batch
                        .expect(vec![b'k', key], None)
                        .put(vec![b'k', key], vec![writer])
                        .add_counter(b"inserted".to_vec(), 1)
                        .append_log(haven_storage::LogRecord {
                            table: 7,
                            key: vec![key],
                            old: None,
                            new: Some(vec![writer]),
                            origin: haven_storage::Origin::User,
                            partial: Default::default(),
                        });
                    match node.commit(batch).wait() {
                        Ok(()) => won += 1,
                        Err(CommitError::Conflict) => {}
                        Err(error) => panic!("{error}"),
                    }
                }
                won
            })
        })
        .collect();
    let won: i64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(won, 40, "each key is inserted exactly once");
    let snapshot = nodes[1].snapshot().unwrap();
    assert_eq!(read_counter(&*snapshot, b"inserted").unwrap(), 40);
    drop(snapshot);
    let log = whole_log(&*nodes[0], 7);
    assert_eq!(log.len(), 40);
    for (i, entry) in log.iter().enumerate() {
        assert_eq!(entry.position.sequence, i as u64 + 1, "one run, no gaps");
        let stored = nodes[0]
            .snapshot()
            .unwrap()
            .get(&[b'k', entry.record.key[0]]);
        assert_eq!(stored.unwrap(), entry.record.new, "the log says who won");
    }
}

/// One-shot reads queued together share a statement (the reader's): each still answers the values
/// of its own keys, in its order, absent keys as None, and a read of no keys answers nothing.
#[test]
fn reads_sharing_a_statement_each_answer_their_own_keys() {
    let url = TestPostgres::shared().fresh_database();
    let engine = PostgresEngine::connect(&url).unwrap();
    for i in 0..50u8 {
        put(&engine, &[b'k', i], &[i]);
    }
    let reads: Vec<_> = (0..200usize)
        .map(|n| {
            let keys: Vec<Vec<u8>> = (0..n % 4)
                .map(|j| vec![b'k', ((n + j * 7) % 60) as u8])
                .collect();
            (keys.clone(), engine.read(keys))
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (keys, pending) in reads {
        let expected: Vec<Option<Vec<u8>>> = keys
            .iter()
            .map(|key| (key[1] < 50).then(|| vec![key[1]]))
            .collect();
        assert_eq!(runtime.block_on(pending).unwrap(), expected, "{keys:?}");
    }
}

#[test]
fn a_database_of_an_older_haven_is_migrated_at_start() {
    let server = TestPostgres::shared();
    let url = server.fresh_database();
    let database = url.rsplit('/').next().unwrap();
    // Schema version 1 as Haven created it, holding a counter at 5.
    server.execute(
        database,
        "CREATE TABLE haven_schema (id int PRIMARY KEY CHECK (id = 1), version bigint NOT NULL);
         INSERT INTO haven_schema VALUES (1, 1);
         CREATE TABLE haven_data (key bytea PRIMARY KEY, value bytea NOT NULL);
         CREATE TABLE haven_log (key bytea PRIMARY KEY, record bytea NOT NULL);
         CREATE TABLE haven_log_state (key bytea PRIMARY KEY, value bytea NOT NULL);
         INSERT INTO haven_data VALUES ('\\x63', int8send(5));",
    );
    let engine = PostgresEngine::connect(&url).unwrap();
    let mut batch = WriteBatch::new();
    batch
        .expect(b"k".to_vec(), None)
        .put(b"k".to_vec(), b"v".to_vec())
        .add_counter(b"c".to_vec(), -7);
    engine.commit(batch).wait().unwrap();
    let snapshot = engine.snapshot().unwrap();
    assert_eq!(read_counter(&*snapshot, b"c").unwrap(), -2);
    assert_eq!(snapshot.get(b"k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn a_database_of_a_newer_haven_is_refused_at_start() {
    let server = TestPostgres::shared();
    let url = server.fresh_database();
    drop(PostgresEngine::connect(&url).unwrap());
    let database = url.rsplit('/').next().unwrap();
    server.execute(database, "UPDATE haven_schema SET version = version + 1");
    let error = PostgresEngine::connect(&url).err().expect("refused");
    assert!(matches!(error, StorageError::Unusable(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("belongs to a newer Haven")
            && message.contains("schema version 3")
            && message.contains("127.0.0.1"),
        "{message}"
    );
}

#[test]
fn an_unreachable_server_and_wrong_credentials_are_clear_errors() {
    let server = TestPostgres::shared();
    let closed = format!("postgres://haven:haven@127.0.0.1:{}/x", free_port());
    let cases = [
        (closed, "cannot connect to PostgreSQL at 127.0.0.1:"),
        (
            server.url("postgres").replace(":haven@", ":wrong@"),
            "password authentication failed for user \"haven\"",
        ),
        (
            server.url("no_such_database"),
            "database \"no_such_database\" does not exist",
        ),
        (
            "postgres://[".to_string(),
            "invalid PostgreSQL connection string",
        ),
    ];
    for (url, expected) in cases {
        let error = PostgresEngine::connect(&url).err().expect("refused");
        let message = error.to_string();
        assert!(message.contains(expected), "{url}: {message}");
        assert!(
            !message.contains("wrong"),
            "the password is never shown: {message}"
        );
    }
}
