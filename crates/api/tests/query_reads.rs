//! A Query touches only the items it returns: a counting engine wraps the in-memory redb engine
//! and counts every key the API layer visits (`Snapshot::scan` callbacks and `Snapshot::get`
//! calls), then a `Limit 100` Query over one partition of 10 000 items, in a table of many other
//! partitions, must visit exactly 100 stored entries (101 would be allowed for a peek past the page).
//!
//! `query_reads_only_its_page_in_100k_items` runs in CI (100 000 items, 10 partitions);
//! `query_reads_only_its_page_in_1m_items` is the full table (1 000 000 items,
//! 100 partitions) and is `#[ignore]`d because loading it takes minutes in a debug build:
//! `cargo test -p haven-api --test query_reads -- --ignored`.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use haven_api::{Service, ServiceConfig};
use haven_storage::{
    Engine, LogEntry, LogPosition, PendingCommit, RedbEngine, Snapshot, StorageError, WriteBatch,
};
use serde_json::{Value, json};

#[path = "support/big_table.rs"]
mod big_table;
use big_table::{TABLE, load, partition};

/// What the API layer read from storage since the last reset.
#[derive(Default)]
struct Counters {
    /// Entries handed to a `scan` visitor.
    scanned: AtomicU64,
    /// `get` calls.
    gets: AtomicU64,
    /// `scan` calls.
    scans: AtomicU64,
}

impl Counters {
    fn reset(&self) {
        self.scanned.store(0, Ordering::SeqCst);
        self.gets.store(0, Ordering::SeqCst);
        self.scans.store(0, Ordering::SeqCst);
    }

    fn read(&self) -> (u64, u64, u64) {
        (
            self.scanned.load(Ordering::SeqCst),
            self.gets.load(Ordering::SeqCst),
            self.scans.load(Ordering::SeqCst),
        )
    }
}

/// An engine that counts the reads made through its snapshots.
struct CountingEngine {
    inner: RedbEngine,
    counters: Arc<Counters>,
}

struct CountingSnapshot {
    inner: Box<dyn Snapshot>,
    counters: Arc<Counters>,
}

impl Engine for CountingEngine {
    fn snapshot(&self) -> Result<Box<dyn Snapshot>, StorageError> {
        Ok(Box::new(CountingSnapshot {
            inner: self.inner.snapshot()?,
            counters: self.counters.clone(),
        }))
    }

    fn commit(&self, batch: WriteBatch) -> PendingCommit {
        self.inner.commit(batch)
    }
}

impl Snapshot for CountingSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.counters.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }

    fn scan(
        &self,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StorageError> {
        self.counters.scans.fetch_add(1, Ordering::SeqCst);
        let counters = &self.counters;
        self.inner.scan(range, reverse, &mut |key, value| {
            counters.scanned.fetch_add(1, Ordering::SeqCst);
            visit(key, value)
        })
    }

    fn scan_log(
        &self,
        table: u64,
        range: (Bound<LogPosition>, Bound<LogPosition>),
        reverse: bool,
        visit: &mut dyn FnMut(LogEntry) -> bool,
    ) -> Result<(), StorageError> {
        self.inner.scan_log(table, range, reverse, visit)
    }

    fn log_head(&self) -> Result<LogPosition, StorageError> {
        self.inner.log_head()
    }

    fn log_horizon(&self, table: u64) -> Result<LogPosition, StorageError> {
        self.inner.log_horizon(table)
    }

    fn next_log_table(&self, after: Option<u64>) -> Result<Option<u64>, StorageError> {
        self.inner.next_log_table(after)
    }
}

fn sort_keys(page: &Value) -> Vec<u64> {
    page["Items"]
        .as_array()
        .expect("Items")
        .iter()
        .map(|item| item["sk"]["N"].as_str().unwrap().parse().unwrap())
        .collect()
}

