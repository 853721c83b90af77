//! Overload, hostile clients and concurrent read-modify-write (issue 9).
//!
//! Why: a database must stay useful when it is offered more than it can do or is attacked by slow
//! and idle clients: it sheds load with fast ThrottlingExceptions, closes connections that hold
//! resources without using them, refuses oversized and absurdly nested bodies cheaply, and never
//! loses an update when many clients modify the same item at once.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use common::{DUMMY_AUTHORIZATION, HavenServer, create_table, raw_request_head};

/// True once the server has closed `stream` (EOF or reset), polling for up to `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + within;
    let mut buffer = [0u8; 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// True unless the server has closed `stream` (checked without waiting).
fn still_open(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let open =
        matches!(stream.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    open
}

/// Idle connections the test holds open beside a normal client.
const IDLE_CONNECTIONS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_and_10_000_idle_connections_do_not_stop_a_normal_client() {
    // Each connection is a file descriptor here and in the server (which raises its own limit).
    let files = haven_server::raise_open_file_limit().unwrap();
    assert!(
        files > IDLE_CONNECTIONS as u64 + 200,
        "this test needs an open-file hard limit above {} (ulimit -Hn is {files})",
        IDLE_CONNECTIONS + 200
    );
    let server = HavenServer::start_with(&[
        "--in-memory",
        "--header-timeout-secs",
        "4",
        "--idle-timeout-secs",
        "10",
        "--max-connections",
        "15000",
    ]);
    let address = server.address;
    let test_started = Instant::now();

    // Connections that never send anything.
    let mut idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .map(|_| TcpStream::connect(address).expect("connect"))
        .collect();
    let connected_after = test_started.elapsed();

    // A slow-loris client: a request head sent one byte per second.
    let loris = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let head =
            b"POST / HTTP/1.1\r\nHost: haven\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\n";
        let started = Instant::now();
        for byte in head {
            if stream.write_all(&[*byte]).is_err() {
                return started.elapsed();
            }
            let mut buffer = [0u8; 256];
            match stream.read(&mut buffer) {
                Ok(0) => return started.elapsed(),
                Ok(_) => return started.elapsed(), // an error response, then close
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return started.elapsed(),
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        Duration::MAX
    });

    // A normal SDK client is served promptly meanwhile.
    let client = server.client();
    let started = Instant::now();
    create_table(&client, "Normal", &[("pk", "S")]).await;
    for i in 0..20 {
        client
            .put_item()
            .table_name("Normal")
            .item("pk", AttributeValue::S(format!("k{i}")))
            .send()
            .await
            .unwrap();
    }
    let got = client
        .get_item()
        .table_name("Normal")
        .key("pk", AttributeValue::S("k7".into()))
        .send()
        .await
        .unwrap();
    assert!(got.item.is_some());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a normal client took {:?} beside {IDLE_CONNECTIONS} idle connections and a slow loris",
        started.elapsed()
    );
    // ...while the idle connections were all held open (they are closed by the 10 s idle timeout).
    if test_started.elapsed() < Duration::from_millis(9500) {
        let open = idle.iter().filter(|stream| still_open(stream)).count();
        assert_eq!(open, IDLE_CONNECTIONS, "idle connections were closed early");
    }

    // The slow loris is cut off by the header timeout (4 s), long before its head is complete.
    let cut_after = tokio::task::spawn_blocking(move || loris.join().unwrap())
        .await
        .unwrap();
    assert!(
        cut_after < Duration::from_secs(8),
        "the slow-loris connection was held for {cut_after:?}"
    );

    // The idle connections are closed by the idle timer (10 s).
    let remaining =
        (connected_after + Duration::from_secs(14)).saturating_sub(test_started.elapsed());
    let first_closed = tokio::task::spawn_blocking(move || {
        let closed = closed_within(&mut idle[0], remaining.max(Duration::from_secs(2)));
        (closed, idle)
    })
    .await
    .unwrap();
    assert!(first_closed.0, "an idle connection was kept open");
}

/// Writes a raw DynamoDB request for `operation` with `body` on `stream` (signed with a dummy
/// signature, which a server without --auth accepts).
fn send_raw(stream: &mut TcpStream, operation: &str, body: &str) {
    let length = format!("Content-Length: {}\r\n\r\n", body.len());
    let request = raw_request_head(operation, &length) + body;
    stream.write_all(request.as_bytes()).unwrap();
}

/// Reads from `stream` until `expected` has arrived and returns what was read (panics if the
/// connection closes first).
fn read_until(stream: &mut TcpStream, expected: &[u8]) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !answer.windows(expected.len()).any(|w| w == expected) {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => panic!("no answer: {:?}", String::from_utf8_lossy(&answer)),
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    answer
}

/// Sends a raw ListTables on `stream` and returns once its answer has arrived.
fn list_tables_on(stream: &mut TcpStream) {
    send_raw(stream, "ListTables", "{}");
    read_until(stream, b"TableNames");
}

#[test]
fn a_kept_alive_connection_outlives_the_header_timeout_and_closes_at_the_idle_timeout() {
    let server = HavenServer::start_with(&[
        "--in-memory",
        "--header-timeout-secs",
        "1",
        "--idle-timeout-secs",
        "3",
    ]);
    let mut stream = TcpStream::connect(server.address).unwrap();
    list_tables_on(&mut stream);
    // Waiting for its next request is not receiving a head: the 1 s header timeout does not apply.
    std::thread::sleep(Duration::from_secs(2));
    assert!(still_open(&stream), "closed before the idle timeout");
    list_tables_on(&mut stream);
    let answered = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(6)));
    let closed_after = answered.elapsed();
    assert!(
        closed_after > Duration::from_millis(2500) && closed_after < Duration::from_secs(5),
        "closed {closed_after:?} after its last answer, not at the 3 s idle timeout"
    );
}

