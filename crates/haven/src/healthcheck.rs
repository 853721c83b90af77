//! `haven healthcheck`: exits 0 if a server answers `GET /health` with 200, 1 otherwise. It is the
//! container image's HEALTHCHECK, so it needs no shell, no curl and no TLS library: one plain
//! HTTP/1.1 request on a TCP connection, bounded in time and in the bytes it reads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Bytes of the answer read at most: the status line is all that matters.
const MAX_ANSWER: u64 = 4096;

/// Whether the server at `address` (`host:port`) is healthy, within `timeout`; the error says why
/// not.
pub fn check(address: &str, timeout: Duration) -> Result<(), String> {
    let target: SocketAddr = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&target, timeout)
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot send to {target}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .map_err(|e| format!("no answer from {target}: {e}"))?;
    let status_line = answer.split(|b| *b == b'\n').next().unwrap_or_default();
    let status_line = String::from_utf8_lossy(status_line);
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        _ => Err(format!("{target} answered {:?}", status_line.trim())),
    }
}
