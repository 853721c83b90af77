//! Upstream responses built with hickory-proto, made ours, written back for clients and decoded
//! again; and a property test that no upstream bytes can make reading or writing panic.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use haven_dns::wire::{Question, Transport};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use proptest::prelude::*;

use super::{Answer, Kind, Lifetimes};
use crate::key::Key;

const LIFETIMES: Lifetimes = Lifetimes {
    max_ttl: 3600,
    negative_max_ttl: 600,
    servfail_ttl: 1,
    max_stale: Duration::from_secs(60),
};

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// A client's query, as bytes.
fn query(text: &str, record_type: RecordType, edns: Option<bool>) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = 0x4242;
    message.metadata.recursion_desired = true;
    message.queries.push(Query::query(name(text), record_type));
    message.edns = edns.map(|dnssec_ok| {
        let mut edns = Edns::new();
        edns.set_max_payload(1232).set_dnssec_ok(dnssec_ok);
        edns
    });
    message.to_vec().unwrap()
}

/// An upstream's response to `text`/A with these records, and an OPT record.
fn upstream(
    text: &str,
    rcode: ResponseCode,
    answers: Vec<Record>,
    soa: Option<(u32, u32)>,
) -> Vec<u8> {
    let mut message = Message::new(7, MessageType::Response, OpCode::Query);
    message.metadata.response_code = rcode;
    message.metadata.authoritative = true;
    message
        .queries
        .push(Query::query(name(text), RecordType::A));
    message.answers = answers;
    if let Some((ttl, minimum)) = soa {
        let data = SOA::new(name("ns.test."), name("host.test."), 1, 2, 3, 4, minimum);
        message
            .authorities
            .push(Record::from_rdata(name("test."), ttl, RData::SOA(data)));
    }
    message.edns = Some(Edns::new());
    message.to_vec().unwrap()
}

fn a(text: &str, ttl: u32, last: u8) -> Record {
    Record::from_rdata(name(text), ttl, RData::A(A(Ipv4Addr::new(192, 0, 2, last))))
}

fn key_of(query: &[u8]) -> Key {
    Key::of(&Question::parse(query).unwrap())
}

/// Writes `answer` for `query` at `now` and decodes it.
fn served(answer: &Answer, query: &[u8], transport: Transport, now: Instant) -> Message {
    let mut response = Vec::new();
    answer.write(
        &Question::parse(query).unwrap(),
        transport,
        now,
        &mut response,
    );
    Message::from_vec(&response).expect("a decodable response")
}

#[test]
fn a_positive_answer_lives_its_shortest_ttl_and_counts_down() {
    let client = query("WWW.Example.test.", RecordType::A, None);
    let key = key_of(&client);
    let now = Instant::now();
    let bytes = upstream(
        "www.example.test.",
        ResponseCode::NoError,
        vec![
            a("www.example.test.", 300, 1),
            a("www.example.test.", 60, 2),
        ],
        None,
    );
    let answer = Answer::from_upstream(&bytes, &key, &LIFETIMES, now).unwrap();
    assert_eq!(answer.kind, Kind::Positive);
    assert_eq!(answer.lifetime, 60);
    assert!(answer.is_fresh(now + Duration::from_secs(59)));
    assert!(!answer.is_fresh(now + Duration::from_secs(60)));

    let later = served(
        &answer,
        &client,
        Transport::Udp,
        now + Duration::from_secs(10),
    );
    assert_eq!(later.metadata.id, 0x4242);
    assert!(later.metadata.recursion_available && !later.metadata.authoritative);
    assert_eq!(
        later.queries[0].name().to_ascii(),
        "WWW.Example.test.",
        "case as asked"
    );
    let ttls: Vec<u32> = later.answers.iter().map(|r| r.ttl).collect();
    assert_eq!(ttls, [290, 50]);
    assert!(later.edns.is_none(), "no OPT for a query without one");
}

#[test]
fn ttls_are_capped_and_a_cname_alone_is_not_positive() {
    let client = query("alias.test.", RecordType::A, None);
    let key = key_of(&client);
    let cname = Record::from_rdata(
        name("alias.test."),
        999_999,
        RData::CNAME(CNAME(name("t.test."))),
    );
    let bytes = upstream(
        "alias.test.",
        ResponseCode::NoError,
        vec![cname.clone(), a("t.test.", u32::MAX, 1)],
        None,
    );
    let answer = Answer::from_upstream(&bytes, &key, &LIFETIMES, Instant::now()).unwrap();
    assert_eq!(answer.kind, Kind::Positive);
    assert_eq!(answer.lifetime, 0, "a TTL with its top bit set reads as 0");
    let alone = upstream(
        "alias.test.",
        ResponseCode::NoError,
        vec![cname],
        Some((100, 100)),
    );
    let answer = Answer::from_upstream(&alone, &key, &LIFETIMES, Instant::now()).unwrap();
    assert_eq!(answer.kind, Kind::Negative, "a CNAME to nothing is NODATA");
}

