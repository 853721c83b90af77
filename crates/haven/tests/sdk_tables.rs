//! Table operations through the AWS SDK for Rust: CreateTable variants (and the members for
//! features Haven does not offer yet: accepted when it can honour them, else refused), every
//! DescribeTable field, ListTables paging, DeleteTable, and the typed errors DynamoDB answers.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::delete_table::DeleteTableError;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, OnDemandThroughput, Projection, ProjectionType, ProvisionedThroughput,
    ScalarAttributeType, SseSpecification, SseType, StreamSpecification, StreamViewType,
    TableDescription, TableStatus, WarmThroughput,
};
use common::{HavenServer, create_table, error_of, table_keys};

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn throughput(read: i64, write: i64) -> ProvisionedThroughput {
    ProvisionedThroughput::builder()
        .read_capacity_units(read)
        .write_capacity_units(write)
        .build()
        .unwrap()
}

async fn describe(client: &Client, name: &str) -> TableDescription {
    client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .unwrap()
        .table
        .expect("DescribeTable returns a Table")
}

fn is_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test]
async fn create_on_demand_hash_table_describes_every_field() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let before = now_seconds();
    let (schema, definitions) = table_keys(&[("id", "S")]);
    let created = client
        .create_table()
        .table_name("people")
        .set_key_schema(Some(schema.clone()))
        .set_attribute_definitions(Some(definitions.clone()))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap()
        .table_description
        .expect("CreateTable returns a TableDescription");
    let after = now_seconds();

    assert_eq!(created.table_name(), Some("people"));
    assert_eq!(created.table_status(), Some(&TableStatus::Active));
    assert_eq!(created.key_schema(), schema.as_slice());
    assert_eq!(created.attribute_definitions(), definitions.as_slice());
    assert_eq!(created.item_count(), Some(0));
    assert_eq!(created.table_size_bytes(), Some(0));
    assert_eq!(
        created.table_arn(),
        Some("arn:aws:dynamodb:us-east-1:000000000000:table/people")
    );
    let table_id = created.table_id().expect("TableId");
    assert!(is_uuid(table_id), "TableId {table_id:?} is not a UUID");
    let created_at = created
        .creation_date_time()
        .expect("CreationDateTime")
        .as_secs_f64();
    assert!(
        created_at >= before - 1.0 && created_at <= after + 1.0,
        "CreationDateTime {created_at} outside [{before}, {after}]"
    );
    let billing = created.billing_mode_summary().expect("BillingModeSummary");
    assert_eq!(billing.billing_mode(), Some(&BillingMode::PayPerRequest));
    assert_eq!(
        billing
            .last_update_to_pay_per_request_date_time()
            .map(|t| t.as_secs_f64()),
        Some(created_at)
    );
    let provisioned = created
        .provisioned_throughput()
        .expect("ProvisionedThroughput");
    assert_eq!(provisioned.read_capacity_units(), Some(0));
    assert_eq!(provisioned.write_capacity_units(), Some(0));
    assert_eq!(provisioned.number_of_decreases_today(), Some(0));
    assert_eq!(created.deletion_protection_enabled(), Some(false));

    // DescribeTable answers the same description.
    let described = describe(&client, "people").await;
    assert_eq!(described, created);
}

#[tokio::test]
async fn create_provisioned_hash_range_table() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let (schema, definitions) = table_keys(&[("device", "B"), ("at", "N")]);
    client
        .create_table()
        .table_name("readings.v2")
        .set_key_schema(Some(schema.clone()))
        .set_attribute_definitions(Some(definitions.clone()))
        .provisioned_throughput(throughput(5, 7))
        .send()
        .await
        .unwrap();
    let table = describe(&client, "readings.v2").await;
    assert_eq!(table.key_schema(), schema.as_slice());
    assert_eq!(table.key_schema()[0].key_type(), &KeyType::Hash);
    assert_eq!(table.key_schema()[1].key_type(), &KeyType::Range);
    assert_eq!(
        table.attribute_definitions()[1].attribute_type(),
        &ScalarAttributeType::N
    );
    let provisioned = table.provisioned_throughput().unwrap();
    assert_eq!(provisioned.read_capacity_units(), Some(5));
    assert_eq!(provisioned.write_capacity_units(), Some(7));
    assert_eq!(provisioned.number_of_decreases_today(), Some(0));
    // A table that was never on demand carries no BillingModeSummary (DynamoDB and DynamoDB Local
    // both leave it out when the mode is the PROVISIONED default).
    assert!(table.billing_mode_summary().is_none());
    assert_eq!(
        table.table_arn(),
        Some("arn:aws:dynamodb:us-east-1:000000000000:table/readings.v2")
    );
}

