//! The answers of the zone at one plan generation, as an immutable [`Snapshot`] whose positive
//! answers are encoded once, when the plan arrives, so that answering is a hash lookup plus a few
//! byte copies (the query's id, its RD and CD bits, and its question, whose letter case resolvers
//! randomise and check).
//!
//! Serving never takes a lock: the servers read the current snapshot through an [`ArcSwap`]
//! ([`SnapshotCell`]), and a new plan replaces it whole with one pointer store (I4). A query that
//! started on the old snapshot finishes on it.
//!
//! What is answered, authoritatively (AA):
//! - SOA and NS at the apex (the NS answer carries the name servers' glue addresses), and the A/AAAA
//!   records of name servers inside the zone;
//! - A/AAAA of every record set of the plan (`dynamodb.<region>.<zone>`, `dynamodb.<zone>`);
//! - TXT `_generation.<zone>`: the generation of the plan in effect, as decimal text;
//! - NODATA (NOERROR, SOA in authority) for a name that exists with another type, including the
//!   empty names between the apex and the records (`<region>.<zone>`); NXDOMAIN (SOA in authority)
//!   for any other name in the zone; REFUSED for names outside it and for zone transfers;
//! - FORMERR for a query that cannot be decoded or has no single question, NOTIMP for an opcode
//!   other than QUERY, BADVERS for EDNS versions above 0; nothing at all for fewer than 12 bytes
//!   or a message that is itself a response.
//!
//! EDNS0: a query with an OPT record gets one back, and UDP answers may be as large as the size it
//! advertises (at most [`MAX_UDP_PAYLOAD`]); without EDNS the limit is 512 bytes. A larger answer
//! goes out as its question alone with the TC bit, and the client retries over TCP.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::config::ZoneSettings;
use crate::plan::{Generation, Plan};

/// The largest UDP answer sent, whatever the client advertises: the size DNS Flag Day 2020 chose
/// to avoid IP fragmentation. It is also the size our OPT record advertises.
pub const MAX_UDP_PAYLOAD: u16 = 1232;
/// The UDP limit for a query without EDNS (RFC 1035).
const PLAIN_UDP_PAYLOAD: u16 = 512;
/// TTL of the zone's own records (SOA, NS, glue), which change only with the configuration.
const ZONE_RECORD_TTL: u32 = 3600;
/// The label of the TXT record that carries the plan's generation.
const GENERATION_LABEL: &str = "_generation";
const HEADER_LEN: usize = 12;

/// How the query arrived, which bounds the answer's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The current snapshot, replaced atomically; readers never block.
pub type SnapshotCell = Arc<ArcSwap<Snapshot>>;

/// Everything needed to answer any query for the zone at one generation.
pub struct Snapshot {
    generation: Generation,
    apex: Name,
    /// Complete responses for every (name, type) with records; names hash case-insensitively.
    answers: HashMap<(Name, RecordType), Encoded>,
    /// Every name that exists in the zone, with or without records (for NODATA versus NXDOMAIN).
    names: HashSet<Name>,
    /// The SOA record put in the authority section of negative answers.
    negative_soa: Record,
}

/// One positive response encoded twice, without and with an OPT record; id 0 and a lower-case
/// question, both overwritten per query.
struct Encoded {
    plain: Vec<u8>,
    with_edns: Vec<u8>,
}

impl Snapshot {
    /// Encodes the answers of `plan` for the zone of `settings`.
    pub fn build(plan: &Plan, settings: &ZoneSettings) -> Snapshot {
        let apex = settings.apex.clone();
        let glue = glue_records(settings);
        let mut names = HashSet::new();
        let answers = zone_rrsets(plan, settings)
            .into_iter()
            .map(|((name, record_type), records)| {
                add_with_ancestors(&mut names, &name, &apex);
                let additionals = if record_type == RecordType::NS {
                    glue.clone()
                } else {
                    Vec::new()
                };
                let encoded = Encoded::new(&name, record_type, records, additionals);
                ((name, record_type), encoded)
            })
            .collect();
        Snapshot {
            generation: plan.generation,
            negative_soa: soa_record(plan.generation, settings, settings.soa.minimum),
            apex,
            answers,
            names,
        }
    }

