//! The settings of `haven resolve`: the `[resolve]` section of a TOML file (other sections, such as
//! `haven serve`'s DNS configuration, are left to their readers, so one file can hold both), with
//! command-line flags taking precedence, validated into a [`ResolveConfig`] so that nothing past
//! this module sees an unchecked address, pattern or duration.
//!
//! ```toml
//! [resolve]
//! listen = ["127.0.0.1:53"]            # UDP and TCP on each address
//! upstreams = ["10.0.0.2:53", "10.0.0.3:53"]  # tried in turn, the last one that answered first
//! upstream_timeout_ms = 1000           # one attempt at one upstream
//! answer_within_ms = 1800              # then a stale or pinned answer, if any (RFC 8767)
//! cache_mb = 64                        # the cache's size, evicting the least used beyond it
//! max_ttl = 86400                      # longer TTLs are cut to this
//! negative_max_ttl = 3600              # NXDOMAIN/NODATA kept at most this long (RFC 2308)
//! servfail_ttl = 1                     # a failure is remembered this long (RFC 9520)
//! stale_ttl = 30                       # the TTL of a stale answer (RFC 8767)
//! max_stale_secs = 86400               # how long past its TTL an answer may be served stale
//! control = "127.0.0.1:8053"           # optional: GET /status, POST /flush over HTTP
//!
//! [resolve.critical]
//! names = ["dynamodb.*.amazonaws.com", "*.haven.example.com"]
//! ttl = 5                              # the TTL of a substituted answer
//! max_stale_secs = 3600                # how long after the last good answer it may stand in
//! refresh_ms = 1000                    # how often upstreams are asked again meanwhile
//! probe_port = 443                     # optional: keep only addresses accepting TCP here
//! probe_timeout_ms = 300
//! pins_mb = 4                          # memory for the last good answers
//! ```
//!
//! A pattern is a DNS name whose labels may be `*`: a `*` first matches one or more labels (as a
//! DNS wildcard does), anywhere else exactly one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::critical::Pattern;

/// A configuration that cannot be used, with the reason in words.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read resolver config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("resolver config {path} is not valid TOML for haven resolve: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("resolver config: {0}")]
    Invalid(String),
}

/// Everything the resolver needs, validated.
#[derive(Clone, Debug)]
pub struct ResolveConfig {
    pub listen: Vec<SocketAddr>,
    pub upstreams: Vec<SocketAddr>,
    pub upstream_timeout: Duration,
    /// RFC 8767's client response timer: past it, a client gets a stale or pinned answer if there
    /// is one while the upstreams are still being asked.
    pub answer_within: Duration,
    pub cache_bytes: u64,
    pub max_ttl: u32,
    pub negative_max_ttl: u32,
    pub servfail_ttl: u32,
    pub stale_ttl: u32,
    pub max_stale: Duration,
    pub control: Option<SocketAddr>,
    pub critical: CriticalConfig,
}

/// The names whose last good answer stands in for an empty or failed one.
#[derive(Clone, Debug)]
pub struct CriticalConfig {
    pub patterns: Vec<Pattern>,
    pub ttl: u32,
    pub max_stale: Duration,
    pub refresh: Duration,
    pub probe: Option<Probe>,
    pub pins_bytes: u64,
}

/// A TCP connect to each pinned address, keeping those that accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub port: u16,
    pub timeout: Duration,
}

/// What the command line gives; each non-empty field replaces the file's.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub listen: Vec<SocketAddr>,
    pub upstreams: Vec<SocketAddr>,
    pub critical: Vec<String>,
    pub control: Option<SocketAddr>,
}

/// The file as written: its `[resolve]` section and nothing else.
#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    resolve: RawResolve,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawResolve {
    listen: Vec<SocketAddr>,
    upstreams: Vec<SocketAddr>,
    upstream_timeout_ms: u64,
    answer_within_ms: u64,
    cache_mb: u64,
    max_ttl: u32,
    negative_max_ttl: u32,
    servfail_ttl: u32,
    stale_ttl: u32,
    max_stale_secs: u64,
    control: Option<SocketAddr>,
    critical: RawCritical,
}