#[tokio::test]
async fn region_flag_is_named_in_table_arn() {
    let server = HavenServer::start_with(&["--in-memory", "--region", "eu-west-3"]);
    let client = server.client();
    create_table(&client, "orders", &[("id", "S")]).await;
    let table = describe(&client, "orders").await;
    assert_eq!(
        table.table_arn(),
        Some("arn:aws:dynamodb:eu-west-3:000000000000:table/orders")
    );
}

#[tokio::test]
async fn item_count_and_table_size_follow_writes() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "sized", &[("id", "S")]).await;
    let put = |id: &str, extra: Option<(&str, &str)>| {
        let mut request = client
            .put_item()
            .table_name("sized")
            .item("id", AttributeValue::S(id.into()));
        if let Some((name, value)) = extra {
            request = request.item(name, AttributeValue::S(value.into()));
        }
        request.send()
    };
    // Item sizes: attribute name bytes + string value bytes.
    put("a1", None).await.unwrap(); // 2 + 2 = 4
    put("b22", Some(("name", "hello"))).await.unwrap(); // 2 + 3 + 4 + 5 = 14
    let table = describe(&client, "sized").await;
    assert_eq!(table.item_count(), Some(2));
    assert_eq!(table.table_size_bytes(), Some(18));

    // Overwriting changes the size, not the count.
    put("a1", Some(("name", "x"))).await.unwrap(); // 4 + 4 + 1 = 9
    let table = describe(&client, "sized").await;
    assert_eq!(table.item_count(), Some(2));
    assert_eq!(table.table_size_bytes(), Some(23));

    client
        .delete_item()
        .table_name("sized")
        .key("id", AttributeValue::S("b22".into()))
        .send()
        .await
        .unwrap();
    // Deleting a missing item changes nothing.
    client
        .delete_item()
        .table_name("sized")
        .key("id", AttributeValue::S("zzz".into()))
        .send()
        .await
        .unwrap();
    let table = describe(&client, "sized").await;
    assert_eq!(table.item_count(), Some(1));
    assert_eq!(table.table_size_bytes(), Some(9));
}

#[tokio::test]
async fn list_tables_pages_through_every_table_in_order() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let mut names: Vec<String> = (0..7).map(|i| format!("table-{i}")).collect();
    names.push("Alpha".into()); // upper case sorts first (byte order)
    for name in names.iter().rev() {
        create_table(&client, name, &[("id", "S")]).await;
    }
    names.sort();

    // The SDK's paginator follows LastEvaluatedTableName.
    let listed: Vec<String> = client
        .list_tables()
        .into_paginator()
        .page_size(3)
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(listed, names);

    // Manual paging: Limit and ExclusiveStartTableName.
    let first = client.list_tables().limit(3).send().await.unwrap();
    assert_eq!(first.table_names(), &names[0..3]);
    assert_eq!(first.last_evaluated_table_name(), Some(names[2].as_str()));
    let second = client
        .list_tables()
        .limit(3)
        .exclusive_start_table_name(names[2].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(second.table_names(), &names[3..6]);
    assert_eq!(second.last_evaluated_table_name(), Some(names[5].as_str()));
    // The last page is exactly full: no LastEvaluatedTableName (as DynamoDB Local answers).
    let last = client
        .list_tables()
        .limit(2)
        .exclusive_start_table_name(names[5].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(last.table_names(), &names[6..8]);
    assert_eq!(last.last_evaluated_table_name(), None);

    // The start name need not exist.
    let after = client
        .list_tables()
        .exclusive_start_table_name("table-35")
        .send()
        .await
        .unwrap();
    assert_eq!(after.table_names(), &names[5..8]);
    // Without Limit everything comes in one page.
    let all = client.list_tables().send().await.unwrap();
    assert_eq!(all.table_names(), names.as_slice());
    assert_eq!(all.last_evaluated_table_name(), None);
}

#[tokio::test]
async fn list_tables_rejects_limit_out_of_range() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let (code, message) = error_of(client.list_tables().limit(0).send().await);
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
    );
    let (code, message) = error_of(client.list_tables().limit(101).send().await);
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "1 validation error detected: Value '101' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 100"
    );
}

