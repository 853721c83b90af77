//! Replication lag and health per (table, peer region), as the shipper measures them, for
//! DescribeTable's replicas, the `/replication/status` page and the metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Replication lag per (table, peer region), as the shipper last measured it: what
/// DescribeTable's replicas and the status page show as ReplicationLatency; and the tombstones
/// collected per table (`tombstones.rs`) since this node started.
#[derive(Clone, Default)]
pub struct Lag {
    samples: Arc<Mutex<BTreeMap<(String, String), LagSample>>>,
    collected: Arc<Mutex<BTreeMap<String, u64>>>,
    /// The last failure of each (table, peer) since its last delivered batch.
    failures: Arc<Mutex<BTreeMap<(String, String), String>>>,
}

/// One measurement of one (table, peer).
#[derive(Debug, Clone, Copy, Default)]
pub struct LagSample {
    /// Milliseconds between the commit of the oldest change of the last batch the peer
    /// acknowledged and the acknowledgement.
    pub latency_ms: u64,
    /// Milliseconds since the oldest change not yet acknowledged (0 when caught up).
    pub behind_ms: u64,
    /// Batches not delivered (peer unreachable, certificate refused...) since the node started.
    pub send_errors: u64,
}

impl Lag {
    pub(super) fn record(&self, table: &str, peer: &str, update: impl FnOnce(&mut LagSample)) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        update(
            samples
                .entry((table.to_owned(), peer.to_owned()))
                .or_default(),
        );
    }

    /// The last sample of `table` towards `peer`.
    pub fn get(&self, table: &str, peer: &str) -> Option<LagSample> {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.get(&(table.to_owned(), peer.to_owned())).copied()
    }

    /// Every sample: (table, peer region, sample).
    pub fn samples(&self) -> Vec<(String, String, LagSample)> {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples
            .iter()
            .map(|((table, peer), sample)| (table.clone(), peer.clone(), *sample))
            .collect()
    }

    /// A batch of `table` did not reach `peer`; true when `error` differs from the pair's last
    /// failure (worth a warning rather than a debug line).
    pub(super) fn failed(&self, table: &str, peer: &str, error: &str) -> bool {
        self.record(table, peer, |s| s.send_errors += 1);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let key = (table.to_owned(), peer.to_owned());
        failures.insert(key, error.to_owned()).as_deref() != Some(error)
    }

    /// A batch of `table` reached `peer`.
    pub(super) fn delivered(&self, table: &str, peer: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&(table.to_owned(), peer.to_owned()));
    }

    pub(super) fn count_collected(&self, table: &str, count: u64) {
        let mut collected = self.collected.lock().unwrap_or_else(|p| p.into_inner());
        *collected.entry(table.to_owned()).or_default() += count;
    }

    /// Every sample, as the `/replication/status` page shows them.
    pub fn report(&self) -> serde_json::Value {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let rows: Vec<serde_json::Value> = self
            .samples()
            .into_iter()
            .map(|(table, peer, sample)| {
                serde_json::json!({
                    "TableName": table,
                    "ReplicaRegion": peer,
                    "ReplicationLatencyMs": sample.latency_ms,
                    "SendErrors": sample.send_errors,
                    "LastError": failures.get(&(table.clone(), peer.clone())),
                    "BehindMs": sample.behind_ms,
                })
            })
            .collect();
        let collected = self.collected.lock().unwrap_or_else(|p| p.into_inner());
        let tombstones: Vec<serde_json::Value> = collected
            .iter()
            .map(|(table, count)| serde_json::json!({ "TableName": table, "Collected": count }))
            .collect();
        serde_json::json!({ "Replication": rows, "Tombstones": tombstones })
    }
}
