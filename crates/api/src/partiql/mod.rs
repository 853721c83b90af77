//! ExecuteStatement, BatchExecuteStatement and ExecuteTransaction: DynamoDB's PartiQL statements.
//!
//! Why no machinery of its own: `haven_expr::partiql` turns a statement into the expression
//! language's AST, and each statement then runs through what the item operations already use. A
//! SELECT reads pages of its table or index with `pages::read_page` (one range per partition its
//! WHERE clause names, else a scan with the clause as filter), INSERT, UPDATE and DELETE go
//! through `items::write_item` with a decide closure, a batch runs its statements one by one (its
//! reads from one snapshot), and a transaction hands its statements to TransactWriteItems' and
//! TransactGetItems' machinery as already-parsed actions.
//!
//! The messages follow DynamoDB Local where AWS does not document them; docs/compatibility.md
//! ("PartiQL") lists where Haven follows the real service instead.

mod batch;
mod read;
mod transaction;
mod write;

use haven_expr::partiql::{self, MAX_STATEMENT_LENGTH, Statement, StatementError};
use haven_model::AttributeValue;
use serde::Deserialize;
use serde_json::Value;

use crate::Service;
use crate::error::{DynamoError, Violations};
use crate::expressions::return_item_on_failure;
use crate::items::CapacityReport;
use crate::reply::{Member, Reply};

pub(crate) use batch::batch_execute_statement;
pub(crate) use transaction::execute_transaction;

/// One statement as a request carries it: ExecuteStatement's own members, or an entry of a batch
/// or a transaction.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StatementInput {
    statement: Option<String>,
    parameters: Option<Vec<Value>>,
    consistent_read: Option<bool>,
    return_values_on_condition_check_failure: Option<String>,
}

/// Why a statement cannot run, found before its table is looked at.
pub(crate) struct Refused {
    pub error: DynamoError,
    /// It did not parse (a transaction reports this without naming the statement).
    pub malformed: bool,
}

impl From<DynamoError> for Refused {
    fn from(error: DynamoError) -> Refused {
        Refused {
            error,
            malformed: false,
        }
    }
}

impl StatementInput {
    /// The statement with its parameters bound. DynamoDB checks the length before anything else.
    fn parse(&self) -> Result<Statement, Refused> {
        let text = self.statement.as_deref().unwrap_or_default();
        if text.chars().count() > MAX_STATEMENT_LENGTH {
            return Err(DynamoError::validation(format!(
                "Member must have length less than or equal to {MAX_STATEMENT_LENGTH}"
            ))
            .into());
        }
        let parameters: Vec<AttributeValue> = self
            .parameters
            .iter()
            .flatten()
            .map(crate::wire::parse_value)
            .collect::<Result<_, _>>()?;
        partiql::parse_statement(text, &parameters).map_err(|error| Refused {
            malformed: matches!(error, StatementError::Malformed(_)),
            error: DynamoError::validation(error.message()),
        })
    }

    fn consistent(&self) -> bool {
        self.consistent_read.unwrap_or(false)
    }