impl Default for RawResolve {
    fn default() -> Self {
        RawResolve {
            listen: Vec::new(),
            upstreams: Vec::new(),
            upstream_timeout_ms: 1000,
            answer_within_ms: 1800,
            cache_mb: 64,
            max_ttl: 86_400,
            negative_max_ttl: 3600,
            servfail_ttl: 1,
            stale_ttl: 30,
            max_stale_secs: 86_400,
            control: None,
            critical: RawCritical::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCritical {
    names: Vec<String>,
    ttl: u32,
    max_stale_secs: u64,
    refresh_ms: u64,
    probe_port: Option<u16>,
    probe_timeout_ms: u64,
    pins_mb: u64,
}

impl Default for RawCritical {
    fn default() -> Self {
        RawCritical {
            names: Vec::new(),
            ttl: 5,
            max_stale_secs: 3600,
            refresh_ms: 1000,
            probe_port: None,
            probe_timeout_ms: 300,
            pins_mb: 4,
        }
    }
}

impl ResolveConfig {
    /// Reads the file (if any), applies the flags over it, and validates the result.
    pub fn load(path: Option<&Path>, flags: Flags) -> Result<ResolveConfig, ConfigError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?,
            None => String::new(),
        };
        ResolveConfig::parse(&text, flags).map_err(|error| match (error, path) {
            (ConfigError::Syntax { message, .. }, Some(path)) => ConfigError::Syntax {
                path: path.to_owned(),
                message,
            },
            (other, _) => other,
        })
    }

    /// Parses configuration text, applies the flags over it, and validates the result.
    pub fn parse(text: &str, flags: Flags) -> Result<ResolveConfig, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|error| ConfigError::Syntax {
            path: PathBuf::new(),
            message: error.to_string(),
        })?;
        raw.resolve.with_flags(flags).validate()
    }
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// A duration of at least one millisecond, or an error naming the setting.
fn positive_ms(value: u64, setting: &str) -> Result<Duration, ConfigError> {
    if value == 0 {
        return Err(invalid(format!("{setting} must be at least 1")));
    }
    Ok(Duration::from_millis(value))
}

/// Megabytes as bytes, at least one megabyte.
fn megabytes(value: u64, setting: &str) -> Result<u64, ConfigError> {
    if value == 0 || value > 1 << 20 {
        return Err(invalid(format!("{setting} must be between 1 and 1048576")));
    }
    Ok(value << 20)
}

impl RawResolve {
    fn with_flags(mut self, flags: Flags) -> RawResolve {
        if !flags.listen.is_empty() {
            self.listen = flags.listen;
        }
        if !flags.upstreams.is_empty() {
            self.upstreams = flags.upstreams;
        }
        if !flags.critical.is_empty() {
            self.critical.names = flags.critical;
        }
        self.control = flags.control.or(self.control);
        self
    }

    fn validate(self) -> Result<ResolveConfig, ConfigError> {
        if self.listen.is_empty() {
            return Err(invalid(
                "[resolve] listen (or --listen) must give at least one address",
            ));
        }
        if self.upstreams.is_empty() {
            return Err(invalid(
                "[resolve] upstreams (or --upstream) must give at least one resolver",
            ));
        }
        if let Some(upstream) = self.upstreams.iter().find(|u| u.port() == 0) {
            return Err(invalid(format!("upstream {upstream} needs a port")));
        }
        if self.max_ttl == 0 || self.stale_ttl == 0 {
            return Err(invalid(
                "[resolve] max_ttl and stale_ttl must be at least 1",
            ));
        }
        Ok(ResolveConfig {
            listen: self.listen,
            upstreams: self.upstreams,
            upstream_timeout: positive_ms(self.upstream_timeout_ms, "upstream_timeout_ms")?,
            answer_within: positive_ms(self.answer_within_ms, "answer_within_ms")?,
            cache_bytes: megabytes(self.cache_mb, "cache_mb")?,
            max_ttl: self.max_ttl,
            negative_max_ttl: self.negative_max_ttl.min(self.max_ttl),
            servfail_ttl: self.servfail_ttl.min(300),
            stale_ttl: self.stale_ttl,
            max_stale: Duration::from_secs(self.max_stale_secs),
            control: self.control,
            critical: self.critical.validate()?,
        })
    }
}

