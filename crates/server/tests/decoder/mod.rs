//! The request decoder's harness, shared by its property test (`tests/decoder_properties.rs`, small
//! inputs in CI) and its fuzz target (`fuzz/fuzz_targets/decode_request.rs`, which includes this
//! file): a request goes through `haven_server::dispatch`, the function the server runs for every
//! request (JSON, target, authentication header, request shape, constraints, then the operation on
//! an in-memory database).
//!
//! What must hold for any input: nothing panics, and every refusal is a client error (a 4xx
//! `DynamoError`, whose variants are DynamoDB's error types), never InternalServerError: bad input
//! is the client's fault and must be named as such.

use std::sync::Arc;

use hyper::body::Bytes;

use haven_api::{DynamoError, Reply, Service, ServiceConfig};
use haven_storage::RedbEngine;

/// The tables every input finds: `tab` keyed by `pk` (S), and `rng` keyed by `pk` (S) and `sk` (N)
/// with a local and a global index, each holding an item.
const FIXTURE: &[(&str, &str)] = &[
    (
        "CreateTable",
        r#"{"TableName":"tab","KeySchema":[{"AttributeName":"pk","KeyType":"HASH"}],
            "AttributeDefinitions":[{"AttributeName":"pk","AttributeType":"S"}],
            "BillingMode":"PAY_PER_REQUEST"}"#,
    ),
    (
        "CreateTable",
        r#"{"TableName":"rng","KeySchema":[{"AttributeName":"pk","KeyType":"HASH"},
            {"AttributeName":"sk","KeyType":"RANGE"}],
            "AttributeDefinitions":[{"AttributeName":"pk","AttributeType":"S"},
            {"AttributeName":"sk","AttributeType":"N"},{"AttributeName":"g","AttributeType":"S"}],
            "LocalSecondaryIndexes":[{"IndexName":"lsi","KeySchema":[{"AttributeName":"pk","KeyType":"HASH"},
            {"AttributeName":"g","KeyType":"RANGE"}],"Projection":{"ProjectionType":"ALL"}}],
            "GlobalSecondaryIndexes":[{"IndexName":"gsi","KeySchema":[{"AttributeName":"g","KeyType":"HASH"}],
            "Projection":{"ProjectionType":"KEYS_ONLY"}}],
            "BillingMode":"PAY_PER_REQUEST"}"#,
    ),
    (
        "PutItem",
        r#"{"TableName":"tab","Item":{"pk":{"S":"a"},"n":{"N":"1"},"l":{"L":[{"S":"x"}]},
            "m":{"M":{"k":{"SS":["v"]}}}}}"#,
    ),
    (
        "PutItem",
        r#"{"TableName":"rng","Item":{"pk":{"S":"a"},"sk":{"N":"1"},"g":{"S":"b"},"b":{"B":"AAE="}}}"#,
    ),
];

/// A fresh in-memory database holding the fixture, so that every input replays on its own.
pub async fn fixture() -> Service {
    let engine = Arc::new(RedbEngine::in_memory().expect("an in-memory engine"));
    let service = Service::new(engine, ServiceConfig::default()).expect("a service");
    for (operation, body) in FIXTURE {
        let request = serde_json::from_str(body).expect("fixture JSON");
        service
            .call(operation, request)
            .await
            .unwrap_or_else(|e| panic!("fixture {operation}: {e:?}"));
    }
    service
}

/// Decodes and runs `body` as the operation named `operation` (the part of `X-Amz-Target` after the
/// dot) with a well-formed Authorization header; None if `operation` cannot be a header value at
/// all (the HTTP layer refuses those before the decoder runs).
pub async fn decode(
    service: &Service,
    operation: &[u8],
    body: &[u8],
) -> Option<Result<Reply, DynamoError>> {
    let mut target = b"DynamoDB_20120810.".to_vec();
    target.extend_from_slice(operation);
    let request = hyper::Request::post("/")
        .header("x-amz-target", target)
        .header("content-type", "application/x-amz-json-1.0")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDFUZZ/20240101/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=0",
        )
        .body(())
        .ok()?;
    let (parts, ()) = request.into_parts();
    Some(haven_server::dispatch(service, None, &parts, &Bytes::copy_from_slice(body)).await)
}

/// Panics unless `answer` serialises to a JSON object or is a client error.
pub fn check(operation: &[u8], body: &[u8], answer: &Result<Reply, DynamoError>) {
    match answer {
        Ok(reply) => {
            let json: serde_json::Value =
                serde_json::from_slice(&reply.to_json_bytes()).expect("a reply serialises to JSON");
            assert!(json.is_object(), "a response that is not an object: {json}");
        }
        Err(error) => assert!(
            error.status() < 500,
            "{:?} with body {:?} answered {error:?}",
            String::from_utf8_lossy(operation),
            String::from_utf8_lossy(body)
        ),
    }
}
