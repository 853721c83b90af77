//! Statement-level parsing: SELECT, INSERT, UPDATE, DELETE and EXISTS, with the clauses DynamoDB
//! accepts. Constructs DynamoDB recognises but refuses (aliases, LIMIT, DISTINCT, several tables)
//! stop the parse with DynamoDB's own message; anything else unexpected is a syntax error, which
//! DynamoDB reports without detail.

use super::lexer::{self, Kind, Punct, Token};
use super::syntax::{Expr, RawAssignment, RawSelect, RawStatement, Returning, Source};
use crate::parser::Nesting;

/// Deeper nesting (parentheses, NOT, literals, function arguments) is refused before the stack is
/// at risk; DynamoDB's own limit on values (32 levels) is far below it.
const MAX_DEPTH: usize = 100;

/// Why parsing stopped.
#[derive(Debug)]
pub(crate) enum Fail {
    Syntax,
    /// A construct DynamoDB refuses, with its message.
    Refused(String),
    TooDeep,
}

pub(crate) type Parsed<T> = Result<T, Fail>;

/// A statement and what its parse counted.
pub(crate) struct ParsedStatement {
    pub statement: RawStatement,
    /// How many `?` it has.
    pub parameters: usize,
    /// Operators and functions, as the expression language counts them.
    pub operators: usize,
}

pub(crate) struct Parser<'t> {
    pub text: &'t str,
    tokens: Vec<Token>,
    pos: usize,
    nesting: Nesting,
    pub parameters: usize,
    pub operators: usize,
    /// Whether the select list is being parsed (`a.*` is refused in its own words there).
    pub in_projection: bool,
}

/// Parses a whole statement.
pub(crate) fn parse(text: &str) -> Parsed<ParsedStatement> {
    let mut parser = Parser {
        text,
        tokens: lexer::tokenize(text),
        pos: 0,
        nesting: Nesting::new(MAX_DEPTH),
        parameters: 0,
        operators: 0,
        in_projection: false,
    };
    let statement = parser.statement()?;
    Ok(ParsedStatement {
        statement,
        parameters: parser.parameters,
        operators: parser.operators,
    })
}

