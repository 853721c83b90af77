//! Group commit on PostgreSQL: one committer per node, one commit lock per database.
//!
//! Every batch goes to the node's committer task, which drains whatever is queued and commits the
//! group in one PostgreSQL transaction, as the embedded engine's committer does in one redb
//! transaction. The transaction first takes a transaction-level advisory lock that every node's
//! committer takes ([`COMMIT_LOCK`]), so that at any moment one group, of one node, is between its
//! reads and its commit:
//! - expectations are checked against the latest committed state and nothing can change it before
//!   the group commits, so a conflict is always detected, including two inserts of a key expected
//!   absent (where row locks would have nothing to lock) and range deletes racing with inserts;
//! - the change log's sequence numbers are stamped from the stored head under the lock, and the
//!   lock is released only once the commit is visible (and, with a synchronous standby, replicated),
//!   so the order of sequence numbers is the order of commits across all nodes;
//! - counters (a table's item count and size) are read-modify-written once per group, by the lock
//!   holder only: no row is fought over, and a group of hundreds of writes updates each counter once.
//!
//! Throughput comes from the group, not from concurrent transactions: a commit costs one WAL
//! flush shared by up to [`MAX_GROUP`] batches; docs/scale-out.md has the measurements and the
//! limits of this choice. Most groups also cost one round trip and one statement: the group is
//! decided on what its batches expect (an UpdateItem expects the item it read), and the
//! server-side function `haven_commit_group` (schema.rs), called as a statement in a transaction
//! of its own, takes the lock, checks those assumptions and writes, adding counter deltas itself
//! ([`group::decide_assuming`]). Only when an assumption fails (a stale expectation, another
//! node's log append) does the group pay for the careful way: lock and read in one round trip,
//! decide, then the writes and `COMMIT` in a second. On loopback the saving did not show in
//! throughput (docs/benchmarks.md); it is a round trip, and the lock held across none, where
//! PostgreSQL runs on a machine of its own.
//!
//! Failures: a connection lost before the writes are sent is reconnected and the group retried
//! (nothing was written); one lost after is an unknown outcome, answered as a storage error
//! (InternalServerError) and never as a conflict or a success.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::{BoxFuture, try_join_all};
use haven_storage::{CommitError, StorageError, WriteBatch};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, Row, Statement};

use crate::group::{self, Decision, Reads};
use crate::{connect, pg_error};

pub(crate) type CommitRequest = (WriteBatch, oneshot::Sender<Result<(), CommitError>>);

/// Upper bound on batches folded into one transaction, so that one commit's latency stays bounded.
const MAX_GROUP: usize = 1024;
/// The advisory lock every node's committer holds from its reads to its commit: "haven" and 2.
pub(crate) const COMMIT_LOCK: i64 = 0x6861_7665_6e00_0002;
/// Tries at a group whose connection is lost before its writes were sent.
const ATTEMPTS: u32 = 3;
/// Pause before the next try, times the number of tries so far.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The committer's prepared statements.
struct Statements {
    read_data: Statement,
    read_state: Statement,
    delete_ranges: Statement,
    delete_keys: Statement,
    upsert: Statement,
    trim_log: Statement,
    append_log: Statement,
    upsert_state: Statement,
    commit_group: Statement,
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            read_data: client
                .prepare("SELECT key, value FROM haven_data WHERE key = ANY($1)")
                .await?,
            read_state: client
                .prepare("SELECT key, value FROM haven_log_state WHERE key = ANY($1)")
                .await?,
            delete_ranges: client
                .prepare(
                    "DELETE FROM haven_data d USING unnest($1::bytea[], $2::bytea[]) AS r(s, e)
                     WHERE d.key >= r.s AND d.key < r.e",
                )
                .await?,
            delete_keys: client
                .prepare("DELETE FROM haven_data WHERE key = ANY($1)")
                .await?,
            upsert: client
                .prepare(
                    "INSERT INTO haven_data (key, value)
                     SELECT * FROM unnest($1::bytea[], $2::bytea[])
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                )
                .await?,
            trim_log: client
                .prepare(
                    "DELETE FROM haven_log l USING unnest($1::bytea[], $2::bytea[]) AS r(s, e)
                     WHERE l.key >= r.s AND l.key < r.e",
                )
                .await?,
            append_log: client
                .prepare(
                    "INSERT INTO haven_log (key, record)
                     SELECT * FROM unnest($1::bytea[], $2::bytea[])",
                )
                .await?,
            upsert_state: client
                .prepare(
                    "INSERT INTO haven_log_state (key, value)
                     SELECT * FROM unnest($1::bytea[], $2::bytea[])
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                )
                .await?,
            commit_group: client
                .prepare(
                    "SELECT haven_commit_group($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                     $13, $14, $15, $16, $17, $18)",
                )
                .await?,
        })
    }
}

/// A connection of the committer's own, with its statements.
struct Connection {
    client: Client,
    statements: Statements,
    /// `BEGIN` and the commit lock, sent as one message.
    begin: String,
}

