//! Background workers that run for the service's lifetime (the change log's trimmer, the TTL
//! worker, PITR's re-basing, the replication shipper): each is a thread doing one bounded round of
//! work per period, until the service is dropped, and only while it holds the job's lease
//! (`lease.rs`), so that of several nodes sharing one engine one does the work. A round that fails
//! is logged and retried at the next period.
//!
//! A worker starts only once some table needs it ([`Job`], [`OnDemand`]): a server whose tables
//! have no stream, no TTL and no point-in-time recovery runs none of them, and an idle worker
//! sleeps until its next round or the service's stop, whichever comes first, rather than waking to
//! look at a flag.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use haven_storage::Engine;

use crate::catalog::{Catalog, TableMeta};
use crate::lease::Lease;

/// Tells the workers of a service to stop; a sleeping worker wakes at once.
#[derive(Clone, Default)]
pub(crate) struct Stop(Arc<(Mutex<bool>, Condvar)>);

impl Stop {
    pub fn stop(&self) {
        let (stopped, wake) = &*self.0;
        *stopped.lock().unwrap() = true;
        wake.notify_all();
    }

    /// Sleeps for `period`; false if the service stopped meanwhile.
    fn sleep(&self, period: Duration) -> bool {
        let (stopped, wake) = &*self.0;
        let guard = stopped.lock().unwrap();
        let (guard, _) = wake
            .wait_timeout_while(guard, period, |stopped| !*stopped)
            .unwrap();
        !*guard
    }
}

/// A lease outlives this many periods, and at least [`MIN_LEASE`], so a holder renews it in time.
const LEASE_PERIODS: u32 = 4;
const MIN_LEASE: Duration = Duration::from_secs(2);

/// Runs `round` every `period` on a thread named `name` until `stop`, while this node holds the
/// lease named `name` in `engine`.
pub(crate) fn spawn_periodic<E: std::fmt::Display>(
    name: &str,
    engine: Arc<dyn Engine>,
    period: Duration,
    stop: Stop,
    mut round: impl FnMut() -> Result<(), E> + Send + 'static,
) {
    let worker = name.to_owned();
    let lease = Lease::new(name, (period * LEASE_PERIODS).max(MIN_LEASE));
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            while stop.sleep(period) {
                match lease.hold(&*engine) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(error) => {
                        tracing::warn!(worker, %error, "cannot take the lease; retrying later");
                        continue;
                    }
                }
                if let Err(error) = round() {
                    tracing::warn!(worker, %error, "background round failed; retrying later");
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, name, "cannot start a background worker");
    }
}

/// A background job that some tables' settings call for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Job {
    /// The change log's trimmer and heartbeat (`streams::worker`): for a table whose writes are
    /// logged, or that has had a stream (its records and, once deleted, its retired streams wait
    /// for their retention to pass).
    Log,
    /// TTL expiry (`ttl`): for a table with TTL enabled.
    Ttl,
    /// PITR's re-basing (`backup::pitr`): for a table with point-in-time recovery.
    Pitr,
}

impl Job {
    /// The jobs `meta`'s table calls for.
    pub(crate) fn wanted_by(meta: &TableMeta) -> impl Iterator<Item = Job> {
        let log = meta.logged_images().is_some() || !meta.streams.is_empty();
        [
            (Job::Log, log),
            (Job::Ttl, crate::ttl::enabled(meta).is_some()),
            (Job::Pitr, crate::backup::pitr::enabled(meta)),
        ]
        .into_iter()
        .filter_map(|(job, wanted)| wanted.then_some(job))
    }
}

/// Starts a job's worker (the service's workers need its settings and its stop).
pub(crate) type Starter = Box<dyn Fn(Job, &Arc<Catalog>) + Send + Sync>;

/// The jobs wanted so far, each started once: the catalog asks for a job whenever it installs
/// metadata that calls for it (a change made here, or on shared storage by another node, which
/// this node learns of through the catalog), so every node that could do the work runs the
/// worker, and the lease picks the one that does.
#[derive(Default)]
pub(crate) struct OnDemand(Mutex<Wanted>);

#[derive(Default)]
struct Wanted {
    jobs: Vec<Job>,
    /// None while the catalog loads, before the service can start workers: the jobs wanted
    /// meanwhile start with [`OnDemand::start_with`].
    starter: Option<Starter>,
}

impl OnDemand {
    /// Starts the worker of each of `jobs` that has none yet.
    pub(crate) fn want(&self, catalog: &Arc<Catalog>, jobs: impl IntoIterator<Item = Job>) {
        let mut wanted = self.0.lock().unwrap();
        for job in jobs {
            if !wanted.jobs.contains(&job) {
                wanted.jobs.push(job);
                if let Some(start) = &wanted.starter {
                    start(job, catalog);
                }
            }
        }
    }

    /// From now on starts workers with `start`, beginning with the jobs already wanted.
    pub(crate) fn start_with(&self, catalog: &Arc<Catalog>, start: Starter) {
        let mut wanted = self.0.lock().unwrap();
        for job in &wanted.jobs {
            start(*job, catalog);
        }
        wanted.starter = Some(start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_storage::RedbEngine;
    use std::time::Instant;

    #[test]
    fn a_stop_wakes_a_sleeping_worker_at_once() {
        let stop = Stop::default();
        let sleeper = {
            let stop = stop.clone();
            std::thread::spawn(move || stop.sleep(Duration::from_secs(600)))
        };
        std::thread::sleep(Duration::from_millis(50));
        let asked = Instant::now();
        stop.stop();
        assert!(!sleeper.join().unwrap(), "the sleep ends with the stop");
        assert!(asked.elapsed() < Duration::from_secs(60));
        assert!(!stop.sleep(Duration::from_secs(600)), "stopped: no sleep");
    }

    #[test]
    fn each_job_starts_once_those_wanted_early_with_the_starter() {
        let engine = Arc::new(RedbEngine::in_memory().unwrap());
        let catalog = Catalog::load(engine, Duration::ZERO).unwrap();
        let jobs = OnDemand::default();
        jobs.want(&catalog, [Job::Ttl, Job::Ttl]);
        let started = Arc::new(Mutex::new(Vec::new()));
        let record = started.clone();
        jobs.start_with(
            &catalog,
            Box::new(move |job, _| record.lock().unwrap().push(job)),
        );
        jobs.want(&catalog, [Job::Log, Job::Ttl]);
        jobs.want(&catalog, [Job::Log]);
        assert_eq!(*started.lock().unwrap(), [Job::Ttl, Job::Log]);
    }
}
