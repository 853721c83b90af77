//! Test support: starts a real `haven serve` child process on a free loopback port and builds
//! clients for it. The child is killed when the handle drops.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running Haven server.
pub struct HavenServer {
    pub child: Child,
    pub address: SocketAddr,
}

impl HavenServer {
    /// An in-memory server.
    pub fn start_in_memory() -> HavenServer {
        HavenServer::start_with(&["--in-memory"])
    }

    /// A durable server on `data_dir`.
    pub fn start_on_disk(data_dir: &Path) -> HavenServer {
        HavenServer::start_with(&["--data-dir", data_dir.to_str().unwrap()])
    }

    /// Starts `haven serve --listen 127.0.0.1:0 <args>` and waits for its "listening" line.
    pub fn start_with(args: &[&str]) -> HavenServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-level", "warn"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("haven starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("haven prints its address");
        let address = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from haven: {line:?}"));
        HavenServer { child, address }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// An AWS SDK client for this server (dummy credentials, us-east-1).
    pub fn client(&self) -> aws_sdk_dynamodb::Client {
        sdk_client(&self.endpoint())
    }

    /// Sends SIGKILL and waits for the process to be gone.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HavenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An AWS SDK for Rust DynamoDB client for any endpoint, over plain HTTP.
pub fn sdk_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let credentials =
        aws_sdk_dynamodb::config::Credentials::new("AKIDTEST", "secret", None, None, "tests");
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}
