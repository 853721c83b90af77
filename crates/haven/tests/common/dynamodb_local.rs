//! AWS's DynamoDB Local for tests that compare with it or read from it (`differential.rs`,
//! `dynamodb_local_dropin.rs`, the mirror's source), started and stopped by the project's
//! `scripts/dynamodb-local.sh` (which installs it on first use).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A DynamoDB Local process, stopped by the script when dropped, including while a failing test
/// unwinds.
pub struct DynamoDbLocal {
    pid: u32,
    pub port: u16,
}

impl DynamoDbLocal {
    /// In memory, with one shared database (`-inMemory -sharedDb`).
    pub fn start() -> DynamoDbLocal {
        let port = free_port();
        DynamoDbLocal::launch(port, &["start", &port.to_string()])
    }

    /// With DynamoDB Local's own `options` (besides `-port` and `-disableTelemetry`).
    pub fn start_with(options: &[&str]) -> DynamoDbLocal {
        let port = free_port();
        let port_text = port.to_string();
        let mut args = vec!["start-with", &port_text];
        args.extend_from_slice(options);
        DynamoDbLocal::launch(port, &args)
    }

    fn launch(port: u16, args: &[&str]) -> DynamoDbLocal {
        let output = dynamodb_local(args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let pid = stdout
            .lines()
            .last()
            .and_then(|line| line.trim().parse().ok())
            .filter(|_| output.status.success())
            .unwrap_or_else(|| {
                panic!(
                    "DynamoDB Local did not start ({}):\nstdout: {stdout}\nstderr: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        DynamoDbLocal { pid, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for DynamoDbLocal {
    fn drop(&mut self) {
        let output = dynamodb_local(&["stop", &self.pid.to_string()]);
        if !output.status.success() {
            eprintln!(
                "stopping DynamoDB Local (pid {}) failed: {}",
                self.pid,
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `scripts/dynamodb-local.sh <args>` and returns what it printed.
fn dynamodb_local(args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(repo_root().join("scripts/dynamodb-local.sh"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run scripts/dynamodb-local.sh")
}

/// A loopback port free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}
