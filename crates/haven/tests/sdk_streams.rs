//! DynamoDB Streams through the AWS SDK for Rust (`aws-sdk-dynamodbstreams`) against a real
//! `haven serve`: StreamSpecification on CreateTable and UpdateTable, the stream members of a
//! table description, ListStreams, DescribeStream, GetShardIterator and GetRecords, shard
//! rollover with lineage, and every error with its AWS type and message.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, StreamSpecification, StreamViewType};
use aws_sdk_dynamodbstreams::types::{OperationType, ShardIteratorType};
use common::streams::{
    all_records, create_streamed_table, drain, iterator, sequence, shards, specification,
};
use common::{HavenServer, error_of, table_keys};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

async fn put(client: &aws_sdk_dynamodb::Client, table: &str, pk: &str, v: i64) {
    client
        .put_item()
        .table_name(table)
        .item("pk", s(pk))
        .item("v", n(v))
        .send()
        .await
        .unwrap();
}

async fn update(client: &aws_sdk_dynamodb::Client, table: &str, pk: &str, v: i64) {
    client
        .update_item()
        .table_name(table)
        .key("pk", s(pk))
        .update_expression("SET v = :v")
        .expression_attribute_values(":v", n(v))
        .send()
        .await
        .unwrap();
}

async fn delete(client: &aws_sdk_dynamodb::Client, table: &str, pk: &str) {
    client
        .delete_item()
        .table_name(table)
        .key("pk", s(pk))
        .send()
        .await
        .unwrap();
}

/// `v` of an image, if it has one.
fn v_of(
    image: Option<
        &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
    >,
) -> Option<String> {
    image?.get("v")?.as_n().ok().cloned()
}

#[tokio::test]
async fn records_show_each_change_in_order_with_both_images() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let streams = server.streams_client();
    let arn = create_streamed_table(&client, "songs", Some(StreamViewType::NewAndOldImages))
        .await
        .unwrap();
    put(&client, "songs", "a", 1).await;
    put(&client, "songs", "a", 1).await; // no change, no record
    update(&client, "songs", "a", 2).await;
    delete(&client, "songs", "a").await;
    delete(&client, "songs", "a").await; // no change, no record

    let table = client
        .describe_table()
        .table_name("songs")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(table.latest_stream_arn.as_deref(), Some(arn.as_str()));
    let label = table.latest_stream_label.unwrap();
    assert!(
        arn.ends_with(&format!("table/songs/stream/{label}")),
        "{arn}"
    );
    let spec = table.stream_specification.unwrap();
    assert!(spec.stream_enabled);
    assert_eq!(spec.stream_view_type, Some(StreamViewType::NewAndOldImages));

    let records = all_records(&streams, &arn).await;
    let events: Vec<_> = records
        .iter()
        .map(|r| {
            let d = r.dynamodb().unwrap();
            (
                r.event_name().cloned().unwrap(),
                v_of(d.old_image()),
                v_of(d.new_image()),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            (OperationType::Insert, None, Some("1".into())),
            (OperationType::Modify, Some("1".into()), Some("2".into())),
            (OperationType::Remove, Some("2".into()), None),
        ]
    );
    for record in &records {
        assert_eq!(record.event_source(), Some("aws:dynamodb"));
        assert_eq!(record.event_version(), Some("1.1"));
        assert_eq!(record.aws_region(), Some("us-east-1"));
        assert!(record.user_identity().is_none());
        let d = record.dynamodb().unwrap();
        assert_eq!(d.keys().unwrap()["pk"].as_s().unwrap(), "a");
        assert!(d.approximate_creation_date_time().is_some());
        let digits = sequence(record);
        assert!((21..=40).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()));
    }
    // Keys "a" (pk: 2 + 1 bytes) and images {pk, v} (3 + 1 + 2 bytes).
    let sizes: Vec<i64> = records
        .iter()
        .map(|r| r.dynamodb().unwrap().size_bytes().unwrap())
        .collect();
    assert_eq!(sizes, [9, 15, 9]);
    let numbers: Vec<&str> = records.iter().map(sequence).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    let ids: std::collections::HashSet<_> = records.iter().map(|r| r.event_id()).collect();
    assert_eq!(ids.len(), 3, "eventIDs are unique");
}

