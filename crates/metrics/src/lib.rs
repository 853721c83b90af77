//! Haven's Prometheus metrics: one registry per process, the few instruments the layers record
//! into, and the text exposition served at `GET /metrics`.
//!
//! Why a crate of its own, below every other: the numbers come from several layers (the server
//! counts requests and connections, the api layer knows the capacity a request consumed), and
//! each records at its one central point without a handle threaded through every call. So the
//! registry is a process-wide static, like a logger. A server process runs one `haven serve`;
//! tests that run several servers in one process see their sums.
//!
//! Recording must stay cheap enough to leave on: a counter is an atomic add, a labelled one
//! first finds its series under a read lock (labels are `&'static str` where they can be, so
//! no allocation), and a histogram takes a short mutex. The series every request records into
//! (requests, latency, consumed capacity) are found in a per-thread list of handles instead
//! (`recent`). Nothing is computed at scrape time but
//! the text. Names follow Prometheus conventions (`haven_` prefix, base units, `_total` on
//! counters); docs/metrics.md maps each to the CloudWatch metric DynamoDB users know.

mod recent;

use std::cell::RefCell;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`render`]'s text (OpenMetrics, which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The labels of a request counter: the DynamoDB operation and how it ended (`ok` or the
/// DynamoDB error type).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

/// A table, and one of its indexes (empty for the table itself).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IndexLabels {
    table: String,
    index: String,
}

/// Which capacity a request consumed: DynamoDB's read or write units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capacity {
    Read,
    Write,
}

type UnitCounter = Counter<f64, AtomicU64>;

/// Latency buckets: 100 µs to about 2.4 s, each 2.5 times the last (a Haven request is usually
/// well under a millisecond; a slow one is what the upper buckets are for).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.5, 12))
}

/// Group sizes of the storage committer: 1 to 256 batches, doubling.
fn group_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 9))
}

/// One table's figures at a scrape: item count and size in bytes (DescribeTable's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSample {
    pub table: String,
    pub items: i64,
    pub bytes: i64,
}

/// One global table's replication towards one peer region at a scrape (AWS's
/// ReplicationLatency, and how far behind the peer is now).
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicationSample {
    pub table: String,
    pub region: String,
    pub latency_seconds: f64,
    pub behind_seconds: f64,
    /// Batches not delivered to the peer since the node started.
    pub send_errors: u64,
}

/// What a scrape reads from the running server: each table's figures, each global table's
/// replication lag, and the bytes its data takes on disk (None without a data directory).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    pub tables: Vec<TableSample>,
    pub replication: Vec<ReplicationSample>,
    pub disk_bytes: Option<u64>,
    /// The page cache of the server's engine, if it has one of its own.
    pub cache: Option<CacheStats>,
}

/// A storage engine's page cache since it opened: page reads served from memory (hits) or from
/// the disk (misses), pages evicted to make room, and the bytes it holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub bytes: u64,
}

/// What [`sample_with`] installs: read at each scrape.
pub type Sampler = Box<dyn Fn() -> Sample + Send + Sync>;

/// What [`sample_mirrors_with`] installs: each mirrored table's lag in seconds (`haven mirror`),
/// read at each scrape, since it grows with time while the source is gone.
pub type MirrorSampler = Box<dyn Fn() -> Vec<(String, f64)> + Send + Sync>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: String,
}

/// A global table and one of its peer regions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    table: String,
    region: String,
}

/// A node the DNS server health-checks.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

/// The response code of a DNS answer (`NOERROR`, `NXDOMAIN`...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RcodeLabels {
    rcode: &'static str,
}

type Seconds = Gauge<f64, AtomicU64>;

