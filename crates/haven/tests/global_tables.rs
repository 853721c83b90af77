//! Issue 18: global tables between two Haven regions (`tests/common/regions.rs`: two servers
//! with `--auth`, each reaching the other through a relay the test can cut).
//!
//! - a new replica is filled from the table (several batches), becomes ACTIVE, and then writes
//!   flow both ways, deletes included; DescribeTable shows Replicas and GlobalTableVersion;
//! - ReplicaUpdates' errors; deleting a replica deletes its table in its region, and a table
//!   deleted in one region leaves every other region's Replicas (even when the notice is lost);
//!   undelivered changes show as lag; deletes' tombstones are collected once the peer has
//!   acknowledged them, not before; a fill carries deletes made before it began;
//! - the convergence property: random puts, updates, deletes and transactions in both regions at
//!   once while the link is cut and healed at random, then a partition in which both write every
//!   key; afterwards both regions hold the same items,
//!   and each item is what last-writer-wins gives: the last write of one of the two regions, and
//!   the later one whenever the two were clearly apart in time (a delete that finds nothing is no
//!   write: it changes nothing, so it makes no stream record, as in DynamoDB, and ships nothing).
//!   `HAVEN_GLOBAL_OPS` (default 300 per region) and `HAVEN_GLOBAL_SEED` set the size and the
//!   seed; a delete that finds nothing does not outrank a concurrent put (its own test).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, CreateReplicationGroupMemberAction, DeleteReplicationGroupMemberAction, Put,
    ReplicaStatus, ReplicationGroupUpdate, ReturnValue, TransactWriteItem,
};
use common::regions::{FIRST, Regions, SECOND, eventually, items, replicas};
use common::{create_table, error_of};

type Item = BTreeMap<String, AttributeValue>;

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn add_replica(region: &str) -> ReplicationGroupUpdate {
    ReplicationGroupUpdate::builder()
        .create(
            CreateReplicationGroupMemberAction::builder()
                .region_name(region)
                .build()
                .unwrap(),
        )
        .build()
}

