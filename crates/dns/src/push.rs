//! Push mode: publishing plans to a DNS server the user already runs (BIND, Knot, PowerDNS), by
//! RFC 2136 dynamic UPDATE signed with TSIG (RFC 8945).
//!
//! The October 2025 outage came from a late worker writing an old plan over a newer one. Here the
//! server itself refuses that: the zone holds the generation of the plan in effect as a TXT record,
//! `_generation.<zone>`, and every UPDATE carries a prerequisite on it — "this RRset exists with
//! exactly the generation I read" (RFC 2136 §2.4.2) or, for the first push, "this RRset does not
//! exist" (§2.4.3). The server checks prerequisites and applies the update in one atomic step, so a
//! push is a compare-and-set on the generation across the wire (I1): an update built from an older
//! state and sent late fails with NXRRSET (or YXRRSET) and changes nothing.
//!
//! Inside one UPDATE each managed name gets its new addresses added first, then only the addresses
//! not in the new set deleted, each by value; a whole RRset is never deleted. So no update can leave
//! a name without addresses (I2), even on a server that applied the records one by one. A name that
//! leaves the plan (its region removed from the inventory) keeps its last records: push mode never
//! empties a name; removing it is left to a person.
//!
//! A push reads before it writes: the generation record first, then the addresses of each managed
//! name. The order matters: generations only grow and every push changes the generation, so if the
//! prerequisite still holds when the update arrives, the addresses read after the generation are the
//! ones in the zone and the deletions are exact. The reads are plain queries; they cannot break
//! I1 or I2 (a forged answer can only make the prerequisite fail or leave a stale extra address), so
//! only the UPDATE is signed, and its answer is believed only once its TSIG signature verifies.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm, TsigError};
use hickory_proto::rr::rdata::{A, AAAA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::plan::{Generation, Plan};
use crate::zone::generation_name;

/// How far the server's clock may be from ours when it checks the TSIG time (RFC 8945 suggests 300).
const TSIG_FUDGE_SECS: u16 = 300;

/// The `[push]` section of the DNS configuration file.
///
/// ```toml
/// [push]
/// server = "192.0.2.53:53"    # the zone's primary server; UPDATE goes there over TCP
/// key_name = "haven-push"     # the TSIG key as the server knows it
/// algorithm = "hmac-sha256"   # or hmac-sha384, hmac-sha512
/// secret = "base64..."        # as printed by `keymgr -t` or `tsig-keygen`
/// timeout_ms = 5000           # per exchange with the server
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    pub server: SocketAddr,
    pub key_name: String,
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    pub secret: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// Everything but the secret, so that logging a configuration never leaks the key.
impl std::fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConfig")
            .field("server", &self.server)
            .field("key_name", &self.key_name)
            .field("algorithm", &self.algorithm)
            .field("timeout_ms", &self.timeout_ms)
            .finish_non_exhaustive()
    }
}

fn default_algorithm() -> String {
    "hmac-sha256".to_owned()
}

fn default_timeout_ms() -> u64 {
    5000
}

/// What a push did. Every variant leaves the server consistent; only [`PushError`] means the
/// server's state is unknown or the push could not be attempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The server now holds the plan; `previous` is the generation it replaced (None on the first
    /// push to this zone).
    Applied { previous: Option<Generation> },
    /// Nothing was sent: the server already holds this generation or a newer one.
    UpToDate { current: Generation },
    /// The server refused the update because its generation record was no longer the one read
    /// (NXRRSET or YXRRSET): another push got there first, and nothing changed. `current` is the
    /// generation the server holds now, read right after.
    PrerequisiteFailed { current: Option<Generation> },
}

impl PushOutcome {
    /// True when the server holds `generation` or a newer one: there is nothing left to push.
    pub fn settles(self, generation: Generation) -> bool {
        match self {
            PushOutcome::Applied { .. } | PushOutcome::UpToDate { .. } => true,
            PushOutcome::PrerequisiteFailed { current } => current >= Some(generation),
        }
    }
}

