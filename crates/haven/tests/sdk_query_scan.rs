//! Query and Scan over a 10 000-item table through the AWS SDK for Rust paginators: every item
//! exactly once and in order (Query forwards and backwards), and a 4-segment parallel scan whose
//! segments are disjoint and cover the table.

mod common;

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};
use common::HavenServer;

const PARTITIONS: usize = 20;
const PER_PARTITION: usize = 500;

async fn load_table(client: &aws_sdk_dynamodb::Client) {
    client
        .create_table()
        .table_name("events")
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let all: Vec<(usize, usize)> = (0..PARTITIONS)
        .flat_map(|p| (0..PER_PARTITION).map(move |s| (p, s)))
        .collect();
    for chunk in all.chunks(25) {
        let writes: Vec<WriteRequest> = chunk
            .iter()
            .map(|(p, s)| {
                // Sort keys include negatives and fractions so that numeric order differs from text order.
                let sort = format!("{}", *s as f64 / 4.0 - 50.0);
                let put = PutRequest::builder()
                    .item("pk", AttributeValue::S(format!("p{p}")))
                    .item("sk", AttributeValue::N(sort))
                    .item("payload", AttributeValue::S("x".repeat(100)))
                    .build()
                    .unwrap();
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        let out = client
            .batch_write_item()
            .request_items("events", writes)
            .send()
            .await
            .unwrap();
        assert!(out.unprocessed_items.unwrap_or_default().is_empty());
    }
}

fn sort_key(item: &HashMap<String, AttributeValue>) -> f64 {
    item["sk"].as_n().unwrap().parse().unwrap()
}

fn identity(item: &HashMap<String, AttributeValue>) -> (String, String) {
    (
        item["pk"].as_s().unwrap().clone(),
        item["sk"].as_n().unwrap().clone(),
    )
}

#[tokio::test]
async fn paginated_query_and_scan_see_every_item_exactly_once() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    load_table(&client).await;

    for forward in [true, false] {
        let mut total = 0;
        for p in 0..PARTITIONS {
            let items: Vec<_> = client
                .query()
                .table_name("events")
                .key_condition_expression("pk = :p")
                .expression_attribute_values(":p", AttributeValue::S(format!("p{p}")))
                .scan_index_forward(forward)
                .limit(37)
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .unwrap();
            assert_eq!(items.len(), PER_PARTITION);
            let keys: Vec<f64> = items.iter().map(sort_key).collect();
            let mut expected = keys.clone();
            expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
            if !forward {
                expected.reverse();
            }
            assert_eq!(keys, expected, "query order, forward={forward}");
            total += items.len();
        }
        assert_eq!(total, PARTITIONS * PER_PARTITION);
    }

    let scanned: Vec<_> = client
        .scan()
        .table_name("events")
        .limit(333)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let unique: BTreeSet<_> = scanned.iter().map(identity).collect();
    assert_eq!(scanned.len(), PARTITIONS * PER_PARTITION);
    assert_eq!(unique.len(), scanned.len());

    let mut segments_union = BTreeSet::new();
    let mut segment_total = 0;
    for segment in 0..4 {
        let items: Vec<_> = client
            .scan()
            .table_name("events")
            .segment(segment)
            .total_segments(4)
            .limit(500)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .unwrap();
        assert!(!items.is_empty(), "segment {segment} is empty");
        segment_total += items.len();
        segments_union.extend(items.iter().map(identity));
    }
    assert_eq!(
        segment_total,
        PARTITIONS * PER_PARTITION,
        "segments overlap or miss items"
    );
    assert_eq!(segments_union, unique);
}

#[tokio::test]
async fn sort_key_conditions_select_the_right_ranges() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    load_table(&client).await;
    let count = |condition: &'static str, values: Vec<(&'static str, &'static str)>| {
        let client = client.clone();
        async move {
            let mut request = client
                .query()
                .table_name("events")
                .key_condition_expression(condition)
                .expression_attribute_values(":p", AttributeValue::S("p3".into()))
                .select(aws_sdk_dynamodb::types::Select::Count);
            for (name, value) in values {
                request =
                    request.expression_attribute_values(name, AttributeValue::N(value.into()));
            }
            request.send().await.unwrap().count
        }
    };
    // Sort keys are -50, -49.75, ..., 74.75 (500 values in steps of 0.25).
    assert_eq!(count("pk = :p AND sk = :a", vec![(":a", "0")]).await, 1);
    assert_eq!(count("pk = :p AND sk < :a", vec![(":a", "0")]).await, 200);
    assert_eq!(count("pk = :p AND sk <= :a", vec![(":a", "0")]).await, 201);
    assert_eq!(count("pk = :p AND sk > :a", vec![(":a", "74")]).await, 3);
    assert_eq!(count("pk = :p AND sk >= :a", vec![(":a", "74")]).await, 4);
    assert_eq!(
        count(
            "pk = :p AND sk BETWEEN :a AND :b",
            vec![(":a", "-1"), (":b", "1")]
        )
        .await,
        9
    );
}
