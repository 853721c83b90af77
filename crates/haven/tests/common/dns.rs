//! A DNS client for the tests that query `haven serve`'s DNS or `haven resolve`: hickory-proto's
//! message codec over std sockets, and BIND's dig as a second, independent client.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};

/// A query with RD set, a random id and, with `edns`, an OPT record advertising that size.
pub fn query_message(name: &str, record_type: RecordType, edns: Option<u16>) -> Message {
    let mut message = Message::query();
    message.metadata.id = rand_id();
    message.metadata.recursion_desired = true;
    message
        .queries
        .push(Query::query(Name::from_ascii(name).unwrap(), record_type));
    message.edns = edns.map(|size| {
        let mut edns = Edns::new();
        edns.set_max_payload(size);
        edns
    });
    message
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now()) as u16
}

/// A UDP socket on 127.0.0.1 that waits two seconds for an answer.
pub fn client_socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket
}

/// One UDP exchange; `None` when no answer came within the socket's timeout.
pub fn ask_udp_raw(socket: &UdpSocket, server: SocketAddr, query: &Message) -> Option<Message> {
    socket.send_to(&query.to_vec().unwrap(), server).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        let (length, from) = socket.recv_from(&mut buffer).ok()?;
        let response = Message::from_vec(&buffer[..length]).expect("the answer decodes");
        if from == server && response.metadata.id == query.metadata.id {
            return Some(response);
        }
    }
}

/// A UDP query that must be answered.
pub fn ask_udp(
    server: SocketAddr,
    name: &str,
    record_type: RecordType,
    edns: Option<u16>,
) -> Message {
    let socket = client_socket();
    ask_udp_raw(&socket, server, &query_message(name, record_type, edns))
        .unwrap_or_else(|| panic!("no UDP answer from {server} for {name} {record_type}"))
}

/// Several queries on one TCP connection, each framed by its two-byte length.
pub fn ask_tcp(server: SocketAddr, queries: &[Message]) -> Vec<Message> {
    let mut stream = TcpStream::connect(server).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    queries
        .iter()
        .map(|query| {
            let bytes = query.to_vec().unwrap();
            stream
                .write_all(&(bytes.len() as u16).to_be_bytes())
                .unwrap();
            stream.write_all(&bytes).unwrap();
            let mut length = [0u8; 2];
            stream.read_exact(&mut length).unwrap();
            let mut response = vec![0u8; u16::from_be_bytes(length) as usize];
            stream.read_exact(&mut response).unwrap();
            let response = Message::from_vec(&response).unwrap();
            assert_eq!(response.metadata.id, query.metadata.id);
            response
        })
        .collect()
}

/// The A and AAAA addresses of the answer section.
pub fn addresses(response: &Message) -> BTreeSet<IpAddr> {
    haven_dns::wire::answer_addresses(response).collect()
}

/// Runs `dig @server` (Debian package dnsutils; scripts/test.sh installs it) and returns its output.
pub fn dig(server: SocketAddr, args: &[&str]) -> String {
    let output = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+time=3", "+tries=1"])
        .args(args)
        .output()
        .expect("dig runs (apt-get install dnsutils)");
    assert!(output.status.success(), "dig {args:?} failed: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}
