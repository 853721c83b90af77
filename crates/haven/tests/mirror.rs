//! `haven mirror` through the real binaries: a source (another Haven, or AWS's DynamoDB Local) is
//! loaded, written to before, during and after the initial copy (puts, updates and deletes of items
//! already copied), the mirror is SIGKILLed once while it copies and once while it follows the
//! stream, and the copy must end identical to the source. The mirror reaches the source through a
//! relay the test cuts in the middle of a copy, to update and delete items the copy already holds
//! and items it has not reached yet: the stream, followed from a position taken before the Scan,
//! must bring all four. Then the copy refuses clients' writes, reports its lag on the status page
//! and in the metrics, keeps serving when the source is killed while reporting the source
//! unreachable and a growing lag, and `haven mirror promote` makes it writable. A source table
//! without a usable stream, and bad arguments, are refused with clear messages.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, GlobalSecondaryIndex, Projection, ProjectionType, PutRequest,
    StreamViewType, WriteRequest,
};
use common::dynamodb_local::DynamoDbLocal;
use common::regions::Link;
use common::{HavenServer, error_of, sdk_client};
use serde_json::Value;

const TABLE: &str = "orders";
/// Items loaded before the mirror starts: enough that the copy is still running when it is killed.
const LOADED_ITEMS: usize = 6000;
/// The writer's key space: partitions × sort keys, overlapping the loaded items.
const PARTITIONS: usize = 700;
const SORT_KEYS: usize = 10;
/// Items outside the writer's key space (partitions `fixed<i>`, spread over the Scan's order),
/// written only by the test.
const FIXED_ITEMS: usize = 200;

/// A running `haven mirror` (killed when dropped).
struct Mirror {
    child: Child,
    address: SocketAddr,
}

/// Gives `command` an AWS environment of its own: no instance metadata, the shared files of `dir`
/// (which may not exist), no profile or region from the test's environment.
fn hermetic<'c>(command: &'c mut Command, dir: &Path) -> &'c mut Command {
    command
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("aws-credentials"))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_SESSION_TOKEN")
}

/// Starts `haven mirror` of `table` on `data_dir`; Err carries its standard error if it exits.
fn start_mirror(source: &str, table: &str, data_dir: &Path) -> Result<Mirror, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_haven"));
    command
        .args(["mirror", "--listen", "127.0.0.1:0", "--log-level", "warn"])
        .args(["--source-endpoint", source, "--table", table])
        .args(["--segments", "1", "--poll-interval-ms", "50"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("AWS_ACCESS_KEY_ID", "AKIDMIRROR")
        .env("AWS_SECRET_ACCESS_KEY", "secret");
    hermetic(&mut command, data_dir.parent().unwrap());
    spawn_mirror(
        &mut command,
        &data_dir.with_extension(format!("log-{}", std::process::id())),
    )
}

/// Starts `command` (a `haven` that mirrors), its standard error into `log`; Err carries that
/// if it exits instead of serving.
fn spawn_mirror(command: &mut Command, log: &Path) -> Result<Mirror, String> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("haven mirror starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    match line
        .trim()
        .rsplit("://")
        .next()
        .and_then(|a| a.parse().ok())
    {
        Some(address) => Ok(Mirror { child, address }),
        None => {
            let status = child.wait().unwrap();
            let stderr = std::fs::read_to_string(log).unwrap();
            Err(format!("{status}: {stderr}"))
        }
    }
}

impl Mirror {
    fn start(source: &str, data_dir: &Path) -> Mirror {
        start_mirror(source, TABLE, data_dir).unwrap_or_else(|e| panic!("mirror: {e}"))
    }

    fn client(&self) -> Client {
        sdk_client(&format!("http://{}", self.address))
    }

    /// The table's entry of `GET /mirror/status`.
    fn status(&self) -> Value {
        let url = format!("http://{}/mirror/status", self.address);
        let page: Value = ureq::get(&url)
            .call()
            .expect("status page")
            .body_mut()
            .read_json()
            .unwrap();
        page["tables"][0].clone()
    }

    /// Polls the status until `ready` holds (at most `within`); returns the status that did.
    fn wait_for(&self, within: Duration, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let status = self.status();
            if ready(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "{what}: last status {status}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The text of `GET /metrics`.
    fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.address);
        ureq::get(&url)
            .call()
            .expect("metrics")
            .body_mut()
            .read_to_string()
            .unwrap()
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and waits for the exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "haven mirror exited with {status}");
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: usize) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(i: usize) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".into(), s(&format!("p{}", i / SORT_KEYS % PARTITIONS))),
        ("sk".into(), n(i % SORT_KEYS)),
    ])
}

