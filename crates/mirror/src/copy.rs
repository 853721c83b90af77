//! The initial copy: a parallel Scan of the source, each segment's items applied to the copy as
//! they arrive, with a progress bar (rate and ETA against the source's approximate item count).
//!
//! A segment is recorded in the checkpoint when it is done, so a restarted copy scans only the
//! segments it had not finished. Changes made to the source while (or before) it scans are not
//! lost: the stream is followed afterwards from its oldest record (`crate::follow`), and replaying
//! a change the Scan already saw sets the item to the same image again.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use haven_api::{MirroredWrite, Service};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Mutex;

use crate::checkpoint::Checkpoint;
use crate::convert::table_item;
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

/// Copies the segments the checkpoint does not list as done; returns the checkpoint with the copy
/// complete (not yet saved).
pub async fn run(
    service: Arc<Service>,
    source: Source,
    status: Arc<TableStatus>,
    checkpoint: Checkpoint,
    estimated_items: u64,
) -> anyhow::Result<Checkpoint> {
    let progress = checkpoint.copy.clone().unwrap_or_default();
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
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    copy.bar.finish();
    let mut checkpoint = copy.checkpoint.lock().await.clone();
    checkpoint.copy = None;
    Ok(checkpoint)
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
    /// Scans one segment to its end, applying each page, then records it as done.
    async fn segment(&self, segment: u32, total: u32) -> anyhow::Result<()> {
        let table = &self.status.table;
        let mut start = None;
        loop {
            let page = retrying(&self.status, "Scan", || {
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
            .map_err(|e| anyhow::anyhow!("cannot scan source table {table}: {}", describe(&e)))?;
            for item in page.items() {
                let item = table_item(item)?;
                self.service
                    .apply_mirrored(table, MirroredWrite::Put(item))
                    .await?;
            }
            let count = page.items().len() as u64;
            self.status.copied_items.fetch_add(count, Ordering::Relaxed);
            self.bar.inc(count);
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let mut checkpoint = self.checkpoint.lock().await;
        if let Some(copy) = checkpoint.copy.as_mut() {
            copy.done.push(segment);
        }
        checkpoint.save(&self.service, table).await
    }
}
