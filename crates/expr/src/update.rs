//! Parsing of UpdateExpression: `SET`, `REMOVE`, `ADD` and `DELETE` clauses, each at most once, in any
//! order. Semantic errors are collected while lowering and reported by DynamoDB's ranking.

use haven_model::AttributeValue;

use crate::ast::{SetValue, UpdateAction, UpdateOperand};
use crate::lexer::{Keyword, Kind, Punct};
use crate::parser::{
    self, Cursor, Diagnostics, Parsed, PathRanks, RawPath, fail_to_error, resolve_path,
    undefined_value,
};
use crate::{ExprError, Path, Placeholders};

const PREFIX: &str = "Invalid UpdateExpression";

// Error ranks, most important first.
const RANK_RESERVED: u8 = 1;
const RANK_UNKNOWN_FUNCTION: u8 = 2;
const RANK_SECTION: u8 = 3;
const RANK_UNDEFINED_NAME: u8 = 4;
const RANK_UNDEFINED_VALUE: u8 = 5;
const RANK_PATHS: u8 = 6;
const RANK_OPERAND: u8 = 7;
const RANK_FUNCTION: u8 = 8;

const PATH_RANKS: PathRanks = PathRanks {
    reserved: RANK_RESERVED,
    undefined_name: RANK_UNDEFINED_NAME,
};

/// A parsed update: its actions in the order written.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateExpression {
    pub actions: Vec<UpdateAction>,
}

/// Parses an update expression, resolving placeholders through `placeholders`.
pub fn parse_update(
    text: &str,
    placeholders: &mut Placeholders,
) -> Result<UpdateExpression, ExprError> {
    parser::check_text(text, PREFIX)?;
    let mut cursor = Cursor::new(text);
    let sections = match parse_sections(&mut cursor) {
        Ok(sections) => sections,
        Err(fail) => return Err(fail_to_error(fail, &cursor, PREFIX)),
    };
    cursor.check_operators(PREFIX)?;
    let mut lower = Lower {
        placeholders,
        diagnostics: Diagnostics::default(),
    };
    let actions = lower.sections(&sections);
    let paths: Vec<Path> = actions.iter().map(|a| a.path().clone()).collect();
    if let Some(message) = crate::path::first_clash(&paths) {
        lower.diagnostics.report(RANK_PATHS, message);
    }
    lower.diagnostics.into_result(PREFIX)?;
    Ok(UpdateExpression { actions })
}

impl UpdateAction {
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

enum RawOperand {
    Path(RawPath),
    Value(String),
    Call(String, Vec<RawOperand>),
}

enum RawSetValue {
    Operand(RawOperand),
    Arithmetic(RawOperand, char, RawOperand),
}

enum RawAction {
    Set(RawPath, RawSetValue),
    Remove(RawPath),
    Add(RawPath, String),
    Delete(RawPath, String),
}

struct Section {
    keyword: Keyword,
    actions: Vec<RawAction>,
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
            Ok(RawAction::Set(path, parse_set_value(cursor)?))
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

/// `operand [(+|-) operand]`, optionally in one pair of parentheses.
fn parse_set_value(cursor: &mut Cursor) -> Parsed<RawSetValue> {
    let left = if cursor.at_punct(Punct::LParen) {
        cursor.descend()?;
        cursor.bump();
        let inner = parse_operand(cursor)?;
        if let Some(op) = arithmetic(cursor) {
            cursor.bump();
            let right = parse_operand(cursor)?;
            cursor.expect(Punct::RParen)?;
            cursor.ascend();
            return Ok(RawSetValue::Arithmetic(inner, op, right));
        }
        cursor.expect(Punct::RParen)?;
        cursor.ascend();
        inner
    } else {
        parse_operand(cursor)?
    };
    match arithmetic(cursor) {
        Some(op) => {
            cursor.bump();
            Ok(RawSetValue::Arithmetic(left, op, parse_operand(cursor)?))
        }
        None => Ok(RawSetValue::Operand(left)),
    }
}

fn parse_operand(cursor: &mut Cursor) -> Parsed<RawOperand> {
    match cursor.peek() {
        Kind::Punct(Punct::LParen) => {
            cursor.descend()?;
            cursor.bump();
            let inner = parse_operand(cursor)?;
            cursor.expect(Punct::RParen)?;
            cursor.ascend();
            Ok(inner)
        }
        Kind::Identifier if cursor.peek_second() == Kind::Punct(Punct::LParen) => {
            let name = cursor.bump().to_string();
            cursor.bump();
            cursor.count_operator();
            cursor.descend()?;
            let mut args = vec![parse_operand(cursor)?];
            while cursor.at_punct(Punct::Comma) {
                cursor.bump();
                args.push(parse_operand(cursor)?);
            }
            cursor.expect(Punct::RParen)?;
            cursor.ascend();
            Ok(RawOperand::Call(name, args))
        }
        Kind::Identifier | Kind::Name => Ok(RawOperand::Path(cursor.path()?)),
        Kind::Value => Ok(RawOperand::Value(cursor.bump().to_string())),
        _ => cursor.error(),
    }
}

struct Lower<'p, 'a> {
    placeholders: &'p mut Placeholders<'a>,
    diagnostics: Diagnostics,
}

/// DynamoDB's long type names, used in ADD/DELETE operand errors.
fn long_type_name(value: &AttributeValue) -> &'static str {
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

fn is_set(value: &AttributeValue) -> bool {
    matches!(
        value,
        AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_)
    )
}

impl Lower<'_, '_> {
    fn sections(&mut self, sections: &[Section]) -> Vec<UpdateAction> {
        let mut seen = Vec::new();
        let mut actions = Vec::new();
        for section in sections {
            if seen.contains(&section.keyword) {
                let name = match section.keyword {
                    Keyword::Set => "SET",
                    Keyword::Remove => "REMOVE",
                    Keyword::Add => "ADD",
                    _ => "DELETE",
                };
                self.diagnostics.report(
                    RANK_SECTION,
                    format!(
                        "The \"{name}\" section can only be used once in an update expression;"
                    ),
                );
            }
            seen.push(section.keyword);
            actions.extend(section.actions.iter().map(|a| self.action(a)));
        }
        actions
    }

