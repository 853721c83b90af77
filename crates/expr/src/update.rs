//! Parsing of UpdateExpression: `SET`, `REMOVE`, `ADD` and `DELETE` clauses, each at most once, in any
//! order. Semantic errors are collected while lowering and reported by DynamoDB's ranking.

use haven_model::AttributeValue;

use crate::ast::{SetValue, UpdateAction, UpdateOperand};
use crate::lexer::{Keyword, Kind, Punct};
use crate::parser::{
    self, Cursor, Diagnostics, Parsed, PathRanks, RawPath, fail_to_error, resolve_path,
    undefined_value,
};
use crate::path::clash_message;
use crate::{ExprError, Path, Placeholders};

const PREFIX: &str = "Invalid UpdateExpression";

// Error ranks, most important first, as DynamoDB orders them. Within a rank, NAMING errors count
// in text order; the other two are found walking the actions from last to first (DynamoDB builds
// its tree of paths that way), the first error of an action counting before its later ones.
/// Reserved words, unknown or misplaced functions, repeated sections, list indexes out of range.
const RANK_NAMING: u8 = 1;
/// The paths the actions write: undefined names in them, too deep or overlapping paths.
const RANK_PATHS: u8 = 2;
/// Operands: undefined placeholders, operand types, function arguments.
const RANK_OPERANDS: u8 = 3;

/// Ranks for the path an action writes.
const TARGET_RANKS: PathRanks = PathRanks {
    reserved: RANK_NAMING,
    undefined_name: RANK_PATHS,
    nesting: RANK_PATHS,
};

/// Ranks for paths read by operands.
const OPERAND_RANKS: PathRanks = PathRanks {
    reserved: RANK_NAMING,
    undefined_name: RANK_OPERANDS,
    nesting: RANK_OPERANDS,
};

/// A parsed update: its actions in the order written.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateExpression {
    pub actions: Vec<UpdateAction>,
}

/// Parses an update expression, resolving placeholders through `placeholders`.
///
/// A client sends the same few expression texts over and over (with other values), so each thread
/// keeps the syntax of the last text it parsed without error, and a request repeating it goes
/// straight to lowering, where its placeholders are resolved: checking, tokenizing and parsing the
/// text were 40% of parsing `SET a = :v`. An error is never kept, so the same text gets the same
/// error every time.
pub fn parse_update(
    text: &str,
    placeholders: &mut Placeholders,
) -> Result<UpdateExpression, ExprError> {
    LAST_PARSED.with_borrow_mut(|last| {
        let (text, sections) = match last.take() {
            Some((cached, sections)) if *cached == *text => (cached, sections),
            _ => (text.into(), parse_syntax(text)?),
        };
        let lowered = lower_sections(&sections, placeholders, Some(PREFIX));
        *last = Some((text, sections));
        lowered
    })
}

thread_local! {
    /// The last update text this thread parsed without a syntax error, and its sections.
    static LAST_PARSED: std::cell::RefCell<Option<(Box<str>, Vec<Section>)>> =
        const { std::cell::RefCell::new(None) };
}

/// The sections of an update text, or its syntax error.
fn parse_syntax(text: &str) -> Result<Vec<Section>, ExprError> {
    parser::check_text(text, PREFIX, false)?;
    let mut cursor = Cursor::new(text);
    let sections = match parse_sections(&mut cursor) {
        Ok(sections) => sections,
        Err(fail) => return Err(fail_to_error(fail, &cursor, PREFIX)),
    };
    cursor.check_operators(PREFIX)?;
    Ok(sections)
}

/// Lowers parsed sections into an update, collecting DynamoDB's semantic errors; PartiQL's SET and
/// REMOVE clauses come here too, and report errors without a prefix.
pub(crate) fn lower_sections(
    sections: &[Section],
    placeholders: &mut Placeholders,
    prefix: Option<&str>,
) -> Result<UpdateExpression, ExprError> {
    let mut lower = Lower {
        placeholders,
        diagnostics: Diagnostics::default(),
    };
    let actions = lower.sections(sections);
    lower.diagnostics.into_result(prefix)?;
    Ok(UpdateExpression { actions })
}

