//! The parse tree of a statement, as written: before parameters are bound and before expressions
//! are lowered into the expression language's trees. Every expression keeps its first token, for
//! the `line:column:length` DynamoDB puts in its messages.

use super::lexer::Token;

/// A parsed statement of DynamoDB's PartiQL dialect.
#[derive(Debug)]
pub(crate) enum RawStatement {
    Select(RawSelect),
    Insert {
        target: Source,
        item: Expr,
    },
    Update {
        target: Source,
        actions: Vec<RawAssignment>,
        condition: Option<Expr>,
        returning: Option<Returning>,
    },
    Delete {
        target: Source,
        condition: Option<Expr>,
        returning: Option<Returning>,
    },
    /// `EXISTS(SELECT ...)`, a condition check of a transaction.
    Exists(RawSelect),
}

#[derive(Debug)]
pub(crate) struct RawSelect {
    /// `None` for `*`.
    pub projection: Option<Vec<Expr>>,
    pub source: Source,
    pub condition: Option<Expr>,
    /// Attribute names and whether they are descending.
    pub order_by: Vec<(Expr, bool)>,
}

/// `table` or `"table"."index"`.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub table: String,
    pub index: Option<String>,
}

/// One `SET path = value` or `REMOVE path` of an UPDATE.
#[derive(Debug)]
pub(crate) enum RawAssignment {
    Set(Expr, Expr),
    Remove(Expr),
}

/// What `RETURNING` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returning {
    AllOld,
    ModifiedOld,
    AllNew,
    ModifiedNew,
}

impl Returning {
    /// How DynamoDB writes it in its messages.
    pub fn text(self) -> &'static str {
        match self {
            Returning::AllOld => "ALL OLD *",
            Returning::ModifiedOld => "MODIFIED OLD *",
            Returning::AllNew => "ALL NEW *",
            Returning::ModifiedNew => "MODIFIED NEW *",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    /// The token the expression starts at (for an operator, the operator's token).
    pub at: Token,
}

#[derive(Debug)]
pub(crate) enum ExprKind {
    /// A document path: a name, then names and list indexes.
    Path(Vec<Step>),
    Str(String),
    /// The number as written.
    Number(String),
    Bool(bool),
    Null,
    Missing,
    /// The n-th `?` of the statement (from 0).
    Param(usize),
    List(Vec<Expr>),
    Bag(Vec<Expr>),
    Struct(Vec<(Expr, Expr)>),
    Not(Box<Expr>),
    /// Unary `-` or `+`.
    Sign(char, Box<Expr>),
    /// Infix operators other than the logical ones, by their text (`=`, `<>`, `+`, `||`, `like`...).
    Binary(&'static str, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Between {
        value: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    In {
        value: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    /// `IN ?` and other right-hand sides that are not a written list (DynamoDB refuses them).
    InValue,
    Is {
        value: Box<Expr>,
        type_name: String,
        negated: bool,
    },
    Call(String, Vec<Expr>),
}

/// One step of a path after its first name.
#[derive(Debug)]
pub(crate) enum Step {
    Name(String),
    /// The digits as written.
    Index(String),
}

impl Expr {
    /// The path's steps, when the expression is a path.
    pub fn as_path(&self) -> Option<&[Step]> {
        match &self.kind {
            ExprKind::Path(steps) => Some(steps),
            _ => None,
        }
    }
}
