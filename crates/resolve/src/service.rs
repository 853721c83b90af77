//! `haven resolve` as a process: its own tokio runtime, the listeners of the DNS crate serving the
//! [`Resolver`], the optional control address, and the signals: SIGHUP flushes every cached
//! answer and pin, SIGTERM or Ctrl-C stops it.
//!
//! The first line on standard output names the DNS addresses (`Haven resolve listening on ...`),
//! the second, with a control address, that address: tests and scripts that ask for port 0 read
//! the ports there.

use anyhow::Context;
use haven_dns::server::Listeners;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::ResolveConfig;
use crate::resolver::Resolver;

/// Runs until SIGTERM or Ctrl-C, on `threads` worker threads.
pub fn run(config: ResolveConfig, threads: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("haven-resolve")
        .enable_all()
        .build()?;
    runtime.block_on(serve(config, threads))
}

async fn serve(config: ResolveConfig, threads: usize) -> anyhow::Result<()> {
    let listeners = Listeners::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {:?}", config.listen))?;
    let resolver = Resolver::new(&config);
    let addresses = listeners.addresses();
    listeners.serve(resolver.clone(), threads);
    tracing::info!(listen = ?addresses, upstreams = ?config.upstreams,
        critical = config.critical.patterns.len(), "haven resolve is ready");
    let listening: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    println!("Haven resolve listening on {}", listening.join(" "));
    if let Some(control) = config.control {
        let listener = tokio::net::TcpListener::bind(control)
            .await
            .with_context(|| format!("cannot listen for control on {control}"))?;
        println!("Haven resolve control on http://{}", listener.local_addr()?);
        tokio::spawn(crate::control::serve(listener, resolver.clone()));
    }
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                resolver.flush(None);
            }
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!(status = %resolver.status(), "haven resolve stopped");
    Ok(())
}
