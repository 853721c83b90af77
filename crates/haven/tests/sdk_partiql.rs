//! ExecuteStatement, BatchExecuteStatement and ExecuteTransaction through the AWS SDK for Rust:
//! every statement kind with parameters, DynamoDB's typed errors as the SDK parses them, paging a
//! scan-backed and a multi-partition SELECT with NextToken (every item once, in key order where
//! the read is ordered), the 1 MB page limit, per-statement results of a batch, and transactions:
//! all-or-nothing, cancellation reasons, and ClientRequestToken retries applied once (also across a
//! restart).

mod common;

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, BatchStatementErrorCodeEnum, BatchStatementRequest, ParameterizedStatement,
    ReturnValuesOnConditionCheckFailure,
};
use common::{HavenServer, create_table, error_of, terminate};

type Item = HashMap<String, AttributeValue>;

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn number(item: &Item, name: &str) -> i64 {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().unwrap(),
        other => panic!("{name} is not a number in {item:?}: {other:?}"),
    }
}

/// Runs one statement with parameters and returns its items.
async fn execute(client: &Client, statement: &str, parameters: Vec<AttributeValue>) -> Vec<Item> {
    client
        .execute_statement()
        .statement(statement)
        .set_parameters((!parameters.is_empty()).then_some(parameters))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e:?}"))
        .items
        .unwrap_or_default()
}

/// Every page of a SELECT, following NextToken: the items of each page.
async fn pages(client: &Client, statement: &str, limit: Option<i32>) -> Vec<Vec<Item>> {
    let mut pages = Vec::new();
    let mut token = None;
    for _ in 0..10_000 {
        let page = client
            .execute_statement()
            .statement(statement)
            .set_limit(limit)
            .set_next_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e:?}"));
        pages.push(page.items.unwrap_or_default());
        token = page.next_token;
        if token.is_none() {
            return pages;
        }
    }
    panic!("{statement} never ran out of pages");
}

/// `(pk, sk)` of each item.
fn keys(items: &[Item]) -> Vec<(String, i64)> {
    items
        .iter()
        .map(|item| match &item["pk"] {
            AttributeValue::S(pk) => (pk.clone(), number(item, "sk")),
            other => panic!("pk {other:?}"),
        })
        .collect()
}

async fn keyed_table(client: &Client, name: &str) {
    create_table(client, name, &[("pk", "S"), ("sk", "N")]).await;
}

#[tokio::test]
async fn statements_read_and_write_items() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    keyed_table(&client, "orders").await;
    let insert = "INSERT INTO orders VALUE {'pk': ?, 'sk': ?, 'total': ?, 'tags': ?, 'bytes': ?, 'lines': [1, 'two', {'three': 3}]}";
    for sk in 1..=3 {
        let parameters = vec![
            s("alice"),
            n(sk),
            n(sk * 100),
            AttributeValue::Ss(vec!["new".into()]),
            AttributeValue::B(vec![0, sk as u8].into()),
        ];
        assert!(execute(&client, insert, parameters).await.is_empty());
    }
    execute(
        &client,
        "INSERT INTO orders VALUE {'pk':'bob','sk':1,'total':5}",
        vec![],
    )
    .await;

    let one = execute(
        &client,
        "SELECT * FROM orders WHERE pk = ? AND sk = ?",
        vec![s("alice"), n(2)],
    )
    .await;
    assert_eq!(one.len(), 1);
    assert_eq!(number(&one[0], "total"), 200);
    assert_eq!(one[0]["bytes"], AttributeValue::B(vec![0, 2].into()));
    assert_eq!(
        one[0]["lines"].as_l().unwrap()[2].as_m().unwrap()["three"],
        n(3)
    );
    let partition = execute(
        &client,
        "SELECT sk, lines[1] FROM orders WHERE pk = 'alice' ORDER BY sk DESC",
        vec![],
    )
    .await;
    let sks: Vec<i64> = partition.iter().map(|i| number(i, "sk")).collect();
    assert_eq!(sks, [3, 2, 1]);
    assert_eq!(partition[0]["lines[1]"], s("two"));

    let updated = execute(
        &client,
        "UPDATE orders SET total = total + ?, tags = set_add(tags, <<'paid'>>) REMOVE bytes WHERE pk = 'alice' AND sk = 1 RETURNING ALL NEW *",
        vec![n(1)],
    )
    .await;
    assert_eq!(number(&updated[0], "total"), 101);
    let tags: BTreeSet<&String> = updated[0]["tags"].as_ss().unwrap().iter().collect();
    assert_eq!(tags.into_iter().collect::<Vec<_>>(), ["new", "paid"]);
    assert!(!updated[0].contains_key("bytes"));

    let deleted = execute(
        &client,
        "DELETE FROM orders WHERE pk = 'bob' AND sk = 1 RETURNING ALL OLD *",
        vec![],
    )
    .await;
    assert_eq!(number(&deleted[0], "total"), 5);
    assert!(
        execute(&client, "SELECT * FROM orders WHERE pk = 'bob'", vec![])
            .await
            .is_empty()
    );
    // Deleting what is not there succeeds and returns nothing.
    assert!(
        execute(
            &client,
            "DELETE FROM orders WHERE pk = 'bob' AND sk = 1 RETURNING ALL OLD *",
            vec![]
        )
        .await
        .is_empty()
    );
}

