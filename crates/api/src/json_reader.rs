//! A serde `Deserializer` over a request body's text, for the straight read of the item
//! operations (`ops::decoded`).
//!
//! serde_json reads a string in two passes: a scan for its end, eight bytes per step of about
//! twenty instructions, and `str::from_utf8` on what it found. Strings are most of a write's bytes,
//! and the two passes were about a third of a BatchWriteItem item's server instructions
//! (docs/benchmarks.md, "JSON decode and encode"). This reader takes the body as text, checked
//! as UTF-8 once: a string ends at an ASCII byte, and ASCII bytes never occur inside a multi-byte
//! character, so every string it cuts out is text already. It finds a string's end sixty-four
//! bytes per test, which the compiler turns into SSE2 compares.
//!
//! It reads only what it reads exactly as serde_json does: objects, arrays, strings (escapes
//! included, but not `\u` surrogates), `true`, `false`, `null`, and integers that fit 64 bits
//! (not `-0`). Anything else, valid JSON or not, is refused with [`Unread`], and the request takes
//! the general path, where serde_json reads it and answers any error. So the answers do not depend
//! on this reader: a property test checks that whatever it accepts, serde_json reads the same.
//!
//! sonic-rs, the SIMD JSON crate made for this, was measured in this reader's place and cost 1–6%
//! more instructions a request, besides reading `-0`, some floats and nesting beyond 128 differently
//! from serde_json (docs/benchmarks.md, "JSON decode and encode"), so this reader stays.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;

use crate::item_json::{BLOCK, block_needs_escape, escape_bits};

/// Objects and arrays a body may nest in this reader; deeper ones go to serde_json, which allows
/// 128 and tells DynamoDB's nesting error from a syntax error (`haven-server`'s `json`).
const MAX_DEPTH: usize = 100;

/// The reader did not read the body: serde_json is to.
#[derive(Debug)]
pub(crate) struct Unread;

impl fmt::Display for Unread {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("left to serde_json")
    }
}

impl std::error::Error for Unread {}

impl de::Error for Unread {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Unread
    }
}

/// `body` read as a `T`, with nothing but whitespace after it.
pub(crate) fn from_text<'de, T: de::Deserialize<'de>>(body: &'de str) -> Result<T, Unread> {
    let mut reader = Reader {
        text: body,
        at: 0,
        depth: 0,
    };
    let value = T::deserialize(&mut reader)?;
    reader.skip_space();
    if reader.at != body.len() {
        return Err(Unread);
    }
    Ok(value)
}

struct Reader<'de> {
    /// The body. Every position the reader stops at is just before or after an ASCII byte, so
    /// a character boundary.
    text: &'de str,
    at: usize,
    depth: usize,
}

