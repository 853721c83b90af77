//! The AWS SDK for Rust talks to Haven: the first end-to-end round trip.

mod common;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use common::HavenServer;

#[tokio::test]
async fn create_put_get_delete_round_trip() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    client
        .create_table()
        .table_name("people")
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    client
        .put_item()
        .table_name("people")
        .item("id", AttributeValue::S("ada".into()))
        .item("born", AttributeValue::N("1815".into()))
        .send()
        .await
        .unwrap();
    let got = client
        .get_item()
        .table_name("people")
        .key("id", AttributeValue::S("ada".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(got.item.unwrap()["born"], AttributeValue::N("1815".into()));
    client
        .delete_item()
        .table_name("people")
        .key("id", AttributeValue::S("ada".into()))
        .send()
        .await
        .unwrap();
    let got = client
        .get_item()
        .table_name("people")
        .key("id", AttributeValue::S("ada".into()))
        .send()
        .await
        .unwrap();
    assert!(got.item.is_none());
}
