//! HTTP content codings through the real binary: gzip-compressed requests (signed over the bytes
//! sent, under `--auth` too), gzip answers for a client that asks, a decompression bomb refused
//! cheaply, and `GET /` answered as DynamoDB's endpoints answer it.
//!
//! The AWS SDK for Rust sends the compressed requests: an interceptor compresses each one after it
//! is serialized and before it is signed. Compressed answers are asked for over plain HTTP, since
//! the SDK reads its answers as a stream that an interceptor cannot inflate; the test checks their
//! `x-amz-crc32` against the compressed bytes, as the SDKs that ask for gzip do.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::body::SdkBody;
use common::{HavenServer, create_key, create_table, error_type, read_response};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Compresses every request after it is serialized and before it is signed.
#[derive(Debug, Default)]
struct Gzip;

impl Intercept for Gzip {
    fn name(&self) -> &'static str {
        "Gzip"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let body = request.body().bytes().ok_or("a streaming body")?;
        let compressed = gzip(body);
        let headers = request.headers_mut();
        headers.insert("content-encoding", "gzip");
        headers.insert("content-length", compressed.len().to_string());
        *request.body_mut() = SdkBody::from(compressed);
        Ok(())
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn with_gzip(client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
    let config = client.config().to_builder().interceptor(Gzip).build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Writes `count` items of about 1 KB to `table` through `client`.
async fn put_items(client: &aws_sdk_dynamodb::Client, table: &str, count: usize) {
    for i in 0..count {
        client
            .put_item()
            .table_name(table)
            .item("pk", AttributeValue::S(format!("item-{i:03}")))
            .item("payload", AttributeValue::S("x".repeat(1000)))
            .send()
            .await
            .expect("a compressed PutItem is accepted");
    }
}

/// A raw `operation` request with `body`, asking for a gzip answer: status, headers, body as sent.
fn ask_gzip(
    server: &HavenServer,
    operation: &str,
    body: &str,
) -> (u16, ureq::http::HeaderMap, Vec<u8>) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut response = agent
        .post(server.endpoint())
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", format!("DynamoDB_20120810.{operation}"))
        .header("authorization", common::DUMMY_AUTHORIZATION)
        .header("x-amz-date", "20240101T000000Z")
        .header("accept-encoding", "gzip")
        .send(body)
        .unwrap();
    let bytes = response.body_mut().read_to_vec().unwrap();
    (
        response.status().as_u16(),
        response.headers().clone(),
        bytes,
    )
}

#[tokio::test]
async fn compressed_requests_are_read_and_compressed_answers_sent_to_who_asks() {
    let server = HavenServer::start_in_memory();
    let plain = server.client();
    create_table(&plain, "packed", &[("pk", "S")]).await;
    put_items(&with_gzip(&plain), "packed", 20).await;

    // Read back without compression: every compressed write landed whole.
    let scan = plain.scan().table_name("packed").send().await.unwrap();
    assert_eq!(scan.count(), 20);
    let payload = &scan.items()[0]["payload"];
    assert_eq!(payload, &AttributeValue::S("x".repeat(1000)));

    // A client that asks gets a large answer compressed, its CRC32 over the bytes sent.
    let (status, headers, body) = ask_gzip(&server, "Scan", r#"{"TableName":"packed"}"#);
    assert_eq!(status, 200);
    assert_eq!(headers["content-encoding"], "gzip");
    let crc: u32 = headers["x-amz-crc32"].to_str().unwrap().parse().unwrap();
    assert_eq!(
        crc,
        crc32fast::hash(&body),
        "x-amz-crc32 is the compressed body's"
    );
    assert!(body.len() < 5_000, "20 KB of items in {} bytes", body.len());
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut inflated)
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&inflated).unwrap();
    assert_eq!(answer["Count"], 20);

    // A short answer is sent as it is.
    let (status, headers, body) = ask_gzip(&server, "DescribeLimits", "{}");
    assert_eq!(status, 200);
    assert!(!headers.contains_key("content-encoding"));
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(answer["TableMaxReadCapacityUnits"].is_number(), "{answer}");
}

#[tokio::test]
async fn compressed_requests_are_signed_over_the_bytes_sent() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials.toml");
    let (id, secret) = create_key(&file, "admin");
    let server = HavenServer::start_with_auth(&file);
    let client = common::sdk_client_with_key(&server.endpoint(), &id, &secret);
    create_table(&client, "signed", &[("pk", "S")]).await;
    put_items(&with_gzip(&client), "signed", 3).await;
    let scan = client.scan().table_name("signed").send().await.unwrap();
    assert_eq!(scan.count(), 3);
}

/// Sends `body` as a `PutItem` with `Content-Encoding: <coding>`; the answer's status and body.
fn raw_put(server: &HavenServer, coding: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(server.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let extra = format!(
        "Content-Encoding: {coding}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(common::raw_request_head("PutItem", &extra).as_bytes())
        .unwrap();
    stream.write_all(body).unwrap();
    read_response(&mut stream)
}

#[tokio::test]
async fn bombs_corrupt_data_and_unknown_codings_are_refused() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "guarded", &[("pk", "S")]).await;

    // 200 MB of spaces inside a valid item: about 200 KB compressed. Refused once the inflated
    // size passes 16 MB, without inflating the rest.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder
        .write_all(br#"{"TableName":"guarded","Item":{"pk":{"S":"bomb"}},"x":""#)
        .unwrap();
    let spaces = vec![b' '; 1024 * 1024];
    for _ in 0..200 {
        encoder.write_all(&spaces).unwrap();
    }
    encoder.write_all(b"\"}").unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 1024 * 1024, "{} bytes", bomb.len());
    let started = Instant::now();
    let (status, _) = raw_put(&server, "gzip", &bomb);
    assert_eq!(status, 413, "more than 16 MB once inflated");
    assert!(started.elapsed() < Duration::from_secs(20));

    let (status, body) = raw_put(&server, "gzip", b"this is not gzip data");
    assert_eq!(status, 400);
    assert_eq!(error_type(&body), "SerializationException");

    let (status, _) = raw_put(&server, "br", b"{}");
    assert_eq!(status, 415, "a coding Haven does not read");

    // An honest compressed request on the same server still works, and the bomb wrote nothing.
    let item = br#"{"TableName":"guarded","Item":{"pk":{"S":"fine"}}}"#;
    let (status, body) = raw_put(&server, "gzip", &gzip(item));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let scan = client.scan().table_name("guarded").send().await.unwrap();
    assert_eq!(scan.count(), 1);
}

#[test]
fn get_slash_is_answered_as_dynamodb_endpoints_answer_it() {
    let server = HavenServer::start_with(&["--in-memory", "--region", "eu-west-3"]);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut response = agent.get(server.endpoint()).call().unwrap();
    assert_eq!(response.status(), 200);
    let crc = response.headers()["x-amz-crc32"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(response.headers().contains_key("x-amzn-requestid"));
    let body = response.body_mut().read_to_string().unwrap();
    assert_eq!(body, "healthy: dynamodb.eu-west-3.amazonaws.com ");
    assert_eq!(crc, crc32fast::hash(body.as_bytes()).to_string());

    let mut response = agent.delete(server.endpoint()).call().unwrap();
    assert_eq!(response.status(), 404);
    let body = response.body_mut().read_to_string().unwrap();
    assert_eq!(body, "<UnknownOperationException/>\n");
}
