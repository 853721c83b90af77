//! A response as the resolver keeps it: the upstream's bytes, made ours once when they arrive
//! (id 0, lower-case question, no OPT record, our header flags), plus where each record's TTL sits,
//! so that answering a client from the cache is a copy and a few patches (id, RD, question case,
//! the TTLs counted down, our OPT) with no decoding and no encoding.
//!
//! What kind of answer it is ([`Kind`]) and how long it stays fresh come from the same single pass
//! over the records ([`Walk`]), bounds-checked, which refuses anything malformed: a positive answer
//! lives as long as its shortest TTL (at most `max_ttl`); a negative one (NXDOMAIN, NODATA) as long
//! as RFC 2308 says, the lesser of its SOA's TTL and minimum (the SOA's TTL is rewritten to it),
//! and not at all without an SOA; a failure for `servfail_ttl` (RFC 9520). Record data passes
//! through untouched, DNSSEC signatures included; the AD bit only when the client set DO.

use std::sync::Arc;
use std::time::{Duration, Instant};

use haven_dns::wire::{self, HEADER_LEN, Header, Question, TYPE_OPT, Transport};

use crate::key::Key;

const RCODE_NOERROR: u8 = 0;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_NXDOMAIN: u8 = 3;
const TYPE_SOA: u16 = 6;
const TYPE_CNAME: u16 = 5;
const TYPE_ANY: u16 = 255;
/// A TTL with its top bit set is read as 0 (RFC 2181 8).
const MAX_VALID_TTL: u32 = i32::MAX as u32;

/// What an answer says, for the resolver's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// NOERROR with records of the asked type.
    Positive,
    /// NXDOMAIN, or NOERROR without records of the asked type (NODATA).
    Negative,
    /// SERVFAIL: the upstream failed or refused, or nobody answered.
    Failure,
    /// A positive answer served past its TTL because no upstream answered (RFC 8767).
    Stale,
    /// A critical name's last good answer standing in for an empty or failed one.
    StandIn,
}

/// How long answers live, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub max_ttl: u32,
    pub negative_max_ttl: u32,
    pub servfail_ttl: u32,
    /// How long past its freshness an answer may still be served stale.
    pub max_stale: Duration,
}

/// A response ready to be copied to clients.
#[derive(Debug)]
pub struct Answer {
    /// The response with id 0, the question in lower case, and no OPT record.
    body: Box<[u8]>,
    /// Where each record's TTL sits in `body`, and its value when stored.
    ttls: Box<[(u32, u32)]>,
    pub kind: Kind,
    stored: Instant,
    /// Seconds the answer is fresh from `stored`; 0 is never cached.
    pub lifetime: u32,
    /// Past this, not even a stale answer.
    stale_until: Instant,
}

/// One record's position and what the policy needs of it.
struct Record {
    ttl_at: usize,
    record_type: u16,
    section: Section,
    /// The SOA's minimum field, for negative caching.
    soa_minimum: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Answer,
    Authority,
    Additional,
}

/// A message read once: where its question ends, its records, and its OPT record if any.
struct Walk {
    records: Vec<Record>,
    /// The OPT record's byte range; it must be the last record.
    opt: Option<std::ops::Range<usize>>,
}

impl Answer {
    /// Makes an upstream's response ours; `None` if it is malformed, does not answer `key`, or
    /// carries its OPT record anywhere but last.
    pub fn from_upstream(
        response: &[u8],
        key: &Key,
        lifetimes: &Lifetimes,
        now: Instant,
    ) -> Option<Answer> {
        let walk = Walk::read(response, key)?;
        let rcode = response[3] & 0x0f;
        if rcode != RCODE_NOERROR && rcode != RCODE_NXDOMAIN {
            return Some(Answer::failure(key, lifetimes, now));
        }
        let mut body = match &walk.opt {
            Some(opt) if opt.end != response.len() => return None,
            Some(opt) => {
                let mut body = response[..opt.start].to_vec();
                let additionals = u16::from_be_bytes([body[10], body[11]]) - 1;
                body[10..12].copy_from_slice(&additionals.to_be_bytes());
                body
            }
            None => response.to_vec(),
        };
        let authentic = response[3] & 0x20 != 0 && key.dnssec_ok();
        set_header(&mut body, rcode, authentic, key);
        let kind = walk.kind(rcode, key.record_type());
        let mut ttls: Vec<(u32, u32)> = walk
            .records
            .iter()
            .map(|record| (record.ttl_at as u32, read_ttl(&body, record.ttl_at)))
            .map(|(at, ttl)| (at, ttl.min(lifetimes.max_ttl)))
            .collect();
        let lifetime = match kind {
            Kind::Positive => walk.positive_lifetime(&ttls),
            _ => walk.negative_lifetime(&mut ttls, lifetimes.negative_max_ttl),
        };
        Some(Answer::new(body, ttls, kind, lifetime, lifetimes, now))
    }

