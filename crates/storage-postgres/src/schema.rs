//! Haven's tables in PostgreSQL, created and migrated by Haven itself.
//!
//! The schema carries a version (`haven_schema`). At start-up every node takes a transaction-level
//! advisory lock (so that nodes starting together migrate once), creates the version table if it is
//! missing, and runs the migrations above the stored version, all in one transaction: PostgreSQL's
//! DDL is transactional, so a start-up that fails half-way leaves the previous version intact. A
//! database whose stored version is newer than this build knows belongs to a newer Haven: the node
//! refuses to start rather than read or write a layout it does not understand.
//!
//! The tables mirror the embedded engine's (docs/storage-format.md): one ordered key space of
//! `bytea` keys (PostgreSQL orders `bytea` by unsigned bytes, then length: the order of Rust's
//! `[u8]`, with no collation involved), the change log keyed by `table | position`, and the log's
//! state.

use haven_storage::StorageError;
use tokio_postgres::Client;

use crate::pg_error;

/// The version this build writes; migrations below bring any older database up to it.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// The advisory lock key under which nodes migrate: "haven" and 1.
const SCHEMA_LOCK: i64 = 0x6861_7665_6e00_0001;

/// Migration `n` (1-based) brings a database from version `n - 1` to `n`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    // 1: the key space, the change log and its state.
    "CREATE TABLE haven_data (key bytea PRIMARY KEY, value bytea NOT NULL);
     CREATE TABLE haven_log (key bytea PRIMARY KEY, record bytea NOT NULL);
     CREATE TABLE haven_log_state (key bytea PRIMARY KEY, value bytea NOT NULL);",
];

/// Brings the database's schema to [`SCHEMA_VERSION`], or refuses a newer one.
pub(crate) async fn migrate(client: &mut Client, target: &str) -> Result<(), StorageError> {
    let context = || format!("preparing Haven's tables in {target}");
    let transaction = client
        .transaction()
        .await
        .map_err(|e| pg_error(&context(), e))?;
    transaction
        .batch_execute(&format!(
            "SELECT pg_advisory_xact_lock({SCHEMA_LOCK});
             CREATE TABLE IF NOT EXISTS haven_schema (
                 id int PRIMARY KEY CHECK (id = 1), version bigint NOT NULL);"
        ))
        .await
        .map_err(|e| pg_error(&context(), e))?;
    let stored: i64 = transaction
        .query_opt("SELECT version FROM haven_schema WHERE id = 1", &[])
        .await
        .map_err(|e| pg_error(&context(), e))?
        .map_or(0, |row| row.get(0));
    let Ok(applied) = usize::try_from(stored) else {
        return Err(StorageError::Unusable(format!(
            "the database {target} records an impossible schema version {stored}"
        )));
    };
    if stored > SCHEMA_VERSION {
        return Err(StorageError::Unusable(format!(
            "the database {target} belongs to a newer Haven (schema version {stored}; this \
             Haven knows versions up to {SCHEMA_VERSION}): upgrade Haven, or point it at \
             another database"
        )));
    }
    for (version, migration) in (stored + 1..).zip(&MIGRATIONS[applied..]) {
        transaction
            .batch_execute(migration)
            .await
            .map_err(|e| pg_error(&format!("{} (to version {version})", context()), e))?;
        tracing::info!(version, target, "PostgreSQL schema migrated");
    }
    transaction
        .execute(
            "INSERT INTO haven_schema (id, version) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
            &[&SCHEMA_VERSION],
        )
        .await
        .map_err(|e| pg_error(&context(), e))?;
    transaction
        .commit()
        .await
        .map_err(|e| pg_error(&context(), e))
}
