//! Which runtime serves a new connection.
//!
//! Why: on tokio's multi-threaded runtime a request's I/O readiness, its task and the workers that
//! steal tasks from each other meet on different threads, and every hand-over is a wake-up (a
//! futex or an eventfd write, and the kernel's scheduling: docs/benchmarks.md, "Thread per
//! core"). So the binary runs one single-threaded runtime per core and gives each connection to
//! one of them for its whole life: the connection is registered with that runtime's I/O driver, so
//! its readiness wakes that thread alone, and its requests never change threads. A new connection
//! goes to the runtime serving the fewest open connections. Embedders and tests serve on the
//! runtime they call from ([`Runtimes::current`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;

/// The runtimes a server spreads its connections over.
#[derive(Clone)]
pub struct Runtimes(Arc<[Served]>);

/// One runtime and the connections it serves.
struct Served {
    handle: Handle,
    open: AtomicUsize,
}

/// A connection's place on one runtime, given back when dropped.
pub(crate) struct Assigned {
    runtimes: Runtimes,
    index: usize,
}

impl Runtimes {
    /// Connections spread over `handles` (at least one).
    pub fn new(handles: impl IntoIterator<Item = Handle>) -> Runtimes {
        let served: Arc<[Served]> = handles
            .into_iter()
            .map(|handle| Served {
                handle,
                open: AtomicUsize::new(0),
            })
            .collect();
        assert!(!served.is_empty(), "connections need a runtime to run on");
        Runtimes(served)
    }

    /// Every connection on the runtime this is called from.
    pub fn current() -> Runtimes {
        Runtimes::new([Handle::current()])
    }

    /// The runtime serving the fewest open connections, counting the new one there until the
    /// returned place is dropped.
    pub(crate) fn least_busy(&self) -> Assigned {
        let (index, served) = self
            .0
            .iter()
            .enumerate()
            .min_by_key(|(_, served)| served.open.load(Ordering::Relaxed))
            .expect("at least one runtime");
        served.open.fetch_add(1, Ordering::Relaxed);
        Assigned {
            runtimes: self.clone(),
            index,
        }
    }
}

impl Assigned {
    pub(crate) fn handle(&self) -> &Handle {
        &self.runtimes.0[self.index].handle
    }
}

impl Drop for Assigned {
    fn drop(&mut self) {
        self.runtimes.0[self.index]
            .open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_go_where_fewest_are_open() {
        let runtimes = Runtimes::new([Handle::current(), Handle::current(), Handle::current()]);
        let first = runtimes.least_busy();
        let second = runtimes.least_busy();
        let third = runtimes.least_busy();
        assert_eq!([first.index, second.index, third.index], [0, 1, 2]);
        drop(second);
        assert_eq!(runtimes.least_busy().index, 1);
    }
}
