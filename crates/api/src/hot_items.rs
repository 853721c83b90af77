//! Writers of one hot item queue instead of racing.
//!
//! A single-item write is optimistic (`items::write_item`): it reads, decides and commits a batch
//! that expects what it read. Many writers of one item on one node mostly invalidate each other;
//! with backoff alone, an unlucky writer could lose every race until its retry budget ran out and
//! answer InternalServerError, where DynamoDB serializes the writers of an item and never fails one
//! for contention. So once a write conflicts it takes its item's lock, and re-reads, decides and
//! commits holding it; while any writer holds or waits for that lock, even first attempts of the
//! item's writers queue on it too, so that the holder's next attempt meets no writer of this node.
//! Writes of items nobody contends pay one atomic load and no lock.
//!
//! The locks are a fixed table of stripes (an item hashes to one), so memory is bounded whatever
//! the keys; two items sharing a stripe only queue together. Tokio's mutex is fair (first come,
//! first served), so a queued writer waits behind at most the writers already queued, each of which
//! holds the lock for one bounded write (its own retry budget). A write takes one stripe at most and
//! nothing else while holding it, so stripes cannot deadlock. Other nodes sharing a PostgreSQL
//! database do not see these locks: their conflicts still go through the retry budget.

use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::{Mutex, MutexGuard};

/// Stripes in the table: enough that a few hot items rarely share one, small enough to be nothing.
const STRIPES: usize = 1024;

/// One stripe: its lock, and how many writers hold or wait for it.
pub(crate) struct Stripe {
    lock: Mutex<()>,
    queued: AtomicU32,
}

static TABLE: [Stripe; STRIPES] = [const {
    Stripe {
        lock: Mutex::const_new(()),
        queued: AtomicU32::new(0),
    }
}; STRIPES];

/// The stripe of the item stored at `storage_key` (which begins with its table's prefix, so equal
/// keys of different tables differ).
pub(crate) fn stripe(storage_key: &[u8]) -> &'static Stripe {
    // FNV-1a: keys are short and this runs on every write.
    let hash = storage_key
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        });
    &TABLE[(hash % STRIPES as u64) as usize]
}

impl Stripe {
    /// Whether writers hold or wait for this stripe's lock (a first attempt then queues too).
    pub(crate) fn contended(&self) -> bool {
        self.queued.load(Ordering::Acquire) > 0
    }

    /// Waits for the stripe's lock, counted as contention from now until the holder drops it.
    pub(crate) async fn lock(&'static self) -> ItemLock {
        self.queued.fetch_add(1, Ordering::AcqRel);
        // Counted before the wait, so that a request dropped while waiting uncounts itself too.
        let counted = Counted(&self.queued);
        let guard = self.lock.lock().await;
        ItemLock {
            _guard: guard,
            _counted: counted,
        }
    }
}

/// The lock of a contended item, held while its writer re-reads, decides and commits.
pub(crate) struct ItemLock {
    _guard: MutexGuard<'static, ()>,
    _counted: Counted,
}

/// One writer counted in a stripe's `queued` until dropped.
struct Counted(&'static AtomicU32);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stripe of its own, outside the process-wide table that other tests' writes may contend.
    fn fresh_stripe() -> &'static Stripe {
        Box::leak(Box::new(Stripe {
            lock: Mutex::const_new(()),
            queued: AtomicU32::new(0),
        }))
    }

    #[tokio::test]
    async fn a_stripe_is_contended_while_held_or_awaited() {
        let stripe = fresh_stripe();
        assert!(!stripe.contended());
        let held = stripe.lock().await;
        assert!(stripe.contended());
        let waiting = tokio::spawn(async move {
            let _lock = stripe.lock().await;
        });
        drop(held);
        waiting.await.unwrap();
        assert!(!stripe.contended());
    }

    #[tokio::test]
    async fn a_writer_dropped_while_waiting_is_uncounted() {
        let stripe = fresh_stripe();
        let held = stripe.lock().await;
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(10), stripe.lock());
        assert!(waiting.await.is_err());
        drop(held);
        assert!(!stripe.contended());
    }
}