#[tokio::test]
async fn delete_table_removes_it_and_its_items() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "doomed", &[("id", "S")]).await;
    create_table(&client, "kept", &[("id", "S")]).await;
    let original_id = describe(&client, "doomed").await.table_id.unwrap();
    client
        .put_item()
        .table_name("doomed")
        .item("id", AttributeValue::S("x".into()))
        .send()
        .await
        .unwrap();

    let deleted = client
        .delete_table()
        .table_name("doomed")
        .send()
        .await
        .unwrap()
        .table_description
        .expect("DeleteTable returns a TableDescription");
    assert_eq!(deleted.table_name(), Some("doomed"));
    assert_eq!(deleted.table_status(), Some(&TableStatus::Deleting));
    assert_eq!(deleted.item_count(), Some(1));

    let error = client
        .describe_table()
        .table_name("doomed")
        .send()
        .await
        .expect_err("the table is gone")
        .into_service_error();
    assert!(
        matches!(error, DescribeTableError::ResourceNotFoundException(_)),
        "{error:?}"
    );
    let listed = client.list_tables().send().await.unwrap();
    assert_eq!(listed.table_names(), ["kept"]);

    // A table re-created under the same name is a new, empty table.
    create_table(&client, "doomed", &[("id", "S")]).await;
    let table = describe(&client, "doomed").await;
    assert_ne!(table.table_id.as_deref(), Some(original_id.as_str()));
    assert_eq!(table.item_count(), Some(0));
    let got = client
        .get_item()
        .table_name("doomed")
        .key("id", AttributeValue::S("x".into()))
        .send()
        .await
        .unwrap();
    assert!(got.item.is_none(), "old item visible: {:?}", got.item);
}

#[tokio::test]
async fn missing_tables_answer_resource_not_found() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let error = client
        .describe_table()
        .table_name("nowhere")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let DescribeTableError::ResourceNotFoundException(e) = error else {
        panic!("expected ResourceNotFoundException, got {error:?}");
    };
    assert_eq!(
        e.message(),
        Some("Requested resource not found: Table: nowhere not found")
    );

    let error = client
        .delete_table()
        .table_name("nowhere")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let DeleteTableError::ResourceNotFoundException(e) = error else {
        panic!("expected ResourceNotFoundException, got {error:?}");
    };
    assert_eq!(
        e.message(),
        Some("Requested resource not found: Table: nowhere not found")
    );

    // Data-plane operations use DynamoDB's shorter wording.
    let (code, message) = error_of(
        client
            .get_item()
            .table_name("nowhere")
            .key("id", AttributeValue::S("x".into()))
            .send()
            .await,
    );
    assert_eq!(code, "ResourceNotFoundException");
    assert_eq!(message, "Requested resource not found");
    let (code, _) = error_of(
        client
            .put_item()
            .table_name("nowhere")
            .item("id", AttributeValue::S("x".into()))
            .send()
            .await,
    );
    assert_eq!(code, "ResourceNotFoundException");
}

#[tokio::test]
async fn creating_an_existing_table_is_resource_in_use() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "twice", &[("id", "S")]).await;
    let (schema, definitions) = table_keys(&[("other", "N")]);
    let error = client
        .create_table()
        .table_name("twice")
        .set_key_schema(Some(schema))
        .set_attribute_definitions(Some(definitions))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let CreateTableError::ResourceInUseException(e) = error else {
        panic!("expected ResourceInUseException, got {error:?}");
    };
    assert_eq!(e.message(), Some("Table already exists: twice"));
    // The original schema is untouched.
    let table = describe(&client, "twice").await;
    assert_eq!(table.key_schema()[0].attribute_name(), "id");
}

type Builder = aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
/// A CreateTable request (built on the fluent builder) and the ValidationException message it gets.
type Case<'a, M> = (Box<dyn FnOnce(Builder) -> Builder + 'a>, M);

/// Sends each case's CreateTable, checks its ValidationException message, and that none of them
/// created a table.
async fn expect_validation_errors<M: AsRef<str>>(client: &Client, cases: Vec<Case<'_, M>>) {
    for (build, expected) in cases {
        let (code, message) = error_of(build(client.create_table()).send().await);
        assert_eq!(code, "ValidationException", "{message}");
        assert_eq!(message, expected.as_ref());
    }
    let listed = client.list_tables().send().await.unwrap();
    assert!(listed.table_names().is_empty(), "{listed:?}");
}