/// True if `byte` ends a string's run of plain bytes: a quote, a backslash or a control character
/// (the bytes the item writer escapes, `crate::item_json`).
fn stops(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

impl<'de> Reader<'de> {
    fn bytes(&self) -> &'de [u8] {
        self.text.as_bytes()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Result<u8, Unread> {
        self.skip_space();
        self.bytes().get(self.at).copied().ok_or(Unread)
    }

    fn expect(&mut self, byte: u8) -> Result<(), Unread> {
        if self.peek()? != byte {
            return Err(Unread);
        }
        self.at += 1;
        Ok(())
    }

    fn literal(&mut self, word: &str) -> Result<(), Unread> {
        if !self.text[self.at..].starts_with(word) {
            return Err(Unread);
        }
        self.at += word.len();
        Ok(())
    }

    /// Where the run of string bytes from `from` stops (at a quote, a backslash, a control
    /// character, or the end of the body).
    fn clean_end(&self, mut from: usize) -> usize {
        let bytes = self.bytes();
        while let Some(block) = bytes.get(from..from + BLOCK) {
            if block_needs_escape(block.try_into().expect("a block")) {
                break;
            }
            from += BLOCK;
        }
        while let Some(word) = bytes.get(from..from + 8) {
            let bits = escape_bits(u64::from_le_bytes(word.try_into().expect("eight bytes")));
            if bits != 0 {
                return from + bits.trailing_zeros() as usize / 8;
            }
            from += 8;
        }
        while bytes.get(from).is_some_and(|&byte| !stops(byte)) {
            from += 1;
        }
        from
    }

    /// The string whose opening quote is the next byte.
    fn string<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Unread> {
        let start = self.at + 1;
        let end = self.clean_end(start);
        match self.bytes().get(end) {
            Some(b'"') => {
                self.at = end + 1;
                visitor.visit_borrowed_str(&self.text[start..end])
            }
            Some(b'\\') => {
                let text = self.escaped(start, end)?;
                visitor.visit_string(text)
            }
            _ => Err(Unread),
        }
    }

    /// A string with escapes, from `start`, whose first backslash is at `end`.
    fn escaped(&mut self, start: usize, mut end: usize) -> Result<String, Unread> {
        let bytes = self.bytes();
        let mut text = String::from(&self.text[start..end]);
        // Every round consumes at least the two bytes of an escape: bounded by the body.
        loop {
            match bytes.get(end) {
                Some(b'"') => {
                    self.at = end + 1;
                    return Ok(text);
                }
                Some(b'\\') => {
                    let (character, length) = match bytes.get(end + 1) {
                        Some(b'"') => ('"', 2),
                        Some(b'\\') => ('\\', 2),
                        Some(b'/') => ('/', 2),
                        Some(b'b') => ('\u{8}', 2),
                        Some(b'f') => ('\u{c}', 2),
                        Some(b'n') => ('\n', 2),
                        Some(b'r') => ('\r', 2),
                        Some(b't') => ('\t', 2),
                        Some(b'u') => (self.unicode_escape(end + 2)?, 6),
                        _ => return Err(Unread),
                    };
                    text.push(character);
                    let from = end + length;
                    end = self.clean_end(from);
                    text.push_str(&self.text[from..end]);
                }
                _ => return Err(Unread),
            }
        }
    }

    /// The character of the four hex digits at `at` (a surrogate, half of a pair, is refused).
    fn unicode_escape(&self, at: usize) -> Result<char, Unread> {
        let digits = self.bytes().get(at..at + 4).ok_or(Unread)?;
        let mut code = 0;
        for &digit in digits {
            code = code * 16 + char::from(digit).to_digit(16).ok_or(Unread)?;
        }
        char::from_u32(code).ok_or(Unread)
    }

    /// An integer that fits 64 bits, as serde_json visits it: u64 unless negative.
    fn integer<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Unread> {
        let bytes = self.bytes();
        let negative = bytes[self.at] == b'-';
        let start = self.at + usize::from(negative);
        let mut end = start;
        let mut value: u64 = 0;
        while let Some(&digit) = bytes.get(end).filter(|byte| byte.is_ascii_digit()) {
            value = value
                .checked_mul(10)
                .and_then(|value| value.checked_add(u64::from(digit - b'0')))
                .ok_or(Unread)?;
            end += 1;
        }
        if end == start {
            return Err(Unread);
        }
        let leading_zero = bytes[start] == b'0' && end - start > 1;
        let fraction = matches!(bytes.get(end), Some(b'.' | b'e' | b'E'));
        if leading_zero || fraction {
            return Err(Unread);
        }
        self.at = end;
        if !negative {
            return visitor.visit_u64(value);
        }
        // serde_json reads -0 as a float; i64::MIN's magnitude does not fit an i64.
        match i64::try_from(value) {
            Ok(magnitude) if magnitude > 0 => visitor.visit_i64(-magnitude),
            _ => Err(Unread),
        }
    }

    /// Enters an object or array (its opening bracket the next byte).
    fn enter(&mut self) -> Result<(), Unread> {
        self.at += 1;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Unread);
        }
        Ok(())
    }

    fn leave(&mut self, closing: u8) -> Result<(), Unread> {
        self.expect(closing)?;
        self.depth -= 1;
        Ok(())
    }
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = Unread;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unread> {
        match self.peek()? {
            b'{' => {
                self.enter()?;
                let value = visitor.visit_map(Members {
                    reader: &mut *self,
                    first: true,
                })?;
                self.leave(b'}')?;
                Ok(value)
            }
            b'[' => {
                self.enter()?;
                let value = visitor.visit_seq(Elements {
                    reader: &mut *self,
                    first: true,
                })?;
                self.leave(b']')?;
                Ok(value)
            }
            b'"' => self.string(visitor),
            b't' => {
                self.literal("true")?;
                visitor.visit_bool(true)
            }
            b'f' => {
                self.literal("false")?;
                visitor.visit_bool(false)
            }
            b'n' => {
                self.literal("null")?;
                visitor.visit_unit()
            }
            b'-' | b'0'..=b'9' => self.integer(visitor),
            _ => Err(Unread),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unread> {
        if self.peek()? == b'n' {
            self.literal("null")?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Unread> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Unread> {
        Err(Unread)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

impl Reader<'_> {
    /// Steps past the comma before the next member or element of a container that `close` ends
    /// (none before the first); false at its end.
    fn next_in(&mut self, close: u8, first: &mut bool) -> Result<bool, Unread> {
        let next = self.peek()?;
        if next == close {
            return Ok(false);
        }
        if !std::mem::replace(first, false) {
            if next != b',' {
                return Err(Unread);
            }
            self.at += 1;
        }
        Ok(true)
    }
}

/// The members of an object being read.
struct Members<'a, 'de> {
    reader: &'a mut Reader<'de>,
    first: bool,
}

impl<'de> MapAccess<'de> for Members<'_, 'de> {
    type Error = Unread;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Unread> {
        if !self.reader.next_in(b'}', &mut self.first)? {
            return Ok(None);
        }
        if self.reader.peek()? != b'"' {
            return Err(Unread);
        }
        seed.deserialize(&mut *self.reader).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Unread> {
        self.reader.expect(b':')?;
        seed.deserialize(&mut *self.reader)
    }
}

/// The elements of an array being read.
struct Elements<'a, 'de> {
    reader: &'a mut Reader<'de>,
    first: bool,
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = Unread;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Unread> {
        if !self.reader.next_in(b']', &mut self.first)? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.reader).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    fn read(text: &str) -> Option<Value> {
        from_text(text).ok()
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{}"#,
            r#" { "a" : [ 1 , -2 , true , false , null , "x" , { } , [ ] ] } "#,
            r#"{"s":"q\"b\\n\/\b\f\n\r\t\u0041\u00e9\u2603 end","t":"\u0000"}"#,
            r#"{"é":"é ☃ \u00e9 ☃","☃":["☃"]}"#,
            r#"{"big":18446744073709551615,"low":-9223372036854775807,"z":0}"#,
            r#"{"a":1,"a":2}"#,
            "\t[\r\n]\n",
        ] {
            let expected: Value = serde_json::from_str(text).unwrap();
            assert_eq!(read(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn finds_an_escape_or_the_end_wherever_it_is() {
        for escape in ["\\n", "\\\"", "\\u00e9", "é"] {
            for at in 0..=2 * BLOCK + 11 {
                let plain: String = "0123456789abcdef"
                    .chars()
                    .cycle()
                    .take(2 * BLOCK + 11)
                    .collect();
                let text = format!("\"{}{escape}{}\"", &plain[..at], &plain[at..]);
                let expected: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(read(&text), Some(expected), "{text}");
                let unclosed = &text[..text.len() - 1];
                assert_eq!(read(unclosed), None, "{unclosed}");
            }
        }
    }

    #[test]
    fn leaves_the_rest_to_serde_json() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        for text in [
            "",
            " ",
            "{",
            "{}}",
            "{} x",
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{,"a":1}"#,
            r#"{"a":1 "b":2}"#,
            r#"{1:2}"#,
            "[1,]",
            "[,1]",
            "[1 2]",
            "01",
            "-",
            "-0",
            "1.5",
            "1e3",
            "18446744073709551616",
            "-9223372036854775808",
            "tru",
            "nul",
            "\"a",
            "\"a\nb\"",
            r#""\x""#,
            r#""\u12""#,
            r#""\u+123""#,
            r#""\ud83d\ude00""#,
            &deep,
        ] {
            assert!(read(text).is_none(), "{text:?}");
        }
    }

    /// JSON texts, most of them valid, some not.
    fn texts() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            "-?[0-9]{1,18}(\\.[0-9])?",
            "\"([ -~é☃]|\\\\[\"\\\\/bfnrtux]|\\\\u[0-9a-fA-F]{4}|\t){0,80}\"",
            Just("true".to_string()),
            Just("null".to_string()),
            Just("fals".to_string()),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6)
                    .prop_map(|elements| format!("[{}]", elements.join(","))),
                prop::collection::vec(("\"[a-z\\\\]{0,3}\"", inner), 0..6).prop_map(|members| {
                    let members: Vec<String> =
                        members.iter().map(|(k, v)| format!("{k} : {v}")).collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn whatever_it_reads_serde_json_reads_the_same(text in texts(), cut in any::<prop::sample::Index>()) {
            let mut cut = cut.index(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            for text in [text.as_str(), &text[..cut]] {
                if let Some(value) = read(text) {
                    prop_assert_eq!(Some(value), serde_json::from_str::<Value>(text).ok(), "{}", text);
                }
            }
        }

        #[test]
        fn clean_valid_texts_are_read(text in texts()) {
            let clean = !text.contains(['.', '\\']) && !text.contains("fals") && !text.contains("-0");
            if clean && let Ok(expected) = serde_json::from_str::<Value>(&text) {
                prop_assert_eq!(read(&text), Some(expected), "{}", text);
            }
        }
    }
}
