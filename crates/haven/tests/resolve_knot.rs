//! Issue 21, "What it must show": `haven resolve` in front of a real Knot DNS (Debian package
//! `knot`, started by `crates/dns/tests/knot`), with clients that resolve through it.
//!
//! The main test runs a client at a steady rate while the zone's record for a critical name is
//! emptied (NODATA), replaced by NXDOMAIN, given new addresses, and while Knot answers SERVFAIL,
//! is paused and is killed: the client never gets an empty or failed answer for the critical name,
//! gets the new addresses as soon as Knot serves them, and for a non-critical name gets Knot's
//! real answer, except that a stale answer stands in when Knot does not answer at all (RFC 8767).
//! BIND's dig and hickory's resolver read the same answers. The other tests cover the staleness
//! bound and flushes, the TCP probe, truncation and TCP, failover between upstreams, the DNSSEC
//! bits and garbage datagrams.

mod common;
#[path = "../../dns/tests/knot/mod.rs"]
mod knot;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::dns::{addresses, ask_tcp, ask_udp, ask_udp_raw, client_socket, dig, query_message};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use knot::Knot;

const ZONE: &str = "haven.test.";
const CRITICAL: &str = "dynamodb.us-east-1.haven.test.";
const OTHER: &str = "other.haven.test.";
/// What the resolver's settings make of a change: answers live 1 s (records, negative answers,
/// stand-ins), the refresher asks every 200 ms; the rest is room for a busy 2-core machine.
const SETTLE: Duration = Duration::from_millis(2500);
const PHASE: Duration = Duration::from_millis(3500);
/// The TTL of a stale answer (RFC 8767), unlike any record's, so that a sample shows it was one.
const STALE_TTL: u32 = 2;

/// Knot's zone: SOA (negative TTL 1 s), NS, and `records`.
fn zone(serial: u32, records: &str) -> String {
    format!(
        "$ORIGIN {ZONE}\n$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 1\n\
         @ NS ns\nns A 127.0.0.1\n{records}\n"
    )
}

fn start_knot(records: &str) -> Knot {
    Knot::start(ZONE, &zone(1, records), "", None)
}

/// A running `haven resolve`, killed by its PID when dropped.
struct Resolve {
    child: Child,
    dns: SocketAddr,
    control: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Resolve {
    /// Starts `haven resolve --config` with these upstreams, `dynamodb.*.haven.test` critical,
    /// short lifetimes, and `extra` TOML lines in `[resolve.critical]`.
    fn start(upstreams: &[SocketAddr], extra: &str) -> Resolve {
        let dir = tempfile::tempdir().unwrap();
        let upstreams: Vec<String> = upstreams.iter().map(|u| format!("\"{u}\"")).collect();
        let config = format!(
            r#"
            [resolve]
            listen = ["127.0.0.1:0"]
            control = "127.0.0.1:0"
            upstreams = [{}]
            upstream_timeout_ms = 300
            answer_within_ms = 1000
            stale_ttl = {STALE_TTL}
            servfail_ttl = 1
            [resolve.critical]
            names = ["dynamodb.*.haven.test"]
            ttl = 1
            refresh_ms = 200
            {extra}
            "#,
            upstreams.join(", ")
        );
        let path = dir.path().join("resolve.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(["resolve", "--config", path.to_str().unwrap()])
            .args(["--log-level", "warn", "--threads", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("haven starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut address = |prefix: &str| -> SocketAddr {
            let line = lines
                .next()
                .expect("a line")
                .expect("haven prints its addresses");
            line.strip_prefix(prefix)
                .and_then(|address| address.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        };
        let dns = address("Haven resolve listening on ");
        let control = address("Haven resolve control on http://");
        Resolve {
            child,
            dns,
            control,
            _dir: dir,
        }
    }

    fn status(&self) -> serde_json::Value {
        let url = format!("http://{}/status", self.control);
        ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    }

    fn counter(&self, name: &str) -> u64 {
        self.status()["counters"][name].as_u64().unwrap()
    }

    fn flush(&self, name: Option<&str>) {
        let query = name.map_or_else(String::new, |name| format!("?name={name}"));
        let url = format!("http://{}/flush{query}", self.control);
        let reply: serde_json::Value = ureq::post(&url)
            .send_empty()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        assert_eq!(reply["flushed"], true, "{reply}");
    }
}

impl Drop for Resolve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one query got: the response code, the addresses and their smallest TTL; `None` if no
/// answer came within two seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Got {
    rcode: ResponseCode,
    addresses: BTreeSet<IpAddr>,
    ttl: Option<u32>,
}

fn got(response: &Message) -> Got {
    Got {
        rcode: response.metadata.response_code,
        addresses: addresses(response),
        ttl: response.answers.iter().map(|record| record.ttl).min(),
    }
}

fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|ip| ip.parse().unwrap()).collect()
}

fn ask(server: SocketAddr, name: &str) -> Option<Got> {
    let query = query_message(name, RecordType::A, None);
    ask_udp_raw(&client_socket(), server, &query).map(|response| got(&response))
}

/// One answer (or none) a client got, when and for which name.
#[derive(Debug)]
struct Sample {
    at: Instant,
    name: &'static str,
    got: Option<Got>,
}

/// A client asking for the critical and the other name in turn, every 20 ms.
struct Client {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Sample>>,
}

impl Client {
    fn start(server: SocketAddr) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut samples = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    for name in [CRITICAL, OTHER] {
                        // Stamped when answered: an answer can only hold what Knot had by then.
                        let got = ask(server, name);
                        samples.push(Sample {
                            at: Instant::now(),
                            name,
                            got,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                samples
            }
        });
        Client { stop, thread }
    }

    fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("client thread")
    }
}