/// Expression text, one clause per action kind (SET, REMOVE, ADD, DELETE) in that order.
impl std::fmt::Display for UpdateExpression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut clauses = Vec::new();
        for keyword in ["SET", "REMOVE", "ADD", "DELETE"] {
            let items: Vec<String> = self
                .actions
                .iter()
                .map(UpdateAction::clause)
                .filter(|(k, _)| *k == keyword)
                .map(|(_, text)| text)
                .collect();
            if !items.is_empty() {
                clauses.push(format!("{keyword} {}", items.join(", ")));
            }
        }
        f.write_str(&clauses.join(" "))
    }
}

impl UpdateAction {
    /// The clause keyword and the action's text within it.
    fn clause(&self) -> (&'static str, String) {
        match self {
            UpdateAction::Set(p, v) => ("SET", format!("{p} = {v}")),
            UpdateAction::Remove(p) => ("REMOVE", p.to_string()),
            UpdateAction::Add(p, placeholder, _) => ("ADD", format!("{p} {placeholder}")),
            UpdateAction::Delete(p, placeholder, _) => ("DELETE", format!("{p} {placeholder}")),
        }
    }

    /// The document path the action writes or removes.
    pub fn path(&self) -> &Path {
        match self {
            UpdateAction::Set(p, _)
            | UpdateAction::Remove(p)
            | UpdateAction::Add(p, ..)
            | UpdateAction::Delete(p, ..) => p,
        }
    }
}

pub(crate) enum RawOperand {
    Path(RawPath),
    Value(String),
    Call(String, Vec<RawOperand>),
}

pub(crate) enum RawSetValue {
    Operand(RawOperand),
    Arithmetic(RawOperand, char, RawOperand),
}

pub(crate) enum RawAction {
    Set(RawPath, RawSetValue),
    Remove(RawPath),
    Add(RawPath, String),
    Delete(RawPath, String),
}

pub(crate) struct Section {
    pub keyword: Keyword,
    pub actions: Vec<RawAction>,
}

fn parse_sections(cursor: &mut Cursor) -> Parsed<Vec<Section>> {
    let mut sections = Vec::new();
    loop {
        let keyword = match cursor.peek() {
            Kind::Keyword(
                k @ (Keyword::Set | Keyword::Remove | Keyword::Add | Keyword::Delete),
            ) => k,
            Kind::Eof if !sections.is_empty() => return Ok(sections),
            _ => return cursor.error(),
        };
        cursor.bump();
        let mut actions = vec![parse_action(cursor, keyword)?];
        while cursor.at_punct(Punct::Comma) {
            cursor.bump();
            actions.push(parse_action(cursor, keyword)?);
        }
        sections.push(Section { keyword, actions });
    }
}

fn parse_action(cursor: &mut Cursor, keyword: Keyword) -> Parsed<RawAction> {
    let path = parse_path(cursor)?;
    match keyword {
        Keyword::Set => {
            cursor.expect(Punct::Eq)?;
            Ok(RawAction::Set(path, parse_set_value(cursor)?.0))
        }
        Keyword::Remove => Ok(RawAction::Remove(path)),
        _ => {
            if cursor.peek() != Kind::Value {
                return cursor.error();
            }
            let value = cursor.bump().to_string();
            Ok(if keyword == Keyword::Add {
                RawAction::Add(path, value)
            } else {
                RawAction::Delete(path, value)
            })
        }
    }
}

fn parse_path(cursor: &mut Cursor) -> Parsed<RawPath> {
    match cursor.peek() {
        Kind::Identifier | Kind::Name => cursor.path(),
        _ => cursor.error(),
    }
}

