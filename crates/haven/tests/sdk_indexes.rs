//! Secondary indexes through the AWS SDK for Rust: CreateTable with local and global indexes and
//! its validation, DescribeTable's index fields, index maintenance on every kind of write, sparse
//! indexes, projections, Query and Scan on indexes (paging, parallel scan, Select, errors), and
//! UpdateTable creating an index over a 100 000-item table while writers keep writing, deleting
//! one, and a creation that survives a SIGKILL.

mod common;

/// UpdateItem's wording when an update empties an index key (DynamoDB Local's, pinned by the differential suite).
const UPDATE_EMPTY_INDEX_KEY: &str = "One or more parameter values are not valid. The update expression attempted to update a secondary index key to a value that is not supported. The AttributeValue for a key attribute cannot contain an empty string value.";

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CreateGlobalSecondaryIndexAction,
    DeleteGlobalSecondaryIndexAction, DeleteRequest, GlobalSecondaryIndex,
    GlobalSecondaryIndexDescription, GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement,
    KeyType, LocalSecondaryIndex, Projection, ProjectionType, ProvisionedThroughput, PutRequest,
    ReturnValue, ScalarAttributeType, Select, TableDescription, WriteRequest,
};
use common::{HavenServer, error_of};

type Item = HashMap<String, AttributeValue>;

// ---------------------------------------------------------------------------------------------
// Builders.

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect()
}

fn key_element(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .unwrap()
}

/// A key schema: a hash key and an optional range key.
fn keys(hash: &str, range: Option<&str>) -> Vec<KeySchemaElement> {
    let mut schema = vec![key_element(hash, KeyType::Hash)];
    if let Some(range) = range {
        schema.push(key_element(range, KeyType::Range));
    }
    schema
}

fn definition(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .unwrap()
}

fn projection(kind: ProjectionType, non_key: &[&str]) -> Projection {
    let mut builder = Projection::builder().projection_type(kind);
    for attribute in non_key {
        builder = builder.non_key_attributes(*attribute);
    }
    builder.build()
}

fn gsi(
    name: &str,
    hash: &str,
    range: Option<&str>,
    projection: Projection,
) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .set_key_schema(Some(keys(hash, range)))
        .projection(projection)
        .build()
        .unwrap()
}

fn lsi(name: &str, range: &str, projection: Projection) -> LocalSecondaryIndex {
    LocalSecondaryIndex::builder()
        .index_name(name)
        .set_key_schema(Some(keys("pk", Some(range))))
        .projection(projection)
        .build()
        .unwrap()
}

fn throughput(read: i64, write: i64) -> ProvisionedThroughput {
    ProvisionedThroughput::builder()
        .read_capacity_units(read)
        .write_capacity_units(write)
        .build()
        .unwrap()
}

/// Definitions of `pk` (S), `sk` (N) and the index keys `gk` (S), `gs` (N), `gh` (N), `ls` (S).
fn standard_definitions() -> Vec<AttributeDefinition> {
    vec![
        definition("pk", ScalarAttributeType::S),
        definition("sk", ScalarAttributeType::N),
        definition("gk", ScalarAttributeType::S),
        definition("gs", ScalarAttributeType::N),
        definition("gh", ScalarAttributeType::N),
        definition("ls", ScalarAttributeType::S),
    ]
}

/// Table `items` (`pk` S, `sk` N) with:
/// - `by_ls`: local, range `ls`, KEYS_ONLY;
/// - `by_gk`: global, `gk` + `gs`, ALL;
/// - `by_gh`: global, hash `gh` only, KEYS_ONLY;
/// - `by_gk_inc`: global, hash `gk` only, INCLUDE `a`.
async fn create_standard(client: &Client) -> TableDescription {
    client
        .create_table()
        .table_name("items")
        .set_attribute_definitions(Some(standard_definitions()))
        .set_key_schema(Some(keys("pk", Some("sk"))))
        .billing_mode(BillingMode::PayPerRequest)
        .local_secondary_indexes(lsi(
            "by_ls",
            "ls",
            projection(ProjectionType::KeysOnly, &[]),
        ))
        .global_secondary_indexes(gsi(
            "by_gk",
            "gk",
            Some("gs"),
            projection(ProjectionType::All, &[]),
        ))
        .global_secondary_indexes(gsi(
            "by_gh",
            "gh",
            None,
            projection(ProjectionType::KeysOnly, &[]),
        ))
        .global_secondary_indexes(gsi(
            "by_gk_inc",
            "gk",
            None,
            projection(ProjectionType::Include, &["a"]),
        ))
        .send()
        .await
        .unwrap()
        .table_description
        .unwrap()
}

