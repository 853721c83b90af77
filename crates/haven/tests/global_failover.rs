//! Issue 18, the October 2025 scenario end to end: two regions (us-east-1 on 127.0.0.1,
//! eu-west-1 on 127.0.0.2, one node each, on disk) replicate a global table and answer DNS with
//! failover order; a client writes through `dynamodb.haven.test`, resolving it with Haven's DNS
//! before each request. The first region is killed (SIGKILL) under those writes: the name moves to
//! the second region within the health checks' detection time, and the client carries on there.
//! Acknowledged writes the second region lacks at that point must all be younger than the
//! replication lag measured before the kill; once the first region is back, it catches up and
//! ships what it had not, and both regions hold every acknowledged write (none lost).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, CreateReplicationGroupMemberAction, ReplicaStatus, ReplicationGroupUpdate,
};
use common::dns::{addresses, ask_udp_raw, client_socket, query_message};
use common::{create_table, sdk_client};
use hickory_proto::rr::RecordType;

const NAME: &str = "dynamodb.haven.test.";
const INTERVAL_MS: u64 = 250;
const FAILURES: u64 = 2;
/// Room for scheduling on a busy 2-core machine on top of the configured detection time.
const SLACK: Duration = Duration::from_secs(5);
const WRITES_BEFORE: usize = 300;
const WRITES_AFTER: usize = 100;

struct Region {
    name: &'static str,
    api: SocketAddr,
    dns: SocketAddr,
    data_dir: PathBuf,
    child: Option<Child>,
}

impl Region {
    fn start(&mut self, config: &Path) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
            .arg("serve")
            .args(["--listen", &self.api.to_string()])
            .args(["--dns-listen", &self.dns.to_string()])
            .args(["--config", config.to_str().unwrap()])
            .args(["--data-dir", self.data_dir.to_str().unwrap()])
            .args(["--region", self.name, "--log-level", "warn"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("haven starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("haven prints its address");
        assert!(line.contains(&self.api.to_string()), "{line:?}");
        self.child = Some(child);
    }

    /// SIGKILL, by PID.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("the region runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn client(&self) -> Client {
        sdk_client(&format!("http://{}", self.api))
    }

    fn status(&self) -> serde_json::Value {
        ureq::get(format!("http://{}/replication/status", self.api))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill();
        }
    }
}

