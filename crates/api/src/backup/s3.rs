//! The backup store in an S3 bucket, on any S3-compatible endpoint (AWS, MinIO, Ceph, Garage...):
//! the four calls the store needs (PutObject, GetObject, ListObjectsV2, DeleteObject), path-style,
//! and for ImportTable a listing at every depth and a streamed GetObject (`list_all`, `open`),
//! signed with AWS's own SigV4 signer (`aws-sigv4`, already the server's) and sent with the
//! workspace's blocking HTTP client (`ureq`). Why not a full S3 SDK: aws-sdk-s3 (or object_store's
//! AWS backend) brings a second HTTP stack and doubles the build for four calls; these take a page.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_smithy_runtime_api::client::identity::Identity;

use super::store::{BackupStore, StoreError};

/// Largest object read back (parts are about 4 MB).
const MAX_OBJECT_BYTES: u64 = 256 * 1024 * 1024;
/// The longest one request may take (a part or data file is a few MB): an endpoint that stops
/// answering fails the backup or export instead of holding its thread for ever.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);
/// Most pages one listing reads (1,000 names a page).
const MAX_LIST_PAGES: usize = 10_000;

/// Where the bucket is and how to sign for it.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// `http://host:port` or `https://...` (no trailing slash).
    pub endpoint: String,
    pub bucket: String,
    /// Prepended to every object name (empty, or ending in `/`).
    pub prefix: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// An S3-compatible endpoint and the key that signs for it, without a bucket: where
/// ExportTableToPointInTime writes (`crate::export`) the bucket each request names
/// (`haven serve --s3-endpoint`).
#[derive(Debug, Clone)]
pub struct S3Endpoint {
    /// `http://host:port` (no trailing slash).
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl S3Endpoint {
    /// The objects of `bucket`, named from its root.
    pub fn bucket(&self, bucket: &str) -> S3Store {
        S3Store::new(S3Config {
            endpoint: self.endpoint.clone(),
            bucket: bucket.to_string(),
            prefix: String::new(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
        })
    }
}

pub struct S3Store {
    config: S3Config,
    agent: ureq::Agent,
}

impl S3Store {
    pub fn new(config: S3Config) -> S3Store {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .new_agent();
        S3Store { config, agent }
    }

    fn url(&self, key: &str, query: &str) -> String {
        let path = encode(&format!("{}{key}", self.config.prefix), false);
        let bucket = &self.config.bucket;
        match query {
            "" => format!("{}/{bucket}/{path}", self.config.endpoint),
            query => format!("{}/{bucket}/{path}?{query}", self.config.endpoint),
        }
    }

    /// Sends one signed request; answers the status and the body.
    fn send(&self, method: &str, url: &str, body: &[u8]) -> Result<(u16, Vec<u8>), StoreError> {
        let failed = |e: ureq::Error| StoreError(format!("{method} {url}: {e}"));
        let request = self.signed(method, url, body)?;
        let mut response = self.agent.run(request).map_err(failed)?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_OBJECT_BYTES)
            .read_to_vec()
            .map_err(failed)?;
        Ok((status, bytes))
    }

    /// A request signed with the store's key.
    fn signed(
        &self,
        method: &str,
        url: &str,
        body: &[u8],
    ) -> Result<ureq::http::Request<Vec<u8>>, StoreError> {
        let key = (
            self.config.access_key_id.as_str(),
            self.config.secret_access_key.as_str(),
        );
        let signing = Signing {
            service: "s3",
            region: &self.config.region,
            key,
        };
        let headers = signing
            .headers(method, url, &[], body)
            .map_err(StoreError)?;
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        builder
            .body(body.to_vec())
            .map_err(|e| StoreError(e.to_string()))
    }
}

/// What a SigV4 signature is for: the service, the region and the key (id, secret).
pub struct Signing<'a> {
    pub service: &'a str,
    pub region: &'a str,
    pub key: (&'a str, &'a str),
}