/// Loads `records` into Knot and waits until Knot itself answers `name` as `expected` says;
/// returns when it first did.
fn change(knot: &Knot, serial: u32, records: &str, expected: impl Fn(&Got) -> bool) -> Instant {
    knot.load_zone(&zone(serial, records), false);
    wait_for_knot(knot, expected)
}

fn wait_for_knot(knot: &Knot, expected: impl Fn(&Got) -> bool) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = got(&knot::query(knot.address, CRITICAL, RecordType::A));
        if expected(&answer) {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "Knot still answers {answer:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The addresses `dig +short` prints.
fn dig_addresses(server: SocketAddr, name: &str, transport: &str) -> BTreeSet<IpAddr> {
    dig(server, &["+short", transport, name, "A"])
        .lines()
        .map(|line| line.parse().expect("an address"))
        .collect()
}

/// The addresses hickory's resolver (UDP, TCP after truncation, its own cache off) finds.
fn hickory_addresses(server: SocketAddr, name: &str) -> BTreeSet<IpAddr> {
    use hickory_resolver::Resolver;
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
        .into_iter()
        .map(|mut connection| {
            connection.port = server.port();
            connection
        })
        .collect();
    let servers = vec![NameServerConfig::new(server.ip(), true, connections)];
    let config = ResolverConfig::from_name_servers(servers);
    let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    builder.options_mut().cache_size = 0;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let resolver = builder.build().expect("a resolver");
        let lookup = resolver
            .lookup(name, RecordType::A)
            .await
            .expect("an answer");
        lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                _ => None,
            })
            .collect()
    })
}

/// dig over UDP and TCP and hickory's resolver agree with what our client reads.
fn cross_check(server: SocketAddr, name: &str, expected: &BTreeSet<IpAddr>) {
    assert_eq!(&dig_addresses(server, name, "+notcp"), expected, "dig, UDP");
    assert_eq!(&dig_addresses(server, name, "+tcp"), expected, "dig, TCP");
    assert_eq!(&hickory_addresses(server, name), expected, "hickory");
}

/// The samples of `name` from `from` to `to`.
fn between<'s>(samples: &'s [Sample], name: &str, from: Instant, to: Instant) -> Vec<&'s Sample> {
    samples
        .iter()
        .filter(|s| s.name == name && s.at >= from && s.at < to)
        .collect()
}

fn rcode_and_addresses(sample: &Sample) -> (ResponseCode, BTreeSet<IpAddr>) {
    let got = sample.got.as_ref().expect("answered");
    (got.rcode, got.addresses.clone())
}

/// Every sample of `name` in the phase, once settled, is `expected`, except stale answers (RFC
/// 8767): those are right whenever Knot was slower than the upstream timeout, which a busy machine
/// causes now and then, so they may be a minority. There is at least one sample.
fn assert_settled(
    samples: &[Sample],
    name: &str,
    phase: (Instant, Instant),
    expected: (ResponseCode, BTreeSet<IpAddr>),
    what: &str,
) {
    let settled = between(samples, name, phase.0 + SETTLE, phase.1);
    assert!(!settled.is_empty(), "{what}: no samples");
    let (stale, fresh): (Vec<&Sample>, Vec<&Sample>) = settled.into_iter().partition(|s| {
        s.got
            .as_ref()
            .is_some_and(|got| got.rcode == ResponseCode::NoError && got.ttl == Some(STALE_TTL))
    });
    for sample in &fresh {
        assert_eq!(rcode_and_addresses(sample), expected, "{what}: {sample:?}");
    }
    assert!(
        stale.len() < fresh.len(),
        "{what}: {} stale answers against {} of Knot's: {stale:?}",
        stale.len(),
        fresh.len()
    );
}

