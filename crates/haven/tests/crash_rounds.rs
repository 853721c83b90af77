//! Crash consistency under mixed load: many short rounds, each killing a durable server with
//! SIGKILL at a random moment while clients send PutItem, UpdateItem, DeleteItem, BatchWriteItem,
//! conditional writes and TransactWriteItems, then restarting it and checking the whole table.
//!
//! Each client owns its keys, so it knows every item's exact value after each acknowledged write
//! (its model), and at most one request of its is in flight when the server dies. After each
//! restart every item must be either what the model holds, or what the write in flight would
//! have made of it, whole: an UpdateItem's attributes are all set or none, a transaction's items
//! are all written or none. Nothing else may be in the table.
//!
//! The moments and the operations come from a seeded generator; the seed is printed, and
//! `HAVEN_CRASH_SEED=<seed>` replays a run.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, PutRequest, TransactWriteItem, Update, WriteRequest,
};
use common::{HavenServer, create_table, wait_until};
use tokio::task::JoinSet;

const TABLE: &str = "rounds";
const ROUNDS: u64 = 60;
const CLIENTS: u64 = 4;
const KEYS_PER_CLIENT: u64 = 12;

type Item = HashMap<String, AttributeValue>;

/// SplitMix64: a small, seedable generator (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One client's knowledge: every key's item after the last acknowledged write, and the items the
/// write in flight would leave (`atomic` when they are all-or-nothing across keys).
#[derive(Default)]
struct Model {
    items: HashMap<String, Option<Item>>,
    in_flight: Vec<(String, Option<Item>)>,
    atomic: bool,
    /// Requests acknowledged so far, for the summary.
    acknowledged: u64,
}

fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

fn n(number: u64) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

fn key_of(client: u64, index: u64) -> String {
    format!("c{client}-k{index}")
}

/// The item a PutItem of write `id` stores.
fn put_item(key: &str, id: u64) -> Item {
    HashMap::from([
        ("pk".to_string(), s(key)),
        ("w".to_string(), n(id)),
        ("a".to_string(), n(id)),
        ("b".to_string(), s(format!("b{id}"))),
        ("payload".to_string(), s("p".repeat((id % 500) as usize))),
    ])
}

/// The item `SET w = :w, a = :w, u = :u` of write `id` leaves over `old`.
fn updated_item(key: &str, old: Option<&Item>, id: u64) -> Item {
    let mut item = old
        .cloned()
        .unwrap_or_else(|| HashMap::from([("pk".to_string(), s(key))]));
    item.insert("w".to_string(), n(id));
    item.insert("a".to_string(), n(id));
    item.insert("u".to_string(), s(format!("u{id}")));
    item
}

fn pk(key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), s(key))])
}

const UPDATE: &str = "SET w = :w, a = :w, u = :u";

fn update_values(id: u64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (":w".to_string(), n(id)),
        (":u".to_string(), s(format!("u{id}"))),
    ])
}

/// What one request is and what it must leave behind.
enum Outcome {
    /// Applied when acknowledged.
    Applies,
    /// Refused with ConditionalCheckFailedException, changing nothing.
    ConditionFails,
}

/// A client that writes its own keys until a request fails for want of a server.
async fn client_loop(client: Client, id: u64, round: u64, seed: u64, model: Arc<Mutex<Model>>) {
    let mut rng = Rng(seed);
    for seq in 1u64.. {
        let write = (round << 32) | (id << 24) | seq;
        let key = key_of(id, rng.below(KEYS_PER_CLIENT));
        let old = model.lock().unwrap().items.get(&key).cloned().flatten();
        let kind = rng.below(20);
        let (effects, atomic, outcome) =
            plan(kind, &key, old.as_ref(), write, id, &mut rng, &model);
        {
            let mut model = model.lock().unwrap();
            model.in_flight = effects.clone();
            model.atomic = atomic;
        }
        let result = send(&client, kind, &key, old.as_ref(), write, &effects).await;
        let mut model = model.lock().unwrap();
        match (result, outcome) {
            (Ok(()), Outcome::Applies) => {
                model.acknowledged += 1;
                for (key, item) in std::mem::take(&mut model.in_flight) {
                    model.items.insert(key, item);
                }
            }
            (Err(Some(code)), Outcome::ConditionFails)
                if code == "ConditionalCheckFailedException" =>
            {
                model.acknowledged += 1;
                model.in_flight.clear();
            }
            // The server is gone: the write stays in flight, its outcome unknown.
            (Err(None), _) => return,
            (Ok(()), Outcome::ConditionFails) => {
                panic!("write {write} on {key}: a condition that cannot hold was accepted")
            }
            (Err(Some(code)), _) => panic!("write {write} on {key} (kind {kind}): {code}"),
        }
    }
}