impl Signing<'_> {
    /// The headers SigV4 adds (date, authorization; for S3 the payload hash) to a request with
    /// these `headers` besides `host` (which it signs too).
    pub fn headers(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, String> {
        let credentials = Credentials::new(self.key.0, self.key.1, None, None, "haven");
        let identity: Identity = credentials.into();
        let mut settings = SigningSettings::default();
        if self.service == "s3" {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let host = url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default();
        let signed = std::iter::once(("host", host)).chain(headers.iter().copied());
        let signable = SignableRequest::new(method, url, signed, SignableBody::Bytes(body))
            .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        let (added, _) = instructions.into_parts();
        Ok(added
            .iter()
            .map(|h| (h.name().to_string(), h.value().to_string()))
            .collect())
    }
}

fn refused(what: &str, status: u16, body: &[u8]) -> StoreError {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    StoreError(format!("S3 {what} answered {status}: {text}"))
}

impl BackupStore for S3Store {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        match self.send("PUT", &self.url(key, ""), bytes)? {
            (200, _) => Ok(()),
            (status, body) => Err(refused("PutObject", status, &body)),
        }
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.send("GET", &self.url(key, ""), b"")? {
            (200, body) => Ok(Some(body)),
            (404, _) => Ok(None),
            (status, body) => Err(refused("GetObject", status, &body)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.list_objects(prefix, true, MAX_LIST_PAGES)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.send("DELETE", &self.url(key, ""), b"")? {
            (200 | 204 | 404, _) => Ok(()),
            (status, body) => Err(refused("DeleteObject", status, &body)),
        }
    }
}

/// The reading side ImportTable (`crate::import`) uses besides the store's contract.
impl S3Store {
    /// The names of every object under `prefix`, at any depth, in byte order; an error beyond
    /// `max_pages` pages of 1,000 names.
    pub fn list_all(&self, prefix: &str, max_pages: usize) -> Result<Vec<String>, StoreError> {
        self.list_objects(prefix, false, max_pages)
    }

    /// An object's bytes as a stream (never held whole in memory), or None when there is none.
    pub fn open(&self, key: &str) -> Result<Option<Box<dyn std::io::Read + Send>>, StoreError> {
        let url = self.url(key, "");
        let request = self.signed("GET", &url, b"")?;
        let failed = |e: ureq::Error| StoreError(format!("GET {url}: {e}"));
        let response = self.agent.run(request).map_err(failed)?;
        match response.status().as_u16() {
            200 => Ok(Some(Box::new(response.into_body().into_reader()))),
            404 => Ok(None),
            status => {
                let mut body = response.into_body();
                let text = body.with_config().limit(64 * 1024).read_to_vec();
                Err(refused("GetObject", status, &text.unwrap_or_default()))
            }
        }
    }

    /// ListObjectsV2 page by page: one level under `prefix` (`delimited`) or every depth.
    fn list_objects(
        &self,
        prefix: &str,
        delimited: bool,
        max_pages: usize,
    ) -> Result<Vec<String>, StoreError> {
        let full_prefix = format!("{}{prefix}", self.config.prefix);
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        let delimiter = if delimited { "delimiter=%2F&" } else { "" };
        for _ in 0..max_pages {
            let mut query = format!(
                "{delimiter}list-type=2&prefix={}",
                encode(&full_prefix, true)
            );
            if let Some(token) = &token {
                query = format!("continuation-token={}&{query}", encode(token, true));
            }
            let url = format!("{}/{}?{query}", self.config.endpoint, self.config.bucket);
            let (status, body) = self.send("GET", &url, b"")?;
            if status != 200 {
                return Err(refused("ListObjectsV2", status, &body));
            }
            let xml = String::from_utf8_lossy(&body);
            for key in elements(&xml, "Key") {
                let name = unescape(key);
                names.push(name[self.config.prefix.len().min(name.len())..].to_string());
            }
            token = elements(&xml, "NextContinuationToken")
                .first()
                .map(|t| unescape(t));
            if !elements(&xml, "IsTruncated").contains(&"true") || token.is_none() {
                names.sort();
                return Ok(names);
            }
        }
        Err(StoreError(format!("listing {prefix} has too many pages")))
    }
}

/// URI-encodes as SigV4 wants (unreserved characters kept; `/` kept in paths).
fn encode(text: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || (byte == b'/' && !encode_slash);
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The text of every `<name>...</name>` element of an XML document (S3's answers are flat).
fn elements<'x>(xml: &'x str, name: &str) -> Vec<&'x str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    xml.split(open.as_str())
        .skip(1)
        .filter_map(|rest| rest.split_once(close.as_str()).map(|(text, _)| text))
        .collect()
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// S3Bucket's constraints (AWS's pattern `^[a-z0-9A-Z]+[\.\-\w]*[a-z0-9A-Z]+$`, at most 255
/// characters) and S3BucketOwner's (12 digits), reported at `<prefix>s3Bucket` and
/// `<prefix>s3BucketOwner`, as ExportTableToPointInTime and ImportTable check them. The pattern
/// also keeps a bucket name from reshaping the request's URL.
pub(crate) fn check_bucket(
    violations: &mut crate::error::Violations,
    prefix: &str,
    bucket: Option<&str>,
    owner: Option<&str>,
) {
    let field = format!("{prefix}s3Bucket");
    match bucket {
        None => violations.null(&field),
        Some(bucket) => {
            let bytes = bucket.as_bytes();
            let inner = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
            let fits = bytes.len() >= 2
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && bytes.iter().all(inner);
            if !fits {
                violations.push(format!("Value '{bucket}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-z0-9A-Z]+[\\.\\-\\w]*[a-z0-9A-Z]+$"));
            }
            violations.length(&field, bucket, 0, 255);
        }
    }
    if let Some(owner) = owner
        && !(owner.len() == 12 && owner.bytes().all(|b| b.is_ascii_digit()))
    {
        violations.push(format!("Value '{owner}' at '{prefix}s3BucketOwner' failed to satisfy constraint: Member must satisfy regular expression pattern: [0-9]{{12}}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_answers_are_read_without_an_xml_library() {
        let xml = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>backups/a&amp;b.json</Key></Contents><Contents><Key>backups/c.json</Key></Contents><NextContinuationToken>t1</NextContinuationToken></ListBucketResult>";
        let keys: Vec<String> = elements(xml, "Key").into_iter().map(unescape).collect();
        assert_eq!(keys, ["backups/a&b.json", "backups/c.json"]);
        assert_eq!(elements(xml, "NextContinuationToken"), ["t1"]);
        assert_eq!(encode("backups/a b", true), "backups%2Fa%20b");
        assert_eq!(encode("backups/a b", false), "backups/a%20b");
    }
}
