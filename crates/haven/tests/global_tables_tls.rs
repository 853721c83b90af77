//! Issue 18: replication between regions over HTTPS (`[replication] scheme = "https"`).
//!
//! The second region serves its API over TLS (`--tls-cert`, a certificate for 127.0.0.1 from a
//! CA made here). A first region trusting that CA fills a new replica there and the replica
//! becomes ACTIVE; a first region trusting another CA never delivers a batch: the replica stays
//! CREATING, and the status page and the metrics show the refused certificate. A configuration
//! asking for https without a CA bundle stops `haven serve` at start-up.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    CreateReplicationGroupMemberAction, ReplicaStatus, ReplicationGroupUpdate,
};
use common::HavenServer;
use common::authority::Authority;
use common::regions::{FIRST, SECOND, eventually, replicas, write_config};

/// The first region's configuration (in a folder of its own under `dir`, named `name`): the
/// second region at `second`, `replication` added to its `[replication]` section.
fn config(dir: &Path, name: &str, second: &str, replication: &str) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let addresses = ["127.0.0.1:1".parse().unwrap(), second.parse().unwrap()];
    let key = (
        "AKIDREPLICATION".to_string(),
        "replication-secret".to_string(),
    );
    write_config(&folder, FIRST, addresses, &key, replication)
}

fn first_region(config: &Path) -> HavenServer {
    let config = config.to_str().unwrap();
    HavenServer::start_with(&["--in-memory", "--region", FIRST, "--config", config])
}

/// Creates `table` in `first`'s region and asks for a replica in the second.
async fn replicate(first: &aws_sdk_dynamodb::Client, table: &str) {
    common::create_table(first, table, &[("pk", "S")]).await;
    let create = CreateReplicationGroupMemberAction::builder()
        .region_name(SECOND)
        .build()
        .unwrap();
    let update = ReplicationGroupUpdate::builder().create(create).build();
    let request = first
        .update_table()
        .table_name(table)
        .replica_updates(update);
    request.send().await.unwrap();
}

fn status(server: &HavenServer) -> serde_json::Value {
    let url = format!("{}/replication/status", server.endpoint());
    ureq::get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_speaks_tls_verified_against_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let authority = Authority::new("Haven test CA");
    let tls = authority.issue("127.0.0.1", dir.path());
    let mut args = vec!["--in-memory", "--region", SECOND];
    args.extend(tls.iter().map(String::as_str));
    let second = HavenServer::start_on("127.0.0.1:0", &args);
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &authority.pem).unwrap();
    let https = format!("scheme = \"https\"\nca_file = {:?}\n", ca.to_str().unwrap());
    let trusting = first_region(&config(
        dir.path(),
        "trusting",
        &second.address.to_string(),
        &https,
    ));
    let client = trusting.client();
    replicate(&client, "orders").await;
    client
        .put_item()
        .table_name("orders")
        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S("a".into()))
        .send()
        .await
        .unwrap();
    eventually(
        "the replica over TLS is ACTIVE",
        Duration::from_secs(20),
        || async {
            replicas(&client, "orders").await == [(SECOND.to_string(), ReplicaStatus::Active)]
        },
    )
    .await;

    let other = Authority::new("Another CA");
    let wrong = dir.path().join("other.pem");
    std::fs::write(&wrong, &other.pem).unwrap();
    let https = format!(
        "scheme = \"https\"\nca_file = {:?}\n",
        wrong.to_str().unwrap()
    );
    let distrusting = first_region(&config(
        dir.path(),
        "distrusting",
        &second.address.to_string(),
        &https,
    ));
    let client = distrusting.client();
    replicate(&client, "refused").await;
    eventually(
        "the refused certificate shows",
        Duration::from_secs(20),
        || async {
            let status = status(&distrusting);
            let error = status["Replication"][0]["LastError"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            error.contains("certificate")
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        replicas(&client, "refused").await,
        [(SECOND.to_string(), ReplicaStatus::Creating)],
        "nothing was delivered"
    );
    let metrics = ureq::get(format!("{}/metrics", distrusting.endpoint()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let series = format!(r#"haven_replication_send_errors{{table="refused",region="{SECOND}"}} "#);
    let errors: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series)?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {metrics}"));
    assert!(errors > 0.0, "{errors}");
}

#[test]
fn https_without_a_ca_bundle_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "no-ca", "127.0.0.1:2", "scheme = \"https\"\n");
    let output = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args([
            "serve",
            "--in-memory",
            "--listen",
            "127.0.0.1:0",
            "--region",
            FIRST,
        ])
        .args(["--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("[replication] scheme = \"https\" needs ca_file"),
        "{stderr}"
    );
}