/// Every instrument, registered once.
struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<OperationLabels, Histogram, fn() -> Histogram>,
    throttled: Family<OperationLabels, Counter>,
    read_units: Family<IndexLabels, UnitCounter>,
    write_units: Family<IndexLabels, UnitCounter>,
    read_throttles: Family<IndexLabels, Counter>,
    write_throttles: Family<IndexLabels, Counter>,
    request_bytes: Counter,
    response_bytes: Counter,
    levels: [Gauge; Level::COUNT],
    commit_groups: Histogram,
    commit_seconds: Histogram,
    commit_failures: Counter,
    table_items: Family<TableLabels, Gauge>,
    ttl_deletions: Family<TableLabels, Counter>,
    backfilled: Family<IndexLabels, Counter>,
    stream_records: Family<TableLabels, Counter>,
    table_bytes: Family<TableLabels, Gauge>,
    replication_latency: Family<ReplicaLabels, Seconds>,
    replication_behind: Family<ReplicaLabels, Seconds>,
    replication_send_errors: Family<ReplicaLabels, Gauge>,
    disk_bytes: Gauge,
    cache_hits: Counter,
    cache_misses: Counter,
    cache_evictions: Counter,
    cache_bytes: Gauge,
    dns_generation: Gauge,
    dns_node_healthy: Family<NodeLabels, Gauge>,
    dns_answers: Family<RcodeLabels, Counter>,
    /// `dns_answers`' counter of each of [`RCODES`], looked up once: an answer is one atomic add.
    dns_answers_by_rcode: [Counter; RCODES.len()],
    sampler: std::sync::Mutex<Option<Sampler>>,
    mirror_lag: Family<TableLabels, Gauge<f64, AtomicU64>>,
    mirror_applied: Family<TableLabels, Counter>,
    mirror_source_errors: Family<TableLabels, Counter>,
    mirrors: std::sync::Mutex<Option<MirrorSampler>>,
    /// Every (table, index) some per-table series names, so that a scrape can drop the series of
    /// tables deleted since: table names come from clients, and their series must not pile up.
    named: std::sync::Mutex<std::collections::BTreeSet<(String, String)>>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let dns_answers: Family<RcodeLabels, Counter> = Family::default();
        let metrics = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            throttled: Family::default(),
            read_units: Family::default(),
            write_units: Family::default(),
            read_throttles: Family::default(),
            write_throttles: Family::default(),
            request_bytes: Counter::default(),
            response_bytes: Counter::default(),
            levels: Default::default(),
            commit_groups: group_histogram(),
            commit_seconds: latency_histogram(),
            commit_failures: Counter::default(),
            table_items: Family::default(),
            ttl_deletions: Family::default(),
            backfilled: Family::default(),
            stream_records: Family::default(),
            table_bytes: Family::default(),
            replication_latency: Family::default(),
            replication_behind: Family::default(),
            replication_send_errors: Family::default(),
            disk_bytes: Gauge::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            cache_evictions: Counter::default(),
            cache_bytes: Gauge::default(),
            dns_generation: Gauge::default(),
            dns_node_healthy: Family::default(),
            dns_answers_by_rcode: RCODES
                .map(|rcode| dns_answers.get_or_create(&RcodeLabels { rcode }).clone()),
            dns_answers,
            sampler: std::sync::Mutex::new(None),
            mirror_lag: Family::default(),
            mirror_applied: Family::default(),
            mirror_source_errors: Family::default(),
            mirrors: std::sync::Mutex::new(None),
            named: std::sync::Mutex::new(std::collections::BTreeSet::new()),
        };
        metrics.registered()
    }

    fn registered(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "haven_requests",
            "DynamoDB API requests answered, by operation and outcome (ok, or the error type)",
            self.requests.clone(),
        );
        r.register(
            "haven_request_duration_seconds",
            "Time from a request's arrival to its answer, by operation",
            self.latency.clone(),
        );
        r.register(
            "haven_throttled_requests",
            "Requests refused with ThrottlingException (overload), by operation",
            self.throttled.clone(),
        );
        r.register(
            "haven_consumed_read_capacity_units",
            "Read capacity units consumed, by table and index (empty: the table itself)",
            self.read_units.clone(),
        );
        r.register(
            "haven_consumed_write_capacity_units",
            "Write capacity units consumed, by table and index (empty: the table itself)",
            self.write_units.clone(),
        );
        r.register(
            "haven_read_throttle_events",
            "Requests refused for a table's or index's read capacity (ProvisionedThroughputExceeded or its on-demand maximum), by table and index",
            self.read_throttles.clone(),
        );
        r.register(
            "haven_write_throttle_events",
            "Requests refused for a table's or index's write capacity (ProvisionedThroughputExceeded or its on-demand maximum), by table and index",
            self.write_throttles.clone(),
        );
        r.register(
            "haven_request_bytes",
            "Bytes of DynamoDB request bodies received",
            self.request_bytes.clone(),
        );
        r.register(
            "haven_response_bytes",
            "Bytes of DynamoDB response bodies sent",
            self.response_bytes.clone(),
        );
        r.register(
            "haven_storage_commit_batches",
            "Write batches per storage commit (group commit: one transaction and one sync each)",
            self.commit_groups.clone(),
        );
        r.register(
            "haven_storage_commit_duration_seconds",
            "Time of one storage commit, its sync included",
            self.commit_seconds.clone(),
        );
        r.register(
            "haven_storage_commit_failures",
            "Storage commits that failed (their writers were answered InternalServerError)",
            self.commit_failures.clone(),
        );
        r.register(
            "haven_table_items",
            "Items in each table (DescribeTable's ItemCount), read at the scrape",
            self.table_items.clone(),
        );
        r.register(
            "haven_table_size_bytes",
            "Size of each table in bytes (DescribeTable's TableSizeBytes), read at the scrape",
            self.table_bytes.clone(),
        );
        r.register(
            "haven_ttl_deleted_items",
            "Items the TTL worker deleted because they expired, by table",
            self.ttl_deletions.clone(),
        );
        r.register(
            "haven_index_backfilled_items",
            "Items a new global index's backfill has copied, by table and index (its progress: \
             against haven_table_items)",
            self.backfilled.clone(),
        );
        r.register(
            "haven_stream_records_served",
            "DynamoDB Streams records returned by GetRecords, by table",
            self.stream_records.clone(),
        );
        r.register(
            "haven_replication_latency_seconds",
            "Global tables: time from a change's commit to the peer region's acknowledgement, \
             by table and peer region, as last measured (CloudWatch ReplicationLatency)",
            self.replication_latency.clone(),
        );
        r.register(
            "haven_replication_behind_seconds",
            "Global tables: age of the oldest change the peer region has not acknowledged, by \
             table and peer region (0 when caught up)",
            self.replication_behind.clone(),
        );
        r.register(
            "haven_replication_send_errors",
            "Global tables: batches not delivered to the peer region since the node started (an \
             unreachable peer, a certificate that does not verify), by table and peer region",
            self.replication_send_errors.clone(),
        );
        r.register(
            "haven_storage_disk_bytes",
            "Bytes the data directory takes on disk (embedded storage only)",
            self.disk_bytes.clone(),
        );
        r.register(
            "haven_storage_cache_hits",
            "Page reads the storage engine's cache served from memory (embedded storage only)",
            self.cache_hits.clone(),
        );
        r.register(
            "haven_storage_cache_misses",
            "Page reads the storage engine's cache had to read from the disk (embedded storage only)",
            self.cache_misses.clone(),
        );
        r.register(
            "haven_storage_cache_evictions",
            "Pages the storage engine's cache evicted to stay within its size (embedded storage only)",
            self.cache_evictions.clone(),
        );
        r.register(
            "haven_storage_cache_bytes",
            "Bytes the storage engine's page cache holds now (embedded storage only)",
            self.cache_bytes.clone(),
        );
        r.register(
            "haven_dns_plan_generation",
            "Generation of the DNS plan this node serves",
            self.dns_generation.clone(),
        );
        r.register(
            "haven_dns_node_healthy",
            "Health of each API node as this node's checks see it: 1 healthy, 0 not (unhealthy, \
             or not ready yet)",
            self.dns_node_healthy.clone(),
        );
        r.register(
            "haven_dns_answers",
            "DNS answers sent, by response code",
            self.dns_answers.clone(),
        );
        r.register(
            "haven_mirror_lag_seconds",
            "How far each table `haven mirror` follows is behind its source: now minus the moment \
             up to which the copy holds every change (read at the scrape)",
            self.mirror_lag.clone(),
        );
        r.register(
            "haven_mirror_applied_records",
            "Stream records of the source `haven mirror` applied to the copy, by table",
            self.mirror_applied.clone(),
        );
        r.register(
            "haven_mirror_source_errors",
            "Calls to the source `haven mirror` made that failed (unreachable, throttled, refused), \
             by table",
            self.mirror_source_errors.clone(),
        );
        for level in Level::ALL {
            r.register(
                level.name(),
                level.help(),
                self.levels[level as usize].clone(),
            );
        }
        self
    }
}

