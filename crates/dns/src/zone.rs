//! The answers of the zone at one plan generation, as an immutable [`Snapshot`] whose answers are
//! encoded once, when the plan arrives, so that answering is a hash lookup plus a few byte copies
//! (the query's id, its RD and CD bits, and its question, whose letter case resolvers randomise
//! and check).
//!
//! Serving never takes a lock: the servers read the current snapshot through an [`ArcSwap`]
//! ([`SnapshotCell`]), and a new plan replaces it whole with one pointer store (I4). A query that
//! started on the old snapshot finishes on it.
//!
//! The hot path never builds a hickory `Message`: [`Question::parse`] (in [`crate::wire`], shared
//! with the guard resolver) reads the header, the one question and an optional OPT record (without
//! options) straight from the query bytes, checking every bound, and the lookup key is the question's lower-cased wire-format name followed by its
//! type, hashed with foldhash. Any other query (a compressed question, records in the answer or
//! authority sections, EDNS options, trailing bytes...) goes through the full hickory decoder and
//! is then answered by the same code; the property tests check that both readings agree on every
//! query the fast one accepts. Positive answers are whole pre-encoded responses; negative ones
//! (NXDOMAIN, NODATA) and the other question-echoing answers are a header written per query, the
//! question as asked, then pre-encoded records: the SOA of the authority section, whose owner
//! (and in-zone names in its data) point at the apex inside the echoed question, and our OPT.
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
//! EDNS0: a query with an OPT record gets one back (its DO bit copied), and UDP answers may be as large as the size it
//! advertises (at most [`MAX_UDP_PAYLOAD`]); without EDNS the limit is 512 bytes. A larger answer
//! goes out as its question alone with the TC bit, and the client retries over TCP.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::config::ZoneSettings;
use crate::plan::{Generation, Plan};
pub use crate::wire::MAX_UDP_PAYLOAD;
use crate::wire::{
    self, CLASS_IN, HEADER_LEN, Header, Question, Transport, lower_wire, size_limit,
};

/// TTL of the zone's own records (SOA, NS, glue), which change only with the configuration.
const ZONE_RECORD_TTL: u32 = 3600;
/// The label of the TXT record that carries the plan's generation.
const GENERATION_LABEL: &str = "_generation";
const TYPE_SOA: u16 = 6;
const TYPE_IXFR: u16 = 251;
const TYPE_AXFR: u16 = 252;

/// The current snapshot, replaced atomically; readers never block.
pub type SnapshotCell = Arc<ArcSwap<Snapshot>>;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// Everything needed to answer any query for the zone at one generation.
pub struct Snapshot {
    generation: Generation,
    /// The apex in lower-case wire format.
    apex: Box<[u8]>,
    /// Complete responses for every (name, type) with records, keyed by [`Question::key`].
    answers: FastMap<Box<[u8]>, Encoded>,
    /// Every name that exists in the zone, with or without records (for NODATA versus NXDOMAIN),
    /// in lower-case wire format.
    names: FastSet<Box<[u8]>>,
    /// The SOA record put in the authority section of negative answers.
    negative_soa: SoaAuthority,
}

/// One positive response encoded twice, without and with an OPT record; id 0 and a lower-case
/// question, both overwritten per query.
struct Encoded {
    plain: Vec<u8>,
    with_edns: Vec<u8>,
}

/// The SOA record of negative answers, encoded but for the two-byte compression pointers to the
/// apex (its owner first), which depend on where the apex sits in the echoed question.
struct SoaAuthority {
    /// The apex's length in wire format.
    apex_len: usize,
    bytes: Vec<u8>,
    /// Offsets in `bytes` of the pointers to the apex.
    apex_pointers: Vec<usize>,
}

impl Snapshot {
    /// Encodes the answers of `plan` for the zone of `settings`.
    pub fn build(plan: &Plan, settings: &ZoneSettings) -> Snapshot {
        let apex = &settings.apex;
        let glue = glue_records(settings);
        let mut names = HashSet::new();
        let answers = zone_rrsets(plan, settings)
            .into_iter()
            .map(|((name, record_type), records)| {
                add_with_ancestors(&mut names, &name, apex);
                let additionals = if record_type == RecordType::NS {
                    glue.clone()
                } else {
                    Vec::new()
                };
                let encoded = Encoded::new(&name, record_type, records, additionals);
                let mut key = lower_wire(&name);
                key.extend_from_slice(&u16::from(record_type).to_be_bytes());
                (key.into_boxed_slice(), encoded)
            })
            .collect();
        Snapshot {
            generation: plan.generation,
            negative_soa: SoaAuthority::new(plan.generation, settings),
            apex: lower_wire(apex).into_boxed_slice(),
            answers,
            names: names
                .iter()
                .map(|name| lower_wire(name).into_boxed_slice())
                .collect(),
        }
    }

    /// The generation of the plan these answers come from.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// Writes the response to `query` into `response` (cleared first); returns false when the query
    /// deserves no response at all (too short to carry an id, or itself a response).
    pub fn answer(&self, query: &[u8], transport: Transport, response: &mut Vec<u8>) -> bool {
        let mut scratch = Vec::new();
        match wire::read_query(query, &mut scratch, response) {
            Some(question) => {
                self.respond(&question, transport, response);
                true
            }
            None => !response.is_empty(),
        }
    }

