//! The YCSB-style workloads and the per-connection loops that run them: closed loop (each
//! connection sends its next request when the previous one is answered) or open loop at a fixed
//! offered rate, where latency counts from the intended send time (no coordinated omission).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::client::{Answer, Connection, Endpoint};
use crate::keys::{KeyChooser, Rng};
use crate::requests::{Call, ITEMS_PER_PARTITION, RequestBuilder, version_of};
use crate::stats::Stats;

/// The workloads, after YCSB's core workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Insert every item: PutItem, or BatchWriteItem with --batch > 1.
    Load,
    /// 50% GetItem, 50% UpdateItem.
    A,
    /// 95% GetItem, 5% UpdateItem.
    B,
    /// 100% GetItem.
    C,
    /// Read latest: 95% GetItem skewed to the newest items, 5% PutItem of new items.
    D,
    /// Short ranges: 95% Query (1..=50 items, ~25 on average), 5% PutItem of new items (needs --layout range).
    E,
    /// 50% GetItem, 50% read-modify-write (GetItem then UpdateItem conditional on the version read).
    F,
    /// C through PartiQL: 100% ExecuteStatement `SELECT * ... WHERE <key>`.
    SelectKey,
    /// E through PartiQL: 95% ExecuteStatement `SELECT * ... WHERE pk = ? AND sk >= ?` with a
    /// Limit, 5% PutItem of new items (needs --layout range).
    SelectRange,
}

/// One step of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Read(u64),
    Update(u64),
    Insert(u64),
    Query {
        partition: u64,
        from: u64,
        limit: u64,
    },
    ReadModifyWrite(u64),
}

/// Everything the connections share.
pub struct Plan {
    pub workload: Workload,
    pub builder: RequestBuilder,
    pub endpoint: Endpoint,
    pub items: u64,
    pub batch: u64,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub rate: Option<f64>,
    pub seed: u64,
    pub keys: KeyChooser,
    pub partitions: KeyChooser,
    next: AtomicU64,
    /// Updates sent so far: each writes a value of its own, so that every update changes its item
    /// (a write that changes nothing costs a stream nothing).
    updates: AtomicU64,
}

impl Plan {
    /// A plan; `keys` draws over items, `partitions` over the sort-key layout's partitions.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        workload: Workload,
        builder: RequestBuilder,
        endpoint: Endpoint,
        items: u64,
        batch: u64,
        connections: usize,
        timing: (Duration, Duration, Option<f64>),
        distribution: crate::keys::Distribution,
        seed: u64,
    ) -> Self {
        let partitions = items.div_ceil(ITEMS_PER_PARTITION).max(1);
        let first_new = if workload == Workload::Load { 0 } else { items };
        Plan {
            workload,
            builder,
            endpoint,
            items,
            batch: batch.clamp(1, 25),
            connections,
            duration: timing.0,
            warmup: timing.1,
            rate: timing.2,
            seed,
            keys: KeyChooser::new(distribution, items.max(1)),
            partitions: KeyChooser::new(distribution, partitions),
            next: AtomicU64::new(first_new),
            updates: AtomicU64::new(0),
        }
    }

    fn step(&self, rng: &mut Rng) -> Step {
        let roll = rng.below(100);
        match self.workload {
            Workload::A if roll < 50 => Step::Update(self.keys.next(rng)),
            Workload::B if roll < 5 => Step::Update(self.keys.next(rng)),
            Workload::D | Workload::E | Workload::SelectRange if roll < 5 => {
                Step::Insert(self.next.fetch_add(1, Ordering::Relaxed))
            }
            Workload::D => Step::Read(self.keys.latest(rng, self.next.load(Ordering::Relaxed) - 1)),
            Workload::E | Workload::SelectRange => self.query(rng),
            Workload::F if roll < 50 => Step::ReadModifyWrite(self.keys.next(rng)),
            _ => Step::Read(self.keys.next(rng)),
        }
    }

    /// The next request of an open-loop stream with its kind, or None for workload F, whose
    /// read-modify-write is two dependent requests.
    pub fn next_call(&self, rng: &mut Rng) -> Option<(&'static str, Call)> {
        self.call(self.step(rng))
    }

    /// The single request a step sends (None for a read-modify-write).
    fn call(&self, step: Step) -> Option<(&'static str, Call)> {
        let b = &self.builder;
        let partiql = matches!(self.workload, Workload::SelectKey | Workload::SelectRange);
        Some(match step {
            Step::Read(i) if partiql => ("select", b.select_key(i)),
            Step::Query {
                partition,
                from,
                limit,
            } if partiql => ("select", b.select_range(partition, from, limit)),
            Step::Read(i) => ("read", b.get(i)),
            Step::Update(i) => {
                let version = self.updates.fetch_add(1, Ordering::Relaxed);
                ("update", b.update(i, version))
            }
            Step::Insert(i) => ("insert", b.put(i)),
            Step::Query {
                partition,
                from,
                limit,
            } => ("query", b.query(partition, from, limit)),
            Step::ReadModifyWrite(_) => return None,
        })
    }

    fn query(&self, rng: &mut Rng) -> Step {
        let limit = 1 + rng.below(50);
        let from = rng.below(ITEMS_PER_PARTITION - limit + 1);
        Step::Query {
            partition: self.partitions.next(rng),
            from,
            limit,
        }
    }
}

