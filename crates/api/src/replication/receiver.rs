//! `ReplicateChanges`: a peer region's shipper hands over the current state of changed items;
//! each is applied if its version beats the local one (last writer wins), through the ordinary
//! write path, and logged as a replicated change.

use base64::Engine as _;
use haven_model::Item;
use haven_model::item_codec::decode_item;
use haven_storage::{CommitError, WriteBatch};
use serde::Deserialize;
use serde_json::{Value, json};

use super::version::{Stamp, Version, adopt_remote, read_stamp, stamp_key_of_suffix};
use super::{GlobalTable, Replica};
use crate::Service;
use crate::catalog::{AttributeDefinition, KeySchemaElement, TableMeta};
use crate::error::DynamoError;
use crate::items::{read_item, stage_item_write};
use crate::retry::Retries;

/// Changes one request may carry.
pub(crate) const MAX_CHANGES: usize = 1000;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ReplicateChangesInput {
    table_name: String,
    source_region: String,
    /// Set while the sender fills a new replica: only then is a missing table created (a
    /// replica deleted here is not brought back by its peers' later changes).
    #[serde(default)]
    fill: bool,
    table: TableDefinition,
    changes: Vec<Change>,
}

/// What a region needs to create its replica of the table.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TableDefinition {
    attribute_definitions: Vec<AttributeDefinition>,
    key_schema: Vec<KeySchemaElement>,
    /// Every region holding the table, the sender's included.
    regions: Vec<String>,
}

/// One item's state: its key (without the table prefix), the item (absent: deleted), the version.
#[derive(Deserialize)]
pub(crate) struct Change {
    #[serde(rename = "K")]
    key: String,
    #[serde(rename = "I")]
    item: Option<String>,
    #[serde(rename = "T")]
    timestamp_ms: u64,
    #[serde(rename = "R")]
    region: String,
}

fn invalid(what: &str) -> DynamoError {
    DynamoError::validation(format!("Invalid replication request: {what}"))
}

pub(crate) async fn replicate_changes(
    service: &Service,
    input: ReplicateChangesInput,
) -> Result<Value, DynamoError> {
    if input.changes.len() > MAX_CHANGES {
        return Err(invalid("too many changes"));
    }
    let mut meta = replica_table(service, &input).await?;
    let changes = decode_changes(&input.changes)?;
    // All changes in one batch, so that one commit (one sync) carries them.
    let mut retries = Retries::new("replicated batch");
    loop {
        let snapshot = service.engine.snapshot()?;
        let mut batch = WriteBatch::new();
        let mut applied = 0;
        for change in &changes {
            applied += stage_change(service, &*snapshot, &meta, change, &mut batch)? as usize;
        }
        drop(snapshot);
        match service.engine.commit(batch).await {
            Ok(()) => return Ok(json!({ "Applied": applied, "Received": changes.len() })),
            Err(CommitError::Conflict) => {
                retries.conflict().await?;
                meta = crate::items::current_meta(service, &meta)?;
            }
            Err(CommitError::Storage(error)) => return Err(error.into()),
        }
    }
}

/// One change, decoded: the item key without the table prefix, the item (None: deleted) and the
/// stamp to give it.
struct Decoded {
    suffix: Vec<u8>,
    new: Option<Item>,
    stamp: Stamp,
}

/// Decodes a request's changes; a key named twice is refused (its two writes would expect each
/// other's state and never commit).
fn decode_changes(changes: &[Change]) -> Result<Vec<Decoded>, DynamoError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut seen = std::collections::BTreeSet::new();
    changes
        .iter()
        .map(|change| {
            let suffix = b64.decode(&change.key).map_err(|_| invalid("bad key"))?;
            if !seen.insert(suffix.clone()) {
                return Err(invalid("a key appears twice"));
            }
            let new = change
                .item
                .as_ref()
                .map(|item| {
                    let bytes = b64.decode(item).map_err(|_| invalid("bad item"))?;
                    decode_item(&bytes).map_err(|_| invalid("undecodable item"))
                })
                .transpose()?;
            let stamp = Stamp {
                version: Version {
                    timestamp_ms: change.timestamp_ms,
                    region: change.region.clone(),
                },
                deleted: new.is_none(),
            };
            Ok(Decoded { suffix, new, stamp })
        })
        .collect()
}