/// The node's committer: its connection (opened again when lost) and how to open it.
pub(crate) struct Committer {
    config: Config,
    target: String,
    connection: Option<Connection>,
    /// The log-state values (`None`: absent) this committer last read or wrote, assumed by the
    /// next group's one-statement commit (and checked by it).
    known_state: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Committer {
    pub(crate) fn new(config: Config, target: String) -> Committer {
        Committer {
            config,
            target,
            connection: None,
            known_state: HashMap::new(),
        }
    }

    /// Commits queued batches group by group until every sender is gone.
    pub(crate) async fn run(mut self, mut requests: mpsc::UnboundedReceiver<CommitRequest>) {
        while let Some(first) = requests.recv().await {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match requests.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            let batches: Vec<&WriteBatch> = group.iter().map(|(batch, _)| batch).collect();
            let started = std::time::Instant::now();
            let result = self.commit(&batches).await;
            haven_metrics::commit(
                batches.len(),
                started.elapsed().as_secs_f64(),
                result.is_err(),
            );
            match result {
                Ok(applied) => {
                    for ((_, reply), applied) in group.into_iter().zip(applied) {
                        let _ = reply.send(if applied {
                            Ok(())
                        } else {
                            Err(CommitError::Conflict)
                        });
                    }
                }
                Err(error) => {
                    tracing::error!(%error, batches = group.len(), "group commit failed");
                    for (_, reply) in group {
                        let _ = reply.send(Err(CommitError::Storage(error.clone())));
                    }
                }
            }
        }
    }

    /// One group: in one statement if the database confirms what the group was decided on
    /// ([`group::decide_assuming`]), else lock and read, decide, write and commit. Answers which
    /// batches applied.
    async fn commit(&mut self, group: &[&WriteBatch]) -> Result<Vec<bool>, StorageError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        if let Some(assumed) = group::decide_assuming(group, &self.known_state, now_ms)
            && self.commit_assumed(&assumed).await?
        {
            self.learn(&assumed.decision.state);
            return Ok(assumed.decision.applied);
        }
        let reads = Reads::of(group);
        let (data, state) = self.begin(&reads).await?;
        for key in reads.state {
            let value = state.get(&key).cloned();
            self.known_state.insert(key, value);
        }
        let decision = group::decide(group, &data, &state, now_ms);
        let connection = self.connection.as_ref().expect("begun on a connection");
        let finished = if decision.writes() {
            write(connection, &decision).await
        } else {
            rollback(connection).await
        };
        if let Err(error) = finished {
            self.abandon_transaction().await;
            self.known_state.clear();
            return Err(error);
        }
        self.learn(&decision.state);
        Ok(decision.applied)
    }

    /// Sends a group decided on assumptions in one round trip and one statement
    /// ([`write_assumed`]). Answers whether the assumptions held (if not, nothing was written).
    /// A connection found closed before sending is replaced; a failure after sending is an
    /// unknown outcome, answered as an error.
    async fn commit_assumed(&mut self, assumed: &group::Assumed) -> Result<bool, StorageError> {
        if self
            .connection
            .as_ref()
            .is_some_and(|connection| connection.client.is_closed())
        {
            self.connection = None;
        }
        let outcome = match self.connection().await {
            Ok(connection) => write_assumed(connection, assumed).await,
            Err(error) => Err(error),
        };
        if outcome.is_err() {
            self.known_state.clear();
            self.abandon_transaction().await;
        }
        outcome
    }

    /// Remembers the log state a committed group wrote.
    fn learn(&mut self, state: &[(Vec<u8>, Vec<u8>)]) {
        for (key, value) in state {
            self.known_state.insert(key.clone(), Some(value.clone()));
        }
    }

    /// Begins the group's transaction under the commit lock and reads what the group needs,
    /// retrying on a new connection when the connection is lost.
    async fn begin(
        &mut self,
        reads: &Reads,
    ) -> Result<(HashMap<Vec<u8>, Vec<u8>>, HashMap<Vec<u8>, Vec<u8>>), StorageError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = match self.connection().await {
                Ok(connection) => read_group(connection, reads).await,
                Err(error) => Err(error),
            };
            let Err(error) = outcome else {
                return outcome;
            };
            let lost = self.abandon_transaction().await;
            if !lost || attempt >= ATTEMPTS {
                return Err(error);
            }
            tracing::warn!(%error, attempt, "PostgreSQL connection lost before a commit; retrying");
            tokio::time::sleep(RETRY_PAUSE * attempt).await;
        }
    }

    async fn connection(&mut self) -> Result<&Connection, StorageError> {
        if self.connection.is_none() {
            let client = connect(&self.config, &self.target).await?;
            let statements = Statements::prepare(&client)
                .await
                .map_err(|e| pg_error("preparing the committer's statements", e))?;
            self.connection = Some(Connection {
                client,
                statements,
                begin: format!("BEGIN; SELECT pg_advisory_xact_lock({COMMIT_LOCK})"),
            });
        }
        Ok(self.connection.as_ref().expect("just opened"))
    }

    /// After a failure: rolls back whatever transaction is open, or drops the connection if it
    /// is lost (or cannot roll back). Answers whether the connection was dropped.
    async fn abandon_transaction(&mut self) -> bool {
        let usable = match &self.connection {
            Some(connection) if !connection.client.is_closed() => {
                rollback(connection).await.is_ok()
            }
            _ => false,
        };
        if !usable {
            self.connection = None;
        }
        !usable
    }
}

