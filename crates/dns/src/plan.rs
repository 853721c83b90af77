//! The data every part of the DNS subsystem shares: what exists (the [`Inventory`]), how it looks
//! (the [`HealthView`]), and what is published (the immutable, generation-numbered [`Plan`]).
//!
//! The invariants the subsystem keeps, each enforced where the write happens:
//! - I1: a plan is applied only by compare-and-set on the generation, in the same atomic step, so an
//!   older plan can never replace a newer one however late its enactor runs;
//! - I2: no write leaves a managed name with an empty answer set;
//! - I3: clean-up never deletes the plan in effect or anything newer;
//! - I4: plans are immutable and publishing is a pointer flip;
//! - I5: enactors carry a fencing token;
//! - I6: the system reconciles from any state, including a missing or corrupt plan store;
//! - I7: each node keeps the last good snapshot on disk and serves it if the control plane fails.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// A plan's number: plans are totally ordered by it, and a newer plan has a larger one.
pub type Generation = u64;

/// The API nodes that exist, by region, and the order in which regions take over the global name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// The zone apex, fully qualified and lower-case, with the trailing dot: `haven.test.`.
    pub zone: String,
    /// The regions, each with its API nodes.
    pub regions: Vec<RegionInventory>,
    /// Region names in failover order: `dynamodb.<zone>` answers with the first healthy one.
    pub failover_order: Vec<String>,
    /// The TTL of healthy record sets, in seconds (halved while a set is degraded).
    pub ttl: u32,
}

/// One region's API nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionInventory {
    pub name: String,
    /// Each node's API address; its IP is what DNS publishes, its port is what health checks probe.
    pub nodes: Vec<SocketAddr>,
}

/// What the health checks currently say about one API node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetHealth {
    /// Not yet known, or the node says it is starting: not ready, but not a failure either.
    NotReady,
    /// Passed its consecutive-success threshold.
    Healthy,
    /// Failed its consecutive-failure threshold.
    Unhealthy,
}

/// The health of every API node, by address.
pub type HealthView = BTreeMap<SocketAddr, TargetHealth>;

/// The answer set of one managed name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSet {
    /// Fully qualified, lower-case, with the trailing dot: `dynamodb.us-east-1.haven.test.`.
    pub name: String,
    /// Sorted and never empty (I2); both A and AAAA answers come from here.
    pub addresses: Vec<IpAddr>,
    /// Seconds.
    pub ttl: u32,
    /// True when health checks would have removed targets but were held back (fail open or the
    /// velocity limit): the set is serving targets that look unhealthy.
    pub degraded: bool,
}

/// An immutable description of every managed name at one generation. Publishing a plan replaces the
/// whole answer set at once (I4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub generation: Generation,
    /// Milliseconds since the Unix epoch when the planner made it (for status and history only).
    pub created_at_ms: u64,
    /// The zone apex this plan covers, as in [`Inventory::zone`].
    pub zone: String,
    /// Managed names, keyed by [`RecordSet::name`].
    pub record_sets: BTreeMap<String, RecordSet>,
}
