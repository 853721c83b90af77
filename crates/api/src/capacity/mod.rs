//! Capacity as DynamoDB enforces it: a token bucket per provisioned table and global secondary
//! index (reads and writes apart), and a per-second maximum for on-demand tables and indexes that
//! set OnDemandThroughput.
//!
//! Why this shape: DynamoDB admits a request while its table has capacity left, runs it, and
//! charges what it actually consumed (the consumed capacity it reports), so a bucket may go into
//! debt by one request's worth and refuses the next ones until it refills. Haven does the same:
//! [`Governor::admit`] (or a [`Reservation`] for the items of a batch) runs before anything is
//! read or written, so a refused request has no effect at all, and [`Governor::charge`] takes the
//! units the operation reports afterwards. A provisioned bucket keeps up to `burst_window` (AWS:
//! 300 s) of unused capacity; an on-demand maximum keeps one second's. A bucket starts full when
//! its table is first used on this node (a new table, or after a restart): what AWS calls burst
//! capacity is then available at once, the friendlier of the two readings for a fresh table.
//! Buckets live in this node's memory: several nodes on one PostgreSQL each allow the whole rate.
//!
//! Local secondary indexes share their table's capacity, as in DynamoDB; a global index has its
//! own, and a write whose global index is out of write capacity is refused on the base table
//! (DynamoDB's back-pressure). `CapacityMode::Off` turns all of it off (DynamoDB Local's
//! behaviour; the drop-in mode uses it).

mod bucket;
pub(crate) mod settings;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bucket::{Bucket, Shape};

use crate::catalog::{IndexKind, IndexMeta, TableMeta};
use crate::error::DynamoError;
use crate::indexes::IndexUse;
use crate::items::Capacity;

const TABLE_EXCEEDED: &str = "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.";
const INDEX_EXCEEDED: &str =
    "The level of configured provisioned throughput for the index was exceeded";
const INDEXES_EXCEEDED: &str = "The level of configured provisioned throughput for one or more global secondary indexes of the table was exceeded. Consider increasing your provisioning level for the under-provisioned global secondary indexes with the UpdateTable API";
const TABLES_EXCEEDED: &str = "The level of configured provisioned throughput for one or more tables was exceeded. Consider increasing your provisioning level with the UpdateTable API.";
const MAX_ON_DEMAND_EXCEEDED: &str =
    "Throughput exceeds the maximum OnDemandThroughput configured on table or index";

/// Whether Haven enforces capacity (`haven serve --capacity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityMode {
    /// Throttle as DynamoDB does.
    Enforce,
    /// Never throttle (DynamoDB Local's behaviour); consumed capacity is still reported.
    Off,
}

/// `haven serve --capacity` and `--capacity-burst-secs`.
#[derive(Debug, Clone, Copy)]
pub struct CapacitySettings {
    pub mode: CapacityMode,
    /// Unused capacity a provisioned bucket keeps (DynamoDB: 300 seconds).
    pub burst_window: Duration,
}

impl Default for CapacitySettings {
    fn default() -> CapacitySettings {
        CapacitySettings {
            mode: CapacityMode::Enforce,
            burst_window: Duration::from_secs(300),
        }
    }
}

/// A bucket's owner: a table (`index` None) or one of its global indexes, and which capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    table: u64,
    index: Option<u32>,
    write: bool,
}

/// The limit a table or index sets on one capacity, and what refusing it answers.
struct Limit {
    key: Key,
    shape: Shape,
    refusal: DynamoError,
}

/// Every bucket of one `Service`'s tables.
pub(crate) struct Governor {
    settings: CapacitySettings,
    clock: Instant,
    buckets: RwLock<HashMap<Key, Arc<Bucket>>>,
}

/// Units a batch has admitted but not yet charged, per bucket: the next item of the batch is
/// admitted only if its buckets still have capacity beyond them.
#[derive(Default)]
pub(crate) struct Reservation {
    pending: HashMap<Key, f64>,
}

impl Governor {
    pub fn new(settings: CapacitySettings) -> Governor {
        Governor {
            settings,
            clock: Instant::now(),
            buckets: RwLock::new(HashMap::new()),
        }
    }

