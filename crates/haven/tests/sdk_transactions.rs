//! TransactWriteItems and TransactGetItems through the AWS SDK for Rust: serializability under
//! concurrent transfers (no money created or lost, every snapshot read consistent), cancellation
//! reasons in request order, ClientRequestToken idempotency (also across a restart), validation,
//! the 4 MB limits, and atomicity across a SIGKILL on disk.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Get, Put, ReturnValuesOnConditionCheckFailure,
    TransactGetItem, TransactWriteItem, Update,
};
use common::{HavenServer, create_table, error_of, terminate, wait_until};
use tokio::task::JoinSet;

type Item = HashMap<String, AttributeValue>;

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(pk: &str) -> Item {
    HashMap::from([("pk".to_string(), s(pk))])
}

fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn number(item: &Item, name: &str) -> i64 {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().unwrap(),
        other => panic!("{name} is not a number in {item:?}: {other:?}"),
    }
}

async fn get(client: &Client, table: &str, pk: &str) -> Option<Item> {
    client
        .get_item()
        .table_name(table)
        .set_key(Some(key(pk)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn put_action(table: &str, item: Item) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .build()
                .unwrap(),
        )
        .build()
}

fn get_action(table: &str, pk: &str) -> TransactGetItem {
    TransactGetItem::builder()
        .get(
            Get::builder()
                .table_name(table)
                .set_key(Some(key(pk)))
                .build()
                .unwrap(),
        )
        .build()
}

/// The cancellation codes of a TransactWriteItems failure; panics on any other error.
type HttpResponse = aws_sdk_dynamodb::config::http::HttpResponse;

fn cancellation_codes(error: SdkError<TransactWriteItemsError, HttpResponse>) -> Vec<String> {
    match error.into_service_error() {
        TransactWriteItemsError::TransactionCanceledException(e) => e
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or_default().to_string())
            .collect(),
        other => panic!("expected TransactionCanceledException, got {other:?}"),
    }
}

/// A small deterministic generator (xorshift64*), so the tests need no `rand`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

const ACCOUNTS: usize = 100;
const TRANSFER_TASKS: u64 = 16;
const READER_TASKS: usize = 4;
/// The transfers run this long at least, and until they reach the counts below, whatever the
/// machine's speed (or the test gives up after PATIENCE).
const LOAD: Duration = Duration::from_secs(3);
const MIN_COMMITTED: u64 = 51;
const MIN_SNAPSHOTS: u64 = 6;
const PATIENCE: Duration = Duration::from_secs(120);

fn account(i: usize) -> String {
    format!("acct-{i:03}")
}

/// Reads every account in one TransactGetItems (exactly 100 gets) and returns the balances.
async fn read_all_accounts(client: &Client) -> Vec<i64> {
    let gets: Vec<TransactGetItem> = (0..ACCOUNTS)
        .map(|i| get_action("accounts", &account(i)))
        .collect();
    let output = client
        .transact_get_items()
        .set_transact_items(Some(gets))
        .send()
        .await
        .expect("TransactGetItems of 100 accounts");
    let responses = output.responses();
    assert_eq!(responses.len(), ACCOUNTS);
    responses
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let item = r.item().unwrap_or_else(|| panic!("account {i} missing"));
            assert_eq!(
                item.get("pk"),
                Some(&s(&account(i))),
                "responses in request order"
            );
            number(item, "balance")
        })
        .collect()
}