#[test]
fn a_critical_name_never_goes_empty_and_other_names_get_the_real_answer() {
    let old = ips(&["10.0.0.1", "10.0.0.2"]);
    let new = ips(&["10.0.0.3"]);
    let knot = start_knot(
        "dynamodb.us-east-1 1 A 10.0.0.1\ndynamodb.us-east-1 1 A 10.0.0.2\nother 1 A 10.0.1.1",
    );
    let resolve = Resolve::start(&[knot.address], "max_stale_secs = 600");
    let client = Client::start(resolve.dns);
    let mut phases = vec![("baseline", Instant::now())];
    std::thread::sleep(PHASE);
    cross_check(resolve.dns, CRITICAL, &old);

    let emptied = "dynamodb.us-east-1 1 TXT \"gone\"\nother 1 TXT \"gone\"";
    phases.push((
        "emptied",
        change(&knot, 2, emptied, |got| got.addresses.is_empty()),
    ));
    std::thread::sleep(PHASE);
    cross_check(resolve.dns, CRITICAL, &old);
    let other = dig(resolve.dns, &[OTHER, "A"]);
    assert!(
        other.contains("status: NOERROR") && other.contains("ANSWER: 0,"),
        "{other}"
    );

    let nxdomain = |got: &Got| got.rcode == ResponseCode::NXDomain;
    phases.push(("nxdomain", change(&knot, 3, "", nxdomain)));
    std::thread::sleep(PHASE);

    let replaced = "dynamodb.us-east-1 1 A 10.0.0.3\nother 1 A 10.0.1.2";
    let has_new = |got: &Got| got.addresses == ips(&["10.0.0.3"]);
    // Haven's resolver may see the new zone before this test's own poll of Knot does.
    let new_loading = Instant::now();
    phases.push(("new addresses", change(&knot, 4, replaced, has_new)));
    std::thread::sleep(PHASE);
    cross_check(resolve.dns, CRITICAL, &new);

    knot.control(&["zone-purge", "--force", ZONE, "+expire"]);
    let servfail = |got: &Got| got.rcode == ResponseCode::ServFail;
    phases.push(("servfail", wait_for_knot(&knot, servfail)));
    std::thread::sleep(PHASE);
    cross_check(resolve.dns, CRITICAL, &new);

    knot.load_zone(&zone(5, replaced), true);
    phases.push(("restored", wait_for_knot(&knot, has_new)));
    std::thread::sleep(PHASE);

    knot.signal("-STOP");
    phases.push(("paused", Instant::now()));
    std::thread::sleep(PHASE);
    cross_check(resolve.dns, CRITICAL, &new);
    knot.signal("-KILL");
    phases.push(("killed", Instant::now()));
    std::thread::sleep(PHASE);
    phases.push(("end", Instant::now()));
    let samples = client.stop();

    // The critical name: always answered, never empty, never failed.
    let critical: Vec<&Sample> = samples.iter().filter(|s| s.name == CRITICAL).collect();
    assert!(critical.len() > 200, "{} samples", critical.len());
    for sample in &critical {
        let got = sample
            .got
            .as_ref()
            .unwrap_or_else(|| panic!("no answer: {sample:?}"));
        assert_eq!(got.rcode, ResponseCode::NoError, "{sample:?}");
        assert!(!got.addresses.is_empty(), "{sample:?}");
        assert!(got.ttl.is_some_and(|ttl| ttl <= 1), "{sample:?}");
    }
    let phase = |name: &str| {
        let index = phases.iter().position(|(n, _)| *n == name).unwrap();
        (phases[index].1, phases[index + 1].1)
    };
    // The old addresses until Knot is given new ones; the new ones right after, and only them.
    let new_at = phase("new addresses").0;
    for sample in between(&samples, CRITICAL, phases[0].1, new_loading) {
        assert_eq!(sample.got.as_ref().unwrap().addresses, old, "{sample:?}");
    }
    let first_new = critical
        .iter()
        .position(|s| s.got.as_ref().unwrap().addresses == new)
        .expect("the new addresses");
    let delay = critical[first_new].at.saturating_duration_since(new_at);
    assert!(
        delay < Duration::from_millis(1500),
        "new addresses after {delay:?}"
    );
    for sample in &critical[first_new..] {
        assert_eq!(sample.got.as_ref().unwrap().addresses, new, "{sample:?}");
    }

    // The other name: Knot's answer, whatever it is; a stale one only when Knot is silent.
    let empty = BTreeSet::new();
    let expectations = [
        ("baseline", ResponseCode::NoError, ips(&["10.0.1.1"])),
        ("emptied", ResponseCode::NoError, empty.clone()),
        ("nxdomain", ResponseCode::NXDomain, empty.clone()),
        ("new addresses", ResponseCode::NoError, ips(&["10.0.1.2"])),
        ("servfail", ResponseCode::ServFail, empty),
        ("restored", ResponseCode::NoError, ips(&["10.0.1.2"])),
    ];
    for (name, rcode, addresses) in expectations {
        assert_settled(&samples, OTHER, phase(name), (rcode, addresses), name);
    }
    for name in ["paused", "killed"] {
        for sample in between(&samples, OTHER, phase(name).0, phase(name).1) {
            let expected = (ResponseCode::NoError, ips(&["10.0.1.2"]));
            assert_eq!(rcode_and_addresses(sample), expected, "{name}: {sample:?}");
        }
    }

    let status = resolve.status();
    let counters = &status["counters"];
    assert!(counters["substitutions"].as_u64().unwrap() >= 4, "{status}");
    assert!(
        counters["substituted_answers"].as_u64().unwrap() > 0,
        "{status}"
    );
    assert!(counters["stale_answers"].as_u64().unwrap() > 0, "{status}");
    assert!(
        counters["upstream_timeouts"].as_u64().unwrap() > 0,
        "{status}"
    );
}

