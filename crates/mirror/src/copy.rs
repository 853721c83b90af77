//! The initial copy: a parallel Scan of the source, each segment's pages applied to the copy in
//! batches (`Service::apply_mirrored`) while the segment's next page is read, with a progress bar
//! (rate and ETA against the source's approximate item count).
//!
//! The stream position is taken before the first segment begins and watched while they run
//! (`crate::position`), so the changes made during the Scan are applied afterwards by the
//! follower. A segment is recorded in the checkpoint when it is done, so a restarted copy scans
//! only the segments it had not finished.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_dynamodb::operation::scan::ScanOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use haven_api::{MirroredWrite, Service};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Mutex;

use crate::checkpoint::Checkpoint;
use crate::convert::table_item;
use crate::position::{self, Watch};
use crate::source::{Source, describe, retrying};
use crate::status::TableStatus;

/// Items asked for per Scan page.
const PAGE_ITEMS: i32 = 1000;

/// What every segment's task shares.
struct Copy {
    service: Arc<Service>,
    source: Source,
    status: Arc<TableStatus>,
    checkpoint: Mutex<Checkpoint>,
    bar: ProgressBar,
}

/// Takes the stream position if this copy has none yet, then copies the segments the checkpoint
/// does not list as done while watching the stream; returns the checkpoint with the copy complete
/// (not yet saved) and the shards still waiting for their first record.
pub async fn run(
    service: Arc<Service>,
    source: Source,
    status: Arc<TableStatus>,
    mut checkpoint: Checkpoint,
    estimated_items: u64,
    poll_interval: Duration,
) -> anyhow::Result<(Checkpoint, Watch)> {
    let progress = checkpoint.copy.clone().unwrap_or_default();
    let mut watch = Watch::default();
    if !progress.position_taken {
        watch = position::take(&source, &status, &mut checkpoint).await?;
        checkpoint.save(&service, &status.table).await?;
    }
    let bar = progress_bar(&status.table, estimated_items);
    let copy = Arc::new(Copy {
        service,
        source,
        status,
        checkpoint: Mutex::new(checkpoint),
        bar,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for segment in (0..progress.total_segments).filter(|s| !progress.done.contains(s)) {
        let copy = copy.clone();
        tasks.spawn(async move { copy.segment(segment, progress.total_segments).await });
    }
    let scan = async {
        while let Some(result) = tasks.join_next().await {
            result??;
        }
        anyhow::Ok(())
    };
    let watching = async {
        loop {
            tokio::time::sleep(poll_interval).await;
            let Copy {
                service,
                source,
                status,
                checkpoint,
                ..
            } = &*copy;
            watch.poll(service, source, status, checkpoint).await?;
        }
    };
    tokio::select! {
        scanned = scan => scanned?,
        failed = watching => return failed,
    }
    copy.bar.finish();
    let mut checkpoint = copy.checkpoint.lock().await.clone();
    checkpoint.copy = None;
    Ok((checkpoint, watch))
}

fn progress_bar(table: &str, estimated_items: u64) -> ProgressBar {
    let bar = ProgressBar::new(estimated_items);
    let style = ProgressStyle::with_template(
        "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/~{human_len} items, {per_sec}, ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(format!("copying {table}"));
    bar
}

impl Copy {
    /// Scans one segment to its end, applying each page while reading the next, then records
    /// the segment as done.
    async fn segment(&self, segment: u32, total: u32) -> anyhow::Result<()> {
        let table = &self.status.table;
        let mut page = self.page(segment, total, None).await?;
        loop {
            let writes = page
                .items()
                .iter()
                .map(|item| table_item(item).map(MirroredWrite::Put))
                .collect::<Result<Vec<_>, _>>()?;
            let count = writes.len() as u64;
            let apply = self.service.apply_mirrored(table, writes);
            let Some(start) = page.last_evaluated_key else {
                apply.await?;
                self.copied(count);
                break;
            };
            let (applied, next) = tokio::join!(apply, self.page(segment, total, Some(start)));
            applied?;
            self.copied(count);
            page = next?;
        }
        let mut checkpoint = self.checkpoint.lock().await;
        if let Some(copy) = checkpoint.copy.as_mut() {
            copy.done.push(segment);
        }
        checkpoint.save(&self.service, table).await
    }

    /// One page of a segment's Scan, from `start`.
    async fn page(
        &self,
        segment: u32,
        total: u32,
        start: Option<std::collections::HashMap<String, AttributeValue>>,
    ) -> anyhow::Result<ScanOutput> {
        let table = &self.status.table;
        retrying(&self.status, "Scan", || {
            self.source
                .tables
                .scan()
                .table_name(table)
                .segment(segment as i32)
                .total_segments(total as i32)
                .limit(PAGE_ITEMS)
                .set_exclusive_start_key(start.clone())
                .send()
        })
        .await
        .map_err(|e| anyhow::anyhow!("cannot scan source table {table}: {}", describe(&e)))
    }

    fn copied(&self, items: u64) {
        self.status.copied_items.fetch_add(items, Ordering::Relaxed);
        self.bar.inc(items);
    }
}
