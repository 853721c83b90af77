//! Global secondary indexes with multi-attribute keys (up to four partition and four sort
//! attributes) through the AWS SDK for Rust: CreateTable and DescribeTable, Query paged by the
//! SDK's paginator with sort conditions left to right (checked against a model of the index),
//! projections, items lacking a key attribute left out, UpdateTable building such an index over
//! existing items, the index surviving a restart, and the validation errors.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CreateGlobalSecondaryIndexAction,
    GlobalSecondaryIndex, GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, Select,
};
use common::{HavenServer, error_of};

type Item = HashMap<String, AttributeValue>;

/// A sort-key condition, its values, and which model items it keeps.
type SortCase<'a> = (
    &'a str,
    Vec<(&'a str, AttributeValue)>,
    Box<dyn Fn(&Item) -> bool>,
);

const TABLE: &str = "matches";
const ITEMS: usize = 120;

fn s(value: impl ToString) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A key schema element per (name, HASH or RANGE).
fn key_schema(keys: &[(&str, KeyType)]) -> Vec<KeySchemaElement> {
    keys.iter()
        .map(|(name, key_type)| {
            KeySchemaElement::builder()
                .attribute_name(*name)
                .key_type(key_type.clone())
                .build()
                .unwrap()
        })
        .collect()
}

fn definitions(names: &[(&str, ScalarAttributeType)]) -> Vec<AttributeDefinition> {
    names
        .iter()
        .map(|(name, kind)| {
            AttributeDefinition::builder()
                .attribute_name(*name)
                .attribute_type(kind.clone())
                .build()
                .unwrap()
        })
        .collect()
}

/// Partition (tournament, league), sort (round N, bracket S).
fn match_keys() -> Vec<KeySchemaElement> {
    key_schema(&[
        ("tournament", KeyType::Hash),
        ("league", KeyType::Hash),
        ("round", KeyType::Range),
        ("bracket", KeyType::Range),
    ])
}

fn match_definitions() -> Vec<AttributeDefinition> {
    definitions(&[
        ("pk", ScalarAttributeType::S),
        ("tournament", ScalarAttributeType::S),
        ("league", ScalarAttributeType::S),
        ("round", ScalarAttributeType::N),
        ("bracket", ScalarAttributeType::S),
    ])
}

fn gsi(name: &str, projection: Projection) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .set_key_schema(Some(match_keys()))
        .projection(projection)
        .build()
        .unwrap()
}

fn projection(kind: ProjectionType, non_key: &[&str]) -> Projection {
    let mut builder = Projection::builder().projection_type(kind);
    for name in non_key {
        builder = builder.non_key_attributes(*name);
    }
    builder.build()
}

/// Item `i`: two tournaments, two leagues, rounds -2..=2 (negatives sort first), brackets in a
/// scrambled order; every eleventh item lacks its bracket, every seventeenth its league, so
/// neither is in the index.
fn model_item(i: usize) -> Item {
    let mut item: Item = [
        ("pk".to_string(), s(format!("p{i:03}"))),
        ("tournament".to_string(), s(format!("T{}", i % 2))),
        (
            "league".to_string(),
            s(if i.is_multiple_of(3) { "EU" } else { "US" }),
        ),
        ("round".to_string(), n((i % 5) as i64 - 2)),
        ("bracket".to_string(), s(format!("b{}", (i * 7) % 13))),
        ("score".to_string(), n(i as i64 * 10)),
        ("note".to_string(), s(format!("note {i}"))),
    ]
    .into();
    if i.is_multiple_of(11) {
        item.remove("bracket");
    }
    if i.is_multiple_of(17) {
        item.remove("league");
    }
    item
}

