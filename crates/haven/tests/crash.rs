//! Crash recovery: a durable server under steady PutItem load is killed with SIGKILL mid-load and
//! restarted on the same data directory, three times over. Every write the server acknowledged
//! before the kill must be there afterwards, with its exact value; a write in flight at the kill
//! may or may not be there, but never half-written. A clean stop (SIGTERM) under the same load
//! must exit 0 and keep the same promise.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use common::{HavenServer, create_table, wait_until};
use tokio::task::JoinSet;

const TABLE: &str = "crash";
const WRITERS: usize = 6;
const CYCLES: usize = 3;
/// How long the load runs at least before the kill...
const LOAD: Duration = Duration::from_millis(1500);
/// ...and how many writes each cycle has acknowledged by then at least, however slow the machine.
const ACKNOWLEDGED_BEFORE_KILL: usize = 21;
/// How long a cycle may take to reach them before the test gives up.
const PATIENCE: Duration = Duration::from_secs(120);

/// What one writer saw in one cycle: every acknowledged item, and the one in flight at the kill.
#[derive(Default)]
struct Ledger {
    acknowledged: Vec<(String, u64)>,
    in_flight: Option<(String, u64)>,
}

/// What a writer knows of its `latest` item, which it overwrites across all cycles: the values it
/// may hold (the last acknowledged one, then every attempt since, any of which may have landed).
#[derive(Default)]
struct Latest {
    allowed: Vec<u64>,
    acknowledged: bool,
}

/// The item a writer stores for `(key, seq)`: several types, all derived from the key.
fn item_for(key: &str, seq: u64) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::new();
    item.insert("pk".to_string(), AttributeValue::S(key.to_string()));
    item.insert("seq".to_string(), AttributeValue::N(seq.to_string()));
    item.insert(
        "payload".to_string(),
        AttributeValue::S(format!("{key}:{}", "p".repeat((seq % 200) as usize))),
    );
    item.insert(
        "bytes".to_string(),
        AttributeValue::B(Blob::new(
            key.as_bytes().iter().rev().copied().collect::<Vec<u8>>(),
        )),
    );
    item.insert(
        "doc".to_string(),
        AttributeValue::M(HashMap::from([
            ("n".to_string(), AttributeValue::N(format!("{seq}.25"))),
            (
                "l".to_string(),
                AttributeValue::L(vec![AttributeValue::Bool(seq.is_multiple_of(2))]),
            ),
        ])),
    );
    item
}

/// Writes unique items (and, every few writes, overwrites the writer's `latest` item) until a
/// request fails, which happens once the server is killed.
async fn writer(
    client: Client,
    cycle: usize,
    id: usize,
    ledger: Arc<Mutex<Ledger>>,
    latest: Arc<Mutex<Latest>>,
) {
    for seq in 0u64.. {
        let (key, is_latest) = if seq % 4 == 3 {
            (format!("latest-{id}"), true)
        } else {
            (format!("c{cycle}-w{id}-{seq}"), false)
        };
        if is_latest {
            latest.lock().unwrap().allowed.push(seq);
        } else {
            ledger.lock().unwrap().in_flight = Some((key.clone(), seq));
        }
        let result = client
            .put_item()
            .table_name(TABLE)
            .set_item(Some(item_for(&key, seq)))
            .send()
            .await;
        if result.is_err() {
            return;
        }
        if is_latest {
            let mut latest = latest.lock().unwrap();
            latest.allowed = vec![seq];
            latest.acknowledged = true;
        } else {
            let mut ledger = ledger.lock().unwrap();
            let acknowledged = ledger.in_flight.take().unwrap();
            ledger.acknowledged.push(acknowledged);
        }
    }
}

async fn read(client: &Client, key: &str) -> Option<HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(TABLE)
        .key("pk", AttributeValue::S(key.to_string()))
        .consistent_read(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetItem {key}: {e:?}"))
        .item
}

