//! Authentication end to end: `haven keys` manages a credentials file, `haven serve --auth` refuses
//! requests not signed with one of its keys, with DynamoDB's errors; boto3 and the AWS SDK for Rust
//! are accepted with the right key; a request replayed after the allowed clock skew is refused; the
//! audit log records who did what.

mod common;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::{HavenServer, create_key, error_of, haven_keys as keys, sdk_client_with_key};

#[tokio::test]
async fn only_requests_signed_with_a_known_key_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    let (id, secret) = create_key(&file, "admin");
    let listed = keys(&file, &["list"]);
    assert!(listed.contains(&id) && listed.contains("admin"), "{listed}");
    assert!(!listed.contains(&secret), "list never prints secrets");

    let server = HavenServer::start_with_auth(&file);
    let client = sdk_client_with_key(&server.endpoint(), &id, &secret);
    common::create_table(&client, "Secured", &[("pk", "S")]).await;
    let tables = client.list_tables().send().await.unwrap();
    assert_eq!(tables.table_names(), ["Secured"]);

    let wrong_secret = sdk_client_with_key(&server.endpoint(), &id, "not-the-secret");
    assert_eq!(
        error_of(wrong_secret.list_tables().send().await),
        (
            "InvalidSignatureException".to_string(),
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".to_string()
        )
    );
    let unknown = sdk_client_with_key(&server.endpoint(), "HKUNKNOWNKEY", &secret);
    assert_eq!(
        error_of(unknown.list_tables().send().await),
        (
            "UnrecognizedClientException".to_string(),
            "The security token included in the request is invalid.".to_string()
        )
    );

    // No Authorization header at all.
    let response = ureq::post(&server.endpoint())
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", "DynamoDB_20120810.ListTables")
        .config()
        .http_status_as_error(false)
        .build()
        .send("{}")
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.into_body().read_json().unwrap();
    assert_eq!(
        body["__type"],
        "com.amazon.coral.service#MissingAuthenticationTokenException"
    );
}

#[tokio::test]
async fn keys_are_created_and_revoked_at_once_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    let (old_id, old_secret) = create_key(&file, "old");
    let server = HavenServer::start_with_auth(&file);
    let old = sdk_client_with_key(&server.endpoint(), &old_id, &old_secret);
    old.list_tables().send().await.unwrap();

    let (new_id, new_secret) = create_key(&file, "new");
    keys(&file, &["revoke", &old_id]);
    // Refused at once: the file is checked on every request.
    let (code, _) = error_of(old.list_tables().send().await);
    assert_eq!(code, "UnrecognizedClientException");
    let new = sdk_client_with_key(&server.endpoint(), &new_id, &new_secret);
    new.list_tables().send().await.unwrap();
}

#[test]
fn boto3_signed_requests_are_accepted() {
    let have_boto3 = Command::new("python3")
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_boto3 {
        eprintln!("skipped: python3 with boto3 is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    let (id, secret) = create_key(&file, "boto3");
    let server = HavenServer::start_with_auth(&file);
    let script = r#"
import sys, boto3, botocore.exceptions
endpoint, key, secret = sys.argv[1:4]
def client(secret):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)
good = client(secret)
good.create_table(TableName="Boto", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                  AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                  BillingMode="PAY_PER_REQUEST")
good.put_item(TableName="Boto", Item={"pk": {"S": "a"}, "v": {"N": "1"}})
assert good.get_item(TableName="Boto", Key={"pk": {"S": "a"}})["Item"]["v"] == {"N": "1"}
try:
    client("wrong").list_tables()
    sys.exit("a wrong secret was accepted")
except botocore.exceptions.ClientError as e:
    print(e.response["Error"]["Code"])
"#;
    let output = Command::new("python3")
        .args(["-c", script, &server.endpoint(), &id, &secret])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "InvalidSignatureException"
    );
}