/// Asks for the critical name until `done` says so or `within` passes; returns the answers.
fn poll(server: SocketAddr, within: Duration, done: impl Fn(&Got) -> bool) -> Vec<(Instant, Got)> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let got = ask(server, CRITICAL).expect("an answer");
        let finished = done(&got);
        seen.push((Instant::now(), got));
        if finished {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    seen
}

/// Gives the critical name `address` (zone serial `serial`), waits until the resolver answers it,
/// empties the name (serial + 1) and checks that the resolver now stands the address in.
fn stand_in_for(knot: &Knot, resolve: &Resolve, serial: u32, address: &str) {
    let records = format!("dynamodb.us-east-1 1 A {address}");
    change(knot, serial, &records, |got| !got.addresses.is_empty());
    poll(resolve.dns, Duration::from_secs(5), |got| {
        got.addresses == ips(&[address])
    });
    let emptied = "dynamodb.us-east-1 1 TXT \"gone\"";
    change(knot, serial + 1, emptied, |got| got.addresses.is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    let got = ask(resolve.dns, CRITICAL).unwrap();
    assert_eq!(got.addresses, ips(&[address]), "a stand-in");
}

/// Polls the critical name until it answers `expected` (within 5 s), never empty on the way.
fn settles_on(server: SocketAddr, expected: &BTreeSet<IpAddr>, what: &str) {
    let seen = poll(server, Duration::from_secs(5), |got| {
        &got.addresses == expected
    });
    assert_eq!(
        &seen.last().unwrap().1.addresses,
        expected,
        "{what}: {seen:?}"
    );
    assert!(
        seen.iter().all(|(_, got)| !got.addresses.is_empty()),
        "{what}: {seen:?}"
    );
}

#[test]
fn a_pin_stands_in_only_up_to_max_stale_and_flushes_forget_it() {
    let knot = start_knot("dynamodb.us-east-1 1 A 10.0.0.1");
    let resolve = Resolve::start(&[knot.address], "max_stale_secs = 3");
    let nodata = |got: &Got| got.rcode == ResponseCode::NoError && got.addresses.is_empty();
    assert_eq!(
        ask(resolve.dns, CRITICAL).unwrap().addresses,
        ips(&["10.0.0.1"])
    );

    // The last good answer was confirmed at most 1 s (its TTL) before Knot went empty: it stands
    // in for 3 s after that confirmation, then Knot's empty answer passes through.
    let emptied_at = change(&knot, 2, "dynamodb.us-east-1 1 TXT \"gone\"", |got| {
        got.addresses.is_empty()
    });
    let seen = poll(resolve.dns, Duration::from_secs(10), nodata);
    let (passed_at, last) = seen.last().unwrap();
    assert!(nodata(last), "still {last:?} 10 s after the record went");
    let stood_in = passed_at.duration_since(emptied_at);
    assert!(
        stood_in >= Duration::from_secs(2),
        "stood in only {stood_in:?}"
    );
    for (_, got) in &seen[..seen.len() - 1] {
        assert_eq!(got.addresses, ips(&["10.0.0.1"]), "{seen:?}");
    }
    assert!(resolve.counter("substitutions") >= 1);

    // A flush by name forgets the pin at once; so does SIGHUP, for every name.
    stand_in_for(&knot, &resolve, 3, "10.0.0.2");
    resolve.flush(Some("DynamoDB.us-east-1.haven.test"));
    assert!(nodata(&ask(resolve.dns, CRITICAL).unwrap()), "flushed");
    stand_in_for(&knot, &resolve, 5, "10.0.0.3");
    let pid = resolve.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let seen = poll(resolve.dns, Duration::from_secs(3), nodata);
    assert!(nodata(&seen.last().unwrap().1), "SIGHUP flushed: {seen:?}");
    assert_eq!(resolve.status()["pins"], 0);
}

#[test]
fn the_probe_keeps_only_addresses_that_accept_connections_but_never_none() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let knot = start_knot("dynamodb.us-east-1 1 A 127.0.0.1\ndynamodb.us-east-1 1 A 127.0.0.2");
    let resolve = Resolve::start(&[knot.address], &format!("probe_port = {port}"));
    let both = ips(&["127.0.0.1", "127.0.0.2"]);
    assert_eq!(ask(resolve.dns, CRITICAL).unwrap().addresses, both);

    change(&knot, 2, "dynamodb.us-east-1 1 TXT \"gone\"", |got| {
        got.addresses.is_empty()
    });
    settles_on(resolve.dns, &ips(&["127.0.0.1"]), "only the live address");
    drop(listener);
    settles_on(resolve.dns, &both, "none live: all kept");
}

