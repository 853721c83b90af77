//! The stream position the mirror follows from, taken before the initial copy's Scan begins, so
//! that the stream replays only the changes the Scan may have missed instead of its whole
//! retention (24 hours of records on AWS, which a busy table may never catch up with).
//!
//! Before the Scan: a shard already closed holds only changes made before it, which the Scan
//! sees, so it is marked finished; every open shard gets a LATEST iterator (just after its newest
//! record so far). While the Scan runs those iterators are polled, applying nothing (a change
//! applied during the Scan could be overwritten by an older image the Scan read before it), until
//! each shard shows its first record made since: that record's sequence number is checkpointed,
//! and the follower reads the shard from it, inclusive, once the Scan is done. A shard that shows
//! no record keeps its iterator, which the follower reads on; one that closes empty is finished.
//! Shards opened during the Scan are children of these and are read whole, after them.
//!
//! Why replaying is safe: a change the Scan already saw sets its item to an image it had, and
//! every later change of that item follows in sequence order, so the copy ends identical to the
//! source. The position is taken once per copy: a restarted copy keeps the positions found so far
//! (items a first attempt copied may have changed since, and only the stream from the first
//! position repairs them), and an open shard that had none is read from its oldest record (safe,
//! only slower).

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use haven_api::Service;
use tokio::sync::Mutex;

use crate::checkpoint::Checkpoint;
use crate::source::{Source, describe, retrying, shards, transient};
use crate::status::TableStatus;

/// Open shards still waiting for their first record since the position was taken, with the
/// iterator to read them on.
#[derive(Default)]
pub struct Watch {
    pub pending: HashMap<String, String>,
}

/// Takes the position in `checkpoint` (not saved): closed shards finished, open ones watched.
pub async fn take(
    source: &Source,
    status: &Arc<TableStatus>,
    checkpoint: &mut Checkpoint,
) -> anyhow::Result<Watch> {
    let arn = checkpoint.stream_arn.clone();
    let mut watch = Watch::default();
    for shard in shards(source, status, &arn).await? {
        let Some(id) = shard.shard_id() else { continue };
        let closed = shard
            .sequence_number_range()
            .and_then(|range| range.ending_sequence_number())
            .is_some();
        if closed {
            checkpoint
                .shards
                .entry(id.to_string())
                .or_default()
                .finished = true;
            continue;
        }
        let answer = retrying(status, "GetShardIterator", || {
            source
                .streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(id)
                .shard_iterator_type(ShardIteratorType::Latest)
                .send()
        })
        .await
        .map_err(|e| anyhow::anyhow!("cannot get an iterator for shard {id}: {}", describe(&e)))?;
        if let Some(iterator) = answer.shard_iterator {
            watch.pending.insert(id.to_string(), iterator);
        }
    }
    if let Some(copy) = checkpoint.copy.as_mut() {
        copy.position_taken = true;
    }
    Ok(watch)
}

impl Watch {
    /// Reads each pending shard's next record, if any: a shard that has one gets it as its
    /// starting point in the checkpoint (saved), one that ended is finished. An iterator the
    /// source refuses is dropped (the shard is then read from its oldest record); one it cannot
    /// answer now is tried again at the next poll.
    pub async fn poll(
        &mut self,
        service: &Service,
        source: &Source,
        status: &TableStatus,
        checkpoint: &Mutex<Checkpoint>,
    ) -> anyhow::Result<()> {
        let ids: Vec<String> = self.pending.keys().cloned().collect();
        for id in ids {
            let iterator = self.pending[&id].clone();
            let answer = source
                .streams
                .get_records()
                .shard_iterator(iterator)
                .limit(1)
                .send()
                .await;
            let page = match answer {
                Ok(page) => page,
                Err(error) if transient(&error) => continue,
                Err(error) => {
                    tracing::warn!(table = %status.table, shard = %id, reason = %describe(&error),
                        "lost the position taken before the scan; the shard will be read from its oldest record");
                    self.pending.remove(&id);
                    continue;
                }
            };
            let first = page.records().first();
            let first = first
                .and_then(|r| r.dynamodb())
                .and_then(|r| r.sequence_number())
                .map(str::to_string);
            match (&first, page.next_shard_iterator) {
                (None, Some(next)) => {
                    self.pending.insert(id, next);
                    continue;
                }
                _ => self.pending.remove(&id),
            };
            let mut checkpoint = checkpoint.lock().await;
            let position = checkpoint.shards.entry(id).or_default();
            match first {
                Some(sequence) => position.from = Some(sequence),
                None => position.finished = true,
            }
            checkpoint.save(service, &status.table).await?;
        }
        Ok(())
    }
}
