//! Bounds that keep the server answering under overload and hostile clients.
//!
//! Why: a server that queues every request it is offered collapses under overload (each request
//! waits behind the others until its client times out and retries, so nothing finishes). Haven
//! instead admits a bounded number of requests at once, lets a request wait for a slot only briefly,
//! and refuses the rest at once with DynamoDB's `ThrottlingException`, which every SDK retries with
//! backoff. (Which requests are read at all is decided before this, by `intake`, so that refusing
//! does not take the server's time from the work it accepted.) Connections are bounded too, and a
//! connection that sends nothing (or sends its headers one byte at a time) is closed, so idle or
//! slow clients cannot hold the server's resources; at the connection cap, idle connections are
//! closed to make room for new ones rather than refusing them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use haven_api::DynamoError;

use crate::intake::Ticket;

/// How long a connection accepted at the cap waits for a slot freed by shedding idle connections.
pub(crate) const SHED_WAIT: Duration = Duration::from_millis(100);
/// At the cap, connections with no request in progress for this long are closed to make room.
pub(crate) const SHED_IDLE_AFTER: Duration = Duration::from_secs(1);

/// How long the accept loop pauses after a failed accept (typically: out of file descriptors).
pub(crate) const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Connections the kernel queues until the server accepts them (capped by net.core.somaxconn).
/// Beyond the queue a new connection's SYN is dropped and its client waits a whole second to retry,
/// so a burst of connections (clients reconnecting at once) needs more than the usual 128.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `address` with a backlog that absorbs bursts of new connections.
pub fn listen(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The server's limits; [`Limits::default`] suits the machine it runs on.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Requests executing at once (past body reading); beyond it they queue briefly.
    pub max_in_flight: usize,
    /// How long a request may wait for an execution slot before it is refused with ThrottlingException.
    pub queue_timeout: Duration,
    /// Open connections at once; beyond it idle ones are closed to make room, else the new one is.
    pub max_connections: usize,
    /// Time allowed to receive a request's head from its first byte (and for a TLS handshake).
    pub header_read_timeout: Duration,
    /// Time allowed to receive a request's body.
    pub body_read_timeout: Duration,
    /// A connection with no request in progress for this long is closed.
    pub idle_timeout: Duration,
    /// After a shutdown signal, how long requests in progress may take to finish before their
    /// connections are closed anyway (they were never answered, so nothing acknowledged is lost).
    pub shutdown_timeout: Duration,
    /// Bytes that request bodies and their parsed JSON may take at once (see `budget`); a request
    /// that finds no room within the queue timeout is refused with ThrottlingException.
    pub request_memory: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::for_cores(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

impl Limits {
    /// The defaults on a machine with `cores` cores: start-up reads the count once and passes it
    /// to everything sized by it (each read opens cgroup files).
    pub fn for_cores(cores: usize) -> Limits {
        Limits {
            max_in_flight: max_in_flight_for(cores),
            queue_timeout: Duration::from_millis(50),
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            request_memory: DEFAULT_REQUEST_MEMORY,
        }
    }
}

/// Room for sixteen 16 MB bodies at once, or thousands of typical requests (a 1 KB PutItem
/// charges about 100 KB: its body and the estimate of its parsed JSON).
pub const DEFAULT_REQUEST_MEMORY: usize = 256 * 1024 * 1024;

/// 64 requests per core: enough to keep the group committer's batches full (most of a write's time
/// is spent waiting for the sync), few enough that a request never waits behind thousands.
fn max_in_flight_for(cores: usize) -> usize {
    cores * 64
}

/// Raises this process's soft limit on open files to its hard limit and returns the new soft limit.
/// Each connection is a file descriptor, and the usual soft limit (1024) would refuse connections
/// long before `max_connections`.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// The in-flight bound: a semaphore whose permits a request holds while it executes, and a
/// bounded queue in front of it.
///
/// As many requests may wait as may run. Under sustained overload the queue stays full, so the
/// excess is refused the moment it arrives (a refusal costs the client well under a millisecond,
/// instead of the whole queue timeout), and a queued request waits about one round of execution
/// before its turn, which keeps the latency of accepted requests bounded. The queue is FIFO
/// (tokio's semaphore is fair): a burst is served in order, and the timeout only bounds the wait
/// when requests run unusually long.
pub(crate) struct Admission {
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    max_queued: usize,
    queue_timeout: Duration,
}

impl Admission {
    pub(crate) fn new(limits: &Limits) -> Admission {
        let max_in_flight = limits.max_in_flight.max(1);
        Admission {
            slots: Arc::new(Semaphore::new(max_in_flight)),
            queued: AtomicUsize::new(0),
            max_queued: max_in_flight,
            queue_timeout: limits.queue_timeout,
        }
    }

    /// Requests the admission queue holds: executing plus waiting for a slot (as many may wait as
    /// may run).
    pub(crate) fn capacity(&self) -> usize {
        2 * self.max_queued
    }

    /// A slot, or ThrottlingException if the queue is full or no slot frees up within the queue
    /// timeout. A request `reserved` by an intake grant (see `intake`) already has its place, so
    /// it is not refused for a full queue: the queue count lags behind when slots are handed to
    /// waiters not yet scheduled, and refusing then would turn that lag into a storm of refusals.
    /// The permit is released when dropped; a request whose client has gone is dropped by hyper,
    /// and with it its place in the queue or its permit.
    pub(crate) async fn admit(&self, reserved: bool) -> Result<OwnedSemaphorePermit, DynamoError> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let ahead = self.queued.fetch_add(1, Ordering::Relaxed);
        let _place = QueuePlace {
            queued: &self.queued,
            _gauge: haven_metrics::Level::Queued.hold(),
        };
        if ahead >= self.max_queued && !reserved {
            return Err(DynamoError::Throttling);
        }
        match tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(DynamoError::Throttling),
        }
    }
}

