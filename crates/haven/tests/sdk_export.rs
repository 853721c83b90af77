//! Export to S3 through the AWS SDK for Rust against a real `haven serve` writing to moto's S3
//! server: full exports in DynamoDB JSON and Ion read back from the bucket and compared item by
//! item with the table at their moment, incremental exports compared with the changes of their
//! window, AWS's layout and manifests, ClientToken idempotency, errors, and exports that outlive
//! a restart.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::{Blob, DateTime};
use aws_sdk_dynamodb::types::{
    AttributeValue, ExportDescription, ExportFormat, ExportStatus, ExportType, ExportViewType,
    IncrementalExportSpecification,
};
use common::moto::Moto;
use common::{HavenServer, create_table, error_of};
use serde_json::{Value, json};

const BUCKET: &str = "exports";
const KEYS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
];

/// moto with the exports bucket, and a server exporting to it (`extra` arguments added).
fn start(extra: &[&str]) -> (Moto, HavenServer) {
    let moto = Moto::start();
    ureq::put(&format!("{}/{BUCKET}", moto.endpoint))
        .send_empty()
        .expect("create bucket");
    let mut args = vec!["--s3-endpoint", moto.endpoint.as_str()];
    args.extend_from_slice(extra);
    if !extra.contains(&"--data-dir") {
        args.push("--in-memory");
    }
    let server = HavenServer::start_with_env("127.0.0.1:0", &args, &KEYS);
    (moto, server)
}

/// An object of the bucket, read with a signed GetObject (moto refuses anonymous reads).
fn get(moto: &Moto, key: &str) -> Vec<u8> {
    let url = format!("{}/{BUCKET}/{key}", moto.endpoint);
    let signing = haven_api::Signing {
        service: "s3",
        region: "us-east-1",
        key: ("test", "test"),
    };
    let mut request = ureq::get(&url);
    for (name, value) in signing.headers("GET", &url, &[], b"").unwrap() {
        request = request.header(name, value);
    }
    let mut answer = request.call().unwrap_or_else(|e| panic!("GET {key}: {e}"));
    answer
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("a gzip data file");
    text
}

/// An SDK attribute value from DynamoDB JSON.
fn sdk(value: &Value) -> AttributeValue {
    let (kind, inner) = value.as_object().unwrap().iter().next().unwrap();
    let text = |v: &Value| v.as_str().unwrap().to_string();
    let bytes = |v: &Value| {
        use base64::Engine as _;
        Blob::new(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap(),
        )
    };
    let list = |v: &Value| v.as_array().unwrap().clone();
    match kind.as_str() {
        "S" => AttributeValue::S(text(inner)),
        "N" => AttributeValue::N(text(inner)),
        "B" => AttributeValue::B(bytes(inner)),
        "BOOL" => AttributeValue::Bool(inner.as_bool().unwrap()),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(list(inner).iter().map(text).collect()),
        "NS" => AttributeValue::Ns(list(inner).iter().map(text).collect()),
        "BS" => AttributeValue::Bs(list(inner).iter().map(bytes).collect()),
        "L" => AttributeValue::L(list(inner).iter().map(sdk).collect()),
        "M" => AttributeValue::M(sdk_item(inner)),
        other => panic!("unknown type {other}"),
    }
}

fn sdk_item(item: &Value) -> HashMap<String, AttributeValue> {
    item.as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.clone(), sdk(value)))
        .collect()
}

/// Sets in a sorted order, so that items compare whatever order a writer kept them in.
fn normal(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(name, inner)| {
                    let mut inner = normal(inner);
                    if matches!(name.as_str(), "SS" | "NS" | "BS") {
                        inner.as_array_mut().unwrap().sort_by_key(|v| v.to_string());
                    }
                    (name.clone(), inner)
                })
                .collect(),
        ),
        Value::Array(values) => Value::Array(values.iter().map(normal).collect()),
        other => other.clone(),
    }
}

