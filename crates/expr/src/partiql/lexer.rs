//! PartiQL's tokens as DynamoDB reads them: words (identifiers or keywords), `"quoted"`
//! identifiers, `'string'` literals, numbers, `?` parameters and punctuation, with `--` and
//! `/* */` comments skipped. DynamoDB's semantic messages point at a token as
//! `line:column:length` (1-based, in characters), so every token keeps where it starts.

use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An identifier or a keyword (see [`is_keyword`]).
    Word,
    /// `"name"`: an identifier that may be a keyword or hold any character.
    Quoted,
    /// `'text'`
    Str,
    Number,
    /// `?`
    Param,
    Punct(Punct),
    /// A character no token starts with, or an unterminated literal or comment.
    Unknown,
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Punct {
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    /// `<<`, which opens a bag (a set).
    LBag,
    /// `>>`
    RBag,
    Comma,
    Dot,
    Colon,
    Star,
    Semicolon,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    /// `||`
    Concat,
    Slash,
    Percent,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    pub kind: Kind,
    /// Byte range in the statement.
    pub start: usize,
    pub end: usize,
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
}

impl Token {
    /// DynamoDB's `line:column:length` for this token.
    pub fn position(&self, text: &str) -> String {
        let length = text[self.start..self.end].chars().count();
        format!("{}:{}:{length}", self.line, self.column)
    }
}

/// PartiQL's reserved words (SQL-92's and PartiQL's own), one upper-case word a line: they can only
/// name an attribute or a table when quoted.
const KEYWORDS: &str = include_str!("keywords.txt");

pub(crate) fn is_keyword(word: &str) -> bool {
    static SORTED: LazyLock<Vec<&str>> = LazyLock::new(|| KEYWORDS.lines().collect());
    SORTED
        .binary_search(&word.to_ascii_uppercase().as_str())
        .is_ok()
}

fn is_word_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'$'
}

fn is_word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$'
}

/// Splits `text` into tokens, always ending with one `Eof` token.
pub(crate) fn tokenize(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut at = Place::default();
    while at.byte < bytes.len() {
        if let Some(end) = skip_blank(bytes, at.byte) {
            at.advance_to(text, end);
            continue;
        }
        let (kind, end) = token_at(text, at.byte);
        tokens.push(Token {
            kind,
            start: at.byte,
            end,
            line: at.line,
            column: at.column,
        });
        at.advance_to(text, end);
    }
    tokens.push(Token {
        kind: Kind::Eof,
        start: text.len(),
        end: text.len(),
        line: at.line,
        column: at.column,
    });
    tokens
}

/// Where the lexer is: a byte offset and its line and column.
struct Place {
    byte: usize,
    line: usize,
    column: usize,
}

impl Default for Place {
    fn default() -> Place {
        Place {
            byte: 0,
            line: 1,
            column: 1,
        }
    }
}

