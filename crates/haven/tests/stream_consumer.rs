//! A stream consumer against writers, shard rollovers and a SIGKILL: 8 writers send mixed PutItem,
//! UpdateItem, DeleteItem, BatchWriteItem and TransactWriteItems for 30 s (`HAVEN_CONSUMER_SECS`
//! changes it) to a durable server whose shards roll over every 3 s, while a consumer follows every
//! shard of the stream, parents before children. Half-way the server is killed with SIGKILL and
//! restarted on the same data; writers and consumer carry on with new clients, the consumer from
//! its last sequence number.
//!
//! Each writer owns its keys, so it knows the exact change each acknowledged write made (its
//! model: every write stamps a unique `n`); a write whose answer was lost to the kill is resolved
//! by reading its keys back. At the end, for every item, the records the consumer read must be
//! exactly the model's changes, in order, each once, with old and new images equal to the model's.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, PutRequest, StreamViewType, TransactWriteItem, Update,
    WriteRequest,
};
use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use common::HavenServer;
use common::streams::create_streamed_table;

const TABLE: &str = "orders";
const WRITERS: u64 = 8;
const KEYS_PER_WRITER: u64 = 10;

/// An item's state as the model sees it: its `n` (the write that made it) and `v`.
type State = Option<(String, String)>;
/// One expected change: the state before and after.
type Change = (State, State);

/// The clients of the server currently running (replaced after the restart).
struct Endpoint {
    dynamo: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
}

type Shared = Arc<RwLock<Arc<Endpoint>>>;

fn endpoint(server: &HavenServer) -> Arc<Endpoint> {
    Arc::new(Endpoint {
        dynamo: server.client_without_retries(),
        streams: server.streams_client(),
    })
}

fn current(shared: &Shared) -> Arc<Endpoint> {
    shared.read().unwrap().clone()
}

/// SplitMix64, seeded per writer.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.into())
}

fn num(text: &str) -> AttributeValue {
    AttributeValue::N(text.into())
}

/// One write a writer plans: the keys it touches and the state each will have.
struct Plan {
    kind: u64,
    targets: Vec<(String, State)>,
}

struct Writer {
    id: u64,
    rng: Rng,
    ops: u64,
    model: HashMap<String, State>,
    changes: HashMap<String, Vec<Change>>,
    /// Writes whose answer was lost (resolved by reading back).
    uncertain: usize,
}

impl Writer {
    fn key(&mut self) -> String {
        format!("w{}-k{}", self.id, self.rng.below(KEYS_PER_WRITER))
    }

    fn next_state(&mut self) -> State {
        self.ops += 1;
        Some((
            format!("{}", self.id * 1_000_000_000 + self.ops),
            format!("{}", self.rng.below(1000)),
        ))
    }

    fn plan(&mut self) -> Plan {
        let kind = self.rng.below(100);
        let count = match kind {
            0..=74 => 1,
            75..=89 => 3,
            _ => 2,
        };
        let mut targets: Vec<(String, State)> = Vec::new();
        while targets.len() < count {
            let key = self.key();
            if targets.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let deleting = matches!(kind, 60..=74) || (kind >= 75 && self.rng.below(3) == 0);
            let state = if deleting { None } else { self.next_state() };
            targets.push((key, state));
        }
        Plan { kind, targets }
    }

    /// Records the changes of an applied plan in the model.
    fn apply(&mut self, plan: &Plan) {
        for (key, new) in &plan.targets {
            let old = self.model.get(key).cloned().flatten();
            if old != *new {
                self.changes
                    .entry(key.clone())
                    .or_default()
                    .push((old, new.clone()));
            }
            self.model.insert(key.clone(), new.clone());
        }
    }
}

fn item(key: &str, state: &(String, String)) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), s(key)),
        ("n".to_string(), num(&state.0)),
        ("v".to_string(), num(&state.1)),
    ])
}

fn key_of(key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), s(key))])
}

fn outcome<T, E: std::fmt::Debug>(result: Result<T, E>) -> Result<(), String> {
    result.map(drop).map_err(|e| format!("{e:?}"))
}

/// Sends a plan; Err when the answer was not a success (the outcome is then unknown).
async fn send(client: &aws_sdk_dynamodb::Client, plan: &Plan) -> Result<(), String> {
    let (key, state) = &plan.targets[0];
    match (plan.kind, state) {
        (_, None) if plan.targets.len() == 1 => {
            let delete = client.delete_item().table_name(TABLE).key("pk", s(key));
            outcome(delete.send().await)
        }
        (0..=34, Some(state)) => {
            let put = client
                .put_item()
                .table_name(TABLE)
                .set_item(Some(item(key, state)));
            outcome(put.send().await)
        }
        (35..=59, Some(state)) => {
            let update = client
                .update_item()
                .table_name(TABLE)
                .key("pk", s(key))
                .update_expression("SET n = :n, v = :v")
                .expression_attribute_values(":n", num(&state.0))
                .expression_attribute_values(":v", num(&state.1));
            outcome(update.send().await)
        }
        (75..=89, _) => send_batch(client, plan).await,
        _ => send_transaction(client, plan).await,
    }
}