/// An item of every type, nested.
fn rich(pk: &str, version: i64) -> Value {
    json!({
        "pk": {"S": pk},
        "v": {"N": version.to_string()},
        "decimal": {"N": "-12.5"},
        "big": {"N": "12345678901234567890123456789012345678"},
        "tiny": {"N": "-0.001"},
        "bytes": {"B": "AAEC/w=="},
        "yes": {"BOOL": true},
        "nothing": {"NULL": true},
        "strings": {"SS": ["a", "b \"quoted\""]},
        "numbers": {"NS": ["1", "2.5"]},
        "blobs": {"BS": ["AQ==", "Ag=="]},
        "list": {"L": [{"S": "x"}, {"N": "3"}, {"L": [{"BOOL": false}]}]},
        "map": {"M": {"inner map": {"M": {"deep": {"S": "é\n"}}}, "n": {"N": "0"}}},
        "true": {"S": ""},
        "it's": {"L": []},
        "ctl": {"S": "\u{1}\t"},
        "empty map": {"M": {}},
    })
}

async fn put(client: &Client, table: &str, item: &Value) {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(sdk_item(item)))
        .send()
        .await
        .expect("PutItem");
}

async fn delete(client: &Client, table: &str, pk: &str) {
    client
        .delete_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .send()
        .await
        .expect("DeleteItem");
}

/// A table keyed by `pk` with point-in-time recovery; answers its ARN.
async fn pitr_table(client: &Client, table: &str) -> String {
    create_table(client, table, &[("pk", "S")]).await;
    common::enable_pitr(client, table).await;
    table_arn(client, table).await
}

