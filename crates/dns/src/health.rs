//! Health checks: every node probes `GET /health` on every API node and publishes what it sees as a
//! [`HealthView`] on a watch channel, which the control loop plans from.
//!
//! A verdict changes only after a run of agreeing probes (`failures` in a row to become Unhealthy,
//! `successes` in a row to become Healthy), so one lost probe or one lucky one never flips a record
//! set. A node that has never answered 200 is NotReady, not Unhealthy, however often its probe
//! fails: it may simply be starting, and the planner neither adds nor removes NotReady nodes.
//!
//! A probe is one HTTP/1.1 request on a fresh TCP connection with a deadline for the whole
//! exchange; only the status line is read. 200 is a success; anything else (503 while the node
//! says it is starting, a refused connection, a timeout, a certificate that does not verify) is a
//! failure. With `[health] scheme = "https"` the request goes over TLS (`tls`).

mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub use self::tls::ProbeTls;
use crate::config::HealthSettings;
use crate::plan::{HealthView, TargetHealth};

/// Starts one probing task per target on the current runtime; they stop when every receiver of
/// the returned channel is gone.
pub fn spawn(targets: &[SocketAddr], settings: HealthSettings) -> watch::Receiver<HealthView> {
    let view: HealthView = targets
        .iter()
        .map(|target| (*target, TargetHealth::NotReady))
        .collect();
    let (sender, receiver) = watch::channel(view);
    let sender = Arc::new(sender);
    for target in targets {
        tokio::spawn(probe_forever(*target, settings.clone(), sender.clone()));
    }
    receiver
}

async fn probe_forever(
    target: SocketAddr,
    settings: HealthSettings,
    view: Arc<watch::Sender<HealthView>>,
) {
    let mut tracker = Tracker::default();
    let mut ticks = tokio::time::interval(settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !view.is_closed() {
        ticks.tick().await;
        let passed = probe(target, settings.timeout, settings.tls.as_ref()).await;
        let health = tracker.record(passed, &settings);
        view.send_if_modified(|view| {
            let changed = view.insert(target, health) != Some(health);
            if changed {
                haven_metrics::dns_node_health(
                    &target.to_string(),
                    health == TargetHealth::Healthy,
                );
            }
            changed
        });
    }
}

/// Whether `target` answers `GET /health` with 200 within `timeout` (over TLS when `tls` is given).
async fn probe(target: SocketAddr, timeout: Duration, tls: Option<&ProbeTls>) -> bool {
    let exchange = async {
        let stream = TcpStream::connect(target).await?;
        match tls {
            Some(tls) => status_line(target, tls.connect(target, stream).await?).await,
            None => status_line(target, stream).await,
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(status_line)) => status_line.split_whitespace().nth(1) == Some("200"),
        _ => false,
    }
}

/// Sends `GET /health` on `stream` and reads the response's status line.
async fn status_line(
    target: SocketAddr,
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
) -> std::io::Result<String> {
    let request = format!("GET /health HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).await?;
    Ok(line)
}

/// The verdict on one target, from its run of probe results.
#[derive(Debug)]
struct Tracker {
    health: TargetHealth,
    successes_in_a_row: u32,
    failures_in_a_row: u32,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            health: TargetHealth::NotReady,
            successes_in_a_row: 0,
            failures_in_a_row: 0,
        }
    }
}

impl Tracker {
    /// Counts one probe result and returns the verdict after it.
    fn record(&mut self, passed: bool, settings: &HealthSettings) -> TargetHealth {
        if passed {
            self.successes_in_a_row += 1;
            self.failures_in_a_row = 0;
            if self.successes_in_a_row >= settings.successes {
                self.health = TargetHealth::Healthy;
            }
        } else {
            self.failures_in_a_row += 1;
            self.successes_in_a_row = 0;
            // A node that never answered stays NotReady: it may still be starting.
            if self.health == TargetHealth::Healthy && self.failures_in_a_row >= settings.failures {
                self.health = TargetHealth::Unhealthy;
            }
        }
        self.health
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: HealthSettings = HealthSettings {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(50),
        failures: 3,
        successes: 2,
        tls: None,
    };

    fn run(probes: &str) -> Vec<TargetHealth> {
        let mut tracker = Tracker::default();
        probes
            .chars()
            .map(|probe| tracker.record(probe == '+', &SETTINGS))
            .collect()
    }

    use TargetHealth::{Healthy as H, NotReady as N, Unhealthy as U};

    #[test]
    fn a_node_that_never_answered_stays_not_ready() {
        assert_eq!(run("-----"), [N, N, N, N, N]);
        assert_eq!(run("-+-+-"), [N, N, N, N, N]);
    }

    #[test]
    fn verdicts_change_only_after_a_run_of_agreeing_probes() {
        assert_eq!(run("++--+--"), [N, H, H, H, H, H, H]);
        assert_eq!(run("++---+-+"), [N, H, H, H, U, U, U, U]);
        assert_eq!(run("++---++"), [N, H, H, H, U, U, H]);
    }

    #[tokio::test]
    async fn probes_read_the_status_line() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = vec![0; 1024];
                let read = tokio::io::AsyncReadExt::read(&mut stream, &mut request)
                    .await
                    .unwrap();
                assert!(request[..read].starts_with(b"GET /health HTTP/1.1\r\n"));
                let response = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                stream.write_all(response.as_bytes()).await.unwrap();
            }
            // A third connection is accepted and never answered: a timeout.
            let (_silent, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        assert!(probe(address, Duration::from_secs(1), None).await);
        assert!(!probe(address, Duration::from_secs(1), None).await);
        assert!(!probe(address, Duration::from_millis(100), None).await);
        server.abort();
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(
            !probe(closed, Duration::from_secs(1), None).await,
            "refused"
        );
    }
}