/// One DynamoDB request answered: `operation`, `outcome` (`ok` or the error type's name), how
/// long it took and the sizes of its body and its answer's.
pub fn request(operation: &'static str, outcome: &'static str, seconds: f64, bytes: (u64, u64)) {
    let metrics = &*METRICS;
    recent::with(&REQUEST_SERIES, |recent| {
        let (count, latency) = recent.get(
            |key| *key == (operation, outcome),
            || {
                let count =
                    (metrics.requests).get_or_create_owned(&RequestLabels { operation, outcome });
                let latency = (metrics.latency).get_or_create_owned(&OperationLabels { operation });
                ((operation, outcome), (count, latency))
            },
        );
        count.inc();
        latency.observe(seconds);
    });
    let labels = OperationLabels { operation };
    if outcome == "ThrottlingException" {
        metrics.throttled.get_or_create(&labels).inc();
    }
    metrics.request_bytes.inc_by(bytes.0);
    metrics.response_bytes.inc_by(bytes.1);
}

/// `units` of `capacity` consumed on `table`, or on its index `index`.
pub fn consumed(capacity: Capacity, table: &str, index: Option<&str>, units: f64) {
    let metrics = &*METRICS;
    let index = index.unwrap_or_default();
    recent::with(&UNIT_SERIES, |recent| {
        let series = recent.get(
            |(kind, t, i)| *kind == capacity && t == table && i == index,
            || {
                let family = match capacity {
                    Capacity::Read => &metrics.read_units,
                    Capacity::Write => &metrics.write_units,
                };
                let series = metrics.index_series(family, table, index);
                ((capacity, table.to_owned(), index.to_owned()), series)
            },
        );
        series.inc_by(units);
    });
}

