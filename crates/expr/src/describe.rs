//! How DynamoDB quotes an attribute value inside an error message: `{N:5}`, `{S:abc}`.

use haven_model::AttributeValue;

/// `{TYPE:value}` for scalars; binary values are shown base64-encoded as on the wire.
pub(crate) fn value(v: &AttributeValue) -> String {
    let shown = match v {
        AttributeValue::S(s) => s.clone(),
        AttributeValue::N(n) => n.to_string(),
        AttributeValue::B(b) => base64(b),
        AttributeValue::Bool(b) => b.to_string(),
        AttributeValue::Null => "true".to_string(),
        other => format!("{other:?}"),
    };
    format!("{{{}:{shown}}}", v.type_name())
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_with_their_type() {
        assert_eq!(value(&AttributeValue::S("a".into())), "{S:a}");
        assert_eq!(value(&AttributeValue::B(vec![1, 2, 3])), "{B:AQID}");
        assert_eq!(value(&AttributeValue::B(vec![1])), "{B:AQ==}");
    }
}
