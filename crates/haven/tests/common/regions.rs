//! Two Haven regions that replicate global tables to each other, each reaching the other through
//! a [`Link`] the test can cut and heal: a TCP relay on a loopback port that, while cut, refuses
//! new connections and drops the open ones.
//!
//! Both regions run with `--auth` and one credentials file; the replication credential is a key
//! of that file, so every batch between them is SigV4-verified as a client's request would be.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;

use super::{HavenServer, create_key};

pub const FIRST: &str = "us-east-1";
pub const SECOND: &str = "eu-west-1";

/// A relay from a loopback port to `target`, cut while [`Link::cut`] says so.
pub struct Link {
    pub address: SocketAddr,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Link {
    pub fn new(target: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        listener.set_nonblocking(true).unwrap();
        let (cut_flag, stop_flag) = (cut.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) if !cut_flag.load(Ordering::Relaxed) => {
                        relay(client, target, cut_flag.clone());
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Link { address, cut, stop }
    }

    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies both ways between `client` and a new connection to `target` until either closes or
/// the link is cut.
fn relay(client: TcpStream, target: SocketAddr, cut: Arc<AtomicBool>) {
    let Ok(server) = TcpStream::connect(target) else {
        return;
    };
    for (from, to) in [
        (client.try_clone().unwrap(), server.try_clone().unwrap()),
        (server, client),
    ] {
        let cut = cut.clone();
        std::thread::spawn(move || pump(from, to, &cut));
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, cut: &AtomicBool) {
    from.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buffer = [0; 16 * 1024];
    loop {
        if cut.load(Ordering::Relaxed) {
            break;
        }
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// A free loopback port (bound and released: the server binds it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two regions and the links between them.
pub struct Regions {
    pub dir: tempfile::TempDir,
    pub first: HavenServer,
    pub second: HavenServer,
    /// The first region's way to the second, and the second's way to the first.
    pub to_second: Link,
    pub to_first: Link,
    pub key: (String, String),
}

impl Regions {
    /// Starts both regions in memory.
    pub fn start() -> Regions {
        Regions::start_with("")
    }

    /// Starts both regions in memory with `replication` added to their `[replication]` sections
    /// (`"tombstone_grace_ms = 200\n"`).
    pub fn start_with(replication: &str) -> Regions {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials");
        let key = create_key(&credentials, "replication");
        let ports = [free_port(), free_port()];
        let address = |port: u16| -> SocketAddr { format!("127.0.0.1:{port}").parse().unwrap() };
        let to_second = Link::new(address(ports[1]));
        let to_first = Link::new(address(ports[0]));
        let configs = [
            (FIRST, address(ports[0]), to_second.address),
            (SECOND, to_first.address, address(ports[1])),
        ]
        .map(|(region, first, second)| {
            let addresses = [first, second];
            write_config(dir.path(), region, addresses, &key, replication)
        });
        let start = |i: usize, region: &str| {
            HavenServer::start_on(
                &address(ports[i]).to_string(),
                &[
                    "--in-memory",
                    "--region",
                    region,
                    "--config",
                    configs[i].to_str().unwrap(),
                    "--auth",
                    "--credentials",
                    credentials.to_str().unwrap(),
                ],
            )
        };
        let first = start(0, FIRST);
        let second = start(1, SECOND);
        Regions {
            dir,
            first,
            second,
            to_second,
            to_first,
            key,
        }
    }

    /// The server of `region`.
    pub fn server(&self, region: &str) -> &HavenServer {
        if region == FIRST {
            &self.first
        } else {
            &self.second
        }
    }

    /// A DynamoDB Streams client of `region`'s server (signed for that region).
    pub fn streams_client(&self, region: &str) -> aws_sdk_dynamodbstreams::Client {
        let credentials = aws_sdk_dynamodbstreams::config::Credentials::new(
            &self.key.0,
            &self.key.1,
            None,
            None,
            "tests",
        );
        let config = aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodbstreams::config::Region::new(
                region.to_string(),
            ))
            .endpoint_url(self.server(region).endpoint())
            .credentials_provider(credentials)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_dynamodbstreams::Client::from_conf(config)
    }

    /// An SDK client of `region`'s server (its requests are signed for that region).
    pub fn client(&self, region: &str) -> aws_sdk_dynamodb::Client {
        let server = self.server(region);
        let credentials = aws_sdk_dynamodb::config::Credentials::new(
            &self.key.0,
            &self.key.1,
            None,
            None,
            "tests",
        );
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new(region.to_string()))
            .endpoint_url(server.endpoint())
            .credentials_provider(credentials)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// `GET <path>` on `region`'s server, signed with the replication key (status pages need a
    /// full-access key under `--auth`).
    pub fn status(&self, region: &str, path: &str) -> serde_json::Value {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let server = self.server(region);
        let url = format!("{}{path}", server.endpoint());
        let host = server.address.to_string();
        let identity =
            aws_credential_types::Credentials::new(&self.key.0, &self.key.1, None, None, "tests")
                .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("dynamodb")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [("host", host.as_str())];
        let signable =
            SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(&[]))
                .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut request = ureq::get(&url);
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        request.call().unwrap().body_mut().read_json().unwrap()
    }

    /// Cuts or heals both directions.
    pub fn set_cut(&self, cut: bool) {
        self.to_first.set_cut(cut);
        self.to_second.set_cut(cut);
    }
}

/// A config file as a node of `region` sees the deployment (`dir/<region>.toml`): each region at
/// the given address, `replication` added to `[replication]`.
pub fn write_config(
    dir: &Path,
    region: &str,
    [first, second]: [SocketAddr; 2],
    key: &(String, String),
    replication: &str,
) -> PathBuf {
    let path = dir.join(format!("{region}.toml"));
    let text = format!(
        r#"[zone]
apex = "haven.test"
nameservers = [{{ name = "ns1.haven.test", addresses = ["127.0.0.1"] }}]

[dns]
listen = ["127.0.0.1:0"]

[[regions]]
name = "{FIRST}"
nodes = ["{first}"]

[[regions]]
name = "{SECOND}"
nodes = ["{second}"]

[replication]
access_key_id = "{}"
secret_access_key = "{}"
interval_ms = 20
timeout_ms = 1000
{replication}"#,
        key.0, key.1
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Every item of `table`, by its `pk`.
pub async fn items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> BTreeMap<String, BTreeMap<String, AttributeValue>> {
    let items = super::scan_items(client, table).await;
    let by_pk = |item: HashMap<String, AttributeValue>| {
        let Some(AttributeValue::S(pk)) = item.get("pk") else {
            panic!("item without pk: {item:?}");
        };
        (pk.clone(), item.into_iter().collect())
    };
    items.into_iter().map(by_pk).collect()
}

/// The replica statuses DescribeTable shows, by region.
pub async fn replicas(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<(String, aws_sdk_dynamodb::types::ReplicaStatus)> {
    let table = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap();
    let table = table.table().unwrap();
    table
        .replicas()
        .iter()
        .map(|r| {
            (
                r.region_name().unwrap().to_string(),
                r.replica_status().unwrap().clone(),
            )
        })
        .collect()
}

/// Polls `check` every 20 ms until it holds, for at most `within`.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
