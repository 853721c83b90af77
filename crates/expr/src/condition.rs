//! Parsing of ConditionExpression, FilterExpression and KeyConditionExpression. Parsing first builds a
//! tree that still allows operands where conditions belong (only the parentheses tell `(a) = b` from
//! `(a = b)`), then lowers it into [`Condition`] while collecting DynamoDB's semantic errors.

use haven_model::AttributeValue;

use crate::ast::{Comparator, Condition, Operand};
use crate::lexer::{Keyword, Kind, Punct};
use crate::parser::{
    self, Cursor, Diagnostics, Parsed, PathRanks, RawPath, fail_to_error, resolve_path,
    undefined_value,
};
use crate::{ExprError, Path, Placeholders};

/// Which request parameter a condition comes from; it only changes the error prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionKind {
    Condition,
    Filter,
    KeyCondition,
}

impl ConditionKind {
    fn prefix(self) -> &'static str {
        match self {
            ConditionKind::Condition => "Invalid ConditionExpression",
            ConditionKind::Filter => "Invalid FilterExpression",
            ConditionKind::KeyCondition => "Invalid KeyConditionExpression",
        }
    }
}

/// Most operands the IN operator takes on its right-hand side.
const MAX_IN_OPERANDS: usize = 100;

// Error ranks: DynamoDB reports the first error (in text order) of the best-ranked category.
// (Doubled parentheses and syntax errors stop the parse before any of these.)
/// Unknown or misused functions, reserved words, list indexes out of range.
const RANK_NAMING: u8 = 1;
/// Undefined placeholders, operand counts, distinct operands, operand types, too deep paths, IN
/// lists longer than DynamoDB allows.
const RANK_OPERANDS: u8 = 2;

const PATH_RANKS: PathRanks = PathRanks {
    reserved: RANK_NAMING,
    undefined_name: RANK_OPERANDS,
    nesting: RANK_OPERANDS,
};

/// Parses a condition, resolving placeholders through `placeholders`.
pub fn parse_condition(
    text: &str,
    placeholders: &mut Placeholders,
    kind: ConditionKind,
) -> Result<Condition, ExprError> {
    let prefix = kind.prefix();
    parser::check_text(text, prefix, true)?;
    let mut cursor = Cursor::new(text);
    let raw = match parse_top(&mut cursor) {
        Ok(raw) => raw,
        Err(fail) => return Err(fail_to_error(fail, &cursor, prefix)),
    };
    cursor.check_operators(prefix)?;
    lower_condition(&raw, placeholders, Some(prefix))
}

/// Lowers a parse tree into a [`Condition`], collecting DynamoDB's semantic errors; PartiQL's WHERE
/// clauses come here too, built by their own parser, and report errors without a prefix.
pub(crate) fn lower_condition(
    raw: &Raw,
    placeholders: &mut Placeholders,
    prefix: Option<&str>,
) -> Result<Condition, ExprError> {
    let mut lower = Lower {
        placeholders,
        diagnostics: Diagnostics::default(),
    };
    let condition = lower.condition(raw);
    lower.diagnostics.into_result(prefix)?;
    Ok(condition)
}

/// The parse tree: conditions and operands mixed, as written. Operands (`Path`, `Value`, `Call`)
/// never hold conditions, and `And`, `Or`, `Not` never hold bare operands.
#[derive(Debug)]
pub(crate) enum Raw {
    Path(RawPath),
    Value(String),
    Call(String, Vec<Raw>),
    Paren(Box<Raw>),
    Compare(Box<Raw>, Comparator, Box<Raw>),
    Between(Box<Raw>, Box<Raw>, Box<Raw>),
    In(Box<Raw>, Vec<Raw>),
    Not(Box<Raw>),
    And(Box<Raw>, Box<Raw>),
    Or(Box<Raw>, Box<Raw>),
}

impl Raw {
    fn is_condition(&self) -> bool {
        match self {
            Raw::Path(_) | Raw::Value(_) => false,
            Raw::Paren(inner) => inner.is_condition(),
            _ => true,
        }
    }

    fn is_operand(&self) -> bool {
        match self {
            Raw::Path(_) | Raw::Value(_) | Raw::Call(..) => true,
            Raw::Paren(inner) => inner.is_operand(),
            _ => false,
        }
    }

