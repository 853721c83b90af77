//! Issue 15: a hot item never holds a request forever.
//!
//! Writes are optimistic: each reads, decides and commits a batch that expects what it read, and
//! starts again when another writer got there first. Many writers of one item conflict most of the
//! time; unbounded, that loop let a request wait forever. Each request now gives up after a bounded
//! number of attempts with InternalServerError (which SDKs retry) and nothing in between is lost.
//! Issue 26: writers of one item on one node now queue on the item instead (`hot_items`), so on one
//! node none gives up at all.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use common::{HavenServer, create_table};

const WRITERS: usize = 64;
const WRITES_PER_WRITER: usize = 40;
/// No answer may take longer: the retry budget (3 s) plus generous room for a loaded machine.
const LONGEST_ANSWER: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_item_under_64_writers_answers_every_request_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = HavenServer::start_on_disk(dir.path());
    create_table(&server.client(), "HotItems", &[("pk", "S")]).await;
    let client = server.client_without_retries();
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let (mut added, mut gave_up, mut slowest) = (0u64, 0u64, Duration::ZERO);
                for _ in 0..WRITES_PER_WRITER {
                    let started = Instant::now();
                    let update = client
                        .update_item()
                        .table_name("HotItems")
                        .key("pk", AttributeValue::S("hot".into()))
                        .update_expression("ADD hits :one")
                        .expression_attribute_values(":one", AttributeValue::N("1".into()))
                        .send();
                    let answer = tokio::time::timeout(LONGEST_ANSWER, update)
                        .await
                        .expect("a request on a hot item was never answered");
                    slowest = slowest.max(started.elapsed());
                    match answer {
                        Ok(_) => added += 1,
                        Err(error) => {
                            let code = aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&error);
                            assert_eq!(code, Some("InternalServerError"), "{error:?}");
                            gave_up += 1;
                        }
                    }
                }
                (added, gave_up, slowest)
            })
        })
        .collect();
    let (mut added, mut gave_up, mut slowest) = (0, 0, Duration::ZERO);
    for writer in writers {
        let (a, g, s) = writer.await.unwrap();
        (added, gave_up, slowest) = (added + a, gave_up + g, slowest.max(s));
    }
    println!("{added} acknowledged, {gave_up} gave up, slowest answer {slowest:?}");
    assert!(added > 0, "no update got through");
    // Every acknowledged addition is there, and none of those that gave up.
    assert_eq!(hits(&client, "hot").await, added);
}

/// Issue 26: writers of one item on one node queue on the item instead of racing, so that, as in
/// DynamoDB, no single-item write fails for contention: every UpdateItem, PutItem and DeleteItem
/// (conditional or not) of 64 clients on two hot items is answered, with the SDK's retries off,
/// and every addition is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_of_one_hot_item_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let server = HavenServer::start_on_disk(dir.path());
    create_table(&server.client(), "HotItems", &[("pk", "S")]).await;
    let client = server.client_without_retries();
    let key = |name: &str| AttributeValue::S(name.into());
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut added = 0u64;
                for round in 0..WRITES_PER_WRITER {
                    client
                        .update_item()
                        .table_name("HotItems")
                        .key("pk", key("counter"))
                        .update_expression("ADD hits :one")
                        .expression_attribute_values(":one", AttributeValue::N("1".into()))
                        .send()
                        .await
                        .expect("an addition to a hot item failed");
                    added += 1;
                    // A second hot item, put and deleted under conditions that either hold or
                    // fail as conditions do, never for contention.
                    let outcome = if (writer + round) % 2 == 0 {
                        client
                            .put_item()
                            .table_name("HotItems")
                            .item("pk", key("flip"))
                            .item("last_writer", AttributeValue::N(writer.to_string()))
                            .condition_expression("attribute_not_exists(pk) OR last_writer <> :me")
                            .expression_attribute_values(
                                ":me",
                                AttributeValue::N(writer.to_string()),
                            )
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| format!("{:?}", e.into_service_error()))
                    } else {
                        client
                            .delete_item()
                            .table_name("HotItems")
                            .key("pk", key("flip"))
                            .condition_expression("attribute_exists(pk)")
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| format!("{:?}", e.into_service_error()))
                    };
                    if let Err(error) = outcome {
                        assert!(
                            error.starts_with("ConditionalCheckFailedException"),
                            "a write of a hot item failed: {error}"
                        );
                    }
                }
                added
            })
        })
        .collect();
    let mut added = 0;
    for writer in writers {
        added += writer.await.unwrap();
    }
    assert_eq!(added, (WRITERS * WRITES_PER_WRITER) as u64);
    assert_eq!(hits(&client, "counter").await, added);
}

/// The `hits` counter of HotItems' item `pk`, read consistently.
async fn hits(client: &aws_sdk_dynamodb::Client, pk: &str) -> u64 {
    let item = client
        .get_item()
        .table_name("HotItems")
        .key("pk", AttributeValue::S(pk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    item["hits"].as_n().unwrap().parse().unwrap()
}
