//! The binary's side of global tables: the peer regions read from the configuration file, and
//! the transport that carries one region's replication batches to another.
//!
//! The file is the one `--config` names, so that DNS and replication agree on the regions:
//! ```toml
//! [[regions]]
//! name = "us-east-1"
//! nodes = ["127.0.0.1:8000"]
//!
//! [[regions]]
//! name = "eu-west-1"
//! nodes = ["127.0.0.2:8000"]
//!
//! [replication]
//! access_key_id = "AKIDREPLICATION"       # a key every region's --credentials file holds
//! secret_access_key = "..."
//! interval_ms = 100                       # how often the shipper looks for changes
//! timeout_ms = 2000                       # a peer node slower than this is tried again later
//! scheme = "http"                         # or "https" (peers run --tls-cert), which then needs:
//! # ca_file = "/etc/haven/ca.pem"         # the CA bundle peer certificates are verified against
//! # server_name = "api.haven.internal"    # optional: the name in the peer certificates
//! tombstone_grace_ms = 86400000           # deletes' tombstones kept this long past every ack
//! ```
//! Without a `[replication]` section this node replicates nothing. The peers are every region
//! but `--region`. A batch goes to one of the peer's nodes (the one that answered last, else the
//! next), signed with SigV4 as any DynamoDB request, so the peer's `--auth` checks it, over HTTPS
//! verified as the DNS health checks verify nodes (`peer_http.rs`): a certificate that does not
//! verify is a failed send, counted and logged, never a fallback to plain HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use haven_api::{
    DEFAULT_TOMBSTONE_GRACE, Peer, REPLICATION_TARGET, ReplicationSettings, SendError, Transport,
};
use haven_dns::health::ProbeTls;
use serde::Deserialize;

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    regions: Vec<RawRegion>,
    replication: Option<RawReplication>,
}

#[derive(Deserialize)]
struct RawRegion {
    name: String,
    nodes: Vec<SocketAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplication {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    tombstone_grace_ms: Option<u64>,
    /// "http" or "https" (the peers run `haven serve --tls-cert`), as `[health] scheme`.
    #[serde(default = "default_scheme")]
    scheme: String,
    /// With https: the PEM bundle of the CA(s) that sign the peers' certificates.
    ca_file: Option<PathBuf>,
    /// With https: the name peer certificates carry (default: each node's IP address).
    server_name: Option<String>,
}

fn default_scheme() -> String {
    "http".into()
}

fn default_interval_ms() -> u64 {
    100
}

fn default_timeout_ms() -> u64 {
    2000
}

/// The replication settings of the configuration file at `path` for a node of `region`.
pub fn settings(path: Option<&Path>, region: &str) -> anyhow::Result<ReplicationSettings> {
    let Some(path) = path else {
        return Ok(ReplicationSettings::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let file: RawFile =
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
    let Some(replication) = file.replication else {
        return Ok(ReplicationSettings::default());
    };
    anyhow::ensure!(
        file.regions.iter().any(|r| r.name == region),
        "{}: [replication] needs this node's region {region:?} among the [[regions]]",
        path.display()
    );
    let timeout = Duration::from_millis(replication.timeout_ms.max(1));
    let (ca_file, server_name) = (
        replication.ca_file.as_deref(),
        replication.server_name.as_deref(),
    );
    let tls = ProbeTls::from_settings("replication", &replication.scheme, ca_file, server_name)
        .map_err(|message| anyhow::anyhow!("{}: {message}", path.display()))?;
    let peers = file
        .regions
        .into_iter()
        .filter(|r| r.name != region)
        .map(|r| Peer {
            region: r.name.clone(),
            transport: Arc::new(HttpTransport::new(r, &replication, timeout, tls.clone())),
        })
        .collect();
    let tombstone_grace = replication
        .tombstone_grace_ms
        .map_or(DEFAULT_TOMBSTONE_GRACE, Duration::from_millis);
    Ok(ReplicationSettings {
        peers,
        interval: Duration::from_millis(replication.interval_ms.max(1)),
        tombstone_grace,
    })
}

/// Sends batches over HTTP (or HTTPS) to the nodes of one region.
struct HttpTransport {
    region: String,
    nodes: Vec<SocketAddr>,
    /// The node to try first: the last one that answered.
    preferred: AtomicUsize,
    credentials: Credentials,
    timeout: Duration,
    /// Set with `scheme = "https"`.
    tls: Option<ProbeTls>,
}

impl HttpTransport {
    fn new(
        region: RawRegion,
        replication: &RawReplication,
        timeout: Duration,
        tls: Option<ProbeTls>,
    ) -> HttpTransport {
        HttpTransport {
            timeout,
            tls,
            region: region.name,
            nodes: region.nodes,
            preferred: AtomicUsize::new(0),
            credentials: Credentials::new(
                &replication.access_key_id,
                &replication.secret_access_key,
                None,
                None,
                "haven-replication",
            ),
        }
    }

    /// One signed POST of `operation` to `node`.
    fn post(
        &self,
        node: SocketAddr,
        operation: &str,
        body: &[u8],
    ) -> Result<serde_json::Value, SendError> {
        let unreachable =
            |e: &dyn std::fmt::Display| SendError::Unreachable(format!("{node}: {e}"));
        let host = node.to_string();
        let target = format!("{REPLICATION_TARGET}.{operation}");
        let headers = [
            ("host", host.as_str()),
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", target.as_str()),
        ];
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("dynamodb")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| unreachable(&e))?
            .into();
        let url = format!("http://{host}/");
        let signable =
            SignableRequest::new("POST", &url, headers.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| unreachable(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| unreachable(&e))?
            .into_parts();
        let headers: Vec<(&str, &str)> =
            headers.into_iter().chain(instructions.headers()).collect();
        let (status, text) =
            crate::peer_http::post(node, self.tls.as_ref(), self.timeout, &headers, body)
                .map_err(|e| unreachable(&e))?;
        let answer: serde_json::Value = serde_json::from_str(&text)
            .map_err(|_| unreachable(&format!("answered {status}: {text}")))?;
        if status == 200 {
            return Ok(answer);
        }
        Err(refusal(&answer).unwrap_or_else(|| unreachable(&format!("answered {status}: {text}"))))
    }
}

/// A DynamoDB error answer (`{"__type": "ns#Name", "message": ...}`) as a refusal; None for a
/// server error or anything else (those are retried as unreachable).
fn refusal(answer: &serde_json::Value) -> Option<SendError> {
    let kind = answer["__type"].as_str()?;
    let error = kind.rsplit('#').next().unwrap_or(kind);
    (error != "InternalServerError").then(|| SendError::Refused {
        error: error.to_string(),
        message: answer["message"].as_str().unwrap_or_default().to_string(),
    })
}

impl Transport for HttpTransport {
    fn send(
        &self,
        operation: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, SendError> {
        let bytes = serde_json::to_vec(body).expect("a JSON value serialises");
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last_error = SendError::Unreachable("no nodes".into());
        for offset in 0..self.nodes.len() {
            let index = (first + offset) % self.nodes.len();
            match self.post(self.nodes[index], operation, &bytes) {
                Ok(answer) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(refused @ SendError::Refused { .. }) => return Err(refused),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }
}
