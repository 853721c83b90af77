//! Reading DNS queries and writing the parts of a response that echo them, shared by the
//! authoritative zone ([`crate::zone`]) and the guard resolver (`haven-resolve`), so that both read
//! a query the same way, with the same bounds, and neither builds a hickory `Message` per query.
//!
//! [`read_query`] is the entry point: it drops what deserves no response (fewer than 12 bytes, a
//! message that is itself a response), answers NOTIMP for an opcode other than QUERY and FORMERR for
//! what cannot be decoded, and otherwise hands back the [`Question`]. [`Question::parse`] reads the
//! header, the one question and an optional OPT record (without options) straight from the query
//! bytes, checking every bound; any other query (a compressed question, records in the answer or
//! authority sections, EDNS options such as dig's cookie, trailing bytes...) goes through the full
//! hickory decoder ([`Question::from_message`]). The zone's property tests check that both
//! readings agree on every query the fast one accepts.
//!
//! EDNS0 (RFC 6891): a response carries our OPT record only when the query had one, with the
//! query's DO bit copied (RFC 3225); UDP answers may be as large as the query advertises, at most
//! [`MAX_UDP_PAYLOAD`]; without EDNS the limit is 512 bytes ([`size_limit`]).

use std::net::IpAddr;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RData};

/// The largest UDP answer sent, whatever the client advertises: the size DNS Flag Day 2020 chose
/// to avoid IP fragmentation. It is also the size our OPT record advertises.
pub const MAX_UDP_PAYLOAD: u16 = 1232;
/// The UDP limit for a query without EDNS (RFC 1035).
pub const PLAIN_UDP_PAYLOAD: u16 = 512;
pub const HEADER_LEN: usize = 12;
/// The longest name in wire format, root label included (RFC 1035 3.1).
pub const MAX_NAME_LEN: usize = 255;
/// Our OPT record: root owner, type 41, our payload size as class, extended RCODE 0 (byte 5,
/// patched for BADVERS), version 0, flags (byte 7 holds DO), no options.
pub const OUR_OPT: [u8; 11] = {
    let size = MAX_UDP_PAYLOAD.to_be_bytes();
    [0, 0, 41, size[0], size[1], 0, 0, 0, 0, 0, 0]
};
/// Where the DO bit sits in an OPT record (its TTL's third byte, top bit).
const OPT_DO_BYTE: usize = 7;
const DO_BIT: u8 = 0x80;
pub const TYPE_OPT: u16 = 41;
pub const CLASS_IN: u16 = 1;

/// How the query arrived, which bounds the answer's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What answering needs from a query: its header's id and flags, its one question, and its EDNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question<'q> {
    pub id: [u8; 2],
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    /// The question as asked (name uncompressed, in the query's letter case, then type and
    /// class), echoed in the response.
    pub asked: &'q [u8],
    /// The lookup key: the name in lower case, wire format, then the type (big-endian).
    key: [u8; MAX_NAME_LEN + 2],
    /// The length of the name in `asked` and `key`.
    pub name_len: usize,
    pub record_type: u16,
    pub class: u16,
    pub edns: Option<QueryEdns>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryEdns {
    pub max_payload: u16,
    pub version: u8,
    /// DO: the client wants DNSSEC records (RFC 3225).
    pub dnssec_ok: bool,
}

/// The header of a response that echoes its question.
#[derive(Clone, Copy, Debug, Default)]
pub struct Header {
    /// The low four bits of the response code.
    pub rcode: u8,
    pub authoritative: bool,
    pub truncated: bool,
    pub recursion_available: bool,
    /// The number of records the caller puts in the authority section.
    pub authorities: u16,
}

/// Reads `query`: its question, or `None` once the response it deserves is in `response` (an
/// error without question), or left empty when it deserves none. `scratch` holds the question of
/// a query that needed the full decoder.
pub fn read_query<'q>(
    query: &'q [u8],
    scratch: &'q mut Vec<u8>,
    response: &mut Vec<u8>,
) -> Option<Question<'q>> {
    response.clear();
    if query.len() < HEADER_LEN || query[2] & 0x80 != 0 {
        return None;
    }
    let op_code = (query[2] >> 3) & 0x0f;
    if op_code != u8::from(OpCode::Query) {
        error_without_question(query, op_code, ResponseCode::NotImp, response);
        return None;
    }
    if let Some(question) = Question::parse(query) {
        return Some(question);
    }
    // An unusual query: the full decoder reads it, or it is malformed.
    match Message::from_vec(query) {
        Ok(request) if request.queries.len() == 1 => {
            Some(Question::from_message(&request, scratch))
        }
        _ => {
            error_without_question(query, op_code, ResponseCode::FormErr, response);
            None
        }
    }
}

