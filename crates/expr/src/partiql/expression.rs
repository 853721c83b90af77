//! Expression parsing, with PartiQL's precedence (loosest first): OR, AND, NOT, then `=`, `<>`,
//! IS and IN, then `<`, `<=`, `>`, `>=`, BETWEEN and LIKE, then `+`, `-` and `||`, then `*`, `/`
//! and `%`, then unary signs. Operators DynamoDB does not evaluate still parse, so that lowering can
//! refuse them with DynamoDB's message.

use super::lexer::{self, Kind, Punct, Token};
use super::parser::{Fail, Parsed, Parser};
use super::syntax::{Expr, ExprKind, Step};

/// The names `IS` accepts, with the name DynamoDB's messages give them.
const TYPE_NAMES: [(&str, &str); 34] = [
    ("MISSING", "MISSING"),
    ("NULL", "NULL"),
    ("BOOLEAN", "BOOLEAN"),
    ("BOOL", "BOOLEAN"),
    ("BLOB", "BLOB"),
    ("STRING", "STRING"),
    ("NUMERIC", "NUMERIC"),
    ("STRUCT", "STRUCT"),
    ("TUPLE", "TUPLE"),
    ("LIST", "LIST"),
    ("BAG", "BAG"),
    ("SEXP", "SEXP"),
    ("SYMBOL", "SYMBOL"),
    ("CLOB", "CLOB"),
    ("SMALLINT", "SMALLINT"),
    ("INT2", "SMALLINT"),
    ("INTEGER2", "SMALLINT"),
    ("INT", "INTEGER"),
    ("INTEGER", "INTEGER"),
    ("INT4", "INTEGER4"),
    ("INTEGER4", "INTEGER4"),
    ("INT8", "INTEGER8"),
    ("INTEGER8", "INTEGER8"),
    ("BIGINT", "INTEGER8"),
    ("FLOAT", "FLOAT"),
    ("REAL", "REAL"),
    ("DECIMAL", "DECIMAL"),
    ("DEC", "DECIMAL"),
    ("TIMESTAMP", "TIMESTAMP"),
    ("DATE", "DATE"),
    ("TIME", "TIME"),
    ("VARCHAR", "CHARACTER_VARYING"),
    ("CHARACTER", "CHARACTER"),
    ("CHAR", "CHARACTER"),
];

/// Type names written as two words (looked for before the one-word names).
const TWO_WORD_TYPES: [(&str, &str, &str); 2] = [
    ("DOUBLE", "PRECISION", "DOUBLE_PRECISION"),
    ("CHARACTER", "VARYING", "CHARACTER_VARYING"),
];

