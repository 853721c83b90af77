//! Reading DynamoDB Streams in tests: shards in lineage order, records of a shard until it is
//! drained.

use aws_sdk_dynamodb::types::{StreamSpecification, StreamViewType};
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{Record, Shard, ShardIteratorType};

/// A StreamSpecification enabling a stream of `view`, or disabling the stream (None).
pub fn specification(view: Option<StreamViewType>) -> StreamSpecification {
    StreamSpecification::builder()
        .stream_enabled(view.is_some())
        .set_stream_view_type(view)
        .build()
        .unwrap()
}

/// Creates an on-demand table keyed by `pk` (S) with a stream of `view` (None: no stream);
/// returns the stream's ARN.
pub async fn create_streamed_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    view: Option<StreamViewType>,
) -> Option<String> {
    let (schema, definitions) = super::table_keys(&[("pk", "S")]);
    let created = client
        .create_table()
        .table_name(name)
        .set_key_schema(Some(schema))
        .set_attribute_definitions(Some(definitions))
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .set_stream_specification(view.is_some().then(|| specification(view)))
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateTable {name}: {e:?}"));
    created.table_description.unwrap().latest_stream_arn
}

/// Every shard of a stream (following DescribeStream's pages), parents before children.
pub async fn shards(client: &Client, arn: &str) -> Vec<Shard> {
    shards_checked(client, arn).await.expect("DescribeStream")
}

/// [`shards`], with a failed DescribeStream as an error (for clients of a server that may be down).
pub async fn shards_checked(client: &Client, arn: &str) -> Result<Vec<Shard>, String> {
    let mut shards = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let page = client
            .describe_stream()
            .stream_arn(arn)
            .set_exclusive_start_shard_id(start.clone())
            .send()
            .await
            .map_err(|e| format!("DescribeStream: {e:?}"))?
            .stream_description
            .expect("a StreamDescription");
        shards.extend(page.shards.unwrap_or_default());
        match page.last_evaluated_shard_id {
            Some(last) => start = Some(last),
            None => break,
        }
    }
    let ordered = lineage_order(&shards);
    assert_eq!(
        ordered.len(),
        shards.len(),
        "a shard's parent comes after it"
    );
    Ok(ordered)
}

/// Orders shards so that each comes after its parent (a parent missing from the list, trimmed,
/// counts as read).
fn lineage_order(shards: &[Shard]) -> Vec<Shard> {
    let ids: Vec<&str> = shards.iter().map(|s| s.shard_id().unwrap()).collect();
    let mut done: Vec<String> = Vec::new();
    let mut ordered = Vec::new();
    for _ in 0..shards.len() {
        for shard in shards {
            let id = shard.shard_id().unwrap();
            let parent_ready = shard
                .parent_shard_id()
                .is_none_or(|p| !ids.contains(&p) || done.iter().any(|d| d == p));
            if parent_ready && !done.iter().any(|d| d == id) {
                done.push(id.to_owned());
                ordered.push(shard.clone());
            }
        }
    }
    ordered
}

/// A shard's iterator of `kind` (with `sequence` for the *_SEQUENCE_NUMBER kinds).
pub async fn iterator(
    client: &Client,
    arn: &str,
    shard: &str,
    kind: ShardIteratorType,
    sequence: Option<&str>,
) -> String {
    client
        .get_shard_iterator()
        .stream_arn(arn)
        .shard_id(shard)
        .shard_iterator_type(kind)
        .set_sequence_number(sequence.map(str::to_owned))
        .send()
        .await
        .expect("GetShardIterator")
        .shard_iterator
        .expect("an iterator")
}

/// Reads from `iterator` until the shard is drained (NextShardIterator absent) or, for an open
/// shard, until a page comes back empty. Returns the records and the iterator to go on with (None
/// once the shard is closed and drained).
pub async fn drain(client: &Client, iterator: String) -> (Vec<Record>, Option<String>) {
    let mut records = Vec::new();
    let mut next = Some(iterator);
    while let Some(current) = next.clone() {
        let page = client
            .get_records()
            .shard_iterator(current)
            .send()
            .await
            .expect("GetRecords");
        let empty = page.records().is_empty();
        records.extend(page.records.unwrap_or_default());
        next = page.next_shard_iterator;
        if empty {
            break;
        }
    }
    (records, next)
}

/// Every record of a stream, shard by shard in lineage order, from each shard's oldest record.
pub async fn all_records(client: &Client, arn: &str) -> Vec<Record> {
    let mut records = Vec::new();
    for shard in shards(client, arn).await {
        let id = shard.shard_id().unwrap();
        let start = iterator(client, arn, id, ShardIteratorType::TrimHorizon, None).await;
        records.extend(drain(client, start).await.0);
    }
    records
}

/// A record's sequence number.
pub fn sequence(record: &Record) -> &str {
    record
        .dynamodb()
        .and_then(|d| d.sequence_number())
        .expect("a SequenceNumber")
}