impl RawCritical {
    fn validate(self) -> Result<CriticalConfig, ConfigError> {
        let patterns = self
            .names
            .iter()
            .map(|name| Pattern::parse(name).map_err(invalid))
            .collect::<Result<_, _>>()?;
        if self.ttl == 0 {
            return Err(invalid("[resolve.critical] ttl must be at least 1"));
        }
        let probe = match self.probe_port {
            Some(0) => return Err(invalid("[resolve.critical] probe_port must not be 0")),
            Some(port) => Some(Probe {
                port,
                timeout: positive_ms(self.probe_timeout_ms, "probe_timeout_ms")?,
            }),
            None => None,
        };
        Ok(CriticalConfig {
            patterns,
            ttl: self.ttl,
            max_stale: Duration::from_secs(self.max_stale_secs),
            refresh: positive_ms(self.refresh_ms, "[resolve.critical] refresh_ms")?,
            probe,
            pins_bytes: megabytes(self.pins_mb, "[resolve.critical] pins_mb")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
        [zone]
        apex = "haven.test"
        [resolve]
        listen = ["127.0.0.1:5300"]
        upstreams = ["127.0.0.1:53", "[::1]:53"]
        cache_mb = 8
        control = "127.0.0.1:8053"
        [resolve.critical]
        names = ["dynamodb.*.amazonaws.com", "*.haven.test"]
        probe_port = 8000
    "#;

    #[test]
    fn reads_its_section_and_leaves_the_others() {
        let config = ResolveConfig::parse(FULL, Flags::default()).unwrap();
        assert_eq!(config.listen, ["127.0.0.1:5300".parse().unwrap()]);
        assert_eq!(config.upstreams.len(), 2);
        assert_eq!(config.cache_bytes, 8 << 20);
        assert_eq!(config.critical.patterns.len(), 2);
        assert_eq!(config.critical.probe.map(|p| p.port), Some(8000));
        assert_eq!(config.upstream_timeout, Duration::from_secs(1));
        assert_eq!(config.critical.ttl, 5);
    }

    /// The settings block of docs/resolve.md, which users copy, is valid and lists every setting.
    #[test]
    fn the_documented_example_is_valid() {
        let example: String = include_str!("../../../docs/resolve.md")
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a toml block in docs/resolve.md")
            .to_owned();
        let config = ResolveConfig::parse(&example, Flags::default()).unwrap();
        assert_eq!(config.upstreams.len(), 2);
        assert_eq!(config.control, Some("127.0.0.1:8053".parse().unwrap()));
        assert_eq!(config.critical.probe.map(|probe| probe.port), Some(443));
        assert_eq!(config.critical.max_stale, Duration::from_secs(3600));
    }

    #[test]
    fn flags_replace_the_file() {
        let flags = Flags {
            listen: vec!["127.0.0.2:53".parse().unwrap()],
            upstreams: vec!["10.0.0.1:53".parse().unwrap()],
            critical: vec!["example.com".into()],
            control: None,
        };
        let config = ResolveConfig::parse(FULL, flags).unwrap();
        assert_eq!(config.listen, ["127.0.0.2:53".parse().unwrap()]);
        assert_eq!(config.upstreams, ["10.0.0.1:53".parse().unwrap()]);
        assert_eq!(config.critical.patterns.len(), 1);
        assert_eq!(config.control, Some("127.0.0.1:8053".parse().unwrap()));
    }

    #[test]
    fn flags_alone_are_enough() {
        let flags = Flags {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            upstreams: vec!["127.0.0.1:53".parse().unwrap()],
            ..Flags::default()
        };
        let config = ResolveConfig::load(None, flags).unwrap();
        assert!(config.critical.patterns.is_empty());
    }

    #[test]
    fn mistakes_are_named() {
        for (text, expected) in [
            ("[resolve]\nupstreams = [\"127.0.0.1:53\"]", "listen"),
            ("[resolve]\nlisten = [\"127.0.0.1:53\"]", "upstreams"),
            (
                "[resolve]\nlisten = [\"127.0.0.1:53\"]\nupstreams = [\"127.0.0.1:0\"]",
                "needs a port",
            ),
            (
                "[resolve]\nlisten = [\"127.0.0.1:53\"]\nupstreams = [\"127.0.0.1:53\"]\n\
                 [resolve.critical]\nnames = [\"a..b\"]",
                "a..b",
            ),
            (
                "[resolve]\nlisten = [\"127.0.0.1:53\"]\nupstreams = [\"127.0.0.1:53\"]\ncache_mb = 0",
                "cache_mb",
            ),
            ("[resolve]\nlisen = []", "unknown field"),
        ] {
            let error = ResolveConfig::parse(text, Flags::default()).unwrap_err();
            assert!(error.to_string().contains(expected), "{text}: {error}");
        }
    }
}