#[test]
fn a_negative_answer_lives_as_rfc_2308_says() {
    let client = query("nothing.test.", RecordType::A, Some(false));
    let key = key_of(&client);
    let now = Instant::now();
    for (rcode, (soa_ttl, minimum), expected) in [
        (ResponseCode::NXDomain, (300, 30), 30),
        (ResponseCode::NoError, (20, 900), 20),
        (ResponseCode::NXDomain, (3600, 3600), 600),
    ] {
        let bytes = upstream("nothing.test.", rcode, Vec::new(), Some((soa_ttl, minimum)));
        let answer = Answer::from_upstream(&bytes, &key, &LIFETIMES, now).unwrap();
        assert_eq!(answer.kind, Kind::Negative);
        assert_eq!(answer.lifetime, expected);
        let response = served(
            &answer,
            &client,
            Transport::Udp,
            now + Duration::from_secs(5),
        );
        assert_eq!(response.metadata.response_code, rcode);
        assert_eq!(
            response.authorities[0].ttl,
            expected - 5,
            "the SOA's TTL counts down"
        );
        assert!(response.edns.is_some(), "our OPT for a query with one");
    }
    let without_soa = upstream("nothing.test.", ResponseCode::NXDomain, Vec::new(), None);
    let answer = Answer::from_upstream(&without_soa, &key, &LIFETIMES, now).unwrap();
    assert_eq!(answer.lifetime, 0, "no SOA, no negative caching");
}

#[test]
fn failures_and_foreign_answers() {
    let client = query("x.test.", RecordType::A, None);
    let key = key_of(&client);
    let now = Instant::now();
    let refused = upstream("x.test.", ResponseCode::Refused, Vec::new(), None);
    let answer = Answer::from_upstream(&refused, &key, &LIFETIMES, now).unwrap();
    assert_eq!(answer.kind, Kind::Failure);
    let response = served(&answer, &client, Transport::Udp, now);
    assert_eq!(response.metadata.response_code, ResponseCode::ServFail);
    let other = upstream(
        "y.test.",
        ResponseCode::NoError,
        vec![a("y.test.", 5, 1)],
        None,
    );
    assert!(Answer::from_upstream(&other, &key, &LIFETIMES, now).is_none());
    let mut trailing = upstream(
        "x.test.",
        ResponseCode::NoError,
        vec![a("x.test.", 5, 1)],
        None,
    );
    trailing.push(0);
    assert!(Answer::from_upstream(&trailing, &key, &LIFETIMES, now).is_none());
}

#[test]
fn the_dnssec_bits_follow_the_client() {
    let now = Instant::now();
    let mut message = Message::from_vec(&upstream(
        "s.test.",
        ResponseCode::NoError,
        vec![a("s.test.", 60, 1)],
        None,
    ))
    .unwrap();
    message.metadata.authentic_data = true;
    let bytes = message.to_vec().unwrap();
    for dnssec_ok in [true, false] {
        let client = query("s.test.", RecordType::A, Some(dnssec_ok));
        let answer = Answer::from_upstream(&bytes, &key_of(&client), &LIFETIMES, now).unwrap();
        let response = served(&answer, &client, Transport::Udp, now);
        assert_eq!(
            response.metadata.authentic_data, dnssec_ok,
            "AD only with DO"
        );
        assert_eq!(
            response.edns.unwrap().flags().dnssec_ok,
            dnssec_ok,
            "DO copied"
        );
    }
}

#[test]
fn too_large_for_the_client_is_truncated_over_udp_only() {
    let client = query("big.test.", RecordType::A, None);
    let key = key_of(&client);
    let records = (0..40).map(|i| a("big.test.", 60, i)).collect();
    let bytes = upstream("big.test.", ResponseCode::NoError, records, None);
    let answer = Answer::from_upstream(&bytes, &key, &LIFETIMES, Instant::now()).unwrap();
    let udp = served(&answer, &client, Transport::Udp, Instant::now());
    assert!(udp.metadata.truncation && udp.answers.is_empty());
    let tcp = served(&answer, &client, Transport::Tcp, Instant::now());
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 40);
}

#[test]
fn restamped_answers_say_the_new_ttl_and_stale_ones_end() {
    let client = query("s.test.", RecordType::A, None);
    let key = key_of(&client);
    let now = Instant::now();
    let bytes = upstream(
        "s.test.",
        ResponseCode::NoError,
        vec![a("s.test.", 10, 1)],
        None,
    );
    let answer = Answer::from_upstream(&bytes, &key, &LIFETIMES, now).unwrap();
    let later = now + Duration::from_secs(30);
    assert!(answer.may_serve_stale(later));
    let stale = answer.restamped(Kind::Stale, 5, later);
    assert!(stale.is_fresh(later));
    assert_eq!(
        served(&stale, &client, Transport::Udp, later).answers[0].ttl,
        5
    );
    assert!(
        !stale.may_serve_stale(now + Duration::from_secs(71)),
        "max_stale after the TTL"
    );
}

proptest! {
    #[test]
    fn any_upstream_bytes_are_read_without_panic(
        mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        cut in proptest::option::of(any::<usize>()),
        dnssec_ok in any::<bool>(),
    ) {
        let client = query("p.test.", RecordType::A, Some(dnssec_ok));
        let key = key_of(&client);
        let mut bytes = upstream("p.test.", ResponseCode::NoError, vec![a("p.test.", 60, 1)], Some((5, 5)));
        for (position, byte) in mutations {
            let position = position % bytes.len();
            bytes[position] = byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        if let Some(answer) = Answer::from_upstream(&bytes, &key, &LIFETIMES, Instant::now()) {
            for transport in [Transport::Udp, Transport::Tcp] {
                let mut response = Vec::new();
                answer.write(&Question::parse(&client).unwrap(), transport, Instant::now(), &mut response);
                prop_assert_eq!(&response[..2], &client[..2]);
            }
        }
    }
}
