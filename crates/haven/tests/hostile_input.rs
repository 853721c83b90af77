//! Hostile and malformed requests (issue 9): broken HTTP framing, oversized headers, bodies that
//! are not UTF-8 or absurdly nested, expressions and PartiQL statements with thousands of
//! parentheses. Each gets the answer DynamoDB gives (its error type and message, or an HTTP error
//! and a closed connection where the request cannot be read at all), and the server keeps serving
//! everyone else.
//!
//! DynamoDB Local is no oracle for several of these (it answers InternalFailure, a 500, to invalid
//! UTF-8, an empty body and documents nested a few hundred levels deep); the real service answers a
//! body it cannot parse with a message-less SerializationException and a too-deep document with
//! the nesting ValidationException, which is what Haven gives.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::{DUMMY_AUTHORIZATION, HavenServer, create_table, error_of, raw_request_head};

/// Sends `bytes` on a fresh connection (then closes the sending half if `half_close`); returns
/// what the server wrote, and whether it closed the connection (rather than going quiet for 5 s).
fn send(server: &HavenServer, bytes: &[u8], half_close: bool) -> (String, bool) {
    let mut stream = TcpStream::connect(server.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    if half_close {
        stream.shutdown(Shutdown::Write).unwrap();
    }
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    let closed = loop {
        match stream.read(&mut buffer) {
            Ok(0) => break true,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(e) => break e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    };
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

/// The server still answers a normal client.
async fn still_serves(server: &HavenServer) {
    let tables = server.client().list_tables().send().await;
    assert!(tables.is_ok(), "the server stopped serving: {tables:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_is_refused_and_the_connection_closed() {
    let server = HavenServer::start_in_memory();

    // A request line that is not HTTP.
    let (answer, closed) = send(&server, b"HELLO THERE\r\n\r\n", false);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert!(closed);

    // A chunk size that is not hexadecimal.
    let request = raw_request_head(
        "ListTables",
        "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    );
    let (answer, closed) = send(&server, request.as_bytes(), false);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer:?}"
    );
    assert!(closed);

    // A Content-Length shorter than the body: the body is `{}`, the rest is read as the next
    // request, which is not HTTP.
    let request = raw_request_head(
        "ListTables",
        "Content-Length: 2\r\n\r\n{}NOT A REQUEST\r\n\r\n",
    );
    let (answer, closed) = send(&server, request.as_bytes(), false);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.contains("HTTP/1.1 400"), "{answer:?}");
    assert!(closed);

    // A Content-Length longer than the body, then the client stops sending: never a 200.
    let request = raw_request_head("ListTables", "Content-Length: 100\r\n\r\n{}");
    let (answer, _) = send(&server, request.as_bytes(), true);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer:?}"
    );

    // A header far over the size limit.
    let huge = format!("X-Padding: {}\r\n", "a".repeat(1024 * 1024));
    let request = raw_request_head(
        "ListTables",
        &format!("{huge}Content-Length: 2\r\n\r\n{{}}"),
    );
    let (answer, closed) = send(&server, request.as_bytes(), false);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert!(closed);

    still_serves(&server).await;
}

