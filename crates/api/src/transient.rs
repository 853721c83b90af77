//! Transient table statuses (`--transient-status-ms`, DynamoDB Local's `-delayTransientStatuses`):
//! a new table is CREATING, an updated one UPDATING (its new or deleted global index CREATING or
//! DELETING) and a deleted one DELETING for the configured while, as on the real service, so that
//! clients' waiters and their "resource in use" handling are exercised. Zero (the default) keeps
//! every table ACTIVE and a deleted one gone at once.
//!
//! Every status is derived from timestamps held in storage, never from a timer: a table's
//! `created` and `updated` times in its metadata, and for a deleted table a tombstone written in
//! DeleteTable's own batch. So a status survives a restart and reads the same on every node
//! sharing one engine; the only background work is an index worker that waits for its index's
//! window to pass before it finishes the index (`crate::indexes`).

use std::ops::Bound;
use std::time::Duration;

use haven_storage::{Engine, Snapshot, StorageError, WriteBatch};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::TableMeta;
use crate::error::DynamoError;

/// `SYSTEM | "deleting/" | name` → [`Tombstone`]: a table deleted while transient statuses last.
const PREFIX: &[u8] = b"\x03deleting/";
/// Most tombstones one pass visits (expired ones are removed by each DeleteTable, so only the
/// tables deleted within one window remain): a bound on a request's work.
const MAX_VISITED: usize = 1000;

/// What DescribeTable answers for a deleted table until `until` (seconds since the epoch).
#[derive(Serialize, Deserialize)]
struct Tombstone {
    until: f64,
    /// The TableDescription DeleteTable answered (TableStatus DELETING).
    table: Value,
}

fn window(setting: Duration) -> f64 {
    setting.as_secs_f64()
}

/// The table's status at `now`: CREATING within the window after its creation (and while a restore
/// or an import fills it), UPDATING within the window after its last UpdateTable that changes it,
/// otherwise ACTIVE.
pub(crate) fn table_status(meta: &TableMeta, setting: Duration, now: f64) -> &'static str {
    if now < meta.created + window(setting) || crate::backup::restoring(meta) {
        "CREATING"
    } else if meta.updated.is_some_and(|at| now < at + window(setting)) {
        "UPDATING"
    } else {
        "ACTIVE"
    }
}

/// ResourceInUseException for a change (UpdateTable, DeleteTable) to a table that is not ACTIVE,
/// with DynamoDB's wording.
pub(crate) fn refuse_unless_active(
    meta: &TableMeta,
    setting: Duration,
    now: f64,
) -> Result<(), DynamoError> {
    let doing = match table_status(meta, setting, now) {
        "CREATING" => "created",
        "UPDATING" => "updated",
        _ => return Ok(()),
    };
    Err(DynamoError::ResourceInUse(format!(
        "Attempt to change a resource which is still in use: Table is being {doing}: {}",
        meta.name
    )))
}

/// How much longer the table's last update stays UPDATING (its new index CREATING, its deleted
/// one DELETING); None once it is over.
pub(crate) fn update_remaining(meta: &TableMeta, setting: Duration, now: f64) -> Option<Duration> {
    let left = meta.updated? + window(setting) - now;
    (left > 0.0).then(|| Duration::from_secs_f64(left))
}

fn key(name: &str) -> Vec<u8> {
    [PREFIX, name.as_bytes()].concat()
}

fn prefix_range() -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let mut end = PREFIX.to_vec();
    *end.last_mut().expect("a non-empty prefix") += 1;
    (Bound::Included(PREFIX.to_vec()), Bound::Excluded(end))
}

/// Visits the stored tombstones (name, tombstone), at most [`MAX_VISITED`].
fn visit(
    snapshot: &dyn Snapshot,
    visit: &mut dyn FnMut(String, Tombstone),
) -> Result<(), StorageError> {
    let (start, end) = prefix_range();
    let range = (
        start.as_ref().map(Vec::as_slice),
        end.as_ref().map(Vec::as_slice),
    );
    let mut visited = 0;
    snapshot.scan(range, false, &mut |key, value| {
        visited += 1;
        if let Ok(tombstone) = serde_json::from_slice(value) {
            visit(
                String::from_utf8_lossy(&key[PREFIX.len()..]).into_owned(),
                tombstone,
            );
        }
        visited < MAX_VISITED
    })
}

/// Stages, in DeleteTable's batch, the tombstone that keeps the table DELETING until `now` plus
/// the window (the TableDescription DeleteTable answers), and removes expired tombstones.
/// Nothing when the window is zero.
pub(crate) fn bury(
    batch: &mut WriteBatch,
    engine: &dyn Engine,
    description: &Value,
    setting: Duration,
    now: f64,
) -> Result<(), StorageError> {
    if setting.is_zero() {
        return Ok(());
    }
    visit(&*engine.snapshot()?, &mut |name, tombstone| {
        if tombstone.until <= now {
            batch.delete(key(&name));
        }
    })?;
    let name = description["TableName"].as_str().unwrap_or_default();
    let tombstone = Tombstone {
        until: now + window(setting),
        table: description.clone(),
    };
    let bytes = serde_json::to_vec(&tombstone).expect("a tombstone serialises");
    batch.put(key(name), bytes);
    Ok(())
}