async fn table_arn(client: &Client, table: &str) -> String {
    let described = client.describe_table().table_name(table).send().await;
    described.unwrap().table.unwrap().table_arn.unwrap()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A moment strictly between the writes before it and those after.
async fn moment() -> f64 {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let at = now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    at
}

async fn wait_done(client: &Client, arn: &str) -> ExportDescription {
    for _ in 0..600 {
        let described = client.describe_export().export_arn(arn).send().await;
        let description = described.unwrap().export_description.unwrap();
        if description.export_status != Some(ExportStatus::InProgress) {
            return description;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("export {arn} still IN_PROGRESS after 30 s");
}

/// The lines of every data file a completed export's manifests name, after checking the
/// layout, the manifests and each file's checksums.
fn read_export(moto: &Moto, description: &ExportDescription) -> (Value, Vec<String>) {
    let manifest = description.export_manifest.as_deref().unwrap();
    let arn = description.export_arn.as_deref().unwrap();
    let id = arn.rsplit('/').next().unwrap();
    let root = match description.s3_prefix.as_deref() {
        Some(prefix) => format!("{prefix}/AWSDynamoDB/{id}"),
        None => format!("AWSDynamoDB/{id}"),
    };
    assert_eq!(manifest, format!("{root}/manifest-summary.json"));
    let listed = moto.list(BUCKET, &root);
    for name in [
        "_started",
        "manifest-files.json",
        "manifest-summary.checksum",
    ] {
        assert!(
            listed.contains(&format!("<Key>{root}/{name}</Key>")),
            "{listed}"
        );
    }
    let summary: Value = serde_json::from_slice(&get(moto, manifest)).unwrap();
    assert_eq!(summary["exportArn"], arn);
    assert_eq!(summary["s3Bucket"], BUCKET);
    let files_key = summary["manifestFilesS3Key"].as_str().unwrap();
    assert_eq!(files_key, format!("{root}/manifest-files.json"));
    let files = String::from_utf8(get(moto, files_key)).unwrap();
    let mut lines = Vec::new();
    for file in files.lines() {
        let file: Value = serde_json::from_str(file).unwrap();
        let key = file["dataFileS3Key"].as_str().unwrap();
        assert!(key.starts_with(&format!("{root}/data/")), "{key}");
        let body = get(moto, key);
        let md5 = md5_of(&body);
        assert_eq!(file["etag"], md5.0, "{key}");
        assert_eq!(file["md5Checksum"], md5.1, "{key}");
        let text = gunzip(&body);
        let before = lines.len();
        lines.extend(text.lines().map(str::to_string));
        assert_eq!(file["itemCount"], (lines.len() - before) as u64, "{key}");
    }
    assert_eq!(summary["itemCount"], lines.len() as u64);
    assert_eq!(description.item_count, Some(lines.len() as i64));
    (summary, lines)
}

/// An object's MD5 as S3's ETag (hex) and as Content-MD5 (base64).
fn md5_of(body: &[u8]) -> (String, String) {
    use base64::Engine as _;
    use md5::{Digest, Md5};
    let digest = Md5::digest(body);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    (
        hex,
        base64::engine::general_purpose::STANDARD.encode(digest),
    )
}

type Export =
    aws_sdk_dynamodb::operation::export_table_to_point_in_time::builders::ExportTableToPointInTimeFluentBuilder;

/// A full export of `arn` at `at` (default: now) under the prefix `nightly`.
fn export_at(client: &Client, arn: &str, at: Option<f64>) -> Export {
    client
        .export_table_to_point_in_time()
        .table_arn(arn)
        .s3_bucket(BUCKET)
        .s3_prefix("nightly")
        .set_export_time(at.map(DateTime::from_secs_f64))
}

/// An incremental export of `arn` over `spec`'s window.
fn incremental(client: &Client, arn: &str, spec: IncrementalExportSpecification) -> Export {
    client
        .export_table_to_point_in_time()
        .table_arn(arn)
        .s3_bucket(BUCKET)
        .export_type(ExportType::IncrementalExport)
        .incremental_export_specification(spec)
}

/// Starts an export, waits for it, and checks it COMPLETED.
async fn completed(client: &Client, request: Export) -> ExportDescription {
    let started = request.send().await.unwrap().export_description.unwrap();
    assert_eq!(started.export_status, Some(ExportStatus::InProgress));
    let description = wait_done(client, started.export_arn.as_deref().unwrap()).await;
    assert_eq!(
        description.export_status,
        Some(ExportStatus::Completed),
        "{description:?}"
    );
    description
}

#[tokio::test]
async fn full_exports_hold_the_table_at_their_moment_in_both_formats() {
    let (moto, server) = start(&[]);
    let client = server.client();
    let arn = pitr_table(&client, "orders").await;
    let mut model: BTreeMap<String, Value> = BTreeMap::new();
    for i in 0..40 {
        let item = rich(&format!("p{i}"), 1);
        put(&client, "orders", &item).await;
        model.insert(format!("p{i}"), item);
    }
    let at = moment().await;
    let at_moment = model.clone();
    // After the moment: an update, a delete and a new item, none of which the export may hold.
    put(&client, "orders", &rich("p1", 2)).await;
    delete(&client, "orders", "p2").await;
    put(&client, "orders", &rich("late", 1)).await;
    model.insert("p1".into(), rich("p1", 2));
    model.remove("p2");
    model.insert("late".into(), rich("late", 1));

    let description = completed(&client, export_at(&client, &arn, Some(at))).await;
    assert_eq!(description.export_format, Some(ExportFormat::DynamodbJson));
    assert_eq!(description.export_type, Some(ExportType::FullExport));
    assert_eq!(description.table_arn.as_deref(), Some(arn.as_str()));
    let exported_at = description.export_time.unwrap().as_secs_f64();
    assert!((exported_at - at).abs() < 0.002, "{exported_at} {at}");
    let (summary, lines) = read_export(&moto, &description);
    assert_eq!(summary["outputFormat"], "DYNAMODB_JSON");
    assert_eq!(summary["exportType"], "FULL_EXPORT");
    let items = lines
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["Item"].clone());
    assert_items(items, &at_moment);

    // Ion, at the default moment (now): the later writes are in it.
    let request = client
        .export_table_to_point_in_time()
        .table_arn(&arn)
        .s3_bucket(BUCKET)
        .export_format(ExportFormat::Ion);
    let description = completed(&client, request).await;
    let (summary, lines) = read_export(&moto, &description);
    assert_eq!(summary["outputFormat"], "ION");
    assert_eq!(lines.len(), 40, "40 items, less p2, plus late");
    assert!(
        lines[0].starts_with("$ion_1_0 $dynamodb_Item::{Item:{"),
        "{}",
        lines[0]
    );
    let late = lines
        .iter()
        .find(|line| line.contains("pk:\"late\""))
        .expect("the late item");
    let expected_ion = concat!(
        r#"{Item:{big:12345678901234567890123456789012345678.,blobs:$dynamodb_BS::[{{AQ==}},{{Ag==}}],"#,
        r#"bytes:{{AAEC/w==}},ctl:"\x01\t",decimal:-12.5,'empty map':{},'it\'s':[],list:["x",3.,[false]],"#,
        r#"map:{'inner map':{deep:"é\n"},n:0.},nothing:null,numbers:$dynamodb_NS::[1.,2.5],"#,
        r#"pk:"late",strings:$dynamodb_SS::["a","b \"quoted\""],tiny:-0.001,'true':"",v:1.,yes:true}}"#
    );
    assert!(late.ends_with(expected_ion), "{late}");
    // Read back with Amazon's own Ion reader: the same items as the table now.
    assert_items(read_ion(&lines.join("\n")), &model);
}

/// The `Item` of each value of Ion text, read by `tests/export/ion_items.py` (Amazon's Ion
/// library) into DynamoDB JSON.
fn read_ion(text: &str) -> Vec<Value> {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/export/ion_items.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (pip install amazon-ion)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "ion_items.py failed");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["Item"].clone())
        .collect()
}