/// Why a push did not complete.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("push configuration: {0}")]
    Config(String),
    #[error("plan cannot be pushed: {0}")]
    InvalidPlan(String),
    #[error("DNS server {server}: {source}")]
    Io {
        server: SocketAddr,
        source: std::io::Error,
    },
    #[error("DNS server {server} did not answer within {timeout:?}")]
    Timeout {
        server: SocketAddr,
        timeout: Duration,
    },
    #[error("DNS server sent an unusable answer: {0}")]
    BadResponse(String),
    /// The update's answer is not signed with our key: it may not come from the server.
    #[error("the answer to the update does not carry a valid TSIG signature: {0}")]
    Unverified(String),
    /// NOTAUTH: the server does not accept our key, signature or time (`tsig_error` says which), or
    /// is not authoritative for the zone.
    #[error("DNS server refused our authority (NOTAUTH, TSIG error {tsig_error:?})")]
    NotAuth { tsig_error: Option<TsigError> },
    /// REFUSED: the server's policy does not allow this key to update this zone.
    #[error("DNS server refused the update (REFUSED)")]
    Refused,
    #[error("DNS server answered {0}")]
    Failed(ResponseCode),
    /// The generation record holds something Haven did not write; a person must look at it.
    #[error("the generation record {name} holds {found:?}, not one generation number")]
    CorruptGeneration { name: String, found: Vec<String> },
}

/// Publishes plans to one server with one TSIG key.
#[derive(Clone)]
pub struct Publisher {
    server: SocketAddr,
    signer: TSigner,
    timeout: Duration,
}

/// The server and key name; never the secret.
impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("server", &self.server)
            .field("key_name", self.signer.signer_name())
            .finish_non_exhaustive()
    }
}

/// An UPDATE built from the server's state at one moment, ready to send. Sending it later (however
/// much later) is safe: its prerequisite names the generation it was built on.
#[derive(Clone, Debug)]
pub struct Update {
    message: Message,
    previous: Option<Generation>,
}

/// What [`Publisher::prepare`] found.
#[derive(Clone, Debug)]
pub enum Prepared {
    Send(Update),
    UpToDate { current: Generation },
}

impl Publisher {
    /// Validates the configuration: a known HMAC algorithm, a key name, a base64 secret.
    pub fn new(config: &PushConfig) -> Result<Self, PushError> {
        let key_name = Name::from_ascii(&config.key_name)
            .map_err(|e| PushError::Config(format!("key_name {:?}: {e}", config.key_name)))?;
        let algorithm = TsigAlgorithm::from_name(
            Name::from_ascii(&config.algorithm).map_err(|e| PushError::Config(e.to_string()))?,
        );
        if !matches!(
            algorithm,
            TsigAlgorithm::HmacSha256 | TsigAlgorithm::HmacSha384 | TsigAlgorithm::HmacSha512
        ) {
            return Err(PushError::Config(format!(
                "algorithm {:?}: use hmac-sha256, hmac-sha384 or hmac-sha512",
                config.algorithm
            )));
        }
        let secret = base64::engine::general_purpose::STANDARD
            .decode(config.secret.trim())
            .map_err(|e| PushError::Config(format!("secret is not base64: {e}")))?;
        let signer = TSigner::new(secret, algorithm, key_name, TSIG_FUDGE_SECS)
            .map_err(|e| PushError::Config(e.to_string()))?;
        Ok(Publisher {
            server: config.server,
            signer,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
        })
    }

    /// Makes the server hold `plan`, unless it already holds it or a newer one.
    pub async fn publish(&self, plan: &Plan) -> Result<PushOutcome, PushError> {
        match self.prepare(plan).await? {
            Prepared::Send(update) => self.send(update).await,
            Prepared::UpToDate { current } => Ok(PushOutcome::UpToDate { current }),
        }
    }

