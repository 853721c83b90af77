//! The planner: turns what exists (the [`Inventory`]), how it looks (the [`HealthView`]) and what is
//! published now (the previous plan) into the next immutable [`Plan`].
//!
//! It is pure apart from its memory of recent removals (for the velocity limit), so it is easy to test
//! and never touches the store; the enactor publishes what it makes.
//!
//! The rules, per record set (one per region, plus the failover name `dynamodb.<zone>`):
//! - A node is in the set when it is Healthy. A NotReady node (starting, or not yet probed) is neither
//!   added nor removed: it keeps the membership it had in the previous plan, and before any plan exists
//!   every node counts as a member, so the first set is the whole inventory (fail open).
//! - Health may remove at most `max_removed_fraction` of a region's nodes per `velocity_window`
//!   (at least one node when the fraction is positive); further removals wait for the window to pass.
//! - When no node would be left, the set keeps the previous one (fail open, I2), or every node.
//! - The failover name answers with the set of the first region in `failover_order` that has a
//!   healthy node; when none has, it keeps its previous answer or falls back to the first region's.
//! - A set that serves a node health checks call Unhealthy is `degraded` and its TTL is halved.
//! - A plan is made only when some answer set changes, with a generation above every generation the
//!   store has ever held (the caller passes that floor), so generations increase across restarts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::plan::{
    Generation, HealthView, Inventory, Plan, RecordSet, RegionInventory, TargetHealth,
};

/// How fast health checks may shrink a record set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VelocityLimit {
    /// The largest fraction of a region's nodes health may remove within one window (0.0..=1.0).
    pub max_removed_fraction: f64,
    pub window: Duration,
}

/// Why an inventory cannot be planned for: each would leave a managed name with nothing to answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InventoryError {
    #[error("the inventory has no regions")]
    NoRegions,
    #[error("region {0} has no API nodes")]
    EmptyRegion(String),
    #[error("failover order names region {0}, which is not in the inventory")]
    UnknownFailoverRegion(String),
    #[error("the failover order names no region")]
    NoFailoverRegion,
}

/// The name a region's nodes are published under: `dynamodb.<region>.<zone>`.
pub fn region_name(region: &str, zone: &str) -> String {
    format!("dynamodb.{region}.{zone}")
}

/// The failover name: `dynamodb.<zone>`.
pub fn failover_name(zone: &str) -> String {
    format!("dynamodb.{zone}")
}

/// Makes plans; remembers the removals it made so the velocity limit spans plans.
#[derive(Debug)]
pub struct Planner {
    inventory: Inventory,
    velocity: VelocityLimit,
    /// Per record-set name: when (ms since epoch) each recent health removal was published.
    recent_removals: BTreeMap<String, VecDeque<u64>>,
}

/// One set's answer and whether health was held back to produce it.
struct SetDecision {
    members: BTreeSet<SocketAddr>,
    removed_now: usize,
    holds_unhealthy: bool,
}