/// Issue 6: random transfers between 100 accounts from 16 tasks while 4 tasks read every account
/// in one transaction. The total never changes, no balance goes negative, and at the end each
/// balance is 100 plus what the committed transfers moved in minus what they moved out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_are_serializable() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "accounts", &[("pk", "S")]).await;
    for i in 0..ACCOUNTS {
        client
            .put_item()
            .table_name("accounts")
            .set_item(Some(item(&[("pk", s(&account(i))), ("balance", n(100))])))
            .send()
            .await
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let cancelled = Arc::new(AtomicU64::new(0));
    let snapshots = Arc::new(AtomicU64::new(0));
    let committed_so_far = Arc::new(AtomicU64::new(0));

    let mut transfers = JoinSet::new();
    for task in 0..TRANSFER_TASKS {
        let client = client.clone();
        let stop = stop.clone();
        let cancelled = cancelled.clone();
        let committed_so_far = committed_so_far.clone();
        transfers.spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (task + 1).wrapping_mul(0x1234_5678_9ABC));
            let mut delta = vec![0i64; ACCOUNTS];
            let mut committed = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let from = rng.below(ACCOUNTS as u64) as usize;
                let mut to = rng.below(ACCOUNTS as u64 - 1) as usize;
                if to >= from {
                    to += 1;
                }
                let amount = 1 + rng.below(60) as i64;
                let debit = Update::builder()
                    .table_name("accounts")
                    .set_key(Some(key(&account(from))))
                    .update_expression("SET balance = balance - :amt")
                    .condition_expression("balance >= :amt")
                    .expression_attribute_values(":amt", n(amount))
                    .build()
                    .unwrap();
                let credit = Update::builder()
                    .table_name("accounts")
                    .set_key(Some(key(&account(to))))
                    .update_expression("SET balance = balance + :amt")
                    .expression_attribute_values(":amt", n(amount))
                    .build()
                    .unwrap();
                let result = client
                    .transact_write_items()
                    .transact_items(TransactWriteItem::builder().update(debit).build())
                    .transact_items(TransactWriteItem::builder().update(credit).build())
                    .send()
                    .await;
                match result {
                    Ok(_) => {
                        committed += 1;
                        committed_so_far.fetch_add(1, Ordering::Relaxed);
                        delta[from] -= amount;
                        delta[to] += amount;
                    }
                    Err(error) => {
                        let codes = cancellation_codes(error);
                        assert_eq!(codes.len(), 2, "one reason per action: {codes:?}");
                        assert!(
                            codes.iter().all(|c| c == "None"
                                || c == "ConditionalCheckFailed"
                                || c == "TransactionConflict"),
                            "unexpected cancellation codes {codes:?}"
                        );
                        assert_eq!(codes[1], "None", "the credit has no condition: {codes:?}");
                        cancelled.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            (committed, delta)
        });
    }
    let mut readers = JoinSet::new();
    for _ in 0..READER_TASKS {
        let client = client.clone();
        let stop = stop.clone();
        let snapshots = snapshots.clone();
        readers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let balances = read_all_accounts(&client).await;
                assert!(
                    balances.iter().all(|b| *b >= 0),
                    "a negative balance: {balances:?}"
                );
                let total: i64 = balances.iter().sum();
                assert_eq!(
                    total,
                    100 * ACCOUNTS as i64,
                    "money created or lost: {balances:?}"
                );
                snapshots.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(LOAD).await;
    wait_until("transfers committed and snapshots read", PATIENCE, || {
        committed_so_far.load(Ordering::Relaxed) >= MIN_COMMITTED
            && snapshots.load(Ordering::Relaxed) >= MIN_SNAPSHOTS
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    while let Some(result) = readers.join_next().await {
        result.expect("reader task");
    }
    let mut expected = vec![100i64; ACCOUNTS];
    let mut committed = 0;
    while let Some(result) = transfers.join_next().await {
        let (count, delta) = result.expect("transfer task");
        committed += count;
        for (e, d) in expected.iter_mut().zip(delta) {
            *e += d;
        }
    }
    let cancelled = cancelled.load(Ordering::Relaxed);
    let snapshots = snapshots.load(Ordering::Relaxed);
    eprintln!("{committed} transfers committed, {cancelled} cancelled, {snapshots} snapshots read");
    assert!(committed >= MIN_COMMITTED && snapshots >= MIN_SNAPSHOTS);
    assert_eq!(read_all_accounts(&client).await, expected);
    for (i, balance) in expected.iter().enumerate() {
        let found = get(&client, "accounts", &account(i)).await.unwrap();
        assert_eq!(number(&found, "balance"), *balance, "account {i}");
    }
}

/// A cancelled transaction reports one reason per action, in request order, with the old item
/// where ReturnValuesOnConditionCheckFailure is ALL_OLD, and applies nothing.
#[tokio::test]
async fn cancellation_reasons_in_request_order() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "things", &[("pk", "S")]).await;
    create_table(&client, "others", &[("pk", "S")]).await;
    for pk in ["a", "b", "c"] {
        client
            .put_item()
            .table_name("things")
            .set_item(Some(item(&[("pk", s(pk)), ("v", n(1))])))
            .send()
            .await
            .unwrap();
    }
    let result = client
        .transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name("things")
                        .set_key(Some(key("a")))
                        .condition_expression("v = :one")
                        .expression_attribute_values(":one", n(1))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .transact_items(
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name("things")
                        .set_item(Some(item(&[("pk", s("b")), ("v", n(2))])))
                        .condition_expression("attribute_not_exists(pk)")
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .transact_items(
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name("things")
                        .set_key(Some(key("c")))
                        .update_expression("SET v = :nine")
                        .expression_attribute_values(":nine", n(9))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .transact_items(
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name("others")
                        .set_key(Some(key("missing")))
                        .condition_expression("attribute_exists(pk)")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .transact_items(put_action("others", item(&[("pk", s("new"))])))
        .send()
        .await;
    let error = result.expect_err("the transaction is cancelled");
    assert_eq!(
        aws_sdk_dynamodb::error::ProvideErrorMetadata::message(&error),
        Some(
            "Transaction cancelled, please refer cancellation reasons for specific reasons \
             [None, ConditionalCheckFailed, None, ConditionalCheckFailed, None]"
        )
    );
    let TransactWriteItemsError::TransactionCanceledException(cancelled) =
        error.into_service_error()
    else {
        panic!("expected TransactionCanceledException");
    };
    let reasons = cancelled.cancellation_reasons();
    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap()).collect();
    assert_eq!(
        codes,
        [
            "None",
            "ConditionalCheckFailed",
            "None",
            "ConditionalCheckFailed",
            "None"
        ]
    );
    assert_eq!(reasons[0].message(), None);
    assert_eq!(reasons[1].message(), Some("The conditional request failed"));
    assert_eq!(
        reasons[1].item(),
        Some(&item(&[("pk", s("b")), ("v", n(1))]))
    );
    assert_eq!(reasons[3].message(), Some("The conditional request failed"));
    assert_eq!(reasons[3].item(), None, "no ALL_OLD, and no item anyway");
    for r in [&reasons[0], &reasons[2], &reasons[4]] {
        assert_eq!(r.item(), None);
    }
    // Nothing was applied.
    assert_eq!(
        get(&client, "things", "c").await,
        Some(item(&[("pk", s("c")), ("v", n(1))]))
    );
    assert_eq!(
        get(&client, "things", "b").await,
        Some(item(&[("pk", s("b")), ("v", n(1))]))
    );
    assert_eq!(get(&client, "others", "new").await, None);
}

fn add_counter(pk: &str, by: i64) -> TransactWriteItem {
    TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name("counters")
                .set_key(Some(key(pk)))
                .update_expression("ADD hits :by")
                .expression_attribute_values(":by", n(by))
                .build()
                .unwrap(),
        )
        .build()
}

async fn add_with_token(
    client: &Client,
    by: i64,
    token: &str,
) -> Result<(), SdkError<TransactWriteItemsError, HttpResponse>> {
    client
        .transact_write_items()
        .transact_items(add_counter("counter", by))
        .client_request_token(token)
        .send()
        .await
        .map(|_| ())
}

async fn hits(client: &Client) -> i64 {
    number(&get(client, "counters", "counter").await.unwrap(), "hits")
}

/// The same ClientRequestToken with the same request succeeds without applying again; with a
/// different request it is IdempotentParameterMismatchException; both hold across a restart.
#[tokio::test]
async fn client_request_token_is_idempotent_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = HavenServer::start_on_disk(dir.path());
    let client = server.client();
    create_table(&client, "counters", &[("pk", "S")]).await;

    add_with_token(&client, 1, "token-1").await.unwrap();
    add_with_token(&client, 1, "token-1").await.unwrap();
    add_with_token(&client, 1, "token-1").await.unwrap();
    assert_eq!(hits(&client).await, 1);
    let (code, message) = error_of(add_with_token(&client, 2, "token-1").await);
    assert_eq!(code, "IdempotentParameterMismatchException");
    assert_eq!(
        message,
        "Request parameters do not match the original request parameters for the ClientRequestToken"
    );
    assert_eq!(hits(&client).await, 1);
    // Another token applies.
    add_with_token(&client, 10, "token-2").await.unwrap();
    assert_eq!(hits(&client).await, 11);

    let status = tokio::task::spawn_blocking(move || terminate(server))
        .await
        .unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let server = HavenServer::start_on_disk(dir.path());
    let client = server.client();
    add_with_token(&client, 1, "token-1").await.unwrap();
    add_with_token(&client, 10, "token-2").await.unwrap();
    assert_eq!(
        hits(&client).await,
        11,
        "a token replayed after restart applies nothing"
    );
    let (code, _) = error_of(add_with_token(&client, 3, "token-1").await);
    assert_eq!(code, "IdempotentParameterMismatchException");
    let (code, _) = error_of(add_with_token(&client, 1, "token-2").await);
    assert_eq!(code, "IdempotentParameterMismatchException");
    add_with_token(&client, 100, "token-3").await.unwrap();
    assert_eq!(hits(&client).await, 111);
}