async fn put(client: &Client, table: &str, item: Item) {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

/// Every item of a Scan, through the SDK paginator (optionally of an index, optionally one segment).
async fn scan_all(client: &Client, table: &str, index: Option<&str>) -> Vec<Item> {
    client
        .scan()
        .table_name(table)
        .set_index_name(index.map(String::from))
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
}

/// A 4-segment parallel scan: every segment's items (segments checked disjoint by the callers).
async fn parallel_scan(client: &Client, table: &str, index: Option<&str>) -> Vec<Vec<Item>> {
    parallel_scan_pages(client, table, index, None).await
}

/// [`parallel_scan`] with a page Limit, so that each segment resumes from LastEvaluatedKeys.
async fn parallel_scan_pages(
    client: &Client,
    table: &str,
    index: Option<&str>,
    limit: Option<i32>,
) -> Vec<Vec<Item>> {
    let mut tasks = Vec::new();
    for segment in 0..4 {
        let client = client.clone();
        let table = table.to_string();
        let index = index.map(String::from);
        tasks.push(tokio::spawn(async move {
            client
                .scan()
                .table_name(table)
                .set_index_name(index)
                .segment(segment)
                .total_segments(4)
                .set_limit(limit)
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .unwrap()
        }));
    }
    let mut segments = Vec::new();
    for task in tasks {
        segments.push(task.await.unwrap());
    }
    segments
}

/// Query an index for `gk = value`, every page.
async fn query_gk(client: &Client, index: &str, value: &str) -> Vec<Item> {
    client
        .query()
        .table_name("items")
        .index_name(index)
        .key_condition_expression("gk = :v")
        .expression_attribute_values(":v", s(value))
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
}

/// An item in a comparable form.
type Canonical = BTreeMap<String, String>;

fn canonical(item: &Item) -> Canonical {
    item.iter()
        .map(|(name, value)| (name.clone(), format!("{value:?}")))
        .collect()
}

fn canonical_set(items: &[Item]) -> BTreeSet<Canonical> {
    let set: BTreeSet<Canonical> = items.iter().map(canonical).collect();
    assert_eq!(set.len(), items.len(), "an item was returned twice");
    set
}

/// The sorted attribute names of an item.
fn names(item: &Item) -> Vec<&str> {
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort();
    names
}

/// The `pk`/`sk` pairs of items, sorted.
fn table_keys_of(items: &[Item]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = items
        .iter()
        .map(|i| {
            (
                i["pk"].as_s().unwrap().clone(),
                i["sk"].as_n().unwrap().clone(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

async fn describe(client: &Client, table: &str) -> TableDescription {
    client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap()
}

fn global<'d>(
    table: &'d TableDescription,
    name: &str,
) -> Option<&'d GlobalSecondaryIndexDescription> {
    table
        .global_secondary_indexes()
        .iter()
        .find(|i| i.index_name() == Some(name))
}

/// ItemCount of every index of `table`, by name.
async fn index_counts(client: &Client, table: &str) -> BTreeMap<String, i64> {
    let description = describe(client, table).await;
    let mut counts = BTreeMap::new();
    for index in description.global_secondary_indexes() {
        counts.insert(
            index.index_name().unwrap().to_string(),
            index.item_count().unwrap(),
        );
    }
    for index in description.local_secondary_indexes() {
        counts.insert(
            index.index_name().unwrap().to_string(),
            index.item_count().unwrap(),
        );
    }
    counts
}

// ---------------------------------------------------------------------------------------------
// CreateTable and DescribeTable.

#[tokio::test]
async fn create_table_with_indexes_describes_every_index_field() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let created = create_standard(&client).await;
    assert_eq!(created.local_secondary_indexes().len(), 1);
    assert_eq!(created.global_secondary_indexes().len(), 3);

    put(
        &client,
        "items",
        item(&[
            ("pk", s("p")),
            ("sk", n(1)),
            ("gk", s("x")),
            ("gs", n(5)),
            ("ls", s("l")),
            ("a", s("aaa")),
            ("b", s("bbb")),
        ]),
    )
    .await;
    let table = describe(&client, "items").await;
    let arn = table.table_arn().unwrap().to_string();

    let local = &table.local_secondary_indexes()[0];
    assert_eq!(local.index_name(), Some("by_ls"));
    assert_eq!(local.key_schema(), keys("pk", Some("ls")).as_slice());
    assert_eq!(
        local.projection().unwrap().projection_type(),
        Some(&ProjectionType::KeysOnly)
    );
    assert_eq!(
        local.index_arn(),
        Some(format!("{arn}/index/by_ls").as_str())
    );
    assert_eq!(local.item_count(), Some(1));
    // Names and values of pk ("p": 2 + 1), sk (1: 2 + 2) and ls ("l": 2 + 1).
    assert_eq!(local.index_size_bytes(), Some(10));

    let by_gk = global(&table, "by_gk").unwrap();
    assert_eq!(by_gk.key_schema(), keys("gk", Some("gs")).as_slice());
    assert_eq!(
        by_gk.projection().unwrap().projection_type(),
        Some(&ProjectionType::All)
    );
    assert_eq!(by_gk.index_status(), Some(&IndexStatus::Active));
    assert_eq!(
        by_gk.index_arn(),
        Some(format!("{arn}/index/by_gk").as_str())
    );
    assert_eq!(by_gk.item_count(), Some(1));
    assert!(by_gk.index_size_bytes().unwrap() > 8);
    // No throughput on an on-demand table's index.
    assert!(by_gk.provisioned_throughput().is_none());

    let by_gh = global(&table, "by_gh").unwrap();
    assert_eq!(by_gh.key_schema(), keys("gh", None).as_slice());
    assert_eq!(by_gh.index_status(), Some(&IndexStatus::Active));
    // Sparse: the item has no gh.
    assert_eq!(by_gh.item_count(), Some(0));
    assert_eq!(by_gh.index_size_bytes(), Some(0));

    let include = global(&table, "by_gk_inc").unwrap();
    let include_projection = include.projection().unwrap();
    assert_eq!(
        include_projection.projection_type(),
        Some(&ProjectionType::Include)
    );
    assert_eq!(include_projection.non_key_attributes(), ["a".to_string()]);
    assert_eq!(include.item_count(), Some(1));
}

#[tokio::test]
async fn provisioned_table_global_indexes_have_throughput() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let create = || {
        client
            .create_table()
            .table_name("prov")
            .attribute_definitions(definition("pk", ScalarAttributeType::S))
            .attribute_definitions(definition("gk", ScalarAttributeType::S))
            .set_key_schema(Some(keys("pk", None)))
            .provisioned_throughput(throughput(5, 5))
    };
    let (code, message) = error_of(
        create()
            .global_secondary_indexes(gsi(
                "by_gk",
                "gk",
                None,
                projection(ProjectionType::All, &[]),
            ))
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "No provisioned throughput specified for the global secondary index"
    );

    let index = GlobalSecondaryIndex::builder()
        .index_name("by_gk")
        .set_key_schema(Some(keys("gk", None)))
        .projection(projection(ProjectionType::All, &[]))
        .provisioned_throughput(throughput(3, 7))
        .build()
        .unwrap();
    create()
        .global_secondary_indexes(index)
        .send()
        .await
        .unwrap();
    let table = describe(&client, "prov").await;
    let described = global(&table, "by_gk").unwrap();
    let provisioned = described.provisioned_throughput().unwrap();
    assert_eq!(provisioned.read_capacity_units(), Some(3));
    assert_eq!(provisioned.write_capacity_units(), Some(7));
    assert_eq!(provisioned.number_of_decreases_today(), Some(0));
}

/// Each invalid CreateTable and the error Haven gives (DynamoDB's).
#[tokio::test]
async fn create_table_index_validation_errors() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let base = || {
        client
            .create_table()
            .table_name("bad")
            .set_key_schema(Some(keys("pk", Some("sk"))))
            .billing_mode(BillingMode::PayPerRequest)
    };
    let invalid = |detail: &str| {
        (
            "ValidationException".to_string(),
            format!("One or more parameter values were invalid: {detail}"),
        )
    };
    let keys_only = || projection(ProjectionType::KeysOnly, &[]);

    // Six local indexes.
    let mut request = base().set_attribute_definitions(Some(standard_definitions()));
    for i in 0..6 {
        request = request.local_secondary_indexes(lsi(&format!("local{i}"), "ls", keys_only()));
    }
    assert_eq!(
        error_of(request.send().await),
        invalid("Number of LocalSecondaryIndexes exceeds per-table limit of 5")
    );

    // Twenty-one global indexes.
    let mut request = base().set_attribute_definitions(Some(standard_definitions()));
    for i in 0..21 {
        request = request.global_secondary_indexes(gsi(
            &format!("global{i}"),
            "gk",
            Some("gs"),
            keys_only(),
        ));
    }
    request = request
        .local_secondary_indexes(lsi("by_ls", "ls", keys_only()))
        .global_secondary_indexes(gsi("by_gh", "gh", None, keys_only()));
    assert_eq!(
        error_of(request.send().await),
        invalid("GlobalSecondaryIndex count exceeds the per-table limit of 20")
    );

    // A local index with another partition key.
    let other_hash = LocalSecondaryIndex::builder()
        .index_name("by_other")
        .set_key_schema(Some(keys("gk", Some("ls"))))
        .projection(keys_only())
        .build()
        .unwrap();
    assert_eq!(
        error_of(
            base()
                .attribute_definitions(definition("pk", ScalarAttributeType::S))
                .attribute_definitions(definition("sk", ScalarAttributeType::N))
                .attribute_definitions(definition("gk", ScalarAttributeType::S))
                .attribute_definitions(definition("ls", ScalarAttributeType::S))
                .local_secondary_indexes(other_hash)
                .send()
                .await
        ),
        invalid(
            "Index KeySchema does not have the same leading hash key as table KeySchema for index: by_other. index hash key: gk, table hash key: pk"
        )
    );

    // An index key that AttributeDefinitions does not define.
    assert_eq!(
        error_of(
            base()
                .attribute_definitions(definition("pk", ScalarAttributeType::S))
                .attribute_definitions(definition("sk", ScalarAttributeType::N))
                .global_secondary_indexes(gsi("by_nope", "nope", None, keys_only()))
                .send()
                .await
        ),
        invalid(
            "Some index key attributes are not defined in AttributeDefinitions. Keys: [nope], AttributeDefinitions: [pk, sk]"
        )
    );

    let two_definitions = || {
        base()
            .attribute_definitions(definition("pk", ScalarAttributeType::S))
            .attribute_definitions(definition("sk", ScalarAttributeType::N))
            .attribute_definitions(definition("gk", ScalarAttributeType::S))
    };
    // INCLUDE without NonKeyAttributes.
    assert_eq!(
        error_of(
            two_definitions()
                .global_secondary_indexes(gsi(
                    "by_gk",
                    "gk",
                    None,
                    projection(ProjectionType::Include, &[])
                ))
                .send()
                .await
        ),
        (
            "ValidationException".to_string(),
            "If Projection type INCLUDE is specified, some non-key attributes to include in the projection must be specified as well".to_string()
        )
    );
    // NonKeyAttributes with KEYS_ONLY.
    assert_eq!(
        error_of(
            two_definitions()
                .global_secondary_indexes(gsi(
                    "by_gk",
                    "gk",
                    None,
                    projection(ProjectionType::KeysOnly, &["a"])
                ))
                .send()
                .await
        ),
        invalid("ProjectionType is KEYS_ONLY, but NonKeyAttributes is specified")
    );
    // An AttributeDefinition no key uses.
    assert_eq!(
        error_of(
            two_definitions()
                .attribute_definitions(definition("unused", ScalarAttributeType::B))
                .global_secondary_indexes(gsi("by_gk", "gk", None, keys_only()))
                .send()
                .await
        ),
        invalid(
            "Some AttributeDefinitions are not used. AttributeDefinitions: [pk, sk, gk, unused], keys used: [pk, sk, gk]"
        )
    );
    // None of them created a table.
    let tables = client.list_tables().send().await.unwrap();
    assert!(tables.table_names().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Maintenance on writes.

#[tokio::test]
async fn put_item_adds_and_replaces_index_entries() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_standard(&client).await;
    for i in 0..3 {
        put(
            &client,
            "items",
            item(&[("pk", s("p")), ("sk", n(i)), ("gk", s("x")), ("gs", n(i))]),
        )
        .await;
    }
    assert_eq!(query_gk(&client, "by_gk", "x").await.len(), 3);
    // Replacing an item moves its entry.
    put(
        &client,
        "items",
        item(&[("pk", s("p")), ("sk", n(1)), ("gk", s("y")), ("gs", n(1))]),
    )
    .await;
    assert_eq!(
        table_keys_of(&query_gk(&client, "by_gk", "x").await),
        [("p".into(), "0".into()), ("p".into(), "2".into())]
    );
    assert_eq!(
        table_keys_of(&query_gk(&client, "by_gk", "y").await),
        [("p".into(), "1".into())]
    );
    let counts = index_counts(&client, "items").await;
    assert_eq!(counts["by_gk"], 3);
    assert_eq!(counts["by_gk_inc"], 3);
    assert_eq!(counts["by_gh"], 0);
    assert_eq!(counts["by_ls"], 0);
}

#[tokio::test]
async fn update_item_changes_and_removes_index_keys() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_standard(&client).await;
    let key = item(&[("pk", s("p")), ("sk", n(1))]);
    let update = |expression: &str| {
        client
            .update_item()
            .table_name("items")
            .set_key(Some(key.clone()))
            .update_expression(expression)
    };
    // UpdateItem creating the item with index keys.
    update("SET gk = :x, gs = :one, gh = :one, ls = :l")
        .expression_attribute_values(":x", s("x"))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":l", s("l"))
        .send()
        .await
        .unwrap();
    assert_eq!(query_gk(&client, "by_gk", "x").await.len(), 1);
    assert_eq!(
        index_counts(&client, "items")
            .await
            .into_values()
            .collect::<Vec<_>>(),
        [1, 1, 1, 1]
    );
    // Changing the index sort key keeps one entry, with the new value.
    update("SET gs = :two")
        .expression_attribute_values(":two", n(2))
        .send()
        .await
        .unwrap();
    let entries = query_gk(&client, "by_gk", "x").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["gs"], n(2));
    // Changing the index partition key moves the entry.
    update("SET gk = :y")
        .expression_attribute_values(":y", s("y"))
        .send()
        .await
        .unwrap();
    assert!(query_gk(&client, "by_gk", "x").await.is_empty());
    assert_eq!(query_gk(&client, "by_gk", "y").await.len(), 1);
    assert_eq!(query_gk(&client, "by_gk_inc", "y").await.len(), 1);
    // Removing an index key removes the entry from the indexes keyed by it only.
    update("REMOVE gs, ls").send().await.unwrap();
    assert!(query_gk(&client, "by_gk", "y").await.is_empty());
    assert_eq!(query_gk(&client, "by_gk_inc", "y").await.len(), 1);
    let counts = index_counts(&client, "items").await;
    assert_eq!(
        counts,
        BTreeMap::from([
            ("by_gh".to_string(), 1),
            ("by_gk".to_string(), 0),
            ("by_gk_inc".to_string(), 1),
            ("by_ls".to_string(), 0),
        ])
    );
    assert!(scan_all(&client, "items", Some("by_ls")).await.is_empty());
    // A non-key attribute change updates the projection of indexes that project it.
    update("SET a = :a")
        .expression_attribute_values(":a", s("new"))
        .send()
        .await
        .unwrap();
    let included = query_gk(&client, "by_gk_inc", "y").await;
    assert_eq!(included[0]["a"], s("new"));
    let keys_only = scan_all(&client, "items", Some("by_gh")).await;
    assert_eq!(names(&keys_only[0]), ["gh", "pk", "sk"]);
}