/// A request's place in the admission queue, given up when it is admitted, refused or dropped.
struct QueuePlace<'a> {
    queued: &'a AtomicUsize,
    /// The queued-requests gauge, moved for as long as the place is held.
    _gauge: haven_metrics::Held,
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a connection is doing, for its timers: requests in progress, the last activity, and when
/// the head of the request being received began to arrive.
pub(crate) struct Activity {
    started: Instant,
    busy: AtomicUsize,
    last_millis: AtomicU64,
    /// Milliseconds since `started` when the first bytes of the next request arrived, or
    /// [`NO_HEAD`] if none have.
    head_millis: AtomicU64,
}

const NO_HEAD: u64 = u64::MAX;

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            started: Instant::now(),
            busy: AtomicUsize::new(0),
            last_millis: AtomicU64::new(0),
            head_millis: AtomicU64::new(NO_HEAD),
        })
    }

    fn now_millis(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_millis.store(self.now_millis(), Ordering::Relaxed);
    }

    /// Notes that bytes of a request head arrived; true if they are the first of the head.
    pub(crate) fn head_bytes_arrived(&self) -> bool {
        let now = self.now_millis();
        self.head_millis
            .compare_exchange(NO_HEAD, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// True while a request head has begun to arrive and is not complete.
    pub(crate) fn head_in_progress(&self) -> bool {
        self.head_millis.load(Ordering::Relaxed) != NO_HEAD
    }

    /// The bytes received so far were not a request head's (a TLS handshake), or the head is
    /// complete.
    pub(crate) fn end_head(&self) {
        self.head_millis.store(NO_HEAD, Ordering::Relaxed);
    }

    /// Marks a request in progress until the guard drops (when it is answered or abandoned); the
    /// guard then gives back the connection's intake grant.
    pub(crate) fn begin(self: &Arc<Activity>, ticket: &Arc<Ticket>) -> BusyGuard {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.end_head();
        self.touch();
        BusyGuard {
            grant: GrantHeld(ticket.clone()),
            busy: Busy(self.clone()),
        }
    }

    /// True while a request is in progress on the connection.
    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed) > 0
    }

    /// How long until the connection counts as idle; None if it already does.
    pub(crate) fn idle_remaining(&self, idle_timeout: Duration) -> Option<Duration> {
        if self.busy.load(Ordering::Relaxed) > 0 {
            return Some(idle_timeout);
        }
        let last = Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
        let idle_for = self.started.elapsed().saturating_sub(last);
        idle_timeout.checked_sub(idle_for).filter(|d| !d.is_zero())
    }
}

