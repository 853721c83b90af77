//! Graceful shutdown on SIGTERM (issue 9): the server stops accepting connections at once, lets
//! the requests it is serving finish (their clients get their answers), flushes the engine and
//! exits 0 within `--shutdown-timeout-secs`; every write it acknowledged is there after a restart.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use common::{HavenServer, create_table};

/// A PutItem of `pk` as raw HTTP, split so that the server has the head and part of the body
/// (the request is in flight) until the rest is sent.
fn split_put_item(table: &str, pk: &str) -> (String, String) {
    let body = format!(r#"{{"TableName":"{table}","Item":{{"pk":{{"S":"{pk}"}}}}}}"#);
    let head = format!(
        "POST / HTTP/1.1\r\nHost: haven\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: DynamoDB_20120810.PutItem\r\nX-Amz-Date: 20240101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20240101/us-east-1/dynamodb/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=0\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(10);
    (head + first, rest.to_string())
}

/// Writers that put distinct items until the first failure; returns the keys acknowledged.
fn start_writers(
    server: &HavenServer,
    writers: usize,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    (0..writers)
        .map(|writer| {
            let client = server.client_without_retries();
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
                        Ok(_) => acknowledged.push(pk),
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

    // A request in flight: its head and part of its body have arrived.
    let (sent, rest) = split_put_item("Shutdown", "in-flight");
    let mut in_flight = TcpStream::connect(server.address).unwrap();
    in_flight.write_all(sent.as_bytes()).unwrap();

    let writers = start_writers(&server, 8);
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.send_sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // No new connection is accepted...
    let refused = TcpStream::connect(server.address);
    assert!(refused.is_err(), "a connection was accepted after SIGTERM");
    // ...but the request in flight is served to the end, then its connection closed.
    in_flight.write_all(rest.as_bytes()).unwrap();
    in_flight
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    in_flight
        .read_to_string(&mut answer)
        .expect("the in-flight request is answered, not reset");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");

    let (status, _) = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(20)));
    assert!(status.success(), "haven exited with {status}");
    let mut acknowledged: BTreeSet<String> = BTreeSet::from(["in-flight".to_string()]);
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert!(acknowledged.len() > 8, "the writers wrote almost nothing");

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
    // A request whose body never completes (the body timeout alone would wait 30 s).
    let (sent, _) = split_put_item("Anything", "never");
    let mut stuck = TcpStream::connect(server.address).unwrap();
    stuck.write_all(sent.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    server.send_sigterm();
    let (status, took) = server.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "haven exited with {status}");
    assert!(
        took < Duration::from_secs(10),
        "the 1 s deadline was not applied: exit took {took:?}"
    );
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
