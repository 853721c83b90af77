//! The text Ion an ION export writes: the small subset DynamoDB's items need (structs, lists,
//! strings, decimals, blobs, booleans, null, and the `$dynamodb_SS`/`NS`/`BS` annotations on
//! sets). Written by hand rather than with the `ion-rs` crate: a writer of these few forms is a
//! page, and the crate (with its reader, binary format and dependencies) would add more build
//! time than the rest of the export together.

use std::fmt::Write;

use base64::Engine as _;
use haven_model::{AttributeValue, Item};

/// An item as an Ion struct: `{name:value,...}` (names in the item's order).
pub(crate) fn item(item: &Item, out: &mut String) {
    out.push('{');
    for (index, (name, value)) in item.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        symbol(name, out);
        out.push(':');
        self::value(value, out);
    }
    out.push('}');
}

/// One attribute value.
pub(crate) fn value(value: &AttributeValue, out: &mut String) {
    match value {
        AttributeValue::S(text) => string(text, out),
        AttributeValue::N(number) => decimal(&number.to_string(), out),
        AttributeValue::B(bytes) => blob(bytes, out),
        AttributeValue::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        AttributeValue::Null => out.push_str("null"),
        AttributeValue::Ss(texts) => set("SS", texts, out, |t, out| string(t, out)),
        AttributeValue::Ns(numbers) => {
            set("NS", numbers, out, |n, out| decimal(&n.to_string(), out))
        }
        AttributeValue::Bs(blobs) => set("BS", blobs, out, |b, out| blob(b, out)),
        AttributeValue::L(values) => {
            out.push('[');
            for (index, element) in values.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                self::value(element, out);
            }
            out.push(']');
        }
        AttributeValue::M(map) => item(map, out),
    }
}

/// A set: a list annotated with its DynamoDB type.
fn set<T>(
    kind: &str,
    elements: impl IntoIterator<Item = T>,
    out: &mut String,
    write: impl Fn(T, &mut String),
) {
    out.push_str("$dynamodb_");
    out.push_str(kind);
    out.push_str("::[");
    for (index, element) in elements.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write(element, out);
    }
    out.push(']');
}

/// A field name: bare when it is an identifier Ion does not reserve, else quoted.
pub(crate) fn symbol(name: &str, out: &mut String) {
    let mut bytes = name.bytes();
    let identifier = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'$')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        && !matches!(name, "true" | "false" | "null" | "nan")
        && !name.starts_with('$');
    if identifier {
        out.push_str(name);
    } else {
        quoted(name, '\'', out);
    }
}

fn string(text: &str, out: &mut String) {
    quoted(text, '"', out);
}

fn quoted(text: &str, quote: char, out: &mut String) {
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// A DynamoDB number (`12`, `-1.5`, `1E+10`) as an Ion decimal (`12.`, `-1.5`, `1d10`): never
/// an Ion int or float, so a reader keeps every digit.
pub(crate) fn decimal(number: &str, out: &mut String) {
    match number.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => {
            out.push_str(mantissa);
            out.push('d');
            out.push_str(exponent.trim_start_matches('+'));
        }
        None if number.contains('.') => out.push_str(number),
        None => {
            out.push_str(number);
            out.push('.');
        }
    }
}

fn blob(bytes: &[u8], out: &mut String) {
    out.push_str("{{");
    out.push_str(&base64::engine::general_purpose::STANDARD.encode(bytes));
    out.push_str("}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ion(item_: &Item) -> String {
        let mut out = String::new();
        item(item_, &mut out);
        out
    }

    #[test]
    fn items_are_written_as_ion_text() {
        let json = serde_json::json!({
            "pk": {"S": "a\"b\n"},
            "n": {"N": "12"},
            "f": {"N": "-1.5"},
            "b": {"B": "AAE="},
            "ok": {"BOOL": true},
            "nothing": {"NULL": true},
            "ss": {"SS": ["x", "y"]},
            "ns": {"NS": ["1", "2.5"]},
            "bs": {"BS": ["AQ=="]},
            "l": {"L": [{"S": "x"}, {"N": "3"}]},
            "m": {"M": {"two words": {"S": "v"}, "null": {"BOOL": false}}},
        });
        let item_ = crate::wire::parse_item(&json).unwrap();
        let text = ion(&item_);
        for part in [
            r#"pk:"a\"b\n""#,
            "n:12.",
            "f:-1.5",
            "b:{{AAE=}}",
            "ok:true",
            "nothing:null",
            r#"ss:$dynamodb_SS::["x","y"]"#,
            "ns:$dynamodb_NS::[1.,2.5]",
            "bs:$dynamodb_BS::[{{AQ==}}]",
            r#"l:["x",3.]"#,
            r#"m:{'null':false,'two words':"v"}"#,
        ] {
            assert!(text.contains(part), "{part} not in {text}");
        }
        let mut out = String::new();
        decimal("1.5E+10", &mut out);
        assert_eq!(out, "1.5d10");
    }
}
