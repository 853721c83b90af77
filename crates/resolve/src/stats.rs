//! The resolver's counters, read by `GET /status` on the control address and logged at exit:
//! every substitution and every answer a stand-in gave is counted here.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

#[derive(Default)]
pub struct Stats {
    /// Answers given from a fresh cache entry, without asking upstream.
    pub cache_hits: AtomicU64,
    /// Queries that had to wait for the upstreams (or a stale or pinned answer).
    pub cache_misses: AtomicU64,
    pub upstream_queries: AtomicU64,
    /// An upstream that answered neither NOERROR nor NXDOMAIN.
    pub upstream_failures: AtomicU64,
    /// An upstream that did not answer in time or could not be reached.
    pub upstream_timeouts: AtomicU64,
    pub tcp_retries: AtomicU64,
    /// Times a critical name's last good answer was put in place of the upstream's.
    pub substitutions: AtomicU64,
    /// Answers a stand-in gave to clients (from the cache or not).
    pub substituted_answers: AtomicU64,
    /// Answers given stale because no upstream answered (RFC 8767).
    pub stale_answers: AtomicU64,
    pub servfail_answers: AtomicU64,
    /// Queries turned away at once because too many were already waiting.
    pub overloaded: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn to_json(&self) -> Value {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        json!({
            "cache_hits": read(&self.cache_hits),
            "cache_misses": read(&self.cache_misses),
            "upstream_queries": read(&self.upstream_queries),
            "upstream_failures": read(&self.upstream_failures),
            "upstream_timeouts": read(&self.upstream_timeouts),
            "tcp_retries": read(&self.tcp_retries),
            "substitutions": read(&self.substitutions),
            "substituted_answers": read(&self.substituted_answers),
            "stale_answers": read(&self.stale_answers),
            "servfail_answers": read(&self.servfail_answers),
            "overloaded": read(&self.overloaded),
        })
    }
}
