//! Asking the upstream resolvers: one question at a time, each upstream in turn starting with the
//! last one that answered, over UDP and again over TCP when the UDP answer is truncated.
//!
//! Each attempt uses a fresh UDP socket (a new source port, chosen by the kernel) and an id hashed
//! from a counter with the process's random SipHash keys, so an off-path attacker can guess
//! neither; a datagram that is not the answer to our question (id, QR bit, question) is ignored.
//! Queries always carry EDNS0 with our payload size and the client's DO bit, and the CD bit as
//! the client set it, so DNSSEC records and validation flags pass through.
//!
//! An attempt ends with an answer or after `timeout`; an upstream that answers SERVFAIL, REFUSED
//! or anything but NOERROR and NXDOMAIN, or that cannot be reached, gives its turn to the next.
//! So a whole resolution takes at most (upstreams × 2 × timeout).

use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use haven_dns::wire::{HEADER_LEN, MAX_UDP_PAYLOAD, OUR_OPT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::key::Key;
use crate::stats::Stats;

/// The largest UDP answer read; our OPT advertises less, so a longer datagram is not an answer.
const UDP_RECEIVE_BUFFER: usize = 4096;
const RCODE_NOERROR: u8 = 0;
const RCODE_NXDOMAIN: u8 = 3;

/// The upstream resolvers and how to ask them.
pub struct Upstreams {
    servers: Vec<SocketAddr>,
    /// The index of the upstream that answered last, asked first.
    preferred: AtomicUsize,
    timeout: Duration,
    ids: RandomState,
    counter: AtomicU64,
}

/// What the upstreams said.
pub enum Reply {
    /// NOERROR or NXDOMAIN from one of them.
    Answer(Vec<u8>),
    /// Every upstream answered something else (SERVFAIL, REFUSED...) or not at all; the last
    /// such answer, if any.
    Failed(Option<Vec<u8>>),
}

impl Upstreams {
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration) -> Upstreams {
        Upstreams {
            servers,
            preferred: AtomicUsize::new(0),
            timeout,
            ids: RandomState::new(),
            counter: AtomicU64::new(0),
        }
    }

    /// Asks each upstream in turn until one answers NOERROR or NXDOMAIN.
    pub async fn ask(&self, key: &Key, stats: &Stats) -> Reply {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut failed = None;
        for turn in 0..self.servers.len() {
            let index = (first + turn) % self.servers.len();
            let server = self.servers[index];
            Stats::add(&stats.upstream_queries);
            match self.ask_one(server, key, stats).await {
                Some(answer) if matches!(answer[3] & 0x0f, RCODE_NOERROR | RCODE_NXDOMAIN) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Reply::Answer(answer);
                }
                Some(answer) => {
                    Stats::add(&stats.upstream_failures);
                    failed = Some(answer);
                }
                None => Stats::add(&stats.upstream_timeouts),
            }
        }
        Reply::Failed(failed)
    }

    /// One upstream: UDP, then TCP if the answer is truncated; `None` if it does not answer in
    /// time (each transport has `timeout`) or cannot be reached.
    async fn ask_one(&self, server: SocketAddr, key: &Key, stats: &Stats) -> Option<Vec<u8>> {
        let id = (self
            .ids
            .hash_one(self.counter.fetch_add(1, Ordering::Relaxed)) as u16)
            .to_be_bytes();
        let query = query(id, key);
        let udp = tokio::time::timeout(self.timeout, exchange_udp(server, &query)).await;
        let answer = udp.ok()?.ok()?;
        if answer[2] & 0x02 == 0 {
            return Some(answer);
        }
        Stats::add(&stats.tcp_retries);
        let tcp = tokio::time::timeout(self.timeout, exchange_tcp(server, &query)).await;
        tcp.ok()?.ok().filter(|answer| answers(answer, &query))
    }
}

/// The query for `key`: RD, CD as the client set it, one question, our OPT with its DO bit.
fn query(id: [u8; 2], key: &Key) -> Vec<u8> {
    let cd = if key.checking_disabled() { 0x10 } else { 0 };
    let mut query = Vec::with_capacity(HEADER_LEN + key.question().len() + OUR_OPT.len());
    query.extend_from_slice(&id);
    query.extend_from_slice(&[0x01, cd, 0, 1, 0, 0, 0, 0, 0, 1]);
    query.extend_from_slice(key.question());
    let opt_at = query.len();
    query.extend_from_slice(&OUR_OPT);
    if key.dnssec_ok() {
        query[opt_at + 7] |= 0x80;
    }
    query
}

/// Whether `answer` is a response to `query`: same id, QR set, same question (any letter case).
fn answers(answer: &[u8], query: &[u8]) -> bool {
    let question = &query[HEADER_LEN..query.len() - OUR_OPT.len()];
    answer.len() >= HEADER_LEN + question.len()
        && answer[..2] == query[..2]
        && answer[2] & 0x80 != 0
        && answer[HEADER_LEN..HEADER_LEN + question.len()].eq_ignore_ascii_case(question)
}

async fn exchange_udp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buffer = vec![0u8; UDP_RECEIVE_BUFFER];
    // Anything else that arrives is ignored; the caller's timeout bounds the wait.
    loop {
        let length = socket.recv(&mut buffer).await?;
        if length <= usize::from(MAX_UDP_PAYLOAD) && answers(&buffer[..length], query) {
            buffer.truncate(length);
            return Ok(buffer);
        }
    }
}

async fn exchange_tcp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await?;
    stream.set_nodelay(true)?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).await?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_answer_to_our_question_is_taken() {
        let mut question = vec![3, b'a', b'b', b'c', 0, 0, 1, 0, 1];
        let mut client = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        client.extend_from_slice(&question);
        let key = Key::of(&haven_dns::wire::Question::parse(&client).unwrap());
        let query = query([0x12, 0x34], &key);
        let mut answer = query.clone();
        answer[2] |= 0x80;
        assert!(answers(&answer, &query));
        answer[HEADER_LEN + 1] = b'A';
        assert!(answers(&answer, &query), "letter case does not matter");
        let mut other_id = answer.clone();
        other_id[1] ^= 1;
        assert!(!answers(&other_id, &query));
        assert!(!answers(&query, &query), "a query is not an answer");
        question[1] = b'x';
        let mut other_name = answer[..HEADER_LEN].to_vec();
        other_name.extend_from_slice(&question);
        assert!(!answers(&other_name, &query));
        assert!(!answers(&answer[..HEADER_LEN + 3], &query));
    }
}
