//! The tokenizer shared by every expression kind. DynamoDB reports syntax errors with the offending
//! token and its neighbours ("near"), so tokens keep their byte spans into the source text.

/// What a token is. Keywords are recognised case-insensitively in every expression kind, which is why
/// `remove = a` is a syntax error even inside a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Identifier,
    /// `#name`
    Name,
    /// `:value`
    Value,
    /// A run of decimal digits (only meaningful as a list index).
    Number,
    Keyword(Keyword),
    Punct(Punct),
    /// A character no token starts with; the parser always rejects it.
    Unknown,
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    And,
    Or,
    Not,
    Between,
    In,
    Set,
    Remove,
    Add,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Punct {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

fn keyword(word: &str) -> Option<Keyword> {
    const KEYWORDS: [(&str, Keyword); 9] = [
        ("AND", Keyword::And),
        ("OR", Keyword::Or),
        ("NOT", Keyword::Not),
        ("BETWEEN", Keyword::Between),
        ("IN", Keyword::In),
        ("SET", Keyword::Set),
        ("REMOVE", Keyword::Remove),
        ("ADD", Keyword::Add),
        ("DELETE", Keyword::Delete),
    ];
    KEYWORDS
        .iter()
        .find(|(text, _)| word.eq_ignore_ascii_case(text))
        .map(|(_, k)| *k)
}

fn is_word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Splits `text` into tokens, always ending with one `Eof` token.
pub(crate) fn tokenize(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
            continue;
        }
        let start = i;
        let word_end = |from: usize| {
            let mut j = from;
            while j < bytes.len() && is_word_char(bytes[j]) {
                j += 1;
            }
            j
        };
        let (kind, end) = match c {
            b'a'..=b'z' | b'A'..=b'Z' => {
                let end = word_end(i);
                let kind = keyword(&text[start..end]).map_or(Kind::Identifier, Kind::Keyword);
                (kind, end)
            }
            // A number has no leading zero: `01` is the two tokens `0` and `1`.
            b'0' => (Kind::Number, i + 1),
            b'1'..=b'9' => {
                let mut j = i;
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                (Kind::Number, j)
            }
            b'#' | b':' if i + 1 < bytes.len() && is_word_char(bytes[i + 1]) => {
                let kind = if c == b'#' { Kind::Name } else { Kind::Value };
                (kind, word_end(i + 1))
            }
            _ => punct(bytes, i).unwrap_or_else(|| {
                let width = text[i..].chars().next().map_or(1, char::len_utf8);
                (Kind::Unknown, i + width)
            }),
        };
        tokens.push(Token { kind, start, end });
        i = end;
    }
    tokens.push(Token {
        kind: Kind::Eof,
        start: text.len(),
        end: text.len(),
    });
    tokens
}

fn punct(bytes: &[u8], i: usize) -> Option<(Kind, usize)> {
    let next = bytes.get(i + 1).copied();
    let (p, width) = match (bytes[i], next) {
        (b'<', Some(b'>')) => (Punct::Ne, 2),
        (b'<', Some(b'=')) => (Punct::Le, 2),
        (b'>', Some(b'=')) => (Punct::Ge, 2),
        (b'<', _) => (Punct::Lt, 1),
        (b'>', _) => (Punct::Gt, 1),
        (b'=', _) => (Punct::Eq, 1),
        (b'(', _) => (Punct::LParen, 1),
        (b')', _) => (Punct::RParen, 1),
        (b'[', _) => (Punct::LBracket, 1),
        (b']', _) => (Punct::RBracket, 1),
        (b',', _) => (Punct::Comma, 1),
        (b'.', _) => (Punct::Dot, 1),
        (b'+', _) => (Punct::Plus, 1),
        (b'-', _) => (Punct::Minus, 1),
        _ => return None,
    };
    Some((Kind::Punct(p), i + width))
}

/// DynamoDB's syntax error text: the offending token, and the source from the start of the token
/// before it to the end of the token after it.
pub(crate) fn syntax_error(text: &str, tokens: &[Token], at: usize) -> String {
    let token = tokens[at];
    let shown = if token.kind == Kind::Eof {
        "<EOF>"
    } else {
        &text[token.start..token.end]
    };
    let from = at.checked_sub(1).map_or(0, |i| tokens[i].start);
    let to = match tokens.get(at + 1) {
        Some(next) if next.kind != Kind::Eof => next.end,
        _ => text.len(),
    };
    format!(
        "Syntax error; token: \"{shown}\", near: \"{}\"",
        &text[from..to]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind> {
        tokenize(text).into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn splits_operators_names_and_keywords() {
        assert_eq!(
            kinds("#a <> :b and c[1]"),
            vec![
                Kind::Name,
                Kind::Punct(Punct::Ne),
                Kind::Value,
                Kind::Keyword(Keyword::And),
                Kind::Identifier,
                Kind::Punct(Punct::LBracket),
                Kind::Number,
                Kind::Punct(Punct::RBracket),
                Kind::Eof
            ]
        );
    }

    #[test]
    fn lone_sigils_and_foreign_characters_are_unknown_tokens() {
        assert_eq!(
            kinds("# _é"),
            vec![Kind::Unknown, Kind::Unknown, Kind::Unknown, Kind::Eof]
        );
    }

    #[test]
    fn near_spans_the_previous_and_next_tokens() {
        let near = |text: &str, at: usize| syntax_error(text, &tokenize(text), at);
        assert_eq!(
            near("a  b  c d", 1),
            "Syntax error; token: \"b\", near: \"a  b  c\""
        );
        assert_eq!(near("!!!", 0), "Syntax error; token: \"!\", near: \"!!\"");
        assert_eq!(
            near("a =   ", 2),
            "Syntax error; token: \"<EOF>\", near: \"=   \""
        );
        assert_eq!(
            near("  ", 0),
            "Syntax error; token: \"<EOF>\", near: \"  \""
        );
    }
}