async fn check(partitions: usize, per_partition: usize) {
    let counters = Arc::new(Counters::default());
    let engine = CountingEngine {
        inner: RedbEngine::in_memory().expect("in-memory engine"),
        counters: counters.clone(),
    };
    let service = Arc::new(Service::new(Arc::new(engine), ServiceConfig::default()).unwrap());
    let started = std::time::Instant::now();
    load(&service, partitions * per_partition, per_partition, 8).await;
    let scan = service
        .call(
            "Scan",
            json!({"TableName": TABLE, "Select": "COUNT", "Limit": 1}),
        )
        .await
        .unwrap();
    assert_eq!(scan["Count"], 1);
    let described = service
        .call("DescribeTable", json!({"TableName": TABLE}))
        .await
        .unwrap();
    assert_eq!(
        described["Table"]["ItemCount"],
        json!(partitions * per_partition)
    );
    println!(
        "loaded {} items in {:.1?}",
        partitions * per_partition,
        started.elapsed()
    );

    let target = partition(partitions / 2);
    // The first 100 items of the partition.
    counters.reset();
    let page = service
        .call(
            "Query",
            json!({
                "TableName": TABLE,
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": target}},
                "Limit": 100
            }),
        )
        .await
        .unwrap();
    let (scanned, gets, scans) = counters.read();
    println!(
        "Query Limit 100 from the start: {scanned} entries scanned, {gets} gets, {scans} scans"
    );
    assert_eq!(sort_keys(&page), (0..100).collect::<Vec<_>>());
    assert_eq!(page["Count"], 100);
    assert_eq!(page["ScannedCount"], 100);
    assert_eq!(
        page["LastEvaluatedKey"],
        json!({"pk": {"S": target}, "sk": {"N": "99"}})
    );
    // 101 would be allowed if the Query peeked one entry past its page (to omit LastEvaluatedKey
    // when the range is exhausted, as DynamoDB Local does); today it reads exactly its page.
    assert!(
        matches!(scanned, 100 | 101),
        "entries visited by the Query: {scanned}"
    );
    assert_eq!(gets, 0, "point reads made by the Query");

    // 100 items from the middle of the partition, by sort-key condition.
    counters.reset();
    let middle = per_partition as u64 / 2;
    let page = service
        .call(
            "Query",
            json!({
                "TableName": TABLE,
                "KeyConditionExpression": "pk = :p AND sk >= :s",
                "ExpressionAttributeValues": {":p": {"S": target}, ":s": {"N": middle.to_string()}},
                "Limit": 100
            }),
        )
        .await
        .unwrap();
    let (scanned, gets, _) = counters.read();
    println!("Query Limit 100 from the middle: {scanned} entries scanned, {gets} gets");
    assert_eq!(sort_keys(&page), (middle..middle + 100).collect::<Vec<_>>());
    assert!(matches!(scanned, 100 | 101), "entries visited: {scanned}");
    assert_eq!(gets, 0);

    // The next page, from the LastEvaluatedKey, backwards.
    counters.reset();
    let page = service
        .call(
            "Query",
            json!({
                "TableName": TABLE,
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": target}},
                "ScanIndexForward": false,
                "ExclusiveStartKey": {"pk": {"S": target}, "sk": {"N": "5000"}},
                "Limit": 100
            }),
        )
        .await
        .unwrap();
    let (scanned, gets, _) = counters.read();
    println!("Query Limit 100 backwards from a start key: {scanned} entries scanned, {gets} gets");
    assert_eq!(sort_keys(&page), (4900..5000).rev().collect::<Vec<_>>());
    assert!(matches!(scanned, 100 | 101), "entries visited: {scanned}");
    assert_eq!(gets, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_reads_only_its_page_in_100k_items() {
    check(10, 10_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "loads 1 000 000 items: minutes in a debug build"]
async fn query_reads_only_its_page_in_1m_items() {
    check(100, 10_000).await;
}
