//! Push mode against a real Knot DNS: each test starts its own `knotd` (Debian package `knot`) on a
//! free loopback port with a zone that accepts TSIG-signed updates, pushes plans with
//! `haven_dns::push`, and checks what Knot then answers to ordinary queries.
//!
//! The test installs nothing: `scripts/test.sh` installs `knot` when `knotd` is missing, and without
//! it every test here fails, saying so.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use haven_dns::config::DnsConfig;
use haven_dns::plan::{Generation, Plan, RecordSet};
use haven_dns::push::{Prepared, Publisher, PushConfig, PushError, PushOutcome};
use haven_dns::subsystem::DnsSubsystem;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::sync::watch;

const ZONE: &str = "haven.test.";
const REGIONAL: &str = "dynamodb.us-east-1.haven.test.";
const GLOBAL: &str = "dynamodb.haven.test.";
const KEY_NAME: &str = "haven-push.";

/// A running `knotd`, killed by its PID when dropped.
struct Knot {
    child: Child,
    address: SocketAddr,
    secret: String,
    dir: tempfile::TempDir,
}

impl Knot {
    /// Starts `knotd` serving `haven.test.` with the SOA, NS and `extra` zone-file lines.
    fn start(extra: &str) -> Knot {
        let knotd = find_knotd();
        let dir = tempfile::tempdir().expect("temp dir");
        let address = free_port();
        let secret = random_secret();
        std::fs::write(dir.path().join("haven.test.zone"), zone_file(extra)).unwrap();
        std::fs::write(
            dir.path().join("knot.conf"),
            knot_conf(dir.path(), address, &secret),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("knotd.log")).unwrap();
        let child = Command::new(knotd)
            .arg("--config")
            .arg(dir.path().join("knot.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start knotd");
        let mut knot = Knot {
            child,
            address,
            secret,
            dir,
        };
        knot.wait_until_serving();
        knot
    }

    fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("knotd exited ({status}):\n{}", self.log());
            }
            if try_query(self.address, ZONE, RecordType::SOA).is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("knotd did not answer within 15 s:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default()
    }

    fn publisher(&self) -> Publisher {
        self.publisher_with(KEY_NAME, &self.secret)
    }

    fn publisher_with(&self, key_name: &str, secret: &str) -> Publisher {
        Publisher::new(&PushConfig {
            server: self.address,
            key_name: key_name.to_owned(),
            algorithm: "hmac-sha256".to_owned(),
            secret: secret.to_owned(),
            timeout_ms: 5000,
        })
        .expect("valid push config")
    }

    /// Knot answers exactly `plan`: every managed name's addresses and TTL, and its generation.
    fn assert_holds(&self, plan: &Plan) {
        for set in plan.record_sets.values() {
            let expected: BTreeMap<IpAddr, u32> =
                set.addresses.iter().map(|&ip| (ip, set.ttl)).collect();
            assert_eq!(
                addresses(self.address, &set.name),
                expected,
                "records of {}",
                set.name
            );
        }
        assert_eq!(generation(self.address), vec![plan.generation.to_string()]);
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The A and AAAA addresses `server` answers for `name`, with their TTLs.
fn addresses(server: SocketAddr, name: &str) -> BTreeMap<IpAddr, u32> {
    let mut found = BTreeMap::new();
    for record_type in [RecordType::A, RecordType::AAAA] {
        for record in query(server, name, record_type).answers {
            match record.data {
                RData::A(a) => found.insert(IpAddr::V4(a.0), record.ttl),
                RData::AAAA(aaaa) => found.insert(IpAddr::V6(aaaa.0), record.ttl),
                other => panic!("{name} {record_type} answered {other:?}"),
            };
        }
    }
    found
}

/// The strings of the generation TXT record(s) `server` answers.
fn generation(server: SocketAddr) -> Vec<String> {
    query(server, "_generation.haven.test.", RecordType::TXT)
        .answers
        .into_iter()
        .flat_map(|record| match record.data {
            RData::TXT(txt) => txt.txt_data.into_vec(),
            other => panic!("generation answered {other:?}"),
        })
        .map(|text| String::from_utf8(text.into_vec()).unwrap())
        .collect()
}

fn find_knotd() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("knotd"))
        .find(|candidate| candidate.is_file())
        .expect(
            "knotd not found: these tests need Knot DNS (Debian package `knot`); \
             scripts/test.sh installs it",
        )
}

