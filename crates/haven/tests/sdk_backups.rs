//! On-demand backups through the AWS SDK for Rust against a real `haven serve` with a directory
//! backup store and an S3 one (moto's S3 server, started here): every operation, status and error;
//! a restore with its indexes; backups that outlive the data directory and the server; and the round trip of a table backed up while 8 writers run,
//! checked against a model of each writer's sequence (HAVEN_BACKUP_ITEMS items, 10,000 by default;
//! the 100,000 with HAVEN_BACKUP_ITEMS=100000).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::DateTime;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BackupDescription, BackupStatus, BackupType, BillingMode,
    GlobalSecondaryIndex, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, PutRequest, ScalarAttributeType, TableDescription, TableStatus, WriteRequest,
};
use common::moto::Moto;
use common::{HavenServer, error_of};

type Item = HashMap<String, AttributeValue>;
/// An item's key: partition and sort key.
type Key = (String, i64);

const GSI: &str = "by_group";
const LSI: &str = "by_label";

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn element(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .unwrap()
}

fn definition(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .unwrap()
}

fn all() -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::All)
        .build()
}

fn global_index() -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(GSI)
        .key_schema(element("grp", KeyType::Hash))
        .key_schema(element("sk", KeyType::Range))
        .projection(all())
        .build()
        .unwrap()
}

/// A table keyed (pk S, sk N) with a global index on (grp, sk) and a local one on (pk, label).
async fn create_indexed_table(client: &Client, name: &str) {
    let local = LocalSecondaryIndex::builder()
        .index_name(LSI)
        .key_schema(element("pk", KeyType::Hash))
        .key_schema(element("label", KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .unwrap();
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(definition("pk", ScalarAttributeType::S))
        .attribute_definitions(definition("sk", ScalarAttributeType::N))
        .attribute_definitions(definition("grp", ScalarAttributeType::S))
        .attribute_definitions(definition("label", ScalarAttributeType::S))
        .key_schema(element("pk", KeyType::Hash))
        .key_schema(element("sk", KeyType::Range))
        .global_secondary_indexes(global_index())
        .local_secondary_indexes(local)
        .send()
        .await
        .expect("create table");
}

/// The item of key `(pk, sk)` at version `seq`: its index keys depend on both, so that index
/// entries move as versions change.
fn versioned(pk: &str, sk: i64, seq: i64) -> Item {
    HashMap::from([
        ("pk".to_string(), s(pk)),
        ("sk".to_string(), n(sk)),
        ("grp".to_string(), s(&format!("g{}", (sk + seq) % 7))),
        ("label".to_string(), s(&format!("l{seq:06}"))),
        ("seq".to_string(), n(seq)),
    ])
}

fn key_of(item: &Item) -> Key {
    let pk = item["pk"].as_s().unwrap().clone();
    let sk = item["sk"].as_n().unwrap().parse().unwrap();
    (pk, sk)
}

async fn put_all(client: &Client, table: &str, items: &[Item]) {
    for chunk in items.chunks(25) {
        let requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                let put = PutRequest::builder().set_item(Some(item.clone())).build();
                WriteRequest::builder().put_request(put.unwrap()).build()
            })
            .collect();
        let mut pending = Some(HashMap::from([(table.to_string(), requests)]));
        while let Some(requests) = pending.filter(|r| !r.is_empty()) {
            let answer = client
                .batch_write_item()
                .set_request_items(Some(requests))
                .send()
                .await
                .expect("batch write");
            pending = answer.unprocessed_items;
        }
    }
}

/// Every item of a table, by key (paged Scan).
async fn scan_all(client: &Client, table: &str) -> BTreeMap<Key, Item> {
    let items = common::scan_items(client, table).await;
    items
        .iter()
        .map(|item| (key_of(item), item.clone()))
        .collect()
}

/// The keys a Query of an index answers for one partition value, in the index's order.
async fn query_index(
    client: &Client,
    table: &str,
    index: &str,
    name: &str,
    value: &str,
) -> Vec<Key> {
    let mut keys = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .index_name(index)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", name)
            .expression_attribute_values(":v", s(value))
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("query index");
        keys.extend(page.items().iter().map(key_of));
        start = page.last_evaluated_key;
        if start.is_none() {
            return keys;
        }
    }
}

async fn describe_backup(client: &Client, arn: &str) -> BackupDescription {
    let answer = client.describe_backup().backup_arn(arn).send().await;
    answer.expect("describe backup").backup_description.unwrap()
}

