//! Control-plane operations on tables: CreateTable, DescribeTable, ListTables, DeleteTable, and the
//! TableDescription they all return.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::Service;
use crate::capacity::settings::{
    OnDemandMaximum, OnDemandThroughputInput, Owner, Warm, WarmThroughputInput,
};
use haven_storage::{Snapshot, read_counter};

use crate::catalog::{
    AttributeDefinition, Catalog, IndexKind, IndexMeta, KeySchemaElement, TableMeta, Throughput,
};
use crate::error::{DynamoError, Violations};
use crate::retry::Retries;

use super::index_specs::{self, IndexInput};
use super::table_features::{
    SseSpecificationInput, StreamRequest, StreamSpecificationInput, refuse_kms,
};
use crate::streams::Requested;

/// Seconds since the epoch, as DynamoDB's timestamps are.
pub(crate) fn now() -> f64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (elapsed.as_millis() as f64) / 1000.0
}

/// Largest capacity DynamoDB accepts in a request.
const MAX_CAPACITY_UNITS: i64 = 1_000_000_000_000;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ProvisionedThroughputInput {
    pub read_capacity_units: Option<i64>,
    pub write_capacity_units: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributeDefinitionInput {
    attribute_name: Option<String>,
    attribute_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeySchemaElementInput {
    attribute_name: Option<String>,
    key_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateTableInput {
    table_name: Option<String>,
    attribute_definitions: Option<Vec<AttributeDefinitionInput>>,
    key_schema: Option<Vec<KeySchemaElementInput>>,
    billing_mode: Option<String>,
    provisioned_throughput: Option<ProvisionedThroughputInput>,
    local_secondary_indexes: Option<Vec<IndexInput>>,
    global_secondary_indexes: Option<Vec<IndexInput>>,
    tags: Option<Vec<TagInput>>,
    table_class: Option<String>,
    deletion_protection_enabled: Option<bool>,
    stream_specification: Option<StreamSpecificationInput>,
    #[serde(rename = "SSESpecification")]
    sse_specification: Option<SseSpecificationInput>,
    on_demand_throughput: Option<OnDemandThroughputInput>,
    warm_throughput: Option<WarmThroughputInput>,
    resource_policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TagInput {
    pub key: Option<String>,
    pub value: Option<String>,
}

/// Checks ProvisionedThroughput members (null, >= 1) and records violations under `field`.
pub(crate) fn check_throughput(
    violations: &mut Violations,
    field: &str,
    throughput: &ProvisionedThroughputInput,
) {
    for (member, value) in [
        ("writeCapacityUnits", throughput.write_capacity_units),
        ("readCapacityUnits", throughput.read_capacity_units),
    ] {
        match value {
            None => violations.null(&format!("{field}.{member}")),
            Some(v) if v < 1 => violations.push(format!(
                "Value '{v}' at '{field}.{member}' failed to satisfy constraint: Member must have value greater than or equal to 1"
            )),
            Some(_) => {}
        }
    }
}

/// Checks billing mode and throughput together, as DynamoDB does after the field constraints.
pub(crate) fn check_billing(
    billing_mode: &str,
    throughput: Option<&ProvisionedThroughputInput>,
) -> Result<(), DynamoError> {
    let invalid = |m: &str| {
        Err(DynamoError::validation(format!(
            "One or more parameter values were invalid: {m}"
        )))
    };
    if billing_mode == "PAY_PER_REQUEST" {
        if throughput.is_some() {
            return invalid(
                "Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST",
            );
        }
        return Ok(());
    }
    let Some(throughput) = throughput else {
        return invalid(
            "ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED",
        );
    };
    for (name, value) in [
        ("ReadCapacityUnits", throughput.read_capacity_units),
        ("WriteCapacityUnits", throughput.write_capacity_units),
    ] {
        if let Some(v) = value.filter(|v| *v > MAX_CAPACITY_UNITS) {
            return Err(DynamoError::validation(format!(
                "Given value {v} for {name} is out of bounds"
            )));
        }
    }
    Ok(())
}

pub(crate) fn enum_violation(
    violations: &mut Violations,
    field: &str,
    value: &str,
    allowed: &[&str],
) {
    if !allowed.contains(&value) {
        violations.push(format!(
            "Value '{value}' at '{field}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            allowed.join(", ")
        ));
    }
}

pub(crate) async fn create_table(
    service: &Service,
    input: CreateTableInput,
) -> Result<Value, DynamoError> {
    let meta = new_table_meta(service, &input)?;
    let name = meta.name.clone();
    let meta = service
        .catalog
        .create(meta, &mut Retries::new("CreateTable"))
        .await?
        .ok_or_else(|| DynamoError::ResourceInUse(format!("Table already exists: {name}")))?;
    Ok(json!({ "TableDescription": describe(service, &meta, settled_status(service, &meta))? }))
}

/// Validates a CreateTable request as DynamoDB does and answers the new table's metadata;
/// ImportTable's TableCreationParameters go through it too (`crate::import`).
pub(crate) fn new_table_meta(
    service: &Service,
    input: &CreateTableInput,
) -> Result<TableMeta, DynamoError> {
    let mut violations = Violations::new();
    match &input.attribute_definitions {
        None => violations.null("attributeDefinitions"),
        Some(definitions) => {
            for (i, d) in definitions.iter().enumerate() {
                let field = format!("attributeDefinitions.{}.member", i + 1);
                if d.attribute_name.is_none() {
                    violations.null(&format!("{field}.attributeName"));
                }
                match &d.attribute_type {
                    None => violations.null(&format!("{field}.attributeType")),
                    Some(t) => enum_violation(
                        &mut violations,
                        &format!("{field}.attributeType"),
                        t,
                        &["B", "N", "S"],
                    ),
                }
            }
        }
    }
    violations.name("tableName", input.table_name.as_deref());
    match &input.key_schema {
        None => violations.null("keySchema"),
        Some(keys) => {
            for (i, k) in keys.iter().enumerate() {
                let field = format!("keySchema.{}.member", i + 1);
                if k.attribute_name.is_none() {
                    violations.null(&format!("{field}.attributeName"));
                }
                match &k.key_type {
                    None => violations.null(&format!("{field}.keyType")),
                    Some(t) => enum_violation(
                        &mut violations,
                        &format!("{field}.keyType"),
                        t,
                        &["HASH", "RANGE"],
                    ),
                }
            }
            if keys.is_empty() {
                violations.push("Value '[]' at 'keySchema' failed to satisfy constraint: Member must have length greater than or equal to 1");
            } else if keys.len() > 2 {
                violations.push(format!(
                    "Value '[{}]' at 'keySchema' failed to satisfy constraint: Member must have length less than or equal to 2",
                    keys.iter()
                        .map(|k| format!(
                            "KeySchemaElement(attributeName={}, keyType={})",
                            k.attribute_name.as_deref().unwrap_or("null"),
                            k.key_type.as_deref().unwrap_or("null")
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    if let Some(mode) = &input.billing_mode {
        enum_violation(
            &mut violations,
            "billingMode",
            mode,
            &["PROVISIONED", "PAY_PER_REQUEST"],
        );
    }
    if let Some(throughput) = &input.provisioned_throughput {
        check_throughput(&mut violations, "provisionedThroughput", throughput);
    }
    if let Some(indexes) = &input.local_secondary_indexes {
        index_specs::check_fields(&mut violations, "localSecondaryIndexes", indexes);
    }
    if let Some(indexes) = &input.global_secondary_indexes {
        index_specs::check_fields(&mut violations, "globalSecondaryIndexes", indexes);
    }
    if let Some(stream) = &input.stream_specification {
        stream.check_fields(&mut violations);
    }
    if let Some(sse) = &input.sse_specification {
        sse.check_fields(&mut violations);
    }
    violations.into_result()?;

    let billing_mode = input
        .billing_mode
        .clone()
        .unwrap_or_else(|| "PROVISIONED".into());
    check_billing(&billing_mode, input.provisioned_throughput.as_ref())?;
    let (definitions, key_schema) = check_key_schema(input)?;
    let indexes = index_specs::create_table_indexes(
        input.local_secondary_indexes.as_deref(),
        input.global_secondary_indexes.as_deref(),
        &key_schema,
        &definitions,
        &billing_mode,
    )?;
    index_specs::check_definitions_used(&definitions, &key_schema, &indexes)?;
    let tags = super::tags::check_tags(input.tags.as_deref().unwrap_or_default())?;
    let stream = check_table_features(input)?;
    let on_demand = input
        .on_demand_throughput
        .as_ref()
        .map(|o| o.applied_to(None, Owner::Table))
        .transpose()?;
    let warm = input
        .warm_throughput
        .as_ref()
        .map(|w| w.applied_to(None, Owner::Table))
        .transpose()?;

    let name = input.table_name.clone().unwrap_or_default();
    let created = now();
    let window = service.config.transient_status;
    crate::transient::refuse_if_deleting(&*service.engine, &name, window, created)?;
    let arn = format!(
        "arn:aws:dynamodb:{}:{}:table/{name}",
        service.config.region, service.config.account
    );
    let resource_policies =
        super::resource_policies::for_new_table(&arn, input.resource_policy.as_deref(), created)?;
    let throughput = input
        .provisioned_throughput
        .as_ref()
        .map_or_else(Throughput::default, |t| Throughput {
            read_capacity_units: t.read_capacity_units.unwrap_or(0),
            write_capacity_units: t.write_capacity_units.unwrap_or(0),
            ..Throughput::default()
        });
    let meta = TableMeta {
        id: 0,
        arn,
        name: name.clone(),
        table_uuid: uuid::Uuid::new_v4().to_string(),
        created,
        attribute_definitions: definitions,
        key_schema,
        pay_per_request_since: (billing_mode == "PAY_PER_REQUEST").then_some(created),
        billing_mode,
        throughput,
        tags,
        time_to_live: None,
        deletion_protection: input.deletion_protection_enabled.unwrap_or(false),
        table_class: input.table_class.clone(),
        indexes,
        schema_version: 0,
        version: 0,
        streams: stream
            .iter()
            .map(|view_type| {
                let interval = service.config.streams.shard_interval;
                crate::streams::new_table_stream(view_type, (created * 1000.0) as u64, interval)
            })
            .collect(),
        global: None,
        mirror: None,
        restore: None,
        pitr: None,
        updated: None,
        resource_policies,
        contributor_insights: Vec::new(),
        on_demand,
        warm,
        import: None,
        dropped_index_ids: 0,
        key_cache: Default::default(),
    };
    Ok(meta)
}

/// The members for table features (see `table_features`): DynamoDB's own checks first, so that an
/// invalid request gets DynamoDB's answer, then Haven's refusals of what it does not offer yet.
/// Answers the view type of the stream the table is created with, if any.
fn check_table_features(input: &CreateTableInput) -> Result<Requested, DynamoError> {
    let stream = match &input.stream_specification {
        Some(stream) => stream.requested(StreamRequest::CreateTable)?,
        None => None,
    };
    let kms = match &input.sse_specification {
        Some(sse) => sse.asks_for_kms()?,
        None => false,
    };
    if kms {
        return Err(refuse_kms());
    }
    Ok(stream)
}

/// DynamoDB's semantic checks of AttributeDefinitions against KeySchema, in DynamoDB's order.
fn check_key_schema(
    input: &CreateTableInput,
) -> Result<(Vec<AttributeDefinition>, Vec<KeySchemaElement>), DynamoError> {
    let invalid = |m: String| Err(DynamoError::validation(m));
    let definitions: Vec<AttributeDefinition> = input
        .attribute_definitions
        .iter()
        .flatten()
        .map(|d| AttributeDefinition {
            attribute_name: d.attribute_name.clone().unwrap_or_default(),
            attribute_type: d.attribute_type.clone().unwrap_or_default(),
        })
        .collect();
    let keys: Vec<KeySchemaElement> = input
        .key_schema
        .iter()
        .flatten()
        .map(|k| KeySchemaElement {
            attribute_name: k.attribute_name.clone().unwrap_or_default(),
            key_type: k.key_type.clone().unwrap_or_default(),
        })
        .collect();
    let defined: Vec<&str> = definitions
        .iter()
        .map(|d| d.attribute_name.as_str())
        .collect();
    if defined
        .iter()
        .enumerate()
        .any(|(i, name)| defined[..i].contains(name))
    {
        return invalid("Cannot have two attributes with the same name".into());
    }
    let key_names: Vec<&str> = keys.iter().map(|k| k.attribute_name.as_str()).collect();
    if key_names.len() > defined.len() {
        return invalid("Invalid KeySchema: Some index key attribute have no definition".into());
    }
    if key_names.iter().any(|k| !defined.contains(k)) {
        return invalid(format!(
            "One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [{}], AttributeDefinitions: [{}]",
            key_names.join(", "),
            defined.join(", ")
        ));
    }
    if key_names.len() == 2 && key_names[0] == key_names[1] {
        return invalid(
            "Both the Hash Key and the Range Key element in the KeySchema have the same name"
                .into(),
        );
    }
    if keys[0].key_type != "HASH" {
        return invalid(
            "Invalid KeySchema: The first KeySchemaElement is not a HASH key type".into(),
        );
    }
    if keys.get(1).is_some_and(|k| k.key_type != "RANGE") {
        return invalid(
            "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type".into(),
        );
    }
    Ok((definitions, keys))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TableNameInput {
    pub(crate) table_name: Option<String>,
}

impl TableNameInput {
    /// Validates the name and finds the table (control-plane wording of the not-found error).
    pub(crate) fn lookup(
        &self,
        service: &Service,
    ) -> Result<std::sync::Arc<TableMeta>, DynamoError> {
        let mut violations = Violations::new();
        violations.name("tableName", self.table_name.as_deref());
        violations.into_result()?;
        let name = self.table_name.as_deref().unwrap_or_default();
        // The control plane sees every change at once, even one another node made.
        service.catalog.refresh()?;
        service.catalog.get(name)?.ok_or_else(|| {
            DynamoError::ResourceNotFound(format!(
                "Requested resource not found: Table: {name} not found"
            ))
        })
    }
}

pub(crate) fn describe_table(
    service: &Service,
    input: TableNameInput,
) -> Result<Value, DynamoError> {
    let meta = match input.lookup(service) {
        Err(DynamoError::ResourceNotFound(message)) => {
            return deleted_description(service, &input, message)
                .map(|table| json!({ "Table": table }));
        }
        found => found?,
    };
    Ok(json!({ "Table": describe(service, &meta, settled_status(service, &meta))? }))
}

/// The table's status now (`crate::transient`): ACTIVE unless transient statuses are configured.
fn settled_status(service: &Service, meta: &TableMeta) -> &'static str {
    crate::transient::table_status(meta, service.config.transient_status, now())
}

/// For a table not found: the DELETING description of a table deleted within the transient
/// window (`crate::transient`), or the ResourceNotFoundException `message`.
fn deleted_description(
    service: &Service,
    input: &TableNameInput,
    message: String,
) -> Result<Value, DynamoError> {
    let name = input.table_name.as_deref().unwrap_or_default();
    let window = service.config.transient_status;
    crate::transient::deleting(&*service.engine, name, window, now())?
        .ok_or(DynamoError::ResourceNotFound(message))
}

pub(crate) async fn delete_table(
    service: &Service,
    input: TableNameInput,
) -> Result<Value, DynamoError> {
    // A concurrent change to the table's metadata (an index backfill finishing, a TTL or stream
    // switch, possibly on another node) makes the delete's expectation fail: the catalog then
    // reloads the table and the delete starts again on what won, as `modify_table` does.
    let mut retries = Retries::new("DeleteTable");
    loop {
        let meta = match input.lookup(service) {
            // DynamoDB answers a table already DELETING without an error.
            Err(DynamoError::ResourceNotFound(message)) => {
                return deleted_description(service, &input, message)
                    .map(|table| json!({ "TableDescription": table }));
            }
            found => found?,
        };
        if let Some(description) = try_delete(service, &meta).await? {
            service.capacity.forget(meta.id);
            crate::replication::control::table_deleted(service, &meta);
            return Ok(json!({ "TableDescription": description }));
        }
        retries.conflict().await?;
    }
}

/// Deletes `meta`'s table if its stored metadata is still `meta`: its description as DELETING, or
/// None when a concurrent change won the race.
async fn try_delete(service: &Service, meta: &TableMeta) -> Result<Option<Value>, DynamoError> {
    if meta.deletion_protection {
        return Err(DynamoError::validation(
            "Resource cannot be deleted as it is currently protected against deletion. Disable deletion protection first.",
        ));
    }
    if crate::backup::restoring(meta) {
        return Err(DynamoError::ResourceInUse(format!(
            "Attempt to change a resource which is still in use: Table is being created: {}",
            meta.name
        )));
    }
    let at = now();
    crate::transient::refuse_unless_active(meta, service.config.transient_status, at)?;
    let description = describe(service, meta, "DELETING")?;
    let mut batch = haven_storage::WriteBatch::new();
    let window = service.config.transient_status;
    crate::transient::bury(&mut batch, &*service.engine, &description, window, at)?;
    let deleted = service.catalog.delete(meta, batch).await?;
    Ok(deleted.then_some(description))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListTablesInput {
    exclusive_start_table_name: Option<String>,
    limit: Option<i64>,
}

pub(crate) fn list_tables(service: &Service, input: ListTablesInput) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    if let Some(start) = &input.exclusive_start_table_name {
        violations.name("exclusiveStartTableName", Some(start));
    }
    violations.page_limit(input.limit);
    violations.into_result()?;
    let limit = input.limit.unwrap_or(100) as usize;
    service.catalog.refresh()?;
    let names: Vec<String> = listed_names(service)?
        .into_iter()
        .filter(|name| {
            input
                .exclusive_start_table_name
                .as_ref()
                .is_none_or(|start| name > start)
        })
        .collect();
    let page: Vec<&String> = names.iter().take(limit).collect();
    let mut response = json!({ "TableNames": page });
    if names.len() > limit {
        response["LastEvaluatedTableName"] = json!(page.last());
    }
    Ok(response)
}

/// The tables ListTables names, in DynamoDB's (byte-wise) order: those in the catalog and, while
/// transient statuses last, those still DELETING (`crate::transient`).
fn listed_names(service: &Service) -> Result<Vec<String>, DynamoError> {
    let mut names = service.catalog.names();
    let window = service.config.transient_status;
    names.extend(crate::transient::deleting_names(
        &*service.engine,
        window,
        now(),
    )?);
    names.sort_unstable();
    names.dedup();
    Ok(names)
}

/// The TableDescription structure shared by every control-plane response.
pub(crate) fn describe(
    service: &Service,
    meta: &TableMeta,
    status: &str,
) -> Result<Value, DynamoError> {
    let stats = Catalog::stats(&*service.engine.snapshot()?, meta)?;
    let throughput = &meta.throughput;
    let mut provisioned = json!({
        "NumberOfDecreasesToday": super::update_table::decreases_today(throughput, now()),
        "ReadCapacityUnits": throughput.read_capacity_units,
        "WriteCapacityUnits": throughput.write_capacity_units,
    });
    if let Some(at) = throughput.last_increase {
        provisioned["LastIncreaseDateTime"] = json!(at);
    }
    if let Some(at) = throughput.last_decrease {
        provisioned["LastDecreaseDateTime"] = json!(at);
    }
    let mut description = json!({
        "AttributeDefinitions": meta.attribute_definitions,
        "TableName": meta.name,
        "KeySchema": meta.key_schema,
        "TableStatus": status,
        "CreationDateTime": meta.created,
        "ProvisionedThroughput": provisioned,
        "TableSizeBytes": stats.size_bytes,
        "ItemCount": stats.item_count,
        "TableArn": meta.arn,
        "TableId": meta.table_uuid,
        "DeletionProtectionEnabled": meta.deletion_protection,
    });
    // Once a table has been PAY_PER_REQUEST, DynamoDB keeps the summary (with the date of that
    // switch) even after the table goes back to PROVISIONED.
    if let Some(since) = meta.pay_per_request_since {
        description["BillingModeSummary"] = json!({
            "BillingMode": meta.billing_mode,
            "LastUpdateToPayPerRequestDateTime": since,
        });
    }
    if let Some(class) = &meta.table_class {
        description["TableClassSummary"] = json!({ "TableClass": class });
    }
    describe_capacity_settings(&mut description, meta.on_demand, meta.warm);
    crate::streams::describe_into(&mut description, meta);
    crate::replication::ops::describe_into(&mut description, meta);
    crate::backup::describe_into(&mut description, meta);
    crate::import::describe_into(&mut description, meta);
    let snapshot = service.engine.snapshot()?;
    for (kind, field) in [
        (IndexKind::Local, "LocalSecondaryIndexes"),
        (IndexKind::Global, "GlobalSecondaryIndexes"),
    ] {
        let described: Vec<Value> = meta
            .indexes
            .iter()
            .filter(|index| index.kind == kind)
            .map(|index| describe_index(&*snapshot, meta, index))
            .collect::<Result<_, _>>()?;
        if !described.is_empty() {
            description[field] = Value::Array(described);
        }
    }
    Ok(description)
}

/// OnDemandThroughput and WarmThroughput of a table or global index, once set.
fn describe_capacity_settings(
    description: &mut Value,
    on_demand: Option<OnDemandMaximum>,
    warm: Option<Warm>,
) {
    if let Some(on_demand) = on_demand {
        description["OnDemandThroughput"] = on_demand.describe();
    }
    if let Some(warm) = warm {
        description["WarmThroughput"] = warm.describe();
    }
}

/// An index's Projection member.
pub(crate) fn projection(index: &IndexMeta) -> Value {
    let mut projection = json!({ "ProjectionType": index.projection_type });
    if let Some(attributes) = &index.non_key_attributes {
        projection["NonKeyAttributes"] = json!(attributes);
    }
    projection
}

/// One entry of LocalSecondaryIndexes / GlobalSecondaryIndexes in a TableDescription.
fn describe_index(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    index: &IndexMeta,
) -> Result<Value, DynamoError> {
    let mut described = json!({
        "IndexName": index.name,
        "KeySchema": index.key_schema,
        "Projection": projection(index),
        "IndexSizeBytes": read_counter(snapshot, &meta.index_size_key(index))?,
        "ItemCount": read_counter(snapshot, &meta.index_count_key(index))?,
        "IndexArn": format!("{}/index/{}", meta.arn, index.name),
    });
    if index.kind == IndexKind::Global {
        described["IndexStatus"] = json!(index.status);
        if index.status == "CREATING" {
            described["Backfilling"] = json!(index.backfilling);
        }
        if let Some(throughput) = &index.throughput {
            described["ProvisionedThroughput"] = json!({
                "NumberOfDecreasesToday": throughput.decreases_today,
                "ReadCapacityUnits": throughput.read_capacity_units,
                "WriteCapacityUnits": throughput.write_capacity_units,
            });
        }
        describe_capacity_settings(&mut described, index.on_demand, index.warm);
    }
    Ok(described)
}