    /// Reads the server's generation and current addresses and builds the UPDATE that moves it to
    /// `plan`; nothing is written.
    pub async fn prepare(&self, plan: &Plan) -> Result<Prepared, PushError> {
        let zone = parse_name(&plan.zone)?;
        check_plan(plan, &zone)?;
        let mut connection = self.connect().await?;
        // The generation first, then the addresses: see the module documentation for why.
        let previous = connection.generation(&zone).await?;
        if let Some(current) = previous.filter(|&current| current >= plan.generation) {
            return Ok(Prepared::UpToDate { current });
        }
        let mut in_zone = BTreeSet::new();
        for name in plan.record_sets.keys() {
            let name = parse_name(name)?;
            for address in connection.addresses(&name).await? {
                in_zone.insert((name.clone(), address));
            }
        }
        let message = update_message(plan, &zone, previous, &in_zone)?;
        Ok(Prepared::Send(Update { message, previous }))
    }

    /// Signs and sends a prepared update, and interprets the server's verified answer.
    pub async fn send(&self, update: Update) -> Result<PushOutcome, PushError> {
        let Update {
            mut message,
            previous,
        } = update;
        let mut verifier = message
            .finalize(&self.signer, unix_time())
            .map_err(|e| PushError::Config(format!("cannot sign with the TSIG key: {e}")))?
            .ok_or_else(|| PushError::Config("the TSIG signer made no verifier".to_owned()))?;
        let mut connection = self.connect().await?;
        let answer = connection.exchange(&message).await?;
        let response = match verifier.verify(&answer) {
            Ok(response) => response.into_message(),
            Err(error) => return Err(unverified_answer(&answer, &error.to_string())),
        };
        check_reply_to(&message, &response)?;
        match response.response_code {
            ResponseCode::NoError => Ok(PushOutcome::Applied { previous }),
            ResponseCode::NXRRSet | ResponseCode::YXRRSet => {
                let zone = message.queries[0].name().clone();
                let current = connection.generation(&zone).await?;
                Ok(PushOutcome::PrerequisiteFailed { current })
            }
            ResponseCode::NotAuth => Err(PushError::NotAuth { tsig_error: None }),
            ResponseCode::Refused => Err(PushError::Refused),
            code => Err(PushError::Failed(code)),
        }
    }

    async fn connect(&self) -> Result<Connection, PushError> {
        let server = self.server;
        let stream = within(self.timeout, server, TcpStream::connect(server)).await?;
        Ok(Connection {
            stream,
            server,
            timeout: self.timeout,
        })
    }
}

/// Follows the plan in effect (the control loop's watch channel) and pushes each new one, retrying
/// with backoff until the server holds it or a newer plan replaces it. Returns when the sender is
/// dropped. Run it with `tokio::spawn(push::follow(publisher, control.plans()))`.
pub async fn follow(publisher: Publisher, mut plans: watch::Receiver<Arc<Plan>>) {
    const FIRST_RETRY: Duration = Duration::from_millis(500);
    const LAST_RETRY: Duration = Duration::from_secs(30);
    let mut retry = FIRST_RETRY;
    loop {
        let plan = Arc::clone(&plans.borrow_and_update());
        if push_once(&publisher, &plan).await {
            retry = FIRST_RETRY;
            if plans.changed().await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            changed = plans.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(retry) => retry = (retry * 2).min(LAST_RETRY),
        }
    }
}

/// One attempt of [`follow`]; true when the plan needs no further push.
async fn push_once(publisher: &Publisher, plan: &Plan) -> bool {
    let generation = plan.generation;
    match publisher.publish(plan).await {
        Ok(outcome) => {
            tracing::info!(generation, ?outcome, server = %publisher.server, "DNS push");
            outcome.settles(generation)
        }
        Err(error) => {
            tracing::warn!(generation, %error, server = %publisher.server, "DNS push failed");
            false
        }
    }
}