#[tokio::test]
async fn delete_item_removes_index_entries() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_standard(&client).await;
    for i in 0..4 {
        put(
            &client,
            "items",
            item(&[
                ("pk", s("p")),
                ("sk", n(i)),
                ("gk", s("x")),
                ("gs", n(0)),
                ("gh", n(i % 2)),
                ("ls", s("l")),
            ]),
        )
        .await;
    }
    client
        .delete_item()
        .table_name("items")
        .key("pk", s("p"))
        .key("sk", n(2))
        .send()
        .await
        .unwrap();
    for index in ["by_gk", "by_gh", "by_gk_inc", "by_ls"] {
        let entries = scan_all(&client, "items", Some(index)).await;
        assert_eq!(
            table_keys_of(&entries),
            [
                ("p".into(), "0".into()),
                ("p".into(), "1".into()),
                ("p".into(), "3".into())
            ],
            "{index}"
        );
    }
    assert!(
        index_counts(&client, "items")
            .await
            .values()
            .all(|count| *count == 3)
    );
}

#[tokio::test]
async fn batch_write_item_maintains_indexes() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_standard(&client).await;
    let put_request = |i: i64, gk: &str| {
        WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .set_item(Some(item(&[
                        ("pk", s("p")),
                        ("sk", n(i)),
                        ("gk", s(gk)),
                        ("gs", n(i)),
                    ])))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let delete_request = |i: i64| {
        WriteRequest::builder()
            .delete_request(
                DeleteRequest::builder()
                    .set_key(Some(item(&[("pk", s("p")), ("sk", n(i))])))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let batch = |requests: Vec<WriteRequest>| {
        client
            .batch_write_item()
            .request_items("items", requests)
            .send()
    };
    batch((0..25).map(|i| put_request(i, "x")).collect())
        .await
        .unwrap();
    assert_eq!(query_gk(&client, "by_gk", "x").await.len(), 25);
    // Replace ten, delete five.
    let mut requests: Vec<WriteRequest> = (0..10).map(|i| put_request(i, "y")).collect();
    requests.extend((20..25).map(delete_request));
    let response = batch(requests).await.unwrap();
    assert!(response.unprocessed_items().is_none_or(|u| u.is_empty()));
    assert_eq!(query_gk(&client, "by_gk", "x").await.len(), 10);
    assert_eq!(query_gk(&client, "by_gk", "y").await.len(), 10);
    let counts = index_counts(&client, "items").await;
    assert_eq!(counts["by_gk"], 20);
    assert_eq!(counts["by_gk_inc"], 20);
}

#[tokio::test]
async fn sparse_indexes_hold_only_items_with_their_keys() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_standard(&client).await;
    for i in 0..30 {
        let mut attributes = vec![("pk", s(&format!("p{}", i % 3))), ("sk", n(i))];
        if i % 2 == 0 {
            attributes.push(("gk", s("x")));
        }
        if i % 3 == 0 {
            attributes.push(("gs", n(i)));
        }
        if i % 5 == 0 {
            attributes.push(("gh", n(i)));
        }
        if i % 7 == 0 {
            attributes.push(("ls", s("l")));
        }
        put(&client, "items", item(&attributes)).await;
    }
    // by_gk needs gk and gs: i % 6 == 0.
    let expect = |keep: &dyn Fn(i64) -> bool| -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = (0..30)
            .filter(|i| keep(*i))
            .map(|i| (format!("p{}", i % 3), i.to_string()))
            .collect();
        pairs.sort();
        pairs
    };
    let by_gk = scan_all(&client, "items", Some("by_gk")).await;
    assert_eq!(table_keys_of(&by_gk), expect(&|i| i % 6 == 0));
    let by_gk_inc = scan_all(&client, "items", Some("by_gk_inc")).await;
    assert_eq!(table_keys_of(&by_gk_inc), expect(&|i| i % 2 == 0));
    let by_gh = scan_all(&client, "items", Some("by_gh")).await;
    assert_eq!(table_keys_of(&by_gh), expect(&|i| i % 5 == 0));
    let by_ls = scan_all(&client, "items", Some("by_ls")).await;
    assert_eq!(table_keys_of(&by_ls), expect(&|i| i % 7 == 0));
    let counts = index_counts(&client, "items").await;
    assert_eq!(counts["by_gk"], 5);
    assert_eq!(counts["by_gk_inc"], 15);
    assert_eq!(counts["by_gh"], 6);
    assert_eq!(counts["by_ls"], 5);
}