/// Runs one connection's share of the plan.
pub async fn run_connection(plan: Arc<Plan>, id: usize) -> anyhow::Result<Stats> {
    let mut connection = Connection::open(&plan.endpoint).await?;
    if plan.workload == Workload::Load {
        return load(&plan, &mut connection).await;
    }
    let mut rng = Rng::new(plan.seed.wrapping_add(id as u64 * 7919));
    let (mut stats, mut warming) = (Stats::new(), Stats::new());
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let interval = plan
        .rate
        .map(|rate| Duration::from_secs_f64(plan.connections as f64 / rate));
    let mut next_send = start
        + interval
            .map(|i| i.mul_f64(id as f64 / plan.connections as f64))
            .unwrap_or_default();
    loop {
        let (intended, started) = match interval {
            Some(interval) => {
                let intended = next_send;
                next_send += interval;
                (intended, wait_for(intended).await)
            }
            None => (Instant::now(), Instant::now()),
        };
        if intended >= end {
            break;
        }
        let step = plan.step(&mut rng);
        let target = if intended >= measure_from {
            &mut stats
        } else {
            &mut warming
        };
        let kind = execute(&plan, &mut connection, step, target).await;
        target.record(kind, started.elapsed());
    }
    stats.warmup_ops = warming.overall().len();
    Ok(stats)
}

/// Open loop: waits until `intended` and returns when the request counts as sent. If the
/// connection is behind schedule that is `intended` itself, so the backlog counts in the latency
/// (no coordinated omission); if it had to sleep, it is the wake-up time, since the timer's own
/// lateness (up to a millisecond in tokio) is the client's, not the server's.
async fn wait_for(intended: Instant) -> Instant {
    if Instant::now() >= intended {
        return intended;
    }
    tokio::time::sleep_until(intended).await;
    Instant::now()
}

/// Sends one step, counting errors and conflicts into `stats`; returns the kind to record.
async fn execute(
    plan: &Plan,
    connection: &mut Connection,
    step: Step,
    stats: &mut Stats,
) -> &'static str {
    match (plan.call(step), step) {
        (Some((kind, call)), _) => {
            check(connection.send(call).await, stats);
            kind
        }
        (None, Step::ReadModifyWrite(i)) => {
            read_modify_write(&plan.builder, connection, i, stats).await;
            "rmw"
        }
        (None, _) => unreachable!("only a read-modify-write has no single call"),
    }
}

async fn read_modify_write(
    b: &RequestBuilder,
    connection: &mut Connection,
    i: u64,
    stats: &mut Stats,
) {
    let Some(read) = check(connection.send(b.get(i)).await, stats) else {
        return;
    };
    let version = version_of(&read.body).unwrap_or(0);
    match connection.send(b.update_if_version(i, version)).await {
        Ok(answer) if is_condition_failure(&answer) => stats.conflicts += 1,
        other => {
            check(other, stats);
        }
    }
}

fn is_condition_failure(answer: &Answer) -> bool {
    answer.status == http::StatusCode::BAD_REQUEST
        && answer
            .body
            .windows(31)
            .any(|w| w == b"ConditionalCheckFailedException")
}

