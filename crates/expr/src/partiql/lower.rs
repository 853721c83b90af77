//! Lowering a statement's expressions into the expression language's parse trees, which the
//! expression language then checks and turns into its AST exactly as it does for its own text:
//! a WHERE clause becomes a condition (`IS MISSING` is `attribute_not_exists`, `IS NULL` is
//! `attribute_type(.., NULL)`), SET and REMOVE become an update (`set_add` is ADD, `set_delete` is
//! DELETE), a select list becomes a projection. Literals and parameters become placeholder values,
//! names become paths that DynamoDB's reserved words do not apply to.

use haven_model::{AttributeValue, Item};

use super::syntax::{Expr, ExprKind, RawAssignment, Step};
use super::values::Values;
use crate::ast::{Comparator, Condition};
use crate::condition::{Raw, lower_condition};
use crate::lexer::Keyword;
use crate::parser::{RawElement, RawPath};
use crate::projection::lower_paths;
use crate::update::{RawAction, RawOperand, RawSetValue, Section, is_set, lower_sections};
use crate::{Path, Placeholders, UpdateExpression};

const IS_TYPES: &str = "[MISSING, NULL, BOOLEAN, BLOB, STRING, NUMERIC, STRUCT, TUPLE, LIST]";
const IN_OPERANDS: &str = "IN operator must have a left hand argument of type Variable Reference and right hand argument of type Seq with at least one member";

/// Builds parse trees, collecting the values they use as placeholders.
pub(crate) struct Lowering<'a> {
    pub values: Values<'a>,
    placeholders: Item,
}