    /// Whether `meta` has any limit to enforce: the common on-demand table without maxima costs
    /// a request no lookup at all.
    fn enforced_on(&self, meta: &TableMeta) -> bool {
        self.settings.mode == CapacityMode::Enforce
            && (meta.billing_mode == "PROVISIONED"
                || meta.on_demand.is_some()
                || meta.indexes.iter().any(|i| i.on_demand.is_some()))
    }

    fn now(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    /// Admits a read of `meta` (through `index`, when it names one) or a write of it; a write
    /// also needs write capacity on every global index it maintains.
    pub fn admit(
        &self,
        meta: &TableMeta,
        index: Option<&IndexMeta>,
        capacity: Capacity,
    ) -> Result<(), DynamoError> {
        self.reserve(&mut Reservation::default(), meta, index, capacity, 0.0)
    }

    /// Admits one more item of a batch (see [`Reservation`]), counting `units` as pending on
    /// its table's bucket (and one on each global index's, for a write).
    pub fn reserve(
        &self,
        reservation: &mut Reservation,
        meta: &TableMeta,
        index: Option<&IndexMeta>,
        capacity: Capacity,
        units: f64,
    ) -> Result<(), DynamoError> {
        if !self.enforced_on(meta) {
            return Ok(());
        }
        let limits = self.limits(meta, index, capacity);
        let now = self.now();
        for (limit, _) in &limits {
            let pending = reservation.pending.get(&limit.key).copied().unwrap_or(0.0);
            let bucket = self.bucket(limit, now);
            if !bucket.has_capacity(limit.shape, now) || bucket.available() <= pending {
                let index = limit.key.index.and_then(|id| index_name(meta, id));
                haven_metrics::throttled(capacity, &meta.name, index);
                return Err(limit.refusal.clone());
            }
        }
        for (limit, units_here) in limits.iter().map(|(l, own)| (l, own.then_some(units))) {
            *reservation.pending.entry(limit.key).or_default() += units_here.unwrap_or(1.0);
        }
        Ok(())
    }

    /// Charges what an admitted request consumed: `table_units` on the table, each index's units
    /// on its global index (a local index's on the table, whose capacity it shares).
    pub fn charge(
        &self,
        meta: &TableMeta,
        capacity: Capacity,
        table_units: f64,
        index_units: &[IndexUse],
    ) {
        if !self.enforced_on(meta) {
            return;
        }
        let write = capacity == Capacity::Write;
        let table = Key {
            table: meta.id,
            index: None,
            write,
        };
        self.charge_key(table, table_units);
        for (kind, name, units) in index_units {
            let index = match kind {
                IndexKind::Local => None,
                IndexKind::Global => meta.index(name).map(|i| i.id),
            };
            self.charge_key(Key { index, ..table }, *units);
        }
    }

    /// Admits a request that reads or writes items of every table in `metas` (a transaction):
    /// each table needs capacity left, or the whole request is refused.
    pub fn admit_all<'m>(
        &self,
        metas: impl IntoIterator<Item = &'m TableMeta>,
        capacity: Capacity,
    ) -> Result<(), DynamoError> {
        let mut reservation = Reservation::default();
        for meta in metas {
            self.reserve(&mut reservation, meta, None, capacity, 0.0)?;
        }
        Ok(())
    }

    /// [`Governor::charge`] for a request over several tables: each entry (table name, units,
    /// index units, as ConsumedCapacity lists them) goes to the table of that name in `metas`.
    pub fn charge_tables<'a, 'm>(
        &self,
        metas: impl IntoIterator<Item = &'m TableMeta> + Clone,
        capacity: Capacity,
        tables: impl IntoIterator<Item = (&'a str, f64, &'a [IndexUse])>,
    ) {
        for (name, units, index_units) in tables {
            if let Some(meta) = metas.clone().into_iter().find(|m| m.name == name) {
                self.charge(meta, capacity, units, index_units);
            }
        }
    }

