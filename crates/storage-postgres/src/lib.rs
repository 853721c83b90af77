//! Haven on PostgreSQL: the [`Engine`] trait over a database that many Haven nodes share.
//!
//! The embedded engine keeps a node's data on that node, so a node that dies takes its tables
//! with it. With this engine the nodes are stateless: the data, the catalog, the change log and
//! the leases live in PostgreSQL, which users already run (and operate, back up and fail over),
//! and every node serves every table. The semantics are the embedded engine's, proven by the same
//! test suite (`haven_storage::engine_suite`):
//! - snapshots are `REPEATABLE READ, READ ONLY` transactions on pooled connections (`snapshot`),
//!   and a one-shot read (`Engine::read`) is one statement with no transaction, shared under load
//!   by the reads queued beside it (`reader`);
//! - writes go through one committer per node that folds queued batches into one transaction
//!   under a database-wide commit lock, checking each batch's expectations in arrival order
//!   (`committer`, `group`), usually in one statement that checks what the group was decided on;
//! - the schema is versioned and migrated by Haven at start-up (`schema`).
//!
//! PostgreSQL is reached without TLS (a deliberate choice to keep the dependency tree lean: run
//! Haven next to its database or inside a private network). docs/scale-out.md records the
//! design decisions and measurements; docs/operations.md the production setup.

mod bridge;
mod committer;
mod group;
mod reader;
mod schema;
mod snapshot;
#[cfg(feature = "test-support")]
pub mod testing;

use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use haven_storage::{Engine, PendingCommit, PendingRead, Snapshot, StorageError, WriteBatch};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

use crate::bridge::Bridge;
use crate::committer::{CommitRequest, Committer};
use crate::snapshot::PgSnapshot;

/// Pooled connections per node for snapshots, unless told otherwise.
pub const DEFAULT_POOL_SIZE: usize = 32;
/// How long connecting may take unless the connection string says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a read may wait for a free pooled connection before it fails.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// Session settings of every connection: a transaction left idle (a node frozen mid-commit,
/// holding the commit lock) is ended by the server, and a lock wait gives up with an error.
const SESSION_OPTIONS: &str = "-c idle_in_transaction_session_timeout=60000 -c lock_timeout=20000";
/// Session settings of the pooled connections (reads) on top of [`SESSION_OPTIONS`]: their
/// prepared statements keep one generic plan instead of being planned afresh at every execution.
/// PostgreSQL's plan for an actual key array always looks cheaper than the generic one, so
/// `key = ANY($1)` was planned at each of its executions, and planning cost as much backend CPU
/// as executing (48 against 44 µs per read statement under workload A; docs/benchmarks.md). The
/// generic plan is the same lookup on the primary key, and it is made again when the table's
/// statistics change, as a custom plan would be.
const READ_OPTIONS: &str = "-c plan_cache_mode=force_generic_plan";

