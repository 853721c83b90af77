//! The DNS subsystem of one `haven serve` node, wired in order: health checks publish a
//! [`HealthView`] → the control loop plans and publishes the plan in effect → a swapper encodes
//! each new plan into a [`Snapshot`] and swaps it in → the UDP/TCP servers answer from it.
//!
//! It runs on a tokio runtime of its own threads, apart from the API's, so a busy or stuck data
//! path cannot delay an answer. If the control loop stops, its last plan stays published and the
//! servers go on answering from the last snapshot; if the plan store cannot be opened at all, the
//! control loop runs with an in-memory store rather than leave the names unserved.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::watch;

use crate::config::{DnsConfig, ZoneSettings};
use crate::control::{self, ControlConfig, ControlHandle, ControlStatus};
use crate::plan::{Generation, HealthView, Inventory, Plan, TargetHealth};
use crate::server::Listeners;
use crate::zone::{Snapshot, SnapshotCell};

/// A running DNS subsystem; dropping it stops it (drop it outside any async context).
pub struct DnsSubsystem {
    parts: Arc<Parts>,
    /// Owns the threads everything runs on; last, so it is dropped last.
    _runtime: tokio::runtime::Runtime,
}

/// What status reports read; shareable without the runtime, so a report held elsewhere never
/// owns (and never drops) the subsystem's threads.
struct Parts {
    inventory: Inventory,
    control: ControlHandle,
    health: watch::Receiver<HealthView>,
    snapshot: SnapshotCell,
    addresses: Vec<SocketAddr>,
}

/// What `GET /dns/status` shows.
#[derive(Serialize)]
pub struct DnsStatus {
    /// Where this node answers DNS (UDP and TCP).
    pub listen: Vec<SocketAddr>,
    /// The generation of the snapshot being served.
    pub serving_generation: Generation,
    /// This node's view of every API node.
    pub health: Vec<TargetStatus>,
    /// The plan in effect, recent plans and rejected stale writes.
    pub control: ControlStatus,
}

#[derive(Serialize)]
pub struct TargetStatus {
    pub region: String,
    pub node: SocketAddr,
    pub health: TargetHealth,
}

impl DnsSubsystem {
    /// Starts health checks, the control loop and the servers on `config.listen`, on `threads`
    /// worker threads (the caller's core count, read once at its start).
    pub fn start(config: DnsConfig, threads: usize) -> anyhow::Result<DnsSubsystem> {
        anyhow::ensure!(
            !config.listen.is_empty(),
            "no DNS listen address: set [dns] listen in the config"
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("haven-dns")
            .enable_all()
            .build()?;
        let started = runtime.block_on(async {
            let listeners = Listeners::bind(&config.listen)
                .await
                .with_context(|| format!("cannot listen for DNS on {:?}", config.listen))?;
            let targets: Vec<SocketAddr> = config
                .inventory
                .regions
                .iter()
                .flat_map(|r| r.nodes.iter().copied())
                .collect();
            let health = crate::health::spawn(&targets, config.health.clone());
            let control = spawn_control(&config, health.clone())?;
            if let Some(publisher) = config.push.clone() {
                tokio::spawn(crate::push::follow(publisher, control.plans()));
            }
            let snapshot = swap_in_each_plan(control.plans(), config.zone.clone());
            let addresses = listeners.addresses();
            listeners.serve(snapshot.clone(), threads);
            anyhow::Ok((control, health, snapshot, addresses))
        })?;
        let (control, health, snapshot, addresses) = started;
        let parts = Parts {
            inventory: config.inventory,
            control,
            health,
            snapshot,
            addresses,
        };
        Ok(DnsSubsystem {
            parts: Arc::new(parts),
            _runtime: runtime,
        })
    }

    /// The addresses the DNS servers are bound to.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.parts.addresses
    }

    /// A function that reports the current [`DnsStatus`] as JSON, for the API's status page.
    pub fn status_reporter(&self) -> impl Fn() -> serde_json::Value + Send + Sync + 'static {
        let parts = self.parts.clone();
        move || serde_json::to_value(parts.status()).unwrap_or_default()
    }
}

