//! Issue 15: a hot item never holds a request forever.
//!
//! Writes are optimistic: each reads, decides and commits a batch that expects what it read, and
//! starts again when another writer got there first. Many writers of one item conflict most of the
//! time; unbounded, that loop let a request wait forever. Each request now gives up after a bounded
//! number of attempts with InternalServerError (which SDKs retry) and nothing in between is lost.

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
    let item = client
        .get_item()
        .table_name("HotItems")
        .key("pk", AttributeValue::S("hot".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    // Every acknowledged addition is there, and none of those that gave up.
    assert_eq!(item["hits"], AttributeValue::N(added.to_string()));
}