/// The TableDescription (DELETING) of `name` if it was deleted less than a window ago (never with
/// a zero window).
pub(crate) fn deleting(
    engine: &dyn Engine,
    name: &str,
    setting: Duration,
    now: f64,
) -> Result<Option<Value>, StorageError> {
    if setting.is_zero() {
        return Ok(None);
    }
    let Some(bytes) = engine.snapshot()?.get(&key(name))? else {
        return Ok(None);
    };
    let tombstone: Option<Tombstone> = serde_json::from_slice(&bytes).ok();
    Ok(tombstone
        .filter(|tombstone| now < tombstone.until)
        .map(|tombstone| tombstone.table))
}

/// The names of the tables still DELETING (ListTables names them until their deletion is over).
pub(crate) fn deleting_names(
    engine: &dyn Engine,
    setting: Duration,
    now: f64,
) -> Result<Vec<String>, StorageError> {
    let mut names = Vec::new();
    if setting.is_zero() {
        return Ok(names);
    }
    visit(&*engine.snapshot()?, &mut |name, tombstone| {
        if now < tombstone.until {
            names.push(name);
        }
    })?;
    Ok(names)
}

/// ResourceInUseException for CreateTable of a name whose table is still DELETING.
pub(crate) fn refuse_if_deleting(
    engine: &dyn Engine,
    name: &str,
    setting: Duration,
    now: f64,
) -> Result<(), DynamoError> {
    match deleting(engine, name, setting, now)? {
        Some(_) => Err(DynamoError::ResourceInUse(format!(
            "Attempt to change a resource which is still in use: Table is being deleted: {name}"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(created: f64, updated: Option<f64>) -> TableMeta {
        let mut meta: TableMeta = serde_json::from_value(serde_json::json!({
            "id": 1, "name": "tab", "table_uuid": "u", "arn": "a", "created": created,
            "attribute_definitions": [], "key_schema": [], "billing_mode": "PROVISIONED",
            "pay_per_request_since": null, "throughput": {"read_capacity_units": 1,
            "write_capacity_units": 1, "last_increase": null, "last_decrease": null,
            "decreases_today": 0}, "tags": [], "time_to_live": null,
            "deletion_protection": false, "table_class": null
        }))
        .unwrap();
        meta.updated = updated;
        meta
    }

    #[test]
    fn statuses_follow_the_stored_times() {
        let second = Duration::from_secs(1);
        assert_eq!(table_status(&table(100.0, None), second, 100.5), "CREATING");
        assert_eq!(table_status(&table(100.0, None), second, 101.0), "ACTIVE");
        let updated = table(100.0, Some(200.0));
        assert_eq!(table_status(&updated, second, 200.9), "UPDATING");
        assert_eq!(table_status(&updated, second, 201.0), "ACTIVE");
        assert_eq!(table_status(&updated, Duration::ZERO, 200.0), "ACTIVE");
        assert_eq!(
            update_remaining(&updated, second, 200.25),
            Some(Duration::from_millis(750))
        );
        assert_eq!(update_remaining(&updated, second, 201.5), None);
        let refused = refuse_unless_active(&updated, second, 200.5).unwrap_err();
        assert_eq!(
            refused.message().unwrap(),
            "Attempt to change a resource which is still in use: Table is being updated: tab"
        );
    }

    fn bury_at(engine: &dyn Engine, name: &str, now: f64) {
        let mut batch = WriteBatch::new();
        let description = serde_json::json!({"TableName": name, "TableStatus": "DELETING"});
        bury(
            &mut batch,
            engine,
            &description,
            Duration::from_secs(1),
            now,
        )
        .unwrap();
        engine.commit(batch).wait().unwrap();
    }

    #[test]
    fn tombstones_last_a_window_and_the_next_deletion_removes_expired_ones() {
        let engine = haven_storage::RedbEngine::in_memory().unwrap();
        let second = Duration::from_secs(1);
        bury_at(&engine, "old", 100.0);
        bury_at(&engine, "new", 100.5);
        assert_eq!(
            deleting_names(&engine, second, 100.9).unwrap(),
            ["new", "old"]
        );
        let described = deleting(&engine, "old", second, 100.9).unwrap().unwrap();
        assert_eq!(described["TableStatus"], "DELETING");
        assert_eq!(deleting_names(&engine, second, 101.2).unwrap(), ["new"]);
        assert!(deleting(&engine, "old", second, 101.2).unwrap().is_none());
        assert!(
            deleting(&engine, "new", Duration::ZERO, 100.9)
                .unwrap()
                .is_none()
        );
        let refused = refuse_if_deleting(&engine, "new", second, 101.2).unwrap_err();
        assert_eq!(
            refused.message().unwrap(),
            "Attempt to change a resource which is still in use: Table is being deleted: new"
        );
        bury_at(&engine, "third", 101.2);
        let mut stored = Vec::new();
        visit(&*engine.snapshot().unwrap(), &mut |name, _| {
            stored.push(name)
        })
        .unwrap();
        assert_eq!(stored, ["new", "third"], "the expired tombstone is gone");
    }
}