/// A request counter and its latency histogram, by operation and outcome.
type RequestSeries = recent::Recent<(&'static str, &'static str), (Counter, Histogram)>;
/// A capacity counter, by capacity, table and index.
type UnitSeries = recent::Recent<(Capacity, String, String), UnitCounter>;

thread_local! {
    static REQUEST_SERIES: RefCell<RequestSeries> = const { RefCell::new(recent::Recent::new()) };
    static UNIT_SERIES: RefCell<UnitSeries> = const { RefCell::new(recent::Recent::new()) };
}

/// A request refused because `table` (or its index `index`) had no `capacity` left.
pub fn throttled(capacity: Capacity, table: &str, index: Option<&str>) {
    let metrics = &*METRICS;
    let family = match capacity {
        Capacity::Read => &metrics.read_throttles,
        Capacity::Write => &metrics.write_throttles,
    };
    let index = index.unwrap_or_default();
    metrics.index_series(family, table, index).inc();
}

/// One storage commit of `batches` write batches that took `seconds`, sync included; `failed`
/// when it did not commit.
pub fn commit(batches: usize, seconds: f64, failed: bool) {
    let metrics = &*METRICS;
    metrics.commit_groups.observe(batches as f64);
    metrics.commit_seconds.observe(seconds);
    if failed {
        metrics.commit_failures.inc();
    }
}

/// The TTL worker deleted one expired item of `table`.
pub fn ttl_deletion(table: &str) {
    METRICS.table_counter(&METRICS.ttl_deletions, table).inc();
}

/// `haven mirror` applied `records` stream records of its source to `table`.
pub fn mirror_applied(table: &str, records: u64) {
    let counter = METRICS.table_counter(&METRICS.mirror_applied, table);
    counter.inc_by(records);
}

