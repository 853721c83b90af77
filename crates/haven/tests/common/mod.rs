//! Test support: starts a real `haven serve` child process on a free loopback port and builds
//! clients for it. The child is killed when the handle drops.
//!
//! The same tests run on either engine: with `HAVEN_TEST_STORAGE=postgres` every server keeps its
//! data in PostgreSQL instead (a real server per test process, started by
//! `haven_storage_postgres::testing`, and a database per Haven server; a server restarted on the
//! same `--data-dir` finds the same database). `scripts/test.sh` runs the engine-agnostic test
//! files a second time that way.
#![allow(dead_code)]

pub mod authority;
pub mod chaos;
pub mod dns;
pub mod dynamodb_local;
pub mod moto;
pub mod regions;
pub mod streams;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use haven_storage_postgres::testing::TestPostgres;

/// A running Haven server.
pub struct HavenServer {
    pub child: Child,
    pub address: SocketAddr,
}

impl HavenServer {
    /// An in-memory server.
    pub fn start_in_memory() -> HavenServer {
        HavenServer::start_with(&["--in-memory"])
    }

    /// A durable server on `data_dir`.
    pub fn start_on_disk(data_dir: &Path) -> HavenServer {
        HavenServer::start_with(&["--data-dir", data_dir.to_str().unwrap()])
    }

    /// An in-memory server with `--auth --credentials <credentials>`.
    pub fn start_with_auth(credentials: &Path) -> HavenServer {
        HavenServer::start_with(&[
            "--in-memory",
            "--auth",
            "--credentials",
            credentials.to_str().unwrap(),
        ])
    }

    /// Starts `haven serve --listen 127.0.0.1:0 <args>` and waits for its "listening" line.
    pub fn start_with(args: &[&str]) -> HavenServer {
        HavenServer::start_on("127.0.0.1:0", args)
    }

    /// Starts `haven serve --listen <listen> <args>` and waits for its "listening" line.
    pub fn start_on(listen: &str, args: &[&str]) -> HavenServer {
        HavenServer::start_with_env(listen, args, &[])
    }

    /// [`HavenServer::start_on`] with environment variables added to the child's.
    pub fn start_with_env(listen: &str, args: &[&str], env: &[(&str, &str)]) -> HavenServer {
        HavenServer::spawn(
            Command::new(env!("CARGO_BIN_EXE_haven"))
                .args(["serve", "--listen", listen, "--log-level", "warn"])
                .args(storage_args(args))
                .envs(env.iter().copied())
                .stderr(Stdio::inherit()),
        )
    }

