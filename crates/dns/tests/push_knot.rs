//! Push mode against a real Knot DNS: each test starts its own `knotd` (Debian package `knot`) on a
//! free loopback port with a zone that accepts TSIG-signed updates, pushes plans with
//! `haven_dns::push`, and checks what Knot then answers to ordinary queries.
//!
//! The server is started by `tests/knot`, which installs nothing: `scripts/test.sh` installs `knot`
//! when `knotd` is missing, and without it every test here fails, saying so.

mod knot;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use haven_dns::config::DnsConfig;
use haven_dns::plan::{Generation, Plan, RecordSet};
use haven_dns::push::{Prepared, Publisher, PushConfig, PushError, PushOutcome};
use haven_dns::subsystem::DnsSubsystem;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{RData, RecordType};
use knot::{free_port, query, try_query};
use tokio::sync::watch;

const ZONE: &str = "haven.test.";
const REGIONAL: &str = "dynamodb.us-east-1.haven.test.";
const GLOBAL: &str = "dynamodb.haven.test.";
const KEY_NAME: &str = "haven-push.";

/// Knot serving `haven.test.` with a key that may update it, and that key's secret.
struct Knot {
    server: knot::Knot,
    secret: String,
}

impl std::ops::Deref for Knot {
    type Target = knot::Knot;

    fn deref(&self) -> &knot::Knot {
        &self.server
    }
}

impl Knot {
    /// Starts `knotd` serving `haven.test.` with the SOA, NS and `extra` zone-file lines.
    fn start(extra: &str) -> Knot {
        let secret = random_secret();
        let server = knot::Knot::start(
            ZONE,
            &zone_file(extra),
            &key_conf(&secret),
            Some("haven-update"),
        );
        Knot { server, secret }
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

/// One key, which may update the zone (`action: update`); nobody else may.
fn key_conf(secret: &str) -> String {
    format!(
        r#"key:
  - id: {KEY_NAME}
    algorithm: hmac-sha256
    secret: {secret}
acl:
  - id: haven-update
    key: {KEY_NAME}
    action: update"#
    )
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
    let haven = DnsSubsystem::start(DnsConfig::parse(&config).expect("config"), 2).expect("start");
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