#[tokio::test]
async fn create_table_validation_errors() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let (schema, definitions) = table_keys(&[("id", "S")]);
    let valid = |b: Builder| {
        b.set_key_schema(Some(schema.clone()))
            .set_attribute_definitions(Some(definitions.clone()))
            .billing_mode(BillingMode::PayPerRequest)
    };

    let cases: Vec<Case<&str>> = vec![
        (
            Box::new(|b| valid(b).table_name("ab")),
            "1 validation error detected: Value 'ab' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 3",
        ),
        (
            Box::new(|b| valid(b).table_name("bad name!")),
            "1 validation error detected: Value 'bad name!' at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ),
        (
            Box::new(|b| {
                valid(b)
                    .table_name("both")
                    .provisioned_throughput(throughput(1, 1))
            }),
            "One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST",
        ),
        (
            Box::new(|b| {
                valid(b)
                    .table_name("neither")
                    .billing_mode(BillingMode::Provisioned)
            }),
            "One or more parameter values were invalid: ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED",
        ),
        (
            Box::new(|b| {
                valid(b)
                    .table_name("zero")
                    .billing_mode(BillingMode::Provisioned)
                    .provisioned_throughput(throughput(0, 1))
            }),
            "1 validation error detected: Value '0' at 'provisionedThroughput.readCapacityUnits' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ),
        (
            Box::new(|b| {
                b.table_name("undefined")
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name("id")
                            .key_type(KeyType::Hash)
                            .build()
                            .unwrap(),
                    )
                    .attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name("other")
                            .attribute_type(ScalarAttributeType::S)
                            .build()
                            .unwrap(),
                    )
                    .billing_mode(BillingMode::PayPerRequest)
            }),
            "One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [id], AttributeDefinitions: [other]",
        ),
        (
            Box::new(|b| {
                let (schema, mut definitions) = table_keys(&[("id", "S")]);
                definitions.push(
                    AttributeDefinition::builder()
                        .attribute_name("extra")
                        .attribute_type(ScalarAttributeType::N)
                        .build()
                        .unwrap(),
                );
                b.table_name("extra")
                    .set_key_schema(Some(schema))
                    .set_attribute_definitions(Some(definitions))
                    .billing_mode(BillingMode::PayPerRequest)
            }),
            "One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions",
        ),
        (
            Box::new(|b| {
                let (mut schema, definitions) = table_keys(&[("a", "S"), ("b", "S")]);
                schema.reverse();
                b.table_name("range-first")
                    .set_key_schema(Some(schema))
                    .set_attribute_definitions(Some(definitions))
                    .billing_mode(BillingMode::PayPerRequest)
            }),
            "Invalid KeySchema: The first KeySchemaElement is not a HASH key type",
        ),
        (
            Box::new(|b| {
                let (_, definitions) = table_keys(&[("a", "S"), ("b", "S")]);
                let hash = |name: &str| {
                    KeySchemaElement::builder()
                        .attribute_name(name)
                        .key_type(KeyType::Hash)
                        .build()
                        .unwrap()
                };
                b.table_name("two-hashes")
                    .key_schema(hash("a"))
                    .key_schema(hash("b"))
                    .set_attribute_definitions(Some(definitions))
                    .billing_mode(BillingMode::PayPerRequest)
            }),
            "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type",
        ),
    ];
    expect_validation_errors(&client, cases).await;
}

fn stream(enabled: bool, view: Option<&str>) -> StreamSpecification {
    StreamSpecification::builder()
        .stream_enabled(enabled)
        .set_stream_view_type(view.map(StreamViewType::from))
        .build()
        .unwrap()
}

fn sse(enabled: Option<bool>, sse_type: Option<&str>, key: Option<&str>) -> SseSpecification {
    SseSpecification::builder()
        .set_enabled(enabled)
        .set_sse_type(sse_type.map(SseType::from))
        .set_kms_master_key_id(key.map(str::to_string))
        .build()
}

