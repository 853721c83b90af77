//! BatchExecuteStatement: up to 25 statements, all reads or all writes. Each answers on its own
//! (an item, or an error with DynamoDB's code) and a failed statement does not stop the others.
//! Reads name one item each and come from one snapshot, as BatchGetItem's do; writes run one by
//! one through the same path as ExecuteStatement's, each atomic on its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use haven_expr::Path;
use haven_expr::partiql::{Statement, select_item};
use haven_model::{Item, item_size};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{StatementInput, exists_outside_transactions};
use crate::Service;
use crate::catalog::TableMeta;
use crate::error::{DynamoError, Violations};
use crate::indexes::IndexUnits;
use crate::items::{Capacity, CapacityReport, read_item, read_units};
use crate::wire::item_to_json;

const MAX_STATEMENTS: usize = 25;

const SINGLE_ITEM: &str = "Only single item select is supported";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchExecuteStatementInput {
    statements: Option<Vec<StatementInput>>,
    return_consumed_capacity: Option<String>,
}

/// How one statement of the batch ended.
enum Entry {
    Done {
        table: String,
        item: Option<Item>,
    },
    /// `table` is named when the statement got as far as its item.
    Failed {
        error: DynamoError,
        table: Option<String>,
    },
}

impl Entry {
    fn refused(error: DynamoError) -> Entry {
        Entry::Failed { error, table: None }
    }
}

/// Capacity consumed, per table: on the table, and on its indexes.
type Units = BTreeMap<String, (f64, IndexUnits)>;

pub(crate) async fn batch_execute_statement(
    service: &Service,
    input: BatchExecuteStatementInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    let count = input.statements.as_ref().map_or(0, Vec::len);
    super::check_count(&mut violations, "statements", count, MAX_STATEMENTS);
    let report = CapacityReport::parse(&mut violations, input.return_consumed_capacity.as_deref());
    violations.into_result()?;
    let inputs = input.statements.unwrap_or_default();
    if inputs.is_empty() {
        return Err(DynamoError::validation("The statement was empty."));
    }
    let parsed: Vec<Result<Statement, DynamoError>> = inputs
        .iter()
        .map(|i| i.parse().map_err(|r| r.error))
        .collect();
    // EXISTS counts as a read here, where it is refused on its own.
    let is_read = |s: &&Statement| matches!(s, Statement::Select(_) | Statement::Exists(_));
    let reads = parsed.iter().flatten().filter(is_read).count();
    if reads > 0 && reads < parsed.iter().flatten().count() {
        return Err(DynamoError::validation(
            "Read and write requests together in the same batch is not supported.",
        ));
    }
    let mut units = Units::new();
    let entries = if reads > 0 {
        read_all(service, &inputs, parsed, &mut units)?
    } else {
        write_all(service, &inputs, parsed, &mut units).await?
    };
    let responses: Vec<Value> = entries.into_iter().map(entry_json).collect();
    let mut response = json!({ "Responses": responses });
    let kind = if reads > 0 {
        Capacity::Read
    } else {
        Capacity::Write
    };
    let tables = units
        .iter()
        .map(|(t, (units, indexes))| (t.as_str(), *units, &indexes[..]));
    if let Some(capacity) = report.render_tables(kind, tables) {
        response["ConsumedCapacity"] = capacity;
    }
    Ok(response)
}

/// A read of the batch, checked: its table, key and select list.
type PlannedRead = (Arc<TableMeta>, Item, Option<Vec<Path>>);

/// The reads, each of one item, from one snapshot.
fn read_all(
    service: &Service,
    inputs: &[StatementInput],
    parsed: Vec<Result<Statement, DynamoError>>,
    units: &mut Units,
) -> Result<Vec<Entry>, DynamoError> {
    let planned: Vec<Result<PlannedRead, DynamoError>> = parsed
        .into_iter()
        .map(|statement| match statement? {
            Statement::Select(select) => {
                let (meta, key) = super::read::one_item(service, &select, SINGLE_ITEM)?;
                Ok((meta, key, select.projection))
            }
            _ => Err(exists_outside_transactions()),
        })
        .collect();
    reject_duplicates(planned.iter().flatten().map(|(meta, key, _)| (meta, key)))?;
    let snapshot = service.engine.snapshot()?;
    let mut entries = Vec::with_capacity(planned.len());
    for (planned, input) in planned.into_iter().zip(inputs) {
        let (meta, key, projection) = match planned {
            Ok(planned) => planned,
            Err(error) => {
                entries.push(Entry::refused(error));
                continue;
            }
        };
        // Each statement is admitted on its own, as a GetItem (its refusal is its own error).
        if let Err(error) = service.capacity.admit(&meta, None, Capacity::Read) {
            entries.push(Entry::refused(error));
            continue;
        }
        let found = read_item(&*snapshot, &meta, &key)?.map(|(_, item)| item);
        let size = found.as_ref().map_or(0, item_size);
        let statement_units = read_units(size, input.consistent());
        service
            .capacity
            .charge(&meta, Capacity::Read, statement_units, &[]);
        units.entry(meta.name.clone()).or_default().0 += statement_units;
        entries.push(Entry::Done {
            table: meta.name.clone(),
            item: found.map(|item| select_item(item, projection.as_deref())),
        });
    }
    Ok(entries)
}