impl Parser<'_> {
    pub fn peek(&self) -> Token {
        self.tokens[self.pos]
    }

    pub fn peek_second(&self) -> Token {
        self.tokens[(self.pos + 1).min(self.tokens.len() - 1)]
    }

    pub fn text_of(&self, token: Token) -> &str {
        &self.text[token.start..token.end]
    }

    /// Consumes the current token.
    pub fn bump(&mut self) -> Token {
        let token = self.peek();
        if token.kind != Kind::Eof {
            self.pos += 1;
        }
        token
    }

    pub fn at_punct(&self, p: Punct) -> bool {
        self.peek().kind == Kind::Punct(p)
    }

    pub fn expect(&mut self, p: Punct) -> Parsed<Token> {
        if self.at_punct(p) {
            Ok(self.bump())
        } else {
            Err(Fail::Syntax)
        }
    }

    /// Whether `token` is the keyword `word` (written in capitals here).
    pub fn is_keyword(&self, token: Token, word: &str) -> bool {
        token.kind == Kind::Word && self.text_of(token).eq_ignore_ascii_case(word)
    }

    pub fn at_keyword(&self, word: &str) -> bool {
        self.is_keyword(self.peek(), word)
    }

    /// Consumes the keyword `word` if it is next.
    pub fn eat_keyword(&mut self, word: &str) -> bool {
        let found = self.at_keyword(word);
        if found {
            self.bump();
        }
        found
    }

    pub fn expect_keyword(&mut self, word: &str) -> Parsed<Token> {
        if self.at_keyword(word) {
            Ok(self.bump())
        } else {
            Err(Fail::Syntax)
        }
    }

    /// A word that is not reserved, or a quoted name.
    pub fn at_name(&self) -> bool {
        let token = self.peek();
        match token.kind {
            Kind::Word => !lexer::is_keyword(self.text_of(token)),
            Kind::Quoted => true,
            _ => false,
        }
    }

    /// Consumes a name (see [`Parser::at_name`]) and returns it unquoted.
    pub fn name(&mut self) -> Parsed<String> {
        if !self.at_name() {
            return Err(Fail::Syntax);
        }
        let token = self.bump();
        let text = self.text_of(token);
        Ok(match token.kind {
            Kind::Quoted => lexer::unquote(text),
            _ => text.to_string(),
        })
    }

    /// `message at line:column:length` for the token.
    pub fn refuse_at<T>(&self, message: &str, token: Token) -> Parsed<T> {
        Err(Fail::Refused(format!(
            "{message} at {}",
            token.position(self.text)
        )))
    }

    /// Enters one level of nesting.
    pub fn descend(&mut self) -> Parsed<()> {
        match self.nesting.enter() {
            true => Ok(()),
            false => Err(Fail::TooDeep),
        }
    }

    pub fn ascend(&mut self) {
        self.nesting.leave();
    }

    fn statement(&mut self) -> Parsed<RawStatement> {
        let first = self.peek();
        let statement = if self.is_keyword(first, "SELECT") {
            RawStatement::Select(self.select()?)
        } else if self.is_keyword(first, "INSERT") {
            self.insert()?
        } else if self.is_keyword(first, "UPDATE") {
            self.update()?
        } else if self.is_keyword(first, "DELETE") {
            self.delete()?
        } else if self.is_keyword(first, "EXISTS") {
            self.bump();
            self.expect(Punct::LParen)?;
            let select = self.select()?;
            self.expect(Punct::RParen)?;
            RawStatement::Exists(select)
        } else {
            return Err(Fail::Syntax);
        };
        if self.at_punct(Punct::Semicolon) {
            self.bump();
        }
        match self.peek().kind {
            Kind::Eof => Ok(statement),
            _ => Err(Fail::Syntax),
        }
    }

    fn select(&mut self) -> Parsed<RawSelect> {
        self.expect_keyword("SELECT")?;
        let projection = self.projection()?;
        self.expect_keyword("FROM")?;
        let source = self.source()?;
        self.refuse_alias()?;
        if self.at_punct(Punct::Comma) {
            return Err(Fail::Refused(
                "Only select from a single table or index is supported.".into(),
            ));
        }
        let condition = self.where_clause()?;
        let order_by = self.order_by()?;
        if self.at_keyword("LIMIT") || self.at_keyword("OFFSET") {
            let keyword = self.bump();
            let clause = self.text_of(keyword).to_ascii_uppercase();
            return self.refuse_at(&format!("Unsupported clause: {clause}"), self.peek());
        }
        Ok(RawSelect {
            projection,
            source,
            condition,
            order_by,
        })
    }

    /// `*` or a list of paths.
    fn projection(&mut self) -> Parsed<Option<Vec<Expr>>> {
        if self.at_keyword("VALUE") || self.at_keyword("PIVOT") {
            return Err(Fail::Refused(
                "Select projection doesn't support value or pivot keywords".into(),
            ));
        }
        if self.at_keyword("DISTINCT") || self.at_keyword("ALL") {
            let word = self.text_of(self.peek()).to_ascii_uppercase();
            return Err(Fail::Refused(format!(
                "Unsupported token in expression: {word}"
            )));
        }
        if self.at_punct(Punct::Star) {
            self.bump();
            return Ok(None);
        }
        let mut items = Vec::new();
        self.in_projection = true;
        loop {
            let first = self.peek();
            if first.kind == Kind::Word && self.peek_second().kind == Kind::Punct(Punct::LParen) {
                return self.refuse_at("Unexpected path component", first);
            }
            let item = self.expr()?;
            if item.as_path().is_none() {
                return self.refuse_at("Unexpected path component", first);
            }
            self.refuse_alias()?;
            items.push(item);
            if !self.at_punct(Punct::Comma) {
                self.in_projection = false;
                return Ok(Some(items));
            }
            self.bump();
        }
    }

    /// `AS name`, or a name right after an item or table, is an alias.
    fn refuse_alias(&self) -> Parsed<()> {
        if self.at_keyword("AS") || self.at_name() {
            return Err(Fail::Refused("Aliasing is not supported".into()));
        }
        Ok(())
    }

    /// `table` or `table.index`, each a name.
    fn source(&mut self) -> Parsed<Source> {
        if self.peek().kind == Kind::Str {
            return Err(Fail::Refused("Unexpected from source".into()));
        }
        let table = self.name()?;
        let mut index = None;
        while self.at_punct(Punct::Dot) {
            self.bump();
            let name = self.name()?;
            if index.is_some() {
                return Err(Fail::Refused(
                    "A path may contain at most 2 components in the FROM clause".into(),
                ));
            }
            index = Some(name);
        }
        Ok(Source { table, index })
    }

    fn where_clause(&mut self) -> Parsed<Option<Expr>> {
        if !self.eat_keyword("WHERE") {
            return Ok(None);
        }
        Ok(Some(self.expr()?))
    }

    fn order_by(&mut self) -> Parsed<Vec<(Expr, bool)>> {
        let mut keys = Vec::new();
        if !self.eat_keyword("ORDER") {
            return Ok(keys);
        }
        self.expect_keyword("BY")?;
        loop {
            let key = self.expr()?;
            let descending = if self.eat_keyword("DESC") {
                true
            } else {
                self.eat_keyword("ASC");
                false
            };
            keys.push((key, descending));
            if !self.at_punct(Punct::Comma) {
                return Ok(keys);
            }
            self.bump();
        }
    }

    fn insert(&mut self) -> Parsed<RawStatement> {
        self.expect_keyword("INSERT")?;
        self.expect_keyword("INTO")?;
        let target = self.source()?;
        self.expect_keyword("VALUE")?;
        let item = self.expr()?;
        if self.returning()?.is_some() {
            return Err(Fail::Refused("RETURNING is not supported in INSERT".into()));
        }
        if target.index.is_some() {
            return Err(Fail::Refused(
                "FROM clause may only contain a single table name in data manipulation statements"
                    .into(),
            ));
        }
        Ok(RawStatement::Insert { target, item })
    }

    fn update(&mut self) -> Parsed<RawStatement> {
        self.expect_keyword("UPDATE")?;
        let target = self.source()?;
        let mut actions = Vec::new();
        loop {
            if self.eat_keyword("SET") {
                self.assignments(&mut actions)?;
            } else if self.eat_keyword("REMOVE") {
                actions.push(RawAssignment::Remove(self.path()?));
            } else if actions.is_empty() {
                return Err(Fail::Syntax);
            } else {
                break;
            }
        }
        let condition = self.where_clause()?;
        let returning = self.returning()?;
        Ok(RawStatement::Update {
            target,
            actions,
            condition,
            returning,
        })
    }

    /// `path = value (, path = value)*`
    fn assignments(&mut self, actions: &mut Vec<RawAssignment>) -> Parsed<()> {
        loop {
            let path = self.path()?;
            self.expect(Punct::Eq)?;
            actions.push(RawAssignment::Set(path, self.expr()?));
            if !self.at_punct(Punct::Comma) {
                return Ok(());
            }
            self.bump();
        }
    }

    fn delete(&mut self) -> Parsed<RawStatement> {
        self.expect_keyword("DELETE")?;
        self.expect_keyword("FROM")?;
        let target = self.source()?;
        let condition = self.where_clause()?;
        let returning = self.returning()?;
        Ok(RawStatement::Delete {
            target,
            condition,
            returning,
        })
    }

    /// `RETURNING (ALL|MODIFIED) (OLD|NEW) *`
    fn returning(&mut self) -> Parsed<Option<Returning>> {
        if !self.eat_keyword("RETURNING") {
            return Ok(None);
        }
        let modified = if self.eat_keyword("MODIFIED") {
            true
        } else {
            self.expect_keyword("ALL")?;
            false
        };
        let new = if self.eat_keyword("NEW") {
            true
        } else {
            self.expect_keyword("OLD")?;
            false
        };
        self.expect(Punct::Star)?;
        Ok(Some(match (modified, new) {
            (false, false) => Returning::AllOld,
            (true, false) => Returning::ModifiedOld,
            (false, true) => Returning::AllNew,
            (true, true) => Returning::ModifiedNew,
        }))
    }
}