fn item(i: usize, version: usize) -> HashMap<String, AttributeValue> {
    let mut item = key(i);
    item.insert("state".into(), s(["new", "paid", "sent"][version % 3]));
    item.insert("version".into(), n(version));
    item.insert("body".into(), s(&"x".repeat(100 + i % 50)));
    item
}

/// Creates `TABLE` (pk S, sk N, a global index on `state`) with a stream of `view`, or none.
async fn create_table(client: &Client, name: &str, view: Option<StreamViewType>) {
    let (schema, mut definitions) = common::table_keys(&[("pk", "S"), ("sk", "N")]);
    let (index_schema, index_definitions) = common::table_keys(&[("state", "S")]);
    definitions.extend(index_definitions);
    let projection = Projection::builder()
        .projection_type(ProjectionType::All)
        .build();
    let index = GlobalSecondaryIndex::builder()
        .index_name("by_state")
        .set_key_schema(Some(index_schema))
        .projection(projection)
        .build()
        .unwrap();
    client
        .create_table()
        .table_name(name)
        .set_key_schema(Some(schema))
        .set_attribute_definitions(Some(definitions))
        .global_secondary_indexes(index)
        .billing_mode(BillingMode::PayPerRequest)
        .set_stream_specification(view.map(|v| common::streams::specification(Some(v))))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTable {name}: {e:?}"));
}

fn fixed_key(i: usize) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".into(), s(&format!("fixed{i}"))), ("sk".into(), n(0))])
}

/// The key of fixed item `i` as [`scan_all`] keys it.
fn fixed_at(i: usize) -> (String, String) {
    (format!("fixed{i}"), "0".to_string())
}

fn fixed_item(i: usize, state: &str) -> HashMap<String, AttributeValue> {
    let mut item = fixed_key(i);
    item.insert("state".into(), s(state));
    item
}

/// Loads the writer's first `LOADED_ITEMS` items and the `FIXED_ITEMS`.
async fn load(client: &Client) {
    let items: Vec<_> = (0..LOADED_ITEMS)
        .map(|i| item(i, 0))
        .chain((0..FIXED_ITEMS).map(|i| fixed_item(i, "loaded")))
        .collect();
    for chunk in items.chunks(25) {
        let requests = chunk
            .iter()
            .map(|item| {
                let put = PutRequest::builder().set_item(Some(item.clone())).build();
                WriteRequest::builder().put_request(put.unwrap()).build()
            })
            .collect();
        let answer = client
            .batch_write_item()
            .request_items(TABLE, requests)
            .send()
            .await
            .expect("BatchWriteItem");
        assert!(answer.unprocessed_items().is_none_or(|u| u.is_empty()));
    }
}

/// Writes until stopped: puts, updates and deletes over the whole key space (items already
/// copied and new ones); counts its operations.
async fn write_until(client: Client, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let mut step = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let i = (step * 7919) % (PARTITIONS * SORT_KEYS);
        match step % 3 {
            0 => drop(
                client
                    .put_item()
                    .table_name(TABLE)
                    .set_item(Some(item(i, step)))
                    .send()
                    .await
                    .expect("PutItem"),
            ),
            1 => drop(
                client
                    .update_item()
                    .table_name(TABLE)
                    .set_key(Some(key(i)))
                    .update_expression("SET version = :v, #s = :s")
                    .expression_attribute_names("#s", "state")
                    .expression_attribute_values(":v", n(step))
                    .expression_attribute_values(":s", s("updated"))
                    .send()
                    .await
                    .expect("UpdateItem"),
            ),
            _ => drop(
                client
                    .delete_item()
                    .table_name(TABLE)
                    .set_key(Some(key(i)))
                    .send()
                    .await
                    .expect("DeleteItem"),
            ),
        }
        step += 1;
        done.fetch_add(1, Ordering::Relaxed);
    }
}