#[test]
fn truncation_tcp_failover_dnssec_bits_and_garbage() {
    let many: String = (1..=100)
        .map(|i| format!("big 60 A 10.1.0.{i}\n"))
        .collect();
    let knot = start_knot(&format!("{many}other 60 A 10.0.1.1"));
    // The first upstream has nobody listening: it is tried once, then the answering one first.
    let dead = knot::free_port();
    let resolve = Resolve::start(&[dead, knot.address], "");
    assert_eq!(
        ask(resolve.dns, OTHER).unwrap().addresses,
        ips(&["10.0.1.1"])
    );
    assert_eq!(resolve.counter("upstream_timeouts"), 1);

    // Knot's answer (100 addresses) does not fit our 1232 bytes: the resolver asks again over
    // TCP. Its own UDP answer is truncated for the client, which gets everything over TCP.
    let big = "big.haven.test.";
    for edns in [None, Some(1232)] {
        let udp = ask_udp(resolve.dns, big, RecordType::A, edns);
        assert!(udp.metadata.truncation && udp.answers.is_empty(), "{udp:?}");
        assert_eq!(udp.edns.is_some(), edns.is_some());
    }
    let tcp = ask_tcp(resolve.dns, &[query_message(big, RecordType::A, None)]).remove(0);
    assert!(!tcp.metadata.truncation);
    assert_eq!(addresses(&tcp).len(), 100);
    assert_eq!(resolve.counter("tcp_retries"), 1);
    assert_eq!(
        resolve.counter("upstream_timeouts"),
        1,
        "the dead upstream is not asked first"
    );
    let dig_big = dig(resolve.dns, &["+noedns", big, "A"]);
    assert!(
        dig_big.contains("Truncated, retrying in TCP mode") && dig_big.contains("ANSWER: 100,"),
        "{dig_big}"
    );
    assert_eq!(hickory_addresses(resolve.dns, big).len(), 100);

    // DO and CD go through to the answer.
    let mut query = query_message(OTHER, RecordType::A, Some(1232));
    query.edns.as_mut().unwrap().set_dnssec_ok(true);
    query.metadata.checking_disabled = true;
    let response = ask_udp_raw(&client_socket(), resolve.dns, &query).unwrap();
    assert!(response.edns.unwrap().flags().dnssec_ok);
    assert!(response.metadata.checking_disabled && response.metadata.recursion_available);
    assert!(dig(resolve.dns, &["+dnssec", OTHER, "A"]).contains("; EDNS: version: 0, flags: do;"));

    // Garbage gets FORMERR or nothing, and the resolver goes on answering.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for length in [0usize, 5, 12, 40, 600] {
        let garbage: Vec<u8> = (0..length).map(|i| (i * 37 + 11) as u8).collect();
        socket.send_to(&garbage, resolve.dns).unwrap();
    }
    assert_eq!(
        ask(resolve.dns, OTHER).unwrap().addresses,
        ips(&["10.0.1.1"])
    );
    let refused = ask_udp(resolve.dns, ZONE, RecordType::AXFR, None);
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
}
