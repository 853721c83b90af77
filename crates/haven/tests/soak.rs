//! Issue 15: a soak of clients that time out and disconnect at random under mixed load.
//!
//! Real clients give up on requests all the time (timeouts, retries, processes that exit). For
//! `HAVEN_SOAK_SECS` seconds (default 120) writers and readers whose requests are abandoned at
//! random moments run beside control-plane requests on connections that close mid-commit. At the
//! end no table is wedged, no acknowledged write is lost, counters hold every acknowledged
//! addition and none that was never sent, and the server's memory is back near where it started.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, TransactWriteItem, WriteRequest};
use common::chaos::{Random, WRITTEN, random_request, send_and_abandon};
use common::{HavenServer, create_table};

const CLIENTS: u64 = 12;
/// Counter items per table that clients add to concurrently.
const COUNTERS: u64 = 8;

fn soak_duration() -> Duration {
    let seconds = std::env::var("HAVEN_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    Duration::from_secs(seconds)
}

/// The server's resident memory, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// What the clients know was acknowledged.
#[derive(Default)]
struct Ledger {
    /// Unique keys whose write was acknowledged (never deleted afterwards).
    written: BTreeSet<(String, String)>,
    /// Per counter item: additions acknowledged, additions sent.
    counters: BTreeMap<(String, String), (u64, u64)>,
}

type Client = aws_sdk_dynamodb::Client;

fn text(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// Runs `request` under a timeout that is, one time in three, short enough to abandon it in
/// flight (the SDK then drops its connection); answers whether it was acknowledged.
async fn send<T, E>(
    random: &mut Random,
    request: impl std::future::Future<Output = Result<T, E>>,
) -> bool {
    let timeout = match random.below(3) {
        0 => Duration::from_micros(random.below(5000)),
        _ => Duration::from_secs(20),
    };
    matches!(tokio::time::timeout(timeout, request).await, Ok(Ok(_)))
}

async fn one_operation(client: &Client, random: &mut Random, id: String, ledger: &Mutex<Ledger>) {
    let table = WRITTEN[random.below(WRITTEN.len() as u64) as usize].to_string();
    match random.below(6) {
        0 => {
            let put = client
                .put_item()
                .table_name(&table)
                .item("pk", text(&id))
                .item("g", text(format!("g{}", random.below(5))))
                .send();
            if send(random, put).await {
                ledger.lock().unwrap().written.insert((table, id));
            }
        }
        1 => {
            let key = format!("counter{}", random.below(COUNTERS));
            ledger
                .lock()
                .unwrap()
                .counters
                .entry((table.clone(), key.clone()))
                .or_default()
                .1 += 1;
            let add = client
                .update_item()
                .table_name(&table)
                .key("pk", text(&key))
                .update_expression("ADD hits :one")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .send();
            if send(random, add).await {
                let mut ledger = ledger.lock().unwrap();
                ledger.counters.get_mut(&(table, key)).unwrap().0 += 1;
            }
        }
        2 => {
            let churn = format!("churn{}", random.below(50));
            let delete = client
                .delete_item()
                .table_name(&table)
                .key("pk", text(churn));
            send(random, delete.send()).await;
        }
        3 => {
            let keys: Vec<String> = (0..5).map(|i| format!("{id}-{i}")).collect();
            let requests: Vec<WriteRequest> = keys
                .iter()
                .map(|key| {
                    let put = PutRequest::builder().item("pk", text(key)).build().unwrap();
                    WriteRequest::builder().put_request(put).build()
                })
                .collect();
            let batch = client
                .batch_write_item()
                .request_items(&table, requests)
                .send();
            let answered = tokio::time::timeout(Duration::from_secs(20), batch).await;
            if let Ok(Ok(output)) = answered {
                let unprocessed = output.unprocessed_items.unwrap_or_default();
                assert!(unprocessed.is_empty(), "unprocessed items: {unprocessed:?}");
                let mut ledger = ledger.lock().unwrap();
                for key in keys {
                    ledger.written.insert((table.clone(), key));
                }
            }
        }
        4 => {
            let keys = [format!("{id}-a"), format!("{id}-b")];
            let items: Vec<TransactWriteItem> = keys
                .iter()
                .map(|key| {
                    let put = aws_sdk_dynamodb::types::Put::builder()
                        .table_name(&table)
                        .item("pk", text(key))
                        .build()
                        .unwrap();
                    TransactWriteItem::builder().put(put).build()
                })
                .collect();
            let transaction = client
                .transact_write_items()
                .set_transact_items(Some(items));
            if send(random, transaction.send()).await {
                let mut ledger = ledger.lock().unwrap();
                for key in keys {
                    ledger.written.insert((table.clone(), key));
                }
            }
        }
        _ => {
            let scan = client.scan().table_name(&table).limit(20).send();
            send(random, scan).await;
        }
    }
}

/// Every key of a table, by paged Scans.
async fn all_keys(client: &Client, table: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut pages = client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        if let AttributeValue::S(key) = &item.unwrap()["pk"] {
            keys.insert(key.clone());
        }
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_that_give_up_at_random_under_mixed_load_leave_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    // Capacity is not enforced: the abandoned requests switch the tables between on-demand and
    // 5-unit provisioned capacity at random (`chaos::random_request`), which would throttle the
    // clients' batches (UnprocessedItems) for reasons this test does not check.
    let server = HavenServer::start_with(&[
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--cache-mb",
        "16",
        "--capacity",
        "off",
    ]);
    let setup = server.client();
    for table in WRITTEN {
        create_table(&setup, table, &[("pk", "S")]).await;
    }
    let rss_at_start = rss_kib(server.child.id());
    let seed = common::chaos::seed();
    let duration = soak_duration();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let client = server.client_without_retries();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (client, ledger, stop) = (client.clone(), ledger.clone(), stop.clone());
            tokio::spawn(async move {
                let mut random = Random(seed.wrapping_add(n * 0x9E37_79B9));
                let mut operations = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("c{n}-{operations}");
                    one_operation(&client, &mut random, id, &ledger).await;
                    operations += 1;
                }
                operations
            })
        })
        .collect();
    let address = server.address;
    let abandoner_stop = stop.clone();
    let abandoner = tokio::task::spawn_blocking(move || {
        let mut random = Random(seed ^ 0x5555);
        let mut abandoned = 0u64;
        while !abandoner_stop.load(Ordering::Relaxed) {
            let (operation, body) = random_request(&mut random);
            send_and_abandon(
                address,
                operation,
                &body,
                Duration::from_micros(random.below(4000)),
            );
            std::thread::sleep(Duration::from_millis(20));
            abandoned += 1;
        }
        abandoned
    });
    let started = Instant::now();
    let mut rss_peak = rss_at_start;
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_peak = rss_peak.max(rss_kib(server.child.id()));
    }
    stop.store(true, Ordering::Relaxed);
    let mut operations = 0;
    for client in clients {
        operations += client.await.unwrap();
    }
    let abandoned = abandoner.await.unwrap();
    // Memory returns near where it started once the abandoned requests are gone (measured before
    // the checks below read every table).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_at_end = rss_kib(server.child.id());

    // No table is wedged: each takes a write within a second.
    for table in WRITTEN {
        let write = client
            .put_item()
            .table_name(table)
            .item("pk", text("after"))
            .send();
        let answer = tokio::time::timeout(Duration::from_secs(1), write).await;
        assert!(matches!(answer, Ok(Ok(_))), "{table} is wedged: {answer:?}");
    }
    // No acknowledged write is lost; counters hold exactly what could have been added.
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    for table in WRITTEN {
        let stored = all_keys(&client, table).await;
        for (_, key) in ledger.written.iter().filter(|(t, _)| t == table) {
            assert!(stored.contains(key), "acknowledged {table}/{key} is lost");
        }
    }
    for ((table, key), (acknowledged, sent)) in &ledger.counters {
        let item = client
            .get_item()
            .table_name(table)
            .key("pk", text(key))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_default();
        let hits = match item.get("hits") {
            Some(AttributeValue::N(n)) => n.parse::<u64>().unwrap(),
            _ => 0,
        };
        assert!(
            (*acknowledged..=*sent).contains(&hits),
            "{table}/{key}: {hits} hits, {acknowledged} acknowledged, {sent} sent"
        );
    }
    println!(
        "{operations} operations, {abandoned} abandoned control-plane requests, {} writes \
         acknowledged; RSS {rss_at_start} KiB at start, {rss_peak} KiB peak, {rss_at_end} KiB at end",
        ledger.written.len()
    );
    assert!(
        rss_at_end <= rss_at_start + 64 * 1024,
        "RSS grew from {rss_at_start} KiB to {rss_at_end} KiB"
    );
}
