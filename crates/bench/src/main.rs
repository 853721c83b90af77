//! `haven-bench`: a load generator for any DynamoDB endpoint (Haven, DynamoDB Local, the real
//! service), with YCSB-style workloads, and the ceiling-probe server. See `haven-bench --help`.

mod ceiling;
mod client;
mod consumer;
mod keys;
mod overload;
mod requests;
mod sign;
mod stats;
mod workload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::client::{Connection, Endpoint};
use crate::keys::Distribution;
use crate::requests::{Layout, RequestBuilder};
use crate::stats::{Report, Stats, cpu_time};
use crate::workload::{Plan, Workload, run_connection};

#[derive(Parser)]
#[command(
    name = "haven-bench",
    version,
    about = "Load generator for DynamoDB-compatible endpoints"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workload against an endpoint (run `load` first: it creates the table).
    Run(RunArgs),
    /// Measure the peak (closed loop), then offer --factor times it open loop and back down: goodput,
    /// latency of accepted and refused requests, server memory, recovery (run `load` first).
    Overload(OverloadArgs),
    /// Serve a canned GetItem answer to every request: the ceiling probe.
    CeilingServer {
        #[arg(long, default_value = "127.0.0.1:8010")]
        listen: SocketAddr,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Workload: load, a, b, c, d, e, f (YCSB's core workloads), select-key and select-range (C and E
    /// through PartiQL).
    #[arg(value_enum)]
    workload: Workload,
    /// Endpoint URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    endpoint: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[arg(long, default_value = "bench")]
    table: String,
    /// Number of items (load writes them; workloads read and update them).
    #[arg(long, default_value_t = 100_000)]
    items: u64,
    /// Approximate item size in bytes.
    #[arg(long, default_value_t = 1024)]
    item_size: usize,
    /// Connections, one task each.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Measured seconds (not for load, which runs until every item is written).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds run before measuring.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Open loop: total offered requests per second (default: closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Items per BatchWriteItem during load (1 = PutItem).
    #[arg(long, default_value_t = 1)]
    batch: u64,
    #[arg(long, value_enum, default_value = "zipfian")]
    distribution: Distribution,
    /// Table layout for load: hash (pk) or range (pk, sk; needed by workload e).
    #[arg(long, default_value = "hash", value_parser = ["hash", "range"])]
    layout: String,
    /// Client runtime threads (1 keeps the client off the server's cores as much as possible).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Neither create nor describe the table (for the ceiling server, which answers only GetItem).
    #[arg(long)]
    no_prepare: bool,
    /// Load: create the table with a stream of this view type (NEW_AND_OLD_IMAGES, KEYS_ONLY...).
    #[arg(long)]
    stream: Option<String>,
    /// Follow the table's stream while the workload runs, and report GetRecords latency and
    /// whether the consumer kept up.
    #[arg(long)]
    consume: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct OverloadArgs {
    /// The workload and endpoint; --connections and --duration set the peak measurement.
    #[command(flatten)]
    run: RunArgs,
    /// Offered load during the overload phase, as a multiple of the peak.
    #[arg(long, default_value_t = 3.0)]
    factor: f64,
    /// Seconds of overload.
    #[arg(long, default_value_t = 60.0)]
    overload_secs: f64,
    /// Seconds of each other open-loop phase (0.5x before; 1x and 0.5x after).
    #[arg(long, default_value_t = 10.0)]
    phase_secs: f64,
    /// Requests outstanding at once (each on its own connection) before the client itself queues
    /// (its backlog shows as send lag).
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// The server's process id, to sample its resident memory every second.
    #[arg(long)]
    server_pid: Option<u32>,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => {
            let runtime = runtime(args.threads)?;
            runtime.block_on(run(args))
        }
        Command::Overload(args) => {
            let runtime = runtime(args.run.threads)?;
            runtime.block_on(overload(args))
        }
        Command::CeilingServer { listen } => {
            tokio::runtime::Runtime::new()?.block_on(ceiling::serve(listen))
        }
    }
}

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let endpoint = Endpoint::parse(&args.endpoint, &args.region)?;
    let layout = match (args.no_prepare, args.layout.as_str()) {
        (true, "range") => Layout::Range,
        (true, _) => Layout::Hash,
        (false, _) => prepare(&args, &endpoint).await?,
    };
    let plan = Arc::new(Plan::new(
        args.workload,
        RequestBuilder::new(&args.table, layout, args.item_size),
        endpoint,
        args.items,
        args.batch,
        args.connections,
        (
            Duration::from_secs_f64(args.duration),
            Duration::from_secs_f64(args.warmup),
            args.rate,
        ),
        args.distribution,
        args.seed,
    ));
    let report = measure(plan, &args).await?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

async fn overload(args: OverloadArgs) -> anyhow::Result<()> {
    let run = &args.run;
    if matches!(run.workload, Workload::Load | Workload::F) || run.rate.is_some() {
        bail!("overload offers single-request workloads (a-e) at rates of its own: no --rate");
    }
    let endpoint = Endpoint::parse(&run.endpoint, &run.region)?;
    let layout = prepare(run, &endpoint).await?;
    let plan = Arc::new(Plan::new(
        run.workload,
        RequestBuilder::new(&run.table, layout, run.item_size),
        endpoint,
        run.items,
        1,
        run.connections,
        (
            Duration::from_secs_f64(run.duration),
            Duration::from_secs_f64(run.warmup),
            None,
        ),
        run.distribution,
        run.seed,
    ));
    let settings = overload::Settings {
        factor: args.factor,
        overload: Duration::from_secs_f64(args.overload_secs),
        phase: Duration::from_secs_f64(args.phase_secs),
        max_connections: args.max_connections.max(1),
        server_pid: args.server_pid,
    };
    let report = overload::run(plan, &settings).await?;
    if run.json {
        println!("{report}");
    } else {
        print!("{}", overload::to_text(&report));
    }
    Ok(())
}

/// Runs every connection and gathers the report.
async fn measure(plan: Arc<Plan>, args: &RunArgs) -> anyhow::Result<Report> {
    let cpu_before = cpu_time();
    let started = tokio::time::Instant::now();
    let consumer = args.consume.then(|| {
        let load_end = started + plan.warmup + plan.duration;
        let (endpoint, table) = (plan.endpoint.clone(), args.table.clone());
        tokio::spawn(consumer::follow(endpoint, table, load_end))
    });
    let tasks: Vec<_> = (0..args.connections)
        .map(|id| tokio::spawn(run_connection(plan.clone(), id)))
        .collect();
    let mut stats = Stats::new();
    for task in tasks {
        stats.merge(&task.await??);
    }
    let elapsed = match args.workload {
        Workload::Load => started.elapsed(),
        _ => plan.duration,
    };
    let client_cpu = cpu_time() - cpu_before;
    let stream = match consumer {
        Some(consumer) => Some(consumer.await??),
        None => None,
    };
    Ok(Report {
        workload: format!("{:?}", args.workload).to_lowercase(),
        endpoint: args.endpoint.clone(),
        connections: args.connections,
        distribution: format!("{:?}", args.distribution).to_lowercase(),
        offered_rate: args.rate,
        elapsed,
        client_cpu,
        stats,
        stream,
    })
}

/// Creates the table for load, or finds its layout for the other workloads.
async fn prepare(args: &RunArgs, endpoint: &Endpoint) -> anyhow::Result<Layout> {
    let mut connection = Connection::open(endpoint).await?;
    let wanted = if args.layout == "range" {
        Layout::Range
    } else {
        Layout::Hash
    };
    let builder = RequestBuilder::new(&args.table, wanted, args.item_size);
    if args.workload == Workload::Load {
        let answer = connection
            .send(builder.create_table(args.stream.as_deref()))
            .await?;
        let body = String::from_utf8_lossy(&answer.body);
        if !answer.status.is_success() && !body.contains("ResourceInUseException") {
            bail!("CreateTable failed: {} {body}", answer.status);
        }
    }
    let layout = wait_active(&mut connection, &builder).await?;
    if matches!(args.workload, Workload::E | Workload::SelectRange) && layout != Layout::Range {
        bail!(
            "workloads e and select-range need a table with a sort key: load it with --layout range"
        );
    }
    Ok(layout)
}

/// Polls DescribeTable until the table is ACTIVE; returns its layout.
async fn wait_active(
    connection: &mut Connection,
    builder: &RequestBuilder,
) -> anyhow::Result<Layout> {
    for _ in 0..600 {
        let answer = connection.send(builder.describe_table()).await?;
        if !answer.status.is_success() {
            bail!(
                "DescribeTable failed (run `load` first?): {}",
                String::from_utf8_lossy(&answer.body)
            );
        }
        let table: serde_json::Value =
            serde_json::from_slice(&answer.body).context("DescribeTable answer")?;
        if table["Table"]["TableStatus"] == "ACTIVE" {
            let keys = table["Table"]["KeySchema"].as_array().map_or(0, Vec::len);
            return Ok(if keys > 1 {
                Layout::Range
            } else {
                Layout::Hash
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("table did not become ACTIVE")
}
