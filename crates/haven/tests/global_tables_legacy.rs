//! Issue 18: global tables of version 2017.11.29 (CreateGlobalTable, UpdateGlobalTable,
//! DescribeGlobalTable, ListGlobalTables, DescribeGlobalTableSettings,
//! UpdateGlobalTableSettings) between two Haven regions (`tests/common/regions.rs`).
//!
//! DynamoDB Local answers UnknownOperationException to all six, so these follow AWS's API
//! reference: the rules a table must meet to join (it exists, same key schema, streams with
//! NEW_AND_OLD_IMAGES, no items), each error type, the GlobalTableDescription's shape, and that
//! the tables then replicate both ways through the same machinery as version 2019.11.21.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, CreateReplicaAction, DeleteReplicaAction, GlobalTableStatus,
    ProvisionedThroughput, Replica, ReplicaSettingsUpdate, ReplicaUpdate, StreamViewType,
};
use common::regions::{FIRST, Regions, SECOND, eventually, items};
use common::streams::specification;
use common::{error_of, table_keys};

/// Creates `name` keyed by `keys` with 5/5 provisioned capacity and a stream of `view`.
async fn create(client: &Client, name: &str, keys: &[(&str, &str)], view: Option<StreamViewType>) {
    let (schema, definitions) = table_keys(keys);
    let throughput = ProvisionedThroughput::builder()
        .read_capacity_units(5)
        .write_capacity_units(5)
        .build()
        .unwrap();
    client
        .create_table()
        .table_name(name)
        .set_key_schema(Some(schema))
        .set_attribute_definitions(Some(definitions))
        .billing_mode(BillingMode::Provisioned)
        .provisioned_throughput(throughput)
        .set_stream_specification(view.is_some().then(|| specification(view)))
        .send()
        .await
        .unwrap();
}

/// A table `name` that may join a global table, in both regions' clients.
async fn create_in(clients: &[&Client], name: &str) {
    for client in clients {
        create(
            client,
            name,
            &[("pk", "S")],
            Some(StreamViewType::NewAndOldImages),
        )
        .await;
    }
}

fn group(regions: &[&str]) -> Vec<Replica> {
    regions
        .iter()
        .map(|r| Replica::builder().region_name(*r).build())
        .collect()
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.into())
}

async fn put(client: &Client, table: &str, pk: &str) {
    let put = client.put_item().table_name(table).item("pk", s(pk));
    put.send().await.unwrap();
}

