//! Issue 15: a control-plane request whose client goes away mid-commit must never wedge a table.
//!
//! Before the catalog followed storage, a CreateTable, UpdateTable or TagResource whose connection
//! closed between the commit and the in-memory install left storage at schema version N+1 while
//! the cache planned writes against N: every later write conflicted and retried forever. Here
//! control-plane requests go out on raw connections that close at random moments (before, during
//! and right after the commit) while writers run; afterwards every table takes writes within a
//! second, and DescribeTable, ListTables and a restart all agree.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use common::chaos::{Random, TRANSIENT, WRITTEN, arn, random_request, send_and_abandon};
use common::{HavenServer, create_table, scan_items, terminate};

/// Control-plane requests abandoned in one run.
const ROUNDS: u64 = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_plane_requests_abandoned_mid_commit_never_wedge_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let server = HavenServer::start_on_disk(dir.path());
    let client = server.client();
    for table in WRITTEN {
        create_table(&client, table, &[("pk", "S")]).await;
    }

    // Writers keep every written table busy; each acknowledged key is remembered.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let client = client.clone();
            let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let table = WRITTEN[(n % 3) as usize];
                    let key = format!("w{writer}-{n}");
                    let sent = client
                        .put_item()
                        .table_name(table)
                        .item("pk", AttributeValue::S(key.clone()))
                        .item("g", AttributeValue::S(format!("g{}", n % 7)))
                        .send();
                    if tokio::time::timeout(Duration::from_secs(10), sent)
                        .await
                        .is_ok_and(|answer| answer.is_ok())
                    {
                        acknowledged.lock().unwrap().insert((table, key));
                    }
                    n += 1;
                }
            })
        })
        .collect();

    // Two threads abandon control-plane requests at random moments.
    let seed = common::chaos::seed();
    let address = server.address;
    let abandoners: Vec<_> = (0..2u64)
        .map(|thread| {
            tokio::task::spawn_blocking(move || {
                let mut random = Random(seed.wrapping_add(thread * 0x9E37_79B9));
                for _ in 0..ROUNDS / 2 {
                    let (operation, body) = random_request(&mut random);
                    let linger = Duration::from_micros(random.below(4000));
                    send_and_abandon(address, operation, &body, linger);
                }
            })
        })
        .collect();
    for abandoner in abandoners {
        abandoner.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(
        !acknowledged.lock().unwrap().is_empty(),
        "no write was acknowledged"
    );

    let strict = server.client_without_retries();
    wait_for_indexes(&strict).await;
    let tables = list_tables(&strict).await;
    for table in WRITTEN {
        assert!(tables.contains(table), "{table} vanished: {tables:?}");
    }
    for table in &tables {
        let started = Instant::now();
        let write = strict
            .put_item()
            .table_name(table)
            .item("pk", AttributeValue::S("after".into()))
            .send();
        let answer = tokio::time::timeout(Duration::from_secs(1), write).await;
        assert!(
            matches!(answer, Ok(Ok(_))),
            "{table} did not take a write within 1 s: {answer:?}"
        );
        println!("{table}: write answered in {:?}", started.elapsed());
        let tag = strict
            .tag_resource()
            .resource_arn(arn(table))
            .tags(
                aws_sdk_dynamodb::types::Tag::builder()
                    .key("after")
                    .value("1")
                    .build()
                    .unwrap(),
            )
            .send();
        let answer = tokio::time::timeout(Duration::from_secs(1), tag).await;
        assert!(
            matches!(answer, Ok(Ok(_))),
            "{table} did not take a metadata change within 1 s: {answer:?}"
        );
    }
    for n in 0..TRANSIENT {
        let table = format!("Transient{n}");
        let described = strict.describe_table().table_name(&table).send().await;
        assert_eq!(
            described.is_ok(),
            tables.contains(&table),
            "DescribeTable and ListTables disagree about {table}: {described:?}"
        );
    }
    let before = describe_all(&strict, &tables).await;

    // A restart shows what the running server showed.
    terminate(server);
    let server = HavenServer::start_on_disk(dir.path());
    let strict = server.client_without_retries();
    assert_eq!(list_tables(&strict).await, tables);
    assert_eq!(describe_all(&strict, &tables).await, before);
    let acknowledged = acknowledged.lock().unwrap().clone();
    // Read back by a consistent Scan of each table, with the SDK's retries: the tables may be
    // provisioned with a few read units, and a Scan reads the small items 4 KB to a unit where a
    // GetItem per key would take one unit each (how many writes were acknowledged depends on the
    // machine).
    let client = server.client();
    let mut stored = BTreeSet::new();
    for table in WRITTEN {
        for item in scan_items(&client, table).await {
            if let Some(AttributeValue::S(key)) = item.get("pk") {
                stored.insert((table, key.clone()));
            }
        }
    }
    for (table, key) in &acknowledged {
        assert!(
            stored.contains(&(*table, key.clone())),
            "acknowledged {table}/{key} is lost"
        );
    }
}

async fn list_tables(client: &aws_sdk_dynamodb::Client) -> BTreeSet<String> {
    let listed = client.list_tables().send().await.unwrap();
    listed.table_names.unwrap_or_default().into_iter().collect()
}

/// Waits until no index of any table is CREATING or DELETING (backfills finish in the background).
async fn wait_for_indexes(client: &aws_sdk_dynamodb::Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut settled = true;
        for table in list_tables(client).await {
            let Ok(described) = client.describe_table().table_name(&table).send().await else {
                continue;
            };
            let indexes = described
                .table
                .unwrap()
                .global_secondary_indexes
                .unwrap_or_default();
            settled &= indexes.iter().all(|index| {
                index.index_status == Some(aws_sdk_dynamodb::types::IndexStatus::Active)
            });
        }
        if settled {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "indexes still changing after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What DescribeTable, ListTagsOfResource and DescribeTimeToLive say of each table, as text.
async fn describe_all(
    client: &aws_sdk_dynamodb::Client,
    tables: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let mut described = BTreeMap::new();
    for table in tables {
        let description = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .table
            .unwrap();
        let tags = client
            .list_tags_of_resource()
            .resource_arn(arn(table))
            .send()
            .await
            .unwrap()
            .tags;
        let ttl = client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .time_to_live_description;
        described.insert(table.clone(), format!("{description:?} {tags:?} {ttl:?}"));
    }
    described
}
