//! Latency of a `Limit 100` Query on one partition of 10 000 items in a table of 1 000 000 items,
//! through `haven_api::Service` (no HTTP), on the in-memory engine and on disk.
//!
//! ```text
//! cargo run --release -p haven-api --example query_latency [-- ITEMS RUNS]
//! ```
//!
//! Loads `ITEMS` (default 1 000 000) small items in partitions of 10 000 with BatchWriteItem calls of
//! 25 items from concurrent writers, then times `RUNS` (default 1000) runs of the Query and prints
//! the percentiles. The figures are in docs/benchmarks.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use haven_api::{Service, ServiceConfig};
use haven_storage::{Engine, RedbEngine};
use serde_json::json;

#[path = "../tests/support/big_table.rs"]
mod big_table;
use big_table::{TABLE, load, partition};

const PER_PARTITION: usize = 10_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

async fn measure(label: &str, engine: Arc<dyn Engine>, items: usize, runs: usize, writers: usize) {
    let service = Arc::new(Service::new(engine, ServiceConfig::default()).expect("service"));
    let started = Instant::now();
    load(&service, items, PER_PARTITION, writers).await;
    println!(
        "{label}: loaded {items} items in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let target = partition(items / PER_PARTITION / 2);
    let request = json!({
        "TableName": TABLE,
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": target}},
        "Limit": 100
    });
    // Warm up, and check the page.
    let page = service.call("Query", request.clone()).await.expect("Query");
    assert_eq!(page["Count"], 100);
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let page = service.call("Query", request.clone()).await.expect("Query");
        times.push(start.elapsed());
        assert_eq!(page["Count"], 100);
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / runs as u32;
    println!(
        "{label}: Query Limit 100, {runs} runs: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, mean {:.3} ms",
        percentile(&times, 0.50).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times[runs - 1].as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let items: usize = args.next().map_or(1_000_000, |a| a.parse().expect("ITEMS"));
    let runs: usize = args.next().map_or(1000, |a| a.parse().expect("RUNS"));
    let memory = RedbEngine::in_memory().expect("in-memory engine");
    measure("in memory", Arc::new(memory), items, runs, 8).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = RedbEngine::open(dir.path()).expect("on-disk engine");
    // Durable commits: more concurrent writers share each fsync.
    measure("on disk", Arc::new(disk), items, runs, 64).await;
}
