//! Authentication at the edge (issue 15): with `--auth`, a request is refused from its head alone,
//! before its body is read, when its key is unknown or its signature over a declared payload hash
//! (`X-Amz-Content-SHA256`) does not verify; a body that is not the one declared is refused once
//! it arrives; a request refused unread leaves its connection usable. Status pages need a key with
//! full access under `--auth` (a signed GET) and nothing without it; `/health` is always open.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use common::{HavenServer, create_key, error_type, forged_request_head, haven_keys, read_response};

/// What a client that declares 16 MB sends before the body.
const SIXTEEN_MB: usize = 16 * 1024 * 1024;
const DECLARED_HASH: &str =
    "x-amz-content-sha256: 0000000000000000000000000000000000000000000000000000000000000000\r\n";

fn connect(server: &HavenServer) -> TcpStream {
    let stream = TcpStream::connect(server.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn server_with_key() -> (tempfile::TempDir, HavenServer, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    let (id, secret) = create_key(&file, "admin");
    let server = HavenServer::start_with_auth(&file);
    (dir, server, id, secret)
}

#[test]
fn a_forged_request_is_refused_from_its_head_and_its_connection_stays_usable() {
    let (_dir, server, id, _) = server_with_key();
    let mut stream = connect(&server);
    // 16 MB declared, not a byte of it sent: the answer comes anyway.
    let forged = forged_request_head("PutItem", &id, SIXTEEN_MB, DECLARED_HASH);
    stream.write_all(forged.as_bytes()).unwrap();
    let (status, body) = read_response(&mut stream);
    assert_eq!(
        (status, error_type(&body)),
        (400, "InvalidSignatureException".into())
    );
    // The body the client goes on to send is discarded unread, and the connection serves the
    // next request.
    stream.write_all(&vec![b' '; SIXTEEN_MB]).unwrap();
    let unknown = forged_request_head("ListTables", "HKUNKNOWN", 2, "");
    stream
        .write_all(format!("{unknown}{{}}").as_bytes())
        .unwrap();
    let (status, body) = read_response(&mut stream);
    assert_eq!(
        (status, error_type(&body)),
        (400, "UnrecognizedClientException".into())
    );

    // An unknown key is refused from the head too, with or without a declared hash.
    let mut stream = connect(&server);
    let unknown = forged_request_head("PutItem", "HKUNKNOWN", SIXTEEN_MB, "");
    stream.write_all(unknown.as_bytes()).unwrap();
    let (status, body) = read_response(&mut stream);
    assert_eq!(
        (status, error_type(&body)),
        (400, "UnrecognizedClientException".into())
    );
    // No Authorization header at all.
    let mut stream = connect(&server);
    let head = format!(
        "POST / HTTP/1.1\r\nHost: haven\r\nX-Amz-Target: DynamoDB_20120810.PutItem\r\n\
         Content-Type: application/x-amz-json-1.0\r\nContent-Length: {SIXTEEN_MB}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let (status, body) = read_response(&mut stream);
    assert_eq!(
        (status, error_type(&body)),
        (400, "MissingAuthenticationTokenException".into())
    );
}

#[tokio::test]
async fn a_request_answered_unread_gives_its_room_back_while_its_body_is_awaited() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    let (id, secret) = create_key(&file, "admin");
    let credentials = file.to_str().unwrap();
    // One request executing and one queued: room for two requests read at once.
    let args = [
        "--in-memory",
        "--auth",
        "--credentials",
        credentials,
        "--max-in-flight",
        "1",
    ];
    let server = HavenServer::start_with(&args);
    // Four forged requests whose bodies never come, each answered from its head; their
    // connections wait for the bodies (to discard them) without holding the server's room.
    let forged = forged_request_head("PutItem", &id, SIXTEEN_MB, DECLARED_HASH);
    let mut waiting = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&server);
        stream.write_all(forged.as_bytes()).unwrap();
        let (status, body) = read_response(&mut stream);
        assert_eq!(
            (status, error_type(&body)),
            (400, "InvalidSignatureException".into())
        );
        waiting.push(stream);
    }
    let client = common::sdk_client_with_key(&server.endpoint(), &id, &secret);
    let listed = tokio::time::timeout(Duration::from_secs(5), client.list_tables().send()).await;
    assert!(listed.expect("served at once").is_ok());
}

#[test]
fn a_client_waiting_for_100_continue_gets_the_refusal_and_a_closed_connection() {
    let (_dir, server, id, _) = server_with_key();
    let mut stream = connect(&server);
    let forged = forged_request_head("PutItem", &id, SIXTEEN_MB, "Expect: 100-continue\r\n");
    stream.write_all(forged.as_bytes()).unwrap();
    // Without a declared hash the signature cannot be checked before the body: the server asks
    // for it (100 Continue), reads it, and refuses it.
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(&vec![b' '; SIXTEEN_MB]).unwrap();
    let (status, body) = read_response(&mut stream);
    assert_eq!(
        (status, error_type(&body)),
        (400, "InvalidSignatureException".into())
    );

    // With a declared hash it is refused without asking for the body, and the connection closes.
    let mut stream = connect(&server);
    let extra = format!("{DECLARED_HASH}Expect: 100-continue\r\n");
    let forged = forged_request_head("PutItem", &id, SIXTEEN_MB, &extra);
    stream.write_all(forged.as_bytes()).unwrap();
    let (status, body) = read_response(&mut stream);
    assert_eq!(
        (status, error_type(&body)),
        (400, "InvalidSignatureException".into())
    );
    assert_eq!(
        stream.read(&mut [0u8; 1]).unwrap(),
        0,
        "closed after the answer"
    );
}