/// `items` are `model`'s items, whatever their order (and their sets' order).
fn assert_items(items: impl IntoIterator<Item = Value>, model: &BTreeMap<String, Value>) {
    let mut items: Vec<Value> = items.into_iter().map(|item| normal(&item)).collect();
    items.sort_by_key(|item| item["pk"]["S"].as_str().unwrap().to_string());
    let expected: Vec<Value> = model.values().map(normal).collect();
    assert_eq!(items.len(), expected.len());
    for (item, wanted) in items.iter().zip(&expected) {
        assert_eq!(item, wanted);
    }
}

/// Writes version `v` of item `pk` of the events table.
async fn version(client: &Client, pk: &str, v: i64) {
    let item = json!({"pk": {"S": pk}, "v": {"N": v.to_string()}});
    put(client, "events", &item).await;
}

#[tokio::test]
async fn incremental_exports_hold_the_changes_of_their_window() {
    let (moto, server) = start(&["--export-min-window-secs", "1"]);
    let client = server.client();
    let arn = pitr_table(&client, "events").await;
    version(&client, "a", 1).await;
    version(&client, "b", 1).await;
    version(&client, "same", 1).await;
    let from = moment().await;
    version(&client, "a", 2).await;
    version(&client, "a", 3).await;
    delete(&client, "events", "b").await;
    version(&client, "c", 1).await;
    version(&client, "gone", 1).await;
    delete(&client, "events", "gone").await;
    version(&client, "same", 9).await;
    version(&client, "same", 1).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let to = moment().await;
    version(&client, "after", 1).await;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let window = |view: ExportViewType| {
        IncrementalExportSpecification::builder()
            .export_from_time(DateTime::from_secs_f64(from))
            .export_to_time(DateTime::from_secs_f64(to))
            .export_view_type(view)
            .build()
    };
    let request = incremental(&client, &arn, window(ExportViewType::NewAndOldImages));
    let description = completed(&client, request).await;
    let spec = description
        .incremental_export_specification
        .clone()
        .unwrap();
    assert_eq!(spec.export_view_type, Some(ExportViewType::NewAndOldImages));
    let (summary, lines) = read_export(&moto, &description);
    assert_eq!(summary["exportType"], "INCREMENTAL_EXPORT");
    assert_eq!(summary["outputView"], "NEW_AND_OLD_IMAGES");
    let mut by_key: BTreeMap<String, Value> = BTreeMap::new();
    for line in &lines {
        let line: Value = serde_json::from_str(line).unwrap();
        let micros: f64 = line["Metadata"]["WriteTimestampMicros"]["N"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(micros / 1e6 >= from - 0.001 && micros / 1e6 < to, "{line}");
        let key = line["Keys"]["pk"]["S"].as_str().unwrap().to_string();
        assert_eq!(line["Keys"], json!({"pk": {"S": key}}));
        by_key.insert(key, line);
    }
    assert_eq!(by_key.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(by_key["a"]["OldImage"]["v"], json!({"N": "1"}));
    assert_eq!(by_key["a"]["NewImage"]["v"], json!({"N": "3"}));
    assert_eq!(by_key["b"]["OldImage"]["v"], json!({"N": "1"}));
    assert!(by_key["b"].get("NewImage").is_none());
    assert!(by_key["c"].get("OldImage").is_none());
    assert_eq!(by_key["c"]["NewImage"]["v"], json!({"N": "1"}));

    let request = incremental(&client, &arn, window(ExportViewType::NewImage));
    let description = completed(&client, request).await;
    let (_, lines) = read_export(&moto, &description);
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| !l.contains("OldImage")), "{lines:?}");

    // The window's rules.
    let refused = |spec| incremental(&client, &arn, spec).send();
    let short = IncrementalExportSpecification::builder()
        .export_from_time(DateTime::from_secs_f64(from))
        .export_to_time(DateTime::from_secs_f64(from + 0.5))
        .build();
    let (code, message) = error_of(refused(short).await);
    assert_eq!(code, "ValidationException", "{message}");
    assert!(message.contains("at least"), "{message}");
    let long = IncrementalExportSpecification::builder()
        .export_from_time(DateTime::from_secs_f64(from))
        .export_to_time(DateTime::from_secs_f64(from + 25.0 * 3600.0))
        .build();
    let (code, message) = error_of(refused(long).await);
    assert_eq!(code, "ValidationException", "{message}");
    assert!(message.contains("at most 24 hours"), "{message}");
    let before = IncrementalExportSpecification::builder()
        .export_from_time(DateTime::from_secs_f64(from - 3600.0))
        .export_to_time(DateTime::from_secs_f64(to))
        .build();
    let (code, message) = error_of(refused(before).await);
    assert_eq!(code, "InvalidExportTimeException", "{message}");
}