/// Counts a failed or refused request; passes a successful answer on.
fn check(result: anyhow::Result<Answer>, stats: &mut Stats) -> Option<Answer> {
    match result {
        Ok(answer) if answer.status.is_success() => Some(answer),
        Ok(answer) => {
            stats.error(|| {
                format!(
                    "{} {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                )
            });
            None
        }
        Err(error) => {
            stats.error(|| format!("{error:#}"));
            None
        }
    }
}

/// Load: connections take batches of item numbers until every item is written.
async fn load(plan: &Plan, connection: &mut Connection) -> anyhow::Result<Stats> {
    let mut stats = Stats::new();
    loop {
        let first = plan.next.fetch_add(plan.batch, Ordering::Relaxed);
        if first >= plan.items {
            return Ok(stats);
        }
        let count = plan.batch.min(plan.items - first);
        let (call, kind): (Call, _) = if plan.batch > 1 {
            (plan.builder.batch_put(first, count), "batch")
        } else {
            (plan.builder.put(first), "put")
        };
        let started = Instant::now();
        let answer = check(connection.send(call).await, &mut stats);
        stats.record(kind, started.elapsed());
        match answer {
            Some(a)
                if kind == "batch"
                    && !a.body.starts_with(br#"{"UnprocessedItems":{}"#)
                    && has_unprocessed(&a.body) =>
            {
                stats.error(|| "BatchWriteItem left unprocessed items".into())
            }
            Some(_) => stats.items += count,
            None => {}
        }
    }
}

fn has_unprocessed(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| {
            v["UnprocessedItems"]
                .as_object()
                .is_some_and(|m| !m.is_empty())
        })
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Distribution;
    use crate::requests::Layout;

    fn plan(workload: Workload) -> Plan {
        Plan::new(
            workload,
            RequestBuilder::new("t", Layout::Range, 1024),
            Endpoint::parse("http://127.0.0.1:1", "us-east-1").unwrap(),
            10_000,
            1,
            8,
            (Duration::from_secs(1), Duration::ZERO, None),
            Distribution::Zipfian,
            1,
        )
    }

    fn mix(workload: Workload) -> [u32; 5] {
        let plan = plan(workload);
        let mut rng = Rng::new(9);
        let mut counts = [0; 5];
        for _ in 0..10_000 {
            let slot = match plan.step(&mut rng) {
                Step::Read(_) => 0,
                Step::Update(_) => 1,
                Step::Insert(_) => 2,
                Step::Query { .. } => 3,
                Step::ReadModifyWrite(_) => 4,
            };
            counts[slot] += 1;
        }
        counts
    }

    #[test]
    fn workload_mixes_match_ycsb() {
        let a = mix(Workload::A);
        assert!((4700..5300).contains(&a[1]) && a[0] + a[1] == 10_000);
        assert!((300..700).contains(&mix(Workload::B)[1]));
        assert_eq!(mix(Workload::C)[0], 10_000);
        let d = mix(Workload::D);
        assert!((300..700).contains(&d[2]) && d[0] + d[2] == 10_000);
        let e = mix(Workload::E);
        assert!(e[3] > 9000 && e[2] + e[3] == 10_000);
        assert_eq!(mix(Workload::SelectKey)[0], 10_000);
        let select = mix(Workload::SelectRange);
        assert!(select[3] > 9000 && select[2] + select[3] == 10_000);
        assert!((4700..5300).contains(&mix(Workload::F)[4]));
    }

    #[test]
    fn queries_stay_inside_a_partition() {
        let plan = plan(Workload::E);
        let mut rng = Rng::new(2);
        for _ in 0..1000 {
            let Step::Query {
                partition,
                from,
                limit,
            } = plan.query(&mut rng)
            else {
                unreachable!()
            };
            assert!(
                partition < 100 && (1..=50).contains(&limit) && from + limit <= ITEMS_PER_PARTITION
            );
        }
    }

    #[test]
    fn unprocessed_items_are_detected() {
        assert!(!has_unprocessed(br#"{"UnprocessedItems":{}}"#));
        assert!(has_unprocessed(br#"{"UnprocessedItems":{"t":[{}]}}"#));
    }
}