impl<'a> Lowering<'a> {
    pub fn new(values: Values<'a>) -> Lowering<'a> {
        Lowering {
            values,
            placeholders: Item::new(),
        }
    }

    /// The placeholder standing for `value` in the trees built.
    fn placeholder(&mut self, value: AttributeValue) -> String {
        let name = format!(":p{}", self.placeholders.len());
        self.placeholders.insert(name.clone(), value);
        name
    }

    /// Runs the expression language's lowering with the placeholders collected so far.
    fn with_placeholders<T>(
        &self,
        lower: impl FnOnce(&mut Placeholders) -> Result<T, crate::ExprError>,
    ) -> Result<T, String> {
        let values = (!self.placeholders.is_empty()).then_some(&self.placeholders);
        let mut placeholders = Placeholders::new(None, values).map_err(|e| e.0)?;
        lower(&mut placeholders).map_err(|e| e.0)
    }

    /// A WHERE clause (or an EXISTS condition) as a condition.
    pub fn condition(&mut self, expr: &Expr) -> Result<Condition, String> {
        let raw = self.raw_condition(expr)?;
        self.with_placeholders(|p| lower_condition(&raw, p, None))
    }

    /// SET and REMOVE clauses as an update.
    pub fn update(&mut self, assignments: &[RawAssignment]) -> Result<UpdateExpression, String> {
        let mut sections: Vec<Section> = Vec::new();
        for assignment in assignments {
            let action = match assignment {
                RawAssignment::Set(target, value) => self.set_action(target, value)?,
                RawAssignment::Remove(target) => RawAction::Remove(raw_path(target)?),
            };
            let keyword = match &action {
                RawAction::Set(..) => Keyword::Set,
                RawAction::Remove(_) => Keyword::Remove,
                RawAction::Add(..) => Keyword::Add,
                RawAction::Delete(..) => Keyword::Delete,
            };
            match sections.iter_mut().find(|s| s.keyword == keyword) {
                Some(section) => section.actions.push(action),
                None => sections.push(Section {
                    keyword,
                    actions: vec![action],
                }),
            }
        }
        // DynamoDB lists each clause's actions last first (its overlap messages show it).
        for section in &mut sections {
            section.actions.reverse();
        }
        self.with_placeholders(|p| lower_sections(&sections, p, None))
    }

    /// A select list as projection paths. DynamoDB names each result attribute after the last
    /// name of its path (see [`super::output_name`]), so two paths may not end alike; the paths are
    /// checked last to first, which is the order DynamoDB reports overlaps in.
    pub fn projection(&self, items: &[Expr]) -> Result<Vec<Path>, String> {
        let lower =
            |raw: &[RawPath]| lower_paths(raw, &mut Placeholders::default(), None).map_err(|e| e.0);
        let mut raw: Vec<RawPath> = items.iter().map(raw_path).collect::<Result<_, _>>()?;
        // Duplicate names are found before overlapping paths.
        let mut names = Vec::with_capacity(raw.len());
        for path in &raw {
            let name = super::output_name(&lower(std::slice::from_ref(path))?[0]);
            if names.contains(&name) {
                return Err(format!("Duplicate identifiers in select clause: {name}"));
            }
            names.push(name);
        }
        raw.reverse();
        let mut paths = lower(&raw)?;
        paths.reverse();
        Ok(paths)
    }

    fn raw_condition(&mut self, expr: &Expr) -> Result<Raw, String> {
        let pair = |s: &mut Self, a: &Expr, b: &Expr| -> Result<(Box<Raw>, Box<Raw>), String> {
            Ok((Box::new(s.raw_condition(a)?), Box::new(s.raw_condition(b)?)))
        };
        Ok(match &expr.kind {
            ExprKind::And(a, b) => {
                let (a, b) = pair(self, a, b)?;
                Raw::And(a, b)
            }
            ExprKind::Or(a, b) => {
                let (a, b) = pair(self, a, b)?;
                Raw::Or(a, b)
            }
            ExprKind::Not(a) => Raw::Not(Box::new(self.raw_condition(a)?)),
            ExprKind::Binary(op, a, b) => {
                let comparator = comparator(op).ok_or_else(|| unsupported_operator(op))?;
                Raw::Compare(self.boxed(a)?, comparator, self.boxed(b)?)
            }
            ExprKind::Between {
                value,
                low,
                high,
                negated,
            } => negate(
                *negated,
                Raw::Between(self.boxed(value)?, self.boxed(low)?, self.boxed(high)?),
            ),
            ExprKind::In {
                value,
                list,
                negated,
            } => negate(*negated, self.in_list(value, list)?),
            ExprKind::InValue => return Err(IN_OPERANDS.into()),
            ExprKind::Is {
                value,
                type_name,
                negated,
            } => self.is(expr, value, type_name, *negated)?,
            ExprKind::Call(name, args) => Raw::Call(known_function(name)?, self.operands(args)?),
            _ => {
                return Err(
                    "WHERE clause must contain an expression that resolves to a boolean".into(),
                );
            }
        })
    }

    fn in_list(&mut self, value: &Expr, list: &[Expr]) -> Result<Raw, String> {
        if list.is_empty() {
            return Err(IN_OPERANDS.into());
        }
        Ok(Raw::In(self.boxed(value)?, self.operands(list)?))
    }

    fn operands(&mut self, exprs: &[Expr]) -> Result<Vec<Raw>, String> {
        exprs.iter().map(|e| self.operand(e)).collect()
    }

    fn boxed(&mut self, expr: &Expr) -> Result<Box<Raw>, String> {
        Ok(Box::new(self.operand(expr)?))
    }

    /// An operand of a condition: a path, `size(...)`, or a value.
    fn operand(&mut self, expr: &Expr) -> Result<Raw, String> {
        match &expr.kind {
            ExprKind::Path(_) => Ok(Raw::Path(raw_path(expr)?)),
            ExprKind::Call(name, args) => {
                Ok(Raw::Call(known_function(name)?, self.operands(args)?))
            }
            ExprKind::Missing => Err("MISSING must be compared using IS operator".into()),
            kind => match operator_text(kind) {
                Some(op) => Err(unsupported_operator(op)),
                None => {
                    let value = self.values.value(expr, "root", false, 1)?;
                    Ok(Raw::Value(self.placeholder(value)))
                }
            },
        }
    }

    /// `value IS [NOT] type`: MISSING is `attribute_not_exists`, other types `attribute_type`.
    fn is(
        &mut self,
        is: &Expr,
        value: &Expr,
        type_name: &str,
        negated: bool,
    ) -> Result<Raw, String> {
        if matches!(value.kind, ExprKind::Call(..)) || operator_text(&value.kind).is_some() {
            return Err(
                "The left hand side argument to IS must be a Variable Reference, Literal, or Path"
                    .into(),
            );
        }
        let operand = self.operand(value)?;
        if type_name == "MISSING" {
            let function = if negated {
                "attribute_exists"
            } else {
                "attribute_not_exists"
            };
            return Ok(Raw::Call(function.into(), vec![operand]));
        }
        let Some(dynamo_type) = dynamo_type(type_name) else {
            return Err(format!(
                "Unsupported data type for IS operator: {type_name}. Supported data types are {IS_TYPES} at {}",
                is.at.position(self.values.text)
            ));
        };
        let type_value = Raw::Value(self.placeholder(AttributeValue::S(dynamo_type.into())));
        let check = Raw::Call("attribute_type".into(), vec![operand, type_value]);
        Ok(negate(negated, check))
    }

    fn set_action(&mut self, target: &Expr, value: &Expr) -> Result<RawAction, String> {
        let path = raw_path(target)?;
        Ok(match &value.kind {
            ExprKind::Call(name, args) if name == "set_add" || name == "set_delete" => {
                self.set_function(target, name, args, path)?
            }
            ExprKind::Binary(op @ ("+" | "-"), a, b) => {
                let sign = if *op == "+" { '+' } else { '-' };
                let (a, b) = (self.update_operand(a)?, self.update_operand(b)?);
                RawAction::Set(path, RawSetValue::Arithmetic(a, sign, b))
            }
            _ => RawAction::Set(path, RawSetValue::Operand(self.update_operand(value)?)),
        })
    }

    /// `SET path = set_add(path, <<...>>)` is ADD, `set_delete` is DELETE.
    fn set_function(
        &mut self,
        target: &Expr,
        name: &str,
        args: &[Expr],
        path: RawPath,
    ) -> Result<RawAction, String> {
        let function = name.to_ascii_uppercase();
        let [first, second] = args else {
            return Err(format!(
                "Incorrect number of operands for operator or function; operator or function: {name}, number of operands: {}",
                args.len()
            ));
        };
        if !same_path(first, target) {
            return Err(format!(
                "The first argument to {function} must equal the assignment value"
            ));
        }
        let value = match self.values.value(second, "root", false, 1) {
            Ok(value) if is_set(&value) => value,
            _ => {
                // DynamoDB points at the first argument.
                return Err(format!(
                    "The second argument to {function} must be a value with type SET at {}",
                    first.at.position(self.values.text)
                ));
            }
        };
        let placeholder = self.placeholder(value);
        Ok(if name == "set_add" {
            RawAction::Add(path, placeholder)
        } else {
            RawAction::Delete(path, placeholder)
        })
    }

    /// An operand of a SET value: a path, a function call, or a value.
    fn update_operand(&mut self, expr: &Expr) -> Result<RawOperand, String> {
        match &expr.kind {
            ExprKind::Path(_) => Ok(RawOperand::Path(raw_path(expr)?)),
            ExprKind::Call(name, args) => Ok(RawOperand::Call(
                known_function(name)?,
                args.iter()
                    .map(|a| self.update_operand(a))
                    .collect::<Result<_, _>>()?,
            )),
            kind => match operator_text(kind) {
                Some(op) => Err(format!(
                    "Unsupported operator in Update Expression. Operator: {op}"
                )),
                None => {
                    let value = self.values.value(expr, "root", false, 1)?;
                    Ok(RawOperand::Value(self.placeholder(value)))
                }
            },
        }
    }
}

/// A path expression's elements; DynamoDB refuses empty names.
pub(crate) fn raw_path(expr: &Expr) -> Result<RawPath, String> {
    let steps = expr.as_path().expect("the parser only puts paths here");
    steps
        .iter()
        .map(|step| match step {
            Step::Name(name) if name.is_empty() => {
                Err("Path component cannot be an empty string".to_string())
            }
            Step::Name(name) => Ok(RawElement::Verbatim(name.clone())),
            Step::Index(digits) => Ok(RawElement::Index(digits.clone())),
        })
        .collect::<Result<_, _>>()
        .map(RawPath)
}

fn same_path(a: &Expr, b: &Expr) -> bool {
    let (Some(a), Some(b)) = (a.as_path(), b.as_path()) else {
        return false;
    };
    a.len() == b.len()
        && a.iter().zip(b).all(|pair| match pair {
            (Step::Name(x), Step::Name(y)) | (Step::Index(x), Step::Index(y)) => x == y,
            _ => false,
        })
}

/// The functions PartiQL knows (the expression language then says where each may be used).
fn known_function(name: &str) -> Result<String, String> {
    const FUNCTIONS: [&str; 8] = [
        "attribute_exists",
        "attribute_not_exists",
        "attribute_type",
        "begins_with",
        "contains",
        "size",
        "list_append",
        "if_not_exists",
    ];
    if FUNCTIONS.contains(&name) {
        Ok(name.to_string())
    } else {
        Err(format!("Unrecognized function: {name}"))
    }
}

fn comparator(op: &str) -> Option<Comparator> {
    Some(match op {
        "=" => Comparator::Eq,
        "<>" => Comparator::Ne,
        "<" => Comparator::Lt,
        "<=" => Comparator::Le,
        ">" => Comparator::Gt,
        ">=" => Comparator::Ge,
        _ => return None,
    })
}

/// The operator an expression applies, when it is not a value, a path or a function call.
fn operator_text(kind: &ExprKind) -> Option<&'static str> {
    Some(match kind {
        ExprKind::Binary(op, ..) => op,
        ExprKind::Sign('-', inner) if !matches!(inner.kind, ExprKind::Number(_)) => "-",
        ExprKind::Sign(_, inner) if !matches!(inner.kind, ExprKind::Number(_)) => "+",
        ExprKind::And(..) => "and",
        ExprKind::Or(..) => "or",
        ExprKind::Not(_) => "not",
        ExprKind::Between { .. } => "between",
        ExprKind::In { .. } | ExprKind::InValue => "in",
        ExprKind::Is { .. } => "is",
        _ => return None,
    })
}

fn unsupported_operator(op: &str) -> String {
    format!("Unsupported operator in Condition Expression. Operator: {op}")
}

fn negate(negated: bool, raw: Raw) -> Raw {
    if negated {
        Raw::Not(Box::new(raw))
    } else {
        raw
    }
}

/// The DynamoDB type `IS <type>` checks for.
fn dynamo_type(type_name: &str) -> Option<&'static str> {
    Some(match type_name {
        "NULL" => "NULL",
        "BOOLEAN" => "BOOL",
        "BLOB" => "B",
        "STRING" => "S",
        "NUMERIC" => "N",
        "STRUCT" | "TUPLE" => "M",
        "LIST" => "L",
        _ => return None,
    })
}