/// A server with an `orders` table holding one item, `a/1`, whose state is `open`.
async fn orders_with_an_open_order() -> (HavenServer, Client) {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    keyed_table(&client, "orders").await;
    let insert = "INSERT INTO orders VALUE {'pk':'a','sk':1,'state':'open'}";
    execute(&client, insert, vec![]).await;
    (server, client)
}

#[tokio::test]
async fn statement_errors_are_dynamodb_s_types() {
    let (_server, client) = orders_with_an_open_order().await;

    let duplicate = client
        .execute_statement()
        .statement("INSERT INTO orders VALUE {'pk':'a','sk':1}")
        .send()
        .await;
    let error = duplicate.as_ref().unwrap_err().as_service_error().unwrap();
    assert!(error.is_duplicate_item_exception(), "{error:?}");
    assert_eq!(
        error_of(duplicate),
        (
            "DuplicateItemException".into(),
            "Duplicate primary key exists in table".into()
        )
    );

    let failed = client
        .execute_statement()
        .statement("UPDATE orders SET state = 'paid' WHERE pk = 'a' AND sk = 1 AND state = 'paid'")
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .unwrap_err();
    let failed = failed.into_service_error();
    assert!(failed.is_conditional_check_failed_exception());
    let returned = match failed {
        aws_sdk_dynamodb::operation::execute_statement::ExecuteStatementError::ConditionalCheckFailedException(e) => e.item.unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(returned["state"], s("open"));

    let run = |text: &'static str| client.execute_statement().statement(text).send();
    let missing = run("UPDATE orders SET state = 'paid' WHERE pk = 'a' AND sk = 2").await;
    assert_eq!(error_of(missing).0, "ConditionalCheckFailedException");
    assert_eq!(
        error_of(run("SELEC * FROM orders").await),
        (
            "ValidationException".into(),
            "Statement wasn't well formed, can't be processed: SELEC * FROM orders".into()
        )
    );
    let unknown = run("SELECT * FROM nowhere").await;
    assert_eq!(error_of(unknown).0, "ResourceNotFoundException");
    let no_key = run("DELETE FROM orders WHERE pk = 'a'").await;
    assert_eq!(
        error_of(no_key).1,
        "Where clause does not contain a mandatory equality on all key attributes"
    );
}

#[tokio::test]
async fn a_scan_backed_select_pages_with_next_token() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    keyed_table(&client, "events").await;
    let mut expected = BTreeSet::new();
    for p in 0..12 {
        for sk in 0..5 {
            let pk = format!("p{p:02}");
            let statement = "INSERT INTO events VALUE {'pk':?,'sk':?,'even':?}";
            execute(
                &client,
                statement,
                vec![s(&pk), n(sk), AttributeValue::Bool(sk % 2 == 0)],
            )
            .await;
            expected.insert((pk, sk));
        }
    }
    // A scan: every item exactly once, pages of at most Limit items.
    let scanned = pages(&client, "SELECT pk, sk FROM events", Some(7)).await;
    assert!(scanned.iter().all(|page| page.len() <= 7));
    assert!(scanned.len() >= 60 / 7);
    let all: Vec<(String, i64)> = scanned.iter().flat_map(|page| keys(page)).collect();
    assert_eq!(all.len(), 60, "no item twice");
    assert_eq!(all.into_iter().collect::<BTreeSet<_>>(), expected);

    // A filter: Limit counts items read, so a page may hold fewer (or none), and paging goes on.
    let filtered = pages(
        &client,
        "SELECT pk, sk FROM events WHERE even = true",
        Some(4),
    )
    .await;
    let evens: BTreeSet<(String, i64)> = filtered.iter().flat_map(|page| keys(page)).collect();
    assert_eq!(evens.len(), 36);
    assert!(evens.iter().all(|(_, sk)| sk % 2 == 0));
    assert!(filtered.len() >= 60 / 4);

    // Several partitions: in key order (descending here), resuming across partitions.
    let statement = "SELECT pk, sk FROM events WHERE pk IN ['p03', 'p01', 'p07'] AND sk < 4 ORDER BY pk DESC, sk DESC";
    let ordered: Vec<(String, i64)> = pages(&client, statement, Some(5))
        .await
        .iter()
        .flat_map(|page| keys(page))
        .collect();
    let mut wanted: Vec<(String, i64)> = ["p07", "p03", "p01"]
        .iter()
        .flat_map(|pk| (0..4).rev().map(move |sk| (pk.to_string(), sk)))
        .collect();
    assert_eq!(ordered, wanted);
    wanted.reverse();
    let ascending = pages(
        &client,
        "SELECT pk, sk FROM events WHERE pk IN ['p03', 'p01', 'p07'] AND sk < 4",
        Some(3),
    )
    .await;
    assert_eq!(
        ascending
            .iter()
            .flat_map(|page| keys(page))
            .collect::<Vec<_>>(),
        wanted
    );

    let bad = client
        .execute_statement()
        .statement("SELECT * FROM events")
        .next_token("not-a-token")
        .send()
        .await;
    assert_eq!(
        error_of(bad),
        ("ValidationException".into(), "Invalid NextToken".into())
    );
}