    fn unwrap_parens(&self) -> &Raw {
        match self {
            Raw::Paren(inner) => inner.unwrap_parens(),
            other => other,
        }
    }
}

fn parse_top(cursor: &mut Cursor) -> Parsed<Raw> {
    let raw = parse_or(cursor)?;
    if !raw.is_condition() {
        return cursor.error();
    }
    cursor.expect_eof()?;
    Ok(raw)
}

fn parse_or(cursor: &mut Cursor) -> Parsed<Raw> {
    let mut left = parse_and(cursor)?;
    while cursor.peek() == Kind::Keyword(Keyword::Or) {
        cursor.count_operator();
        left = Raw::Or(
            Box::new(checked(cursor, left)?),
            Box::new(next_condition(cursor, parse_and)?),
        );
    }
    Ok(left)
}

fn parse_and(cursor: &mut Cursor) -> Parsed<Raw> {
    let mut left = parse_not(cursor)?;
    while cursor.peek() == Kind::Keyword(Keyword::And) {
        cursor.count_operator();
        left = Raw::And(
            Box::new(checked(cursor, left)?),
            Box::new(next_condition(cursor, parse_not)?),
        );
    }
    Ok(left)
}

/// Accepts `left` as the left side of the logical operator under the cursor, consuming it.
fn checked(cursor: &mut Cursor, left: Raw) -> Parsed<Raw> {
    if !left.is_condition() {
        return cursor.error();
    }
    cursor.bump();
    Ok(left)
}

fn next_condition(cursor: &mut Cursor, parse: fn(&mut Cursor) -> Parsed<Raw>) -> Parsed<Raw> {
    let right = parse(cursor)?;
    if !right.is_condition() {
        return cursor.error();
    }
    Ok(right)
}

fn parse_not(cursor: &mut Cursor) -> Parsed<Raw> {
    let mut nots = 0;
    while cursor.peek() == Kind::Keyword(Keyword::Not) {
        cursor.bump();
        cursor.count_operator();
        nots += 1;
    }
    let mut raw = parse_comparison(cursor)?;
    if nots > 0 && !raw.is_condition() {
        return cursor.error();
    }
    // Past the operator limit the request fails anyway; a bounded tree keeps recursion shallow.
    for _ in 0..nots.min(parser::MAX_OPERATORS + 1) {
        raw = Raw::Not(Box::new(raw));
    }
    Ok(raw)
}

fn comparator(kind: Kind) -> Option<Comparator> {
    match kind {
        Kind::Punct(Punct::Eq) => Some(Comparator::Eq),
        Kind::Punct(Punct::Ne) => Some(Comparator::Ne),
        Kind::Punct(Punct::Lt) => Some(Comparator::Lt),
        Kind::Punct(Punct::Le) => Some(Comparator::Le),
        Kind::Punct(Punct::Gt) => Some(Comparator::Gt),
        Kind::Punct(Punct::Ge) => Some(Comparator::Ge),
        _ => None,
    }
}

fn starts_comparison(kind: Kind) -> bool {
    comparator(kind).is_some()
        || kind == Kind::Keyword(Keyword::Between)
        || kind == Kind::Keyword(Keyword::In)
}

fn parse_comparison(cursor: &mut Cursor) -> Parsed<Raw> {
    let left = parse_primary(cursor)?;
    let next = cursor.peek();
    if !starts_comparison(next) {
        return Ok(left);
    }
    if !left.is_operand() {
        return cursor.error();
    }
    cursor.bump();
    cursor.count_operator();
    let left = Box::new(left);
    if let Some(op) = comparator(next) {
        return Ok(Raw::Compare(left, op, Box::new(parse_operand(cursor)?)));
    }
    if next == Kind::Keyword(Keyword::Between) {
        let low = parse_operand(cursor)?;
        if cursor.peek() != Kind::Keyword(Keyword::And) {
            return cursor.error();
        }
        cursor.bump();
        let high = parse_operand(cursor)?;
        return Ok(Raw::Between(left, Box::new(low), Box::new(high)));
    }
    cursor.expect(Punct::LParen)?;
    let list = parse_arguments(cursor)?;
    Ok(Raw::In(left, list))
}