fn arithmetic(cursor: &mut Cursor) -> Option<char> {
    let op = if cursor.at_punct(Punct::Plus) {
        '+'
    } else if cursor.at_punct(Punct::Minus) {
        '-'
    } else {
        return None;
    };
    cursor.count_operator();
    Some(op)
}

/// `operand [(+|-) operand]`, optionally parenthesised; also says whether the value was
/// parenthesised as a whole.
fn parse_set_value(cursor: &mut Cursor) -> Parsed<(RawSetValue, bool)> {
    let parenthesised = cursor.at_punct(Punct::LParen);
    let left = if parenthesised {
        cursor.descend()?;
        cursor.bump();
        let (inner, inner_parenthesised) = parse_set_value(cursor)?;
        cursor.expect(Punct::RParen)?;
        cursor.ascend();
        if inner_parenthesised {
            return cursor.redundant_parens();
        }
        match inner {
            RawSetValue::Operand(operand) => operand,
            arithmetic => return Ok((arithmetic, true)),
        }
    } else {
        parse_operand(cursor)?.0
    };
    match arithmetic(cursor) {
        Some(op) => {
            cursor.bump();
            let right = parse_operand(cursor)?.0;
            Ok((RawSetValue::Arithmetic(left, op, right), false))
        }
        None => Ok((RawSetValue::Operand(left), parenthesised)),
    }
}

/// An operand, and whether it was parenthesised.
fn parse_operand(cursor: &mut Cursor) -> Parsed<(RawOperand, bool)> {
    match cursor.peek() {
        Kind::Punct(Punct::LParen) => {
            cursor.descend()?;
            cursor.bump();
            let (inner, parenthesised) = parse_operand(cursor)?;
            cursor.expect(Punct::RParen)?;
            cursor.ascend();
            if parenthesised {
                return cursor.redundant_parens();
            }
            Ok((inner, true))
        }
        Kind::Identifier if cursor.peek_second() == Kind::Punct(Punct::LParen) => {
            let name = cursor.bump().to_string();
            cursor.bump();
            cursor.count_operator();
            cursor.descend()?;
            let mut args = vec![parse_operand(cursor)?.0];
            while cursor.at_punct(Punct::Comma) {
                cursor.bump();
                args.push(parse_operand(cursor)?.0);
            }
            cursor.expect(Punct::RParen)?;
            cursor.ascend();
            Ok((RawOperand::Call(name, args), false))
        }
        Kind::Identifier | Kind::Name => Ok((RawOperand::Path(cursor.path()?), false)),
        Kind::Value => Ok((RawOperand::Value(cursor.bump().to_string()), false)),
        _ => cursor.error(),
    }
}

fn keyword_name(keyword: Keyword) -> &'static str {
    match keyword {
        Keyword::Set => "SET",
        Keyword::Remove => "REMOVE",
        Keyword::Add => "ADD",
        _ => "DELETE",
    }
}

/// The first path error walking the actions from last to first: an action's own path error, or
/// its path clashing with one written by a later action (the most recent one looked at first).
fn path_error(
    actions: &[UpdateAction],
    found: &[(Option<String>, Option<String>)],
) -> Option<String> {
    let mut later: Vec<&Path> = Vec::new();
    for (action, (own, _)) in actions.iter().zip(found).rev() {
        if own.is_some() {
            return own.clone();
        }
        let path = action.path();
        if let Some(message) = later.iter().rev().find_map(|l| clash_message(path, l)) {
            return Some(message);
        }
        later.push(path);
    }
    None
}

struct Lower<'p, 'a> {
    placeholders: &'p mut Placeholders<'a>,
    diagnostics: Diagnostics,
}

/// DynamoDB's long type names, used in ADD/DELETE operand errors (also of `AttributeUpdates`).
pub(crate) fn long_type_name(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::S(_) => "STRING",
        AttributeValue::N(_) => "NUMBER",
        AttributeValue::B(_) => "BINARY",
        AttributeValue::Bool(_) => "BOOLEAN",
        AttributeValue::Null => "NULL",
        AttributeValue::L(_) => "LIST",
        AttributeValue::M(_) => "MAP",
        AttributeValue::Ss(_) => "STRING_SET",
        AttributeValue::Ns(_) => "NUMBER_SET",
        AttributeValue::Bs(_) => "BINARY_SET",
    }
}