/// The local replica of the table, created on the first request of a new replica.
async fn replica_table(
    service: &Service,
    input: &ReplicateChangesInput,
) -> Result<std::sync::Arc<TableMeta>, DynamoError> {
    if let Some(meta) = service.catalog.get(&input.table_name)? {
        return match &meta.global {
            Some(global)
                if global
                    .replicas
                    .iter()
                    .any(|r| r.region == input.source_region) =>
            {
                Ok(meta)
            }
            _ => Err(DynamoError::ResourceInUse(format!(
                "Table {} exists in region {} and is not a replica of region {}",
                input.table_name, service.config.region, input.source_region
            ))),
        };
    }
    if !input.fill {
        return Err(DynamoError::ResourceNotFound(format!(
            "Requested resource not found: Table: {} not found",
            input.table_name
        )));
    }
    let definition = &input.table;
    let create = json!({
        "TableName": input.table_name,
        "AttributeDefinitions": definition.attribute_definitions,
        "KeySchema": definition.key_schema,
        "BillingMode": "PAY_PER_REQUEST",
    });
    Box::pin(service.call("CreateTable", create)).await?;
    let replicas = definition
        .regions
        .iter()
        .filter(|region| **region != service.config.region)
        .map(|region| Replica {
            region: region.clone(),
            status: "ACTIVE".into(),
        })
        .collect();
    let global = GlobalTable {
        region: service.config.region.clone(),
        replicas,
        legacy_since_ms: None,
    };
    super::ops::set_global(service, &input.table_name, Some(global)).await?;
    crate::items::table(service, &input.table_name)
}

/// Stages one change if it is newer than what the item holds (the item and its stamp, as read
/// from `snapshot`, are expected unchanged at commit); true if it was.
fn stage_change(
    service: &Service,
    snapshot: &dyn haven_storage::Snapshot,
    meta: &TableMeta,
    change: &Decoded,
    batch: &mut WriteBatch,
) -> Result<bool, DynamoError> {
    let stamp_key = stamp_key_of_suffix(meta.id, &change.suffix);
    let mut storage_key = meta.item_prefix();
    storage_key.extend_from_slice(&change.suffix);
    let (stamp_bytes, local) = read_stamp(snapshot, &stamp_key)?;
    if local.is_some_and(|local| local.version >= change.stamp.version) {
        return Ok(false);
    }
    let new = change.new.as_ref();
    let current = current_item(snapshot, meta, &storage_key, new)?;
    let mut part = WriteBatch::new();
    if current.is_none() && new.is_none() {
        // Nothing to delete: only the tombstone, so that an older put arriving later is refused.
        part.expect(storage_key, None);
    } else {
        let key = key_of(meta, current.as_ref(), new);
        if key_mismatch(meta, &storage_key, &key) {
            return Err(invalid("key does not match item"));
        }
        let limit = service.config.item_collection_limit;
        stage_item_write(
            snapshot,
            meta,
            crate::items::ItemKey::new(meta, &key),
            current.as_ref(),
            new,
            &mut part,
            limit,
        )?;
    }
    adopt_remote(&mut part, &stamp_key, stamp_bytes, &change.stamp);
    batch.expectations.extend(part.expectations);
    batch.ops.extend(part.ops);
    Ok(true)
}

/// The item now stored at `storage_key`.
fn current_item(
    snapshot: &dyn haven_storage::Snapshot,
    meta: &TableMeta,
    storage_key: &[u8],
    new: Option<&Item>,
) -> Result<Option<(Vec<u8>, Item)>, DynamoError> {
    match new {
        Some(item) => read_item(snapshot, meta, &meta.keys().project_key(item)),
        None => {
            let Some(bytes) = snapshot.get(storage_key)? else {
                return Ok(None);
            };
            let item = decode_item(&bytes).map_err(|_| DynamoError::InternalServerError)?;
            Ok(Some((bytes, item)))
        }
    }
}

/// The key attributes of the item the change writes or deletes.
fn key_of(meta: &TableMeta, current: Option<&(Vec<u8>, Item)>, new: Option<&Item>) -> Item {
    let image = new.or(current.map(|(_, item)| item)).expect("one image");
    meta.keys().project_key(image)
}

