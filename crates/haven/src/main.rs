//! The `haven` binary: parses the command line and wires storage, service and server together
//! (`serve`), mirrors another endpoint's tables while serving (`mirror`, in `haven-mirror`),
//! manages access keys (`keys`), manages a running server's backups (`backup`, in `backup_cli`)
//! and exports and imports (`export`, `import`, in `transfer_cli`),
//! runs the guard resolver (`resolve`, in `haven-resolve`), summarises a running server
//! (`status`), or checks a server's health (`healthcheck`). DynamoDB Local's command line
//! (`haven -jar DynamoDBLocal.jar -inMemory ...`) is translated into `serve`'s
//! (`dynamodb_local`).

mod api_client;
mod backup_cli;
mod deferred;
mod dynamodb_local;
mod healthcheck;
mod import_source;
mod log_fields;
mod mirror_cli;
mod namespaces;
mod peer_http;
mod status;
mod transfer_cli;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod replication;

use anyhow::Context;
use clap::{Parser, Subcommand};
use deferred::Deferred;
use haven_api::{Service, ServiceConfig};
use haven_storage::{Engine, RedbEngine};
use haven_storage_memory::MemoryEngine;
use haven_storage_postgres::PostgresEngine;

/// mimalloc: a request allocates and frees many small buffers (JSON values, item attributes), and
/// glibc's allocator spent about a quarter of a GetItem's instructions on them (callgrind, see
/// docs/benchmarks.md). Without transparent huge pages (feature `no_thp`): mimalloc asks for them on
/// its arena, and the first few allocations then made the idle server hold 8 MB of huge pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc reserves its first arena at the first allocation, before `main`: 1 GiB by default,
/// described by dozens of bitmaps of a bit per 64 KiB whose set-up was 42 of the 580 page faults
/// of a start. Arenas of 64 MiB (mimalloc doubles the size of each later eight) give the same
/// start 3 of them. Set as a default from an ELF constructor ahead of mimalloc's own (the
/// section's priority orders it first), so that `MIMALLOC_ARENA_RESERVE` still overrides it.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array.00100")]
static SMALLER_ARENAS: extern "C" fn() = smaller_arenas;

