//! Import from S3 through the AWS SDK for Rust against a real `haven serve` reading moto's S3
//! server (or a directory standing for S3): hand-written fixtures in AWS's export layout
//! (DynamoDB JSON gzip-compressed, Ion zstd-compressed) and CSV with and without HeaderList,
//! each imported and compared item by item, an index queried; bad lines counted and skipped;
//! unreadable sources failing without leaving a table; every operation's errors, ClientToken
//! idempotency and conflicts, paging; an import that survives a SIGKILL and a restart; and
//! `haven import`, the operator command, against it.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CsvOptions, GlobalSecondaryIndex,
    ImportStatus, ImportTableDescription, InputCompressionType, InputFormat, InputFormatOptions,
    KeySchemaElement, KeyType, Projection, ProjectionType, S3BucketSource, ScalarAttributeType,
    TableCreationParameters, TableStatus,
};
use common::moto::Moto;
use common::{HavenServer, error_of};

type Item = HashMap<String, AttributeValue>;

const BUCKET: &str = "imports";
/// Where an AWS export keeps its data files (the prefix an import points at).
const EXPORT_DATA: &str = "exports/AWSDynamoDB/01693685827463-2d8752fa/data/";

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: &str) -> AttributeValue {
    AttributeValue::N(value.into())
}

/// The i-th item of the fixtures, with every kind of attribute value an export holds.
fn rich_item(i: usize) -> Item {
    let mut item = Item::from([
        ("pk".into(), s(&format!("p{}", i % 7))),
        ("sk".into(), n(&i.to_string())),
        ("grp".into(), s(&format!("g{}", i % 3))),
        ("price".into(), n(&format!("{i}.25"))),
        (
            "tags".into(),
            AttributeValue::Ss(vec!["a".into(), format!("t{i}")]),
        ),
        (
            "blob".into(),
            AttributeValue::B(Blob::new(format!("bytes {i}"))),
        ),
        ("ok".into(), AttributeValue::Bool(i.is_multiple_of(2))),
        ("gone".into(), AttributeValue::Null(true)),
        (
            "nested".into(),
            AttributeValue::M(HashMap::from([
                ("depth".into(), n("2")),
                (
                    "list".into(),
                    AttributeValue::L(vec![s("x"), n(&format!("-{}", i + 1))]),
                ),
            ])),
        ),
    ]);
    if i.is_multiple_of(5) {
        item.remove("grp"); // not in the index
    }
    item
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The item as a line of an AWS DYNAMODB_JSON export.
fn json_line(item: &Item) -> String {
    let mut fields: Vec<String> = item
        .iter()
        .map(|(name, value)| format!("\"{name}\":{}", json_value(value)))
        .collect();
    fields.sort();
    format!("{{\"Item\":{{{}}}}}", fields.join(","))
}

fn json_value(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(v) => format!("{{\"S\":\"{v}\"}}"),
        AttributeValue::N(v) => format!("{{\"N\":\"{v}\"}}"),
        AttributeValue::B(v) => format!("{{\"B\":\"{}\"}}", base64(v.as_ref())),
        AttributeValue::Bool(v) => format!("{{\"BOOL\":{v}}}"),
        AttributeValue::Null(_) => "{\"NULL\":true}".into(),
        AttributeValue::Ss(v) => format!("{{\"SS\":[\"{}\"]}}", v.join("\",\"")),
        AttributeValue::L(v) => {
            let values: Vec<String> = v.iter().map(json_value).collect();
            format!("{{\"L\":[{}]}}", values.join(","))
        }
        AttributeValue::M(m) => {
            let fields: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("\"{k}\":{}", json_value(v)))
                .collect();
            format!("{{\"M\":{{{}}}}}", fields.join(","))
        }
        other => panic!("no fixture for {other:?}"),
    }
}

/// The item as a line of an AWS ION export (numbers as Ion decimals, `1.` and `1.25`).
fn ion_line(item: &Item) -> String {
    let fields: Vec<String> = item
        .iter()
        .map(|(name, value)| format!("{name}:{}", ion_value(value)))
        .collect();
    format!("$ion_1_0 {{Item:{{{}}}}}", fields.join(","))
}

