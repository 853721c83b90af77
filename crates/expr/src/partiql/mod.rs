//! DynamoDB's PartiQL dialect: SELECT, INSERT, UPDATE, DELETE and (in transactions) EXISTS, as
//! ExecuteStatement, BatchExecuteStatement and ExecuteTransaction take them.
//!
//! Why it lives here: a statement's WHERE clause, SET/REMOVE clauses and select list are the
//! expression language under another syntax. So PartiQL has its own lexer and parser
//! ([`parse_statement`]), but lowers into the expression language's parse trees, which the same
//! checks turn into the same AST ([`Condition`], [`UpdateExpression`], projection paths) that the
//! API layer already evaluates: there is no second evaluator, and a semantic error reads exactly as
//! it does for an expression (without the `Invalid ConditionExpression:` prefix, as DynamoDB words
//! it for statements).
//!
//! What a statement reads or writes is decided against the table's key schema ([`keys`]): a WHERE
//! clause with an equality (or IN) on the partition key reads those partitions, anything else scans
//! with the clause as a filter; a write's WHERE clause must name the whole key with equalities, and
//! the rest of it is the write's condition.
//!
//! Messages follow DynamoDB Local where the documentation is silent (docs/compatibility.md, section
//! "PartiQL").

mod expression;
pub mod keys;
mod lexer;
mod lower;
mod parser;
mod syntax;
mod values;

use haven_model::{AttributeValue, Item};

use crate::{Condition, Path, PathElement, UpdateExpression};
use lower::Lowering;
use parser::Fail;
pub use syntax::Returning;
use syntax::{RawSelect, RawStatement, Source};
use values::Values;

/// Longest statement DynamoDB accepts, in characters.
pub const MAX_STATEMENT_LENGTH: usize = 8192;

/// A statement with its parameters bound, its expressions lowered into the expression language.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Select(Select),
    Insert(Insert),
    Update(Update),
    Delete(Delete),
    /// `EXISTS(SELECT ...)`: a condition check, in a transaction only.
    Exists(Select),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub table: String,
    pub index: Option<String>,
    /// The select list; `None` for `*`.
    pub projection: Option<Vec<Path>>,
    pub condition: Option<Condition>,
    /// ORDER BY: each key as written, and whether it is descending.
    pub order_by: Vec<(String, bool)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    pub table: String,
    pub item: Item,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub table: String,
    /// An index named as the target, which DynamoDB refuses once it has parsed the statement.
    pub index: Option<String>,
    pub update: UpdateExpression,
    pub condition: Option<Condition>,
    pub returning: Option<Returning>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delete {
    pub table: String,
    pub index: Option<String>,
    pub condition: Option<Condition>,
    pub returning: Option<Returning>,
}

impl Statement {
    /// The table the statement names.
    pub fn table(&self) -> &str {
        match self {
            Statement::Select(s) | Statement::Exists(s) => &s.table,
            Statement::Insert(i) => &i.table,
            Statement::Update(u) => &u.table,
            Statement::Delete(d) => &d.table,
        }
    }

    /// Whether the statement reads (SELECT) rather than writes.
    pub fn is_read(&self) -> bool {
        matches!(self, Statement::Select(_))
    }
}

/// Why a statement was refused: all of them are ValidationExceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementError {
    /// It does not parse (transactions report this one without naming the statement).
    Malformed(String),
    Invalid(String),
}

impl StatementError {
    pub fn message(&self) -> &str {
        match self {
            StatementError::Malformed(m) | StatementError::Invalid(m) => m,
        }
    }
}

