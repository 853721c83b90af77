//! Item collections of tables with local secondary indexes: ReturnItemCollectionMetrics on every
//! write path, and the collection size limit (lowered for the test with a hidden server flag).

mod common;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, PutRequest, ReturnItemCollectionMetrics,
    ScalarAttributeType, WriteRequest,
};
use common::HavenServer;

async fn create_table_with_lsi(client: &aws_sdk_dynamodb::Client) {
    let definition = |name: &str, t: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
            .unwrap()
    };
    let key = |name: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name("orders")
        .attribute_definitions(definition("pk", ScalarAttributeType::S))
        .attribute_definitions(definition("sk", ScalarAttributeType::N))
        .attribute_definitions(definition("at", ScalarAttributeType::N))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name("by_at")
                .key_schema(key("pk", KeyType::Hash))
                .key_schema(key("at", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

#[tokio::test]
async fn writes_report_their_item_collection() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table_with_lsi(&client).await;
    let put = client
        .put_item()
        .table_name("orders")
        .item("pk", s("alice"))
        .item("sk", n(1))
        .item("at", n(10))
        .return_item_collection_metrics(ReturnItemCollectionMetrics::Size)
        .send()
        .await
        .unwrap();
    let metrics = put
        .item_collection_metrics
        .expect("PutItem reports the collection");
    assert_eq!(metrics.item_collection_key.unwrap()["pk"], s("alice"));
    assert_eq!(metrics.size_estimate_range_gb.unwrap(), vec![0.0, 1.0]);

    let update = client
        .update_item()
        .table_name("orders")
        .key("pk", s("bob"))
        .key("sk", n(1))
        .update_expression("SET note = :n")
        .expression_attribute_values(":n", s("hi"))
        .return_item_collection_metrics(ReturnItemCollectionMetrics::Size)
        .send()
        .await
        .unwrap();
    assert_eq!(
        update
            .item_collection_metrics
            .unwrap()
            .item_collection_key
            .unwrap()["pk"],
        s("bob")
    );

    let batch = client
        .batch_write_item()
        .request_items(
            "orders",
            vec![
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .item("pk", s("carol"))
                            .item("sk", n(1))
                            .build()
                            .unwrap(),
                    )
                    .build(),
            ],
        )
        .return_item_collection_metrics(ReturnItemCollectionMetrics::Size)
        .send()
        .await
        .unwrap();
    let per_table = batch.item_collection_metrics.unwrap();
    assert_eq!(
        per_table["orders"][0].item_collection_key.as_ref().unwrap()["pk"],
        s("carol")
    );

    let without = client
        .delete_item()
        .table_name("orders")
        .key("pk", s("alice"))
        .key("sk", n(1))
        .send()
        .await
        .unwrap();
    assert!(
        without.item_collection_metrics.is_none(),
        "only reported when asked for"
    );
}

#[tokio::test]
async fn a_collection_cannot_grow_past_its_limit() {
    let server = HavenServer::start_with(&["--in-memory", "--item-collection-limit", "20000"]);
    let client = server.client();
    create_table_with_lsi(&client).await;
    let big = "x".repeat(4000);
    let mut written = 0;
    let error = loop {
        let result = client
            .put_item()
            .table_name("orders")
            .item("pk", s("alice"))
            .item("sk", n(written))
            .item("at", n(written))
            .item("payload", s(&big))
            .send()
            .await;
        match result {
            Ok(_) => written += 1,
            Err(error) => break error,
        }
        assert!(written < 10, "the limit was never reached");
    };
    let service_error = error.into_service_error();
    assert!(
        service_error.is_item_collection_size_limit_exceeded_exception(),
        "{service_error:?}"
    );
    // Items and their local index entries both count: about 8 KB per item against 20 000 bytes.
    assert_eq!(written, 2);
    // Another partition is a different collection, and shrinking a full one is allowed.
    client
        .put_item()
        .table_name("orders")
        .item("pk", s("bob"))
        .item("sk", n(1))
        .send()
        .await
        .unwrap();
    client
        .delete_item()
        .table_name("orders")
        .key("pk", s("alice"))
        .key("sk", n(0))
        .send()
        .await
        .unwrap();
    client
        .put_item()
        .table_name("orders")
        .item("pk", s("alice"))
        .item("sk", n(7))
        .item("payload", s("small"))
        .send()
        .await
        .unwrap();
}
