//! A backup's image: the table's items as of one snapshot, in parts of bounded size, one
//! `{"Item": {...}}` line per item in DynamoDB JSON (the line format of AWS's DYNAMODB_JSON
//! exports), so a part can be read by anything that reads an export.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use haven_model::Item;
use haven_model::item_codec::decode_item;
use haven_storage::Snapshot;

use super::BackupRecord;
use super::store::{BackupStore, StoreError};
use crate::catalog::TableMeta;

/// A part is written once its lines pass this many bytes, so memory stays bounded whatever the
/// table's size.
const PART_BYTES: usize = 4 * 1024 * 1024;

/// How many parts were written and how many items they hold.
pub(crate) struct Written {
    pub parts: u32,
    pub items: i64,
}

/// Writes the table's items as `snapshot` sees them, under `part_key(part)` for parts 0, 1...
pub(crate) fn write(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    store: &dyn BackupStore,
    part_key: impl Fn(u32) -> String,
) -> Result<Written, StoreError> {
    let (start, end) = (meta.item_prefix(), meta.item_prefix_end());
    let mut written = Written { parts: 0, items: 0 };
    let mut buffer = Vec::with_capacity(PART_BYTES + 64 * 1024);
    let mut failure = None;
    let flush = |buffer: &mut Vec<u8>, written: &mut Written| -> Result<(), StoreError> {
        store.put(&part_key(written.parts), buffer)?;
        written.parts += 1;
        buffer.clear();
        Ok(())
    };
    let range = (Bound::Included(&start[..]), Bound::Excluded(&end[..]));
    let scanned = snapshot.scan(range, false, &mut |_, value| {
        let line = decode_item(value)
            .map_err(|error| StoreError(format!("undecodable item in {}: {error}", meta.name)))
            .map(|item| item_line(&item));
        let outcome = line.and_then(|line| {
            buffer.extend_from_slice(line.as_bytes());
            buffer.push(b'\n');
            written.items += 1;
            if buffer.len() >= PART_BYTES {
                flush(&mut buffer, &mut written)?;
            }
            Ok(())
        });
        failure = outcome.err();
        failure.is_none()
    });
    scanned.map_err(|error| StoreError(error.to_string()))?;
    if let Some(error) = failure {
        return Err(error);
    }
    if !buffer.is_empty() || written.parts == 0 {
        flush(&mut buffer, &mut written)?;
    }
    Ok(written)
}

/// Writes a backup's image from its snapshot on a thread of its own, then marks the backup
/// AVAILABLE; a backup whose image cannot be written is removed (and the failure logged). While
/// it writes, a second thread renews the record's heartbeat, so that a backup whose server died
/// can be told from one still being written (`super::load_record`).
pub(crate) fn spawn_writer(
    store: Arc<dyn BackupStore>,
    snapshot: Box<dyn Snapshot>,
    mut record: BackupRecord,
    id: String,
) {
    let spawned = std::thread::Builder::new()
        .name("haven-backup".into())
        .spawn(move || {
            let written = std::thread::scope(|scope| {
                let (done, stopped) = mpsc::channel::<()>();
                let (alive_store, alive_record) = (&*store, &record);
                scope.spawn(move || keep_alive(alive_store, alive_record, stopped));
                let written = write(&*snapshot, &record.table, &*store, |part| {
                    super::part_key(&id, part)
                });
                drop(done);
                written
            });
            drop(snapshot);
            let outcome = written.and_then(|written| {
                record.parts = written.parts;
                record.item_count = written.items;
                record.status = "AVAILABLE".into();
                super::save_record(&*store, &record)
            });
            if let Err(error) = outcome {
                tracing::error!(backup = %record.arn, %error, "backup failed; removing it");
                if let Err(error) = super::delete_image(&*store, &record) {
                    tracing::error!(backup = %record.arn, %error, "cannot remove a failed backup");
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start a backup writer");
    }
}

/// Saves `record` with a new heartbeat every [`super::HEARTBEAT_SECS`] until `stopped` says the
/// image is written (the writer then saves the final record: this thread has ended by then).
fn keep_alive(store: &dyn BackupStore, record: &BackupRecord, stopped: mpsc::Receiver<()>) {
    let every = Duration::from_secs_f64(super::HEARTBEAT_SECS);
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
        let mut alive = record.clone();
        alive.heartbeat = crate::streams::now_ms() as f64 / 1000.0;
        if let Err(error) = super::save_record(store, &alive) {
            tracing::warn!(backup = %record.arn, %error, "cannot renew a backup's heartbeat");
        }
    }
}

/// One item as a line of a DYNAMODB_JSON export.
pub(crate) fn item_line(item: &Item) -> String {
    serde_json::json!({ "Item": crate::wire::item_to_json(item) }).to_string()
}

/// The items of the part stored under `key` (an error if it is missing).
pub(crate) fn read_part(store: &dyn BackupStore, key: &str) -> Result<Vec<Item>, String> {
    let bytes = store.get(key).map_err(|e| e.to_string())?;
    read_items(&bytes.ok_or_else(|| format!("{key} is missing"))?)
}

/// The items of one part; a line that is not an item is an error naming its line number.
pub(crate) fn read_items(bytes: &[u8]) -> Result<Vec<Item>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| parse_line(line).map_err(|e| format!("line {}: {e}", number + 1)))
        .collect()
}

fn parse_line(line: &str) -> Result<Item, String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let item = value.get("Item").ok_or("no Item member")?;
    crate::wire::parse_item(item).map_err(|e| e.message().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_model::AttributeValue;

    #[test]
    fn lines_round_trip_and_bad_lines_are_named() {
        let item: Item = [
            ("pk".to_string(), AttributeValue::S("a".into())),
            ("n".to_string(), AttributeValue::N("1.5".parse().unwrap())),
        ]
        .into_iter()
        .collect();
        let part = format!("{}\n{}\n", item_line(&item), item_line(&item));
        assert_eq!(
            read_items(part.as_bytes()).unwrap(),
            vec![item.clone(), item]
        );
        let error = read_items(b"{\"Item\":{\"pk\":{\"S\":\"a\"}}}\n{\"Nope\":1}\n").unwrap_err();
        assert!(error.starts_with("line 2:"), "{error}");
    }
}