    /// Starts `command` (a `haven` command line that serves) and waits for its "listening" line.
    pub fn spawn(command: &mut Command) -> HavenServer {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("haven starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("haven prints its address");
        let address = line
            .trim()
            .rsplit("://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from haven: {line:?}"));
        HavenServer { child, address }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// An AWS SDK client for this server (dummy credentials, us-east-1).
    pub fn client(&self) -> aws_sdk_dynamodb::Client {
        sdk_client(&self.endpoint())
    }

    /// [`HavenServer::client`] without retries, so that each request's own answer is seen (a
    /// throttle, a failure, or exactly one acknowledgement per write).
    pub fn client_without_retries(&self) -> aws_sdk_dynamodb::Client {
        let config = self
            .client()
            .config()
            .to_builder()
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// A DynamoDB Streams client for this server (the same endpoint; dummy credentials).
    pub fn streams_client(&self) -> aws_sdk_dynamodbstreams::Client {
        let credentials = aws_sdk_dynamodbstreams::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "tests",
        );
        let config = aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .credentials_provider(credentials)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_dynamodbstreams::Client::from_conf(config)
    }

    /// Sends SIGTERM (through the `kill` command).
    pub fn send_sigterm(&self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the server to exit, for at most `within`; returns its status and how long it took.
    pub fn wait_exit(
        &mut self,
        within: std::time::Duration,
    ) -> (std::process::ExitStatus, std::time::Duration) {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait on haven") {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < within,
                "haven did not exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HavenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `args` for the engine this test process runs on (`HAVEN_TEST_STORAGE`, see the module docs):
/// on PostgreSQL, `--in-memory` becomes a fresh database and `--data-dir DIR` gains the database
/// that belongs to DIR.
pub fn storage_args(args: &[&str]) -> Vec<String> {
    let owned = || args.iter().map(|arg| arg.to_string()).collect();
    match std::env::var("HAVEN_TEST_STORAGE").as_deref() {
        Err(_) | Ok("embedded") => owned(),
        Ok("postgres") => postgres_args(args),
        Ok(other) => panic!("HAVEN_TEST_STORAGE={other}: expected embedded or postgres"),
    }
}

/// Whether this test process runs its servers on PostgreSQL (`HAVEN_TEST_STORAGE=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("HAVEN_TEST_STORAGE").as_deref() == Ok("postgres")
}

fn postgres_args(args: &[&str]) -> Vec<String> {
    static DATABASES: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);
    let mut out = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match *arg {
            "--in-memory" => {
                out.extend(["--storage".into(), TestPostgres::shared().fresh_database()])
            }
            "--data-dir" => {
                let dir = args.next().expect("--data-dir DIR").to_string();
                let mut databases = DATABASES.lock().unwrap();
                let url = databases
                    .get_or_insert_with(HashMap::new)
                    .entry(dir.clone())
                    .or_insert_with(|| TestPostgres::shared().fresh_database())
                    .clone();
                out.extend(["--data-dir".into(), dir, "--storage".into(), url]);
            }
            other => out.push(other.to_string()),
        }
    }
    out
}

/// An AWS SDK for Rust DynamoDB client for any endpoint, over plain HTTP.
pub fn sdk_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    sdk_client_with_key(endpoint, "AKIDTEST", "secret")
}

/// `sdk_client` signing with the given access key id and secret.
pub fn sdk_client_with_key(endpoint: &str, key_id: &str, secret: &str) -> aws_sdk_dynamodb::Client {
    let credentials =
        aws_sdk_dynamodb::config::Credentials::new(key_id, secret, None, None, "tests");
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// The AWS error code and message of a failed SDK call, e.g.
/// `("ValidationException", "1 validation error detected: ...")`. Panics if the call succeeded.
pub fn error_of<T: std::fmt::Debug, E, R>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
) -> (String, String)
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    let error = result.expect_err("the call should fail");
    let code = error
        .code()
        .unwrap_or_else(|| panic!("not a service error: {error:?}"));
    (
        code.to_string(),
        error.message().unwrap_or_default().to_string(),
    )
}

/// Key schema and attribute definitions for a table keyed by `hash` (and `range`), all strings
/// unless a type is given: `table_keys(&[("pk", "S"), ("sk", "N")])`.
pub fn table_keys(
    keys: &[(&str, &str)],
) -> (
    Vec<aws_sdk_dynamodb::types::KeySchemaElement>,
    Vec<aws_sdk_dynamodb::types::AttributeDefinition>,
) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let mut schema = Vec::new();
    let mut definitions = Vec::new();
    for (i, (name, kind)) in keys.iter().enumerate() {
        schema.push(
            KeySchemaElement::builder()
                .attribute_name(*name)
                .key_type(if i == 0 {
                    KeyType::Hash
                } else {
                    KeyType::Range
                })
                .build()
                .unwrap(),
        );
        definitions.push(
            AttributeDefinition::builder()
                .attribute_name(*name)
                .attribute_type(ScalarAttributeType::from(*kind))
                .build()
                .unwrap(),
        );
    }
    (schema, definitions)
}

/// Creates an on-demand table with the given keys (see `table_keys`) and panics on failure.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str, keys: &[(&str, &str)]) {
    let (schema, definitions) = table_keys(keys);
    client
        .create_table()
        .table_name(name)
        .set_key_schema(Some(schema))
        .set_attribute_definitions(Some(definitions))
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTable {name}: {e:?}"));
}

