//! `haven resolve`: a caching DNS forwarder for applications, which keeps the last good addresses
//! of the names they cannot live without.
//!
//! On 20 October 2025 DynamoDB's servers were healthy, but the authoritative answer for its name
//! was empty, and every resolver faithfully passed that emptiness on. Serve-stale (RFC 8767) only
//! helps when the upstream does not answer; it does nothing when the upstream answers wrongly, with
//! an empty NOERROR, an NXDOMAIN or a SERVFAIL for a name that resolved a minute ago. This crate
//! is a guard on the client's side, whatever database the client talks to: for names on a
//! critical list it stands the last good answer in for such answers, for a bounded time, while
//! answering every other name as a normal caching resolver does.
//!
//! Layout: `config` (the `[resolve]` TOML section and flags), `key` (the cache key), `answer` (a
//! response kept ready to copy, with its TTL positions and kind), `cache`, `upstream` (asking the
//! upstreams over UDP and TCP), `critical` (patterns, pins, the probed stand-in), `resolver` (the
//! policy: what each client gets), `control` (`GET /status`, `POST /flush`), `service` (the
//! process). The listeners and the query reader are `haven-dns`'s (`server`, `wire`).

pub mod config;
pub mod resolver;
pub mod service;

mod answer;
mod cache;
mod control;
mod critical;
mod key;
mod stats;
mod upstream;
