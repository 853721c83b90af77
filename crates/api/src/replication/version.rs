//! Item versions of global tables: the stamp kept beside each item (and after its deletion),
//! how a local write stamps it and how a replicated write takes the remote one.
//!
//! A stamp lives at `REPLICATION | table id | 'v' | item key` (the item's storage key without its
//! table prefix), written in the same batch as the item, and expected by the next writer so that
//! stamp and item never disagree.

use haven_storage::{Origin, Snapshot, WriteBatch, WriteOp};

use crate::catalog::{TableMeta, prefix};
use crate::error::DynamoError;
use crate::streams::now_ms;

/// The version of a write: compared by time, then region name (the deterministic tie-break).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version {
    pub timestamp_ms: u64,
    pub region: String,
}

/// What a key's last write left: its version and whether it deleted the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub version: Version,
    pub deleted: bool,
}

impl Stamp {
    /// Time (u64 BE), a deleted flag (one byte), then the region's name.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = self.version.timestamp_ms.to_be_bytes().to_vec();
        bytes.push(self.deleted as u8);
        bytes.extend_from_slice(self.version.region.as_bytes());
        bytes
    }

    /// Reads [`Stamp::encode`]; None for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Stamp> {
        let (time, rest) = bytes.split_at_checked(8)?;
        let (deleted, region) = rest.split_first()?;
        Some(Stamp {
            version: Version {
                timestamp_ms: u64::from_be_bytes(time.try_into().ok()?),
                region: String::from_utf8(region.to_vec()).ok()?,
            },
            deleted: *deleted != 0,
        })
    }
}

/// The first key of `table`'s replication state (stamps and cursors).
pub(crate) fn table_start(table: u64) -> Vec<u8> {
    let mut key = vec![prefix::REPLICATION];
    key.extend_from_slice(&table.to_be_bytes());
    key
}

/// The keys of `table`'s stamps: `REPLICATION | table id | 'v' | ...`.
pub(crate) fn stamp_range(table: u64) -> (Vec<u8>, Vec<u8>) {
    let mut start = table_start(table);
    let mut end = start.clone();
    start.push(b'v');
    end.push(b'v' + 1);
    (start, end)
}

/// The key of the stamp of the item at `storage_key` in `meta`.
pub(crate) fn stamp_key(meta: &TableMeta, storage_key: &[u8]) -> Vec<u8> {
    let suffix = storage_key
        .get(meta.item_prefix().len()..)
        .unwrap_or_default();
    stamp_key_of_suffix(meta.id, suffix)
}

/// The key of the stamp of the item whose key without the table prefix is `suffix`.
pub(crate) fn stamp_key_of_suffix(table: u64, suffix: &[u8]) -> Vec<u8> {
    let mut key = table_start(table);
    key.push(b'v');
    key.extend_from_slice(suffix);
    key
}

/// Reads the stamp of an item (None: written before the table was global, or never).
pub(crate) fn read_stamp(
    snapshot: &dyn Snapshot,
    key: &[u8],
) -> Result<(Option<Vec<u8>>, Option<Stamp>), DynamoError> {
    let bytes = snapshot.get(key)?;
    let stamp = bytes.as_deref().and_then(Stamp::decode);
    Ok((bytes, stamp))
}

/// Stages the stamp of a local write to an item of a global table (nothing for other tables):
/// this region, and a time above both the clock and the item's previous stamp.
///
/// Called only for a write that appended a change log record: one that leaves the item as it was
/// (a delete of a missing item, a put of the same one) appends none (DynamoDB writes no stream
/// record for it), so nothing would ship a new stamp; kept here only, it would outrank the peers'
/// concurrent writes in this region but not in theirs, and the regions would never agree.
pub(crate) fn stage_local(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    storage_key: &[u8],
    deleted: bool,
    batch: &mut WriteBatch,
) -> Result<(), DynamoError> {
    let Some(global) = &meta.global else {
        return Ok(());
    };
    let key = stamp_key(meta, storage_key);
    let (bytes, previous) = read_stamp(snapshot, &key)?;
    let floor = previous.map_or(0, |p| p.version.timestamp_ms + 1);
    let stamp = Stamp {
        version: Version {
            timestamp_ms: now_ms().max(floor),
            region: global.region.clone(),
        },
        deleted,
    };
    batch.expect(key.clone(), bytes).put(key, stamp.encode());
    Ok(())
}

/// Turns a batch staged as a local write into the replica of a remote one: the item's stamp
/// becomes `stamp`, expecting the one read (`stored`), whether or not the local write staged a
/// stamp (one that leaves the item as it was stages none), and its change log record is marked
/// as replicated (shown by Streams, never shipped back).
pub(crate) fn adopt_remote(
    batch: &mut WriteBatch,
    stamp_key: &[u8],
    stored: Option<Vec<u8>>,
    stamp: &Stamp,
) {
    batch
        .ops
        .retain(|op| !matches!(op, WriteOp::Put(key, _) if key == stamp_key));
    for op in &mut batch.ops {
        if let WriteOp::AppendLog(record) = op {
            record.origin = Origin::Replication;
        }
    }
    if !batch.expects(stamp_key, stored.as_deref()) {
        batch.expect(stamp_key.to_vec(), stored);
    }
    batch.put(stamp_key.to_vec(), stamp.encode());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_order_by_time_then_region() {
        let stamp = |t, r: &str| Stamp {
            version: Version {
                timestamp_ms: t,
                region: r.into(),
            },
            deleted: t % 2 == 0,
        };
        for s in [stamp(1, "a"), stamp(2, ""), stamp(u64::MAX, "eu-west-1")] {
            assert_eq!(Stamp::decode(&s.encode()), Some(s));
        }
        assert_eq!(Stamp::decode(&[0; 7]), None);
        assert!(stamp(5, "a").version < stamp(5, "b").version);
        assert!(stamp(5, "z").version < stamp(6, "a").version);
    }
}