/// One TCP connection to the server: DNS messages framed by a two-byte length (RFC 1035 §4.2.2).
struct Connection {
    stream: TcpStream,
    server: SocketAddr,
    timeout: Duration,
}

impl Connection {
    async fn exchange(&mut self, message: &Message) -> Result<Vec<u8>, PushError> {
        let bytes = message
            .to_vec()
            .map_err(|e| PushError::InvalidPlan(format!("cannot encode the message: {e}")))?;
        let length = u16::try_from(bytes.len())
            .map_err(|_| PushError::InvalidPlan("the update exceeds 64 KiB".to_owned()))?;
        // Length and message in one write: two small writes would wait on Nagle's algorithm.
        let framed = [&length.to_be_bytes()[..], &bytes].concat();
        let (server, timeout) = (self.server, self.timeout);
        within(timeout, server, async {
            self.stream.write_all(&framed).await?;
            let mut length = [0; 2];
            self.stream.read_exact(&mut length).await?;
            let mut answer = vec![0; usize::from(u16::from_be_bytes(length))];
            self.stream.read_exact(&mut answer).await?;
            Ok(answer)
        })
        .await
    }

    /// An unsigned query; the answer records of `name` and `record_type`.
    async fn query(
        &mut self,
        name: &Name,
        record_type: RecordType,
    ) -> Result<Vec<RData>, PushError> {
        let mut message = Message::query();
        message.metadata.recursion_desired = false;
        message.add_query(Query::query(name.clone(), record_type));
        let answer = self.exchange(&message).await?;
        let response = Message::from_vec(&answer)
            .map_err(|e| PushError::BadResponse(format!("undecodable answer: {e}")))?;
        check_reply_to(&message, &response)?;
        if !matches!(
            response.response_code,
            ResponseCode::NoError | ResponseCode::NXDomain
        ) {
            return Err(PushError::Failed(response.response_code));
        }
        Ok(response
            .answers
            .into_iter()
            .filter(|record| record.name == *name && record.record_type() == record_type)
            .map(|record| record.data)
            .collect())
    }

    async fn addresses(&mut self, name: &Name) -> Result<Vec<IpAddr>, PushError> {
        let mut addresses = Vec::new();
        for record_type in [RecordType::A, RecordType::AAAA] {
            for data in self.query(name, record_type).await? {
                match data {
                    RData::A(A(v4)) => addresses.push(IpAddr::V4(v4)),
                    RData::AAAA(AAAA(v6)) => addresses.push(IpAddr::V6(v6)),
                    _ => {}
                }
            }
        }
        Ok(addresses)
    }

    async fn generation(&mut self, zone: &Name) -> Result<Option<Generation>, PushError> {
        let name = generation_name(zone);
        let mut texts = Vec::new();
        for data in self.query(&name, RecordType::TXT).await? {
            if let RData::TXT(txt) = data {
                texts.extend(
                    txt.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned()),
                );
            }
        }
        match texts.as_slice() {
            [] => Ok(None),
            [text] => text
                .parse()
                .map(Some)
                .map_err(|_| corrupt(&name, texts.clone())),
            _ => Err(corrupt(&name, texts)),
        }
    }
}

fn corrupt(name: &Name, found: Vec<String>) -> PushError {
    PushError::CorruptGeneration {
        name: name.to_string(),
        found,
    }
}