#[tokio::test]
async fn wrong_index_key_type_is_refused() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_standard(&client).await;
    let mismatch = |attribute: &str, expected: &str, actual: &str, index: &str| {
        (
            "ValidationException".to_string(),
            format!(
                "One or more parameter values were invalid: Type mismatch for Index Key {attribute} Expected: {expected} Actual: {actual} IndexName: {index}"
            ),
        )
    };
    // PutItem: gk is declared S (by_gk, the first index keyed by it, is named).
    let (code, message) = error_of(
        client
            .put_item()
            .table_name("items")
            .set_item(Some(item(&[("pk", s("p")), ("sk", n(1)), ("gk", n(1))])))
            .send()
            .await,
    );
    assert_eq!((code, message), mismatch("gk", "S", "N", "by_gk"));
    // The local index's key.
    let result = client
        .put_item()
        .table_name("items")
        .set_item(Some(item(&[("pk", s("p")), ("sk", n(1)), ("ls", n(1))])))
        .send()
        .await;
    assert_eq!(error_of(result), mismatch("ls", "S", "N", "by_ls"));
    // UpdateItem.
    put(&client, "items", item(&[("pk", s("p")), ("sk", n(1))])).await;
    let result = client
        .update_item()
        .table_name("items")
        .key("pk", s("p"))
        .key("sk", n(1))
        .update_expression("SET gh = :v")
        .expression_attribute_values(":v", s("text"))
        .send()
        .await;
    assert_eq!(error_of(result), mismatch("gh", "N", "S", "by_gh"));
    // BatchWriteItem.
    let request = WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .set_item(Some(item(&[("pk", s("q")), ("sk", n(1)), ("gs", s("1"))])))
                .build()
                .unwrap(),
        )
        .build();
    let result = client
        .batch_write_item()
        .request_items("items", vec![request])
        .send()
        .await;
    assert_eq!(error_of(result), mismatch("gs", "N", "S", "by_gk"));
    // Nothing was written.
    let items = scan_all(&client, "items", None).await;
    assert_eq!(items, vec![item(&[("pk", s("p")), ("sk", n(1))])]);
    assert!(
        index_counts(&client, "items")
            .await
            .values()
            .all(|c| *c == 0)
    );
}

#[tokio::test]
async fn empty_index_key_string_is_refused() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_standard(&client).await;
    let expected = |index: &str, key: &str| {
        (
            "ValidationException".to_string(),
            format!(
                "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty string value. IndexName: {index}, IndexKey: {key}"
            ),
        )
    };
    let result = client
        .put_item()
        .table_name("items")
        .set_item(Some(item(&[("pk", s("p")), ("sk", n(1)), ("gk", s(""))])))
        .send()
        .await;
    assert_eq!(error_of(result), expected("by_gk", "gk"));
    let result = client
        .update_item()
        .table_name("items")
        .key("pk", s("p"))
        .key("sk", n(1))
        .update_expression("SET ls = :e")
        .expression_attribute_values(":e", s(""))
        .send()
        .await;
    assert_eq!(
        error_of(result),
        (
            "ValidationException".to_string(),
            UPDATE_EMPTY_INDEX_KEY.to_string()
        )
    );
    // An empty string is fine in an attribute no index is keyed by.
    put(
        &client,
        "items",
        item(&[("pk", s("p")), ("sk", n(1)), ("a", s(""))]),
    )
    .await;
    assert_eq!(scan_all(&client, "items", None).await.len(), 1);
}

#[tokio::test]
async fn projections_all_keys_only_and_include() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_standard(&client).await;
    let full = item(&[
        ("pk", s("p")),
        ("sk", n(1)),
        ("gk", s("x")),
        ("gs", n(2)),
        ("gh", n(3)),
        ("ls", s("l")),
        ("a", s("included")),
        ("b", s("not included")),
    ]);
    put(&client, "items", full.clone()).await;
    // ALL: the whole item.
    assert_eq!(
        scan_all(&client, "items", Some("by_gk")).await,
        vec![full.clone()]
    );
    // KEYS_ONLY: table keys and index keys.
    let keys_only = scan_all(&client, "items", Some("by_gh")).await;
    assert_eq!(names(&keys_only[0]), ["gh", "pk", "sk"]);
    let local = scan_all(&client, "items", Some("by_ls")).await;
    assert_eq!(names(&local[0]), ["ls", "pk", "sk"]);
    // INCLUDE: keys and the listed attributes.
    let included = scan_all(&client, "items", Some("by_gk_inc")).await;
    assert_eq!(names(&included[0]), ["a", "gk", "pk", "sk"]);
    assert_eq!(included[0]["a"], s("included"));
}

// ---------------------------------------------------------------------------------------------
// Query and Scan on indexes.

/// 60 items over 3 partitions: gk = g{i % 4}, gs = i % 5 (many equal index keys), gh = i % 3.
async fn load_sixty(client: &Client) {
    for i in 0..60 {
        put(
            client,
            "items",
            item(&[
                ("pk", s(&format!("p{}", i % 3))),
                ("sk", n(i)),
                ("gk", s(&format!("g{}", i % 4))),
                ("gs", n(i % 5)),
                ("gh", n(i % 3)),
                ("ls", s(&format!("l{:02}", 60 - i))),
                ("a", n(i)),
                ("b", n(i)),
            ]),
        )
        .await;
    }
}