async fn wait_available(client: &Client, arn: &str) -> BackupDescription {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let described = describe_backup(client, arn).await;
        let status = described.backup_details().unwrap().backup_status().clone();
        if status == BackupStatus::Available {
            return described;
        }
        assert_eq!(status, BackupStatus::Creating);
        assert!(Instant::now() < deadline, "backup {arn} still {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn describe_table(client: &Client, name: &str) -> TableDescription {
    let answer = client.describe_table().table_name(name).send().await;
    answer.expect("describe table").table.unwrap()
}

async fn wait_active(client: &Client, name: &str) -> TableDescription {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let table = describe_table(client, name).await;
        if table.table_status() == Some(&TableStatus::Active) {
            return table;
        }
        assert_eq!(table.table_status(), Some(&TableStatus::Creating));
        assert!(
            Instant::now() < deadline,
            "table {name} still being restored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create_backup(client: &Client, table: &str, name: &str) -> String {
    let answer = client
        .create_backup()
        .table_name(table)
        .backup_name(name)
        .send()
        .await
        .expect("create backup");
    let details = answer.backup_details.unwrap();
    assert_eq!(details.backup_name(), name);
    assert_eq!(details.backup_type(), &BackupType::User);
    assert!(
        matches!(
            details.backup_status(),
            BackupStatus::Creating | BackupStatus::Available
        ),
        "{details:?}"
    );
    details.backup_arn().to_string()
}

async fn restore(client: &Client, backup_arn: &str, target: &str) -> TableDescription {
    let answer = client
        .restore_table_from_backup()
        .backup_arn(backup_arn)
        .target_table_name(target)
        .send()
        .await
        .expect("restore");
    answer.table_description.unwrap()
}

/// The restored table's items and both indexes answer as the model says.
async fn assert_table_equals(client: &Client, table: &str, model: &BTreeMap<Key, Item>) {
    let restored = scan_all(client, table).await;
    assert_eq!(restored.len(), model.len(), "item count of {table}");
    assert!(restored == *model, "{table} differs from the model");
    for group in 0..7 {
        let group = format!("g{group}");
        let mut expected: Vec<Key> = model
            .values()
            .filter(|item| item["grp"].as_s().unwrap() == &group)
            .map(key_of)
            .collect();
        expected.sort_by_key(|(pk, sk)| (*sk, pk.clone()));
        let mut answered = query_index(client, table, GSI, "grp", &group).await;
        answered.sort_by_key(|(pk, sk)| (*sk, pk.clone()));
        assert_eq!(answered, expected, "{GSI} of {table}, {group}");
    }
    let partitions: Vec<&String> = model.keys().map(|(pk, _)| pk).take(5).collect();
    for pk in partitions {
        let mut expected: Vec<(String, Key)> = model
            .values()
            .filter(|item| item["pk"].as_s().unwrap() == pk)
            .map(|item| (item["label"].as_s().unwrap().clone(), key_of(item)))
            .collect();
        expected.sort();
        let expected: Vec<Key> = expected.into_iter().map(|(_, key)| key).collect();
        assert_eq!(
            query_index(client, table, LSI, "pk", pk).await,
            expected,
            "{LSI} of {table}"
        );
    }
}

#[tokio::test]
async fn backups_live_in_their_store_and_restore_with_their_indexes() {
    let folder = tempfile::tempdir().unwrap();
    let (data, backups) = (folder.path().join("data"), folder.path().join("backups"));
    let server = HavenServer::start_with(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--backup-dir",
        backups.to_str().unwrap(),
    ]);
    let client = server.client();
    create_indexed_table(&client, "orders").await;
    let items: Vec<Item> = (0..300)
        .map(|i| versioned(&format!("p{}", i % 30), i, 1))
        .collect();
    put_all(&client, "orders", &items).await;
    let model: BTreeMap<Key, Item> = items.iter().map(|i| (key_of(i), i.clone())).collect();

    let before = DateTime::from_secs(0);
    let arn = create_backup(&client, "orders", "orders-nightly").await;
    let table = describe_table(&client, "orders").await;
    assert!(
        arn.starts_with(&format!("{}/backup/", table.table_arn().unwrap())),
        "{arn}"
    );
    let described = wait_available(&client, &arn).await;
    let source = described.source_table_details().unwrap();
    assert_eq!(source.table_name(), "orders");
    assert_eq!(source.item_count(), Some(300));
    assert_eq!(source.table_id(), table.table_id().unwrap());
    let features = described.source_table_feature_details().unwrap();
    assert_eq!(
        features.global_secondary_indexes()[0].index_name(),
        Some(GSI)
    );
    assert_eq!(
        features.local_secondary_indexes()[0].index_name(),
        Some(LSI)
    );
    assert!(
        described
            .backup_details()
            .unwrap()
            .backup_size_bytes()
            .unwrap()
            > 0
    );

    // Writes after the backup's moment are not in it.
    put_all(&client, "orders", &[versioned("late", 1, 1)]).await;
    let second = create_backup(&client, "orders", "orders-second").await;
    wait_available(&client, &second).await;

    let listed = client
        .list_backups()
        .table_name("orders")
        .send()
        .await
        .unwrap();
    let arns: Vec<&str> = listed
        .backup_summaries()
        .iter()
        .filter_map(|b| b.backup_arn())
        .collect();
    assert_eq!(arns, [arn.as_str(), second.as_str()]);
    let page = client.list_backups().limit(1).send().await.unwrap();
    assert_eq!(page.backup_summaries().len(), 1);
    assert_eq!(page.last_evaluated_backup_arn(), Some(arn.as_str()));
    let rest = client
        .list_backups()
        .exclusive_start_backup_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        rest.backup_summaries()[0].backup_arn(),
        Some(second.as_str())
    );
    assert_eq!(rest.last_evaluated_backup_arn(), None);
    let none = client
        .list_backups()
        .time_range_lower_bound(before)
        .time_range_upper_bound(DateTime::from_secs(1))
        .send()
        .await
        .unwrap();
    assert!(none.backup_summaries().is_empty());
    let other = client
        .list_backups()
        .table_name("other")
        .send()
        .await
        .unwrap();
    assert!(other.backup_summaries().is_empty());

    let restoring = restore(&client, &arn, "orders-restored").await;
    let summary = restoring.restore_summary().unwrap();
    assert_eq!(summary.source_backup_arn(), Some(arn.as_str()));
    assert_eq!(summary.source_table_arn(), table.table_arn());
    let restored = wait_active(&client, "orders-restored").await;
    assert!(!restored.restore_summary().unwrap().restore_in_progress());
    assert_eq!(restored.item_count(), Some(300));
    assert_ne!(restored.table_id(), table.table_id());
    assert_table_equals(&client, "orders-restored", &model).await;

    // Losing the data directory loses no backup (on PostgreSQL there is no data directory to lose;
    // the backups are still read from the store by a new server).
    drop(server);
    if data.exists() {
        std::fs::remove_dir_all(&data).unwrap();
    }
    let server = HavenServer::start_with(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--backup-dir",
        backups.to_str().unwrap(),
    ]);
    let client = server.client();
    let listed = client.list_backups().send().await.unwrap();
    assert_eq!(listed.backup_summaries().len(), 2);
    restore(&client, &arn, "orders-after-loss").await;
    wait_active(&client, "orders-after-loss").await;
    assert_table_equals(&client, "orders-after-loss", &model).await;

    let deleted = client
        .delete_backup()
        .backup_arn(&arn)
        .send()
        .await
        .unwrap();
    let details = deleted.backup_description.unwrap().backup_details.unwrap();
    assert_eq!(details.backup_status(), &BackupStatus::Deleted);
    let (code, message) = error_of(client.describe_backup().backup_arn(&arn).send().await);
    assert_eq!(code, "BackupNotFoundException");
    assert_eq!(message, format!("Backup not found: {arn}"));
    let (code, _) = error_of(client.delete_backup().backup_arn(&arn).send().await);
    assert_eq!(code, "BackupNotFoundException");
}