    fn charge_key(&self, key: Key, units: f64) {
        let buckets = self.buckets.read().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.get(&key) {
            bucket.charge(units);
        }
    }

    /// The limits a request must pass, each with whether the request's own units go there (the
    /// table or index it reads or writes) or one unit is estimated (a global index a write
    /// maintains).
    fn limits(
        &self,
        meta: &TableMeta,
        index: Option<&IndexMeta>,
        capacity: Capacity,
    ) -> Vec<(Limit, bool)> {
        let target = index.filter(|i| i.kind == IndexKind::Global);
        let mut limits: Vec<(Limit, bool)> = self
            .limit(meta, target, capacity)
            .map(|limit| (limit, true))
            .into_iter()
            .collect();
        if capacity == Capacity::Write {
            let maintained = meta
                .indexes
                .iter()
                .filter(|i| i.kind == IndexKind::Global && i.maintained());
            limits.extend(
                maintained
                    .filter_map(|i| self.limit(meta, Some(i), capacity))
                    .map(|mut limit| {
                        if let DynamoError::ProvisionedThroughputExceeded(m) = &mut limit.refusal {
                            *m = INDEXES_EXCEEDED.into();
                        }
                        (limit, false)
                    }),
            );
        }
        limits
    }

    /// The limit `meta` (or its global index) sets on `capacity`, if any.
    fn limit(
        &self,
        meta: &TableMeta,
        index: Option<&IndexMeta>,
        capacity: Capacity,
    ) -> Option<Limit> {
        let write = capacity == Capacity::Write;
        let key = Key {
            table: meta.id,
            index: index.map(|i| i.id),
            write,
        };
        if meta.billing_mode == "PROVISIONED" {
            let throughput = match index {
                Some(index) => index.throughput.as_ref()?,
                None => &meta.throughput,
            };
            let rate = if write {
                throughput.write_capacity_units
            } else {
                throughput.read_capacity_units
            };
            let message = if index.is_some() {
                INDEX_EXCEEDED
            } else {
                TABLE_EXCEEDED
            };
            return Some(Limit {
                key,
                shape: Shape {
                    rate,
                    window_secs: self.settings.burst_window.as_secs() as i64,
                },
                refusal: DynamoError::ProvisionedThroughputExceeded(message.into()),
            });
        }
        let maximum = match index {
            Some(index) => index.on_demand.as_ref()?,
            None => meta.on_demand.as_ref()?,
        };
        let rate = maximum.units(capacity).filter(|units| *units >= 1)?;
        Some(Limit {
            key,
            shape: Shape {
                rate,
                window_secs: 1,
            },
            refusal: DynamoError::OnDemandThrottling(MAX_ON_DEMAND_EXCEEDED.into()),
        })
    }

    /// The bucket of `limit`, created full on first use.
    fn bucket(&self, limit: &Limit, now: u64) -> Arc<Bucket> {
        if let Some(bucket) = self
            .buckets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&limit.key)
        {
            return bucket.clone();
        }
        let mut buckets = self.buckets.write().unwrap_or_else(|e| e.into_inner());
        buckets
            .entry(limit.key)
            .or_insert_with(|| Arc::new(Bucket::full(limit.shape, now)))
            .clone()
    }

    /// Drops a deleted table's buckets (table ids are never reused).
    pub fn forget(&self, table: u64) {
        let mut buckets = self.buckets.write().unwrap_or_else(|e| e.into_inner());
        buckets.retain(|key, _| key.table != table);
    }
}

/// The refusal of a batch none of whose items could be admitted: DynamoDB names "one or more
/// tables" for provisioned capacity, and keeps the on-demand maximum's wording.
pub(crate) fn batch_refusal(first: DynamoError) -> DynamoError {
    match first {
        DynamoError::ProvisionedThroughputExceeded(_) => {
            DynamoError::ProvisionedThroughputExceeded(TABLES_EXCEEDED.into())
        }
        other => other,
    }
}

fn index_name(meta: &TableMeta, id: u32) -> Option<&str> {
    meta.indexes
        .iter()
        .find(|i| i.id == id)
        .map(|i| i.name.as_str())
}