#[cfg(target_os = "linux")]
extern "C" fn smaller_arenas() {
    unsafe extern "C" {
        fn mi_option_set_default(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    /// `mi_option_arena_reserve` of mimalloc.h (v3), in KiB; tests/startup.rs checks the name
    /// it has.
    const ARENA_RESERVE: std::ffi::c_int = 23;
    // SAFETY: sets one entry of mimalloc's static option table; nothing runs concurrently yet.
    unsafe { mi_option_set_default(ARENA_RESERVE, 64 * 1024) }
}

#[derive(Parser)]
#[command(
    name = "haven",
    version,
    about = "A DynamoDB-compatible database you can host anywhere"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; each one's arguments are `Deferred`, defined only when it is the one run.
#[derive(Subcommand)]
enum Command {
    /// Serve the DynamoDB API over HTTP.
    Serve(Deferred<Box<ServeArgs>>),
    /// Manage the access keys of a credentials file (see docs/security.md).
    Keys(Deferred<KeysArgs>),
    /// Keep live, read-only copies of another DynamoDB endpoint's tables while serving them (see
    /// docs/failover.md); `haven mirror promote TABLE` makes a copy writable.
    Mirror(Deferred<Box<MirrorArgs>>),
    /// Back up, list, restore and delete backups of a running server's tables
    /// (see docs/backups.md).
    Backup(Deferred<backup_cli::BackupArgs>),
    /// Export a table of a running server to S3 and wait for the end (see docs/backups.md).
    Export(Deferred<Box<transfer_cli::ExportArgs>>),
    /// Import S3 objects into a new table of a running server and wait for the end
    /// (see docs/backups.md).
    Import(Deferred<Box<transfer_cli::ImportArgs>>),
    /// Run a local caching DNS resolver that keeps the last good addresses of critical names
    /// (see docs/resolve.md).
    Resolve(Deferred<ResolveArgs>),
    /// Summarise a running server: serving or not, requests and errors, load, tables, storage
    /// (from its /health and /metrics; see docs/metrics.md).
    Status(Deferred<StatusArgs>),
    /// Exit 0 if the server answers GET /health with 200, 1 if not (a container's HEALTHCHECK).
    Healthcheck(Deferred<HealthcheckArgs>),
}

#[derive(clap::Args)]
struct HealthcheckArgs {
    /// The server's address, host:port (default: $HAVEN_HEALTHCHECK_ADDRESS, else
    /// 127.0.0.1:8000).
    #[arg(long)]
    address: Option<String>,
    /// Milliseconds to wait for the answer.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

/// Which tables a request sees.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Isolation {
    /// Every caller sees the same tables.
    Shared,
    /// Each access key id and region has its own tables (DynamoDB Local without -sharedDb).
    KeyRegion,
}

/// `haven serve --capacity`: whether tables' capacity is enforced.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CapacityArg {
    /// Throttle as DynamoDB does (provisioned capacity with its burst, on-demand maxima).
    Enforce,
    /// Never throttle, as DynamoDB Local does (consumed capacity is still reported).
    Off,
}

#[derive(clap::Args)]
struct StatusArgs {
    /// The server's endpoint (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    endpoint: String,
}

#[derive(clap::Args)]
struct ResolveArgs {
    /// TOML file with a [resolve] section (see docs/resolve.md); the flags below replace its
    /// settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address for DNS over UDP and TCP (repeatable; port 0 picks a free one).
    #[arg(long)]
    listen: Vec<SocketAddr>,
    /// Upstream resolver, address and port (repeatable), asked in turn.
    #[arg(long = "upstream")]
    upstreams: Vec<SocketAddr>,
    /// A critical name (repeatable): its last good answer stands in for an empty or failed one.
    /// Labels may be `*`, e.g. `dynamodb.*.amazonaws.com`.
    #[arg(long)]
    critical: Vec<String>,
    /// Address of the HTTP control endpoint (GET /status, POST /flush); bind it to loopback.
    #[arg(long)]
    control: Option<SocketAddr>,
    /// Worker threads (default: one per CPU core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Log filter: error, warn, info, debug, trace (or a tracing directive).
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[derive(clap::Args)]
struct KeysArgs {
    /// The credentials file (created if missing).
    #[arg(long, global = true, default_value = "./haven-credentials")]
    credentials: PathBuf,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; its id and secret are printed once, here.
    Create {
        /// A name to remember the key by.
        #[arg(long)]
        name: Option<String>,
        /// The AWS account (12 digits) whose tables the key sees with `haven serve --auth`;
        /// without it, the server's own (`--account`).
        #[arg(long, value_parser = account_id)]
        account: Option<String>,
    },
    /// List the keys (ids, names, accounts; never secrets).
    List,
    /// Revoke a key: requests signed with it are refused from the next request on.
    Revoke {
        /// The access key id.
        access_key_id: String,
    },
    /// Give a key a policy (an IAM-style JSON document, see docs/security.md), or remove it with
    /// --clear (a key without a policy has full access).
    Policy {
        /// The access key id.
        access_key_id: String,
        /// The policy document; `-` reads it from standard input.
        #[arg(required_unless_present = "clear", conflicts_with = "clear")]
        file: Option<PathBuf>,
        /// Remove the key's policy.
        #[arg(long)]
        clear: bool,
    },
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct MirrorArgs {
    #[command(subcommand)]
    command: Option<MirrorCommand>,
    /// The source's endpoint URL, e.g. https://dynamodb.eu-west-1.amazonaws.com (or
    /// source_endpoint in the --config file's [mirror] section).
    #[arg(long)]
    source_endpoint: Option<String>,
    /// A table of the source to mirror (repeatable); the copy has the same name.
    #[arg(long = "table")]
    tables: Vec<String>,
    /// The source's region (for signing); default: the AWS chain's (AWS_REGION, the profile's),
    /// else us-east-1.
    #[arg(long)]
    source_region: Option<String>,
    /// The profile of the shared AWS files to take the source's credentials (and region) from;
    /// default: AWS_PROFILE, else the default chain.
    #[arg(long)]
    source_profile: Option<String>,
    /// Scan segments of the initial copy, read in parallel (default 4).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    segments: Option<u32>,
    /// Milliseconds between two reads of a stream that had nothing new (default 500).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    poll_interval_ms: Option<u64>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum MirrorCommand {
    /// Stop mirroring TABLE and make it writable (run it while `haven mirror` is stopped, or
    /// beside it on a shared PostgreSQL storage).
    Promote(PromoteArgs),
}

#[derive(clap::Args)]
struct PromoteArgs {
    /// The mirrored table.
    table: String,
    /// Directory holding the database.
    #[arg(long, default_value = "./haven-data")]
    data_dir: PathBuf,
    /// The PostgreSQL storage instead of --data-dir (see `haven serve --storage`).
    #[arg(long, value_name = "URL")]
    storage: Option<String>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Configuration file (TOML, see the README): health-checked DNS for the endpoint names
    /// ([zone], [[regions]]...), global tables' [replication], `haven mirror`'s [mirror].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address for DNS over UDP and TCP, replacing the config's [dns] listen (repeatable), so
    /// that nodes can share one config file.
    #[arg(long, requires = "config")]
    dns_listen: Vec<SocketAddr>,
    /// Directory holding the database.
    #[arg(long, default_value = "./haven-data")]
    data_dir: PathBuf,
    /// Keep everything in memory: nothing is written to disk and nothing survives a restart.
    #[arg(long, conflicts_with = "storage")]
    in_memory: bool,
    /// Keep the data in PostgreSQL instead of --data-dir: a connection string
    /// (postgres://user:password@host:port/database; several hosts with
    /// target_session_attrs=read-write to follow a failover). Any number of Haven nodes can share
    /// one database (docs/scale-out.md).
    #[arg(long, value_name = "URL")]
    storage: Option<String>,
    /// Megabytes of database pages cached in the server's memory (the rest is read through the
    /// operating system's page cache).
    #[arg(long, default_value_t = haven_storage::DEFAULT_CACHE_BYTES / (1024 * 1024))]
    cache_mb: usize,
    /// Log filter: error, warn, info, debug, trace (or a tracing directive).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Region named in ARNs.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// The server's own AWS account id (12 digits), named in ARNs: with --auth, keys without an
    /// account of their own in --credentials see its tables.
    #[arg(long, default_value = "000000000000", value_parser = account_id)]
    account: String,
    /// Verify every request's SigV4 signature against the keys of --credentials; each key sees
    /// the tables of its account, as in AWS (see docs/security.md).
    #[arg(long, requires = "credentials")]
    auth: bool,
    /// Credentials file of access keys and their policies (re-read when it changes); used with
    /// --auth.
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); the pair is re-read when
    /// either file changes, for new connections.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Append one JSON line per request to this file: who did what, and how it ended.
    #[arg(long)]
    audit_log: Option<PathBuf>,
    /// Item collection size limit in bytes for tables with local indexes (DynamoDB's is 10 GB);
    /// lowered only by tests.
    #[arg(long, hide = true, default_value_t = 10 * 1024 * 1024 * 1024)]
    item_collection_limit: u64,
    /// Requests executing at once; one that waits longer than --queue-timeout-ms for a slot is
    /// refused with ThrottlingException (default: 64 per CPU core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_in_flight: Option<u32>,
    /// Milliseconds a request may queue for an execution slot before it is throttled.
    #[arg(long, default_value_t = 50)]
    queue_timeout_ms: u64,
    /// Open connections at once; more are closed on accept.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Seconds a connection may stay open with no request in progress.
    #[arg(long, default_value_t = 60)]
    idle_timeout_secs: u64,
    /// Seconds allowed to receive a request's headers from their first byte (slow clients are
    /// disconnected).
    #[arg(long, default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds requests in progress may take to finish after SIGTERM or Ctrl-C before the server
    /// closes their connections and exits.
    #[arg(long, default_value_t = 30)]
    shutdown_timeout_secs: u64,
    /// Megabytes that request bodies and their parsed JSON may take at once; a request that finds
    /// no room within --queue-timeout-ms is refused with ThrottlingException.
    #[arg(long, default_value_t = (haven_server::DEFAULT_REQUEST_MEMORY >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_request_memory_mb: u64,
    /// Seconds a DynamoDB Streams shard stays open before a child shard replaces it (AWS rolls
    /// about every 4 hours); fixed per stream when the stream is created.
    #[arg(long, default_value_t = 4 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
    stream_shard_interval_secs: u64,
    /// Seconds stream records stay readable (DynamoDB's 24 hours); lowered only by tests.
    #[arg(long, hide = true, default_value_t = 24 * 3600)]
    stream_retention_secs: u64,
    /// Seconds a shard iterator may be used (DynamoDB's 15 minutes); lowered only by tests.
    #[arg(long, hide = true, default_value_t = 15 * 60)]
    stream_iterator_lifetime_secs: u64,
    /// Milliseconds between the TTL worker's looks for expired items: they are deleted within
    /// about this long of expiring (DynamoDB takes up to a few days).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    ttl_interval_ms: u64,
    /// Do not serve Prometheus metrics at GET /metrics (served to anyone, like /health: they
    /// name tables; docs/metrics.md).
    #[arg(long)]
    no_metrics: bool,
    /// Do not serve the web console at /console (docs/console.md).
    #[arg(long)]
    no_console: bool,
    /// Directory of the backup store (CreateBackup, RestoreTableFromBackup; docs/backups.md).
    /// Keep it on another disk than --data-dir. Default: `<data-dir>-backups` beside the data
    /// directory, or the server's memory with --in-memory.
    #[arg(long, conflicts_with = "backup_s3")]
    backup_dir: Option<PathBuf>,
    /// Keep backups in an S3 bucket instead: `s3://bucket` or `s3://bucket/prefix/`, signed with
    /// the AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY environment variables.
    #[arg(long, requires = "backup_s3_endpoint")]
    backup_s3: Option<String>,
    /// The S3-compatible endpoint of --backup-s3 (`https://s3.eu-west-1.amazonaws.com`, a MinIO,
    /// Ceph or Garage URL...); buckets are addressed path-style.
    #[arg(long)]
    backup_s3_endpoint: Option<String>,
    /// The region --backup-s3 signs for.
    #[arg(long, default_value = "us-east-1")]
    backup_s3_region: String,
    #[command(flatten)]
    import_source: import_source::ImportSourceArgs,
    /// Seconds an incremental export's window must span at least (AWS's 15 minutes); lowered
    /// only by tests.
    #[arg(long, hide = true, default_value_t = 15 * 60)]
    export_min_window_secs: u64,
    /// Seconds a table's point-in-time recovery base image may age before a new one is taken (a
    /// restore replays at most about this much of the change log; docs/backups.md).
    #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    pitr_rebase_secs: u64,
    /// Which tables a request sees: one shared set, or a set per access key id and region as
    /// DynamoDB Local keeps them without -sharedDb (embedded storage only; each set in a folder
    /// of --data-dir named <key id>_<region>.haven, or in memory).
    #[arg(long, value_enum, default_value = "shared")]
    isolation: Isolation,
    /// Refuse access key ids other than letters and digits (UnrecognizedClientException), as
    /// DynamoDB Local does.
    #[arg(long)]
    local_key_ids: bool,
    /// With --isolation key-region, how many access key id and region pairs may have tables; with
    /// --auth, how many accounts other than --account (each has an engine and workers of its own).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    max_namespaces: u32,
    /// Answer browsers' CORS preflights and name the allowed origin in answers: `*`, or origins
    /// separated by commas (DynamoDB Local's -cors).
    #[arg(long, value_name = "ORIGINS")]
    cors: Option<String>,
    /// Milliseconds a new table stays CREATING, an updated one UPDATING (its new or deleted index
    /// CREATING or DELETING) and a deleted one DELETING, so that clients' waiters are exercised
    /// (DynamoDB Local's -delayTransientStatuses); 0: ACTIVE or gone at once.
    #[arg(long, default_value_t = 0)]
    transient_status_ms: u64,
    /// Enforce tables' capacity as DynamoDB does (ProvisionedThroughputExceededException,
    /// ThrottlingException for on-demand maxima), or never throttle (DynamoDB Local's way; the
    /// drop-in mode uses off). README.md, "Capacity".
    #[arg(long, value_enum, default_value = "enforce")]
    capacity: CapacityArg,
    /// Seconds of unused capacity a provisioned table keeps as burst (DynamoDB: 300); shorter
    /// only to test throttling quickly.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    capacity_burst_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = parse_command_line();
    match cli.command {
        Command::Serve(Deferred(args)) => serve(*args, None),
        Command::Mirror(Deferred(args)) => mirror(*args),
        Command::Keys(Deferred(args)) => keys(args),
        Command::Resolve(Deferred(args)) => resolve(args),
        Command::Status(Deferred(args)) => status::run(&args.endpoint),
        Command::Backup(Deferred(args)) => backup_cli::run(args),
        Command::Export(Deferred(args)) => transfer_cli::export(*args),
        Command::Import(Deferred(args)) => transfer_cli::import(*args),
        Command::Healthcheck(Deferred(args)) => healthcheck(args),
    }
}

/// Haven's command line, or DynamoDB Local's translated into `serve`'s; `-help` and `-version`
/// are answered here and a wrong DynamoDB Local option exits with status 2.
fn parse_command_line() -> Cli {
    let args: Vec<OsString> = std::env::args_os().collect();
    if !dynamodb_local::is_dynamodb_local(&args) {
        return Cli::parse_from(args);
    }
    match dynamodb_local::translate(&args, &dynamodb_local::Environment::read()) {
        Ok(dynamodb_local::Request::Serve(serve)) => {
            Cli::parse_from(std::iter::once("haven".to_string()).chain(serve))
        }
        Ok(dynamodb_local::Request::Print(text)) => {
            print!("{text}");
            std::process::exit(0)
        }
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2)
        }
    }
}

fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<()> {
    let address = args
        .address
        .or_else(|| std::env::var("HAVEN_HEALTHCHECK_ADDRESS").ok())
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    match healthcheck::check(&address, Duration::from_millis(args.timeout_ms)) {
        Ok(()) => Ok(()),
        Err(why) => {
            eprintln!("unhealthy: {why}");
            std::process::exit(1)
        }
    }
}

/// Logs to standard error, filtered by `level`; in colour only on a terminal (a log file gets no
/// escape codes, and every request's span is formatted without them: painting its field cost a
/// GetItem about 3% of its instructions), its fields written by `log_fields` (the same text).
/// Without colour, requests open no span: `log_fields::LogEvents` writes the request prefix from
/// the id the server keeps for the task (`haven_server::request_log`).
fn init_logging(level: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal();
    if !ansi {
        haven_server::request_log::log_request_ids_without_spans();
    }
    tracing_subscriber::fmt()
        .fmt_fields(log_fields::LogFields::default())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(level).context("invalid --log-level")?,
        )
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .event_format(log_fields::LogEvents::new(Default::default()))
        .init();
    Ok(())
}

fn resolve(args: ResolveArgs) -> anyhow::Result<()> {
    use haven_resolve::config::{Flags, ResolveConfig};
    init_logging(&args.log_level)?;
    let flags = Flags {
        listen: args.listen,
        upstreams: args.upstreams,
        critical: args.critical,
        control: args.control,
    };
    let config = ResolveConfig::load(args.config.as_deref(), flags)?;
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        usize::from,
    );
    haven_resolve::service::run(config, threads)
}

