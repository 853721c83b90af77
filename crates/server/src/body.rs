//! Reading a request's body within the memory budget, and discarding the body of a request that
//! was answered without it.
//!
//! Why: a body is read into one buffer of its declared length, charged to the budget (`budget`)
//! before a byte arrives, instead of collected frame by frame and then copied into one piece,
//! which held it twice. A chunked body, whose length is not declared, grows its buffer by
//! doubling, and charges each growth (old and new buffer together, while the bytes are copied)
//! before making it.
//!
//! A request refused from its head alone (a bad signature, an unknown key, no room in the
//! budget) is answered at once, but its client may still be sending the body. Closing the
//! connection with bytes unread makes the kernel reset it, and the client can lose the answer it
//! was sent; so the rest of the body is read and dropped a frame at a time, never kept: it costs
//! bandwidth, not memory, and the connection stays usable. A client that sent
//! `Expect: 100-continue` is waiting for leave to send its body, and never gets it: the
//! connection closes after the answer with nothing unread.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::header::{EXPECT, HeaderMap};

use haven_api::DynamoError;

use crate::budget::Charge;

/// Largest request body DynamoDB accepts (16 MB).
pub(crate) const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// The first buffer of a chunked body.
const FIRST_CHUNKED_CAPACITY: usize = 64 * 1024;

/// Why a body could not be read.
#[derive(Debug, PartialEq)]
pub(crate) enum Unread {
    /// Over [`MAX_REQUEST_BYTES`].
    TooLarge,
    /// Not HTTP framing (bad chunk sizes, a connection closed mid-body).
    Malformed,
    /// No room in the memory budget.
    Refused(DynamoError),
}

/// The whole body, charged to `charge`; `declared` is its Content-Length, at most
/// [`MAX_REQUEST_BYTES`].
pub(crate) async fn read(
    body: &mut Incoming,
    declared: Option<usize>,
    charge: &mut Charge,
) -> Result<Bytes, Unread> {
    let mut buffer = Vec::new();
    if let Some(length) = declared {
        charge.grow(length).await.map_err(Unread::Refused)?;
        buffer.reserve_exact(length);
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Unread::Malformed)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let needed = buffer.len() + data.len();
        if needed > MAX_REQUEST_BYTES {
            return Err(Unread::TooLarge);
        }
        if needed > buffer.capacity() {
            grow(&mut buffer, needed, charge).await?;
        }
        buffer.extend_from_slice(&data);
    }
    Ok(Bytes::from(buffer))
}

/// Grows `buffer` to hold `needed` bytes, by doubling, charging the new buffer before it exists.
async fn grow(buffer: &mut Vec<u8>, needed: usize, charge: &mut Charge) -> Result<(), Unread> {
    let old = buffer.capacity();
    // `needed` is at most the cap (checked by the caller).
    let capacity = needed
        .max(old * 2)
        .clamp(FIRST_CHUNKED_CAPACITY, MAX_REQUEST_BYTES);
    charge.grow(capacity).await.map_err(Unread::Refused)?;
    buffer.reserve_exact(capacity - buffer.len());
    charge.shrink(old);
    Ok(())
}

/// True if the client waits for `100 Continue` before sending its body.
pub(crate) fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads the rest of `body` and drops it: at most [`MAX_REQUEST_BYTES`] for at most `timeout`,
/// after which the connection is closed.
pub(crate) async fn discard(mut body: Incoming, timeout: Duration) {
    let drain = async {
        let mut left = MAX_REQUEST_BYTES;
        while let Some(Ok(frame)) = body.frame().await {
            let length = frame.data_ref().map_or(0, Bytes::len);
            let Some(rest) = left.checked_sub(length) else {
                return;
            };
            left = rest;
        }
    };
    let _ = tokio::time::timeout(timeout, drain).await;
}
