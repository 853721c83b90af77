//! The DNS configuration file of `haven serve --config FILE`: read raw from TOML, then validated into
//! a typed [`DnsConfig`] (the [`Inventory`] plus the settings of each part), so that nothing past
//! this module ever sees an unchecked name, address or threshold.
//!
//! Every node of a deployment can share one file: each node probes every API node, and the address
//! a node's DNS server listens on can be given per node on the command line (`--dns-listen`).
//!
//! ```toml
//! # Where this node keeps its plans and last good snapshot (default: <data-dir>/dns).
//! state_dir = "/var/lib/haven/dns"
//!
//! [zone]
//! apex = "haven.test"          # the zone Haven answers for
//! ttl = 30                     # seconds; halved while a record set is degraded
//! soa = { mname = "ns1.haven.test", rname = "hostmaster.haven.test", refresh = 3600, retry = 600, expire = 86400, minimum = 30 }
//! nameservers = [
//!   { name = "ns1.haven.test", addresses = ["127.0.0.1"] },
//!   { name = "ns2.haven.test", addresses = ["127.0.0.2"] },
//! ]
//!
//! [dns]
//! listen = ["127.0.0.1:5353"]  # UDP and TCP on each address
//!
//! [[regions]]
//! name = "us-east-1"
//! nodes = ["127.0.0.1:8000", "127.0.0.2:8000"]
//!
//! [[regions]]
//! name = "eu-west-1"
//! nodes = ["127.0.0.3:8000"]
//!
//! [failover]
//! order = ["us-east-1", "eu-west-1"]  # dynamodb.<zone> answers with the first healthy region
//!
//! [health]
//! interval_ms = 1000           # each node probes GET /health on every API node this often
//! timeout_ms = 500
//! failures = 3                 # consecutive failures before a node is Unhealthy
//! successes = 2                # consecutive successes before it is Healthy again
//! scheme = "http"              # or "https" for API nodes run with --tls-cert, which then needs:
//! # ca_file = "/etc/haven/ca.pem"      # the CA bundle node certificates are verified against
//! # server_name = "api.haven.internal" # optional: the name in the node certificates
//! #                                    # (default: each node's IP address, as an IP address SAN)
//!
//! [velocity]
//! max_removed_fraction = 0.5   # health checks remove at most this much of a record set...
//! window_ms = 60000            # ...within this window
//!
//! [push]                       # optional: also push each plan to your own DNS (RFC 2136 + TSIG)
//! server = "127.0.0.1:5300"    # the zone's primary server
//! key_name = "haven-push"
//! algorithm = "hmac-sha256"
//! secret = "c2VjcmV0IHNoYXJlZCB3aXRoIHRoZSBETlMgc2VydmVy"
//! ```
//!
//! Only `[zone] apex`, `nameservers` and `[[regions]]` are required; the rest have the defaults
//! shown by [`RawConfig`]'s fields (and [`PushConfig`]'s for `[push]`).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::rr::Name;
use serde::Deserialize;

use crate::health::ProbeTls;
use crate::plan::{Inventory, RegionInventory};
use crate::planner::VelocityLimit;
use crate::push::{Publisher, PushConfig};

/// A configuration file that cannot be used, with the reason in words.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read DNS config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("DNS config {path} is not valid TOML for Haven: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("DNS config: {0}")]
    Invalid(String),
}

/// Everything the DNS subsystem needs, validated.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    pub inventory: Inventory,
    pub zone: ZoneSettings,
    /// UDP and TCP listen addresses (may be empty here when the command line gives them).
    pub listen: Vec<SocketAddr>,
    pub health: HealthSettings,
    pub velocity: VelocityLimit,
    pub state_dir: Option<PathBuf>,
    /// How many past plans `status` reports.
    pub history_len: usize,
    /// Push mode: publishes each plan to the user's own DNS server too, when `[push]` is given.
    pub push: Option<Publisher>,
}