#[test]
fn a_17_mb_body_is_refused_with_413_before_it_is_read() {
    let server = HavenServer::start_in_memory();
    let mut stream = TcpStream::connect(server.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let length = 17 * 1024 * 1024;
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: haven\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: DynamoDB_20120810.PutItem\r\nContent-Length: {length}\r\n\r\n"
    )
    .unwrap();
    // Only the first 64 KB are sent; the answer must not wait for the rest.
    stream.write_all(&vec![b' '; 64 * 1024]).unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "unexpected answer: {answer:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Creates table "Busy" with 800 items of 1 KB, so that every Scan page takes a while.
async fn fill_busy_table(server: &HavenServer) {
    let client = server.client();
    create_table(&client, "Busy", &[("pk", "S")]).await;
    let filler = "x".repeat(1000);
    for batch in 0..32 {
        let requests = (0..25)
            .map(|i| {
                let put = aws_sdk_dynamodb::types::PutRequest::builder()
                    .item("pk", AttributeValue::S(format!("item{batch}-{i}")))
                    .item("data", AttributeValue::S(filler.clone()))
                    .build()
                    .unwrap();
                aws_sdk_dynamodb::types::WriteRequest::builder()
                    .put_request(put)
                    .build()
            })
            .collect();
        client
            .batch_write_item()
            .request_items("Busy", requests)
            .send()
            .await
            .unwrap();
    }
}

/// How one of [`concurrent_scans`] was answered, and how long it took.
struct ScanAnswer {
    throttled: bool,
    took: Duration,
}

/// Sends `count` Scans of "Busy" at once, each on its own connection. Each is served or refused
/// with DynamoDB's ThrottlingException (anything else, or no answer, fails the test).
async fn concurrent_scans(server: &HavenServer, count: usize) -> Vec<ScanAnswer> {
    let client = server.client_without_retries();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..count {
        let client = client.clone();
        requests.spawn(async move {
            let started = Instant::now();
            let answer = tokio::time::timeout(
                Duration::from_secs(30),
                client.scan().table_name("Busy").send(),
            )
            .await
            .expect("every request is answered, none times out");
            (answer, started.elapsed())
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = requests.join_next().await {
        let (answer, took) = joined.unwrap();
        let throttled = match answer {
            Ok(page) => {
                assert!(page.count > 0);
                false
            }
            Err(error) => {
                use aws_sdk_dynamodb::error::ProvideErrorMetadata;
                assert_eq!(error.code(), Some("ThrottlingException"), "{error:?}");
                assert_eq!(
                    error.message(),
                    Some("Rate of requests exceeds the allowed throughput.")
                );
                true
            }
        };
        answers.push(ScanAnswer { throttled, took });
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_room_requests_wait_unread_and_only_a_share_are_refused() {
    // Room for two requests (one executing, one waiting for the slot). The one waiting waits for
    // one Scan, far less than the 200 ms queue timeout, so refusals come only from intake, once
    // the line of waiting connections is 200 ms old.
    let server = HavenServer::start_with(&[
        "--in-memory",
        "--max-in-flight",
        "1",
        "--queue-timeout-ms",
        "200",
    ]);
    fill_busy_table(&server).await;
    let answers = concurrent_scans(&server, 64).await;
    let throttled = answers.iter().filter(|answer| answer.throttled).count();
    let served = answers.len() - throttled;
    // Refusals are earned, one per 4 served requests (up to 8 saved up before the line formed):
    // the other requests waited unread, and were served in turn.
    assert!(throttled >= 1, "nothing was refused ({served} served)");
    assert!(
        throttled <= served / 4 + 8,
        "{throttled} refused for {served} served: the excess was read only to be refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_client_has_gone_is_dropped_unexecuted() {
    let server = HavenServer::start_with(&[
        "--in-memory",
        "--max-in-flight",
        "1",
        "--queue-timeout-ms",
        "60000",
    ]);
    fill_busy_table(&server).await;
    let address = server.address;
    let put = |key: &str| format!(r#"{{"TableName":"Busy","Item":{{"pk":{{"S":"{key}"}}}}}}"#);
    let (abandoned, answered) = (put("abandoned"), put("answered"));
    // Scans fill the server's room and wait in line, then the PutItems join the line, then more
    // Scans. With a 60 s queue timeout nothing is refused: the line is never that old.
    let puts = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        tokio::task::spawn_blocking(move || {
            let mut gone = TcpStream::connect(address).unwrap();
            send_raw(&mut gone, "PutItem", &abandoned);
            drop(gone); // The client gives up at once.
            let mut waiting = TcpStream::connect(address).unwrap();
            send_raw(&mut waiting, "PutItem", &answered);
            read_until(&mut waiting, b"\r\n\r\n")
        })
        .await
        .unwrap()
    };
    let later_scans = async {
        tokio::time::sleep(Duration::from_millis(40)).await;
        concurrent_scans(&server, 24).await
    };
    let (first, answered_head, later) =
        tokio::join!(concurrent_scans(&server, 10), puts, later_scans);
    assert_eq!(first.len() + later.len(), 34);
    let client = server.client();
    let present = |key: &'static str| {
        let client = client.clone();
        async move {
            client
                .get_item()
                .table_name("Busy")
                .key("pk", AttributeValue::S(key.into()))
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
                .is_some()
        }
    };
    assert!(
        !present("abandoned").await,
        "a request whose client had gone was executed"
    );
    // The same request from a client that waited for its answer is served.
    assert!(
        answered_head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answered_head)
    );
    assert!(present("answered").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_in_flight_requests_are_throttled_at_once_and_all_answered() {
    let server = HavenServer::start_with(&["--in-memory", "--max-in-flight", "1"]);
    fill_busy_table(&server).await;
    let answers = concurrent_scans(&server, 64).await;
    for refusal in answers.iter().filter(|answer| answer.throttled) {
        // Refused at once or after the 50 ms queue wait, not after the work ahead of it.
        assert!(
            refusal.took < Duration::from_secs(2),
            "a refusal took {:?}",
            refusal.took
        );
    }
    let throttled = answers.iter().filter(|answer| answer.throttled).count();
    let served = answers.len() - throttled;
    assert_eq!(served + throttled, 64);
    assert!(served > 0, "nothing was served");
    assert!(
        throttled > 0,
        "nothing was throttled with --max-in-flight 1"
    );

    // The raw answer: HTTP 400 with the availability namespace.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    // Scans run back to back meanwhile, so the single slot is (nearly) always taken.
    let client = server.client_without_retries();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let blockers: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = client.scan().table_name("Busy").send().await;
                }
            })
        })
        .collect();
    let endpoint = server.endpoint();
    let raw = tokio::task::spawn_blocking(move || {
        let mut seen = None;
        for _ in 0..50 {
            let mut response = agent
                .post(&endpoint)
                .header("Content-Type", "application/x-amz-json-1.0")
                .header("X-Amz-Target", "DynamoDB_20120810.Scan")
                .header("X-Amz-Date", "20240101T000000Z")
                .header("Authorization", DUMMY_AUTHORIZATION)
                .send(r#"{"TableName":"Busy"}"#)
                .unwrap();
            if response.status().as_u16() != 200 {
                let body: serde_json::Value = response.body_mut().read_json().unwrap();
                seen = Some((response.status().as_u16(), body));
                break;
            }
        }
        seen
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for blocker in blockers {
        blocker.await.unwrap();
    }
    let (status, body) = raw.expect("a raw request was throttled");
    assert_eq!(status, 400);
    assert_eq!(
        body["__type"],
        "com.amazon.coral.availability#ThrottlingException"
    );
    assert_eq!(
        body["message"],
        "Rate of requests exceeds the allowed throughput."
    );
}

#[test]
fn at_the_connection_cap_idle_connections_make_room_and_busy_ones_do_not() {
    let server = HavenServer::start_with(&["--in-memory", "--max-connections", "10"]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let health = format!("{}/health", server.endpoint());

    // 10 idle connections fill the cap; a new client is still served, and idle ones are closed.
    let mut idle: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(server.address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let response = agent.get(&health).call();
    assert_eq!(response.unwrap().status().as_u16(), 200);
    assert!(closed_within(&mut idle[0], Duration::from_secs(2)));
    drop(idle);
    drop(agent);
    std::thread::sleep(Duration::from_millis(200));

    // 10 connections each in the middle of a request (a body that never comes) are not shed:
    // the 11th connection is closed at once.
    let busy: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut stream = TcpStream::connect(server.address).unwrap();
            stream
                .write_all(
                    b"POST / HTTP/1.1\r\nHost: haven\r\nContent-Type: application/x-amz-json-1.0\r\n\
                      X-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 100\r\n\r\n{",
                )
                .unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let mut extra = TcpStream::connect(server.address).unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut extra, Duration::from_secs(2)),
        "the 11th connection was kept"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(busy);
}

#[test]
fn a_100_000_deep_json_body_is_a_serialization_error() {
    let server = HavenServer::start_in_memory();
    let body = "[".repeat(100_000);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(server.endpoint())
        .header("Content-Type", "application/x-amz-json-1.0")
        .header("X-Amz-Target", "DynamoDB_20120810.PutItem")
        .send(body)
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let answer: serde_json::Value = response.body_mut().read_json().unwrap();
    assert_eq!(
        answer["__type"],
        "com.amazon.coral.service#SerializationException"
    );
    // The server is still up.
    let response = agent.get(format!("{}/health", server.endpoint())).call();
    assert_eq!(response.unwrap().status().as_u16(), 200);
}

/// 8 clients each send 400 updates of the same item; returns the item afterwards.
async fn hammer(
    server: &HavenServer,
    table: &str,
    expression: &'static str,
    operand: AttributeValue,
) -> std::collections::HashMap<String, AttributeValue> {
    let setup = server.client();
    create_table(&setup, table, &[("pk", "S")]).await;
    setup
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S("hot".into()))
        .item("n", AttributeValue::N("0".into()))
        .item("l", AttributeValue::L(Vec::new()))
        .send()
        .await
        .unwrap();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..8 {
        // A client each: separate connections, as separate processes would have.
        let client = server.client();
        let table = table.to_string();
        let operand = operand.clone();
        clients.spawn(async move {
            for _ in 0..400 {
                client
                    .update_item()
                    .table_name(&table)
                    .key("pk", AttributeValue::S("hot".into()))
                    .update_expression(expression)
                    .expression_attribute_values(":one", operand.clone())
                    .send()
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    setup
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S("hot".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_read_modify_writes_are_isolated() {
    let server = HavenServer::start_in_memory();
    let one = AttributeValue::N("1".into());

    let item = hammer(&server, "Add", "ADD n :one", one.clone()).await;
    assert_eq!(item["n"], AttributeValue::N("3200".into()));

    let item = hammer(&server, "SetPlus", "SET n = n + :one", one.clone()).await;
    assert_eq!(item["n"], AttributeValue::N("3200".into()));

    let item = hammer(
        &server,
        "Append",
        "SET l = list_append(l, :one)",
        AttributeValue::L(vec![one]),
    )
    .await;
    assert_eq!(item["l"].as_l().unwrap().len(), 3200);
}
