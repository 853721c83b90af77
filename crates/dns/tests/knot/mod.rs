//! A real Knot DNS (`knotd`, Debian package `knot`) on a free loopback port, for the tests that
//! need an authoritative server: push mode's (`crates/dns/tests/push_knot.rs`) and the guard
//! resolver's (`crates/haven/tests/resolve_knot.rs`, which includes this file by path). The server
//! is killed by its PID when the handle drops; `knotc` changes its zone on the way.
//!
//! Nothing is installed here: `scripts/test.sh` installs `knot` when `knotd` is missing, and
//! without it the tests fail, saying so.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};

/// A running `knotd`.
pub struct Knot {
    child: Child,
    pub address: SocketAddr,
    pub zone: String,
    dir: tempfile::TempDir,
}

impl Knot {
    /// Starts `knotd` serving `zone` (e.g. `haven.test.`) from the zone file text `zone_file`;
    /// `extra_conf` is added to its configuration (keys, ACLs) and `zone_acl` names the ACL of the
    /// zone, if any.
    pub fn start(zone: &str, zone_file: &str, extra_conf: &str, zone_acl: Option<&str>) -> Knot {
        let dir = tempfile::tempdir().expect("temp dir");
        let address = free_port();
        std::fs::write(dir.path().join("zone"), zone_file).unwrap();
        let conf = knot_conf(dir.path(), address, zone, extra_conf, zone_acl);
        std::fs::write(dir.path().join("knot.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.path().join("knotd.log")).unwrap();
        let child = Command::new(find("knotd"))
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
            zone: zone.to_owned(),
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
            if try_query(self.address, &self.zone, RecordType::SOA).is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("knotd did not answer within 15 s:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default()
    }

    /// Runs `knotc` against this server, e.g. `["zone-reload", "haven.test."]`.
    pub fn control(&self, args: &[&str]) {
        let output = Command::new(find("knotc"))
            .arg("--socket")
            .arg(self.dir.path().join("knot.sock"))
            .args(args)
            .output()
            .expect("knotc runs");
        assert!(
            output.status.success(),
            "knotc {args:?} failed: {output:?}\n{}",
            self.log()
        );
    }

    /// Replaces the zone file and has the server load it: `zone-reload`, or, for a zone that
    /// has no contents (expired with `zone-purge +expire`), a reload of the whole server.
    pub fn load_zone(&self, zone_file: &str, expired: bool) {
        std::fs::write(self.dir.path().join("zone"), zone_file).unwrap();
        if expired {
            self.control(&["reload"]);
        } else {
            self.control(&["zone-reload", &self.zone]);
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`, `-KILL`) to the server, by PID.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status();
        assert!(sent.expect("kill runs").success(), "kill {signal} {pid}");
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `knotd` or `knotc` on the PATH or in /usr/sbin.
fn find(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{program} not found: these tests need Knot DNS (Debian package `knot`); \
                 scripts/test.sh installs it"
            )
        })
}

/// A port free for both UDP and TCP on 127.0.0.1 a moment ago.
pub fn free_port() -> SocketAddr {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = tcp.local_addr().unwrap();
        if UdpSocket::bind(address).is_ok() {
            return address;
        }
    }
}

fn knot_conf(
    dir: &Path,
    address: SocketAddr,
    zone: &str,
    extra_conf: &str,
    zone_acl: Option<&str>,
) -> String {
    let dir = dir.display();
    let (ip, port) = (address.ip(), address.port());
    let acl = zone_acl.map_or_else(String::new, |acl| format!("    acl: {acl}\n"));
    format!(
        r#"server:
    rundir: "{dir}"
    listen: {ip}@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
control:
    listen: "{dir}/knot.sock"
log:
  - target: stderr
    any: info
database:
    storage: "{dir}"
{extra_conf}
zone:
  - domain: {zone}
    storage: "{dir}"
    file: "zone"
    zonefile-sync: -1
    journal-content: none
{acl}"#
    )
}

/// One UDP query; `None` if no answer comes within 500 ms.
pub fn try_query(server: SocketAddr, name: &str, record_type: RecordType) -> Option<Message> {
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

/// A query that must be answered. Over UDP, even on loopback, a busy server may drop a datagram:
/// a lost one is asked again, five times at most.
pub fn query(server: SocketAddr, name: &str, record_type: RecordType) -> Message {
    (0..5)
        .find_map(|_| try_query(server, name, record_type))
        .unwrap_or_else(|| panic!("no answer from {server} to {name} {record_type}"))
}
