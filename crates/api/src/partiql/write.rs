//! INSERT, UPDATE and DELETE: each names one item, and writes it through `items::write_item`
//! under a condition built from its WHERE clause. INSERT puts an item only where there is none
//! (else DuplicateItemException), UPDATE changes an item only where there is one, DELETE removes
//! the item if it is there and its condition holds. The same planned writes become a transaction's
//! actions ([`PlannedWrite::into_action`]).

use std::borrow::Cow;
use std::sync::Arc;

use haven_expr::partiql::{Returning, Statement, keys};
use haven_expr::{Condition, Path, UpdateExpression, UpdatedPaths};
use haven_model::Item;
use serde_json::Value;

use super::{check_name, expr_schema};
use crate::Service;
use crate::catalog::TableMeta;
use crate::error::DynamoError;
use crate::expressions::{RequestConditions, Update, check_condition};
use crate::items::{
    Capacity, CapacityReport, WriteOutcome, check_item_size, empty_key_value, table, validate_item,
    validate_key, write_item, write_units,
};
use crate::ops::{Action, ActionKind, Failure, ReturnValues, updated_item};

/// What an INSERT's failed condition is in a transaction: DynamoDB Local's reason.
const DUPLICATE: Failure = Failure {
    code: "ValidationError",
    message: "Duplicate primary key exists in table",
};

/// A write checked against its table, ready to run.
pub(crate) struct PlannedWrite {
    pub meta: Arc<TableMeta>,
    pub key: Item,
    kind: WriteKind,
    /// The write's condition: the rest of its WHERE clause, with what its kind requires of the
    /// item's existence.
    condition: Option<Condition>,
}

enum WriteKind {
    Insert(Item),
    Update(UpdateExpression, Option<Returning>),
    Delete(Option<Returning>),
}

/// Checks a write statement against its table.
pub(crate) fn plan(service: &Service, statement: Statement) -> Result<PlannedWrite, DynamoError> {
    match statement {
        Statement::Insert(insert) => {
            let meta = table(service, &insert.table)?;
            check_insert_keys(&meta, &insert.item)?;
            validate_item(&meta, &insert.item)?;
            check_item_size(&insert.item)?;
            let key = meta.keys().project_key(&insert.item);
            let condition = Condition::AttributeNotExists(partition_path(&meta));
            Ok(PlannedWrite {
                meta,
                key,
                kind: WriteKind::Insert(insert.item),
                condition: Some(condition),
            })
        }
        Statement::Update(update) => {
            let (meta, key, rest) = one_item(
                service,
                &update.table,
                &update.index,
                update.condition.as_ref(),
            )?;
            // An update of a key attribute is refused once the item is known to be there.
            let exists = Condition::AttributeExists(partition_path(&meta));
            Ok(PlannedWrite {
                condition: Some(and(exists, rest)),
                kind: WriteKind::Update(update.update, update.returning),
                meta,
                key,
            })
        }
        Statement::Delete(delete) => {
            if let Some(returning) = delete.returning.filter(|r| *r != Returning::AllOld) {
                return Err(DynamoError::validation(format!(
                    "Invalid returning clause: RETURNING {}. Only RETURNING ALL OLD * is allowed in DELETE statements.",
                    returning.text()
                )));
            }
            let (meta, key, rest) = one_item(
                service,
                &delete.table,
                &delete.index,
                delete.condition.as_ref(),
            )?;
            // A missing item is deleted whatever the rest of the clause says.
            let missing = Condition::AttributeNotExists(partition_path(&meta));
            Ok(PlannedWrite {
                condition: rest.map(|rest| Condition::Or(Box::new(missing), Box::new(rest))),
                kind: WriteKind::Delete(delete.returning),
                meta,
                key,
            })
        }
        Statement::Select(_) | Statement::Exists(_) => unreachable!("callers pass writes only"),
    }
}

/// The table, key and rest of the WHERE clause of a statement that names one item.
pub(super) fn one_item(
    service: &Service,
    table_name: &str,
    index: &Option<String>,
    condition: Option<&Condition>,
) -> Result<(Arc<TableMeta>, Item, Option<Condition>), DynamoError> {
    check_name(table_name)?;
    if index.is_some() {
        return Err(DynamoError::validation(
            "This operation is not supported on an index",
        ));
    }
    let meta = table(service, table_name)?;
    let schema = meta.keys();
    let (key, rest) = keys::item_key(condition, &expr_schema(schema))
        .map_err(|e| DynamoError::validation(e.message()))?;
    validate_key(&meta, &key)?;
    Ok((meta, key, rest))
}

/// An INSERT's key attributes, in PartiQL's words.
fn check_insert_keys(meta: &TableMeta, item: &Item) -> Result<(), DynamoError> {
    for attribute in meta.keys().attributes() {
        let name = &attribute.name;
        let Some(value) = item.get(name) else {
            return Err(DynamoError::validation(format!(
                "Key attribute should be present in the item: Key {name}"
            )));
        };
        if !attribute.scalar_type.matches(value) {
            return Err(DynamoError::validation(format!(
                "Key attribute's data type should match its data type in table's schema: Key {name}"
            )));
        }
        if let Some(error) = empty_key_value(name, value) {
            return Err(error);
        }
    }
    Ok(())
}