    /// ReturnValuesOnConditionCheckFailure, checked.
    fn return_item_on_failure(&self) -> Result<bool, DynamoError> {
        let mut violations = Violations::new();
        let value = self.return_values_on_condition_check_failure.as_deref();
        let wanted = return_item_on_failure(value, &mut violations);
        violations.into_result()?;
        Ok(wanted)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ExecuteStatementInput {
    #[serde(flatten)]
    statement: StatementInput,
    next_token: Option<String>,
    return_consumed_capacity: Option<String>,
    limit: Option<i64>,
}

/// DynamoDB's bounds on a NextToken's length.
const MAX_NEXT_TOKEN_LENGTH: usize = 32768;

pub(crate) async fn execute_statement(
    service: &Service,
    input: ExecuteStatementInput,
) -> Result<Reply, DynamoError> {
    let mut violations = Violations::new();
    if input.statement.statement.is_none() {
        violations.null("statement");
    }
    if let Some(token) = input
        .next_token
        .as_deref()
        .filter(|t| t.is_empty() || t.len() > MAX_NEXT_TOKEN_LENGTH)
    {
        let bound = if token.is_empty() {
            "greater than or equal to 1".to_string()
        } else {
            format!("less than or equal to {MAX_NEXT_TOKEN_LENGTH}")
        };
        violations.push(format!(
            "Value '{token}' at 'nextToken' failed to satisfy constraint: Member must have length {bound}"
        ));
    }
    let report = CapacityReport::parse(&mut violations, input.return_consumed_capacity.as_deref());
    crate::pages::check_limit(&mut violations, input.limit);
    violations.into_result()?;
    let return_item = input.statement.return_item_on_failure()?;
    match input.statement.parse().map_err(|r| r.error)? {
        Statement::Select(select) => {
            let options = read::Options {
                limit: input.limit,
                consistent: input.statement.consistent(),
                next_token: input.next_token.as_deref(),
                report,
            };
            read::select(service, &select, &options)
        }
        Statement::Exists(_) => Err(exists_outside_transactions()),
        write => {
            let planned = write::plan(service, write)?;
            let written = write::run(service, &planned, return_item).await?;
            let capacity = written.capacity(report);
            let mut reply = Reply::default();
            reply.push("Items", Member::Items(written.item.into_iter().collect()));
            if let Some(capacity) = capacity {
                reply.push("ConsumedCapacity", Member::Json(capacity));
            }
            Ok(reply)
        }
    }
}

/// A list of statements longer than DynamoDB allows (`member` names it in the message).
fn check_count(violations: &mut Violations, member: &str, count: usize, max: usize) {
    if count > max {
        violations.push(format!(
            "Value '[...{count} items]' at '{member}' failed to satisfy constraint: Member must have length less than or equal to {max}"
        ));
    }
}

fn exists_outside_transactions() -> DynamoError {
    DynamoError::validation("EXISTS can only be used in ExecuteTransaction write requests.")
}

/// The table (or index) name rules, in PartiQL's words.
fn check_name(name: &str) -> Result<(), DynamoError> {
    let mut violations = Violations::new();
    violations.name("name", Some(name));
    violations.into_result().map_err(|_| {
        DynamoError::validation(
            "Table name should be within the length [3, 255] and only contain 'a-z', 'A-Z', '0-9', '-', '_', '.'.",
        )
    })
}

/// The expression language's view of a key schema.
pub(crate) fn expr_schema(schema: &haven_model::schema::KeySchema) -> haven_expr::KeySchema<'_> {
    haven_expr::KeySchema {
        hash: (&schema.hash().name, schema.hash().scalar_type.name()),
        range: schema
            .range()
            .map(|s| (s.name.as_str(), s.scalar_type.name())),
    }
}

/// The permission a statement needs: its PartiQL action, table, index, and (when asked for) the
/// partition key values it names. `None` when it does not parse: the operation refuses it then.
pub(crate) fn statement_permission(
    service: &Service,
    entry: &Value,
    with_keys: bool,
) -> Option<(&'static str, String, Option<String>, Vec<String>)> {
    let input: StatementInput = serde_json::from_value(entry.clone()).ok()?;
    let statement = input.parse().ok()?;
    let keys = if with_keys {
        write::partition_keys(service, &statement)
    } else {
        Vec::new()
    };
    let (action, table, index) = match statement {
        Statement::Select(s) | Statement::Exists(s) => ("PartiQLSelect", s.table, s.index),
        Statement::Insert(i) => ("PartiQLInsert", i.table, None),
        Statement::Update(u) => ("PartiQLUpdate", u.table, u.index),
        Statement::Delete(d) => ("PartiQLDelete", d.table, d.index),
    };
    Some((action, table, index, keys))
}