/// A port free for TCP on every one of `ips` (the DNS answer carries addresses, not ports, so
/// both regions listen on the same port), or for TCP and UDP on one.
fn common_port(ips: &[Ipv4Addr], udp: bool) -> u16 {
    loop {
        let port = TcpListener::bind((ips[0], 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tcp_free = ips.iter().all(|ip| TcpListener::bind((*ip, port)).is_ok());
        if tcp_free && (!udp || UdpSocket::bind((ips[0], port)).is_ok()) {
            return port;
        }
    }
}

fn write_config(path: &Path, regions: &[&Region]) {
    let config = format!(
        r#"[zone]
apex = "haven.test"
ttl = 2
nameservers = [{{ name = "ns1.haven.test", addresses = ["127.0.0.1"] }}]

[[regions]]
name = "{}"
nodes = ["{}"]

[[regions]]
name = "{}"
nodes = ["{}"]

[failover]
order = ["us-east-1", "eu-west-1"]

[health]
interval_ms = {INTERVAL_MS}
timeout_ms = {INTERVAL_MS}
failures = {FAILURES}
successes = 2

[replication]
access_key_id = "AKIDREPLICATION"
secret_access_key = "replication-secret"
interval_ms = 20
timeout_ms = 1000
"#,
        regions[0].name, regions[0].api, regions[1].name, regions[1].api
    );
    std::fs::write(path, config).unwrap();
}

/// What `dynamodb.haven.test` resolves to, asking the region's DNS that answered last first,
/// then the others (as a stub resolver with several name servers does).
fn resolve(regions: &[&Region], preferred: &mut usize) -> Option<IpAddr> {
    let socket = client_socket();
    (0..regions.len()).find_map(|offset| {
        let index = (*preferred + offset) % regions.len();
        let query = query_message(NAME, RecordType::A, None);
        let answer = ask_udp_raw(&socket, regions[index].dns, &query)?;
        *preferred = index;
        addresses(&answer).into_iter().next()
    })
}

/// One acknowledged write: its number, when it was acknowledged and by which address.
struct Ack {
    at: Instant,
    by: IpAddr,
}

fn key(i: usize) -> AttributeValue {
    AttributeValue::S(format!("w{i:05}"))
}

/// The written keys `client`'s region holds.
async fn held(client: &Client) -> BTreeSet<String> {
    let items = common::scan_items(client, "events").await;
    let pk = |item: &HashMap<String, AttributeValue>| match item.get("pk") {
        Some(AttributeValue::S(pk)) => Some(pk.clone()),
        _ => None,
    };
    items.iter().filter_map(pk).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_region_fails_over_by_name_and_converges_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let ips = [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)];
    let port = common_port(&ips, false);
    let region = |i: usize, name| Region {
        name,
        api: SocketAddr::new(ips[i].into(), port),
        dns: SocketAddr::new(ips[i].into(), common_port(&ips[i..=i], true)),
        data_dir: dir.path().join(name),
        child: None,
    };
    let mut first = region(0, "us-east-1");
    let mut second = region(1, "eu-west-1");
    let config = dir.path().join("haven.toml");
    write_config(&config, &[&first, &second]);
    first.start(&config);
    second.start(&config);
    let deadline = Instant::now() + Duration::from_secs(20);
    while resolve(&[&first, &second], &mut 0) != Some(ips[0].into()) {
        assert!(
            Instant::now() < deadline,
            "the name never answered the first region"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    create_table(&first.client(), "events", &[("pk", "S")]).await;
    let replica = ReplicationGroupUpdate::builder()
        .create(
            CreateReplicationGroupMemberAction::builder()
                .region_name("eu-west-1")
                .build()
                .unwrap(),
        )
        .build();
    first
        .client()
        .update_table()
        .table_name("events")
        .replica_updates(replica)
        .send()
        .await
        .unwrap();
    let active = |client: Client| async move {
        let table = client
            .describe_table()
            .table_name("events")
            .send()
            .await
            .unwrap();
        table
            .table()
            .unwrap()
            .replicas()
            .iter()
            .all(|r| r.replica_status() == Some(&ReplicaStatus::Active))
    };
    while !active(first.client()).await {
        assert!(
            Instant::now() < deadline + Duration::from_secs(20),
            "the replica never became ACTIVE"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The client: resolve, write, and on any failure resolve again and retry the same write.
    let mut clients: BTreeMap<IpAddr, Client> = BTreeMap::new();
    let mut acks: Vec<Ack> = Vec::new();
    let mut lag_ms = 0u64;
    let mut preferred = 0;
    let mut killed_at = None;
    let mut failed_over_at = None;
    while acks.len() < WRITES_BEFORE + WRITES_AFTER {
        let i = acks.len();
        if i == WRITES_BEFORE && killed_at.is_none() {
            let status = first.status();
            let sample = &status["Replication"][0];
            lag_ms = sample["ReplicationLatencyMs"]
                .as_u64()
                .unwrap()
                .max(sample["BehindMs"].as_u64().unwrap());
            first.kill();
            killed_at = Some(Instant::now());
        }
        let Some(ip) = resolve(&[&first, &second], &mut preferred) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let client = clients
            .entry(ip)
            .or_insert_with(|| sdk_client(&format!("http://{}", SocketAddr::new(ip, port))));
        let written = client
            .put_item()
            .table_name("events")
            .item("pk", key(i))
            .send()
            .await;
        match written {
            Ok(_) => {
                if killed_at.is_some() && failed_over_at.is_none() {
                    failed_over_at = Some(Instant::now());
                }
                acks.push(Ack {
                    at: Instant::now(),
                    by: ip,
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let killed_at = killed_at.unwrap();
    let failover = failed_over_at.unwrap() - killed_at;
    let detection = Duration::from_millis(INTERVAL_MS * FAILURES + INTERVAL_MS);
    assert!(failover < detection + SLACK, "failover took {failover:?}");
    assert!(
        acks[WRITES_BEFORE..]
            .iter()
            .all(|a| a.by == IpAddr::from(ips[1]))
    );

    // What the surviving region lacks: only writes younger than the lag measured at the kill.
    let survived = held(&second.client()).await;
    let lost: Vec<usize> = (0..acks.len())
        .filter(|i| !survived.contains(&format!("w{i:05}")))
        .collect();
    let window = Duration::from_millis(lag_ms) + Duration::from_millis(200);
    println!(
        "lag at the kill {lag_ms} ms, failover in {failover:?}, {} acknowledged writes missing after failover",
        lost.len()
    );
    for i in &lost {
        assert!(
            *i < WRITES_BEFORE,
            "write {i}, acknowledged by the survivor, is missing"
        );
        let age = killed_at - acks[*i].at;
        assert!(
            age <= window,
            "write {i}, acknowledged {age:?} before the kill (lag {lag_ms} ms), was lost"
        );
    }

    // The first region returns: it catches up, ships what it had not, and both hold everything.
    first.start(&config);
    let all: BTreeSet<String> = (0..acks.len()).map(|i| format!("w{i:05}")).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (a, b) = (held(&first.client()).await, held(&second.client()).await);
        if a == all && b == all {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence after recovery: first lacks {}, second lacks {}",
            all.difference(&a).count(),
            all.difference(&b).count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
