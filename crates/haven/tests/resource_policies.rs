//! Resource-based policies through the real binary under `--auth`, with the AWS SDK for Rust:
//! Get/Put/DeleteResourcePolicy with revisions and conditional updates, CreateTable's
//! ResourcePolicy, stream policies, DynamoDB's errors (ARNs, documents, revisions), durability
//! across a restart, and enforcement combined with the keys' own policies as IAM combines them
//! within one account (an explicit Deny in either denies, an Allow in either allows), including
//! PutResourcePolicy's self-lockout check.

mod common;

use std::path::{Path, PathBuf};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue as Av, BillingMode, StreamSpecification, StreamViewType,
};
use common::{HavenServer, create_key, error_of, haven_keys, sdk_client_with_key};

const ACCOUNT: &str = "000000000000";
const ARN: &str = "arn:aws:dynamodb:us-east-1:000000000000";
const INVALID: &str = "One or more parameter values were invalid: ";

/// A server under `--auth` on a data directory, with an unrestricted `admin` key.
struct Setup {
    dir: tempfile::TempDir,
    file: PathBuf,
    server: HavenServer,
    admin: Client,
    admin_key: (String, String),
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        let admin_key = create_key(&file, "admin");
        let server = start(dir.path(), &file);
        let admin = sdk_client_with_key(&server.endpoint(), &admin_key.0, &admin_key.1);
        Setup {
            dir,
            file,
            server,
            admin,
            admin_key,
        }
    }

    /// A new key named `name` with its own `policy`, and a client signing with it.
    fn key_with_policy(&self, name: &str, policy: &str) -> Client {
        let (id, secret) = create_key(&self.file, name);
        let policy_file = self.dir.path().join(format!("{id}.json"));
        std::fs::write(&policy_file, policy).unwrap();
        haven_keys(&self.file, &["policy", &id, policy_file.to_str().unwrap()]);
        sdk_client_with_key(&self.server.endpoint(), &id, &secret)
    }

    /// Stops the server and starts it again on the same data directory.
    fn restart(self) -> Setup {
        let Setup {
            dir,
            file,
            server,
            admin_key,
            ..
        } = self;
        server.kill();
        let server = start(dir.path(), &file);
        let admin = sdk_client_with_key(&server.endpoint(), &admin_key.0, &admin_key.1);
        Setup {
            dir,
            file,
            server,
            admin,
            admin_key,
        }
    }
}

fn start(dir: &Path, credentials: &Path) -> HavenServer {
    let data = dir.join("data");
    HavenServer::start_with(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--auth",
        "--credentials",
        credentials.to_str().unwrap(),
    ])
}

fn table_arn(table: &str) -> String {
    format!("{ARN}:table/{table}")
}

fn user(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{name}")
}

/// A policy of one statement.
fn statement(effect: &str, principal: &str, actions: &[&str], resource: &str) -> String {
    let actions: Vec<String> = actions
        .iter()
        .map(|a| format!("\"dynamodb:{a}\""))
        .collect();
    format!(
        r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "{effect}", "Principal": {principal},
            "Action": [{}], "Resource": "{resource}"}}]}}"#,
        actions.join(", ")
    )
}