#[tokio::test]
async fn a_disabled_stream_and_the_default_encryption_are_accepted() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let (schema, definitions) = table_keys(&[("id", "S")]);
    for (name, sse) in [
        ("plain", sse(Some(false), None, None)),
        ("empty", sse(None, None, None)),
    ] {
        client
            .create_table()
            .table_name(name)
            .set_key_schema(Some(schema.clone()))
            .set_attribute_definitions(Some(definitions.clone()))
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(stream(false, None))
            .sse_specification(sse)
            .send()
            .await
            .unwrap();
        let table = describe(&client, name).await;
        assert_eq!(table.stream_specification(), None);
        assert_eq!(table.latest_stream_arn(), None);
        assert_eq!(table.sse_description(), None);
    }
}

#[tokio::test]
async fn create_table_refuses_what_haven_cannot_honour() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let (schema, definitions) = table_keys(&[("id", "S")]);
    let valid = |b: Builder| {
        b.table_name("features")
            .set_key_schema(Some(schema.clone()))
            .set_attribute_definitions(Some(definitions.clone()))
            .billing_mode(BillingMode::PayPerRequest)
    };
    let invalid = |m: &str| format!("One or more parameter values were invalid: {m}");
    let global_index = GlobalSecondaryIndex::builder()
        .index_name("by-id")
        .key_schema(schema[0].clone())
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .on_demand_throughput(
            OnDemandThroughput::builder()
                .max_read_request_units(0)
                .build(),
        )
        .build()
        .unwrap();

    let cases: Vec<Case<String>> = vec![
        // What Haven does not offer yet, named; DynamoDB's ranges of capacity settings.
        (
            Box::new(|b| valid(b).sse_specification(sse(Some(true), None, None))),
            "SSESpecification with KMS encryption is not supported by this version of Haven".into(),
        ),
        (
            Box::new(|b| valid(b).sse_specification(sse(None, Some("KMS"), Some("alias/mine")))),
            "SSESpecification with KMS encryption is not supported by this version of Haven".into(),
        ),
        (
            Box::new(|b| {
                valid(b).on_demand_throughput(
                    OnDemandThroughput::builder()
                        .max_read_request_units(10)
                        .max_write_request_units(0)
                        .build(),
                )
            }),
            invalid(
                "Requested MaxWriteRequestUnits for OnDemandThroughput for table is outside of valid range",
            ),
        ),
        (
            Box::new(|b| {
                valid(b).warm_throughput(
                    WarmThroughput::builder()
                        .read_units_per_second(0)
                        .build(),
                )
            }),
            invalid("Requested ReadUnitsPerSecond for WarmThroughput for table is outside of valid range"),
        ),
        (
            Box::new(|b| valid(b).resource_policy(r#"{"Version": "2012-10-17", "Statement": []}"#)),
            invalid("Invalid policy document: Could not parse the policy: Statement is empty!"),
        ),
        (
            Box::new(|b| valid(b).global_secondary_indexes(global_index)),
            invalid(
                "Requested MaxReadRequestUnits for OnDemandThroughput for index is outside of valid range",
            ),
        ),
        // DynamoDB's own checks of these members come first.
        (
            Box::new(|b| valid(b).stream_specification(stream(true, None))),
            invalid("Table is being created with a stream enabled, UpdateViewType is required"),
        ),
        (
            Box::new(|b| valid(b).stream_specification(stream(false, Some("KEYS_ONLY")))),
            invalid(
                "Table is being created with a stream disabled, UpdateViewType should not be specified",
            ),
        ),
        (
            Box::new(|b| valid(b).stream_specification(stream(true, Some("new_image")))),
            "1 validation error detected: Value 'new_image' at 'streamSpecification.streamViewType' \
             failed to satisfy constraint: Member must satisfy enum value set: [OLD_IMAGE, KEYS_ONLY, \
             NEW_AND_OLD_IMAGES, NEW_IMAGE]"
                .into(),
        ),
        (
            Box::new(|b| valid(b).sse_specification(sse(Some(true), Some("AES256"), None))),
            invalid("SSEType AES256 is not supported"),
        ),
        (
            Box::new(|b| valid(b).sse_specification(sse(Some(false), Some("KMS"), None))),
            invalid("SSEType can not be specified if Enabled is false"),
        ),
        (
            Box::new(|b| valid(b).sse_specification(sse(Some(true), None, Some("alias/mine")))),
            invalid("SSEType KMS is required if KMSMasterKeyId is specified"),
        ),
    ];
    expect_validation_errors(&client, cases).await;
}