/// Checks every acknowledged item of every cycle so far (and the in-flight ones of the ledgers from
/// `newest` on, the cycle just killed), and each writer's `latest` item; returns how many
/// acknowledged items were checked.
async fn verify(
    client: &Client,
    ledgers: &[Arc<Mutex<Ledger>>],
    newest: usize,
    latest: &[Arc<Mutex<Latest>>],
) -> usize {
    let mut checks = JoinSet::new();
    let mut checked = 0;
    for (index, ledger) in ledgers.iter().enumerate() {
        let ledger = ledger.lock().unwrap();
        let keys = ledger.acknowledged.clone();
        checked += keys.len();
        let in_flight = ledger.in_flight.clone().filter(|_| index >= newest);
        drop(ledger);
        let client = client.clone();
        checks.spawn(async move {
            for (key, seq) in keys {
                let got = read(&client, &key).await;
                assert_eq!(
                    got,
                    Some(item_for(&key, seq)),
                    "acknowledged item {key} lost or changed"
                );
            }
            // An unacknowledged write is all there or not there at all.
            if let Some((key, seq)) = in_flight
                && let Some(got) = read(&client, &key).await
            {
                assert_eq!(got, item_for(&key, seq), "half-written item {key}");
            }
        });
    }
    for (id, latest) in latest.iter().enumerate() {
        let (allowed, acknowledged) = {
            let latest = latest.lock().unwrap();
            (latest.allowed.clone(), latest.acknowledged)
        };
        let client = client.clone();
        checks.spawn(async move {
            // The overwritten item holds the last acknowledged value or a later attempt.
            let key = format!("latest-{id}");
            match read(&client, &key).await {
                None => assert!(!acknowledged, "{key} lost its acknowledged value"),
                Some(got) => assert!(
                    allowed.iter().any(|seq| item_for(&key, *seq) == got),
                    "{key} holds {got:?}; allowed seqs {allowed:?}"
                ),
            }
        });
    }
    while let Some(result) = checks.join_next().await {
        result.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut server = HavenServer::start_on_disk(dir.path());
    create_table(&server.client(), TABLE, &[("pk", "S")]).await;
    let mut all_ledgers: Vec<Arc<Mutex<Ledger>>> = Vec::new();
    let latest: Vec<Arc<Mutex<Latest>>> = (0..WRITERS).map(|_| Arc::default()).collect();

    for cycle in 0..CYCLES {
        // No retries: a write is acknowledged by exactly one answer, and writers stop at once.
        let client = server.client_without_retries();
        let ledgers: Vec<Arc<Mutex<Ledger>>> = (0..WRITERS).map(|_| Arc::default()).collect();
        let mut writers = JoinSet::new();
        for (id, ledger) in ledgers.iter().enumerate() {
            writers.spawn(writer(
                client.clone(),
                cycle,
                id,
                ledger.clone(),
                latest[id].clone(),
            ));
        }
        tokio::time::sleep(LOAD).await;
        wait_for_acknowledged(&ledgers).await;
        assert_eq!(writers.len(), WRITERS, "a writer stopped before the kill");
        server.kill(); // SIGKILL, mid-load
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(result) = writers.join_next().await {
                result.unwrap();
            }
        })
        .await
        .expect("writers stop once the server is gone");

        let killed_at = started.elapsed().as_secs_f64();
        server = HavenServer::start_on_disk(dir.path());
        let restarted_at = started.elapsed().as_secs_f64();
        let newest = all_ledgers.len();
        all_ledgers.extend(ledgers);
        let checked = verify(&server.client(), &all_ledgers, newest, &latest).await;
        eprintln!(
            "cycle {cycle}: killed at {killed_at:.1} s, restarted at {restarted_at:.1} s, {checked} acknowledged writes intact at {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

/// A clean stop under load: SIGTERM lets the server finish what it acknowledged and exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigterm_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let server = HavenServer::start_on_disk(dir.path());
    create_table(&server.client(), TABLE, &[("pk", "S")]).await;
    let config = server
        .client()
        .config()
        .to_builder()
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    let client = Client::from_conf(config);
    let ledgers: Vec<Arc<Mutex<Ledger>>> = (0..WRITERS).map(|_| Arc::default()).collect();
    let latest: Vec<Arc<Mutex<Latest>>> = (0..WRITERS).map(|_| Arc::default()).collect();
    let mut writers = JoinSet::new();
    for (id, ledger) in ledgers.iter().enumerate() {
        writers.spawn(writer(
            client.clone(),
            0,
            id,
            ledger.clone(),
            latest[id].clone(),
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_for_acknowledged(&ledgers).await;
    assert_eq!(writers.len(), WRITERS, "a writer stopped before SIGTERM");
    let status = tokio::task::spawn_blocking(move || common::terminate(server))
        .await
        .unwrap();
    assert!(status.success(), "haven exited with {status} after SIGTERM");
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(result) = writers.join_next().await {
            result.unwrap();
        }
    })
    .await
    .expect("writers stop once the server is gone");

    let server = HavenServer::start_on_disk(dir.path());
    let checked = verify(&server.client(), &ledgers, 0, &latest).await;
    assert!(checked >= ACKNOWLEDGED_BEFORE_KILL);
}

/// Waits until the writers of `ledgers` have had ACKNOWLEDGED_BEFORE_KILL writes acknowledged, so
/// that the stop comes under load whatever the machine's speed.
async fn wait_for_acknowledged(ledgers: &[Arc<Mutex<Ledger>>]) {
    wait_until("writes acknowledged before the stop", PATIENCE, || {
        let acknowledged: usize = ledgers
            .iter()
            .map(|l| l.lock().unwrap().acknowledged.len())
            .sum();
        acknowledged >= ACKNOWLEDGED_BEFORE_KILL
    })
    .await;
}