/// (eventName, OldImage's v, NewImage's v) of each record, after checking that each one's Keys
/// name `pk` and that it says its view type.
fn events(
    records: &[aws_sdk_dynamodbstreams::types::Record],
    pk: &str,
    view: &StreamViewType,
) -> Vec<(String, Option<String>, Option<String>)> {
    records
        .iter()
        .map(|record| {
            let change = record.dynamodb().unwrap();
            assert_eq!(change.keys().unwrap()["pk"].as_s().unwrap(), pk);
            assert_eq!(change.keys().unwrap().len(), 1, "Keys hold the key only");
            assert_eq!(
                change.stream_view_type().map(|v| v.as_str()),
                Some(view.as_str())
            );
            let name = record.event_name().unwrap().as_str().to_owned();
            (name, v_of(change.old_image()), v_of(change.new_image()))
        })
        .collect()
}

/// An insert, a change and a removal of one item, as a stream of `view` shows them (`old` and
/// `new`: whether the view shows each image).
fn expected_events(old: bool, new: bool) -> Vec<(String, Option<String>, Option<String>)> {
    let v = |shown: bool, v: &str| shown.then(|| v.to_owned());
    vec![
        ("INSERT".into(), None, v(new, "1")),
        ("MODIFY".into(), v(old, "1"), v(new, "2")),
        ("REMOVE".into(), v(old, "2"), None),
    ]
}

// The log keeps whole only the images some reader needs (docs/storage-format.md): each view type
// must still get exactly its images, and tell an insert from a change from a removal.
#[tokio::test]
async fn the_view_type_chooses_the_images() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let streams = server.streams_client();
    for (table, view, old, new) in [
        ("keys_only", StreamViewType::KeysOnly, false, false),
        ("new_image", StreamViewType::NewImage, false, true),
        ("old_image", StreamViewType::OldImage, true, false),
        ("both_images", StreamViewType::NewAndOldImages, true, true),
    ] {
        let arn = create_streamed_table(&client, table, Some(view.clone()))
            .await
            .unwrap();
        put(&client, table, "k", 1).await;
        update(&client, table, "k", 2).await;
        delete(&client, table, "k").await;
        let records = all_records(&streams, &arn).await;
        assert_eq!(
            events(&records, "k", &view),
            expected_events(old, new),
            "{table}"
        );
    }
}

// A stream enabled after one that needed no images gets whole images from its first record on,
// and the old stream's records stay as its view type showed them.
#[tokio::test]
async fn a_stream_enabled_later_gets_both_images_from_its_start() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let streams = server.streams_client();
    let first = create_streamed_table(&client, "later", Some(StreamViewType::KeysOnly))
        .await
        .unwrap();
    put(&client, "later", "k", 1).await;
    for view in [None, Some(StreamViewType::NewAndOldImages)] {
        client
            .update_table()
            .table_name("later")
            .stream_specification(specification(view))
            .send()
            .await
            .unwrap();
    }
    let second = client
        .describe_table()
        .table_name("later")
        .send()
        .await
        .unwrap()
        .table
        .unwrap()
        .latest_stream_arn
        .unwrap();
    assert_ne!(second, first);
    update(&client, "later", "k", 2).await;
    delete(&client, "later", "k").await;
    let records = all_records(&streams, &second).await;
    assert_eq!(
        events(&records, "k", &StreamViewType::NewAndOldImages),
        expected_events(true, true)[1..]
    );
    let records = all_records(&streams, &first).await;
    assert_eq!(
        events(&records, "k", &StreamViewType::KeysOnly),
        expected_events(false, false)[..1]
    );
}

