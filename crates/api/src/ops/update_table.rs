//! UpdateTable: billing mode, provisioned throughput (with DynamoDB's daily budget of decreases),
//! deletion protection and table class; and [`modify_table`], the read-modify-write of a table's
//! metadata that TagResource and UpdateTimeToLive share.
//!
//! Haven applies every change at once, but answers as DynamoDB does: a throughput, billing-mode or
//! table-class change returns the table as it was with TableStatus UPDATING (the new timestamps
//! already set), and the next DescribeTable shows the new settings, with ACTIVE, or UPDATING for
//! the transient-status window (`crate::transient`), during which another UpdateTable is refused.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::control::{ProvisionedThroughputInput, check_billing, check_throughput, describe, now};
use super::index_specs::{self, IndexInput};
use super::index_update::IndexUpdateInput;
use super::table_features::{StreamRequest, StreamSpecificationInput, first_present, unsupported};
use crate::Service;
use crate::capacity::settings::{OnDemandThroughputInput, Owner, WarmThroughputInput};
use crate::catalog::{AttributeDefinition, IndexKind, TableMeta, Throughput};
use crate::error::{DynamoError, Violations};
use crate::retry::Retries;

const PROVISIONED: &str = "PROVISIONED";
const PAY_PER_REQUEST: &str = "PAY_PER_REQUEST";
const TABLE_CLASSES: [&str; 2] = ["STANDARD", "STANDARD_INFREQUENT_ACCESS"];

/// DescribeLimits' TableMaxReadCapacityUnits and TableMaxWriteCapacityUnits.
pub(crate) const TABLE_MAX_CAPACITY_UNITS: i64 = 40_000;
/// Decreases a table may make in a UTC day before they are limited to one an hour.
const FREE_DECREASES_PER_DAY: i64 = 4;
const SECONDS_BETWEEN_LIMITED_DECREASES: f64 = 3600.0;
const SECONDS_PER_DAY: f64 = 86_400.0;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateTableInput {
    table_name: Option<String>,
    billing_mode: Option<String>,
    provisioned_throughput: Option<ProvisionedThroughputInput>,
    deletion_protection_enabled: Option<bool>,
    table_class: Option<String>,
    attribute_definitions: Option<Vec<AttributeDefinition>>,
    global_secondary_index_updates: Option<Vec<Value>>,
    stream_specification: Option<StreamSpecificationInput>,
    #[serde(rename = "SSESpecification")]
    sse_specification: Option<Value>,
    replica_updates: Option<Vec<Value>>,
    on_demand_throughput: Option<OnDemandThroughputInput>,
    warm_throughput: Option<WarmThroughputInput>,
    multi_region_consistency: Option<Value>,
    global_table_witness_updates: Option<Vec<Value>>,
}