impl<'q> Question<'q> {
    /// Reads a plain query (header, one uncompressed question, nothing else but an optional OPT
    /// record without options) straight from its bytes; `None` for anything else, which the full
    /// decoder then reads. Never panics: every index is checked.
    pub fn parse(query: &'q [u8]) -> Option<Question<'q>> {
        let header = query.get(..HEADER_LEN)?;
        let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
        let additionals = count(10);
        if count(4) != 1 || count(6) != 0 || count(8) != 0 || additionals > 1 {
            return None;
        }
        let mut key = [0u8; MAX_NAME_LEN + 2];
        let name_len = read_name(query, &mut key)?;
        let at = HEADER_LEN + name_len;
        let fixed = query.get(at..at + 4)?;
        let record_type = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let question_end = at + 4;
        let edns = if additionals == 1 {
            Some(read_opt(query.get(question_end..)?)?)
        } else {
            if query.len() != question_end {
                return None;
            }
            None
        };
        key[name_len..name_len + 2].copy_from_slice(&record_type.to_be_bytes());
        Some(Question {
            id: [header[0], header[1]],
            recursion_desired: header[2] & 0x01 != 0,
            checking_disabled: header[3] & 0x10 != 0,
            asked: &query[HEADER_LEN..question_end],
            key,
            name_len,
            record_type,
            class,
            edns,
        })
    }

    /// The same reading of a query the full decoder has read; `asked` receives the question.
    pub fn from_message(request: &Message, asked: &'q mut Vec<u8>) -> Question<'q> {
        let query = &request.queries[0];
        let (record_type, class) = (query.query_type().into(), query.query_class().into());
        asked.clear();
        for label in query.name().iter() {
            asked.push(label.len() as u8);
            asked.extend_from_slice(label);
        }
        asked.push(0);
        let name_len = asked.len();
        asked.extend_from_slice(&u16::to_be_bytes(record_type));
        asked.extend_from_slice(&u16::to_be_bytes(class));
        let mut key = [0u8; MAX_NAME_LEN + 2];
        // The decoder bounds names to MAX_NAME_LEN bytes.
        key[..name_len + 2].copy_from_slice(&asked[..name_len + 2]);
        key[..name_len].make_ascii_lowercase();
        let metadata = &request.metadata;
        Question {
            id: metadata.id.to_be_bytes(),
            recursion_desired: metadata.recursion_desired,
            checking_disabled: metadata.checking_disabled,
            asked: &asked[..],
            key,
            name_len,
            record_type,
            class,
            edns: request.edns.as_ref().map(|edns| QueryEdns {
                max_payload: edns.max_payload(),
                version: edns.version(),
                dnssec_ok: edns.flags().dnssec_ok,
            }),
        }
    }

    /// The name, lower case, wire format.
    pub fn name(&self) -> &[u8] {
        &self.key[..self.name_len]
    }

    /// The name, lower case, wire format, then the type (big-endian).
    pub fn key(&self) -> &[u8] {
        &self.key[..self.name_len + 2]
    }

    /// Whether the query's EDNS version is one we do not speak (the answer is BADVERS).
    pub fn unsupported_edns(&self) -> bool {
        self.edns.is_some_and(|edns| edns.version > 0)
    }

    /// Whether the client asked for DNSSEC records (EDNS DO bit).
    pub fn dnssec_ok(&self) -> bool {
        self.edns.is_some_and(|edns| edns.dnssec_ok)
    }
}

/// Reads the uncompressed question name at the header's end into `key`, lower-cased; returns its
/// length in wire format (root label included).
fn read_name(query: &[u8], key: &mut [u8; MAX_NAME_LEN + 2]) -> Option<usize> {
    let mut at = HEADER_LEN;
    loop {
        let length = *query.get(at)? as usize;
        let name_len = at - HEADER_LEN;
        if length == 0 {
            return (name_len < MAX_NAME_LEN).then_some(name_len + 1);
        }
        if length > 63 || name_len + 1 + length + 1 > MAX_NAME_LEN {
            return None; // a pointer, an unknown label type, or too long
        }
        let label = query.get(at + 1..at + 1 + length)?;
        key[name_len] = length as u8;
        for (to, byte) in key[name_len + 1..].iter_mut().zip(label) {
            *to = byte.to_ascii_lowercase();
        }
        at += 1 + length;
    }
}

/// Reads an OPT record that ends the query: root owner, type OPT, payload size, extended RCODE,
/// version, flags, and no options (a query with options goes to the full decoder).
fn read_opt(opt: &[u8]) -> Option<QueryEdns> {
    if opt.len() != OUR_OPT.len() || opt[0] != 0 || opt[1..3] != TYPE_OPT.to_be_bytes() {
        return None;
    }
    if opt[9..11] != [0, 0] {
        return None;
    }
    Some(QueryEdns {
        // As the decoder reads it: below 512 means 512 (RFC 6891 6.2.5).
        max_payload: u16::from_be_bytes([opt[3], opt[4]]).max(PLAIN_UDP_PAYLOAD),
        version: opt[6],
        dnssec_ok: opt[OPT_DO_BYTE] & DO_BIT != 0,
    })
}

/// Writes the header and the question as asked; the caller adds the authority records it counted
/// in `header`, then [`push_opt`].
pub fn write_header(question: &Question, header: Header, response: &mut Vec<u8>) {
    response.clear();
    let flags = 0x80 // QR; opcode QUERY
        | if header.authoritative { 0x04 } else { 0 }
        | if header.truncated { 0x02 } else { 0 }
        | u8::from(question.recursion_desired);
    let flags_low = if header.recursion_available { 0x80 } else { 0 }
        | if question.checking_disabled { 0x10 } else { 0 }
        | (header.rcode & 0x0f);
    let additionals = u16::from(question.edns.is_some());
    response.extend_from_slice(&question.id);
    response.extend_from_slice(&[flags, flags_low, 0, 1, 0, 0]);
    response.extend_from_slice(&header.authorities.to_be_bytes());
    response.extend_from_slice(&additionals.to_be_bytes());
    response.extend_from_slice(question.asked);
}

/// Appends our OPT record if the query had EDNS (its DO bit copied), as counted by
/// [`write_header`].
pub fn push_opt(question: &Question, response: &mut Vec<u8>) {
    if let Some(edns) = question.edns {
        let at = response.len();
        response.extend_from_slice(&OUR_OPT);
        if edns.dnssec_ok {
            response[at + OPT_DO_BYTE] |= DO_BIT;
        }
    }
}

/// Sets the DO bit of the OPT record that ends `response` when the query asked for DNSSEC (RFC
/// 3225: the bit is copied), for responses copied from a template encoded without it.
pub fn copy_dnssec_ok(question: &Question, response: &mut [u8]) {
    if question.dnssec_ok()
        && let Some(at) = response.len().checked_sub(OUR_OPT.len() - OPT_DO_BYTE)
    {
        response[at] |= DO_BIT;
    }
}

/// A response without records: the header, the question and our OPT.
pub fn write_echo(question: &Question, header: Header, response: &mut Vec<u8>) {
    write_header(question, header, response);
    push_opt(question, response);
}

/// BADVERS (16) for a query with an EDNS version above 0: the low four bits in the header are 0,
/// the high eight in our OPT.
pub fn write_badvers(question: &Question, header: Header, response: &mut Vec<u8>) {
    write_echo(question, Header { rcode: 0, ..header }, response);
    let rcode_high = (u16::from(ResponseCode::BADVERS) >> 4) as u8;
    let at = response.len() - OUR_OPT.len() + 5;
    response[at] = rcode_high;
}

/// Copies `template` (a response with id 0 whose question is `question`'s, maybe in another letter
/// case) and makes it the answer to `question`: its id, RD and CD bits, and its question bytes.
pub fn patch_template(template: &[u8], question: &Question, response: &mut Vec<u8>) {
    response.extend_from_slice(template);
    response[..2].copy_from_slice(&question.id);
    response[2] = (response[2] & !0x01) | u8::from(question.recursion_desired);
    response[3] = (response[3] & !0x10) | if question.checking_disabled { 0x10 } else { 0 };
    let name_end = HEADER_LEN + question.name_len;
    if let Some(template_name) = template.get(HEADER_LEN..name_end)
        && template_name.eq_ignore_ascii_case(&question.asked[..question.name_len])
    {
        response[HEADER_LEN..name_end].copy_from_slice(&question.asked[..question.name_len]);
    }
}

/// The largest answer the client can take.
pub fn size_limit(edns: Option<QueryEdns>, transport: Transport) -> usize {
    match (transport, edns) {
        (Transport::Tcp, _) => u16::MAX as usize,
        (Transport::Udp, None) => PLAIN_UDP_PAYLOAD as usize,
        (Transport::Udp, Some(edns)) => {
            edns.max_payload.clamp(PLAIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD) as usize
        }
    }
}

/// An error for a query we cannot or will not read: header only, the id and opcode echoed.
fn error_without_question(
    query: &[u8],
    op_code: u8,
    response_code: ResponseCode,
    response: &mut Vec<u8>,
) {
    response.clear();
    response.extend_from_slice(&query[..2]);
    let rcode = u16::from(response_code) as u8;
    response.extend_from_slice(&[0x80 | (op_code << 3), rcode & 0x0f, 0, 0, 0, 0, 0, 0, 0, 0]);
}

/// `name` in lower case and wire format (labels, then the root label).
pub fn lower_wire(name: &Name) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(MAX_NAME_LEN);
    for label in name.iter() {
        bytes.push(label.len() as u8);
        bytes.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    bytes.push(0);
    bytes
}

/// The A and AAAA addresses of a decoded message's answer section, in order.
pub fn answer_addresses(message: &Message) -> impl Iterator<Item = IpAddr> + '_ {
    message
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
}
