//! The resolver's policy: what each client gets, and when the upstreams are asked.
//!
//! A query whose answer is fresh in the cache is answered at once, on the listener's task, with no
//! allocation beyond the response. Any other query becomes a [`Reply::Later`]: it joins the one
//! resolution in flight for its key (or starts it, as a task of its own that finishes even if every
//! client gives up) and waits for it at most `answer_within` (RFC 8767's client response timer);
//! past that it gets what [`Resolver::fallback`] has. What a resolution makes of the upstreams'
//! reply ([`Resolver::fetch`]):
//!
//! - a positive answer is cached for its TTL and served; for a critical name it is also pinned;
//! - for a critical name, an empty answer (NODATA), NXDOMAIN, SERVFAIL or no answer at all is
//!   replaced by the pinned answer, every TTL the critical `ttl` (the stand-in, cached for that
//!   long), as long as the pin is younger than the critical `max_stale`; the substitution is
//!   logged and counted, and a refresher task asks the upstreams again every `refresh` until they
//!   give a positive answer (which replaces the stand-in at once) or the pin expires;
//! - otherwise a negative answer is cached as RFC 2308 says, SERVFAIL for `servfail_ttl`; and only
//!   when no upstream answered at all does a positive answer past its TTL, up to `max_stale`, get
//!   served stale with TTL `stale_ttl` (RFC 8767), and kept that long before the next attempt.
//!
//! Everything is bounded: resolutions in flight ([`MAX_RESOLUTIONS`]), clients waiting
//! ([`MAX_WAITING`]: beyond them a query gets the fallback at once), the cache and the pins by
//! bytes, each resolution by the upstreams' timeouts, each refresher by the pin's expiry.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use haven_dns::server::{Reply, Responder};
use haven_dns::wire::{self, CLASS_IN, Header, Question, Transport};
use hickory_proto::op::ResponseCode;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use crate::answer::{Answer, Kind, Lifetimes, SharedAnswer};
use crate::cache::Cache;
use crate::config::{CriticalConfig, ResolveConfig};
use crate::critical::{self, Pins, Unpinned};
use crate::key::{Key, display_name};
use crate::stats::Stats;
use crate::upstream::{self, Upstreams};

/// Resolutions in flight at once; a query that would start one more gets the fallback.
pub const MAX_RESOLUTIONS: usize = 4096;
/// Clients waiting for a resolution at once; more get the fallback at once.
pub const MAX_WAITING: usize = 16_384;
const TYPE_IXFR: u16 = 251;
const TYPE_AXFR: u16 = 252;

/// A resolution in flight: its answer arrives here, once.
type Resolution = watch::Receiver<Option<SharedAnswer>>;

/// The resolver, shared by the listeners, the control server and its own tasks.
#[derive(Clone)]
pub struct Resolver(Arc<Inner>);