fn ion_value(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(v) => format!("\"{v}\""),
        AttributeValue::N(v) if v.contains('.') => v.clone(),
        AttributeValue::N(v) => format!("{v}."),
        AttributeValue::B(v) => format!("{{{{{}}}}}", base64(v.as_ref())),
        AttributeValue::Bool(v) => v.to_string(),
        AttributeValue::Null(_) => "null".into(),
        AttributeValue::Ss(v) => format!("$dynamodb_SS::[\"{}\"]", v.join("\",\"")),
        AttributeValue::L(v) => {
            let values: Vec<String> = v.iter().map(ion_value).collect();
            format!("[{}]", values.join(","))
        }
        AttributeValue::M(m) => {
            let fields: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}:{}", ion_value(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        other => panic!("no fixture for {other:?}"),
    }
}

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

fn zstd(text: &str) -> Vec<u8> {
    zstd::encode_all(text.as_bytes(), 3).unwrap()
}

fn lines(items: &[Item], line: fn(&Item) -> String) -> String {
    items.iter().map(|i| line(i) + "\n").collect()
}

fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
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

/// A table keyed (pk S, sk N), with a global index on grp when `indexed`.
fn parameters(table: &str, indexed: bool) -> TableCreationParameters {
    let mut builder = TableCreationParameters::builder()
        .table_name(table)
        .attribute_definitions(definition("pk", ScalarAttributeType::S))
        .attribute_definitions(definition("sk", ScalarAttributeType::N))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest);
    if indexed {
        let index = GlobalSecondaryIndex::builder()
            .index_name("by_grp")
            .key_schema(key("grp", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .unwrap();
        builder = builder
            .attribute_definitions(definition("grp", ScalarAttributeType::S))
            .global_secondary_indexes(index);
    }
    builder.build().unwrap()
}

fn source(bucket: &str, prefix: &str) -> S3BucketSource {
    S3BucketSource::builder()
        .s3_bucket(bucket)
        .s3_key_prefix(prefix)
        .build()
        .unwrap()
}

/// Starts an import and answers its ARN.
async fn import(
    client: &Client,
    prefix: &str,
    format: InputFormat,
    compression: InputCompressionType,
    table: TableCreationParameters,
    options: Option<InputFormatOptions>,
) -> String {
    let started = client
        .import_table()
        .s3_bucket_source(source(BUCKET, prefix))
        .input_format(format)
        .input_compression_type(compression)
        .set_input_format_options(options)
        .table_creation_parameters(table)
        .send()
        .await
        .expect("ImportTable");
    let description = started.import_table_description().unwrap();
    assert_eq!(description.import_status(), Some(&ImportStatus::InProgress));
    description.import_arn().unwrap().to_string()
}

/// Waits until an import is no longer IN_PROGRESS.
async fn settled(client: &Client, arn: &str) -> ImportTableDescription {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let described = client.describe_import().import_arn(arn).send().await;
        let description = described.unwrap().import_table_description.unwrap();
        if description.import_status() != Some(&ImportStatus::InProgress) {
            return description;
        }
        assert!(Instant::now() < deadline, "import {arn} still in progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every item of a table, by (pk, sk), with sets sorted.
async fn scan_all(client: &Client, table: &str) -> BTreeMap<(String, String), Item> {
    let items = common::scan_items(client, table).await;
    items
        .into_iter()
        .map(|i| (key_of(&i), normalized(i)))
        .collect()
}

fn key_of(item: &Item) -> (String, String) {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(v) | AttributeValue::N(v)) => v.clone(),
        other => panic!("key {name}: {other:?}"),
    };
    (text("pk"), text("sk"))
}

fn normalized(mut item: Item) -> Item {
    for value in item.values_mut() {
        if let AttributeValue::Ss(set) = value {
            set.sort();
        }
    }
    item
}

fn model(items: &[Item]) -> BTreeMap<(String, String), Item> {
    items
        .iter()
        .map(|i| (key_of(i), normalized(i.clone())))
        .collect()
}

fn assert_completed(description: &ImportTableDescription, items: i64, errors: i64) {
    assert_eq!(
        description.import_status(),
        Some(&ImportStatus::Completed),
        "{description:?}"
    );
    assert_eq!(description.imported_item_count(), items, "{description:?}");
    assert_eq!(description.processed_item_count(), items + errors);
    assert_eq!(description.error_count(), errors);
    assert!(description.processed_size_bytes().unwrap_or(0) > 0);
    assert!(description.end_time().is_some());
}

/// A server reading moto's buckets; its import records go to `records` (a directory of the
/// test's own, also on PostgreSQL, where `--in-memory` becomes a database).
fn haven_with_moto(moto: &Moto, records: &tempfile::TempDir) -> HavenServer {
    let records = records.path().to_str().unwrap();
    let args = [
        "--in-memory",
        "--s3-endpoint",
        &moto.endpoint,
        "--backup-dir",
        records,
    ];
    let keys = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    HavenServer::start_with_env("127.0.0.1:0", &args, &keys)
}

#[tokio::test]
async fn every_format_and_compression_imports_item_for_item() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let items: Vec<Item> = (0..300).map(rich_item).collect();
    // An AWS export: two gzip data files, and beside data/ the manifests the prefix leaves out.
    let (first, second) = items.split_at(170);
    moto.put(
        BUCKET,
        &format!("{EXPORT_DATA}a.json.gz"),
        &gzip(&lines(first, json_line)),
    );
    moto.put(
        BUCKET,
        &format!("{EXPORT_DATA}b.json.gz"),
        &gzip(&lines(second, json_line)),
    );
    moto.put(
        BUCKET,
        "exports/AWSDynamoDB/01693685827463-2d8752fa/manifest-summary.json",
        b"{}",
    );
    moto.put(
        BUCKET,
        "ion/AWSDynamoDB/x/data/a.ion.zst",
        &zstd(&lines(&items, ion_line)),
    );
    let records = tempfile::tempdir().unwrap();
    let server = haven_with_moto(&moto, &records);
    let client = server.client();

    let arn = import(
        &client,
        EXPORT_DATA,
        InputFormat::DynamodbJson,
        InputCompressionType::Gzip,
        parameters("from-json", true),
        None,
    )
    .await;
    assert!(arn.contains(":table/from-json/import/"), "{arn}");
    assert_completed(&settled(&client, &arn).await, 300, 0);
    let table = client
        .describe_table()
        .table_name("from-json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        table.table().unwrap().table_status(),
        Some(&TableStatus::Active)
    );
    assert_eq!(scan_all(&client, "from-json").await, model(&items));
    let in_group = client
        .query()
        .table_name("from-json")
        .index_name("by_grp")
        .key_condition_expression("grp = :g")
        .expression_attribute_values(":g", s("g1"))
        .send()
        .await
        .unwrap();
    let expected = items
        .iter()
        .filter(|i| i.get("grp") == Some(&s("g1")))
        .count();
    assert_eq!(in_group.count() as usize, expected);

    let arn = import(
        &client,
        "ion/",
        InputFormat::Ion,
        InputCompressionType::Zstd,
        parameters("from-ion", false),
        None,
    )
    .await;
    assert_completed(&settled(&client, &arn).await, 300, 0);
    assert_eq!(scan_all(&client, "from-ion").await, model(&items));
}

