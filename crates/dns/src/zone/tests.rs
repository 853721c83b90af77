//! The answers of a hand-made plan, decoded back with hickory-proto, and a property test that no
//! input can make the answer function panic or emit something that is not a DNS message.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use proptest::prelude::*;

use super::{Question, Snapshot, Transport};
use crate::config::DnsConfig;
use crate::plan::{Plan, RecordSet};

const CONFIG: &str = r#"
    [zone]
    apex = "haven.test"
    nameservers = [
      { name = "ns1.haven.test", addresses = ["127.0.0.1"] },
      { name = "ns2.haven.test", addresses = ["127.0.0.2", "::2"] },
    ]
    [[regions]]
    name = "us-east-1"
    nodes = ["127.0.0.1:8000", "127.0.0.2:8000"]
"#;

fn record_set(name: &str, addresses: &[&str]) -> (String, RecordSet) {
    let set = RecordSet {
        name: name.to_string(),
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        ttl: 30,
        degraded: false,
    };
    (name.to_string(), set)
}

fn plan(generation: u64, sets: Vec<(String, RecordSet)>) -> Plan {
    Plan {
        generation,
        created_at_ms: 0,
        zone: "haven.test.".to_string(),
        record_sets: sets.into_iter().collect::<BTreeMap<_, _>>(),
    }
}

fn snapshot() -> Snapshot {
    let config = DnsConfig::parse(CONFIG).unwrap();
    let plan = plan(
        7,
        vec![
            record_set(
                "dynamodb.us-east-1.haven.test.",
                &["127.0.0.1", "127.0.0.2", "::1"],
            ),
            record_set("dynamodb.haven.test.", &["127.0.0.1", "127.0.0.2", "::1"]),
        ],
    );
    Snapshot::build(&plan, &config.zone)
}

fn query_bytes(name: &str, record_type: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = 0xbeef;
    message.metadata.recursion_desired = true;
    message
        .queries
        .push(Query::query(Name::from_ascii(name).unwrap(), record_type));
    message.edns = edns.map(|size| {
        let mut edns = Edns::new();
        edns.set_max_payload(size);
        edns
    });
    message.to_vec().unwrap()
}

fn ask(snapshot: &Snapshot, query: &[u8], transport: Transport) -> Message {
    let mut response = Vec::new();
    assert!(
        snapshot.answer(query, transport, &mut response),
        "no response"
    );
    Message::from_vec(&response).expect("the response decodes")
}

fn ask_udp(name: &str, record_type: RecordType) -> Message {
    ask(
        &snapshot(),
        &query_bytes(name, record_type, None),
        Transport::Udp,
    )
}

fn addresses(message: &Message) -> Vec<IpAddr> {
    crate::wire::answer_addresses(message).collect()
}

#[test]
fn region_name_answers_its_addresses_authoritatively() {
    let response = ask_udp("dynamodb.us-east-1.haven.test.", RecordType::A);
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.authoritative);
    assert!(response.metadata.recursion_desired, "RD is copied");
    assert_eq!(response.metadata.id, 0xbeef);
    let mut found = addresses(&response);
    found.sort();
    assert_eq!(
        found,
        [
            "127.0.0.1".parse::<IpAddr>().unwrap(),
            "127.0.0.2".parse().unwrap()
        ]
    );
    let v6 = ask_udp("dynamodb.haven.test.", RecordType::AAAA);
    assert_eq!(addresses(&v6), ["::1".parse::<IpAddr>().unwrap()]);
}

#[test]
fn names_match_in_any_case_and_the_question_is_echoed_as_asked() {
    let query = query_bytes("DynamoDB.US-East-1.Haven.TEST.", RecordType::A, None);
    let mut response = Vec::new();
    assert!(snapshot().answer(&query, Transport::Udp, &mut response));
    let question_end = query.len();
    assert_eq!(&response[12..question_end], &query[12..question_end]);
    assert_eq!(addresses(&Message::from_vec(&response).unwrap()).len(), 2);
}

#[test]
fn apex_has_soa_and_ns_with_glue() {
    let soa = ask_udp("haven.test.", RecordType::SOA);
    let RData::SOA(record) = &soa.answers[0].data else {
        panic!("{soa:?}")
    };
    assert_eq!(record.serial, 7, "the serial is the generation");
    let ns = ask_udp("HAVEN.test.", RecordType::NS);
    assert_eq!(ns.answers.len(), 2);
    let glue: Vec<String> = ns.additionals.iter().map(|r| r.name.to_ascii()).collect();
    assert_eq!(glue.len(), 3, "{glue:?}");
    let ns2 = ask_udp("ns2.haven.test.", RecordType::AAAA);
    assert_eq!(addresses(&ns2), ["::2".parse::<IpAddr>().unwrap()]);
}

