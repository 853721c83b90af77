//! HTTP content codings: gzip-compressed requests and responses, as DynamoDB's endpoints serve them.
//!
//! Why: clients that compress requests (`Content-Encoding: gzip`, as the SDKs' request compression
//! and proxies in front of Haven send) must be understood, and large answers (a Scan page is up
//! to 1 MB of JSON) travel several times faster compressed to a client that asks for it with
//! `Accept-Encoding: gzip`. DynamoDB compresses only answers above a threshold, and computes
//! `x-amz-crc32` over the bytes sent, compressed or not, which the SDKs that ask for gzip verify
//! before they decompress.
//!
//! A compressed request is inflated after its signature is checked (SigV4 signs the bytes sent)
//! and before it is parsed. DynamoDB's 16 MB request limit applies to the inflated size, and
//! inflation stops at the first byte beyond it, so a small body that would inflate to gigabytes
//! (a decompression bomb) costs at most 16 MB, charged to the memory budget like any body.

use std::io::Read;

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use hyper::body::Bytes;
use hyper::header::{ACCEPT_ENCODING, CONTENT_ENCODING, HeaderMap};

use crate::body::{MAX_REQUEST_BYTES, Unread};
use crate::budget::Charge;

/// Answers shorter than this are sent as they are: compressing them saves less than it costs.
pub(crate) const COMPRESS_AT_LEAST: usize = 1024;

/// How much inflated request is produced (and charged) at a time.
const INFLATE_STEP: usize = 64 * 1024;

/// How a request body is encoded.
#[derive(Debug, PartialEq)]
pub(crate) enum RequestCoding {
    /// No `Content-Encoding`, or `identity`.
    Identity,
    Gzip,
    /// A coding Haven does not read, named as the client sent it.
    Unsupported(String),
}

impl RequestCoding {
    pub(crate) fn of(headers: &HeaderMap) -> RequestCoding {
        let Some(value) = headers.get(CONTENT_ENCODING) else {
            return RequestCoding::Identity;
        };
        let value = String::from_utf8_lossy(value.as_bytes())
            .trim()
            .to_ascii_lowercase();
        match value.as_str() {
            "" | "identity" => RequestCoding::Identity,
            "gzip" | "x-gzip" => RequestCoding::Gzip,
            _ => RequestCoding::Unsupported(value),
        }
    }
}

/// The inflated body of a gzip request, at most [`MAX_REQUEST_BYTES`], each step charged to
/// `charge` before it is allocated. Corrupt gzip data is `Malformed`.
pub(crate) async fn inflate(compressed: &[u8], charge: &mut Charge) -> Result<Bytes, Unread> {
    let mut decoder = MultiGzDecoder::new(compressed);
    let mut inflated = Vec::new();
    loop {
        let step = INFLATE_STEP.min(MAX_REQUEST_BYTES + 1 - inflated.len());
        charge.grow(step).await.map_err(Unread::Refused)?;
        let start = inflated.len();
        inflated.resize(start + step, 0);
        let read = read_fully(&mut decoder, &mut inflated[start..])?;
        inflated.truncate(start + read);
        if inflated.len() > MAX_REQUEST_BYTES {
            return Err(Unread::TooLarge);
        }
        if read < step {
            return Ok(Bytes::from(inflated));
        }
    }
}

/// Fills `buffer` from `decoder` unless the stream ends first; how many bytes were read.
fn read_fully(decoder: &mut impl Read, buffer: &mut [u8]) -> Result<usize, Unread> {
    let mut filled = 0;
    while filled < buffer.len() {
        match decoder.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(Unread::Malformed),
        }
    }
    Ok(filled)
}

/// True if the client accepts a gzip answer: `gzip` (or `x-gzip`, or `*`) in `Accept-Encoding`
/// with a quality above zero.
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let quality = parts
                .find_map(|param| param.strip_prefix("q="))
                .map_or(Some(1.0), |q| q.parse::<f32>().ok());
            let gzip = ["gzip", "x-gzip", "*"]
                .iter()
                .any(|c| name.eq_ignore_ascii_case(c));
            gzip && quality.is_some_and(|q| q > 0.0)
        })
}

/// `body` gzip-compressed, fast rather than small: the answer is on the request's critical path.
pub(crate) fn deflate(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder.write_all(body).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(name: hyper::header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn accept_encoding_is_read_with_its_qualities() {
        for (value, accepted) in [
            ("gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("br, *", true),
            ("gzip;q=0", false),
            ("gzip; q=0.0", false),
            ("identity", false),
            ("deflate, br", false),
            ("GZIP", true),
        ] {
            assert_eq!(
                accepts_gzip(&headers(ACCEPT_ENCODING, value)),
                accepted,
                "{value}"
            );
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn content_encoding_names_the_request_coding() {
        assert_eq!(
            RequestCoding::of(&HeaderMap::new()),
            RequestCoding::Identity
        );
        assert_eq!(
            RequestCoding::of(&headers(CONTENT_ENCODING, "identity")),
            RequestCoding::Identity
        );
        assert_eq!(
            RequestCoding::of(&headers(CONTENT_ENCODING, "GZIP")),
            RequestCoding::Gzip
        );
        assert_eq!(
            RequestCoding::of(&headers(CONTENT_ENCODING, "br")),
            RequestCoding::Unsupported("br".into())
        );
    }
}