impl Place {
    fn advance_to(&mut self, text: &str, end: usize) {
        for c in text[self.byte..end].chars() {
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
        self.byte = end;
    }
}

/// The end of the whitespace or comment at `i`, if one starts there. An unterminated block comment
/// is not skipped: it lexes as an unknown token.
fn skip_blank(bytes: &[u8], i: usize) -> Option<usize> {
    match (bytes[i], bytes.get(i + 1)) {
        (b' ' | b'\t' | b'\r' | b'\n', _) => Some(i + 1),
        (b'-', Some(b'-')) => Some(
            bytes[i..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(bytes.len(), |p| i + p),
        ),
        (b'/', Some(b'*')) => bytes[i + 2..]
            .windows(2)
            .position(|w| w == b"*/")
            .map(|p| i + 2 + p + 2),
        _ => None,
    }
}

fn token_at(text: &str, i: usize) -> (Kind, usize) {
    let bytes = text.as_bytes();
    let c = bytes[i];
    match c {
        _ if is_word_start(c) => (Kind::Word, run(bytes, i + 1, is_word_char)),
        b'0'..=b'9' => (Kind::Number, number_end(bytes, i)),
        b'.' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
            (Kind::Number, number_end(bytes, i))
        }
        b'\'' => {
            quoted_end(bytes, i, b'\'').map_or((Kind::Unknown, text.len()), |e| (Kind::Str, e))
        }
        b'"' => {
            quoted_end(bytes, i, b'"').map_or((Kind::Unknown, text.len()), |e| (Kind::Quoted, e))
        }
        b'?' => (Kind::Param, i + 1),
        _ => punct(bytes, i).unwrap_or_else(|| {
            let width = text[i..].chars().next().map_or(1, char::len_utf8);
            (Kind::Unknown, i + width)
        }),
    }
}

fn run(bytes: &[u8], mut i: usize, accept: fn(u8) -> bool) -> usize {
    while i < bytes.len() && accept(bytes[i]) {
        i += 1;
    }
    i
}

/// `digits [. digits] [e [+-] digits]` or `. digits [...]`; an exponent without digits is not part
/// of the number (the `e` then lexes as a word, and the statement fails to parse).
fn number_end(bytes: &[u8], i: usize) -> usize {
    let mut end = run(bytes, i, |b| b.is_ascii_digit());
    if bytes.get(end) == Some(&b'.') {
        end = run(bytes, end + 1, |b| b.is_ascii_digit());
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut digits = end + 1;
        if matches!(bytes.get(digits), Some(b'+' | b'-')) {
            digits += 1;
        }
        let exponent_end = run(bytes, digits, |b| b.is_ascii_digit());
        if exponent_end > digits {
            end = exponent_end;
        }
    }
    end
}

/// The end of a literal quoted with `quote` (doubled inside to stand for itself), if it ends.
fn quoted_end(bytes: &[u8], i: usize, quote: u8) -> Option<usize> {
    let mut j = i + 1;
    while j < bytes.len() {
        if bytes[j] == quote {
            if bytes.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

/// The text of a quoted literal or identifier token, its doubled quotes undone.
pub(crate) fn unquote(token_text: &str) -> String {
    let quote = &token_text[..1];
    token_text[1..token_text.len() - 1].replace(&quote.repeat(2), quote)
}

fn punct(bytes: &[u8], i: usize) -> Option<(Kind, usize)> {
    let next = bytes.get(i + 1).copied();
    let (p, width) = match (bytes[i], next) {
        (b'<', Some(b'>')) => (Punct::Ne, 2),
        (b'!', Some(b'=')) => (Punct::Ne, 2),
        (b'<', Some(b'=')) => (Punct::Le, 2),
        (b'>', Some(b'=')) => (Punct::Ge, 2),
        (b'<', Some(b'<')) => (Punct::LBag, 2),
        (b'>', Some(b'>')) => (Punct::RBag, 2),
        (b'|', Some(b'|')) => (Punct::Concat, 2),
        (b'<', _) => (Punct::Lt, 1),
        (b'>', _) => (Punct::Gt, 1),
        (b'=', _) => (Punct::Eq, 1),
        (b'(', _) => (Punct::LParen, 1),
        (b')', _) => (Punct::RParen, 1),
        (b'[', _) => (Punct::LBracket, 1),
        (b']', _) => (Punct::RBracket, 1),
        (b'{', _) => (Punct::LBrace, 1),
        (b'}', _) => (Punct::RBrace, 1),
        (b',', _) => (Punct::Comma, 1),
        (b'.', _) => (Punct::Dot, 1),
        (b':', _) => (Punct::Colon, 1),
        (b'*', _) => (Punct::Star, 1),
        (b';', _) => (Punct::Semicolon, 1),
        (b'+', _) => (Punct::Plus, 1),
        (b'-', _) => (Punct::Minus, 1),
        (b'/', _) => (Punct::Slash, 1),
        (b'%', _) => (Punct::Percent, 1),
        _ => return None,
    };
    Some((Kind::Punct(p), i + width))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind> {
        tokenize(text).into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn literals_identifiers_and_comments() {
        assert_eq!(
            kinds("SELECT \"a b\" FROM t -- note\nWHERE x = 'it''s' AND n = 1.5e3 /* c */ ?"),
            vec![
                Kind::Word,
                Kind::Quoted,
                Kind::Word,
                Kind::Word,
                Kind::Word,
                Kind::Word,
                Kind::Punct(Punct::Eq),
                Kind::Str,
                Kind::Word,
                Kind::Word,
                Kind::Punct(Punct::Eq),
                Kind::Number,
                Kind::Param,
                Kind::Eof
            ]
        );
        assert_eq!(unquote("'it''s'"), "it's");
        assert_eq!(unquote("\"a\"\"b\""), "a\"b");
    }

    #[test]
    fn numbers_stop_where_the_syntax_does() {
        let texts = |text: &str| -> Vec<String> {
            tokenize(text)
                .iter()
                .map(|t| text[t.start..t.end].to_string())
                .collect()
        };
        assert_eq!(texts("1e"), ["1", "e", ""]);
        assert_eq!(texts("1.2.3"), ["1.2", ".3", ""]);
        assert_eq!(texts(".5 5. 1E-3"), [".5", "5.", "1E-3", ""]);
    }

    #[test]
    fn bags_and_unterminated_literals() {
        assert_eq!(
            kinds("<<'a'>> 'open"),
            vec![
                Kind::Punct(Punct::LBag),
                Kind::Str,
                Kind::Punct(Punct::RBag),
                Kind::Unknown,
                Kind::Eof
            ]
        );
        // An unterminated comment is not skipped: its characters lex as tokens the parser refuses.
        assert_eq!(
            kinds("/* open"),
            vec![
                Kind::Punct(Punct::Slash),
                Kind::Punct(Punct::Star),
                Kind::Word,
                Kind::Eof
            ]
        );
    }

    #[test]
    fn positions_count_characters_per_line() {
        let text = "SELECT *\n  FROM 'é'";
        let tokens = tokenize(text);
        assert_eq!(tokens[3].position(text), "2:8:3");
        assert!(is_keyword("select") && is_keyword("Value") && !is_keyword("name"));
    }
}
