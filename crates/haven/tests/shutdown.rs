//! Graceful shutdown on SIGTERM (issue 9): the server stops accepting connections at once, lets
//! the requests it is serving finish (their clients get their answers), flushes the engine and
//! exits 0 within `--shutdown-timeout-secs`; every write it acknowledged is there after a restart.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use common::{HavenServer, HeldRequest, create_table, wait_until};

/// Writes acknowledged before the signal, at least, however slow the machine.
const MIN_ACKNOWLEDGED: usize = 9;
/// How long the test waits for anything before it gives up.
const PATIENCE: Duration = Duration::from_secs(60);

/// The body of a PutItem of `pk` in `table`.
fn put_item_body(table: &str, pk: &str) -> String {
    format!(r#"{{"TableName":"{table}","Item":{{"pk":{{"S":"{pk}"}}}}}}"#)
}

/// Writers that put distinct items until the first failure, counting acknowledgements in
/// `acknowledged`; each returns the keys acknowledged.
fn start_writers(
    server: &HavenServer,
    writers: usize,
    acknowledged: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    (0..writers)
        .map(|writer| {
            let client = server.client_without_retries();
            let count = acknowledged.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0.. {
                    let pk = format!("w{writer}-{i}");
                    let put = client
                        .put_item()
                        .table_name("Shutdown")
                        .item("pk", AttributeValue::S(pk.clone()))
                        .send()
                        .await;
                    match put {
                        Ok(_) => {
                            acknowledged.push(pk);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        // After the signal: the connection is closed or refused, never an error
                        // answer from the server.
                        Err(SdkError::DispatchFailure(_) | SdkError::ResponseError(_)) => break,
                        Err(other) => panic!("{pk}: {other:?}"),
                    }
                }
                acknowledged
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_write_load_finishes_in_flight_requests_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let mut server =
        HavenServer::start_with(&["--data-dir", data_dir, "--shutdown-timeout-secs", "20"]);
    create_table(&server.client(), "Shutdown", &[("pk", "S")]).await;

    // A request in flight: its head has arrived, its body has not.
    let in_flight = HeldRequest::open(
        server.address,
        "PutItem",
        &put_item_body("Shutdown", "in-flight"),
    );

    let counted = Arc::new(AtomicUsize::new(0));
    let writers = start_writers(&server, 8, &counted);
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_until("writes acknowledged before SIGTERM", PATIENCE, || {
        counted.load(Ordering::Relaxed) >= MIN_ACKNOWLEDGED
    })
    .await;
    server.send_sigterm();

    // No new connection is accepted (once the signal has been handled)...
    let address = server.address;
    wait_until("connections refused after SIGTERM", PATIENCE, || {
        TcpStream::connect(address).is_err()
    })
    .await;
    // ...but the request in flight is served to the end.
    let (status, body) = tokio::task::spawn_blocking(move || in_flight.finish())
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let (status, _) = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(20)));
    assert!(status.success(), "haven exited with {status}");
    let mut acknowledged: BTreeSet<String> = BTreeSet::from(["in-flight".to_string()]);
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert!(acknowledged.len() > MIN_ACKNOWLEDGED);

    // Every acknowledged write survived.
    let server = HavenServer::start_on_disk(dir.path());
    let stored: BTreeSet<String> = server
        .client()
        .scan()
        .table_name("Shutdown")
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
        .into_iter()
        .map(|item| item["pk"].as_s().unwrap().clone())
        .collect();
    let missing: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
}

#[test]
fn at_the_shutdown_deadline_unfinished_requests_are_dropped_and_haven_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let mut server =
        HavenServer::start_with(&["--data-dir", data_dir, "--shutdown-timeout-secs", "1"]);
    // A request whose body never comes (the body timeout alone would wait 30 s).
    let stuck = HeldRequest::open(
        server.address,
        "PutItem",
        &put_item_body("Anything", "never"),
    );

    server.send_sigterm();
    let (status, took) = server.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "haven exited with {status}");
    assert!(
        took < Duration::from_secs(10),
        "the 1 s deadline was not applied: exit took {took:?}"
    );
    let mut stuck = stuck.into_stream();
    stuck
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    let _ = stuck.read_to_string(&mut answer);
    assert!(
        !answer.contains("200 OK"),
        "an unfinished request was acknowledged: {answer:?}"
    );
}
