//! A DynamoDB Streams consumer running beside a workload (`run --consume`): it follows the table's
//! stream from LATEST, shard after shard (a closed shard's child next), polls an empty shard every
//! [`POLL`] as AWS's consumers do, and measures GetRecords latency, records per second, and how
//! long after the load stopped it had read everything (whether it kept up).

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::client::{Connection, Endpoint};
use crate::requests::Call;
use crate::stats::{histogram, summary};

/// Pause before asking an empty shard again.
const POLL: Duration = Duration::from_millis(100);

fn call(op: &'static str, body: Value) -> Call {
    Call {
        op,
        body: body.to_string(),
    }
}

async fn send(connection: &mut Connection, op: &'static str, body: Value) -> anyhow::Result<Value> {
    let answer = connection.send(call(op, body)).await?;
    let text = String::from_utf8_lossy(&answer.body);
    if !answer.status.is_success() {
        bail!("{op} failed: {} {text}", answer.status);
    }
    serde_json::from_slice(&answer.body).with_context(|| format!("{op} answer"))
}

/// The stream's shards (one DescribeStream page: enough for a benchmark's minutes).
async fn shards(connection: &mut Connection, arn: &str) -> anyhow::Result<Vec<Value>> {
    let description = send(connection, "DescribeStream", json!({ "StreamArn": arn })).await?;
    Ok(description["StreamDescription"]["Shards"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

async fn iterator(
    connection: &mut Connection,
    arn: &str,
    shard: &str,
    kind: &str,
) -> anyhow::Result<String> {
    let request = json!({ "StreamArn": arn, "ShardId": shard, "ShardIteratorType": kind });
    let answer = send(connection, "GetShardIterator", request).await?;
    answer["ShardIterator"]
        .as_str()
        .map(str::to_owned)
        .context("no ShardIterator")
}

/// Where the consumer stands: the shard it reads and the iterator to read it with.
struct Position {
    shard: String,
    iterator: Option<String>,
}

/// Moves from a drained (closed) shard to its child, once DescribeStream shows it.
async fn next_shard(
    connection: &mut Connection,
    arn: &str,
    position: &mut Position,
) -> anyhow::Result<()> {
    let shards = shards(connection, arn).await?;
    let child = shards
        .iter()
        .find(|s| s["ParentShardId"].as_str() == Some(position.shard.as_str()));
    match child.and_then(|c| c["ShardId"].as_str()) {
        Some(child) => {
            position.shard = child.to_owned();
            position.iterator = Some(iterator(connection, arn, child, "TRIM_HORIZON").await?);
        }
        None => tokio::time::sleep(POLL).await,
    }
    Ok(())
}

/// Follows the table's stream until `load_end` has passed and a page comes back empty.
pub async fn follow(endpoint: Endpoint, table: String, load_end: Instant) -> anyhow::Result<Value> {
    let mut connection = Connection::open(&endpoint).await?;
    let described = send(
        &mut connection,
        "DescribeTable",
        json!({ "TableName": table }),
    )
    .await?;
    let arn = described["Table"]["LatestStreamArn"]
        .as_str()
        .context("the table has no stream (load it with --stream)")?
        .to_owned();
    let open = shards(&mut connection, &arn).await?;
    let last = open
        .last()
        .and_then(|s| s["ShardId"].as_str())
        .context("no shard")?;
    let mut position = Position {
        shard: last.to_owned(),
        iterator: Some(iterator(&mut connection, &arn, last, "LATEST").await?),
    };
    let (started, mut latency, mut records) = (Instant::now(), histogram(), 0u64);
    loop {
        let Some(current) = position.iterator.clone() else {
            next_shard(&mut connection, &arn, &mut position).await?;
            continue;
        };
        let sent = Instant::now();
        let page = send(
            &mut connection,
            "GetRecords",
            json!({ "ShardIterator": current }),
        )
        .await?;
        latency.saturating_record((sent.elapsed().as_nanos() as u64).max(1));
        let count = page["Records"].as_array().map_or(0, Vec::len) as u64;
        records += count;
        position.iterator = page["NextShardIterator"].as_str().map(str::to_owned);
        if count == 0 && Instant::now() >= load_end {
            let seconds = started.elapsed().as_secs_f64();
            return Ok(json!({
                "records": records,
                "records_per_sec": (records as f64 / seconds).round(),
                "get_records": summary(&latency),
                "caught_up_ms_after_load": (Instant::now() - load_end).as_millis() as u64,
            }));
        }
        if count == 0 {
            tokio::time::sleep(POLL).await;
        }
    }
}