/// The items a request of `kind` leaves on its keys if it applies.
fn plan(
    kind: u64,
    key: &str,
    old: Option<&Item>,
    write: u64,
    client: u64,
    rng: &mut Rng,
    model: &Mutex<Model>,
) -> (Vec<(String, Option<Item>)>, bool, Outcome) {
    let other = |rng: &mut Rng| loop {
        let other = key_of(client, rng.below(KEYS_PER_CLIENT));
        if other != key {
            return other;
        }
    };
    match kind {
        0..=4 => (
            vec![(key.to_string(), Some(put_item(key, write)))],
            false,
            Outcome::Applies,
        ),
        5..=10 => (
            vec![(key.to_string(), Some(updated_item(key, old, write)))],
            false,
            Outcome::Applies,
        ),
        11 => (vec![], false, Outcome::ConditionFails),
        12..=13 => (vec![(key.to_string(), None)], false, Outcome::Applies),
        14..=16 => {
            let mut keys = vec![key.to_string(), other(rng), other(rng)];
            keys.dedup();
            let effects = keys
                .iter()
                .map(|k| (k.clone(), Some(put_item(k, write))))
                .collect();
            (effects, false, Outcome::Applies)
        }
        _ => {
            let second = other(rng);
            let second_old = model.lock().unwrap().items.get(&second).cloned().flatten();
            (
                vec![
                    (key.to_string(), Some(put_item(key, write))),
                    (
                        second.clone(),
                        Some(updated_item(&second, second_old.as_ref(), write)),
                    ),
                ],
                true,
                Outcome::Applies,
            )
        }
    }
}

/// Sends the request of `kind`; `Err(Some(code))` is a service error, `Err(None)` no answer.
async fn send(
    client: &Client,
    kind: u64,
    key: &str,
    old: Option<&Item>,
    write: u64,
    effects: &[(String, Option<Item>)],
) -> Result<(), Option<String>> {
    fn code<E: ProvideErrorMetadata>(error: E) -> Option<String> {
        error.code().map(str::to_string)
    }
    match kind {
        0..=4 => client
            .put_item()
            .table_name(TABLE)
            .set_item(Some(put_item(key, write)))
            .send()
            .await
            .map(drop)
            .map_err(code),
        5..=8 => client
            .update_item()
            .table_name(TABLE)
            .set_key(Some(pk(key)))
            .update_expression(UPDATE)
            .set_expression_attribute_values(Some(update_values(write)))
            .send()
            .await
            .map(drop)
            .map_err(code),
        9..=11 => {
            // Conditional: on the item's current write id (or its absence), or, for kind 11, on
            // a write id that never exists.
            let (condition, mut values) = match (kind, old.and_then(|item| item.get("w"))) {
                (11, _) => (
                    "w = :expected",
                    HashMap::from([(":expected".to_string(), n(0))]),
                ),
                (_, Some(current)) => (
                    "w = :expected",
                    HashMap::from([(":expected".to_string(), current.clone())]),
                ),
                (_, None) => ("attribute_not_exists(pk)", HashMap::new()),
            };
            values.extend(update_values(write));
            client
                .update_item()
                .table_name(TABLE)
                .set_key(Some(pk(key)))
                .update_expression(UPDATE)
                .condition_expression(condition)
                .set_expression_attribute_values(Some(values))
                .send()
                .await
                .map(drop)
                .map_err(code)
        }
        12..=13 => client
            .delete_item()
            .table_name(TABLE)
            .set_key(Some(pk(key)))
            .send()
            .await
            .map(drop)
            .map_err(code),
        14..=16 => {
            let requests = effects
                .iter()
                .map(|(_, item)| {
                    let put = PutRequest::builder()
                        .set_item(item.clone())
                        .build()
                        .unwrap();
                    WriteRequest::builder().put_request(put).build()
                })
                .collect();
            let output = client
                .batch_write_item()
                .request_items(TABLE, requests)
                .send()
                .await
                .map_err(code)?;
            assert!(
                output.unprocessed_items.unwrap_or_default().is_empty(),
                "unprocessed items"
            );
            Ok(())
        }
        _ => {
            let put = Put::builder()
                .table_name(TABLE)
                .set_item(effects[0].1.clone())
                .build()
                .unwrap();
            let update = Update::builder()
                .table_name(TABLE)
                .set_key(Some(pk(&effects[1].0)))
                .update_expression(UPDATE)
                .set_expression_attribute_values(Some(update_values(write)))
                .build()
                .unwrap();
            client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put).build())
                .transact_items(TransactWriteItem::builder().update(update).build())
                .send()
                .await
                .map(drop)
                .map_err(code)
        }
    }
}

