//! One HTTP/1.1 POST to a peer region's node, over plain TCP or over TLS that verifies the node's
//! certificate against the `[replication]` CA bundle.
//!
//! Why not the binary's HTTP client (ureq): it is built without TLS, and with it it would load
//! and trust certificates its own way. The DNS health checks' `ProbeTls` (haven-dns) is the one
//! place Haven turns a CA bundle and a server name into a rustls client configuration, so
//! replication takes that configuration and runs it on a blocking stream here. A certificate that
//! does not verify fails the exchange with rustls' reason; nothing falls back to plain HTTP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use haven_dns::health::ProbeTls;
use rustls::{ClientConnection, StreamOwned};

/// Largest answer read (a replication answer is a few bytes; an error a few hundred).
const MAX_RESPONSE: usize = 1024 * 1024;

/// Sends `body` with `headers` (a `Connection: close` and the length are added) to `node` and
/// answers the status and body; `tls` None speaks plain HTTP.
pub fn post(
    node: SocketAddr,
    tls: Option<&ProbeTls>,
    timeout: Duration,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String), String> {
    let tcp = TcpStream::connect_timeout(&node, timeout).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut head = String::from("POST / HTTP/1.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    match tls {
        None => exchange(tcp, &head, body),
        Some(tls) => {
            let connection = ClientConnection::new(tls.client_config(), tls.name_for(node))
                .map_err(|e| format!("TLS: {e}"))?;
            exchange(StreamOwned::new(connection, tcp), &head, body)
                .map_err(|e| format!("TLS: {e}"))
        }
    }
}

fn exchange(
    mut stream: impl Read + Write,
    head: &str,
    body: &[u8],
) -> Result<(u16, String), String> {
    stream
        .write_all(head.as_bytes())
        .map_err(|e| e.to_string())?;
    stream.write_all(body).map_err(|e| e.to_string())?;
    stream.flush().map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let mut chunk = [0; 16 * 1024];
    while !complete(&response) {
        if response.len() > MAX_RESPONSE {
            return Err("answer too large".into());
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            // A peer that closes without TLS's close_notify after a whole answer is fine.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    parse(&response)
}

/// The end of the head (after its blank line) and the body's declared length, once the head
/// has arrived.
fn framing(response: &[u8]) -> Option<(usize, Option<usize>)> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok());
    Some((end, length))
}

/// Whether the whole answer is in (with a length; without one it ends when the peer closes).
fn complete(response: &[u8]) -> bool {
    framing(response).is_some_and(|(end, length)| length.is_some_and(|l| response.len() >= end + l))
}

fn parse(response: &[u8]) -> Result<(u16, String), String> {
    let (end, length) = framing(response).ok_or("no complete HTTP answer")?;
    let status = std::str::from_utf8(&response[..end])
        .ok()
        .and_then(|head| head.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or("no HTTP status line")?;
    let body = &response[end..];
    let body = length.map_or(body, |l| &body[..l.min(body.len())]);
    Ok((status, String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_framed_by_their_length() {
        let answer = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 5\r\n\r\nhello";
        assert!(complete(answer));
        assert!(!complete(&answer[..answer.len() - 1]));
        assert_eq!(parse(answer), Ok((400, "hello".into())));
        assert!(parse(b"HTTP/1.1 200").is_err());
    }
}