fn keys(args: KeysArgs) -> anyhow::Result<()> {
    use haven_server::credentials::{self, AccessKey};
    let path = &args.credentials;
    let mut keys = credentials::load(path)
        .with_context(|| format!("cannot read credentials file {}", path.display()))?;
    match args.command {
        KeysCommand::Create { name, account } => {
            let key = AccessKey {
                account,
                ..AccessKey::generate(name)?
            };
            keys.push(key.clone());
            credentials::save(path, &keys)
                .with_context(|| format!("cannot write credentials file {}", path.display()))?;
            println!("aws_access_key_id = {}", key.id);
            println!("aws_secret_access_key = {}", key.secret);
            eprintln!(
                "The secret is shown only once; it is kept in {}.",
                path.display()
            );
        }
        KeysCommand::List => {
            for key in &keys {
                let access = if key.policy.is_some() {
                    "policy"
                } else {
                    "full access"
                };
                println!(
                    "{}\t{}\t{access}\t{}",
                    key.id,
                    key.name.as_deref().unwrap_or(""),
                    key.account.as_deref().unwrap_or("server's account")
                );
            }
        }
        KeysCommand::Revoke { access_key_id } => {
            let before = keys.len();
            keys.retain(|k| k.id != access_key_id);
            anyhow::ensure!(
                keys.len() < before,
                "no access key {access_key_id} in {}",
                path.display()
            );
            credentials::save(path, &keys)
                .with_context(|| format!("cannot write credentials file {}", path.display()))?;
            println!("revoked {access_key_id}");
        }
        KeysCommand::Policy {
            access_key_id,
            file,
            clear: _,
        } => {
            let policy = file.as_deref().map(read_policy).transpose()?;
            let key = keys
                .iter_mut()
                .find(|k| k.id == access_key_id)
                .with_context(|| format!("no access key {access_key_id} in {}", path.display()))?;
            let state = if policy.is_some() {
                "set"
            } else {
                "removed (full access)"
            };
            key.policy = policy.map(Arc::new);
            credentials::save(path, &keys)
                .with_context(|| format!("cannot write credentials file {}", path.display()))?;
            println!("policy of {access_key_id} {state}");
        }
    }
    Ok(())
}

