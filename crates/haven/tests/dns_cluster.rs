//! Issue 8, "What it must show", line 2: health-checked DNS across real `haven serve` processes.
//!
//! Four nodes share one config: region us-east-1 is 127.0.0.1, 127.0.0.2 and 127.0.0.3, region
//! eu-west-1 is 127.0.0.4 (after us-east-1 in the failover order). Every node probes every API
//! node and answers DNS. A querier sends UDP queries to 127.0.0.4 throughout while nodes are
//! killed (SIGKILL) and restarted, and no answer may be empty, SERVFAIL or missing. The DNS client
//! is `tests/common/dns.rs`.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::dns::{addresses, ask_tcp, ask_udp, ask_udp_raw, client_socket, dig, query_message};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

const ZONE: &str = "haven.test.";
const REGION_NAME: &str = "dynamodb.us-east-1.haven.test.";
const FAILOVER_NAME: &str = "dynamodb.haven.test.";
const INTERVAL: Duration = Duration::from_millis(250);
/// Long enough that a live node's probe does not time out on a loaded machine (a debug build
/// answers `/health` in well under a millisecond when idle), which would flip it Unhealthy; a
/// killed node's probe is refused at once. (It may not exceed the interval.)
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
const FAILURES: u32 = 2;
const SUCCESSES: u32 = 2;
const TTL: u32 = 4;
/// Enough name servers (with glue) that the apex NS answer exceeds 512 bytes.
const NAME_SERVERS: usize = 24;
/// Room for scheduling on a busy 2-core machine on top of the configured detection time.
const SLACK: Duration = Duration::from_secs(3);
/// How long any awaited change may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(15);

/// The time health checks need to call a dead node Unhealthy, by configuration.
fn detection_time() -> Duration {
    INTERVAL * FAILURES + PROBE_TIMEOUT
}

struct Node {
    ip: Ipv4Addr,
    api: SocketAddr,
    dns: SocketAddr,
    data_dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn new(last_octet: u8, data_root: &Path) -> Node {
        let ip = Ipv4Addr::new(127, 0, 0, last_octet);
        Node {
            ip,
            api: SocketAddr::new(ip.into(), free_port(ip)),
            dns: SocketAddr::new(ip.into(), free_port(ip)),
            data_dir: data_root.join(format!("node{last_octet}")),
            child: None,
        }
    }