#[tokio::test]
async fn iterators_start_where_asked_and_pages_follow_the_limit() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let streams = server.streams_client();
    let arn = create_streamed_table(&client, "pages", Some(StreamViewType::NewImage))
        .await
        .unwrap();
    for i in 0..5 {
        put(&client, "pages", &format!("p{i}"), i).await;
    }
    let shard = shards(&streams, &arn).await[0]
        .shard_id()
        .unwrap()
        .to_owned();
    let latest = iterator(&streams, &arn, &shard, ShardIteratorType::Latest, None).await;
    let horizon = iterator(&streams, &arn, &shard, ShardIteratorType::TrimHorizon, None).await;

    let page = streams
        .get_records()
        .shard_iterator(&horizon)
        .limit(2)
        .send()
        .await
        .unwrap();
    assert_eq!(page.records().len(), 2);
    let rest = drain(&streams, page.next_shard_iterator.clone().unwrap())
        .await
        .0;
    assert_eq!(rest.len(), 3);
    let second = sequence(&page.records()[1]).to_owned();

    let at = iterator(
        &streams,
        &arn,
        &shard,
        ShardIteratorType::AtSequenceNumber,
        Some(&second),
    )
    .await;
    let from_second = drain(&streams, at).await.0;
    assert_eq!(from_second.len(), 4);
    assert_eq!(sequence(&from_second[0]), second);
    let after = iterator(
        &streams,
        &arn,
        &shard,
        ShardIteratorType::AfterSequenceNumber,
        Some(&second),
    )
    .await;
    assert_eq!(drain(&streams, after).await.0.len(), 3);

    // LATEST sees only what comes after it was taken.
    let (nothing, open) = drain(&streams, latest).await;
    assert!(nothing.is_empty());
    put(&client, "pages", "late", 9).await;
    let (late, _) = drain(&streams, open.expect("an open shard goes on")).await;
    assert_eq!(late.len(), 1);
    assert_eq!(
        v_of(late[0].dynamodb().unwrap().new_image()),
        Some("9".into())
    );
}

#[tokio::test]
async fn disabling_closes_the_stream_and_enabling_again_makes_a_new_one() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let streams = server.streams_client();
    let first = create_streamed_table(&client, "cycle", Some(StreamViewType::KeysOnly))
        .await
        .unwrap();
    put(&client, "cycle", "x", 1).await;
    let enable_again = client
        .update_table()
        .table_name("cycle")
        .stream_specification(specification(Some(StreamViewType::NewImage)))
        .send()
        .await;
    assert_eq!(
        error_of(enable_again),
        (
            "ValidationException".into(),
            "Table already has an enabled stream: TableName: cycle".into()
        )
    );
    let disabled = client
        .update_table()
        .table_name("cycle")
        .stream_specification(specification(None))
        .send()
        .await
        .unwrap()
        .table_description
        .unwrap();
    assert!(disabled.stream_specification.is_none());
    assert_eq!(disabled.latest_stream_arn.as_deref(), Some(first.as_str()));
    put(&client, "cycle", "y", 1).await; // no stream: not recorded

    let description = streams
        .describe_stream()
        .stream_arn(&first)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_eq!(description.stream_status().unwrap().as_str(), "DISABLED");
    let shard = &description.shards()[0];
    let range = shard.sequence_number_range().unwrap();
    assert!(
        range.ending_sequence_number().is_some(),
        "a disabled stream's shards are closed"
    );
    let start = iterator(
        &streams,
        &first,
        shard.shard_id().unwrap(),
        ShardIteratorType::TrimHorizon,
        None,
    )
    .await;
    let (records, next) = drain(&streams, start).await;
    assert_eq!(records.len(), 1);
    assert_eq!(next, None, "a drained closed shard has no next iterator");

    let no_stream = client
        .update_table()
        .table_name("cycle")
        .stream_specification(specification(None))
        .send()
        .await;
    assert_eq!(
        error_of(no_stream),
        (
            "ValidationException".into(),
            "Table has no stream to disable: TableName: cycle".into()
        )
    );
    let second = client
        .update_table()
        .table_name("cycle")
        .stream_specification(specification(Some(StreamViewType::NewImage)))
        .send()
        .await
        .unwrap()
        .table_description
        .unwrap()
        .latest_stream_arn
        .unwrap();
    assert_ne!(second, first);
    put(&client, "cycle", "z", 1).await;
    let records = all_records(&streams, &second).await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].dynamodb().unwrap().keys().unwrap()["pk"]
            .as_s()
            .unwrap(),
        "z"
    );

    let listed = streams
        .list_streams()
        .table_name("cycle")
        .send()
        .await
        .unwrap();
    let arns: Vec<&str> = listed
        .streams()
        .iter()
        .map(|s| s.stream_arn().unwrap())
        .collect();
    assert_eq!(arns, [second.as_str(), first.as_str()], "newest first");
    let page = streams.list_streams().limit(1).send().await.unwrap();
    assert_eq!(page.streams().len(), 1);
    let rest = streams
        .list_streams()
        .exclusive_start_stream_arn(page.last_evaluated_stream_arn().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.streams()[0].stream_arn(), Some(first.as_str()));
    assert!(rest.last_evaluated_stream_arn().is_none());
}