#[tokio::test]
async fn exports_are_idempotent_refuse_what_aws_refuses_and_outlive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let data_dir = data_dir.to_str().unwrap();
    let (moto, server) = start(&["--data-dir", data_dir]);
    let client = server.client();
    let arn = pitr_table(&client, "ledger").await;
    put(&client, "ledger", &rich("one", 1)).await;

    // The same ClientToken and parameters: the same export; other parameters: a conflict.
    let with_token = |prefix: &str| {
        client
            .export_table_to_point_in_time()
            .table_arn(&arn)
            .s3_bucket(BUCKET)
            .s3_prefix(prefix)
            .client_token("token-1")
            .send()
    };
    let first = with_token("a").await.unwrap().export_description.unwrap();
    let again = with_token("a").await.unwrap().export_description.unwrap();
    assert_eq!(first.export_arn, again.export_arn);
    assert_eq!(first.client_token.as_deref(), Some("token-1"));
    let (code, _) = error_of(with_token("b").await);
    assert_eq!(code, "ExportConflictException");
    let first_arn = first.export_arn.unwrap();
    let done = wait_done(&client, &first_arn).await;
    assert_eq!(
        done.export_status,
        Some(ExportStatus::Completed),
        "{done:?}"
    );
    assert!(done.end_time.is_some() && done.billed_size_bytes.unwrap() > 0);
    read_export(&moto, &done);

    // A bucket that does not exist: the export fails, saying why.
    let started = client
        .export_table_to_point_in_time()
        .table_arn(&arn)
        .s3_bucket("no-such-bucket")
        .send()
        .await
        .unwrap();
    let failed_arn = started.export_description.unwrap().export_arn.unwrap();
    let failed = wait_done(&client, &failed_arn).await;
    assert_eq!(failed.export_status, Some(ExportStatus::Failed));
    assert_eq!(failed.failure_code.as_deref(), Some("S3NoSuchBucket"));
    assert!(failed.failure_message.unwrap().contains("NoSuchBucket"));

    // Errors.
    create_table(&client, "plain", &[("pk", "S")]).await;
    let plain = table_arn(&client, "plain").await;
    let (code, message) = error_of(export_at(&client, &plain, None).send().await);
    assert_eq!(code, "PointInTimeRecoveryUnavailableException");
    assert_eq!(
        message,
        "Point in time recovery is not enabled for table 'plain'"
    );
    let missing = arn.replace("ledger", "missing");
    let (code, message) = error_of(export_at(&client, &missing, None).send().await);
    assert_eq!(
        (code.as_str(), message),
        (
            "TableNotFoundException",
            format!("Table not found: {missing}")
        )
    );
    let (code, _) = error_of(export_at(&client, &arn, Some(now() + 3600.0)).send().await);
    assert_eq!(code, "InvalidExportTimeException");
    let (code, _) = error_of(
        export_at(&client, &arn, Some(now() - 86_400.0))
            .send()
            .await,
    );
    assert_eq!(code, "InvalidExportTimeException");
    let (code, message) = error_of(
        export_at(&client, &arn, None)
            .s3_sse_algorithm(aws_sdk_dynamodb::types::S3SseAlgorithm::Kms)
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert!(message.contains("KMS"), "{message}");
    let (code, message) = error_of(
        client
            .export_table_to_point_in_time()
            .table_arn(&arn)
            .s3_bucket("../other?x=")
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        r"1 validation error detected: Value '../other?x=' at 's3Bucket' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-z0-9A-Z]+[\.\-\w]*[a-z0-9A-Z]+$"
    );
    let unknown = format!("{arn}/export/01604475114253-3d7e0f34");
    let (code, message) = error_of(client.describe_export().export_arn(&unknown).send().await);
    assert_eq!(
        (code.as_str(), message),
        (
            "ExportNotFoundException",
            format!("Export not found: {unknown}")
        )
    );
    let (code, message) = error_of(client.list_exports().max_results(26).send().await);
    assert_eq!(code, "ValidationException");
    assert!(
        message.contains("Member must have value less than or equal to 25"),
        "{message}"
    );

    // Listing, by table and a page at a time; then a restart keeps every export.
    let pages = list_all(&client, Some(&arn)).await;
    assert_eq!(pages, [first_arn.clone(), failed_arn.clone()]);
    assert!(list_all(&client, Some(&plain)).await.is_empty());
    drop(client);
    drop(server);
    let args = [
        "--s3-endpoint",
        moto.endpoint.as_str(),
        "--data-dir",
        data_dir,
    ];
    let server = HavenServer::start_with_env("127.0.0.1:0", &args, &KEYS);
    let client = server.client();
    assert_eq!(
        list_all(&client, None).await,
        [first_arn.clone(), failed_arn]
    );
    let after = wait_done(&client, &first_arn).await;
    assert_eq!(after.export_status, Some(ExportStatus::Completed));
    assert_eq!(after.item_count, Some(1));
}

