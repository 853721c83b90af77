//! SigV4 signing at a few microseconds a request: the canonical request of a DynamoDB JSON 1.0
//! POST is written directly, the signing key (`aws_sigv4::sign::v4::generate_signing_key`) is kept
//! for the day and the date string for the second; `aws_sigv4` computes the signature. The tests
//! check the result against `aws_sigv4`'s full request signer.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use sha2::{Digest, Sha256};

/// The headers signed, in canonical (sorted) order.
pub const SIGNED_HEADERS: &str = "content-type;host;x-amz-date;x-amz-target";
/// The content type of DynamoDB's JSON 1.0 protocol.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// Signs requests for one access key, region and host.
#[derive(Clone, Debug)]
pub struct Signer {
    access_key: String,
    secret: String,
    region: String,
    host: String,
    second: u64,
    amz_date: String,
    day: u64,
    key: Vec<u8>,
}

impl Signer {
    /// A signer for requests to `host` (`host:port`).
    pub fn new(access_key: &str, secret: &str, region: &str, host: &str) -> Self {
        Signer {
            access_key: access_key.into(),
            secret: secret.into(),
            region: region.into(),
            host: host.into(),
            second: u64::MAX,
            amz_date: String::new(),
            day: u64::MAX,
            key: Vec::new(),
        }
    }

    /// The `x-amz-date` and `authorization` header values for a POST to `/` with this target and body.
    pub fn sign(&mut self, time: SystemTime, target: &str, body: &[u8]) -> (String, String) {
        self.refresh(time);
        let mut canonical = String::with_capacity(320);
        write!(
            canonical,
            "POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{}\nx-amz-date:{}\nx-amz-target:{target}\n\n{SIGNED_HEADERS}\n",
            self.host, self.amz_date
        )
        .unwrap();
        push_hex(&mut canonical, &Sha256::digest(body));
        let scope = format!(
            "{}/{}/dynamodb/aws4_request",
            &self.amz_date[..8],
            self.region
        );
        let mut to_sign = format!("AWS4-HMAC-SHA256\n{}\n{scope}\n", self.amz_date);
        push_hex(&mut to_sign, &Sha256::digest(canonical.as_bytes()));
        let signature = calculate_signature(&self.key, to_sign.as_bytes());
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={SIGNED_HEADERS}, Signature={signature}",
            self.access_key
        );
        (self.amz_date.clone(), authorization)
    }

    fn refresh(&mut self, time: SystemTime) {
        let seconds = time
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        if seconds != self.second {
            self.second = seconds;
            self.amz_date = amz_date(seconds);
        }
        if seconds / 86_400 != self.day {
            self.day = seconds / 86_400;
            self.key = generate_signing_key(&self.secret, time, &self.region, "dynamodb")
                .as_ref()
                .to_vec();
        }
    }
}

/// Appends `bytes` in lowercase hex (a table lookup: `format!` showed up in profiles).
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 15) as usize] as char);
    }
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the epoch (UTC), by Howard Hinnant's civil-from-days.
fn amz_date(seconds: u64) -> String {
    let (days, rest) = ((seconds / 86_400) as i64, seconds % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_smithy_runtime_api::client::identity::Identity;

    /// The Authorization header `aws_sigv4`'s own request signer produces.
    fn reference(time: SystemTime, target: &str, body: &[u8]) -> String {
        let identity: Identity = Credentials::new("AKID", "SECRET", None, None, "test").into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("dynamodb")
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [
            ("content-type", CONTENT_TYPE),
            ("host", "127.0.0.1:8000"),
            ("x-amz-target", target),
        ];
        let signable = SignableRequest::new(
            "POST",
            "http://127.0.0.1:8000/",
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let (headers, _) = instructions.into_parts();
        headers
            .iter()
            .find(|h| h.name() == "authorization")
            .unwrap()
            .value()
            .to_string()
    }

    #[test]
    fn matches_the_aws_sigv4_request_signer() {
        let mut signer = Signer::new("AKID", "SECRET", "us-east-1", "127.0.0.1:8000");
        for seconds in [1_700_000_000u64, 1_700_000_001, 1_800_086_399] {
            let time = UNIX_EPOCH + Duration::from_secs(seconds);
            let body = br#"{"TableName":"bench","Key":{"pk":{"S":"user000000000001"}}}"#;
            let (_, authorization) = signer.sign(time, "DynamoDB_20120810.GetItem", body);
            assert_eq!(
                authorization,
                reference(time, "DynamoDB_20120810.GetItem", body)
            );
        }
    }

    #[test]
    fn hex_is_lowercase_and_padded() {
        let mut out = String::new();
        push_hex(&mut out, &[0, 9, 171, 255]);
        assert_eq!(out, "0009abff");
    }

    #[test]
    fn formats_amz_dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_709_210_096), "20240229T123456Z");
        assert_eq!(amz_date(1_767_225_599), "20251231T235959Z");
    }
}