/// A port free for both UDP and TCP on 127.0.0.1 a moment ago.
fn free_port() -> SocketAddr {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = tcp.local_addr().unwrap();
        if UdpSocket::bind(address).is_ok() {
            return address;
        }
    }
}

fn random_secret() -> String {
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut key))
        .expect("/dev/urandom");
    base64::engine::general_purpose::STANDARD.encode(key)
}

fn zone_file(extra: &str) -> String {
    format!(
        "$ORIGIN haven.test.\n$TTL 300\n\
         @ SOA ns.haven.test. hostmaster.haven.test. 1 3600 600 86400 60\n\
         @ NS ns\nns A 127.0.0.1\n{extra}\n"
    )
}

/// One zone, one key; the key may update the zone (`action: update`), nobody else may.
fn knot_conf(dir: &Path, address: SocketAddr, secret: &str) -> String {
    let dir = dir.display();
    let (ip, port) = (address.ip(), address.port());
    format!(
        r#"server:
    rundir: "{dir}"
    listen: {ip}@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "{dir}"
key:
  - id: {KEY_NAME}
    algorithm: hmac-sha256
    secret: {secret}
acl:
  - id: haven-update
    key: {KEY_NAME}
    action: update
zone:
  - domain: {ZONE}
    storage: "{dir}"
    file: "haven.test.zone"
    zonefile-sync: -1
    journal-content: none
    acl: haven-update
"#
    )
}

fn try_query(server: SocketAddr, name: &str, record_type: RecordType) -> Option<Message> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut message = Message::query();
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
    socket.send_to(&message.to_vec().unwrap(), server).ok()?;
    let mut buffer = [0; 4096];
    let (length, _) = socket.recv_from(&mut buffer).ok()?;
    let response = Message::from_vec(&buffer[..length]).expect("decodable answer");
    assert_eq!(response.metadata.id, message.metadata.id);
    Some(response)
}

/// A query that must be answered. Over UDP, even on loopback, a busy server may drop a datagram
/// (the never-empty test keeps one busy): a lost one is asked again, five times at most.
fn query(server: SocketAddr, name: &str, record_type: RecordType) -> Message {
    (0..5)
        .find_map(|_| try_query(server, name, record_type))
        .unwrap_or_else(|| panic!("no answer from knotd to {name} {record_type}"))
}

fn plan(generation: Generation, addresses: &[&str], ttl: u32) -> Plan {
    let addresses: Vec<IpAddr> = addresses.iter().map(|ip| ip.parse().unwrap()).collect();
    let set = |name: &str| RecordSet {
        name: name.to_owned(),
        addresses: addresses.clone(),
        ttl,
        degraded: false,
    };
    Plan {
        generation,
        created_at_ms: 0,
        zone: ZONE.to_owned(),
        record_sets: [REGIONAL, GLOBAL]
            .into_iter()
            .map(|name| (name.to_owned(), set(name)))
            .collect(),
    }
}

async fn prepare(publisher: &Publisher, plan: &Plan) -> haven_dns::push::Update {
    match publisher.prepare(plan).await.expect("prepare") {
        Prepared::Send(update) => update,
        other => panic!("expected an update to send, got {other:?}"),
    }
}

