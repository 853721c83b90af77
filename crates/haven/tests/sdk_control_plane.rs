//! The AWS SDK for Rust drives the remaining control plane: UpdateTable (including the stream
//! settings Haven refuses until it has streams), tags, time to live, DescribeLimits and
//! DescribeEndpoints, with DynamoDB's answers and errors.

mod common;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ProvisionedThroughput,
    ScalarAttributeType, StreamSpecification, StreamViewType, TableClass, TableDescription,
    TableStatus, Tag, TimeToLiveSpecification, TimeToLiveStatus,
};
use common::HavenServer;

async fn create_table(client: &Client, name: &str, throughput: Option<(i64, i64)>) -> String {
    let mut request = client
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        );
    request = match throughput {
        Some((read, write)) => request.provisioned_throughput(units(read, write)),
        None => request.billing_mode(BillingMode::PayPerRequest),
    };
    let created = request.send().await.unwrap();
    created.table_description.unwrap().table_arn.unwrap()
}

fn units(read: i64, write: i64) -> ProvisionedThroughput {
    ProvisionedThroughput::builder()
        .read_capacity_units(read)
        .write_capacity_units(write)
        .build()
        .unwrap()
}

async fn describe(client: &Client, name: &str) -> TableDescription {
    let described = client.describe_table().table_name(name).send().await;
    described
        .unwrap()
        .table
        .expect("DescribeTable returns a Table")
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().unwrap()
}

/// The error code and message of a failed SDK call.
fn failure<E: ProvideErrorMetadata>(error: E) -> (String, String) {
    (
        error.code().unwrap_or_default().to_owned(),
        error.message().unwrap_or_default().to_owned(),
    )
}

fn validation(message: &str) -> (String, String) {
    ("ValidationException".into(), message.into())
}

#[tokio::test]
async fn update_table_changes_throughput_and_keeps_its_history() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "orders", Some((5, 5))).await;

    let same = client
        .update_table()
        .table_name("orders")
        .provisioned_throughput(units(5, 5))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(same),
        validation(
            "The provisioned throughput for the table will not change. The requested value equals the current value. Current ReadCapacityUnits provisioned for the table: 5. Requested ReadCapacityUnits: 5. Current WriteCapacityUnits provisioned for the table: 5. Requested WriteCapacityUnits: 5. Refer to the Amazon DynamoDB Developer Guide for current limits and how to request higher limits."
        )
    );

    // Like DynamoDB, the response shows the table as it was, UPDATING, with the new timestamp.
    let updated = client
        .update_table()
        .table_name("orders")
        .provisioned_throughput(units(10, 5))
        .send()
        .await
        .unwrap()
        .table_description
        .unwrap();
    assert_eq!(updated.table_status, Some(TableStatus::Updating));
    let shown = updated.provisioned_throughput.unwrap();
    assert_eq!(shown.read_capacity_units, Some(5));
    assert!(shown.last_increase_date_time.is_some());
    assert!(shown.last_decrease_date_time.is_none());

    let table = describe(&client, "orders").await;
    assert_eq!(table.table_status, Some(TableStatus::Active));
    let throughput = table.provisioned_throughput.unwrap();
    assert_eq!(throughput.read_capacity_units, Some(10));
    assert_eq!(throughput.number_of_decreases_today, Some(0));

    client
        .update_table()
        .table_name("orders")
        .provisioned_throughput(units(10, 1))
        .send()
        .await
        .unwrap();
    let throughput = describe(&client, "orders")
        .await
        .provisioned_throughput
        .unwrap();
    assert_eq!(throughput.write_capacity_units, Some(1));
    assert_eq!(throughput.number_of_decreases_today, Some(1));
    assert!(throughput.last_decrease_date_time.is_some());

    let too_much = client
        .update_table()
        .table_name("orders")
        .provisioned_throughput(units(40_001, 1))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(too_much),
        (
            "LimitExceededException".into(),
            "The requested ReadCapacityUnits, 40001, is above the per table maximum for the account in us-east-1. Per table maximum: 40000.".into()
        )
    );
}

#[tokio::test]
async fn update_table_switches_billing_mode() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "events", Some((5, 5))).await;

    client
        .update_table()
        .table_name("events")
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let table = describe(&client, "events").await;
    let summary = table.billing_mode_summary.unwrap();
    assert_eq!(summary.billing_mode, Some(BillingMode::PayPerRequest));
    assert!(summary.last_update_to_pay_per_request_date_time.is_some());
    assert_eq!(
        table.provisioned_throughput.unwrap().read_capacity_units,
        Some(0)
    );

    let with_throughput = client
        .update_table()
        .table_name("events")
        .provisioned_throughput(units(5, 5))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(with_throughput),
        validation(
            "One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST"
        )
    );
    let without_throughput = client
        .update_table()
        .table_name("events")
        .billing_mode(BillingMode::Provisioned)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(without_throughput),
        validation(
            "One or more parameter values were invalid: ProvisionedThroughput must be specified when BillingMode is PROVISIONED"
        )
    );

    client
        .update_table()
        .table_name("events")
        .billing_mode(BillingMode::Provisioned)
        .provisioned_throughput(units(3, 4))
        .send()
        .await
        .unwrap();
    let table = describe(&client, "events").await;
    // The summary stays, naming the current mode, once a table has been on demand.
    let summary = table.billing_mode_summary.unwrap();
    assert_eq!(summary.billing_mode, Some(BillingMode::Provisioned));
    assert!(summary.last_update_to_pay_per_request_date_time.is_some());
    assert_eq!(
        table.provisioned_throughput.unwrap().write_capacity_units,
        Some(4)
    );
}

