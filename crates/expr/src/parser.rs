//! Pieces every expression parser shares: a token cursor that produces DynamoDB's syntax errors,
//! document-path syntax, limits, and the ranked collection of semantic errors (DynamoDB reports one
//! error per request, chosen by category, not by position).

use crate::lexer::{self, Kind, Punct, Token};
use crate::{ExprError, Path, PathElement, Placeholders, reserved};

/// Longest expression DynamoDB accepts, in UTF-16 code units (Java characters).
pub(crate) const MAX_EXPRESSION_SIZE: usize = 4096;
/// Most operators and functions one expression may contain.
pub(crate) const MAX_OPERATORS: usize = 300;
/// Nesting beyond this is refused before the stack is at risk. Every level of a legal expression
/// needs an operator, so only expressions with redundant parentheses or more than
/// [`MAX_OPERATORS`] operators get there.
const MAX_DEPTH: usize = 300;

/// Why parsing stopped.
pub(crate) enum Fail {
    Syntax(String),
    RedundantParens,
    TooDeep,
}

pub(crate) type Parsed<T> = Result<T, Fail>;

/// A path as written, before placeholders are substituted.
#[derive(Debug, Clone)]
pub(crate) struct RawPath(pub Vec<RawElement>);

#[derive(Debug, Clone)]
pub(crate) enum RawElement {
    Identifier(String),
    Name(String),
    /// A name that is not subject to DynamoDB's reserved words (PartiQL names its attributes
    /// directly).
    Verbatim(String),
    /// The digits as written; range-checked when resolved.
    Index(String),
}

/// How deep a parse is nested, refused past a limit before the stack is at risk.
pub(crate) struct Nesting {
    depth: usize,
    limit: usize,
}

impl Nesting {
    pub fn new(limit: usize) -> Nesting {
        Nesting { depth: 0, limit }
    }

    /// Enters one level; false once past the limit.
    pub fn enter(&mut self) -> bool {
        self.depth += 1;
        self.depth <= self.limit
    }

    pub fn leave(&mut self) {
        self.depth -= 1;
    }
}

pub(crate) struct Cursor<'t> {
    text: &'t str,
    tokens: Vec<Token>,
    pos: usize,
    nesting: Nesting,
    operators: usize,
}

impl<'t> Cursor<'t> {
    pub fn new(text: &'t str) -> Cursor<'t> {
        Cursor {
            text,
            tokens: lexer::tokenize(text),
            pos: 0,
            nesting: Nesting::new(MAX_DEPTH),
            operators: 0,
        }
    }

    pub fn peek(&self) -> Kind {
        self.tokens[self.pos].kind
    }

    pub fn peek_second(&self) -> Kind {
        self.tokens.get(self.pos + 1).map_or(Kind::Eof, |t| t.kind)
    }

    pub fn at_punct(&self, p: Punct) -> bool {
        self.peek() == Kind::Punct(p)
    }

    /// Consumes the current token and returns its text.
    pub fn bump(&mut self) -> &'t str {
        let token = self.tokens[self.pos];
        if token.kind != Kind::Eof {
            self.pos += 1;
        }
        &self.text[token.start..token.end]
    }

    pub fn error<T>(&self) -> Parsed<T> {
        Err(Fail::Syntax(lexer::syntax_error(
            self.text,
            &self.tokens,
            self.pos,
        )))
    }

    pub fn expect(&mut self, p: Punct) -> Parsed<()> {
        if self.at_punct(p) {
            self.bump();
            Ok(())
        } else {
            self.error()
        }
    }

    pub fn expect_eof(&self) -> Parsed<()> {
        if self.peek() == Kind::Eof {
            Ok(())
        } else {
            self.error()
        }
    }

    /// Enters one level of nesting (parentheses, function arguments).
    pub fn descend(&mut self) -> Parsed<()> {
        match self.nesting.enter() {
            true => Ok(()),
            false => Err(Fail::TooDeep),
        }
    }

    pub fn ascend(&mut self) {
        self.nesting.leave();
    }

    /// Parentheses directly around other parentheses: DynamoDB stops at the closing one, so this
    /// error wins over anything later in the text, syntax errors included.
    pub fn redundant_parens<T>(&self) -> Parsed<T> {
        Err(Fail::RedundantParens)
    }

    /// Counts one operator or function call towards [`MAX_OPERATORS`].
    pub fn count_operator(&mut self) {
        self.operators += 1;
    }

    /// DynamoDB's error when the parsed text has too many operators (checked after a clean parse:
    /// syntax errors outrank it).
    pub fn check_operators(&self, prefix: &str) -> Result<(), ExprError> {
        if self.operators > MAX_OPERATORS {
            return Err(ExprError(format!("{prefix}: {}", too_many_operators())));
        }
        Ok(())
    }

    /// How many operator and function tokens the whole text holds (used to word a nesting failure).
    pub fn operator_tokens(&self) -> usize {
        self.tokens
            .windows(2)
            .filter(|w| match (w[0].kind, w[1].kind) {
                (Kind::Identifier, Kind::Punct(Punct::LParen)) => true,
                (Kind::Keyword(_), _) => true,
                (Kind::Punct(p), _) => !matches!(
                    p,
                    Punct::LParen
                        | Punct::RParen
                        | Punct::LBracket
                        | Punct::RBracket
                        | Punct::Comma
                        | Punct::Dot
                ),
                _ => false,
            })
            .count()
    }

