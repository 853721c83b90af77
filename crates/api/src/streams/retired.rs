//! The streams of deleted tables: DynamoDB keeps a deleted table's streams readable for 24 hours
//! (StreamStatus DISABLED, every shard closed), so a consumer can drain what was written before the
//! deletion. The change log itself outlives the table (DeleteTable does not touch it, and the log
//! worker trims it by age like any other), so all a reader needs is the table's metadata:
//! DeleteTable stores it here, in the same batch that removes the table, with every stream
//! disabled at the deletion; the log worker removes it once retention has passed.
//!
//! Layout: `SYSTEM | "retired-streams/" | table name | 0x00 | deletion time (ms, u64 BE)` → the
//! table's metadata (JSON, as the catalog stores it). A table name never holds 0x00, so one
//! name's records are one key range, oldest deletion first.

use std::ops::Bound;

use haven_storage::{Engine, Snapshot, StorageError, WriteBatch};

use crate::catalog::TableMeta;

const PREFIX: &[u8] = b"\x03retired-streams/";
/// Most retired tables one read visits: a bound on the work a request does even if a client
/// deletes and re-creates tables with streams in a loop (the worker removes them after retention).
const MAX_VISITED: usize = 1000;

fn name_prefix(name: &str) -> Vec<u8> {
    let mut key = PREFIX.to_vec();
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    key
}

fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    *end.last_mut().expect("a non-empty prefix") += 1;
    end
}

/// Stages, in DeleteTable's batch, the record that keeps `meta`'s streams readable: every stream
/// still enabled is disabled at `now_ms`. Nothing for a table that never had a stream.
pub(crate) fn stage(batch: &mut WriteBatch, meta: &TableMeta, now_ms: u64) {
    if meta.streams.is_empty() {
        return;
    }
    let mut retired = meta.clone();
    for stream in &mut retired.streams {
        stream.disabled_ms.get_or_insert(now_ms);
    }
    let mut key = name_prefix(&meta.name);
    key.extend_from_slice(&now_ms.to_be_bytes());
    batch.put(
        key,
        serde_json::to_vec(&retired).expect("metadata serialises"),
    );
}

/// Deleted tables (of `name`, or of every name) whose streams are still within retention: each
/// was deleted at or after `oldest_ms`, oldest deletion first.
pub(crate) fn tables(
    snapshot: &dyn Snapshot,
    name: Option<&str>,
    oldest_ms: u64,
) -> Result<Vec<TableMeta>, StorageError> {
    let start = name.map_or_else(|| PREFIX.to_vec(), name_prefix);
    let end = prefix_end(&start);
    let mut found = Vec::new();
    let mut visited = 0;
    let mut failure = None;
    snapshot.scan(
        (Bound::Included(&start[..]), Bound::Excluded(&end[..])),
        false,
        &mut |key, value| {
            visited += 1;
            if deleted_ms(key) >= oldest_ms {
                match serde_json::from_slice::<TableMeta>(value) {
                    Ok(meta) => found.push(meta),
                    Err(error) => failure = Some(error),
                }
            }
            visited < MAX_VISITED && failure.is_none()
        },
    )?;
    match failure {
        Some(error) => Err(StorageError::Io(format!(
            "retired stream metadata: {error}"
        ))),
        None => Ok(found),
    }
}

/// The deletion time a record's key ends with.
fn deleted_ms(key: &[u8]) -> u64 {
    let tail: [u8; 8] = key[key.len().saturating_sub(8)..]
        .try_into()
        .unwrap_or_default();
    u64::from_be_bytes(tail)
}

/// Whether any deleted table's streams are kept.
pub(crate) fn any(snapshot: &dyn Snapshot) -> Result<bool, StorageError> {
    let end = prefix_end(PREFIX);
    let mut found = false;
    let range = (Bound::Included(PREFIX), Bound::Excluded(&end[..]));
    snapshot.scan(range, false, &mut |_, _| {
        found = true;
        false
    })?;
    Ok(found)
}

/// Removes up to [`MAX_VISITED`] records of tables deleted before `oldest_ms` (the log worker).
pub(crate) fn sweep(engine: &dyn Engine, oldest_ms: u64) -> Result<(), StorageError> {
    let snapshot = engine.snapshot()?;
    let end = prefix_end(PREFIX);
    let mut expired = Vec::new();
    let mut visited = 0;
    snapshot.scan(
        (Bound::Included(PREFIX), Bound::Excluded(&end[..])),
        false,
        &mut |key, _| {
            visited += 1;
            if deleted_ms(key) < oldest_ms {
                expired.push(key.to_vec());
            }
            visited < MAX_VISITED
        },
    )?;
    drop(snapshot);
    if expired.is_empty() {
        return Ok(());
    }
    let mut batch = WriteBatch::new();
    for key in expired {
        batch.delete(key);
    }
    super::worker::commit(engine, batch)
}