#[tokio::test]
async fn update_table_stream_settings() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "events", None).await;
    let update = |enabled: bool, view: Option<StreamViewType>| {
        client
            .update_table()
            .table_name("events")
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(enabled)
                    .set_stream_view_type(view)
                    .build()
                    .unwrap(),
            )
            .send()
    };
    let invalid = |m: &str| validation(&format!("One or more parameter values were invalid: {m}"));
    let cases = [
        (
            update(false, None).await,
            validation("Table has no stream to disable: TableName: events"),
        ),
        (
            update(true, None).await,
            invalid("If stream is being enabled then UpdateViewType is required"),
        ),
        (
            update(false, Some(StreamViewType::KeysOnly)).await,
            invalid("If stream is being disabled, then UpdateViewType must not be specified"),
        ),
    ];
    for (result, expected) in cases {
        assert_eq!(failure(result.unwrap_err()), expected);
    }
    let table = describe(&client, "events").await;
    assert_eq!(table.stream_specification, None);
    assert_eq!(table.table_status, Some(TableStatus::Active));
    update(true, Some(StreamViewType::NewImage)).await.unwrap();
    assert_eq!(
        failure(
            update(true, Some(StreamViewType::KeysOnly))
                .await
                .unwrap_err()
        ),
        validation("Table already has an enabled stream: TableName: events")
    );
    let spec = describe(&client, "events")
        .await
        .stream_specification
        .unwrap();
    assert_eq!(spec.stream_view_type, Some(StreamViewType::NewImage));
}

#[tokio::test]
async fn update_table_deletion_protection_table_class_and_errors() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "ledger", None).await;

    let nothing = client
        .update_table()
        .table_name("ledger")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(nothing),
        validation(
            "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates, SSESpecification, ReplicaUpdates, MultiAccountReplicaReady, ReplicaTransitRoleArn, MultiRegionConsistency, DeletionProtectionEnabled, OnDemandThroughput, WarmThroughput or TableClass is required"
        )
    );

    let protected = client
        .update_table()
        .table_name("ledger")
        .deletion_protection_enabled(true)
        .send()
        .await
        .unwrap()
        .table_description
        .unwrap();
    assert_eq!(protected.deletion_protection_enabled, Some(true));
    assert_eq!(protected.table_status, Some(TableStatus::Active));
    let refused = client
        .delete_table()
        .table_name("ledger")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(refused),
        validation(
            "Resource cannot be deleted as it is currently protected against deletion. Disable deletion protection first."
        )
    );
    let combined = client
        .update_table()
        .table_name("ledger")
        .deletion_protection_enabled(false)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(combined),
        validation(
            "One or more parameter values were invalid: DeletionProtection modification must be the only operation in the request"
        )
    );

    client
        .update_table()
        .table_name("ledger")
        .table_class(TableClass::StandardInfrequentAccess)
        .send()
        .await
        .unwrap();
    let table = describe(&client, "ledger").await;
    assert_eq!(
        table.table_class_summary.unwrap().table_class,
        Some(TableClass::StandardInfrequentAccess)
    );

    let missing = client
        .update_table()
        .table_name("nowhere")
        .deletion_protection_enabled(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(missing),
        (
            "ResourceNotFoundException".into(),
            "Requested resource not found: Table: nowhere not found".into()
        )
    );

    client
        .update_table()
        .table_name("ledger")
        .deletion_protection_enabled(false)
        .send()
        .await
        .unwrap();
    client
        .delete_table()
        .table_name("ledger")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn tags_are_set_listed_and_removed_by_table_arn() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let arn = create_table(&client, "tagged", None).await;

    let listed = client
        .list_tags_of_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert!(listed.tags.unwrap_or_default().is_empty());
    assert!(listed.next_token.is_none());

    client
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("team", "storage"))
        .tags(tag("env", ""))
        .send()
        .await
        .unwrap();
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("team", "api"))
        .send()
        .await
        .unwrap();
    let tags = client
        .list_tags_of_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(tags, vec![tag("team", "api"), tag("env", "")]);

    // Removing a key that is not there is fine.
    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .tag_keys("absent")
        .send()
        .await
        .unwrap();
    let tags = client
        .list_tags_of_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(tags, vec![tag("env", "")]);

    let mut fifty = client.tag_resource().resource_arn(&arn);
    for i in 0..50 {
        fifty = fifty.tags(tag(&format!("k{i}"), "v"));
    }
    let too_many = fifty.send().await.unwrap_err();
    assert_eq!(
        failure(too_many),
        validation("Number of Tags exceed the current limit for the provided ResourceArn")
    );

    let reserved = client
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("aws:owner", "me"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(reserved),
        validation("Tag Key cannot be prefixed with aws:, Key: aws:owner")
    );
    let bad_value = client
        .tag_resource()
        .resource_arn(&arn)
        .tags(tag("k", "a,b"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(bad_value),
        validation("The Tag Value provided is invalid, Value: a,b")
    );
    let empty = client
        .untag_resource()
        .resource_arn(&arn)
        .set_tag_keys(Some(vec![]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(empty),
        validation("Atleast one Tag Key needs to be provided as Input.")
    );
}

#[tokio::test]
async fn tag_operations_reject_unknown_and_malformed_arns() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let arn = create_table(&client, "present", None).await;
    let missing = arn.replace("table/present", "table/absent");

    let not_found = client
        .list_tags_of_resource()
        .resource_arn(&missing)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(not_found),
        (
            "ResourceNotFoundException".into(),
            format!("Requested resource not found: ResourceArn: {missing} not found")
        )
    );
    let not_found = client
        .tag_resource()
        .resource_arn(&missing)
        .tags(tag("a", "b"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(failure(not_found).0, "ResourceNotFoundException");

    let bare_name = client
        .list_tags_of_resource()
        .resource_arn("present")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(bare_name),
        validation(
            "One or more parameter values were invalid: ARNs must start with 'arn:': present"
        )
    );
    let index = format!("{arn}/index/by-date");
    let index_arn = client
        .list_tags_of_resource()
        .resource_arn(&index)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(index_arn),
        validation(&format!(
            "One or more parameter values were invalid: Invalid resource arn provided, only table or stream is accepted. Provided resource arn: {index}"
        ))
    );
    let other_region = arn.replace("us-east-1", "eu-west-1");
    let wrong_region = client
        .untag_resource()
        .resource_arn(&other_region)
        .tag_keys("a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(wrong_region),
        validation(&format!(
            "Invalid TableArn: Invalid ResourceArn provided as input {other_region}"
        ))
    );
}