#[tokio::test]
async fn query_and_scan_on_indexes() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_standard(&client).await;
    load_sixty(&client).await;
    // Query a global index: ordered by gs, then by table key; a range condition; backwards.
    let page = client
        .query()
        .table_name("items")
        .index_name("by_gk")
        .key_condition_expression("gk = :g AND gs BETWEEN :low AND :high")
        .expression_attribute_values(":g", s("g1"))
        .expression_attribute_values(":low", n(1))
        .expression_attribute_values(":high", n(3))
        .scan_index_forward(false)
        .send()
        .await
        .unwrap();
    let found: Vec<(i64, i64)> = page
        .items()
        .iter()
        .map(|i| {
            (
                i["gs"].as_n().unwrap().parse().unwrap(),
                i["sk"].as_n().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let mut expected: Vec<(String, i64, i64)> = (0..60i64)
        .filter(|i| i % 4 == 1 && (1..=3).contains(&(i % 5)))
        .map(|i| (format!("p{}", i % 3), i % 5, i))
        .collect();
    // Entries with equal index keys are ordered by table key (pk, then sk).
    expected.sort_by(|a, b| (a.1, &a.0, a.2).cmp(&(b.1, &b.0, b.2)));
    expected.reverse();
    assert_eq!(
        found,
        expected
            .iter()
            .map(|(_, gs, sk)| (*gs, *sk))
            .collect::<Vec<_>>()
    );
    assert_eq!(page.count(), expected.len() as i32);

    // Query a local index: one partition, ordered by ls.
    let local = client
        .query()
        .table_name("items")
        .index_name("by_ls")
        .key_condition_expression("pk = :p AND ls < :l")
        .expression_attribute_values(":p", s("p0"))
        .expression_attribute_values(":l", s("l30"))
        .send()
        .await
        .unwrap();
    let ls: Vec<&str> = local
        .items()
        .iter()
        .map(|i| i["ls"].as_s().unwrap().as_str())
        .collect();
    let mut expected_ls: Vec<String> = (0..60)
        .filter(|i| i % 3 == 0 && 60 - i < 30)
        .map(|i| format!("l{:02}", 60 - i))
        .collect();
    expected_ls.sort();
    assert_eq!(ls, expected_ls);

    // Query the hash-only index with a filter on a projected attribute; Scan a global index.
    let filtered = client
        .query()
        .table_name("items")
        .index_name("by_gh")
        .key_condition_expression("gh = :h")
        .filter_expression("sk < :s")
        .expression_attribute_values(":h", n(2))
        .expression_attribute_values(":s", n(30))
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.count(), 10);
    assert_eq!(filtered.scanned_count(), 20);
    let scanned = scan_all(&client, "items", Some("by_gk_inc")).await;
    assert_eq!(scanned.len(), 60);
}

#[tokio::test]
async fn parallel_scan_of_a_global_index() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_standard(&client).await;
    // 400 items over 400 index partitions, so that every segment has some.
    let requests: Vec<WriteRequest> = (0..400)
        .map(|i| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item(&[
                            ("pk", s(&format!("p{}", i % 7))),
                            ("sk", n(i)),
                            ("gk", s(&format!("g{i}"))),
                            ("gs", n(i % 3)),
                        ])))
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect();
    for chunk in requests.chunks(25) {
        client
            .batch_write_item()
            .request_items("items", chunk.to_vec())
            .send()
            .await
            .unwrap();
    }
    let segments = parallel_scan(&client, "items", Some("by_gk")).await;
    // Again with pages of 17 entries: each segment resumes from index LastEvaluatedKeys.
    let paged = parallel_scan_pages(&client, "items", Some("by_gk"), Some(17)).await;
    assert_eq!(paged, segments);
    let mut seen = BTreeSet::new();
    for (number, segment) in segments.iter().enumerate() {
        assert!(!segment.is_empty(), "segment {number} is empty");
        for entry in segment {
            assert!(
                seen.insert(canonical(entry)),
                "an entry is in two segments: {entry:?}"
            );
        }
    }
    let whole = canonical_set(&scan_all(&client, "items", Some("by_gk")).await);
    assert_eq!(seen, whole);
    assert_eq!(seen.len(), 400);
}

#[tokio::test]
async fn index_pages_resume_from_index_last_evaluated_keys() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_standard(&client).await;
    load_sixty(&client).await;
    // The first page's LastEvaluatedKey carries the table key and the index key.
    let first = client
        .query()
        .table_name("items")
        .index_name("by_gk")
        .key_condition_expression("gk = :g")
        .expression_attribute_values(":g", s("g2"))
        .limit(4)
        .send()
        .await
        .unwrap();
    let last = first.last_evaluated_key().unwrap();
    let mut key_names: Vec<&str> = last.keys().map(String::as_str).collect();
    key_names.sort();
    assert_eq!(key_names, ["gk", "gs", "pk", "sk"]);
    let last = scan_first_page_key(&client, "by_gh").await;
    let mut key_names: Vec<&str> = last.keys().map(String::as_str).collect();
    key_names.sort();
    assert_eq!(key_names, ["gh", "pk", "sk"]);

    // The paginator with a small Limit: every entry once, in index order, for each index.
    let whole_query = query_gk(&client, "by_gk", "g2").await;
    let paged: Vec<Item> = client
        .query()
        .table_name("items")
        .index_name("by_gk")
        .key_condition_expression("gk = :g")
        .expression_attribute_values(":g", s("g2"))
        .limit(4)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(paged, whole_query);
    assert_eq!(paged.len(), 15);
    for index in ["by_gk", "by_gh", "by_gk_inc", "by_ls"] {
        let mut pages = 0;
        let mut stream = client
            .scan()
            .table_name("items")
            .index_name(index)
            .limit(7)
            .into_paginator()
            .send();
        let mut entries = Vec::new();
        while let Some(page) = stream.next().await {
            let page = page.unwrap();
            pages += 1;
            entries.extend(page.items().iter().cloned());
        }
        assert!(pages >= 9, "{index}: {pages} pages");
        assert_eq!(
            canonical_set(&entries),
            canonical_set(&scan_all(&client, "items", Some(index)).await),
            "{index}"
        );
        assert_eq!(entries.len(), 60, "{index}");
    }
}

async fn scan_first_page_key(client: &Client, index: &str) -> Item {
    client
        .scan()
        .table_name("items")
        .index_name(index)
        .limit(5)
        .send()
        .await
        .unwrap()
        .last_evaluated_key()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn select_on_indexes() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_standard(&client).await;
    load_sixty(&client).await;
    let query = |index: &str, select: Select| {
        client
            .query()
            .table_name("items")
            .index_name(index)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s("p1"))
            .select(select)
    };
    // ALL_PROJECTED_ATTRIBUTES on a KEYS_ONLY local index: its keys.
    let projected = query("by_ls", Select::AllProjectedAttributes)
        .send()
        .await
        .unwrap();
    assert_eq!(projected.count(), 20);
    assert!(
        projected
            .items()
            .iter()
            .all(|i| names(i) == ["ls", "pk", "sk"])
    );
    // ALL_ATTRIBUTES on it: whole items, fetched from the table.
    let fetched = query("by_ls", Select::AllAttributes).send().await.unwrap();
    assert_eq!(fetched.count(), 20);
    assert!(
        fetched
            .items()
            .iter()
            .all(|i| names(i) == ["a", "b", "gh", "gk", "gs", "ls", "pk", "sk"])
    );
    // A ProjectionExpression naming an attribute the local index lacks fetches too.
    let specific = client
        .query()
        .table_name("items")
        .index_name("by_ls")
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s("p1"))
        .projection_expression("sk, b")
        .send()
        .await
        .unwrap();
    assert!(specific.items().iter().all(|i| names(i) == ["b", "sk"]));

    // ALL_PROJECTED_ATTRIBUTES on the INCLUDE global index.
    let included = client
        .scan()
        .table_name("items")
        .index_name("by_gk_inc")
        .select(Select::AllProjectedAttributes)
        .send()
        .await
        .unwrap();
    assert!(
        included
            .items()
            .iter()
            .all(|i| names(i) == ["a", "gk", "pk", "sk"])
    );
    // ALL_ATTRIBUTES on a global index without the ALL projection is an error; on an ALL one fine.
    let result = client
        .scan()
        .table_name("items")
        .index_name("by_gk_inc")
        .select(Select::AllAttributes)
        .send()
        .await;
    assert_eq!(
        error_of(result),
        (
            "ValidationException".to_string(),
            "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index by_gk_inc because its projection type is not ALL".to_string()
        )
    );
    let all = client
        .scan()
        .table_name("items")
        .index_name("by_gk")
        .select(Select::AllAttributes)
        .send()
        .await
        .unwrap();
    assert_eq!(all.count(), 60);
    // COUNT.
    let counted = client
        .scan()
        .table_name("items")
        .index_name("by_gh")
        .select(Select::Count)
        .send()
        .await
        .unwrap();
    assert_eq!(counted.count(), 60);
    assert!(counted.items().is_empty());
}

