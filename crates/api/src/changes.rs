//! What every item write stages besides the item, its counters and its index entries: the change
//! log record (while the table's log has readers, [`TableMeta::log_readers`]) and the item's entry
//! in the expiry index (while time to live is enabled). `items::stage_item_write` calls [`stage`] for every write of
//! every path (PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems, and the TTL
//! worker's deletions), so no path can forget them; index backfill does not call it, because
//! copying an item into a new index changes no item.

use haven_model::{AttributeValue, Item};
use haven_storage::{LogRecord, Origin, WriteBatch};

use crate::catalog::TableMeta;

/// Stages the log record and the expiry index change of one item write: `current` is what the
/// item held (its stored bytes and value), `new` what it will hold (None deletes) and
/// `new_bytes` its encoding.
pub(crate) fn stage(
    meta: &TableMeta,
    storage_key: &[u8],
    current: Option<&(Vec<u8>, Item)>,
    new: Option<&Item>,
    new_bytes: Option<&Vec<u8>>,
    batch: &mut WriteBatch,
) {
    let old = current.map(|(_, item)| item);
    if meta.is_logged() && !unchanged(old, new) {
        batch.append_log(LogRecord {
            table: meta.id,
            key: storage_key.to_vec(),
            old: current.map(|(bytes, _)| bytes.clone()),
            new: new_bytes.cloned(),
            origin: Origin::User,
        });
    }
    crate::ttl::stage_expiry(meta, storage_key, old, new, batch);
}

/// A reader of a table's change log: while a table has one, every change of its items is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogReader {
    /// Its enabled DynamoDB stream (`crate::streams`).
    Stream,
    /// The shipper to its replicas in other regions (`crate::replication`).
    Replication,
    /// Point-in-time recovery (`crate::backup::pitr`).
    PointInTimeRecovery,
}

impl TableMeta {
    /// Who reads this table's change log now. Whether a write is logged is decided here and
    /// nowhere else, so a new reader (an export, the mirror's way back) adds itself to this list.
    pub(crate) fn log_readers(&self) -> impl Iterator<Item = LogReader> {
        [
            (
                LogReader::Stream,
                crate::streams::enabled_stream(self).is_some(),
            ),
            (LogReader::Replication, self.global.is_some()),
            (
                LogReader::PointInTimeRecovery,
                crate::backup::pitr::enabled(self),
            ),
        ]
        .into_iter()
        .filter_map(|(reader, reads)| reads.then_some(reader))
    }

    /// Whether this table's item writes append to the change log: while anyone reads it.
    pub(crate) fn is_logged(&self) -> bool {
        self.log_readers().next().is_some()
    }
}

/// DynamoDB writes no stream record for a write that leaves the item as it was (a put of the
/// same item, a delete of a missing one); sets compare without regard to order.
fn unchanged(old: Option<&Item>, new: Option<&Item>) -> bool {
    match (old, new) {
        (None, None) => true,
        (Some(old), Some(new)) => {
            old.len() == new.len()
                && old.iter().all(|(name, value)| {
                    new.get(name)
                        .is_some_and(|other| AttributeValue::same_value(value, other))
                })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn only_real_changes_count() {
        let s = |v: &str| AttributeValue::S(v.into());
        let set = |v: &[&str]| AttributeValue::Ss(v.iter().map(|m| m.to_string()).collect());
        let a = item(&[("pk", s("a")), ("tags", set(&["x", "y"]))]);
        let reordered = item(&[("pk", s("a")), ("tags", set(&["y", "x"]))]);
        let changed = item(&[("pk", s("a")), ("tags", set(&["x"]))]);
        assert!(unchanged(None, None));
        assert!(unchanged(Some(&a), Some(&reordered)));
        assert!(!unchanged(Some(&a), Some(&changed)));
        assert!(!unchanged(None, Some(&a)));
        assert!(!unchanged(Some(&a), None));
    }
}
