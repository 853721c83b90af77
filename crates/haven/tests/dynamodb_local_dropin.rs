//! Haven as a drop-in for DynamoDB Local (issue 25): the `haven` binary started with the exact
//! command lines of DynamoDB Local's documentation, of its image's users (Testcontainers modules,
//! compose files) and driven with the SDK; isolation per access key id and region with and without
//! `-sharedDb`, compared with DynamoDB Local itself; CORS preflights compared with DynamoDB
//! Local's; `-delayTransientStatuses`; `haven healthcheck`; and the command line's errors.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::HavenServer;
use common::dynamodb_local::{DynamoDbLocal, free_port};

/// Runs `haven <line> -port <free port>` in `dir` on 127.0.0.1 (`HAVEN_HOST`: DynamoDB Local
/// itself listens on every interface) and waits for its "listening" line.
fn start_dropin(line: &str, dir: &Path, env: &[(&str, &str)]) -> HavenServer {
    let port = free_port().to_string();
    HavenServer::spawn(
        Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(line.split_whitespace())
            .args(["-port", &port])
            .current_dir(dir)
            .env("HAVEN_HOST", "127.0.0.1")
            .envs(env.iter().copied())
            .stderr(Stdio::null()),
    )
}

/// A client signing with `key` in `region`.
fn client(endpoint: &str, key: &str, region: &str) -> aws_sdk_dynamodb::Client {
    let config = common::sdk_client_with_key(endpoint, key, "secret")
        .config()
        .to_builder()
        .region(aws_sdk_dynamodb::config::Region::new(region.to_string()))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Creates a table, writes an item and reads it back.
async fn use_a_table(client: &aws_sdk_dynamodb::Client, table: &str) {
    use aws_sdk_dynamodb::types::AttributeValue;
    common::create_table(client, table, &[("pk", "S")]).await;
    client
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S("a".into()))
        .item("v", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    let item = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S("a".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the item written");
    assert_eq!(item["v"], AttributeValue::N("1".into()));
}

async fn table_names(client: &aws_sdk_dynamodb::Client) -> Result<Vec<String>, String> {
    match client.list_tables().send().await {
        Ok(output) => Ok(output.table_names.unwrap_or_default()),
        Err(error) => Err(common::error_of::<(), _, _>(Err(error)).0),
    }
}

/// The command lines people pass to DynamoDB Local (the `-port` of each run is added), where
/// they come from, and whether the data goes to disk in the working directory.
const COMMAND_LINES: &[(&str, &str)] = &[
    // The amazon/dynamodb-local image's own CMD, and what the Testcontainers modules for Go
    // (modules/dynamodb) and .NET (Testcontainers.DynamoDb) run by default.
    ("-jar DynamoDBLocal.jar -inMemory", "image default"),
    // testcontainers-go's WithSharedDB, and most CI `services:` blocks.
    (
        "-jar DynamoDBLocal.jar -inMemory -sharedDb",
        "Testcontainers WithSharedDB",
    ),
    // testcontainers-go's WithDisableTelemetry.
    (
        "-jar DynamoDBLocal.jar -inMemory -disableTelemetry",
        "Testcontainers WithDisableTelemetry",
    ),
    // AWS's docker-compose example (DynamoDB Local developer guide).
    (
        "-jar DynamoDBLocal.jar -sharedDb -dbPath ./data",
        "AWS compose example",
    ),
    // AWS's command line for the downloaded jar.
    (
        "java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -sharedDb",
        "AWS jar documentation",
    ),
    (
        "-jar DynamoDBLocal.jar -sharedDb -dbPath . -optimizeDbBeforeStartup -delayTransientStatuses -cors *",
        "every option",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_command_lines_serve_the_sdk() {
    for (line, origin) in COMMAND_LINES {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let server = start_dropin(line, dir.path(), &[("HAVEN_TRANSIENT_STATUS_MS", "1")]);
        let client = client(&server.endpoint(), "AKIDLOCAL", "us-east-1");
        use_a_table(&client, "Music").await;
        assert_eq!(
            table_names(&client).await.unwrap(),
            ["Music"],
            "{origin}: {line}"
        );
        let on_disk = !line.contains("-inMemory");
        let files = std::fs::read_dir(dir.path().join("data"))
            .unwrap()
            .chain(std::fs::read_dir(dir.path()).unwrap())
            .count();
        // The tempdir holds `data` itself; anything more is the database.
        assert_eq!(files > 1, on_disk, "{origin}: {line}: files written?");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_disk_tables_of_each_key_and_region_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let line = "-jar DynamoDBLocal.jar -dbPath ./data";
    std::fs::create_dir(dir.path().join("data")).unwrap();
    {
        let server = start_dropin(line, dir.path(), &[]);
        use_a_table(&client(&server.endpoint(), "keyA", "us-east-1"), "TableA").await;
        use_a_table(&client(&server.endpoint(), "keyB", "eu-west-1"), "TableB").await;
    }
    for folder in ["keyA_us-east-1.haven", "keyB_eu-west-1.haven"] {
        assert!(dir.path().join("data").join(folder).is_dir(), "{folder}");
    }
    let server = start_dropin(line, dir.path(), &[]);
    let names = |key, region| {
        let client = client(&server.endpoint(), key, region);
        async move { table_names(&client).await.unwrap() }
    };
    assert_eq!(names("keyA", "us-east-1").await, ["TableA"]);
    assert_eq!(names("keyB", "eu-west-1").await, ["TableB"]);
    assert!(names("keyA", "eu-west-1").await.is_empty());
}

/// What each of several clients sees after `keyA` in us-east-1 creates a table: the answer of
/// ListTables, or its error's code.
async fn isolation_view(endpoint: &str) -> Vec<(String, Result<Vec<String>, String>)> {
    let creator = client(endpoint, "keyA", "us-east-1");
    common::create_table(&creator, "Shared", &[("pk", "S")]).await;
    let clients = [
        ("keyA", "us-east-1"),
        ("keyB", "us-east-1"),
        ("keyA", "eu-west-1"),
        ("KEYA", "us-east-1"),
        ("key-a", "us-east-1"),
        ("key_a", "us-east-1"),
    ];
    let mut view = Vec::new();
    for (key, region) in clients {
        let client = client(endpoint, key, region);
        view.push((format!("{key}/{region}"), table_names(&client).await));
    }
    // A second key creates a table of the same name: refused only when the database is shared.
    let second = client(endpoint, "keyB", "us-east-1");
    let (schema, definitions) = common::table_keys(&[("pk", "S")]);
    let created = second
        .create_table()
        .table_name("Shared")
        .set_key_schema(Some(schema))
        .set_attribute_definitions(Some(definitions))
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await;
    let outcome = match created {
        Ok(_) => Ok(vec!["created".to_string()]),
        Err(error) => Err(common::error_of::<(), _, _>(Err(error)).0),
    };
    view.push(("keyB creates Shared".into(), outcome));
    view
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_matches_dynamodb_local_with_and_without_shared_db() {
    for options in [vec!["-inMemory"], vec!["-inMemory", "-sharedDb"]] {
        let local = DynamoDbLocal::start_with(&options);
        let expected = isolation_view(&local.endpoint()).await;
        drop(local);
        let dir = tempfile::tempdir().unwrap();
        let line = format!("-jar DynamoDBLocal.jar {}", options.join(" "));
        let haven = start_dropin(&line, dir.path(), &[]);
        let actual = isolation_view(&haven.endpoint()).await;
        assert_eq!(actual, expected, "{line}");
    }
}

/// Sends a raw request and returns the status and the headers, lower-cased, of its answer.
fn raw(address: SocketAddr, head: &str) -> (u16, Vec<(String, String)>) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(n, _)| n.starts_with("access-control-allow") || n == "access-control-max-age")
        .collect();
    (status, headers)
}

fn preflight(address: SocketAddr, origin: &str) -> (u16, Vec<(String, String)>) {
    raw(
        address,
        &format!(
            "OPTIONS / HTTP/1.1\r\nHost: localhost\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type,x-amz-target,authorization,x-amz-date\r\nConnection: close\r\n\r\n"
        ),
    )
}

fn list_tables_from(address: SocketAddr, origin: &str) -> (u16, Vec<(String, String)>) {
    raw(
        address,
        &format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nOrigin: {origin}\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\nX-Amz-Date: 20240101T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        ),
    )
}

#[test]
fn cors_answers_as_dynamodb_local_does_for_an_allow_list() {
    let allow = "http://a.example,http://b.example";
    let local = DynamoDbLocal::start_with(&["-inMemory", "-cors", allow]);
    let local_address: SocketAddr = format!("127.0.0.1:{}", local.port).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let haven = start_dropin(
        &format!("-jar DynamoDBLocal.jar -inMemory -cors {allow}"),
        dir.path(),
        &[],
    );
    for origin in ["http://a.example", "http://c.example"] {
        let expected = preflight(local_address, origin);
        assert_eq!(expected.0, 200);
        assert_eq!(preflight(haven.address, origin), expected, "{origin}");
        let (status, headers) = list_tables_from(haven.address, origin);
        assert_eq!(
            (status, headers),
            list_tables_from(local_address, origin),
            "{origin}"
        );
    }
}

#[test]
fn cors_star_lets_any_origin_read_the_answers() {
    let dir = tempfile::tempdir().unwrap();
    let haven = start_dropin("-jar DynamoDBLocal.jar -inMemory", dir.path(), &[]);
    let (status, headers) = preflight(haven.address, "http://z.example");
    assert_eq!(status, 200);
    assert!(headers.contains(&(
        "access-control-allow-origin".into(),
        "http://z.example".into()
    )));
    let (status, headers) = list_tables_from(haven.address, "http://z.example");
    assert_eq!(status, 200);
    assert!(headers.contains(&(
        "access-control-allow-origin".into(),
        "http://z.example".into()
    )));
}

/// The transient-status window the tests configure, and how long their waiters may wait: the
/// SDK's waiters poll at once, then (their minimum delay being 20 s) once more at `max_wait`.
const WINDOW_MS: u64 = 1000;
const WAITER_MAX: Duration = Duration::from_secs(3);

fn status_of(table: &aws_sdk_dynamodb::types::TableDescription) -> &str {
    table.table_status().unwrap().as_str()
}

async fn table_status(client: &aws_sdk_dynamodb::Client, table: &str) -> String {
    let described = client.describe_table().table_name(table).send().await;
    status_of(described.unwrap().table().unwrap()).to_string()
}

/// The IndexStatus and Backfilling of the table's only global index, or None once it is gone.
async fn index_status(client: &aws_sdk_dynamodb::Client, table: &str) -> Option<(String, bool)> {
    let described = client.describe_table().table_name(table).send().await;
    let table = described.unwrap().table.unwrap();
    let index = table.global_secondary_indexes().first()?;
    Some((
        index.index_status().unwrap().as_str().to_string(),
        index.backfilling().unwrap_or(false),
    ))
}

async fn wait_active(client: &aws_sdk_dynamodb::Client, table: &str) {
    use aws_sdk_dynamodb::client::Waiters;
    let waited = client.wait_until_table_exists().table_name(table);
    waited
        .wait(WAITER_MAX)
        .await
        .expect("the table becomes ACTIVE");
    assert_eq!(table_status(client, table).await, "ACTIVE");
}

/// The ResourceInUseException message of an UpdateTable (billing mode) and a DeleteTable.
async fn refusals(client: &aws_sdk_dynamodb::Client, table: &str) -> [(String, String); 2] {
    use aws_sdk_dynamodb::types::BillingMode;
    let update = client.update_table().table_name(table);
    let update = update.billing_mode(BillingMode::PayPerRequest).send().await;
    let delete = client.delete_table().table_name(table).send().await;
    [common::error_of(update), common::error_of(delete)]
}

fn in_use(doing: &str, table: &str) -> (String, String) {
    (
        "ResourceInUseException".into(),
        format!(
            "Attempt to change a resource which is still in use: Table is being {doing}: {table}"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_transient_statuses_create_and_update_as_the_service_does() {
    use aws_sdk_dynamodb::types::{AttributeValue, BillingMode, ProvisionedThroughput};
    let dir = tempfile::tempdir().unwrap();
    let window = WINDOW_MS.to_string();
    let haven = start_dropin(
        "-jar DynamoDBLocal.jar -inMemory -delayTransientStatuses",
        dir.path(),
        &[("HAVEN_TRANSIENT_STATUS_MS", &window)],
    );
    let client = client(&haven.endpoint(), "AKIDLOCAL", "us-east-1");
    let (schema, definitions) = common::table_keys(&[("pk", "S")]);
    let created = client
        .create_table()
        .table_name("Slow")
        .set_key_schema(Some(schema));
    let created = created.set_attribute_definitions(Some(definitions.clone()));
    let created = created
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(created.table_description().unwrap()), "CREATING");
    assert_eq!(table_status(&client, "Slow").await, "CREATING");
    assert_eq!(
        refusals(&client, "Slow").await,
        [in_use("created", "Slow"), in_use("created", "Slow")]
    );
    // The data plane does not see a CREATING table yet, as on the service.
    let early = client
        .put_item()
        .table_name("Slow")
        .item("pk", AttributeValue::S("early".into()));
    let early = common::error_of(early.send().await);
    let not_found = (
        "ResourceNotFoundException".to_string(),
        "Requested resource not found".to_string(),
    );
    assert_eq!(early, not_found);
    let batch = client.batch_get_item().request_items(
        "Slow",
        aws_sdk_dynamodb::types::KeysAndAttributes::builder()
            .keys([("pk".to_string(), AttributeValue::S("early".into()))].into())
            .build()
            .unwrap(),
    );
    assert_eq!(common::error_of(batch.send().await), not_found);
    wait_active(&client, "Slow").await;

    // A capacity change: UPDATING for the window, the item API working throughout.
    let throughput = ProvisionedThroughput::builder()
        .read_capacity_units(5)
        .write_capacity_units(5);
    let updated = client
        .update_table()
        .table_name("Slow")
        .billing_mode(BillingMode::Provisioned);
    let updated = updated
        .provisioned_throughput(throughput.build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(updated.table_description().unwrap()), "UPDATING");
    assert_eq!(table_status(&client, "Slow").await, "UPDATING");
    assert_eq!(
        refusals(&client, "Slow").await,
        [in_use("updated", "Slow"), in_use("updated", "Slow")]
    );
    let put = client
        .put_item()
        .table_name("Slow")
        .item("pk", AttributeValue::S("a".into()));
    put.item("g", AttributeValue::S("x".into()))
        .send()
        .await
        .unwrap();
    let read = client
        .get_item()
        .table_name("Slow")
        .key("pk", AttributeValue::S("a".into()));
    assert!(read.send().await.unwrap().item.is_some());
    wait_active(&client, "Slow").await;

    // A new global index: the table UPDATING, the index CREATING (not readable) for the window.
    let started = Instant::now();
    add_index(&client, "Slow").await;
    assert_eq!(table_status(&client, "Slow").await, "UPDATING");
    assert_eq!(
        index_status(&client, "Slow").await,
        Some(("CREATING".into(), true))
    );
    let query = client.query().table_name("Slow").index_name("byG");
    let query = query.key_condition_expression("g = :g");
    let query = query.expression_attribute_values(":g", AttributeValue::S("x".into()));
    let (code, message) = common::error_of(query.clone().send().await);
    assert_eq!(
        (code.as_str(), message.as_str()),
        (
            "ValidationException",
            "Cannot read from backfilling global secondary index: byG"
        )
    );
    wait_active(&client, "Slow").await;
    common::wait_until_async("the index ACTIVE", Duration::from_secs(10), || async {
        index_status(&client, "Slow").await == Some(("ACTIVE".into(), false))
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(WINDOW_MS));
    assert_eq!(query.send().await.unwrap().count, 1);

    // Deleting it: DELETING for the window, then gone.
    let started = Instant::now();
    let delete =
        aws_sdk_dynamodb::types::DeleteGlobalSecondaryIndexAction::builder().index_name("byG");
    let update = aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder()
        .delete(delete.build().unwrap());
    let deleted = client
        .update_table()
        .table_name("Slow")
        .global_secondary_index_updates(update.build());
    deleted.send().await.unwrap();
    assert_eq!(index_status(&client, "Slow").await.unwrap().0, "DELETING");
    wait_active(&client, "Slow").await;
    common::wait_until_async("the index gone", Duration::from_secs(10), || async {
        index_status(&client, "Slow").await.is_none()
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(WINDOW_MS));
}

/// UpdateTable adding the global index `byG` on `g`.
async fn add_index(client: &aws_sdk_dynamodb::Client, table: &str) {
    use aws_sdk_dynamodb::types::{
        CreateGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate, Projection, ProjectionType,
        ProvisionedThroughput,
    };
    let (schema, definitions) = common::table_keys(&[("g", "S")]);
    let throughput = ProvisionedThroughput::builder()
        .read_capacity_units(1)
        .write_capacity_units(1);
    let create = CreateGlobalSecondaryIndexAction::builder().index_name("byG");
    let create = create
        .set_key_schema(Some(schema))
        .provisioned_throughput(throughput.build().unwrap());
    let create = create.projection(
        Projection::builder()
            .projection_type(ProjectionType::All)
            .build(),
    );
    let update = GlobalSecondaryIndexUpdate::builder()
        .create(create.build().unwrap())
        .build();
    let request = client
        .update_table()
        .table_name(table)
        .set_attribute_definitions(Some(definitions));
    let answer = request
        .global_secondary_index_updates(update)
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(answer.table_description().unwrap()), "UPDATING");
}

async fn listed(client: &aws_sdk_dynamodb::Client) -> Vec<String> {
    client
        .list_tables()
        .send()
        .await
        .unwrap()
        .table_names
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_transient_statuses_delete_as_the_service_does_and_survive_a_restart() {
    use aws_sdk_dynamodb::client::Waiters;
    use aws_sdk_dynamodb::types::BillingMode;
    let dir = tempfile::tempdir().unwrap();
    // Long enough for a restart within it.
    let window = (WINDOW_MS * 4).to_string();
    let line = "-jar DynamoDBLocal.jar -sharedDb -dbPath . -delayTransientStatuses";
    let env = [("HAVEN_TRANSIENT_STATUS_MS", window.as_str())];
    let haven = start_dropin(line, dir.path(), &env);
    let sdk = client(&haven.endpoint(), "AKIDLOCAL", "us-east-1");
    for table in ["Gone", "Kept"] {
        common::create_table(&sdk, table, &[("pk", "S")]).await;
    }
    common::wait_until_async("both ACTIVE", Duration::from_secs(10), || async {
        table_status(&sdk, "Gone").await == "ACTIVE" && table_status(&sdk, "Kept").await == "ACTIVE"
    })
    .await;
    let deleted = sdk.delete_table().table_name("Gone").send().await.unwrap();
    assert_eq!(status_of(deleted.table_description().unwrap()), "DELETING");
    let update = sdk
        .update_table()
        .table_name("Kept")
        .billing_mode(BillingMode::Provisioned);
    let throughput =
        aws_sdk_dynamodb::types::ProvisionedThroughput::builder().read_capacity_units(2);
    update
        .provisioned_throughput(throughput.write_capacity_units(2).build().unwrap())
        .send()
        .await
        .unwrap();

    // A restart keeps both statuses: they come from stored times.
    drop(haven);
    let haven = start_dropin(line, dir.path(), &env);
    let sdk = client(&haven.endpoint(), "AKIDLOCAL", "us-east-1");
    assert_eq!(table_status(&sdk, "Gone").await, "DELETING");
    assert_eq!(table_status(&sdk, "Kept").await, "UPDATING");
    assert_eq!(listed(&sdk).await, ["Gone", "Kept"]);
    let again = sdk.delete_table().table_name("Gone").send().await.unwrap();
    assert_eq!(status_of(again.table_description().unwrap()), "DELETING");
    let (schema, definitions) = common::table_keys(&[("pk", "S")]);
    let create = sdk
        .create_table()
        .table_name("Gone")
        .set_key_schema(Some(schema.clone()));
    let create = create.set_attribute_definitions(Some(definitions.clone()));
    let refused = create.billing_mode(BillingMode::PayPerRequest).send().await;
    assert_eq!(common::error_of(refused), in_use("deleted", "Gone"));

    let waited = sdk.wait_until_table_not_exists().table_name("Gone");
    waited.wait(WAITER_MAX * 2).await.expect("the table goes");
    let (code, _) = common::error_of(sdk.describe_table().table_name("Gone").send().await);
    assert_eq!(code, "ResourceNotFoundException");
    assert_eq!(listed(&sdk).await, ["Kept"]);
    let (code, _) = common::error_of(sdk.delete_table().table_name("Gone").send().await);
    assert_eq!(code, "ResourceNotFoundException");
    common::create_table(&sdk, "Gone", &[("pk", "S")]).await;
}

/// Runs `haven <args>` to completion with a time limit; returns its exit code and output.
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("haven runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn healthcheck_exits_zero_only_for_a_healthy_server() {
    let server = HavenServer::start_in_memory();
    let address = server.address.to_string();
    assert_eq!(run(&["healthcheck", "--address", &address], &[]).0, 0);
    let env = [("HAVEN_HEALTHCHECK_ADDRESS", address.as_str())];
    assert_eq!(run(&["healthcheck"], &env).0, 0);
    drop(server);
    let (code, _, stderr) = run(&["healthcheck", "--address", &address], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unhealthy"), "{stderr}");
}

#[test]
fn command_line_errors_are_clear_and_help_answers() {
    let (code, _, stderr) = run(&["-jar", "DynamoDBLocal.jar", "-inMemory", "-bogus"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("Unrecognized option: -bogus"), "{stderr}");
    let (code, _, stderr) = run(&["-inMemory", "-dbPath", "/tmp"], &[]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr.trim(),
        "dbPath and inMemory cannot be set at the same time."
    );
    let (code, _, stderr) = run(&["-jar", "DynamoDBLocal.jar", "-port", "0"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("Invalid Port"), "{stderr}");
    let (code, stdout, _) = run(&["-jar", "DynamoDBLocal.jar", "-help"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("-delayTransientStatuses"), "{stdout}");
}

/// The Dockerfile's instructions, continuation lines joined.
fn dockerfile() -> Vec<String> {
    let path = common::dynamodb_local::repo_root().join("docker/Dockerfile");
    let text = std::fs::read_to_string(path).unwrap();
    text.replace("\\\n", " ")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The JSON array that ends the Dockerfile instruction starting with `prefix`.
fn exec_form(prefix: &str) -> Vec<String> {
    let lines = dockerfile();
    let line = lines
        .iter()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in docker/Dockerfile"));
    let array = &line[line.rfind(" [").expect("exec form") + 1..];
    serde_json::from_str(array).unwrap()
}

/// The Dockerfile's entry point, default command and health check run as the image would run
/// them, without a container engine: the binary with the Dockerfile's arguments in a folder laid
/// out like the image's working folder; then the compose example's command. (The image itself is
/// built FROM scratch and run with podman by scripts/image-test.sh.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_images_entry_point_command_and_health_check_work() {
    let entry = exec_form("ENTRYPOINT");
    assert_eq!(entry, ["/usr/local/bin/haven"]);
    let compose = common::dynamodb_local::repo_root().join("docker/docker-compose.yml");
    let compose = std::fs::read_to_string(compose).unwrap();
    let compose_command = compose
        .lines()
        .find_map(|line| line.trim().strip_prefix("command: \"-jar"))
        .map(|rest| format!("-jar{}", rest.trim_end_matches('"')))
        .expect("the compose example's command");
    for command in [exec_form("CMD").join(" "), compose_command] {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join("data")).unwrap();
        let server = start_dropin(&command, home.path(), &[]);
        let client = client(&server.endpoint(), "DUMMYIDEXAMPLE", "us-west-2");
        use_a_table(&client, "Music").await;
        let check = exec_form("HEALTHCHECK");
        assert_eq!(check[0], entry[0]);
        let address = server.address.to_string();
        let env = [("HAVEN_HEALTHCHECK_ADDRESS", address.as_str())];
        assert_eq!(
            run(
                &check[1..].iter().map(String::as_str).collect::<Vec<_>>(),
                &env
            )
            .0,
            0
        );
        let written = std::fs::read_dir(home.path().join("data")).unwrap().count();
        assert_eq!(written > 0, command.contains("-dbPath ./data"), "{command}");
    }
}
