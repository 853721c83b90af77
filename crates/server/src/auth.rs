//! The Authorization header's shape: a missing or malformed header gets DynamoDB's answer. Without
//! `--auth` this is the whole check (any well-formed SigV4 header is accepted, as DynamoDB Local
//! does); with it, it is the first step of authentication (`credentials::Authenticator`).

use hyper::header::{AUTHORIZATION, DATE, HeaderMap, HeaderName};

use haven_api::DynamoError;

/// Looked up as a constant: a header name given as a string is parsed on every lookup.
const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const REQUIRED_PARAMETERS: [&str; 3] = ["Credential", "Signature", "SignedHeaders"];

pub fn check_authorization(headers: &HeaderMap) -> Result<(), DynamoError> {
    let authorization = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // `to_str` accepts only visible ASCII, so ASCII trimming is the whole of trimming here.
    if !authorization.trim_ascii_start().starts_with("AWS4-") {
        return Err(DynamoError::MissingAuthenticationToken);
    }
    let parameters = authorization
        .split_once(' ')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    // One bit per required parameter present with a value: no allocation on a well-formed header.
    let mut present = 0u8;
    for (name, value) in parameters
        .split(',')
        .filter_map(|pair| pair.trim_ascii().split_once('='))
    {
        let index = REQUIRED_PARAMETERS
            .iter()
            .position(|required| *required == name);
        if let Some(index) = index.filter(|_| !value.is_empty()) {
            present |= 1 << index;
        }
    }
    let dated = headers.contains_key(X_AMZ_DATE) || headers.contains_key(DATE);
    if present == (1 << REQUIRED_PARAMETERS.len()) - 1 && dated {
        return Ok(());
    }
    let mut message = String::new();
    for (index, required) in REQUIRED_PARAMETERS.iter().enumerate() {
        if present & (1 << index) == 0 {
            message.push_str(&format!(
                "Authorization header requires '{required}' parameter. "
            ));
        }
    }
    if !dated {
        message.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
        );
    }
    Err(DynamoError::IncompleteSignature(format!(
        "{message}Authorization={authorization}"
    )))
}
