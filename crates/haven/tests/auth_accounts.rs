//! Accounts with `--auth`, as in AWS: each access key belongs to an account (its `account` line in
//! the credentials file, or the server's own `--account`), sees that account's tables and no
//! other's, and its tables' ARNs name the account, so policies name it too. Other accounts' tables
//! survive a restart; bad account ids are refused with a clear error.

mod common;

use std::path::Path;
use std::process::Command;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue as Av;
use common::{HavenServer, error_of, haven_keys, sdk_client_with_key};

const OWN: &str = "111111111111";
const ALICE: &str = "222222222222";
const BOB: &str = "333333333333";

/// `haven keys create --name NAME [--account ACCOUNT]`: the key's id, and a client signing with it.
fn key(file: &Path, endpoint: &str, name: &str, account: Option<&str>) -> (String, Client) {
    let mut args = vec!["--name", name];
    args.extend(account.map(|a| ["--account", a]).into_iter().flatten());
    let (id, secret) = common::create_key_with(file, &args);
    let client = sdk_client_with_key(endpoint, &id, &secret);
    (id, client)
}

fn serve(data_dir: &Path, credentials: &Path) -> HavenServer {
    HavenServer::start_with(&[
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--auth",
        "--credentials",
        credentials.to_str().unwrap(),
        "--account",
        OWN,
    ])
}

async fn tables(client: &Client) -> Vec<String> {
    let listed = client.list_tables().send().await.unwrap();
    listed.table_names().to_vec()
}

async fn table_arn(client: &Client, table: &str) -> String {
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap();
    described.table().unwrap().table_arn().unwrap().to_string()
}

async fn put(client: &Client, table: &str, pk: &str) {
    client
        .put_item()
        .table_name(table)
        .item("pk", Av::S(pk.into()))
        .send()
        .await
        .unwrap();
}

async fn pks(client: &Client, table: &str) -> Vec<String> {
    let items = common::scan_items(client, table).await;
    let mut pks: Vec<String> = items
        .iter()
        .map(|item| item["pk"].as_s().unwrap().clone())
        .collect();
    pks.sort();
    pks
}

#[tokio::test]
async fn each_key_sees_the_tables_of_its_account_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    let data = dir.path().join("data");
    // The server re-reads the credentials file on every request: keys made now count at once.
    std::fs::write(&file, "").unwrap();
    let server = serve(&data, &file);
    let endpoint = server.endpoint();
    let (_, admin) = key(&file, &endpoint, "admin", None);
    let (_, alice) = key(&file, &endpoint, "alice", Some(ALICE));
    let (_, alice_too) = key(&file, &endpoint, "alice-ci", Some(ALICE));
    let (_, bob) = key(&file, &endpoint, "bob", Some(BOB));
    let listed = haven_keys(&file, &["list"]);
    assert!(
        listed.contains(&format!("alice\tfull access\t{ALICE}")),
        "{listed}"
    );
    assert!(
        listed.contains("admin\tfull access\tserver's account"),
        "{listed}"
    );

    common::create_table(&alice, "Orders", &[("pk", "S")]).await;
    put(&alice, "Orders", "from-alice").await;
    assert_eq!(
        table_arn(&alice, "Orders").await,
        format!("arn:aws:dynamodb:us-east-1:{ALICE}:table/Orders")
    );
    // Another key of the same account sees the same table and items.
    assert_eq!(tables(&alice_too).await, ["Orders"]);
    assert_eq!(pks(&alice_too, "Orders").await, ["from-alice"]);

    // Other accounts see nothing of it, and may have a table of the same name of their own.
    assert!(tables(&bob).await.is_empty());
    assert!(tables(&admin).await.is_empty());
    let (kind, _) = error_of(bob.describe_table().table_name("Orders").send().await);
    assert_eq!(kind, "ResourceNotFoundException");
    common::create_table(&bob, "Orders", &[("pk", "S")]).await;
    put(&bob, "Orders", "from-bob").await;
    common::create_table(&admin, "Audit", &[("pk", "S")]).await;
    assert_eq!(
        table_arn(&admin, "Audit").await,
        format!("arn:aws:dynamodb:us-east-1:{OWN}:table/Audit")
    );
    assert_eq!(pks(&alice, "Orders").await, ["from-alice"]);
    assert_eq!(pks(&bob, "Orders").await, ["from-bob"]);
    assert_eq!(tables(&admin).await, ["Audit"]);

    // Every account's tables survive a restart.
    drop(server);
    let server = serve(&data, &file);
    let endpoint = server.endpoint();
    let again = |name: &str| {
        let text = std::fs::read_to_string(&file).unwrap();
        let id = text
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .and_then(|l| l.split(' ').next())
            .unwrap()
            .to_string();
        let secret = text
            .lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .and_then(|l| l.split(' ').nth(1))
            .unwrap()
            .to_string();
        sdk_client_with_key(&endpoint, &id, &secret)
    };
    assert_eq!(pks(&again("alice"), "Orders").await, ["from-alice"]);
    assert_eq!(pks(&again("bob"), "Orders").await, ["from-bob"]);
    assert_eq!(tables(&again("admin")).await, ["Audit"]);
}

#[tokio::test]
async fn policies_name_the_account_of_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(&file, "").unwrap();
    let server = serve(&dir.path().join("data"), &file);
    let (_, bob) = key(&file, &server.endpoint(), "bob", Some(BOB));
    let (reader_id, reader) = key(&file, &server.endpoint(), "bob-reader", Some(BOB));
    common::create_table(&bob, "Orders", &[("pk", "S")]).await;
    put(&bob, "Orders", "a").await;
    let get = || {
        reader
            .get_item()
            .table_name("Orders")
            .key("pk", Av::S("a".into()))
            .send()
    };
    let policy = |account: &str| {
        format!(
            r#"{{"Statement": [{{"Effect": "Allow", "Action": "dynamodb:GetItem",
                "Resource": "arn:aws:dynamodb:us-east-1:{account}:table/Orders"}}]}}"#
        )
    };
    let set = |account: &str| {
        let path = dir.path().join("policy.json");
        std::fs::write(&path, policy(account)).unwrap();
        haven_keys(&file, &["policy", &reader_id, path.to_str().unwrap()]);
    };
    set(ALICE);
    assert_eq!(error_of(get().await).0, "AccessDeniedException");
    set(BOB);
    assert!(get().await.unwrap().item().is_some());
}

#[test]
fn account_ids_are_twelve_digits() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    let haven = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(args)
            .output()
            .unwrap()
    };
    let credentials = file.to_str().unwrap();
    let refused = haven(&[
        "keys",
        "create",
        "--account",
        "12345",
        "--credentials",
        credentials,
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("an AWS account id is 12 digits"));

    let refused = haven(&["serve", "--in-memory", "--account", "abc"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("an AWS account id is 12 digits"));

    std::fs::write(&file, "AKID secret\naccount AKID 42\n").unwrap();
    let refused = haven(&[
        "serve",
        "--in-memory",
        "--auth",
        "--credentials",
        credentials,
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("line 2: the account of AKID must be 12 digits"),
        "{stderr}"
    );
}