fn partition_path(meta: &TableMeta) -> Path {
    Path::attribute(&meta.keys().hash().name)
}

fn key_names(meta: &TableMeta) -> Vec<&str> {
    meta.key_schema
        .iter()
        .map(|k| k.attribute_name.as_str())
        .collect()
}

fn and(first: Condition, rest: Option<Condition>) -> Condition {
    match rest {
        Some(rest) => Condition::And(Box::new(first), Box::new(rest)),
        None => first,
    }
}

/// A write that ran: what RETURNING asked for, and what the write did.
pub(crate) struct Written {
    pub item: Option<Item>,
    pub outcome: WriteOutcome<'static>,
    pub table: String,
}

impl Written {
    /// ConsumedCapacity, when asked for.
    pub fn capacity(&self, report: CapacityReport) -> Option<Value> {
        report.render_with_indexes(
            Capacity::Write,
            &self.table,
            write_units(&self.outcome),
            &self.outcome.index_units,
        )
    }
}

/// Runs a planned write; a failed condition returns the item when `return_item_on_failure`.
pub(crate) async fn run(
    service: &Service,
    planned: &PlannedWrite,
    return_item_on_failure: bool,
) -> Result<Written, DynamoError> {
    let (meta, key) = (&planned.meta, &planned.key);
    let condition = planned.condition.as_ref();
    let names = key_names(meta);
    let mut updated = UpdatedPaths::default();
    let outcome = write_item(service, meta, key, |current| match &planned.kind {
        WriteKind::Insert(item) => {
            check_condition(condition, current, false).map_err(|_| DynamoError::DuplicateItem)?;
            Ok(Some(Cow::Owned(item.clone())))
        }
        WriteKind::Update(update, _) => {
            check_condition(condition, current, return_item_on_failure)?;
            let (item, paths) =
                updated_item(
                    meta,
                    key,
                    current,
                    |item| Ok(update.apply_to(item, &names)?),
                )?;
            updated = paths;
            Ok(Some(Cow::Owned(item)))
        }
        WriteKind::Delete(_) => {
            check_condition(condition, current, return_item_on_failure)?;
            Ok(None)
        }
    })
    .await?;
    let item = match &planned.kind {
        WriteKind::Insert(_) => None,
        WriteKind::Update(_, returning) | WriteKind::Delete(returning) => returning.and_then(|r| {
            return_values(r).select(outcome.old.as_ref(), outcome.new.as_deref(), &updated)
        }),
    };
    Ok(Written {
        item,
        outcome,
        table: meta.name.clone(),
    })
}

fn return_values(returning: Returning) -> ReturnValues {
    match returning {
        Returning::AllOld => ReturnValues::AllOld,
        Returning::ModifiedOld => ReturnValues::UpdatedOld,
        Returning::AllNew => ReturnValues::AllNew,
        Returning::ModifiedNew => ReturnValues::UpdatedNew,
    }
}

impl PlannedWrite {
    /// The write as an action of a write transaction (which has no RETURNING).
    pub fn into_action(self, return_item_on_failure: bool) -> Action {
        let conditions = |update: Option<UpdateExpression>| RequestConditions {
            condition: self.condition.clone(),
            update: update.map(Update::Expression),
            ..RequestConditions::default()
        };
        match self.kind {
            WriteKind::Insert(item) => Action::new(
                ActionKind::Put,
                self.meta.clone(),
                self.key.clone(),
                Some(item),
                conditions(None),
                false,
            )
            .failing_with(DUPLICATE),
            WriteKind::Update(update, _) => Action::new(
                ActionKind::Update,
                self.meta.clone(),
                self.key.clone(),
                None,
                conditions(Some(update)),
                return_item_on_failure,
            ),
            WriteKind::Delete(_) => Action::new(
                ActionKind::Delete,
                self.meta.clone(),
                self.key.clone(),
                None,
                conditions(None),
                return_item_on_failure,
            ),
        }
    }
}

/// The partition key values a statement names, as IAM's `dynamodb:LeadingKeys` compares them
/// (none when it names no partition, or does not resolve against its table).
pub(crate) fn partition_keys(service: &Service, statement: &Statement) -> Vec<String> {
    let Ok(Some(meta)) = service.catalog.get(statement.table()) else {
        return Vec::new();
    };
    let values = match statement {
        Statement::Insert(insert) => insert
            .item
            .get(&meta.keys().hash().name)
            .cloned()
            .into_iter()
            .collect(),
        Statement::Select(select) => super::read::partitions(&meta, select).unwrap_or_default(),
        Statement::Exists(select) => item_partition(&meta, select.condition.as_ref()),
        Statement::Update(update) => item_partition(&meta, update.condition.as_ref()),
        Statement::Delete(delete) => item_partition(&meta, delete.condition.as_ref()),
    };
    values
        .iter()
        .filter_map(crate::access::leading_key_text_of)
        .collect()
}

fn item_partition(
    meta: &TableMeta,
    condition: Option<&Condition>,
) -> Vec<haven_model::AttributeValue> {
    let schema = meta.keys();
    keys::item_key(condition, &expr_schema(schema))
        .ok()
        .and_then(|(mut key, _)| key.remove(&schema.hash().name))
        .into_iter()
        .collect()
}