pub(crate) fn is_set(value: &AttributeValue) -> bool {
    matches!(
        value,
        AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_)
    )
}

impl Lower<'_, '_> {
    fn sections(&mut self, sections: &[Section]) -> Vec<UpdateAction> {
        let mut seen = Vec::new();
        let mut actions = Vec::new();
        // Per action, its first path error and its first operand error.
        let mut found_per_action = Vec::new();
        for section in sections {
            for raw in &section.actions {
                let outer = std::mem::take(&mut self.diagnostics);
                actions.push(self.action(raw));
                let found = std::mem::replace(&mut self.diagnostics, outer);
                let mut path_error = None;
                let mut operand_error = None;
                for (rank, message) in found.into_entries() {
                    match rank {
                        RANK_PATHS => path_error = Some(message),
                        RANK_OPERANDS => operand_error = Some(message),
                        _ => self.diagnostics.report(rank, message),
                    }
                }
                found_per_action.push((path_error, operand_error));
            }
            if seen.contains(&section.keyword) {
                self.diagnostics.report(
                    RANK_NAMING,
                    format!(
                        "The \"{}\" section can only be used once in an update expression;",
                        keyword_name(section.keyword)
                    ),
                );
            }
            seen.push(section.keyword);
        }
        if let Some(message) = path_error(&actions, &found_per_action) {
            self.diagnostics.report(RANK_PATHS, message);
        }
        if let Some(message) = found_per_action.iter().rev().find_map(|(_, o)| o.clone()) {
            self.diagnostics.report(RANK_OPERANDS, message);
        }
        actions
    }

    fn action(&mut self, raw: &RawAction) -> UpdateAction {
        match raw {
            RawAction::Set(path, value) => {
                let path = self.target(path);
                UpdateAction::Set(path, self.set_value(value))
            }
            RawAction::Remove(path) => UpdateAction::Remove(self.target(path)),
            RawAction::Add(path, placeholder) => {
                let path = self.target(path);
                let value = self.value(placeholder);
                if !matches!(value, AttributeValue::N(_)) && !is_set(&value) {
                    self.operand_type("ADD", &value);
                }
                UpdateAction::Add(path, placeholder.clone(), value)
            }
            RawAction::Delete(path, placeholder) => {
                let path = self.target(path);
                let value = self.value(placeholder);
                if !is_set(&value) {
                    self.operand_type("DELETE", &value);
                }
                UpdateAction::Delete(path, placeholder.clone(), value)
            }
        }
    }

    fn operand_type(&mut self, operator: &str, value: &AttributeValue) {
        self.diagnostics.report(
            RANK_OPERANDS,
            format!(
                "Incorrect operand type for operator or function; operator: {operator}, operand type: {}, typeSet: ALLOWED_FOR_{operator}_OPERAND",
                long_type_name(value)
            ),
        );
    }

    /// The path an action writes.
    fn target(&mut self, raw: &RawPath) -> Path {
        resolve_path(raw, self.placeholders, &mut self.diagnostics, &TARGET_RANKS)
    }

    /// A path an operand reads.
    fn path(&mut self, raw: &RawPath) -> Path {
        resolve_path(
            raw,
            self.placeholders,
            &mut self.diagnostics,
            &OPERAND_RANKS,
        )
    }

    fn value(&mut self, placeholder: &str) -> AttributeValue {
        self.placeholders.value(placeholder).unwrap_or_else(|| {
            self.diagnostics
                .report(RANK_OPERANDS, undefined_value(placeholder));
            // A set, so that no operand-type error is reported for a value that does not exist.
            AttributeValue::Ss(Vec::new())
        })
    }