/// In the middle of a copy: cuts the mirror's link to the source, and once the copy stands still
/// updates and deletes fixed items it holds and fixed items it has not reached, then heals the
/// link. Answers the updated keys and the deleted ones.
async fn write_around_the_scan(mirror: &Mirror, link: &Link, source: &Client) -> [Vec<usize>; 2] {
    mirror.wait_for(Duration::from_secs(60), "the copy starts", |s| {
        s["phase"] == "copying" && s["copied_items"].as_u64() > Some(0)
    });
    link.set_cut(true);
    let mut copied = mirror.status()["copied_items"].clone();
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = mirror.status()["copied_items"].clone();
        if now == copied {
            break;
        }
        copied = now;
    }
    let held = scan_all(&mirror.client()).await;
    let (copied, not_yet): (Vec<usize>, Vec<usize>) =
        (0..FIXED_ITEMS).partition(|&i| held.contains_key(&fixed_at(i)));
    assert!(
        copied.len() >= 2 && not_yet.len() >= 2,
        "the copy stopped with {} fixed items copied and {} not: cut it earlier",
        copied.len(),
        not_yet.len()
    );
    let updated = vec![copied[0], not_yet[0]];
    let deleted = vec![copied[1], not_yet[1]];
    for &i in &updated {
        let put = source.put_item().table_name(TABLE);
        put.set_item(Some(fixed_item(i, "during the scan")))
            .send()
            .await
            .expect("PutItem");
    }
    for &i in &deleted {
        let delete = source.delete_item().table_name(TABLE);
        delete
            .set_key(Some(fixed_key(i)))
            .send()
            .await
            .expect("DeleteItem");
    }
    link.set_cut(false);
    [updated, deleted]
}

/// Every item of `TABLE`, by key.
async fn scan_all(client: &Client) -> HashMap<(String, String), HashMap<String, AttributeValue>> {
    let items = common::scan_items(client, TABLE).await;
    let by_key = |item: HashMap<String, AttributeValue>| {
        let pk = item["pk"].as_s().unwrap().clone();
        let sk = item["sk"].as_n().unwrap().clone();
        ((pk, sk), item)
    };
    items.into_iter().map(by_key).collect()
}