async fn send_batch(client: &aws_sdk_dynamodb::Client, plan: &Plan) -> Result<(), String> {
    let writes = plan.targets.iter().map(|(key, state)| match state {
        Some(state) => WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .set_item(Some(item(key, state)))
                    .build()
                    .unwrap(),
            )
            .build(),
        None => WriteRequest::builder()
            .delete_request(
                aws_sdk_dynamodb::types::DeleteRequest::builder()
                    .set_key(Some(key_of(key)))
                    .build()
                    .unwrap(),
            )
            .build(),
    });
    let batch = client
        .batch_write_item()
        .request_items(TABLE, writes.collect());
    let answer = batch.send().await.map_err(|e| format!("{e:?}"))?;
    match answer.unprocessed_items().map_or(0, |u| u.len()) {
        0 => Ok(()),
        _ => Err("unprocessed items".into()),
    }
}

async fn send_transaction(client: &aws_sdk_dynamodb::Client, plan: &Plan) -> Result<(), String> {
    let actions = plan.targets.iter().map(|(key, state)| match state {
        Some(state) if key.ends_with('0') || key.ends_with('5') => TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(TABLE)
                    .set_key(Some(key_of(key)))
                    .update_expression("SET n = :n, v = :v")
                    .expression_attribute_values(":n", num(&state.0))
                    .expression_attribute_values(":v", num(&state.1))
                    .build()
                    .unwrap(),
            )
            .build(),
        Some(state) => TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(TABLE)
                    .set_item(Some(item(key, state)))
                    .build()
                    .unwrap(),
            )
            .build(),
        None => TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(TABLE)
                    .set_key(Some(key_of(key)))
                    .build()
                    .unwrap(),
            )
            .build(),
    });
    let transaction = client
        .transact_write_items()
        .set_transact_items(Some(actions.collect()));
    outcome(transaction.send().await)
}

