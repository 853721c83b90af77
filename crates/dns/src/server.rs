//! The DNS listeners: UDP and TCP on each configured address, answering from the current
//! [`Snapshot`](crate::zone::Snapshot) and nothing else. They never touch storage or the API, so
//! the endpoint names keep resolving when the data path is slow or down.
//!
//! UDP: several tasks share each socket, each receiving a datagram, answering it and sending the
//! answer. TCP (the fallback after a truncated answer, RFC 7766): each message is framed by a
//! two-byte length, a connection may carry many queries in turn, and it is closed after
//! [`TCP_IDLE_TIMEOUT`] without one or when [`MAX_TCP_CONNECTIONS`] are already open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use crate::zone::{SnapshotCell, Transport};

/// How long a TCP connection may wait for its next query.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open TCP connections at once, over all addresses.
pub const MAX_TCP_CONNECTIONS: usize = 1024;
/// The largest datagram read; longer queries are cut and answered FORMERR.
const UDP_RECEIVE_BUFFER: usize = 4096;

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
    pub fn serve(self, snapshot: SnapshotCell, udp_tasks: usize) {
        for socket in self.udp {
            let socket = Arc::new(socket);
            for _ in 0..udp_tasks.max(1) {
                tokio::spawn(serve_udp(socket.clone(), snapshot.clone()));
            }
        }
        let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
        for listener in self.tcp {
            tokio::spawn(serve_tcp(listener, snapshot.clone(), slots.clone()));
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

async fn serve_udp(socket: Arc<UdpSocket>, snapshot: SnapshotCell) {
    let mut query = vec![0u8; UDP_RECEIVE_BUFFER];
    let mut response = Vec::with_capacity(crate::zone::MAX_UDP_PAYLOAD as usize);
    loop {
        // A receive error is about one datagram (or an ICMP report of an earlier one): go on.
        let Ok((length, client)) = socket.recv_from(&mut query).await else {
            continue;
        };
        if snapshot
            .load()
            .answer(&query[..length], Transport::Udp, &mut response)
        {
            let _ = socket.send_to(&response, client).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, snapshot: SnapshotCell, slots: Arc<Semaphore>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, most likely: pause instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // at the cap: the connection is closed unanswered
        };
        let snapshot = snapshot.clone();
        tokio::spawn(async move {
            let _ = serve_tcp_connection(stream, &snapshot).await;
            drop(slot);
        });
    }
}

/// Answers length-framed queries until the client closes, stalls or sends garbage framing.
async fn serve_tcp_connection(
    mut stream: TcpStream,
    snapshot: &SnapshotCell,
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
        if !snapshot
            .load()
            .answer(&query, Transport::Tcp, &mut response)
        {
            return Ok(());
        }
        let mut framed = Vec::with_capacity(response.len() + 2);
        framed.extend_from_slice(&(response.len() as u16).to_be_bytes());
        framed.extend_from_slice(&response);
        stream.write_all(&framed).await?;
    }
}
