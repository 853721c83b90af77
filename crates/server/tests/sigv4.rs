//! SigV4 verification against the reference signer: requests signed by the `aws-sigv4` crate (the
//! AWS SDK for Rust's own signer) verify, every single-byte mutation of the signature, a signed
//! header, the body or the date is refused, and each failure gets DynamoDB's error and message.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use haven_api::DynamoError;
use haven_api::access::Policy;
use haven_server::credentials::{self, AccessKey, KeyStore};
use haven_server::sigv4::{self, INVALID_TOKEN, RequestHead, SIGNATURE_MISMATCH, SignedRequest};
use hyper::Uri;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// A request as it reaches the server.
#[derive(Clone, Debug)]
struct Request {
    uri: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Request {
    fn verify_at(&self, now: SystemTime, region: &str) -> Result<String, DynamoError> {
        let request = SignedRequest {
            method: "POST",
            uri: &self.uri,
            headers: &self.headers,
            body: &self.body,
        };
        sigv4::verify(&request, region, now, |id| {
            (id == KEY_ID).then(|| SECRET.to_string())
        })
    }

    /// [`sigv4::verify_head`]: what can be checked before the body arrives.
    fn verify_head_at(&self, now: SystemTime) -> Result<sigv4::PendingBody, DynamoError> {
        let head = RequestHead {
            method: "POST",
            uri: &self.uri,
            headers: &self.headers,
        };
        sigv4::verify_head(&head, "us-east-1", now, |id| {
            (id == KEY_ID).then(|| SECRET.to_string())
        })
    }

    fn header(&self, name: &str) -> String {
        self.headers[name].to_str().unwrap().to_string()
    }

    fn set_header(&mut self, name: &str, value: &str) {
        self.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
}

struct Signing<'a> {
    key_id: &'a str,
    secret: &'a str,
    region: &'a str,
    service: &'a str,
    time: SystemTime,
    session_token: Option<&'a str>,
    /// Declare the payload's hash in `X-Amz-Content-SHA256`, as S3 clients do.
    declare_hash: bool,
}

impl Default for Signing<'_> {
    fn default() -> Self {
        Signing {
            key_id: KEY_ID,
            secret: SECRET,
            region: "us-east-1",
            service: "dynamodb",
            time: at(1_704_067_200), // 2024-01-01T00:00:00Z
            session_token: None,
            declare_hash: false,
        }
    }
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Signs `POST url` with `headers` and `body` as the AWS SDK does.
fn signed(url: &str, headers: &[(String, String)], body: &[u8], signing: &Signing) -> Request {
    let credentials = Credentials::new(
        signing.key_id,
        signing.secret,
        signing.session_token.map(str::to_string),
        None,
        "test",
    );
    let identity: Identity = credentials.into();
    let mut settings = SigningSettings::default();
    if signing.declare_hash {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(signing.region)
        .name(signing.service)
        .time(signing.time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder().method("POST").uri(url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let mut request = request.body(()).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    let uri: Uri = request
        .uri()
        .path_and_query()
        .unwrap()
        .as_str()
        .parse()
        .unwrap();
    let mut headers = request.headers().clone();
    if !headers.contains_key("host") {
        let authority = url.split("//").nth(1).unwrap().split('/').next().unwrap();
        headers.insert("host", HeaderValue::from_str(authority).unwrap());
    }
    Request {
        uri,
        headers,
        body: body.to_vec(),
    }
}

fn dynamodb_request(signing: &Signing) -> Request {
    signed(
        "http://127.0.0.1:8000/",
        &[
            ("content-type".into(), "application/x-amz-json-1.0".into()),
            ("x-amz-target".into(), "DynamoDB_20120810.ListTables".into()),
        ],
        b"{}",
        signing,
    )
}

fn now_of(signing: &Signing) -> SystemTime {
    signing.time
}

fn replace_authorization_parameter(request: &mut Request, name: &str, value: &str) {
    let authorization = request.header("authorization");
    let (algorithm, rest) = authorization.split_once(' ').unwrap();
    let rebuilt: Vec<String> = rest
        .split(", ")
        .map(|pair| {
            let (n, v) = pair.split_once('=').unwrap();
            if n == name {
                format!("{n}={value}")
            } else {
                format!("{n}={v}")
            }
        })
        .collect();
    request.set_header(
        "authorization",
        &format!("{algorithm} {}", rebuilt.join(", ")),
    );
}

fn signature_of(request: &Request) -> String {
    let authorization = request.header("authorization");
    sigv4::parse_authorization(&authorization)
        .unwrap()
        .signature
        .to_string()
}

fn invalid_signature(message: &str) -> Result<String, DynamoError> {
    Err(DynamoError::InvalidSignature(message.to_string()))
}

#[test]
fn the_sdk_signer_is_accepted() {
    let signing = Signing::default();
    let request = dynamodb_request(&signing);
    assert_eq!(
        request.verify_at(now_of(&signing), "us-east-1"),
        Ok(KEY_ID.to_string())
    );
    // Anywhere within 15 minutes either way.
    for offset in [-900i64, -1, 1, 900] {
        let now = at((1_704_067_200 + offset) as u64);
        assert!(request.verify_at(now, "us-east-1").is_ok(), "{offset}");
    }
}

#[test]
fn an_unknown_key_is_an_unrecognized_client() {
    let signing = Signing {
        key_id: "AKIDUNKNOWN",
        ..Signing::default()
    };
    let request = dynamodb_request(&signing);
    assert_eq!(
        request.verify_at(now_of(&signing), "us-east-1"),
        Err(DynamoError::UnrecognizedClient(INVALID_TOKEN.into()))
    );
    assert_eq!(
        DynamoError::UnrecognizedClient(INVALID_TOKEN.into()).type_name(),
        "com.amazon.coral.service#UnrecognizedClientException"
    );
}

#[test]
fn a_wrong_secret_is_an_invalid_signature() {
    let signing = Signing {
        secret: "not-the-secret",
        ..Signing::default()
    };
    let request = dynamodb_request(&signing);
    assert_eq!(
        request.verify_at(now_of(&signing), "us-east-1"),
        invalid_signature(SIGNATURE_MISMATCH)
    );
    let error = DynamoError::InvalidSignature(SIGNATURE_MISMATCH.into());
    assert_eq!(
        error.type_name(),
        "com.amazon.coral.service#InvalidSignatureException"
    );
    assert_eq!(error.status(), 400);
    assert_eq!(
        error.message().unwrap(),
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    );
}

#[test]
fn an_old_request_has_expired() {
    let signing = Signing::default();
    let request = dynamodb_request(&signing);
    assert_eq!(
        request.verify_at(at(1_704_067_200 + 901), "us-east-1"),
        invalid_signature(
            "Signature expired: 20240101T000000Z is now earlier than 20240101T000001Z (20240101T001501Z - 15 min.)"
        )
    );
}

#[test]
fn a_request_from_the_future_is_not_yet_current() {
    let signing = Signing::default();
    let request = dynamodb_request(&signing);
    assert_eq!(
        request.verify_at(at(1_704_067_200 - 901), "us-east-1"),
        invalid_signature(
            "Signature not yet current: 20240101T000000Z is still later than 20231231T235959Z (20231231T234459Z + 15 min.)"
        )
    );
}

#[test]
fn the_credential_scope_is_checked() {
    let signing = Signing {
        service: "s3",
        ..Signing::default()
    };
    assert_eq!(
        dynamodb_request(&signing).verify_at(now_of(&signing), "us-east-1"),
        invalid_signature("Credential should be scoped to correct service: 'dynamodb'.")
    );
    let signing = Signing {
        region: "eu-west-1",
        ..Signing::default()
    };
    assert_eq!(
        dynamodb_request(&signing).verify_at(now_of(&signing), "us-east-1"),
        invalid_signature("Credential should be scoped to a valid region, not 'eu-west-1'.")
    );
    let mut request = dynamodb_request(&Signing::default());
    replace_authorization_parameter(
        &mut request,
        "Credential",
        "AKIDEXAMPLE/20240102/us-east-1/dynamodb/aws4_requests",
    );
    assert_eq!(
        request.verify_at(at(1_704_067_200), "us-east-1"),
        invalid_signature(
            "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws4_requests'. Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20240102' != '20240101', from '20240101T000000Z'."
        )
    );
    replace_authorization_parameter(&mut request, "Credential", "a/b/c/d");
    assert_eq!(
        request.verify_at(at(1_704_067_200), "us-east-1"),
        Err(DynamoError::IncompleteSignature(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'a/b/c/d'".into()
        ))
    );
}

#[test]
fn host_must_be_signed_and_the_algorithm_known() {
    let mut request = dynamodb_request(&Signing::default());
    replace_authorization_parameter(&mut request, "SignedHeaders", "x-amz-date");
    assert_eq!(
        request.verify_at(at(1_704_067_200), "us-east-1"),
        invalid_signature("'Host' must be a 'SignedHeader' in the AWS Authorization.")
    );
    let mut request = dynamodb_request(&Signing::default());
    let authorization = request.header("authorization");
    request.set_header(
        "authorization",
        &authorization.replacen("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1", 1),
    );
    assert_eq!(
        request.verify_at(at(1_704_067_200), "us-east-1"),
        Err(DynamoError::IncompleteSignature(
            "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA1' (only AWS4-HMAC-SHA256 for now). "
                .into()
        ))
    );
}

#[test]
fn a_date_not_in_basic_format_is_an_incomplete_signature() {
    let mut request = dynamodb_request(&Signing::default());
    request.set_header("x-amz-date", "2024-01-01T00:00:00Z");
    assert_eq!(
        request.verify_at(at(1_704_067_200), "us-east-1"),
        Err(DynamoError::IncompleteSignature(
            "Date must be in ISO-8601 'basic format'. Got '2024-01-01T00:00:00Z'. See http://en.wikipedia.org/wiki/ISO_8601".into()
        ))
    );
}

#[test]
fn a_session_token_is_not_recognized() {
    let signing = Signing {
        session_token: Some("FQoGZXIvYXdzEXAMPLE"),
        ..Signing::default()
    };
    assert_eq!(
        dynamodb_request(&signing).verify_at(now_of(&signing), "us-east-1"),
        Err(DynamoError::UnrecognizedClient(INVALID_TOKEN.into()))
    );
}

#[test]
fn a_malformed_signature_is_a_mismatch() {
    for signature in ["zz", "ABCDEF", "0", &"a".repeat(64), &"0".repeat(66)] {
        let mut request = dynamodb_request(&Signing::default());
        replace_authorization_parameter(&mut request, "Signature", signature);
        assert_eq!(
            request.verify_at(at(1_704_067_200), "us-east-1"),
            invalid_signature(SIGNATURE_MISMATCH),
            "{signature}"
        );
    }
}

#[test]
fn a_declared_payload_hash_lets_a_bad_signature_be_refused_before_the_body() {
    let signing = Signing {
        declare_hash: true,
        ..Signing::default()
    };
    let request = dynamodb_request(&signing);
    let now = now_of(&signing);
    assert_eq!(
        request.header("x-amz-content-sha256"),
        sigv4::hex(&<sha2::Sha256 as sha2::Digest>::digest(b"{}"))
    );
    let pending = request.verify_head_at(now).expect("the head verifies");
    assert_eq!(pending.finish(&request.body), Ok(KEY_ID.to_string()));
    // Another body of the same length is not the one declared.
    let pending = request.verify_head_at(now).unwrap();
    assert_eq!(pending.finish(b"[]"), invalid_signature(SIGNATURE_MISMATCH));
    // A wrong signature is refused from the head alone.
    let mut forged = request.clone();
    replace_authorization_parameter(&mut forged, "Signature", &"0".repeat(64));
    assert_eq!(
        forged.verify_head_at(now).err(),
        Some(DynamoError::InvalidSignature(SIGNATURE_MISMATCH.into()))
    );
    // So is a declared hash other than the one signed.
    let mut redeclared = request.clone();
    redeclared.set_header("x-amz-content-sha256", &"0".repeat(64));
    assert!(redeclared.verify_head_at(now).is_err());
}

#[test]
fn without_a_declared_hash_the_signature_is_checked_once_the_body_is_here() {
    let request = dynamodb_request(&Signing::default());
    let now = now_of(&Signing::default());
    let mut forged = request.clone();
    replace_authorization_parameter(&mut forged, "Signature", &"0".repeat(64));
    let pending = forged.verify_head_at(now).expect("nothing to refuse yet");
    assert_eq!(
        pending.finish(&request.body),
        invalid_signature(SIGNATURE_MISMATCH)
    );
    // Everything else is checked from the head: here, the access key.
    let unknown = dynamodb_request(&Signing {
        key_id: "AKIDUNKNOWN",
        ..Signing::default()
    });
    assert_eq!(
        unknown.verify_head_at(now).err(),
        Some(DynamoError::UnrecognizedClient(INVALID_TOKEN.into()))
    );
    // A value that is not a SHA-256 (S3's UNSIGNED-PAYLOAD) declares nothing: the signature is
    // checked over the body's own hash, as DynamoDB does.
    let mut unsigned = request.clone();
    unsigned.set_header("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
    let pending = unsigned.verify_head_at(now).expect("nothing to refuse yet");
    assert_eq!(pending.finish(&request.body), Ok(KEY_ID.to_string()));
}

#[test]
fn amz_dates_round_trip() {
    for seconds in [
        0u64,
        951_782_400,
        1_704_067_200,
        4_102_444_799,
        253_402_300_799,
    ] {
        let text = sigv4::format_amz_date(seconds);
        assert_eq!(sigv4::parse_amz_date(&text), Some(seconds), "{text}");
    }
    assert_eq!(sigv4::format_amz_date(951_782_400), "20000229T000000Z");
    for bad in [
        "20230229T000000Z",
        "20240101T240000Z",
        "20240101 000000Z",
        "2024010T000000Z",
        "",
    ] {
        assert_eq!(sigv4::parse_amz_date(bad), None, "{bad}");
    }
}

#[test]
fn credentials_file_round_trips_and_reloads_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    let mut first = AccessKey::generate(Some("first key".into())).unwrap();
    first.policy = Some(std::sync::Arc::new(
        Policy::parse(
            r#"{"Statement": [{"Effect": "Allow", "Action": "dynamodb:Get*", "Resource": "*"}]}"#,
        )
        .unwrap(),
    ));
    assert!(!format!("{first:?}").contains(&first.secret));
    let unrestricted = AccessKey::generate(None).unwrap();
    let both = [first.clone(), unrestricted.clone()];
    credentials::save(&path, &both).unwrap();
    assert_eq!(credentials::load(&path).unwrap(), both.to_vec());
    let store = KeyStore::open(&path).unwrap();
    let secret_of = |id: &str| store.key(id).map(|k| k.secret);
    assert_eq!(secret_of(&first.id), Some(first.secret.clone()));

    let second = AccessKey::generate(None).unwrap();
    credentials::save(&path, std::slice::from_ref(&second)).unwrap();
    assert_eq!(secret_of(&first.id), None, "revoked at once");
    assert_eq!(secret_of(&second.id), Some(second.secret.clone()));

    // A broken file keeps the keys we had, and its error names the line, not the secret.
    std::fs::write(&path, "# comment\n\nBROKEN\n").unwrap();
    let error = credentials::load(&path).unwrap_err().to_string();
    assert_eq!(
        error,
        "credentials file line 3: expected ACCESS_KEY_ID SECRET_ACCESS_KEY [NAME]"
    );
    assert_eq!(secret_of(&second.id), Some(second.secret));
    assert!(credentials::parse("A s\nA t\n").is_err(), "duplicates");
}

#[test]
fn policy_lines_name_a_key_of_the_file_once() {
    let allow_all = r#"{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}"#;
    let keys = credentials::parse(&format!("policy A {allow_all}\nA s reader\n")).unwrap();
    assert!(keys[0].policy.is_some(), "a policy may come before its key");
    let error = |text: String| credentials::parse(&text).unwrap_err().to_string();
    assert_eq!(
        error(format!("A s\npolicy B {allow_all}\n")),
        "credentials file line 2: a policy for B, which is not a key of this file"
    );
    assert_eq!(
        error(format!("A s\npolicy A {allow_all}\npolicy A {allow_all}\n")),
        "credentials file line 3: a second policy for A"
    );
    assert!(
        error("A s\npolicy A {\"Statement\": []".into())
            .starts_with("credentials file line 2: invalid policy for A: the policy is not JSON"),
    );
}

/// A random request DynamoDB could receive: host, path, query, extra headers, body.
/// URL, headers, body, signing time, access key id, secret, and whether the payload hash is
/// declared.
/// Whether the payload hash is declared.
type RandomRequest = (
    String,
    Vec<(String, String)>,
    Vec<u8>,
    u64,
    String,
    String,
    bool,
);

fn arb_request() -> impl Strategy<Value = RandomRequest> {
    let host = prop_oneof![
        Just("127.0.0.1:8000".to_string()),
        Just("dynamodb.us-east-1.amazonaws.com".to_string()),
        "[a-z]{1,10}\\.example:[1-9][0-9]{3}",
    ];
    let path = prop_oneof![
        Just("/".to_string()),
        proptest::collection::vec("[a-zA-Z0-9_.~-]{1,6}", 1..4)
            .prop_map(|segments| format!("/{}", segments.join("/"))),
    ];
    let query = prop_oneof![
        Just(String::new()),
        proptest::collection::vec(("[a-z]{1,5}", "[a-zA-Z0-9_.~-]{0,6}"), 1..4).prop_map(|pairs| {
            let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("?{}", pairs.join("&"))
        }),
    ];
    let headers =
        proptest::collection::vec(("x-test-[a-z]{1,6}", "[!-~]([ -~]{0,18}[!-~])?"), 0..4);
    let body = proptest::collection::vec(any::<u8>(), 0..120);
    let time = 946_684_800u64..3_000_000_000;
    (
        host,
        path,
        query,
        headers,
        body,
        time,
        "[A-Z0-9]{16,20}",
        "[A-Za-z0-9+/]{40}",
        any::<bool>(),
    )
        .prop_map(
            |(host, path, query, extra, body, time, key, secret, declare)| {
                let mut headers = vec![
                    (
                        "content-type".to_string(),
                        "application/x-amz-json-1.0".to_string(),
                    ),
                    (
                        "x-amz-target".to_string(),
                        "DynamoDB_20120810.PutItem".to_string(),
                    ),
                ];
                for (name, value) in extra {
                    if !headers.iter().any(|(n, _)| *n == name) {
                        headers.push((name, value));
                    }
                }
                (
                    format!("http://{host}{path}{query}"),
                    headers,
                    body,
                    time,
                    key,
                    secret,
                    declare,
                )
            },
        )
}

/// Another character of the same kind, so a mutation keeps the request well formed.
fn mutate(byte: u8) -> u8 {
    match byte {
        b'0'..=b'8' | b'a'..=b'e' | b'A'..=b'Y' => byte + 1,
        b'9' => b'0',
        b'f' => b'a',
        b'Z' => b'A',
        b'g'..=b'y' => byte + 1,
        b'z' => b'a',
        _ => b'q',
    }
}

fn mutated(text: &str, position: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes[position] = mutate(bytes[position]);
    String::from_utf8(bytes).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn signed_requests_verify_and_every_mutation_is_refused(
        (url, headers, body, time, key, secret, declare_hash) in arb_request()
    ) {
        let signing = Signing {
            key_id: &key,
            secret: &secret,
            time: at(time),
            declare_hash,
            ..Signing::default()
        };
        let request = signed(&url, &headers, &body, &signing);
        let verify = |request: &Request| {
            let request_view = SignedRequest {
                method: "POST",
                uri: &request.uri,
                headers: &request.headers,
                body: &request.body,
            };
            sigv4::verify(&request_view, "us-east-1", at(time), |id| (id == key).then(|| secret.clone()))
        };
        prop_assert_eq!(verify(&request), Ok(key.clone()));

        // The signature.
        let signature = signature_of(&request);
        for position in 0..signature.len() {
            let mut changed = request.clone();
            replace_authorization_parameter(&mut changed, "Signature", &mutated(&signature, position));
            prop_assert_eq!(verify(&changed), invalid_signature(SIGNATURE_MISMATCH));
        }
        // Every signed header's value, the date included.
        let authorization = request.header("authorization");
        let signed_headers: Vec<String> = sigv4::parse_authorization(&authorization)
            .unwrap()
            .signed_headers
            .split(';')
            .map(str::to_string)
            .collect();
        prop_assert!(signed_headers.iter().any(|h| h == "x-amz-date"));
        for name in &signed_headers {
            let value = request.header(name);
            for position in 0..value.len() {
                let mut changed = request.clone();
                changed.set_header(name, &mutated(&value, position));
                prop_assert!(verify(&changed).is_err(), "{} mutated at {}", name, position);
            }
        }
        // The body.
        for position in 0..body.len() {
            let mut changed = request.clone();
            changed.body[position] ^= 1;
            prop_assert_eq!(verify(&changed), invalid_signature(SIGNATURE_MISMATCH));
        }
    }

    /// The Authorization header parser and the verifier never panic, whatever the header.
    #[test]
    fn arbitrary_authorization_headers_never_panic(header in "\\PC{0,200}", date in "[0-9TZ]{0,17}") {
        let _ = sigv4::parse_authorization(&header);
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&header) {
            headers.insert("authorization", value);
        }
        headers.insert("x-amz-date", HeaderValue::from_str(&date).unwrap());
        headers.insert("host", HeaderValue::from_static("localhost"));
        let uri: Uri = "/".parse().unwrap();
        let request = SignedRequest { method: "POST", uri: &uri, headers: &headers, body: b"" };
        let _ = sigv4::verify(&request, "us-east-1", at(1_704_067_200), |_| Some("s".into()));
    }

    #[test]
    fn aws4_shaped_headers_never_panic(
        credential in "[A-Za-z0-9/_-]{0,40}",
        signed in "[a-z;-]{0,30}",
        signature in "[0-9a-fA-F]{0,70}",
    ) {
        let mut request = dynamodb_request(&Signing::default());
        request.set_header(
            "authorization",
            &format!("AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={signature}"),
        );
        prop_assert!(request.verify_at(at(1_704_067_200), "us-east-1").is_err());
    }
}