/// A call of `haven mirror` to the source of `table` failed.
pub fn mirror_source_error(table: &str) {
    METRICS
        .table_counter(&METRICS.mirror_source_errors, table)
        .inc();
}

/// Installs what reads the mirrored tables' lag at each scrape (replacing any earlier one).
pub fn sample_mirrors_with(sampler: MirrorSampler) {
    *METRICS.mirrors.lock().unwrap_or_else(|e| e.into_inner()) = Some(sampler);
}

/// Reads the mirrored tables' lag for a scrape.
fn sample_mirrors(metrics: &Metrics) {
    let sampler = metrics.mirrors.lock().unwrap_or_else(|e| e.into_inner());
    let Some(sampler) = sampler.as_ref() else {
        return;
    };
    metrics.mirror_lag.clear();
    for (table, lag) in sampler() {
        metrics
            .mirror_lag
            .get_or_create(&TableLabels { table })
            .set(lag);
    }
}

/// The backfill of `table`'s new index `index` copied `items` more items.
pub fn backfilled(table: &str, index: &str, items: usize) {
    let counter = METRICS.index_series(&METRICS.backfilled, table, index);
    counter.inc_by(items as u64);
}

/// GetRecords returned `records` records of `table`'s stream.
pub fn stream_records(table: &str, records: usize) {
    let counter = METRICS.table_counter(&METRICS.stream_records, table);
    counter.inc_by(records as u64);
}

impl Metrics {
    /// Notes that series name `table` (and `index`), for [`Metrics::forget_deleted`].
    fn name(&self, table: &str, index: &str) {
        let mut named = self.named.lock().unwrap_or_else(|e| e.into_inner());
        named.insert((table.to_owned(), index.to_owned()));
    }

    /// `table`'s counter in `family`, created (and named) if new.
    fn table_counter(&self, family: &Family<TableLabels, Counter>, table: &str) -> Counter {
        let labels = TableLabels {
            table: table.to_owned(),
        };
        self.series(family, &labels, table, "")
    }

    /// The series of `table`'s `index` ("" for the table) in `family`, created (and named) if new.
    fn index_series<M: Clone + Default>(
        &self,
        family: &Family<IndexLabels, M>,
        table: &str,
        index: &str,
    ) -> M {
        let labels = IndexLabels {
            table: table.to_owned(),
            index: index.to_owned(),
        };
        self.series(family, &labels, table, index)
    }

    /// The series of `labels` in `family`; a new one is named after `table` and `index` so that
    /// [`Metrics::forget_deleted`] finds it.
    fn series<S, M>(&self, family: &Family<S, M>, labels: &S, table: &str, index: &str) -> M
    where
        S: Clone + std::hash::Hash + Eq,
        M: Clone + Default,
    {
        if family.get(labels).is_none() {
            self.name(table, index);
        }
        family.get_or_create_owned(labels)
    }

    /// Drops every per-table series of the tables not in `live`.
    fn forget_deleted(&self, live: &std::collections::BTreeSet<String>) {
        let mut named = self.named.lock().unwrap_or_else(|e| e.into_inner());
        named.retain(|(table, index)| {
            if live.contains(table) {
                return true;
            }
            let labels = IndexLabels {
                table: table.clone(),
                index: index.clone(),
            };
            self.read_units.remove(&labels);
            self.write_units.remove(&labels);
            self.read_throttles.remove(&labels);
            self.write_throttles.remove(&labels);
            self.backfilled.remove(&labels);
            let labels = TableLabels {
                table: table.clone(),
            };
            self.ttl_deletions.remove(&labels);
            self.stream_records.remove(&labels);
            self.mirror_applied.remove(&labels);
            self.mirror_source_errors.remove(&labels);
            recent::GENERATION.fetch_add(1, std::sync::atomic::Ordering::Release);
            false
        });
    }
}

/// Installs what reads the server's figures at each scrape (replacing any earlier one).
pub fn sample_with(sampler: Sampler) {
    *METRICS.sampler.lock().unwrap_or_else(|e| e.into_inner()) = Some(sampler);
}

