//! The change log under every item write path: one record per changed item (PutItem, UpdateItem,
//! DeleteItem, BatchWriteItem, TransactWriteItems), none for a write that changes nothing, none
//! for index backfill, none at all for a table without a stream, and only the images its readers
//! need.

use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use haven_api::{Service, ServiceConfig};
use haven_model::Item;
use haven_model::item_codec::decode_item;
use haven_storage::{Engine, LogEntry, RedbEngine};
use serde_json::{Value, json};

struct Fixture {
    engine: Arc<RedbEngine>,
    service: Service,
}

impl Fixture {
    fn new() -> Fixture {
        let engine = Arc::new(RedbEngine::in_memory().unwrap());
        let service = Service::new(engine.clone(), ServiceConfig::default()).unwrap();
        Fixture { engine, service }
    }

    async fn call(&self, operation: &str, request: Value) -> Value {
        self.service
            .call(operation, request)
            .await
            .unwrap_or_else(|e| panic!("{operation}: {e:?}"))
    }

    /// Creates table `name`, with a stream of `view` if given.
    async fn create(&self, name: &str, view: Option<&str>) {
        let mut request = json!({
            "TableName": name,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        });
        if let Some(view) = view {
            request["StreamSpecification"] = json!({"StreamEnabled": true, "StreamViewType": view});
        }
        self.call("CreateTable", request).await;
    }

    async fn put(&self, table: &str, pk: &str, v: i64) {
        let item = json!({"pk": {"S": pk}, "v": {"N": v.to_string()}});
        self.call("PutItem", json!({"TableName": table, "Item": item}))
            .await;
    }

    /// The committed records of table id `table`, oldest first.
    fn entries(&self, table: u64) -> Vec<LogEntry> {
        let mut entries: Vec<LogEntry> = Vec::new();
        self.engine
            .snapshot()
            .unwrap()
            .scan_log(
                table,
                (Bound::Unbounded, Bound::Unbounded),
                false,
                &mut |entry| {
                    entries.push(entry);
                    true
                },
            )
            .unwrap();
        entries
    }

    /// The log of table id `table` as (pk, old v, new v) triples.
    fn log(&self, table: u64) -> Vec<(String, Option<String>, Option<String>)> {
        let entries = self.entries(table);
        let v = |bytes: &Option<Vec<u8>>| -> (Option<String>, Option<String>) {
            let Some(bytes) = bytes else {
                return (None, None);
            };
            let item: Item = decode_item(bytes).unwrap();
            let text = |name: &str| {
                item.get(name).map(|value| match value {
                    haven_model::AttributeValue::S(s) => s.clone(),
                    haven_model::AttributeValue::N(n) => n.to_string(),
                    other => format!("{other:?}"),
                })
            };
            (text("pk"), text("v"))
        };
        entries
            .iter()
            .map(|entry| {
                let (old_pk, old) = v(&entry.record.old);
                let (new_pk, new) = v(&entry.record.new);
                (new_pk.or(old_pk).unwrap(), old, new)
            })
            .collect()
    }
}

fn n(v: i64) -> Option<String> {
    Some(v.to_string())
}

