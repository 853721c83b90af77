//! Parsing a request body as JSON without letting its depth decide the server's fate.
//!
//! serde_json refuses documents nested deeper than 128 levels (so a body of a million `[` cannot
//! overflow the stack). A *well-formed* document that deep is almost always an attribute value
//! nested far beyond DynamoDB's 32 levels, and DynamoDB names that with its nesting
//! ValidationException, not a SerializationException; a linear scan without recursion tells the
//! two apart. Anything else that is not JSON is a SerializationException without a message, as
//! DynamoDB answers.

use haven_api::DynamoError;

/// The body as a JSON value, or the error DynamoDB gives for it.
pub(crate) fn parse(body: &[u8]) -> Result<serde_json::Value, DynamoError> {
    serde_json::from_slice(body).map_err(|error| {
        if error.to_string().starts_with("recursion limit exceeded") && balanced(body) {
            DynamoError::nesting_exceeded()
        } else {
            DynamoError::Serialization(String::new())
        }
    })
}

/// Whether every `[` and `{` outside strings is closed by its matching bracket, in order.
fn balanced(body: &[u8]) -> bool {
    let mut open = Vec::new();
    let (mut in_string, mut escaped) = (false, false);
    for &byte in body {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => open.push(byte),
            b']' if open.pop() != Some(b'[') => return false,
            b'}' if open.pop() != Some(b'{') => return false,
            _ => {}
        }
    }
    open.is_empty() && !in_string
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}1{}", r#"{"a":["#.repeat(levels), "]}".repeat(levels))
    }

    #[test]
    fn a_well_formed_document_too_deep_for_the_parser_is_a_nesting_error() {
        assert!(parse(nested(10).as_bytes()).is_ok());
        assert_eq!(
            parse(nested(1000).as_bytes()),
            Err(DynamoError::nesting_exceeded())
        );
    }

    #[test]
    fn anything_else_that_is_not_json_is_a_serialization_error() {
        let serialization = Err(DynamoError::Serialization(String::new()));
        assert_eq!(parse(&b"[".repeat(100_000)), serialization);
        assert_eq!(parse(b"{\"a\":\"\xff\"}"), serialization);
        let unclosed = format!("{}1", r#"{"a":["#.repeat(1000));
        assert_eq!(parse(unclosed.as_bytes()), serialization);
        // Brackets inside strings do not count.
        let tricky = format!(r#"{}"]}}\"","#, r#"{"a":["#.repeat(1000));
        assert_eq!(parse(tricky.as_bytes()), serialization);
    }
}