    /// The generation of the plan these answers come from.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// Writes the response to `query` into `response` (cleared first); returns false when the query
    /// deserves no response at all (too short to carry an id, or itself a response).
    pub fn answer(&self, query: &[u8], transport: Transport, response: &mut Vec<u8>) -> bool {
        response.clear();
        if query.len() < HEADER_LEN || query[2] & 0x80 != 0 {
            return false;
        }
        let op_code = OpCode::from_u8((query[2] >> 3) & 0x0f);
        if op_code != OpCode::Query {
            error_without_question(query, op_code, ResponseCode::NotImp, response);
            return true;
        }
        let request = match Message::from_vec(query) {
            Ok(request) if request.queries.len() == 1 => request,
            _ => {
                error_without_question(query, op_code, ResponseCode::FormErr, response);
                return true;
            }
        };
        let limit = size_limit(&request, transport);
        if request.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
            self.write_built(&request, ResponseCode::BADVERS, false, limit, response);
            return true;
        }
        let question = &request.queries[0];
        let (name, record_type) = (question.name(), question.query_type());
        let in_zone = question.query_class() == DNSClass::IN && self.apex.zone_of(name);
        if !in_zone || matches!(record_type, RecordType::AXFR | RecordType::IXFR) {
            self.write_built(&request, ResponseCode::Refused, false, limit, response);
        } else if let Some(encoded) = self.answers.get(&(name.clone(), record_type)) {
            let template = if request.edns.is_some() {
                &encoded.with_edns
            } else {
                &encoded.plain
            };
            if template.len() <= limit {
                patch_template(template, query, response);
            } else {
                write_truncated(&request, response);
            }
        } else if self.names.contains(name) {
            self.write_built(&request, ResponseCode::NoError, true, limit, response);
        } else {
            self.write_built(&request, ResponseCode::NXDomain, true, limit, response);
        }
        true
    }

    /// Encodes a response that has no pre-encoded form (negative answers and errors).
    fn write_built(
        &self,
        request: &Message,
        response_code: ResponseCode,
        authoritative: bool,
        limit: usize,
        response: &mut Vec<u8>,
    ) {
        let mut message = response_to(request, response_code);
        message.metadata.authoritative = authoritative;
        if authoritative {
            message.authorities.push(self.negative_soa.clone());
        }
        encode_into(&message, response);
        if response.len() > limit {
            write_truncated(request, response);
        }
    }
}

impl Encoded {
    fn new(
        name: &Name,
        record_type: RecordType,
        answers: Vec<Record>,
        additionals: Vec<Record>,
    ) -> Encoded {
        let mut message = Message::new(0, MessageType::Response, OpCode::Query);
        message.metadata.authoritative = true;
        message
            .queries
            .push(Query::query(name.clone(), record_type));
        message.answers = answers;
        message.additionals = additionals;
        let plain = encode(&message);
        message.edns = Some(our_edns());
        let with_edns = encode(&message);
        Encoded { plain, with_edns }
    }
}

/// Every record the zone serves at this plan, grouped by (name, type).
fn zone_rrsets(plan: &Plan, settings: &ZoneSettings) -> HashMap<(Name, RecordType), Vec<Record>> {
    let apex = &settings.apex;
    let mut rrsets: HashMap<(Name, RecordType), Vec<Record>> = HashMap::new();
    let mut add = |record: Record| {
        rrsets
            .entry((record.name.clone(), record.record_type()))
            .or_default()
            .push(record);
    };
    add(soa_record(plan.generation, settings, ZONE_RECORD_TTL));
    for server in &settings.nameservers {
        let ns = RData::NS(NS(server.name.clone()));
        add(Record::from_rdata(apex.clone(), ZONE_RECORD_TTL, ns));
        if apex.zone_of(&server.name) {
            address_records(&server.name, &server.addresses, ZONE_RECORD_TTL).for_each(&mut add);
        }
    }
    for set in plan.record_sets.values() {
        match Name::from_ascii(&set.name) {
            Ok(name) if apex.zone_of(&name) => {
                address_records(&name.to_lowercase(), &set.addresses, set.ttl).for_each(&mut add)
            }
            _ => {
                tracing::warn!(name = set.name, zone = %apex, "record set outside the zone is not served")
            }
        }
    }
    // TTL 0: whoever reads the generation wants the plan in effect now, not a cached one.
    let generation = RData::TXT(TXT::new(vec![plan.generation.to_string()]));
    add(Record::from_rdata(generation_name(apex), 0, generation));
    rrsets
}