    fn action(&mut self, raw: &RawAction) -> UpdateAction {
        match raw {
            RawAction::Set(path, value) => {
                let path = self.path(path);
                UpdateAction::Set(path, self.set_value(value))
            }
            RawAction::Remove(path) => UpdateAction::Remove(self.path(path)),
            RawAction::Add(path, placeholder) => {
                let path = self.path(path);
                let value = self.value(placeholder);
                if !matches!(value, AttributeValue::N(_)) && !is_set(&value) {
                    self.operand_type("ADD", &value);
                }
                UpdateAction::Add(path, placeholder.clone(), value)
            }
            RawAction::Delete(path, placeholder) => {
                let path = self.path(path);
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
            RANK_OPERAND,
            format!(
                "Incorrect operand type for operator or function; operator: {operator}, operand type: {}",
                long_type_name(value)
            ),
        );
    }

    fn path(&mut self, raw: &RawPath) -> Path {
        resolve_path(raw, self.placeholders, &mut self.diagnostics, &PATH_RANKS)
    }

    fn value(&mut self, placeholder: &str) -> AttributeValue {
        self.placeholders.value(placeholder).unwrap_or_else(|| {
            self.diagnostics
                .report(RANK_UNDEFINED_VALUE, undefined_value(placeholder));
            // A set, so that no operand-type error is reported for a value that does not exist.
            AttributeValue::Ss(Vec::new())
        })
    }

    fn set_value(&mut self, raw: &RawSetValue) -> SetValue {
        match raw {
            RawSetValue::Operand(o) => SetValue::Operand(self.operand(o)),
            RawSetValue::Arithmetic(a, op, b) => {
                let (a, b) = (self.operand(a), self.operand(b));
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

    fn operand(&mut self, raw: &RawOperand) -> UpdateOperand {
        match raw {
            RawOperand::Path(p) => UpdateOperand::Path(self.path(p)),
            RawOperand::Value(placeholder) => UpdateOperand::Value {
                placeholder: placeholder.clone(),
                value: self.placeholders.value(placeholder).unwrap_or_else(|| {
                    self.diagnostics
                        .report(RANK_UNDEFINED_VALUE, undefined_value(placeholder));
                    AttributeValue::Null
                }),
            },
            RawOperand::Call(name, args) => self.call(name, args),
        }
    }

    fn call(&mut self, name: &str, args: &[RawOperand]) -> UpdateOperand {
        let dummy = UpdateOperand::Path(Path::attribute(""));
        let mut operands: Vec<UpdateOperand> = args.iter().map(|a| self.operand(a)).collect();
        match name {
            "if_not_exists" | "list_append" => {}
            "attribute_exists"
            | "attribute_not_exists"
            | "attribute_type"
            | "begins_with"
            | "contains"
            | "size" => {
                self.diagnostics.report(
                    RANK_UNKNOWN_FUNCTION,
                    format!(
                        "The function is not allowed in an update expression; function: {name}"
                    ),
                );
                return dummy;
            }
            _ => {
                self.diagnostics.report(
                    RANK_UNKNOWN_FUNCTION,
                    format!("Invalid function name; function: {name}"),
                );
                return dummy;
            }
        }
        if operands.len() != 2 {
            self.diagnostics.report(
                RANK_FUNCTION,
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
            UpdateOperand::Path(path) => UpdateOperand::IfNotExists(path, second),
            _ => {
                self.diagnostics.report(
                    RANK_FUNCTION,
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
                RANK_FUNCTION,
                format!("Incorrect operand type for operator or function; operator or function: {operator}, operand type: {}", value.type_name()),
            );
        }
    }
}