/// Reads the whole table (consistent scan, every page).
async fn scan_all(client: &Client) -> HashMap<String, Item> {
    let mut items = HashMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(TABLE)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("Scan after restart");
        for item in page.items.unwrap_or_default() {
            let AttributeValue::S(key) = &item["pk"] else {
                panic!("pk is not a string: {item:?}")
            };
            items.insert(key.clone(), item);
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// Checks the table against every client's model, then adopts what is there as the new models.
fn verify(round: u64, mut table: HashMap<String, Item>, models: &[Arc<Mutex<Model>>]) {
    for model in models {
        let mut model = model.lock().unwrap();
        let in_flight: HashMap<String, Option<Item>> = model.in_flight.drain(..).collect();
        // Whether some key clearly holds the write in flight, and some clearly does not.
        let (mut landed, mut missed) = (false, false);
        let keys: BTreeSet<String> = model
            .items
            .keys()
            .chain(in_flight.keys())
            .cloned()
            .collect();
        for key in keys {
            let actual = table.remove(&key);
            let acknowledged = model.items.get(&key).cloned().flatten();
            let new = in_flight.get(&key);
            let is_old = actual == acknowledged;
            let is_new = new.is_some_and(|new| *new == actual);
            assert!(
                is_old || is_new,
                "round {round}: {key} holds {actual:?}; acknowledged {acknowledged:?}, \
                 in flight {new:?}"
            );
            landed |= is_new && !is_old;
            missed |= is_old && !is_new && new.is_some();
            model.items.insert(key, actual);
        }
        assert!(
            !(model.atomic && landed && missed),
            "round {round}: a transaction was applied in part"
        );
    }
    assert!(
        table.is_empty(),
        "round {round}: unexpected items {:?}",
        table.keys()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_write_survives_sigkill_at_random_moments() {
    let seed = std::env::var("HAVEN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash rounds: HAVEN_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut server = HavenServer::start_on_disk(dir.path());
    create_table(&server.client(), TABLE, &[("pk", "S")]).await;
    let models: Vec<Arc<Mutex<Model>>> = (0..CLIENTS).map(|_| Arc::default()).collect();

    let acknowledged = |models: &[Arc<Mutex<Model>>]| -> Vec<u64> {
        models
            .iter()
            .map(|m| m.lock().unwrap().acknowledged)
            .collect()
    };
    for round in 0..ROUNDS {
        let before = acknowledged(&models);
        let client = server.client_without_retries();
        let mut clients = JoinSet::new();
        for (id, model) in models.iter().enumerate() {
            clients.spawn(client_loop(
                client.clone(),
                id as u64,
                round,
                rng.next(),
                model.clone(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20 + rng.below(250))).await;
        // And not before every client has had a write acknowledged this round, however slow the
        // machine: each round then checks something of every client.
        wait_until(
            "a write of every client acknowledged",
            Duration::from_secs(60),
            || {
                before
                    .iter()
                    .zip(acknowledged(&models))
                    .all(|(b, a)| a > *b)
            },
        )
        .await;
        assert_eq!(
            clients.len(),
            CLIENTS as usize,
            "round {round}: a client stopped early"
        );
        server.kill();
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(result) = clients.join_next().await {
                result.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            }
        })
        .await
        .expect("clients stop once the server is gone");

        server = HavenServer::start_on_disk(dir.path());
        verify(round, scan_all(&server.client()).await, &models);
    }
    let acknowledged: u64 = acknowledged(&models).iter().sum();
    eprintln!("crash rounds: {ROUNDS} rounds, {acknowledged} acknowledged writes, seed {seed}");
    assert!(
        acknowledged >= ROUNDS * CLIENTS,
        "only {acknowledged} writes acknowledged in {ROUNDS} rounds"
    );
}
