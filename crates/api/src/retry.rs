//! Bounded optimistic retries.
//!
//! Every write is optimistic: it reads, decides, and commits a batch that expects what it read; a
//! concurrent writer makes the commit fail and the writer tries again on fresh state. Unbounded,
//! that loop lets a hot item (or a cache that disagrees with storage) hold a request forever. So
//! each request gets a budget of attempts and time; past it the request gives up with DynamoDB's
//! answer for contention (InternalServerError, which every SDK retries with backoff; a
//! transaction's own answer for transactions), logged and counted. Between attempts the writer
//! pauses a random, growing while (backoff with jitter), so that writers of one hot item stop
//! invalidating each other in lockstep. A single-item write that conflicts also queues on its
//! item's lock (`hot_items`), so that the writers of one item on this node converge; the budget
//! still bounds the conflicts it cannot prevent (other nodes' writes, on PostgreSQL).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::DynamoError;

/// Commit attempts one request may make.
const MAX_ATTEMPTS: u32 = 256;
/// Time one request may spend retrying.
const MAX_RETRY_TIME: Duration = Duration::from_secs(3);
/// The longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_millis(20);

/// Requests that gave up after too many conflicts, since the server started.
static GIVE_UPS: AtomicU64 = AtomicU64::new(0);

/// How many requests have given up on contention so far.
pub fn contention_give_ups() -> u64 {
    GIVE_UPS.load(Ordering::Relaxed)
}

/// The retry budget of one request.
pub(crate) struct Retries {
    what: &'static str,
    attempts: u32,
    started: Instant,
    give_up: fn() -> DynamoError,
}

impl Retries {
    /// A budget for `what` (named in the log) that gives up with InternalServerError.
    pub(crate) fn new(what: &'static str) -> Retries {
        Retries::giving_up_with(what, || DynamoError::InternalServerError)
    }

    /// A budget that gives up with `give_up()`.
    pub(crate) fn giving_up_with(what: &'static str, give_up: fn() -> DynamoError) -> Retries {
        Retries {
            what,
            attempts: 1,
            started: Instant::now(),
            give_up,
        }
    }

    /// Starts the time budget again: time spent queued for a hot item's lock (`hot_items`) is
    /// not time spent conflicting. The attempts already made still count.
    pub(crate) fn restart_clock(&mut self) {
        self.started = Instant::now();
    }

    /// Records a conflict: pauses before the next attempt, or answers the error to give up with.
    pub(crate) async fn conflict(&mut self) -> Result<(), DynamoError> {
        let pause = self.next_pause()?;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        Ok(())
    }

    fn next_pause(&mut self) -> Result<Duration, DynamoError> {
        self.attempts += 1;
        if self.attempts > MAX_ATTEMPTS || self.started.elapsed() > MAX_RETRY_TIME {
            GIVE_UPS.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                what = self.what,
                attempts = self.attempts - 1,
                elapsed_ms = self.started.elapsed().as_millis() as u64,
                "gave up after too many conflicting writes"
            );
            return Err((self.give_up)());
        }
        Ok(pause(self.attempts))
    }
}

/// The pause before attempt `attempt` (2, 3, ...): none before the second (one conflict is
/// ordinary), then uniformly random up to a ceiling that doubles from 100 µs to [`MAX_PAUSE`].
fn pause(attempt: u32) -> Duration {
    if attempt <= 2 {
        return Duration::ZERO;
    }
    let ceiling = Duration::from_micros(100)
        .saturating_mul(1 << (attempt - 3).min(16))
        .min(MAX_PAUSE);
    ceiling.mul_f64(jitter())
}

/// A number in [0, 1) that differs between threads and calls (uuid's fast RNG).
fn jitter() -> f64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let value = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    (value >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_and_stay_bounded() {
        assert_eq!(pause(2), Duration::ZERO);
        for attempt in 3..100 {
            assert!(pause(attempt) <= MAX_PAUSE);
        }
    }

    #[test]
    fn a_budget_gives_up_after_its_attempts() {
        let mut retries = Retries::new("test");
        let mut allowed = 0;
        while retries.next_pause().is_ok() {
            allowed += 1;
            assert!(allowed < 10 * MAX_ATTEMPTS, "never gave up");
        }
        assert_eq!(allowed, MAX_ATTEMPTS - 1);
        assert!(contention_give_ups() >= 1);
    }

    #[test]
    fn a_budget_gives_up_after_its_time() {
        let mut retries = Retries::new("test");
        retries.started -= MAX_RETRY_TIME;
        assert_eq!(retries.next_pause(), Err(DynamoError::InternalServerError));
    }
}
