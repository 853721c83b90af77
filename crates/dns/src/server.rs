//! The DNS listeners: UDP and TCP on each configured address, answering through a [`Responder`]:
//! the authoritative zone answers from the current [`Snapshot`](crate::zone::Snapshot) and nothing
//! else (it never touches storage or the API, so the endpoint names keep resolving when the data
//! path is slow or down); the guard resolver (`haven-resolve`) answers cache hits at once and the
//! rest later, once its upstreams have answered ([`Reply::Later`]: the listener sends that answer
//! from a task of its own, so one slow upstream never holds up the queries behind it).
//!
//! UDP: several tasks share each socket. On Linux each task moves datagrams in batches, as Knot
//! does: one `recvmmsg` takes up to [`UDP_BATCH`] queries waiting on the socket, they are answered
//! in turn, and one `sendmmsg` sends the answers (the system calls, not the answering, were most of
//! the CPU time per query). The socket stays tokio's non-blocking one: both calls run with
//! `MSG_DONTWAIT` inside `UdpSocket::async_io`, which waits for readiness and clears it when the
//! kernel says "would block", so no thread of its own is needed and a batch is simply whatever
//! has arrived (one datagram when the load is light: batching adds no latency). Elsewhere each
//! task receives, answers and sends one datagram at a time. TCP (the fallback after a truncated
//! answer, RFC 7766): each message is framed by a two-byte length, a connection may carry many
//! queries in turn, and it is closed after [`TCP_IDLE_TIMEOUT`] without one or when
//! [`MAX_TCP_CONNECTIONS`] are already open.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use crate::wire::Transport;
use crate::zone::SnapshotCell;

/// How long a TCP connection may wait for its next query.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open TCP connections at once, over all addresses.
pub const MAX_TCP_CONNECTIONS: usize = 1024;
/// The largest datagram read; longer queries are cut and answered FORMERR.
const UDP_RECEIVE_BUFFER: usize = 4096;
/// The most datagrams one system call receives or sends.
pub const UDP_BATCH: usize = 32;

/// Whatever answers the listeners' queries.
pub trait Responder: Clone + Send + Sync + 'static {
    /// Answers `query` into `response` (cleared first) now, or says it deserves no answer, or
    /// hands back a future that answers later.
    fn respond(&self, query: &[u8], transport: Transport, response: &mut Vec<u8>) -> Reply;
}

/// How a [`Responder`] answers a query.
pub enum Reply {
    /// The response is written.
    Now,
    /// The query deserves no response at all.
    Nothing,
    /// The response comes from this future; `None` means none at all.
    Later(LaterReply),
}

/// A response still being worked out; it must finish in bounded time.
pub type LaterReply = Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send>>;

impl Responder for SnapshotCell {
    fn respond(&self, query: &[u8], transport: Transport, response: &mut Vec<u8>) -> Reply {
        if self.load().answer(query, transport, response) {
            // The response code: the low four bits of the header's fourth byte.
            haven_metrics::dns_answer(response.get(3).map_or(0, |flags| flags & 0x0F));
            Reply::Now
        } else {
            Reply::Nothing
        }
    }
}

/// Sockets bound for one address: UDP and TCP on the same port.
pub struct Listeners {
    pub udp: Vec<UdpSocket>,
    pub tcp: Vec<TcpListener>,
}

impl Listeners {
    /// Binds UDP and TCP on each address. Port 0 picks a port free for both protocols.
    pub async fn bind(addresses: &[SocketAddr]) -> std::io::Result<Listeners> {
        let mut listeners = Listeners {
            udp: Vec::new(),
            tcp: Vec::new(),
        };
        for address in addresses {
            let (udp, tcp) = bind_pair(*address).await?;
            listeners.udp.push(udp);
            listeners.tcp.push(tcp);
        }
        Ok(listeners)
    }

    /// The bound addresses (one per configured address, UDP and TCP alike).
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|socket| socket.local_addr().ok())
            .collect()
    }

    /// Serves forever on the current runtime, with `udp_tasks` receivers per UDP socket.
    pub fn serve<R: Responder>(self, responder: R, udp_tasks: usize) {
        for socket in self.udp {
            let socket = Arc::new(socket);
            for _ in 0..udp_tasks.max(1) {
                tokio::spawn(serve_udp(socket.clone(), responder.clone()));
            }
        }
        let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
        for listener in self.tcp {
            tokio::spawn(serve_tcp(listener, responder.clone(), slots.clone()));
        }
    }
}

/// UDP and TCP on the same address; with port 0, retries until a UDP port is also free for TCP.
async fn bind_pair(address: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    const ATTEMPTS: usize = 20;
    for _ in 0..ATTEMPTS {
        let udp = UdpSocket::bind(address).await?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) if address.port() != 0 => return Err(error),
            Err(_) => continue,
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no port free for both UDP and TCP on {}", address.ip()),
    ))
}