fn text(item: &Item, name: &str) -> String {
    match &item[name] {
        AttributeValue::S(s) => s.clone(),
        AttributeValue::N(n) => n.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

fn round(item: &Item) -> i64 {
    text(item, "round").parse().unwrap()
}

/// The pks a Query of (tournament, league) returns, in index order: round numerically, bracket
/// by bytes, then the table key; `keep` narrows by sort attributes.
fn expected(tournament: &str, league: &str, keep: impl Fn(&Item) -> bool) -> Vec<String> {
    let mut items: Vec<Item> = (0..ITEMS)
        .map(model_item)
        .filter(|i| {
            ["tournament", "league", "round", "bracket"]
                .iter()
                .all(|k| i.contains_key(*k))
        })
        .filter(|i| text(i, "tournament") == tournament && text(i, "league") == league)
        .filter(|i| keep(i))
        .collect();
    items.sort_by_key(|i| (round(i), text(i, "bracket"), text(i, "pk")));
    items.iter().map(|i| text(i, "pk")).collect()
}

async fn put_items(client: &Client) {
    for i in 0..ITEMS {
        client
            .put_item()
            .table_name(TABLE)
            .set_item(Some(model_item(i)))
            .send()
            .await
            .unwrap();
    }
}

/// Every page of a Query (the SDK's paginator, `limit` items a page); asserts that each
/// LastEvaluatedKey carries the table key and every index key attribute.
async fn query_pages(
    client: &Client,
    index: &str,
    condition: &str,
    values: &[(&str, AttributeValue)],
    forward: bool,
) -> Vec<Item> {
    let mut request = client
        .query()
        .table_name(TABLE)
        .index_name(index)
        .key_condition_expression(condition)
        .scan_index_forward(forward)
        .limit(4);
    for (name, value) in values {
        request = request.expression_attribute_values(*name, value.clone());
    }
    let mut items = Vec::new();
    let mut pages = request.into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        if let Some(key) = page.last_evaluated_key() {
            let mut names: Vec<&str> = key.keys().map(String::as_str).collect();
            names.sort();
            assert_eq!(names, ["bracket", "league", "pk", "round", "tournament"]);
        }
        items.extend(page.items().iter().cloned());
    }
    items
}

fn pks(items: &[Item]) -> Vec<String> {
    items.iter().map(|i| text(i, "pk")).collect()
}

async fn create_table(client: &Client, indexes: Vec<GlobalSecondaryIndex>) {
    client
        .create_table()
        .table_name(TABLE)
        .set_attribute_definitions(Some(match_definitions()))
        .set_key_schema(Some(key_schema(&[("pk", KeyType::Hash)])))
        .set_global_secondary_indexes(Some(indexes))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn query_pages_a_multi_attribute_index_in_key_order() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(
        &client,
        vec![
            gsi("by_match", projection(ProjectionType::All, &[])),
            gsi("keys", projection(ProjectionType::KeysOnly, &[])),
        ],
    )
    .await;
    let description = client
        .describe_table()
        .table_name(TABLE)
        .send()
        .await
        .unwrap();
    let indexes = description.table().unwrap().global_secondary_indexes();
    assert_eq!(indexes[0].key_schema(), match_keys().as_slice());
    put_items(&client).await;

    let partition = [(":t", s("T1")), (":r", s("US"))];
    let forward = query_pages(
        &client,
        "by_match",
        "tournament = :t AND league = :r",
        &partition,
        true,
    )
    .await;
    let want = expected("T1", "US", |_| true);
    assert!(want.len() > 8, "the model spans several pages");
    assert_eq!(pks(&forward), want);
    assert_eq!(forward[0].len(), 7, "ALL projects every attribute");
    let mut backward = query_pages(
        &client,
        "by_match",
        "league = :r AND tournament = :t",
        &partition,
        false,
    )
    .await;
    backward.reverse();
    assert_eq!(pks(&backward), want);

    let conditions: [SortCase; 4] = [
        (
            "round > :a",
            vec![(":a", n(-1))],
            Box::new(|i| round(i) > -1),
        ),
        (
            "round BETWEEN :a AND :b",
            vec![(":a", n(-1)), (":b", n(1))],
            Box::new(|i| (-1..=1).contains(&round(i))),
        ),
        (
            "round = :a AND begins_with(bracket, :b)",
            vec![(":a", n(0)), (":b", s("b1"))],
            Box::new(|i| round(i) == 0 && text(i, "bracket").starts_with("b1")),
        ),
        (
            "round = :a AND bracket < :b",
            vec![(":a", n(2)), (":b", s("b5"))],
            Box::new(|i| round(i) == 2 && text(i, "bracket").as_str() < "b5"),
        ),
    ];
    for (sort, values, keep) in conditions {
        let condition = format!("tournament = :t AND league = :r AND {sort}");
        let values: Vec<_> = partition.iter().cloned().chain(values).collect();
        let got = query_pages(&client, "by_match", &condition, &values, true).await;
        assert_eq!(pks(&got), expected("T1", "US", keep), "{condition}");
    }

    let keys_only = query_pages(
        &client,
        "keys",
        "tournament = :t AND league = :r",
        &partition,
        true,
    )
    .await;
    assert_eq!(pks(&keys_only), want);
    let mut names: Vec<&str> = keys_only[0].keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["bracket", "league", "pk", "round", "tournament"]);
}