#[tokio::test]
async fn a_request_signed_longer_ago_than_the_allowed_skew_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    let (id, secret) = create_key(&file, "replayer");
    let server = HavenServer::start_with_auth(&file);
    // A request signed 16 minutes ago, as a captured request replayed now would be.
    let signed_at = SystemTime::now() - Duration::from_secs(16 * 60);
    let config = sdk_client_with_key(&server.endpoint(), &id, &secret)
        .config()
        .to_builder()
        .time_source(aws_smithy_async::time::StaticTimeSource::new(signed_at))
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    let replayed = aws_sdk_dynamodb::Client::from_conf(config);
    let (code, message) = error_of(replayed.list_tables().send().await);
    assert_eq!(code, "InvalidSignatureException");
    assert!(message.starts_with("Signature expired: "), "{message}");
    assert!(message.ends_with(" - 15 min.)"), "{message}");
    // The same key signing now is served.
    let now = sdk_client_with_key(&server.endpoint(), &id, &secret);
    now.list_tables().send().await.unwrap();
}

#[tokio::test]
async fn the_audit_log_records_who_did_what_and_never_secrets_or_items() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    let audit = dir.path().join("audit.jsonl");
    let (admin_id, admin_secret) = create_key(&file, "admin");
    let (reader_id, reader_secret) = create_key(&file, "reader");
    let policy = dir.path().join("read-only.json");
    std::fs::write(
        &policy,
        r#"{"Statement": {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}}"#,
    )
    .unwrap();
    keys(&file, &["policy", &reader_id, policy.to_str().unwrap()]);
    let server = HavenServer::start_with(&[
        "--in-memory",
        "--auth",
        "--credentials",
        file.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ]);
    let admin = sdk_client_with_key(&server.endpoint(), &admin_id, &admin_secret);
    common::create_table(&admin, "Audited", &[("pk", "S")]).await;
    let secret_value =
        aws_sdk_dynamodb::types::AttributeValue::S("item-content-never-logged".into());
    let put = admin
        .put_item()
        .table_name("Audited")
        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
        .item("v", secret_value);
    put.send().await.unwrap();
    let reader = sdk_client_with_key(&server.endpoint(), &reader_id, &reader_secret);
    let denied = reader
        .delete_item()
        .table_name("Audited")
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("k".into()));
    assert_eq!(error_of(denied.send().await).0, "AccessDeniedException");
    let stranger = sdk_client_with_key(&server.endpoint(), "HKSTRANGER", "whatever");
    assert_eq!(
        error_of(stranger.list_tables().send().await).0,
        "UnrecognizedClientException"
    );

    // The writer thread flushes whenever its queue runs empty.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        if text.lines().count() >= 4 || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for forbidden in [
        &admin_secret,
        &reader_secret,
        "item-content-never-logged",
        "whatever",
    ] {
        assert!(
            !lines.contains(forbidden),
            "the audit log holds {forbidden:?}"
        );
    }
    let records: Vec<serde_json::Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let summary: Vec<(String, String, String, String, u64)> = records
        .iter()
        .map(|r| {
            let text = |field: &str| r[field].as_str().unwrap_or_default().to_string();
            let tables = r["tables"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(",");
            (
                text("access_key_id"),
                text("operation"),
                tables,
                text("result"),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let row = |key: &str, operation: &str, tables: &str, result: &str, status| {
        (
            key.to_string(),
            operation.to_string(),
            tables.to_string(),
            result.to_string(),
            status,
        )
    };
    assert_eq!(
        summary,
        [
            row(&admin_id, "CreateTable", "Audited", "ok", 200),
            row(&admin_id, "PutItem", "Audited", "ok", 200),
            row(
                &reader_id,
                "DeleteItem",
                "Audited",
                "AccessDeniedException",
                400
            ),
            row(
                "anonymous",
                "ListTables",
                "",
                "UnrecognizedClientException",
                400
            ),
        ]
    );
    for record in &records {
        assert!(record["time"].as_str().unwrap().ends_with('Z'), "{record}");
        assert!(
            record["request_id"].as_str().unwrap().len() == 36,
            "{record}"
        );
        assert!(record["latency_ms"].as_f64().unwrap() >= 0.0, "{record}");
    }
}