/// The writes, one after the other.
async fn write_all(
    service: &Service,
    inputs: &[StatementInput],
    parsed: Vec<Result<Statement, DynamoError>>,
    units: &mut Units,
) -> Result<Vec<Entry>, DynamoError> {
    let planned: Vec<Result<super::write::PlannedWrite, DynamoError>> = parsed
        .into_iter()
        .map(|statement| match statement? {
            Statement::Exists(_) => Err(exists_outside_transactions()),
            write => super::write::plan(service, write),
        })
        .collect();
    reject_duplicates(planned.iter().flatten().map(|p| (&p.meta, &p.key)))?;
    let mut entries = Vec::with_capacity(planned.len());
    for (planned, input) in planned.into_iter().zip(inputs) {
        let planned = match planned {
            Ok(planned) => planned,
            Err(error) => {
                entries.push(Entry::refused(error));
                continue;
            }
        };
        let table = Some(planned.meta.name.clone());
        let written = match input.return_item_on_failure() {
            Ok(wanted) => super::write::run(service, &planned, wanted).await,
            Err(error) => Err(error),
        };
        entries.push(match written {
            Ok(written) => {
                let spent = units.entry(written.table.clone()).or_default();
                spent.0 += crate::items::write_units(&written.outcome);
                spent.1.extend(written.outcome.index_units.iter().cloned());
                Entry::Done {
                    table: written.table,
                    item: written.item,
                }
            }
            Err(error) => Entry::Failed { error, table },
        });
    }
    Ok(entries)
}

/// DynamoDB refuses a batch that names one item twice.
fn reject_duplicates<'a>(
    items: impl Iterator<Item = (&'a Arc<TableMeta>, &'a Item)>,
) -> Result<(), DynamoError> {
    crate::ops::reject_repeated_items(items, "Provided list of item keys contains duplicates")
}

fn entry_json(entry: Entry) -> Value {
    let mut out = Map::new();
    match entry {
        Entry::Done { table, item } => {
            out.insert("TableName".into(), json!(table));
            if let Some(item) = item {
                out.insert("Item".into(), item_to_json(&item));
            }
        }
        Entry::Failed { error, table } => {
            out.insert("Error".into(), error_json(&error));
            if let Some(table) = table {
                out.insert("TableName".into(), json!(table));
            }
        }
    }
    Value::Object(out)
}

/// A statement's error: BatchStatementError's code, message, and the item a failed condition
/// returns when asked for.
fn error_json(error: &DynamoError) -> Value {
    let code = match error {
        DynamoError::ConditionalCheckFailed { .. } => "ConditionalCheckFailed",
        DynamoError::DuplicateItem => "DuplicateItem",
        DynamoError::ResourceNotFound(_) => "ResourceNotFound",
        DynamoError::ItemCollectionSizeLimitExceeded => "ItemCollectionSizeLimitExceeded",
        DynamoError::TransactionConflict => "TransactionConflict",
        DynamoError::ProvisionedThroughputExceeded(_) => "ProvisionedThroughputExceeded",
        DynamoError::Throttling | DynamoError::OnDemandThrottling(_) => "ThrottlingError",
        DynamoError::InternalServerError => "InternalServerError",
        DynamoError::AccessDenied(_) => "AccessDenied",
        _ => "ValidationError",
    };
    let mut out = json!({ "Code": code, "Message": error.message().unwrap_or_default() });
    if let DynamoError::ConditionalCheckFailed {
        item: Some(item), ..
    } = error
    {
        out["Item"] = item_to_json(item);
    }
    out
}
