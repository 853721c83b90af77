//! Checks the source table and creates its copy in Haven with the same schema: keys, local and
//! global secondary indexes, billing mode and throughput, stream, time to live and tags.
//!
//! The copy is created through Haven's own CreateTable, so it is validated exactly as a client's
//! table would be. It gets the source's stream setting too: after a cut-over, the way back is a
//! mirror in the other direction, which reads this table's stream.

use aws_sdk_dynamodb::types::{
    KeySchemaElement, Projection, ProvisionedThroughputDescription, TableDescription,
    TimeToLiveStatus,
};
use haven_api::{MirrorOrigin, Service};
use serde_json::{Value, json};

use crate::source::{Source, describe, retrying};
use crate::status::TableStatus;

/// What the mirror needs to know of the source table.
pub struct SourceTable {
    pub description: TableDescription,
    pub stream_arn: String,
}

/// Reads the source table and checks that it can be mirrored: it must have a stream that carries
/// new images.
pub async fn inspect(
    source: &Source,
    status: &std::sync::Arc<TableStatus>,
) -> anyhow::Result<SourceTable> {
    let table = &status.table;
    let answer = retrying(status, "DescribeTable", || {
        source.tables.describe_table().table_name(table).send()
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot describe source table {table}: {}", describe(&e)))?;
    let description = answer
        .table
        .ok_or_else(|| anyhow::anyhow!("the source answered no description of table {table}"))?;
    let view = description
        .stream_specification()
        .filter(|spec| spec.stream_enabled())
        .and_then(|spec| spec.stream_view_type())
        .map(|view| view.as_str().to_string());
    let stream_arn = description.latest_stream_arn().map(str::to_string);
    match (view.as_deref(), stream_arn) {
        (Some("NEW_IMAGE" | "NEW_AND_OLD_IMAGES"), Some(stream_arn)) => Ok(SourceTable {
            description,
            stream_arn,
        }),
        (Some(view), _) => anyhow::bail!(
            "source table {table} has a stream of view type {view}, which does not carry the new \
             item: mirroring needs NEW_IMAGE or NEW_AND_OLD_IMAGES (disable the stream and enable \
             it again with `aws dynamodb update-table --table-name {table} --stream-specification \
             StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES`)"
        ),
        _ => anyhow::bail!(
            "source table {table} has no stream: mirroring follows the table's DynamoDB stream; \
             enable one with `aws dynamodb update-table --table-name {table} \
             --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES`"
        ),
    }
}

/// Creates the copy, read-only (marked as a mirror of `origin`), with the source's time to live.
pub async fn create_copy(
    service: &Service,
    source: &Source,
    status: &std::sync::Arc<TableStatus>,
    table: &SourceTable,
    origin: MirrorOrigin,
) -> anyhow::Result<()> {
    let name = &status.table;
    let tags = source_tags(source, status, &table.description).await?;
    let request = create_table_request(name, &table.description, tags);
    service
        .call("CreateTable", request)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the copy of {name}: {e}"))?;
    service.set_mirror_origin(name, Some(origin)).await?;
    let ttl = retrying(status, "DescribeTimeToLive", || {
        source
            .tables
            .describe_time_to_live()
            .table_name(name)
            .send()
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot read the time to live of {name}: {}", describe(&e)))?;
    let ttl = ttl.time_to_live_description();
    if let (Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling), Some(attribute)) = (
        ttl.and_then(|t| t.time_to_live_status()),
        ttl.and_then(|t| t.attribute_name()),
    ) {
        let request = json!({"TableName": name, "TimeToLiveSpecification": {"Enabled": true, "AttributeName": attribute}});
        service
            .call("UpdateTimeToLive", request)
            .await
            .map_err(|e| anyhow::anyhow!("cannot set the time to live of {name}: {e}"))?;
    }
    Ok(())
}

/// The source table's tags (none when the source does not keep tags).
async fn source_tags(
    source: &Source,
    status: &std::sync::Arc<TableStatus>,
    description: &TableDescription,
) -> anyhow::Result<Vec<Value>> {
    let Some(arn) = description.table_arn() else {
        return Ok(Vec::new());
    };
    let answer = retrying(status, "ListTagsOfResource", || {
        source
            .tables
            .list_tags_of_resource()
            .resource_arn(arn)
            .send()
    })
    .await;
    match answer {
        Ok(answer) => Ok(answer
            .tags()
            .iter()
            .map(|tag| json!({"Key": tag.key(), "Value": tag.value()}))
            .collect()),
        Err(error) => {
            tracing::warn!(table = %status.table, error = %describe(&error), "cannot read the source's tags; the copy has none");
            Ok(Vec::new())
        }
    }
}

fn key_schema(elements: &[KeySchemaElement]) -> Value {
    elements
        .iter()
        .map(|k| json!({"AttributeName": k.attribute_name(), "KeyType": k.key_type().as_str()}))
        .collect()
}

fn projection(projection: Option<&Projection>) -> Value {
    let kind = projection
        .and_then(|p| p.projection_type())
        .map_or("ALL", |t| t.as_str());
    let mut value = json!({"ProjectionType": kind});
    if let Some(attributes) = projection.map(|p| p.non_key_attributes())
        && !attributes.is_empty()
    {
        value["NonKeyAttributes"] = json!(attributes);
    }
    value
}

fn throughput(throughput: Option<&ProvisionedThroughputDescription>) -> Value {
    let units = |n: Option<i64>| n.filter(|n| *n > 0).unwrap_or(1);
    json!({
        "ReadCapacityUnits": units(throughput.and_then(|t| t.read_capacity_units())),
        "WriteCapacityUnits": units(throughput.and_then(|t| t.write_capacity_units())),
    })
}

/// Haven's CreateTable request for a copy of `description`.
fn create_table_request(name: &str, description: &TableDescription, tags: Vec<Value>) -> Value {
    let on_demand = description
        .billing_mode_summary()
        .and_then(|b| b.billing_mode())
        .is_some_and(|mode| mode.as_str() == "PAY_PER_REQUEST");
    let mut request = json!({
        "TableName": name,
        "AttributeDefinitions": description.attribute_definitions().iter()
            .map(|d| json!({"AttributeName": d.attribute_name(), "AttributeType": d.attribute_type().as_str()}))
            .collect::<Value>(),
        "KeySchema": key_schema(description.key_schema()),
        "BillingMode": if on_demand { "PAY_PER_REQUEST" } else { "PROVISIONED" },
    });
    if !on_demand {
        request["ProvisionedThroughput"] = throughput(description.provisioned_throughput());
    }
    let globals: Vec<Value> = description
        .global_secondary_indexes()
        .iter()
        .map(|index| {
            let mut spec = json!({
                "IndexName": index.index_name(),
                "KeySchema": key_schema(index.key_schema()),
                "Projection": projection(index.projection()),
            });
            if !on_demand {
                spec["ProvisionedThroughput"] = throughput(index.provisioned_throughput());
            }
            spec
        })
        .collect();
    if !globals.is_empty() {
        request["GlobalSecondaryIndexes"] = Value::Array(globals);
    }
    let locals: Vec<Value> = description
        .local_secondary_indexes()
        .iter()
        .map(|index| {
            json!({
                "IndexName": index.index_name(),
                "KeySchema": key_schema(index.key_schema()),
                "Projection": projection(index.projection()),
            })
        })
        .collect();
    if !locals.is_empty() {
        request["LocalSecondaryIndexes"] = Value::Array(locals);
    }
    if let Some(spec) = description.stream_specification() {
        request["StreamSpecification"] = json!({
            "StreamEnabled": spec.stream_enabled(),
            "StreamViewType": spec.stream_view_type().map(|v| v.as_str()),
        });
    }
    if !tags.is_empty() {
        request["Tags"] = Value::Array(tags);
    }
    request
}