/// An application retry rebuilds the request, so maps (Item, Key, ExpressionAttributeValues) may
/// be serialised in another order; DynamoDB compares the parameters, not the bytes.
#[tokio::test]
async fn client_request_token_ignores_map_order() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "counters", &[("pk", "S")]).await;
    for attempt in 0..5 {
        // A fresh HashMap each time: a fresh random iteration order.
        let wide: Item = (0..12)
            .map(|i| (format!("attr{i}"), n(i)))
            .chain([("pk".to_string(), s("wide"))])
            .collect();
        let result = client
            .transact_write_items()
            .transact_items(put_action("counters", wide))
            .transact_items(add_counter("counter", 1))
            .client_request_token("token-order")
            .send()
            .await;
        if let Err(error) = result {
            panic!(
                "attempt {attempt}: the same request with the same token failed: {:?}",
                error.into_service_error()
            );
        }
    }
    assert_eq!(hits(&client).await, 1);
}

/// Two actions on one item, an empty TransactItems, and an unknown table are refused before
/// anything is applied.
#[tokio::test]
async fn transaction_validation() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "things", &[("pk", "S")]).await;

    let (code, message) = error_of(
        client
            .transact_write_items()
            .transact_items(put_action("things", item(&[("pk", s("x")), ("v", n(1))])))
            .transact_items(put_action("things", item(&[("pk", s("other"))])))
            .transact_items(
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name("things")
                            .set_key(Some(key("x")))
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "Transaction request cannot include multiple operations on one item"
    );
    assert_eq!(
        get(&client, "things", "other").await,
        None,
        "nothing applied"
    );

    let (code, message) = error_of(
        client
            .transact_get_items()
            .transact_items(get_action("things", "x"))
            .transact_items(get_action("things", "x"))
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "Transaction request cannot include multiple operations on one item"
    );

    let (code, message) = error_of(
        client
            .transact_write_items()
            .set_transact_items(Some(vec![]))
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "1 validation error detected: Value '[]' at 'transactItems' failed to satisfy constraint: \
         Member must have length greater than or equal to 1"
    );
    let (code, message) = error_of(
        client
            .transact_get_items()
            .set_transact_items(Some(vec![]))
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "1 validation error detected: Value '[]' at 'transactItems' failed to satisfy constraint: \
         Member must have length greater than or equal to 1"
    );

    let (code, message) = error_of(
        client
            .transact_write_items()
            .transact_items(put_action("things", item(&[("pk", s("y"))])))
            .transact_items(put_action("nope", item(&[("pk", s("y"))])))
            .send()
            .await,
    );
    assert_eq!(code, "ResourceNotFoundException");
    assert_eq!(message, "Requested resource not found");
    assert_eq!(get(&client, "things", "y").await, None, "nothing applied");
    let (code, message) = error_of(
        client
            .transact_get_items()
            .transact_items(get_action("nope", "y"))
            .send()
            .await,
    );
    assert_eq!(code, "ResourceNotFoundException");
    assert_eq!(message, "Requested resource not found");
}

