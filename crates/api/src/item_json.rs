//! Items written as DynamoDB JSON text straight from their model form.
//!
//! Reads answer with items, and the answer used to be built as a `serde_json::Value` (a map and
//! a few strings per attribute) that was then serialised again. Writing the text directly, with a
//! string escaper that skips clean bytes many at a time (64 per SSE2 test, then eight per word),
//! cut a 1 KB GetItem's server instructions by about a fifth (docs/benchmarks.md). The output is byte for byte what serde_json writes for the
//! same `Value` (a property test checks it), so answers did not change.

use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use haven_model::{AttributeValue, Item};

/// Appends `item` as a JSON object of attribute values: `{"name":{"S":"x"},...}`.
pub(crate) fn write_item(out: &mut Vec<u8>, item: &Item) {
    write_object(out, item.iter(), write_value);
}

/// Appends a JSON object of `members`, each value written by `write`.
pub(crate) fn write_object<'a, V>(
    out: &mut Vec<u8>,
    members: impl Iterator<Item = (&'a String, V)>,
    write: impl Fn(&mut Vec<u8>, V),
) {
    out.push(b'{');
    for (i, (name, value)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        write(out, value);
    }
    out.push(b'}');
}

/// Appends `items` as a JSON array.
pub(crate) fn write_items(out: &mut Vec<u8>, items: &[Item]) {
    write_list(out, items, write_item);
}

/// Appends one attribute value: `{"<type>":<payload>}`.
fn write_value(out: &mut Vec<u8>, value: &AttributeValue) {
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(value.type_name().as_bytes());
    out.extend_from_slice(b"\":");
    match value {
        AttributeValue::S(s) => write_str(out, s),
        AttributeValue::N(n) => write_text(out, n),
        AttributeValue::B(b) => write_base64(out, b),
        AttributeValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        AttributeValue::Null => out.extend_from_slice(b"true"),
        AttributeValue::M(m) => write_item(out, m),
        AttributeValue::L(l) => write_list(out, l, write_value),
        AttributeValue::Ss(s) => write_list(out, s, |out, s| write_str(out, s)),
        AttributeValue::Ns(s) => write_list(out, s, write_text),
        AttributeValue::Bs(s) => write_list(out, s, |out, b| write_base64(out, b)),
    }
    out.push(b'}');
}

fn write_list<T>(out: &mut Vec<u8>, elements: &[T], write: impl Fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, element);
    }
    out.push(b']');
}

/// A value's `Display` text as a JSON string (Numbers: their canonical text, which needs no
/// escaping).
fn write_text(out: &mut Vec<u8>, value: &impl std::fmt::Display) {
    out.push(b'"');
    write!(out, "{value}").expect("writing to a Vec cannot fail");
    out.push(b'"');
}

fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(BASE64.encode(bytes).as_bytes());
    out.push(b'"');
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// True if any of the eight bytes of `word` is a control character, `"` or `\`.
fn needs_escape(word: u64) -> bool {
    escape_bits(word) != 0
}

/// Nonzero if any of the eight bytes of `word` is a control character, `"` or `\`: the high bit
/// of each such byte, little-endian, exact up to the first (a borrow may mark bytes above it).
pub(crate) fn escape_bits(word: u64) -> u64 {
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    below_space
        | zero_byte(word ^ (ONES * u64::from(b'"')))
        | zero_byte(word ^ (ONES * u64::from(b'\\')))
}

/// Bytes tested at once by [`block_needs_escape`].
pub(crate) const BLOCK: usize = 64;

/// True if any byte of `block` needs escaping. Written byte by byte with no branch, so the
/// compiler tests sixteen bytes per SSE2 compare (44 instructions for the 64 bytes, where four
/// eight-byte words of [`escape_bits`] cost about two instructions a byte: a 1 KB GetItem's
/// answer spent 4% of its instructions here, docs/benchmarks.md "JSON decode and encode").
pub(crate) fn block_needs_escape(block: &[u8; BLOCK]) -> bool {
    let mut found = 0u8;
    for &byte in block {
        found |= u8::from(byte < 0x20) | u8::from(byte == b'"') | u8::from(byte == b'\\');
    }
    found != 0
}

/// Appends `s` as a JSON string, escaped as serde_json escapes (only `"`, `\` and control
/// characters; other characters are written as UTF-8).
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut clean_from = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(block) = bytes.get(i..i + BLOCK)
            && !block_needs_escape(block.try_into().expect("a block"))
        {
            i += BLOCK;
            continue;
        }
        if let Some(chunk) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            if !needs_escape(word) {
                i += 8;
                continue;
            }
        }
        let byte = bytes[i];
        if let Some(escape) = escape(byte) {
            out.extend_from_slice(&bytes[clean_from..i]);
            out.extend_from_slice(escape.as_bytes());
            clean_from = i + 1;
        } else if byte < 0x20 {
            out.extend_from_slice(&bytes[clean_from..i]);
            write!(out, "\\u{:04x}", byte).expect("writing to a Vec cannot fail");
            clean_from = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

/// The short escape of a byte, where JSON has one.
fn escape(byte: u8) -> Option<&'static str> {
    Some(match byte {
        b'"' => "\\\"",
        b'\\' => "\\\\",
        b'\n' => "\\n",
        b'\r' => "\\r",
        b'\t' => "\\t",
        0x08 => "\\b",
        0x0c => "\\f",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use haven_model::Number;
    use proptest::prelude::*;

    use super::*;
    use crate::wire::parse_item;

    fn written(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "",
            "plain",
            "q\"b\\n\n\r\t\u{8}\u{c}\u{1}\u{1f} ",
            "é ☃ \u{7f}",
            "0123456789abcdef\"x",
        ] {
            assert_eq!(written(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
        // Each escaped character at every place of two blocks and a tail of words and bytes.
        for escaped in ['"', '\\', '\n', '\u{1}', '\u{1f}'] {
            for at in 0..2 * BLOCK + 11 {
                let mut s: Vec<char> = "0123456789abcdef"
                    .chars()
                    .cycle()
                    .take(2 * BLOCK + 11)
                    .collect();
                s[at] = escaped;
                let s: String = s.into_iter().collect();
                assert_eq!(written(&s), serde_json::to_string(&s).unwrap(), "{s:?}");
            }
        }
    }

    #[test]
    fn every_type_is_written_as_dynamodb_json() {
        let json = serde_json::json!({
            "s": {"S": "x\"y"}, "n": {"N": "-1.5E+3"}, "b": {"B": "AAE="}, "t": {"BOOL": true},
            "f": {"BOOL": false}, "z": {"NULL": true},
            "m": {"M": {"k": {"L": [{"S": ""}, {"N": "2"}]}}}, "ss": {"SS": ["a", "b"]},
            "ns": {"NS": ["2", "1"]}, "bs": {"BS": ["AA==", "AQ=="]}
        });
        let item = parse_item(&json).unwrap();
        let mut out = Vec::new();
        write_item(&mut out, &item);
        let reparsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parse_item(&reparsed).unwrap(), item);
        assert_eq!(
            reparsed["n"],
            serde_json::json!({"N": Number::parse("-1.5E+3").unwrap().to_string()})
        );
    }

    proptest! {
        #[test]
        fn any_string_matches_serde_json(s in any::<String>()) {
            prop_assert_eq!(written(&s), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn ascii_with_escapes_matches_serde_json(s in "[ -~\\x00-\\x1f\"\\\\]{0,200}") {
            prop_assert_eq!(written(&s), serde_json::to_string(&s).unwrap());
        }
    }
}