#[tokio::test]
async fn consistent_read_on_a_global_index_and_unknown_indexes_are_errors() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_standard(&client).await;
    let consistent = (
        "ValidationException".to_string(),
        "Consistent reads are not supported on global secondary indexes".to_string(),
    );
    let result = client
        .query()
        .table_name("items")
        .index_name("by_gk")
        .key_condition_expression("gk = :g")
        .expression_attribute_values(":g", s("x"))
        .consistent_read(true)
        .send()
        .await;
    assert_eq!(error_of(result), consistent);
    let result = client
        .scan()
        .table_name("items")
        .index_name("by_gh")
        .consistent_read(true)
        .send()
        .await;
    assert_eq!(error_of(result), consistent);
    // A local index may be read consistently.
    client
        .query()
        .table_name("items")
        .index_name("by_ls")
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s("p"))
        .consistent_read(true)
        .send()
        .await
        .unwrap();

    let unknown = (
        "ValidationException".to_string(),
        "The table does not have the specified index: nope".to_string(),
    );
    let result = client
        .query()
        .table_name("items")
        .index_name("nope")
        .key_condition_expression("gk = :g")
        .expression_attribute_values(":g", s("x"))
        .send()
        .await;
    assert_eq!(error_of(result), unknown);
    let result = client
        .scan()
        .table_name("items")
        .index_name("nope")
        .send()
        .await;
    assert_eq!(error_of(result), unknown);
}

// ---------------------------------------------------------------------------------------------
// UpdateTable: creating and deleting global indexes.

fn create_index_update(
    name: &str,
    hash: &str,
    projection: Projection,
) -> GlobalSecondaryIndexUpdate {
    GlobalSecondaryIndexUpdate::builder()
        .create(
            CreateGlobalSecondaryIndexAction::builder()
                .index_name(name)
                .set_key_schema(Some(keys(hash, None)))
                .projection(projection)
                .build()
                .unwrap(),
        )
        .build()
}

fn delete_index_update(name: &str) -> GlobalSecondaryIndexUpdate {
    GlobalSecondaryIndexUpdate::builder()
        .delete(
            DeleteGlobalSecondaryIndexAction::builder()
                .index_name(name)
                .build()
                .unwrap(),
        )
        .build()
}

