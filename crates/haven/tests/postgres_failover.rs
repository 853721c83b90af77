//! Failover without losing an acknowledged write (always PostgreSQL, whatever
//! `HAVEN_TEST_STORAGE` says): a primary with a synchronous standby (`synchronous_standby_names =
//! '*'`, `synchronous_commit = on`), one Haven node given both hosts with
//! `target_session_attrs=read-write`, writers that retry each write until it is acknowledged. The
//! primary is killed (SIGKILL to every one of its processes) under the load and the standby
//! promoted: writes resume on the new primary without restarting Haven, and every write Haven
//! acknowledged, before or after, is there.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use common::{HavenServer, create_table, wait_until};
use haven_storage_postgres::testing::TestPostgres;
use tokio::task::JoinSet;

const TABLE: &str = "failover";
const WRITERS: usize = 4;
const BEFORE_KILL: usize = 40;
const AFTER_PROMOTION: usize = 40;
/// How long one write may keep failing (the failover) before the test gives up on it.
const WRITE_PATIENCE: Duration = Duration::from_secs(90);

type Ledger = Arc<Mutex<HashMap<String, String>>>;

/// Puts `pk` until it is acknowledged (a failure during the failover is retried, as SDKs do).
async fn put_until_acknowledged(client: &Client, pk: &str, value: &str) {
    let deadline = Instant::now() + WRITE_PATIENCE;
    loop {
        let sent = client
            .put_item()
            .table_name(TABLE)
            .item("pk", AttributeValue::S(pk.to_string()))
            .item("v", AttributeValue::S(value.to_string()))
            .send()
            .await;
        if sent.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pk} never acknowledged: {sent:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn writer(
    client: Client,
    id: usize,
    ledger: Ledger,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let (pk, value) = (format!("w{id}-{n}"), format!("value {n}"));
        put_until_acknowledged(&client, &pk, &value).await;
        ledger.lock().unwrap().insert(pk, value);
        count.fetch_add(1, Ordering::Relaxed);
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoting_the_synchronous_standby_loses_no_acknowledged_write() {
    let primary = TestPostgres::start(&[
        "-c",
        "synchronous_standby_names=*",
        "-c",
        "synchronous_commit=on",
    ]);
    let standby = TestPostgres::start_standby(&primary, &[]);
    let created = primary.fresh_database();
    let database = created.rsplit('/').next().unwrap();
    let url = format!(
        "postgres://haven:haven@127.0.0.1:{},127.0.0.1:{}/{database}?target_session_attrs=read-write",
        primary.port, standby.port
    );
    let server = HavenServer::start_with(&["--storage", &url]);
    let client = server.client_without_retries();
    create_table(&client, TABLE, &[("pk", "S")]).await;

    let (ledger, count) = (Ledger::default(), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = JoinSet::new();
    for id in 0..WRITERS {
        let task = writer(
            client.clone(),
            id,
            ledger.clone(),
            count.clone(),
            stop.clone(),
        );
        writers.spawn(task);
    }
    wait_until("writes before the kill", Duration::from_secs(120), || {
        count.load(Ordering::Relaxed) >= BEFORE_KILL
    })
    .await;
    primary.kill();
    let at_kill = count.load(Ordering::Relaxed);
    standby.promote();
    wait_until(
        "writes on the new primary",
        Duration::from_secs(120),
        || count.load(Ordering::Relaxed) >= at_kill + AFTER_PROMOTION,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }

    let ledger = ledger.lock().unwrap().clone();
    for (pk, value) in &ledger {
        let item = client
            .get_item()
            .table_name(TABLE)
            .key("pk", AttributeValue::S(pk.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetItem {pk}: {e:?}"))
            .item;
        let stored = item.as_ref().and_then(|i| i.get("v"));
        assert_eq!(
            stored,
            Some(&AttributeValue::S(value.clone())),
            "acknowledged {pk}"
        );
    }
}
