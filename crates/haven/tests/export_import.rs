//! Export then import, through the AWS SDK for Rust: a table of every attribute type exported by
//! one `haven serve` to moto's S3 server (DynamoDB JSON and Ion), then imported from the export's
//! data files by a fresh server, which must then hold exactly the same items; the bridge a Haven
//! export offers into AWS and back.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ExportFormat, ExportStatus, ImportStatus,
    InputCompressionType, InputFormat, KeySchemaElement, KeyType, S3BucketSource,
    ScalarAttributeType, TableCreationParameters,
};
use common::moto::Moto;
use common::{HavenServer, create_table};

const BUCKET: &str = "bridge";
const KEYS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
];

fn server(moto: &Moto) -> HavenServer {
    let args = ["--in-memory", "--s3-endpoint", moto.endpoint.as_str()];
    HavenServer::start_with_env("127.0.0.1:0", &args, &KEYS)
}

/// Item `i`, with every attribute type, some nested, and values that are easy to get wrong.
fn item(i: usize) -> HashMap<String, AttributeValue> {
    use AttributeValue::*;
    let mut item = HashMap::from([
        ("pk".to_string(), S(format!("p{}", i % 7))),
        ("sk".to_string(), N(i.to_string())),
        ("text".to_string(), S(format!("é \"{i}\"\n\t"))),
        ("number".to_string(), N(format!("-{i}.25"))),
        (
            "big".to_string(),
            N("12345678901234567890123456789012345678".into()),
        ),
        (
            "bytes".to_string(),
            B(Blob::new(vec![0, 1, 2, 255, i as u8])),
        ),
        ("flag".to_string(), Bool(i.is_multiple_of(2))),
        ("nothing".to_string(), Null(true)),
        ("strings".to_string(), Ss(vec!["a".into(), format!("s{i}")])),
        ("numbers".to_string(), Ns(vec!["1".into(), "2.5".into()])),
        (
            "blobs".to_string(),
            Bs(vec![Blob::new(vec![1]), Blob::new(vec![2])]),
        ),
        (
            "list".to_string(),
            L(vec![
                S("x".into()),
                N("3".into()),
                L(vec![Bool(false)]),
                M(HashMap::new()),
            ]),
        ),
    ]);
    let inner = HashMap::from([("deep".to_string(), S(format!("d{i}")))]);
    let map = HashMap::from([
        ("inner".to_string(), M(inner)),
        ("n".to_string(), N("0".into())),
    ]);
    item.insert("map".to_string(), M(map));
    item
}

/// An attribute value with its sets in one order, for comparing items.
fn normal(value: &AttributeValue) -> AttributeValue {
    use AttributeValue::*;
    let sorted = |mut values: Vec<String>| {
        values.sort();
        values
    };
    match value {
        Ss(values) => Ss(sorted(values.clone())),
        Ns(values) => Ns(sorted(values.clone())),
        Bs(values) => {
            let mut values = values.clone();
            values.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
            Bs(values)
        }
        L(values) => L(values.iter().map(normal).collect()),
        M(map) => M(map.iter().map(|(k, v)| (k.clone(), normal(v))).collect()),
        other => other.clone(),
    }
}

/// Every item of `table`, by key, normalised.
async fn scan(client: &Client, table: &str) -> BTreeMap<String, HashMap<String, AttributeValue>> {
    let pages = client
        .scan()
        .table_name(table)
        .into_paginator()
        .items()
        .send();
    let items: Vec<_> = pages.collect::<Result<Vec<_>, _>>().await.unwrap();
    items
        .into_iter()
        .map(|item| {
            let key = format!("{:?}/{:?}", item["pk"], item["sk"]);
            (
                key,
                item.iter().map(|(k, v)| (k.clone(), normal(v))).collect(),
            )
        })
        .collect()
}