#[tokio::test]
async fn first_push_replaces_what_the_zone_held_and_writes_the_generation() {
    let knot = Knot::start("dynamodb.us-east-1 A 192.0.2.99");
    let plan = plan(1, &["10.0.0.1", "10.0.0.2", "fd00::1"], 30);

    let outcome = knot.publisher().publish(&plan).await.expect("push");

    assert_eq!(outcome, PushOutcome::Applied { previous: None });
    knot.assert_holds(&plan);
}

#[tokio::test]
async fn a_newer_plan_replaces_the_records_and_older_or_equal_plans_send_nothing() {
    let knot = Knot::start("");
    let publisher = knot.publisher();
    let first = plan(1, &["10.0.0.1", "10.0.0.2", "fd00::1"], 30);
    let second = plan(2, &["10.0.0.2", "10.0.0.3"], 15);
    publisher.publish(&first).await.expect("first push");

    let outcome = publisher.publish(&second).await.expect("second push");

    assert_eq!(outcome, PushOutcome::Applied { previous: Some(1) });
    knot.assert_holds(&second);
    for again in [&second, &first] {
        let outcome = publisher.publish(again).await.expect("repeat");
        assert_eq!(outcome, PushOutcome::UpToDate { current: 2 });
    }
    knot.assert_holds(&second);
}

/// I1 across the wire: an update built while generation 1 was in effect, sent after generation 3
/// was pushed, fails Knot's prerequisite (NXRRSET) and changes nothing.
#[tokio::test]
async fn an_older_plan_sent_late_is_rejected_by_the_server() {
    let knot = Knot::start("");
    let publisher = knot.publisher();
    publisher
        .publish(&plan(1, &["10.0.0.1"], 30))
        .await
        .unwrap();
    let late = prepare(&publisher, &plan(2, &["10.0.0.2"], 30)).await;
    let newest = plan(3, &["10.0.0.3", "10.0.0.4"], 30);
    let outcome = publisher.publish(&newest).await.expect("newest push");
    assert_eq!(outcome, PushOutcome::Applied { previous: Some(1) });

    let outcome = publisher.send(late).await.expect("late send");

    assert_eq!(
        outcome,
        PushOutcome::PrerequisiteFailed { current: Some(3) }
    );
    knot.assert_holds(&newest);
}

/// The first push's prerequisite is "no generation yet" (YXRRSET when it fails).
#[tokio::test]
async fn a_late_first_push_is_rejected_once_the_zone_has_a_generation() {
    let knot = Knot::start("");
    let publisher = knot.publisher();
    let late = prepare(&publisher, &plan(1, &["10.0.0.1"], 30)).await;
    let newest = plan(2, &["10.0.0.2"], 30);
    publisher.publish(&newest).await.expect("newest push");

    let outcome = publisher.send(late).await.expect("late send");

    assert_eq!(
        outcome,
        PushOutcome::PrerequisiteFailed { current: Some(2) }
    );
    knot.assert_holds(&newest);
}

#[tokio::test]
async fn a_wrongly_signed_update_is_refused() {
    let knot = Knot::start("");
    let first = plan(1, &["10.0.0.1"], 30);
    knot.publisher().publish(&first).await.expect("first push");
    let second = plan(2, &["10.0.0.2"], 30);
    let wrong_secret = knot.publisher_with(KEY_NAME, &random_secret());
    let unknown_key = knot.publisher_with("someone-else.", &knot.secret);

    let bad_signature = wrong_secret.publish(&second).await;
    let bad_key = unknown_key.publish(&second).await;

    assert!(
        matches!(
            bad_signature,
            Err(PushError::NotAuth {
                tsig_error: Some(TsigError::BadSig)
            })
        ),
        "{bad_signature:?}"
    );
    assert!(
        matches!(
            bad_key,
            Err(PushError::NotAuth {
                tsig_error: Some(TsigError::BadKey)
            })
        ),
        "{bad_key:?}"
    );
    knot.assert_holds(&first);
}