/// The UPDATE moving the zone from generation `previous` (whose addresses are `in_zone`) to `plan`.
fn update_message(
    plan: &Plan,
    zone: &Name,
    previous: Option<Generation>,
    in_zone: &BTreeSet<(Name, IpAddr)>,
) -> Result<Message, PushError> {
    let mut message = Message::query();
    message.metadata.op_code = OpCode::Update;
    message.metadata.recursion_desired = false;
    message.add_zone(Query::query(zone.clone(), RecordType::SOA));

    let marker = generation_name(zone);
    message.add_pre_requisite(match previous {
        // §2.4.2: the RRset exists and is exactly {previous}; TTL zero, class IN.
        Some(previous) => generation_record(&marker, previous, 0),
        // §2.4.3: the RRset does not exist; class NONE, no data.
        None => {
            let mut absent = Record::update0(marker.clone(), 0, RecordType::TXT);
            absent.dns_class = DNSClass::NONE;
            absent
        }
    });

    let mut wanted = BTreeSet::new();
    for set in plan.record_sets.values() {
        let name = parse_name(&set.name)?;
        for &address in &set.addresses {
            // §2.5.1: add; re-adding a present address refreshes its TTL.
            message.add_update(address_record(&name, address, set.ttl));
            wanted.insert((name.clone(), address));
        }
    }
    for (name, address) in in_zone.difference(&wanted) {
        // §2.5.4: delete this one RR by value (class NONE, TTL zero), after the additions.
        let mut stale = address_record(name, *address, 0);
        stale.dns_class = DNSClass::NONE;
        message.add_update(stale);
    }

    message.add_update(generation_record(&marker, plan.generation, 0));
    if let Some(previous) = previous {
        let mut old = generation_record(&marker, previous, 0);
        old.dns_class = DNSClass::NONE;
        message.add_update(old);
    }
    Ok(message)
}

/// The generation as a TXT record. Its TTL is zero: it says what the server holds now, and a
/// cached copy would only mislead.
fn generation_record(name: &Name, generation: Generation, ttl: u32) -> Record {
    let text = TXT::new(vec![generation.to_string()]);
    Record::from_rdata(name.clone(), ttl, RData::TXT(text))
}

fn address_record(name: &Name, address: IpAddr, ttl: u32) -> Record {
    let data = match address {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name.clone(), ttl, data)
}

/// Refuses, at the point of write, a plan that would empty a name (I2) or reach outside its zone.
fn check_plan(plan: &Plan, zone: &Name) -> Result<(), PushError> {
    for set in plan.record_sets.values() {
        if set.addresses.is_empty() {
            return Err(PushError::InvalidPlan(format!(
                "{} has no address",
                set.name
            )));
        }
        if !zone.zone_of(&parse_name(&set.name)?) {
            return Err(PushError::InvalidPlan(format!(
                "{} is outside {zone}",
                set.name
            )));
        }
    }
    Ok(())
}

fn parse_name(name: &str) -> Result<Name, PushError> {
    Name::from_ascii(name)
        .map(|name| name.to_lowercase())
        .map_err(|e| PushError::InvalidPlan(format!("{name:?} is not a domain name: {e}")))
}

/// The answer must be a response to this very message.
fn check_reply_to(request: &Message, response: &Message) -> Result<(), PushError> {
    if response.metadata.id != request.metadata.id
        || response.metadata.message_type != MessageType::Response
    {
        return Err(PushError::BadResponse(
            "the answer is not a response to our message".to_owned(),
        ));
    }
    Ok(())
}

/// An answer whose signature does not verify. A server that rejects our key, signature or time
/// answers NOTAUTH with an unsigned TSIG record saying why (RFC 8945 §5.2); anything else unsigned is
/// not to be believed. Either way the push failed; a forger can only make us report failure.
fn unverified_answer(answer: &[u8], reason: &str) -> PushError {
    match Message::from_vec(answer) {
        Ok(response) if response.response_code == ResponseCode::NotAuth => PushError::NotAuth {
            tsig_error: response.signature.as_ref().and_then(|tsig| tsig.data.error),
        },
        _ => PushError::Unverified(reason.to_owned()),
    }
}