#[tokio::test]
async fn a_page_stops_after_one_megabyte() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    keyed_table(&client, "blobs").await;
    let payload = "x".repeat(100 * 1024);
    for sk in 0..25 {
        execute(
            &client,
            "INSERT INTO blobs VALUE {'pk':'big','sk':?,'data':?}",
            vec![n(sk), s(&payload)],
        )
        .await;
    }
    let pages = pages(&client, "SELECT sk FROM blobs WHERE pk = 'big'", None).await;
    assert!(
        pages.len() >= 3,
        "25 items of 100 KB take three pages, got {}",
        pages.len()
    );
    assert!(pages.iter().all(|page| page.len() <= 11));
    let sks: Vec<i64> = pages.iter().flatten().map(|i| number(i, "sk")).collect();
    assert_eq!(sks, (0..25).collect::<Vec<_>>());
}

fn statement(text: &str) -> BatchStatementRequest {
    BatchStatementRequest::builder()
        .statement(text)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_batch_answers_statement_by_statement() {
    let (_server, client) = orders_with_an_open_order().await;
    execute(
        &client,
        "INSERT INTO orders VALUE {'pk':'a','sk':5}",
        vec![],
    )
    .await;
    let writes = client
        .batch_execute_statement()
        .statements(statement("INSERT INTO orders VALUE {'pk':'a','sk':2}"))
        .statements(statement("INSERT INTO orders VALUE {'pk':'a','sk':5}"))
        .statements(
            BatchStatementRequest::builder()
                .statement(
                    "UPDATE orders SET state = 'x' WHERE pk = ? AND sk = ? AND state = 'closed'",
                )
                .parameters(s("a"))
                .parameters(n(1))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .unwrap(),
        )
        .statements(statement(
            "UPDATE orders SET state = 'paid' WHERE pk = 'a' AND sk = 3",
        ))
        .statements(statement("DELETE FROM nowhere WHERE pk = 'a' AND sk = 1"))
        .send()
        .await
        .unwrap();
    let responses = writes.responses.unwrap();
    assert_eq!(responses.len(), 5);
    assert!(responses[0].error.is_none());
    assert_eq!(responses[0].table_name.as_deref(), Some("orders"));
    let code = |i: usize| responses[i].error.as_ref().and_then(|e| e.code.clone());
    assert_eq!(code(1), Some(BatchStatementErrorCodeEnum::DuplicateItem));
    assert_eq!(
        code(2),
        Some(BatchStatementErrorCodeEnum::ConditionalCheckFailed)
    );
    assert_eq!(
        responses[2].error.as_ref().unwrap().item.as_ref().unwrap()["state"],
        s("open")
    );
    assert_eq!(
        code(3),
        Some(BatchStatementErrorCodeEnum::ConditionalCheckFailed)
    );
    assert_eq!(code(4), Some(BatchStatementErrorCodeEnum::ResourceNotFound));

    let reads = client
        .batch_execute_statement()
        .statements(statement(
            "SELECT state FROM orders WHERE pk = 'a' AND sk = 1",
        ))
        .statements(statement("SELECT * FROM orders WHERE pk = 'a' AND sk = 2"))
        .statements(statement("SELECT * FROM orders WHERE pk = 'a' AND sk = 9"))
        .statements(statement("SELECT * FROM orders WHERE pk = 'a'"))
        .send()
        .await
        .unwrap()
        .responses
        .unwrap();
    assert_eq!(
        reads[0].item.as_ref().unwrap(),
        &HashMap::from([("state".to_string(), s("open"))])
    );
    assert!(reads[1].item.is_some());
    assert!(reads[2].item.is_none() && reads[2].error.is_none());
    assert_eq!(
        reads[3].error.as_ref().unwrap().message.as_deref(),
        Some("Only single item select is supported")
    );
}

fn transaction_statement(text: &str, parameters: Vec<AttributeValue>) -> ParameterizedStatement {
    ParameterizedStatement::builder()
        .statement(text)
        .set_parameters((!parameters.is_empty()).then_some(parameters))
        .build()
        .unwrap()
}

/// Moves `amount` from `from` to `to` in one transaction, under `token`.
async fn transfer(
    client: &Client,
    from: &str,
    to: &str,
    amount: i64,
    token: &str,
) -> Result<
    (),
    aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::execute_transaction::ExecuteTransactionError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
> {
    client
        .execute_transaction()
        .transact_statements(transaction_statement(
            "UPDATE accounts SET balance = balance - ? WHERE pk = ? AND sk = 0 AND balance >= ?",
            vec![n(amount), s(from), n(amount)],
        ))
        .transact_statements(transaction_statement(
            "UPDATE accounts SET balance = balance + ? WHERE pk = ? AND sk = 0",
            vec![n(amount), s(to)],
        ))
        .client_request_token(token)
        .send()
        .await
        .map(|_| ())
}

async fn balance(client: &Client, pk: &str) -> i64 {
    let items = execute(
        client,
        "SELECT balance FROM accounts WHERE pk = ? AND sk = 0",
        vec![s(pk)],
    )
    .await;
    number(&items[0], "balance")
}

#[tokio::test]
async fn transactions_are_atomic_and_retries_apply_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = HavenServer::start_on_disk(dir.path());
    let client = server.client();
    keyed_table(&client, "accounts").await;
    for (pk, balance) in [("alice", 100), ("bob", 0)] {
        execute(
            &client,
            "INSERT INTO accounts VALUE {'pk':?,'sk':0,'balance':?}",
            vec![s(pk), n(balance)],
        )
        .await;
    }

    // A retry with the same token (what the SDK sends after a lost answer) applies once.
    for _ in 0..3 {
        transfer(&client, "alice", "bob", 30, "transfer-1")
            .await
            .unwrap();
    }
    assert_eq!(
        (
            balance(&client, "alice").await,
            balance(&client, "bob").await
        ),
        (70, 30)
    );
    let (code, _) = error_of(transfer(&client, "alice", "bob", 31, "transfer-1").await);
    assert_eq!(code, "IdempotentParameterMismatchException");

    // A failed condition cancels everything, with a reason per statement.
    let cancelled = transfer(&client, "alice", "bob", 500, "transfer-2")
        .await
        .unwrap_err();
    let reasons = match cancelled.into_service_error() {
        aws_sdk_dynamodb::operation::execute_transaction::ExecuteTransactionError::TransactionCanceledException(e) => e.cancellation_reasons.unwrap(),
        other => panic!("{other:?}"),
    };
    let codes: Vec<Option<&str>> = reasons.iter().map(|r| r.code()).collect();
    assert_eq!(codes, [Some("ConditionalCheckFailed"), Some("None")]);
    assert_eq!(
        (
            balance(&client, "alice").await,
            balance(&client, "bob").await
        ),
        (70, 30)
    );

    // The token survives a restart.
    let status = tokio::task::spawn_blocking(move || terminate(server))
        .await
        .unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let server = HavenServer::start_on_disk(dir.path());
    let client = server.client();
    transfer(&client, "alice", "bob", 30, "transfer-1")
        .await
        .unwrap();
    assert_eq!(
        (
            balance(&client, "alice").await,
            balance(&client, "bob").await
        ),
        (70, 30)
    );

    // Reads of a transaction come from one snapshot; EXISTS guards writes.
    let read = client
        .execute_transaction()
        .transact_statements(transaction_statement(
            "SELECT balance FROM accounts WHERE pk = 'alice' AND sk = 0",
            vec![],
        ))
        .transact_statements(transaction_statement(
            "SELECT * FROM accounts WHERE pk = 'carol' AND sk = 0",
            vec![],
        ))
        .send()
        .await
        .unwrap();
    let responses = read.responses.unwrap();
    assert_eq!(number(responses[0].item.as_ref().unwrap(), "balance"), 70);
    assert!(responses[1].item.is_none());
    let guarded = client
        .execute_transaction()
        .transact_statements(transaction_statement(
            "EXISTS(SELECT * FROM accounts WHERE pk = 'bob' AND sk = 0 AND balance > 1000)",
            vec![],
        ))
        .transact_statements(transaction_statement(
            "INSERT INTO accounts VALUE {'pk':'carol','sk':0,'balance':1}",
            vec![],
        ))
        .send()
        .await;
    assert_eq!(error_of(guarded).0, "TransactionCanceledException");
    assert!(
        execute(&client, "SELECT * FROM accounts WHERE pk = 'carol'", vec![])
            .await
            .is_empty()
    );
}