/// Every export's ARN, one page of one at a time.
async fn list_all(client: &Client, table: Option<&str>) -> Vec<String> {
    let mut arns = Vec::new();
    let mut token = None;
    for _ in 0..100 {
        let page = client
            .list_exports()
            .set_table_arn(table.map(str::to_string))
            .max_results(1)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        for summary in page.export_summaries() {
            arns.push(summary.export_arn.clone().unwrap());
        }
        token = page.next_token;
        if token.is_none() {
            return arns;
        }
    }
    panic!("ListExports did not end");
}

#[tokio::test]
async fn an_export_in_progress_when_the_server_is_killed_is_written_by_the_next_start() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let data_dir = data_dir.to_str().unwrap();
    // An endpoint that accepts connections and never answers: the export's first PUT waits.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_endpoint = format!("http://{}", silent.local_addr().unwrap());
    let args = [
        "--s3-endpoint",
        silent_endpoint.as_str(),
        "--data-dir",
        data_dir,
    ];
    let server = HavenServer::start_with_env("127.0.0.1:0", &args, &KEYS);
    let client = server.client();
    let arn = pitr_table(&client, "stuck").await;
    let mut model = BTreeMap::new();
    for i in 0..10 {
        let item = rich(&format!("s{i}"), 1);
        put(&client, "stuck", &item).await;
        model.insert(format!("s{i}"), item);
    }
    let started = export_at(&client, &arn, None).send().await.unwrap();
    let export_arn = started.export_description.unwrap().export_arn.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let described = client
        .describe_export()
        .export_arn(&export_arn)
        .send()
        .await;
    let status = described.unwrap().export_description.unwrap().export_status;
    assert_eq!(status, Some(ExportStatus::InProgress));
    server.kill();

    let (moto, server) = start(&["--data-dir", data_dir]);
    let client = server.client();
    let description = wait_done(&client, &export_arn).await;
    assert_eq!(
        description.export_status,
        Some(ExportStatus::Completed),
        "{description:?}"
    );
    let (_, lines) = read_export(&moto, &description);
    let items = lines
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["Item"].clone());
    assert_items(items, &model);
    drop(silent);
}