#[tokio::test]
async fn key_condition_and_projection_errors() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(
        &client,
        vec![gsi("keys", projection(ProjectionType::KeysOnly, &[]))],
    )
    .await;
    let cases = [
        (
            "tournament = :t",
            "HASH key attributes league must have equality conditions specified in the query",
        ),
        (
            "tournament = :t AND league = :r AND bracket = :b",
            "RANGE key attributes round must have equality conditions specified in the query because a condition is present on key attribute bracket",
        ),
        (
            "tournament = :t AND league = :r AND round = :b",
            "One or more parameter values were invalid: Condition parameter type does not match schema type",
        ),
        (
            "tournament = :t AND league = :r AND note = :b",
            "Query condition missed key schema element",
        ),
    ];
    for (condition, message) in cases {
        let mut request = client
            .query()
            .table_name(TABLE)
            .index_name("keys")
            .key_condition_expression(condition);
        for (name, value) in [(":t", s("T1")), (":r", s("US")), (":b", s("b1"))] {
            if condition.contains(name) {
                request = request.expression_attribute_values(name, value);
            }
        }
        let (code, got) = error_of(request.send().await);
        assert_eq!(
            (code.as_str(), got.as_str()),
            ("ValidationException", message)
        );
    }
    let (_, message) = error_of(
        client
            .query()
            .table_name(TABLE)
            .index_name("keys")
            .key_condition_expression("tournament = :t AND league = :r")
            .expression_attribute_values(":t", s("T1"))
            .expression_attribute_values(":r", s("US"))
            .select(Select::AllAttributes)
            .send()
            .await,
    );
    assert_eq!(
        message,
        "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index keys because its projection type is not ALL"
    );
}