/// Polls DescribeTable until `index`'s status is `status` (None: the index is gone).
async fn wait_for_index(client: &Client, table: &str, index: &str, status: Option<IndexStatus>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let description = describe(client, table).await;
        let current = global(&description, index).map(|i| i.index_status().unwrap().clone());
        if current == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "index {index} still {current:?}, waiting for {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The big table's items: `pk` = k{i:06}; `g` (N) on two items in three; `v` on all.
fn big_item(i: usize) -> Item {
    let mut attributes = vec![("pk", s(&format!("k{i:06}"))), ("v", n(i))];
    if !i.is_multiple_of(3) {
        attributes.push(("g", n(i % 1000)));
    }
    item(&attributes)
}

/// Creates table `big` (hash key `pk`) and loads `count` items with BatchWriteItem, 25 per call,
/// from 8 concurrent tasks.
async fn load_big(client: &Client, count: usize) {
    client
        .create_table()
        .table_name("big")
        .attribute_definitions(definition("pk", ScalarAttributeType::S))
        .set_key_schema(Some(keys("pk", None)))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let start = next.fetch_add(25, Ordering::Relaxed);
                if start >= count {
                    return;
                }
                let mut requests: Vec<WriteRequest> = (start..(start + 25).min(count))
                    .map(|i| {
                        WriteRequest::builder()
                            .put_request(
                                PutRequest::builder()
                                    .set_item(Some(big_item(i)))
                                    .build()
                                    .unwrap(),
                            )
                            .build()
                    })
                    .collect();
                while !requests.is_empty() {
                    let response = client
                        .batch_write_item()
                        .request_items("big", requests)
                        .send()
                        .await
                        .unwrap();
                    requests = response
                        .unprocessed_items
                        .and_then(|mut u| u.remove("big"))
                        .unwrap_or_default();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Checks that index `by_g` of table `big` (hash `g`, INCLUDE `v`... as given by `projected`)
/// holds exactly the entries recomputed from a scan of the table, and that its ItemCount agrees.
async fn check_big_index(client: &Client, index: &str, projected: &[&str]) -> usize {
    let table = parallel_scan(client, "big", None).await.concat();
    let expected: Vec<Item> = table
        .iter()
        .filter(|i| i.contains_key("g"))
        .map(|i| {
            i.iter()
                .filter(|(name, _)| {
                    ["pk", "g"].contains(&name.as_str()) || projected.contains(&name.as_str())
                })
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect()
        })
        .collect();
    let entries = parallel_scan(client, "big", Some(index)).await.concat();
    let expected_set = canonical_set(&expected);
    let actual_set = canonical_set(&entries);
    if expected_set != actual_set {
        let missing: Vec<_> = expected_set.difference(&actual_set).take(5).collect();
        let extra: Vec<_> = actual_set.difference(&expected_set).take(5).collect();
        panic!(
            "index {index}: {} entries, expected {}; missing (first 5) {missing:?}; extra (first 5) {extra:?}",
            actual_set.len(),
            expected_set.len()
        );
    }
    let description = describe(client, "big").await;
    assert_eq!(
        global(&description, index).unwrap().item_count(),
        Some(expected.len() as i64),
        "ItemCount of {index}"
    );
    expected.len()
}

/// What a writer did last to a key: the item it left (None: deleted).
type WriterLog = HashMap<String, Option<Item>>;

/// Writes random puts, updates (changing, removing or adding `g`, or `v`) and deletes on the keys
/// `i % writers == id` (of 0..110 000, so some are new) until told to stop; returns what it left.
async fn writer(
    client: Client,
    id: usize,
    writers: usize,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
) -> WriterLog {
    let mut log = WriterLog::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1);
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    while !stop.load(Ordering::Relaxed) {
        let i = (random() as usize % (110_000 / writers)) * writers + id;
        let key = format!("k{i:06}");
        let choice = random() % 10;
        let g = n(random() % 1000);
        let left = match choice {
            0..=2 => {
                let mut new = item(&[("pk", s(&key)), ("v", n(random() % 100))]);
                if choice != 0 {
                    new.insert("g".into(), g);
                }
                put(&client, "big", new.clone()).await;
                Some(new)
            }
            3..=7 => {
                let update = client
                    .update_item()
                    .table_name("big")
                    .key("pk", s(&key))
                    .return_values(ReturnValue::AllNew);
                let update = match choice {
                    3 | 4 => update
                        .update_expression("SET g = :g")
                        .expression_attribute_values(":g", g),
                    5 => update.update_expression("REMOVE g"),
                    _ => update
                        .update_expression("SET v = :v")
                        .expression_attribute_values(":v", n(random() % 100)),
                };
                let attributes = update.send().await.unwrap().attributes.unwrap_or_default();
                Some(attributes)
            }
            _ => {
                client
                    .delete_item()
                    .table_name("big")
                    .key("pk", s(&key))
                    .send()
                    .await
                    .unwrap();
                None
            }
        };
        log.insert(key, left);
        done.fetch_add(1, Ordering::Relaxed);
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_index_backfills_while_writers_write() {
    const ITEMS: usize = 100_000;
    const WRITERS: usize = 4;
    let server = HavenServer::start_in_memory();
    let client = server.client();
    load_big(&client, ITEMS).await;

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| {
            tokio::spawn(writer(
                client.clone(),
                id,
                WRITERS,
                stop.clone(),
                done.clone(),
            ))
        })
        .collect();
    let response = client
        .update_table()
        .table_name("big")
        .attribute_definitions(definition("g", ScalarAttributeType::N))
        .global_secondary_index_updates(create_index_update(
            "by_g",
            "g",
            projection(ProjectionType::Include, &["v"]),
        ))
        .send()
        .await
        .unwrap();
    let started = done.load(Ordering::Relaxed);
    let description = response.table_description.unwrap();
    let created = global(&description, "by_g").unwrap();
    assert_eq!(created.index_status(), Some(&IndexStatus::Creating));
    assert_eq!(created.backfilling(), Some(true));
    // While CREATING the index cannot be read.
    let result = client
        .scan()
        .table_name("big")
        .index_name("by_g")
        .send()
        .await;
    if let Err(error) = result {
        let (code, message) = error_of::<(), _, _>(Err(error));
        assert_eq!(code, "ValidationException");
        assert_eq!(
            message,
            "Cannot read from backfilling global secondary index: by_g"
        );
    }
    wait_for_index(&client, "big", "by_g", Some(IndexStatus::Active)).await;
    let during = done.load(Ordering::Relaxed) - started;
    // Keep writing a little after ACTIVE, then stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut logs = WriterLog::new();
    for task in writers {
        logs.extend(task.await.unwrap());
    }
    assert!(during > 0, "no write overlapped the backfill");

    // The table holds what the loader and the writers left.
    let table = parallel_scan(&client, "big", None).await.concat();
    let mut expected: HashMap<String, Item> = (0..ITEMS)
        .map(|i| (format!("k{i:06}"), big_item(i)))
        .collect();
    for (key, left) in &logs {
        match left {
            Some(item) => expected.insert(key.clone(), item.clone()),
            None => expected.remove(key),
        };
    }
    let actual: HashMap<String, Item> = table
        .into_iter()
        .map(|i| (i["pk"].as_s().unwrap().clone(), i))
        .collect();
    assert_eq!(actual.len(), expected.len());
    assert!(
        actual == expected,
        "the table differs from what the writers did"
    );

    let entries = check_big_index(&client, "by_g", &["v"]).await;
    println!(
        "{} writes ({during} during the backfill) on {} keys; by_g holds {entries} entries",
        done.load(Ordering::Relaxed),
        logs.len()
    );
}

#[tokio::test]
async fn created_index_is_creating_then_active_and_delete_is_deleting_then_gone() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    load_big(&client, 2_000).await;
    let response = client
        .update_table()
        .table_name("big")
        .attribute_definitions(definition("g", ScalarAttributeType::N))
        .global_secondary_index_updates(create_index_update(
            "by_g",
            "g",
            projection(ProjectionType::KeysOnly, &[]),
        ))
        .send()
        .await
        .unwrap();
    let description = response.table_description.unwrap();
    assert_eq!(
        global(&description, "by_g").unwrap().index_status(),
        Some(&IndexStatus::Creating)
    );
    wait_for_index(&client, "big", "by_g", Some(IndexStatus::Active)).await;
    let description = describe(&client, "big").await;
    let active = global(&description, "by_g").unwrap();
    assert_eq!(active.backfilling(), None);
    assert_eq!(active.item_count(), Some(1_333));
    check_big_index(&client, "by_g", &[]).await;
    let entries = client
        .query()
        .table_name("big")
        .index_name("by_g")
        .key_condition_expression("g = :g")
        .expression_attribute_values(":g", n(7))
        .send()
        .await
        .unwrap();
    assert_eq!(entries.count(), 2); // k000007, k001007

    // Delete: DELETING, then gone, and then unknown to reads.
    let response = client
        .update_table()
        .table_name("big")
        .global_secondary_index_updates(delete_index_update("by_g"))
        .send()
        .await
        .unwrap();
    let description = response.table_description.unwrap();
    assert_eq!(
        global(&description, "by_g").unwrap().index_status(),
        Some(&IndexStatus::Deleting)
    );
    wait_for_index(&client, "big", "by_g", None).await;
    // The definition only the index used goes with it, as in DynamoDB.
    let description = describe(&client, "big").await;
    assert_eq!(
        description.attribute_definitions(),
        [definition("pk", ScalarAttributeType::S)]
    );
    let result = client
        .scan()
        .table_name("big")
        .index_name("by_g")
        .send()
        .await;
    assert_eq!(
        error_of(result).1,
        "The table does not have the specified index: by_g"
    );
    // Writes go on, and the same name can be created again.
    put(&client, "big", big_item(5_000)).await;
    client
        .update_table()
        .table_name("big")
        .attribute_definitions(definition("g", ScalarAttributeType::N))
        .global_secondary_index_updates(create_index_update(
            "by_g",
            "g",
            projection(ProjectionType::All, &[]),
        ))
        .send()
        .await
        .unwrap();
    wait_for_index(&client, "big", "by_g", Some(IndexStatus::Active)).await;
    assert_eq!(check_big_index(&client, "by_g", &["v"]).await, 1_334);
}

/// Items written before an index exists may violate its key: a value of another type, or an empty
/// string. The backfill leaves them out of the index (DynamoDB's "index key violations"), and
/// later writes that keep the violation are refused.
#[tokio::test]
async fn backfill_skips_items_that_violate_the_index_key() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    common::create_table(&client, "mixed", &[("pk", "S")]).await;
    let items = [
        item(&[("pk", s("a")), ("g", s("x")), ("h", n(1))]),
        item(&[("pk", s("b")), ("g", s("")), ("h", n(1))]),
        item(&[("pk", s("c")), ("g", n(5)), ("h", n(1))]),
        item(&[("pk", s("d")), ("h", n(1))]),
        item(&[("pk", s("e")), ("g", s("y")), ("h", s(""))]),
        item(&[("pk", s("f")), ("g", s("z")), ("h", n(2))]),
    ];
    for item in &items {
        put(&client, "mixed", item.clone()).await;
    }
    // By g (S) alone, and by g with range h (N).
    for (name, range) in [("by_g", None), ("by_g_h", Some("h"))] {
        let mut request = client
            .update_table()
            .table_name("mixed")
            .attribute_definitions(definition("g", ScalarAttributeType::S));
        if range.is_some() {
            request = request.attribute_definitions(definition("h", ScalarAttributeType::N));
        }
        request
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder()
                    .create(
                        CreateGlobalSecondaryIndexAction::builder()
                            .index_name(name)
                            .set_key_schema(Some(keys("g", range)))
                            .projection(projection(ProjectionType::KeysOnly, &[]))
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        wait_for_index(&client, "mixed", name, Some(IndexStatus::Active)).await;
    }
    let keys_in = |entries: Vec<Item>| {
        let mut keys: Vec<String> = entries
            .iter()
            .map(|i| i["pk"].as_s().unwrap().clone())
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys_in(scan_all(&client, "mixed", Some("by_g")).await),
        ["a", "e", "f"]
    );
    assert_eq!(
        keys_in(scan_all(&client, "mixed", Some("by_g_h")).await),
        ["a", "f"]
    );
    let counts = index_counts(&client, "mixed").await;
    assert_eq!(counts["by_g"], 3);
    assert_eq!(counts["by_g_h"], 2);
    // A write that keeps the empty index key is refused; one that fixes it is indexed.
    let result = client
        .update_item()
        .table_name("mixed")
        .key("pk", s("b"))
        .update_expression("SET v = :v")
        .expression_attribute_values(":v", n(1))
        .send()
        .await;
    assert_eq!(
        error_of(result),
        (
            "ValidationException".to_string(),
            UPDATE_EMPTY_INDEX_KEY.to_string()
        )
    );
    client
        .update_item()
        .table_name("mixed")
        .key("pk", s("b"))
        .update_expression("SET g = :g")
        .expression_attribute_values(":g", s("w"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        keys_in(scan_all(&client, "mixed", Some("by_g_h")).await),
        ["a", "b", "f"]
    );
    assert_eq!(index_counts(&client, "mixed").await["by_g_h"], 3);
}

/// DynamoDB has no way to add (or delete) a local index after CreateTable: UpdateTable has no
/// LocalSecondaryIndexUpdates, and GlobalSecondaryIndexUpdates only knows global indexes.
#[tokio::test]
async fn local_indexes_cannot_be_changed_by_update_table() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_standard(&client).await;
    // Deleting the local index by name: not a global index.
    let result = client
        .update_table()
        .table_name("items")
        .global_secondary_index_updates(delete_index_update("by_ls"))
        .send()
        .await;
    assert_eq!(
        error_of(result),
        (
            "ResourceNotFoundException".to_string(),
            "Requested resource not found: Index: by_ls not found".to_string()
        )
    );
    // A made-up LocalSecondaryIndexUpdates member (the SDK has none) is ignored, as unknown
    // members are, so the request changes nothing.
    let body = serde_json::json!({
        "TableName": "items",
        "LocalSecondaryIndexUpdates": [{"Create": {
            "IndexName": "by_b",
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "b", "KeyType": "RANGE"}
            ],
            "Projection": {"ProjectionType": "ALL"}
        }}]
    });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(format!("{}/", server.endpoint()))
        .header("X-Amz-Target", "DynamoDB_20120810.UpdateTable")
        .header("Content-Type", "application/x-amz-json-1.0")
        .header("X-Amz-Date", "20240101T000000Z")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDTEST/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=0",
        )
        .send(body.to_string())
        .unwrap();
    let status = response.status().as_u16();
    let answer: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["__type"]
            .as_str()
            .unwrap()
            .ends_with("#ValidationException"),
        "{answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .starts_with("At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates"),
        "{answer}"
    );
    let description = describe(&client, "items").await;
    assert_eq!(description.local_secondary_indexes().len(), 1);
}

