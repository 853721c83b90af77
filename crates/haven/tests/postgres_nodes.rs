//! Several Haven nodes on one PostgreSQL database (always PostgreSQL, whatever
//! `HAVEN_TEST_STORAGE` says):
//! - three nodes on 127.0.0.1, .2 and .3: a table created on one is usable on the others at once,
//!   and a TTL change made on one is what the others describe;
//! - with `--transient-status-ms`, a table's CREATING, UPDATING and DELETING read the same on every
//!   node (they come from stored times), with the same refusals;
//! - writes spread over the three while one node is killed (SIGKILL) under load: a client that
//!   retries on another node when its node fails loses no acknowledged write;
//! - failover: a primary with a synchronous standby (`synchronous_standby_names = '*'`,
//!   `synchronous_commit = on`), one node given both hosts with `target_session_attrs=read-write`;
//!   the primary is killed (SIGKILL to each of its processes) under write load and the standby
//!   promoted: writes resume without restarting Haven and every acknowledged write is there;
//! - a stream enabled on one node: another node that cached the table's metadata before it logs
//!   its next writes with the images the new stream shows (the change of the log's readers bumped
//!   the schema version, so its write conflicted and read the metadata again);
//! - bad storage configuration (an unreachable server, a wrong password, a database owned by a newer
//!   Haven) stops `haven serve` at start-up with a clear message, before it listens.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, StreamViewType, TimeToLiveSpecification};
use common::{HavenServer, create_table, wait_until};
use haven_storage_postgres::testing::{TestPostgres, free_port};
use tokio::task::JoinSet;

const TABLE: &str = "shared";
const WRITERS: usize = 6;
/// Writes acknowledged before the kill, and after it, at least.
const BEFORE_KILL: usize = 60;
const AFTER_KILL: usize = 60;
/// Failover: writers, and writes acknowledged before the kill and after the promotion at least.
const FAILOVER_WRITERS: usize = 4;
const FAILOVER_BEFORE: usize = 40;
const FAILOVER_AFTER: usize = 40;
/// How long one write may keep failing (the failover) before the test gives up on it.
const WRITE_PATIENCE: Duration = Duration::from_secs(90);

fn start_nodes(url: &str) -> Vec<HavenServer> {
    (1..=3)
        .map(|n| HavenServer::start_on(&format!("127.0.0.{n}:0"), &["--storage", url]))
        .collect()
}

fn key(pk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), AttributeValue::S(pk.to_string()))])
}

/// Puts `{pk, v: value}`.
async fn put(client: &Client, pk: &str, value: &str) -> bool {
    client
        .put_item()
        .table_name(TABLE)
        .item("pk", AttributeValue::S(pk.to_string()))
        .item("v", AttributeValue::S(value.to_string()))
        .send()
        .await
        .is_ok()
}

/// Every acknowledged write is there, read back in turn through each of `clients`.
async fn check_ledger(clients: &[&Client], ledger: &HashMap<String, String>) {
    for (i, (pk, value)) in ledger.iter().enumerate() {
        let item = get(clients[i % clients.len()], pk).await;
        let stored = item.as_ref().and_then(|i| i.get("v"));
        assert_eq!(
            stored,
            Some(&AttributeValue::S(value.clone())),
            "acknowledged {pk}"
        );
    }
}

