//! Haven's DNS: the records of its own endpoint names (`dynamodb.<region>.<zone>`), built from
//! health checks of the API nodes, published so that a name can never resolve to nothing.
//!
//! The October 2025 DynamoDB outage began when a delayed DNS worker applied an old plan over a newer
//! one and a clean-up job then deleted the plan in effect, leaving the endpoint with an empty answer.
//! This crate makes that impossible by construction (see `plan` for the invariants I1–I7).

pub mod config;
pub mod control;
pub mod enactor;
pub mod health;
pub mod plan;
pub mod planner;
pub mod push;
pub mod server;
pub mod store;
pub mod subsystem;
pub mod wire;
pub mod zone;