    fn respond(&self, question: &Question, transport: Transport, response: &mut Vec<u8>) {
        let limit = size_limit(question.edns, transport);
        if question.unsupported_edns() {
            wire::write_badvers(question, Header::default(), response);
            return;
        }
        let in_zone = question.class == CLASS_IN && self.in_zone(question.name());
        let refused = Header {
            rcode: u16::from(ResponseCode::Refused) as u8,
            ..Header::default()
        };
        let truncated = Header {
            authoritative: true,
            truncated: true,
            ..Header::default()
        };
        if !in_zone || matches!(question.record_type, TYPE_AXFR | TYPE_IXFR) {
            wire::write_echo(question, refused, response);
        } else if let Some(encoded) = self.answers.get(question.key()) {
            let template = if question.edns.is_some() {
                &encoded.with_edns
            } else {
                &encoded.plain
            };
            if template.len() <= limit {
                wire::patch_template(template, question, response);
                wire::copy_dnssec_ok(question, response);
            } else {
                wire::write_echo(question, truncated, response);
            }
        } else {
            let response_code = if self.names.contains(question.name()) {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            };
            let rcode = u16::from(response_code) as u8;
            write_negative(question, rcode, &self.negative_soa, response);
            if response.len() > limit {
                wire::write_echo(question, truncated, response);
            }
        }
    }

    /// Whether `name` (lower-case wire format) is the apex or below it.
    fn in_zone(&self, name: &[u8]) -> bool {
        let Some(apex_at) = name.len().checked_sub(self.apex.len()) else {
            return false;
        };
        if name[apex_at..] != *self.apex {
            return false;
        }
        // The apex must start on a label boundary of the name.
        let mut at = 0;
        while at < apex_at {
            at += 1 + name[at] as usize;
        }
        at == apex_at
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

impl SoaAuthority {
    /// The zone's SOA with the negative TTL (RFC 2308), its serial the plan's generation; names
    /// inside the zone end in a pointer to the apex.
    fn new(generation: Generation, settings: &ZoneSettings) -> SoaAuthority {
        let (apex, soa) = (&settings.apex, &settings.soa);
        let mut bytes = vec![0xc0, 0];
        bytes.extend_from_slice(&TYPE_SOA.to_be_bytes());
        bytes.extend_from_slice(&CLASS_IN.to_be_bytes());
        bytes.extend_from_slice(&soa.minimum.to_be_bytes());
        bytes.extend_from_slice(&[0, 0]); // RDLENGTH, set below
        let mut apex_pointers = vec![0];
        let rdata_start = bytes.len();
        for name in [&soa.mname, &soa.rname] {
            let inside = apex.zone_of(name);
            let own_labels = if inside {
                name.num_labels() - apex.num_labels()
            } else {
                name.num_labels()
            };
            for label in name.iter().take(own_labels as usize) {
                bytes.push(label.len() as u8);
                bytes.extend_from_slice(label);
            }
            if inside {
                apex_pointers.push(bytes.len());
                bytes.extend_from_slice(&[0xc0, 0]);
            } else {
                bytes.push(0);
            }
        }
        // The serial follows the plan, so secondaries see every change.
        let serial = generation as u32;
        for value in [
            serial,
            soa.refresh as u32,
            soa.retry as u32,
            soa.expire as u32,
        ] {
            bytes.extend_from_slice(&value.to_be_bytes());
        }
        bytes.extend_from_slice(&soa.minimum.to_be_bytes());
        let rdata_len = (bytes.len() - rdata_start) as u16;
        bytes[rdata_start - 2..rdata_start].copy_from_slice(&rdata_len.to_be_bytes());
        SoaAuthority {
            apex_len: lower_wire(apex).len(),
            bytes,
            apex_pointers,
        }
    }
}

/// A negative answer (NXDOMAIN or NODATA) that echoes `question`: header, question as asked, the
/// SOA in authority, then our OPT if the query had EDNS.
fn write_negative(question: &Question, rcode: u8, soa: &SoaAuthority, response: &mut Vec<u8>) {
    let header = Header {
        rcode,
        authoritative: true,
        authorities: 1,
        ..Header::default()
    };
    wire::write_header(question, header, response);
    // The apex is the tail of the question's name (the question is in the zone).
    let apex_at = HEADER_LEN + question.name_len - soa.apex_len;
    let pointer = (0xc000 | apex_at as u16).to_be_bytes();
    let start = response.len();
    response.extend_from_slice(&soa.bytes);
    for &at in &soa.apex_pointers {
        response[start + at..start + at + 2].copy_from_slice(&pointer);
    }
    wire::push_opt(question, response);
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

fn our_edns() -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(MAX_UDP_PAYLOAD);
    edns
}

fn encode(message: &Message) -> Vec<u8> {
    use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
    let mut bytes = Vec::new();
    // Our messages are built from validated names and bounded record counts, so encoding them
    // cannot fail; a failure would be a bug in this module.
    message
        .emit(&mut BinEncoder::new(&mut bytes))
        .expect("a response built by the zone encodes");
    bytes
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
