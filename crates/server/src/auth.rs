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
    if !authorization.trim_start().starts_with("AWS4-") {
        return Err(DynamoError::MissingAuthenticationToken);
    }
    let parameters: Vec<(&str, &str)> = authorization
        .split_once(' ')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| pair.trim().split_once('='))
        .collect();
    let mut message = String::new();
    for required in REQUIRED_PARAMETERS {
        if !parameters
            .iter()
            .any(|(name, value)| *name == required && !value.is_empty())
        {
            message.push_str(&format!(
                "Authorization header requires '{required}' parameter. "
            ));
        }
    }
    if !headers.contains_key(X_AMZ_DATE) && !headers.contains_key(DATE) {
        message.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
        );
    }
    if message.is_empty() {
        Ok(())
    } else {
        Err(DynamoError::IncompleteSignature(format!(
            "{message}Authorization={authorization}"
        )))
    }
}