/// Exports `table` in `format` under `prefix`; answers the key prefix of its data files.
async fn export(client: &Client, table: &str, format: ExportFormat, prefix: &str) -> String {
    let described = client.describe_table().table_name(table).send().await;
    let arn = described.unwrap().table.unwrap().table_arn.unwrap();
    let started = client
        .export_table_to_point_in_time()
        .table_arn(arn)
        .s3_bucket(BUCKET)
        .s3_prefix(prefix)
        .export_format(format)
        .send()
        .await
        .expect("ExportTableToPointInTime");
    let export_arn = started.export_description.unwrap().export_arn.unwrap();
    for _ in 0..600 {
        let described = client
            .describe_export()
            .export_arn(&export_arn)
            .send()
            .await;
        let description = described.unwrap().export_description.unwrap();
        match description.export_status {
            Some(ExportStatus::InProgress) => tokio::time::sleep(Duration::from_millis(50)).await,
            Some(ExportStatus::Completed) => {
                let id = export_arn.rsplit('/').next().unwrap();
                return format!("{prefix}/AWSDynamoDB/{id}/data/");
            }
            ref other => panic!("export {other:?}: {description:?}"),
        }
    }
    panic!("export {export_arn} still IN_PROGRESS after 30 s");
}

/// Imports the objects under `prefix` into a new table `table` keyed as the source.
async fn import(client: &Client, table: &str, format: InputFormat, prefix: &str) {
    let definition = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let parameters = TableCreationParameters::builder()
        .table_name(table)
        .attribute_definitions(definition("pk", ScalarAttributeType::S))
        .attribute_definitions(definition("sk", ScalarAttributeType::N))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .build()
        .unwrap();
    let source = S3BucketSource::builder()
        .s3_bucket(BUCKET)
        .s3_key_prefix(prefix)
        .build()
        .unwrap();
    let started = client
        .import_table()
        .s3_bucket_source(source)
        .input_format(format)
        .input_compression_type(InputCompressionType::Gzip)
        .table_creation_parameters(parameters)
        .send()
        .await
        .expect("ImportTable");
    let import_arn = started
        .import_table_description
        .unwrap()
        .import_arn
        .unwrap();
    for _ in 0..600 {
        let described = client
            .describe_import()
            .import_arn(&import_arn)
            .send()
            .await;
        let description = described.unwrap().import_table_description.unwrap();
        match description.import_status {
            Some(ImportStatus::InProgress) => tokio::time::sleep(Duration::from_millis(50)).await,
            Some(ImportStatus::Completed) => {
                assert_eq!(description.error_count, 0, "{description:?}");
                return;
            }
            ref other => panic!("import {other:?}: {description:?}"),
        }
    }
    panic!("import {import_arn} still IN_PROGRESS after 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_imported_into_a_fresh_server_holds_the_same_items() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let source = server(&moto);
    let client = source.client();
    create_table(&client, "orders", &[("pk", "S"), ("sk", "N")]).await;
    common::enable_pitr(&client, "orders").await;
    for i in 0..300 {
        let put = client
            .put_item()
            .table_name("orders")
            .set_item(Some(item(i)));
        put.send().await.expect("PutItem");
    }
    // Changes after the first writes: the export holds the table as it is now.
    for i in (0..300).step_by(10) {
        let key = item(i);
        let delete = client.delete_item().table_name("orders");
        let delete = delete
            .key("pk", key["pk"].clone())
            .key("sk", key["sk"].clone());
        delete.send().await.expect("DeleteItem");
    }
    let expected = scan(&client, "orders").await;
    assert_eq!(expected.len(), 270);

    let target = server(&moto);
    let imported = target.client();
    for (format, input, name) in [
        (
            ExportFormat::DynamodbJson,
            InputFormat::DynamodbJson,
            "from-json",
        ),
        (ExportFormat::Ion, InputFormat::Ion, "from-ion"),
    ] {
        let data = export(&client, "orders", format, name).await;
        import(&imported, name, input, &data).await;
        assert_eq!(scan(&imported, name).await, expected, "{name}");
    }
}