/// Creates `table` in the first region, adds its replica in the second and waits until that is
/// ACTIVE; returns both regions' clients.
async fn global_table(regions: &Regions, table: &str) -> (Client, Client) {
    let (first, second) = (regions.client(FIRST), regions.client(SECOND));
    create_table(&first, table, &[("pk", "S")]).await;
    first
        .update_table()
        .table_name(table)
        .replica_updates(add_replica(SECOND))
        .send()
        .await
        .unwrap();
    eventually("the replica is ACTIVE", Duration::from_secs(30), || async {
        replicas(&first, table).await == [(SECOND.to_string(), ReplicaStatus::Active)]
    })
    .await;
    (first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_is_filled_then_writes_flow_both_ways() {
    let regions = Regions::start();
    let (first, second) = (regions.client(FIRST), regions.client(SECOND));
    create_table(&first, "orders", &[("pk", "S")]).await;
    for i in 0..1200 {
        first
            .put_item()
            .table_name("orders")
            .item("pk", s(&format!("order-{i:04}")))
            .item("n", AttributeValue::N(i.to_string()))
            .send()
            .await
            .unwrap();
    }
    let updated = first
        .update_table()
        .table_name("orders")
        .replica_updates(add_replica(SECOND))
        .send()
        .await
        .unwrap();
    let description = updated.table_description().unwrap();
    assert_eq!(description.global_table_version(), Some("2019.11.21"));
    assert_eq!(description.replicas()[0].region_name(), Some(SECOND));
    assert_eq!(
        description.replicas()[0].replica_status(),
        Some(&ReplicaStatus::Creating)
    );
    eventually("the replica is ACTIVE", Duration::from_secs(30), || async {
        replicas(&first, "orders").await == [(SECOND.to_string(), ReplicaStatus::Active)]
    })
    .await;
    assert_eq!(
        items(&second, "orders").await,
        items(&first, "orders").await
    );
    assert_eq!(
        replicas(&second, "orders").await,
        [(FIRST.to_string(), ReplicaStatus::Active)]
    );

    second
        .put_item()
        .table_name("orders")
        .item("pk", s("from-second"))
        .send()
        .await
        .unwrap();
    first
        .delete_item()
        .table_name("orders")
        .key("pk", s("order-0007"))
        .send()
        .await
        .unwrap();
    eventually(
        "both writes reach the other region",
        Duration::from_secs(10),
        || async {
            let (a, b) = (
                items(&first, "orders").await,
                items(&second, "orders").await,
            );
            a.contains_key("from-second") && !b.contains_key("order-0007") && a == b
        },
    )
    .await;
    let count = |client: Client| async move {
        let table = client
            .describe_table()
            .table_name("orders")
            .send()
            .await
            .unwrap();
        table.table().unwrap().item_count()
    };
    assert_eq!(count(first.clone()).await, Some(1200));
    assert_eq!(count(second.clone()).await, Some(1200));
    let status = regions.status(FIRST, "/replication/status");
    assert_eq!(
        status["Replication"][0]["ReplicaRegion"], SECOND,
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_changes_show_as_lag() {
    let regions = Regions::start();
    let (first, _second) = global_table(&regions, "events").await;
    regions.to_second.set_cut(true);
    put_items(&first, "events", "cut", 5).await;
    let behind = || async {
        let status = regions.status(FIRST, "/replication/status");
        status["Replication"][0]["BehindMs"].as_u64().unwrap() > 0
    };
    eventually(
        "the undelivered changes show as lag",
        Duration::from_secs(10),
        behind,
    )
    .await;
    let metrics = ureq::get(format!("{}/metrics", regions.server(FIRST).endpoint()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let series =
        format!(r#"haven_replication_behind_seconds{{table="events",region="{SECOND}"}} "#);
    let behind: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series)?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {metrics}"));
    assert!(behind > 0.0, "and in the metrics: {behind}");
}

/// The tombstones `region` has collected from `table` (its `/replication/status`).
fn collected(regions: &Regions, region: &str, table: &str) -> u64 {
    let status = regions.status(region, "/replication/status");
    let tables = status["Tombstones"].as_array().cloned().unwrap_or_default();
    let row = tables.iter().find(|row| row["TableName"] == table);
    row.map_or(0, |row| row["Collected"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_are_collected_once_every_peer_has_acknowledged_them_and_not_before() {
    let regions = Regions::start_with("tombstone_grace_ms = 200\n");
    let (first, second) = global_table(&regions, "trash").await;
    put_items(&first, "trash", "item", 10).await;
    eventually(
        "the items reach the second region",
        Duration::from_secs(10),
        || async { items(&second, "trash").await.len() == 10 },
    )
    .await;
    regions.to_second.set_cut(true);
    for i in 0..10 {
        let key = s(&format!("item-{i}"));
        first
            .delete_item()
            .table_name("trash")
            .key("pk", key)
            .send()
            .await
            .unwrap();
    }
    // The grace passes and the log moves on, but the second region has acknowledged nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    put_items(&first, "trash", "later", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        collected(&regions, FIRST, "trash"),
        0,
        "not before acknowledgement"
    );
    regions.to_second.set_cut(false);
    for region in [FIRST, SECOND] {
        eventually(
            "the tombstones are collected",
            Duration::from_secs(10),
            || async { collected(&regions, region, "trash") == 10 },
        )
        .await;
    }
    assert_eq!(items(&second, "trash").await, items(&first, "trash").await);
    assert_eq!(
        items(&first, "trash").await.len(),
        1,
        "the deleted items stay deleted"
    );
    put_items(&second, "trash", "item", 2).await;
    eventually(
        "a key written again replicates",
        Duration::from_secs(10),
        || async { items(&first, "trash").await.len() == 3 },
    )
    .await;
}

/// Puts `count` items `<prefix>-<i>` into `table`.
async fn put_items(client: &Client, table: &str, prefix: &str, count: usize) {
    for i in 0..count {
        client
            .put_item()
            .table_name(table)
            .item("pk", s(&format!("{prefix}-{i}")))
            .send()
            .await
            .unwrap();
    }
}

fn delete_replica(region: &str) -> ReplicationGroupUpdate {
    let action = DeleteReplicationGroupMemberAction::builder()
        .region_name(region)
        .build()
        .unwrap();
    ReplicationGroupUpdate::builder().delete(action).build()
}

/// Whether `table` is gone from `client`'s region.
async fn gone(client: &Client, table: &str) -> bool {
    let result = client.describe_table().table_name(table).send().await;
    result.is_err() && error_of(result).0 == "ResourceNotFoundException"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_replica_deletes_its_table_there_and_every_region_agrees() {
    let regions = Regions::start();
    let (first, second) = global_table(&regions, "orders").await;
    put_items(&second, "orders", "second", 3).await;
    eventually(
        "the items reach the first region",
        Duration::from_secs(10),
        || async { items(&first, "orders").await.len() == 3 },
    )
    .await;
    let removed = first
        .update_table()
        .table_name("orders")
        .replica_updates(delete_replica(SECOND))
        .send()
        .await
        .unwrap();
    assert!(removed.table_description().unwrap().replicas().is_empty());
    eventually(
        "the second region's table is deleted",
        Duration::from_secs(10),
        || gone(&second, "orders"),
    )
    .await;
    assert!(replicas(&first, "orders").await.is_empty());
    assert_eq!(
        items(&first, "orders").await.len(),
        3,
        "the first region keeps its table"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_deleted_in_its_region_leaves_the_group_everywhere() {
    let regions = Regions::start();
    let (first, second) = global_table(&regions, "events").await;
    // The deletion's notice to the first region is lost: the first region learns it from its
    // next batch, which the second refuses (its table is gone).
    regions.to_first.set_cut(true);
    second
        .delete_table()
        .table_name("events")
        .send()
        .await
        .unwrap();
    put_items(&first, "events", "after", 20).await;
    eventually(
        "the first region drops the replica",
        Duration::from_secs(10),
        || async { replicas(&first, "events").await.is_empty() },
    )
    .await;
    regions.to_first.set_cut(false);
    let table = first
        .describe_table()
        .table_name("events")
        .send()
        .await
        .unwrap();
    assert_eq!(table.table().unwrap().global_table_version(), None);
    // The shipper tries every 20 ms; 50 of its periods later the table must still be gone.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(gone(&second, "events").await, "not brought back");

    // With the notice delivered, the other region drops it at once (no write needed).
    let (first, second) = global_table(&regions, "logs").await;
    first
        .delete_table()
        .table_name("logs")
        .send()
        .await
        .unwrap();
    eventually(
        "the second region drops the replica",
        Duration::from_secs(10),
        || async { replicas(&second, "logs").await.is_empty() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_writes_appear_in_the_receiving_regions_stream() {
    let regions = Regions::start();
    let (first, second) = global_table(&regions, "events").await;
    let updated = second
        .update_table()
        .table_name("events")
        .stream_specification(common::streams::specification(Some(
            aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages,
        )))
        .send()
        .await
        .unwrap();
    let arn = updated
        .table_description()
        .unwrap()
        .latest_stream_arn()
        .unwrap()
        .to_string();
    first
        .put_item()
        .table_name("events")
        .item("pk", s("replicated"))
        .item("v", s("one"))
        .send()
        .await
        .unwrap();
    let streams = regions.streams_client(SECOND);
    eventually(
        "the replicated write is in the stream",
        Duration::from_secs(10),
        || async {
            let records = common::streams::all_records(&streams, &arn).await;
            records.iter().any(|r| {
                let change = r.dynamodb().unwrap();
                r.aws_region() == Some(SECOND)
                    && change.new_image().and_then(|i| i.get("v"))
                        == Some(&aws_sdk_dynamodbstreams::types::AttributeValue::S(
                            "one".into(),
                        ))
            })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_updates_are_checked() {
    let regions = Regions::start();
    let first = regions.client(FIRST);
    create_table(&first, "items", &[("pk", "S")]).await;
    let update = |change: ReplicationGroupUpdate| {
        first
            .update_table()
            .table_name("items")
            .replica_updates(change)
            .send()
    };
    let (code, message) = error_of(update(add_replica("ap-south-9")).await);
    assert_eq!(code, "ValidationException");
    assert!(message.contains("ap-south-9"), "{message}");
    let (code, _) = error_of(update(add_replica(FIRST)).await);
    assert_eq!(code, "ValidationException");
    let (code, message) = error_of(
        first
            .update_table()
            .table_name("items")
            .replica_updates(add_replica(SECOND))
            .deletion_protection_enabled(true)
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert!(message.contains("must be the only operation"), "{message}");
    let delete = delete_replica(SECOND);
    let (code, _) = error_of(update(delete.clone()).await);
    assert_eq!(code, "ValidationException");
    let (code, _) = error_of(
        first
            .update_table()
            .table_name("missing")
            .replica_updates(add_replica(SECOND))
            .send()
            .await,
    );
    assert_eq!(code, "ResourceNotFoundException");

    update(add_replica(SECOND)).await.unwrap();
    let (code, _) = error_of(update(add_replica(SECOND)).await);
    assert_eq!(code, "ValidationException");
    let removed = update(delete).await.unwrap();
    let description = removed.table_description().unwrap();
    assert!(description.replicas().is_empty());
    assert_eq!(description.global_table_version(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_finds_nothing_does_not_outrank_a_concurrent_put() {
    let regions = Regions::start();
    let (first, second) = global_table(&regions, "items").await;
    regions.set_cut(true);
    second
        .put_item()
        .table_name("items")
        .item("pk", s("k"))
        .item("v", s("second"))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The first region holds no "k": its later delete changes nothing there, so (as in DynamoDB,
    // where it makes no stream record) it is not a write that replicates or outranks the put.
    first
        .delete_item()
        .table_name("items")
        .key("pk", s("k"))
        .send()
        .await
        .unwrap();
    regions.set_cut(false);
    eventually(
        "the put reaches the first region",
        Duration::from_secs(10),
        || async { items(&first, "items").await.contains_key("k") },
    )
    .await;
    assert_eq!(items(&first, "items").await, items(&second, "items").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_made_before_a_region_first_ships_reaches_its_peer() {
    let regions = Regions::start();
    // The second region cannot reach the first from the start: when it deletes the item, it has
    // shipped nothing yet, and its first batches fill the first region from a scan of its table.
    regions.to_first.set_cut(true);
    let (first, second) = global_table(&regions, "items").await;
    put_items(&first, "items", "item", 2).await;
    eventually(
        "the items reach the second region",
        Duration::from_secs(10),
        || async { items(&second, "items").await.len() == 2 },
    )
    .await;
    let key = s("item-0");
    let deleted = second.delete_item().table_name("items").key("pk", key);
    deleted.send().await.unwrap();
    regions.to_first.set_cut(false);
    eventually(
        "the delete reaches the first region",
        Duration::from_secs(10),
        || async { items(&first, "items").await.len() == 1 },
    )
    .await;
    assert_eq!(items(&first, "items").await, items(&second, "items").await);
}

/// A small deterministic generator (xorshift), so that a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One acknowledged write: which key, when it ran, and what it left (None: deleted).
struct Write {
    key: String,
    started: Instant,
    ended: Instant,
    result: Option<Item>,
}

const KEYS: u64 = 4;

/// Runs `count` random writes on `client`, one at a time, and returns in order the ones that
/// changed an item; the values they write are `<label>-<i>`, so no two calls write the same.
async fn random_writes(client: Client, label: &'static str, seed: u64, count: usize) -> Vec<Write> {
    let mut rng = Rng(seed | 1);
    let mut writes = Vec::new();
    for i in 0..count {
        let key = format!("k{}", rng.below(KEYS));
        let value = format!("{label}-{i}");
        let started = Instant::now();
        let results: Vec<(String, Option<Item>)> = match rng.below(4) {
            0 => {
                let item: Item = [("pk".to_string(), s(&key)), ("v".to_string(), s(&value))].into();
                client
                    .put_item()
                    .table_name("items")
                    .set_item(Some(item.clone().into_iter().collect()))
                    .send()
                    .await
                    .unwrap();
                vec![(key, Some(item))]
            }
            1 => {
                let out = client
                    .update_item()
                    .table_name("items")
                    .key("pk", s(&key))
                    .update_expression("SET v = :v ADD n :one")
                    .expression_attribute_values(":v", s(&value))
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .return_values(ReturnValue::AllNew)
                    .send()
                    .await
                    .unwrap();
                vec![(
                    key,
                    out.attributes().map(|a| a.clone().into_iter().collect()),
                )]
            }
            2 => {
                let out = client
                    .delete_item()
                    .table_name("items")
                    .key("pk", s(&key))
                    .return_values(ReturnValue::AllOld)
                    .send()
                    .await
                    .unwrap();
                // A delete that finds no item changes nothing: as in DynamoDB (no stream record),
                // it is no write for last-writer-wins.
                match out.attributes() {
                    Some(_) => vec![(key, None)],
                    None => Vec::new(),
                }
            }
            _ => {
                let other = format!(
                    "k{}",
                    (rng.below(KEYS - 1) + 1 + key[1..].parse::<u64>().unwrap()) % KEYS
                );
                let put = |k: &str| -> (TransactWriteItem, (String, Option<Item>)) {
                    let item: Item = [
                        ("pk".to_string(), s(k)),
                        ("v".to_string(), s(&value)),
                        ("tx".to_string(), s(&value)),
                    ]
                    .into();
                    let action = Put::builder()
                        .table_name("items")
                        .set_item(Some(item.clone().into_iter().collect()))
                        .build()
                        .unwrap();
                    (
                        TransactWriteItem::builder().put(action).build(),
                        (k.to_string(), Some(item)),
                    )
                };
                let (a, ra) = put(&key);
                let (b, rb) = put(&other);
                client
                    .transact_write_items()
                    .transact_items(a)
                    .transact_items(b)
                    .send()
                    .await
                    .unwrap();
                vec![ra, rb]
            }
        };
        let ended = Instant::now();
        for (key, result) in results {
            writes.push(Write {
                key,
                started,
                ended,
                result,
            });
        }
    }
    writes
}

/// What last-writer-wins allows for each key: the last write of either region, and only the
/// later one when the two were at least `MARGIN` apart (clocks are one machine's, and a region
/// stamps a write at least 1 ms above the version it replaces, so close writes may go either way).
fn check_last_writer_wins(first: &[Write], second: &[Write], converged: &BTreeMap<String, Item>) {
    const MARGIN: Duration = Duration::from_millis(100);
    for k in 0..KEYS {
        let key = format!("k{k}");
        let last = |writes: &[Write]| {
            writes
                .iter()
                .rev()
                .find(|w| w.key == key)
                .map(|w| (w.started, w.ended, w.result.clone()))
        };
        let candidates: Vec<_> = [last(first), last(second)].into_iter().flatten().collect();
        let actual = converged.get(&key).cloned();
        if candidates.is_empty() {
            assert_eq!(actual, None, "{key} was never written");
            continue;
        }
        let allowed: Vec<&Option<Item>> = match candidates.as_slice() {
            [(_, a_end, _), (b_start, _, b)] if *a_end + MARGIN < *b_start => vec![b],
            [(a_start, _, a), (_, b_end, _)] if *b_end + MARGIN < *a_start => vec![a],
            _ => candidates.iter().map(|c| &c.2).collect(),
        };
        assert!(
            allowed.contains(&&actual),
            "{key}: converged to {actual:?}, last-writer-wins allows {allowed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_with_link_cuts_converge_to_last_writer_wins() {
    let ops: usize = std::env::var("HAVEN_GLOBAL_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("HAVEN_GLOBAL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("HAVEN_GLOBAL_SEED={seed}");
    let regions = Arc::new(Regions::start());
    let (first, second) = global_table(&regions, "items").await;

    let done = Arc::new(AtomicBool::new(false));
    let cutter = {
        let (regions, done) = (regions.clone(), done.clone());
        let mut rng = Rng(seed.rotate_left(17) | 1);
        std::thread::spawn(move || {
            // Cut and heal in turn (each cut of one direction or both, for a random while), so
            // that however fast the writes run, the link is cut every other step. A step lasts at
            // most 65 ms: writes that take 300 ms see at least three cuts.
            let (mut step, mut cuts) = (0usize, 0);
            while !done.load(Ordering::Relaxed) {
                let cut = step % 2 == 0;
                cuts += cut as usize;
                step += 1;
                regions.to_first.set_cut(cut && rng.below(3) != 0);
                regions.to_second.set_cut(cut && rng.below(3) != 0);
                std::thread::sleep(Duration::from_millis(5 + rng.below(60)));
            }
            regions.set_cut(false);
            cuts
        })
    };
    let (a, b) = tokio::join!(
        random_writes(first.clone(), FIRST, seed, ops),
        random_writes(second.clone(), SECOND, seed.rotate_left(32), ops),
    );
    done.store(true, Ordering::Relaxed);
    let cuts = cutter.join().unwrap();
    println!("{} and {} writes, {cuts} cuts", a.len(), b.len());
    assert!(cuts >= 3, "the link was cut only {cuts} times");
    // Then a partition in which both regions write every key: each key ends in a conflict.
    regions.set_cut(true);
    let (partitioned_a, partitioned_b) = tokio::join!(
        random_writes(
            first.clone(),
            "first-partitioned",
            seed ^ 1,
            4 * KEYS as usize
        ),
        random_writes(
            second.clone(),
            "second-partitioned",
            seed ^ 2,
            4 * KEYS as usize
        ),
    );
    regions.set_cut(false);
    let (mut a, mut b) = (a, b);
    a.extend(partitioned_a);
    b.extend(partitioned_b);

    let deadline = Instant::now() + Duration::from_secs(30);
    let converged = loop {
        let (x, y) = (items(&first, "items").await, items(&second, "items").await);
        if x == y {
            break x;
        }
        assert!(
            Instant::now() < deadline,
            "the regions did not converge:\n{x:?}\n{y:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    check_last_writer_wins(&a, &b, &converged);
}