/// `operand (',' operand)* ')'`
fn parse_arguments(cursor: &mut Cursor) -> Parsed<Vec<Raw>> {
    let mut list = vec![parse_operand(cursor)?];
    while cursor.at_punct(Punct::Comma) {
        cursor.bump();
        list.push(parse_operand(cursor)?);
    }
    cursor.expect(Punct::RParen)?;
    Ok(list)
}

/// A parenthesised condition or operand, or an operand.
fn parse_primary(cursor: &mut Cursor) -> Parsed<Raw> {
    if !cursor.at_punct(Punct::LParen) {
        return parse_atom(cursor);
    }
    cursor.descend()?;
    cursor.bump();
    let inner = parse_or(cursor)?;
    cursor.expect(Punct::RParen)?;
    cursor.ascend();
    // DynamoDB only knows that doubled parentheses around an operand hold an operand once a
    // comparison follows them; before that, a misplaced token is the error it reports.
    if matches!(inner, Raw::Paren(_)) && !inner.is_condition() && !starts_comparison(cursor.peek())
    {
        return cursor.error();
    }
    parenthesised(cursor, inner)
}

fn parse_operand(cursor: &mut Cursor) -> Parsed<Raw> {
    if !cursor.at_punct(Punct::LParen) {
        return parse_atom(cursor);
    }
    cursor.descend()?;
    cursor.bump();
    let inner = parse_operand(cursor)?;
    cursor.expect(Punct::RParen)?;
    cursor.ascend();
    parenthesised(cursor, inner)
}

fn parenthesised(cursor: &Cursor, inner: Raw) -> Parsed<Raw> {
    if matches!(inner, Raw::Paren(_)) {
        return cursor.redundant_parens();
    }
    Ok(Raw::Paren(Box::new(inner)))
}

fn parse_atom(cursor: &mut Cursor) -> Parsed<Raw> {
    match cursor.peek() {
        Kind::Identifier if cursor.peek_second() == Kind::Punct(Punct::LParen) => {
            let name = cursor.bump().to_string();
            cursor.bump();
            cursor.count_operator();
            cursor.descend()?;
            let args = parse_arguments(cursor)?;
            cursor.ascend();
            Ok(Raw::Call(name, args))
        }
        Kind::Identifier | Kind::Name => Ok(Raw::Path(cursor.path()?)),
        Kind::Value => Ok(Raw::Value(cursor.bump().to_string())),
        _ => cursor.error(),
    }
}

/// Lowers the parse tree while collecting semantic errors.
struct Lower<'p, 'a> {
    placeholders: &'p mut Placeholders<'a>,
    diagnostics: Diagnostics,
}

/// Functions that are conditions, with their operand counts.
fn condition_function(name: &str) -> Option<usize> {
    match name {
        "attribute_exists" | "attribute_not_exists" => Some(1),
        "attribute_type" | "begins_with" | "contains" => Some(2),
        _ => None,
    }
}

const TYPE_NAMES: [&str; 10] = ["S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"];

fn dummy_path() -> Path {
    Path::attribute("")
}

impl Lower<'_, '_> {
    fn condition(&mut self, raw: &Raw) -> Condition {
        match raw.unwrap_parens() {
            Raw::Compare(a, op, b) => {
                let (a, b) = (self.operand(a), self.operand(b));
                self.check_distinct(op.symbol(), &a, [&b]);
                if *op != Comparator::Eq && *op != Comparator::Ne {
                    self.check_ordered(op.symbol(), [&a, &b]);
                }
                Condition::Compare(a, *op, b)
            }
            Raw::Between(a, low, high) => {
                let (a, low, high) = (self.operand(a), self.operand(low), self.operand(high));
                self.check_ordered("BETWEEN", [&a, &low, &high]);
                self.check_distinct("BETWEEN", &a, [&low, &high]);
                self.check_between(&low, &high);
                Condition::Between(a, low, high)
            }
            Raw::In(a, list) => {
                if list.len() > MAX_IN_OPERANDS {
                    self.diagnostics.report(
                        RANK_OPERANDS,
                        format!(
                            "The IN operator is provided with too many operands; number of operands: {}",
                            list.len()
                        ),
                    );
                }
                let a = self.operand(a);
                let list: Vec<Operand> = list.iter().map(|r| self.operand(r)).collect();
                self.check_distinct("IN", &a, &list);
                Condition::In(a, list)
            }
            Raw::Not(a) => Condition::Not(Box::new(self.condition(a))),
            Raw::And(a, b) => {
                Condition::And(Box::new(self.condition(a)), Box::new(self.condition(b)))
            }
            Raw::Or(a, b) => {
                Condition::Or(Box::new(self.condition(a)), Box::new(self.condition(b)))
            }
            Raw::Call(name, args) => self.function_condition(name, args),
            Raw::Path(_) | Raw::Value(_) | Raw::Paren(_) => {
                unreachable!("the parser only accepts conditions here")
            }
        }
    }