/// The CSV fixtures' items: key attributes typed by the table's definitions, the rest strings.
fn csv_items() -> Vec<Item> {
    (0..40)
        .map(|i: usize| {
            let mut item = Item::from([
                ("pk".into(), s(&format!("c{}", i % 4))),
                ("sk".into(), n(&i.to_string())),
                ("note".into(), s(&format!("say \"hi\", {i}"))),
            ]);
            if i.is_multiple_of(2) {
                item.insert("city".into(), s("Lyon\nFrance"));
            }
            item
        })
        .collect()
}

fn csv_text(items: &[Item], delimiter: char, header: bool) -> String {
    let mut text = String::new();
    if header {
        text.push_str(&format!(
            "pk{delimiter}sk{delimiter}note{delimiter}city\r\n"
        ));
    }
    for item in items {
        let field = |name: &str| match item.get(name) {
            Some(AttributeValue::S(v) | AttributeValue::N(v)) => {
                format!("\"{}\"", v.replace('"', "\"\""))
            }
            _ => String::new(),
        };
        let fields = ["pk", "sk", "note", "city"].map(field);
        text.push_str(&fields.join(&delimiter.to_string()));
        text.push('\n');
    }
    text
}

#[tokio::test]
async fn csv_imports_with_its_own_header_or_a_header_list() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let items = csv_items();
    moto.put(
        BUCKET,
        "csv/with-header/a.csv",
        csv_text(&items[..25], ',', true).as_bytes(),
    );
    moto.put(
        BUCKET,
        "csv/with-header/b.csv",
        csv_text(&items[25..], ',', true).as_bytes(),
    );
    moto.put(
        BUCKET,
        "csv/listed.csv",
        csv_text(&items, '|', false).as_bytes(),
    );
    let records = tempfile::tempdir().unwrap();
    let server = haven_with_moto(&moto, &records);
    let client = server.client();

    let arn = import(
        &client,
        "csv/with-header/",
        InputFormat::Csv,
        InputCompressionType::None,
        parameters("csv-header", false),
        None,
    )
    .await;
    assert_completed(&settled(&client, &arn).await, 40, 0);
    assert_eq!(scan_all(&client, "csv-header").await, model(&items));

    let options = InputFormatOptions::builder()
        .csv(
            CsvOptions::builder()
                .delimiter("|")
                .set_header_list(Some(
                    ["pk", "sk", "note", "city"].map(String::from).to_vec(),
                ))
                .build(),
        )
        .build();
    let arn = import(
        &client,
        "csv/listed",
        InputFormat::Csv,
        InputCompressionType::None,
        parameters("csv-listed", false),
        Some(options),
    )
    .await;
    let description = settled(&client, &arn).await;
    assert_completed(&description, 40, 0);
    let csv = description.input_format_options().unwrap().csv().unwrap();
    assert_eq!(csv.delimiter(), Some("|"));
    assert_eq!(scan_all(&client, "csv-listed").await, model(&items));
}