/// Runs `haven export --endpoint <server> <args>`; answers its exit status and standard output
/// and error.
fn haven_export(server: &HavenServer, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["export", "--endpoint", &server.endpoint()])
        .args(args)
        .envs(KEYS)
        .output()
        .expect("haven export runs");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        output.status.success(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

#[tokio::test]
async fn the_export_command_waits_for_the_export_and_reports_a_failure() {
    let (moto, server) = start(&[]);
    let client = server.client();
    pitr_table(&client, "cli").await;
    let mut model = BTreeMap::new();
    for i in 0..5 {
        let item = rich(&format!("c{i}"), 1);
        put(&client, "cli", &item).await;
        model.insert(format!("c{i}"), item);
    }
    let args = ["--table", "cli", "--bucket", BUCKET, "--prefix", "cli"];
    let (ok, stdout, stderr) = haven_export(&server, &args);
    assert!(ok, "{stderr}");
    let arn = stdout.trim();
    assert!(arn.contains(":table/cli/export/"), "{stdout}");
    assert!(stderr.contains("cli: 5 items"), "{stderr}");
    let described = client.describe_export().export_arn(arn).send().await;
    let description = described.unwrap().export_description.unwrap();
    let (_, lines) = read_export(&moto, &description);
    let items = lines
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["Item"].clone());
    assert_items(items, &model);

    let args = ["--table", "cli", "--bucket", "missing-bucket"];
    let (ok, _, stderr) = haven_export(&server, &args);
    assert!(!ok);
    assert!(stderr.contains("FAILED: S3NoSuchBucket"), "{stderr}");
}
