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

/// One region's members, and how many nodes health removed from it in this plan.
struct SetDecision {
    members: BTreeSet<SocketAddr>,
    removed_now: usize,
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
        let unhealthy: BTreeSet<IpAddr> = health
            .iter()
            .filter(|(_, state)| **state == TargetHealth::Unhealthy)
            .map(|(node, _)| node.ip())
            .collect();
        let mut record_sets = BTreeMap::new();
        let mut removals = Vec::new();
        for region in &self.inventory.regions {
            let name = region_name(&region.name, &zone);
            let previous_set = previous.and_then(|plan| plan.record_sets.get(&name));
            let decision = self.decide_region(&name, region, health, previous_set);
            removals.push((name.clone(), decision.removed_now));
            let addresses = decision.members.iter().map(SocketAddr::ip);
            record_sets.insert(name.clone(), self.record_set(name, addresses, &unhealthy));
        }
        let failover = self.failover_set(&record_sets, health, &unhealthy, previous);
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
        SetDecision {
            members,
            removed_now: wanted_removals.len() - held_back,
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

    /// The set of `addresses` (sorted, without repeats): degraded, with half the TTL, when it
    /// serves an address health checks call unhealthy.
    fn record_set(
        &self,
        name: String,
        addresses: impl IntoIterator<Item = IpAddr>,
        unhealthy: &BTreeSet<IpAddr>,
    ) -> RecordSet {
        let addresses: BTreeSet<IpAddr> = addresses.into_iter().collect();
        let degraded = !addresses.is_disjoint(unhealthy);
        let ttl = if degraded {
            (self.inventory.ttl / 2).max(1)
        } else {
            self.inventory.ttl
        };
        RecordSet {
            name,
            addresses: addresses.into_iter().collect(),
            ttl,
            degraded,
        }
    }

    /// The failover name's set: the first region (in failover order) with a healthy node.
    fn failover_set(
        &self,
        region_sets: &BTreeMap<String, RecordSet>,
        health: &HealthView,
        unhealthy: &BTreeSet<IpAddr>,
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
            return self.record_set(name, chosen.addresses.iter().copied(), unhealthy);
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
        self.record_set(name, addresses, unhealthy)
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;

    const ZONE: &str = "haven.test.";
    const WINDOW: Duration = Duration::from_secs(60);
    const WINDOW_MS: u64 = 60_000;

    fn node(region: u8, host: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, region, host)), 8000)
    }

    /// Region `r1` with four nodes, region `r2` with two; `r1` takes the failover name first.
    fn inventory() -> Inventory {
        Inventory {
            zone: ZONE.to_owned(),
            regions: vec![
                RegionInventory {
                    name: "r1".to_owned(),
                    nodes: (1..=4).map(|host| node(1, host)).collect(),
                },
                RegionInventory {
                    name: "r2".to_owned(),
                    nodes: (1..=2).map(|host| node(2, host)).collect(),
                },
            ],
            failover_order: vec!["r1".to_owned(), "r2".to_owned()],
            ttl: 30,
        }
    }

    /// One removal per window from a four-node region.
    fn planner() -> Planner {
        let velocity = VelocityLimit {
            max_removed_fraction: 0.25,
            window: WINDOW,
        };
        Planner::new(inventory(), velocity).unwrap()
    }

    fn health(entries: &[(SocketAddr, TargetHealth)]) -> HealthView {
        entries.iter().copied().collect()
    }

    fn all(
        region: u8,
        hosts: std::ops::RangeInclusive<u8>,
        state: TargetHealth,
    ) -> Vec<(SocketAddr, TargetHealth)> {
        hosts.map(|host| (node(region, host), state)).collect()
    }

    fn set<'p>(plan: &'p Plan, region: Option<&str>) -> &'p RecordSet {
        let name = region.map_or_else(|| failover_name(ZONE), |region| region_name(region, ZONE));
        &plan.record_sets[&name]
    }

    fn ips(region: u8, hosts: &[u8]) -> Vec<IpAddr> {
        hosts.iter().map(|&host| node(region, host).ip()).collect()
    }

    /// The first plan, made before anything is known.
    fn first_plan(planner: &mut Planner) -> Plan {
        planner.next_plan(&HealthView::new(), None, 0, 0).unwrap()
    }

    #[test]
    fn before_anything_is_known_every_node_is_published() {
        let plan = first_plan(&mut planner());
        assert_eq!(plan.generation, 1);
        assert_eq!(set(&plan, Some("r1")).addresses, ips(1, &[1, 2, 3, 4]));
        assert_eq!(set(&plan, Some("r2")).addresses, ips(2, &[1, 2]));
        assert_eq!(set(&plan, None).addresses, ips(1, &[1, 2, 3, 4]));
        assert!(
            plan.record_sets
                .values()
                .all(|set| !set.degraded && set.ttl == 30)
        );
    }

    #[test]
    fn a_not_ready_node_keeps_its_place_and_is_not_added_until_healthy() {
        let mut planner = planner();
        let first = first_plan(&mut planner);
        let mut view = health(&[(node(1, 1), TargetHealth::Healthy)]);
        assert_eq!(
            planner.next_plan(&view, Some(&first), 1, 1),
            None,
            "NotReady nodes stay"
        );

        view.insert(node(1, 4), TargetHealth::Unhealthy);
        let without_4 = planner.next_plan(&view, Some(&first), 1, 2).unwrap();
        assert_eq!(set(&without_4, Some("r1")).addresses, ips(1, &[1, 2, 3]));

        view.insert(node(1, 4), TargetHealth::NotReady);
        assert_eq!(
            planner.next_plan(&view, Some(&without_4), 2, 3),
            None,
            "starting: not added"
        );
        view.insert(node(1, 4), TargetHealth::Healthy);
        let with_4 = planner.next_plan(&view, Some(&without_4), 2, 4).unwrap();
        assert_eq!(set(&with_4, Some("r1")).addresses, ips(1, &[1, 2, 3, 4]));
    }

    #[test]
    fn health_removes_at_most_the_configured_fraction_per_window() {
        let mut planner = planner();
        let first = first_plan(&mut planner);
        let mut view = health(&all(1, 1..=4, TargetHealth::Healthy));
        view.extend(all(1, 1..=2, TargetHealth::Unhealthy));

        let one_removed = planner.next_plan(&view, Some(&first), 1, 0).unwrap();
        let r1 = set(&one_removed, Some("r1"));
        assert_eq!(
            r1.addresses,
            ips(1, &[1, 3, 4]),
            "node 2 removed, node 1 held back"
        );
        assert!(r1.degraded);
        assert_eq!(r1.ttl, 15);

        assert_eq!(
            planner.next_plan(&view, Some(&one_removed), 2, WINDOW_MS - 1),
            None
        );
        let both_removed = planner
            .next_plan(&view, Some(&one_removed), 2, WINDOW_MS)
            .unwrap();
        let r1 = set(&both_removed, Some("r1"));
        assert_eq!(r1.addresses, ips(1, &[3, 4]));
        assert!(!r1.degraded);
        assert_eq!(r1.ttl, 30);
    }

    #[test]
    fn when_every_target_looks_unhealthy_the_set_keeps_them_all() {
        let mut planner = planner();
        let first = first_plan(&mut planner);
        let mut view = health(&all(1, 1..=4, TargetHealth::Unhealthy));
        view.extend(all(2, 1..=2, TargetHealth::Healthy));

        let plan = planner.next_plan(&view, Some(&first), 1, 0).unwrap();
        let r1 = set(&plan, Some("r1"));
        assert_eq!(r1.addresses, ips(1, &[1, 2, 3, 4]));
        assert!(r1.degraded);
        assert_eq!(r1.ttl, 15);
        assert_eq!(
            set(&plan, None).addresses,
            ips(2, &[1, 2]),
            "the failover name moves to r2"
        );
        assert!(!set(&plan, None).degraded);
    }

    #[test]
    fn the_failover_name_follows_the_first_region_with_a_healthy_node() {
        let mut planner = planner();
        let first = first_plan(&mut planner);
        let mut view = health(&all(1, 1..=4, TargetHealth::Healthy));
        view.extend(all(2, 1..=2, TargetHealth::Healthy));
        assert_eq!(
            planner.next_plan(&view, Some(&first), 1, 0),
            None,
            "r1 already answers"
        );

        view.extend(all(1, 1..=4, TargetHealth::Unhealthy));
        let on_r2 = planner.next_plan(&view, Some(&first), 1, 0).unwrap();
        assert_eq!(set(&on_r2, None).addresses, ips(2, &[1, 2]));

        view.extend(all(2, 1..=2, TargetHealth::Unhealthy));
        let nobody_healthy = planner.next_plan(&view, Some(&on_r2), 2, 0).unwrap();
        let failover = set(&nobody_healthy, None);
        assert_eq!(failover.addresses, ips(2, &[1, 2]), "keeps its last answer");
        assert!(failover.degraded);
    }

    #[test]
    fn a_new_plan_goes_above_the_floor_and_the_previous_plan() {
        let mut planner = planner();
        let first = first_plan(&mut planner);
        let view = health(&[(node(1, 1), TargetHealth::Unhealthy)]);
        assert_eq!(
            planner
                .next_plan(&view, Some(&first), 7, 0)
                .unwrap()
                .generation,
            8
        );
        let view = health(&[(node(1, 2), TargetHealth::Unhealthy)]);
        assert_eq!(
            planner
                .next_plan(&view, Some(&first), 0, 0)
                .unwrap()
                .generation,
            2
        );
    }

    #[test]
    fn an_inventory_that_could_leave_a_name_empty_is_refused() {
        let velocity = VelocityLimit {
            max_removed_fraction: 0.5,
            window: WINDOW,
        };
        let mut empty_region = inventory();
        empty_region.regions[1].nodes.clear();
        assert_eq!(
            Planner::new(empty_region, velocity).unwrap_err(),
            InventoryError::EmptyRegion("r2".to_owned())
        );
        let mut unknown = inventory();
        unknown.failover_order.push("r9".to_owned());
        assert_eq!(
            Planner::new(unknown, velocity).unwrap_err(),
            InventoryError::UnknownFailoverRegion("r9".to_owned())
        );
    }

    fn any_health() -> impl Strategy<Value = TargetHealth> {
        prop_oneof![
            Just(TargetHealth::NotReady),
            Just(TargetHealth::Healthy),
            Just(TargetHealth::Unhealthy),
        ]
    }

    /// A health view for every node, and how long after the previous one it is seen (ms).
    fn any_step() -> impl Strategy<Value = (Vec<TargetHealth>, u64)> {
        (proptest::collection::vec(any_health(), 6), 0..WINDOW_MS)
    }

    proptest! {
        /// Whatever health does: every name answers, generations increase, sets hold only their
        /// region's nodes, a set serving an unhealthy node is degraded with half the TTL, and no
        /// window sees more than one removal from `r1` (a quarter of four nodes).
        #[test]
        fn plans_never_break_the_rules(steps in proptest::collection::vec(any_step(), 1..30)) {
            let mut planner = planner();
            let inventory = inventory();
            let nodes: Vec<SocketAddr> = planner.all_nodes().collect();
            let mut previous = first_plan(&mut planner);
            let mut now = 0;
            let mut r1_removals: Vec<u64> = Vec::new();
            for (states, elapsed) in steps {
                now += elapsed;
                let view: HealthView = nodes.iter().copied().zip(states).collect();
                let Some(plan) = planner.next_plan(&view, Some(&previous), previous.generation, now) else {
                    continue;
                };
                prop_assert!(plan.generation > previous.generation);
                for region in &inventory.regions {
                    let own: BTreeSet<IpAddr> = region.nodes.iter().map(SocketAddr::ip).collect();
                    let record_set = set(&plan, Some(&region.name));
                    prop_assert!(record_set.addresses.iter().all(|ip| own.contains(ip)));
                }
                for record_set in plan.record_sets.values() {
                    prop_assert!(!record_set.addresses.is_empty(), "{} is empty", record_set.name);
                    prop_assert_eq!(record_set.ttl, if record_set.degraded { 15 } else { 30 });
                }
                let r1 = set(&plan, Some("r1"));
                let serves_unhealthy = r1.addresses.iter().any(|ip| {
                    view.iter().any(|(node, health)| node.ip() == *ip && *health == TargetHealth::Unhealthy)
                });
                prop_assert_eq!(r1.degraded, serves_unhealthy);

                let before = &set(&previous, Some("r1")).addresses;
                let removed = before.iter().filter(|ip| !r1.addresses.contains(ip)).count();
                r1_removals.extend(std::iter::repeat_n(now, removed));
                let in_window = r1_removals.iter().filter(|&&at| now - at < WINDOW_MS).count();
                prop_assert!(in_window <= 1, "{} removals from r1 within one window", in_window);
                previous = plan;
            }
        }
    }
}
