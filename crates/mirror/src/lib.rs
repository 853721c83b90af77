//! `haven mirror`: keeps tables of another DynamoDB endpoint (AWS, DynamoDB Local, another Haven)
//! as live, read-only copies in this Haven, so that Haven can take over when that endpoint is gone.
//!
//! Per table: the schema is copied (`schema`), a position in the table's stream is taken
//! (`position`), the items are copied with a parallel Scan (`copy`), then the stream is followed
//! from that position (`follow`), so no change made during or after the Scan is lost. The position is checkpointed in Haven's own storage (`checkpoint`)
//! and a restart resumes from it; the source is read through the AWS SDK for Rust with backoff
//! (`source`); the copy is written in-process through Haven's API layer, which refuses clients'
//! writes while the table is mirrored (`haven_api::MirrorOrigin`). `haven mirror promote` clears
//! that mark: the follower sees it and stops, and the table is an ordinary, writable one.

mod checkpoint;
mod convert;
mod copy;
mod follow;
mod position;
mod schema;
mod source;
mod status;

use std::sync::Arc;
use std::time::Duration;

use haven_api::{DynamoError, MirrorOrigin, Service};
use serde_json::{Value, json};

pub use source::SourceConfig;
pub use status::{Phase, TableStatus};

use checkpoint::{Checkpoint, CopyProgress};
use source::Source;

/// What to mirror and how.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    pub source: SourceConfig,
    /// Tables of the source to mirror (each under the same name here).
    pub tables: Vec<String>,
    /// Scan segments of the initial copy, read in parallel.
    pub segments: u32,
    /// Time between two reads of a stream that had nothing new.
    pub poll_interval: Duration,
    /// Time between two attempts of a table whose mirror failed.
    pub retry_interval: Duration,
}

/// The running mirror: one task per table, and their statuses.
pub struct Mirror {
    tables: Vec<Arc<TableStatus>>,
}

impl Mirror {
    /// Prepares every table (checking the source and creating the copies that do not exist yet;
    /// any error here is the operator's to fix, so it stops the start) and starts following them
    /// on the current tokio runtime.
    pub async fn start(service: Arc<Service>, config: MirrorConfig) -> anyhow::Result<Mirror> {
        let source = Source::connect(config.source.clone()).await?;
        let mut tables = Vec::new();
        for table in &config.tables {
            let status = Arc::new(TableStatus::new(table, &config.source.endpoint));
            prepare(&service, &source, &status, config.segments).await?;
            tables.push(status.clone());
            let worker = Worker {
                service: service.clone(),
                source: source.clone(),
                status,
                config: config.clone(),
            };
            tokio::spawn(worker.run());
        }
        let lags = tables.clone();
        haven_metrics::sample_mirrors_with(Box::new(move || {
            let lag = |t: &Arc<TableStatus>| Some((t.table.clone(), t.lag_seconds()?));
            lags.iter().filter_map(lag).collect()
        }));
        Ok(Mirror { tables })
    }

    /// The status page: one entry per table.
    pub fn report(&self) -> Value {
        json!({"tables": self.tables.iter().map(|t| t.report()).collect::<Vec<_>>()})
    }
}

/// Makes sure the copy exists and is a mirror, with a checkpoint to start from.
async fn prepare(
    service: &Service,
    source: &Source,
    status: &Arc<TableStatus>,
    segments: u32,
) -> anyhow::Result<()> {
    let table = &status.table;
    match service.mirror_origin(table) {
        Ok(Some(_)) if Checkpoint::load(service, table)?.is_some() => return Ok(()),
        Ok(Some(_)) => {}
        Ok(None) => anyhow::bail!(
            "table {table} already exists in Haven and is not a mirror (was it promoted?): \
             delete it, or mirror the source into another Haven"
        ),
        Err(DynamoError::ResourceNotFound(_)) => {
            let found = schema::inspect(source, status).await?;
            let origin = MirrorOrigin {
                endpoint: source.config.endpoint.clone(),
                table: found.description.table_arn().unwrap_or(table).to_string(),
            };
            schema::create_copy(service, source, status, &found, origin).await?;
        }
        Err(error) => return Err(error.into()),
    }
    let found = schema::inspect(source, status).await?;
    let checkpoint = Checkpoint {
        stream_arn: found.stream_arn,
        copy: Some(CopyProgress {
            total_segments: segments.max(1),
            ..CopyProgress::default()
        }),
        shards: Default::default(),
    };
    checkpoint.save(service, table).await
}

/// One table's mirror, restarted from its checkpoint after any failure.
struct Worker {
    service: Arc<Service>,
    source: Source,
    status: Arc<TableStatus>,
    config: MirrorConfig,
}

impl Worker {
    async fn run(self) {
        loop {
            match self.mirror().await {
                Ok(()) => return,
                Err(error) => {
                    let reason = format!("{error:#}");
                    tracing::warn!(table = %self.status.table, %reason, "mirror failed; resuming from its checkpoint");
                    self.status.failed(reason);
                    tokio::time::sleep(self.config.retry_interval).await;
                }
            }
        }
    }

    /// Finishes the initial copy if it is not done, then follows the stream until promotion.
    async fn mirror(&self) -> anyhow::Result<()> {
        let table = &self.status.table;
        if self.service.mirror_origin(table)?.is_none() {
            self.status.set_phase(Phase::Promoted);
            return Ok(());
        }
        let Some(mut checkpoint) = Checkpoint::load(&self.service, table)? else {
            anyhow::bail!("the checkpoint of {table} is missing");
        };
        let mut iterators = Default::default();
        if checkpoint.copy.is_some() {
            self.status.set_phase(Phase::Copying);
            let found = schema::inspect(&self.source, &self.status).await?;
            let estimate = found.description.item_count().unwrap_or(0).max(0) as u64;
            let watch;
            (checkpoint, watch) = copy::run(
                self.service.clone(),
                self.source.clone(),
                self.status.clone(),
                checkpoint,
                estimate,
                self.config.poll_interval,
            )
            .await?;
            checkpoint.save(&self.service, table).await?;
            iterators = watch.pending;
        }
        let mut follower = follow::Follower::new(
            self.service.clone(),
            self.source.clone(),
            self.status.clone(),
            checkpoint,
            self.config.poll_interval,
            iterators,
        );
        follower.run().await
    }
}