/// The PostgreSQL engine. Dropping it (or [`PostgresEngine::shutdown`]) commits what is queued.
pub struct PostgresEngine {
    /// `host:port/database`, for messages.
    target: String,
    bridge: Bridge,
    runtime: Mutex<Option<Runtime>>,
    pool: Pool,
    reads: mpsc::UnboundedSender<reader::ReadRequest>,
    commits: Mutex<Option<mpsc::UnboundedSender<CommitRequest>>>,
    committer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl PostgresEngine {
    /// Connects to the database of `url` (`postgres://user:password@host:port/database`, or
    /// key=value pairs; several hosts with `target_session_attrs=read-write` follow a failover),
    /// creates or migrates Haven's tables, and starts the committer. Errors say what to fix.
    pub fn connect(url: &str) -> Result<PostgresEngine, StorageError> {
        Self::connect_with_pool(url, DEFAULT_POOL_SIZE)
    }

    /// [`PostgresEngine::connect`] with at most `pool_size` pooled connections for reads.
    pub fn connect_with_pool(url: &str, pool_size: usize) -> Result<PostgresEngine, StorageError> {
        let config = session_config(url)?;
        let target = describe(&config);
        let runtime = bridge::runtime()?;
        let bridge = Bridge(runtime.handle().clone());
        let (migration_config, migration_target) = (config.clone(), target.clone());
        bridge.run(async move {
            let mut client = connect(&migration_config, &migration_target).await?;
            schema::migrate(&mut client, &migration_target).await
        })??;
        let pool = pool(config.clone(), pool_size)?;
        let (reads, read_requests) = mpsc::unbounded_channel();
        runtime.spawn(reader::run(pool.clone(), read_requests));
        let (sender, receiver) = mpsc::unbounded_channel();
        let committer = runtime.spawn(Committer::new(config, target.clone()).run(receiver));
        tracing::info!(target, pool_size, "PostgreSQL storage ready");
        Ok(PostgresEngine {
            target,
            bridge,
            runtime: Mutex::new(Some(runtime)),
            pool,
            reads,
            commits: Mutex::new(Some(sender)),
            committer: Mutex::new(Some(committer)),
        })
    }

    /// `host:port/database` (every host of a multi-host connection string), never the password.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Stops accepting batches, waits for the queued ones to commit, and closes the connections.
    pub fn shutdown(&self) {
        self.commits.lock().unwrap().take();
        if let Some(committer) = self.committer.lock().unwrap().take() {
            let _ = self.bridge.run(committer);
        }
        self.pool.close();
        if let Some(runtime) = self.runtime.lock().unwrap().take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for PostgresEngine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Engine for PostgresEngine {
    fn snapshot(&self) -> Result<Box<dyn Snapshot>, StorageError> {
        Ok(Box::new(PgSnapshot::new(&self.pool, &self.bridge)))
    }

    /// One statement on a pooled connection, shared with the reads queued beside it (`reader`),
    /// answered on the engine's runtime: no transaction, and no thread of the caller's runtime
    /// waits for it.
    fn read(&self, keys: Vec<Vec<u8>>) -> PendingRead {
        let (reply, pending) = PendingRead::channel();
        // A send error means the reader is gone (the runtime shut down); dropping `reply`
        // resolves as Closed.
        let _ = self.reads.send((keys, reply));
        pending
    }

    fn commit(&self, batch: WriteBatch) -> PendingCommit {
        let (reply, pending) = PendingCommit::channel();
        if let Some(sender) = self.commits.lock().unwrap().as_ref() {
            // A send error means the committer is gone; dropping `reply` resolves as Closed.
            let _ = sender.send((batch, reply));
        }
        pending
    }

    /// Any number of nodes share one database (docs/scale-out.md).
    fn shared(&self) -> bool {
        true
    }
}

/// The connection string's settings plus Haven's: a connect timeout, the application name the
/// server shows, and [`SESSION_OPTIONS`] after any options the string sets.
fn session_config(url: &str) -> Result<Config, StorageError> {
    let mut config = Config::from_str(url).map_err(|e| {
        StorageError::Unusable(format!("invalid PostgreSQL connection string: {e}"))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("haven");
    }
    let options = match config.get_options() {
        Some(theirs) => format!("{theirs} {SESSION_OPTIONS}"),
        None => SESSION_OPTIONS.to_string(),
    };
    config.options(&options);
    Ok(config)
}

/// `host:port/database` of a connection string (every host of a multi-host one), for messages:
/// never the password.
fn describe(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{}/{database}", hosts.join(","))
}

/// Opens a connection (its I/O runs as a task on the current runtime, the engine's).
async fn connect(config: &Config, target: &str) -> Result<Client, StorageError> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
        StorageError::Unusable(format!(
            "cannot connect to PostgreSQL at {target}: {}",
            explain(&e)
        ))
    })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(error = explain(&error), "a PostgreSQL connection failed");
        }
    });
    Ok(client)
}

fn pool(mut config: Config, size: usize) -> Result<Pool, StorageError> {
    let options = format!(
        "{} {READ_OPTIONS}",
        config.get_options().unwrap_or_default()
    );
    config.options(&options);
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| StorageError::Io(format!("cannot build the PostgreSQL pool: {e}")))
}

/// What went wrong, in PostgreSQL's words when the server answered, else with its causes
/// ("error connecting to server: Connection refused").
fn explain(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        text = format!("{text}: {inner}");
        cause = inner.source();
    }
    text
}

/// A failed statement: `context` says what Haven was doing.
fn pg_error(context: &str, error: tokio_postgres::Error) -> StorageError {
    StorageError::Io(format!("PostgreSQL, {context}: {}", explain(&error)))
}

fn pool_error(error: PoolError) -> StorageError {
    match error {
        PoolError::Backend(error) => pg_error("connecting", error),
        PoolError::Timeout(_) => StorageError::Io(format!(
            "no PostgreSQL connection became free within {POOL_WAIT:?}"
        )),
        PoolError::Closed => StorageError::Closed,
        other => StorageError::Io(format!("PostgreSQL pool: {other}")),
    }
}
