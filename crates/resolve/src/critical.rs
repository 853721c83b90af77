//! Critical names: which names they are ([`Pattern`]), their last good answers ([`Pins`]), and the
//! stand-in built from one ([`stand_in`]) when the upstream answers a critical name with nothing
//! usable.
//!
//! Pinning has a cost: a name really taken out of service looks exactly like a failure. Three
//! things bound it: a pin serves only up to `max_stale` after the upstream last confirmed it, after
//! which the upstream's answer passes through, whatever it is; the optional probe drops pinned
//! addresses that no longer accept TCP connections (never all of them: an answer with no address
//! is the outage this guards against); and an explicit flush forgets pins at once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use crate::answer::{Answer, Kind, Lifetimes, SharedAnswer};
use crate::config::Probe;
use crate::key::Key;

/// A name pattern: labels, any of which may be `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// Lower-case labels, leftmost first.
    labels: Vec<Label>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Label {
    Exact(Vec<u8>),
    /// `*` anywhere but first: exactly one label.
    One,
    /// `*` first: one label or more.
    OneOrMore,
}

impl Pattern {
    /// Parses `dynamodb.*.amazonaws.com` or `*.haven.example.com` (a trailing dot is allowed).
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let trimmed = text.strip_suffix('.').unwrap_or(text);
        let labels: Vec<Label> = trimmed
            .split('.')
            .enumerate()
            .map(|(index, label)| match label {
                "*" if index == 0 => Ok(Label::OneOrMore),
                "*" => Ok(Label::One),
                _ if label.is_empty() || label.len() > 63 || label.contains('*') => Err(format!(
                    "critical name {text:?}: every label must be 1 to 63 characters, or `*`"
                )),
                _ => Ok(Label::Exact(label.to_ascii_lowercase().into_bytes())),
            })
            .collect::<Result<_, _>>()?;
        let wire_len: usize = trimmed.len() + 2;
        if wire_len > haven_dns::wire::MAX_NAME_LEN {
            return Err(format!("critical name {text:?} is longer than a DNS name"));
        }
        Ok(Pattern { labels })
    }

    /// Whether `name` (lower-case wire format) matches.
    pub fn matches(&self, name: &[u8]) -> bool {
        let labels = wire_labels(name);
        let (first, rest) = match self.labels.split_first() {
            Some((Label::OneOrMore, rest)) => (true, rest),
            _ => (false, &self.labels[..]),
        };
        let fits = if first {
            labels.len() > rest.len()
        } else {
            labels.len() == rest.len()
        };
        fits && labels[labels.len() - rest.len()..]
            .iter()
            .zip(rest)
            .all(|(label, pattern)| match pattern {
                Label::Exact(exact) => label == exact,
                Label::One | Label::OneOrMore => true,
            })
    }
}

/// The labels of a wire-format name, leftmost first (at most 127 in a valid name).
fn wire_labels(mut name: &[u8]) -> Vec<&[u8]> {
    let mut labels = Vec::new();
    while let Some((&length, rest)) = name.split_first() {
        if length == 0 || usize::from(length) > rest.len() {
            break;
        }
        let (label, rest) = rest.split_at(usize::from(length));
        labels.push(label);
        name = rest;
    }
    labels
}

/// The last good answer of each critical question, within a memory budget.
pub struct Pins {
    inner: Mutex<PinMap>,
    budget: u64,
    max_stale: Duration,
}

#[derive(Default)]
struct PinMap {
    pins: HashMap<Box<[u8]>, Pin>,
    bytes: u64,
}

/// A last good answer and when the upstream last gave it.
#[derive(Clone)]
pub struct Pin {
    pub answer: SharedAnswer,
    pub confirmed: Instant,
}

/// Why a pin is not there to stand in.
pub enum Unpinned {
    /// Never had a good answer (or it was flushed or evicted).
    Missing,
    /// Its last confirmation is older than `max_stale`; it is now forgotten.
    Expired(Duration),
}

