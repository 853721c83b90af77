//! ExecuteTransaction: up to 100 statements, all reads or all writes (EXISTS counting as a write,
//! a condition check). Reads name one item each and run as TransactGetItems does; writes become
//! TransactWriteItems' actions (INSERT a Put that requires the item's absence, UPDATE an Update
//! that requires its presence, DELETE a Delete, EXISTS a ConditionCheck) and commit through the
//! same machinery: one snapshot, one batch, cancellation reasons, ClientRequestToken idempotency.

use haven_expr::partiql::{Select, Statement, keys, select_item};
use haven_expr::{Condition, Path};
use serde::Deserialize;
use serde_json::Value;

use super::{StatementInput, check_name, expr_schema};
use crate::Service;
use crate::error::{DynamoError, Violations};
use crate::expressions::RequestConditions;
use crate::items::{CapacityReport, table, validate_key};
use crate::ops::{
    Action, ActionKind, Failure, REPEATED_ITEM, TransactWrite, check_token, commit_actions,
    read_items, reject_repeated_items, request_fingerprint,
};

const MAX_STATEMENTS: usize = 100;

/// What a false EXISTS answers: DynamoDB Local's reason, with its full stop.
const EXISTS_FAILED: Failure = Failure {
    code: "ConditionalCheckFailed",
    message: "The conditional request failed.",
};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ExecuteTransactionInput {
    transact_statements: Option<Vec<StatementInput>>,
    client_request_token: Option<String>,
    return_consumed_capacity: Option<String>,
}

pub(crate) async fn execute_transaction(
    service: &Service,
    request: Value,
) -> Result<Value, DynamoError> {
    let request_hash = request_fingerprint(&request);
    let input: ExecuteTransactionInput = crate::ops::parse(request)?;
    let mut violations = Violations::new();
    let count = input.transact_statements.as_ref().map_or(0, Vec::len);
    super::check_count(&mut violations, "transactStatements", count, MAX_STATEMENTS);
    let report = CapacityReport::parse(&mut violations, input.return_consumed_capacity.as_deref());
    check_token(&mut violations, input.client_request_token.as_deref());
    violations.into_result()?;
    let inputs = input.transact_statements.unwrap_or_default();
    if inputs.is_empty() {
        return Err(DynamoError::validation(
            "ExecutePartiQLTransaction can not have empty statement.",
        ));
    }
    let statements = parse_all(&inputs)?;
    let reads = statements.iter().filter(|s| s.is_read()).count();
    if reads == statements.len() {
        return read_all(service, statements, report).await;
    }
    if reads > 0 {
        return Err(DynamoError::validation(
            "ExecuteTransaction API does not support both read and write operations in the same request.",
        ));
    }
    let actions = plan_writes(service, &inputs, statements)?;
    let write = TransactWrite {
        operation: "ExecuteTransaction",
        token: input.client_request_token.as_deref(),
        request_hash,
        report,
        item_collection_metrics: false,
        mismatch: "Specified idempotent token was used with different request parameters within the idempotency window",
    };
    let mut response = commit_actions(service, &actions, &write).await?;
    response["Responses"] = Value::Array(Vec::new());
    Ok(response)
}

/// A refusal of the i-th statement names it, as DynamoDB does.
fn in_statement(i: usize, error: DynamoError) -> DynamoError {
    match error {
        DynamoError::Validation(message) => DynamoError::validation(format!(
            "Validation failed in TransactStatements[{i}]: {message}"
        )),
        other => other,
    }
}

fn parse_all(inputs: &[StatementInput]) -> Result<Vec<Statement>, DynamoError> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            input.parse().map_err(|refused| match refused.malformed {
                true => refused.error,
                false => in_statement(i, refused.error),
            })
        })
        .collect()
}

/// The reads: one item each, from one snapshot. A read of an index is refused, as the real
/// service and DynamoDB Local refuse it.
async fn read_all(
    service: &Service,
    statements: Vec<Statement>,
    report: CapacityReport,
) -> Result<Value, DynamoError> {
    let mut keys = Vec::with_capacity(statements.len());
    let mut projections = Vec::with_capacity(statements.len());
    for (i, statement) in statements.into_iter().enumerate() {
        let Statement::Select(select) = statement else {
            unreachable!("only reads come here")
        };
        if select.index.is_some() {
            let refusal = "Reads on indices are not supported within transactions.";
            return Err(in_statement(i, DynamoError::validation(refusal)));
        }
        let refusal = "Select statements within ExecuteTransaction must specify the primary key in the where clause.";
        let (meta, key) =
            super::read::one_item(service, &select, refusal).map_err(|e| in_statement(i, e))?;
        keys.push((meta, key));
        projections.push(select.projection);
    }
    reject_repeated_items(keys.iter().map(|(m, k)| (m, k)), REPEATED_ITEM)?;
    read_items(service, &keys, report, |i, item| {
        select_item(item, projections[i].as_deref())
    })
    .await
}

/// The writes as transaction actions.
fn plan_writes(
    service: &Service,
    inputs: &[StatementInput],
    statements: Vec<Statement>,
) -> Result<Vec<Action>, DynamoError> {
    let mut actions = Vec::with_capacity(statements.len());
    for (i, (statement, input)) in statements.into_iter().zip(inputs).enumerate() {
        let return_item = input.return_item_on_failure()?;
        let action = match statement {
            Statement::Exists(select) => exists(service, &select, return_item),
            write => refuse_returning(&write).and_then(|()| {
                let planned = super::write::plan(service, write)?;
                Ok(planned.into_action(return_item))
            }),
        };
        actions.push(action.map_err(|e| in_statement(i, e))?);
    }
    reject_repeated_items(actions.iter().map(Action::item), REPEATED_ITEM)?;
    Ok(actions)
}

fn refuse_returning(statement: &Statement) -> Result<(), DynamoError> {
    let returning = match statement {
        Statement::Update(u) => u.returning,
        Statement::Delete(d) => d.returning,
        _ => None,
    };
    match returning {
        Some(_) => Err(DynamoError::validation(
            "RETURNING clause is not supported in ExecuteTransaction.",
        )),
        None => Ok(()),
    }
}

/// `EXISTS(SELECT * FROM t WHERE <key> AND <condition>)`: a check that the item is there and
/// the condition holds.
fn exists(service: &Service, select: &Select, return_item: bool) -> Result<Action, DynamoError> {
    let refused = || {
        DynamoError::validation(
            "EXISTS() must contain a single item read with additional condition",
        )
    };
    check_name(&select.table)?;
    if select.index.is_some() {
        return Err(refused());
    }
    let meta = table(service, &select.table)?;
    let schema = meta.keys();
    let (key, rest) = match keys::item_key(select.condition.as_ref(), &expr_schema(schema)) {
        Ok((key, Some(rest))) => (key, rest),
        Err(error @ keys::KeyError::WrongType(_)) => {
            return Err(DynamoError::validation(error.message()));
        }
        _ => return Err(refused()),
    };
    validate_key(&meta, &key)?;
    let exists = Condition::AttributeExists(Path::attribute(&schema.hash().name));
    let conditions = RequestConditions {
        condition: Some(Condition::And(Box::new(exists), Box::new(rest))),
        ..RequestConditions::default()
    };
    let action = Action::new(
        ActionKind::ConditionCheck,
        meta,
        key,
        None,
        conditions,
        return_item,
    );
    Ok(action.failing_with(EXISTS_FAILED))
}