#[tokio::test]
async fn bad_lines_are_counted_and_skipped_and_unreadable_sources_fail() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let good: Vec<Item> = (0..5).map(rich_item).collect();
    let mut text = lines(&good[..2], json_line);
    text.push_str("this is not json\n");
    text.push_str("{\"Item\":{\"sk\":{\"N\":\"1\"}}}\n"); // no partition key
    text.push_str("{\"Item\":{\"pk\":{\"N\":\"1\"},\"sk\":{\"N\":\"1\"}}}\n"); // key of the wrong type
    text.push_str("\n{\"NotItem\":{}}\n");
    text.push_str(&lines(&good[2..], json_line));
    moto.put(BUCKET, "bad/lines.json", text.as_bytes());
    moto.put(BUCKET, "broken/a.json.gz", b"this is not gzip at all");
    let records = tempfile::tempdir().unwrap();
    let server = haven_with_moto(&moto, &records);
    let client = server.client();

    let arn = import(
        &client,
        "bad/",
        InputFormat::DynamodbJson,
        InputCompressionType::None,
        parameters("some-bad", false),
        None,
    )
    .await;
    assert_completed(&settled(&client, &arn).await, 5, 4);
    assert_eq!(scan_all(&client, "some-bad").await, model(&good));

    // No bucket, no objects, damaged compression: FAILED, and no table left behind.
    let failures = [
        (
            "no-such-bucket",
            "x/",
            InputCompressionType::None,
            "S3NoSuchBucket",
        ),
        (
            BUCKET,
            "nothing-here/",
            InputCompressionType::None,
            "S3NoObjects",
        ),
        (
            BUCKET,
            "broken/",
            InputCompressionType::Gzip,
            "DecompressionError",
        ),
    ];
    for (i, (bucket, prefix, compression, code)) in failures.into_iter().enumerate() {
        let table = format!("failed-{i}");
        let started = client
            .import_table()
            .s3_bucket_source(source(bucket, prefix))
            .input_format(InputFormat::DynamodbJson)
            .input_compression_type(compression)
            .table_creation_parameters(parameters(&table, false))
            .send()
            .await
            .unwrap();
        let arn = started
            .import_table_description()
            .unwrap()
            .import_arn()
            .unwrap();
        let description = settled(&client, arn).await;
        assert_eq!(description.import_status(), Some(&ImportStatus::Failed));
        assert_eq!(description.failure_code(), Some(code), "{description:?}");
        assert!(description.failure_message().is_some());
        let (error, _) = error_of(client.describe_table().table_name(&table).send().await);
        assert_eq!(
            error, "ResourceNotFoundException",
            "{table} was left behind"
        );
    }
}