/// Reads and checks a policy document from a file, or standard input for `-`.
fn read_policy(file: &std::path::Path) -> anyhow::Result<haven_api::access::Policy> {
    let text = if file == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file)
            .with_context(|| format!("cannot read policy file {}", file.display()))?
    };
    haven_api::access::Policy::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// `haven mirror`: serves like `haven serve` and mirrors the source's tables into it; or
/// `haven mirror promote`.
fn mirror(args: MirrorArgs) -> anyhow::Result<()> {
    if let Some(MirrorCommand::Promote(promote)) = args.command {
        return promote_mirror(promote);
    }
    let flags = mirror_cli::Flags {
        source_endpoint: args.source_endpoint,
        source_region: args.source_region,
        source_profile: args.source_profile,
        tables: args.tables,
        segments: args.segments,
        poll_interval_ms: args.poll_interval_ms,
    };
    let config = mirror_cli::settings(flags, args.serve.config.as_deref())?;
    serve(args.serve, Some(config))
}

/// `haven mirror promote`: clears the table's mirror mark in storage.
fn promote_mirror(args: PromoteArgs) -> anyhow::Result<()> {
    let storage = Storage::open_at(&args.data_dir, args.storage.as_deref(), false, 64)?;
    let engine = storage
        .engine()
        .context("no single engine to promote a table in")?;
    let service = Service::new(engine, ServiceConfig::default())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        match service.mirror_origin(&args.table)? {
            Some(origin) => {
                service.set_mirror_origin(&args.table, None).await?;
                println!(
                    "{} promoted: no longer a mirror of {} at {}; it is writable",
                    args.table, origin.table, origin.endpoint
                );
                anyhow::Ok(())
            }
            None => anyhow::bail!("table {} is not a mirror", args.table),
        }
    });
    drop(service);
    storage.shutdown();
    result
}

/// Where backups go: --backup-s3 or --backup-dir, else beside the data directory (in memory with
/// --in-memory).
fn backup_store(args: &ServeArgs) -> anyhow::Result<haven_api::BackupStoreConfig> {
    use haven_api::BackupStoreConfig;
    if let Some(url) = &args.backup_s3 {
        return Ok(BackupStoreConfig::S3(s3_config(args, url)?));
    }
    Ok(match &args.backup_dir {
        Some(dir) => BackupStoreConfig::Directory(dir.clone()),
        None if args.in_memory => BackupStoreConfig::Memory,
        None => {
            let mut name = args.data_dir.file_name().unwrap_or_default().to_owned();
            name.push("-backups");
            BackupStoreConfig::Directory(args.data_dir.with_file_name(name))
        }
    })
}

/// Where ImportTable reads (`import_source`).
fn import_source(args: &ServeArgs) -> anyhow::Result<haven_api::ImportSourceConfig> {
    let backup = match &args.backup_s3 {
        Some(url) => Some(s3_config(args, url)?),
        None => None,
    };
    import_source::config(&args.import_source, backup.as_ref())
}

/// The S3 store of `--backup-s3 s3://bucket[/prefix]`, with the key from the environment.
fn s3_config(args: &ServeArgs, url: &str) -> anyhow::Result<haven_api::S3Config> {
    let location = url
        .strip_prefix("s3://")
        .filter(|rest| !rest.is_empty())
        .with_context(|| {
            format!("--backup-s3 {url}: expected s3://bucket or s3://bucket/prefix")
        })?;
    let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
    let prefix = match prefix.trim_end_matches('/') {
        "" => String::new(),
        prefix => format!("{prefix}/"),
    };
    let variable = |name: &str| {
        std::env::var(name).with_context(|| format!("--backup-s3 needs {name} in the environment"))
    };
    Ok(haven_api::S3Config {
        endpoint: args
            .backup_s3_endpoint
            .clone()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string(),
        bucket: bucket.to_string(),
        prefix,
        region: args.backup_s3_region.clone(),
        access_key_id: variable("AWS_ACCESS_KEY_ID")?,
        secret_access_key: variable("AWS_SECRET_ACCESS_KEY")?,
    })
}

/// Where ExportTableToPointInTime writes: the S3 endpoint ImportTable reads (`--s3-endpoint`, else
/// `--backup-s3-endpoint`); None with `--s3-dir` or no S3, when an export fails saying so.
fn export_endpoint(source: &haven_api::ImportSourceConfig) -> Option<haven_api::S3Endpoint> {
    let haven_api::ImportSourceConfig::S3(config) = source else {
        return None;
    };
    Some(haven_api::S3Endpoint {
        endpoint: config.endpoint.clone(),
        region: config.region.clone(),
        access_key_id: config.access_key_id.clone(),
        secret_access_key: config.secret_access_key.clone(),
    })
}

