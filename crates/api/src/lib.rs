//! The DynamoDB API: one module per operation (in `ops`), each validating its request, calling the
//! storage engine and shaping the response or the error exactly as DynamoDB does.
//!
//! [`Service`] is what the HTTP layer calls: an operation name and a JSON body in, a JSON body or a
//! [`DynamoError`] out. Nothing here knows about HTTP.

pub mod access;
mod background;
mod backup;
mod capacity;
mod catalog;
mod changes;
mod error;
mod export;
mod expressions;
mod hot_items;
mod import;
mod indexes;
mod item_json;
mod items;
mod json_reader;
mod lease;
mod mirror;
mod ops;
mod pages;
mod partiql;
mod replication;
mod reply;
mod retry;
mod streams;
mod transient;
mod ttl;
mod wire;
mod wire_item;

use std::sync::Arc;

use haven_storage::{Engine, StorageError};

pub use backup::BackupStoreConfig;
pub use backup::s3::{S3Config, S3Endpoint, Signing};
pub use backup::store::{BackupStore, DirStore};
pub use capacity::{CapacityMode, CapacitySettings};
pub use catalog::{Catalog, TableMeta, TableStats};
pub use error::{CancellationReason, DynamoError};
pub use import::ImportSourceConfig;
pub use mirror::{MirrorOrigin, MirroredWrite};
pub use ops::{Decoded, Operation, REPLICATION_TARGET};
pub use replication::{
    DEFAULT_TOMBSTONE_GRACE, Lag, Peer, ReplicationSettings, SendError, Transport,
};
pub use reply::Reply;
pub use retry::contention_give_ups;
pub use streams::StreamSettings;
pub use wire::from_body;

/// The members an error body carries besides `__type` and `message`: the item of a failed condition
/// (when asked for), the CancellationReasons of a cancelled transaction.
pub fn error_details(error: &DynamoError) -> serde_json::Map<String, serde_json::Value> {
    let mut details = serde_json::Map::new();
    match error {
        DynamoError::ConditionalCheckFailed {
            item: Some(item), ..
        } => {
            details.insert("Item".into(), wire::item_to_json(item));
        }
        DynamoError::TransactionCanceled(reasons) => {
            let reasons = reasons
                .iter()
                .map(|reason| {
                    let mut entry = serde_json::Map::new();
                    if let Some(item) = &reason.item {
                        entry.insert("Item".into(), wire::item_to_json(item));
                    }
                    entry.insert("Code".into(), reason.code.into());
                    if let Some(message) = &reason.message {
                        entry.insert("Message".into(), message.clone().into());
                    }
                    serde_json::Value::Object(entry)
                })
                .collect();
            details.insert(
                "CancellationReasons".into(),
                serde_json::Value::Array(reasons),
            );
        }
        _ => {}
    }
    details
}

/// Settings that appear in responses.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Region named in ARNs and DescribeEndpoints.
    pub region: String,
    /// Account id named in ARNs.
    pub account: String,
    /// Largest item collection (items of one partition plus their local index entries) of a table
    /// with local secondary indexes; DynamoDB's limit is 10 GB.
    pub item_collection_limit: u64,
    /// Shard rollover, retention and iterator lifetime of DynamoDB Streams.
    pub streams: StreamSettings,
    /// How often the TTL worker looks for expired items (they are deleted within about this
    /// long; DynamoDB takes up to a few days).
    pub ttl_interval: std::time::Duration,
    /// The peer regions of global tables and the shipper's period.
    pub replication: ReplicationSettings,
    /// Where backups are kept (`crate::backup`).
    pub backup_store: BackupStoreConfig,
    /// Where ImportTable finds buckets (`crate::import`).
    pub import_source: ImportSourceConfig,
    /// How old a table's point-in-time recovery base image grows before a new one is taken
    /// (`crate::backup::pitr`): the log replayed by a restore is at most about this long.
    pub pitr_rebase: std::time::Duration,
    /// How long a new table stays CREATING, an updated one UPDATING and a deleted one DELETING
    /// (zero: ACTIVE or gone at once, the default; DynamoDB Local's `-delayTransientStatuses`;
    /// `crate::transient`).
    pub transient_status: std::time::Duration,
    /// Whether capacity is enforced, and the burst window of provisioned tables (`capacity`).
    pub capacity: CapacitySettings,
    /// Where exports write the buckets they name (`crate::export`); None: an export fails.
    pub s3_endpoint: Option<S3Endpoint>,
    /// The shortest incremental export window (AWS's 15 minutes; lowered only by tests).
    pub export_min_window: std::time::Duration,
}

impl Default for ServiceConfig {
    fn default() -> ServiceConfig {
        ServiceConfig {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            item_collection_limit: 10 * 1024 * 1024 * 1024,
            streams: StreamSettings::default(),
            ttl_interval: std::time::Duration::from_secs(1),
            replication: ReplicationSettings::default(),
            backup_store: BackupStoreConfig::default(),
            import_source: ImportSourceConfig::default(),
            pitr_rebase: std::time::Duration::from_secs(86_400),
            transient_status: std::time::Duration::ZERO,
            capacity: CapacitySettings::default(),
            s3_endpoint: None,
            export_min_window: std::time::Duration::from_secs(15 * 60),
        }
    }
}

/// What the HTTP layer knows about a request beyond its operation and body.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The `Host` header the client sent (`host[:port]`): DescribeEndpoints answers with it, so
    /// that an SDK doing endpoint discovery keeps talking to this server.
    pub host: Option<String>,
    /// The authenticated caller, when authentication is on; the request is authorized against
    /// its policy before the operation runs (see [`access`]).
    pub principal: Option<access::Principal>,
}