/// Creates an on-demand table keyed by `keys` (see `table_keys`) with global indexes `globals`
/// (name, string partition key attribute) and local indexes `locals` (name, string sort key
/// attribute), every index projecting ALL; panics on failure.
pub async fn create_table_with_indexes(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    keys: &[(&str, &str)],
    globals: &[(&str, &str)],
    locals: &[(&str, &str)],
) {
    use aws_sdk_dynamodb::types::{
        GlobalSecondaryIndex, KeyType, LocalSecondaryIndex, Projection, ProjectionType,
    };
    let index_attributes = globals.iter().chain(locals).map(|(_, a)| (*a, "S"));
    let (schema, mut definitions) = table_keys(keys);
    let (_, more) = table_keys(&index_attributes.collect::<Vec<_>>());
    for definition in more {
        if !definitions.contains(&definition) {
            definitions.push(definition);
        }
    }
    let key = |attribute: &str, key_type: KeyType| {
        aws_sdk_dynamodb::types::KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(key_type)
            .build()
            .unwrap()
    };
    let all = || {
        Projection::builder()
            .projection_type(ProjectionType::All)
            .build()
    };
    let globals = globals.iter().map(|(index, attribute)| {
        GlobalSecondaryIndex::builder()
            .index_name(*index)
            .key_schema(key(attribute, KeyType::Hash))
            .projection(all())
            .build()
            .unwrap()
    });
    let locals = locals.iter().map(|(index, attribute)| {
        LocalSecondaryIndex::builder()
            .index_name(*index)
            .key_schema(schema[0].clone())
            .key_schema(key(attribute, KeyType::Range))
            .projection(all())
            .build()
            .unwrap()
    });
    client
        .create_table()
        .table_name(name)
        .set_key_schema(Some(schema.clone()))
        .set_attribute_definitions(Some(definitions))
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .set_global_secondary_indexes(Some(globals.collect()).filter(|g: &Vec<_>| !g.is_empty()))
        .set_local_secondary_indexes(Some(locals.collect()).filter(|l: &Vec<_>| !l.is_empty()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTable {name}: {e:?}"));
}

/// Turns point-in-time recovery on for `table` (default recovery period) and panics on failure.
pub async fn enable_pitr(client: &aws_sdk_dynamodb::Client, table: &str) {
    let spec = aws_sdk_dynamodb::types::PointInTimeRecoverySpecification::builder()
        .point_in_time_recovery_enabled(true)
        .build()
        .unwrap();
    client
        .update_continuous_backups()
        .table_name(table)
        .point_in_time_recovery_specification(spec)
        .send()
        .await
        .unwrap_or_else(|e| panic!("UpdateContinuousBackups {table}: {e:?}"));
}

/// An Authorization header of the right form with a dummy signature: what a server without
/// `--auth` accepts.
pub const DUMMY_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 \
    Credential=AKIDTEST/20240101/us-east-1/dynamodb/aws4_request, \
    SignedHeaders=host;x-amz-date, Signature=0";

/// The head of a raw HTTP request for `operation` (with the dummy authorization), followed by
/// `extra`: more header lines, then the blank line and the body.
pub fn raw_request_head(operation: &str, extra: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: haven\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: DynamoDB_20120810.{operation}\r\nX-Amz-Date: 20240101T000000Z\r\n\
         Authorization: {DUMMY_AUTHORIZATION}\r\n{extra}"
    )
}

/// A raw request whose body the test withholds, so that the server is busy by construction rather
/// than by racing clients against its speed.
///
/// The head carries `Expect: 100-continue`, and the server answers `100 Continue` only once it has
/// read the head and begun reading the body; so once [`HeldRequest::open`] returns, the request is
/// in progress on its connection and holds its room in the server (an intake grant, see
/// `crates/server/src/intake.rs`), without an execution slot, until [`HeldRequest::finish`] sends
/// the body (or the request is dropped, closing the connection).
pub struct HeldRequest {
    stream: std::net::TcpStream,
    body: String,
}

impl HeldRequest {
    /// Sends the head of `operation` with a `body` to come, and waits until the server reads it.
    pub fn open(address: SocketAddr, operation: &str, body: &str) -> HeldRequest {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let extra = format!(
            "Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream
            .write_all(raw_request_head(operation, &extra).as_bytes())
            .unwrap();
        let (status, _) = read_response(&mut stream);
        assert_eq!(status, 100, "the server did not begin reading the request");
        HeldRequest {
            stream,
            body: body.to_string(),
        }
    }

    /// The connection, body still withheld.
    pub fn into_stream(self) -> std::net::TcpStream {
        self.stream
    }

    /// Sends the body and returns the answer: status and body.
    pub fn finish(mut self) -> (u16, Vec<u8>) {
        use std::io::Write;
        self.stream.write_all(self.body.as_bytes()).unwrap();
        read_response(&mut self.stream)
    }
}

/// Waits until `done()` holds, polling every 10 ms, for at most `within`; panics naming `what`
/// after that. Tests wait for what they need (so many writes acknowledged, a server ready) rather
/// than sleeping a fixed time and hoping the machine was fast enough.
pub async fn wait_until(what: &str, within: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// [`wait_until`] for a condition that needs requests: polls `done()` every 50 ms for at most
/// `within`.
pub async fn wait_until_async<F: std::future::Future<Output = bool>>(
    what: &str,
    within: std::time::Duration,
    mut done: impl FnMut() -> F,
) {
    let deadline = std::time::Instant::now() + within;
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Sends SIGTERM and waits (up to 10 s) for the server to exit; returns the exit status.
pub fn terminate(mut server: HavenServer) -> std::process::ExitStatus {
    server.send_sigterm();
    server.wait_exit(std::time::Duration::from_secs(10)).0
}

/// Runs `haven keys <args> --credentials <file>` and returns its standard output.
pub fn haven_keys(file: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_haven"))
        .arg("keys")
        .args(args)
        .args(["--credentials", file.to_str().unwrap()])
        .output()
        .expect("haven keys runs");
    assert!(
        output.status.success(),
        "haven keys {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `haven keys create`: (access key id, secret).
pub fn create_key(file: &Path, name: &str) -> (String, String) {
    create_key_with(file, &["--name", name])
}

/// `haven keys create <args>`: (access key id, secret).
pub fn create_key_with(file: &Path, args: &[&str]) -> (String, String) {
    let out = haven_keys(file, &[&["create"], args].concat());
    let field = |label: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} in {out:?}"))
            .to_string()
    };
    (
        field("aws_access_key_id = "),
        field("aws_secret_access_key = "),
    )
}

/// The head of a `POST` of `operation` as a forger would send it: dated now, scoped to the right
/// region and service, naming the access key `key_id`, with a signature that cannot verify; it
/// declares `content_length` bytes of body and ends with the `extra` header lines and the blank line.
pub fn forged_request_head(
    operation: &str,
    key_id: &str,
    content_length: usize,
    extra: &str,
) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let date = haven_server::sigv4::format_amz_date(now);
    format!(
        "POST / HTTP/1.1\r\nHost: haven\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: DynamoDB_20120810.{operation}\r\nX-Amz-Date: {date}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={key_id}/{}/us-east-1/dynamodb/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature={}\r\nContent-Length: {content_length}\r\n{extra}\r\n",
        &date[..8],
        "0".repeat(64)
    )
}

/// Reads one HTTP/1.1 response that has a Content-Length: its status and body.
pub fn read_response(stream: &mut impl std::io::Read) -> (u16, Vec<u8>) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut buffer).expect("the answer arrives");
        assert!(read > 0, "closed before a whole head: {received:?}");
        received.extend_from_slice(&buffer[..read]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_lowercase();
    let status = head[9..12].parse().expect("a status code");
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |value| value.trim().parse().unwrap());
    let mut body = received.split_off(head_end);
    while body.len() < length {
        let read = stream.read(&mut buffer).expect("the body arrives");
        assert!(read > 0, "closed mid-body");
        body.extend_from_slice(&buffer[..read]);
    }
    (status, body)
}

/// Every item of `table`, by a consistent Scan of every page (the SDK's paginator).
pub async fn scan_items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap_or_else(|error| panic!("scan of {table}: {error:?}"))
}

/// The `__type` of an error body, without its namespace.
pub fn error_type(body: &[u8]) -> String {
    let body: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)));
    let name = body["__type"].as_str().unwrap_or_default();
    name.rsplit('#').next().unwrap_or_default().to_string()
}
