//! What a write costs the engine alone, memory engine against the embedded engine's in-memory
//! backend (what `--in-memory` ran on before): the figures behind docs/storage-format.md's
//! "The memory engine".
//!
//! `cargo run --release -p haven-storage-memory --example commit_cost [ITEMS]`
//!
//! Each write is what a PutItem stages: a snapshot read of the item's key, then a batch that
//! expects what was read, puts a 1 KB value under a hash-ordered key and moves the table's two
//! counters; a BatchWriteItem stages 25 such items in one batch. Printed: nanoseconds of wall
//! time per item, one thread.

use std::time::Instant;

use haven_storage::{Engine, RedbEngine, WriteBatch};
use haven_storage_memory::MemoryEngine;

/// A hash-ordered key of 24 bytes for item `i` (as a table id, a hash and a partition key).
fn key(i: u64) -> Vec<u8> {
    let hash = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    [1u64.to_be_bytes(), hash.to_be_bytes(), i.to_be_bytes()].concat()
}

/// Writes `items` items, `per_batch` to a batch; answers nanoseconds per item.
fn write(engine: &dyn Engine, items: u64, per_batch: u64) -> f64 {
    let value = vec![7u8; 1024];
    let started = Instant::now();
    for first in (0..items).step_by(per_batch as usize) {
        let snapshot = engine.snapshot().expect("snapshot");
        let mut batch = WriteBatch::new();
        for i in first..(first + per_batch).min(items) {
            let key = key(i);
            let current = snapshot.get(&key).expect("read");
            batch.expect(key.clone(), current).put(key, value.clone());
            batch.add_counter(b"count".to_vec(), 1);
            batch.add_counter(b"size".to_vec(), 1024);
        }
        drop(snapshot);
        engine.commit(batch).wait().expect("commit");
    }
    started.elapsed().as_nanos() as f64 / items as f64
}

fn main() {
    let items: u64 = std::env::args()
        .nth(1)
        .map_or(100_000, |n| n.parse().expect("ITEMS is a number"));
    for per_batch in [1, 25] {
        let memory = write(&MemoryEngine::new(), items, per_batch);
        let redb = RedbEngine::in_memory().expect("redb in memory");
        let redb = write(&redb, items, per_batch);
        println!(
            "{items} items, {per_batch} a batch: memory engine {memory:.0} ns/item, \
             redb in memory {redb:.0} ns/item ({:.1}x)",
            redb / memory
        );
    }
}
