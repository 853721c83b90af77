//! Snapshots: a pooled connection holding a `REPEATABLE READ, READ ONLY` transaction.
//!
//! PostgreSQL fixes a repeatable-read transaction's snapshot at its first statement. A snapshot
//! therefore takes its connection at once but sends `BEGIN` together with its first read, in one
//! round trip: every read through it then sees the database as of that first read, whatever
//! commits afterwards. That moment lies between the call to `Engine::snapshot` and the first read's
//! answer, so a reader sees every write acknowledged before it asked (the contract of
//! `haven_storage::Snapshot`), and a GetItem costs one round trip instead of two.
//!
//! Range reads fetch pages with `ORDER BY key LIMIT n`, the next page starting after the last key
//! seen (keyset paging inside the same snapshot, so pages never overlap or skip), and the page size
//! follows the rows' size so that a page holds about [`PAGE_BYTES`] whatever the items weigh.
//! Dropping the snapshot ends the transaction in the background and returns the connection.

use std::cell::RefCell;
use std::ops::Bound;
use std::sync::Arc;

use deadpool_postgres::{Object, Pool};
use haven_storage::log::{self, LogEntry, LogPosition};
use haven_storage::{Snapshot, StorageError};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::bridge::Bridge;
use crate::{pg_error, pool_error};

const BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
/// Tries at a snapshot's first read (or a one-shot read) on pooled connections found dead.
const FIRST_READ_ATTEMPTS: usize = 3;
/// Rows of a range read's first page: most stop early (a Query's page, a single item).
const FIRST_PAGE_ROWS: i64 = 64;
/// About how many bytes each later page holds.
const PAGE_BYTES: usize = 1 << 20;
const MAX_PAGE_ROWS: usize = 1000;

/// One parameter of a read.
#[derive(Clone)]
enum Param {
    Key(Vec<u8>),
    Keys(Vec<Vec<u8>>),
    Limit(i64),
}

/// A read: its SQL and parameters (cloned when a dead connection makes it run again).
#[derive(Clone)]
struct Read {
    sql: String,
    params: Vec<Param>,
}

/// What a range read calls for each row (key, value): whether to go on.
type RowVisitor<'v> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StorageError> + 'v;

/// A consistent view of the whole database.
pub(crate) struct PgSnapshot {
    pool: Pool,
    bridge: Bridge,
    /// The connection holding the transaction, taken with the first read.
    client: RefCell<Option<Arc<Object>>>,
}

impl PgSnapshot {
    /// A snapshot that takes its connection and begins its transaction with its first read, in
    /// the same trip to the engine's runtime.
    pub(crate) fn new(pool: &Pool, bridge: &Bridge) -> PgSnapshot {
        PgSnapshot {
            pool: pool.clone(),
            bridge: bridge.clone(),
            client: RefCell::new(None),
        }
    }

    fn query(&self, read: Read) -> Result<Vec<Row>, StorageError> {
        let begun = self.client.borrow().clone();
        if let Some(client) = begun {
            return self.bridge.run(async move {
                execute(&client, &read)
                    .await
                    .map_err(|e| pg_error("reading", e))
            })?;
        }
        let pool = self.pool.clone();
        let (client, rows) = self
            .bridge
            .run(async move { first_read(&pool, &read, Some(BEGIN)).await })??;
        self.client.replace(Some(Arc::new(client)));
        Ok(rows)
    }

    fn value_of(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let rows = self.query(Read {
            sql: format!("SELECT value FROM {table} WHERE key = $1"),
            params: vec![Param::Key(key.to_vec())],
        })?;
        Ok(rows.first().map(|row| row.get(0)))
    }

    /// Visits the rows of `table` (key and one column) in `range`, page by page, until `visit`
    /// answers false.
    fn scan_rows(
        &self,
        table: &str,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        reverse: bool,
        first_page: i64,
        visit: &mut RowVisitor,
    ) -> Result<(), StorageError> {
        let (mut start, mut end) = range;
        let mut page_rows = first_page;
        loop {
            let rows = self.query(range_read(table, &start, &end, reverse, page_rows))?;
            let mut bytes = 0;
            for row in &rows {
                let (key, value): (&[u8], &[u8]) = (row.get(0), row.get(1));
                bytes += key.len() + value.len();
                if !visit(key, value)? {
                    return Ok(());
                }
            }
            let Some(last) = rows.last() else {
                return Ok(());
            };
            if (rows.len() as i64) < page_rows {
                return Ok(());
            }
            let after = Bound::Excluded(last.get::<_, &[u8]>(0).to_vec());
            if reverse {
                end = after;
            } else {
                start = after;
            }
            page_rows = (PAGE_BYTES / (bytes / rows.len()).max(1)).clamp(16, MAX_PAGE_ROWS) as i64;
        }
    }

    fn log_state(&self, key: &[u8]) -> Result<LogPosition, StorageError> {
        Ok(self
            .value_of("haven_log_state", key)?
            .and_then(|bytes| LogPosition::from_bytes(&bytes))
            .unwrap_or(LogPosition::START))
    }
}