#[tokio::test]
async fn time_to_live_setting() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "sessions", None).await;

    let describe = || async {
        client
            .describe_time_to_live()
            .table_name("sessions")
            .send()
            .await
            .unwrap()
            .time_to_live_description
            .unwrap()
    };
    let initial = describe().await;
    assert_eq!(
        initial.time_to_live_status,
        Some(TimeToLiveStatus::Disabled)
    );
    assert_eq!(initial.attribute_name, None);

    let spec = |name: &str, enabled: bool| {
        TimeToLiveSpecification::builder()
            .attribute_name(name)
            .enabled(enabled)
            .build()
            .unwrap()
    };
    let update = |name: &'static str, enabled: bool| {
        client
            .update_time_to_live()
            .table_name("sessions")
            .time_to_live_specification(spec(name, enabled))
            .send()
    };

    let disabled = update("expires", false).await.unwrap_err();
    assert_eq!(
        failure(disabled),
        validation("TimeToLive is already disabled")
    );

    let enabled = update("expires", true).await.unwrap();
    assert_eq!(
        enabled.time_to_live_specification,
        Some(spec("expires", true))
    );
    let now = describe().await;
    assert_eq!(now.time_to_live_status, Some(TimeToLiveStatus::Enabled));
    assert_eq!(now.attribute_name.as_deref(), Some("expires"));

    let again = update("expires", true).await.unwrap_err();
    assert_eq!(failure(again), validation("TimeToLive is already enabled"));
    let other = update("ttl", true).await.unwrap_err();
    assert_eq!(
        failure(other),
        validation(
            "TimeToLive is active on a different AttributeName: current AttributeName is expires"
        )
    );

    let off = update("expires", false).await.unwrap();
    assert_eq!(off.time_to_live_specification, Some(spec("expires", false)));
    assert_eq!(
        describe().await.time_to_live_status,
        Some(TimeToLiveStatus::Disabled)
    );

    let missing = client
        .describe_time_to_live()
        .table_name("nowhere")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(missing),
        (
            "ResourceNotFoundException".into(),
            "Requested resource not found: Table: nowhere not found".into()
        )
    );
}

#[tokio::test]
async fn describe_limits_and_endpoints() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    let limits = client.describe_limits().send().await.unwrap();
    assert_eq!(limits.account_max_read_capacity_units, Some(80_000));
    assert_eq!(limits.account_max_write_capacity_units, Some(80_000));
    assert_eq!(limits.table_max_read_capacity_units, Some(40_000));
    assert_eq!(limits.table_max_write_capacity_units, Some(40_000));

    // The address the client used, so that endpoint discovery keeps it on this server.
    let endpoints = client.describe_endpoints().send().await.unwrap().endpoints;
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].address, server.address.to_string());
    assert_eq!(endpoints[0].cache_period_in_minutes, 1440);
}