/// A request in progress on a connection: its intake grant, and the connection's busy mark.
pub(crate) struct BusyGuard {
    // Dropped in this order: the grant is given back while the connection is still busy, so it
    // cannot be waiting in line for a grant.
    grant: GrantHeld,
    busy: Busy,
}

impl BusyGuard {
    /// The request is answered: its grant goes back now, and the connection stays busy (read
    /// straight through, not gated) until the returned mark drops, such as while the rest of a
    /// body answered unread is discarded.
    pub(crate) fn answered(self) -> Busy {
        let BusyGuard { grant, busy } = self;
        drop(grant);
        busy
    }
}

struct GrantHeld(Arc<Ticket>);

impl Drop for GrantHeld {
    fn drop(&mut self) {
        self.0.answered();
    }
}

/// A connection marked busy (see [`Activity::begin`]).
pub(crate) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_that_waits_too_long_is_throttled_and_a_freed_slot_admits_the_next() {
        let admission = Admission::new(&Limits {
            max_in_flight: 1,
            queue_timeout: Duration::from_millis(20),
            ..Limits::default()
        });
        let held = admission
            .admit(false)
            .await
            .expect("the first request is admitted");
        let started = Instant::now();
        assert_eq!(
            admission.admit(false).await.err(),
            Some(DynamoError::Throttling)
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(held);
        assert!(admission.admit(false).await.is_ok());
    }

    #[tokio::test]
    async fn beyond_a_full_queue_a_request_is_refused_at_once() {
        let admission = Arc::new(Admission::new(&Limits {
            max_in_flight: 1,
            queue_timeout: Duration::from_secs(60),
            ..Limits::default()
        }));
        let held = admission.admit(false).await.unwrap();
        // One request waits (as many may wait as may run)...
        let waiting = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit(false).await.is_ok() }
        });
        while admission.queued.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        // ...so the next is refused without waiting for the 60 s timeout.
        let started = Instant::now();
        assert_eq!(
            admission.admit(false).await.err(),
            Some(DynamoError::Throttling)
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(held);
        assert!(waiting.await.unwrap(), "the queued request is admitted");
    }

    #[tokio::test]
    async fn a_request_reserved_by_an_intake_grant_waits_even_when_the_queue_is_full() {
        let admission = Arc::new(Admission::new(&Limits {
            max_in_flight: 1,
            queue_timeout: Duration::from_secs(60),
            ..Limits::default()
        }));
        let held = admission.admit(false).await.unwrap();
        let first = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit(false).await.is_ok() }
        });
        while admission.queued.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        let reserved = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit(true).await.is_ok() }
        });
        while admission.queued.load(Ordering::Relaxed) < 2 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert!(first.await.unwrap(), "the first in the queue is admitted");
        assert!(
            reserved.await.unwrap(),
            "the reserved request was not refused"
        );
    }

    #[tokio::test]
    async fn a_dropped_request_gives_up_its_place_in_the_queue() {
        let admission = Admission::new(&Limits {
            max_in_flight: 1,
            queue_timeout: Duration::from_secs(60),
            ..Limits::default()
        });
        let _held = admission.admit(false).await.unwrap();
        // A client that goes away while queued: hyper drops its request future.
        let abandoned =
            tokio::time::timeout(Duration::from_millis(20), admission.admit(false)).await;
        assert!(abandoned.is_err(), "it was still waiting");
        assert_eq!(admission.queued.load(Ordering::Relaxed), 0);
        assert_eq!(admission.slots.available_permits(), 0);
    }

    #[tokio::test]
    async fn a_connection_is_idle_only_with_no_request_in_progress() {
        let activity = Activity::new();
        let ticket = crate::intake::Intake::new(1, Duration::ZERO).ticket();
        // Long enough that "just answered" holds even if this thread is descheduled a while.
        let timeout = Duration::from_millis(500);
        let guard = activity.begin(&ticket);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(
            activity.idle_remaining(timeout).is_some(),
            "busy is never idle"
        );
        drop(guard);
        assert!(activity.idle_remaining(timeout).is_some(), "just answered");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(activity.idle_remaining(timeout).is_none());
    }
}