#[test]
fn generation_is_published_as_txt() {
    let txt = ask_udp("_generation.haven.test.", RecordType::TXT);
    let RData::TXT(record) = &txt.answers[0].data else {
        panic!("{txt:?}")
    };
    assert_eq!(record.txt_data[0].as_ref(), b"7");
}

#[test]
fn negative_answers_carry_the_soa() {
    for (name, record_type, expected) in [
        (
            "dynamodb.us-east-1.haven.test.",
            RecordType::MX,
            ResponseCode::NoError,
        ),
        (
            "us-east-1.haven.test.",
            RecordType::A,
            ResponseCode::NoError,
        ),
        ("nothing.haven.test.", RecordType::A, ResponseCode::NXDomain),
        (
            "dynamodb.eu-west-9.haven.test.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
    ] {
        let response = ask_udp(name, record_type);
        assert_eq!(
            response.metadata.response_code, expected,
            "{name} {record_type}"
        );
        assert!(response.metadata.authoritative);
        assert!(response.answers.is_empty());
        assert_eq!(response.authorities[0].record_type(), RecordType::SOA);
    }
}

#[test]
fn names_outside_the_zone_and_transfers_are_refused() {
    for (name, record_type) in [
        ("example.com.", RecordType::A),
        ("haven.test.", RecordType::AXFR),
    ] {
        let response = ask_udp(name, record_type);
        assert_eq!(response.metadata.response_code, ResponseCode::Refused);
        assert!(!response.metadata.authoritative);
    }
}

#[test]
fn malformed_and_unsupported_messages() {
    let snapshot = snapshot();
    let mut response = Vec::new();
    assert!(
        !snapshot.answer(&[0xbe, 0xef, 0, 0], Transport::Udp, &mut response),
        "too short"
    );
    let mut as_response = query_bytes("haven.test.", RecordType::A, None);
    as_response[2] |= 0x80;
    assert!(
        !snapshot.answer(&as_response, Transport::Udp, &mut response),
        "a response is never answered"
    );

    let cut = query_bytes("haven.test.", RecordType::A, None);
    let formerr = ask(&snapshot, &cut[..cut.len() - 3], Transport::Udp);
    assert_eq!(formerr.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(formerr.metadata.id, 0xbeef);

    let mut notify = Message::query();
    notify.metadata.op_code = OpCode::Notify;
    notify.queries.push(Query::query(
        Name::from_ascii("haven.test.").unwrap(),
        RecordType::SOA,
    ));
    let notimp = ask(&snapshot, &notify.to_vec().unwrap(), Transport::Udp);
    assert_eq!(notimp.metadata.response_code, ResponseCode::NotImp);

    let mut new_edns =
        Message::from_vec(&query_bytes("haven.test.", RecordType::SOA, Some(1232))).unwrap();
    new_edns.edns.as_mut().unwrap().set_version(1);
    let badvers = ask(&snapshot, &new_edns.to_vec().unwrap(), Transport::Udp);
    // BADVERS shares its number (16) with BADSIG, which is what the decoder names it.
    assert_eq!(
        u16::from(badvers.metadata.response_code),
        u16::from(ResponseCode::BADVERS)
    );
    assert!(badvers.edns.is_some());
}

#[test]
fn edns_is_echoed_only_when_asked_for() {
    let snapshot = snapshot();
    let with = ask(
        &snapshot,
        &query_bytes("haven.test.", RecordType::NS, Some(4096)),
        Transport::Udp,
    );
    assert_eq!(
        with.edns.as_ref().map(Edns::max_payload),
        Some(super::MAX_UDP_PAYLOAD)
    );
    let without = ask(
        &snapshot,
        &query_bytes("haven.test.", RecordType::NS, None),
        Transport::Udp,
    );
    assert!(without.edns.is_none());
}

/// RFC 3225: the DO bit of the query is copied into the response's OPT record, positive or not.
#[test]
fn the_dnssec_ok_bit_is_copied() {
    let snapshot = snapshot();
    for (name, dnssec_ok) in [
        ("dynamodb.haven.test.", true),
        ("nothing.haven.test.", true),
        ("dynamodb.haven.test.", false),
    ] {
        let mut query = Message::from_vec(&query_bytes(name, RecordType::A, Some(1232))).unwrap();
        query.edns.as_mut().unwrap().set_dnssec_ok(dnssec_ok);
        let response = ask(&snapshot, &query.to_vec().unwrap(), Transport::Udp);
        let edns = response.edns.expect("OPT echoed");
        assert_eq!(edns.flags().dnssec_ok, dnssec_ok, "{name}");
    }
}

#[test]
fn large_answers_are_truncated_over_udp_and_whole_over_tcp() {
    let config = DnsConfig::parse(CONFIG).unwrap();
    let many: Vec<String> = (1..=60).map(|i| format!("10.0.0.{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let snapshot = Snapshot::build(
        &plan(1, vec![record_set("dynamodb.us-east-1.haven.test.", &many)]),
        &config.zone,
    );
    let name = "dynamodb.us-east-1.haven.test.";

    let plain = ask(
        &snapshot,
        &query_bytes(name, RecordType::A, None),
        Transport::Udp,
    );
    assert!(plain.metadata.truncation);
    assert!(plain.answers.is_empty());
    assert_eq!(plain.queries.len(), 1);

    let small_edns = ask(
        &snapshot,
        &query_bytes(name, RecordType::A, Some(600)),
        Transport::Udp,
    );
    assert!(
        small_edns.metadata.truncation,
        "600 bytes cannot hold 60 addresses"
    );
    assert!(small_edns.edns.is_some());

    let large_edns = ask(
        &snapshot,
        &query_bytes(name, RecordType::A, Some(4096)),
        Transport::Udp,
    );
    assert!(!large_edns.metadata.truncation);
    assert_eq!(addresses(&large_edns).len(), 60);

    let tcp = ask(
        &snapshot,
        &query_bytes(name, RecordType::A, None),
        Transport::Tcp,
    );
    assert!(!tcp.metadata.truncation);
    assert_eq!(addresses(&tcp).len(), 60);
}

/// Some valid queries to mutate: every kind of answer the zone gives.
fn valid_queries() -> Vec<Vec<u8>> {
    vec![
        query_bytes("dynamodb.us-east-1.haven.test.", RecordType::A, None),
        query_bytes("dynamodb.haven.test.", RecordType::AAAA, Some(1400)),
        query_bytes("haven.test.", RecordType::NS, Some(512)),
        query_bytes("nothing.haven.test.", RecordType::A, None),
        query_bytes("example.com.", RecordType::TXT, Some(4096)),
        query_bytes("Us-East-1.Haven.Test.", RecordType::A, Some(1232)),
    ]
    .into_iter()
    .chain(unusual_queries("NoThing.haven.test.", RecordType::AAAA))
    .collect()
}

/// Queries the fast reader leaves to the full decoder: one with an A record in the additional
/// section (its owner compressed), one whose OPT record carries an option (NSID).
fn unusual_queries(name: &str, record_type: RecordType) -> [Vec<u8>; 2] {
    let mut with_record = query_bytes(name, record_type, None);
    with_record[11] = 1;
    with_record.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 10, 0, 0, 1]);
    let mut with_option = query_bytes(name, record_type, Some(1232));
    let rdlength_at = with_option.len() - 2;
    with_option[rdlength_at + 1] = 4;
    with_option.extend_from_slice(&[0, 3, 0, 0]);
    [with_record, with_option]
}

#[test]
fn unusual_queries_go_through_the_full_decoder_with_the_same_answers() {
    let snapshot = snapshot();
    for (name, record_type) in [
        ("dynamodb.us-east-1.haven.test.", RecordType::A),
        ("nothing.haven.test.", RecordType::A),
        ("us-east-1.haven.test.", RecordType::AAAA),
        ("other.example.", RecordType::A),
    ] {
        for unusual in unusual_queries(name, record_type) {
            assert!(Question::parse(&unusual).is_none());
            let unusual = ask(&snapshot, &unusual, Transport::Udp);
            let plain = ask(
                &snapshot,
                &query_bytes(name, record_type, None),
                Transport::Udp,
            );
            assert_eq!(unusual.metadata.response_code, plain.metadata.response_code);
            assert_eq!(unusual.queries, plain.queries);
            assert_eq!(unusual.answers, plain.answers);
            assert_eq!(unusual.authorities, plain.authorities);
        }
    }
}

#[test]
fn negative_answers_carry_the_soa_with_the_negative_ttl_and_edns_when_asked() {
    let snapshot = snapshot();
    for (edns, name) in [
        (None, "Nothing.HAVEN.test."),
        (Some(1232), "us-east-1.haven.test."),
    ] {
        let query = query_bytes(name, RecordType::A, edns);
        let response = ask(&snapshot, &query, Transport::Udp);
        assert_eq!(
            response.queries[0].name().to_ascii(),
            name,
            "case preserved"
        );
        assert!(response.metadata.recursion_desired);
        assert_eq!(response.edns.is_some(), edns.is_some());
        let soa = &response.authorities[0];
        assert_eq!(soa.name.to_lowercase().to_ascii(), "haven.test.");
        assert_eq!(soa.ttl, DnsConfig::parse(CONFIG).unwrap().zone.soa.minimum);
        let RData::SOA(data) = &soa.data else {
            panic!("{soa:?}")
        };
        assert_eq!(data.serial, 7);
        assert_eq!(data.mname.to_lowercase().to_ascii(), "ns1.haven.test.");
    }
}

/// When the fast reader accepts a query, the full decoder reads the same question, flags and
/// EDNS from it, and answering from either reading gives the same bytes.
fn check_fast_reader(snapshot: &Snapshot, query: &[u8]) -> Result<(), TestCaseError> {
    let Some(fast) = Question::parse(query) else {
        return Ok(());
    };
    let decoded = Message::from_vec(query);
    prop_assert!(
        decoded.is_ok(),
        "fast path took {query:?}, the decoder refuses it"
    );
    let decoded = decoded.unwrap();
    prop_assert_eq!(decoded.queries.len(), 1);
    let mut asked = Vec::new();
    let full = Question::from_message(&decoded, &mut asked);
    prop_assert_eq!(&fast, &full);
    for transport in [Transport::Udp, Transport::Tcp] {
        let (mut by_fast, mut by_full) = (Vec::new(), Vec::new());
        snapshot.respond(&fast, transport, &mut by_fast);
        snapshot.respond(&full, transport, &mut by_full);
        prop_assert_eq!(by_fast, by_full);
    }
    Ok(())
}

/// Any response we send decodes and answers the query's id.
fn check_response(snapshot: &Snapshot, query: &[u8]) -> Result<(), TestCaseError> {
    check_fast_reader(snapshot, query)?;
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut response = Vec::new();
        if snapshot.answer(query, transport, &mut response) {
            let decoded = Message::from_vec(&response);
            prop_assert!(
                decoded.is_ok(),
                "undecodable response {response:?} to {query:?}"
            );
            prop_assert_eq!(&response[..2], &query[..2]);
            if transport == Transport::Udp {
                prop_assert!(response.len() <= super::MAX_UDP_PAYLOAD as usize);
            }
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn random_bytes_never_panic(query in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_response(&snapshot(), &query)?;
    }

    #[test]
    fn mutated_queries_never_panic(
        which in 0usize..8,
        mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let mut query = valid_queries()[which].clone();
        for (position, byte) in mutations {
            let position = position % query.len();
            query[position] = byte;
        }
        if let Some(cut) = cut {
            query.truncate(cut % (query.len() + 1));
        }
        check_response(&snapshot(), &query)?;
    }
}

/// A query written byte by byte: any labels, type, class, header flags and OPT fields.
fn raw_query(
    flags: u16,
    labels: &[Vec<u8>],
    record_type: u16,
    class: u16,
    edns: Option<(u16, u32)>,
) -> Vec<u8> {
    let mut query = vec![0x12, 0x34];
    query.extend_from_slice(&(flags & 0x7fff & !0x7800).to_be_bytes()); // a query, opcode QUERY
    query.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    for label in labels {
        query.push(label.len() as u8);
        query.extend_from_slice(label);
    }
    query.push(0);
    query.extend_from_slice(&record_type.to_be_bytes());
    query.extend_from_slice(&class.to_be_bytes());
    if let Some((payload, ttl)) = edns {
        query.extend_from_slice(&[0, 0, 41]);
        query.extend_from_slice(&payload.to_be_bytes());
        query.extend_from_slice(&ttl.to_be_bytes());
        query.extend_from_slice(&[0, 0]);
    }
    query
}

proptest! {
    #[test]
    fn fast_reader_agrees_with_the_decoder(
        flags in any::<u16>(),
        labels in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..64), 0..6),
        in_zone in any::<bool>(),
        record_type in prop_oneof![Just(1u16), Just(28), Just(6), Just(2), Just(252), any::<u16>()],
        class in prop_oneof![Just(1u16), any::<u16>()],
        edns in proptest::option::of((any::<u16>(), prop_oneof![Just(0u32), any::<u32>()])),
    ) {
        let mut labels = labels;
        if in_zone {
            labels.extend([b"haven".to_vec(), b"test".to_vec()]);
        }
        let query = raw_query(flags, &labels, record_type, class, edns);
        let name_len = labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1;
        prop_assert_eq!(Question::parse(&query).is_some(), name_len <= 255);
        check_response(&snapshot(), &query)?;
    }
}