#[tokio::test]
async fn import_operations_answer_dynamodbs_errors() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    moto.put(BUCKET, "one/a.json", json_line(&rich_item(1)).as_bytes());
    let records = tempfile::tempdir().unwrap();
    let server = haven_with_moto(&moto, &records);
    let client = server.client();
    let request = |table: &str| {
        client
            .import_table()
            .s3_bucket_source(source(BUCKET, "one/"))
            .input_format(InputFormat::DynamodbJson)
            .table_creation_parameters(parameters(table, false))
    };

    // A ClientToken names one import: the same request answers it again, another one conflicts.
    let first = request("tokened")
        .client_token("token-1")
        .send()
        .await
        .unwrap();
    let first = first.import_table_description().unwrap();
    let again = request("tokened")
        .client_token("token-1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.import_table_description().unwrap().import_arn(),
        first.import_arn()
    );
    assert_eq!(first.client_token(), Some("token-1"));
    let (code, _) = error_of(request("other").client_token("token-1").send().await);
    assert_eq!(code, "ImportConflictException");
    let arn = first.import_arn().unwrap().to_string();
    settled(&client, &arn).await;

    // The table exists.
    let (code, message) = error_of(request("tokened").send().await);
    assert_eq!(code, "ResourceInUseException");
    assert_eq!(message, "Table already exists: tokened");

    // Front-end validation, and CreateTable's checks named under tableCreationParameters.
    let (code, message) = error_of(
        client
            .import_table()
            .s3_bucket_source(source("bad bucket", ""))
            .input_format(InputFormat::from("XML"))
            .table_creation_parameters(parameters("x!", false))
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert!(
        message.starts_with("2 validation errors detected: "),
        "{message}"
    );
    assert!(
        message.contains("at 's3BucketSource.s3Bucket'"),
        "{message}"
    );
    assert!(message.contains("Value 'XML' at 'inputFormat' failed to satisfy constraint: Member must satisfy enum value set: [DYNAMODB_JSON, ION, CSV]"), "{message}");
    let (code, message) = error_of(request("x!").send().await);
    assert_eq!(code, "ValidationException");
    assert!(
        message.contains("at 'tableCreationParameters.tableName'"),
        "{message}"
    );
    let bad_delimiter = InputFormatOptions::builder()
        .csv(CsvOptions::builder().delimiter("#").build())
        .build();
    let (code, message) = error_of(
        request("csv")
            .input_format(InputFormat::Csv)
            .input_format_options(bad_delimiter)
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert!(
        message.contains("'inputFormatOptions.csv.delimiter'"),
        "{message}"
    );

    // DescribeImport.
    let unknown = format!(
        "{}/import/01576616366715-b4e58d3a",
        first.table_arn().unwrap()
    );
    let (code, message) = error_of(client.describe_import().import_arn(&unknown).send().await);
    assert_eq!(code, "ImportNotFoundException");
    assert!(message.contains(&unknown), "{message}");
    let (code, _) = error_of(client.describe_import().import_arn("short").send().await);
    assert_eq!(code, "ValidationException");

    // ListImports: a filter by table, pages of PageSize, NextToken.
    for table in ["second", "third"] {
        let started = request(table).send().await.unwrap();
        settled(
            &client,
            started
                .import_table_description()
                .unwrap()
                .import_arn()
                .unwrap(),
        )
        .await;
    }
    let all = client.list_imports().send().await.unwrap();
    assert_eq!(all.import_summary_list().len(), 3);
    let mut seen = Vec::new();
    let mut token = None;
    for _ in 0..5 {
        let page = client
            .list_imports()
            .page_size(1)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert_eq!(page.import_summary_list().len(), 1);
        seen.push(
            page.import_summary_list()[0]
                .import_arn()
                .unwrap()
                .to_string(),
        );
        token = page.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    let listed: Vec<String> = all
        .import_summary_list()
        .iter()
        .map(|s| s.import_arn().unwrap().to_string())
        .collect();
    assert_eq!(seen, listed);
    let table_arn = first.table_arn().unwrap();
    let filtered = client
        .list_imports()
        .table_arn(table_arn)
        .send()
        .await
        .unwrap();
    let summaries = filtered.import_summary_list();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].import_status(), Some(&ImportStatus::Completed));
    assert_eq!(
        summaries[0].input_format(),
        Some(&InputFormat::DynamodbJson)
    );
    let (code, message) = error_of(client.list_imports().page_size(26).send().await);
    assert_eq!(code, "ValidationException");
    assert!(message.contains("Value '26' at 'pageSize'"), "{message}");
    let (code, _) = error_of(client.list_imports().next_token("zz").send().await);
    assert_eq!(code, "ValidationException");
}

