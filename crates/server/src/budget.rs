//! The server-wide memory budget for requests: the bytes of bodies being read or held, and the
//! JSON trees parsed from them.
//!
//! Why: a body is capped at 16 MB, but nothing else bounded how many the server holds at once, and
//! the `serde_json::Value` of a body can take tens of times its size (a one-member object costs
//! hundreds of bytes for its seven bytes of text). 200 clients sending 16 MB bodies at once would
//! make the server allocate gigabytes before it refused a single one. So every request charges
//! what it is about to allocate to one budget before allocating it (the body's length before it
//! is read, the tree's estimated size before it is parsed), waits for room at most the queue
//! timeout, and is otherwise refused with DynamoDB's ThrottlingException, which SDKs retry with
//! backoff. A single request larger than the whole budget charges all of it and so runs alone.
//!
//! The budget counts in KiB, so that tokio's semaphore (u32 permits per acquisition) covers any
//! budget size.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use haven_api::DynamoError;

const UNIT: usize = 1024;

/// The budget of one server.
pub(crate) struct Budget {
    units: Arc<Semaphore>,
    total_units: u32,
    wait: Duration,
}

/// What one request has charged to the budget; given back when dropped.
pub(crate) struct Charge {
    units: Arc<Semaphore>,
    held: u32,
    total_units: u32,
    wait: Duration,
}

impl Budget {
    /// A budget of `bytes` (at least one unit) where a request waits at most `wait` for room.
    pub(crate) fn new(bytes: usize, wait: Duration) -> Budget {
        let total_units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .max(1);
        Budget {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            wait,
        }
    }

    /// An empty charge for one request, to grow as it allocates.
    pub(crate) fn charge(&self) -> Charge {
        Charge {
            units: self.units.clone(),
            held: 0,
            total_units: self.total_units,
            wait: self.wait,
        }
    }

    #[cfg(test)]
    fn available_bytes(&self) -> usize {
        self.units.available_permits() * UNIT
    }
}

impl Charge {
    /// Adds `bytes` to the charge, waiting for room at most the budget's wait; a charge never
    /// grows past the whole budget.
    pub(crate) async fn grow(&mut self, bytes: usize) -> Result<(), DynamoError> {
        let wanted = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX);
        let units = wanted.min(self.total_units - self.held);
        if units == 0 {
            return Ok(());
        }
        let acquired = match self.units.try_acquire_many(units) {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout(self.wait, self.units.acquire_many(units))
                .await
                .map_err(|_| DynamoError::Throttling)?
                .map_err(|_| DynamoError::Throttling)?,
        };
        acquired.forget();
        self.held += units;
        Ok(())
    }

    /// Gives `bytes` of the charge back (memory the request has freed).
    pub(crate) fn shrink(&mut self, bytes: usize) {
        let units = u32::try_from(bytes / UNIT)
            .unwrap_or(u32::MAX)
            .min(self.held);
        self.units.add_permits(units as usize);
        self.held -= units;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.units.add_permits(self.held as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(20);

    #[tokio::test]
    async fn a_charge_beyond_the_room_left_waits_then_is_throttled() {
        let budget = Budget::new(64 * UNIT, WAIT);
        let mut first = budget.charge();
        first.grow(48 * UNIT).await.unwrap();
        let mut second = budget.charge();
        let started = std::time::Instant::now();
        assert_eq!(second.grow(32 * UNIT).await, Err(DynamoError::Throttling));
        assert!(started.elapsed() >= WAIT);
        assert_eq!(budget.available_bytes(), 16 * UNIT, "nothing was taken");
        drop(first);
        second.grow(32 * UNIT).await.unwrap();
        assert_eq!(budget.available_bytes(), 32 * UNIT);
    }

    #[tokio::test]
    async fn room_freed_while_waiting_is_taken() {
        let budget = Arc::new(Budget::new(8 * UNIT, Duration::from_secs(60)));
        let mut holder = budget.charge();
        holder.grow(8 * UNIT).await.unwrap();
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.charge().grow(4 * UNIT).await }
        });
        tokio::task::yield_now().await;
        holder.shrink(4 * UNIT);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        drop(holder);
        assert_eq!(budget.available_bytes(), 8 * UNIT, "every unit came back");
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_takes_all_of_it_and_runs_alone() {
        let budget = Budget::new(16 * UNIT, WAIT);
        let mut huge = budget.charge();
        huge.grow(1 << 30).await.unwrap();
        huge.grow(1 << 30).await.unwrap();
        assert_eq!(budget.available_bytes(), 0);
        assert_eq!(budget.charge().grow(1).await, Err(DynamoError::Throttling));
        drop(huge);
        assert_eq!(budget.available_bytes(), 16 * UNIT);
    }
}