/// DynamoDB's limit on a transaction's payload and on a TransactGetItems response.
const FOUR_MB: usize = 4 * 1024 * 1024;

/// `count` puts of items `<prefix>NN` (two digits) whose sizes add up to `total` bytes.
fn puts_of(prefix: &str, count: usize, total: usize) -> Vec<TransactWriteItem> {
    let overhead = "pk".len() + prefix.len() + 2 + "v".len();
    (0..count)
        .map(|i| {
            let size = total / count + if i == count - 1 { total % count } else { 0 };
            let value = "a".repeat(size - overhead);
            put_action(
                "big",
                item(&[("pk", s(&format!("{prefix}{i:02}"))), ("v", s(&value))]),
            )
        })
        .collect()
}

#[tokio::test]
async fn transactions_are_limited_to_4_mb() {
    let server = HavenServer::start_in_memory();
    let client = server.client_without_retries();
    create_table(&client, "big", &[("pk", "S")]).await;

    // Eleven items of 4 MB together are accepted, one byte more is not, and nothing is written.
    client
        .transact_write_items()
        .set_transact_items(Some(puts_of("a", 11, FOUR_MB)))
        .send()
        .await
        .unwrap();
    assert!(get(&client, "big", "a10").await.is_some());
    let (code, message) = error_of(
        client
            .transact_write_items()
            .set_transact_items(Some(puts_of("b", 11, FOUR_MB + 1)))
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        format!(
            "Transaction payload size cannot exceed 4MB. Payload Size: : Transaction payload size \
             cannot exceed 4MB. Payload Size: {}",
            FOUR_MB + 1
        )
    );
    assert_eq!(get(&client, "big", "b00").await, None, "nothing applied");

    // Reading the eleven items back is a response of 4 MB plus 4 bytes per Get: refused.
    let gets = (0..11).map(|i| get_action("big", &format!("a{i:02}")));
    let (code, message) = error_of(
        client
            .transact_get_items()
            .set_transact_items(Some(gets.collect()))
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        format!("Payload in response is too large.{}", FOUR_MB + 11 * 4)
    );
    // Ten of them fit.
    let gets = (0..10).map(|i| get_action("big", &format!("a{i:02}")));
    let read = client
        .transact_get_items()
        .set_transact_items(Some(gets.collect()))
        .send()
        .await
        .unwrap();
    assert_eq!(read.responses().len(), 10);
    assert!(read.responses().iter().all(|r| r.item().is_some()));
}

