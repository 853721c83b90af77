//! Background workers that run for the service's lifetime (the change log's trimmer, the TTL
//! worker): each is a thread doing one bounded round of work per period, until the service is
//! dropped, and only while it holds the job's lease (`lease.rs`), so that of several nodes sharing
//! one engine one does the work. A round that fails is logged and retried at the next period.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use haven_storage::Engine;

use crate::lease::Lease;

/// Tells the workers of a service to stop; they notice within [`STOP_CHECK`].
#[derive(Clone, Default)]
pub(crate) struct Stop(Arc<AtomicBool>);

/// How often a sleeping worker looks at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(50);

impl Stop {
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Sleeps for `period`; false if the service stopped meanwhile.
    fn sleep(&self, period: Duration) -> bool {
        let until = Instant::now() + period;
        while !self.stopped() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(STOP_CHECK));
        }
        false
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