/// `haven serve`, mirroring the tables of `mirror` (from `haven mirror`'s flags, else from the
/// --config file's [mirror] section) into what it serves.
fn serve(args: ServeArgs, mut mirror: Option<haven_mirror::MirrorConfig>) -> anyhow::Result<()> {
    init_logging(&args.log_level)?;
    if mirror.is_none() && mirror_cli::configured(args.config.as_deref())? {
        mirror = Some(mirror_cli::settings(
            Default::default(),
            args.config.as_deref(),
        )?);
    }
    let storage = Storage::open(&args)?;
    let import_source = import_source(&args)?;
    let config = ServiceConfig {
        region: args.region.clone(),
        account: args.account.clone(),
        item_collection_limit: args.item_collection_limit,
        streams: haven_api::StreamSettings {
            shard_interval: Duration::from_secs(args.stream_shard_interval_secs),
            retention: Duration::from_secs(args.stream_retention_secs),
            iterator_lifetime: Duration::from_secs(args.stream_iterator_lifetime_secs),
        },
        ttl_interval: Duration::from_millis(args.ttl_interval_ms),
        replication: replication::settings(args.config.as_deref(), &args.region)?,
        s3_endpoint: export_endpoint(&import_source),
        import_source,
        backup_store: backup_store(&args)?,
        transient_status: Duration::from_millis(args.transient_status_ms),
        pitr_rebase: Duration::from_secs(args.pitr_rebase_secs),
        capacity: haven_api::CapacitySettings {
            mode: match args.capacity {
                CapacityArg::Enforce => haven_api::CapacityMode::Enforce,
                CapacityArg::Off => haven_api::CapacityMode::Off,
            },
            burst_window: Duration::from_secs(args.capacity_burst_secs),
        },
        export_min_window: Duration::from_secs(args.export_min_window_secs),
    };
    let security = security(&args)?;
    let accounts = namespaces::Opened::default();
    let tenancy = storage.tenancy(&args, config, &accounts)?;
    // The tables every caller shares: what metrics, replication and the mirror work on (none
    // with --isolation key-region).
    let shared = match &tenancy {
        haven_server::Tenancy::Shared { service, .. } => Some(service.clone()),
        haven_server::Tenancy::PerAccount { own, .. } => Some(own.clone()),
        haven_server::Tenancy::PerKeyRegion(_) => None,
    };
    if let Some(service) = &shared {
        let service = Arc::downgrade(service);
        let data_dir = storage.data_dir(&args);
        haven_metrics::sample_with(Box::new(move || {
            metrics_sample(&service, data_dir.as_deref())
        }));
    }
    // Read once (each read opens cgroup files) for everything sized by it.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let defaults = haven_server::Limits::for_cores(cores);
    let limits = haven_server::Limits {
        max_in_flight: args
            .max_in_flight
            .map_or(defaults.max_in_flight, |n| n as usize),
        queue_timeout: Duration::from_millis(args.queue_timeout_ms),
        max_connections: args.max_connections as usize,
        header_read_timeout: Duration::from_secs(args.header_timeout_secs.max(1)),
        idle_timeout: Duration::from_secs(args.idle_timeout_secs.max(1)),
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout_secs),
        request_memory: (args.max_request_memory_mb.checked_mul(1 << 20))
            .and_then(|bytes| usize::try_from(bytes).ok())
            .unwrap_or(usize::MAX),
        ..defaults
    };
    match haven_server::raise_open_file_limit() {
        Ok(files) if files < limits.max_connections as u64 + 64 => tracing::warn!(
            files,
            max_connections = limits.max_connections,
            "the open-file limit is below --max-connections: connections beyond it are refused"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
    let dns = start_dns(&args, cores)?;
    let runtime = runtime(cores)?;
    let mut pages: Vec<(&'static str, haven_server::StatusPage)> = Vec::new();
    if let Some(service) = &shared {
        let lag = service.replication_lag();
        pages.push(("/replication/status", Arc::new(move || lag.report())));
    }
    if let Some(dns) = &dns {
        pages.push(("/dns/status", Arc::new(dns.status_reporter())));
    }
    if let Some(config) = mirror {
        let service = shared.context(
            "haven mirror keeps one set of tables for every caller: it cannot be used with --isolation key-region",
        )?;
        let mirror = runtime.block_on(haven_mirror::Mirror::start(service, config))?;
        pages.push(("/mirror/status", Arc::new(move || mirror.report())));
    }
    let pages = haven_server::StatusPages::new(pages);
    runtime.block_on(async {
        let listener = haven_server::listen(args.listen)
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        let shutdown = shutdown_signal().context("cannot handle SIGTERM and SIGINT")?;
        tracing::info!(%address, storage = storage.describe(&args), "haven is ready");
        let scheme = if security.tls.is_some() {
            "https"
        } else {
            "http"
        };
        println!("Haven listening on {scheme}://{address}");
        haven_server::run_tenancy(listener, tenancy, security, limits, pages, shutdown).await;
        anyhow::Ok(())
    })?;
    accounts.shutdown();
    storage.shutdown();
    tracing::info!("haven stopped");
    Ok(())
}

/// The runtime that serves every connection: a worker per core, or as many as
/// TOKIO_WORKER_THREADS says, as with tokio's own default.
fn runtime(cores: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(cores);
    }
    builder.enable_all().build()
}

/// The engine `haven serve` runs on: embedded on disk, in memory (`--in-memory`) or PostgreSQL,
/// or an engine per access key id and region (`--isolation key-region`).
enum Storage {
    Embedded(Arc<RedbEngine>),
    Memory(Arc<MemoryEngine>),
    Postgres(Arc<PostgresEngine>),
    PerKeyRegion(namespaces::Opened),
}

impl Storage {
    fn open(args: &ServeArgs) -> anyhow::Result<Storage> {
        if args.isolation == Isolation::KeyRegion {
            anyhow::ensure!(
                args.storage.is_none(),
                "--isolation key-region keeps each access key id and region in an embedded engine of its own; it cannot be used with --storage"
            );
            return Ok(Storage::PerKeyRegion(namespaces::Opened::default()));
        }
        let storage = args.storage.as_deref();
        Storage::open_at(&args.data_dir, storage, args.in_memory, args.cache_mb)
    }

    fn open_at(
        data_dir: &std::path::Path,
        storage: Option<&str>,
        in_memory: bool,
        cache_mb: usize,
    ) -> anyhow::Result<Storage> {
        Ok(if let Some(url) = storage {
            Storage::Postgres(Arc::new(
                PostgresEngine::connect(url).context("cannot use the PostgreSQL storage")?,
            ))
        } else if in_memory {
            Storage::Memory(Arc::new(MemoryEngine::new()))
        } else {
            let engine = RedbEngine::open_with_cache(data_dir, cache_mb * 1024 * 1024)
                .with_context(|| format!("cannot open data directory {}", data_dir.display()))?;
            Storage::Embedded(Arc::new(engine))
        })
    }

    /// The tables requests see: the engine's, each namespace's, or with --auth each account's
    /// (other accounts' engines are kept in `accounts`, to be shut down).
    fn tenancy(
        &self,
        args: &ServeArgs,
        config: ServiceConfig,
        accounts: &namespaces::Opened,
    ) -> anyhow::Result<haven_server::Tenancy> {
        let max = args.max_namespaces as usize;
        if let Storage::PerKeyRegion(opened) = self {
            let place = namespaces::Place::of(args.in_memory, args.data_dir.clone(), args.cache_mb);
            let owner = namespaces::Owner::AccessKeyId;
            let namespaces = namespaces::namespaces(place, owner, config, max, opened);
            return Ok(haven_server::Tenancy::PerKeyRegion(namespaces));
        }
        let engine = self.engine().context("no single engine")?;
        let own = Arc::new(Service::new(engine, config.clone())?);
        if !args.auth {
            return Ok(haven_server::Tenancy::Shared {
                service: own,
                check_key_ids: args.local_key_ids,
            });
        }
        // Other accounts' tables live in embedded engines beside the server's own; on PostgreSQL
        // only the server's own account has tables.
        let others = (!matches!(self, Storage::Postgres(_))).then(|| {
            let dir = args.data_dir.join("accounts");
            let place = namespaces::Place::of(args.in_memory, dir, args.cache_mb);
            namespaces::namespaces(place, namespaces::Owner::Account, config, max, accounts)
        });
        Ok(haven_server::Tenancy::PerAccount { own, others })
    }

    /// The one engine of embedded or PostgreSQL storage; None with an engine per namespace.
    fn engine(&self) -> Option<Arc<dyn Engine>> {
        match self {
            Storage::Embedded(engine) => Some(engine.clone()),
            Storage::Memory(engine) => Some(engine.clone()),
            Storage::Postgres(engine) => Some(engine.clone()),
            Storage::PerKeyRegion(_) => None,
        }
    }

    /// The data directory, where the storage keeps its files on this machine.
    fn data_dir(&self, args: &ServeArgs) -> Option<PathBuf> {
        let on_disk = !args.in_memory && !matches!(self, Storage::Postgres(_));
        on_disk.then(|| args.data_dir.clone())
    }

    /// Where the data is, for the log (never a password).
    fn describe(&self, args: &ServeArgs) -> String {
        match self {
            Storage::Postgres(engine) => format!("PostgreSQL at {}", engine.target()),
            Storage::Memory(_) => "in memory".to_string(),
            Storage::Embedded(_) => format!("data in {}", args.data_dir.display()),
            Storage::PerKeyRegion(_) if args.in_memory => {
                "in memory, tables per access key id and region".to_string()
            }
            Storage::PerKeyRegion(_) => format!(
                "tables per access key id and region in {}",
                args.data_dir.display()
            ),
        }
    }

    /// Commits what is queued and stops the engine.
    fn shutdown(&self) {
        match self {
            Storage::Embedded(engine) => engine.shutdown(),
            Storage::Memory(_) => {} // commits complete before they answer
            Storage::Postgres(engine) => engine.shutdown(),
            Storage::PerKeyRegion(opened) => opened.shutdown(),
        }
    }
}

/// Starts the DNS subsystem when `--config` is given; it runs on threads of its own, apart from
/// the API (a worker per core), and keeps its plans in `<data-dir>/dns` unless the config names a
/// state directory.
fn start_dns(
    args: &ServeArgs,
    cores: usize,
) -> anyhow::Result<Option<haven_dns::subsystem::DnsSubsystem>> {
    let Some(path) = &args.config else {
        tracing::info!("DNS off (no --config)");
        return Ok(None);
    };
    if mirror_cli::without_dns(path)? {
        tracing::info!("DNS off (the --config file has a [mirror] section and no [zone])");
        return Ok(None);
    }
    let mut config = haven_dns::config::DnsConfig::load(path)?;
    if !args.dns_listen.is_empty() {
        config.listen = args.dns_listen.clone();
    }
    if config.state_dir.is_none() && !args.in_memory {
        config.state_dir = Some(args.data_dir.join("dns"));
    }
    let zone = config.inventory.zone.clone();
    let nodes: usize = config.inventory.regions.iter().map(|r| r.nodes.len()).sum();
    let dns = haven_dns::subsystem::DnsSubsystem::start(config, cores)?;
    tracing::info!(
        zone,
        listen = ?dns.addresses(),
        api_nodes = nodes,
        "DNS on: answering for the zone over UDP and TCP; status at GET /dns/status"
    );
    Ok(Some(dns))
}

/// Authentication, TLS and the audit log, as the flags ask; the log says which are on.
fn security(args: &ServeArgs) -> anyhow::Result<haven_server::Security> {
    let auth = match (args.auth, &args.credentials) {
        (true, Some(path)) => {
            let keys = haven_server::KeyStore::open(path)
                .with_context(|| format!("cannot read credentials file {}", path.display()))?;
            tracing::info!(
                credentials = %path.display(),
                keys = keys.len(),
                "authentication on: every request must be SigV4-signed with a key of the credentials file"
            );
            Some(Arc::new(haven_server::Authenticator {
                region: args.region.clone(),
                keys,
            }))
        }
        _ => {
            tracing::info!(
                "authentication off: any well-formed credentials are accepted (use --auth to turn it on)"
            );
            None
        }
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let files = haven_server::tls::TlsFiles::open(cert, key)
                .context("cannot load the TLS certificate and key")?;
            tracing::info!(cert = %cert.display(), "TLS on: HTTPS only; the certificate is re-read when its files change");
            Some(Arc::new(files))
        }
        _ => {
            tracing::info!("TLS off: plain HTTP (use --tls-cert and --tls-key to turn it on)");
            None
        }
    };
    let audit = match &args.audit_log {
        Some(path) => {
            let log = haven_server::audit::AuditLog::open(path)
                .with_context(|| format!("cannot open audit log {}", path.display()))?;
            tracing::info!(path = %path.display(), "audit log on: one JSON line per request");
            Some(Arc::new(log))
        }
        None => None,
    };
    let exposed = haven_server::Exposed {
        metrics: !args.no_metrics,
        console: !args.no_console,
    };
    let cors = args.cors.as_deref().map(|origins| {
        tracing::info!(
            origins,
            "CORS on: browser scripts from these origins may call"
        );
        Arc::new(haven_server::cors::Cors::parse(origins))
    });
    Ok(haven_server::Security {
        auth,
        tls,
        audit,
        exposed,
        cors,
    })
}