async fn within<T>(
    timeout: Duration,
    server: SocketAddr,
    work: impl Future<Output = std::io::Result<T>>,
) -> Result<T, PushError> {
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(PushError::Io { server, source }),
        Err(_) => Err(PushError::Timeout { server, timeout }),
    }
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RecordSet;

    fn plan(generation: Generation, addresses: &[&str]) -> Plan {
        let name = "dynamodb.us-east-1.haven.test.".to_owned();
        let set = RecordSet {
            name: name.clone(),
            addresses: addresses.iter().map(|ip| ip.parse().unwrap()).collect(),
            ttl: 30,
            degraded: false,
        };
        Plan {
            generation,
            created_at_ms: 0,
            zone: "haven.test.".to_owned(),
            record_sets: [(name, set)].into(),
        }
    }

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    /// I2 in the message itself: additions first, then deletions of single RRs (class NONE) that the
    /// plan does not keep; never a class ANY (whole RRset or whole name) deletion.
    #[test]
    fn an_update_adds_before_it_deletes_and_deletes_only_dropped_addresses() {
        let regional = name("dynamodb.us-east-1.haven.test.");
        let in_zone: BTreeSet<(Name, IpAddr)> = ["10.0.0.1", "10.0.0.2"]
            .iter()
            .map(|ip| (regional.clone(), ip.parse().unwrap()))
            .collect();

        let message = update_message(
            &plan(8, &["10.0.0.2", "10.0.0.3"]),
            &name("haven.test."),
            Some(7),
            &in_zone,
        )
        .unwrap();

        let updates: Vec<(String, DNSClass, String)> = message
            .updates()
            .iter()
            .map(|r| (r.name.to_string(), r.dns_class, r.data.to_string()))
            .collect();
        let generation = "_generation.haven.test.".to_owned();
        assert_eq!(
            updates,
            [
                (regional.to_string(), DNSClass::IN, "10.0.0.2".to_owned()),
                (regional.to_string(), DNSClass::IN, "10.0.0.3".to_owned()),
                (regional.to_string(), DNSClass::NONE, "10.0.0.1".to_owned()),
                (generation.clone(), DNSClass::IN, "8".to_owned()),
                (generation.clone(), DNSClass::NONE, "7".to_owned()),
            ]
        );
        let prerequisites = message.prerequisites();
        assert_eq!(prerequisites.len(), 1);
        assert_eq!(prerequisites[0].dns_class, DNSClass::IN);
        assert_eq!(prerequisites[0].data.to_string(), "7");
    }

    #[test]
    fn a_plan_with_an_empty_record_set_is_refused_before_anything_is_sent() {
        let empty = plan(2, &[]);

        let refused = check_plan(&empty, &name("haven.test."));

        assert!(
            matches!(refused, Err(PushError::InvalidPlan(_))),
            "{refused:?}"
        );
    }

    /// A NOERROR that does not carry our key's signature could come from anyone: it is not taken
    /// as "applied".
    #[tokio::test]
    async fn an_unsigned_success_answer_is_not_believed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let forger = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut length = [0; 2];
            stream.read_exact(&mut length).await.unwrap();
            let mut request = vec![0; usize::from(u16::from_be_bytes(length))];
            stream.read_exact(&mut request).await.unwrap();
            let id = Message::from_vec(&request).unwrap().metadata.id;
            let answer = Message::response(id, OpCode::Update).to_vec().unwrap();
            let framed = [&(answer.len() as u16).to_be_bytes()[..], &answer].concat();
            stream.write_all(&framed).await.unwrap();
        });
        let publisher = Publisher::new(&PushConfig {
            server,
            key_name: "haven-push".to_owned(),
            algorithm: default_algorithm(),
            secret: "c2VjcmV0".to_owned(),
            timeout_ms: 5000,
        })
        .unwrap();
        let zone = name("haven.test.");
        let message = update_message(&plan(1, &["10.0.0.1"]), &zone, None, &BTreeSet::new());
        let update = Update {
            message: message.unwrap(),
            previous: None,
        };

        let outcome = publisher.send(update).await;

        assert!(
            matches!(outcome, Err(PushError::Unverified(_))),
            "{outcome:?}"
        );
        forger.await.unwrap();
    }
}