impl Planner {
    pub fn new(inventory: Inventory, velocity: VelocityLimit) -> Result<Planner, InventoryError> {
        validate(&inventory)?;
        Ok(Planner {
            inventory,
            velocity,
            recent_removals: BTreeMap::new(),
        })
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The plan that should follow `previous`, or `None` when every answer set would stay the same.
    /// `generation_floor` is the highest generation ever stored; the new plan's is above it and above
    /// `previous`'s. `now_ms` is milliseconds since the Unix epoch.
    pub fn next_plan(
        &mut self,
        health: &HealthView,
        previous: Option<&Plan>,
        generation_floor: Generation,
        now_ms: u64,
    ) -> Option<Plan> {
        self.forget_old_removals(now_ms);
        let zone = self.inventory.zone.clone();
        let mut record_sets = BTreeMap::new();
        let mut removals = Vec::new();
        for region in &self.inventory.regions {
            let name = region_name(&region.name, &zone);
            let previous_set = previous.and_then(|plan| plan.record_sets.get(&name));
            let decision = self.decide_region(&name, region, health, previous_set);
            removals.push((name.clone(), decision.removed_now));
            record_sets.insert(name.clone(), self.record_set(name, &decision));
        }
        let failover = self.failover_set(&record_sets, health, previous);
        record_sets.insert(failover.name.clone(), failover);

        if previous.is_some_and(|plan| plan.record_sets == record_sets) {
            return None;
        }
        self.remember_removals(removals, now_ms);
        let previous_generation = previous.map_or(0, |plan| plan.generation);
        Some(Plan {
            generation: generation_floor.max(previous_generation) + 1,
            created_at_ms: now_ms,
            zone,
            record_sets,
        })
    }

    fn decide_region(
        &self,
        name: &str,
        region: &RegionInventory,
        health: &HealthView,
        previous: Option<&RecordSet>,
    ) -> SetDecision {
        let was_member =
            |node: &SocketAddr| previous.is_none_or(|set| set.addresses.contains(&node.ip()));
        let health_of =
            |node: &SocketAddr| health.get(node).copied().unwrap_or(TargetHealth::NotReady);
        let previous_members: BTreeSet<SocketAddr> =
            region.nodes.iter().copied().filter(was_member).collect();

        let mut members: BTreeSet<SocketAddr> = region
            .nodes
            .iter()
            .copied()
            .filter(|node| match health_of(node) {
                TargetHealth::Healthy => true,
                TargetHealth::NotReady => was_member(node),
                TargetHealth::Unhealthy => false,
            })
            .collect();

        if members.is_empty() {
            // Every target looks unhealthy: keep the previous set whole (fail open, I2), or everyone.
            let kept = if previous_members.is_empty() {
                region.nodes.iter().copied().collect()
            } else {
                previous_members
            };
            return SetDecision {
                holds_unhealthy: kept
                    .iter()
                    .any(|node| health_of(node) == TargetHealth::Unhealthy),
                members: kept,
                removed_now: 0,
            };
        }

        // Velocity limit: put back the removals beyond this window's budget (lowest address first).
        let wanted_removals: Vec<SocketAddr> = previous_members
            .iter()
            .copied()
            .filter(|node| health_of(node) == TargetHealth::Unhealthy)
            .collect();
        let budget = self.removal_budget(name, region.nodes.len());
        let held_back = wanted_removals.len().saturating_sub(budget);
        members.extend(wanted_removals.iter().take(held_back));
        let holds_unhealthy = members
            .iter()
            .any(|node| health_of(node) == TargetHealth::Unhealthy);
        SetDecision {
            members,
            removed_now: wanted_removals.len() - held_back,
            holds_unhealthy,
        }
    }

    /// How many more nodes health may remove from the set `name` in the current window.
    fn removal_budget(&self, name: &str, region_size: usize) -> usize {
        let fraction = self.velocity.max_removed_fraction.clamp(0.0, 1.0);
        let per_window = if fraction > 0.0 {
            ((fraction * region_size as f64).floor() as usize).max(1)
        } else {
            0
        };
        let used = self.recent_removals.get(name).map_or(0, VecDeque::len);
        per_window.saturating_sub(used)
    }

    fn record_set(&self, name: String, decision: &SetDecision) -> RecordSet {
        let addresses: BTreeSet<IpAddr> = decision.members.iter().map(SocketAddr::ip).collect();
        self.degradable_set(
            name,
            addresses.into_iter().collect(),
            decision.holds_unhealthy,
        )
    }

    fn degradable_set(&self, name: String, addresses: Vec<IpAddr>, degraded: bool) -> RecordSet {
        let ttl = if degraded {
            (self.inventory.ttl / 2).max(1)
        } else {
            self.inventory.ttl
        };
        RecordSet {
            name,
            addresses,
            ttl,
            degraded,
        }
    }

    /// The failover name's set: the first region (in failover order) with a healthy node.
    fn failover_set(
        &self,
        region_sets: &BTreeMap<String, RecordSet>,
        health: &HealthView,
        previous: Option<&Plan>,
    ) -> RecordSet {
        let zone = &self.inventory.zone;
        let name = failover_name(zone);
        let region_set = |region: &str| &region_sets[&region_name(region, zone)];
        let first_healthy = self.inventory.failover_order.iter().find(|region| {
            self.region(region)
                .nodes
                .iter()
                .any(|node| health.get(node) == Some(&TargetHealth::Healthy))
        });
        if let Some(region) = first_healthy {
            let chosen = region_set(region);
            return self.degradable_set(name, chosen.addresses.clone(), chosen.degraded);
        }
        // No region has a healthy node: keep the previous answer (fail open), else the first region's.
        let everyone: BTreeSet<IpAddr> = self.all_nodes().map(|node| node.ip()).collect();
        let kept: Vec<IpAddr> = previous
            .and_then(|plan| plan.record_sets.get(&name))
            .map(|set| {
                set.addresses
                    .iter()
                    .copied()
                    .filter(|ip| everyone.contains(ip))
                    .collect()
            })
            .unwrap_or_default();
        let first = region_set(&self.inventory.failover_order[0]);
        let addresses = if kept.is_empty() {
            first.addresses.clone()
        } else {
            kept
        };
        let anyone_unhealthy = self
            .all_nodes()
            .any(|node| health.get(&node) == Some(&TargetHealth::Unhealthy));
        self.degradable_set(name, addresses, anyone_unhealthy)
    }

    fn region(&self, name: &str) -> &RegionInventory {
        self.inventory
            .regions
            .iter()
            .find(|region| region.name == name)
            .expect("the failover order was validated against the regions")
    }

    fn all_nodes(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.inventory
            .regions
            .iter()
            .flat_map(|region| region.nodes.iter().copied())
    }

    fn forget_old_removals(&mut self, now_ms: u64) {
        let window_ms = u64::try_from(self.velocity.window.as_millis()).unwrap_or(u64::MAX);
        for times in self.recent_removals.values_mut() {
            while times
                .front()
                .is_some_and(|&at| now_ms.saturating_sub(at) >= window_ms)
            {
                times.pop_front();
            }
        }
    }

    fn remember_removals(&mut self, removals: Vec<(String, usize)>, now_ms: u64) {
        for (name, count) in removals {
            let times = self.recent_removals.entry(name).or_default();
            times.extend(std::iter::repeat_n(now_ms, count));
        }
    }
}

fn validate(inventory: &Inventory) -> Result<(), InventoryError> {
    if inventory.regions.is_empty() {
        return Err(InventoryError::NoRegions);
    }
    if let Some(empty) = inventory
        .regions
        .iter()
        .find(|region| region.nodes.is_empty())
    {
        return Err(InventoryError::EmptyRegion(empty.name.clone()));
    }
    if inventory.failover_order.is_empty() {
        return Err(InventoryError::NoFailoverRegion);
    }
    let known = |name: &String| inventory.regions.iter().any(|region| &region.name == name);
    match inventory.failover_order.iter().find(|name| !known(name)) {
        Some(unknown) => Err(InventoryError::UnknownFailoverRegion(unknown.clone())),
        None => Ok(()),
    }
}
