//! The running control plane: plans from health, publishes through an enactor, and hands the plan
//! in effect to whoever serves DNS.
//!
//! The API the server uses:
//! - [`spawn`]`(inventory, config, health)` runs on the current tokio runtime. Before it returns it
//!   opens the plan store (`config.state_dir`, or memory), reconciles it, and publishes the plan in
//!   effect, so DNS can answer at once: the last good plan on disk if there is one (I7), else one
//!   made from the inventory (every node, since nothing is known yet).
//! - [`ControlHandle::plans`]: a watch of the plan in effect. Every value has a non-empty answer for
//!   every managed name (the planner fails open, I2).
//! - [`ControlHandle::status`]: the plan in effect, recent plans and recent stale-write rejections.
//!
//! The loop runs until the health sender is dropped. Store and planner work runs on tokio's blocking
//! threads; the DNS side only reads the watch, so a slow disk or a stuck planner never delays an
//! answer, and if the loop dies the watch keeps its last plan. A plan the store cannot save (a disk
//! error) is still served from memory: the answer follows health, the disk catches up at the next
//! plan.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::enactor::Enactor;
use crate::plan::{Generation, HealthView, Inventory, Plan};
use crate::planner::{Planner, VelocityLimit};
use crate::store::{ApplyOutcome, PlanStore, StaleReason, StoreError};

/// How the control loop runs.
#[derive(Clone, Debug)]
pub struct ControlConfig {
    /// Where plans are kept; `None` keeps them in memory (nothing survives a restart).
    pub state_dir: Option<PathBuf>,
    /// The largest fraction of a region's nodes health may remove per `velocity_window`.
    pub max_removed_fraction: f64,
    pub velocity_window: Duration,
    /// How many superseded plans stay on disk and in the status history.
    pub history_len: usize,
}

