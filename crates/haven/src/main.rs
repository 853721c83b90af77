//! The `haven` binary: parses the command line and wires storage, service and server together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use haven_api::{Service, ServiceConfig};
use haven_storage::RedbEngine;

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

#[derive(Subcommand)]
enum Command {
    /// Serve the DynamoDB API over HTTP.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Directory holding the database.
    #[arg(long, default_value = "./haven-data")]
    data_dir: PathBuf,
    /// Keep everything in memory: nothing is written to disk and nothing survives a restart.
    #[arg(long)]
    in_memory: bool,
    /// Log filter: error, warn, info, debug, trace (or a tracing directive).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Region named in ARNs.
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .context("invalid --log-level")?,
        )
        .with_writer(std::io::stderr)
        .init();
    let engine = Arc::new(if args.in_memory {
        RedbEngine::in_memory()?
    } else {
        RedbEngine::open(&args.data_dir)
            .with_context(|| format!("cannot open data directory {}", args.data_dir.display()))?
    });
    let config = ServiceConfig {
        region: args.region,
        ..ServiceConfig::default()
    };
    let service = Arc::new(Service::new(engine.clone(), config)?);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        let storage = if args.in_memory {
            "in memory".to_string()
        } else {
            format!("data in {}", args.data_dir.display())
        };
        tracing::info!(%address, storage, "haven is ready");
        println!("Haven listening on http://{address}");
        haven_server::run(listener, service, shutdown_signal()).await;
        anyhow::Ok(())
    })?;
    engine.shutdown();
    tracing::info!("haven stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