#[tokio::test]
async fn shards_roll_over_into_children_and_records_stay_in_order() {
    let server = HavenServer::start_with(&["--in-memory", "--stream-shard-interval-secs", "1"]);
    let client = server.client();
    let streams = server.streams_client();
    let arn = create_streamed_table(&client, "rolling", Some(StreamViewType::NewImage))
        .await
        .unwrap();
    for round in 0..3 {
        put(&client, "rolling", "same", round).await;
        tokio::time::sleep(Duration::from_millis(1300)).await;
    }
    let listed = shards(&streams, &arn).await;
    assert!(listed.len() >= 3, "{} shards", listed.len());
    for pair in listed.windows(2) {
        assert_eq!(pair[1].parent_shard_id(), pair[0].shard_id());
        let range = pair[0].sequence_number_range().unwrap();
        assert!(
            range.ending_sequence_number().is_some(),
            "a parent is closed"
        );
    }
    let records = all_records(&streams, &arn).await;
    let values: Vec<_> = records
        .iter()
        .map(|r| v_of(r.dynamodb().unwrap().new_image()).unwrap())
        .collect();
    assert_eq!(values, ["0", "1", "2"]);
    let numbers: Vec<&str> = records.iter().map(sequence).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn errors_have_the_aws_types_and_messages() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let streams = server.streams_client();
    let arn = create_streamed_table(&client, "errs", Some(StreamViewType::KeysOnly))
        .await
        .unwrap();
    put(&client, "errs", "a", 1).await;
    let missing = format!("{arn}x");
    assert_eq!(
        error_of(streams.describe_stream().stream_arn(&missing).send().await),
        (
            "ResourceNotFoundException".into(),
            format!("Requested resource not found: Stream: {missing} not found")
        )
    );
    let shard = shards(&streams, &arn).await[0]
        .shard_id()
        .unwrap()
        .to_owned();
    let bad_shard = streams
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id("shardId-00000000000000000001-00000000")
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await;
    assert_eq!(
        error_of(bad_shard),
        (
            "ResourceNotFoundException".into(),
            "Shard does not exist".into()
        )
    );
    let needless_number = streams
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id(&shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .sequence_number("0".repeat(21))
        .send()
        .await;
    assert_eq!(
        error_of(needless_number),
        (
            "ValidationException".into(),
            "One or more parameter values were invalid: SequenceNumber should not be passed for this iterator type".into()
        )
    );
    let no_number = streams
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id(&shard)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .send()
        .await;
    assert_eq!(
        error_of(no_number).1,
        "One or more parameter values were invalid: Invalid SequenceNumber"
    );
    let short_number = streams
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id(&shard)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number("123")
        .send()
        .await;
    assert_eq!(
        error_of(short_number).1,
        "1 validation error detected: Value '123' at 'sequenceNumber' failed to satisfy constraint: Member must have length greater than or equal to 21"
    );
    let garbage = streams
        .get_records()
        .shard_iterator(format!("{arn}|1|AAAA"))
        .send()
        .await;
    assert_eq!(
        error_of(garbage),
        ("ValidationException".into(), "Invalid ShardIterator".into())
    );
    let start = iterator(&streams, &arn, &shard, ShardIteratorType::TrimHorizon, None).await;
    for (limit, message) in [
        (
            0,
            "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ),
        (
            1001,
            "One or more parameter values were invalid: Limit should be less than or equal to 1000",
        ),
    ] {
        let refused = streams
            .get_records()
            .shard_iterator(&start)
            .limit(limit)
            .send()
            .await;
        assert_eq!(
            error_of(refused),
            ("ValidationException".into(), message.into())
        );
    }
    let bad_view = client
        .create_table()
        .table_name("nostream")
        .set_key_schema(Some(table_keys(&[("pk", "S")]).0))
        .set_attribute_definitions(Some(table_keys(&[("pk", "S")]).1))
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await;
    assert_eq!(
        error_of(bad_view),
        (
            "ValidationException".into(),
            "One or more parameter values were invalid: Table is being created with a stream enabled, UpdateViewType is required".into()
        )
    );
}

#[tokio::test]
async fn expired_iterators_and_trimmed_records_are_refused() {
    let server = HavenServer::start_with(&[
        "--in-memory",
        "--stream-iterator-lifetime-secs",
        "1",
        "--stream-retention-secs",
        "2",
    ]);
    let client = server.client();
    let streams = server.streams_client();
    let arn = create_streamed_table(&client, "aging", Some(StreamViewType::KeysOnly))
        .await
        .unwrap();
    put(&client, "aging", "old", 1).await;
    let shard = shards(&streams, &arn).await[0]
        .shard_id()
        .unwrap()
        .to_owned();
    let start = iterator(&streams, &arn, &shard, ShardIteratorType::TrimHorizon, None).await;
    let old_number = sequence(&drain(&streams, start.clone()).await.0[0]).to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        error_of(streams.get_records().shard_iterator(&start).send().await),
        (
            "ExpiredIteratorException".into(),
            "Shard iterator has expired".into()
        )
    );
    // Once retention passes, the trimmer removes the record.
    put(&client, "aging", "new", 1).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let at = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(&old_number)
            .send()
            .await;
        match at {
            Err(error) => {
                let (code, message) = error_of::<(), _, _>(Err(error));
                assert_eq!(code, "TrimmedDataAccessException");
                assert_eq!(
                    message,
                    "The data you are trying to access has been trimmed"
                );
                break;
            }
            Ok(_) => {
                assert!(std::time::Instant::now() < deadline, "never trimmed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Every stream ListStreams lists (one page: these tests have few).
async fn listed(streams: &aws_sdk_dynamodbstreams::Client, table: Option<&str>) -> Vec<String> {
    let page = streams
        .list_streams()
        .set_table_name(table.map(str::to_owned));
    let page = page.send().await.unwrap();
    let arns = page
        .streams()
        .iter()
        .map(|s| s.stream_arn().unwrap().to_owned());
    arns.collect()
}

#[tokio::test]
async fn disabled_streams_and_streams_of_deleted_tables_stay_readable_until_retention_passes() {
    let server = HavenServer::start_with(&["--in-memory", "--stream-retention-secs", "8"]);
    let (client, streams) = (server.client(), server.streams_client());
    let view = Some(StreamViewType::NewAndOldImages);
    let disabled = create_streamed_table(&client, "kept", view.clone())
        .await
        .unwrap();
    put(&client, "kept", "a", 1).await;
    let off = client.update_table().table_name("kept");
    let off = off.stream_specification(specification(None));
    off.send().await.unwrap();
    let deleted = create_streamed_table(&client, "gone", view).await.unwrap();
    put(&client, "gone", "b", 2).await;
    client
        .delete_table()
        .table_name("gone")
        .send()
        .await
        .unwrap();
    // A new table of the same name does not hide the deleted one's stream.
    assert_eq!(create_streamed_table(&client, "gone", None).await, None);

    let all = listed(&streams, None).await;
    assert!(all.contains(&disabled) && all.contains(&deleted), "{all:?}");
    assert_eq!(listed(&streams, Some("gone")).await, vec![deleted.clone()]);
    let description = streams.describe_stream().stream_arn(&deleted).send().await;
    let description = description.unwrap().stream_description.unwrap();
    assert_eq!(description.stream_status().unwrap().as_str(), "DISABLED");
    assert_eq!(description.table_name(), Some("gone"));
    let shard = &description.shards()[0];
    let range = shard.sequence_number_range().unwrap();
    assert!(
        range.ending_sequence_number().is_some(),
        "shards are closed"
    );
    let kind = ShardIteratorType::TrimHorizon;
    let start = iterator(&streams, &deleted, shard.shard_id().unwrap(), kind, None).await;
    let (records, next) = drain(&streams, start).await;
    assert_eq!(records.len(), 1, "the write before the deletion");
    assert_eq!(
        v_of(records[0].dynamodb().unwrap().new_image()),
        Some("2".into())
    );
    assert_eq!(next, None, "a drained closed shard has no next iterator");

    // Once retention has passed since the stream was disabled (or its table deleted), it is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !listed(&streams, None).await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "never went");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for arn in [&disabled, &deleted] {
        let gone = streams.describe_stream().stream_arn(arn).send().await;
        let message = format!("Requested resource not found: Stream: {arn} not found");
        assert_eq!(
            error_of(gone),
            ("ResourceNotFoundException".into(), message)
        );
    }
}