async fn serve_udp<R: Responder>(socket: Arc<UdpSocket>, responder: R) {
    #[cfg(target_os = "linux")]
    batched::serve_udp(&socket, &responder).await;
    #[cfg(not(target_os = "linux"))]
    serve_udp_one_by_one(&socket, &responder).await;
}

/// Sends the answer of a [`Reply::Later`] to `client` from a task of its own.
fn send_later(socket: &Arc<UdpSocket>, client: SocketAddr, later: LaterReply) {
    let socket = socket.clone();
    tokio::spawn(async move {
        if let Some(response) = later.await {
            let _ = socket.send_to(&response, client).await;
        }
    });
}

#[cfg(not(target_os = "linux"))]
async fn serve_udp_one_by_one<R: Responder>(socket: &Arc<UdpSocket>, responder: &R) {
    let mut query = vec![0u8; UDP_RECEIVE_BUFFER];
    let mut response = Vec::with_capacity(crate::wire::MAX_UDP_PAYLOAD as usize);
    loop {
        // A receive error is about one datagram (or an ICMP report of an earlier one): go on.
        let Ok((length, client)) = socket.recv_from(&mut query).await else {
            continue;
        };
        match responder.respond(&query[..length], Transport::Udp, &mut response) {
            Reply::Now => {
                let _ = socket.send_to(&response, client).await;
            }
            Reply::Nothing => {}
            Reply::Later(later) => send_later(socket, client, later),
        }
    }
}

/// `recvmmsg`/`sendmmsg` on tokio's non-blocking socket.
#[cfg(target_os = "linux")]
mod batched {
    use std::io;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
    use std::os::fd::{AsRawFd, RawFd};
    use std::sync::Arc;

    use tokio::io::Interest;
    use tokio::net::UdpSocket;

    use super::{Reply, Responder, UDP_BATCH, UDP_RECEIVE_BUFFER, send_later};
    use crate::wire::{MAX_UDP_PAYLOAD, Transport};

    /// One batch's datagrams: queries in, answers out, and who sent each.
    struct Batch {
        queries: Vec<[u8; UDP_RECEIVE_BUFFER]>,
        query_lengths: [usize; UDP_BATCH],
        clients: Vec<libc::sockaddr_storage>,
        client_lengths: [libc::socklen_t; UDP_BATCH],
        responses: Vec<Vec<u8>>,
        /// Indexes of the datagrams that get an answer, in order.
        answered: Vec<usize>,
    }

    pub(super) async fn serve_udp<R: Responder>(socket: &Arc<UdpSocket>, responder: &R) {
        // SAFETY: sockaddr_storage is plain data, valid when zeroed.
        let empty_address: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut batch = Batch {
            queries: vec![[0; UDP_RECEIVE_BUFFER]; UDP_BATCH],
            query_lengths: [0; UDP_BATCH],
            clients: vec![empty_address; UDP_BATCH],
            client_lengths: [0; UDP_BATCH],
            responses: (0..UDP_BATCH)
                .map(|_| Vec::with_capacity(MAX_UDP_PAYLOAD as usize))
                .collect(),
            answered: Vec::with_capacity(UDP_BATCH),
        };
        let fd = socket.as_raw_fd();
        loop {
            // A receive error is about one datagram (or an ICMP report of an earlier one): go on.
            let Ok(received) = socket
                .async_io(Interest::READABLE, || batch.receive(fd))
                .await
            else {
                continue;
            };
            batch.answered.clear();
            for index in 0..received {
                let query = &batch.queries[index][..batch.query_lengths[index]];
                match responder.respond(query, Transport::Udp, &mut batch.responses[index]) {
                    Reply::Now => batch.answered.push(index),
                    Reply::Nothing => {}
                    Reply::Later(later) => {
                        if let Some(client) = batch.client(index) {
                            send_later(socket, client, later);
                        }
                    }
                }
            }
            let mut sent = 0;
            while sent < batch.answered.len() {
                match socket
                    .async_io(Interest::WRITABLE, || batch.send(fd, sent))
                    .await
                {
                    Ok(count) => sent += count,
                    // The first datagram could not be sent (an address the kernel refuses, a
                    // full buffer that is not "would block"...): drop it and go on.
                    Err(_) => sent += 1,
                }
            }
        }
    }

    impl Batch {
        /// The address datagram `index` came from (IPv4 or IPv6; `None` for any other family).
        fn client(&self, index: usize) -> Option<SocketAddr> {
            let storage = &self.clients[index];
            match i32::from(storage.ss_family) {
                libc::AF_INET => {
                    // SAFETY: the kernel wrote a sockaddr_in, which fits in sockaddr_storage.
                    let v4 = unsafe { &*(&raw const *storage).cast::<libc::sockaddr_in>() };
                    let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
                    Some(SocketAddr::from((ip, u16::from_be(v4.sin_port))))
                }
                libc::AF_INET6 => {
                    // SAFETY: the kernel wrote a sockaddr_in6, which fits in sockaddr_storage.
                    let v6 = unsafe { &*(&raw const *storage).cast::<libc::sockaddr_in6>() };
                    let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
                    let port = u16::from_be(v6.sin6_port);
                    Some(SocketAddrV6::new(ip, port, v6.sin6_flowinfo, v6.sin6_scope_id).into())
                }
                _ => None,
            }
        }