    /// A function used as a condition. Its name is judged before its arguments are lowered.
    fn function_condition(&mut self, name: &str, args: &[Raw]) -> Condition {
        let Some(expected) = condition_function(name) else {
            if name == "size" {
                self.misused(name);
            } else {
                self.unknown_function(name);
            }
            for arg in args {
                self.operand(arg);
            }
            return Condition::AttributeExists(dummy_path());
        };
        let operands: Vec<Operand> = args.iter().map(|a| self.operand(a)).collect();
        if operands.len() != expected {
            self.diagnostics.report(
                RANK_OPERANDS,
                format!("Incorrect number of operands for operator or function; operator or function: {name}, number of operands: {}", operands.len()),
            );
            return Condition::AttributeExists(dummy_path());
        }
        let mut operands = operands.into_iter();
        let first = operands.next().expect("counted");
        let second = operands.next();
        if let Some(second) = &second {
            self.check_distinct(name, &first, [second]);
        }
        match (name, second) {
            ("attribute_exists", None) => {
                Condition::AttributeExists(self.document_path(name, first))
            }
            ("attribute_not_exists", None) => {
                Condition::AttributeNotExists(self.document_path(name, first))
            }
            ("attribute_type", Some(second)) => {
                self.check_type_name(&second);
                Condition::AttributeType(first, second)
            }
            ("begins_with", Some(second)) => {
                for operand in [&first, &second] {
                    self.check_operand_type(name, operand, |t| matches!(t, "S" | "B"));
                }
                Condition::BeginsWith(first, second)
            }
            (_, Some(second)) => Condition::Contains(first, second),
            (_, None) => unreachable!("operand counts were checked"),
        }
    }

    fn operand(&mut self, raw: &Raw) -> Operand {
        match raw.unwrap_parens() {
            Raw::Path(path) => Operand::Path(self.path(path)),
            Raw::Value(placeholder) => {
                let value = self.placeholders.value(placeholder).unwrap_or_else(|| {
                    self.diagnostics
                        .report(RANK_OPERANDS, undefined_value(placeholder));
                    AttributeValue::Null
                });
                Operand::Value {
                    placeholder: placeholder.clone(),
                    value,
                }
            }
            Raw::Call(name, args) if name == "size" => self.size(args),
            Raw::Call(name, args) => {
                if condition_function(name).is_some() {
                    self.misused(name);
                } else {
                    self.unknown_function(name);
                }
                for arg in args {
                    self.operand(arg);
                }
                Operand::Path(dummy_path())
            }
            _ => unreachable!("the parser only accepts operands here"),
        }
    }

    fn size(&mut self, args: &[Raw]) -> Operand {
        let mut operands: Vec<Operand> = args.iter().map(|a| self.operand(a)).collect();
        if operands.len() != 1 {
            self.diagnostics.report(
                RANK_OPERANDS,
                format!("Incorrect number of operands for operator or function; operator or function: size, number of operands: {}", operands.len()),
            );
            return Operand::Path(dummy_path());
        }
        let operand = operands.remove(0);
        self.check_operand_type("size", &operand, |t| !matches!(t, "N" | "BOOL" | "NULL"));
        Operand::Size(Box::new(operand))
    }

    fn path(&mut self, raw: &RawPath) -> Path {
        resolve_path(raw, self.placeholders, &mut self.diagnostics, &PATH_RANKS)
    }