    fn set_value(&mut self, raw: &RawSetValue) -> SetValue {
        match raw {
            RawSetValue::Operand(o) => SetValue::Operand(self.operand(o, false)),
            RawSetValue::Arithmetic(a, op, b) => {
                let (a, b) = (self.operand(a, true), self.operand(b, true));
                for operand in [&a, &b] {
                    self.check_immediate(&op.to_string(), operand, "N");
                }
                if *op == '+' {
                    SetValue::Plus(a, b)
                } else {
                    SetValue::Minus(a, b)
                }
            }
        }
    }

    /// Lowers an operand; `nested` when it is an argument of a function or of `+`/`-`.
    fn operand(&mut self, raw: &RawOperand, nested: bool) -> UpdateOperand {
        match raw {
            RawOperand::Path(p) => UpdateOperand::Path(self.path(p)),
            RawOperand::Value(placeholder) => UpdateOperand::Value {
                placeholder: placeholder.clone(),
                value: self.placeholders.value(placeholder).unwrap_or_else(|| {
                    self.diagnostics
                        .report(RANK_OPERANDS, undefined_value(placeholder));
                    AttributeValue::Null
                }),
            },
            RawOperand::Call(name, args) => {
                if nested && name == "list_append" {
                    self.diagnostics.report(
                        RANK_NAMING,
                        "The function is not allowed to be used this way in an expression; function: list_append",
                    );
                }
                self.call(name, args)
            }
        }
    }

    /// A function call. Its name is judged before its arguments are lowered.
    fn call(&mut self, name: &str, args: &[RawOperand]) -> UpdateOperand {
        let dummy = UpdateOperand::Path(Path::attribute(""));
        let problem = match name {
            "if_not_exists" | "list_append" => None,
            "attribute_exists"
            | "attribute_not_exists"
            | "attribute_type"
            | "begins_with"
            | "contains"
            | "size" => Some(format!(
                "The function is not allowed in an update expression; function: {name}"
            )),
            _ => Some(format!("Invalid function name; function: {name}")),
        };
        if let Some(message) = problem {
            self.diagnostics.report(RANK_NAMING, message);
            for arg in args {
                self.operand(arg, true);
            }
            return dummy;
        }
        let mut operands: Vec<UpdateOperand> = args.iter().map(|a| self.operand(a, true)).collect();
        if operands.len() != 2 {
            self.diagnostics.report(
                RANK_OPERANDS,
                format!("Incorrect number of operands for operator or function; operator or function: {name}, number of operands: {}", operands.len()),
            );
            return dummy;
        }
        let second = Box::new(operands.pop().expect("two operands"));
        let first = operands.pop().expect("two operands");
        if name == "list_append" {
            self.check_immediate(name, &first, "L");
            self.check_immediate(name, &second, "L");
            return UpdateOperand::ListAppend(Box::new(first), second);
        }
        match first {
            UpdateOperand::Path(path) => {
                if matches!(&*second, UpdateOperand::Path(p) if *p == path) {
                    self.diagnostics.report(
                        RANK_OPERANDS,
                        format!("The first operand must be distinct from the remaining operands for this operator or function; operator: {name}, first operand: {}", path.message_form()),
                    );
                }
                UpdateOperand::IfNotExists(path, second)
            }
            _ => {
                self.diagnostics.report(
                    RANK_OPERANDS,
                    format!("Operator or function requires a document path; operator or function: {name}"),
                );
                dummy
            }
        }
    }

    /// A value written in the expression must have the type the operator needs.
    fn check_immediate(&mut self, operator: &str, operand: &UpdateOperand, wanted: &str) {
        if let UpdateOperand::Value { value, .. } = operand
            && value.type_name() != wanted
        {
            self.diagnostics.report(
                RANK_OPERANDS,
                format!("Incorrect operand type for operator or function; operator or function: {operator}, operand type: {}", value.type_name()),
            );
        }
    }
}