pub struct Inner {
    cache: Cache,
    upstreams: Upstreams,
    critical: CriticalConfig,
    pins: Pins,
    /// Critical keys whose refresher runs.
    refreshing: Mutex<HashSet<Box<[u8]>>>,
    lifetimes: Lifetimes,
    stale_ttl: u32,
    answer_within: Duration,
    /// The resolution in flight for each key; its answer arrives on the channel.
    inflight: Mutex<HashMap<Box<[u8]>, Resolution>>,
    waiting: Semaphore,
    stats: Stats,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Resolver {
    pub fn new(config: &ResolveConfig) -> Resolver {
        let critical = config.critical.clone();
        Resolver(Arc::new(Inner {
            cache: Cache::new(config.cache_bytes),
            upstreams: Upstreams::new(config.upstreams.clone(), config.upstream_timeout),
            pins: Pins::new(critical.pins_bytes, critical.max_stale),
            critical,
            refreshing: Mutex::default(),
            lifetimes: Lifetimes {
                max_ttl: config.max_ttl,
                negative_max_ttl: config.negative_max_ttl,
                servfail_ttl: config.servfail_ttl,
                max_stale: config.max_stale,
            },
            stale_ttl: config.stale_ttl,
            answer_within: config.answer_within,
            inflight: Mutex::default(),
            waiting: Semaphore::new(MAX_WAITING),
            stats: Stats::default(),
        }))
    }

    /// Forgets the answers and pins of `name` (lower-case wire format), or everything; returns
    /// how many pins went.
    pub fn flush(&self, name: Option<&[u8]>) -> usize {
        self.0.cache.forget(name);
        let pins = self.0.pins.forget(name);
        let name = name.map_or_else(|| "every name".to_owned(), display_name);
        tracing::warn!(name, pins, "flushed: cached answers and pins forgotten");
        pins
    }

    /// Counters and sizes, for `GET /status`.
    pub fn status(&self) -> Value {
        let inner = &self.0;
        json!({
            "counters": inner.stats.to_json(),
            "cache": { "entries": inner.cache.len(), "bytes": inner.cache.bytes() },
            "pins": inner.pins.len(),
            "standing_in": lock(&inner.refreshing).len(),
            "resolutions_in_flight": lock(&inner.inflight).len(),
        })
    }
}

impl Responder for Resolver {
    fn respond(&self, query: &[u8], transport: Transport, response: &mut Vec<u8>) -> Reply {
        let mut scratch = Vec::new();
        let Some(question) = wire::read_query(query, &mut scratch, response) else {
            return if response.is_empty() {
                Reply::Nothing
            } else {
                Reply::Now
            };
        };
        if refuse(&question, response) {
            return Reply::Now;
        }
        let key = Key::of(&question);
        let now = Instant::now();
        if let Some(answer) = self.0.cache.get(&key)
            && answer.is_fresh(now)
        {
            Stats::add(&self.0.stats.cache_hits);
            self.0.count(&answer);
            answer.write(&question, transport, now, response);
            return Reply::Now;
        }
        Stats::add(&self.0.stats.cache_misses);
        let inner = self.0.clone();
        let query = query.to_vec();
        Reply::Later(Box::pin(async move {
            inner.answer_later(query, transport).await
        }))
    }
}

/// Answers what the resolver does not forward: BADVERS for EDNS above version 0, REFUSED for
/// classes other than IN and for zone transfers. Returns whether `response` holds that answer.
fn refuse(question: &Question, response: &mut Vec<u8>) -> bool {
    let header = Header {
        recursion_available: true,
        ..Header::default()
    };
    if question.unsupported_edns() {
        wire::write_badvers(question, header, response);
        return true;
    }
    if question.class != CLASS_IN || matches!(question.record_type, TYPE_AXFR | TYPE_IXFR) {
        let rcode = u16::from(ResponseCode::Refused) as u8;
        wire::write_echo(question, Header { rcode, ..header }, response);
        return true;
    }
    false
}

impl Inner {
    /// Counts an answer given to a client by what it is.
    fn count(&self, answer: &Answer) {
        match answer.kind {
            Kind::StandIn => Stats::add(&self.stats.substituted_answers),
            Kind::Stale => Stats::add(&self.stats.stale_answers),
            Kind::Failure => Stats::add(&self.stats.servfail_answers),
            Kind::Positive | Kind::Negative => {}
        }
    }

    /// The response to a query the cache could not answer.
    async fn answer_later(
        self: Arc<Self>,
        query: Vec<u8>,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let (mut scratch, mut response) = (Vec::new(), Vec::new());
        // The query was read once already; reading it again cannot fail.
        let question = wire::read_query(&query, &mut scratch, &mut response)?;
        let key = Key::of(&question);
        let answer = self.lookup(&key).await;
        self.count(&answer);
        answer.write(&question, transport, Instant::now(), &mut response);
        Some(response)
    }

