//! Following the source's stream: every shard read in order, parents before children, each
//! page of records applied to the copy (new images, deletions of keys) in order and in batches,
//! the position saved in the checkpoint after each page.
//!
//! Where a shard is read from: after the last record applied; else from the first record made
//! after the initial copy began (`crate::position`), or on the iterator that position left; else
//! (a shard opened since, or whose position was lost) from its oldest record.
//!
//! Shard lineage: a shard is read only once its parent is finished (closed and read to its end) or
//! no longer listed (trimmed), so an item's changes are applied in the order the source made them.
//! Iterators are kept between rounds while they last; an expired one is replaced from the
//! checkpoint.
//!
//! Lag: each round knows, per shard it read, up to when the copy holds the shard's changes: the
//! moment its last read was sent when that read reached the shard's end, else the source's time
//! of the last record applied. The oldest of these is how far the copy is complete
//! (`TableStatus::complete_until`); a source that writes without pause never leaves an empty page,
//! so "caught up" cannot wait for one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{OperationType, Record, Shard, ShardIteratorType};
use haven_api::{MirroredWrite, Service};

use crate::checkpoint::Checkpoint;
use crate::convert::stream_item;
use crate::source::{Source, describe, retrying, shards};
use crate::status::{Phase, TableStatus, now_seconds};

/// Records asked for per GetRecords call (DynamoDB's maximum).
const PAGE_RECORDS: i32 = 1000;
/// Pages read from one shard before the round moves on to the next shard.
const PAGES_PER_TURN: usize = 100;

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
    /// Read to the current end of an open shard (or to the end of a closed one) by a read sent
    /// at this time (Unix seconds).
    CaughtUp(f64),
    /// More records are waiting; the last applied was made at this time on the source (if any
    /// was and the source said when).
    Behind(Option<f64>),
}

impl Follower {
    pub fn new(
        service: Arc<Service>,
        source: Source,
        status: Arc<TableStatus>,
        checkpoint: Checkpoint,
        poll_interval: Duration,
        iterators: HashMap<String, String>,
    ) -> Follower {
        Follower {
            service,
            source,
            status,
            checkpoint,
            poll_interval,
            iterators,
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
            let (caught_up, complete_until) = self.round().await?;
            if let Some(at) = complete_until {
                self.status.complete_until(at);
            }
            if caught_up {
                tokio::time::sleep(self.poll_interval).await;
            }
        }
    }

    /// One pass over the readable shards: whether every one of them is read to its end, and up
    /// to when the copy holds every change (None: not known this round).
    async fn round(&mut self) -> anyhow::Result<(bool, Option<f64>)> {
        let started = now_seconds();
        let shards = shards(&self.source, &self.status, &self.checkpoint.stream_arn).await?;
        let listed: Vec<&str> = shards.iter().filter_map(|s| s.shard_id()).collect();
        self.checkpoint
            .shards
            .retain(|id, position| !position.finished || listed.contains(&id.as_str()));
        let mut caught_up = true;
        let mut complete_until: Option<f64> = None;
        let mut unknown = false;
        for shard in &shards {
            let Some(id) = shard.shard_id() else { continue };
            if self.checkpoint.shard(id).finished || !self.parent_done(shard, &listed) {
                continue;
            }
            let until = match self.read_shard(id).await? {
                Turn::CaughtUp(at) => Some(at),
                Turn::Behind(at) => {
                    caught_up = false;
                    at
                }
            };
            match until {
                Some(at) => complete_until = Some(complete_until.map_or(at, |c| c.min(at))),
                None => unknown = true,
            }
        }
        let complete_until = complete_until.unwrap_or(started);
        Ok((caught_up, Some(complete_until).filter(|_| !unknown)))
    }

    fn parent_done(&self, shard: &Shard, listed: &[&str]) -> bool {
        match shard.parent_shard_id() {
            Some(parent) if listed.contains(&parent) => self.checkpoint.shard(parent).finished,
            _ => true,
        }
    }

    /// Reads up to a turn's pages of one shard, applying and checkpointing each page.
    async fn read_shard(&mut self, id: &str) -> anyhow::Result<Turn> {
        let mut last_change = None;
        for _ in 0..PAGES_PER_TURN {
            let iterator = self.iterator(id).await?;
            let sent = now_seconds();
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
            if let Some(at) = self.apply(id, &records).await? {
                last_change = Some(at);
            }
            match page.next_shard_iterator {
                Some(next) => {
                    self.iterators.insert(id.to_string(), next);
                    if records.is_empty() {
                        return Ok(Turn::CaughtUp(sent));
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
                    return Ok(Turn::CaughtUp(sent));
                }
            }
        }
        Ok(Turn::Behind(last_change))
    }

    /// An iterator for the shard: the one kept from the last read, or a new one at the
    /// checkpoint's position (see the module's documentation).
    async fn iterator(&mut self, id: &str) -> anyhow::Result<String> {
        if let Some(iterator) = self.iterators.get(id) {
            return Ok(iterator.clone());
        }
        let position = self.checkpoint.shard(id);
        let (kind, sequence) = match (position.after, position.from) {
            (Some(after), _) => (ShardIteratorType::AfterSequenceNumber, Some(after)),
            (None, Some(from)) => (ShardIteratorType::AtSequenceNumber, Some(from)),
            (None, None) => (ShardIteratorType::TrimHorizon, None),
        };
        let arn = &self.checkpoint.stream_arn;
        let answer = retrying(&self.status, "GetShardIterator", || {
            self.source
                .streams
                .get_shard_iterator()
                .stream_arn(arn)
                .shard_id(id)
                .shard_iterator_type(kind.clone())
                .set_sequence_number(sequence.clone())
                .send()
        })
        .await
        .map_err(|e| anyhow::anyhow!("cannot get an iterator for shard {id}: {}", describe(&e)))?;
        answer
            .shard_iterator
            .ok_or_else(|| anyhow::anyhow!("the source gave no iterator for shard {id}"))
    }

    /// Applies a page of records in order, then saves the position after the last one;
    /// answers the source's time of the last record (None for an empty page).
    async fn apply(&mut self, shard: &str, records: &[Record]) -> anyhow::Result<Option<f64>> {
        let Some(last) = records.last() else {
            return Ok(None);
        };
        let writes = records.iter().map(change).collect::<anyhow::Result<_>>()?;
        self.service
            .apply_mirrored(&self.status.table, writes)
            .await?;
        let data = last.dynamodb();
        let at = data
            .and_then(|r| r.approximate_creation_date_time())
            .map(|t| t.as_secs_f64());
        self.status.applied(records.len() as u64);
        let position = self.checkpoint.shards.entry(shard.to_string()).or_default();
        position.after = data.and_then(|r| r.sequence_number()).map(str::to_string);
        position.from = None;
        self.checkpoint
            .save(&self.service, &self.status.table)
            .await?;
        Ok(at)
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
