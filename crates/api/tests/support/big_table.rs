//! The large table that `tests/query_reads.rs` and `examples/query_latency.rs` query: partitions
//! `p000`, `p001`... of small items `{pk, sk, v}` (v numbers the items in load order).

use std::sync::Arc;

use haven_api::Service;
use serde_json::json;

pub const TABLE: &str = "big";

/// The partition key of partition `p`.
pub fn partition(p: usize) -> String {
    format!("p{p:03}")
}

/// Creates the table and loads `items` items, `per_partition` to a partition, with BatchWriteItem
/// calls of 25 items from `writers` concurrent writers.
pub async fn load(service: &Arc<Service>, items: usize, per_partition: usize, writers: usize) {
    service
        .call(
            "CreateTable",
            json!({
                "TableName": TABLE,
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "N"}
                ],
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"}
                ],
                "BillingMode": "PAY_PER_REQUEST"
            }),
        )
        .await
        .expect("CreateTable");
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let service = service.clone();
        tasks.push(tokio::spawn(async move {
            let mut next = writer * 25;
            while next < items {
                let puts: Vec<_> = (next..(next + 25).min(items))
                    .map(|n| {
                        json!({"PutRequest": {"Item": {
                            "pk": {"S": partition(n / per_partition)},
                            "sk": {"N": (n % per_partition).to_string()},
                            "v": {"N": n.to_string()}
                        }}})
                    })
                    .collect();
                let answer = service
                    .call("BatchWriteItem", json!({"RequestItems": {TABLE: puts}}))
                    .await
                    .expect("BatchWriteItem");
                assert_eq!(answer["UnprocessedItems"], json!({}));
                next += writers * 25;
            }
        }));
    }
    for task in tasks {
        task.await.expect("a loader panicked");
    }
}