/// `method path` with `body`, signed with `key` by the AWS SDK's own signer (declaring the
/// payload hash if `declare_hash`): the request's head, without the body.
fn signed_head(
    server: &HavenServer,
    (method, path, target): (&str, &str, Option<&str>),
    body: &[u8],
    (id, secret): (&str, &str),
    declare_hash: bool,
) -> String {
    let host = server.address.to_string();
    let mut headers = vec![("host".to_string(), host.clone())];
    if let Some(target) = target {
        headers.push(("x-amz-target".into(), format!("DynamoDB_20120810.{target}")));
        headers.push(("content-type".into(), "application/x-amz-json-1.0".into()));
    }
    let identity = Credentials::new(id, secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    if declare_hash {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("dynamodb")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let url = format!("http://{host}{path}");
    let signable = SignableRequest::new(
        method,
        &url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    let added = instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()));
    for (name, value) in headers.into_iter().chain(added) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    head
}

#[test]
fn a_body_other_than_the_one_whose_hash_was_declared_is_refused() {
    let (_dir, server, id, secret) = server_with_key();
    let key = (id.as_str(), secret.as_str());
    let list_tables = ("POST", "/", Some("ListTables"));
    for declare_hash in [true, false] {
        let mut stream = connect(&server);
        let head = signed_head(&server, list_tables, b"{}", key, declare_hash);
        stream.write_all(format!("{head}{{}}").as_bytes()).unwrap();
        let (status, body) = read_response(&mut stream);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        // The same head with another body of the same length.
        stream.write_all(format!("{head}[]").as_bytes()).unwrap();
        let (status, body) = read_response(&mut stream);
        assert_eq!(
            (status, error_type(&body)),
            (400, "InvalidSignatureException".into())
        );
    }
}

/// A port free on 127.0.0.1 for TCP and UDP alike right now.
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `haven serve` with a one-node DNS config (so it has a status page), and `args`.
fn server_with_status_page(dir: &Path, args: &[&str]) -> HavenServer {
    let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = dir.join("dns.toml");
    let dns = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        &config,
        format!(
            "[zone]\napex = \"haven.test.\"\n\
             nameservers = [{{ name = \"ns1.haven.test.\", addresses = [\"127.0.0.1\"] }}]\n\
             [dns]\nlisten = [\"{dns}\"]\n\
             [[regions]]\nname = \"us-east-1\"\nnodes = [\"{api}\"]\n\
             [health]\ninterval_ms = 100\ntimeout_ms = 100\nfailures = 2\nsuccesses = 1\n"
        ),
    )
    .unwrap();
    let mut all = vec!["--config", config.to_str().unwrap(), "--in-memory"];
    all.extend_from_slice(args);
    HavenServer::start_on(&api.to_string(), &all)
}

fn get(server: &HavenServer, head: &str) -> (u16, serde_json::Value) {
    let mut stream = connect(server);
    stream.write_all(head.as_bytes()).unwrap();
    let (status, body) = read_response(&mut stream);
    let body = serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{body:?}"));
    (status, body)
}

fn unsigned_get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: haven\r\n\r\n")
}

#[test]
fn under_auth_the_status_page_needs_a_full_access_key_and_health_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    let (admin_id, admin_secret) = create_key(&file, "admin");
    let (reader_id, reader_secret) = create_key(&file, "reader");
    let policy = dir.path().join("read-only.json");
    let read_only =
        r#"{"Statement": {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}}"#;
    std::fs::write(&policy, read_only).unwrap();
    haven_keys(&file, &["policy", &reader_id, policy.to_str().unwrap()]);
    let credentials = file.to_str().unwrap();
    let server = server_with_status_page(dir.path(), &["--auth", "--credentials", credentials]);
    let status_page = ("GET", "/dns/status", None);

    let (status, body) = get(&server, &unsigned_get("/health"));
    assert_eq!(
        (status, body),
        (200, serde_json::json!({"status": "serving"}))
    );

    let (status, body) = get(&server, &unsigned_get("/dns/status"));
    assert_eq!(status, 403);
    assert_eq!(
        body,
        serde_json::json!({
            "__type": "com.amazon.coral.service#MissingAuthenticationTokenException",
            "message": "Request is missing Authentication Token"
        })
    );
    let wrong_secret = (admin_id.as_str(), "not-the-secret");
    let (status, body) = get(
        &server,
        &signed_head(&server, status_page, b"", wrong_secret, false),
    );
    assert_eq!(
        (status, error_type(body.to_string().as_bytes())),
        (403, "InvalidSignatureException".into())
    );
    let reader = (reader_id.as_str(), reader_secret.as_str());
    let (status, body) = get(
        &server,
        &signed_head(&server, status_page, b"", reader, false),
    );
    assert_eq!(status, 403);
    assert_eq!(
        body["__type"],
        "com.amazon.coral.service#AccessDeniedException"
    );
    assert_eq!(
        body["message"],
        "User: reader is not authorized to read /dns/status: status pages are answered only to keys with full access (no policy)"
    );

    // The admin sees the page; the node it shows is healthy, so health checks got through.
    let admin = (admin_id.as_str(), admin_secret.as_str());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(
            &server,
            &signed_head(&server, status_page, b"", admin, false),
        );
        assert_eq!(status, 200, "{body}");
        if body["health"][0]["health"] == "Healthy" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never healthy: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn without_auth_the_status_page_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_status_page(dir.path(), &[]);
    let (status, body) = get(&server, &unsigned_get("/dns/status"));
    assert_eq!(status, 200, "{body}");
    assert!(body["health"].is_array(), "{body}");
    let (status, _) = get(&server, &unsigned_get("/health"));
    assert_eq!(status, 200);
}