/// The regions of `table`'s global table as `client`'s region describes it, and its status.
async fn described(client: &Client, table: &str) -> (Vec<String>, GlobalTableStatus) {
    let answer = client
        .describe_global_table()
        .global_table_name(table)
        .send()
        .await
        .unwrap();
    let description = answer.global_table_description().unwrap();
    let regions = description
        .replication_group()
        .iter()
        .map(|r| r.region_name().unwrap().to_string())
        .collect();
    (regions, description.global_table_status().unwrap().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_global_table_joins_existing_tables_and_replicates_both_ways() {
    let regions = Regions::start();
    let (first, second) = (regions.client(FIRST), regions.client(SECOND));
    create_in(&[&first, &second], "music").await;
    let created = first
        .create_global_table()
        .global_table_name("music")
        .set_replication_group(Some(group(&[SECOND, FIRST])))
        .send()
        .await
        .unwrap();
    let description = created.global_table_description().unwrap();
    assert_eq!(description.global_table_name(), Some("music"));
    assert_eq!(
        description.global_table_arn(),
        Some("arn:aws:dynamodb::000000000000:global-table/music")
    );
    assert!(description.creation_date_time().is_some());
    let mut both = vec![FIRST.to_string(), SECOND.to_string()];
    both.sort();
    for client in [&first, &second] {
        eventually(
            "the global table is ACTIVE",
            Duration::from_secs(10),
            || async {
                described(client, "music").await == (both.clone(), GlobalTableStatus::Active)
            },
        )
        .await;
        let table = client
            .describe_table()
            .table_name("music")
            .send()
            .await
            .unwrap();
        assert_eq!(
            table.table().unwrap().global_table_version(),
            Some("2017.11.29")
        );
    }

    put(&first, "music", "from-first").await;
    put(&second, "music", "from-second").await;
    eventually("writes flow both ways", Duration::from_secs(10), || async {
        let (a, b) = (items(&first, "music").await, items(&second, "music").await);
        a.len() == 2 && a == b
    })
    .await;

    let (code, _) = error_of(
        first
            .create_global_table()
            .global_table_name("music")
            .set_replication_group(Some(group(&[FIRST])))
            .send()
            .await,
    );
    assert_eq!(code, "GlobalTableAlreadyExistsException");

    create_in(&[&first], "albums").await;
    first
        .create_global_table()
        .global_table_name("albums")
        .set_replication_group(Some(group(&[FIRST])))
        .send()
        .await
        .unwrap();
    let listed = first.list_global_tables().send().await.unwrap();
    let names: Vec<(&str, usize)> = listed
        .global_tables()
        .iter()
        .map(|g| (g.global_table_name().unwrap(), g.replication_group().len()))
        .collect();
    assert_eq!(names, [("albums", 1), ("music", 2)]);
    let page = first.list_global_tables().limit(1).send().await.unwrap();
    assert_eq!(page.global_tables().len(), 1);
    assert_eq!(page.last_evaluated_global_table_name(), Some("albums"));
    let rest = first
        .list_global_tables()
        .exclusive_start_global_table_name("albums")
        .send()
        .await
        .unwrap();
    assert_eq!(rest.global_tables()[0].global_table_name(), Some("music"));
    assert_eq!(rest.last_evaluated_global_table_name(), None);
    let in_second = first
        .list_global_tables()
        .region_name(SECOND)
        .send()
        .await
        .unwrap();
    assert_eq!(in_second.global_tables().len(), 1);
    let (code, _) = error_of(first.list_global_tables().limit(0).send().await);
    assert_eq!(code, "ValidationException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_global_table_refuses_tables_that_may_not_join() {
    let regions = Regions::start();
    let (first, second) = (regions.client(FIRST), regions.client(SECOND));
    let create_global = |name: &'static str, members: Vec<Replica>| {
        let first = first.clone();
        async move {
            first
                .create_global_table()
                .global_table_name(name)
                .set_replication_group(Some(members))
                .send()
                .await
        }
    };
    create_in(&[&first], "lonely").await;
    let (code, message) = error_of(create_global("lonely", group(&[FIRST, SECOND])).await);
    assert_eq!(code, "TableNotFoundException");
    assert!(message.contains(SECOND), "{message}");

    create_in(&[&first], "nostream").await;
    create(&second, "nostream", &[("pk", "S")], None).await;
    let (code, message) = error_of(create_global("nostream", group(&[FIRST, SECOND])).await);
    assert_eq!(code, "ValidationException");
    assert!(message.contains("NEW_AND_OLD_IMAGES"), "{message}");

    create_in(&[&first], "keys").await;
    let view = Some(StreamViewType::NewAndOldImages);
    create(&second, "keys", &[("pk", "S"), ("sk", "N")], view).await;
    let (code, message) = error_of(create_global("keys", group(&[FIRST, SECOND])).await);
    assert_eq!(code, "ValidationException");
    assert!(message.contains("key schema"), "{message}");

    create_in(&[&first, &second], "full").await;
    put(&second, "full", "already-here").await;
    let (code, message) = error_of(create_global("full", group(&[FIRST, SECOND])).await);
    assert_eq!(code, "ValidationException");
    assert!(message.contains("empty"), "{message}");
    let (code, _) = error_of(
        first
            .describe_global_table()
            .global_table_name("full")
            .send()
            .await,
    );
    assert_eq!(code, "GlobalTableNotFoundException", "nothing joined");

    let (code, message) = error_of(create_global("full", group(&[FIRST, "ap-south-9"])).await);
    assert_eq!(code, "ValidationException");
    assert!(message.contains("ap-south-9"), "{message}");
    let (code, _) = error_of(create_global("full", group(&[SECOND])).await);
    assert_eq!(code, "ValidationException");
    let (code, message) = error_of(create_global("x", group(&[FIRST])).await);
    assert_eq!(code, "ValidationException");
    assert!(message.contains("'globalTableName'"), "{message}");
    let (code, _) = error_of(
        first
            .describe_global_table()
            .global_table_name("none")
            .send()
            .await,
    );
    assert_eq!(code, "GlobalTableNotFoundException");
    let (code, _) = error_of(
        first
            .describe_global_table_settings()
            .global_table_name("none")
            .send()
            .await,
    );
    assert_eq!(code, "GlobalTableNotFoundException");
}

fn add(region: &str) -> ReplicaUpdate {
    let action = CreateReplicaAction::builder()
        .region_name(region)
        .build()
        .unwrap();
    ReplicaUpdate::builder().create(action).build()
}

fn remove(region: &str) -> ReplicaUpdate {
    let action = DeleteReplicaAction::builder()
        .region_name(region)
        .build()
        .unwrap();
    ReplicaUpdate::builder().delete(action).build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_global_table_adds_and_removes_replicas() {
    let regions = Regions::start();
    let (first, second) = (regions.client(FIRST), regions.client(SECOND));
    create_in(&[&first], "songs").await;
    first
        .create_global_table()
        .global_table_name("songs")
        .set_replication_group(Some(group(&[FIRST])))
        .send()
        .await
        .unwrap();
    put(&first, "songs", "before-second").await;
    let update = |update: ReplicaUpdate| {
        let first = first.clone();
        async move {
            first
                .update_global_table()
                .global_table_name("songs")
                .replica_updates(update)
                .send()
                .await
        }
    };
    let (code, _) = error_of(update(add(SECOND)).await);
    assert_eq!(code, "TableNotFoundException");
    create_in(&[&second], "songs").await;
    let updated = update(add(SECOND)).await.unwrap();
    let group = updated
        .global_table_description()
        .unwrap()
        .replication_group();
    assert_eq!(group.len(), 2);
    eventually(
        "the new replica is filled",
        Duration::from_secs(10),
        || async { items(&second, "songs").await.contains_key("before-second") },
    )
    .await;
    let (code, _) = error_of(update(add(SECOND)).await);
    assert_eq!(code, "ReplicaAlreadyExistsException");

    let settings = first
        .update_global_table_settings()
        .global_table_name("songs")
        .global_table_provisioned_write_capacity_units(7)
        .replica_settings_update(
            ReplicaSettingsUpdate::builder()
                .region_name(SECOND)
                .replica_provisioned_read_capacity_units(9)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let capacities: Vec<(&str, Option<i64>, Option<i64>)> = settings
        .replica_settings()
        .iter()
        .map(|r| {
            (
                r.region_name(),
                r.replica_provisioned_read_capacity_units(),
                r.replica_provisioned_write_capacity_units(),
            )
        })
        .collect();
    let mut expected = vec![(FIRST, Some(5), Some(7)), (SECOND, Some(9), Some(7))];
    expected.sort();
    assert_eq!(capacities, expected);
    let read_back = second
        .describe_global_table_settings()
        .global_table_name("songs")
        .send()
        .await
        .unwrap();
    assert_eq!(read_back.replica_settings().len(), 2);
    let billing = read_back.replica_settings()[0]
        .replica_billing_mode_summary()
        .unwrap();
    assert_eq!(billing.billing_mode(), Some(&BillingMode::Provisioned));
    let (code, _) = error_of(
        first
            .update_global_table_settings()
            .global_table_name("songs")
            .replica_settings_update(
                ReplicaSettingsUpdate::builder()
                    .region_name("ap-south-9")
                    .replica_provisioned_read_capacity_units(9)
                    .build()
                    .unwrap(),
            )
            .send()
            .await,
    );
    assert_eq!(code, "ReplicaNotFoundException");

    update(remove(SECOND)).await.unwrap();
    let gone = second.describe_table().table_name("songs").send().await;
    assert_eq!(
        error_of(gone).0,
        "ResourceNotFoundException",
        "the replica's table is deleted"
    );
    let (regions_left, _) = described(&first, "songs").await;
    assert_eq!(regions_left, [FIRST]);
    let (code, _) = error_of(update(remove(SECOND)).await);
    assert_eq!(code, "ReplicaNotFoundException");
}