/// Index creation on disk, killed with SIGKILL half-way through the backfill: after a restart the
/// backfill resumes and the index becomes ACTIVE with exactly the right entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn index_creation_survives_a_kill_during_the_backfill() {
    let directory = tempfile::tempdir().unwrap();
    let server = HavenServer::start_on_disk(directory.path());
    let client = server.client();
    load_big(&client, 30_000).await;
    client
        .update_table()
        .table_name("big")
        .attribute_definitions(definition("g", ScalarAttributeType::N))
        .global_secondary_index_updates(create_index_update(
            "by_g",
            "g",
            projection(ProjectionType::Include, &["v"]),
        ))
        .send()
        .await
        .unwrap();
    // Wait until the backfill has written some entries, then kill the server.
    let deadline = Instant::now() + Duration::from_secs(30);
    let partial = loop {
        let description = describe(&client, "big").await;
        let index = global(&description, "by_g").unwrap();
        let count = index.item_count().unwrap();
        if index.index_status() != Some(&IndexStatus::Creating) || count > 0 {
            break (index.index_status().cloned(), count);
        }
        assert!(Instant::now() < deadline, "the backfill does not start");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    server.kill();
    assert_eq!(
        partial.0,
        Some(IndexStatus::Creating),
        "the backfill finished too soon"
    );
    assert!(partial.1 < 20_000, "{partial:?}");

    let server = HavenServer::start_on_disk(directory.path());
    let client = server.client();
    let description = describe(&client, "big").await;
    let status = global(&description, "by_g")
        .unwrap()
        .index_status()
        .cloned();
    println!("after the restart: {status:?}; before the kill: {partial:?}");
    wait_for_index(&client, "big", "by_g", Some(IndexStatus::Active)).await;
    assert_eq!(check_big_index(&client, "by_g", &["v"]).await, 20_000);
}

/// The `pk`s of the items of table `reuse` whose `attribute` (an index's hash key) is "x",
/// through the index `index`, sorted.
async fn query_x(client: &Client, index: &str, attribute: &str) -> Vec<String> {
    let items = client
        .query()
        .table_name("reuse")
        .index_name(index)
        .key_condition_expression("#a = :x")
        .expression_attribute_names("#a", attribute)
        .expression_attribute_values(":x", s("x"))
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let mut keys: Vec<String> = items
        .iter()
        .map(|i| i["pk"].as_s().unwrap().clone())
        .collect();
    keys.sort();
    keys
}

// An index's storage id is never reused: an index created as soon as the newest one is dropped
// gets a new id, so it neither sees the dropped index's entries nor loses its own to their
// removal.
#[tokio::test]
async fn an_index_created_right_after_the_newest_one_is_dropped_holds_exactly_its_items() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    common::create_table(&client, "reuse", &[("pk", "S")]).await;
    // The keys of every `every`th item (sorted, as query_x sorts).
    let every = |every: usize| -> Vec<String> {
        (0..30)
            .filter(|i| i % every == 0)
            .map(|i| format!("k{i:02}"))
            .collect()
    };
    for i in 0..30usize {
        let mut attributes = vec![("pk", s(&format!("k{i:02}"))), ("a", s("x"))];
        if i % 2 == 0 {
            attributes.push(("b", s("x")));
        }
        if i % 3 == 0 {
            attributes.push(("c", s("x")));
        }
        put(&client, "reuse", item(&attributes)).await;
    }
    let all = ProjectionType::All;
    let update = |change: GlobalSecondaryIndexUpdate, attribute: &str| {
        client
            .update_table()
            .table_name("reuse")
            .attribute_definitions(definition(attribute, ScalarAttributeType::S))
            .global_secondary_index_updates(change)
            .send()
    };
    for (name, attribute) in [("by_a", "a"), ("by_b", "b")] {
        update(
            create_index_update(name, attribute, projection(all.clone(), &[])),
            attribute,
        )
        .await
        .unwrap();
        wait_for_index(&client, "reuse", name, Some(IndexStatus::Active)).await;
    }
    update(delete_index_update("by_b"), "b").await.unwrap();
    // by_c goes in as soon as the table takes it (not while by_b is DELETING).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let created = update(
            create_index_update("by_c", "c", projection(all.clone(), &[])),
            "c",
        )
        .await;
        if created.is_ok() {
            break;
        }
        let (kind, message) = error_of(created);
        assert_eq!(kind, "LimitExceededException", "{message}");
        assert!(Instant::now() < deadline, "by_c was never accepted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_for_index(&client, "reuse", "by_c", Some(IndexStatus::Active)).await;
    assert!(global(&describe(&client, "reuse").await, "by_b").is_none());
    assert_eq!(query_x(&client, "by_c", "c").await, every(3));
    assert_eq!(query_x(&client, "by_a", "a").await, every(1));
    // Writes after the drop reach by_c, and nothing of by_b's.
    put(
        &client,
        "reuse",
        item(&[("pk", s("k99")), ("b", s("x")), ("c", s("x"))]),
    )
    .await;
    let mut expected = every(3);
    expected.push("k99".into());
    assert_eq!(query_x(&client, "by_c", "c").await, expected);
}