impl Parser<'_> {
    pub fn expr(&mut self) -> Parsed<Expr> {
        let mut left = self.and()?;
        while self.at_keyword("OR") {
            let at = self.operator();
            let right = self.and()?;
            left = node(at, ExprKind::Or(Box::new(left), Box::new(right)));
        }
        Ok(left)
    }

    /// Consumes an operator token, counting it.
    fn operator(&mut self) -> Token {
        self.operators += 1;
        self.bump()
    }

    fn and(&mut self) -> Parsed<Expr> {
        let mut left = self.not()?;
        while self.at_keyword("AND") {
            let at = self.operator();
            let right = self.not()?;
            left = node(at, ExprKind::And(Box::new(left), Box::new(right)));
        }
        Ok(left)
    }

    fn not(&mut self) -> Parsed<Expr> {
        if !self.at_keyword("NOT") {
            return self.equity();
        }
        let at = self.operator();
        self.descend()?;
        let inner = self.not()?;
        self.ascend();
        Ok(node(at, ExprKind::Not(Box::new(inner))))
    }

    fn equity(&mut self) -> Parsed<Expr> {
        let mut left = self.comparison()?;
        loop {
            let next = self.peek();
            left = if let Some(op) = self.punct_operator(&[(Punct::Eq, "="), (Punct::Ne, "<>")]) {
                let at = self.operator();
                binary(at, op, left, self.comparison()?)
            } else if self.is_keyword(next, "IS") {
                self.is(left)?
            } else if self.is_keyword(next, "IN") {
                self.in_list(left, false)?
            } else if self.is_keyword(next, "NOT") && self.is_keyword(self.peek_second(), "IN") {
                self.bump();
                self.in_list(left, true)?
            } else {
                return Ok(left);
            };
        }
    }

    /// The operator text if the next token is one of `operators`.
    fn punct_operator(&self, operators: &[(Punct, &'static str)]) -> Option<&'static str> {
        operators
            .iter()
            .find(|(p, _)| self.at_punct(*p))
            .map(|(_, text)| *text)
    }

    /// `value IS [NOT] type`
    fn is(&mut self, value: Expr) -> Parsed<Expr> {
        let at = self.operator();
        let negated = self.eat_keyword("NOT");
        let type_name = self.type_name()?;
        let kind = ExprKind::Is {
            value: Box::new(value),
            type_name,
            negated,
        };
        Ok(node(at, kind))
    }

    fn type_name(&mut self) -> Parsed<String> {
        let first = self.peek();
        let second = self.peek_second();
        for (a, b, name) in TWO_WORD_TYPES {
            if self.is_keyword(first, a) && self.is_keyword(second, b) {
                self.bump();
                self.bump();
                return Ok(name.to_string());
            }
        }
        let found = TYPE_NAMES
            .iter()
            .find(|(word, _)| self.is_keyword(first, word));
        match found {
            Some((_, name)) => {
                self.bump();
                Ok(name.to_string())
            }
            None => Err(Fail::Syntax),
        }
    }

    /// `value [NOT] IN (list | [list] | value)`; the NOT is already consumed.
    fn in_list(&mut self, value: Expr, negated: bool) -> Parsed<Expr> {
        let at = self.operator();
        let close = if self.at_punct(Punct::LBracket) {
            Punct::RBracket
        } else if self.at_punct(Punct::LParen) {
            Punct::RParen
        } else {
            self.comparison()?;
            return Ok(node(at, ExprKind::InValue));
        };
        self.bump();
        let list = self.items(close)?;
        let kind = ExprKind::In {
            value: Box::new(value),
            list,
            negated,
        };
        Ok(node(at, kind))
    }

    /// `item (, item)* close`, or just `close`.
    fn items(&mut self, close: Punct) -> Parsed<Vec<Expr>> {
        self.descend()?;
        let mut items = Vec::new();
        if !self.at_punct(close) {
            items.push(self.expr()?);
            while self.at_punct(Punct::Comma) {
                self.bump();
                items.push(self.expr()?);
            }
        }
        self.expect(close)?;
        self.ascend();
        Ok(items)
    }

    fn comparison(&mut self) -> Parsed<Expr> {
        const ORDERING: [(Punct, &str); 4] = [
            (Punct::Lt, "<"),
            (Punct::Le, "<="),
            (Punct::Gt, ">"),
            (Punct::Ge, ">="),
        ];
        let mut left = self.additive()?;
        loop {
            let next = self.peek();
            let negated = self.is_keyword(next, "NOT")
                && (self.is_keyword(self.peek_second(), "BETWEEN")
                    || self.is_keyword(self.peek_second(), "LIKE"));
            if negated {
                self.bump();
            }
            left = if let Some(op) = self.punct_operator(&ORDERING) {
                let at = self.operator();
                binary(at, op, left, self.additive()?)
            } else if self.at_keyword("BETWEEN") {
                self.between(left, negated)?
            } else if self.at_keyword("LIKE") {
                let at = self.operator();
                binary(at, "like", left, self.additive()?)
            } else {
                return Ok(left);
            };
        }
    }

    fn between(&mut self, value: Expr, negated: bool) -> Parsed<Expr> {
        let at = self.operator();
        let low = self.additive()?;
        self.expect_keyword("AND")?;
        let high = self.additive()?;
        let kind = ExprKind::Between {
            value: Box::new(value),
            low: Box::new(low),
            high: Box::new(high),
            negated,
        };
        Ok(node(at, kind))
    }

    fn additive(&mut self) -> Parsed<Expr> {
        const ADDITIVE: [(Punct, &str); 3] = [
            (Punct::Plus, "+"),
            (Punct::Minus, "-"),
            (Punct::Concat, "||"),
        ];
        let mut left = self.multiplicative()?;
        while let Some(op) = self.punct_operator(&ADDITIVE) {
            let at = self.operator();
            left = binary(at, op, left, self.multiplicative()?);
        }
        Ok(left)
    }

    fn multiplicative(&mut self) -> Parsed<Expr> {
        const MULTIPLICATIVE: [(Punct, &str); 3] = [
            (Punct::Star, "*"),
            (Punct::Slash, "/"),
            (Punct::Percent, "%"),
        ];
        let mut left = self.unary()?;
        while let Some(op) = self.punct_operator(&MULTIPLICATIVE) {
            let at = self.operator();
            left = binary(at, op, left, self.unary()?);
        }
        Ok(left)
    }

    fn unary(&mut self) -> Parsed<Expr> {
        let sign = match self.peek().kind {
            Kind::Punct(Punct::Minus) => '-',
            Kind::Punct(Punct::Plus) => '+',
            _ => return self.primary(),
        };
        let at = self.bump();
        self.descend()?;
        let inner = self.unary()?;
        self.ascend();
        Ok(node(at, ExprKind::Sign(sign, Box::new(inner))))
    }

    fn primary(&mut self) -> Parsed<Expr> {
        let token = self.peek();
        let kind = match token.kind {
            Kind::Str => ExprKind::Str(lexer::unquote(self.text_of(token))),
            Kind::Number => ExprKind::Number(self.text_of(token).to_string()),
            Kind::Param => {
                self.parameters += 1;
                ExprKind::Param(self.parameters - 1)
            }
            Kind::Punct(Punct::LParen) => return self.parenthesised(),
            Kind::Punct(Punct::LBracket) => return self.collection(Punct::RBracket),
            Kind::Punct(Punct::LBag) => return self.collection(Punct::RBag),
            Kind::Punct(Punct::LBrace) => return self.tuple(),
            Kind::Word if self.peek_second().kind == Kind::Punct(Punct::LParen) => {
                return self.call();
            }
            Kind::Word | Kind::Quoted => match self.literal_keyword(token) {
                Some(kind) => kind,
                None => return self.path(),
            },
            _ => return Err(Fail::Syntax),
        };
        self.bump();
        Ok(node(token, kind))
    }

    fn literal_keyword(&self, token: Token) -> Option<ExprKind> {
        [
            ("TRUE", ExprKind::Bool(true)),
            ("FALSE", ExprKind::Bool(false)),
            ("NULL", ExprKind::Null),
            ("MISSING", ExprKind::Missing),
        ]
        .into_iter()
        .find(|(word, _)| self.is_keyword(token, word))
        .map(|(_, kind)| kind)
    }

    fn parenthesised(&mut self) -> Parsed<Expr> {
        self.bump();
        self.descend()?;
        let inner = self.expr()?;
        self.expect(Punct::RParen)?;
        self.ascend();
        Ok(inner)
    }

    /// `[...]` or `<<...>>`.
    fn collection(&mut self, close: Punct) -> Parsed<Expr> {
        let at = self.bump();
        let items = self.items(close)?;
        let kind = if close == Punct::RBag {
            ExprKind::Bag(items)
        } else {
            ExprKind::List(items)
        };
        Ok(node(at, kind))
    }

    /// `{ key : value (, key : value)* }`
    fn tuple(&mut self) -> Parsed<Expr> {
        let at = self.bump();
        self.descend()?;
        let mut entries = Vec::new();
        if !self.at_punct(Punct::RBrace) {
            loop {
                let key = self.expr()?;
                self.expect(Punct::Colon)?;
                entries.push((key, self.expr()?));
                if !self.at_punct(Punct::Comma) {
                    break;
                }
                self.bump();
            }
        }
        self.expect(Punct::RBrace)?;
        self.ascend();
        Ok(node(at, ExprKind::Struct(entries)))
    }

    /// `name(arguments)`; function names are matched without regard to case.
    fn call(&mut self) -> Parsed<Expr> {
        let at = self.bump();
        let name = self.text_of(at).to_ascii_lowercase();
        self.bump();
        self.operators += 1;
        let args = self.items(Punct::RParen)?;
        Ok(node(at, ExprKind::Call(name, args)))
    }

    /// A document path: a name, then `.name`, `[index]` or `['name']` steps.
    pub fn path(&mut self) -> Parsed<Expr> {
        let at = self.peek();
        let mut steps = vec![Step::Name(self.name()?)];
        loop {
            if self.at_punct(Punct::Dot) {
                self.bump();
                if self.at_punct(Punct::Star) && self.in_projection {
                    return Err(Fail::Refused(
                        "Changing item's hierarchy while reading isn't supported".into(),
                    ));
                }
                if self.at_punct(Punct::Star) {
                    return self.refuse_at(
                        "Unpivot path component like a.*.b are not supported",
                        self.peek(),
                    );
                }
                steps.push(Step::Name(self.name()?));
            } else if self.at_punct(Punct::LBracket) {
                self.bump();
                steps.push(self.bracket_step()?);
                self.expect(Punct::RBracket)?;
            } else {
                return Ok(node(at, ExprKind::Path(steps)));
            }
        }
    }

    /// What follows `[` in a path: an index or a quoted map key.
    fn bracket_step(&mut self) -> Parsed<Step> {
        let token = self.peek();
        match token.kind {
            Kind::Number if self.text_of(token).bytes().all(|b| b.is_ascii_digit()) => {
                self.bump();
                Ok(Step::Index(self.text_of(token).to_string()))
            }
            Kind::Str => {
                self.bump();
                Ok(Step::Name(lexer::unquote(self.text_of(token))))
            }
            Kind::Punct(Punct::Star) => self.refuse_at(
                "Wildcard path component like a[*].b are not supported",
                token,
            ),
            Kind::Punct(Punct::Minus) if self.peek_second().kind == Kind::Number => {
                let number = self.peek_second();
                let message = format!(
                    "List index is not within the allowable range; index: [-{}]",
                    self.text_of(number)
                );
                self.refuse_at(&message, number)
            }
            _ => Err(Fail::Syntax),
        }
    }
}

fn node(at: Token, kind: ExprKind) -> Expr {
    Expr { kind, at }
}

fn binary(at: Token, op: &'static str, left: Expr, right: Expr) -> Expr {
    node(at, ExprKind::Binary(op, Box::new(left), Box::new(right)))
}
