//! Stream records as GetRecords returns them, built from change log entries.

use haven_model::item_codec::decode_item;
use haven_model::{Item, item_size};
use haven_storage::{LogEntry, Origin};
use serde_json::{Value, json};

use super::shards::sequence_number;
use crate::catalog::TableMeta;
use crate::changes::Images;
use crate::error::DynamoError;
use crate::wire::item_to_json;

/// One stream record and its SizeBytes (which the 1 MB page limit counts).
pub(crate) struct StreamRecord {
    pub json: Value,
    pub size: usize,
}

fn decode(table: &TableMeta, bytes: Option<&Vec<u8>>) -> Result<Option<Item>, DynamoError> {
    bytes
        .map(|bytes| {
            decode_item(bytes).map_err(|error| {
                tracing::error!(table = %table.name, %error, "undecodable item in the change log");
                DynamoError::InternalServerError
            })
        })
        .transpose()
}

/// A deterministic eventID (a UUID's shape): re-reading a record gives the same id, so that a
/// consumer can deduplicate.
fn event_id(table: &TableMeta, sequence: u64) -> String {
    let hash = xxhash_rust::xxh3::xxh3_128(format!("{}|{sequence}", table.table_uuid).as_bytes());
    let hex = format!("{hash:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The record of `entry` for a stream of `view_type`.
pub(crate) fn stream_record(
    table: &TableMeta,
    entry: &LogEntry,
    view_type: &str,
    region: &str,
) -> Result<StreamRecord, DynamoError> {
    let old = decode(table, entry.record.old.as_ref())?;
    let new = decode(table, entry.record.new.as_ref())?;
    let Some(image) = new.as_ref().or(old.as_ref()) else {
        tracing::error!(table = %table.name, "a change log record without images");
        return Err(DynamoError::InternalServerError);
    };
    let keys = table.keys().project_key(image);
    let mut size = item_size(&keys);
    let mut body = serde_json::Map::new();
    body.insert(
        "ApproximateCreationDateTime".into(),
        json!(entry.position.timestamp_ms / 1000),
    );
    body.insert("Keys".into(), item_to_json(&keys));
    // A partial image (only the keys: no reader needed it when the change was written, which
    // for this stream's records can only be a write racing the UpdateTable that enabled it) is
    // never shown as an image.
    let shown = Images::of_view(view_type);
    let partial = entry.record.partial;
    for (member, item, show) in [
        ("NewImage", &new, shown.new && !partial.new),
        ("OldImage", &old, shown.old && !partial.old),
    ] {
        if let Some(item) = item.as_ref().filter(|_| show) {
            size += item_size(item);
            body.insert(member.into(), item_to_json(item));
        }
    }
    body.insert(
        "SequenceNumber".into(),
        json!(sequence_number(entry.position)),
    );
    body.insert("SizeBytes".into(), json!(size));
    body.insert("StreamViewType".into(), json!(view_type));
    let event_name = match (&old, &new) {
        (None, _) => "INSERT",
        (Some(_), Some(_)) => "MODIFY",
        (Some(_), None) => "REMOVE",
    };
    let mut record = json!({
        "eventID": event_id(table, entry.position.sequence),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": Value::Object(body),
    });
    if entry.record.origin == Origin::Ttl {
        record["userIdentity"] =
            json!({ "PrincipalId": "dynamodb.amazonaws.com", "Type": "Service" });
    }
    Ok(StreamRecord { json: record, size })
}
