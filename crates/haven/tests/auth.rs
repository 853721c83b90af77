//! Authentication end to end: `haven keys` manages a credentials file, `haven serve --auth` refuses
//! requests not signed with one of its keys, with DynamoDB's errors; boto3 and the AWS SDK for Rust
//! are accepted with the right key.

mod common;

use std::process::Command;

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