/// The state of `key` on the server, read with a consistent GetItem (retried until it answers).
async fn read_state(shared: &Shared, key: &str) -> State {
    loop {
        let client = current(shared).dynamo.clone();
        match client
            .get_item()
            .table_name(TABLE)
            .key("pk", s(key))
            .consistent_read(true)
            .send()
            .await
        {
            Ok(out) => {
                return out.item.map(|item| {
                    let text = |name: &str| item[name].as_n().unwrap().clone();
                    (text("n"), text("v"))
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Finds out whether a write whose answer was lost was applied: all its keys hold the planned
/// states, or all still hold the model's (a batch and a transaction are atomic in Haven).
async fn resolve(writer: &mut Writer, shared: &Shared, plan: &Plan) {
    let mut applied = Vec::new();
    for (key, planned) in &plan.targets {
        let actual = read_state(shared, key).await;
        let before = writer.model.get(key).cloned().flatten();
        if actual == *planned && actual != before {
            applied.push(true);
        } else if actual == before {
            applied.push(actual == *planned);
        } else {
            panic!("{key}: neither the model's {before:?} nor the planned {planned:?}: {actual:?}");
        }
    }
    let changed: Vec<bool> = plan
        .targets
        .iter()
        .zip(&applied)
        .filter(|((key, planned), _)| writer.model.get(key).cloned().flatten() != *planned)
        .map(|(_, applied)| *applied)
        .collect();
    assert!(
        changed.iter().all(|a| *a) || changed.iter().all(|a| !*a),
        "a write was applied in part: {changed:?}"
    );
    if changed.first() == Some(&true) {
        writer.apply(plan);
    }
}

async fn write_until(id: u64, shared: Shared, deadline: Instant) -> Writer {
    let mut writer = Writer {
        id,
        rng: Rng(id * 7919 + 1),
        ops: 0,
        model: HashMap::new(),
        changes: HashMap::new(),
        uncertain: 0,
    };
    while Instant::now() < deadline {
        let plan = writer.plan();
        let client = current(&shared).dynamo.clone();
        match send(&client, &plan).await {
            Ok(()) => writer.apply(&plan),
            Err(_) => {
                writer.uncertain += 1;
                resolve(&mut writer, &shared, &plan).await;
            }
        }
    }
    writer
}

/// What the consumer read, per item, and how far it got in each shard.
#[derive(Default)]
struct Consumer {
    changes: HashMap<String, Vec<Change>>,
    /// Per shard: the iterator to continue with, the last sequence number read, whether drained.
    shards: HashMap<String, (Option<String>, Option<String>, bool)>,
    records: usize,
    last_sequence: String,
}

fn state_of(
    image: Option<&HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>,
) -> State {
    image.map(|image| {
        let text = |name: &str| image[name].as_n().unwrap().clone();
        (text("n"), text("v"))
    })
}

impl Consumer {
    /// One pass over the shards in lineage order; returns how many records it read. A shard is
    /// read only once its parent is drained.
    async fn pass(&mut self, shared: &Shared, arn: &str) -> Result<usize, String> {
        let client = current(shared).streams.clone();
        let shards = common::streams::shards_checked(&client, arn).await?;
        let mut read = 0;
        for shard in shards {
            let id = shard.shard_id().unwrap().to_owned();
            if let Some(parent) = shard.parent_shard_id()
                && self.shards.get(parent).is_some_and(|state| !state.2)
            {
                return Ok(read); // the parent is not drained yet
            }
            let state = self.shards.entry(id.clone()).or_default();
            if state.2 {
                continue;
            }
            read += self.read_shard(&client, arn, &id).await?;
            if !self.shards[&id].2 {
                return Ok(read); // the open shard: its children do not exist yet
            }
        }
        Ok(read)
    }

    async fn read_shard(
        &mut self,
        client: &aws_sdk_dynamodbstreams::Client,
        arn: &str,
        shard: &str,
    ) -> Result<usize, String> {
        let mut read = 0;
        loop {
            let (iterator, last, _) = self.shards[shard].clone();
            let iterator = match iterator {
                Some(iterator) => iterator,
                None => {
                    let (kind, number) = match &last {
                        Some(last) => (ShardIteratorType::AfterSequenceNumber, Some(last.clone())),
                        None => (ShardIteratorType::TrimHorizon, None),
                    };
                    client
                        .get_shard_iterator()
                        .stream_arn(arn)
                        .shard_id(shard)
                        .shard_iterator_type(kind)
                        .set_sequence_number(number)
                        .send()
                        .await
                        .map_err(|e| format!("GetShardIterator: {:?}", e.code()))?
                        .shard_iterator
                        .unwrap()
                }
            };
            let page = match client.get_records().shard_iterator(&iterator).send().await {
                Ok(page) => page,
                Err(error) => {
                    // The iterator is dropped; the next try starts again after the last record.
                    self.shards.get_mut(shard).unwrap().0 = None;
                    return Err(format!("GetRecords: {:?}", error.code()));
                }
            };
            let count = page.records().len();
            for record in page.records() {
                let d = record.dynamodb().unwrap();
                let number = d.sequence_number().unwrap().to_owned();
                assert!(number > self.last_sequence, "records out of log order");
                self.last_sequence = number.clone();
                let key = d.keys().unwrap()["pk"].as_s().unwrap().clone();
                let change = (state_of(d.old_image()), state_of(d.new_image()));
                self.changes.entry(key).or_default().push(change);
                self.shards.get_mut(shard).unwrap().1 = Some(number);
            }
            read += count;
            self.records += count;
            let state = self.shards.get_mut(shard).unwrap();
            state.0 = page.next_shard_iterator.clone();
            if page.next_shard_iterator.is_none() {
                state.2 = true;
                return Ok(read);
            }
            if count == 0 {
                return Ok(read);
            }
        }
    }
}

/// Follows the stream until `stop` is set and a pass after it read nothing.
async fn consume(shared: Shared, arn: String, stop: Arc<Mutex<bool>>) -> Consumer {
    let mut consumer = Consumer::default();
    loop {
        let stopping = *stop.lock().unwrap();
        match consumer.pass(&shared, &arn).await {
            Ok(0) if stopping => return consumer,
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_sees_every_acknowledged_write_once_in_order_across_rollovers_and_a_crash() {
    let seconds: u64 = std::env::var("HAVEN_CONSUMER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let args = [
        "--data-dir",
        data.as_str(),
        "--stream-shard-interval-secs",
        "3",
    ];
    let mut server = HavenServer::start_with(&args);
    let client = server.client();
    let arn = create_streamed_table(&client, TABLE, Some(StreamViewType::NewAndOldImages))
        .await
        .unwrap();
    let shared: Shared = Arc::new(RwLock::new(endpoint(&server)));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| tokio::spawn(write_until(id, shared.clone(), deadline)))
        .collect();
    let stop = Arc::new(Mutex::new(false));
    let consumer = tokio::spawn(consume(shared.clone(), arn.clone(), stop.clone()));

    tokio::time::sleep(Duration::from_secs(seconds / 2)).await;
    server.kill();
    server = HavenServer::start_with(&args);
    *shared.write().unwrap() = endpoint(&server);
    println!(
        "killed and restarted at {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut expected: HashMap<String, Vec<Change>> = HashMap::new();
    let mut uncertain = 0;
    for writer in writers {
        let writer = writer.await.unwrap();
        uncertain += writer.uncertain;
        expected.extend(writer.changes);
    }
    *stop.lock().unwrap() = true;
    let consumer = consumer.await.unwrap();
    let writes: usize = expected.values().map(Vec::len).sum();
    println!(
        "{writes} changes by {WRITERS} writers ({uncertain} answers lost to the kill), {} records read from {} shards",
        consumer.records,
        consumer.shards.len()
    );
    let rollovers = (seconds / 3).max(2) as usize;
    assert!(consumer.shards.len() >= rollovers, "shards rolled over");
    assert!(uncertain > 0, "the kill came while writes were in flight");
    assert!(writes > 500, "only {writes} changes");
    for (key, changes) in &expected {
        assert_eq!(consumer.changes.get(key), Some(changes), "{key}");
    }
    assert_eq!(
        consumer.changes.len(),
        expected.len(),
        "records of items nobody changed"
    );
}