/// The follower pushes each plan the control loop puts in effect; meanwhile a reader queries the
/// regional name without pause, and no answer is ever empty (I2), though consecutive plans share
/// no address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_pushes_each_plan_and_the_name_never_goes_empty() {
    let knot = Knot::start("");
    let address_sets: [&[&str]; 3] = [
        &["10.0.0.1", "10.0.0.2"],
        &["10.0.1.1"],
        &["10.0.2.1", "fd00::2", "10.0.2.3"],
    ];
    let (plans, receiver) = watch::channel(Arc::new(plan(1, address_sets[0], 30)));
    let follower = tokio::spawn(haven_dns::push::follow(knot.publisher(), receiver));
    wait_for_generation(&knot, 1);
    let reader = Reader::start(knot.address, REGIONAL);

    let mut last = plan(1, address_sets[0], 30);
    for generation in 2..=30 {
        last = plan(generation, address_sets[generation as usize % 3], 30);
        plans.send(Arc::new(last.clone())).unwrap();
        wait_for_generation(&knot, generation);
    }

    let (answers, bad) = reader.stop();
    assert!(answers > 0, "the reader never got an answer");
    assert!(
        bad.is_empty(),
        "{} bad answers of {answers}, the first: {:?}",
        bad.len(),
        bad.first()
    );
    knot.assert_holds(&last);
    drop(plans);
    follower
        .await
        .expect("the follower ends when the sender is dropped");
}

fn wait_for_generation(knot: &Knot, wanted: Generation) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while generation(knot.address) != vec![wanted.to_string()] {
        assert!(
            Instant::now() < deadline,
            "generation {wanted} not pushed; Knot holds {:?}",
            generation(knot.address)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Queries one name's A records in a loop on its own thread, keeping every answer that is not a
/// NOERROR with at least one address.
struct Reader {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, Vec<String>)>,
}

impl Reader {
    fn start(server: SocketAddr, name: &'static str) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let (mut answers, mut bad) = (0, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let Some(response) = try_query(server, name, RecordType::A) else {
                        continue;
                    };
                    answers += 1;
                    if response.response_code != ResponseCode::NoError
                        || response.answers.is_empty()
                    {
                        bad.push(format!("{response:?}"));
                    }
                }
                (answers, bad)
            }
        });
        Reader { stop, thread }
    }

    fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("reader thread")
    }
}

/// The wiring behind `haven serve --config` with a `[push]` section: the DNS subsystem pushes the
/// plan it serves, and Knot ends up answering what Haven's own DNS answers, at the same generation.
#[test]
fn the_dns_subsystem_pushes_the_plan_it_serves() {
    let knot = Knot::start("");
    let config = format!(
        r#"
        [zone]
        apex = "haven.test"
        nameservers = [{{ name = "ns1.haven.test", addresses = ["127.0.0.1"] }}]
        [dns]
        listen = ["{haven}"]
        [[regions]]
        name = "us-east-1"
        nodes = ["127.0.0.1:9", "127.0.0.2:9"]
        [health]
        interval_ms = 100
        timeout_ms = 100
        [push]
        server = "{knot}"
        key_name = "{KEY_NAME}"
        secret = "{secret}"
        "#,
        haven = free_port(),
        knot = knot.address,
        secret = knot.secret,
    );
    let haven = DnsSubsystem::start(DnsConfig::parse(&config).expect("config")).expect("start");
    let haven_dns = haven.addresses()[0];

    // Either server may change between two queries (Haven makes a newer plan when the nodes fail
    // their health checks; the follower then pushes it): compare the addresses only when both
    // generations are the same, and unchanged, before and after reading them.
    let servers = [haven_dns, knot.address];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = servers.map(generation);
        let [in_haven, in_knot] = servers.map(|server| addresses(server, REGIONAL));
        let after = servers.map(generation);
        if before == after && before[0] == before[1] && !before[0].is_empty() {
            assert!(!in_haven.is_empty());
            assert_eq!(in_knot, in_haven, "at generation {before:?}");
            return;
        }
        assert!(Instant::now() < deadline, "Haven and Knot hold {after:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
