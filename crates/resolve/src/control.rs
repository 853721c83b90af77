//! The control address (`control = "127.0.0.1:8053"`): a few HTTP/1.1 requests for operators and
//! scripts, answered and closed, each bounded in size and time.
//!
//! - `GET /status`: the counters (substitutions, stand-in and stale answers, cache hits and
//!   misses, upstream failures...), the cache's size, how many pins and stand-ins there are.
//! - `POST /flush`: forgets every cached answer and every pin (as SIGHUP does).
//! - `POST /flush?name=dynamodb.us-east-1.amazonaws.com`: forgets that name's answers and pins,
//!   for when a pinned name was really taken out of service.
//!
//! It has no authentication: bind it to a loopback address.

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::resolver::Resolver;

/// Connections served at once; more are closed unanswered.
const MAX_CONNECTIONS: usize = 16;
/// The longest request head read.
const MAX_HEAD: usize = 8192;
/// How long one connection may take, request and response.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the control requests on `listener` forever.
pub async fn serve(listener: TcpListener, resolver: Resolver) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, most likely: pause instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let resolver = resolver.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, handle(stream, &resolver)).await;
            drop(slot);
        });
    }
}

async fn handle(mut stream: TcpStream, resolver: &Resolver) -> std::io::Result<()> {
    let head = read_head(&mut stream).await?;
    let request_line = head.lines().next().unwrap_or_default();
    let (status, body) = route(request_line, resolver);
    let body = body.to_string();
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads until the blank line that ends the request head, at most [`MAX_HEAD`] bytes.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn route(request_line: &str, resolver: &Resolver) -> (&'static str, Value) {
    let mut parts = request_line.split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some("/status")) => ("200 OK", resolver.status()),
        (Some("POST"), Some("/flush")) => flushed(resolver, None),
        (Some("POST"), Some(path)) if path.starts_with("/flush?name=") => {
            let name = &path["/flush?name=".len()..];
            match Name::from_ascii(name) {
                Ok(parsed) if !name.is_empty() => {
                    flushed(resolver, Some(&haven_dns::wire::lower_wire(&parsed)))
                }
                _ => (
                    "400 Bad Request",
                    json!({ "error": format!("{name:?} is not a DNS name") }),
                ),
            }
        }
        (Some(_), Some(path)) if path == "/status" || path.starts_with("/flush") => (
            "405 Method Not Allowed",
            json!({ "error": "GET /status, POST /flush[?name=NAME]" }),
        ),
        _ => (
            "404 Not Found",
            json!({ "error": "GET /status, POST /flush[?name=NAME]" }),
        ),
    }
}

fn flushed(resolver: &Resolver, name: Option<&[u8]>) -> (&'static str, Value) {
    let pins = resolver.flush(name);
    ("200 OK", json!({ "flushed": true, "pins": pins }))
}