    fn document_path(&mut self, function: &str, operand: Operand) -> Path {
        match operand {
            Operand::Path(path) => path,
            _ => {
                self.diagnostics.report(
                    RANK_OPERANDS,
                    format!("Operator or function requires a document path; operator or function: {function}"),
                );
                dummy_path()
            }
        }
    }

    fn misused(&mut self, name: &str) {
        self.diagnostics.report(
            RANK_NAMING,
            format!(
                "The function is not allowed to be used this way in an expression; function: {name}"
            ),
        );
    }

    fn unknown_function(&mut self, name: &str) {
        let message = if matches!(name, "if_not_exists" | "list_append") {
            format!("The function is not allowed in a condition expression; function: {name}")
        } else {
            format!("Invalid function name; function: {name}")
        };
        self.diagnostics.report(RANK_NAMING, message);
    }

    fn check_operand_type(&mut self, function: &str, operand: &Operand, allowed: fn(&str) -> bool) {
        if let Some(t) = static_type(operand).filter(|t| !allowed(t)) {
            self.diagnostics.report(
                RANK_OPERANDS,
                format!("Incorrect operand type for operator or function; operator or function: {function}, operand type: {t}"),
            );
        }
    }

    fn check_type_name(&mut self, operand: &Operand) {
        match operand {
            Operand::Value {
                value: AttributeValue::S(name),
                ..
            } => {
                // The service lists the types in hash order, which varies (dynalite's tests accept
                // any order); this is DynamoDB Local's.
                if !TYPE_NAMES.contains(&name.as_str()) {
                    self.diagnostics.report(
                        RANK_OPERANDS,
                        format!("Invalid attribute type name found; type: {name}, valid types: {{N,BS,L,B,NULL,M,S,SS,NS,BOOL}}"),
                    );
                }
            }
            other => {
                let t = static_type(other).unwrap_or("{NS,SS,L,BS,N,M,B,BOOL,NULL,S}");
                self.diagnostics.report(
                    RANK_OPERANDS,
                    format!("Incorrect operand type for operator or function; operator or function: attribute_type, operand type: {t}"),
                );
            }
        }
    }

    /// Only S, N and B values can be ordered.
    fn check_ordered<const N: usize>(&mut self, operator: &str, operands: [&Operand; N]) {
        for operand in operands {
            self.check_operand_type(operator, operand, |t| matches!(t, "S" | "N" | "B"));
        }
    }

    fn check_distinct<'o>(
        &mut self,
        operator: &str,
        first: &Operand,
        rest: impl IntoIterator<Item = &'o Operand>,
    ) {
        let Operand::Path(p) = first else { return };
        if rest
            .into_iter()
            .any(|o| matches!(o, Operand::Path(q) if q == p))
        {
            self.diagnostics.report(
                RANK_OPERANDS,
                format!("The first operand must be distinct from the remaining operands for this operator or function; operator: {operator}, first operand: {}", p.message_form()),
            );
        }
    }

    fn check_between(&mut self, low: &Operand, high: &Operand) {
        let (Operand::Value { value: lo, .. }, Operand::Value { value: hi, .. }) = (low, high)
        else {
            return;
        };
        if ![lo, hi]
            .iter()
            .all(|v| matches!(v.type_name(), "S" | "N" | "B"))
        {
            return;
        }
        let bounds = format!(
            "lower bound operand: AttributeValue: {}, upper bound operand: AttributeValue: {}",
            crate::describe::value(lo),
            crate::describe::value(hi)
        );
        if lo.type_name() != hi.type_name() {
            self.diagnostics.report(
                RANK_OPERANDS,
                format!("The BETWEEN operator requires same data type for lower and upper bounds; {bounds}"),
            );
        } else if crate::eval::compare(lo, hi) == Some(std::cmp::Ordering::Greater) {
            self.diagnostics.report(
                RANK_OPERANDS,
                format!("The BETWEEN operator requires upper bound to be greater than or equal to lower bound; {bounds}"),
            );
        }
    }
}

/// The type an operand is known to have before evaluation, if any.
fn static_type(operand: &Operand) -> Option<&'static str> {
    match operand {
        Operand::Value { value, .. } => Some(value.type_name()),
        Operand::Size(_) => Some("N"),
        Operand::Path(_) => None,
    }
}
