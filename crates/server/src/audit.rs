//! The audit log: one JSON line per request saying who did what and how it ended (time, request
//! id, access key id or "anonymous", operation, tables, result, status code, latency). Never a
//! secret, a signature or an item: only names.
//!
//! Requests never wait on the disk: a record is handed to a bounded queue and a writer thread
//! appends it to the file through a buffer, flushed whenever the queue runs empty. When the writer
//! falls behind and the queue is full, new records are dropped and counted rather than slowing
//! requests down; the writer then writes a `{"time": ..., "dropped": N}` line, so a gap is always
//! visible in the log itself. Records still queued at shutdown are written before the thread ends.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Records that may wait for the writer before new ones are dropped.
const QUEUE_CAPACITY: usize = 16 * 1024;

/// What the request path learns about a request, for its audit record.
#[derive(Debug, Default)]
pub struct Facts {
    /// Whether to find the tables a request names (only the audit log needs them).
    pub record_tables: bool,
    pub operation: Option<&'static str>,
    /// The access key that signed the request, once its signature is verified.
    pub access_key_id: Option<String>,
    pub tables: Vec<String>,
    /// The DynamoDB error type the request was answered with.
    pub error: Option<&'static str>,
}

/// One request's record.
pub struct Record<'a> {
    pub request_id: &'a str,
    pub facts: Facts,
    /// "ok", or the DynamoDB error type (or HTTP-level refusal) the request was answered with.
    pub result: &'a str,
    pub status: u16,
    pub latency: Duration,
}

/// An open audit log. Dropping it waits for the writer to write what is queued and stop.
pub struct AuditLog {
    /// None only while dropping.
    queue: Option<SyncSender<Value>>,
    dropped: Arc<AtomicU64>,
    writer: Option<JoinHandle<()>>,
}

impl AuditLog {
    /// Opens `path` for appending (created mode 0600 if missing) and starts the writer thread.
    pub fn open(path: &Path) -> io::Result<AuditLog> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let (queue, records) = sync_channel(QUEUE_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let writer = std::thread::Builder::new()
            .name("haven-audit".into())
            .spawn(move || write_records(file, records, &counter))?;
        Ok(AuditLog {
            queue: Some(queue),
            dropped,
            writer: Some(writer),
        })
    }

    /// Queues the record; never blocks (a full queue drops it and counts it).
    pub fn record(&self, record: Record<'_>) {
        let facts = &record.facts;
        let line = json!({
            "time": timestamp(SystemTime::now()),
            "request_id": record.request_id,
            "access_key_id": facts.access_key_id.as_deref().unwrap_or("anonymous"),
            "operation": facts.operation,
            "tables": facts.tables,
            "result": record.result,
            "status": record.status,
            "latency_ms": record.latency.as_secs_f64() * 1000.0,
        });
        let full = self
            .queue
            .as_ref()
            .is_some_and(|queue| matches!(queue.try_send(line), Err(TrySendError::Full(_))));
        if full {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        // Closing the queue ends the writer's loop once it has written every queued record.
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn write_records(file: File, records: Receiver<Value>, dropped: &AtomicU64) {
    let mut out = BufWriter::new(file);
    let write = |out: &mut BufWriter<File>, line: &Value| {
        if let Err(error) = writeln!(out, "{line}") {
            tracing::error!(%error, "cannot write the audit log");
        }
    };
    // Blocks for the next record, then takes every one already queued before flushing.
    while let Ok(first) = records.recv() {
        write(&mut out, &first);
        while let Ok(next) = records.try_recv() {
            write(&mut out, &next);
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let gap = json!({"time": timestamp(SystemTime::now()), "dropped": lost});
            write(&mut out, &gap);
        }
        if let Err(error) = out.flush() {
            tracing::error!(%error, "cannot write the audit log");
        }
    }
}

/// `2026-01-31T12:34:56.789Z`.
fn timestamp(now: SystemTime) -> String {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let basic = crate::sigv4::format_amz_date(since_epoch.as_secs());
    // The SigV4 basic format `20260131T123456Z`, spelled out.
    format!(
        "{}-{}-{}T{}:{}:{}.{:03}Z",
        &basic[0..4],
        &basic[4..6],
        &basic[6..8],
        &basic[9..11],
        &basic[11..13],
        &basic[13..15],
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_records_leave_a_visible_gap_and_queued_ones_are_written_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (queue, records) = sync_channel(4);
        queue.try_send(json!({"request_id": "a"})).unwrap();
        queue.try_send(json!({"request_id": "b"})).unwrap();
        drop(queue);
        // As if three records had found the queue full.
        let dropped = AtomicU64::new(3);
        write_records(File::create(&path).unwrap(), records, &dropped);
        let lines: Vec<Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0]["request_id"], "a");
        assert_eq!(lines[1]["request_id"], "b");
        assert_eq!(lines[2]["dropped"], 3);
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn timestamps_are_iso_8601_utc_with_milliseconds() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(timestamp(at), "2023-11-14T22:13:20.123Z");
    }
}
