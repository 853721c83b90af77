//! Leases: background work that every node sharing one engine would start (the change log's
//! trimmer and heartbeat, the TTL worker) runs on one node at a time.
//!
//! A lease is a key in the engine (`SYSTEM | "lease/" | job`) holding its holder's id and the time
//! (milliseconds since the epoch) it runs out. A node takes a lease that is free or has run out, and
//! its holder renews it once half of it is spent, each with a batch that expects the bytes it read,
//! so two nodes can never both take it. Leases save work, they do not guard correctness: every
//! worker writes through expectations like any writer, so a holder paused past its lease (or nodes
//! whose clocks disagree) at worst does work twice, never wrongly.

use std::time::Duration;

use haven_storage::{CommitError, Engine, StorageError, WriteBatch};

use crate::catalog::prefix;
use crate::streams::now_ms;

/// One node's claim on one job.
pub(crate) struct Lease {
    key: Vec<u8>,
    holder: [u8; 16],
    duration: Duration,
}

impl Lease {
    /// A claim on `job` by a holder of its own, lasting `duration` once taken.
    pub(crate) fn new(job: &str, duration: Duration) -> Lease {
        let mut key = vec![prefix::SYSTEM];
        key.extend_from_slice(b"lease/");
        key.extend_from_slice(job.as_bytes());
        Lease {
            key,
            holder: *uuid::Uuid::new_v4().as_bytes(),
            duration,
        }
    }

    /// Whether this holder has the lease now, taking it if it is free or has run out and renewing
    /// it once half spent.
    pub(crate) fn hold(&self, engine: &dyn Engine) -> Result<bool, StorageError> {
        let stored = engine.snapshot()?.get(&self.key)?;
        let now = now_ms();
        let (holder, until) = stored.as_deref().map_or((None, 0), decode);
        let mine = holder == Some(self.holder);
        let half = self.duration.as_millis() as u64 / 2;
        if !mine && until > now {
            return Ok(false);
        }
        if mine && until > now + half {
            return Ok(true);
        }
        let mut value = self.holder.to_vec();
        value.extend_from_slice(&(now + self.duration.as_millis() as u64).to_be_bytes());
        let mut batch = WriteBatch::new();
        batch
            .expect(self.key.clone(), stored)
            .put(self.key.clone(), value);
        match engine.commit(batch).wait() {
            Ok(()) => Ok(true),
            Err(CommitError::Conflict) => Ok(false),
            Err(CommitError::Storage(error)) => Err(error),
        }
    }
}

/// A stored lease: holder (16 bytes) and end (u64 BE); anything else counts as free.
fn decode(bytes: &[u8]) -> (Option<[u8; 16]>, u64) {
    let Some((holder, until)) = bytes.split_at_checked(16) else {
        return (None, 0);
    };
    match (holder.try_into(), until.try_into()) {
        (Ok(holder), Ok(until)) => (Some(holder), u64::from_be_bytes(until)),
        _ => (None, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_storage::RedbEngine;

    #[test]
    fn one_holder_at_a_time_until_the_lease_runs_out() {
        let engine = RedbEngine::in_memory().unwrap();
        let first = Lease::new("job", Duration::from_millis(300));
        let second = Lease::new("job", Duration::from_millis(300));
        assert!(first.hold(&engine).unwrap());
        assert!(!second.hold(&engine).unwrap());
        assert!(first.hold(&engine).unwrap(), "the holder keeps it");
        assert!(
            Lease::new("other job", Duration::from_secs(1))
                .hold(&engine)
                .unwrap()
        );
        std::thread::sleep(Duration::from_millis(350));
        assert!(
            second.hold(&engine).unwrap(),
            "a lease that ran out is taken"
        );
        assert!(!first.hold(&engine).unwrap());
    }
}