/// One change an UpdateTable request asks for, once validated against the table.
enum Change {
    DeletionProtection(bool),
    TableClass(String),
    /// BillingMode, ProvisionedThroughput, OnDemandThroughput and/or WarmThroughput; then the
    /// index change asked for in the same request, if any (leaving on-demand for provisioned
    /// capacity takes the global indexes' throughput in the same request, as DynamoDB requires).
    Capacity {
        billing_mode: Option<String>,
        throughput: Option<(i64, i64)>,
        on_demand: Option<OnDemandThroughputInput>,
        warm: Option<WarmThroughputInput>,
        then: Option<Box<Change>>,
    },
    /// GlobalSecondaryIndexUpdates: update one global index's throughput settings.
    UpdateIndex(Box<IndexUpdateInput>),
    /// GlobalSecondaryIndexUpdates: create one global index (backfilled in the background).
    CreateIndex(Box<IndexInput>, Vec<AttributeDefinition>),
    /// GlobalSecondaryIndexUpdates: delete one global index (removed in the background).
    DeleteIndex(String),
    /// StreamSpecification: enable a stream of this view type, or disable the stream (None);
    /// then the index change asked for in the same request, if any.
    Stream(crate::streams::Requested, Option<Box<Change>>),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GlobalSecondaryIndexUpdate {
    create: Option<IndexInput>,
    delete: Option<IndexName>,
    update: Option<IndexUpdateInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IndexName {
    index_name: Option<String>,
}

/// Reads GlobalSecondaryIndexUpdates: Haven, like DynamoDB, creates or deletes one index per call.
fn index_change(input: &UpdateTableInput, updates: &[Value]) -> Result<Change, DynamoError> {
    let limit = || {
        DynamoError::LimitExceeded(
            "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table".into(),
        )
    };
    if updates.len() > 1 {
        return Err(limit());
    }
    let update: GlobalSecondaryIndexUpdate = serde_json::from_value(updates[0].clone())
        .map_err(|_| DynamoError::Serialization("Unexpected value type in payload".into()))?;
    match (update.create, update.delete, update.update) {
        (Some(create), None, None) => {
            let mut violations = Violations::new();
            index_specs::check_fields(
                &mut violations,
                "globalSecondaryIndexUpdates.1.member.create",
                std::slice::from_ref(&create),
            );
            violations.into_result()?;
            let definitions = input.attribute_definitions.clone().ok_or_else(|| {
                DynamoError::validation(
                    "One or more parameter values were invalid: Global Secondary Index creation requires AttributeDefinitions",
                )
            })?;
            Ok(Change::CreateIndex(Box::new(create), definitions))
        }
        (None, Some(delete), None) => {
            Ok(Change::DeleteIndex(delete.index_name.unwrap_or_default()))
        }
        (None, None, Some(update)) => {
            update.check_fields()?;
            Ok(Change::UpdateIndex(Box::new(update)))
        }
        _ => Err(DynamoError::validation(
            "One or more parameter values were invalid: One of GlobalSecondaryIndexUpdate.Create, GlobalSecondaryIndexUpdate.Update, or GlobalSecondaryIndexUpdate.Delete must be specified",
        )),
    }
}

pub(crate) async fn update_table(
    service: &Service,
    input: UpdateTableInput,
) -> Result<Value, DynamoError> {
    if let Some(updates) = input.replica_updates.as_deref().filter(|u| !u.is_empty()) {
        if has_other_changes(&input) {
            return Err(DynamoError::validation(
                "One or more parameter values were invalid: ReplicaUpdates modification must be the only operation in the request",
            ));
        }
        let name = input.table_name.as_deref().unwrap_or_default();
        return crate::replication::ops::update_replicas(service, name, updates).await;
    }
    let change = check_request(&input)?;
    let name = input.table_name.clone().unwrap_or_default();
    let lookup = || {
        service.catalog.get(&name)?.ok_or_else(|| {
            DynamoError::ResourceNotFound(format!(
                "Requested resource not found: Table: {name} not found"
            ))
        })
    };
    // Installing the new metadata starts the worker of an index it creates or deletes.
    modify_table(service, lookup, |meta| {
        let at = now();
        crate::transient::refuse_unless_active(meta, service.config.transient_status, at)?;
        let (updated, response) = apply(service, meta, &change, at)?;
        Ok((updated.map(|updated| stamp(updated, &change, at)), response))
    })
    .await
}

/// Records when a change that makes the table UPDATING was made (every change but deletion
/// protection, which DynamoDB applies at once): `crate::transient` derives the status from it.
fn stamp(mut updated: TableMeta, change: &Change, at: f64) -> TableMeta {
    if !matches!(change, Change::DeletionProtection(_)) {
        updated.updated = Some(at);
    }
    updated
}

/// Whether the request asks for anything besides ReplicaUpdates (Haven makes replica changes
/// alone, never dropping another member).
fn has_other_changes(input: &UpdateTableInput) -> bool {
    let non_empty = |list: &Option<Vec<Value>>| list.as_ref().is_some_and(|l| !l.is_empty());
    input.billing_mode.is_some()
        || input.provisioned_throughput.is_some()
        || input.deletion_protection_enabled.is_some()
        || input.table_class.is_some()
        || non_empty(&input.global_secondary_index_updates)
        || input.stream_specification.is_some()
        || input.sse_specification.is_some()
        || input.on_demand_throughput.is_some()
        || input.warm_throughput.is_some()
        || input.multi_region_consistency.is_some()
        || non_empty(&input.global_table_witness_updates)
}

/// The checks DynamoDB makes before it looks the table up, in its order.
fn check_request(input: &UpdateTableInput) -> Result<Change, DynamoError> {
    let mut violations = Violations::new();
    violations.name("tableName", input.table_name.as_deref());
    if let Some(mode) = input
        .billing_mode
        .as_ref()
        .filter(|mode| *mode != PROVISIONED && *mode != PAY_PER_REQUEST)
    {
        violations.push(format!(
            "Value '{mode}' at 'billingMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]"
        ));
    }
    if let Some(throughput) = &input.provisioned_throughput {
        check_throughput(&mut violations, "provisionedThroughput", throughput);
    }
    if let Some(stream) = &input.stream_specification {
        stream.check_fields(&mut violations);
    }
    violations.into_result()?;

    let non_empty = |list: &Option<Vec<Value>>| list.as_ref().is_some_and(|l| !l.is_empty());
    // Every concern the request touches, by the name its "must be the only operation" rule uses.
    let index_updates = non_empty(&input.global_secondary_index_updates);
    let unbuilt = [
        ("SSESpecification", input.sse_specification.is_some()),
        (
            "GlobalTableWitnessUpdates",
            non_empty(&input.global_table_witness_updates),
        ),
    ];
    let capacity = input.billing_mode.is_some()
        || input.provisioned_throughput.is_some()
        || input.on_demand_throughput.is_some()
        || input.warm_throughput.is_some();
    let concerns = [
        capacity,
        index_updates,
        input.stream_specification.is_some(),
        input.deletion_protection_enabled.is_some(),
        input.table_class.is_some(),
    ]
    .into_iter()
    .chain(unbuilt.iter().map(|(_, present)| *present))
    .filter(|present| *present)
    .count();
    if concerns == 0 {
        return Err(DynamoError::validation(nothing_to_update_message(
            input.multi_region_consistency.is_some(),
        )));
    }
    if let Some(throughput) = &input.provisioned_throughput {
        // Only the bounds check applies here: the billing mode is checked against the table.
        check_billing(PROVISIONED, Some(throughput))?;
    }
    let only_operation = |what: &str| {
        DynamoError::validation(format!(
            "One or more parameter values were invalid: {what} modification must be the only operation in the request"
        ))
    };
    if input.table_class.is_some() && concerns > 1 {
        return Err(only_operation("TableClass"));
    }
    if input.deletion_protection_enabled.is_some() && concerns > 1 {
        return Err(only_operation("DeletionProtection"));
    }
    let refused = first_present(&unbuilt).or(input
        .multi_region_consistency
        .is_some()
        .then_some("MultiRegionConsistency"));
    if let Some(member) = refused {
        return Err(unsupported(member));
    }
    if let Some(stream) = &input.stream_specification {
        if capacity {
            return Err(DynamoError::validation(
                "Cannot change IOPS and Streams at the same time.",
            ));
        }
        let requested = stream.requested(StreamRequest::UpdateTable)?;
        let then = match input.global_secondary_index_updates.as_deref() {
            Some(updates) if index_updates => Some(Box::new(index_change(input, updates)?)),
            _ => None,
        };
        return Ok(Change::Stream(requested, then));
    }
    if let Some(enabled) = input.deletion_protection_enabled {
        return Ok(Change::DeletionProtection(enabled));
    }
    if let Some(updates) = input
        .global_secondary_index_updates
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        let index = index_change(input, updates)?;
        return Ok(if capacity {
            capacity_change(input, Some(Box::new(index)))
        } else {
            index
        });
    }
    if let Some(class) = &input.table_class {
        if !TABLE_CLASSES.contains(&class.as_str()) {
            return Err(DynamoError::validation(
                "Invalid table-class parameter provided. Please try again with a valid table-class value: [STANDARD, STANDARD_INFREQUENT_ACCESS].",
            ));
        }
        return Ok(Change::TableClass(class.clone()));
    }
    Ok(capacity_change(input, None))
}

/// The request's capacity members, then `then`.
fn capacity_change(input: &UpdateTableInput, then: Option<Box<Change>>) -> Change {
    Change::Capacity {
        billing_mode: input.billing_mode.clone(),
        throughput: input.provisioned_throughput.as_ref().map(|t| {
            (
                t.read_capacity_units.unwrap_or_default(),
                t.write_capacity_units.unwrap_or_default(),
            )
        }),
        on_demand: input.on_demand_throughput.clone(),
        warm: input.warm_throughput.clone(),
        then,
    }
}

/// DynamoDB lists every member that could make an UpdateTable do something, leaving out one the
/// request already carries (MultiRegionConsistency alone changes nothing).
fn nothing_to_update_message(has_multi_region_consistency: bool) -> String {
    let consistency = if has_multi_region_consistency {
        ""
    } else {
        " MultiRegionConsistency,"
    };
    format!(
        "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates, SSESpecification, ReplicaUpdates, MultiAccountReplicaReady, ReplicaTransitRoleArn,{consistency} DeletionProtectionEnabled, OnDemandThroughput, WarmThroughput or TableClass is required"
    )
}

/// Validates `change` against the table and works out the new metadata (None: nothing to store)
/// and the response.
fn apply(
    service: &Service,
    meta: &TableMeta,
    change: &Change,
    now: f64,
) -> Result<(Option<TableMeta>, Value), DynamoError> {
    let respond = |shown: &TableMeta, status: &str| -> Result<Value, DynamoError> {
        Ok(json!({ "TableDescription": describe(service, shown, status)? }))
    };
    match change {
        Change::DeletionProtection(enabled) => {
            // Synchronous in DynamoDB too: the table stays ACTIVE, and re-sending the current
            // value is accepted.
            let mut updated = meta.clone();
            updated.deletion_protection = *enabled;
            let response = respond(&updated, "ACTIVE")?;
            Ok((Some(updated), response))
        }
        Change::TableClass(class) => {
            let current = meta.table_class.as_deref().unwrap_or("STANDARD");
            let response = respond(meta, "UPDATING")?;
            if current == class {
                // A no-op; STANDARD on a table that never set a class keeps the summary absent.
                return Ok((None, response));
            }
            let mut updated = meta.clone();
            updated.table_class = Some(class.clone());
            Ok((Some(updated), response))
        }
        Change::CreateIndex(index, definitions) => {
            let mut updated = meta.clone();
            if meta.indexes.iter().any(|i| i.status != "ACTIVE") {
                return Err(DynamoError::LimitExceeded(
                    "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table".into(),
                ));
            }
            merge_definitions(&mut updated.attribute_definitions, definitions)?;
            let created = index_specs::new_global_index(
                index,
                meta.next_index_id(),
                &updated.attribute_definitions,
                &meta.indexes,
                &meta.billing_mode,
            )?;
            updated.indexes.push(created);
            updated.drop_unused_definitions();
            updated.schema_version += 1;
            let response = respond(&updated, "UPDATING")?;
            Ok((Some(updated), response))
        }
        Change::DeleteIndex(name) => {
            let mut updated = meta.clone();
            let index = updated
                .indexes
                .iter_mut()
                .find(|i| &i.name == name && i.kind == IndexKind::Global)
                .ok_or_else(|| {
                    DynamoError::ResourceNotFound(format!(
                        "Requested resource not found: Index: {name} not found"
                    ))
                })?;
            if index.status == "DELETING" {
                return Err(DynamoError::LimitExceeded(
                    "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table".into(),
                ));
            }
            index.status = "DELETING".into();
            // Its contributor insights setting goes with it (DynamoDB leaves none behind).
            let own = |s: &crate::ops::InsightsSetting| s.index.as_deref() == Some(name.as_str());
            updated.contributor_insights.retain(|s| !own(s));
            updated.schema_version += 1;
            let response = respond(&updated, "UPDATING")?;
            Ok((Some(updated), response))
        }
        Change::Stream(requested, then) => {
            let head = service.engine.snapshot()?.log_head()?;
            let updated = crate::streams::change_stream(
                meta,
                requested,
                head,
                crate::streams::now_ms(),
                &service.config.streams,
            )?;
            match then {
                Some(then) => {
                    let (indexed, response) = apply(service, &updated, then, now)?;
                    Ok((indexed.or(Some(updated)), response))
                }
                None => {
                    // DynamoDB Local answers ACTIVE; the service, UPDATING (`crate::transient`).
                    let transient = !service.config.transient_status.is_zero();
                    let response =
                        respond(&updated, if transient { "UPDATING" } else { "ACTIVE" })?;
                    Ok((Some(updated), response))
                }
            }
        }
        Change::Capacity {
            billing_mode,
            throughput,
            on_demand,
            warm,
            then,
        } => {
            let (updated, shown) = if billing_mode.is_some() || throughput.is_some() {
                change_capacity(
                    meta,
                    billing_mode.as_deref(),
                    *throughput,
                    now,
                    &service.config.region,
                )?
            } else {
                (None, meta.clone())
            };
            let updated = with_capacity_settings(updated, meta, on_demand, warm)?;
            if let Some(then) = then {
                let base = updated.clone().unwrap_or_else(|| meta.clone());
                let (indexed, response) = apply(service, &base, then, now)?;
                return Ok((indexed.or(updated), response));
            }
            let response = respond(&shown, "UPDATING")?;
            Ok((updated, response))
        }
        Change::UpdateIndex(update) => {
            let updated = update.applied_to(meta, now)?;
            let response = respond(&updated, "UPDATING")?;
            Ok((Some(updated), response))
        }
    }
}

/// Adds a table's new OnDemandThroughput and WarmThroughput (`crate::capacity::settings`) to
/// what a billing or throughput change stores (`updated`, None when it stores nothing).
fn with_capacity_settings(
    updated: Option<TableMeta>,
    meta: &TableMeta,
    on_demand: &Option<OnDemandThroughputInput>,
    warm: &Option<WarmThroughputInput>,
) -> Result<Option<TableMeta>, DynamoError> {
    if on_demand.is_none() && warm.is_none() {
        return Ok(updated);
    }
    let mut updated = updated.unwrap_or_else(|| meta.clone());
    if let Some(on_demand) = on_demand {
        updated.on_demand = Some(on_demand.applied_to(updated.on_demand, Owner::Table)?);
    }
    if let Some(warm) = warm {
        updated.warm = Some(warm.applied_to(updated.warm, Owner::Table)?);
    }
    Ok(Some(updated))
}

/// A BillingMode and/or ProvisionedThroughput change. Returns the metadata to store (None for a
/// no-op) and the table as the UpdateTable response shows it: the old settings with the new
/// LastIncreaseDateTime/LastDecreaseDateTime.
fn change_capacity(
    meta: &TableMeta,
    billing_mode: Option<&str>,
    throughput: Option<(i64, i64)>,
    now: f64,
    region: &str,
) -> Result<(Option<TableMeta>, TableMeta), DynamoError> {
    let target = billing_mode.unwrap_or(&meta.billing_mode);
    if target == PAY_PER_REQUEST && throughput.is_some() {
        check_billing(
            PAY_PER_REQUEST,
            Some(&ProvisionedThroughputInput::default()),
        )?;
    }
    if target == PAY_PER_REQUEST {
        if meta.billing_mode == PAY_PER_REQUEST {
            return Ok((None, meta.clone()));
        }
        let mut updated = meta.clone();
        updated.billing_mode = PAY_PER_REQUEST.into();
        updated.pay_per_request_since = Some(now);
        updated.throughput = Throughput {
            read_capacity_units: 0,
            write_capacity_units: 0,
            decreases_today: decreases_today(&meta.throughput, now),
            ..meta.throughput.clone()
        };
        return Ok((Some(updated), meta.clone()));
    }
    let Some((read, write)) = throughput else {
        return Err(DynamoError::validation(
            "One or more parameter values were invalid: ProvisionedThroughput must be specified when BillingMode is PROVISIONED",
        ));
    };
    for (name, units) in [("ReadCapacityUnits", read), ("WriteCapacityUnits", write)] {
        if units > TABLE_MAX_CAPACITY_UNITS {
            return Err(DynamoError::LimitExceeded(format!(
                "The requested {name}, {units}, is above the per table maximum for the account in {region}. Per table maximum: {TABLE_MAX_CAPACITY_UNITS}."
            )));
        }
    }
    let mut updated = meta.clone();
    let mut shown = meta.clone();
    let old = &meta.throughput;
    let decreases = decreases_today(old, now);
    shown.throughput.decreases_today = decreases;
    updated.throughput = Throughput {
        read_capacity_units: read,
        write_capacity_units: write,
        decreases_today: decreases,
        ..old.clone()
    };
    if meta.billing_mode == PAY_PER_REQUEST {
        // Leaving on-demand sets the capacity as given; it counts as neither increase nor decrease.
        updated.billing_mode = PROVISIONED.into();
        return Ok((Some(updated), shown));
    }
    if (read, write) == (old.read_capacity_units, old.write_capacity_units) {
        return Err(DynamoError::validation(format!(
            "The provisioned throughput for the table will not change. The requested value equals the current value. Current ReadCapacityUnits provisioned for the table: {}. Requested ReadCapacityUnits: {read}. Current WriteCapacityUnits provisioned for the table: {}. Requested WriteCapacityUnits: {write}. Refer to the Amazon DynamoDB Developer Guide for current limits and how to request higher limits.",
            old.read_capacity_units, old.write_capacity_units
        )));
    }
    if read > old.read_capacity_units || write > old.write_capacity_units {
        updated.throughput.last_increase = Some(now);
    }
    if read < old.read_capacity_units || write < old.write_capacity_units {
        check_decrease_budget(old, now)?;
        updated.throughput.last_decrease = Some(now);
        updated.throughput.decreases_today = decreases + 1;
    }
    shown.throughput.last_increase = updated.throughput.last_increase;
    shown.throughput.last_decrease = updated.throughput.last_decrease;
    Ok((Some(updated), shown))
}

fn utc_day(seconds: f64) -> i64 {
    (seconds / SECONDS_PER_DAY).floor() as i64
}

/// NumberOfDecreasesToday as of `now`: the counter starts again at 00:00 UTC.
pub(crate) fn decreases_today(throughput: &Throughput, now: f64) -> i64 {
    match throughput.last_decrease {
        Some(last) if utc_day(last) == utc_day(now) => throughput.decreases_today,
        _ => 0,
    }
}

/// Four decreases a UTC day, then one every hour after the last one.
fn check_decrease_budget(throughput: &Throughput, now: f64) -> Result<(), DynamoError> {
    let count = decreases_today(throughput, now);
    let Some(last) = throughput.last_decrease else {
        return Ok(());
    };
    if count < FREE_DECREASES_PER_DAY || now - last >= SECONDS_BETWEEN_LIMITED_DECREASES {
        return Ok(());
    }
    let midnight = (utc_day(now) + 1) as f64 * SECONDS_PER_DAY;
    let next = (last + SECONDS_BETWEEN_LIMITED_DECREASES).min(midnight);
    Err(DynamoError::LimitExceeded(format!(
        "Subscriber limit exceeded: Provisioned throughput decreases are limited within a given UTC day. After the first {FREE_DECREASES_PER_DAY} decreases, each subsequent decrease in the same UTC day can be performed at most once every {} seconds. Number of decreases today: {count}. Last decrease at {}. Next decrease can be made at {}.",
        SECONDS_BETWEEN_LIMITED_DECREASES as i64,
        long_utc_date(last),
        long_utc_date(next)
    )))
}

/// A time as DynamoDB writes it in that message: "Thursday, October 8, 2026 at 11:20:48 PM
/// Coordinated Universal Time".
fn long_utc_date(seconds: f64) -> String {
    const WEEKDAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let whole = seconds.floor() as i64;
    let days = whole.div_euclid(86_400);
    let of_day = whole.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };
    format!(
        "{}, {} {day}, {year} at {hour12}:{minute:02}:{second:02} {} Coordinated Universal Time",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        if hour < 12 { "AM" } else { "PM" }
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Reads a table, works out its new metadata with `change` and stores it, starting again (a
/// bounded number of times) when a concurrent change to the same table won the race. `change`
/// answers the metadata to store (None when nothing changes) and the operation's result.
pub(crate) async fn modify_table<T>(
    service: &Service,
    lookup: impl Fn() -> Result<Arc<TableMeta>, DynamoError>,
    change: impl Fn(&TableMeta) -> Result<(Option<TableMeta>, T), DynamoError>,
) -> Result<T, DynamoError> {
    let mut retries = Retries::new("table metadata change");
    loop {
        let current = lookup()?;
        let (updated, result) = change(&current)?;
        let Some(updated) = updated else {
            return Ok(result);
        };
        // A lost race reloads the table's metadata into the cache, so `lookup` sees the winner's.
        if service.catalog.update(&current, updated).await? {
            return Ok(result);
        }
        retries.conflict().await?;
    }
}

/// Adds the request's attribute definitions to the table's; redefining an attribute with another
/// type is an error.
fn merge_definitions(
    current: &mut Vec<AttributeDefinition>,
    requested: &[AttributeDefinition],
) -> Result<(), DynamoError> {
    for definition in requested {
        match current
            .iter()
            .find(|d| d.attribute_name == definition.attribute_name)
        {
            Some(existing) if existing.attribute_type != definition.attribute_type => {
                return Err(DynamoError::validation(format!(
                    "One or more parameter values were invalid: Cannot change the type of attribute {} from {} to {}",
                    definition.attribute_name, existing.attribute_type, definition.attribute_type
                )));
            }
            Some(_) => {}
            None => current.push(definition.clone()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: Value) -> UpdateTableInput {
        serde_json::from_value(json).unwrap()
    }

    fn message(result: Result<Change, DynamoError>) -> String {
        match result {
            Err(error) => error.message().unwrap().to_owned(),
            Ok(_) => panic!("expected an error"),
        }
    }

    /// An ACTIVE global index with no key schema, `throughput` its provisioned capacity.
    fn global_index(
        id: u32,
        name: &str,
        throughput: Option<Throughput>,
    ) -> crate::catalog::IndexMeta {
        crate::catalog::IndexMeta {
            id,
            name: name.into(),
            kind: IndexKind::Global,
            key_schema: vec![],
            projection_type: "ALL".into(),
            non_key_attributes: None,
            status: "ACTIVE".into(),
            backfilling: false,
            throughput,
            on_demand: None,
            warm: None,
        }
    }

    fn table(billing_mode: &str, read: i64, write: i64) -> TableMeta {
        TableMeta {
            id: 1,
            name: "tab".into(),
            table_uuid: "uuid".into(),
            arn: "arn:aws:dynamodb:us-east-1:000000000000:table/tab".into(),
            created: 0.0,
            attribute_definitions: vec![],
            key_schema: vec![],
            indexes: vec![],
            schema_version: 0,
            version: 0,
            streams: vec![],
            mirror: None,
            restore: None,
            pitr: None,
            updated: None,
            resource_policies: vec![],
            contributor_insights: vec![],
            on_demand: None,
            warm: None,
            import: None,
            dropped_index_ids: 0,
            key_cache: Default::default(),
            billing_mode: billing_mode.into(),
            pay_per_request_since: None,
            throughput: Throughput {
                read_capacity_units: read,
                write_capacity_units: write,
                ..Throughput::default()
            },
            tags: vec![],
            time_to_live: None,
            deletion_protection: false,
            table_class: None,
            global: None,
        }
    }

    // 2026-10-08T23:20:48Z
    const LATE_EVENING: f64 = 1_791_501_648.0;

    #[test]
    fn nothing_to_update_lists_every_member() {
        assert_eq!(
            message(check_request(&input(json!({"TableName": "abc"})))),
            "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates, SSESpecification, ReplicaUpdates, MultiAccountReplicaReady, ReplicaTransitRoleArn, MultiRegionConsistency, DeletionProtectionEnabled, OnDemandThroughput, WarmThroughput or TableClass is required"
        );
        assert_eq!(
            message(check_request(&input(
                json!({"TableName": "abc", "GlobalSecondaryIndexUpdates": []})
            ))),
            message(check_request(&input(json!({"TableName": "abc"}))))
        );
        assert!(
            !message(check_request(&input(
                json!({"TableName": "abc", "MultiRegionConsistency": "STRONG"})
            )))
            .contains("MultiRegionConsistency")
        );
    }

    #[test]
    fn field_constraints_come_first() {
        assert_eq!(
            message(check_request(&input(json!({
                "TableName": "abc",
                "ProvisionedThroughput": {"ReadCapacityUnits": -1, "WriteCapacityUnits": -1}
            })))),
            "2 validation errors detected: Value '-1' at 'provisionedThroughput.writeCapacityUnits' failed to satisfy constraint: Member must have value greater than or equal to 1; Value '-1' at 'provisionedThroughput.readCapacityUnits' failed to satisfy constraint: Member must have value greater than or equal to 1"
        );
        assert_eq!(
            message(check_request(&input(json!({
                "TableName": "ab", "BillingMode": "FREE"
            })))),
            "2 validation errors detected: Value 'ab' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 3; Value 'FREE' at 'billingMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]"
        );
    }

    #[test]
    fn out_of_bounds_throughput_is_named() {
        assert_eq!(
            message(check_request(&input(json!({
                "TableName": "abc",
                "ProvisionedThroughput": {"ReadCapacityUnits": 1_000_000_000_000_i64, "WriteCapacityUnits": 1_000_000_000_001_i64}
            })))),
            "Given value 1000000000001 for WriteCapacityUnits is out of bounds"
        );
    }

    #[test]
    fn deletion_protection_and_table_class_must_be_alone() {
        assert_eq!(
            message(check_request(&input(json!({
                "TableName": "abc", "DeletionProtectionEnabled": true, "BillingMode": "PAY_PER_REQUEST"
            })))),
            "One or more parameter values were invalid: DeletionProtection modification must be the only operation in the request"
        );
        assert_eq!(
            message(check_request(&input(json!({
                "TableName": "abc", "DeletionProtectionEnabled": true, "TableClass": "STANDARD"
            })))),
            "One or more parameter values were invalid: TableClass modification must be the only operation in the request"
        );
        assert_eq!(
            message(check_request(&input(
                json!({"TableName": "abc", "TableClass": "COLD"})
            ))),
            "Invalid table-class parameter provided. Please try again with a valid table-class value: [STANDARD, STANDARD_INFREQUENT_ACCESS]."
        );
    }

    #[test]
    fn later_features_are_refused_plainly() {
        assert_eq!(
            message(check_request(&input(json!({
                "TableName": "abc", "SSESpecification": {"Enabled": true}
            })))),
            "SSESpecification is not supported by this version of Haven"
        );
    }

    #[test]
    fn an_index_update_is_checked_against_the_table() {
        let mut meta = table(PROVISIONED, 5, 5);
        let throughput = Throughput {
            read_capacity_units: 1,
            write_capacity_units: 1,
            ..Throughput::default()
        };
        meta.indexes.push(global_index(1, "byg", Some(throughput)));
        let update = |value: Value, meta: &TableMeta| {
            let Change::UpdateIndex(update) = check_request(&input(json!({
                "TableName": "tab", "GlobalSecondaryIndexUpdates": [{"Update": value}]
            })))
            .unwrap_or_else(|e| panic!("{e:?}")) else {
                panic!("not an index update");
            };
            update.applied_to(meta, LATE_EVENING)
        };
        let error =
            |value: Value, meta: &TableMeta| update(value, meta).unwrap_err().message().unwrap();
        let throughput = |read: i64| json!({"ReadCapacityUnits": read, "WriteCapacityUnits": 1});
        assert_eq!(
            error(
                json!({"IndexName": "nope", "ProvisionedThroughput": throughput(2)}),
                &meta
            ),
            "Invalid global secondary index name"
        );
        assert_eq!(
            error(
                json!({"IndexName": "byg", "ProvisionedThroughput": throughput(1)}),
                &meta
            ),
            "The requested throughput value equals the current value"
        );
        assert_eq!(
            error(
                json!({"IndexName": "byg", "OnDemandThroughput": {"MaxReadRequestUnits": 2}}),
                &meta
            ),
            "No provisioned throughput specified for the global secondary index"
        );
        let updated = update(
            json!({"IndexName": "byg", "ProvisionedThroughput": throughput(3)}),
            &meta,
        )
        .unwrap();
        let index = updated.index("byg").unwrap().throughput.clone().unwrap();
        assert_eq!(
            (index.read_capacity_units, index.last_increase),
            (3, Some(LATE_EVENING))
        );
        meta.billing_mode = PAY_PER_REQUEST.into();
        assert_eq!(
            error(
                json!({"IndexName": "byg", "ProvisionedThroughput": throughput(3)}),
                &meta
            ),
            "One or more parameter values were invalid: ProvisionedThroughput should not be specified for index: byg when BillingMode is PAY_PER_REQUEST"
        );
        let updated = update(
            json!({"IndexName": "byg", "OnDemandThroughput": {"MaxReadRequestUnits": 7}}),
            &meta,
        )
        .unwrap();
        let maximum = updated.index("byg").unwrap().on_demand.unwrap();
        assert_eq!((maximum.read, maximum.write), (7, -1));
    }

    fn capacity_error(
        meta: &TableMeta,
        mode: Option<&str>,
        throughput: Option<(i64, i64)>,
    ) -> DynamoError {
        match change_capacity(meta, mode, throughput, LATE_EVENING, "us-east-1") {
            Err(error) => error,
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn same_throughput_will_not_change() {
        let meta = table(PROVISIONED, 5, 5);
        assert_eq!(
            capacity_error(&meta, None, Some((5, 5))).message().unwrap(),
            "The provisioned throughput for the table will not change. The requested value equals the current value. Current ReadCapacityUnits provisioned for the table: 5. Requested ReadCapacityUnits: 5. Current WriteCapacityUnits provisioned for the table: 5. Requested WriteCapacityUnits: 5. Refer to the Amazon DynamoDB Developer Guide for current limits and how to request higher limits."
        );
        assert_eq!(
            capacity_error(&meta, Some(PROVISIONED), None)
                .message()
                .unwrap(),
            "One or more parameter values were invalid: ProvisionedThroughput must be specified when BillingMode is PROVISIONED"
        );
    }

    #[test]
    fn throughput_on_an_on_demand_table_is_refused() {
        let meta = table(PAY_PER_REQUEST, 0, 0);
        assert_eq!(
            capacity_error(&meta, None, Some((5, 5))).message().unwrap(),
            "One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST"
        );
        let meta = table(PROVISIONED, 5, 5);
        assert_eq!(
            capacity_error(&meta, Some(PAY_PER_REQUEST), Some((5, 5)))
                .message()
                .unwrap(),
            "One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST"
        );
    }

    #[test]
    fn per_table_maximum_is_a_limit() {
        let error = capacity_error(&table(PROVISIONED, 5, 5), None, Some((40_001, 5)));
        assert_eq!(error.name(), "LimitExceededException");
        assert_eq!(
            error.message().unwrap(),
            "The requested ReadCapacityUnits, 40001, is above the per table maximum for the account in us-east-1. Per table maximum: 40000."
        );
    }

    #[test]
    fn increases_and_decreases_are_recorded_and_the_response_shows_old_units() {
        let meta = table(PROVISIONED, 5, 5);
        let (updated, shown) =
            change_capacity(&meta, None, Some((10, 1)), LATE_EVENING, "us-east-1").unwrap();
        let updated = updated.unwrap();
        assert_eq!(updated.throughput.read_capacity_units, 10);
        assert_eq!(updated.throughput.write_capacity_units, 1);
        assert_eq!(updated.throughput.last_increase, Some(LATE_EVENING));
        assert_eq!(updated.throughput.last_decrease, Some(LATE_EVENING));
        assert_eq!(updated.throughput.decreases_today, 1);
        assert_eq!(shown.throughput.read_capacity_units, 5);
        assert_eq!(shown.throughput.decreases_today, 0);
        assert_eq!(shown.throughput.last_decrease, Some(LATE_EVENING));
    }

    #[test]
    fn the_fifth_decrease_of_a_day_waits_an_hour_or_midnight() {
        let mut meta = table(PROVISIONED, 100, 100);
        let mut now = LATE_EVENING - 600.0;
        for units in [99, 98, 97, 96] {
            let (updated, _) =
                change_capacity(&meta, None, Some((units, units)), now, "us-east-1").unwrap();
            meta = updated.unwrap();
            now += 1.0;
        }
        assert_eq!(decreases_today(&meta.throughput, now), 4);
        let error = capacity_error(&meta, None, Some((95, 95)));
        assert_eq!(error.name(), "LimitExceededException");
        assert_eq!(
            error.message().unwrap(),
            "Subscriber limit exceeded: Provisioned throughput decreases are limited within a given UTC day. After the first 4 decreases, each subsequent decrease in the same UTC day can be performed at most once every 3600 seconds. Number of decreases today: 4. Last decrease at Thursday, October 8, 2026 at 11:10:51 PM Coordinated Universal Time. Next decrease can be made at Friday, October 9, 2026 at 12:00:00 AM Coordinated Universal Time."
        );
        // Increases stay allowed, and the budget is back after midnight.
        assert!(change_capacity(&meta, None, Some((200, 200)), LATE_EVENING, "us-east-1").is_ok());
        let tomorrow = LATE_EVENING + 3600.0;
        assert_eq!(decreases_today(&meta.throughput, tomorrow), 0);
        assert!(change_capacity(&meta, None, Some((95, 95)), tomorrow, "us-east-1").is_ok());
    }

    #[test]
    fn switching_billing_modes() {
        let meta = table(PROVISIONED, 5, 5);
        let (updated, shown) = change_capacity(
            &meta,
            Some(PAY_PER_REQUEST),
            None,
            LATE_EVENING,
            "us-east-1",
        )
        .unwrap();
        let updated = updated.unwrap();
        assert_eq!(updated.billing_mode, PAY_PER_REQUEST);
        assert_eq!(updated.pay_per_request_since, Some(LATE_EVENING));
        assert_eq!(updated.throughput.read_capacity_units, 0);
        assert_eq!(shown.billing_mode, PROVISIONED);
        // Re-sending PAY_PER_REQUEST is accepted and changes nothing.
        let (again, _) = change_capacity(
            &updated,
            Some(PAY_PER_REQUEST),
            None,
            LATE_EVENING,
            "us-east-1",
        )
        .unwrap();
        assert!(again.is_none());
        let (back, _) = change_capacity(
            &updated,
            Some(PROVISIONED),
            Some((7, 8)),
            LATE_EVENING,
            "us-east-1",
        )
        .unwrap();
        let back = back.unwrap();
        assert_eq!(back.billing_mode, PROVISIONED);
        assert_eq!(back.throughput.read_capacity_units, 7);
        assert_eq!(back.pay_per_request_since, Some(LATE_EVENING));
    }

    #[test]
    fn long_dates() {
        assert_eq!(
            long_utc_date(0.0),
            "Thursday, January 1, 1970 at 12:00:00 AM Coordinated Universal Time"
        );
        assert_eq!(
            long_utc_date(951_825_600.5),
            "Tuesday, February 29, 2000 at 12:00:00 PM Coordinated Universal Time"
        );
    }

    #[test]
    fn index_ids_are_never_reused() {
        let mut meta = table("PAY_PER_REQUEST", 0, 0);
        assert_eq!(meta.next_index_id(), 1);
        let index = |id| global_index(id, &format!("i{id}"), None);
        meta.indexes = vec![index(1), index(2)];
        assert_eq!(meta.next_index_id(), 3);
        // The newest index dropped, as the index worker drops it: its id stays taken.
        meta.indexes.retain(|i| i.id != 2);
        meta.dropped_index_ids = 2;
        assert_eq!(meta.next_index_id(), 3);
        // A catalog stored before the high-water mark was kept reads as 0.
        let mut stored = serde_json::to_value(&meta).unwrap();
        stored.as_object_mut().unwrap().remove("dropped_index_ids");
        let old: TableMeta = serde_json::from_value(stored).unwrap();
        assert_eq!((old.dropped_index_ids, old.next_index_id()), (0, 2));
    }

    #[test]
    fn a_change_of_the_log_readers_bumps_the_schema_version() {
        let installed =
            |current: &TableMeta, updated: TableMeta| match crate::catalog::Catalog::update_batch(
                current, updated,
            )
            .1
            {
                crate::catalog::Installation::Install(meta) => *meta,
                crate::catalog::Installation::Remove { .. } => unreachable!(),
            };
        let plain = table("PAY_PER_REQUEST", 0, 0);
        let mut tagged = plain.clone();
        tagged.tags.push(("k".into(), "v".into()));
        assert_eq!(
            installed(&plain, tagged).schema_version,
            plain.schema_version
        );
        let interval = std::time::Duration::from_secs(3600);
        let mut streamed = plain.clone();
        for view in ["KEYS_ONLY", "NEW_IMAGE"] {
            let mut updated = plain.clone();
            updated.streams = vec![crate::streams::new_table_stream(view, 1, interval)];
            streamed = installed(&plain, updated);
            assert_eq!(streamed.schema_version, plain.schema_version + 1, "{view}");
        }
        // A caller that bumped it already (replicas) is not bumped twice.
        let mut replicated = streamed.clone();
        replicated.global = Some(crate::replication::GlobalTable {
            region: "us-east-1".into(),
            replicas: vec![],
            legacy_since_ms: None,
        });
        replicated.schema_version += 1;
        let replicated = installed(&streamed, replicated);
        assert_eq!(replicated.schema_version, streamed.schema_version + 1);
    }
}
