//! PartiQL literals and `?` parameters as attribute values: strings, numbers, booleans, NULL,
//! lists (`[...]`), tuples (`{'name': value}`, maps) and bags (`<<...>>`, string or number sets).
//! DynamoDB names where a refused value sits (`under key root.a`) and its token (`at 1:45:1`).

use std::collections::BTreeMap;

use haven_model::{AttributeValue, Number};

use super::lexer::Token;
use super::syntax::{Expr, ExprKind};

/// Deepest value DynamoDB stores: an attribute is level 1.
const MAX_DEPTH: usize = 32;

const BAG_TYPES: &str =
    "Unsupported data type in Bag. DynamoDB only supports either numbers or strings in bags";

/// Converts written values, reading `?` from the request's parameters.
pub(crate) struct Values<'a> {
    pub text: &'a str,
    pub parameters: &'a [AttributeValue],
}

impl Values<'_> {
    fn at(&self, token: Token) -> String {
        token.position(self.text)
    }

    /// The value `expr` writes. `key` is where it sits (`root`, `root.a`...); `direct` when it is
    /// an attribute of the item an INSERT writes (DynamoDB then names a refused expression by its
    /// text rather than by its kind); `depth` its nesting level.
    pub fn value(
        &self,
        expr: &Expr,
        key: &str,
        direct: bool,
        depth: usize,
    ) -> Result<AttributeValue, String> {
        if depth > MAX_DEPTH {
            return Err("Nesting Levels have exceeded supported limits".into());
        }
        Ok(match &expr.kind {
            ExprKind::Str(text) => AttributeValue::S(text.clone()),
            ExprKind::Number(text) => AttributeValue::N(number(text)?),
            ExprKind::Sign(sign, inner) => return self.signed(*sign, inner, key, direct),
            ExprKind::Bool(b) => AttributeValue::Bool(*b),
            ExprKind::Null => AttributeValue::Null,
            ExprKind::Param(i) => self.parameters[*i].clone(),
            ExprKind::List(items) => AttributeValue::L(
                items
                    .iter()
                    .map(|item| self.value(item, key, false, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            ExprKind::Bag(items) => self.bag(expr.at, items)?,
            ExprKind::Struct(entries) => {
                AttributeValue::M(self.tuple(expr.at, entries, key, false, depth)?)
            }
            _ => return Err(self.unsupported(expr, key, direct)),
        })
    }

    /// A tuple's entries; `item` when it is the whole item of an INSERT (its attributes then sit
    /// at `root`, and a repeated name is pointed at by its own token rather than the brace).
    pub fn tuple(
        &self,
        brace: Token,
        entries: &[(Expr, Expr)],
        key: &str,
        item: bool,
        depth: usize,
    ) -> Result<BTreeMap<String, AttributeValue>, String> {
        let mut names: Vec<&str> = Vec::with_capacity(entries.len());
        for (name, _) in entries {
            let ExprKind::Str(text) = &name.kind else {
                return Err(format!(
                    "Tuple keys must be of type String. Actual type: {} under root at {}",
                    kind_name(name),
                    self.at(name.at)
                ));
            };
            if names.contains(&text.as_str()) {
                let at = if item { name.at } else { brace };
                return Err(format!(
                    "Duplicate keys in tuple. Key: {text} under root at {}",
                    self.at(at)
                ));
            }
            names.push(text);
        }
        let mut map = BTreeMap::new();
        for (name, (_, value)) in names.into_iter().zip(entries) {
            let child = if item {
                key.to_string()
            } else {
                format!("{key}.{name}")
            };
            map.insert(
                name.to_string(),
                self.value(value, &child, item, depth + 1)?,
            );
        }
        Ok(map)
    }

    fn signed(
        &self,
        sign: char,
        inner: &Expr,
        key: &str,
        direct: bool,
    ) -> Result<AttributeValue, String> {
        let ExprKind::Number(text) = &inner.kind else {
            return Err(self.unsupported(inner, key, direct));
        };
        let n = number(text)?;
        if sign == '+' {
            return Ok(AttributeValue::N(n));
        }
        if n.is_zero() && text.contains(['.', 'e', 'E']) {
            return Err(format!(
                "Negative zero decimal is not supported under key {key} at {}",
                self.at(inner.at)
            ));
        }
        Ok(AttributeValue::N(n.negate()))
    }

    /// `<<...>>`: a string set or a number set, written with literals only.
    fn bag(&self, at: Token, items: &[Expr]) -> Result<AttributeValue, String> {
        if items.is_empty() {
            return Err(format!("Empty bags are not supported at {}", self.at(at)));
        }
        let mut strings = Vec::new();
        let mut numbers: Vec<Number> = Vec::new();
        for item in items {
            match &item.kind {
                ExprKind::Str(text) => strings.push(text.clone()),
                ExprKind::Number(_) | ExprKind::Sign(..) => {
                    let AttributeValue::N(n) = self.value(item, "root", false, 1)? else {
                        unreachable!("a signed number is a number")
                    };
                    numbers.push(n);
                }
                _ => return Err(format!("{BAG_TYPES} at {}", self.at(item.at))),
            }
        }
        if !strings.is_empty() && !numbers.is_empty() {
            return Err(BAG_TYPES.into());
        }
        let duplicates = |n: usize, same: &dyn Fn(usize, usize) -> bool| {
            (0..n).any(|i| (0..i).any(|j| same(i, j)))
        };
        if duplicates(strings.len(), &|i, j| strings[i] == strings[j])
            || duplicates(numbers.len(), &|i, j| numbers[i] == numbers[j])
        {
            return Err("Input collection contains duplicates".into());
        }
        Ok(if strings.is_empty() {
            AttributeValue::Ns(numbers)
        } else {
            AttributeValue::Ss(strings)
        })
    }

    fn unsupported(&self, expr: &Expr, key: &str, direct: bool) -> String {
        let what = match &expr.kind {
            ExprKind::Path(_) if direct => self.text[expr.at.start..expr.at.end].to_string(),
            ExprKind::Missing => "MISSING".into(),
            ExprKind::Binary(op, ..) => op.to_string(),
            ExprKind::Sign(sign, _) => sign.to_string(),
            ExprKind::Call(name, _) => name.clone(),
            _ => kind_name(expr).into(),
        };
        format!(
            "Unsupported data type: {what} under key {key} at {}",
            self.at(expr.at)
        )
    }
}

/// A number literal; DynamoDB words a 39th digit its own way.
pub(crate) fn number(text: &str) -> Result<Number, String> {
    Number::parse(text).map_err(|e| crate::apply::arithmetic_error(e).0)
}

/// How DynamoDB names the kind of an expression it cannot use as a value or a tuple key.
fn kind_name(expr: &Expr) -> &'static str {
    match &expr.kind {
        ExprKind::Param(_) => "Parameter",
        ExprKind::Number(text) if text.bytes().all(|b| b.is_ascii_digit()) => "INT",
        ExprKind::Number(_) => "DECIMAL",
        ExprKind::Bool(_) => "BOOL",
        ExprKind::Null => "NULL",
        ExprKind::Missing => "MISSING",
        ExprKind::List(_) => "LIST",
        ExprKind::Bag(_) => "BAG",
        ExprKind::Struct(_) => "STRUCT",
        _ => "VariableReference",
    }
}
