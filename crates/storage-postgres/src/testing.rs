//! A real PostgreSQL server for tests (feature `test-support`).
//!
//! Every test that needs PostgreSQL, in this crate and in the `haven` integration tests, goes
//! through [`TestPostgres`], which runs `scripts/postgres-test.sh`: a fresh cluster in a temporary
//! directory on a free loopback port, as the `postgres` system user when the tests run as root.
//! The script lives as long as its standard input stays open, so the server stops (by its PID) and
//! its directory goes when the test process exits, however it exits. Tests share one server per
//! process ([`TestPostgres::shared`]) and isolate themselves with a database each
//! ([`TestPostgres::fresh_database`]).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The superuser and password the script creates.
pub const USER: &str = "haven";
pub const PASSWORD: &str = "haven";
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scripts/postgres-test.sh"
);
/// Tries at finding a free port (another process may take the one picked before the server binds).
const START_ATTEMPTS: usize = 3;

/// A running throw-away PostgreSQL server.
pub struct TestPostgres {
    pub port: u16,
    /// The cluster's directory (its data in `data/`, its log in `server.log`).
    pub dir: PathBuf,
    child: Child,
    /// Held open: closing it tells the script to stop the server.
    stdin: Option<ChildStdin>,
}

impl TestPostgres {
    /// The server shared by every test of this process, started on first use, with room for the
    /// pools of many Haven nodes at once.
    pub fn shared() -> &'static TestPostgres {
        static SHARED: OnceLock<TestPostgres> = OnceLock::new();
        SHARED.get_or_init(|| TestPostgres::start(&["-c", "max_connections=400"]))
    }

    /// Starts a server with extra `postgres` options (e.g. `["-c", "max_connections=200"]`).
    pub fn start(options: &[&str]) -> TestPostgres {
        TestPostgres::start_with(&[], options)
    }

    /// Starts a streaming replica of `primary` (a primary started with
    /// `-c synchronous_standby_names=*` waits for it at every commit).
    pub fn start_standby(primary: &TestPostgres, options: &[&str]) -> TestPostgres {
        let primary_port = primary.port.to_string();
        TestPostgres::start_with(&["--standby-of", &primary_port], options)
    }

    fn start_with(mode: &[&str], options: &[&str]) -> TestPostgres {
        let options: Vec<&str> = mode.iter().chain(options).copied().collect();
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match TestPostgres::start_on(free_port(), &options) {
                Ok(server) => return server,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("cannot start a test PostgreSQL: {failures:?}");
    }

    fn start_on(port: u16, options: &[&str]) -> Result<TestPostgres, String> {
        let mut child = Command::new(SCRIPT)
            .arg(port.to_string())
            .args(options)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{SCRIPT}: {e}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let Some(dir) = line.trim().strip_prefix("ready ") else {
            let _ = child.wait();
            return Err(format!("port {port}: the script said {line:?}"));
        };
        Ok(TestPostgres {
            port,
            dir: PathBuf::from(dir),
            stdin: child.stdin.take(),
            child,
        })
    }

    /// The connection string of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// Creates a database no other test uses and answers its connection string.
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.execute("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs `sql` (one or more statements) in `database`; panics on failure.
    pub fn execute(&self, database: &str, sql: &str) {
        let (url, sql) = (self.url(database), sql.to_string());
        run_blocking(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
            tokio::spawn(connection);
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        });
    }

    /// Stops the server now (the script stops it by PID and removes its directory).
    pub fn stop(mut self) {
        self.stdin.take();
        let _ = self.child.wait();
    }

    /// Kills the server as a crash would: SIGKILL to the postmaster and to each of its processes,
    /// by PID (read from its `postmaster.pid` and `/proc`).
    pub fn kill(&self) {
        let postmaster = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse::<u32>().ok())
            .expect("the postmaster's PID");
        let mut pids = vec![postmaster];
        pids.extend(children_of(postmaster));
        for pid in pids {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }

    /// Promotes a standby to primary (`pg_ctl promote`, as the server's owner) and waits for it.
    pub fn promote(&self) {
        let data = self.dir.join("data");
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL installed")
            .filter_map(|entry| Some(entry.ok()?.path().join("bin/pg_ctl")))
            .max()
            .expect("pg_ctl");
        let mut command = if running_as_root() {
            let mut command = Command::new("setpriv");
            command.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ]);
            command.arg(&bin);
            command
        } else {
            Command::new(&bin)
        };
        let status = command
            .args(["promote", "--wait", "--pgdata"])
            .arg(&data)
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "pg_ctl promote failed");
    }
}

/// Runs `future` to completion on a runtime of its own, on a thread of its own, so that it can be
/// called from inside a test's runtime as well as outside.
fn run_blocking(future: impl std::future::Future<Output = ()> + Send + 'static) {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(future)
    })
    .join()
    .expect("the statement ran");
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"))
    })
}

/// The PIDs whose parent is `parent` (a postmaster's backends and workers).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // The parent is the second field after the command's closing parenthesis.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}