type Values = HashMap<Vec<u8>, Vec<u8>>;

/// `BEGIN`, the commit lock, and the values of the group's reads, in one round trip.
async fn read_group(
    connection: &Connection,
    reads: &Reads,
) -> Result<(Values, Values), StorageError> {
    let (client, statements) = (&connection.client, &connection.statements);
    let read = async |what: &'static str, keys: &Vec<Vec<u8>>, statement: &Statement| {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let params: [&(dyn ToSql + Sync); 1] = [keys];
        client
            .query(statement, &params)
            .await
            .map_err(|e| (what, e))
    };
    let begin = async {
        client
            .batch_execute(&connection.begin)
            .await
            .map_err(|e| ("lock", e))
    };
    let (_, data, state) = futures_util::try_join!(
        begin,
        read("data", &reads.data, &statements.read_data),
        read("log state", &reads.state, &statements.read_state),
    )
    .map_err(|(what, e)| pg_error(&format!("commit: reading the {what}"), e))?;
    Ok((pairs(data), pairs(state)))
}

fn pairs(rows: Vec<Row>) -> Values {
    rows.into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

type Step<'a> = BoxFuture<'a, Result<u64, tokio_postgres::Error>>;

/// Sends the group's writes and `COMMIT` in one round trip (they run in this order).
async fn write(connection: &Connection, decision: &Decision) -> Result<(), StorageError> {
    let (client, st) = (&connection.client, &connection.statements);
    let ranges = columns(&decision.range_deletes);
    let puts = columns(&decision.puts);
    let trims = columns(&decision.log_trims);
    let appends = columns(&decision.log_appends);
    let state = columns(&decision.state);
    let steps = [
        (&st.delete_ranges, &ranges),
        (&st.upsert, &puts),
        (&st.trim_log, &trims),
        (&st.append_log, &appends),
        (&st.upsert_state, &state),
    ];
    let mut steps: Vec<Step> = steps
        .into_iter()
        .filter(|(_, (first, _))| !first.is_empty())
        .map(|(statement, (first, second))| -> Step {
            let params: [&(dyn ToSql + Sync); 2] = [first, second];
            Box::pin(client.execute_raw(statement, params))
        })
        .collect();
    if !decision.deletes.is_empty() {
        let params: [&(dyn ToSql + Sync); 1] = [&decision.deletes];
        steps.push(Box::pin(client.execute_raw(&st.delete_keys, params)));
    }
    steps.push(Box::pin(async {
        client.batch_execute("COMMIT").await.map(|()| 0)
    }));
    try_join_all(steps)
        .await
        .map_err(|e| pg_error("commit: writing", e))?;
    Ok(())
}

/// The group in one call of `haven_commit_group`, a statement in a transaction of its own: the
/// answer (whether the group's assumptions held) is complete only at `ReadyForQuery`, which
/// PostgreSQL sends once the transaction has committed (and is durable, and replicated to a
/// synchronous standby), and a failure to commit arrives as the statement's error.
async fn write_assumed(
    connection: &Connection,
    assumed: &group::Assumed,
) -> Result<bool, StorageError> {
    let (client, decision) = (&connection.client, &assumed.decision);
    let (assumed_keys, assumed_values) = columns(&assumed.data);
    let (assumed_state_keys, assumed_state_values) = columns(&assumed.state);
    let (range_starts, range_ends) = columns(&decision.range_deletes);
    let (put_keys, put_values) = columns(&decision.puts);
    let (counter_keys, counter_deltas) = columns(&assumed.counters);
    let (trim_starts, trim_ends) = columns(&decision.log_trims);
    let (append_keys, append_records) = columns(&decision.log_appends);
    let (state_keys, state_values) = columns(&decision.state);
    let params: [&(dyn ToSql + Sync); 18] = [
        &COMMIT_LOCK,
        &assumed_keys,
        &assumed_values,
        &assumed_state_keys,
        &assumed_state_values,
        &range_starts,
        &range_ends,
        &put_keys,
        &put_values,
        &decision.deletes,
        &counter_keys,
        &counter_deltas,
        &trim_starts,
        &trim_ends,
        &append_keys,
        &append_records,
        &state_keys,
        &state_values,
    ];
    let row = client
        .query_one(&connection.statements.commit_group, &params)
        .await
        .map_err(|e| pg_error("commit: writing the group", e))?;
    Ok(row.get(0))
}

/// A statement's two array parameters from pairs.
fn columns<A: Clone, B: Clone>(pairs: &[(A, B)]) -> (Vec<A>, Vec<B>) {
    pairs.iter().cloned().unzip()
}

async fn rollback(connection: &Connection) -> Result<(), StorageError> {
    connection
        .client
        .batch_execute("ROLLBACK")
        .await
        .map_err(|e| pg_error("rolling back", e))
}
