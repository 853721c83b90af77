//! `haven mirror`'s settings, from its flags and from the `[mirror]` section of the configuration
//! file (`--config`), so that a long-running `haven serve --config haven.toml` mirrors its tables
//! without a command line of its own:
//! ```toml
//! [mirror]
//! source_endpoint = "https://dynamodb.eu-west-1.amazonaws.com"
//! source_region = "eu-west-1"        # else the AWS chain's (AWS_REGION, the profile), else us-east-1
//! source_profile = "prod"            # else AWS_PROFILE, else the default chain
//! tables = ["orders", "customers"]
//! segments = 4                       # Scan segments of the initial copy
//! poll_interval_ms = 500             # between two reads of a stream that had nothing new
//! ```
//! A flag given on `haven mirror`'s command line wins over the file. Every value is checked here,
//! before anything is served, and a bad one is refused with a message naming it.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// The flags of `haven mirror` (all optional here: the file may give them).
#[derive(Default)]
pub struct Flags {
    pub source_endpoint: Option<String>,
    pub source_region: Option<String>,
    pub source_profile: Option<String>,
    pub tables: Vec<String>,
    pub segments: Option<u32>,
    pub poll_interval_ms: Option<u64>,
}

#[derive(Deserialize)]
struct RawFile {
    mirror: Option<RawMirror>,
    /// DNS's section (read by `haven-dns`), only looked for.
    zone: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMirror {
    source_endpoint: Option<String>,
    source_region: Option<String>,
    source_profile: Option<String>,
    #[serde(default)]
    tables: Vec<String>,
    segments: Option<u32>,
    poll_interval_ms: Option<u64>,
}

const DEFAULT_SEGMENTS: u32 = 4;
const MAX_SEGMENTS: u32 = 1000;
const DEFAULT_POLL_INTERVAL_MS: u64 = 500;

fn read(path: &Path) -> anyhow::Result<RawFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// The `[mirror]` section of the file at `path`, if the file has one.
fn section(path: Option<&Path>) -> anyhow::Result<Option<RawMirror>> {
    let Some(path) = path else { return Ok(None) };
    Ok(read(path)?.mirror)
}

/// Whether the file at `path` asks for a mirror (`haven serve` then runs one).
pub fn configured(path: Option<&Path>) -> anyhow::Result<bool> {
    Ok(section(path)?.is_some())
}

/// The mirror's settings: `flags` over the file's `[mirror]` section, checked.
pub fn settings(flags: Flags, path: Option<&Path>) -> anyhow::Result<haven_mirror::MirrorConfig> {
    let file = section(path)?.unwrap_or_default();
    let endpoint = flags
        .source_endpoint
        .or(file.source_endpoint)
        .context("no source: give --source-endpoint (or source_endpoint in the config file's [mirror] section)")?;
    check_endpoint(&endpoint)?;
    let tables = if flags.tables.is_empty() {
        file.tables
    } else {
        flags.tables
    };
    anyhow::ensure!(
        !tables.is_empty(),
        "no table to mirror: give --table (repeatable), or tables in the config file's [mirror] section"
    );
    for table in &tables {
        check_table_name(table)?;
    }
    let segments = flags.segments.or(file.segments).unwrap_or(DEFAULT_SEGMENTS);
    anyhow::ensure!(
        (1..=MAX_SEGMENTS).contains(&segments),
        "segments must be between 1 and {MAX_SEGMENTS}, not {segments}"
    );
    let poll = flags
        .poll_interval_ms
        .or(file.poll_interval_ms)
        .unwrap_or(DEFAULT_POLL_INTERVAL_MS);
    anyhow::ensure!(poll >= 1, "poll_interval_ms must be at least 1");
    Ok(haven_mirror::MirrorConfig {
        source: haven_mirror::SourceConfig {
            endpoint,
            region: flags.source_region.or(file.source_region),
            profile: flags.source_profile.or(file.source_profile),
        },
        tables,
        segments,
        poll_interval: Duration::from_millis(poll),
        retry_interval: Duration::from_secs(2),
    })
}

/// An http:// or https:// URL with a host.
fn check_endpoint(endpoint: &str) -> anyhow::Result<()> {
    let host = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"));
    match host {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => anyhow::bail!(
            "source endpoint {endpoint:?} is not a URL: expected http://host[:port] or https://host[:port]"
        ),
    }
}

/// DynamoDB's rule for table names: 3 to 255 of a-z, A-Z, 0-9, `_`, `-` and `.`.
fn check_table_name(name: &str) -> anyhow::Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    anyhow::ensure!(
        (3..=255).contains(&name.len()) && name.chars().all(allowed),
        "table name {name:?} is not a DynamoDB table name: 3 to 255 letters, digits, '_', '-' or '.'"
    );
    Ok(())
}

/// Whether the file at `path` is only a mirror's (a [mirror] section and no DNS [zone]): DNS
/// then stays off.
pub fn without_dns(path: &Path) -> anyhow::Result<bool> {
    let file = read(path)?;
    Ok(file.mirror.is_some() && file.zone.is_none())
}