/// What `/metrics` reads at a scrape (nothing once the service is gone): every table's figures,
/// every global table's lag, the bytes the data directory takes and the engine's page cache.
fn metrics_sample(
    service: &std::sync::Weak<Service>,
    data_dir: Option<&std::path::Path>,
) -> haven_metrics::Sample {
    let Some(service) = service.upgrade() else {
        return haven_metrics::Sample::default();
    };
    let tables = match service.table_stats() {
        Ok(stats) => stats
            .into_iter()
            .map(|(table, stats)| haven_metrics::TableSample {
                table,
                items: stats.item_count,
                bytes: stats.size_bytes,
            })
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot read the tables' figures for /metrics");
            Vec::new()
        }
    };
    let replication = service
        .replication_lag()
        .samples()
        .into_iter()
        .map(|(table, region, lag)| haven_metrics::ReplicationSample {
            table,
            region,
            latency_seconds: lag.latency_ms as f64 / 1000.0,
            behind_seconds: lag.behind_ms as f64 / 1000.0,
            send_errors: lag.send_errors,
        })
        .collect();
    haven_metrics::Sample {
        tables,
        replication,
        disk_bytes: data_dir.map(bytes_under),
        cache: service.cache_stats(),
    }
}

/// The bytes of the files under `dir` (its sub-folders included, a few levels deep: the data
/// directory holds the database file, and other accounts' folders).
fn bytes_under(dir: &std::path::Path) -> u64 {
    fn walk(dir: &std::path::Path, depth: usize) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        let mut bytes = 0;
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_file() => bytes += meta.len(),
                Ok(meta) if meta.is_dir() && depth > 0 => bytes += walk(&entry.path(), depth - 1),
                _ => {}
            }
        }
        bytes
    }
    walk(dir, 3)
}

/// Resolves on Ctrl-C or SIGTERM. Both handlers are installed by the call itself, not when the
/// future is first polled: a supervisor may send SIGTERM as soon as it reads "Haven listening", and
/// a signal arriving before the handlers exist would kill the process instead of draining it.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Parses an AWS account id: 12 digits.
fn account_id(account: &str) -> Result<String, String> {
    if haven_server::credentials::is_account_id(account) {
        Ok(account.to_string())
    } else {
        Err("an AWS account id is 12 digits".to_string())
    }
}
