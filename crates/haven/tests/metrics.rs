//! `GET /metrics` after a known workload (issue 24).
//!
//! Why: a metric that moves by the wrong amount is worse than none, because operators alert on
//! it. Each test scrapes a real server before and after requests whose effect it knows (so many
//! successes, so many errors of each type, a throttle it provokes, the capacity DynamoDB reports
//! to the client) and checks every counter and histogram moved by exactly that.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeValue, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, Projection, ProjectionType, ReturnConsumedCapacity,
};
use common::{HavenServer, HeldRequest, create_table, raw_request_head};

/// Every sample of a scrape: `name{labels}` → value.
struct Scrape(HashMap<String, f64>);

impl Scrape {
    fn of(server: &HavenServer) -> Scrape {
        let (content_type, text) = get(server, "/metrics");
        assert!(content_type.starts_with("application/openmetrics-text"));
        assert!(text.ends_with("# EOF\n"), "{text}");
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample line");
                (series.to_string(), value.parse().expect("a number"))
            })
            .collect();
        Scrape(samples)
    }

    fn value(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// How much `series` moved since `before`.
    fn delta(&self, before: &Scrape, series: &str) -> f64 {
        self.value(series) - before.value(series)
    }
}

/// A `GET` of `path`: the content type and the body.
fn get(server: &HavenServer, path: &str) -> (String, String) {
    let mut response = ureq::get(format!("{}{path}", server.endpoint()))
        .call()
        .expect("GET answered");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (content_type, response.body_mut().read_to_string().unwrap())
}

/// Sends `operation` with `body` on `stream` (a dummy signature, which a server without --auth
/// accepts) and reads the answer: status and body.
fn send_raw(stream: &mut std::net::TcpStream, operation: &str, body: &str) -> (u16, Vec<u8>) {
    use std::io::Write;
    let length = format!("Content-Length: {}\r\n\r\n", body.len());
    let request = raw_request_head(operation, &length) + body;
    stream.write_all(request.as_bytes()).unwrap();
    common::read_response(stream)
}

