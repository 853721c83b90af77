//! Time to live through the real binary: expired items disappear within the configured delay
//! (with their secondary index entries), their stream records carry the TTL service's identity,
//! an item whose TTL moved to the future survives, items written before TTL was enabled expire
//! too, and expired items are still readable until the worker gets to them.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::{Client, types::AttributeValue};
use common::HavenServer;
use common::streams::{all_records, specification};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A table keyed by `pk`, with a global index on `g`, and a NEW_AND_OLD_IMAGES stream.
async fn create(client: &Client, name: &str) -> String {
    let key = |name: &str| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(KeyType::Hash)
            .build()
            .unwrap()
    };
    let definition = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name("by_g")
        .key_schema(key("g"))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .unwrap();
    client
        .create_table()
        .table_name(name)
        .key_schema(key("pk"))
        .attribute_definitions(definition("pk"))
        .attribute_definitions(definition("g"))
        .global_secondary_indexes(index)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .stream_specification(specification(Some(StreamViewType::NewAndOldImages)))
        .send()
        .await
        .unwrap()
        .table_description
        .unwrap()
        .latest_stream_arn
        .unwrap()
}

async fn enable_ttl(client: &Client, table: &str) {
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("exp")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

async fn put(client: &Client, table: &str, pk: &str, exp: AttributeValue) {
    client
        .put_item()
        .table_name(table)
        .item("pk", s(pk))
        .item("g", s("group"))
        .item("exp", exp)
        .send()
        .await
        .unwrap();
}

fn epoch(seconds: i64) -> AttributeValue {
    AttributeValue::N(seconds.to_string())
}

/// The keys of the items a Query of the index finds.
async fn in_index(client: &Client, table: &str) -> Vec<String> {
    let mut keys: Vec<String> = client
        .query()
        .table_name(table)
        .index_name("by_g")
        .key_condition_expression("g = :g")
        .expression_attribute_values(":g", s("group"))
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .map(|item| item["pk"].as_s().unwrap().clone())
        .collect();
    keys.sort();
    keys
}

async fn exists(client: &Client, table: &str, pk: &str) -> bool {
    client
        .get_item()
        .table_name(table)
        .key("pk", s(pk))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .is_some()
}

#[tokio::test]
async fn expired_items_are_deleted_through_the_write_path() {
    let server = HavenServer::start_with(&["--in-memory", "--ttl-interval-ms", "200"]);
    let client = server.client();
    let arn = create(&client, "sessions").await;
    // Written before TTL is on: the worker's backfill finds it.
    put(&client, "sessions", "before", epoch(now() - 100)).await;
    enable_ttl(&client, "sessions").await;
    let started = Instant::now();
    put(&client, "sessions", "expired", epoch(now() - 10)).await;
    put(&client, "sessions", "future", epoch(now() + 3600)).await;
    put(&client, "sessions", "not-a-number", s("0")).await;
    // About to expire, then moved to the future before the worker gets to it.
    put(&client, "sessions", "moved", epoch(now() + 2)).await;
    put(&client, "sessions", "moved", epoch(now() + 3600)).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    while exists(&client, "sessions", "expired").await
        || exists(&client, "sessions", "before").await
    {
        assert!(Instant::now() < deadline, "expired items were not deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "took {took:?} with a 200 ms interval"
    );
    tokio::time::sleep(Duration::from_secs(3)).await; // past "moved"'s first expiry time
    assert_eq!(
        in_index(&client, "sessions").await,
        ["future", "moved", "not-a-number"],
        "the index lost exactly the deleted items"
    );
    let count = client
        .scan()
        .table_name("sessions")
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .count;
    assert_eq!(count, 3);

    let records = all_records(&server.streams_client(), &arn).await;
    let removals: Vec<_> = records
        .iter()
        .filter(|r| r.event_name().map(|e| e.as_str()) == Some("REMOVE"))
        .collect();
    assert_eq!(removals.len(), 2, "one REMOVE per expired item");
    for removal in removals {
        let identity = removal
            .user_identity()
            .expect("a TTL deletion names its service");
        assert_eq!(identity.r#type(), Some("Service"));
        assert_eq!(identity.principal_id(), Some("dynamodb.amazonaws.com"));
        assert!(removal.dynamodb().unwrap().old_image().is_some());
    }
    let user_records = records
        .iter()
        .filter(|r| r.user_identity().is_none())
        .count();
    assert_eq!(user_records, 6, "the puts are the user's");
}

#[tokio::test]
async fn expired_items_stay_readable_until_the_worker_deletes_them() {
    let server = HavenServer::start_with(&["--in-memory", "--ttl-interval-ms", "600000"]);
    let client = server.client();
    create(&client, "lazy").await;
    enable_ttl(&client, "lazy").await;
    put(&client, "lazy", "expired", epoch(now() - 10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(exists(&client, "lazy", "expired").await);
}

/// The names of the server's threads (from /proc: Linux), once every thread has named itself
/// (a thread takes its name after it starts; until then it has the process's, as `main` does).
async fn threads(server: &HavenServer) -> Vec<String> {
    let tasks = format!("/proc/{}/task", server.child.id());
    let names = || -> Vec<String> {
        let tasks = std::fs::read_dir(&tasks).unwrap();
        tasks
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_string())
            .collect()
    };
    common::wait_until("every thread named", Duration::from_secs(10), || {
        names().iter().filter(|name| *name == "haven").count() == 1
    })
    .await;
    names()
}

#[tokio::test]
async fn the_ttl_worker_starts_once_a_table_has_ttl_and_at_start_up_after_that() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let args = [
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--ttl-interval-ms",
        "200",
    ];
    let server = HavenServer::start_with(&args);
    let client = server.client();
    common::create_table(&client, "sessions", &[("pk", "S")]).await;
    let idle = threads(&server).await;
    assert!(
        !idle.iter().any(|t| t == "haven-ttl" || t == "haven-log"),
        "no table has TTL or a stream: {idle:?}"
    );

    enable_ttl(&client, "sessions").await;
    put(&client, "sessions", "expired", epoch(now() - 10)).await;
    common::wait_until_async("the expired item deleted", Duration::from_secs(10), || {
        let client = client.clone();
        async move { !exists(&client, "sessions", "expired").await }
    })
    .await;
    let running = threads(&server).await;
    assert!(running.iter().any(|t| t == "haven-ttl"), "{running:?}");
    assert!(
        !running.iter().any(|t| t == "haven-log"),
        "nothing is logged: {running:?}"
    );

    common::terminate(server);
    let server = HavenServer::start_with(&args);
    let restarted = threads(&server).await;
    assert!(
        restarted.iter().any(|t| t == "haven-ttl"),
        "a stored table with TTL starts the worker: {restarted:?}"
    );
    put(&server.client(), "sessions", "later", epoch(now() - 10)).await;
    common::wait_until_async(
        "the item deleted after the restart",
        Duration::from_secs(10),
        || {
            let client = server.client();
            async move { !exists(&client, "sessions", "later").await }
        },
    )
    .await;
}
