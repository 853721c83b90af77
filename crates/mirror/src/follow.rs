//! Following the source's stream: every shard read in order, parents before children, each
//! record applied to the copy (the new image, or the deletion of the key), the position saved in
//! the checkpoint after each page.
//!
//! Shard lineage: a shard is read only once its parent is finished (closed and read to its end) or
//! no longer listed (trimmed), so an item's changes are applied in the order the source made them.
//! Iterators are kept between rounds while they last; an expired one is replaced from the
//! checkpoint. A round ends when every readable shard is read to its current end: the copy then
//! holds every change the source had made, and the status records that moment.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{OperationType, Record, Shard, ShardIteratorType};
use haven_api::{MirroredWrite, Service};

use crate::checkpoint::Checkpoint;
use crate::convert::stream_item;
use crate::source::{Source, describe, retrying};
use crate::status::{Phase, TableStatus};

/// Records asked for per GetRecords call (DynamoDB's maximum).
const PAGE_RECORDS: i32 = 1000;
/// Pages read from one shard before the round moves on to the next shard.
const PAGES_PER_TURN: usize = 100;
/// Shards listed at most (DescribeStream pages of 100).
const MAX_SHARD_PAGES: usize = 1000;

pub struct Follower {
    pub service: Arc<Service>,
    pub source: Source,
    pub status: Arc<TableStatus>,
    pub checkpoint: Checkpoint,
    pub poll_interval: Duration,
    iterators: HashMap<String, String>,
}

/// How reading a shard ended this turn.
enum Turn {
    /// Read to the current end of an open shard (or to the end of a closed one).
    CaughtUp,
    /// More records are waiting.
    Behind,
}

impl Follower {
    pub fn new(
        service: Arc<Service>,
        source: Source,
        status: Arc<TableStatus>,
        checkpoint: Checkpoint,
        poll_interval: Duration,
    ) -> Follower {
        Follower {
            service,
            source,
            status,
            checkpoint,
            poll_interval,
            iterators: HashMap::new(),
        }
    }

    /// Follows until the table is promoted (or goes); errors are the caller's to retry.
    pub async fn run(&mut self) -> anyhow::Result<()> {
        self.status.set_phase(Phase::Following);
        loop {
            if self.service.mirror_origin(&self.status.table)?.is_none() {
                self.status.set_phase(Phase::Promoted);
                return Ok(());
            }
            if self.round().await? {
                self.status.caught_up();
                tokio::time::sleep(self.poll_interval).await;
            }
        }
    }

    /// One pass over the readable shards; true if every one of them is read to its end.
    async fn round(&mut self) -> anyhow::Result<bool> {
        let shards = self.shards().await?;
        let listed: Vec<&str> = shards.iter().filter_map(|s| s.shard_id()).collect();
        self.checkpoint
            .shards
            .retain(|id, position| !position.finished || listed.contains(&id.as_str()));
        let mut caught_up = true;
        for shard in &shards {
            let Some(id) = shard.shard_id() else { continue };
            if self.checkpoint.shard(id).finished || !self.parent_done(shard, &listed) {
                continue;
            }
            if let Turn::Behind = self.read_shard(id).await? {
                caught_up = false;
            }
        }
        Ok(caught_up)
    }

    fn parent_done(&self, shard: &Shard, listed: &[&str]) -> bool {
        match shard.parent_shard_id() {
            Some(parent) if listed.contains(&parent) => self.checkpoint.shard(parent).finished,
            _ => true,
        }
    }

    /// Every shard of the stream, in DescribeStream's order.
    async fn shards(&self) -> anyhow::Result<Vec<Shard>> {
        let arn = &self.checkpoint.stream_arn;
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        for _ in 0..MAX_SHARD_PAGES {
            let answer = retrying(&self.status, "DescribeStream", || {
                self.source
                    .streams
                    .describe_stream()
                    .stream_arn(arn)
                    .set_exclusive_start_shard_id(start.clone())
                    .send()
            })
            .await
            .map_err(|e| anyhow::anyhow!("cannot describe stream {arn}: {}", describe(&e)))?;
            let Some(description) = answer.stream_description else {
                break;
            };
            shards.extend(description.shards.unwrap_or_default());
            start = description.last_evaluated_shard_id;
            if start.is_none() {
                break;
            }
        }
        Ok(shards)
    }

