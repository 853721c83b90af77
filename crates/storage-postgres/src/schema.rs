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
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// The advisory lock key under which nodes migrate: "haven" and 1.
const SCHEMA_LOCK: i64 = 0x6861_7665_6e00_0001;

/// Migration `n` (1-based) brings a database from version `n - 1` to `n`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    // 1: the key space, the change log and its state.
    "CREATE TABLE haven_data (key bytea PRIMARY KEY, value bytea NOT NULL);
     CREATE TABLE haven_log (key bytea PRIMARY KEY, record bytea NOT NULL);
     CREATE TABLE haven_log_state (key bytea PRIMARY KEY, value bytea NOT NULL);",
    // 2: a group commit in one statement (committer.rs, `haven_commit_group`).
    COMMIT_GROUP,
];

/// `haven_commit_group`: takes the commit lock, checks that every assumed key (data and log state;
/// a NULL value: absent) holds what the committer assumed, and if so writes the group: range
/// deletes, puts, deletes, counter deltas (a counter reaching 0 is deleted), log trims, log
/// appends and log state, in that order. Answers whether the assumptions held; if not it writes
/// nothing. Each statement of a PL/pgSQL function takes a new snapshot, so the check sees every
/// commit made before the lock was granted. The function's plans are cached for the session, and a
/// plan made while `haven_data` was small (a fresh database being loaded) checked the assumptions
/// with a hash join over a sequential scan, which cost milliseconds per call once the table had
/// grown, until the next ANALYZE (measured: 17 ms instead of 0.2 ms per group): `enable_seqscan =
/// off` keeps every lookup on the primary key whatever the statistics say.
const COMMIT_GROUP: &str = r"
CREATE FUNCTION haven_counter(value bytea) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN length(value) = 8 THEN ('x' || encode(value, 'hex'))::bit(64)::bigint
           ELSE 0 END
$$;
CREATE FUNCTION haven_commit_group(
    lock_key bigint,
    assumed_keys bytea[], assumed_values bytea[],
    assumed_state_keys bytea[], assumed_state_values bytea[],
    range_starts bytea[], range_ends bytea[],
    put_keys bytea[], put_values bytea[],
    delete_keys bytea[],
    counter_keys bytea[], counter_deltas bigint[],
    trim_starts bytea[], trim_ends bytea[],
    append_keys bytea[], append_records bytea[],
    state_keys bytea[], state_values bytea[]) RETURNS boolean LANGUAGE plpgsql
SET enable_seqscan = off AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    IF EXISTS (SELECT 1 FROM unnest(assumed_keys, assumed_values) AS a(k, v)
               LEFT JOIN haven_data d ON d.key = a.k WHERE d.value IS DISTINCT FROM a.v)
       OR EXISTS (SELECT 1 FROM unnest(assumed_state_keys, assumed_state_values) AS a(k, v)
               LEFT JOIN haven_log_state s ON s.key = a.k WHERE s.value IS DISTINCT FROM a.v)
    THEN
        RETURN false;
    END IF;
    IF cardinality(range_starts) > 0 THEN
        DELETE FROM haven_data d USING unnest(range_starts, range_ends) AS r(s, e)
        WHERE d.key >= r.s AND d.key < r.e;
    END IF;
    INSERT INTO haven_data (key, value) SELECT * FROM unnest(put_keys, put_values)
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
    IF cardinality(delete_keys) > 0 THEN
        DELETE FROM haven_data WHERE key = ANY(delete_keys);
    END IF;
    IF cardinality(counter_keys) > 0 THEN
        INSERT INTO haven_data (key, value)
        SELECT k, int8send(d) FROM unnest(counter_keys, counter_deltas) AS c(k, d)
        ON CONFLICT (key) DO UPDATE
        SET value = int8send(haven_counter(haven_data.value) + haven_counter(EXCLUDED.value));
        DELETE FROM haven_data
        WHERE key = ANY(counter_keys) AND value = '\x0000000000000000'::bytea;
    END IF;
    IF cardinality(trim_starts) > 0 THEN
        DELETE FROM haven_log l USING unnest(trim_starts, trim_ends) AS r(s, e)
        WHERE l.key >= r.s AND l.key < r.e;
    END IF;
    IF cardinality(append_keys) > 0 THEN
        INSERT INTO haven_log (key, record) SELECT * FROM unnest(append_keys, append_records);
    END IF;
    IF cardinality(state_keys) > 0 THEN
        INSERT INTO haven_log_state (key, value) SELECT * FROM unnest(state_keys, state_values)
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
    END IF;
    RETURN true;
END
$$;";

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
