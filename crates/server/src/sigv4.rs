//! AWS Signature Version 4 verification, with DynamoDB's checks in DynamoDB's order: the date's
//! format and age, `host` among the signed headers, the algorithm, the credential scope (region,
//! service `dynamodb`, terminator, date), the access key, then the signature itself, compared in
//! constant time. Each failure is DynamoDB's own error and message.
//!
//! Verification runs in two steps so that a forged request costs the server as little as
//! possible: [`verify_head`] checks everything the headers carry before the body is read (the
//! whole signature when the client declared its payload's SHA-256 in `X-Amz-Content-SHA256`), and
//! [`PendingBody::finish`] checks the body against what was signed once it has arrived.
//!
//! The verifier never logs and never puts a secret in an error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use hyper::Uri;
use hyper::header::HeaderMap;
use sha2::{Digest, Sha256};

use haven_api::DynamoError;

type HmacSha256 = hmac::Hmac<Sha256>;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "dynamodb";
const TERMINATOR: &str = "aws4_request";
/// DynamoDB accepts a request dated at most this far from its own clock, either way.
pub const ALLOWED_SKEW: Duration = Duration::from_secs(15 * 60);

pub const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. \
Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
pub const INVALID_TOKEN: &str = "The security token included in the request is invalid.";

/// The parts of a request the signature covers.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// A request before its body is read: what [`verify_head`] checks.
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
}

/// What is left to verify once the body has arrived (see [`verify_head`]).
#[must_use = "the request is not verified until its body is checked"]
pub struct PendingBody {
    key_id: String,
    payload: Payload,
    /// Checked last, as DynamoDB does, after the signature.
    session_token: bool,
}

enum Payload {
    /// The signature over the headers and the declared hash has verified; the body must hash to it.
    Declared([u8; 32]),
    /// The signature covers the body's hash, computed once the body is read.
    Unchecked(Box<Unsigned>),
}

/// A signature to check once the payload hash is known.
struct Unsigned {
    /// The canonical request up to (and including the newline before) the payload hash.
    canonical_head: String,
    /// The string to sign up to (and including the newline before) the canonical request's hash.
    string_to_sign_head: String,
    key: Vec<u8>,
    provided: Vec<u8>,
}

/// The parameters of an `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
/// Signature=...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub algorithm: &'a str,
    pub credential: &'a str,
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