/// Sends `body` as `operation` (with one extra header if given); returns the status and the JSON
/// answer.
fn post(
    server: &HavenServer,
    operation: &str,
    extra: Option<(&str, &str)>,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent
        .post(server.endpoint())
        .header("Content-Type", "application/x-amz-json-1.0")
        .header("X-Amz-Target", format!("DynamoDB_20120810.{operation}"))
        .header("X-Amz-Date", "20240101T000000Z")
        .header("Authorization", DUMMY_AUTHORIZATION);
    if let Some((name, value)) = extra {
        request = request.header(name, value);
    }
    let mut response = request.send(body).unwrap();
    let status = response.status().as_u16();
    let json = response.body_mut().read_json().unwrap_or_default();
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_json_are_serialization_exceptions() {
    let server = HavenServer::start_in_memory();
    create_table(&server.client(), "Hostile", &[("pk", "S")]).await;
    let serialization =
        serde_json::json!({"__type": "com.amazon.coral.service#SerializationException"});

    // Invalid UTF-8 inside a JSON string.
    let body = b"{\"TableName\":\"Hostile\",\"Item\":{\"pk\":{\"S\":\"\xff\xfe\"}}}";
    assert_eq!(
        post(&server, "PutItem", None, body),
        (400, serialization.clone())
    );

    // No body at all.
    assert_eq!(
        post(&server, "DescribeTable", None, b""),
        (400, serialization.clone())
    );

    // A request x-amz-crc32 is not checked (DynamoDB sends it on responses; SDKs never send it).
    let body = br#"{"TableName":"Hostile"}"#;
    let (status, _) = post(
        &server,
        "DescribeTable",
        Some(("x-amz-crc32", "12345")),
        body,
    );
    assert_eq!(status, 200);

    still_serves(&server).await;
}

/// `{"L":[{"L":[ ... {"S":"x"} ... ]}]}`, `levels` deep.
fn nested_list(levels: usize) -> String {
    let mut value = String::from(r#"{"S":"x"}"#);
    value.insert_str(0, &r#"{"L":["#.repeat(levels));
    value.push_str(&"]}".repeat(levels));
    value
}

/// `{"M":{"k":{"M":{"k": ... }}}}`, `levels` deep.
fn nested_map(levels: usize) -> String {
    let mut value = String::from(r#"{"S":"x"}"#);
    value.insert_str(0, &r#"{"M":{"k":"#.repeat(levels));
    value.push_str(&"}}".repeat(levels));
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_nested_beyond_32_levels_are_validation_errors_at_any_depth() {
    let server = HavenServer::start_in_memory();
    create_table(&server.client(), "Deep", &[("pk", "S")]).await;
    let nesting = serde_json::json!({
        "__type": "com.amazon.coral.validate#ValidationException",
        "message": "Nesting Levels have exceeded supported limits: Attributes in the item have nested levels beyond supported limit"
    });
    for (levels, document) in [
        (31, nested_list(31)),
        (32, nested_list(32)),
        (100, nested_list(100)),
        (5000, nested_list(5000)),
        (3000, nested_map(3000)),
    ] {
        let body = format!(r#"{{"TableName":"Deep","Item":{{"pk":{{"S":"a"}},"d":{document}}}}}"#);
        let (status, answer) = post(&server, "PutItem", None, body.as_bytes());
        if levels < 32 {
            assert_eq!(status, 200, "{levels} levels: {answer}");
        } else {
            assert_eq!((status, answer), (400, nesting.clone()), "{levels} levels");
        }
    }
    still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expressions_with_thousands_of_parentheses_or_characters_are_validation_errors() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "Parens", &[("pk", "S")]).await;
    let delete = |expression: String| {
        client
            .delete_item()
            .table_name("Parens")
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("a".into()))
            .condition_expression(expression)
            .expression_attribute_values(
                ":v",
                aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
            )
            .send()
    };
    // The messages are DynamoDB Local's for the same expressions.
    let parens = |n: usize| format!("{}a = :v{}", "(".repeat(n), ")".repeat(n));
    let (code, message) = error_of(delete(parens(2000)).await);
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "Invalid ConditionExpression: The expression has redundant parentheses;"
    );

    let (code, message) = error_of(delete(parens(5000)).await);
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "Invalid ConditionExpression: Expression size has exceeded the maximum allowed size; expression size: 10006"
    );

    let path = format!("size(a{}) > :v", "[0]".repeat(1001));
    let (code, message) = error_of(delete(path).await);
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "Invalid ConditionExpression: The document path has too many nesting levels; nesting levels: 1002"
    );

    let long = vec!["a = :v"; 1000].join(" AND ");
    let (code, message) = error_of(delete(long).await);
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "Invalid ConditionExpression: Expression size has exceeded the maximum allowed size; expression size: 10995"
    );
    still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partiql_statements_nested_or_long_are_validation_errors() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "Parens", &[("pk", "S")]).await;
    let run = |statement: String| client.execute_statement().statement(statement).send();
    let nesting = "Nesting Levels have exceeded supported limits";
    let select = |clause: String| format!("SELECT * FROM Parens WHERE {clause}");
    let parens = select(format!("{}a = 1{}", "(".repeat(4000), ")".repeat(4000)));
    assert_eq!(error_of(run(parens).await).1, nesting);
    let nots = select(format!("{}a = 1", "NOT ".repeat(2000)));
    assert_eq!(error_of(run(nots).await).1, nesting);
    let lists = select(format!("a = {}{}", "[".repeat(4000), "]".repeat(4000)));
    assert_eq!(error_of(run(lists).await).1, nesting);
    let ands = select(vec!["a=1"; 900].join(" AND "));
    assert_eq!(
        error_of(run(ands).await).1,
        "The expression contains too many operators; operator count: 301"
    );
    let path = select(format!("a{} = 1", "[0]".repeat(1000)));
    assert_eq!(
        error_of(run(path).await).1,
        "The document path has too many nesting levels; nesting levels: 1001"
    );
    let huge = select(format!("a = '{}'", "x".repeat(1 << 20)));
    assert_eq!(
        error_of(run(huge).await),
        (
            "ValidationException".into(),
            "Member must have length less than or equal to 8192".into()
        )
    );
    still_serves(&server).await;
}