/// Takes a pooled connection and runs `read` on it (after `begin`, in the same round trip, if
/// given), answering the connection with the rows. A connection found dead (the server restarted,
/// a failover) is dropped and another taken: nothing was read yet, so nothing is lost. A connection
/// whose read failed otherwise is dropped too, so that no half-begun transaction returns to the
/// pool.
async fn first_read(
    pool: &Pool,
    read: &Read,
    begin: Option<&str>,
) -> Result<(Object, Vec<Row>), StorageError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let client = pool.get().await.map_err(pool_error)?;
        let outcome = async {
            let statement = client.prepare_cached(&read.sql).await?;
            let params = params(&read.params);
            match begin {
                Some(begin) => futures_util::try_join!(
                    client.batch_execute(begin),
                    client.query(&statement, &params)
                )
                .map(|(_, rows)| rows),
                None => client.query(&statement, &params).await,
            }
        }
        .await;
        let error = match outcome {
            Ok(rows) => return Ok((client, rows)),
            Err(error) => error,
        };
        let closed = client.is_closed();
        drop(Object::take(client));
        if !closed || attempt >= FIRST_READ_ATTEMPTS {
            return Err(pg_error("reading", error));
        }
        tracing::debug!(%error, "a pooled PostgreSQL connection was closed; replacing it");
    }
}

/// The values of `keys` in the order asked, read by one statement on a pooled connection: a
/// single statement sees one consistent state of the database, so it needs no transaction.
pub(crate) async fn read_once(
    pool: &Pool,
    keys: Vec<Vec<u8>>,
) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let read = keys_read(&keys);
    let (_, rows) = first_read(pool, &read, None).await?;
    Ok(in_order(&keys, rows))
}

/// The rows of `keys` in `haven_data`.
fn keys_read(keys: &[Vec<u8>]) -> Read {
    Read {
        sql: "SELECT key, value FROM haven_data WHERE key = ANY($1)".into(),
        params: vec![Param::Keys(keys.to_vec())],
    }
}

/// The values of `keys` among `rows` (key, value), in the order of `keys`.
fn in_order(keys: &[Vec<u8>], rows: Vec<Row>) -> Vec<Option<Vec<u8>>> {
    let found: std::collections::HashMap<Vec<u8>, Vec<u8>> = rows
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    keys.iter().map(|key| found.get(key).cloned()).collect()
}

async fn execute(client: &Object, read: &Read) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(&read.sql).await?;
    client.query(&statement, &params(&read.params)).await
}

fn params(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|param| -> &(dyn ToSql + Sync) {
            match param {
                Param::Key(key) => key,
                Param::Keys(keys) => keys,
                Param::Limit(limit) => limit,
            }
        })
        .collect()
}

/// `SELECT key, <column> FROM table` over `[start, end)` in key order, at most `limit` rows.
fn range_read(
    table: &str,
    start: &Bound<Vec<u8>>,
    end: &Bound<Vec<u8>>,
    reverse: bool,
    limit: i64,
) -> Read {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    for (bound, inclusive, exclusive) in [(start, ">=", ">"), (end, "<=", "<")] {
        let (operator, key) = match bound {
            Bound::Included(key) => (inclusive, key),
            Bound::Excluded(key) => (exclusive, key),
            Bound::Unbounded => continue,
        };
        params.push(Param::Key(key.clone()));
        conditions.push(format!("key {operator} ${}", params.len()));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let column = if table == "haven_log" {
        "record"
    } else {
        "value"
    };
    let order = if reverse { "DESC" } else { "ASC" };
    params.push(Param::Limit(limit));
    let sql = format!(
        "SELECT key, {column} FROM {table}{filter} ORDER BY key {order} LIMIT ${}",
        params.len()
    );
    Read { sql, params }
}

fn owned(bound: Bound<&[u8]>) -> Bound<Vec<u8>> {
    bound.map(<[u8]>::to_vec)
}

impl Snapshot for PgSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.value_of("haven_data", key)
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.query(keys_read(keys))?;
        Ok(in_order(keys, rows))
    }

    fn scan(
        &self,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StorageError> {
        let range = (owned(range.0), owned(range.1));
        self.scan_rows(
            "haven_data",
            range,
            reverse,
            FIRST_PAGE_ROWS,
            &mut |key, value| Ok(visit(key, value)),
        )
    }

    fn scan_log(
        &self,
        table: u64,
        range: (Bound<LogPosition>, Bound<LogPosition>),
        reverse: bool,
        visit: &mut dyn FnMut(LogEntry) -> bool,
    ) -> Result<(), StorageError> {
        let (start, end) = log::entry_range(table, range);
        let range = (start.map(|k| k.to_vec()), end.map(|k| k.to_vec()));
        self.scan_rows(
            "haven_log",
            range,
            reverse,
            FIRST_PAGE_ROWS,
            &mut |key, value| Ok(visit(log::decode_entry(key, value)?)),
        )
    }

    fn log_head(&self) -> Result<LogPosition, StorageError> {
        self.log_state(log::HEAD_KEY)
    }

    fn log_horizon(&self, table: u64) -> Result<LogPosition, StorageError> {
        self.log_state(&log::horizon_key(table))
    }

    fn next_log_table(&self, after: Option<u64>) -> Result<Option<u64>, StorageError> {
        let start = after.map_or([0; 24], log::table_end);
        let mut found = None;
        self.scan_rows(
            "haven_log",
            (Bound::Included(start.to_vec()), Bound::Unbounded),
            false,
            1,
            &mut |key, _| {
                found = log::parse_entry_key(key).map(|(table, _)| table);
                Ok(false)
            },
        )?;
        Ok(found)
    }
}

impl Drop for PgSnapshot {
    /// Ends the transaction (if one began) off the caller's thread; the connection returns to the
    /// pool after.
    fn drop(&mut self) {
        let Some(client) = self.client.get_mut().take() else {
            return;
        };
        self.bridge.0.spawn(async move {
            if let Err(error) = client.batch_execute("ROLLBACK").await {
                tracing::debug!(%error, "ending a snapshot failed; its connection is dropped");
                if let Ok(client) = Arc::try_unwrap(client) {
                    drop(Object::take(client));
                }
            }
        });
    }
}