fn aws(principal: &str) -> String {
    format!(r#"{{"AWS": "{principal}"}}"#)
}

fn denied(user_name: &str, action: &str, resource: &str, why: &str) -> (String, String) {
    (
        "AccessDeniedException".into(),
        format!(
            "User: {} is not authorized to perform: dynamodb:{action} on resource: {resource} {why}",
            user(user_name)
        ),
    )
}

const RESOURCE_DENY: &str = "with an explicit deny in a resource-based policy";

fn validation(message: &str) -> (String, String) {
    ("ValidationException".into(), message.into())
}

fn policy_not_found(detail: &str) -> (String, String) {
    (
        "PolicyNotFoundException".into(),
        format!("Resource-based policy not found for the provided ResourceArn: {detail}"),
    )
}

async fn put_policy(client: &Client, arn: &str, policy: &str, expected: Option<&str>) -> String {
    client
        .put_resource_policy()
        .resource_arn(arn)
        .policy(policy)
        .set_expected_revision_id(expected.map(str::to_owned))
        .send()
        .await
        .unwrap()
        .revision_id()
        .unwrap()
        .to_owned()
}

async fn get_policy(client: &Client, arn: &str) -> (String, String) {
    let got = client
        .get_resource_policy()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    (
        got.policy().unwrap().to_owned(),
        got.revision_id().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn policies_have_revisions_conditional_updates_and_survive_a_restart() {
    let setup = Setup::new();
    common::create_table(&setup.admin, "Orders", &[("pk", "S")]).await;
    let arn = table_arn("Orders");
    let client = &setup.admin;
    let missing = client.get_resource_policy().resource_arn(&arn).send().await;
    assert_eq!(error_of(missing), policy_not_found(&arn));

    let allow_get = statement("Allow", &aws(ACCOUNT), &["GetItem"], &arn);
    let first = put_policy(client, &arn, &allow_get, Some("NO_POLICY")).await;
    assert_eq!(first.len(), 13, "a revision is a time in milliseconds");
    // The same document, however spaced, is no new revision.
    let respaced = allow_get.replace(", ", ",   ");
    assert_eq!(put_policy(client, &arn, &respaced, None).await, first);
    let again = client
        .put_resource_policy()
        .resource_arn(&arn)
        .policy(&allow_get)
        .expected_revision_id("NO_POLICY")
        .send()
        .await;
    assert_eq!(
        error_of(again),
        policy_not_found(&format!(
            "Requested policy update expecting none to be present for table Orders, but a policy exists with revision id {first}."
        ))
    );
    let allow_scan = statement("Allow", &aws(ACCOUNT), &["Scan"], &arn);
    let stale = client
        .put_resource_policy()
        .resource_arn(&arn)
        .policy(&allow_scan)
        .expected_revision_id("1")
        .send()
        .await;
    assert_eq!(
        error_of(stale),
        policy_not_found(&format!(
            "Requested update for policy with revision id 1, but the policy associated to target table Orders has revision id {first}."
        ))
    );
    let second = put_policy(client, &arn, &allow_scan, Some(&first)).await;
    assert!(second > first, "{second} after {first}");
    assert_eq!(
        get_policy(client, &arn).await,
        (allow_scan.clone(), second.clone())
    );

    let setup = setup.restart();
    let client = &setup.admin;
    assert_eq!(get_policy(client, &arn).await, (allow_scan, second.clone()));
    let stale = client
        .delete_resource_policy()
        .resource_arn(&arn)
        .expected_revision_id(&first)
        .send()
        .await;
    assert_eq!(
        error_of(stale),
        policy_not_found(&format!(
            "Requested update for policy with revision id {first}, but the policy associated to target table Orders has revision id {second}."
        ))
    );
    let deleted = client
        .delete_resource_policy()
        .resource_arn(&arn)
        .expected_revision_id(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.revision_id(), Some(second.as_str()));
    let missing = client.get_resource_policy().resource_arn(&arn).send().await;
    assert_eq!(error_of(missing), policy_not_found(&arn));
    // Deleting where there is none succeeds and says no revision.
    let none = client
        .delete_resource_policy()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(none.revision_id(), None);
    let conditional = client
        .delete_resource_policy()
        .resource_arn(&arn)
        .expected_revision_id(&second)
        .send()
        .await;
    assert_eq!(
        error_of(conditional),
        policy_not_found(&format!(
            "Requested update for policy with revision id {second}, but table Orders has no associated policy."
        ))
    );
}

#[tokio::test]
async fn arns_and_documents_are_checked_as_dynamodb_checks_them() {
    let setup = Setup::new();
    let client = &setup.admin;
    common::create_table(client, "Orders", &[("pk", "S")]).await;
    let arn = table_arn("Orders");
    let get = |arn: &str| client.get_resource_policy().resource_arn(arn).send();
    assert_eq!(
        error_of(get("Orders").await),
        validation(&format!("{INVALID}ARNs must start with 'arn:': Orders"))
    );
    let other_account = "arn:aws:dynamodb:us-east-1:111111111111:table/Orders";
    assert_eq!(
        error_of(get(other_account).await),
        validation(
            "This action is only supported by accounts that match the resource owner\u{2019}s account."
        )
    );
    let other_region = "arn:aws:dynamodb:eu-west-1:000000000000:table/Orders";
    assert_eq!(
        error_of(get(other_region).await),
        validation(&format!("{INVALID}Invalid resource Arn: {other_region}"))
    );
    let index = format!("{arn}/index/ByDate");
    assert_eq!(
        error_of(get(&index).await),
        validation(&format!(
            "{INVALID}Invalid resource arn provided, only table or stream is accepted. Provided resource arn: {index}"
        ))
    );
    assert_eq!(
        error_of(get(&table_arn("Nope")).await),
        (
            "ResourceNotFoundException".into(),
            "Requested resource not found: Table: Nope not found".into()
        )
    );
    let bogus_stream = format!("{arn}/stream/2000-01-01T00:00:00.000");
    assert_eq!(
        error_of(get(&bogus_stream).await),
        (
            "ResourceNotFoundException".into(),
            "Requested resource not found: Stream: 2000-01-01T00:00:00.000 not found for Table: Orders".into()
        )
    );

    let put = |policy: String| {
        client
            .put_resource_policy()
            .resource_arn(&arn)
            .policy(policy)
            .send()
    };
    let padded = format!(
        "{}{}",
        statement("Deny", "\"*\"", &["GetItem"], &arn),
        " ".repeat(20 * 1024)
    );
    assert_eq!(
        error_of(put(padded).await),
        validation(&format!(
            "{INVALID}Maximum policy size of 20480 bytes exceeded"
        ))
    );
    assert_eq!(
        error_of(put("{not json".into()).await),
        validation(&format!(
            "{INVALID}Invalid policy document: This policy contains invalid Json"
        ))
    );
    assert_eq!(
        error_of(put(statement("Allow", "\"*\"", &["GetItem"], &arn)).await),
        validation(
            "Resource-based policy grants unbounded access in one or more elements. Please revise the policy to ensure least-privilege form of access"
        )
    );
    assert_eq!(
        error_of(put(statement("Allow", &aws(ACCOUNT), &["GetRecords"], &arn)).await),
        validation(&format!(
            "{INVALID}Invalid policy document: The following action names are invalid: \"dynamodb:GetRecords\""
        ))
    );
    assert_eq!(
        error_of(put(statement("Allow", &aws("alice"), &["GetItem"], &arn)).await),
        validation(&format!("{INVALID}Invalid principal in policy document."))
    );
    let missing = client.get_resource_policy().resource_arn(&arn).send().await;
    assert_eq!(
        error_of(missing),
        policy_not_found(&arn),
        "nothing was stored"
    );
}

#[tokio::test]
async fn a_stream_has_a_policy_of_its_own() {
    let setup = Setup::new();
    let client = &setup.admin;
    let (keys, definitions) = common::table_keys(&[("pk", "S")]);
    let created = client
        .create_table()
        .table_name("Events")
        .set_key_schema(Some(keys))
        .set_attribute_definitions(Some(definitions))
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let stream_arn = created
        .table_description()
        .unwrap()
        .latest_stream_arn()
        .unwrap()
        .to_owned();
    let read_stream = statement(
        "Allow",
        &aws(ACCOUNT),
        &["GetRecords", "DescribeStream"],
        &stream_arn,
    );
    let revision = put_policy(client, &stream_arn, &read_stream, None).await;
    assert_eq!(
        get_policy(client, &stream_arn).await,
        (read_stream, revision)
    );
    let table = client
        .get_resource_policy()
        .resource_arn(table_arn("Events"))
        .send()
        .await;
    assert_eq!(error_of(table), policy_not_found(&table_arn("Events")));
    let table_action = client
        .put_resource_policy()
        .resource_arn(&stream_arn)
        .policy(statement("Allow", &aws(ACCOUNT), &["GetItem"], &stream_arn))
        .send()
        .await;
    assert_eq!(
        error_of(table_action),
        validation(&format!(
            "{INVALID}Invalid policy document: The following action names are invalid: \"dynamodb:GetItem\""
        ))
    );
}

#[tokio::test]
async fn resource_and_key_policies_combine_as_iam_combines_them() {
    let setup = Setup::new();
    let admin = &setup.admin;
    common::create_table_with_indexes(admin, "Alpha", &[("pk", "S")], &[("ByDay", "day")], &[])
        .await;
    let arn = table_arn("Alpha");
    let reader = setup.key_with_policy(
        "reader",
        &format!(
            r#"{{"Statement": [{{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "{arn}"}}]}}"#
        ),
    );
    let item = |pk: &str| {
        [
            ("pk".to_string(), Av::S(pk.into())),
            ("day".to_string(), Av::S("mon".into())),
        ]
    };
    let put = |client: &Client, pk: &str| {
        client
            .put_item()
            .table_name("Alpha")
            .set_item(Some(item(pk).into()))
            .send()
    };
    let why_not = "because no identity-based policy allows the dynamodb:PutItem action";
    assert_eq!(
        error_of(put(&reader, "r1").await),
        denied("reader", "PutItem", &arn, why_not)
    );

    // The table's policy allows the reader to write: an Allow in either policy allows.
    let policy = format!(
        r#"{{"Version": "2012-10-17", "Statement": [
            {{"Sid": "ReaderWrites", "Effect": "Allow", "Principal": {{"AWS": "{}"}}, "Action": "dynamodb:PutItem", "Resource": "{arn}"}},
            {{"Sid": "NoDeletes", "Effect": "Deny", "Principal": "*", "Action": "dynamodb:DeleteItem", "Resource": "{arn}"}},
            {{"Sid": "NoIndexReads", "Effect": "Deny", "Principal": {{"AWS": "{ACCOUNT}"}}, "Action": "dynamodb:Query", "Resource": "{arn}/index/*"}}]}}"#,
        user("reader")
    );
    put_policy(admin, &arn, &policy, None).await;
    put(&reader, "r1").await.unwrap();
    let scan = reader.scan().table_name("Alpha").send().await;
    let why_not = "because no identity-based policy allows the dynamodb:Scan action";
    assert_eq!(error_of(scan), denied("reader", "Scan", &arn, why_not));

    // An explicit Deny in the table's policy restricts even a key with full access.
    put(admin, "a1").await.unwrap();
    let delete = admin
        .delete_item()
        .table_name("Alpha")
        .key("pk", Av::S("a1".into()))
        .send()
        .await;
    assert_eq!(
        error_of(delete),
        denied("admin", "DeleteItem", &arn, RESOURCE_DENY)
    );
    let by_day = admin
        .query()
        .table_name("Alpha")
        .index_name("ByDay")
        .key_condition_expression("#d = :d")
        .expression_attribute_names("#d", "day")
        .expression_attribute_values(":d", Av::S("mon".into()))
        .send()
        .await;
    let index = format!("{arn}/index/ByDay");
    assert_eq!(
        error_of(by_day),
        denied("admin", "Query", &index, RESOURCE_DENY)
    );
    let on_table = admin
        .query()
        .table_name("Alpha")
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", Av::S("a1".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(on_table.count(), 1);

    // Once the policy is gone, so are its grants and denials.
    admin
        .delete_resource_policy()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let why_not = "because no identity-based policy allows the dynamodb:PutItem action";
    assert_eq!(
        error_of(put(&reader, "r2").await),
        denied("reader", "PutItem", &arn, why_not)
    );
    admin
        .delete_item()
        .table_name("Alpha")
        .key("pk", Av::S("a1".into()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_policy_that_locks_its_author_out_needs_confirmation() {
    let setup = Setup::new();
    let admin = &setup.admin;
    common::create_table(admin, "Locked", &[("pk", "S")]).await;
    let arn = table_arn("Locked");
    let lockout = statement("Deny", &aws(&user("admin")), &["PutResourcePolicy"], &arn);
    let refused = admin
        .put_resource_policy()
        .resource_arn(&arn)
        .policy(&lockout)
        .send()
        .await;
    assert_eq!(
        error_of(refused),
        (
            "AccessDeniedException".into(),
            "The new resource policy will not allow you to update the resource policy in the future.".into()
        )
    );
    admin
        .put_resource_policy()
        .resource_arn(&arn)
        .policy(&lockout)
        .confirm_remove_self_resource_access(true)
        .send()
        .await
        .unwrap();
    let next = statement("Deny", "\"*\"", &["DeleteItem"], &arn);
    let locked = admin
        .put_resource_policy()
        .resource_arn(&arn)
        .policy(next)
        .send()
        .await;
    assert_eq!(
        error_of(locked),
        denied("admin", "PutResourcePolicy", &arn, RESOURCE_DENY)
    );
    // Deleting the policy is another action, which it does not deny.
    admin
        .delete_resource_policy()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn create_table_attaches_its_resource_policy() {
    let setup = Setup::new();
    let admin = &setup.admin;
    let arn = table_arn("Guarded");
    let policy = statement("Deny", "\"*\"", &["DeleteTable"], &arn);
    let (keys, definitions) = common::table_keys(&[("pk", "S")]);
    admin
        .create_table()
        .table_name("Guarded")
        .set_key_schema(Some(keys.clone()))
        .set_attribute_definitions(Some(definitions.clone()))
        .billing_mode(BillingMode::PayPerRequest)
        .resource_policy(&policy)
        .send()
        .await
        .unwrap();
    let (stored, revision) = get_policy(admin, &arn).await;
    assert_eq!(stored, policy);
    assert_eq!(revision.len(), 13);
    let delete = admin.delete_table().table_name("Guarded").send().await;
    assert_eq!(
        error_of(delete),
        denied("admin", "DeleteTable", &arn, RESOURCE_DENY)
    );

    let invalid = admin
        .create_table()
        .table_name("Unguarded")
        .set_key_schema(Some(keys))
        .set_attribute_definitions(Some(definitions))
        .billing_mode(BillingMode::PayPerRequest)
        .resource_policy("{not json")
        .send()
        .await;
    assert_eq!(
        error_of(invalid),
        validation(&format!(
            "{INVALID}Invalid policy document: This policy contains invalid Json"
        ))
    );
    let tables = admin.list_tables().send().await.unwrap();
    assert_eq!(
        tables.table_names(),
        ["Guarded"],
        "no table without its policy"
    );
}
