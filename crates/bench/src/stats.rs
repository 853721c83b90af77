//! Measurements: HDR histograms of latency per operation kind, counts, the client's own CPU time
//! (getrusage), and the report as text or JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Latencies are recorded in nanoseconds, up to a minute, with 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// What one connection (or all, once merged) measured.
#[derive(Clone)]
pub struct Stats {
    /// Latency per operation kind ("read", "update", "query"...).
    pub latencies: BTreeMap<&'static str, Histogram<u64>>,
    /// Requests answered with an error other than a failed condition.
    pub errors: u64,
    /// Conditional writes refused because another writer got there first (workload F).
    pub conflicts: u64,
    /// Items written (load).
    pub items: u64,
    /// Requests sent during warm-up (not measured, but the client's CPU time covers them).
    pub warmup_ops: u64,
    /// The first error seen, to show what went wrong.
    pub first_error: Option<String>,
}

impl Stats {
    /// Nothing measured yet.
    pub fn new() -> Self {
        Stats {
            latencies: BTreeMap::new(),
            errors: 0,
            conflicts: 0,
            items: 0,
            warmup_ops: 0,
            first_error: None,
        }
    }

    /// Records one request of kind `kind` that took `elapsed`.
    pub fn record(&mut self, kind: &'static str, elapsed: Duration) {
        let nanos = (elapsed.as_nanos() as u64).clamp(1, 60_000_000_000);
        self.latencies
            .entry(kind)
            .or_insert_with(histogram)
            .saturating_record(nanos);
    }

    /// Records an error answer.
    pub fn error(&mut self, message: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message());
        }
    }

    /// Adds another connection's measurements.
    pub fn merge(&mut self, other: &Stats) {
        for (kind, h) in &other.latencies {
            self.latencies
                .entry(kind)
                .or_insert_with(histogram)
                .add(h)
                .expect("same bounds");
        }
        self.errors += other.errors;
        self.conflicts += other.conflicts;
        self.items += other.items;
        self.warmup_ops += other.warmup_ops;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }

    /// All kinds together.
    pub fn overall(&self) -> Histogram<u64> {
        let mut all = histogram();
        for h in self.latencies.values() {
            all.add(h).expect("same bounds");
        }
        all
    }
}

/// User plus system CPU time this process has used so far.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct we pass; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// A finished run.
pub struct Report {
    pub workload: String,
    pub endpoint: String,
    pub connections: usize,
    pub distribution: String,
    pub offered_rate: Option<f64>,
    pub elapsed: Duration,
    pub client_cpu: Duration,
    pub stats: Stats,
    /// What the stream consumer measured (`run --consume`).
    pub stream: Option<Value>,
}

/// Count and latency quantiles in microseconds.
pub fn summary(h: &Histogram<u64>) -> Value {
    let us = |nanos: u64| (nanos as f64 / 100.0).round() / 10.0;
    json!({
        "count": h.len(),
        "p50_us": us(h.value_at_quantile(0.50)),
        "p99_us": us(h.value_at_quantile(0.99)),
        "p999_us": us(h.value_at_quantile(0.999)),
        "max_us": us(h.max()),
        "mean_us": (h.mean() / 100.0).round() / 10.0,
    })
}

impl Report {
    fn ops(&self) -> u64 {
        self.stats.overall().len()
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        let seconds = self.elapsed.as_secs_f64();
        let ops = self.ops();
        let per_kind: serde_json::Map<String, Value> = self
            .stats
            .latencies
            .iter()
            .map(|(k, h)| (k.to_string(), summary(h)))
            .collect();
        json!({
            "workload": self.workload,
            "endpoint": self.endpoint,
            "connections": self.connections,
            "distribution": self.distribution,
            "offered_rate": self.offered_rate,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "ops": ops,
            "warmup_ops": self.stats.warmup_ops,
            "ops_per_sec": (ops as f64 / seconds).round(),
            "items": self.stats.items,
            "items_per_sec": (self.stats.items as f64 / seconds).round(),
            "errors": self.stats.errors,
            "conflicts": self.stats.conflicts,
            "first_error": self.stats.first_error,
            "latency": summary(&self.stats.overall()),
            "latency_by_op": per_kind,
            "client_cpu_seconds": self.client_cpu.as_secs_f64(),
            "client_cpu_us_per_op": ((self.client_cpu.as_nanos() as f64 / (ops + self.stats.warmup_ops).max(1) as f64) / 10.0).round() / 100.0,
            "stream": self.stream,
        })
    }

    /// The report as text.
    pub fn to_text(&self) -> String {
        let j = self.to_json();
        let mut out = format!(
            "workload {}  endpoint {}  connections {}  keys {}{}\n",
            self.workload,
            self.endpoint,
            self.connections,
            self.distribution,
            self.offered_rate
                .map(|r| format!("  offered {r} ops/s"))
                .unwrap_or_default()
        );
        out += &format!(
            "{} ops in {:.2} s: {} ops/s  errors {}  conflicts {}\n",
            j["ops"], j["seconds"], j["ops_per_sec"], j["errors"], j["conflicts"]
        );
        if self.stats.items > 0 {
            out += &format!("{} items: {} items/s\n", j["items"], j["items_per_sec"]);
        }
        out += &format!(
            "{:<8}{:>10}{:>10}{:>10}{:>10}{:>10}  (µs)\n",
            "", "p50", "p99", "p99.9", "max", "mean"
        );
        let mut rows = vec![("all".to_string(), j["latency"].clone())];
        rows.extend(
            j["latency_by_op"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        for (name, s) in rows {
            let cell = |key: &str| format!("{:>10.1}", s[key].as_f64().unwrap_or(0.0));
            let cells: String = ["p50_us", "p99_us", "p999_us", "max_us", "mean_us"]
                .map(cell)
                .concat();
            out += &format!("{name:<8}{cells}\n");
        }
        out += &format!(
            "client CPU {} µs/op ({:.2} s)\n",
            j["client_cpu_us_per_op"],
            self.client_cpu.as_secs_f64()
        );
        if let Some(stream) = &self.stream {
            let latency = &stream["get_records"];
            out += &format!(
                "stream consumer: {} records ({}/s), GetRecords p50 {} µs, p99 {} µs, caught up {} ms after the load\n",
                stream["records"],
                stream["records_per_sec"],
                latency["p50_us"],
                latency["p99_us"],
                stream["caught_up_ms_after_load"]
            );
        }
        if let Some(error) = &self.stats.first_error {
            out += &format!("first error: {error}\n");
        }
        out
    }
}