fn key_mismatch(meta: &TableMeta, storage_key: &[u8], key: &Item) -> bool {
    crate::items::validate_key(meta, key).is_err()
        || meta.keys().storage_key(&meta.item_prefix(), key) != storage_key
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use base64::Engine as _;
    use haven_model::item_codec::encode_item;
    use haven_model::{AttributeValue, Item};
    use haven_storage::RedbEngine;
    use serde_json::{Value, json};

    use crate::streams::now_ms;
    use crate::{Service, ServiceConfig};

    /// The region whose replica this service (us-east-1, the default) holds.
    const PEER: &str = "eu-west-1";

    /// A request from [`PEER`] for table `items`.
    fn request(fill: bool, changes: Vec<Value>) -> Value {
        json!({
            "TableName": "items",
            "SourceRegion": PEER,
            "Fill": fill,
            "Table": {
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "Regions": [PEER, "us-east-1"],
            },
            "Changes": changes,
        })
    }

    /// A region holding a replica of [`PEER`]'s table `items`, as its first fill batch makes it.
    async fn replica() -> Service {
        let engine = Arc::new(RedbEngine::in_memory().unwrap());
        let service = Service::new(engine, ServiceConfig::default()).unwrap();
        service
            .call("ReplicateChanges", request(true, Vec::new()))
            .await
            .unwrap();
        service
    }

    /// [`PEER`]'s item `{pk: k, v}`, stamped `time`.
    fn peer_put(service: &Service, v: &str, time: u64) -> Value {
        let meta = service.catalog.get("items").unwrap().unwrap();
        let s = |text: &str| AttributeValue::S(text.into());
        let item: Item = [("pk".to_string(), s("k")), ("v".to_string(), s(v))].into();
        let prefix = meta.item_prefix();
        let key = meta
            .keys()
            .storage_key(&prefix, &meta.keys().project_key(&item));
        let b64 = base64::engine::general_purpose::STANDARD;
        json!({
            "K": b64.encode(&key[prefix.len()..]),
            "I": b64.encode(encode_item(&item)),
            "T": time,
            "R": PEER,
        })
    }

    /// How many changes of a request carrying only `change` this region applied (0 or 1).
    async fn applied(service: &Service, change: Value) -> u64 {
        let answer = service.call("ReplicateChanges", request(false, vec![change]));
        answer.await.unwrap()["Applied"].as_u64().unwrap()
    }

    async fn call(service: &Service, operation: &str, item: Value) {
        let member = if operation == "PutItem" {
            "Item"
        } else {
            "Key"
        };
        let request = json!({"TableName": "items", member: item});
        service.call(operation, request).await.unwrap();
    }

    /// A local write that leaves the item as it was makes no change log record, so the peer never
    /// hears of it: it must not outrank the peer's earlier writes here either, or the two regions
    /// would hold different items for ever. And a remote state equal to the local item still
    /// brings its stamp.
    #[tokio::test]
    async fn a_write_that_changes_nothing_does_not_outrank_a_peers_earlier_write() {
        let service = replica().await;
        let now = now_ms();
        call(&service, "DeleteItem", json!({"pk": {"S": "k"}})).await;
        let put = peer_put(&service, "peer", now - 1000);
        assert_eq!(applied(&service, put).await, 1, "after a delete of nothing");

        let same = json!({"pk": {"S": "k"}, "v": {"S": "peer"}});
        call(&service, "PutItem", same).await;
        let put = peer_put(&service, "later", now - 500);
        assert_eq!(
            applied(&service, put).await,
            1,
            "after a put of the same item"
        );

        let newer_stamp = peer_put(&service, "later", now - 100);
        assert_eq!(applied(&service, newer_stamp).await, 1, "the same item");
        let stale = peer_put(&service, "stale", now - 200);
        assert_eq!(
            applied(&service, stale).await,
            0,
            "older than the stamp taken"
        );
        let item = service.call(
            "GetItem",
            json!({"TableName": "items", "Key": {"pk": {"S": "k"}}}),
        );
        assert_eq!(item.await.unwrap()["Item"]["v"], json!({"S": "later"}));
    }
}