    /// Starts `haven serve` and waits until its API listens (its DNS is up before that).
    fn start(&mut self, config: &Path) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
            .arg("serve")
            .args(["--listen", &self.api.to_string()])
            .args(["--dns-listen", &self.dns.to_string()])
            .args(["--config", config.to_str().unwrap()])
            .args(["--data-dir", self.data_dir.to_str().unwrap()])
            .args(["--log-level", "warn"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("haven starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("haven prints its address");
        assert!(
            line.contains(&self.api.to_string()),
            "unexpected first line {line:?}"
        );
        self.child = Some(child);
    }

    /// SIGKILL, by PID, and wait for the process to be gone.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("the node runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The value of `series` (`name{labels}`) in the node's `/metrics`, if it has one.
    fn metric(&self, series: &str) -> Option<f64> {
        let url = format!("http://{}/metrics", self.api);
        let text = ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    fn status(&self) -> serde_json::Value {
        let url = format!("http://{}/dns/status", self.api);
        ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill();
        }
    }
}

/// A port free on `ip` for TCP and UDP alike right now.
fn free_port(ip: Ipv4Addr) -> u16 {
    loop {
        let tcp = TcpListener::bind((ip, 0)).expect("binding 127.0.0.x works on Linux");
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind((ip, port)).is_ok() {
            return port;
        }
    }
}

fn write_config(path: &Path, us_east: &[&Node], eu_west: &Node) {
    let quoted = |nodes: &[&Node]| {
        nodes
            .iter()
            .map(|n| format!("\"{}\"", n.api))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let name_servers: Vec<String> = (1..=NAME_SERVERS)
        .map(|i| format!("  {{ name = \"ns{i}.{ZONE}\", addresses = [\"127.0.1.{i}\"] }},"))
        .collect();
    let config = format!(
        r#"
[zone]
apex = "{ZONE}"
ttl = {TTL}
nameservers = [
{name_servers}
]

[[regions]]
name = "us-east-1"
nodes = [{us_east}]

[[regions]]
name = "eu-west-1"
nodes = [{eu_west}]

[failover]
order = ["us-east-1", "eu-west-1"]

[health]
interval_ms = {interval}
timeout_ms = {timeout}
failures = {FAILURES}
successes = {SUCCESSES}

[velocity]
max_removed_fraction = 0.5
window_ms = 200
"#,
        name_servers = name_servers.join("\n"),
        us_east = quoted(us_east),
        eu_west = quoted(&[eu_west]),
        interval = INTERVAL.as_millis(),
        timeout = PROBE_TIMEOUT.as_millis(),
    );
    std::fs::write(path, config).unwrap();
}

fn answer_of(server: SocketAddr, name: &str) -> BTreeSet<IpAddr> {
    let response = ask_udp(server, name, RecordType::A, None);
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    addresses(&response)
}

fn generation(server: SocketAddr) -> u64 {
    let response = ask_udp(
        server,
        &format!("_generation.{ZONE}"),
        RecordType::TXT,
        None,
    );
    let RData::TXT(txt) = &response.answers[0].data else {
        panic!("{response:?}")
    };
    std::str::from_utf8(&txt.txt_data[0])
        .unwrap()
        .parse()
        .unwrap()
}

fn ips(nodes: &[&Node]) -> BTreeSet<IpAddr> {
    nodes.iter().map(|node| IpAddr::V4(node.ip)).collect()
}

/// Polls `server` until `name` answers `expected`; returns how long that took.
fn wait_for_answer(server: SocketAddr, name: &str, expected: &BTreeSet<IpAddr>) -> Duration {
    let started = Instant::now();
    loop {
        let answer = answer_of(server, name);
        if &answer == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{name} still answers {answer:?}, not {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `node` sees every API node Healthy, so a kill is a change it can detect.
fn wait_until_all_healthy(node: &Node) {
    let started = Instant::now();
    loop {
        let status = node.status();
        let health = status["health"].as_array().unwrap();
        if health.iter().all(|target| target["health"] == "Healthy") {
            return;
        }
        assert!(started.elapsed() < PATIENCE, "not all healthy: {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Queries `server` over UDP until stopped, counting good answers in `answered`; returns the
/// problems seen.
fn start_querier(
    server: SocketAddr,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let socket = client_socket();
        let mut problems = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for name in [REGION_NAME, FAILOVER_NAME] {
                let query = query_message(name, RecordType::A, None);
                match ask_udp_raw(&socket, server, &query) {
                    None => problems.push(format!("no answer for {name}")),
                    Some(response) if response.metadata.response_code != ResponseCode::NoError => {
                        problems.push(format!("{name}: {}", response.metadata.response_code))
                    }
                    Some(response) if addresses(&response).is_empty() => {
                        problems.push(format!("{name}: empty answer"))
                    }
                    Some(_) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        problems
    })
}

/// Waits until the querier has had `more` good answers beyond those counted so far, so that a
/// phase of the test is covered by queries however slowly the querier's thread runs.
fn wait_for_queries(answered: &AtomicUsize, more: usize) {
    let target = answered.load(Ordering::Relaxed) + more;
    let started = Instant::now();
    while answered.load(Ordering::Relaxed) < target {
        assert!(started.elapsed() < PATIENCE, "the querier stalled");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn endpoint_names_follow_health_and_never_go_empty() {
    let data_root = tempfile::tempdir().unwrap();
    let config = data_root.path().join("haven-dns.toml");
    let mut us_east: Vec<Node> = (1..=3).map(|i| Node::new(i, data_root.path())).collect();
    let mut eu_west = Node::new(4, data_root.path());
    write_config(&config, &us_east.iter().collect::<Vec<_>>(), &eu_west);
    for node in us_east.iter_mut().chain([&mut eu_west]) {
        node.start(&config);
    }
    let observer = eu_west.dns;
    let all_three = ips(&us_east.iter().collect::<Vec<_>>());

    // Every node answers the region name with all three API nodes.
    for node in us_east.iter().chain([&eu_west]) {
        assert_eq!(
            answer_of(node.dns, REGION_NAME),
            all_three,
            "DNS of {}",
            node.ip
        );
    }
    wait_until_all_healthy(&eu_west);
    wait_for_answer(observer, FAILOVER_NAME, &all_three);

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let querier = start_querier(observer, stop.clone(), answered.clone());
    wait_for_queries(&answered, 100);

    // A killed node leaves the answer within the detection time, in a newer plan.
    let before_kill = generation(observer);
    us_east[0].kill();
    let gone = wait_for_answer(observer, REGION_NAME, &ips(&[&us_east[1], &us_east[2]]));
    assert!(gone < detection_time() + SLACK, "took {gone:?}");
    assert!(generation(observer) > before_kill);
    wait_for_queries(&answered, 100);
    // The observer's metrics say the same: the plan it serves, each node's health, its answers.
    let served = eu_west.metric("haven_dns_plan_generation").unwrap();
    assert!(served > before_kill as f64, "{served}");
    let health =
        |node: &Node| eu_west.metric(&format!("haven_dns_node_healthy{{node=\"{}\"}}", node.api));
    assert_eq!(health(&us_east[0]), Some(0.0));
    assert_eq!(health(&us_east[1]), Some(1.0));
    let answers = eu_west
        .metric(r#"haven_dns_answers_total{rcode="NOERROR"}"#)
        .unwrap();
    assert!(answers >= 200.0, "{answers}");

    // Restarted, it answers at once, and is back in the set once its probes succeed.
    us_east[0].start(&config);
    assert!(!answer_of(us_east[0].dns, REGION_NAME).is_empty());
    wait_for_answer(observer, REGION_NAME, &all_three);

    // All of us-east-1 killed: its name still answers (fail open, degraded with half the TTL)
    // and the failover name moves to eu-west-1.
    wait_until_all_healthy(&eu_west);
    let before_outage = generation(observer);
    let survivor_generation = generation(us_east[1].dns);
    for node in us_east.iter_mut() {
        node.kill();
    }
    wait_for_answer(observer, FAILOVER_NAME, &ips(&[&eu_west]));
    std::thread::sleep(detection_time() * 3);
    wait_for_queries(&answered, 100);
    let response = ask_udp(observer, REGION_NAME, RecordType::A, None);
    assert!(!addresses(&response).is_empty(), "fail open");
    assert_eq!(
        response.answers[0].ttl,
        TTL / 2,
        "a degraded set has half the TTL"
    );
    assert!(generation(observer) > before_outage);
    let status = eu_west.status();
    let effective = &status["control"]["effective"]["record_sets"][REGION_NAME];
    assert_eq!(effective["degraded"], true, "{status}");

    // A node restarted during the outage serves its last good plan from disk (I7): never older
    // than the one it served before it was killed, and not empty.
    us_east[1].start(&config);
    assert!(generation(us_east[1].dns) >= survivor_generation);
    assert!(!answer_of(us_east[1].dns, REGION_NAME).is_empty());

    stop.store(true, Ordering::Relaxed);
    let problems = querier.join().unwrap();
    let answered = answered.load(Ordering::Relaxed);
    eprintln!("{answered} UDP answers checked; a killed node left the answer after {gone:?}");
    assert!(
        problems.is_empty(),
        "{} bad answers, first: {:?}",
        problems.len(),
        &problems[..problems.len().min(5)]
    );
}

#[test]
fn negative_answers_truncation_and_tcp() {
    let data_root = tempfile::tempdir().unwrap();
    let config = data_root.path().join("haven-dns.toml");
    let mut node = Node::new(1, data_root.path());
    let other = Node::new(4, data_root.path());
    write_config(&config, &[&node], &other);
    node.start(&config);
    let server = node.dns;

    let nodata = ask_udp(server, REGION_NAME, RecordType::MX, None);
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty() && nodata.metadata.authoritative);
    assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
    let nxdomain = ask_udp(server, &format!("nothing.{ZONE}"), RecordType::A, None);
    assert_eq!(nxdomain.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(nxdomain.authorities[0].record_type(), RecordType::SOA);
    let refused = ask_udp(
        server,
        "dynamodb.us-east-1.amazonaws.com.",
        RecordType::A,
        None,
    );
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);

    // The apex NS answer (24 servers with glue) does not fit 512 bytes: UDP without EDNS says TC,
    // and the same question over TCP gets everything, on a connection that carries more queries.
    let truncated = ask_udp(server, ZONE, RecordType::NS, None);
    assert!(truncated.metadata.truncation);
    assert!(truncated.answers.is_empty());
    let over_tcp = ask_tcp(
        server,
        &[
            query_message(ZONE, RecordType::NS, None),
            query_message(REGION_NAME, RecordType::A, None),
            query_message(ZONE, RecordType::SOA, None),
        ],
    );
    assert!(!over_tcp[0].metadata.truncation);
    assert_eq!(over_tcp[0].answers.len(), NAME_SERVERS);
    assert_eq!(over_tcp[0].additionals.len(), NAME_SERVERS, "glue");
    assert_eq!(addresses(&over_tcp[1]), ips(&[&node]));
    assert_eq!(over_tcp[2].answers[0].record_type(), RecordType::SOA);
    // With EDNS the same answer fits a UDP datagram, and the OPT record comes back.
    let with_edns = ask_udp(server, ZONE, RecordType::NS, Some(1232));
    assert!(!with_edns.metadata.truncation);
    assert_eq!(with_edns.answers.len(), NAME_SERVERS);
    assert!(with_edns.edns.is_some());

    // A second, independent client: BIND's dig reads the same answers, and falls back to TCP by
    // itself when the UDP answer is truncated.
    let region = dig(server, &["+norec", REGION_NAME, "A"]);
    assert!(
        region.contains("status: NOERROR") && region.contains("flags: qr aa"),
        "{region}"
    );
    assert!(region.contains(&node.ip.to_string()), "{region}");
    let ns = dig(server, &["+noedns", ZONE, "NS"]);
    assert!(ns.contains("Truncated, retrying in TCP mode"), "{ns}");
    assert!(ns.contains(&format!("ANSWER: {NAME_SERVERS},")), "{ns}");
    let nxdomain = dig(server, &[&format!("nothing.{ZONE}"), "A"]);
    assert!(nxdomain.contains("status: NXDOMAIN"), "{nxdomain}");
}