    /// SERVFAIL for `key`, fresh for `servfail_ttl`.
    pub fn failure(key: &Key, lifetimes: &Lifetimes, now: Instant) -> Answer {
        let mut body = vec![0u8; HEADER_LEN];
        body[5] = 1; // one question
        body.extend_from_slice(key.question());
        set_header(&mut body, RCODE_SERVFAIL, false, key);
        let kind = Kind::Failure;
        Answer::new(
            body,
            Vec::new(),
            kind,
            lifetimes.servfail_ttl,
            lifetimes,
            now,
        )
    }

    fn new(
        body: Vec<u8>,
        ttls: Vec<(u32, u32)>,
        kind: Kind,
        lifetime: u32,
        lifetimes: &Lifetimes,
        now: Instant,
    ) -> Answer {
        let stale_until = now + Duration::from_secs(lifetime.into()) + lifetimes.max_stale;
        Answer {
            body: body.into_boxed_slice(),
            ttls: ttls.into_boxed_slice(),
            kind,
            stored: now,
            lifetime,
            stale_until,
        }
    }

    /// The same records, every TTL `ttl` from now, fresh for as long: a stale answer or a stand-in.
    pub fn restamped(&self, kind: Kind, ttl: u32, now: Instant) -> Answer {
        Answer {
            body: self.body.clone(),
            ttls: self.ttls.iter().map(|&(at, _)| (at, ttl)).collect(),
            kind,
            stored: now,
            lifetime: ttl,
            stale_until: self.stale_until,
        }
    }

    /// Whether the answer may still be served as it is.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.stored).as_secs() < u64::from(self.lifetime)
    }

    /// Whether a positive answer past its TTL may still be served stale (RFC 8767).
    pub fn may_serve_stale(&self, now: Instant) -> bool {
        matches!(self.kind, Kind::Positive | Kind::Stale) && now < self.stale_until
    }

    /// The response code (its low four bits).
    pub fn rcode(&self) -> u8 {
        self.body[3] & 0x0f
    }

    /// The response bytes as stored (id 0, no OPT), for the stand-in's probe filter.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The memory this answer holds, roughly, for the cache's budget.
    pub fn weight(&self) -> u64 {
        (self.body.len() + self.ttls.len() * 8 + size_of::<Answer>()) as u64
    }

    /// Writes the answer to `question` into `response`: its id, RD bit and letter case, the TTLs
    /// counted down since the answer was stored, our OPT when the query had EDNS; just the question
    /// with TC when that does not fit the client's limit.
    pub fn write(
        &self,
        question: &Question,
        transport: Transport,
        now: Instant,
        response: &mut Vec<u8>,
    ) {
        response.clear();
        let opt_len = if question.edns.is_some() {
            wire::OUR_OPT.len()
        } else {
            0
        };
        if self.body.len() + opt_len > wire::size_limit(question.edns, transport) {
            let header = Header {
                rcode: self.rcode(),
                truncated: true,
                recursion_available: true,
                ..Header::default()
            };
            wire::write_echo(question, header, response);
            return;
        }
        wire::patch_template(&self.body, question, response);
        let elapsed = now.saturating_duration_since(self.stored).as_secs();
        let elapsed = u32::try_from(elapsed).unwrap_or(u32::MAX);
        for &(at, ttl) in &*self.ttls {
            let at = at as usize;
            response[at..at + 4].copy_from_slice(&ttl.saturating_sub(elapsed).to_be_bytes());
        }
        if question.edns.is_some() {
            let additionals = u16::from_be_bytes([response[10], response[11]]) + 1;
            response[10..12].copy_from_slice(&additionals.to_be_bytes());
            wire::push_opt(question, response);
        }
    }
}

/// Shared, since the cache, the pins and waiting clients hold the same answer.
pub type SharedAnswer = Arc<Answer>;

/// Our header on a response for `key`: QR, RD (patched per query), RA, CD as asked, AD when
/// `authentic`, the response code; not authoritative, not truncated.
fn set_header(body: &mut [u8], rcode: u8, authentic: bool, key: &Key) {
    body[..2].copy_from_slice(&[0, 0]);
    body[2] = 0x80 | 0x01;
    body[3] = 0x80
        | if authentic { 0x20 } else { 0 }
        | if key.checking_disabled() { 0x10 } else { 0 }
        | rcode;
}