    /// The answer of the resolution of `key`, or the fallback if it takes too long.
    async fn lookup(self: &Arc<Self>, key: &Key) -> SharedAnswer {
        let Ok(_waiting) = self.waiting.try_acquire() else {
            Stats::add(&self.stats.overloaded);
            return self.fallback(key);
        };
        let Some(mut resolution) = self.join(key) else {
            Stats::add(&self.stats.overloaded);
            return self.fallback(key);
        };
        let resolved =
            tokio::time::timeout(self.answer_within, resolution.wait_for(Option::is_some)).await;
        match resolved {
            Ok(Ok(answer)) => answer.clone().unwrap_or_else(|| self.fallback(key)),
            _ => self.fallback(key),
        }
    }

    /// The channel of the resolution of `key` in flight, started if there is none; `None` when
    /// [`MAX_RESOLUTIONS`] are in flight already.
    fn join(self: &Arc<Self>, key: &Key) -> Option<Resolution> {
        let mut inflight = lock(&self.inflight);
        // A resolution whose task is gone without answering (it cannot, short of a panic) is
        // replaced rather than joined.
        if let Some(resolution) = inflight.get(key.as_bytes())
            && resolution.has_changed().is_ok()
        {
            return Some(resolution.clone());
        }
        if inflight.len() >= MAX_RESOLUTIONS {
            return None;
        }
        let (sender, receiver) = watch::channel(None);
        inflight.insert(key.as_bytes().into(), receiver.clone());
        let inner = self.clone();
        let key = *key;
        tokio::spawn(async move {
            let answer = inner.fetch(&key).await;
            sender.send_replace(Some(answer));
            lock(&inner.inflight).remove(key.as_bytes());
        });
        Some(receiver)
    }

    /// What a client gets when the resolution takes too long or cannot start: a critical name's
    /// pinned answer, a stale one, or SERVFAIL.
    fn fallback(&self, key: &Key) -> SharedAnswer {
        let now = Instant::now();
        if self.is_critical(key)
            && let Ok(pin) = self.pins.get(key, now)
        {
            return Arc::new(pin.answer.restamped(Kind::StandIn, self.critical.ttl, now));
        }
        match self.cache.get(key) {
            Some(old) if old.may_serve_stale(now) => {
                Arc::new(old.restamped(Kind::Stale, self.stale_ttl, now))
            }
            _ => Arc::new(Answer::failure(key, &self.lifetimes, now)),
        }
    }

    fn is_critical(&self, key: &Key) -> bool {
        self.critical.patterns.iter().any(|p| p.matches(key.name()))
    }

    /// Asks the upstreams about `key` and applies the policy to their reply.
    async fn fetch(self: &Arc<Self>, key: &Key) -> SharedAnswer {
        let reply = self.upstreams.ask(key, &self.stats).await;
        let now = Instant::now();
        let answer = match reply {
            upstream::Reply::Answer(bytes) => {
                Answer::from_upstream(&bytes, key, &self.lifetimes, now)
            }
            upstream::Reply::Failed(Some(_)) => Some(Answer::failure(key, &self.lifetimes, now)),
            upstream::Reply::Failed(None) => None,
        };
        let critical = self.is_critical(key);
        let Some(answer) = answer else {
            if critical && let Some(stand_in) = self.stand_in(key, "no answer").await {
                return stand_in;
            }
            return self.stale_or_failure(key, now);
        };
        if answer.kind == Kind::Positive {
            return self.keep(key, Arc::new(answer), critical, now);
        }
        if critical && let Some(stand_in) = self.stand_in(key, what(&answer)).await {
            return stand_in;
        }
        let answer = Arc::new(answer);
        // A failure does not push out an answer that may still serve stale later.
        let keeps_stale = answer.kind == Kind::Failure
            && self
                .cache
                .get(key)
                .is_some_and(|old| old.may_serve_stale(now));
        if answer.lifetime > 0 && !keeps_stale {
            self.cache.insert(key, answer.clone());
        }
        answer
    }

