//! Secondary index specifications as CreateTable and UpdateTable receive them: their field
//! constraints, DynamoDB's semantic checks (in DynamoDB's order), and the resulting `IndexMeta`.

use crate::capacity::settings::{OnDemandThroughputInput, Owner, WarmThroughputInput};
use serde::Deserialize;

use crate::catalog::{AttributeDefinition, IndexKind, IndexMeta, KeySchemaElement, Throughput};
use crate::error::{DynamoError, Violations};

use super::control::{ProvisionedThroughputInput, check_throughput};

const MAX_LOCAL_INDEXES: usize = 5;
const MAX_GLOBAL_INDEXES: usize = 20;
/// Most NonKeyAttributes all of a table's indexes may project together.
const MAX_PROJECTED_ATTRIBUTES: usize = 100;

/// Refuses index sets that project more than 100 non-key attributes in total (DynamoDB Local's
/// wording: the real service's is not recorded).
fn check_projected_total(indexes: &[IndexMeta]) -> Result<(), DynamoError> {
    let total: usize = indexes
        .iter()
        .map(|i| i.non_key_attributes.as_ref().map_or(0, Vec::len))
        .sum();
    if total > MAX_PROJECTED_ATTRIBUTES {
        return Err(DynamoError::validation(
            "No more than 20 attributes per table can be projected into Local Secondary Indices",
        ));
    }
    Ok(())
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KeyElementInput {
    pub attribute_name: Option<String>,
    pub key_type: Option<String>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ProjectionInput {
    projection_type: Option<String>,
    non_key_attributes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct IndexInput {
    pub index_name: Option<String>,
    key_schema: Option<Vec<KeyElementInput>>,
    projection: Option<ProjectionInput>,
    provisioned_throughput: Option<ProvisionedThroughputInput>,
    on_demand_throughput: Option<OnDemandThroughputInput>,
    warm_throughput: Option<WarmThroughputInput>,
}

/// A global index's OnDemandThroughput and WarmThroughput, checked (`crate::capacity::settings`).
fn with_capacity_settings(
    index: &IndexInput,
    mut meta: IndexMeta,
) -> Result<IndexMeta, DynamoError> {
    if let Some(on_demand) = &index.on_demand_throughput {
        meta.on_demand = Some(on_demand.applied_to(None, Owner::Index)?);
    }
    if let Some(warm) = &index.warm_throughput {
        meta.warm = Some(warm.applied_to(None, Owner::Index)?);
    }
    Ok(meta)
}

fn invalid(message: impl std::fmt::Display) -> DynamoError {
    DynamoError::validation(format!(
        "One or more parameter values were invalid: {message}"
    ))
}

/// Field constraints of one index list (`localSecondaryIndexes` / `globalSecondaryIndexes`).
pub(crate) fn check_fields(violations: &mut Violations, field: &str, indexes: &[IndexInput]) {
    for (i, index) in indexes.iter().enumerate() {
        let at = format!("{field}.{}.member", i + 1);
        violations.name(&format!("{at}.indexName"), index.index_name.as_deref());
        match &index.key_schema {
            None => violations.null(&format!("{at}.keySchema")),
            Some(keys) => {
                if keys.is_empty() {
                    violations.push(format!(
                        "Value '[]' at '{at}.keySchema' failed to satisfy constraint: Member must have length greater than or equal to 1"
                    ));
                }
                for (k, key) in keys.iter().enumerate() {
                    if key.attribute_name.is_none() {
                        violations.null(&format!("{at}.keySchema.{}.member.attributeName", k + 1));
                    }
                    if key.key_type.is_none() {
                        violations.null(&format!("{at}.keySchema.{}.member.keyType", k + 1));
                    }
                }
            }
        }
        match &index.projection {
            None => violations.null(&format!("{at}.projection")),
            Some(projection) => {
                if let Some(t) = projection
                    .projection_type
                    .as_deref()
                    .filter(|t| !["ALL", "KEYS_ONLY", "INCLUDE"].contains(t))
                {
                    violations.push(format!(
                        "Value '{t}' at '{at}.projection.projectionType' failed to satisfy constraint: Member must satisfy enum value set: [ALL, INCLUDE, KEYS_ONLY]"
                    ));
                }
                if projection
                    .non_key_attributes
                    .as_ref()
                    .is_some_and(|n| n.is_empty())
                {
                    violations.push(format!(
                        "Value '[]' at '{at}.projection.nonKeyAttributes' failed to satisfy constraint: Member must have length greater than or equal to 1"
                    ));
                }
            }
        }
        if let Some(throughput) = &index.provisioned_throughput {
            check_throughput(
                violations,
                &format!("{at}.provisionedThroughput"),
                throughput,
            );
        }
    }
}

fn key_elements(index: &IndexInput) -> Vec<KeySchemaElement> {
    index
        .key_schema
        .iter()
        .flatten()
        .map(|k| KeySchemaElement {
            attribute_name: k.attribute_name.clone().unwrap_or_default(),
            key_type: k.key_type.clone().unwrap_or_default(),
        })
        .collect()
}

/// Most attributes a global index's partition key, and its sort key, may each have
/// (multi-attribute keys).
const MAX_KEY_ATTRIBUTES: usize = 4;

/// The checks every index gets, local or global. A global index's key may have several HASH
/// attributes then several RANGE ones ([`check_multi_attribute`]); a local index has one of each.
fn check_index(
    index: &IndexInput,
    kind: IndexKind,
    definitions: &[AttributeDefinition],
) -> Result<(), DynamoError> {
    let keys = key_elements(index);
    let names: Vec<&str> = keys.iter().map(|k| k.attribute_name.as_str()).collect();
    let defined: Vec<&str> = definitions
        .iter()
        .map(|d| d.attribute_name.as_str())
        .collect();
    let multi_attribute = kind == IndexKind::Global && keys.len() > 2;
    if keys.is_empty() || (keys.len() > 2 && !multi_attribute) {
        return Err(invalid("Index KeySchema must have one or two elements"));
    }
    if names.iter().any(|n| !defined.contains(n)) {
        return Err(invalid(format!(
            "Some index key attributes are not defined in AttributeDefinitions. Keys: [{}], AttributeDefinitions: [{}]",
            names.join(", "),
            defined.join(", ")
        )));
    }
    if names.len() == 2 && names[0] == names[1] {
        return Err(DynamoError::validation(
            "Both the Hash Key and the Range Key element in the KeySchema have the same name",
        ));
    }
    if keys[0].key_type != "HASH" {
        return Err(DynamoError::validation(
            "Invalid KeySchema: The first KeySchemaElement is not a HASH key type",
        ));
    }
    // A global index's second element may be HASH too (a multi-attribute partition key).
    let second_hash_allowed = kind == IndexKind::Global;
    if keys
        .get(1)
        .is_some_and(|k| k.key_type != "RANGE" && !(second_hash_allowed && k.key_type == "HASH"))
    {
        return Err(DynamoError::validation(
            "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type",
        ));
    }
    match kind {
        IndexKind::Global => check_multi_attribute(&keys),
        IndexKind::Local => Ok(()),
    }
}

/// A global index's key: distinct attributes, every HASH before every RANGE, at most four of
/// each (the real service's messages; docs/compatibility.md has DynamoDB Local's).
fn check_multi_attribute(keys: &[KeySchemaElement]) -> Result<(), DynamoError> {
    let repeated = keys.iter().enumerate().any(|(i, k)| {
        keys[..i]
            .iter()
            .any(|e| e.attribute_name == k.attribute_name)
    });
    if repeated {
        return Err(DynamoError::validation(
            "The KeySchema contains multiple key attributes with the same name",
        ));
    }
    let hashes = keys.iter().take_while(|k| k.key_type == "HASH").count();
    if keys[hashes..].iter().any(|k| k.key_type != "RANGE") {
        return Err(invalid(
            "All HASH key attributes must precede RANGE key attributes in the KeySchema",
        ));
    }
    for (key_type, count) in [("HASH", hashes), ("RANGE", keys.len() - hashes)] {
        if count > MAX_KEY_ATTRIBUTES {
            return Err(invalid(format!(
                "The KeySchema exceeds the maximum allowed number of {key_type} key attributes"
            )));
        }
    }
    Ok(())
}

fn check_projection(index: &IndexInput) -> Result<(), DynamoError> {
    let projection = index.projection.as_ref();
    let projection_type = projection.and_then(|p| p.projection_type.as_deref());
    let Some(projection_type) = projection_type else {
        return Err(invalid("Unknown ProjectionType: null"));
    };
    let non_key = projection.and_then(|p| p.non_key_attributes.as_ref());
    if non_key.is_some() && projection_type != "INCLUDE" {
        return Err(invalid(format!(
            "ProjectionType is {projection_type}, but NonKeyAttributes is specified"
        )));
    }
    if let Some(names) = non_key
        && names
            .iter()
            .enumerate()
            .any(|(i, name)| names[..i].contains(name))
    {
        return Err(DynamoError::validation(
            "Cannot have two attributes with the same name",
        ));
    }
    if projection_type == "INCLUDE" && non_key.is_none_or(|n| n.is_empty()) {
        return Err(DynamoError::validation(
            "If Projection type INCLUDE is specified, some non-key attributes to include in the projection must be specified as well",
        ));
    }
    Ok(())
}

fn index_meta(
    index: &IndexInput,
    id: u32,
    kind: IndexKind,
    throughput: Option<Throughput>,
) -> IndexMeta {
    let projection = index.projection.clone();
    IndexMeta {
        id,
        name: index.index_name.clone().unwrap_or_default(),
        kind,
        key_schema: key_elements(index),
        projection_type: projection
            .as_ref()
            .and_then(|p| p.projection_type.clone())
            .unwrap_or_default(),
        non_key_attributes: projection.and_then(|p| p.non_key_attributes),
        status: "ACTIVE".into(),
        backfilling: false,
        throughput,
        on_demand: None,
        warm: None,
    }
}

fn throughput_of(input: &ProvisionedThroughputInput) -> Throughput {
    Throughput {
        read_capacity_units: input.read_capacity_units.unwrap_or(0),
        write_capacity_units: input.write_capacity_units.unwrap_or(0),
        ..Throughput::default()
    }
}

/// DynamoDB's checks of CreateTable's LocalSecondaryIndexes, then GlobalSecondaryIndexes; returns
/// the indexes to create (locals first), numbered from 1.
pub(crate) fn create_table_indexes(
    locals: Option<&[IndexInput]>,
    globals: Option<&[IndexInput]>,
    table_keys: &[KeySchemaElement],
    definitions: &[AttributeDefinition],
    billing_mode: &str,
) -> Result<Vec<IndexMeta>, DynamoError> {
    let mut indexes: Vec<IndexMeta> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    if let Some(locals) = locals {
        if locals.is_empty() {
            return Err(invalid("List of LocalSecondaryIndexes is empty"));
        }
        if table_keys.len() != 2 {
            return Err(invalid(
                "Table KeySchema does not have a range key, which is required when specifying a LocalSecondaryIndex",
            ));
        }
        let table_hash = &table_keys[0].attribute_name;
        for index in locals {
            let name = index.index_name.clone().unwrap_or_default();
            check_index(index, IndexKind::Local, definitions)?;
            let keys = key_elements(index);
            if keys.len() != 2 {
                return Err(invalid(format!(
                    "Index KeySchema does not have a range key for index: {name}"
                )));
            }
            if &keys[0].attribute_name != table_hash {
                return Err(invalid(format!(
                    "Index KeySchema does not have the same leading hash key as table KeySchema for index: {name}. index hash key: {}, table hash key: {table_hash}",
                    keys[0].attribute_name
                )));
            }
            check_projection(index)?;
            if !seen.insert(name.clone()) {
                return Err(invalid(format!("Duplicate index name: {name}")));
            }
            indexes.push(index_meta(
                index,
                indexes.len() as u32 + 1,
                IndexKind::Local,
                None,
            ));
        }
        if locals.len() > MAX_LOCAL_INDEXES {
            return Err(invalid(
                "Number of LocalSecondaryIndexes exceeds per-table limit of 5",
            ));
        }
    }
    if let Some(globals) = globals {
        if globals.is_empty() {
            return Err(invalid("List of GlobalSecondaryIndexes is empty"));
        }
        for index in globals {
            let name = index.index_name.clone().unwrap_or_default();
            check_index(index, IndexKind::Global, definitions)?;
            check_projection(index)?;
            let throughput = check_global_throughput(index, &name, billing_mode)?;
            if !seen.insert(name.clone()) {
                return Err(invalid(format!("Duplicate index name: {name}")));
            }
            let meta = index_meta(
                index,
                indexes.len() as u32 + 1,
                IndexKind::Global,
                throughput,
            );
            indexes.push(with_capacity_settings(index, meta)?);
        }
        if globals.len() > MAX_GLOBAL_INDEXES {
            return Err(invalid(
                "GlobalSecondaryIndex count exceeds the per-table limit of 20",
            ));
        }
    }
    check_projected_total(&indexes)?;
    Ok(indexes)
}

/// A global index's throughput must match the table's billing mode.
fn check_global_throughput(
    index: &IndexInput,
    name: &str,
    billing_mode: &str,
) -> Result<Option<Throughput>, DynamoError> {
    match (&index.provisioned_throughput, billing_mode) {
        (Some(_), "PAY_PER_REQUEST") => Err(invalid(format!(
            "ProvisionedThroughput should not be specified for index: {name} when BillingMode is PAY_PER_REQUEST"
        ))),
        (None, "PAY_PER_REQUEST") => Ok(None),
        (Some(throughput), _) => Ok(Some(throughput_of(throughput))),
        (None, _) => Err(DynamoError::validation(
            "No provisioned throughput specified for the global secondary index",
        )),
    }
}

/// A global index added by UpdateTable, with storage id `id`: the same checks, against the table's
/// existing indexes.
pub(crate) fn new_global_index(
    index: &IndexInput,
    id: u32,
    definitions: &[AttributeDefinition],
    existing: &[IndexMeta],
    billing_mode: &str,
) -> Result<IndexMeta, DynamoError> {
    let name = index.index_name.clone().unwrap_or_default();
    check_index(index, IndexKind::Global, definitions)?;
    check_projection(index)?;
    let throughput = check_global_throughput(index, &name, billing_mode)?;
    if existing.iter().any(|i| i.name == name) {
        return Err(invalid(format!("Duplicate index name: {name}")));
    }
    if existing
        .iter()
        .filter(|i| i.kind == IndexKind::Global)
        .count()
        >= MAX_GLOBAL_INDEXES
    {
        return Err(invalid(
            "GlobalSecondaryIndex count exceeds the per-table limit of 20",
        ));
    }
    let mut meta =
        with_capacity_settings(index, index_meta(index, id, IndexKind::Global, throughput))?;
    meta.status = "CREATING".into();
    meta.backfilling = true;
    let mut all = existing.to_vec();
    all.push(meta.clone());
    check_projected_total(&all)?;
    Ok(meta)
}

/// Every attribute definition must be used by a key of the table or of an index.
pub(crate) fn check_definitions_used(
    definitions: &[AttributeDefinition],
    table_keys: &[KeySchemaElement],
    indexes: &[IndexMeta],
) -> Result<(), DynamoError> {
    let mut used: Vec<&str> = table_keys
        .iter()
        .map(|k| k.attribute_name.as_str())
        .collect();
    for key in indexes.iter().flat_map(|i| &i.key_schema) {
        if !used.contains(&key.attribute_name.as_str()) {
            used.push(&key.attribute_name);
        }
    }
    if definitions
        .iter()
        .all(|d| used.contains(&d.attribute_name.as_str()))
    {
        return Ok(());
    }
    if indexes.is_empty() {
        return Err(invalid(
            "Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions",
        ));
    }
    let defined: Vec<&str> = definitions
        .iter()
        .map(|d| d.attribute_name.as_str())
        .collect();
    Err(invalid(format!(
        "Some AttributeDefinitions are not used. AttributeDefinitions: [{}], keys used: [{}]",
        defined.join(", "),
        used.join(", ")
    )))
}