    /// `name ('.' name | '[' digits ']')*` where a name is an identifier or a `#placeholder`.
    pub fn path(&mut self) -> Parsed<RawPath> {
        let mut elements = vec![self.path_name()?];
        loop {
            if self.at_punct(Punct::Dot) {
                self.bump();
                elements.push(self.path_name()?);
            } else if self.at_punct(Punct::LBracket) {
                self.bump();
                if self.peek() != Kind::Number {
                    return self.error();
                }
                elements.push(RawElement::Index(self.bump().to_string()));
                self.expect(Punct::RBracket)?;
            } else {
                return Ok(RawPath(elements));
            }
        }
    }

    fn path_name(&mut self) -> Parsed<RawElement> {
        match self.peek() {
            Kind::Identifier => Ok(RawElement::Identifier(self.bump().to_string())),
            Kind::Name => Ok(RawElement::Name(self.bump().to_string())),
            _ => self.error(),
        }
    }
}

/// Semantic errors found while lowering a parse tree, kept by rank: the lowest rank wins, and within
/// a rank the first one found (in text order).
#[derive(Default)]
pub(crate) struct Diagnostics {
    found: Vec<(u8, String)>,
}

impl Diagnostics {
    pub fn report(&mut self, rank: u8, message: impl Into<String>) {
        if !self.found.iter().any(|(r, _)| *r == rank) {
            self.found.push((rank, message.into()));
        }
    }

    /// The errors found, in the order reported.
    pub fn into_entries(self) -> Vec<(u8, String)> {
        self.found
    }

    /// The error DynamoDB would report, prefixed with the expression kind (PartiQL's statements
    /// report it without a prefix).
    pub fn into_result(self, prefix: Option<&str>) -> Result<(), ExprError> {
        match self.found.into_iter().min_by_key(|(rank, _)| *rank) {
            Some((_, message)) => Err(ExprError(match prefix {
                Some(prefix) => format!("{prefix}: {message}"),
                None => message,
            })),
            None => Ok(()),
        }
    }
}

/// Largest list index DynamoDB accepts.
const MAX_LIST_INDEX: usize = i32::MAX as usize;
/// Most elements a document path may have.
pub(crate) const MAX_PATH_DEPTH: usize = 32;

/// Ranks of the errors path resolution reports; each parser passes its own.
pub(crate) struct PathRanks {
    /// Reserved words and list indexes out of range.
    pub reserved: u8,
    pub undefined_name: u8,
    /// Paths deeper than DynamoDB allows.
    pub nesting: u8,
}

/// Substitutes `#names`, reporting reserved words and undefined placeholders.
pub(crate) fn resolve_path(
    raw: &RawPath,
    placeholders: &mut Placeholders,
    diagnostics: &mut Diagnostics,
    ranks: &PathRanks,
) -> Path {
    let elements = raw
        .0
        .iter()
        .map(|element| match element {
            RawElement::Identifier(word) => {
                if reserved::is_reserved(word) {
                    diagnostics.report(
                        ranks.reserved,
                        format!("Attribute name is a reserved keyword; reserved keyword: {word}"),
                    );
                }
                PathElement::Name(word.clone())
            }
            RawElement::Verbatim(name) => PathElement::Name(name.clone()),
            RawElement::Name(placeholder) => {
                PathElement::Name(placeholders.name(placeholder).unwrap_or_else(|| {
                    diagnostics.report(
                        ranks.undefined_name,
                        format!("An expression attribute name used in the document path is not defined; attribute name: {placeholder}"),
                    );
                    String::new()
                }))
            }
            RawElement::Index(digits) => {
                let index = digits.parse().ok().filter(|i| *i <= MAX_LIST_INDEX);
                PathElement::Index(index.unwrap_or_else(|| {
                    diagnostics.report(
                        ranks.reserved,
                        format!("List index is not within the allowable range; index: [{digits}]"),
                    );
                    0
                }))
            }
        })
        .collect::<Vec<_>>();
    if elements.len() > MAX_PATH_DEPTH {
        diagnostics.report(
            ranks.nesting,
            format!(
                "The document path has too many nesting levels; nesting levels: {}",
                elements.len()
            ),
        );
    }
    Path(elements)
}

/// The message for a `:value` that is not in ExpressionAttributeValues.
pub(crate) fn undefined_value(placeholder: &str) -> String {
    format!(
        "An expression attribute value used in expression is not defined; attribute value: {placeholder}"
    )
}

/// Checks done before any parsing: emptiness and size. `prefix` is e.g. "Invalid UpdateExpression";
/// DynamoDB states the size for conditions but not for update and projection expressions.
pub(crate) fn check_text(text: &str, prefix: &str, state_size: bool) -> Result<(), ExprError> {
    if text.is_empty() {
        return Err(ExprError(format!(
            "{prefix}: The expression can not be empty;"
        )));
    }
    let length = text.encode_utf16().count();
    if length > MAX_EXPRESSION_SIZE {
        let size = if state_size {
            format!(" expression size: {length}")
        } else {
            String::new()
        };
        return Err(ExprError(format!(
            "{prefix}: Expression size has exceeded the maximum allowed size;{size}"
        )));
    }
    Ok(())
}

pub(crate) fn too_many_operators() -> String {
    format!(
        "The expression contains too many operators; operator count: {}",
        MAX_OPERATORS + 1
    )
}

const REDUNDANT_PARENS: &str = "The expression has redundant parentheses;";

/// Turns a parse failure into the request's error.
pub(crate) fn fail_to_error(fail: Fail, cursor: &Cursor, prefix: &str) -> ExprError {
    let message = match fail {
        Fail::Syntax(message) => message,
        Fail::RedundantParens => REDUNDANT_PARENS.to_string(),
        Fail::TooDeep if cursor.operator_tokens() > MAX_OPERATORS => too_many_operators(),
        Fail::TooDeep => REDUNDANT_PARENS.to_string(),
    };
    ExprError(format!("{prefix}: {message}"))
}
