//! The syntax trees every expression kind parses into, and legacy parameters translate into. They
//! print back as expression text (placeholders for values), which the round-trip tests rely on.

use std::fmt;

use haven_model::AttributeValue;

use crate::Path;

/// A value an operand reads: a document path, a placeholder's value, or `size(...)`.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Path(Path),
    /// `placeholder` is the `:name` it came from (legacy translations invent one).
    Value {
        placeholder: String,
        value: AttributeValue,
    },
    Size(Box<Operand>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparator {
    pub fn symbol(self) -> &'static str {
        match self {
            Comparator::Eq => "=",
            Comparator::Ne => "<>",
            Comparator::Lt => "<",
            Comparator::Le => "<=",
            Comparator::Gt => ">",
            Comparator::Ge => ">=",
        }
    }
}

/// A condition, filter or key-condition expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare(Operand, Comparator, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    AttributeExists(Path),
    AttributeNotExists(Path),
    AttributeType(Operand, Operand),
    BeginsWith(Operand, Operand),
    Contains(Operand, Operand),
    Not(Box<Condition>),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Path(path) => write!(f, "{path}"),
            Operand::Value { placeholder, .. } => f.write_str(placeholder),
            Operand::Size(inner) => write!(f, "size({inner})"),
        }
    }
}

/// Fully parenthesised, so that printing never depends on precedence.
impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Compare(a, op, b) => write!(f, "{a} {} {b}", op.symbol()),
            Condition::Between(a, lo, hi) => write!(f, "{a} BETWEEN {lo} AND {hi}"),
            Condition::In(a, list) => {
                let items: Vec<String> = list.iter().map(ToString::to_string).collect();
                write!(f, "{a} IN ({})", items.join(", "))
            }
            Condition::AttributeExists(p) => write!(f, "attribute_exists({p})"),
            Condition::AttributeNotExists(p) => write!(f, "attribute_not_exists({p})"),
            Condition::AttributeType(p, t) => write!(f, "attribute_type({p}, {t})"),
            Condition::BeginsWith(a, b) => write!(f, "begins_with({a}, {b})"),
            Condition::Contains(a, b) => write!(f, "contains({a}, {b})"),
            Condition::Not(c) => write!(f, "NOT ({c})"),
            Condition::And(a, b) => write!(f, "({a}) AND ({b})"),
            Condition::Or(a, b) => write!(f, "({a}) OR ({b})"),
        }
    }
}

/// The right-hand side of a SET action.
#[derive(Debug, Clone, PartialEq)]
pub enum SetValue {
    Operand(UpdateOperand),
    Plus(UpdateOperand, UpdateOperand),
    Minus(UpdateOperand, UpdateOperand),
}

/// An operand of a SET action.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOperand {
    Path(Path),
    Value {
        placeholder: String,
        value: AttributeValue,
    },
    IfNotExists(Path, Box<UpdateOperand>),
    ListAppend(Box<UpdateOperand>, Box<UpdateOperand>),
}

/// One action of an update expression (or of a legacy AttributeUpdates entry).
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateAction {
    Set(Path, SetValue),
    Remove(Path),
    /// The value operand is a `:placeholder` with its value.
    Add(Path, String, AttributeValue),
    Delete(Path, String, AttributeValue),
}

impl fmt::Display for UpdateOperand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateOperand::Path(p) => write!(f, "{p}"),
            UpdateOperand::Value { placeholder, .. } => f.write_str(placeholder),
            UpdateOperand::IfNotExists(p, v) => write!(f, "if_not_exists({p}, {v})"),
            UpdateOperand::ListAppend(a, b) => write!(f, "list_append({a}, {b})"),
        }
    }
}

impl fmt::Display for SetValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetValue::Operand(o) => write!(f, "{o}"),
            SetValue::Plus(a, b) => write!(f, "{a} + {b}"),
            SetValue::Minus(a, b) => write!(f, "{a} - {b}"),
        }
    }
}