    /// Caches a positive answer, and pins it if the name is critical.
    fn keep(&self, key: &Key, answer: SharedAnswer, critical: bool, now: Instant) -> SharedAnswer {
        if answer.lifetime > 0 {
            self.cache.insert(key, answer.clone());
        }
        if critical {
            self.pins.remember(key, &answer, now);
        }
        answer
    }

    /// No upstream answered: a positive answer past its TTL is served stale (RFC 8767) and kept
    /// `stale_ttl` before the upstreams are tried again; without one, SERVFAIL.
    fn stale_or_failure(&self, key: &Key, now: Instant) -> SharedAnswer {
        let answer = match self.cache.get(key) {
            Some(old) if old.may_serve_stale(now) => {
                tracing::info!(name = %key.display_name(), record_type = %key.type_name(),
                    "no upstream answers: serving the answer past its TTL (serve-stale)");
                Arc::new(old.restamped(Kind::Stale, self.stale_ttl, now))
            }
            _ => Arc::new(Answer::failure(key, &self.lifetimes, now)),
        };
        if answer.lifetime > 0 {
            self.cache.insert(key, answer.clone());
        }
        answer
    }

    /// Puts the pinned answer of a critical `key` in place of what the upstreams gave (`what`),
    /// if the pin may still stand in; logs and counts it, and makes sure a refresher runs.
    async fn stand_in(self: &Arc<Self>, key: &Key, what: &str) -> Option<SharedAnswer> {
        let now = Instant::now();
        let pin = match self.pins.get(key, now) {
            Ok(pin) => pin,
            Err(Unpinned::Missing) => return None,
            Err(Unpinned::Expired(age)) => {
                tracing::warn!(name = %key.display_name(), record_type = %key.type_name(),
                    upstream = what, age_secs = age.as_secs(),
                    "critical name: the last good answer is older than critical.max_stale_secs; \
                     the upstream's answer passes through");
                return None;
            }
        };
        let critical = &self.critical;
        let (answer, addresses) = critical::stand_in(
            &pin,
            key,
            critical.ttl,
            critical.probe,
            &self.lifetimes,
            now,
        )
        .await;
        let answer = Arc::new(answer);
        self.cache.insert(key, answer.clone());
        Stats::add(&self.stats.substitutions);
        tracing::warn!(name = %key.display_name(), record_type = %key.type_name(),
            upstream = what, addresses = ?addresses,
            last_good_secs_ago = now.saturating_duration_since(pin.confirmed).as_secs(),
            "critical name: answering its last good addresses instead of the upstream's answer");
        self.start_refresh(key);
        Some(answer)
    }

    fn start_refresh(self: &Arc<Self>, key: &Key) {
        if lock(&self.refreshing).insert(key.as_bytes().into()) {
            tokio::spawn(self.clone().refresh(*key));
        }
    }

    /// Asks the upstreams about a critical `key` every `refresh` while its stand-in is in place;
    /// ends when they give something else (a positive answer, or the pin has expired or been
    /// flushed), which is then what the cache holds.
    async fn refresh(self: Arc<Self>, key: Key) {
        let outcome = loop {
            tokio::time::sleep(self.critical.refresh).await;
            if self.pins.get(&key, Instant::now()).is_err() {
                break None;
            }
            let Some(mut resolution) = self.join(&key) else {
                continue;
            };
            let answer = resolution
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|answer| answer.clone());
            match answer.map(|answer| answer.kind) {
                Some(Kind::StandIn) | None => continue,
                kind => break kind,
            }
        };
        lock(&self.refreshing).remove(key.as_bytes());
        tracing::info!(name = %key.display_name(), record_type = %key.type_name(),
            upstream = ?outcome, "critical name: stand-in withdrawn, the upstream's answer is served");
    }
}

/// What the upstreams' answer was, in words, for the logs.
fn what(answer: &Answer) -> &'static str {
    match answer.kind {
        Kind::Failure => "SERVFAIL",
        _ if answer.rcode() == u16::from(ResponseCode::NXDomain) as u8 => "NXDOMAIN",
        _ => "an empty answer (NODATA)",
    }
}
