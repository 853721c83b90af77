//! Intake control: the server reads a new request only when it can answer it promptly.
//!
//! Why: admission control alone cannot protect the server's goodput. A request must be read and
//! parsed before admission can refuse it, and on a saturated core that read, parse and answer cost
//! a quarter of a served request's work; offered three times its capacity, a server that reads
//! everything spends most of its time refusing (it kept 31% of its peak goodput in the overload
//! benchmark). This is the receive livelock of Mogul and Ramakrishnan, and the cure is theirs: stop
//! taking input the server cannot finish, at the earliest point. Here that point is the socket:
//! a connection with a request waiting is read only with a grant from the [`Intake`], and while
//! none is free the request stays in the kernel's buffers, costing nothing, and TCP's flow control
//! pushes back on the client.
//!
//! Grants come in two kinds:
//! - [`Grant::Serve`]: as many as the admission queue holds (requests executing plus those waiting
//!   for a slot), handed out oldest waiter first, so every read request is admitted and a waiting
//!   connection is served in turn.
//! - [`Grant::Refuse`]: the request is read only to be refused at once with ThrottlingException,
//!   so clients hear that the server is overloaded and back off (SDKs retry throttles with
//!   backoff). Only under overload: once the oldest connection in line has waited longer than
//!   the queue timeout (a line that drains faster is a burst, served in turn). Refusals are earned, one per [`SERVED_PER_REFUSAL`] served requests, which caps
//!   their cost at a small share of the server's work, and go to the newest waiter, whose request
//!   has waited least: a refusal is fast or not at all.
//!
//! Connections are only gated between requests: once a request is in progress (reading its body,
//! executing, or a pipelined request behind it) reads go straight through. A connection that sends
//! nothing asks for no grant (it waits for readiness first), and one that read a grant's worth of
//! bytes without completing a request head gives the grant back, so idle and slow clients never
//! hold grants. A refusal given back unused (the readiness that asked for it brought no request)
//! goes to the next waiter rather than being lost.
//!
//! A request can wait unread (beyond its task's turn to run) only while the room is full, and its
//! client may give up meanwhile (a timeout, a retry on another connection): such a request is
//! dropped unexecuted. So a grant also says whether the room filled since the connection's
//! previous one ([`Ticket::crowded`]; a new connection's first grant always says so), and only
//! then (or when the kernel has already signalled more behind the request) does the stream look
//! for the client's close behind it, with one system call that a server with room skips.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::limits::Activity;

/// One refused request is allowed per this many served ones: a refusal costs about a quarter of a
/// served request, so refusals take about 6% of the server's work at most.
pub(crate) const SERVED_PER_REFUSAL: u32 = 4;

/// Refusals earned while no one waited are saved up to this many, so a burst after a quiet spell
/// is mostly served in turn rather than refused.
const MAX_SAVED_REFUSALS: usize = 8;

/// What a connection may do with the request it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grant {
    /// Serve it: it has a place in the admission queue.
    Serve,
    /// Refuse it at once with ThrottlingException.
    Refuse,
}

const NO_GRANT: u8 = 0;
const SERVE: u8 = 1;
const REFUSE: u8 = 2;

/// A new connection's `fillings_seen`, which no count of fillings equals: its first request is
/// always looked behind, since it may have waited unread to be accepted, and the server cannot
/// tell how long (the system call is paid once a connection).
const NOT_YET_GRANTED: u64 = u64::MAX;

/// The grants of one server.
pub(crate) struct Intake {
    state: Mutex<State>,
}

struct State {
    /// Serve grants not held by any connection.
    free: usize,
    /// Refusals earned and not yet handed out.
    refusals: usize,
    /// Served requests since the last refusal was earned.
    served: u32,
    /// How many times the room has filled (its last serve grant taken).
    fillings: u64,
    /// Connections with a request to read and no grant, oldest first, with when they joined.
    waiting: VecDeque<(Arc<Ticket>, Instant)>,
    /// Refusals are handed out only once the oldest waiter has waited this long: a line that
    /// drains faster (a burst) is not overload.
    overload_after: Duration,
}

