//! Snapshots: a pooled connection holding a `REPEATABLE READ, READ ONLY` transaction.
//!
//! PostgreSQL fixes a repeatable-read transaction's snapshot at its first statement, so beginning
//! a snapshot runs one (`SELECT 1` in the same message as `BEGIN`): every read through it then sees
//! the database as of that moment, whatever commits afterwards, which is the embedded engine's MVCC
//! snapshot. Range reads fetch pages with `ORDER BY key LIMIT n`, the next page starting after the
//! last key seen (keyset paging inside the same snapshot, so pages never overlap or skip), and the
//! page size follows the rows' size so that a page holds about [`PAGE_BYTES`] whatever the items
//! weigh. Dropping the snapshot ends the transaction in the background and returns the connection.

use std::ops::Bound;
use std::sync::Arc;

use deadpool_postgres::{Object, Pool};
use futures_util::TryStreamExt;
use haven_storage::log::{self, LogEntry, LogPosition};
use haven_storage::{Snapshot, StorageError};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::bridge::Bridge;
use crate::{pg_error, pool_error};

const BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SELECT 1";
/// Tries at beginning a snapshot: a pooled connection found dead (the server restarted, a failover)
/// is dropped and another taken.
const BEGIN_ATTEMPTS: usize = 3;
/// Rows of a range read's first page: most stop early (a Query's page, a single item).
const FIRST_PAGE_ROWS: i64 = 64;
/// About how many bytes each later page holds.
const PAGE_BYTES: usize = 1 << 20;
const MAX_PAGE_ROWS: usize = 1000;

type Param = Box<dyn ToSql + Send + Sync>;
/// What a range read calls for each row (key, value): whether to go on.
type RowVisitor<'v> = dyn FnMut(&[u8], &[u8]) -> Result<bool, StorageError> + 'v;

/// A consistent view of the whole database.
pub(crate) struct PgSnapshot {
    client: Arc<Object>,
    bridge: Bridge,
}

impl PgSnapshot {
    pub(crate) fn begin(pool: &Pool, bridge: &Bridge) -> Result<PgSnapshot, StorageError> {
        let pool = pool.clone();
        let client = bridge.run(async move { begin(&pool).await })??;
        Ok(PgSnapshot {
            client: Arc::new(client),
            bridge: bridge.clone(),
        })
    }

    fn query(&self, sql: String, params: Vec<Param>) -> Result<Vec<Row>, StorageError> {
        let client = self.client.clone();
        self.bridge.run(async move {
            let statement = client
                .prepare_cached(&sql)
                .await
                .map_err(|e| pg_error("preparing a read", e))?;
            let rows = client
                .query_raw(&statement, params)
                .await
                .map_err(|e| pg_error("reading", e))?;
            rows.try_collect().await.map_err(|e| pg_error("reading", e))
        })?
    }

    fn value_of(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let sql = format!("SELECT value FROM {table} WHERE key = $1");
        let rows = self.query(sql, vec![Box::new(key.to_vec())])?;
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
            let (sql, params) = range_query(table, &start, &end, reverse, page_rows);
            let rows = self.query(sql, params)?;
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
}

/// Takes a pooled connection and begins its snapshot, replacing connections found dead.
async fn begin(pool: &Pool) -> Result<Object, StorageError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let client = pool.get().await.map_err(pool_error)?;
        match client.batch_execute(BEGIN).await {
            Ok(()) => return Ok(client),
            Err(error) if client.is_closed() && attempt < BEGIN_ATTEMPTS => {
                tracing::debug!(%error, "a pooled PostgreSQL connection was closed; replacing it");
                drop(Object::take(client));
            }
            Err(error) => return Err(pg_error("beginning a snapshot", error)),
        }
    }
}

/// `SELECT key, <column> FROM table` over `[start, end)` in key order, at most `limit` rows.
fn range_query(
    table: &str,
    start: &Bound<Vec<u8>>,
    end: &Bound<Vec<u8>>,
    reverse: bool,
    limit: i64,
) -> (String, Vec<Param>) {
    let mut conditions = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    for (bound, inclusive, exclusive) in [(start, ">=", ">"), (end, "<=", "<")] {
        let (operator, key) = match bound {
            Bound::Included(key) => (inclusive, key),
            Bound::Excluded(key) => (exclusive, key),
            Bound::Unbounded => continue,
        };
        params.push(Box::new(key.clone()));
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
    params.push(Box::new(limit));
    let sql = format!(
        "SELECT key, {column} FROM {table}{filter} ORDER BY key {order} LIMIT ${}",
        params.len()
    );
    (sql, params)
}

fn owned(bound: Bound<&[u8]>) -> Bound<Vec<u8>> {
    bound.map(<[u8]>::to_vec)
}

impl Snapshot for PgSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.value_of("haven_data", key)
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

impl PgSnapshot {
    fn log_state(&self, key: &[u8]) -> Result<LogPosition, StorageError> {
        Ok(self
            .value_of("haven_log_state", key)?
            .and_then(|bytes| LogPosition::from_bytes(&bytes))
            .unwrap_or(LogPosition::START))
    }
}

impl Drop for PgSnapshot {
    /// Ends the transaction off the caller's thread; the connection returns to the pool after.
    fn drop(&mut self) {
        let client = self.client.clone();
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