impl Pins {
    pub fn new(budget: u64, max_stale: Duration) -> Pins {
        Pins {
            inner: Mutex::default(),
            budget,
            max_stale,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PinMap> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers a positive answer the upstream just gave; the least recently confirmed pins make
    /// room if the budget is exceeded.
    pub fn remember(&self, key: &Key, answer: &SharedAnswer, now: Instant) {
        let mut map = self.lock();
        let pin = Pin {
            answer: answer.clone(),
            confirmed: now,
        };
        map.bytes += answer.weight();
        if let Some(old) = map.pins.insert(key.as_bytes().into(), pin) {
            map.bytes -= old.answer.weight();
        }
        while map.bytes > self.budget && map.pins.len() > 1 {
            let Some(oldest) = map
                .pins
                .iter()
                .min_by_key(|(_, pin)| pin.confirmed)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            if let Some(evicted) = map.pins.remove(&oldest) {
                map.bytes -= evicted.answer.weight();
                tracing::warn!(name = %Key::from_bytes(&oldest).map(|k| k.display_name()).unwrap_or_default(),
                    "pin evicted: critical.pins_mb is full");
            }
        }
    }

    /// The pin of `key` if it may still stand in at `now`; an expired one is forgotten.
    pub fn get(&self, key: &Key, now: Instant) -> Result<Pin, Unpinned> {
        let mut map = self.lock();
        let pin = map
            .pins
            .get(key.as_bytes())
            .ok_or(Unpinned::Missing)?
            .clone();
        let age = now.saturating_duration_since(pin.confirmed);
        if age <= self.max_stale {
            return Ok(pin);
        }
        if let Some(expired) = map.pins.remove(key.as_bytes()) {
            map.bytes -= expired.answer.weight();
        }
        Err(Unpinned::Expired(age))
    }

    /// Forgets the pins of `name` (lower-case wire format), or all of them; returns how many.
    pub fn forget(&self, name: Option<&[u8]>) -> usize {
        let mut map = self.lock();
        let before = map.pins.len();
        map.pins.retain(|key, _| {
            name.is_some_and(|name| Key::from_bytes(key).is_some_and(|key| key.name() != name))
        });
        map.bytes = map.pins.values().map(|pin| pin.answer.weight()).sum();
        before - map.pins.len()
    }

    pub fn len(&self) -> usize {
        self.lock().pins.len()
    }
}

/// The stand-in for a critical question: the pinned answer with every TTL `ttl`, and, with a
/// probe, only the addresses that accept a TCP connection (all of them if none does).
pub async fn stand_in(
    pin: &Pin,
    key: &Key,
    ttl: u32,
    probe: Option<Probe>,
    lifetimes: &Lifetimes,
    now: Instant,
) -> (Answer, Vec<IpAddr>) {
    let pinned = &pin.answer;
    let Ok(message) = Message::from_vec(pinned.body()) else {
        return (pinned.restamped(Kind::StandIn, ttl, now), Vec::new());
    };
    let addresses: Vec<IpAddr> = haven_dns::wire::answer_addresses(&message).collect();
    let Some(probe) = probe else {
        return (pinned.restamped(Kind::StandIn, ttl, now), addresses);
    };
    let live = live_addresses(&addresses, probe).await;
    if live.is_empty() || live.len() == addresses.len() {
        return (pinned.restamped(Kind::StandIn, ttl, now), addresses);
    }
    match keep_only(message, &live, key, lifetimes, now) {
        Some(trimmed) => (trimmed.restamped(Kind::StandIn, ttl, now), live),
        None => (pinned.restamped(Kind::StandIn, ttl, now), addresses),
    }
}

/// The addresses that accept a TCP connection on the probe's port within its timeout, all
/// probed at once.
async fn live_addresses(addresses: &[IpAddr], probe: Probe) -> Vec<IpAddr> {
    let mut probes = tokio::task::JoinSet::new();
    for &address in addresses {
        probes.spawn(async move {
            let target = SocketAddr::new(address, probe.port);
            let connect = tokio::net::TcpStream::connect(target);
            let live = matches!(
                tokio::time::timeout(probe.timeout, connect).await,
                Ok(Ok(_))
            );
            (address, live)
        });
    }
    let mut live = Vec::new();
    while let Some(result) = probes.join_next().await {
        if let Ok((address, true)) = result {
            live.push(address);
        }
    }
    live.sort_by_key(|address| addresses.iter().position(|a| a == address));
    live
}

/// The pinned message without the address records (and their signatures) not in `live`.
fn keep_only(
    mut message: Message,
    live: &[IpAddr],
    key: &Key,
    lifetimes: &Lifetimes,
    now: Instant,
) -> Option<Answer> {
    let trimmed_types: Vec<RecordType> = message
        .answers
        .iter()
        .filter(|record| matches!(record.data, RData::A(_) | RData::AAAA(_)))
        .map(|record| record.record_type())
        .collect();
    message.answers.retain(|record| match &record.data {
        RData::A(a) => live.contains(&IpAddr::V4(a.0)),
        RData::AAAA(aaaa) => live.contains(&IpAddr::V6(aaaa.0)),
        // A signature over a set we trimmed no longer verifies.
        RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::RRSIG(sig)) => {
            !trimmed_types.contains(&sig.input().type_covered)
        }
        _ => true,
    });
    let mut bytes = Vec::new();
    message.emit(&mut BinEncoder::new(&mut bytes)).ok()?;
    let answer = Answer::from_upstream(&bytes, key, lifetimes, now)?;
    (answer.kind == Kind::Positive).then_some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(name: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        for label in name.trim_end_matches('.').split('.') {
            bytes.push(label.len() as u8);
            bytes.extend_from_slice(label.as_bytes());
        }
        bytes.push(0);
        bytes
    }

    #[test]
    fn a_star_inside_matches_one_label_and_first_one_or_more() {
        let regional = Pattern::parse("DynamoDB.*.amazonaws.com.").unwrap();
        assert!(regional.matches(&wire("dynamodb.us-east-1.amazonaws.com")));
        assert!(!regional.matches(&wire("dynamodb.amazonaws.com")));
        assert!(!regional.matches(&wire("dynamodb.a.b.amazonaws.com")));
        assert!(!regional.matches(&wire("s3.us-east-1.amazonaws.com")));
        let below = Pattern::parse("*.haven.test").unwrap();
        assert!(below.matches(&wire("dynamodb.haven.test")));
        assert!(below.matches(&wire("dynamodb.us-east-1.haven.test")));
        assert!(!below.matches(&wire("haven.test")));
        let exact = Pattern::parse("haven.test").unwrap();
        assert!(exact.matches(&wire("haven.test")));
        assert!(!exact.matches(&wire("x.haven.test")));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["a..b", "", "a*.b", &"x".repeat(64), &"a.".repeat(130)] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }
}
