//! Issue 17: DNS health checks of API nodes that serve HTTPS (`[health] scheme = "https"`).
//!
//! Three real `haven serve` nodes serve the API over TLS: 127.0.0.1 and 127.0.0.2 with
//! certificates (for their IP addresses) from the CA the DNS configuration trusts, 127.0.0.3 with
//! one from another CA. A fourth node, 127.0.0.4, answers DNS and probes them: the first two become
//! Healthy and join the record set, the third never does (its certificate does not verify), and a
//! killed node becomes Unhealthy. A configuration that asks for https without a CA bundle stops
//! `haven serve` at start-up with a clear error.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::HavenServer;
use common::authority::Authority;

const PATIENCE: Duration = Duration::from_secs(20);

fn start_tls_node(ip: &str, authority: &Authority, dir: &Path) -> HavenServer {
    let tls = authority.issue(ip, dir);
    let mut args = vec!["--in-memory"];
    args.extend(tls.iter().map(String::as_str));
    HavenServer::start_on(&format!("{ip}:0"), &args)
}

/// The DNS configuration: `nodes` in one region, `health` added to `[health]`, state in `dir`.
fn config(dir: &Path, nodes: &[SocketAddr], health: &str) -> String {
    let nodes: Vec<String> = nodes.iter().map(|n| format!("\"{n}\"")).collect();
    format!(
        r#"
state_dir = {state_dir:?}

[zone]
apex = "haven.test"
nameservers = [{{ name = "ns1.haven.test", addresses = ["127.0.0.4"] }}]

[[regions]]
name = "us-east-1"
nodes = [{nodes}]

[health]
interval_ms = 250
timeout_ms = 250
failures = 2
successes = 2
{health}
"#,
        nodes = nodes.join(", "),
        state_dir = dir.join("dns").to_str().unwrap(),
    )
}

/// The watcher's verdict on each API node, from its `/dns/status` page.
fn verdicts(watcher: &HavenServer) -> Vec<(IpAddr, String)> {
    let url = format!("{}/dns/status", watcher.endpoint());
    let status: serde_json::Value = ureq::get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let health = status["health"].as_array().unwrap();
    health
        .iter()
        .map(|target| {
            let node: SocketAddr = target["node"].as_str().unwrap().parse().unwrap();
            (node.ip(), target["health"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn wait_for(watcher: &HavenServer, expected: &[(&str, &str)]) {
    let expected: Vec<(IpAddr, String)> = expected
        .iter()
        .map(|(ip, health)| (ip.parse().unwrap(), health.to_string()))
        .collect();
    let started = Instant::now();
    loop {
        let seen = verdicts(watcher);
        if seen == expected {
            return;
        }
        assert!(started.elapsed() < PATIENCE, "{seen:?}, not {expected:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn health_checks_speak_tls_and_trust_only_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (trusted, other) = (Authority::new("trusted"), Authority::new("other"));
    let first = start_tls_node("127.0.0.1", &trusted, dir.path());
    let second = start_tls_node("127.0.0.2", &trusted, dir.path());
    let stranger = start_tls_node("127.0.0.3", &other, dir.path());
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &trusted.pem).unwrap();
    let health = format!(
        "scheme = \"https\"\nca_file = {:?}",
        ca_file.to_str().unwrap()
    );
    let nodes = [first.address, second.address, stranger.address];
    let config_file = dir.path().join("dns.toml");
    std::fs::write(&config_file, config(dir.path(), &nodes, &health)).unwrap();
    let config_arg = config_file.to_str().unwrap();
    let watcher = HavenServer::start_on(
        "127.0.0.4:0",
        &[
            "--in-memory",
            "--config",
            config_arg,
            "--dns-listen",
            "127.0.0.4:0",
        ],
    );

    wait_for(
        &watcher,
        &[
            ("127.0.0.1", "Healthy"),
            ("127.0.0.2", "Healthy"),
            ("127.0.0.3", "NotReady"),
        ],
    );
    // Several more probe rounds: the node whose certificate does not verify never passes.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(verdicts(&watcher)[2].1, "NotReady");

    second.kill();
    wait_for(
        &watcher,
        &[
            ("127.0.0.1", "Healthy"),
            ("127.0.0.2", "Unhealthy"),
            ("127.0.0.3", "NotReady"),
        ],
    );
    drop((first, stranger));
}

#[test]
fn https_without_a_ca_bundle_stops_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("dns.toml");
    let nodes = ["127.0.0.1:8000".parse().unwrap()];
    std::fs::write(
        &config_file,
        config(dir.path(), &nodes, "scheme = \"https\""),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["serve", "--in-memory", "--listen", "127.0.0.1:0"])
        .args(["--config", config_file.to_str().unwrap()])
        .args(["--dns-listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "[health] scheme = \"https\" needs ca_file, the CA bundle that node certificates are \
             verified against"
        ),
        "{stderr}"
    );
}