fn read_ttl(message: &[u8], at: usize) -> u32 {
    let ttl = u32::from_be_bytes([
        message[at],
        message[at + 1],
        message[at + 2],
        message[at + 3],
    ]);
    if ttl > MAX_VALID_TTL { 0 } else { ttl }
}

impl Walk {
    /// Reads a response to `key`'s question: header, question (the same name, type and class,
    /// letter case aside), then every record; `None` for anything else or anything malformed.
    fn read(message: &[u8], key: &Key) -> Option<Walk> {
        let header = message.get(..HEADER_LEN)?;
        let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
        let question = key.question();
        let asked = message.get(HEADER_LEN..HEADER_LEN + question.len())?;
        let is_response = header[2] & 0x80 != 0 && header[2] & 0x78 == 0;
        if !is_response || count(4) != 1 || !asked.eq_ignore_ascii_case(question) {
            return None;
        }
        let sections = [
            (Section::Answer, count(6)),
            (Section::Authority, count(8)),
            (Section::Additional, count(10)),
        ];
        let mut walk = Walk {
            records: Vec::new(),
            opt: None,
        };
        let mut at = HEADER_LEN + question.len();
        for (section, records) in sections {
            for _ in 0..records {
                at = walk.read_record(message, at, section)?;
            }
        }
        (at == message.len()).then_some(walk)
    }

    /// Reads the record at `at`; returns where the next one starts.
    fn read_record(&mut self, message: &[u8], at: usize, section: Section) -> Option<usize> {
        let start = at;
        let at = skip_name(message, at)?;
        let fixed = message.get(at..at + 10)?;
        let record_type = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdata_len = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        let rdata = message.get(at + 10..at + 10 + rdata_len)?;
        let end = at + 10 + rdata_len;
        if record_type == TYPE_OPT {
            if section != Section::Additional || self.opt.is_some() {
                return None;
            }
            self.opt = Some(start..end);
            return Some(end);
        }
        if self.opt.is_some() {
            return None; // a record after the OPT record
        }
        let soa_minimum = (record_type == TYPE_SOA)
            .then(|| rdata.last_chunk::<4>().map(|m| u32::from_be_bytes(*m)))
            .flatten();
        self.records.push(Record {
            ttl_at: at + 4,
            record_type,
            section,
            soa_minimum,
        });
        Some(end)
    }

    fn kind(&self, rcode: u8, asked_type: u16) -> Kind {
        let answers = |wanted: &dyn Fn(u16) -> bool| {
            self.records
                .iter()
                .any(|r| r.section == Section::Answer && wanted(r.record_type))
        };
        let positive = rcode == RCODE_NOERROR
            && match asked_type {
                TYPE_ANY => answers(&|_| true),
                TYPE_CNAME => answers(&|t| t == TYPE_CNAME),
                asked => answers(&|t| t == asked),
            };
        if positive {
            Kind::Positive
        } else {
            Kind::Negative
        }
    }

    /// The shortest TTL of the answer and authority sections.
    fn positive_lifetime(&self, ttls: &[(u32, u32)]) -> u32 {
        self.records
            .iter()
            .zip(ttls)
            .filter(|(record, _)| record.section != Section::Additional)
            .map(|(_, &(_, ttl))| ttl)
            .min()
            .unwrap_or(0)
    }

    /// RFC 2308 5: the lesser of the SOA's TTL and its minimum field, which becomes the SOA's TTL;
    /// 0 (not cached) without an SOA in the authority section.
    fn negative_lifetime(&self, ttls: &mut [(u32, u32)], negative_max_ttl: u32) -> u32 {
        let soa = self
            .records
            .iter()
            .zip(ttls.iter_mut())
            .find(|(record, _)| {
                record.section == Section::Authority && record.record_type == TYPE_SOA
            });
        let Some((record, (_, ttl))) = soa else {
            return 0;
        };
        let minimum = record.soa_minimum.unwrap_or(0).min(MAX_VALID_TTL);
        *ttl = (*ttl).min(minimum).min(negative_max_ttl);
        *ttl
    }
}

/// Skips the (possibly compressed) name at `at`; returns where it ends. Pointers are not
/// followed: the name ends at the first one.
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let length = *message.get(at)?;
        match length & 0xc0 {
            0x00 if length == 0 => return Some(at + 1),
            0x00 => at += 1 + length as usize,
            0xc0 => return message.get(at + 1).map(|_| at + 2),
            _ => return None, // extended label types are obsolete (RFC 6891 5)
        }
    }
}

#[cfg(test)]
mod tests;