#[tokio::test]
async fn backup_operations_answer_dynamodbs_errors() {
    let folder = tempfile::tempdir().unwrap();
    let server = HavenServer::start_with(&[
        "--in-memory",
        "--backup-dir",
        folder.path().to_str().unwrap(),
    ]);
    let client = server.client();
    let (code, message) = error_of(
        client
            .create_backup()
            .table_name("missing")
            .backup_name("b-1")
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("TableNotFoundException", "Table not found: missing")
    );
    let (code, message) = error_of(
        client
            .create_backup()
            .table_name("missing")
            .backup_name("b")
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "1 validation error detected: Value 'b' at 'backupName' failed to satisfy constraint: Member must have length greater than or equal to 3"
    );
    let unknown = "arn:aws:dynamodb:us-east-1:000000000000:table/t/backup/01576616366715-b4e58d3a";
    for arn in [
        unknown,
        "arn:aws:dynamodb:us-east-1:000000000000:table/t/backup/../../../etc",
    ] {
        let (code, _) = error_of(client.describe_backup().backup_arn(arn).send().await);
        assert_eq!(code, "BackupNotFoundException", "{arn}");
    }
    let (code, message) = error_of(client.describe_backup().backup_arn("short").send().await);
    assert_eq!(code, "ValidationException");
    assert!(message.contains("at 'backupArn' failed to satisfy constraint: Member must have length greater than or equal to 37"), "{message}");
    let (code, message) = error_of(client.list_backups().limit(0).send().await);
    assert_eq!(code, "ValidationException");
    assert!(
        message.contains("Member must have value greater than or equal to 1"),
        "{message}"
    );
    let (code, _) = error_of(
        client
            .restore_table_from_backup()
            .backup_arn(unknown)
            .target_table_name("target")
            .send()
            .await,
    );
    assert_eq!(code, "BackupNotFoundException");

    create_indexed_table(&client, "source").await;
    put_all(
        &client,
        "source",
        &[versioned("a", 1, 1), versioned("a", 2, 1)],
    )
    .await;
    let arn = create_backup(&client, "source", "source-backup").await;
    wait_available(&client, &arn).await;
    let (code, message) = error_of(
        client
            .restore_table_from_backup()
            .backup_arn(&arn)
            .target_table_name("source")
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), message.as_str()),
        (
            "TableAlreadyExistsException",
            "Table already exists: source"
        )
    );
    let unknown_index = GlobalSecondaryIndex::builder()
        .index_name("nope")
        .key_schema(element("grp", KeyType::Hash))
        .projection(all())
        .build()
        .unwrap();
    let (code, _) = error_of(
        client
            .restore_table_from_backup()
            .backup_arn(&arn)
            .target_table_name("target")
            .global_secondary_index_override(unknown_index)
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");

    // Overrides: without the global index, provisioned.
    let restoring = client
        .restore_table_from_backup()
        .backup_arn(&arn)
        .target_table_name("target")
        .set_global_secondary_index_override(Some(Vec::new()))
        .billing_mode_override(BillingMode::Provisioned)
        .provisioned_throughput_override(
            aws_sdk_dynamodb::types::ProvisionedThroughput::builder()
                .read_capacity_units(7)
                .write_capacity_units(3)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("restore with overrides")
        .table_description
        .unwrap();
    assert_eq!(restoring.table_status(), Some(&TableStatus::Creating));
    let restored = wait_active(&client, "target").await;
    assert!(restored.global_secondary_indexes().is_empty());
    assert_eq!(restored.local_secondary_indexes().len(), 1);
    let throughput = restored.provisioned_throughput().unwrap();
    assert_eq!(throughput.read_capacity_units(), Some(7));
    assert_eq!(restored.item_count(), Some(2));
}

/// Sequences each writer runs: writer `w` writes its keys `(w<w>-<k>, k)` in turn with an
/// increasing `seq`, waiting for each acknowledgement, so the writes any snapshot holds are a
/// prefix of each writer's sequence.
struct Writer {
    id: usize,
    keys: i64,
}

impl Writer {
    fn item(&self, seq: i64) -> Item {
        let k = seq % self.keys;
        versioned(&format!("w{}-{}", self.id, k % 50), k, seq)
    }

    /// The writer's items after its first `writes` writes (over its initial items, seq 0..keys).
    fn state_after(&self, writes: i64) -> BTreeMap<Key, Item> {
        let start = (writes - self.keys).max(0);
        (start..writes.max(self.keys))
            .map(|seq| self.item(seq))
            .map(|item| (key_of(&item), item))
            .collect()
    }
}

#[tokio::test]
async fn a_backup_taken_under_eight_writers_restores_one_moment() {
    let total: i64 = std::env::var("HAVEN_BACKUP_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let folder = tempfile::tempdir().unwrap();
    let backups = folder.path().to_str().unwrap();
    let server = HavenServer::start_with(&["--in-memory", "--backup-dir", backups]);
    let client = server.client();
    create_indexed_table(&client, "busy").await;
    let writers: Vec<Arc<Writer>> = (0..8)
        .map(|id| {
            Arc::new(Writer {
                id,
                keys: total / 8,
            })
        })
        .collect();
    for writer in &writers {
        let initial: Vec<Item> = (0..writer.keys).map(|seq| writer.item(seq)).collect();
        put_all(&client, "busy", &initial).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for writer in &writers {
        let (client, writer, stop) = (client.clone(), writer.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            // (seq, acknowledged at) of each write after the initial items.
            let mut log = Vec::new();
            let mut seq = writer.keys;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let put = client
                    .put_item()
                    .table_name("busy")
                    .set_item(Some(writer.item(seq)));
                put.send().await.expect("writer put");
                log.push((seq, started, Instant::now()));
                seq += 1;
            }
            log
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let arn = create_backup(&client, "busy", "busy-backup").await;
    let answered = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for task in tasks {
        logs.push(task.await.unwrap());
    }
    wait_available(&client, &arn).await;
    restore(&client, &arn, "busy-restored").await;
    // Until the table is ACTIVE the data plane does not see it: a read answered while
    // DescribeTable still says CREATING was refused.
    let read = client
        .get_item()
        .table_name("busy-restored")
        .key("pk", s("w0-0"))
        .key("sk", n(0));
    let read = read.send().await;
    if describe_table(&client, "busy-restored")
        .await
        .table_status()
        == Some(&TableStatus::Creating)
    {
        let (code, _) = error_of(read);
        assert_eq!(code, "ResourceNotFoundException");
    }
    wait_active(&client, "busy-restored").await;
    let restored = scan_all(&client, "busy-restored").await;

    // Each writer's cut: the writes acknowledged before the backup was asked for are in, none
    // started after it was answered is, and the items are exactly the state after the cut.
    let mut model = BTreeMap::new();
    for (writer, log) in writers.iter().zip(&logs) {
        let prefix = format!("w{}-", writer.id);
        let newest = restored
            .iter()
            .filter(|((pk, _), _)| pk.starts_with(&prefix))
            .map(|(_, item)| item["seq"].as_n().unwrap().parse::<i64>().unwrap())
            .max()
            .unwrap();
        let cut = newest + 1;
        let must = log.iter().filter(|(_, _, acked)| *acked < asked).count() as i64;
        let may = log
            .iter()
            .filter(|(_, started, _)| *started < answered)
            .count() as i64;
        assert!(
            cut >= writer.keys + must,
            "writer {}: an acknowledged write is missing",
            writer.id
        );
        assert!(
            cut <= writer.keys + may,
            "writer {}: a later write is in",
            writer.id
        );
        model.extend(writer.state_after(cut));
    }
    let later = logs
        .iter()
        .flatten()
        .filter(|(_, started, _)| *started > answered);
    assert!(later.count() > 0, "no write ran after the backup's moment");
    assert_table_equals(&client, "busy-restored", &model).await;
}

#[tokio::test]
async fn backups_in_an_s3_bucket_outlive_the_server() {
    let moto = Moto::start();
    moto.create_bucket("haven-backups");
    let args = [
        "--in-memory",
        "--backup-s3",
        "s3://haven-backups/nightly",
        "--backup-s3-endpoint",
        &moto.endpoint,
    ];
    let keys = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let server = HavenServer::start_with_env("127.0.0.1:0", &args, &keys);
    let client = server.client();
    create_indexed_table(&client, "orders").await;
    let items: Vec<Item> = (0..200)
        .map(|i| versioned(&format!("p{}", i % 9), i, 1))
        .collect();
    put_all(&client, "orders", &items).await;
    let model: BTreeMap<Key, Item> = items.iter().map(|i| (key_of(i), i.clone())).collect();
    let arn = create_backup(&client, "orders", "to-s3").await;
    wait_available(&client, &arn).await;
    let id = arn.rsplit('/').next().unwrap();
    let listed = moto.list("haven-backups", "nightly/backups/");
    assert!(
        listed.contains(&format!("<Key>nightly/backups/{id}.json</Key>")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("<Key>nightly/backups/{id}/part-00000.json</Key>")),
        "{listed}"
    );

    // Another server (another machine) on the same bucket restores it.
    drop(server);
    let server = HavenServer::start_with_env("127.0.0.1:0", &args, &keys);
    let client = server.client();
    let summaries = client.list_backups().send().await.unwrap();
    assert_eq!(
        summaries.backup_summaries()[0].backup_arn(),
        Some(arn.as_str())
    );
    restore(&client, &arn, "orders").await;
    wait_active(&client, "orders").await;
    assert_table_equals(&client, "orders", &model).await;

    client
        .delete_backup()
        .backup_arn(&arn)
        .send()
        .await
        .unwrap();
    let listed = moto.list("haven-backups", "nightly/backups/");
    assert!(!listed.contains("<Key>"), "{listed}");
    let (code, _) = error_of(client.describe_backup().backup_arn(&arn).send().await);
    assert_eq!(code, "BackupNotFoundException");
}

fn now_ms() -> i64 {
    let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    elapsed.unwrap().as_millis() as i64
}

async fn restore_to(client: &Client, target: &str, moment: Option<i64>) -> TableDescription {
    let request = client
        .restore_table_to_point_in_time()
        .source_table_name("pitr")
        .target_table_name(target);
    let request = match moment {
        Some(ms) => request.restore_date_time(DateTime::from_millis(ms)),
        None => request.use_latest_restorable_time(true),
    };
    request
        .send()
        .await
        .expect("restore to a point in time")
        .table_description
        .unwrap()
}

/// DescribeContinuousBackups' PointInTimeRecoveryDescription of the table `pitr`.
async fn pitr_description(
    client: &Client,
) -> aws_sdk_dynamodb::types::PointInTimeRecoveryDescription {
    let described = client
        .describe_continuous_backups()
        .table_name("pitr")
        .send()
        .await
        .unwrap();
    let pitr = described.continuous_backups_description.unwrap();
    pitr.point_in_time_recovery_description.unwrap()
}

async fn earliest_restorable(client: &Client) -> i64 {
    let pitr = pitr_description(client).await;
    let earliest = pitr.earliest_restorable_date_time().unwrap();
    earliest.to_millis().unwrap()
}

#[tokio::test]
async fn point_in_time_restores_each_moment_of_a_stream_of_writes() {
    let folder = tempfile::tempdir().unwrap();
    let backups = folder.path().to_str().unwrap();
    let server = HavenServer::start_with(&["--in-memory", "--backup-dir", backups]);
    let client = server.client();
    create_indexed_table(&client, "pitr").await;
    let mut model: BTreeMap<Key, Item> = BTreeMap::new();
    let initial: Vec<Item> = (0..60)
        .map(|i| versioned(&format!("p{}", i % 6), i, 0))
        .collect();
    put_all(&client, "pitr", &initial).await;
    model.extend(initial.iter().map(|i| (key_of(i), i.clone())));

    let pitr = pitr_description(&client).await;
    assert_eq!(
        pitr.point_in_time_recovery_status().unwrap().as_str(),
        "DISABLED"
    );
    let (code, message) = error_of(
        client
            .restore_table_to_point_in_time()
            .source_table_name("pitr")
            .target_table_name("x-1")
            .use_latest_restorable_time(true)
            .send()
            .await,
    );
    assert_eq!(code, "PointInTimeRecoveryUnavailableException");
    assert_eq!(
        message,
        "Point in time recovery is not enabled for table 'pitr'"
    );
    let (code, _) = error_of(
        client
            .describe_continuous_backups()
            .table_name("missing")
            .send()
            .await,
    );
    assert_eq!(code, "TableNotFoundException");
    let spec = |days| {
        aws_sdk_dynamodb::types::PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(true)
            .recovery_period_in_days(days)
            .build()
            .unwrap()
    };
    let (code, message) = error_of(
        client
            .update_continuous_backups()
            .table_name("pitr")
            .point_in_time_recovery_specification(spec(36))
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert!(
        message.contains("Member must have value less than or equal to 35"),
        "{message}"
    );
    let enabled = client
        .update_continuous_backups()
        .table_name("pitr")
        .point_in_time_recovery_specification(spec(7))
        .send()
        .await
        .expect("enable PITR");
    let pitr = enabled
        .continuous_backups_description
        .unwrap()
        .point_in_time_recovery_description
        .unwrap();
    assert_eq!(
        pitr.point_in_time_recovery_status().unwrap().as_str(),
        "ENABLED"
    );
    assert_eq!(pitr.recovery_period_in_days(), Some(7));
    let earliest = pitr
        .earliest_restorable_date_time()
        .unwrap()
        .to_millis()
        .unwrap();

    // Three rounds of puts, overwrites and deletes; a moment recorded between rounds.
    let mut moments = Vec::new();
    for round in 1..=3i64 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let writes: Vec<Item> = (0..30)
            .map(|i| versioned(&format!("p{}", i % 6), i * round % 80, round))
            .collect();
        put_all(&client, "pitr", &writes).await;
        model.extend(writes.iter().map(|i| (key_of(i), i.clone())));
        let doomed: Vec<Key> = model
            .keys()
            .skip(round as usize * 3)
            .step_by(11)
            .cloned()
            .collect();
        for (pk, sk) in &doomed {
            let delete = client
                .delete_item()
                .table_name("pitr")
                .key("pk", s(pk))
                .key("sk", n(*sk));
            delete.send().await.expect("delete");
            model.remove(&(pk.clone(), *sk));
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        moments.push((now_ms(), model.clone()));
    }
    let (code, _) = error_of(
        client
            .restore_table_to_point_in_time()
            .source_table_name("pitr")
            .target_table_name("x-2")
            .restore_date_time(DateTime::from_millis(earliest - 60_000))
            .send()
            .await,
    );
    assert_eq!(code, "InvalidRestoreTimeException");
    for (i, (moment, expected)) in moments.iter().enumerate() {
        let target = format!("pitr-{i}");
        let restoring = restore_to(&client, &target, Some(*moment)).await;
        let summary = restoring.restore_summary().unwrap();
        assert_eq!(summary.source_backup_arn(), None);
        wait_active(&client, &target).await;
        assert_table_equals(&client, &target, expected).await;
    }
    restore_to(&client, "pitr-latest", None).await;
    wait_active(&client, "pitr-latest").await;
    assert_table_equals(&client, "pitr-latest", &model).await;
}

/// Runs `haven backup --endpoint <server> <args>`; answers whether it succeeded, its standard
/// output and its standard error.
fn haven_backup(server: &HavenServer, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["backup", "--endpoint", &server.endpoint()])
        .args(args)
        .output()
        .expect("haven backup runs");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        output.status.success(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

#[tokio::test]
async fn the_backup_command_line_creates_lists_restores_and_deletes() {
    let folder = tempfile::tempdir().unwrap();
    let backups = folder.path().to_str().unwrap();
    let server = HavenServer::start_with(&["--in-memory", "--backup-dir", backups]);
    let client = server.client();
    create_indexed_table(&client, "cli").await;
    let items: Vec<Item> = (0..120)
        .map(|i| versioned(&format!("p{}", i % 4), i, 2))
        .collect();
    put_all(&client, "cli", &items).await;
    let model: BTreeMap<Key, Item> = items.iter().map(|i| (key_of(i), i.clone())).collect();

    let (ok, out, err) = haven_backup(&server, &["create", "--table", "cli", "--name", "cli-1"]);
    assert!(ok, "{err}");
    let arn = out.trim().to_string();
    assert!(arn.contains(":table/cli/backup/"), "{out}");
    assert!(err.contains("120 items"), "{err}");
    let (ok, out, err) = haven_backup(&server, &["list", "--table", "cli"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with(&format!("{arn}\tAVAILABLE\tcli\tcli-1\t")),
        "{out}"
    );
    let (ok, out, err) = haven_backup(
        &server,
        &["restore", "--backup-arn", &arn, "--target", "cli-copy"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("cli-copy ACTIVE (120 items"), "{out}");
    assert_table_equals(&client, "cli-copy", &model).await;
    let (ok, out, err) = haven_backup(&server, &["delete", "--backup-arn", &arn]);
    assert!(ok && out.contains("DELETED"), "{out}{err}");

    // Every bad argument is a clear error and a failure exit.
    let (ok, _, err) = haven_backup(&server, &["delete", "--backup-arn", &arn]);
    assert!(!ok);
    assert!(
        err.contains("DeleteBackup: BackupNotFoundException: Backup not found"),
        "{err}"
    );
    let (ok, _, err) = haven_backup(&server, &["create", "--table", "cli", "--name", "x"]);
    assert!(!ok && err.contains("ValidationException"), "{err}");
    let (ok, _, err) = haven_backup(&server, &["restore", "--backup-arn", &arn]);
    assert!(!ok && err.contains("--target"), "{err}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["backup", "--endpoint", "http://127.0.0.1:1", "list"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach http://127.0.0.1:1"));
}

/// The PITR base images' records in a `--backup-dir` folder: `pitr/<table>/<id>.json`.
fn pitr_bases(backups: &std::path::Path) -> usize {
    let Ok(tables) = std::fs::read_dir(backups.join("pitr")) else {
        return 0;
    };
    tables
        .flatten()
        .flat_map(|table| std::fs::read_dir(table.path()).unwrap().flatten())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".json"))
        .count()
}

async fn wait_for_bases(backups: &std::path::Path, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pitr_bases(backups) < count {
        assert!(
            std::time::Instant::now() < deadline,
            "{count} PITR base images were never taken"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn point_in_time_recovery_renews_its_base_and_restores_across_it() {
    let folder = tempfile::tempdir().unwrap();
    let backups = folder.path();
    let server = HavenServer::start_with(&[
        "--in-memory",
        "--backup-dir",
        backups.to_str().unwrap(),
        "--pitr-rebase-secs",
        "1",
    ]);
    let client = server.client();
    create_indexed_table(&client, "pitr").await;
    common::enable_pitr(&client, "pitr").await;
    let earliest = earliest_restorable(&client).await;
    assert_eq!(pitr_bases(backups), 1);

    // A round of writes, then a newer base; twice. Every base stays: the recovery period (35
    // days) still needs each of them.
    let mut model: BTreeMap<Key, Item> = BTreeMap::new();
    let mut moments = Vec::new();
    for round in 1..=2i64 {
        let writes: Vec<Item> = (0..40)
            .map(|i| versioned(&format!("p{}", i % 4), i % (20 + round * 10), round))
            .collect();
        put_all(&client, "pitr", &writes).await;
        model.extend(writes.iter().map(|i| (key_of(i), i.clone())));
        tokio::time::sleep(Duration::from_millis(50)).await;
        moments.push((now_ms(), model.clone()));
        wait_for_bases(backups, 1 + round as usize).await;
    }
    assert_eq!(earliest_restorable(&client).await, earliest);
    // Each moment restores from the base before it, the later ones across a renewal.
    for (i, (moment, expected)) in moments.iter().enumerate() {
        let target = format!("renewed-{i}");
        restore_to(&client, &target, Some(*moment)).await;
        wait_active(&client, &target).await;
        assert_table_equals(&client, &target, expected).await;
    }
    restore_to(&client, "renewed-latest", None).await;
    wait_active(&client, "renewed-latest").await;
    assert_table_equals(&client, "renewed-latest", &model).await;

    // PITR off: every base image leaves the store, parts and all (a base the re-basing worker
    // was writing meanwhile is dropped when its commit finds PITR gone).
    client
        .update_continuous_backups()
        .table_name("pitr")
        .point_in_time_recovery_specification(
            aws_sdk_dynamodb::types::PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(false)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("disable PITR");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while files_under(&backups.join("pitr")) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "base images left after PITR was disabled: {}",
            files_under(&backups.join("pitr"))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The restored tables keep their items: they never depended on the bases once ACTIVE.
    assert_table_equals(&client, "renewed-latest", &model).await;
}

/// The files under `dir`, at any depth (0 if it does not exist).
fn files_under(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => files_under(&entry.path()),
            _ => 1,
        })
        .sum()
}

/// A copy of the backup `arn`'s record in `backups`, as a backup still CREATING whose writer last
/// renewed its heartbeat `age_secs` ago, with one part: what a server killed mid-backup leaves
/// (`age_secs` large) or a writer at work (small). Answers the copy's ARN.
fn creating_copy(backups: &std::path::Path, arn: &str, age_secs: f64) -> String {
    let id = arn.rsplit_once("/backup/").unwrap().1;
    let record = std::fs::read(backups.join(format!("backups/{id}.json"))).unwrap();
    let mut record: serde_json::Value = serde_json::from_slice(&record).unwrap();
    let then = now_ms() as f64 / 1000.0 - age_secs;
    let copy_id = format!("{:014}-{:08x}", (then * 1000.0) as u64, age_secs as u32);
    let copy_arn = arn.replace(id, &copy_id);
    record["arn"] = serde_json::json!(copy_arn);
    record["status"] = serde_json::json!("CREATING");
    record["created"] = serde_json::json!(then);
    record["heartbeat"] = serde_json::json!(then);
    let parts = backups.join(format!("backups/{copy_id}"));
    std::fs::create_dir_all(&parts).unwrap();
    std::fs::write(parts.join("part-00000.json"), b"").unwrap();
    let record = serde_json::to_vec(&record).unwrap();
    std::fs::write(backups.join(format!("backups/{copy_id}.json")), record).unwrap();
    copy_arn
}

#[tokio::test]
async fn a_backup_whose_writer_died_is_removed_and_a_live_one_is_kept() {
    let folder = tempfile::tempdir().unwrap();
    let backups = folder.path();
    let server =
        HavenServer::start_with(&["--in-memory", "--backup-dir", backups.to_str().unwrap()]);
    let client = server.client();
    create_indexed_table(&client, "crashy").await;
    put_all(&client, "crashy", &[versioned("p", 1, 1)]).await;
    let arn = create_backup(&client, "crashy", "whole").await;
    wait_available(&client, &arn).await;
    let dead = creating_copy(backups, &arn, 3600.0);
    let live = creating_copy(backups, &arn, 5.0);

    let listed = client.list_backups().send().await.unwrap();
    let listed: Vec<&str> = listed
        .backup_summaries()
        .iter()
        .map(|summary| summary.backup_arn().unwrap())
        .collect();
    assert!(
        listed.contains(&arn.as_str()) && listed.contains(&live.as_str()),
        "{listed:?}"
    );
    assert!(!listed.contains(&dead.as_str()), "{listed:?}");
    let (code, message) = error_of(client.describe_backup().backup_arn(&dead).send().await);
    assert_eq!(code, "BackupNotFoundException");
    assert_eq!(message, format!("Backup not found: {dead}"));
    let dead_id = dead.rsplit_once("/backup/").unwrap().1;
    assert!(!backups.join(format!("backups/{dead_id}.json")).exists());
    assert!(
        !backups
            .join(format!("backups/{dead_id}"))
            .join("part-00000.json")
            .exists()
    );

    // A writer that renewed its heartbeat recently is at work: its backup stays CREATING.
    let creating = describe_backup(&client, &live).await;
    let details = creating.backup_details.unwrap();
    assert_eq!(details.backup_status(), &BackupStatus::Creating);
    let (code, _) = error_of(client.delete_backup().backup_arn(&live).send().await);
    assert_eq!(code, "BackupInUseException");
}