    /// Reads up to a turn's pages of one shard, applying and checkpointing each page.
    async fn read_shard(&mut self, id: &str) -> anyhow::Result<Turn> {
        for _ in 0..PAGES_PER_TURN {
            let iterator = self.iterator(id).await?;
            let answer = self
                .source
                .streams
                .get_records()
                .shard_iterator(&iterator)
                .limit(PAGE_RECORDS)
                .send()
                .await;
            let page = match answer {
                Ok(page) => page,
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_expired_iterator_exception()) =>
                {
                    self.iterators.remove(id);
                    continue;
                }
                Err(error) => {
                    self.iterators.remove(id);
                    let reason = describe(&error);
                    self.status.source_failed(reason.clone());
                    anyhow::bail!("cannot read shard {id}: {reason}");
                }
            };
            self.status.source_answered();
            let records = page.records.unwrap_or_default();
            self.apply(id, &records).await?;
            match page.next_shard_iterator {
                Some(next) => {
                    self.iterators.insert(id.to_string(), next);
                    if records.is_empty() {
                        return Ok(Turn::CaughtUp);
                    }
                }
                None => {
                    self.iterators.remove(id);
                    self.checkpoint
                        .shards
                        .entry(id.to_string())
                        .or_default()
                        .finished = true;
                    self.checkpoint
                        .save(&self.service, &self.status.table)
                        .await?;
                    return Ok(Turn::CaughtUp);
                }
            }
        }
        Ok(Turn::Behind)
    }

    /// An iterator for the shard: the one kept from the last read, or a new one after the
    /// checkpoint's position (the shard's oldest record when there is none).
    async fn iterator(&mut self, id: &str) -> anyhow::Result<String> {
        if let Some(iterator) = self.iterators.get(id) {
            return Ok(iterator.clone());
        }
        let after = self.checkpoint.shard(id).after;
        let kind = if after.is_some() {
            ShardIteratorType::AfterSequenceNumber
        } else {
            ShardIteratorType::TrimHorizon
        };
        let arn = &self.checkpoint.stream_arn;
        let answer = retrying(&self.status, "GetShardIterator", || {
            self.source
                .streams
                .get_shard_iterator()
                .stream_arn(arn)
                .shard_id(id)
                .shard_iterator_type(kind.clone())
                .set_sequence_number(after.clone())
                .send()
        })
        .await
        .map_err(|e| anyhow::anyhow!("cannot get an iterator for shard {id}: {}", describe(&e)))?;
        answer
            .shard_iterator
            .ok_or_else(|| anyhow::anyhow!("the source gave no iterator for shard {id}"))
    }

    /// Applies a page of records in order, then saves the position after the last one.
    async fn apply(&mut self, shard: &str, records: &[Record]) -> anyhow::Result<()> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        for record in records {
            let write = change(record)?;
            self.service
                .apply_mirrored(&self.status.table, write)
                .await?;
            let at = record
                .dynamodb()
                .and_then(|r| r.approximate_creation_date_time())
                .map(|t| t.as_secs_f64());
            self.status.applied(at);
        }
        let sequence = last.dynamodb().and_then(|r| r.sequence_number());
        self.checkpoint
            .shards
            .entry(shard.to_string())
            .or_default()
            .after = sequence.map(str::to_string);
        self.checkpoint
            .save(&self.service, &self.status.table)
            .await
    }
}

/// The write a stream record stands for.
fn change(record: &Record) -> anyhow::Result<MirroredWrite> {
    let data = record
        .dynamodb()
        .ok_or_else(|| anyhow::anyhow!("a stream record without its data"))?;
    match record.event_name() {
        Some(OperationType::Remove) => {
            let keys = data
                .keys()
                .ok_or_else(|| anyhow::anyhow!("a REMOVE record without keys"))?;
            Ok(MirroredWrite::Delete(stream_item(keys)?))
        }
        _ => {
            let image = data.new_image().ok_or_else(|| {
                anyhow::anyhow!("an INSERT or MODIFY record without its new image")
            })?;
            Ok(MirroredWrite::Put(stream_item(image)?))
        }
    }
}