/// Reads the server's figures for a scrape; a table gone since the last one disappears.
fn sample(metrics: &Metrics) {
    let sampler = metrics.sampler.lock().unwrap_or_else(|e| e.into_inner());
    let Some(sampler) = sampler.as_ref() else {
        return;
    };
    let sample = sampler();
    metrics.table_items.clear();
    metrics.table_bytes.clear();
    let live = sample.tables.iter().map(|s| s.table.clone()).collect();
    metrics.forget_deleted(&live);
    for table in sample.tables {
        let labels = TableLabels { table: table.table };
        metrics.table_items.get_or_create(&labels).set(table.items);
        metrics.table_bytes.get_or_create(&labels).set(table.bytes);
    }
    metrics.replication_latency.clear();
    metrics.replication_behind.clear();
    metrics.replication_send_errors.clear();
    for replica in sample.replication {
        let labels = ReplicaLabels {
            table: replica.table,
            region: replica.region,
        };
        let latency = metrics.replication_latency.get_or_create(&labels);
        latency.set(replica.latency_seconds);
        let behind = metrics.replication_behind.get_or_create(&labels);
        behind.set(replica.behind_seconds);
        let errors = metrics.replication_send_errors.get_or_create(&labels);
        errors.set(i64::try_from(replica.send_errors).unwrap_or(i64::MAX));
    }
    if let Some(bytes) = sample.disk_bytes {
        metrics
            .disk_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
    if let Some(cache) = sample.cache {
        // The engine counts since it opened; a scrape copies its figures (a reopen after a
        // failure starts them again, which Prometheus reads as a counter reset).
        let store = |counter: &Counter, value: u64| counter.inner().store(value, Ordering::Relaxed);
        store(&metrics.cache_hits, cache.hits);
        store(&metrics.cache_misses, cache.misses);
        store(&metrics.cache_evictions, cache.evictions);
        metrics
            .cache_bytes
            .set(i64::try_from(cache.bytes).unwrap_or(i64::MAX));
    }
}

/// The DNS server now serves the plan of `generation`.
pub fn dns_plan(generation: u64) {
    let generation = i64::try_from(generation).unwrap_or(i64::MAX);
    METRICS.dns_generation.set(generation);
}

/// The DNS health checks' verdict on `node` changed: `healthy` or not.
pub fn dns_node_health(node: &str, healthy: bool) {
    let labels = NodeLabels {
        node: node.to_owned(),
    };
    METRICS
        .dns_node_healthy
        .get_or_create(&labels)
        .set(i64::from(healthy));
}

/// The DNS response codes counted by name (the header's four bits, in order), then the rest.
const RCODES: [&str; 7] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "OTHER",
];

/// The DNS server sent an answer with response code `rcode` (the header's four bits).
pub fn dns_answer(rcode: u8) {
    let index = usize::from(rcode).min(RCODES.len() - 1);
    METRICS.dns_answers_by_rcode[index].inc();
}

/// A quantity the server holds at a moment, kept as a gauge moved by [`Held`] guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Requests executing (holding an execution slot).
    InFlight,
    /// Requests waiting for an execution slot.
    Queued,
    /// Open client connections.
    Connections,
}

impl Level {
    const COUNT: usize = 3;
    const ALL: [Level; Level::COUNT] = [Level::InFlight, Level::Queued, Level::Connections];

    fn name(self) -> &'static str {
        match self {
            Level::InFlight => "haven_in_flight_requests",
            Level::Queued => "haven_queued_requests",
            Level::Connections => "haven_open_connections",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Level::InFlight => "Requests executing now (holding an execution slot)",
            Level::Queued => "Requests waiting now for an execution slot",
            Level::Connections => "Client connections open now",
        }
    }

    /// One more of this level until the guard is dropped.
    pub fn hold(self) -> Held {
        METRICS.levels[self as usize].inc();
        Held(self)
    }
}

/// One unit of a [`Level`], given back when dropped.
#[must_use = "the level drops back when this is dropped"]
#[derive(Debug)]
pub struct Held(Level);

