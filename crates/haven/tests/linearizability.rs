//! Linearizability: 8 concurrent clients hammer 3 keys of a real Haven, 150 operations each, with
//! consistent GetItem, PutItem, conditional PutItem / UpdateItem (`attribute_not_exists(pk)`,
//! `v = :expected`), DeleteItem and conditional DeleteItem. Every write stores a fresh unique value
//! in `v`. Each operation is recorded with invoke and complete times from one shared counter
//! (ticked just before the request is sent and just after its answer arrives) and its result;
//! the whole history is then checked by the small Wing–Gong / Porcupine-style checker in
//! `linearizability/checker.rs` against a model of one integer register per key.
//!
//! SDK retries are off: a retried conditional write could land twice and be misread as a bug.
//! A request without a definite answer is recorded as "unknown" (may or may not have happened).

#[path = "linearizability/checker.rs"]
mod checker;
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use checker::{Call, Cond, Operation, Outcome, Ret, check};
use common::{HavenServer, create_table, sdk_client};

const TABLE: &str = "lin";
const CLIENTS: usize = 8;
const KEYS: usize = 3;
/// Operations per client, a fixed count (not a duration, whose yield would depend on the
/// machine's speed): `CLIENTS * OPS_PER_CLIENT / KEYS` = 400 per key on average.
const OPS_PER_CLIENT: usize = 150;
/// Search steps allowed per key; far above what such histories need.
const BUDGET: u64 = 20_000_000;

/// The shared clock: every tick is a distinct, totally ordered time.
static CLOCK: AtomicU64 = AtomicU64::new(0);

fn tick() -> u64 {
    CLOCK.fetch_add(1, Ordering::SeqCst)
}

/// A small deterministic generator (xorshift64*), seeded per client.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % n
    }
}

fn key_of(k: usize) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), AttributeValue::S(format!("key-{k}")))])
}