#[tokio::test]
async fn an_import_from_a_directory_survives_a_kill_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (data, source_dir) = (dir.path().join("data"), dir.path().join("s3"));
    let objects = source_dir.join(BUCKET).join("big");
    std::fs::create_dir_all(&objects).unwrap();
    let items: Vec<Item> = (0..4_000).map(rich_item).collect();
    let (written, last) = items.split_at(3_000);
    for (i, chunk) in written.chunks(1_000).enumerate() {
        let bytes = gzip(&lines(chunk, json_line));
        std::fs::write(objects.join(format!("{i}.json.gz")), bytes).unwrap();
    }
    // The last object is a named pipe nobody writes yet: the import waits on it, mid-way.
    let pending = objects.join("9-pending.json.gz");
    let made = std::process::Command::new("mkfifo").arg(&pending).status();
    assert!(made.unwrap().success(), "mkfifo");
    let (data_arg, source_arg) = (data.to_str().unwrap(), source_dir.to_str().unwrap());
    let start = || HavenServer::start_with(&["--data-dir", data_arg, "--s3-dir", source_arg]);
    let server = start();
    let client = server.client();
    let arn = import(
        &client,
        "big/",
        InputFormat::DynamodbJson,
        InputCompressionType::Gzip,
        parameters("big", true),
        None,
    )
    .await;

    // While it runs the table is CREATING: closed to the data plane, DeleteTable and UpdateTable.
    let table = client
        .describe_table()
        .table_name("big")
        .send()
        .await
        .unwrap();
    assert_eq!(
        table.table().unwrap().table_status(),
        Some(&TableStatus::Creating)
    );
    let (code, _) = error_of(client.scan().table_name("big").send().await);
    assert_eq!(code, "ResourceNotFoundException");
    let (code, _) = error_of(client.delete_table().table_name("big").send().await);
    assert_eq!(code, "ResourceInUseException");
    let update = client
        .update_table()
        .table_name("big")
        .billing_mode(BillingMode::Provisioned)
        .provisioned_throughput(
            aws_sdk_dynamodb::types::ProvisionedThroughput::builder()
                .read_capacity_units(5)
                .write_capacity_units(5)
                .build()
                .unwrap(),
        )
        .send()
        .await;
    let (code, message) = error_of(update);
    assert_eq!(code, "ResourceInUseException");
    assert!(message.contains("Table is being created: big"), "{message}");
    let running = client
        .describe_import()
        .import_arn(&arn)
        .send()
        .await
        .unwrap();
    let running = running.import_table_description().unwrap();
    assert_eq!(running.import_status(), Some(&ImportStatus::InProgress));

    // Killed mid-way: the next start runs the import again, and it completes whole.
    server.kill();
    std::fs::remove_file(&pending).unwrap();
    std::fs::write(&pending, gzip(&lines(last, json_line))).unwrap();
    let server = start();
    let client = server.client();
    let description = settled(&client, &arn).await;
    assert_completed(&description, 4_000, 0);
    assert_eq!(scan_all(&client, "big").await, model(&items));
    drop(server);

    // The import's record outlives the server.
    let server = start();
    let client = server.client();
    let listed = client.list_imports().send().await.unwrap();
    assert_eq!(
        listed.import_summary_list()[0].import_arn(),
        Some(arn.as_str())
    );
    let description = settled(&client, &arn).await;
    assert_eq!(description.imported_item_count(), 4_000);
}

/// `haven import` (the operator command over ImportTable and DescribeImport) against a server
/// reading a directory: it waits for the end, and a failure exits non-zero with its code.
#[tokio::test]
async fn the_import_command_line_waits_for_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (data, source_dir) = (dir.path().join("data"), dir.path().join("s3"));
    let objects = source_dir.join(BUCKET).join("csv");
    std::fs::create_dir_all(&objects).unwrap();
    let items = csv_items();
    std::fs::write(objects.join("a.csv"), csv_text(&items, ',', true)).unwrap();
    let (data_arg, source_arg) = (data.to_str().unwrap(), source_dir.to_str().unwrap());
    let server = HavenServer::start_with(&["--data-dir", data_arg, "--s3-dir", source_arg]);
    let haven_import = |table: &str, bucket: &str| {
        let endpoint = server.endpoint();
        let args = [
            "import",
            "--endpoint",
            &endpoint,
            "--bucket",
            bucket,
            "--prefix",
            "csv/",
            "--format",
            "csv",
            "--table",
            table,
            "--key",
            "pk:S",
            "--key",
            "sk:N",
        ];
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(args)
            .output()
            .expect("haven import runs");
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (
            output.status.success(),
            text(&output.stdout),
            text(&output.stderr),
        )
    };
    let (ok, stdout, stderr) = haven_import("from-cli", BUCKET);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(":table/from-cli/import/"), "{stdout}");
    assert!(stderr.contains("40 items imported"), "{stderr}");
    let client = server.client();
    assert_eq!(scan_all(&client, "from-cli").await, model(&items));
    let (ok, _, stderr) = haven_import("not-from-cli", "no-such-bucket");
    assert!(!ok);
    assert!(stderr.contains("S3NoSuchBucket"), "{stderr}");
}