fn requests(operation: &str, outcome: &str) -> String {
    format!(r#"haven_requests_total{{operation="{operation}",outcome="{outcome}"}}"#)
}

fn capacity(kind: &str, table: &str, index: &str) -> String {
    format!(r#"haven_consumed_{kind}_capacity_units_total{{table="{table}",index="{index}"}}"#)
}

/// A table `Paints` keyed by `id`, with a global index `ByColor` on `color`.
async fn create_paints(client: &aws_sdk_dynamodb::Client) {
    let (schema, mut definitions) = common::table_keys(&[("id", "S")]);
    let (index_schema, index_definitions) = common::table_keys(&[("color", "S")]);
    definitions.extend(index_definitions);
    let all = Projection::builder()
        .projection_type(ProjectionType::All)
        .build();
    let index = GlobalSecondaryIndex::builder()
        .index_name("ByColor")
        .set_key_schema(Some(index_schema))
        .projection(all)
        .build()
        .unwrap();
    client
        .create_table()
        .table_name("Paints")
        .set_key_schema(Some(schema))
        .set_attribute_definitions(Some(definitions))
        .global_secondary_indexes(index)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_workload_moves_requests_errors_latency_and_capacity_by_its_amounts() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "Plain", &[("pk", "S")]).await;
    create_paints(&client).await;
    let before = Scrape::of(&server);

    for i in 0..4 {
        let put = client
            .put_item()
            .table_name("Plain")
            .item("pk", AttributeValue::S(format!("k{i}")));
        put.send().await.unwrap();
    }
    for i in 0..3 {
        let get = client
            .get_item()
            .table_name("Plain")
            .key("pk", AttributeValue::S(format!("k{i}")));
        get.send().await.unwrap();
    }
    for _ in 0..2 {
        let missing = client
            .get_item()
            .table_name("Missing")
            .key("pk", AttributeValue::S("k".into()));
        missing.send().await.unwrap_err();
    }
    let invalid = client
        .put_item()
        .table_name("Plain")
        .item("pk", AttributeValue::S(String::new()));
    invalid.send().await.unwrap_err();
    // On the table with an index, the capacity the metrics count is what DynamoDB reports.
    let mut reported = (0.0, 0.0);
    for (id, color) in [("a", "red"), ("b", "red"), ("c", "blue")] {
        let put = client
            .put_item()
            .table_name("Paints")
            .item("id", AttributeValue::S(id.into()))
            .item("color", AttributeValue::S(color.into()))
            .return_consumed_capacity(ReturnConsumedCapacity::Indexes);
        let capacity = put.send().await.unwrap().consumed_capacity.unwrap();
        reported.0 += capacity.table.unwrap().capacity_units.unwrap();
        let index = &capacity.global_secondary_indexes.unwrap()["ByColor"];
        reported.1 += index.capacity_units.unwrap();
    }
    let query = client
        .query()
        .table_name("Paints")
        .index_name("ByColor")
        .key_condition_expression("color = :c")
        .expression_attribute_values(":c", AttributeValue::S("red".into()));
    let answer = query.send().await.unwrap();
    assert_eq!(answer.count, 2);

    let after = Scrape::of(&server);
    assert_eq!(after.delta(&before, &requests("PutItem", "ok")), 7.0);
    assert_eq!(after.delta(&before, &requests("GetItem", "ok")), 3.0);
    let not_found = requests("GetItem", "ResourceNotFoundException");
    assert_eq!(after.delta(&before, &not_found), 2.0);
    let invalid = requests("PutItem", "ValidationException");
    assert_eq!(after.delta(&before, &invalid), 1.0);
    assert_eq!(after.delta(&before, &requests("Query", "ok")), 1.0);
    // Every request is in its operation's latency histogram, in some bucket below +Inf.
    let count = r#"haven_request_duration_seconds_count{operation="GetItem"}"#;
    assert_eq!(after.delta(&before, count), 5.0);
    let all = r#"haven_request_duration_seconds_bucket{le="+Inf",operation="GetItem"}"#;
    assert_eq!(after.delta(&before, all), 5.0);
    let sum = r#"haven_request_duration_seconds_sum{operation="GetItem"}"#;
    assert!(after.delta(&before, sum) > 0.0);
    // Small items: a write unit per put, half a read unit per eventually consistent get.
    assert_eq!(after.delta(&before, &capacity("write", "Plain", "")), 4.0);
    assert_eq!(after.delta(&before, &capacity("read", "Plain", "")), 1.5);
    assert_eq!(
        after.delta(&before, &capacity("write", "Paints", "")),
        reported.0
    );
    let index_writes = after.delta(&before, &capacity("write", "Paints", "ByColor"));
    assert_eq!(index_writes, reported.1);
    assert!(index_writes > 0.0);
    // The query read two small entries of the index: half a unit.
    let index_reads = after.delta(&before, &capacity("read", "Paints", "ByColor"));
    assert_eq!(index_reads, 0.5);
    assert!(after.delta(&before, "haven_request_bytes_total") > 0.0);
    assert!(after.delta(&before, "haven_response_bytes_total") > 0.0);
    // The tables' figures are read at the scrape; every write went through a storage commit.
    assert_eq!(after.value(r#"haven_table_items{table="Plain"}"#), 4.0);
    assert_eq!(after.value(r#"haven_table_items{table="Paints"}"#), 3.0);
    assert!(after.value(r#"haven_table_size_bytes{table="Paints"}"#) > 0.0);
    let commits = after.delta(&before, "haven_storage_commit_batches_sum");
    assert!(commits >= 7.0, "{commits} batches committed");
    // No request waits or runs once all are answered; the client's connections are open.
    assert_eq!(after.value("haven_in_flight_requests"), 0.0);
    assert_eq!(after.value("haven_queued_requests"), 0.0);
    assert!(after.value("haven_open_connections") >= 1.0);

    // `haven status` sums the same metrics for a terminal.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["status", "--endpoint", &server.endpoint()])
        .output()
        .unwrap();
    assert!(status.status.success());
    let text = String::from_utf8(status.stdout).unwrap();
    assert!(text.contains(": serving\n"), "{text}");
    assert!(
        text.contains("ResourceNotFoundException 2, ValidationException 1"),
        "{text}"
    );
    assert!(text.contains("  Paints: 3 items"), "{text}");
    assert!(text.contains("  Plain: 4 items"), "{text}");

    // A global index added later is backfilled from the table's four items.
    let (schema, definitions) = common::table_keys(&[("pk", "S")]);
    let keys_only = Projection::builder()
        .projection_type(ProjectionType::KeysOnly)
        .build();
    let create = CreateGlobalSecondaryIndexAction::builder()
        .index_name("ByPk")
        .set_key_schema(Some(schema))
        .projection(keys_only)
        .build()
        .unwrap();
    let update = GlobalSecondaryIndexUpdate::builder().create(create).build();
    let add_index = client
        .update_table()
        .table_name("Plain")
        .set_attribute_definitions(Some(definitions))
        .global_secondary_index_updates(update);
    add_index.send().await.unwrap();
    let backfilled = r#"haven_index_backfilled_items_total{table="Plain",index="ByPk"}"#;
    common::wait_until(
        "the new index is backfilled",
        Duration::from_secs(30),
        || Scrape::of(&server).value(backfilled) == 4.0,
    )
    .await;

    // A deleted table's series go at the next scrape (table names come from clients).
    client
        .delete_table()
        .table_name("Plain")
        .send()
        .await
        .unwrap();
    let gone = Scrape::of(&server);
    assert!(
        gone.0
            .keys()
            .all(|series| !series.contains(r#"table="Plain""#))
    );
    assert_eq!(
        gone.value(&capacity("write", "Paints", "ByColor")),
        index_writes
    );
}

#[test]
fn haven_status_says_when_no_server_answers() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["status", "--endpoint", &endpoint])
        .output()
        .unwrap();
    assert!(!status.status.success());
    let error = String::from_utf8(status.stderr).unwrap();
    assert!(
        error.contains(&format!("no Haven answers at {endpoint}")),
        "{error}"
    );
}

#[test]
fn a_throttled_request_is_counted_by_operation() {
    // Room for two requests (one executing, one waiting) and no queueing time: with the room held
    // by requests whose bodies are withheld, the next request is refused at once.
    let server = HavenServer::start_with(&[
        "--in-memory",
        "--max-in-flight",
        "1",
        "--queue-timeout-ms",
        "0",
    ]);
    // Intake refuses one request in five answered: four answered earn the refusal.
    let mut stream = std::net::TcpStream::connect(server.address).unwrap();
    for _ in 0..4 {
        assert_eq!(send_raw(&mut stream, "ListTables", "{}").0, 200);
    }
    let before = Scrape::of(&server);
    let held = [0, 1].map(|_| HeldRequest::open(server.address, "ListTables", "{}"));
    let (status, body) = send_raw(&mut stream, "Scan", r#"{"TableName":"Any"}"#);
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("ThrottlingException"), "{body}");
    for request in held {
        assert_eq!(request.finish().0, 200);
    }
    let after = Scrape::of(&server);
    let throttled = r#"haven_throttled_requests_total{operation="Scan"}"#;
    assert_eq!(after.delta(&before, throttled), 1.0);
    let refused = requests("Scan", "ThrottlingException");
    assert_eq!(after.delta(&before, &refused), 1.0);
    assert_eq!(after.delta(&before, &requests("ListTables", "ok")), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_deletions_and_stream_records_served_are_counted_by_table() {
    use aws_sdk_dynamodb::types::{StreamViewType, TimeToLiveSpecification};
    let server = HavenServer::start_with(&["--in-memory", "--ttl-interval-ms", "100"]);
    let client = server.client();
    let view = Some(StreamViewType::NewAndOldImages);
    let arn = common::streams::create_streamed_table(&client, "Expiring", view).await;
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name("exp")
        .build()
        .unwrap();
    let update = client.update_time_to_live().table_name("Expiring");
    update.time_to_live_specification(ttl).send().await.unwrap();
    let past = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 10;
    for pk in ["a", "b"] {
        let put = client
            .put_item()
            .table_name("Expiring")
            .item("pk", AttributeValue::S(pk.into()))
            .item("exp", AttributeValue::N(past.to_string()));
        put.send().await.unwrap();
    }
    let deleted = r#"haven_ttl_deleted_items_total{table="Expiring"}"#;
    common::wait_until("both items expire", Duration::from_secs(30), || {
        Scrape::of(&server).value(deleted) == 2.0
    })
    .await;

    let before = Scrape::of(&server);
    let streams = server.streams_client();
    let records = common::streams::all_records(&streams, &arn.unwrap()).await;
    assert_eq!(records.len(), 4, "two inserts and two expiries");
    let after = Scrape::of(&server);
    let served = r#"haven_stream_records_served_total{table="Expiring"}"#;
    assert_eq!(after.delta(&before, served), 4.0);
    assert_eq!(after.value(deleted), 2.0);
}

#[test]
fn metrics_and_console_are_served_unless_turned_off() {
    let server = HavenServer::start_in_memory();
    let (content_type, page) = get(&server, "/console");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(page.contains("/console/app.js"));
    let response = ureq::get(format!("{}/console/app.js", server.endpoint()))
        .call()
        .unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");

    let off = HavenServer::start_with(&["--in-memory", "--no-metrics", "--no-console"]);
    for path in ["/metrics", "/console"] {
        let (_, body) = get(&off, path);
        assert_eq!(
            body, "healthy: dynamodb.us-east-1.amazonaws.com ",
            "{path} is answered as any other GET"
        );
    }
}

/// On the embedded engine the metric follows the data directory's files; on PostgreSQL it stays 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_on_disk_follow_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = HavenServer::start_on_disk(dir.path());
    let client = server.client();
    create_table(&client, "Disk", &[("pk", "S")]).await;
    let before = Scrape::of(&server).value("haven_storage_disk_bytes");
    for i in 0..200 {
        client
            .put_item()
            .table_name("Disk")
            .item("pk", AttributeValue::S(format!("item-{i}")))
            .item("payload", AttributeValue::S("x".repeat(4000)))
            .send()
            .await
            .unwrap();
    }
    let after = Scrape::of(&server).value("haven_storage_disk_bytes");
    if common::on_postgres() {
        // The data is in PostgreSQL: the metric says nothing of it (docs/metrics.md).
        assert_eq!((before, after), (0.0, 0.0));
        return;
    }
    let on_disk: u64 = walkdir(dir.path());
    assert!(before > 0.0, "{before}");
    assert!(after >= before + 200.0 * 4000.0, "{before} then {after}");
    assert!(after <= on_disk as f64, "{after} of {on_disk}");
}

/// On the embedded engine the page cache's figures move with reads; PostgreSQL's cache is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_cache_hits_follow_reads() {
    let dir = tempfile::tempdir().unwrap();
    let server = HavenServer::start_on_disk(dir.path());
    let client = server.client();
    create_table(&client, "Cache", &[("pk", "S")]).await;
    let key = AttributeValue::S("hot".to_string());
    client
        .put_item()
        .table_name("Cache")
        .item("pk", key.clone())
        .send()
        .await
        .unwrap();
    let before = Scrape::of(&server);
    for _ in 0..100 {
        let read = client.get_item().table_name("Cache").key("pk", key.clone());
        assert!(read.send().await.unwrap().item.is_some());
    }
    let after = Scrape::of(&server);
    let hits = after.delta(&before, "haven_storage_cache_hits_total");
    if common::on_postgres() {
        assert_eq!((hits, after.value("haven_storage_cache_bytes")), (0.0, 0.0));
        return;
    }
    // Each read walks the catalog's and the item's B-tree pages: at least one page per read.
    assert!(hits >= 100.0, "{hits} hits for 100 reads");
    assert!(after.value("haven_storage_cache_bytes") > 0.0);
    let misses = after.value("haven_storage_cache_misses_total");
    assert!(
        misses < after.value("haven_storage_cache_hits_total"),
        "{misses}"
    );
}

/// The bytes of every file under `dir`, as `du --apparent-size` counts them.
fn walkdir(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                walkdir(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}