fn item(k: usize, v: u64) -> HashMap<String, AttributeValue> {
    let mut item = key_of(k);
    item.insert("v".to_string(), AttributeValue::N(v.to_string()));
    item
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A write's answer: ok, ConditionalCheckFailed, or unknown (anything else). Unexpected error
/// codes are remembered so the test can show them.
fn write_ret<T, E: ProvideErrorMetadata, R>(
    result: Result<T, SdkError<E, R>>,
    errors: &mut Vec<String>,
) -> Ret {
    match result {
        Ok(_) => Ret::Ok,
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ret::CheckFailed,
        Err(e) => {
            errors.push(format!("{:?}: {:?}", e.code(), e.message()));
            Ret::Unknown
        }
    }
}

/// One client's loop: OPS_PER_CLIENT random operations on random keys.
async fn client_loop(
    client: Client,
    id: usize,
    values: Arc<AtomicU64>,
) -> (Vec<Operation<usize>>, Vec<String>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((id as u64 + 1) * 0x1234_5678_9ABC_DEF1));
    let mut history = Vec::with_capacity(OPS_PER_CLIENT);
    let mut errors = Vec::new();
    // The last value this client saw under each key: the `:expected` of its compare-and-sets.
    let mut seen: [Option<u64>; KEYS] = [None; KEYS];
    while history.len() < OPS_PER_CLIENT {
        let k = rng.below(KEYS as u64) as usize;
        let fresh = values.fetch_add(1, Ordering::SeqCst);
        // Sometimes expect a value that is probably stale, so compare-and-sets also fail.
        let expected = seen[k].unwrap_or(fresh + 1_000_000_000);
        let dice = rng.below(100);
        let call = match dice {
            0..35 => Call::Read,
            35..50 => Call::Put(fresh),
            50..62 => Call::PutIf(Cond::NotExists, fresh),
            62..80 => Call::PutIf(Cond::Equals(expected), fresh),
            80..90 => Call::Delete,
            _ => Call::DeleteIf(Cond::Equals(expected)),
        };
        let invoke = tick();
        let ret = match call {
            Call::Read => {
                let result = client
                    .get_item()
                    .table_name(TABLE)
                    .set_key(Some(key_of(k)))
                    .consistent_read(true)
                    .send()
                    .await;
                match result {
                    Ok(out) => {
                        let v = out.item().map(|item| match item.get("v") {
                            Some(AttributeValue::N(v)) => v.parse::<u64>().unwrap(),
                            other => panic!("unexpected item {other:?}"),
                        });
                        seen[k] = v.or(seen[k]);
                        Ret::Value(v)
                    }
                    Err(e) => {
                        errors.push(format!("GetItem {:?}: {:?}", e.code(), e.message()));
                        Ret::Unknown
                    }
                }
            }
            Call::Put(v) => write_ret(
                client
                    .put_item()
                    .table_name(TABLE)
                    .set_item(Some(item(k, v)))
                    .send()
                    .await,
                &mut errors,
            ),
            Call::PutIf(Cond::NotExists, v) => write_ret(
                client
                    .put_item()
                    .table_name(TABLE)
                    .set_item(Some(item(k, v)))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
                    .await,
                &mut errors,
            ),
            // Half the compare-and-sets are UpdateItem, half PutItem.
            Call::PutIf(Cond::Equals(e), v) if dice.is_multiple_of(2) => write_ret(
                client
                    .update_item()
                    .table_name(TABLE)
                    .set_key(Some(key_of(k)))
                    .update_expression("SET v = :new")
                    .condition_expression("v = :expected")
                    .expression_attribute_values(":new", n(v))
                    .expression_attribute_values(":expected", n(e))
                    .send()
                    .await,
                &mut errors,
            ),
            Call::PutIf(Cond::Equals(e), v) => write_ret(
                client
                    .put_item()
                    .table_name(TABLE)
                    .set_item(Some(item(k, v)))
                    .condition_expression("v = :expected")
                    .expression_attribute_values(":expected", n(e))
                    .send()
                    .await,
                &mut errors,
            ),
            Call::Delete => write_ret(
                client
                    .delete_item()
                    .table_name(TABLE)
                    .set_key(Some(key_of(k)))
                    .send()
                    .await,
                &mut errors,
            ),
            Call::DeleteIf(Cond::Equals(e)) => write_ret(
                client
                    .delete_item()
                    .table_name(TABLE)
                    .set_key(Some(key_of(k)))
                    .condition_expression("v = :expected")
                    .expression_attribute_values(":expected", n(e))
                    .send()
                    .await,
                &mut errors,
            ),
            Call::DeleteIf(Cond::NotExists) => unreachable!(),
        };
        let complete = tick();
        match (call, ret) {
            (Call::Put(v) | Call::PutIf(_, v), Ret::Ok) => seen[k] = Some(v),
            (Call::Delete | Call::DeleteIf(_), Ret::Ok) => seen[k] = None,
            _ => {}
        }
        history.push(Operation {
            key: k,
            client: id,
            invoke,
            complete,
            call,
            ret,
        });
    }
    (history, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conditional_writes_and_consistent_reads_are_linearizable() {
    let server = HavenServer::start_in_memory();
    let setup = server.client();
    create_table(&setup, TABLE, &[("pk", "S")]).await;

    let values = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for id in 0..CLIENTS {
        let config = sdk_client(&server.endpoint())
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .build();
        let client = Client::from_conf(config);
        tasks.push(tokio::spawn(client_loop(client, id, values.clone())));
    }
    let mut history = Vec::new();
    let mut errors = Vec::new();
    for task in tasks {
        let (ops, errs) = task.await.expect("client task");
        history.extend(ops);
        errors.extend(errs);
    }

    let count = |f: &dyn Fn(&Operation<usize>) -> bool| history.iter().filter(|op| f(op)).count();
    let per_key: Vec<usize> = (0..KEYS).map(|k| count(&|op| op.key == k)).collect();
    let failed = count(&|op| op.ret == Ret::CheckFailed);
    let succeeded_conditional =
        count(&|op| matches!(op.call, Call::PutIf(..) | Call::DeleteIf(_)) && op.ret == Ret::Ok);
    let present_reads = count(&|op| matches!(op.ret, Ret::Value(Some(_))));
    let absent_reads = count(&|op| op.ret == Ret::Value(None));
    let unknown = count(&|op| op.ret == Ret::Unknown);

    let started = Instant::now();
    let verdict = check(&history, BUDGET);
    let took = started.elapsed();
    println!(
        "history: {} operations, per key {per_key:?}; conditional writes {succeeded_conditional} ok / \
         {failed} refused; reads {present_reads} present / {absent_reads} absent; {unknown} unknown; \
         checked in {took:?} ({} steps, {} backtracks)",
        history.len(),
        verdict.stats.steps,
        verdict.stats.backtracks,
    );
    for error in errors.iter().take(5) {
        println!("error: {error}");
    }
    match verdict.outcome {
        Outcome::Linearizable => {}
        Outcome::NotLinearizable(counterexample) => {
            panic!("the history is not linearizable:\n{counterexample}")
        }
        Outcome::Undecided { key } => {
            panic!("the checker ran out of its {BUDGET} steps on key {key}")
        }
    }
    // The workload must actually exercise contention, or the check proves little.
    assert!(
        history.len() >= 300,
        "too few operations: {}",
        history.len()
    );
    assert!(failed > 0 && succeeded_conditional > 0 && present_reads > 0 && absent_reads > 0);
    assert!(
        unknown * 100 <= history.len(),
        "{unknown} operations without an answer: {errors:?}"
    );

    // The check is not vacuous on this very history: a stale read planted in it is caught.
    let planted = plant_stale_read(&mut history).expect("a read after two ordered writes");
    let verdict = check(&history, BUDGET);
    assert!(
        matches!(verdict.outcome, Outcome::NotLinearizable(_)),
        "a planted stale read ({planted}) went unnoticed: {verdict:?}"
    );
}

/// Finds a read that returned `x`, invoked after the write of `x` completed, where an earlier
/// write of `y` completed before the write of `x` was invoked; makes the read return `y` (a value
/// overwritten before the read began, and never written again since values are unique). Returns
/// the planted read.
fn plant_stale_read(history: &mut [Operation<usize>]) -> Option<String> {
    let written = |op: &Operation<usize>| match (op.call, op.ret) {
        (Call::Put(v) | Call::PutIf(_, v), Ret::Ok) => Some(v),
        _ => None,
    };
    let writes: HashMap<u64, Operation<usize>> = history
        .iter()
        .filter_map(|op| written(op).map(|v| (v, op.clone())))
        .collect();
    for read in history.iter_mut() {
        let Ret::Value(Some(x)) = read.ret else {
            continue;
        };
        let write_x = &writes[&x];
        if write_x.complete >= read.invoke {
            continue;
        }
        let older = writes.iter().find(|(_, w)| {
            w.key == read.key && w.complete < write_x.invoke && written(w) != Some(x)
        });
        if let Some((&y, _)) = older {
            read.ret = Ret::Value(Some(y));
            return Some(read.to_string());
        }
    }
    None
}