/// The DynamoDB service over one storage engine.
pub struct Service {
    engine: Arc<dyn Engine>,
    catalog: Arc<Catalog>,
    config: ServiceConfig,
    /// Replication lag per (global table, peer region), as the shipper measures it.
    lag: Lag,
    /// The backup store (`crate::backup`).
    backups: Arc<dyn backup::store::BackupStore>,
    /// Stops the background workers (log trimming, TTL) when the service goes.
    stop: background::Stop,
    /// The tables' capacity buckets (`capacity`).
    capacity: capacity::Governor,
}

impl Service {
    /// Loads the catalog, which resumes any index creation or deletion a previous run left
    /// half-way, and starts the background workers the tables need.
    pub fn new(engine: Arc<dyn Engine>, config: ServiceConfig) -> Result<Service, StorageError> {
        let catalog = Catalog::load(engine.clone(), config.transient_status)?;
        let service = Service {
            engine,
            catalog,
            backups: config.backup_store.open(),
            capacity: capacity::Governor::new(config.capacity),
            config,
            lag: Lag::default(),
            stop: background::Stop::default(),
        };
        service.start_workers()?;
        Ok(service)
    }

    /// The region this service answers as (in ARNs, and in the endpoint's `GET /` answer).
    pub fn region(&self) -> &str {
        &self.config.region
    }

    /// The AWS account whose tables this service holds (in ARNs).
    pub fn account(&self) -> &str {
        &self.config.account
    }

    /// Resumes restores, imports and exports a previous run left half-way, starts the
    /// replication shipper if there are peers, and from now on the workers the tables call for
    /// (the change log's trimmer, the TTL worker, PITR's re-basing: `background::Job`), each the
    /// first time some table needs it.
    fn start_workers(&self) -> Result<(), StorageError> {
        backup::resume_restores(&self.engine, &self.catalog, &self.backups, &self.config);
        import::resume_imports(&self.engine, &self.catalog, &self.backups, &self.config);
        export::resume(&self.engine, &self.catalog, &self.backups, &self.config);
        replication::spawn(
            self.engine.clone(),
            self.catalog.clone(),
            self.config.replication.clone(),
            self.lag.clone(),
            self.stop.clone(),
        );
        let jobs = self.catalog.jobs();
        if streams::worker::has_leftovers(&*self.engine)? {
            jobs.want(&self.catalog, [background::Job::Log]);
        }
        jobs.start_with(&self.catalog, self.starter());
        Ok(())
    }

    /// Starts a job's worker with the service's settings.
    fn starter(&self) -> background::Starter {
        let (engine, config) = (self.engine.clone(), self.config.clone());
        let (backups, stop) = (self.backups.clone(), self.stop.clone());
        Box::new(move |job, catalog| {
            let (engine, catalog, stop) = (engine.clone(), catalog.clone(), stop.clone());
            match job {
                background::Job::Log => {
                    streams::worker::spawn(engine, catalog, config.streams.clone(), stop)
                }
                background::Job::Ttl => ttl::spawn(
                    engine,
                    catalog,
                    config.ttl_interval,
                    config.item_collection_limit,
                    stop,
                ),
                background::Job::Pitr => {
                    backup::pitr::spawn(engine, catalog, backups.clone(), config.pitr_rebase, stop)
                }
            }
        })
    }

    /// Replication lag per global table and peer region (the `/replication/status` page).
    pub fn replication_lag(&self) -> Lag {
        self.lag.clone()
    }

    /// Runs one operation given its name (the part of `X-Amz-Target` after the dot) and JSON request.
    pub async fn call(
        &self,
        operation: &str,
        request: serde_json::Value,
    ) -> Result<serde_json::Value, DynamoError> {
        self.call_with(operation, request, &RequestContext::default())
            .await
            .map(Reply::into_value)
    }

    /// Every table's item count and size, read from one snapshot (DescribeTable's figures), for
    /// the metrics. Costs a lookup per table.
    pub fn table_stats(&self) -> Result<Vec<(String, TableStats)>, StorageError> {
        let snapshot = self.engine.snapshot()?;
        let mut stats = Vec::new();
        for name in self.catalog.names() {
            if let Some(meta) = self.catalog.get(&name)? {
                stats.push((name, Catalog::stats(&*snapshot, &meta)?));
            }
        }
        Ok(stats)
    }

    /// The storage engine's page cache figures, for the metrics (None if it has no cache of its own).
    pub fn cache_stats(&self) -> Option<haven_storage::CacheStats> {
        self.engine.cache_stats()
    }

    /// [`Service::call`] with what the HTTP layer knows about the request.
    pub async fn call_with(
        &self,
        operation: &str,
        request: serde_json::Value,
        context: &RequestContext,
    ) -> Result<Reply, DynamoError> {
        let operation = Operation::from_name(operation).ok_or(DynamoError::UnknownOperation)?;
        if !request.is_object() {
            return Err(DynamoError::Serialization(
                "Start of structure or map found where not expected".into(),
            ));
        }
        if let Some(principal) = &context.principal {
            access::authorize(self, operation, &request, principal)?;
        }
        ops::dispatch(self, operation, request, context).await
    }

    /// Runs a request read straight from its body ([`Decoded::read`]). It is not authorized:
    /// only for a server without authentication (with it, [`Service::call_with`]). A check every
    /// item request must pass belongs in the operations (both paths run them), not only in
    /// `call_with`.
    pub async fn call_decoded(&self, request: Decoded) -> Result<Reply, DynamoError> {
        request.run(self).await
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.stop();
    }
}
