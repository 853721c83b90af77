//! Measures the embedded engine the way the server uses it: durable 1 KB puts from N concurrent
//! writers (group commit folds them into shared fsyncs) and point reads.
//!
//! `cargo run --release -p haven-storage --example engine_bench -- [items] [dir]`

use std::sync::Arc;
use std::time::Instant;

use haven_storage::{Engine, RedbEngine, WriteBatch};

fn key(i: u64) -> Vec<u8> {
    format!("item-{i:012}").into_bytes()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let items: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let dir = args
        .get(2)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("haven-engine-bench"));
    let _ = std::fs::remove_dir_all(&dir);
    let engine = Arc::new(RedbEngine::open(&dir).expect("open"));
    let value = vec![0xABu8; 1024];
    let mut next = 0u64;
    for writers in [1u64, 8, 64] {
        let per_writer = (items / writers)
            .max(1)
            .min(if writers == 1 { 2_000 } else { u64::MAX });
        let start = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let engine = engine.clone();
                let value = value.clone();
                let base = next + w * per_writer;
                tokio::spawn(async move {
                    for i in 0..per_writer {
                        let mut batch = WriteBatch::new();
                        batch.put(key(base + i), value.clone());
                        engine.commit(batch).await.expect("commit");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        next += writers * per_writer;
        let elapsed = start.elapsed().as_secs_f64();
        println!(
            "durable puts, {writers:>2} writers: {:>8.0} puts/s ({} puts)",
            (writers * per_writer) as f64 / elapsed,
            writers * per_writer
        );
    }
    let start = Instant::now();
    let snapshot = engine.snapshot().unwrap();
    let reads = 200_000u64;
    for i in 0..reads {
        assert!(snapshot.get(&key((i * 7919) % next)).unwrap().is_some());
    }
    println!(
        "point reads, 1 thread: {:>8.0} reads/s",
        reads as f64 / start.elapsed().as_secs_f64()
    );
    engine.shutdown();
    let size: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "data: {next} items of 1 KB, {:.1} MB on disk (space amplification {:.2})",
        size as f64 / 1e6,
        size as f64 / (next as f64 * 1040.0)
    );
    drop(snapshot);
    drop(engine);
    let start = Instant::now();
    let engine = RedbEngine::open(&dir).expect("reopen");
    println!(
        "reopen, every page checksum verified: {:.0} ms (file in the page cache)",
        start.elapsed().as_secs_f64() * 1e3
    );
    drop(engine);
}
