//! A token bucket made of two atomics, so that checking a table's capacity on the hot path is a
//! few atomic operations and never a lock.
//!
//! Tokens are kept in nano-units (10⁻⁹ of a capacity unit), so that a refill after any number of
//! nanoseconds at any whole rate of units per second is exact: `elapsed_ns × rate` nano-units.
//! The refill rate and the bucket's size are not stored: each call passes the ones the table's
//! current settings give, so an UpdateTable takes effect at the next request without touching
//! the bucket.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Nano-units per capacity unit.
const NANO: f64 = 1e9;

/// How fast a bucket fills and how much it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Units per second (whole units, as DynamoDB's settings are).
    pub rate: i64,
    /// Seconds of unused capacity the bucket keeps.
    pub window_secs: i64,
}

impl Shape {
    /// The bucket's size in nano-units (saturating: a huge rate cannot overflow).
    fn size(self) -> i64 {
        self.rate
            .saturating_mul(self.window_secs)
            .saturating_mul(NANO as i64)
    }
}

/// Tokens and the moment they were last refilled.
#[derive(Debug)]
pub(crate) struct Bucket {
    /// Nano-units available; negative after a request consumed more than was left (DynamoDB
    /// admits a request while capacity remains and charges what it actually consumed).
    tokens: AtomicI64,
    /// Nanoseconds (on the governor's clock) up to which refills have been added.
    refilled_at: AtomicU64,
}

impl Bucket {
    /// A full bucket of `shape` at `now`.
    pub fn full(shape: Shape, now: u64) -> Bucket {
        Bucket {
            tokens: AtomicI64::new(shape.size()),
            refilled_at: AtomicU64::new(now),
        }
    }

    /// Adds what `shape` earned since the last refill, then answers whether capacity remains.
    /// One thread wins each elapsed interval (compare-and-swap on the time), so no refill is
    /// counted twice; the level is capped at the bucket's size.
    pub fn has_capacity(&self, shape: Shape, now: u64) -> bool {
        let last = self.refilled_at.load(Ordering::Acquire);
        if now > last
            && self
                .refilled_at
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            let earned = ((now - last) as i64).saturating_mul(shape.rate);
            let size = shape.size();
            let before = self.tokens.fetch_add(earned.min(size), Ordering::AcqRel);
            if before.saturating_add(earned) > size {
                self.tokens.fetch_min(size, Ordering::AcqRel);
            }
        }
        self.tokens.load(Ordering::Acquire) > 0
    }

    /// Units available now, as of the last refill (negative when in debt).
    pub fn available(&self) -> f64 {
        self.tokens.load(Ordering::Acquire) as f64 / NANO
    }

    /// Takes `units` consumed by a request that was admitted.
    pub fn charge(&self, units: f64) {
        self.tokens
            .fetch_sub((units * NANO) as i64, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn refills_at_the_rate_up_to_the_window() {
        let shape = Shape {
            rate: 2,
            window_secs: 3,
        };
        let bucket = Bucket::full(shape, 0);
        assert_eq!(bucket.available(), 6.0);
        bucket.charge(7.0);
        assert!(!bucket.has_capacity(shape, 0));
        assert!(!bucket.has_capacity(shape, SECOND / 2));
        assert!(bucket.has_capacity(shape, SECOND));
        assert_eq!(bucket.available(), 1.0);
        assert!(bucket.has_capacity(shape, 100 * SECOND));
        assert_eq!(bucket.available(), 6.0, "capped at rate × window");
    }

    #[test]
    fn a_smaller_shape_caps_the_bucket_at_the_next_refill() {
        let bucket = Bucket::full(
            Shape {
                rate: 10,
                window_secs: 300,
            },
            0,
        );
        let smaller = Shape {
            rate: 1,
            window_secs: 300,
        };
        assert!(bucket.has_capacity(smaller, 1));
        assert_eq!(bucket.available(), 300.0);
    }

    #[test]
    fn refills_of_a_nanosecond_are_not_lost() {
        let shape = Shape {
            rate: 1,
            window_secs: 1,
        };
        let bucket = Bucket::full(shape, 0);
        bucket.charge(1.0);
        for now in 1..=1000 {
            bucket.has_capacity(shape, now);
        }
        assert_eq!(bucket.available(), 1000.0 / NANO);
    }
}