/// CreateTable's refusals of malformed multi-attribute keys, in the real service's words.
#[tokio::test]
async fn create_table_validation_errors() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let five = ["a", "b", "c", "d", "e"];
    let hashes: Vec<_> = five.iter().map(|k| (*k, KeyType::Hash)).collect();
    let ranges: Vec<_> = std::iter::once(("a", KeyType::Hash))
        .chain(five[1..].iter().map(|k| (*k, KeyType::Range)))
        .chain([("f", KeyType::Range)])
        .collect();
    let cases: [(Vec<(&str, KeyType)>, &str); 4] = [
        (
            hashes,
            "One or more parameter values were invalid: The KeySchema exceeds the maximum allowed number of HASH key attributes",
        ),
        (
            ranges,
            "One or more parameter values were invalid: The KeySchema exceeds the maximum allowed number of RANGE key attributes",
        ),
        (
            vec![
                ("a", KeyType::Hash),
                ("b", KeyType::Range),
                ("c", KeyType::Hash),
            ],
            "One or more parameter values were invalid: All HASH key attributes must precede RANGE key attributes in the KeySchema",
        ),
        (
            vec![
                ("a", KeyType::Hash),
                ("b", KeyType::Hash),
                ("a", KeyType::Range),
            ],
            "The KeySchema contains multiple key attributes with the same name",
        ),
    ];
    for (keys, message) in cases {
        let mut names: Vec<&str> = keys.iter().map(|(name, _)| *name).collect();
        names.sort();
        names.dedup();
        let typed: Vec<_> = std::iter::once(("pk", ScalarAttributeType::S))
            .chain(names.iter().map(|name| (*name, ScalarAttributeType::S)))
            .collect();
        let index = GlobalSecondaryIndex::builder()
            .index_name("bad")
            .set_key_schema(Some(key_schema(&keys)))
            .projection(projection(ProjectionType::All, &[]))
            .build()
            .unwrap();
        let (code, got) = error_of(
            client
                .create_table()
                .table_name("refused")
                .set_attribute_definitions(Some(definitions(&typed)))
                .set_key_schema(Some(key_schema(&[("pk", KeyType::Hash)])))
                .global_secondary_indexes(index)
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await,
        );
        assert_eq!(
            (code.as_str(), got.as_str()),
            ("ValidationException", message)
        );
    }
}

/// UpdateTable builds a multi-attribute index over items written before it (leaving out those
/// that lack a key attribute), and a restart reads the stored metadata and entries back.
#[tokio::test]
async fn update_table_backfills_and_a_restart_keeps_the_index() {
    let data = tempfile::tempdir().unwrap();
    let server = HavenServer::start_on_disk(data.path());
    let client = server.client();
    create_table(
        &client,
        vec![gsi("first", projection(ProjectionType::KeysOnly, &[]))],
    )
    .await;
    put_items(&client).await;
    let create = CreateGlobalSecondaryIndexAction::builder()
        .index_name("by_match")
        .set_key_schema(Some(match_keys()))
        .projection(projection(ProjectionType::Include, &["score"]))
        .build()
        .unwrap();
    client
        .update_table()
        .table_name(TABLE)
        .set_attribute_definitions(Some(match_definitions()))
        .global_secondary_index_updates(
            GlobalSecondaryIndexUpdate::builder().create(create).build(),
        )
        .send()
        .await
        .unwrap();
    wait_until_active(&client, "by_match").await;
    let partition = [(":t", s("T0")), (":r", s("EU"))];
    let condition = "tournament = :t AND league = :r";
    let built = query_pages(&client, "by_match", condition, &partition, true).await;
    assert_eq!(pks(&built), expected("T0", "EU", |_| true));
    let mut names: Vec<&str> = built[0].keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        ["bracket", "league", "pk", "round", "score", "tournament"]
    );
    let indexed = (0..ITEMS)
        .map(model_item)
        .filter(|i| i.contains_key("bracket") && i.contains_key("league"))
        .count() as i64;
    let description = client
        .describe_table()
        .table_name(TABLE)
        .send()
        .await
        .unwrap();
    let index = &description.table().unwrap().global_secondary_indexes()[1];
    assert_eq!(index.item_count(), Some(indexed));

    drop(client);
    common::terminate(server);
    let server = HavenServer::start_on_disk(data.path());
    let client = server.client();
    let again = query_pages(&client, "by_match", condition, &partition, true).await;
    assert_eq!(pks(&again), pks(&built));
}

async fn wait_until_active(client: &Client, index: &str) {
    for _ in 0..500 {
        let description = client
            .describe_table()
            .table_name(TABLE)
            .send()
            .await
            .unwrap();
        let status = description
            .table()
            .unwrap()
            .global_secondary_indexes()
            .iter()
            .find(|i| i.index_name() == Some(index))
            .and_then(|i| i.index_status().cloned());
        if status == Some(IndexStatus::Active) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("index {index} not ACTIVE within 10 s");
}