/// The zone's own records: SOA and NS (with glue).
#[derive(Clone, Debug)]
pub struct ZoneSettings {
    /// Fully qualified and lower-case, as [`Inventory::zone`].
    pub apex: Name,
    pub soa: Soa,
    pub nameservers: Vec<NameServer>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    pub mname: Name,
    /// The responsible mailbox in DNS form (`hostmaster.haven.test.` for hostmaster@haven.test).
    pub rname: Name,
    pub refresh: i32,
    pub retry: i32,
    pub expire: i32,
    /// The TTL of negative answers (NXDOMAIN, NODATA), RFC 2308.
    pub minimum: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameServer {
    pub name: Name,
    /// Glue: required when the name is inside the zone, since nobody else can resolve it.
    pub addresses: Vec<IpAddr>,
}

/// How health checks probe the API nodes.
#[derive(Clone, Debug)]
pub struct HealthSettings {
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failed probes before a node that was healthy becomes Unhealthy.
    pub failures: u32,
    /// Consecutive successful probes before a node becomes Healthy.
    pub successes: u32,
    /// With `scheme = "https"`: probes speak TLS and verify certificates against `ca_file`.
    pub tls: Option<ProbeTls>,
}

/// The file as written; see the module documentation for an example.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<PathBuf>,
    #[serde(default = "default_history_len")]
    history_len: usize,
    zone: RawZone,
    #[serde(default)]
    dns: RawDns,
    regions: Vec<RawRegion>,
    #[serde(default)]
    failover: RawFailover,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    velocity: RawVelocity,
    push: Option<PushConfig>,
    /// `haven resolve`'s section, read by the guard resolver and skipped here, so that both
    /// commands can share one file.
    #[serde(rename = "resolve")]
    _resolve: Option<serde::de::IgnoredAny>,
    /// Global tables' section, read by `haven serve`'s replication and skipped here.
    #[serde(rename = "replication")]
    _replication: Option<serde::de::IgnoredAny>,
    /// `haven mirror`'s section, read by the binary and skipped here.
    #[serde(rename = "mirror")]
    _mirror: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    apex: String,
    #[serde(default = "default_ttl")]
    ttl: u32,
    soa: Option<RawSoa>,
    nameservers: Vec<RawNameServer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSoa {
    mname: Option<String>,
    rname: Option<String>,
    #[serde(default = "default_refresh")]
    refresh: i32,
    #[serde(default = "default_retry")]
    retry: i32,
    #[serde(default = "default_expire")]
    expire: i32,
    minimum: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNameServer {
    name: String,
    #[serde(default)]
    addresses: Vec<IpAddr>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    #[serde(default)]
    listen: Vec<SocketAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    name: String,
    nodes: Vec<SocketAddr>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFailover {
    /// Default: the regions in the order the file lists them.
    order: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHealth {
    interval_ms: u64,
    timeout_ms: u64,
    failures: u32,
    successes: u32,
    /// "http" or "https" (the API nodes' `haven serve --tls-cert`).
    scheme: String,
    /// With https: the PEM bundle of the CA(s) that sign the nodes' certificates.
    ca_file: Option<PathBuf>,
    /// With https: the name node certificates carry (default: each node's IP address).
    server_name: Option<String>,
}

impl Default for RawHealth {
    fn default() -> Self {
        RawHealth {
            interval_ms: 1000,
            timeout_ms: 500,
            failures: 3,
            successes: 2,
            scheme: "http".into(),
            ca_file: None,
            server_name: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawVelocity {
    max_removed_fraction: f64,
    window_ms: u64,
}

impl Default for RawVelocity {
    fn default() -> Self {
        RawVelocity {
            max_removed_fraction: 0.5,
            window_ms: 60_000,
        }
    }
}

fn default_history_len() -> usize {
    20
}
fn default_ttl() -> u32 {
    30
}
fn default_refresh() -> i32 {
    3600
}
fn default_retry() -> i32 {
    600
}
fn default_expire() -> i32 {
    86_400
}

impl DnsConfig {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<DnsConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        DnsConfig::parse(&text).map_err(|error| match error {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<DnsConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|error| ConfigError::Syntax {
            path: PathBuf::new(),
            message: error.to_string(),
        })?;
        raw.validate()
    }
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

impl RawConfig {
    fn validate(self) -> Result<DnsConfig, ConfigError> {
        let apex = fqdn(&self.zone.apex, "[zone] apex")?;
        fqdn(&format!("_generation.{apex}"), "[zone] apex")?;
        let ttl = self.zone.ttl;
        if ttl < 2 {
            return Err(invalid(
                "[zone] ttl must be at least 2 seconds (it is halved while degraded)",
            ));
        }
        let zone = ZoneSettings {
            soa: soa(self.zone.soa, &apex, ttl, &self.zone.nameservers)?,
            nameservers: nameservers(self.zone.nameservers, &apex)?,
            apex,
        };
        let regions = regions(self.regions, &zone.apex)?;
        let failover_order = failover_order(self.failover.order, &regions)?;
        Ok(DnsConfig {
            inventory: Inventory {
                zone: zone.apex.to_ascii(),
                regions,
                failover_order,
                ttl,
            },
            zone,
            listen: self.dns.listen,
            health: self.health.validate()?,
            velocity: self.velocity.validate()?,
            state_dir: self.state_dir,
            history_len: self.history_len.max(1),
            push: self
                .push
                .as_ref()
                .map(Publisher::new)
                .transpose()
                .map_err(|error| invalid(error.to_string()))?,
        })
    }
}

/// A fully qualified, lower-case name, or an error naming the setting.
fn fqdn(text: &str, setting: &str) -> Result<Name, ConfigError> {
    let mut name = Name::from_ascii(text)
        .map_err(|error| invalid(format!("{setting} {text:?} is not a DNS name: {error}")))?;
    name.set_fqdn(true);
    if name.is_root() {
        return Err(invalid(format!("{setting} must not be the root")));
    }
    Ok(name.to_lowercase())
}

fn soa(
    raw: Option<RawSoa>,
    apex: &Name,
    ttl: u32,
    nameservers: &[RawNameServer],
) -> Result<Soa, ConfigError> {
    let raw = raw.unwrap_or(RawSoa {
        mname: None,
        rname: None,
        refresh: default_refresh(),
        retry: default_retry(),
        expire: default_expire(),
        minimum: None,
    });
    let mname = match (&raw.mname, nameservers.first()) {
        (Some(mname), _) => fqdn(mname, "[zone.soa] mname")?,
        (None, Some(first)) => fqdn(&first.name, "[zone] nameservers name")?,
        (None, None) => {
            return Err(invalid(
                "[zone] nameservers must list at least one name server",
            ));
        }
    };
    let rname = match &raw.rname {
        Some(rname) => fqdn(rname, "[zone.soa] rname")?,
        None => Name::from_ascii("hostmaster")
            .and_then(|label| label.append_domain(apex))
            .map_err(|error| invalid(format!("[zone] apex is too long: {error}")))?,
    };
    if raw.refresh <= 0 || raw.retry <= 0 || raw.expire <= 0 {
        return Err(invalid(
            "[zone.soa] refresh, retry and expire must be positive",
        ));
    }
    Ok(Soa {
        mname,
        rname,
        refresh: raw.refresh,
        retry: raw.retry,
        expire: raw.expire,
        minimum: raw.minimum.unwrap_or(ttl),
    })
}

fn nameservers(raw: Vec<RawNameServer>, apex: &Name) -> Result<Vec<NameServer>, ConfigError> {
    if raw.is_empty() {
        return Err(invalid(
            "[zone] nameservers must list at least one name server",
        ));
    }
    let mut seen = BTreeSet::new();
    raw.into_iter()
        .map(|server| {
            let name = fqdn(&server.name, "[zone] nameservers name")?;
            if !seen.insert(name.clone()) {
                return Err(invalid(format!("name server {name} is listed twice")));
            }
            if apex.zone_of(&name) && server.addresses.is_empty() {
                return Err(invalid(format!(
                    "name server {name} is inside the zone, so it needs addresses (glue)"
                )));
            }
            Ok(NameServer {
                name,
                addresses: server.addresses,
            })
        })
        .collect()
}

fn regions(raw: Vec<RawRegion>, apex: &Name) -> Result<Vec<RegionInventory>, ConfigError> {
    if raw.is_empty() {
        return Err(invalid("[[regions]] must list at least one region"));
    }
    let mut names = BTreeSet::new();
    let mut nodes = BTreeSet::new();
    for region in &raw {
        check_region_name(&region.name, apex)?;
        if !names.insert(region.name.as_str()) {
            return Err(invalid(format!("region {:?} is listed twice", region.name)));
        }
        if region.nodes.is_empty() {
            return Err(invalid(format!("region {:?} has no nodes", region.name)));
        }
        for node in &region.nodes {
            if node.port() == 0 || node.ip().is_unspecified() {
                return Err(invalid(format!(
                    "node {node} of region {:?} needs a real address and port: DNS publishes \
                     its IP and health checks probe its port",
                    region.name
                )));
            }
            if !nodes.insert(*node) {
                return Err(invalid(format!("node {node} is listed twice")));
            }
        }
    }
    Ok(raw
        .into_iter()
        .map(|region| RegionInventory {
            name: region.name,
            nodes: region.nodes,
        })
        .collect())
}

/// A region name becomes one label of `dynamodb.<region>.<zone>`.
fn check_region_name(region: &str, apex: &Name) -> Result<(), ConfigError> {
    let is_label = !region.is_empty()
        && region.len() <= 63
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if !is_label {
        return Err(invalid(format!(
            "region name {region:?} must be one DNS label: lower-case letters, digits and inner hyphens"
        )));
    }
    fqdn(&format!("dynamodb.{region}.{apex}"), "region name").map(|_| ())
}

fn failover_order(
    order: Option<Vec<String>>,
    regions: &[RegionInventory],
) -> Result<Vec<String>, ConfigError> {
    let Some(order) = order else {
        return Ok(regions.iter().map(|r| r.name.clone()).collect());
    };
    if order.is_empty() {
        return Err(invalid("[failover] order must name at least one region"));
    }
    let mut seen = BTreeSet::new();
    for name in &order {
        if !regions.iter().any(|r| &r.name == name) {
            return Err(invalid(format!(
                "[failover] order names unknown region {name:?}"
            )));
        }
        if !seen.insert(name) {
            return Err(invalid(format!("[failover] order names {name:?} twice")));
        }
    }
    Ok(order)
}

impl RawHealth {
    fn validate(self) -> Result<HealthSettings, ConfigError> {
        if self.interval_ms == 0 || self.timeout_ms == 0 {
            return Err(invalid(
                "[health] interval_ms and timeout_ms must be positive",
            ));
        }
        if self.timeout_ms > self.interval_ms {
            return Err(invalid("[health] timeout_ms must not exceed interval_ms"));
        }
        if self.failures == 0 || self.successes == 0 {
            return Err(invalid(
                "[health] failures and successes must be at least 1",
            ));
        }
        Ok(HealthSettings {
            interval: Duration::from_millis(self.interval_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            failures: self.failures,
            successes: self.successes,
            tls: self.tls()?,
        })
    }

    fn tls(&self) -> Result<Option<ProbeTls>, ConfigError> {
        let (ca_file, server_name) = (self.ca_file.as_deref(), self.server_name.as_deref());
        ProbeTls::from_settings("health", &self.scheme, ca_file, server_name).map_err(invalid)
    }
}

impl RawVelocity {
    fn validate(self) -> Result<VelocityLimit, ConfigError> {
        if !(self.max_removed_fraction > 0.0 && self.max_removed_fraction <= 1.0) {
            return Err(invalid(
                "[velocity] max_removed_fraction must be greater than 0 and at most 1",
            ));
        }
        if self.window_ms == 0 {
            return Err(invalid("[velocity] window_ms must be positive"));
        }
        Ok(VelocityLimit {
            max_removed_fraction: self.max_removed_fraction,
            window: Duration::from_millis(self.window_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [zone]
        apex = "Haven.Test"
        nameservers = [{ name = "ns1.haven.test", addresses = ["127.0.0.1"] }]
        [[regions]]
        name = "us-east-1"
        nodes = ["127.0.0.1:8000", "127.0.0.2:8000"]
        [[regions]]
        name = "eu-west-1"
        nodes = ["127.0.0.3:8000"]
    "#;

    #[test]
    fn minimal_file_gets_defaults_and_a_lower_case_fully_qualified_zone() {
        let config = DnsConfig::parse(MINIMAL).unwrap();
        assert_eq!(config.inventory.zone, "haven.test.");
        assert_eq!(config.inventory.failover_order, ["us-east-1", "eu-west-1"]);
        assert_eq!(config.inventory.ttl, 30);
        assert_eq!(config.zone.soa.mname.to_ascii(), "ns1.haven.test.");
        assert_eq!(config.zone.soa.rname.to_ascii(), "hostmaster.haven.test.");
        assert_eq!(config.health.failures, 3);
        assert_eq!(config.velocity.window, Duration::from_secs(60));
        assert!(config.listen.is_empty());
    }

    #[test]
    fn the_module_example_is_valid() {
        let example: String = include_str!("config.rs")
            .lines()
            .skip_while(|line| !line.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|line| !line.starts_with("//! ```"))
            .map(|line| line.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let config = DnsConfig::parse(&example).unwrap();
        assert_eq!(config.inventory.regions.len(), 2);
        assert_eq!(config.health.interval, Duration::from_secs(1));
        assert_eq!(config.state_dir, Some(PathBuf::from("/var/lib/haven/dns")));
        assert!(config.push.is_some());
    }

    #[test]
    fn a_resolve_section_is_left_to_haven_resolve() {
        let shared = format!(
            "{MINIMAL}\n[resolve]\nupstreams = [\"127.0.0.1:53\"]\n\
             [resolve.critical]\nnames = [\"*.haven.test\"]\n"
        );
        assert_eq!(
            DnsConfig::parse(&shared).unwrap().inventory.regions.len(),
            2
        );
    }

    fn error_of(text: &str) -> String {
        DnsConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_push_section_needs_a_known_algorithm_and_a_base64_secret() {
        let push = |algorithm: &str, secret: &str| {
            format!(
                "{MINIMAL}\n[push]\nserver = \"127.0.0.1:53\"\nkey_name = \"k\"\n\
                 algorithm = \"{algorithm}\"\nsecret = \"{secret}\"\n"
            )
        };
        assert!(DnsConfig::parse(MINIMAL).unwrap().push.is_none());
        assert!(
            DnsConfig::parse(&push("hmac-sha256", "c2VjcmV0"))
                .unwrap()
                .push
                .is_some()
        );
        assert!(error_of(&push("hmac-md5", "c2VjcmV0")).contains("algorithm"));
        assert!(error_of(&push("hmac-sha256", "not base64!")).contains("base64"));
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (
                MINIMAL.replace("us-east-1\"\n", "US_East\"\n"),
                "must be one DNS label",
            ),
            (
                MINIMAL.replace("127.0.0.3:8000", "127.0.0.1:8000"),
                "listed twice",
            ),
            (
                MINIMAL.replace("127.0.0.3:8000", "127.0.0.3:0"),
                "needs a real address",
            ),
            (
                MINIMAL.replace(", addresses = [\"127.0.0.1\"]", ""),
                "needs addresses (glue)",
            ),
            (MINIMAL.replace("apex", "apecks"), "unknown field"),
            (
                format!("{MINIMAL}\n[failover]\norder = [\"mars-1\"]"),
                "unknown region",
            ),
            (
                format!("{MINIMAL}\n[health]\ninterval_ms = 100\ntimeout_ms = 200"),
                "must not exceed",
            ),
            (format!("{MINIMAL}\n[health]\nfailures = 0"), "at least 1"),
            (
                format!("{MINIMAL}\n[health]\nscheme = \"ftp\""),
                "scheme must be \"http\" or \"https\", not \"ftp\"",
            ),
            (
                format!("{MINIMAL}\n[health]\nscheme = \"https\""),
                "needs ca_file",
            ),
            (
                format!("{MINIMAL}\n[health]\nca_file = \"/ca.pem\""),
                "apply only with scheme = \"https\"",
            ),
            (
                format!(
                    "{MINIMAL}\n[health]\nscheme = \"https\"\nca_file = \"/nonexistent/ca.pem\""
                ),
                "[health] ca_file /nonexistent/ca.pem:",
            ),
            (
                format!("{MINIMAL}\n[health]\nscheme = \"https\"\nca_file = \"/dev/null\""),
                "ca_file /dev/null holds no PEM certificate",
            ),
            (
                format!("{MINIMAL}\n[velocity]\nmax_removed_fraction = 1.5"),
                "at most 1",
            ),
        ];
        for (text, expected) in cases {
            let error = error_of(&text);
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }
}