const CRASH_WRITERS: u64 = 4;
const CRASH_CYCLES: usize = 2;
const CRASH_LOAD: Duration = Duration::from_millis(1500);
/// Transactions acknowledged in each cycle before the kill, at least.
const CRASH_ACKNOWLEDGED: u64 = 11;

/// What one writer knows after a cycle: the last acknowledged sequence number, and the last one
/// it attempted (which may or may not have landed).
#[derive(Clone, Copy, Default)]
struct Progress {
    acknowledged: u64,
    attempted: u64,
}

/// Transaction `seq` of writer `w`: the same number on `a` and `b` in table `crash_a` and on `c` in
/// table `crash_b`, plus a log item `w-seq` in `crash_b`.
async fn crash_writer(
    client: Client,
    w: u64,
    mut progress: Progress,
    acknowledged: Arc<AtomicU64>,
) -> Progress {
    loop {
        let seq = progress.attempted + 1;
        progress.attempted = seq;
        let result = client
            .transact_write_items()
            .transact_items(put_action(
                "crash_a",
                item(&[("pk", s(&format!("w{w}-a"))), ("seq", n(seq as i64))]),
            ))
            .transact_items(put_action(
                "crash_a",
                item(&[("pk", s(&format!("w{w}-b"))), ("seq", n(seq as i64))]),
            ))
            .transact_items(put_action(
                "crash_b",
                item(&[("pk", s(&format!("w{w}-c"))), ("seq", n(seq as i64))]),
            ))
            .transact_items(put_action(
                "crash_b",
                item(&[
                    ("pk", s(&format!("log-w{w}-{seq}"))),
                    ("seq", n(seq as i64)),
                ]),
            ))
            .send()
            .await;
        match result {
            Ok(_) => {
                progress.acknowledged = seq;
                acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => return progress, // the server is gone
        }
    }
}

/// SIGKILL during a stream of transactions: afterwards every transaction is there entirely or not
/// at all, and every acknowledged one is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transactions_are_atomic_across_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = HavenServer::start_on_disk(dir.path());
    let client = server.client();
    create_table(&client, "crash_a", &[("pk", "S")]).await;
    create_table(&client, "crash_b", &[("pk", "S")]).await;
    let mut progress = vec![Progress::default(); CRASH_WRITERS as usize];
    for cycle in 0..CRASH_CYCLES {
        let client = server.client();
        let mut writers = JoinSet::new();
        let acknowledged = Arc::new(AtomicU64::new(0));
        for w in 0..CRASH_WRITERS {
            let client = client.clone();
            let start = progress[w as usize];
            let acknowledged = acknowledged.clone();
            writers.spawn(async move { (w, crash_writer(client, w, start, acknowledged).await) });
        }
        tokio::time::sleep(CRASH_LOAD).await;
        wait_until(
            "transactions acknowledged before the kill",
            PATIENCE,
            || acknowledged.load(Ordering::Relaxed) >= CRASH_ACKNOWLEDGED,
        )
        .await;
        server.kill(); // SIGKILL, mid-stream
        for (w, p) in writers.join_all().await {
            progress[w as usize] = p;
        }
        server = HavenServer::start_on_disk(dir.path());
        let client = server.client();
        for w in 0..CRASH_WRITERS {
            let Progress {
                acknowledged,
                attempted,
            } = progress[w as usize];
            let mut values = Vec::new();
            for (table, pk) in [("crash_a", "a"), ("crash_a", "b"), ("crash_b", "c")] {
                let found = get(&client, table, &format!("w{w}-{pk}")).await;
                values.push(found.map(|i| number(&i, "seq") as u64));
            }
            assert!(
                values.iter().all(|v| *v == values[0]),
                "cycle {cycle}, writer {w}: a half-applied transaction: {values:?}"
            );
            let landed = values[0].unwrap_or(0);
            assert!(
                acknowledged <= landed && landed <= attempted,
                "cycle {cycle}, writer {w}: holds {landed}, acknowledged {acknowledged}, attempted {attempted}"
            );
            // The log items of 1..=landed are there with their number; later ones are not.
            for seq in 1..=attempted {
                let log = get(&client, "crash_b", &format!("log-w{w}-{seq}")).await;
                if seq <= landed {
                    let log = log.unwrap_or_else(|| {
                        panic!("cycle {cycle}, writer {w}: transaction {seq} lost its log item")
                    });
                    assert_eq!(number(&log, "seq") as u64, seq);
                } else {
                    assert_eq!(
                        log, None,
                        "cycle {cycle}, writer {w}: transaction {seq} half-applied (log without the others)"
                    );
                }
            }
            progress[w as usize] = Progress {
                acknowledged: landed,
                attempted: landed,
            };
        }
    }
    let total: u64 = progress.iter().map(|p| p.acknowledged).sum();
    eprintln!("{total} transactions landed over {CRASH_CYCLES} SIGKILLs");
    assert!(total >= CRASH_ACKNOWLEDGED * CRASH_CYCLES as u64);
    server.kill();
}