/// Waits until the copy holds exactly the source's items, and asserts it.
async fn assert_converges(source: &Client, copy: &Client) {
    let expected = scan_all(source).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let actual = scan_all(copy).await;
        if actual == expected {
            return;
        }
        if Instant::now() > deadline {
            let missing = expected.keys().filter(|k| !actual.contains_key(*k)).count();
            let extra = actual.keys().filter(|k| !expected.contains_key(*k)).count();
            let differ = expected
                .iter()
                .filter(|(k, v)| actual.get(*k).is_some_and(|a| a != *v))
                .count();
            panic!(
                "the copy did not converge: {} source items, {} copied; {missing} missing, {extra} extra, {differ} different",
                expected.len(),
                actual.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The whole life of a mirror of `source` (a running server at `endpoint`); `kill_source` takes the
/// source away at the end.
async fn mirror_lifecycle(endpoint: &str, source: Client, kill_source: impl FnOnce()) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("copy");
    create_table(&source, TABLE, Some(StreamViewType::NewAndOldImages)).await;
    load(&source).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(write_until(source.clone(), stop.clone(), writes.clone()));

    // Killed while copying: the copy has begun and is not finished.
    let link = Link::new(endpoint.trim_start_matches("http://").parse().unwrap());
    let relayed = format!("http://{}", link.address);
    let mirror = Mirror::start(&relayed, &data_dir);
    mirror.wait_for(Duration::from_secs(60), "the copy starts", |s| {
        s["phase"] == "copying" && s["copied_items"].as_u64() > Some(0)
    });
    mirror.kill();
    let writes_during_copy = writes.load(Ordering::Relaxed);

    // Restarted, it copies again; items are written on both sides of the Scan's progress; then
    // it is killed again while following the stream.
    let mirror = Mirror::start(&relayed, &data_dir);
    let [updated, deleted] = write_around_the_scan(&mirror, &link, &source).await;
    mirror.wait_for(Duration::from_secs(120), "the mirror follows", |s| {
        s["phase"] == "following" && s["applied_records"].as_u64() > Some(0)
    });
    mirror.kill();

    let mirror = Mirror::start(&relayed, &data_dir);
    let before = writes.load(Ordering::Relaxed);
    while writes.load(Ordering::Relaxed) < before + 50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(
        writes_during_copy > 0,
        "no write happened while the copy ran"
    );
    let copy = mirror.client();
    assert_converges(&source, &copy).await;
    let copied = scan_all(&copy).await;
    for i in updated {
        let item = &copied[&fixed_at(i)];
        assert_eq!(item["state"], s("during the scan"));
    }
    for i in deleted {
        assert!(!copied.contains_key(&fixed_at(i)));
    }
    assert_lag_reported(&mirror);
    assert_copied_schema(&source, &copy).await;
    assert_read_only(&copy).await;

    // The source goes away: the copy keeps serving and says how stale it is.
    kill_source();
    let gone = mirror.wait_for(Duration::from_secs(30), "the source is seen as gone", |s| {
        s["source_reachable"] == false
    });
    assert!(gone["last_error"].is_string(), "{gone}");
    std::thread::sleep(Duration::from_millis(1100));
    let later = mirror.status();
    assert!(
        later["lag_seconds"].as_f64().unwrap() >= 1.0,
        "the lag grows while the source is gone: {later}"
    );
    let errors = metric(&mirror.metrics(), "haven_mirror_source_errors_total");
    assert!(errors >= 1.0, "source errors counted: {errors}");
    let served = copy.scan().table_name(TABLE).send().await.expect("Scan");
    assert!(served.count() > 0);

    // Promotion: the copy becomes an ordinary, writable table.
    mirror.stop();
    let promoted = promote(&data_dir);
    assert!(promoted.status.success(), "{promoted:?}");
    let server = HavenServer::start_on_disk(&data_dir);
    server
        .client()
        .put_item()
        .table_name(TABLE)
        .set_item(Some(item(1, 99)))
        .send()
        .await
        .expect("a promoted table takes writes");
    drop(server);
    let again = promote(&data_dir);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("table orders is not a mirror"), "{stderr}");
}

/// The value of the metric `name` for `TABLE` in a scrape's text.
fn metric(text: &str, name: &str) -> f64 {
    let prefix = format!("{name}{{table=\"{TABLE}\"}} ");
    let line = text.lines().find(|l| l.starts_with(&prefix));
    let line = line.unwrap_or_else(|| panic!("no {prefix} in {text}"));
    line[prefix.len()..].parse().unwrap()
}

/// A mirror that holds every change (the source idle) reports a lag below a second, on its
/// status page and in its metrics, with the records it applied counted.
fn assert_lag_reported(mirror: &Mirror) {
    let status = mirror.wait_for(Duration::from_secs(30), "the lag is small", |s| {
        s["lag_seconds"].as_f64().is_some_and(|lag| lag < 1.0)
    });
    let text = mirror.metrics();
    assert!(metric(&text, "haven_mirror_lag_seconds") < 5.0, "{status}");
    let applied = metric(&text, "haven_mirror_applied_records_total");
    assert!(
        applied >= status["applied_records"].as_f64().unwrap(),
        "{text}"
    );
}

fn promote(data_dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["mirror", "promote", TABLE, "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap()
}

/// The copy has the source's keys, global index (queryable, with the same answer) and stream.
async fn assert_copied_schema(source: &Client, copy: &Client) {
    let table = copy
        .describe_table()
        .table_name(TABLE)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(table.key_schema().len(), 2);
    assert_eq!(
        table.global_secondary_indexes()[0].index_name(),
        Some("by_state")
    );
    let stream = table.stream_specification().unwrap();
    assert_eq!(
        stream.stream_view_type(),
        Some(&StreamViewType::NewAndOldImages)
    );
    let query = |client: &Client| {
        client
            .query()
            .table_name(TABLE)
            .index_name("by_state")
            .key_condition_expression("#s = :s")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":s", s("updated"))
            .send()
    };
    let (from_source, from_copy) = (query(source).await.unwrap(), query(copy).await.unwrap());
    assert!(from_source.count() > 0);
    assert_eq!(from_source.count(), from_copy.count());
}

/// Every kind of client write is refused with ResourceInUseException saying why.
async fn assert_read_only(copy: &Client) {
    let (code, message) = error_of(
        copy.put_item()
            .table_name(TABLE)
            .set_item(Some(item(3, 1)))
            .send()
            .await,
    );
    assert_eq!(code, "ResourceInUseException");
    assert!(
        message.contains("table orders is a read-only mirror of"),
        "{message}"
    );
    assert!(message.contains("haven mirror promote orders"), "{message}");
    let (code, _) = error_of(
        copy.delete_item()
            .table_name(TABLE)
            .set_key(Some(key(3)))
            .send()
            .await,
    );
    assert_eq!(code, "ResourceInUseException");
    let put = PutRequest::builder()
        .set_item(Some(item(4, 1)))
        .build()
        .unwrap();
    let batch = copy
        .batch_write_item()
        .request_items(
            TABLE,
            vec![WriteRequest::builder().put_request(put).build()],
        )
        .send()
        .await;
    assert_eq!(error_of(batch).0, "ResourceInUseException");
    let statement = copy
        .execute_statement()
        .statement("DELETE FROM orders WHERE pk = 'p1' AND sk = 1")
        .send()
        .await;
    assert_eq!(error_of(statement).0, "ResourceInUseException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_another_haven_through_kills_and_promotes() {
    let mut source = HavenServer::start_with(&["--in-memory", "--stream-shard-interval-secs", "2"]);
    let endpoint = source.endpoint();
    let client = source.client();
    mirror_lifecycle(&endpoint, client, move || {
        source.child.kill().unwrap();
        source.child.wait().unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_dynamodb_local_through_kills_and_promotes() {
    let local = DynamoDbLocal::start();
    let endpoint = local.endpoint();
    let client = sdk_client(&endpoint);
    assert_refused_without_stream(&client, &endpoint).await;
    mirror_lifecycle(&endpoint, client, move || drop(local)).await;
}

/// A source table without a stream, or with one that carries no new images, is refused with a
/// message saying how to enable one; nothing is created.
async fn assert_refused_without_stream(source: &Client, endpoint: &str) {
    let dir = tempfile::tempdir().unwrap();
    create_table(source, "plain", None).await;
    let error = start_mirror(endpoint, "plain", &dir.path().join("a"))
        .err()
        .unwrap();
    assert!(
        error.contains("source table plain has no stream"),
        "{error}"
    );
    assert!(
        error.contains("StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES"),
        "{error}"
    );
    create_table(source, "keys", Some(StreamViewType::KeysOnly)).await;
    let error = start_mirror(endpoint, "keys", &dir.path().join("b"))
        .err()
        .unwrap();
    assert!(error.contains("view type KEYS_ONLY"), "{error}");
    let error = start_mirror(endpoint, "missing", &dir.path().join("c"))
        .err()
        .unwrap();
    assert!(
        error.contains("cannot describe source table missing: ResourceNotFoundException"),
        "{error}"
    );
}

/// A long-running `haven serve` mirrors the tables of its configuration file's [mirror] section,
/// signing with a profile's key from the shared credentials file (the source checks it with
/// `--auth`); a key the source does not know, and a profile that does not exist, stop the start
/// with the reason.
#[tokio::test]
async fn serves_a_mirror_from_its_config_file_with_a_profiles_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    let (id, secret) = common::create_key(&keys, "mirror");
    let source = HavenServer::start_with_auth(&keys);
    let client = common::sdk_client_with_key(&source.endpoint(), &id, &secret);
    create_table(&client, "profiled", Some(StreamViewType::NewImage)).await;
    for i in 0..50 {
        let put = client.put_item().table_name("profiled");
        put.set_item(Some(item(i, 1))).send().await.unwrap();
    }
    let credentials = dir.path().join("aws-credentials");
    let profile =
        format!("[mirroring]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n");
    let stranger = "[stranger]\naws_access_key_id = AKIDSTRANGER\naws_secret_access_key = x\n";
    std::fs::write(&credentials, format!("{profile}{stranger}")).unwrap();
    let config = dir.path().join("haven.toml");
    let endpoint = source.endpoint();
    std::fs::write(
        &config,
        format!(
            "[mirror]\nsource_endpoint = \"{endpoint}\"\nsource_profile = \"mirroring\"\n\
             tables = [\"profiled\"]\npoll_interval_ms = 50\n"
        ),
    )
    .unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_haven"));
    serve
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--in-memory",
            "--config",
        ])
        .arg(&config)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    hermetic(&mut serve, dir.path());
    let mirror = spawn_mirror(&mut serve, &dir.path().join("serve.log")).unwrap();
    mirror.wait_for(Duration::from_secs(60), "the mirror follows", |s| {
        s["phase"] == "following"
    });
    assert_eq!(
        common::scan_items(&mirror.client(), "profiled").await.len(),
        50
    );
    drop(mirror);

    let refused = |profile: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_haven"));
        command
            .args(["mirror", "--in-memory", "--source-endpoint", &endpoint])
            .args(["--table", "profiled", "--source-profile", profile])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        let output = hermetic(&mut command, dir.path()).output().unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let unknown_key = refused("stranger");
    assert!(
        unknown_key.contains("cannot describe source table profiled: UnrecognizedClientException"),
        "{unknown_key}"
    );
    let no_profile = refused("nobody");
    assert!(
        no_profile.contains("no credentials for the source"),
        "{no_profile}"
    );
}

#[tokio::test]
async fn refuses_tables_without_streams_and_bad_arguments() {
    let source = HavenServer::start_in_memory();
    assert_refused_without_stream(&source.client(), &source.endpoint()).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_haven"));
        command
            .arg("mirror")
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "AKIDMIRROR")
            .env("AWS_SECRET_ACCESS_KEY", "secret");
        hermetic(&mut command, dir.path()).output().unwrap()
    };
    let refused = |args: &[&str], expected: &str| {
        let output = run(args);
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    };
    let table = ["--in-memory", "--table", "orders"];
    refused(&table, "no source: give --source-endpoint");
    let source_x = ["--in-memory", "--source-endpoint", "http://x"];
    refused(&source_x, "no table to mirror: give --table");
    refused(
        &[&table[..], &["--source-endpoint", "ftp://x"]].concat(),
        "\"ftp://x\" is not a URL",
    );
    refused(
        &[&source_x[..], &["--table", "t"]].concat(),
        "table name \"t\" is not a DynamoDB table name",
    );
    refused(
        &[&source_x[..], &table[1..], &["--segments", "0"]].concat(),
        "--segments",
    );
    let config = dir.path().join("haven.toml");
    let with_config = [
        &source_x[..],
        &table[1..],
        &["--config", config.to_str().unwrap()],
    ]
    .concat();
    std::fs::write(&config, "[mirror]\nsegment = 3\n").unwrap();
    refused(&with_config, "unknown field `segment`");
    std::fs::write(&config, "[mirror]\nsegments = 0\n").unwrap();
    refused(&with_config, "segments must be between 1 and 1000, not 0");
    let data_dir: PathBuf = dir.path().join("none");
    refused(
        &["promote", "ghost", "--data-dir", data_dir.to_str().unwrap()],
        "Requested resource not found",
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_haven"));
    command
        .args([
            "mirror",
            "--in-memory",
            "--source-endpoint",
            "http://x",
            "--table",
            "orders",
        ])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let output = hermetic(&mut command, dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no credentials for the source"), "{stderr}");
}