/// Copies `template` and makes it the answer to `query`: its id, RD and CD bits, and its question
/// bytes (same length as the template's, since names compare case-insensitively; a query whose
/// question is compressed keeps the template's lower-case question).
fn patch_template(template: &[u8], query: &[u8], response: &mut Vec<u8>) {
    response.extend_from_slice(template);
    response[0] = query[0];
    response[1] = query[1];
    response[2] = (response[2] & !0x01) | (query[2] & 0x01);
    response[3] = (response[3] & !0x10) | (query[3] & 0x10);
    let question_end = question_end(template);
    if let Some(asked) = query.get(HEADER_LEN..question_end)
        && asked.eq_ignore_ascii_case(&template[HEADER_LEN..question_end])
    {
        response[HEADER_LEN..question_end].copy_from_slice(asked);
    }
}

/// The end of the (uncompressed) question name of an encoded message we built ourselves.
fn question_end(encoded: &[u8]) -> usize {
    let mut at = HEADER_LEN;
    while encoded[at] != 0 {
        at += 1 + encoded[at] as usize;
    }
    at + 1
}

/// The largest answer the client can take.
fn size_limit(request: &Message, transport: Transport) -> usize {
    match (transport, &request.edns) {
        (Transport::Tcp, _) => u16::MAX as usize,
        (Transport::Udp, None) => PLAIN_UDP_PAYLOAD as usize,
        (Transport::Udp, Some(edns)) => {
            edns.max_payload().clamp(PLAIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD) as usize
        }
    }
}

/// The question alone with the TC bit: "ask again over TCP".
fn write_truncated(request: &Message, response: &mut Vec<u8>) {
    let mut message = response_to(request, ResponseCode::NoError);
    message.metadata.authoritative = true;
    message.metadata.truncation = true;
    encode_into(&message, response);
}

fn response_to(request: &Message, response_code: ResponseCode) -> Message {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = response_code;
    let mut message = Message::new(metadata.id, MessageType::Response, metadata.op_code);
    message.metadata = metadata;
    message.queries = request.queries.clone();
    message.edns = request.edns.as_ref().map(|_| our_edns());
    message
}

/// An error for a query we cannot or will not read: header only, the id and opcode echoed.
fn error_without_question(
    query: &[u8],
    op_code: OpCode,
    response_code: ResponseCode,
    response: &mut Vec<u8>,
) {
    let id = u16::from_be_bytes([query[0], query[1]]);
    encode_into(&Message::error_msg(id, op_code, response_code), response);
}

fn our_edns() -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(MAX_UDP_PAYLOAD);
    edns
}

fn encode(message: &Message) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_into(message, &mut bytes);
    bytes
}

/// Our messages are built from validated names and bounded record counts, so encoding them
/// cannot fail; a failure would be a bug in this module.
fn encode_into(message: &Message, out: &mut Vec<u8>) {
    use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
    out.clear();
    message
        .emit(&mut BinEncoder::new(out))
        .expect("a response built by the zone encodes");
}

fn soa_record(generation: Generation, settings: &ZoneSettings, ttl: u32) -> Record {
    let soa = &settings.soa;
    Record::from_rdata(
        settings.apex.clone(),
        ttl,
        RData::SOA(SOA::new(
            soa.mname.clone(),
            soa.rname.clone(),
            // The serial follows the plan, so secondaries see every change.
            generation as u32,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum,
        )),
    )
}

fn address_records<'a>(
    name: &'a Name,
    addresses: &'a [IpAddr],
    ttl: u32,
) -> impl Iterator<Item = Record> + 'a {
    addresses.iter().map(move |address| {
        let rdata = match address {
            IpAddr::V4(v4) => RData::A(A(*v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
        };
        Record::from_rdata(name.clone(), ttl, rdata)
    })
}

/// The addresses of in-zone name servers, sent with the NS answer.
fn glue_records(settings: &ZoneSettings) -> Vec<Record> {
    settings
        .nameservers
        .iter()
        .filter(|server| settings.apex.zone_of(&server.name))
        .flat_map(|server| {
            address_records(&server.name, &server.addresses, ZONE_RECORD_TTL).collect::<Vec<_>>()
        })
        .collect()
}

/// `_generation.<apex>`.
pub fn generation_name(apex: &Name) -> Name {
    Name::from_ascii(GENERATION_LABEL)
        .and_then(|label| label.append_domain(apex))
        .expect("the config checked that the apex leaves room for this label")
}

/// Marks `name` and every name between it and the apex as existing.
fn add_with_ancestors(names: &mut HashSet<Name>, name: &Name, apex: &Name) {
    let mut current = name.clone();
    while current.num_labels() >= apex.num_labels() && names.insert(current.clone()) {
        current = current.base_name();
    }
}

#[cfg(test)]
mod tests;