async fn get(client: &Client, pk: &str) -> Option<HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(TABLE)
        .set_key(Some(key(pk)))
        .consistent_read(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetItem {pk}: {e:?}"))
        .item
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_serves_the_same_tables_at_once() {
    let url = TestPostgres::shared().fresh_database();
    let nodes = start_nodes(&url);
    let clients: Vec<Client> = nodes.iter().map(HavenServer::client).collect();
    create_table(&clients[0], TABLE, &[("pk", "S")]).await;
    clients[1]
        .put_item()
        .table_name(TABLE)
        .item("pk", AttributeValue::S("from node 2".into()))
        .send()
        .await
        .expect("node 2 writes to a table node 1 just created");
    assert!(get(&clients[2], "from node 2").await.is_some());
    let tables = clients[2].list_tables().send().await.unwrap();
    assert_eq!(tables.table_names(), [TABLE]);

    clients[0]
        .update_time_to_live()
        .table_name(TABLE)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    for client in &clients[1..] {
        let ttl = client
            .describe_time_to_live()
            .table_name(TABLE)
            .send()
            .await
            .unwrap();
        let description = ttl.time_to_live_description().unwrap();
        assert_eq!(description.attribute_name(), Some("expires"));
    }
    clients[2]
        .delete_table()
        .table_name(TABLE)
        .send()
        .await
        .unwrap();
    let gone = clients[0].describe_table().table_name(TABLE).send().await;
    assert_eq!(common::error_of(gone).0, "ResourceNotFoundException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_enabled_on_one_node_gets_both_images_of_writes_on_another() {
    let url = TestPostgres::shared().fresh_database();
    let nodes: Vec<HavenServer> = (1..=2)
        .map(|n| HavenServer::start_on(&format!("127.0.0.{n}:0"), &["--storage", &url]))
        .collect();
    let (first, second) = (nodes[0].client(), nodes[1].client());
    create_table(&first, TABLE, &[("pk", "S")]).await;
    let change_stream = |view: Option<StreamViewType>| {
        first
            .update_table()
            .table_name(TABLE)
            .stream_specification(common::streams::specification(view))
            .send()
    };
    change_stream(Some(StreamViewType::KeysOnly)).await.unwrap();
    // The second node now holds metadata whose only reader needs no image.
    assert!(put(&second, "k", "1").await);
    change_stream(None).await.unwrap();
    let arn = change_stream(Some(StreamViewType::NewAndOldImages))
        .await
        .unwrap()
        .table_description
        .unwrap()
        .latest_stream_arn
        .unwrap();
    assert!(put(&second, "k", "2").await);
    assert!(put(&second, "k", "3").await);
    let records = common::streams::all_records(&nodes[0].streams_client(), &arn).await;
    let v = |image: Option<&HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
        image.and_then(|i| i.get("v")?.as_s().ok().cloned())
    };
    let images: Vec<(Option<String>, Option<String>)> = records
        .iter()
        .map(|r| {
            let change = r.dynamodb().unwrap();
            (v(change.old_image()), v(change.new_image()))
        })
        .collect();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(images, [(s("1"), s("2")), (s("2"), s("3"))]);
}

async fn status(client: &Client) -> String {
    let described = client.describe_table().table_name(TABLE).send().await;
    let table = described.unwrap().table.unwrap();
    table.table_status().unwrap().as_str().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_statuses_read_the_same_on_every_node() {
    use aws_sdk_dynamodb::types::BillingMode;
    let url = TestPostgres::shared().fresh_database();
    let args = ["--storage", &url, "--transient-status-ms", "2000"];
    let nodes: Vec<HavenServer> = (1..=2)
        .map(|n| HavenServer::start_on(&format!("127.0.0.{n}:0"), &args))
        .collect();
    let clients: Vec<Client> = nodes.iter().map(HavenServer::client).collect();
    create_table(&clients[0], TABLE, &[("pk", "S")]).await;
    assert_eq!(status(&clients[1]).await, "CREATING");
    common::wait_until_async("ACTIVE on node 2", Duration::from_secs(10), || async {
        status(&clients[1]).await == "ACTIVE"
    })
    .await;

    let update = clients[1].update_table().table_name(TABLE);
    update
        .billing_mode(BillingMode::Provisioned)
        .provisioned_throughput(
            aws_sdk_dynamodb::types::ProvisionedThroughput::builder()
                .read_capacity_units(3)
                .write_capacity_units(3)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(status(&clients[0]).await, "UPDATING");
    let again = clients[0].update_table().table_name(TABLE);
    let again = again.billing_mode(BillingMode::PayPerRequest).send().await;
    assert_eq!(
        common::error_of(again),
        (
            "ResourceInUseException".to_string(),
            format!(
                "Attempt to change a resource which is still in use: Table is being updated: {TABLE}"
            )
        )
    );
    common::wait_until_async("ACTIVE on node 1", Duration::from_secs(10), || async {
        status(&clients[0]).await == "ACTIVE"
    })
    .await;

    clients[0]
        .delete_table()
        .table_name(TABLE)
        .send()
        .await
        .unwrap();
    assert_eq!(status(&clients[1]).await, "DELETING");
    let listed = clients[1].list_tables().send().await.unwrap();
    assert_eq!(listed.table_names(), [TABLE]);
    common::wait_until_async("gone on node 2", Duration::from_secs(10), || async {
        let described = clients[1].describe_table().table_name(TABLE).send().await;
        described.is_err()
    })
    .await;
    let gone = clients[1].describe_table().table_name(TABLE).send().await;
    assert_eq!(common::error_of(gone).0, "ResourceNotFoundException");
}

/// What the writers have acknowledged: key → value.
type Ledger = Arc<Mutex<HashMap<String, String>>>;

/// Writes `w{writer}-{n}` keys, each to the next node in turn; a write that fails (its node died)
/// is sent again to the following node, as a client whose DNS name moved would.
async fn writer(
    clients: Arc<Vec<Client>>,
    writer: usize,
    ledger: Ledger,
    acknowledged: Arc<AtomicUsize>,
    target: usize,
) {
    let mut n = 0;
    while acknowledged.load(Ordering::Relaxed) < target {
        let (pk, value) = (format!("w{writer}-{n}"), format!("value {n} of {writer}"));
        for attempt in 0..clients.len() * 3 {
            let client = &clients[(n + attempt) % clients.len()];
            if put(client, &pk, &value).await {
                ledger.lock().unwrap().insert(pk.clone(), value.clone());
                acknowledged.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_no_acknowledged_write() {
    let url = TestPostgres::shared().fresh_database();
    let mut nodes = start_nodes(&url);
    let clients: Arc<Vec<Client>> = Arc::new(
        nodes
            .iter()
            .map(HavenServer::client_without_retries)
            .collect(),
    );
    create_table(&clients[0], TABLE, &[("pk", "S")]).await;
    let ledger = Ledger::default();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let target = BEFORE_KILL + AFTER_KILL;
    let mut writers = JoinSet::new();
    for id in 0..WRITERS {
        let task = writer(
            clients.clone(),
            id,
            ledger.clone(),
            acknowledged.clone(),
            target,
        );
        writers.spawn(task);
    }
    wait_until("writes before the kill", Duration::from_secs(120), || {
        acknowledged.load(Ordering::Relaxed) >= BEFORE_KILL
    })
    .await;
    nodes.remove(1).kill();
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }

    let ledger = ledger.lock().unwrap().clone();
    assert!(ledger.len() >= target);
    check_ledger(&[&clients[0], &clients[2]], &ledger).await;
    let count = clients[0]
        .scan()
        .table_name(TABLE)
        .select(aws_sdk_dynamodb::types::Select::Count)
        .send()
        .await
        .unwrap()
        .count();
    assert!(count as usize >= ledger.len(), "{count} items");
}

/// Starts `haven serve --storage <url>` expecting a refusal; answers its standard error.
fn refused(url: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["serve", "--listen", "127.0.0.1:0", "--storage", url])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("haven runs");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success(), "haven started: {stderr}");
    assert!(output.stdout.is_empty(), "haven listened: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_storage_configuration_stops_start_up_with_a_clear_error() {
    let server = TestPostgres::shared();
    let closed = format!("postgres://haven:haven@127.0.0.1:{}/haven", free_port());
    let stderr = refused(&closed);
    assert!(
        stderr.contains("cannot connect to PostgreSQL at 127.0.0.1:")
            && stderr.contains("Connection refused"),
        "{stderr}"
    );

    let wrong = server
        .url("postgres")
        .replace(":haven@", ":not-the-password@");
    let stderr = refused(&wrong);
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");

    let url = server.fresh_database();
    let database = url.rsplit('/').next().unwrap();
    let first = HavenServer::start_with(&["--storage", &url]);
    first.kill();
    server.execute(database, "UPDATE haven_schema SET version = version + 1");
    let stderr = refused(&url);
    assert!(stderr.contains("belongs to a newer Haven"), "{stderr}");
}

/// Puts `pk` until it is acknowledged (a failure during the failover is retried, as SDKs do).
async fn put_until_acknowledged(client: &Client, pk: &str, value: &str) {
    let deadline = Instant::now() + WRITE_PATIENCE;
    while !put(client, pk, value).await {
        assert!(Instant::now() < deadline, "{pk} never acknowledged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes `f{id}-{n}` keys one after the other, each until acknowledged, until `stop`.
async fn failover_writer(
    client: Client,
    id: usize,
    ledger: Ledger,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let (pk, value) = (format!("f{id}-{n}"), format!("value {n}"));
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
    for id in 0..FAILOVER_WRITERS {
        let task = failover_writer(
            client.clone(),
            id,
            ledger.clone(),
            count.clone(),
            stop.clone(),
        );
        writers.spawn(task);
    }
    wait_until("writes before the kill", Duration::from_secs(120), || {
        count.load(Ordering::Relaxed) >= FAILOVER_BEFORE
    })
    .await;
    primary.kill();
    let at_kill = count.load(Ordering::Relaxed);
    standby.promote();
    wait_until(
        "writes on the new primary",
        Duration::from_secs(120),
        || count.load(Ordering::Relaxed) >= at_kill + FAILOVER_AFTER,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }

    let ledger = ledger.lock().unwrap().clone();
    check_ledger(&[&client], &ledger).await;
}