/// One connection's standing with the [`Intake`], shared by its stream and its requests.
pub(crate) struct Ticket {
    grant: AtomicU8,
    /// The intake's `fillings` when the connection was last handed a grant, or
    /// [`NOT_YET_GRANTED`]; changed only under the intake's lock.
    fillings_seen: AtomicU64,
    /// Whether the room filled between the connection's previous grant and the one it holds.
    crowded: AtomicBool,
    /// True while the connection waits in line; changed only under the intake's lock, and set only
    /// by the connection itself.
    in_line: AtomicBool,
    /// Woken when a grant is handed to the connection.
    waker: Mutex<Option<Waker>>,
    intake: Arc<Intake>,
}

impl Intake {
    /// An intake with `serve_grants` requests in the server at once (executing or queued), that
    /// refuses requests once connections have waited in line for `overload_after`.
    pub(crate) fn new(serve_grants: usize, overload_after: Duration) -> Arc<Intake> {
        Arc::new(Intake {
            state: Mutex::new(State {
                free: serve_grants.max(1),
                refusals: 0,
                served: 0,
                fillings: 0,
                waiting: VecDeque::new(),
                overload_after,
            }),
        })
    }

    pub(crate) fn ticket(self: &Arc<Intake>) -> Arc<Ticket> {
        Arc::new(Ticket {
            grant: AtomicU8::new(NO_GRANT),
            fillings_seen: AtomicU64::new(NOT_YET_GRANTED),
            crowded: AtomicBool::new(false),
            in_line: AtomicBool::new(false),
            waker: Mutex::new(None),
            intake: self.clone(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Hands out what is free: serve grants to the oldest waiters, then earned refusals to the
    /// newest.
    fn hand_out(&mut self) {
        while self.free > 0 {
            let Some((ticket, _)) = self.waiting.pop_front() else {
                return;
            };
            self.free -= 1;
            if self.free == 0 {
                self.fillings += 1;
            }
            ticket.grant_now(SERVE, self.fillings);
        }
        while self.refusals > 0 && self.overloaded() {
            let Some((ticket, _)) = self.waiting.pop_back() else {
                return;
            };
            self.refusals -= 1;
            ticket.grant_now(REFUSE, self.fillings);
        }
    }

    fn save_refusal(&mut self) {
        self.refusals = (self.refusals + 1).min(MAX_SAVED_REFUSALS);
    }

    /// True if the oldest connection in line has waited longer than `overload_after`.
    fn overloaded(&self) -> bool {
        self.waiting
            .front()
            .is_some_and(|(_, joined)| joined.elapsed() >= self.overload_after)
    }
}

impl Ticket {
    /// The grant the connection holds, if any.
    pub(crate) fn grant(&self) -> Option<Grant> {
        match self.grant.load(Ordering::Acquire) {
            SERVE => Some(Grant::Serve),
            REFUSE => Some(Grant::Refuse),
            _ => None,
        }
    }

    /// Asks for a grant: true if one is held now, else the connection waits in line and `waker`
    /// is woken when one is handed to it.
    fn request(self: &Arc<Ticket>, waker: &Waker) -> bool {
        if self.grant().is_some() {
            return true;
        }
        let mut state = self.intake.state();
        if self.grant().is_some() {
            return true;
        }
        self.waker().replace(waker.clone());
        if !self.in_line.swap(true, Ordering::AcqRel) {
            state.waiting.push_back((self.clone(), Instant::now()));
            state.hand_out();
        }
        self.grant().is_some()
    }

    /// True if the room filled between the connection's previous grant and the one it holds: the
    /// request read with it may have waited unread (see the module docs). Answered once a grant.
    pub(crate) fn take_crowded(&self) -> bool {
        self.crowded.swap(false, Ordering::Relaxed)
    }

    /// Hands `grant` to this connection, which has just left the line, and wakes it; `fillings` is
    /// the intake's count of the times the room filled.
    fn grant_now(&self, grant: u8, fillings: u64) {
        let seen = self.fillings_seen.swap(fillings, Ordering::Relaxed);
        self.crowded.store(seen != fillings, Ordering::Relaxed);
        // Release: whoever sees the grant sees `crowded` too.
        self.grant.store(grant, Ordering::Release);
        self.in_line.store(false, Ordering::Release);
        if let Some(waker) = self.waker().take() {
            waker.wake();
        }
    }

    fn waker(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        self.waker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives back the grant held because the request it was read for is answered; a served
    /// request earns a share of a refusal.
    pub(crate) fn answered(self: &Arc<Ticket>) {
        self.give_back(true);
    }

    /// Gives back the grant held without a request answered (no request came, or the connection
    /// closed), and the connection's place in line.
    pub(crate) fn release(self: &Arc<Ticket>) {
        self.give_back(false);
    }

    fn give_back(self: &Arc<Ticket>, answered: bool) {
        // A connection out of line holds its grant or none, and only it can join the line: with
        // neither, there is nothing to give back. (`grant_now` stores the grant before leaving the
        // line, so seeing it out of line means seeing its grant.)
        if !self.in_line.load(Ordering::Acquire) && self.grant.load(Ordering::Acquire) == NO_GRANT {
            return;
        }
        let mut state = self.intake.state();
        if self.in_line.swap(false, Ordering::AcqRel) {
            state
                .waiting
                .retain(|(waiting, _)| !Arc::ptr_eq(waiting, self));
        }
        match self.grant.swap(NO_GRANT, Ordering::AcqRel) {
            SERVE => {
                state.free += 1;
                if answered {
                    state.served += 1;
                    if state.served >= SERVED_PER_REFUSAL {
                        state.served = 0;
                        state.save_refusal();
                    }
                }
            }
            // A refusal handed to a connection that had no request to read after all (readiness
            // can be spurious, or the client closed) was never delivered: it goes to the next.
            REFUSE if !answered => state.save_refusal(),
            _ => {}
        }
        state.hand_out();
    }
}

/// A connection's TCP stream, read only with a grant between requests (see the module docs).
///
/// It also times request heads: from the first byte of a head, the client has `header_timeout` to
/// send the rest, or the read fails and the connection closes (a slow-loris client holds nothing
/// for long). The timer runs only while the client is the one keeping us waiting: not while the
/// connection waits in line, and not between requests, where the idle timeout applies instead.
pub(crate) struct GatedStream {
    stream: TcpStream,
    ticket: Arc<Ticket>,
    activity: Arc<Activity>,
    header_timeout: Duration,
    head_deadline: Pin<Box<Sleep>>,
}

impl GatedStream {
    pub(crate) fn new(
        stream: TcpStream,
        ticket: Arc<Ticket>,
        activity: Arc<Activity>,
        header_timeout: Duration,
    ) -> Self {
        GatedStream {
            stream,
            ticket,
            activity,
            header_timeout,
            head_deadline: Box::pin(tokio::time::sleep(header_timeout)),
        }
    }

    /// Starts the head timer if these are the first bytes of a request head.
    fn head_bytes_arrived(&mut self) {
        if self.activity.head_bytes_arrived() {
            let deadline = tokio::time::Instant::now() + self.header_timeout;
            self.head_deadline.as_mut().reset(deadline);
        }
    }

    /// True if the request just read into `buf` may have waited unread long enough for its client
    /// to give up: the room filled since the connection's previous grant ([`Ticket::crowded`]),
    /// or the kernel has already signalled something behind it (more bytes, or the close, which
    /// tokio keeps once told even when the read just drained the socket).
    ///
    /// Only such a request is looked behind: an uncrowded server reads a request as soon as its
    /// task runs, and the look (a non-blocking recv finding nothing) was a third of a served
    /// request's system calls.
    fn may_have_waited(&mut self, cx: &mut Context<'_>) -> bool {
        self.ticket.take_crowded() || self.stream.poll_read_ready(cx).is_ready()
    }

    /// True if the client has closed its side of the connection behind the bytes just read into
    /// `buf` (whatever else arrived before the close is read into `buf` too).
    ///
    /// Why: a request that waited unread may have been given up by its client meanwhile. hyper
    /// drops a request when it sees the end of its connection, but only if it sees it before the
    /// request runs, which is a race; checking here, before the request is handed to hyper, makes
    /// sure such a request is never executed.
    fn client_has_gone(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        // A plain non-blocking recv: tokio's `try_read` trusts its readiness cache, which the read
        // that just returned may have cleared, and would report WouldBlock without asking.
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.stream);
        while buf.remaining() > 0 {
            // SAFETY: recv writes at most `spare.len()` bytes into the spare capacity, and only
            // the bytes it wrote are then marked initialized and filled; nothing is de-initialized.
            let read = unsafe {
                let spare = buf.unfilled_mut();
                libc::recv(
                    fd,
                    spare.as_mut_ptr().cast(),
                    spare.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            match read {
                0 => return true,
                read if read > 0 => {
                    // SAFETY: recv initialized these `read` bytes.
                    unsafe { buf.assume_init(read as usize) };
                    buf.advance(read as usize);
                }
                _ => return false, // nothing more yet (or an error the next read reports)
            }
        }
        false
    }

    /// Waiting for the client: Pending, or an error once a head it began has taken longer than
    /// the header timeout (hyper then closes the connection).
    fn wait_for_client(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.activity.head_in_progress() && self.head_deadline.as_mut().poll(cx).is_ready() {
            let late = io::Error::new(io::ErrorKind::TimedOut, "request head not received in time");
            return Poll::Ready(Err(late));
        }
        Poll::Pending
    }
}

impl Drop for GatedStream {
    fn drop(&mut self) {
        self.ticket.release();
    }
}

impl AsyncRead for GatedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.activity.is_busy() {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        if this.ticket.grant().is_none() {
            // Ask only once there is something to read (or the client closed): an idle
            // connection takes no place in line.
            if this.stream.poll_read_ready(cx)?.is_pending() {
                return this.wait_for_client(cx);
            }
            if !this.ticket.request(cx.waker()) {
                return Poll::Pending;
            }
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        match read {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                if this.may_have_waited(cx) && this.client_has_gone(buf) {
                    // Its client went away (typically while it waited in line): not read at all.
                    buf.set_filled(before);
                    return Poll::Ready(Ok(()));
                }
                this.head_bytes_arrived();
            }
            Poll::Pending if !this.activity.is_busy() => {
                // Nothing (more) to read and no request begun: the grant goes to the next in line.
                this.ticket.release();
                return this.wait_for_client(cx);
            }
            _ => {}
        }
        read
    }
}

impl AsyncWrite for GatedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waker() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn serve_grants_go_to_the_oldest_waiter_and_earned_refusals_to_the_newest() {
        let intake = Intake::new(1, Duration::ZERO);
        let tickets: Vec<_> = (0..4).map(|_| intake.ticket()).collect();
        assert!(
            tickets[0].request(&waker()),
            "a free grant is taken at once"
        );
        for ticket in &tickets[1..] {
            assert!(!ticket.request(&waker()), "the others wait in line");
        }
        // Each served request hands the grant to the oldest waiter...
        tickets[0].answered();
        assert_eq!(tickets[1].grant(), Some(Grant::Serve));
        tickets[1].answered();
        assert_eq!(tickets[2].grant(), Some(Grant::Serve));
        tickets[2].answered();
        assert_eq!(tickets[3].grant(), Some(Grant::Serve));
        // ...and every SERVED_PER_REFUSAL served requests earn a refusal for the newest.
        let late: Vec<_> = (0..2).map(|_| intake.ticket()).collect();
        for ticket in &late {
            assert!(!ticket.request(&waker()));
        }
        tickets[3].answered();
        assert_eq!(late[0].grant(), Some(Grant::Serve), "oldest is served");
        assert_eq!(late[1].grant(), Some(Grant::Refuse), "newest is refused");
    }

    #[test]
    fn a_line_younger_than_the_overload_wait_is_a_burst_and_nobody_is_refused() {
        let intake = Intake::new(1, Duration::from_secs(3600));
        let holder = intake.ticket();
        assert!(holder.request(&waker()));
        for _ in 0..SERVED_PER_REFUSAL * 3 {
            holder.answered();
            assert!(holder.request(&waker()));
        }
        let waiters: Vec<_> = (0..4).map(|_| intake.ticket()).collect();
        for waiter in &waiters {
            assert!(!waiter.request(&waker()));
        }
        holder.answered();
        assert_eq!(waiters[0].grant(), Some(Grant::Serve));
        assert!(
            waiters[1..].iter().all(|waiter| waiter.grant().is_none()),
            "refusals saved up were spent on a burst"
        );
    }

    #[test]
    fn only_answered_requests_earn_refusals() {
        let intake = Intake::new(1, Duration::ZERO);
        let (holder, waiter) = (intake.ticket(), intake.ticket());
        for _ in 0..SERVED_PER_REFUSAL * 2 {
            // A grant taken on a readiness that brought no request.
            assert!(holder.request(&waker()));
            holder.release();
        }
        assert!(holder.request(&waker()));
        assert!(!waiter.request(&waker()));
        holder.release();
        assert_eq!(waiter.grant(), Some(Grant::Serve));
        assert_eq!(intake.state().refusals, 0);
    }

    #[test]
    fn a_refusal_handed_to_a_connection_with_nothing_to_read_goes_to_the_next() {
        let intake = Intake::new(1, Duration::ZERO);
        let holder = intake.ticket();
        for _ in 0..SERVED_PER_REFUSAL {
            assert!(holder.request(&waker()));
            holder.answered();
        }
        assert!(holder.request(&waker()));
        let (spurious, next) = (intake.ticket(), intake.ticket());
        assert!(spurious.request(&waker()), "the saved refusal");
        assert_eq!(spurious.grant(), Some(Grant::Refuse));
        // Its read found nothing: the grant is given back without an answer.
        spurious.release();
        assert!(next.request(&waker()));
        assert_eq!(next.grant(), Some(Grant::Refuse), "the refusal was lost");
    }

    #[test]
    fn a_connection_that_goes_away_leaves_the_line_and_returns_its_grant() {
        let intake = Intake::new(1, Duration::ZERO);
        let (holder, gone, next) = (intake.ticket(), intake.ticket(), intake.ticket());
        assert!(holder.request(&waker()));
        assert!(!gone.request(&waker()));
        assert!(!next.request(&waker()));
        gone.release();
        holder.release();
        assert_eq!(
            next.grant(),
            Some(Grant::Serve),
            "the grant skipped the gone"
        );
        assert_eq!(gone.grant(), None);
    }

    #[test]
    fn grants_are_never_lost_when_connections_come_and_go_on_many_threads() {
        let intake = Intake::new(3, Duration::ZERO);
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let intake = intake.clone();
                std::thread::spawn(move || {
                    for round in 0..2_000 {
                        let ticket = intake.ticket();
                        if !ticket.request(&waker()) && (round + thread) % 3 == 0 {
                            // Gone while waiting in line (or just after being handed a grant).
                            ticket.release();
                            continue;
                        }
                        while ticket.grant().is_none() {
                            std::thread::yield_now();
                        }
                        if round % 2 == 0 {
                            ticket.answered();
                        } else {
                            ticket.release();
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let state = intake.state();
        assert_eq!(state.free, 3, "every serve grant came back");
        assert!(state.waiting.is_empty());
    }

    #[test]
    fn a_grant_says_whether_the_room_filled_since_the_connections_previous_one() {
        let intake = Intake::new(2, Duration::from_secs(3600));
        let (steady, other) = (intake.ticket(), intake.ticket());
        assert!(steady.request(&waker()));
        assert!(
            steady.take_crowded(),
            "a new connection may have waited to be accepted"
        );
        assert!(!steady.take_crowded(), "answered once a grant");
        steady.answered();
        assert!(steady.request(&waker()));
        assert!(!steady.take_crowded(), "the room never filled");
        // The other connection takes the last free grant: the room is full.
        assert!(other.request(&waker()));
        steady.answered();
        assert!(steady.request(&waker()));
        assert!(
            steady.take_crowded(),
            "the room filled since its previous grant"
        );
        // A new connection takes the grant it gives back: its next request waits in line.
        let third = intake.ticket();
        steady.answered();
        assert!(third.request(&waker()));
        assert!(!steady.request(&waker()));
        third.answered();
        assert_eq!(steady.grant(), Some(Grant::Serve));
        assert!(steady.take_crowded(), "it waited in line");
    }

    #[test]
    fn asking_again_while_waiting_keeps_one_place_in_line() {
        let intake = Intake::new(1, Duration::ZERO);
        let (holder, waiter) = (intake.ticket(), intake.ticket());
        assert!(holder.request(&waker()));
        assert!(!waiter.request(&waker()));
        assert!(!waiter.request(&waker()));
        assert_eq!(intake.state().waiting.len(), 1);
    }
}