/// Parses a statement and binds its `?` parameters, in order.
pub fn parse_statement(
    text: &str,
    parameters: &[AttributeValue],
) -> Result<Statement, StatementError> {
    let parsed = parser::parse(text).map_err(|fail| match fail {
        Fail::Syntax => StatementError::Malformed(format!(
            "Statement wasn't well formed, can't be processed: {text}"
        )),
        Fail::Refused(message) => StatementError::Invalid(message),
        Fail::TooDeep => {
            StatementError::Invalid("Nesting Levels have exceeded supported limits".into())
        }
    })?;
    let invalid = |message: String| StatementError::Invalid(message);
    if parsed.operators > crate::parser::MAX_OPERATORS {
        return Err(invalid(crate::parser::too_many_operators()));
    }
    if parameters.len() < parsed.parameters {
        return Err(invalid(
            "Number of parameters in request and statement don't match.".into(),
        ));
    }
    let values = Values { text, parameters };
    lower_statement(parsed.statement, Lowering::new(values)).map_err(invalid)
}

fn lower_statement(raw: RawStatement, mut lowering: Lowering) -> Result<Statement, String> {
    Ok(match raw {
        RawStatement::Select(select) => Statement::Select(lower_select(select, &mut lowering)?),
        RawStatement::Exists(select) => Statement::Exists(lower_select(select, &mut lowering)?),
        RawStatement::Insert { target, item } => {
            let syntax::ExprKind::Struct(entries) = &item.kind else {
                return Err(format!(
                    "Unsupported format in item expression. Please use struct format {{...}} to express item values for insert statement. at {}",
                    item.at.position(lowering.values.text)
                ));
            };
            let item = lowering.values.tuple(item.at, entries, "root", true, 0)?;
            Statement::Insert(Insert {
                table: target.table,
                item,
            })
        }
        RawStatement::Update {
            target,
            actions,
            condition,
            returning,
        } => {
            let update = lowering.update(&actions)?;
            Statement::Update(Update {
                condition: condition.map(|c| lowering.condition(&c)).transpose()?,
                table: target.table,
                index: target.index,
                update,
                returning,
            })
        }
        RawStatement::Delete {
            target,
            condition,
            returning,
        } => Statement::Delete(Delete {
            condition: condition.map(|c| lowering.condition(&c)).transpose()?,
            table: target.table,
            index: target.index,
            returning,
        }),
    })
}

fn lower_select(select: RawSelect, lowering: &mut Lowering) -> Result<Select, String> {
    let RawSelect {
        projection,
        source: Source { table, index },
        condition,
        order_by,
    } = select;
    let projection = projection
        .map(|items| lowering.projection(&items))
        .transpose()?;
    let condition = condition.map(|c| lowering.condition(&c)).transpose()?;
    let text = lowering.values.text;
    let order_by = order_by
        .into_iter()
        .map(|(key, descending)| (order_key(text, &key), descending))
        .collect();
    Ok(Select {
        table,
        index,
        projection,
        condition,
        order_by,
    })
}

/// An ORDER BY key: the attribute a one-name path names, else its first token as written (a key
/// that is not an attribute name is refused once the key schema is known).
fn order_key(text: &str, key: &syntax::Expr) -> String {
    match key.as_path() {
        Some([syntax::Step::Name(name)]) => name.clone(),
        _ => text[key.at.start..key.at.end].to_string(),
    }
}

/// The name DynamoDB gives the attribute a select-list path yields: its last name, with the list
/// indexes that follow it (`d` for `m.k[2].d`, `k[2]` for `m.k[2]`, `l[1][0]` for `l[1][0]`).
pub fn output_name(path: &Path) -> String {
    let last_name = path
        .0
        .iter()
        .rposition(|e| matches!(e, PathElement::Name(_)))
        .unwrap_or(0);
    let mut name = path.root().to_string();
    for element in &path.0[last_name..] {
        match element {
            PathElement::Name(n) => name = n.clone(),
            PathElement::Index(i) => name.push_str(&format!("[{i}]")),
        }
    }
    name
}

/// What a SELECT returns of an item: `*` is the item; each path of a select list yields the value
/// there, named by [`output_name`] (paths that name nothing yield nothing).
pub fn select_item(item: Item, projection: Option<&[Path]>) -> Item {
    let Some(paths) = projection else {
        return item;
    };
    paths
        .iter()
        .filter_map(|path| Some((output_name(path), path.resolve(&item)?.clone())))
        .collect()
}

#[cfg(test)]
mod tests;