impl Parts {
    fn status(&self) -> DnsStatus {
        let view = self.health.borrow().clone();
        let health = self
            .inventory
            .regions
            .iter()
            .flat_map(|region| {
                region.nodes.iter().map(|node| TargetStatus {
                    region: region.name.clone(),
                    node: *node,
                    health: view.get(node).copied().unwrap_or(TargetHealth::NotReady),
                })
            })
            .collect();
        DnsStatus {
            listen: self.addresses.clone(),
            serving_generation: self.snapshot.load().generation(),
            health,
            control: self.control.status(),
        }
    }
}

/// The control loop on the configured store, or on memory if that store cannot be opened.
fn spawn_control(
    config: &DnsConfig,
    health: watch::Receiver<HealthView>,
) -> anyhow::Result<ControlHandle> {
    let control_config = ControlConfig {
        state_dir: config.state_dir.clone(),
        max_removed_fraction: config.velocity.max_removed_fraction,
        velocity_window: config.velocity.window,
        history_len: config.history_len,
    };
    match control::spawn(
        config.inventory.clone(),
        control_config.clone(),
        health.clone(),
    ) {
        Ok(handle) => Ok(handle),
        Err(error) if control_config.state_dir.is_some() => {
            tracing::error!(%error, "DNS plan store unusable; planning in memory from the inventory");
            let in_memory = ControlConfig {
                state_dir: None,
                ..control_config
            };
            control::spawn(config.inventory.clone(), in_memory, health)
        }
        Err(error) => Err(error),
    }
}

/// Encodes the plan in effect now, then each new one as it is published, into the returned cell.
fn swap_in_each_plan(mut plans: watch::Receiver<Arc<Plan>>, zone: ZoneSettings) -> SnapshotCell {
    let first = Snapshot::build(&plans.borrow_and_update(), &zone);
    let cell: SnapshotCell = Arc::new(ArcSwap::from_pointee(first));
    let swapped = cell.clone();
    tokio::spawn(async move {
        while plans.changed().await.is_ok() {
            let plan = plans.borrow_and_update().clone();
            swapped.store(Arc::new(Snapshot::build(&plan, &zone)));
            tracing::info!(generation = plan.generation, "DNS plan in effect");
        }
        tracing::warn!("DNS control loop gone; serving the last plan");
    });
    cell
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::Duration;

    use hickory_proto::op::{Message, Query, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};

    use super::*;

    /// I7's last resort: a plan store that cannot be opened (here a file where the directory
    /// should be) must not leave the names unserved.
    #[test]
    fn an_unusable_plan_store_still_serves_the_inventory() {
        let not_a_directory = tempfile::NamedTempFile::new().unwrap();
        let mut config = DnsConfig::parse(
            r#"
            [zone]
            apex = "haven.test"
            nameservers = [{ name = "ns1.haven.test", addresses = ["127.0.0.1"] }]
            [dns]
            listen = ["127.0.0.1:0"]
            [[regions]]
            name = "us-east-1"
            nodes = ["127.0.0.1:9", "127.0.0.2:9"]
            "#,
        )
        .unwrap();
        let state_dir = not_a_directory.path().join("dns");
        assert!(
            crate::store::PlanStore::open(&state_dir).is_err(),
            "the store must be unusable"
        );
        config.state_dir = Some(state_dir);
        let dns = DnsSubsystem::start(config, 2).unwrap();

        let mut query = Message::query();
        query.metadata.id = 7;
        let name = Name::from_ascii("dynamodb.us-east-1.haven.test.").unwrap();
        query.queries.push(Query::query(name, RecordType::A));
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client
            .send_to(&query.to_vec().unwrap(), dns.addresses()[0])
            .unwrap();
        let mut buffer = [0u8; 512];
        let length = client.recv(&mut buffer).unwrap();
        let response = Message::from_vec(&buffer[..length]).unwrap();
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            response.answers.len(),
            2,
            "every node, since nothing is known yet"
        );
        assert!(dns.status_reporter()()["control"]["store_error"].is_null());
    }
}