/// A snapshot of the control plane, for `haven dns status`.
#[derive(Clone, Debug, Serialize)]
pub struct ControlStatus {
    pub effective: Plan,
    /// Newest first.
    pub history: Vec<PlanSummary>,
    /// Newest first; at most `history_len`.
    pub stale_rejections: Vec<StaleRejection>,
    /// The last store failure, if the latest plan could not be saved.
    pub store_error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PlanSummary {
    pub generation: Generation,
    pub created_at_ms: u64,
    /// Address count per managed name.
    pub addresses: BTreeMap<String, usize>,
}

impl PlanSummary {
    fn of(plan: &Plan) -> PlanSummary {
        PlanSummary {
            generation: plan.generation,
            created_at_ms: plan.created_at_ms,
            addresses: plan
                .record_sets
                .iter()
                .map(|(name, set)| (name.clone(), set.addresses.len()))
                .collect(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct StaleRejection {
    pub at_ms: u64,
    pub generation: Generation,
    pub reason: StaleReason,
}

pub struct ControlHandle {
    plans: watch::Receiver<Arc<Plan>>,
    status: Arc<Mutex<ControlStatus>>,
}

impl ControlHandle {
    /// The plan in effect, updated whenever a new one is published.
    pub fn plans(&self) -> watch::Receiver<Arc<Plan>> {
        self.plans.clone()
    }

    pub fn status(&self) -> ControlStatus {
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Starts the control loop; see the module documentation.
pub fn spawn(
    inventory: Inventory,
    config: ControlConfig,
    mut health: watch::Receiver<HealthView>,
) -> anyhow::Result<ControlHandle> {
    let mut control = Control::open(inventory, &config)?;
    control.step(&health.borrow_and_update());
    let (plans_sender, plans) = watch::channel(control.effective.clone());
    let status = Arc::new(Mutex::new(control.status()));
    let handle = ControlHandle {
        plans,
        status: status.clone(),
    };
    let tick = tick_interval(config.velocity_window);
    tokio::spawn(run(control, health, plans_sender, status, tick));
    Ok(handle)
}

/// Re-plans even without health news, so removals held back by the velocity limit go through once
/// their window has passed.
fn tick_interval(velocity_window: Duration) -> Duration {
    (velocity_window / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

async fn run(
    mut control: Control,
    mut health: watch::Receiver<HealthView>,
    plans: watch::Sender<Arc<Plan>>,
    status: Arc<Mutex<ControlStatus>>,
    tick: Duration,
) {
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = health.changed() => if changed.is_err() { return },
            _ = ticks.tick() => {}
        }
        let view = health.borrow_and_update().clone();
        let stepped = tokio::task::spawn_blocking(move || {
            control.step(&view);
            control
        });
        control = match stepped.await {
            Ok(control) => control,
            Err(error) => {
                tracing::error!(%error, "DNS control loop stopped; the last plan stays in effect");
                return;
            }
        };
        plans.send_if_modified(|published| {
            let changed = published.generation != control.effective.generation;
            if changed {
                *published = control.effective.clone();
            }
            changed
        });
        *status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = control.status();
    }
}

/// The control plane's state, owned by the loop.
struct Control {
    planner: Planner,
    store: Arc<PlanStore>,
    enactor: Enactor,
    history_len: usize,
    /// The plan served; the planner's `previous`.
    effective: Arc<Plan>,
    history: VecDeque<PlanSummary>,
    stale_rejections: VecDeque<StaleRejection>,
    store_error: Option<String>,
}

impl Control {
    /// Opens and reconciles the store; serves its plan, or a first plan from the inventory.
    fn open(inventory: Inventory, config: &ControlConfig) -> anyhow::Result<Control> {
        let velocity = VelocityLimit {
            max_removed_fraction: config.max_removed_fraction,
            window: config.velocity_window,
        };
        let mut planner = Planner::new(inventory, velocity)?;
        let store = Arc::new(match &config.state_dir {
            Some(dir) => PlanStore::open(dir)?,
            None => PlanStore::in_memory(),
        });
        let enactor = Enactor::new(store.clone())?;
        let effective = match store.effective()? {
            Some(plan) => plan,
            None => {
                let first = planner
                    .next_plan(
                        &HealthView::new(),
                        None,
                        store.highest_generation()?,
                        now_ms(),
                    )
                    .expect("with no previous plan the planner always makes one");
                enactor.publish(&first)?;
                Arc::new(first)
            }
        };
        haven_metrics::dns_plan(effective.generation);
        Ok(Control {
            planner,
            store,
            enactor,
            history_len: config.history_len,
            history: VecDeque::from([PlanSummary::of(&effective)]),
            effective,
            stale_rejections: VecDeque::new(),
            store_error: None,
        })
    }

    /// Plans from `health`, and publishes the plan if there is a new one.
    fn step(&mut self, health: &HealthView) {
        if let Err(error) = self.try_step(health) {
            tracing::error!(%error, "DNS plan store failed; serving the plan from memory");
            self.store_error = Some(error.to_string());
        }
    }

    fn try_step(&mut self, health: &HealthView) -> Result<(), StoreError> {
        let floor = self
            .store
            .highest_generation()
            .unwrap_or(self.effective.generation);
        let Some(plan) = self
            .planner
            .next_plan(health, Some(&self.effective), floor, now_ms())
        else {
            return Ok(());
        };
        let plan = Arc::new(plan);
        match self.enactor.publish(&plan) {
            Ok(ApplyOutcome::Applied(_)) => {
                self.make_effective(plan);
                self.store_error = None;
                self.store.cleanup(self.history_len)?;
            }
            Ok(ApplyOutcome::Stale(reason)) => self.reject(plan.generation, reason)?,
            Err(error) => {
                // Served all the same: the answer must follow health whatever the disk does.
                self.make_effective(plan);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Another enactor published something newer: serve what the store has.
    fn reject(&mut self, generation: Generation, reason: StaleReason) -> Result<(), StoreError> {
        self.stale_rejections.push_front(StaleRejection {
            at_ms: now_ms(),
            generation,
            reason,
        });
        self.stale_rejections.truncate(self.history_len.max(1));
        if let Some(plan) = self.store.effective()? {
            self.make_effective(plan);
        }
        Ok(())
    }

    fn make_effective(&mut self, plan: Arc<Plan>) {
        haven_metrics::dns_plan(plan.generation);
        self.remember(&plan);
        self.effective = plan;
    }

    fn remember(&mut self, plan: &Plan) {
        self.history.push_front(PlanSummary::of(plan));
        self.history.truncate(self.history_len.max(1));
    }

    fn status(&self) -> ControlStatus {
        ControlStatus {
            effective: Plan::clone(&self.effective),
            history: self.history.iter().cloned().collect(),
            stale_rejections: self.stale_rejections.iter().cloned().collect(),
            store_error: self.store_error.clone(),
        }
    }
}

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    use super::*;
    use crate::plan::{RegionInventory, TargetHealth};
    use crate::planner::region_name;

    fn node(host: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)), 8000)
    }

    fn inventory() -> Inventory {
        Inventory {
            zone: "haven.test.".to_owned(),
            regions: vec![RegionInventory {
                name: "r1".to_owned(),
                nodes: (1..=3).map(node).collect(),
            }],
            failover_order: vec!["r1".to_owned()],
            ttl: 30,
        }
    }

    fn config(state_dir: Option<PathBuf>) -> ControlConfig {
        ControlConfig {
            state_dir,
            max_removed_fraction: 0.5,
            velocity_window: Duration::from_secs(60),
            history_len: 4,
        }
    }

    fn region_addresses(plan: &Plan) -> Vec<IpAddr> {
        plan.record_sets[&region_name("r1", "haven.test.")]
            .addresses
            .clone()
    }

    /// Node 3 fails, the others pass.
    fn node_3_down() -> HealthView {
        [
            (node(1), TargetHealth::Healthy),
            (node(2), TargetHealth::Healthy),
            (node(3), TargetHealth::Unhealthy),
        ]
        .into_iter()
        .collect()
    }

    async fn wait_for_generation(handle: &ControlHandle, generation: Generation) -> Arc<Plan> {
        let mut plans = handle.plans();
        let waiting = plans.wait_for(|plan| plan.generation >= generation);
        let plan = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("the control loop publishes the plan")
            .expect("the control loop is running");
        Arc::clone(&plan)
    }

    #[tokio::test]
    async fn a_plan_is_in_effect_at_once_and_follows_health() {
        let (health, health_receiver) = watch::channel(HealthView::new());
        let handle = spawn(inventory(), config(None), health_receiver).unwrap();
        let first = handle.plans().borrow().clone();
        assert_eq!(
            region_addresses(&first),
            (1..=3).map(|host| node(host).ip()).collect::<Vec<_>>()
        );

        health.send(node_3_down()).unwrap();
        let second = wait_for_generation(&handle, first.generation + 1).await;
        assert_eq!(region_addresses(&second), vec![node(1).ip(), node(2).ip()]);

        let status = handle.status();
        assert_eq!(status.effective, *second);
        let generations: Vec<Generation> =
            status.history.iter().map(|plan| plan.generation).collect();
        assert_eq!(generations, vec![second.generation, first.generation]);
        assert_eq!(
            status.history[0].addresses[&region_name("r1", "haven.test.")],
            2
        );
        assert!(status.stale_rejections.is_empty());
    }

    /// Removals held back by the velocity limit go through once their window has passed, with no
    /// further news from the health checks.
    #[tokio::test]
    async fn held_back_removals_proceed_when_the_window_passes() {
        let (health, health_receiver) = watch::channel(HealthView::new());
        let one_per_window = ControlConfig {
            max_removed_fraction: 0.34,
            velocity_window: Duration::from_millis(300),
            ..config(None)
        };
        let handle = spawn(inventory(), one_per_window, health_receiver).unwrap();
        let first = handle.plans().borrow().generation;
        let mut two_down = node_3_down();
        two_down.insert(node(2), TargetHealth::Unhealthy);
        health.send(two_down).unwrap();

        let one_removed = wait_for_generation(&handle, first + 1).await;
        assert_eq!(
            region_addresses(&one_removed),
            vec![node(1).ip(), node(2).ip()]
        );
        assert!(one_removed.record_sets.values().all(|set| set.degraded));
        let both_removed = wait_for_generation(&handle, first + 2).await;
        assert_eq!(region_addresses(&both_removed), vec![node(1).ip()]);
        assert!(both_removed.record_sets.values().all(|set| !set.degraded));
    }

    /// I7: a restarted node serves the last plan it published, before any health check has run.
    #[test]
    fn a_restarted_control_plane_serves_its_last_plan_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = Some(dir.path().to_path_buf());
        let published = {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let (health, health_receiver) = watch::channel(HealthView::new());
                let handle =
                    spawn(inventory(), config(state_dir.clone()), health_receiver).unwrap();
                health.send(node_3_down()).unwrap();
                let generation = handle.plans().borrow().generation + 1;
                wait_for_generation(&handle, generation).await
            })
        };

        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let (_health, health_receiver) = watch::channel(HealthView::new());
            let handle = spawn(inventory(), config(state_dir), health_receiver).unwrap();
            assert_eq!(*handle.plans().borrow().clone(), *published);
        });
    }
}