impl Drop for Held {
    fn drop(&mut self) {
        METRICS.levels[self.0 as usize].dec();
    }
}

/// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
pub fn render() -> String {
    let mut text = String::with_capacity(16 * 1024);
    sample(&METRICS);
    sample_mirrors(&METRICS);
    prometheus_client::encoding::text::encode(&mut text, &METRICS.registry)
        .expect("writing to a String cannot fail");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_requests_and_capacity_appear_in_the_text() {
        request("GetItem", "ok", 0.000_2, (10, 20));
        request("PutItem", "ThrottlingException", 0.05, (30, 40));
        consumed(Capacity::Read, "Music", Some("ByArtist"), 0.5);
        consumed(Capacity::Write, "Gone", None, 1.0);
        ttl_deletion("Gone");
        mirror_applied("Music", 3);
        mirror_source_error("Gone");
        sample_mirrors_with(Box::new(|| vec![("Music".to_string(), 1.5)]));
        let held = Level::Queued.hold();
        let text = render();
        assert!(text.contains(r#"haven_requests_total{operation="GetItem",outcome="ok"} 1"#));
        assert!(text.contains(r#"haven_throttled_requests_total{operation="PutItem"} 1"#));
        assert!(text.contains(
            r#"haven_consumed_read_capacity_units_total{table="Music",index="ByArtist"} 0.5"#
        ));
        assert!(
            text.contains(
                r#"haven_request_duration_seconds_bucket{le="0.00025",operation="GetItem"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("haven_queued_requests 1"));
        assert!(text.contains(r#"haven_mirror_applied_records_total{table="Music"} 3"#));
        assert!(text.contains(r#"haven_mirror_source_errors_total{table="Gone"} 1"#));
        assert!(text.contains(r#"haven_mirror_lag_seconds{table="Music"} 1.5"#));
        commit(3, 0.001, false);
        dns_plan(42);
        dns_node_health("127.0.0.2:8000", true);
        dns_answer(3);
        sample_with(Box::new(|| Sample {
            tables: vec![TableSample {
                table: "Music".to_string(),
                items: 7,
                bytes: 700,
            }],
            replication: vec![ReplicationSample {
                table: "Music".to_string(),
                region: "eu-west-1".to_string(),
                latency_seconds: 0.25,
                behind_seconds: 0.0,
                send_errors: 3,
            }],
            disk_bytes: Some(4096),
            cache: Some(CacheStats {
                hits: 90,
                misses: 10,
                evictions: 2,
                bytes: 65536,
            }),
        }));
        let text = render();
        assert!(
            text.contains("haven_storage_commit_batches_bucket{le=\"4.0\"} 1"),
            "{text}"
        );
        assert!(text.contains(r#"haven_table_items{table="Music"} 7"#));
        assert!(text.contains(r#"haven_table_size_bytes{table="Music"} 700"#));
        assert!(text.contains(
            r#"haven_replication_latency_seconds{table="Music",region="eu-west-1"} 0.25"#
        ));
        assert!(
            text.contains(r#"haven_replication_send_errors{table="Music",region="eu-west-1"} 3"#)
        );
        assert!(text.contains("haven_storage_disk_bytes 4096"));
        assert!(text.contains("haven_storage_cache_hits_total 90"), "{text}");
        assert!(text.contains("haven_storage_cache_misses_total 10"));
        assert!(text.contains("haven_storage_cache_evictions_total 2"));
        assert!(text.contains("haven_storage_cache_bytes 65536"));
        assert!(text.contains(r#"haven_dns_answers_total{rcode="REFUSED"} 0"#));
        assert!(text.contains("haven_dns_plan_generation 42"));
        assert!(text.contains(r#"haven_dns_node_healthy{node="127.0.0.2:8000"} 1"#));
        assert!(text.contains(r#"haven_dns_answers_total{rcode="NXDOMAIN"} 1"#));
        // Music is the only table left: the others' series go.
        assert!(!text.contains(r#"table="Gone""#), "{text}");
        drop(held);
        assert!(render().contains("haven_queued_requests 0"));
        assert!(text.ends_with("# EOF\n"));
    }
}