#[tokio::test]
async fn every_write_path_logs_each_changed_item_once() {
    let f = Fixture::new();
    f.create("streamed", Some("NEW_AND_OLD_IMAGES")).await;
    let table = "streamed";

    f.put(table, "a", 1).await;
    f.put(table, "a", 1).await; // unchanged: no record
    f.call(
        "UpdateItem",
        json!({"TableName": table, "Key": {"pk": {"S": "a"}},
               "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": {"N": "2"}}}),
    )
    .await;
    f.call(
        "UpdateItem",
        json!({"TableName": table, "Key": {"pk": {"S": "a"}},
               "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": {"N": "2"}}}),
    )
    .await; // unchanged
    f.call(
        "DeleteItem",
        json!({"TableName": table, "Key": {"pk": {"S": "a"}}}),
    )
    .await;
    f.call(
        "DeleteItem",
        json!({"TableName": table, "Key": {"pk": {"S": "a"}}}),
    )
    .await; // already gone
    let batch = json!({"RequestItems": {table: [
        {"PutRequest": {"Item": {"pk": {"S": "b"}, "v": {"N": "1"}}}},
        {"PutRequest": {"Item": {"pk": {"S": "c"}, "v": {"N": "1"}}}},
        {"DeleteRequest": {"Key": {"pk": {"S": "nothing"}}}},
    ]}});
    f.call("BatchWriteItem", batch).await;
    let transaction = json!({"TransactItems": [
        {"ConditionCheck": {"TableName": table, "Key": {"pk": {"S": "b"}},
                            "ConditionExpression": "attribute_exists(pk)"}},
        {"Update": {"TableName": table, "Key": {"pk": {"S": "c"}},
                    "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": {"N": "5"}}}},
        {"Put": {"TableName": table, "Item": {"pk": {"S": "d"}, "v": {"N": "1"}}}},
    ]});
    f.call("TransactWriteItems", transaction).await;
    // A refused write logs nothing.
    let refused = f
        .service
        .call(
            "PutItem",
            json!({"TableName": table, "Item": {"pk": {"S": "b"}, "v": {"N": "9"}},
                   "ConditionExpression": "attribute_not_exists(pk)"}),
        )
        .await;
    assert!(refused.is_err());

    let s = |v: &str| v.to_string();
    assert_eq!(
        f.log(1),
        [
            (s("a"), None, n(1)),
            (s("a"), n(1), n(2)),
            (s("a"), n(2), None),
            (s("b"), None, n(1)),
            (s("c"), None, n(1)),
            (s("c"), n(1), n(5)),
            (s("d"), None, n(1)),
        ]
    );
}

#[tokio::test]
async fn a_table_without_a_stream_logs_nothing_and_backfill_is_not_a_change() {
    let f = Fixture::new();
    f.create("plain", None).await;
    f.create("streamed", Some("NEW_AND_OLD_IMAGES")).await;
    for i in 0..5 {
        f.put("plain", &format!("p{i}"), i).await;
        f.put("streamed", &format!("s{i}"), i).await;
    }
    let index = json!({
        "TableName": "streamed",
        "AttributeDefinitions": [{"AttributeName": "v", "AttributeType": "N"}],
        "GlobalSecondaryIndexUpdates": [{"Create": {
            "IndexName": "by_v",
            "KeySchema": [{"AttributeName": "v", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"}}}],
    });
    f.call("UpdateTable", index).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let table = f
            .call("DescribeTable", json!({"TableName": "streamed"}))
            .await;
        if table["Table"]["GlobalSecondaryIndexes"][0]["IndexStatus"] == "ACTIVE" {
            break;
        }
        assert!(Instant::now() < deadline, "the index never became ACTIVE");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(f.log(1).is_empty(), "the table without a stream logged");
    assert_eq!(f.log(2).len(), 5, "backfilling the index logged changes");
}

// A record keeps whole only the images some reader of its table needs; of the others it keeps the
// item's key attributes, marked partial (docs/storage-format.md, "Who reads which image").
#[tokio::test]
async fn records_keep_only_the_images_their_readers_need() {
    let f = Fixture::new();
    let views = ["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"];
    for (id, view) in (1..).zip(views) {
        let table = view.to_lowercase();
        f.create(&table, Some(view)).await;
        f.put(&table, "a", 1).await;
        f.put(&table, "a", 2).await;
        f.call(
            "DeleteItem",
            json!({"TableName": table, "Key": {"pk": {"S": "a"}}}),
        )
        .await;
        let (old, new) = (view.contains("OLD"), view.contains("NEW"));
        let shown = |whole: bool, v: i64| if whole { n(v) } else { None };
        let s = |v: &str| v.to_string();
        assert_eq!(
            f.log(id),
            [
                (s("a"), None, shown(new, 1)),
                (s("a"), shown(old, 1), shown(new, 2)),
                (s("a"), shown(old, 2), None),
            ],
            "{view}"
        );
        let partial: Vec<(bool, bool)> = f
            .entries(id)
            .iter()
            .map(|entry| (entry.record.partial.old, entry.record.partial.new))
            .collect();
        assert_eq!(
            partial,
            [(false, !new), (!old, !new), (!old, false)],
            "{view}"
        );
    }
}
