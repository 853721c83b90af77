//! What every item write stages besides the item, its counters and its index entries: the change
//! log record (while the table's log has readers, [`TableMeta::log_readers`]) and the item's entry
//! in the expiry index (while time to live is enabled). `items::stage_item_write` calls [`stage`] for every write of
//! every path (PutItem, UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems, and the TTL
//! worker's deletions), so no path can forget them; index backfill does not call it, because
//! copying an item into a new index changes no item.
//!
//! A record keeps whole only the images some reader needs ([`Images`]); of the others it keeps the
//! item's key attributes, marked partial, which still tell an insert from a change from a removal
//! and give a KEYS_ONLY stream its Keys. The log's bytes are what its appends cost, and the old
//! image is most of them when no reader wants it. The set of readers is part of what a write
//! stages, so `Catalog::update_batch` bumps the schema version whenever it changes: a node with
//! cached metadata cannot go on writing records without an image a new reader needs.

use haven_model::item_codec::encode_item;
use haven_model::{AttributeValue, Item};
use haven_storage::{LogRecord, Origin, Partial, WriteBatch};

use crate::catalog::TableMeta;

/// Stages the log record and the expiry index change of one item write: `current` is what the
/// item held (its stored bytes and value), `new` what it will hold (None deletes) and
/// `new_bytes` its encoding. True if it appended a log record.
pub(crate) fn stage(
    meta: &TableMeta,
    storage_key: &[u8],
    current: Option<&(Vec<u8>, Item)>,
    new: Option<&Item>,
    new_bytes: Option<&Vec<u8>>,
    batch: &mut WriteBatch,
) -> bool {
    let old = current.map(|(_, item)| item);
    let logged = meta.logged_images().filter(|_| !unchanged(old, new));
    if let Some(images) = logged {
        let mut keys = None;
        let mut image = |item: Option<&Item>, bytes: Option<&Vec<u8>>, whole: bool| match item {
            Some(item) if !whole => Some(
                keys.get_or_insert_with(|| encode_item(&meta.keys().project_key(item)))
                    .clone(),
            ),
            _ => bytes.cloned(),
        };
        batch.append_log(LogRecord {
            table: meta.id,
            key: storage_key.to_vec(),
            old: image(old, current.map(|(bytes, _)| bytes), images.old),
            new: image(new, new_bytes, images.new),
            origin: Origin::User,
            partial: Partial {
                old: old.is_some() && !images.old,
                new: new.is_some() && !images.new,
            },
        });
    }
    crate::ttl::stage_expiry(meta, storage_key, old, new, batch);
    logged.is_some()
}

/// The images of a change that a reader of the log needs whole (besides the key, which every
/// record carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Images {
    pub old: bool,
    pub new: bool,
}

impl Images {
    /// What a stream of `view_type` shows (KEYS_ONLY: neither).
    pub(crate) fn of_view(view_type: &str) -> Images {
        Images {
            old: matches!(view_type, "OLD_IMAGE" | "NEW_AND_OLD_IMAGES"),
            new: matches!(view_type, "NEW_IMAGE" | "NEW_AND_OLD_IMAGES"),
        }
    }

    fn or(self, other: Images) -> Images {
        Images {
            old: self.old || other.old,
            new: self.new || other.new,
        }
    }
}

/// A reader of a table's change log: while a table has one, every change of its items is logged,
/// with the images the readers need (docs/storage-format.md, "Who reads which image").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogReader {
    /// Its enabled DynamoDB stream (`crate::streams`), showing the images of its view type.
    Stream(Images),
    /// The shipper to its replicas in other regions (`crate::replication`): it ships the item as
    /// it is when shipped, but sizes its batches by the new images (so that one request stays
    /// bounded); it needs no old image.
    Replication,
    /// Point-in-time recovery (`crate::backup::pitr`): a restore replays new images, and an
    /// incremental export of NEW_AND_OLD_IMAGES (`crate::export`) shows old ones too.
    PointInTimeRecovery,
}

impl LogReader {
    fn images(self) -> Images {
        match self {
            LogReader::Stream(images) => images,
            LogReader::Replication => Images {
                old: false,
                new: true,
            },
            LogReader::PointInTimeRecovery => Images {
                old: true,
                new: true,
            },
        }
    }
}

impl TableMeta {
    /// Who reads this table's change log now. Whether a write is logged, and with which images, is
    /// decided here and nowhere else, so a new reader (an export, the mirror's way back) adds
    /// itself to this list.
    pub(crate) fn log_readers(&self) -> impl Iterator<Item = LogReader> {
        let stream = crate::streams::enabled_stream(self)
            .map(|stream| LogReader::Stream(Images::of_view(&stream.view_type)));
        let others = [
            (LogReader::Replication, self.global.is_some()),
            (
                LogReader::PointInTimeRecovery,
                crate::backup::pitr::enabled(self),
            ),
        ];
        stream.into_iter().chain(
            others
                .into_iter()
                .filter_map(|(reader, reads)| reads.then_some(reader)),
        )
    }

    /// The images this table's item writes log, or None when they append nothing (nobody reads
    /// the log).
    pub(crate) fn logged_images(&self) -> Option<Images> {
        self.log_readers().map(LogReader::images).reduce(Images::or)
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