        /// Receives what is waiting, up to [`UDP_BATCH`] datagrams, without blocking.
        fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
            // SAFETY: all-zero is a valid value for these plain C structures.
            let mut iovecs: [libc::iovec; UDP_BATCH] = unsafe { std::mem::zeroed() };
            let mut headers: [libc::mmsghdr; UDP_BATCH] = unsafe { std::mem::zeroed() };
            for (index, (iovec, header)) in iovecs.iter_mut().zip(&mut headers).enumerate() {
                iovec.iov_base = self.queries[index].as_mut_ptr().cast();
                iovec.iov_len = UDP_RECEIVE_BUFFER;
                header.msg_hdr.msg_name = (&raw mut self.clients[index]).cast();
                header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as _;
                header.msg_hdr.msg_iov = iovec;
                header.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: every pointer in `headers` points into `self` or `iovecs`, which outlive
            // the call, at buffers of the lengths given.
            let received = unsafe {
                libc::recvmmsg(
                    fd,
                    headers.as_mut_ptr(),
                    UDP_BATCH as _,
                    libc::MSG_DONTWAIT as _,
                    std::ptr::null_mut(),
                )
            };
            if received < 0 {
                return Err(io::Error::last_os_error());
            }
            let received = received as usize;
            for (index, header) in headers.iter().enumerate().take(received) {
                // A datagram longer than the buffer is cut (and then answered FORMERR).
                self.query_lengths[index] = (header.msg_len as usize).min(UDP_RECEIVE_BUFFER);
                self.client_lengths[index] = header.msg_hdr.msg_namelen;
            }
            Ok(received)
        }

        /// Sends the answers from `answered[from..]` in one call, without blocking; returns how
        /// many went out (at least one, or an error about the first).
        fn send(&mut self, fd: RawFd, from: usize) -> io::Result<usize> {
            let pending = &self.answered[from..];
            // SAFETY: all-zero is a valid value for these plain C structures.
            let mut iovecs: [libc::iovec; UDP_BATCH] = unsafe { std::mem::zeroed() };
            let mut headers: [libc::mmsghdr; UDP_BATCH] = unsafe { std::mem::zeroed() };
            for ((&index, iovec), header) in pending.iter().zip(&mut iovecs).zip(&mut headers) {
                let response = &self.responses[index];
                iovec.iov_base = response.as_ptr().cast_mut().cast();
                iovec.iov_len = response.len();
                header.msg_hdr.msg_name = (&raw mut self.clients[index]).cast();
                header.msg_hdr.msg_namelen = self.client_lengths[index];
                header.msg_hdr.msg_iov = iovec;
                header.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: as in `receive`; the kernel only reads the buffers.
            let sent = unsafe {
                libc::sendmmsg(
                    fd,
                    headers.as_mut_ptr(),
                    pending.len() as _,
                    libc::MSG_DONTWAIT as _,
                )
            };
            if sent < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok((sent as usize).max(1))
        }
    }
}

async fn serve_tcp<R: Responder>(listener: TcpListener, responder: R, slots: Arc<Semaphore>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, most likely: pause instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // at the cap: the connection is closed unanswered
        };
        let responder = responder.clone();
        tokio::spawn(async move {
            let _ = serve_tcp_connection(stream, &responder).await;
            drop(slot);
        });
    }
}

/// Answers length-framed queries, in turn, until the client closes, stalls or sends garbage
/// framing, or a query deserves no answer.
async fn serve_tcp_connection<R: Responder>(
    mut stream: TcpStream,
    responder: &R,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut query = Vec::new();
    let mut response = Vec::new();
    loop {
        let mut length = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut length)).await {
            Ok(result) => result?,
            Err(_idle) => return Ok(()),
        };
        query.resize(u16::from_be_bytes(length) as usize, 0);
        tokio::time::timeout(TCP_IDLE_TIMEOUT, stream.read_exact(&mut query))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        match responder.respond(&query, Transport::Tcp, &mut response) {
            Reply::Now => {}
            Reply::Nothing => return Ok(()),
            Reply::Later(later) => match later.await {
                Some(later) => response = later,
                None => return Ok(()),
            },
        }
        let mut framed = Vec::with_capacity(response.len() + 2);
        framed.extend_from_slice(&(response.len() as u16).to_be_bytes());
        framed.extend_from_slice(&response);
        stream.write_all(&framed).await?;
    }
}