/// Splits the Authorization header into its parameters; None when one of the three is missing or
/// empty (the server's header check has answered IncompleteSignatureException by then).
pub fn parse_authorization(header: &str) -> Option<Authorization<'_>> {
    let header = header.trim();
    let (algorithm, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for pair in rest.split(',') {
        let Some((name, value)) = pair.trim().split_once('=') else {
            continue;
        };
        let value = value.trim();
        match name.trim() {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    fn nonempty(v: Option<&str>) -> Option<&str> {
        v.filter(|v| !v.is_empty())
    }
    Some(Authorization {
        algorithm,
        credential: nonempty(credential)?,
        signed_headers: nonempty(signed_headers)?,
        signature: nonempty(signature)?,
    })
}

/// Verifies the request's signature. `region` is the region this server answers for;
/// `secret_of` finds the secret of an access key id. Returns the access key id on success.
pub fn verify(
    request: &SignedRequest<'_>,
    region: &str,
    now: SystemTime,
    secret_of: impl FnOnce(&str) -> Option<String>,
) -> Result<String, DynamoError> {
    let head = RequestHead {
        method: request.method,
        uri: request.uri,
        headers: request.headers,
    };
    verify_head(&head, region, now, secret_of)?.finish(request.body)
}

/// Everything [`verify`] checks that does not need the body: the date, the credential scope and
/// the access key, and, when the client declares its payload's hash in `X-Amz-Content-SHA256`,
/// the signature itself over that hash. What is left (the body against the declared hash, or the
/// signature over the body's hash) is checked by [`PendingBody::finish`], so a forged request is
/// refused before its body is read whenever the client declared the hash.
pub fn verify_head(
    request: &RequestHead<'_>,
    region: &str,
    now: SystemTime,
    secret_of: impl FnOnce(&str) -> Option<String>,
) -> Result<PendingBody, DynamoError> {
    let header_text = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or(DynamoError::MissingAuthenticationToken)?;
    let authorization = parse_authorization(header_text).ok_or_else(|| {
        DynamoError::IncompleteSignature(format!(
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization={header_text}"
        ))
    })?;

    // 1. The date: ISO-8601 basic format, within the allowed skew.
    let date_text = header(request.headers, "x-amz-date")
        .or_else(|| header(request.headers, "date"))
        .unwrap_or_default();
    let Some(date) = parse_amz_date(date_text) else {
        return Err(DynamoError::IncompleteSignature(format!(
            "Date must be in ISO-8601 'basic format'. Got '{date_text}'. See http://en.wikipedia.org/wiki/ISO_8601"
        )));
    };
    check_skew(date_text, date, now)?;

    // 2. Host must be signed.
    let signed: Vec<&str> = authorization.signed_headers.split(';').collect();
    if !signed.iter().any(|h| h.eq_ignore_ascii_case("host")) {
        return Err(DynamoError::InvalidSignature(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }

    // 3. The algorithm.
    if authorization.algorithm != ALGORITHM {
        return Err(DynamoError::IncompleteSignature(format!(
            "Unsupported AWS 'algorithm': '{}' (only AWS4-HMAC-SHA256 for now). ",
            authorization.algorithm
        )));
    }

    // 4. The credential scope.
    let scope = Scope::parse(authorization.credential, date_text, region)?;

    // 5. The access key.
    let secret = secret_of(scope.key_id)
        .ok_or_else(|| DynamoError::UnrecognizedClient(INVALID_TOKEN.into()))?;

    // 6. The signature, now if the payload's hash is declared, else once the body is here.
    let canonical_head = canonical_request_head(request, &signed);
    let string_to_sign_head = format!("{ALGORITHM}\n{date_text}\n{}\n", scope.text());
    let unsigned = Unsigned {
        canonical_head,
        string_to_sign_head,
        key: signing_key(&secret, scope.date, scope.region, scope.service),
        provided: decode_hex(authorization.signature).unwrap_or_default(),
    };
    let payload = match declared_payload_hash(request.headers) {
        Some((text, hash)) => {
            unsigned.verify(text)?;
            Payload::Declared(hash)
        }
        None => Payload::Unchecked(Box::new(unsigned)),
    };
    Ok(PendingBody {
        key_id: scope.key_id.to_string(),
        payload,
        // 7. Temporary credentials (session tokens) are not issued by Haven.
        session_token: request.headers.contains_key("x-amz-security-token"),
    })
}

impl PendingBody {
    /// The access key id, once the body matches what was signed.
    pub fn finish(self, body: &[u8]) -> Result<String, DynamoError> {
        let hash = Sha256::digest(body);
        match self.payload {
            // A body that is not the one declared is a request whose signature does not cover
            // it: the same answer as a signature computed over the body received.
            Payload::Declared(declared) if declared[..] != hash[..] => {
                return Err(DynamoError::InvalidSignature(SIGNATURE_MISMATCH.into()));
            }
            Payload::Declared(_) => {}
            Payload::Unchecked(unsigned) => unsigned.verify(&hex(&hash))?,
        }
        if self.session_token {
            return Err(DynamoError::UnrecognizedClient(INVALID_TOKEN.into()));
        }
        Ok(self.key_id)
    }
}

impl Unsigned {
    /// Compares the signature over `payload_hash` (hex) with the one provided, in constant time.
    fn verify(&self, payload_hash: &str) -> Result<(), DynamoError> {
        let canonical = format!("{}{payload_hash}", self.canonical_head);
        let string_to_sign = format!(
            "{}{}",
            self.string_to_sign_head,
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let mut mac =
            <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(string_to_sign.as_bytes());
        mac.verify_slice(&self.provided)
            .map_err(|_| DynamoError::InvalidSignature(SIGNATURE_MISMATCH.into()))
    }
}

/// The `X-Amz-Content-SHA256` header when it is a SHA-256 in lowercase hex, as SigV4 writes it.
/// Any other value (`UNSIGNED-PAYLOAD`, which DynamoDB does not accept) is ignored, so the
/// signature is checked over the body's own hash and fails as it does at DynamoDB.
fn declared_payload_hash(headers: &HeaderMap) -> Option<(&str, [u8; 32])> {
    let text = header(headers, "x-amz-content-sha256")?;
    let bytes = decode_hex(text)?;
    Some((text, bytes.try_into().ok()?))
}

/// The credential `KEY/DATE/REGION/SERVICE/aws4_request` (trailing slashes are ignored), checked
/// against the request's date and the server's region.
struct Scope<'a> {
    key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
}

impl<'a> Scope<'a> {
    fn parse(credential: &'a str, date_text: &str, region: &str) -> Result<Scope<'a>, DynamoError> {
        let credential = credential.trim_end_matches('/');
        let parts: Vec<&str> = credential.split('/').collect();
        let [key_id, date, scope_region, service, terminator] = parts[..] else {
            return Err(DynamoError::IncompleteSignature(format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
            )));
        };
        let mut errors = String::new();
        if scope_region != region {
            errors.push_str(&format!(
                "Credential should be scoped to a valid region, not '{scope_region}'. "
            ));
        }
        if service != SERVICE {
            errors.push_str("Credential should be scoped to correct service: 'dynamodb'. ");
        }
        if terminator != TERMINATOR {
            errors.push_str(&format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. "
            ));
        }
        if date != &date_text[..8] {
            errors.push_str(&format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{date}' != '{}', from '{date_text}'.",
                &date_text[..8]
            ));
        }
        if !errors.is_empty() {
            return Err(DynamoError::InvalidSignature(errors.trim_end().to_string()));
        }
        Ok(Scope {
            key_id,
            date,
            region: scope_region,
            service,
            terminator,
        })
    }

    fn text(&self) -> String {
        let Scope {
            date,
            region,
            service,
            terminator,
            ..
        } = self;
        format!("{date}/{region}/{service}/{terminator}")
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn check_skew(date_text: &str, date: u64, now: SystemTime) -> Result<(), DynamoError> {
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let skew = ALLOWED_SKEW.as_secs();
    if date + skew < now {
        return Err(DynamoError::InvalidSignature(format!(
            "Signature expired: {date_text} is now earlier than {} ({} - 15 min.)",
            format_amz_date(now - skew),
            format_amz_date(now)
        )));
    }
    if date > now + skew {
        return Err(DynamoError::InvalidSignature(format!(
            "Signature not yet current: {date_text} is still later than {} ({} + 15 min.)",
            format_amz_date(now + skew),
            format_amz_date(now)
        )));
    }
    Ok(())
}

/// The canonical request without its last line, the payload hash.
fn canonical_request_head(request: &RequestHead<'_>, signed: &[&str]) -> String {
    let mut out = String::new();
    out.push_str(request.method);
    out.push('\n');
    out.push_str(&canonical_uri(request.uri.path()));
    out.push('\n');
    out.push_str(&canonical_query(request.uri.query().unwrap_or_default()));
    out.push('\n');
    for name in signed {
        out.push_str(name);
        out.push(':');
        let values: Vec<String> = request
            .headers
            .get_all(*name)
            .iter()
            .map(|v| trim_all(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed.join(";"));
    out.push('\n');
    out
}

/// Trims spaces and collapses runs of spaces into one, as SigV4 normalises header values.
fn trim_all(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.trim_matches(' ').chars() {
        if c == ' ' && out.ends_with(' ') {
            continue;
        }
        out.push(c);
    }
    out
}

/// The path with dot segments and empty segments removed, then URI-encoded once more (DynamoDB,
/// like every service but S3, signs the doubly encoded path).
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normalized = format!("/{}", segments.join("/"));
    let trailing = ["/", "/.", "/./", "/..", "/../"]
        .iter()
        .any(|s| path.ends_with(s));
    if trailing && !normalized.ends_with('/') {
        normalized.push('/');
    }
    let mut out = String::new();
    for b in normalized.bytes() {
        if b == b'/' {
            out.push('/');
        } else {
            encode_byte(&mut out, b);
        }
    }
    out
}

/// Query parameters decoded, re-encoded strictly and sorted by name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(&form_decode(name)), encode(&form_decode(value)))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn form_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        encode_byte(&mut out, b);
    }
    out
}

fn encode_byte(out: &mut String, b: u8) {
    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
        out.push(b as char);
    } else {
        out.push_str(&format!("%{b:02X}"));
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, TERMINATOR.as_bytes())
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Lowercase hex only, as SigV4 signatures are written.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) || bytes.iter().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?))
        .collect()
}

/// Seconds since the epoch of `YYYYMMDDTHHMMSSZ`.
pub fn parse_amz_date(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u64> {
        let mut n = 0u64;
        for &c in &b[range] {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u64::from(c - b'0');
        }
        Some(n)
    };
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, minute, second) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64) as u64;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the epoch.
pub fn format_amz_date(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil date algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}
