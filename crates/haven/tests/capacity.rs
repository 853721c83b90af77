//! Capacity as DynamoDB enforces it, through the real binary and the AWS SDK for Rust: a
//! provisioned table's token bucket (rate and burst, measured over seconds with bounds that hold
//! on a slow machine: accepted units stay within rate × elapsed + burst, never a speed
//! threshold), the SDK's standard retry getting through, batches answering what was throttled as
//! unprocessed, on-demand maxima, a global index's back-pressure, and `--capacity off`.
//!
//! The burst window is shortened with `--capacity-burst-secs` (300 s by default, as AWS) so each
//! test takes a few seconds.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, GlobalSecondaryIndex, GlobalSecondaryIndexUpdate,
    OnDemandThroughput, Projection, ProjectionType, ProvisionedThroughput, PutRequest,
    UpdateGlobalSecondaryIndexAction, WriteRequest,
};
use common::{HavenServer, error_of, table_keys};

const BURST_SECS: u64 = 2;
const TABLE_EXCEEDED: &str = "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.";
const TABLES_EXCEEDED: &str = "The level of configured provisioned throughput for one or more tables was exceeded. Consider increasing your provisioning level with the UpdateTable API.";
const INDEXES_EXCEEDED: &str = "The level of configured provisioned throughput for one or more global secondary indexes of the table was exceeded. Consider increasing your provisioning level for the under-provisioned global secondary indexes with the UpdateTable API";
const INDEX_EXCEEDED: &str =
    "The level of configured provisioned throughput for the index was exceeded";
const MAX_ON_DEMAND: &str =
    "Throughput exceeds the maximum OnDemandThroughput configured on table or index";

/// A ProvisionedThroughputExceededException with `message`, as `error_of` gives it.
fn exceeded(message: &str) -> (String, String) {
    (
        "ProvisionedThroughputExceededException".into(),
        message.into(),
    )
}

/// Puts an item of about `bytes` under key 0, whose units overdraw a small bucket.
async fn put_large(client: &Client, table: &str, bytes: usize) {
    let mut large = item(0);
    large.insert("v".into(), AttributeValue::S("x".repeat(bytes)));
    client
        .put_item()
        .table_name(table)
        .set_item(Some(large))
        .send()
        .await
        .unwrap();
}

fn server() -> HavenServer {
    HavenServer::start_with(&[
        "--in-memory",
        "--capacity-burst-secs",
        &BURST_SECS.to_string(),
    ])
}

fn throughput(read: i64, write: i64) -> ProvisionedThroughput {
    ProvisionedThroughput::builder()
        .read_capacity_units(read)
        .write_capacity_units(write)
        .build()
        .unwrap()
}

/// A provisioned table keyed by `pk`, with a global index on `g` when `index` gives its
/// throughput.
async fn provisioned_table(
    client: &Client,
    name: &str,
    table: (i64, i64),
    index: Option<(i64, i64)>,
) {
    let (schema, mut definitions) = table_keys(&[("pk", "S")]);
    let mut request = client
        .create_table()
        .table_name(name)
        .set_key_schema(Some(schema))
        .billing_mode(BillingMode::Provisioned)
        .provisioned_throughput(throughput(table.0, table.1));
    if let Some((read, write)) = index {
        let (index_schema, index_definitions) = table_keys(&[("g", "S")]);
        definitions.extend(index_definitions);
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("byg")
                .set_key_schema(Some(index_schema))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .provisioned_throughput(throughput(read, write))
                .build()
                .unwrap(),
        );
    }
    request
        .set_attribute_definitions(Some(definitions))
        .send()
        .await
        .unwrap();
}

fn item(key: usize) -> std::collections::HashMap<String, AttributeValue> {
    [
        ("pk".to_string(), AttributeValue::S(format!("k{key}"))),
        ("g".to_string(), AttributeValue::S("group".into())),
    ]
    .into_iter()
    .collect()
}

async fn put(client: &Client, table: &str, key: usize) -> Result<(), (String, String)> {
    let sent = client
        .put_item()
        .table_name(table)
        .set_item(Some(item(key)))
        .send()
        .await;
    match sent {
        Ok(_) => Ok(()),
        Err(error) => Err(error_of::<(), _, _>(Err(error))),
    }
}

/// Puts 1-unit items one after another for `seconds`; returns the writes accepted, the
/// refusals (type and message), and the time taken.
async fn hammer(client: &Client, table: &str, seconds: u64) -> (usize, Vec<(String, String)>, f64) {
    let start = Instant::now();
    let (mut accepted, mut refused) = (0, Vec::new());
    let mut key = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        key += 1;
        match put(client, table, key).await {
            Ok(()) => accepted += 1,
            Err(refusal) => refused.push(refusal),
        }
    }
    (accepted, refused, start.elapsed().as_secs_f64())
}

/// Puts items one after another until one is refused; returns its key and the refusal.
async fn put_until_refused(client: &Client, table: &str) -> (usize, (String, String)) {
    for key in 1..100 {
        if let Err(refusal) = put(client, table, key).await {
            return (key, refusal);
        }
    }
    panic!("100 writes to {table} and no throttle");
}

#[tokio::test]
async fn a_provisioned_table_is_held_to_its_rate_and_burst() {
    let server = server();
    let client = server.client_without_retries();
    let rate = 5.0;
    provisioned_table(&client, "rated", (5, 5), None).await;
    let (accepted, refused, elapsed) = hammer(&client, "rated", 3).await;
    let burst = rate * BURST_SECS as f64;
    // A bucket admits while capacity remains and charges after, so one request may overdraw it.
    let most = burst + rate * elapsed + 1.0;
    assert!(
        (accepted as f64) <= most,
        "{accepted} writes accepted in {elapsed:.2} s, at most {most:.1} allowed"
    );
    // Lower bounds that a slow machine (few attempts) cannot break: the burst is granted to
    // the first writes, and the rate to a client that kept asking.
    let attempts = (accepted + refused.len()) as f64;
    assert!(
        (accepted as f64) >= attempts.min(burst),
        "the burst was not granted"
    );
    if attempts >= 2.0 * most {
        assert!(
            (accepted as f64) >= burst + rate * elapsed / 2.0,
            "{accepted} writes accepted in {elapsed:.2} s: the rate was not granted"
        );
    }
    if attempts > most {
        assert!(!refused.is_empty(), "the writes were never throttled");
    }
    for refusal in &refused {
        assert_eq!(refusal, &exceeded(TABLE_EXCEEDED));
    }
    // A throttled write has no effect: only accepted writes are there.
    let count = client
        .scan()
        .table_name("rated")
        .consistent_read(true)
        .select(aws_sdk_dynamodb::types::Select::Count)
        .send()
        .await;
    // The scan itself may be throttled by the table's read capacity; read it with retries.
    let count = match count {
        Ok(answer) => answer.count(),
        Err(_) => server
            .client()
            .scan()
            .table_name("rated")
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .unwrap()
            .count(),
    };
    assert_eq!(count as usize, accepted);
}

#[tokio::test]
async fn the_sdks_standard_retry_gets_through_a_throttle() {
    let server = server();
    let client = server.client_without_retries();
    provisioned_table(&client, "retried", (1, 1), None).await;
    let (key, drained) = put_until_refused(&client, "retried").await;
    assert_eq!(drained.0, "ProvisionedThroughputExceededException");
    let retrying = Client::from_conf(
        server
            .client()
            .config()
            .to_builder()
            .retry_config(RetryConfig::standard().with_max_attempts(10))
            .build(),
    );
    put(&retrying, "retried", key).await.unwrap();
}

#[tokio::test]
async fn a_throttled_batch_answers_unprocessed_items_or_is_refused_whole() {
    let server = server();
    let client = server.client_without_retries();
    provisioned_table(&client, "batched", (1, 1), None).await;
    // A 3 KB item costs 3 units: the 2-unit bucket goes into debt.
    put_large(&client, "batched", 3000).await;
    let batch = || {
        let writes: Vec<WriteRequest> = (1..=10)
            .map(|key| {
                let put = PutRequest::builder().set_item(Some(item(key))).build();
                WriteRequest::builder().put_request(put.unwrap()).build()
            })
            .collect();
        client
            .batch_write_item()
            .request_items("batched", writes)
            .send()
    };
    assert_eq!(error_of(batch().await), exceeded(TABLES_EXCEEDED));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answer = batch().await.unwrap();
    let unprocessed = answer.unprocessed_items().unwrap()["batched"].len();
    assert!(
        (1..10).contains(&unprocessed),
        "{unprocessed} of 10 writes unprocessed: some should have gone through, not all"
    );
}

#[tokio::test]
async fn an_on_demand_maximum_caps_requests_per_second() {
    let server = server();
    let client = server.client_without_retries();
    let (schema, definitions) = table_keys(&[("pk", "S")]);
    client
        .create_table()
        .table_name("capped")
        .set_key_schema(Some(schema))
        .set_attribute_definitions(Some(definitions))
        .billing_mode(BillingMode::PayPerRequest)
        .on_demand_throughput(
            OnDemandThroughput::builder()
                .max_write_request_units(2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let described = client
        .describe_table()
        .table_name("capped")
        .send()
        .await
        .unwrap();
    let maximum = described.table().unwrap().on_demand_throughput().unwrap();
    assert_eq!(
        (
            maximum.max_read_request_units(),
            maximum.max_write_request_units()
        ),
        (Some(-1), Some(2))
    );
    let (accepted, refused, elapsed) = hammer(&client, "capped", 2).await;
    let most = 2.0 + 2.0 * elapsed + 1.0;
    assert!(
        (accepted as f64) <= most,
        "{accepted} writes in {elapsed:.2} s, at most {most:.1} allowed"
    );
    if (accepted + refused.len()) as f64 > most {
        assert!(!refused.is_empty(), "the maximum was never reached");
    }
    assert!(
        refused
            .iter()
            .all(|r| r.0 == "ThrottlingException" && r.1 == MAX_ON_DEMAND)
    );
    // -1 removes the maximum.
    client
        .update_table()
        .table_name("capped")
        .on_demand_throughput(
            OnDemandThroughput::builder()
                .max_write_request_units(-1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    for key in 0..30 {
        put(&client, "capped", key).await.unwrap();
    }
}

#[tokio::test]
async fn a_global_index_out_of_capacity_throttles_the_tables_writes() {
    let server = server();
    let client = server.client_without_retries();
    provisioned_table(&client, "pressed", (100, 100), Some((1, 1))).await;
    let (key, refusal) = put_until_refused(&client, "pressed").await;
    assert_eq!(refusal, exceeded(INDEXES_EXCEEDED));
    let stored = client
        .get_item()
        .table_name("pressed")
        .key("pk", AttributeValue::S(format!("k{key}")))
        .send()
        .await
        .unwrap();
    assert!(stored.item().is_none(), "a throttled write left its item");
    // A Query on the index spends the index's own read capacity.
    let query = || {
        client
            .query()
            .table_name("pressed")
            .index_name("byg")
            .key_condition_expression("g = :g")
            .expression_attribute_values(":g", AttributeValue::S("group".into()))
            .send()
    };
    let mut queries = 0;
    let refused = loop {
        if let Err(error) = query().await {
            break error_of::<(), _, _>(Err(error));
        }
        queries += 1;
        assert!(
            queries < 100,
            "the index's 1 read unit never throttled a Query"
        );
    };
    assert_eq!(refused, exceeded(INDEX_EXCEEDED));
    // Each refusal is counted on the index (docs/metrics.md).
    let metrics = ureq::get(format!("{}/metrics", server.endpoint()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    for kind in ["read", "write"] {
        let series =
            format!(r#"haven_{kind}_throttle_events_total{{table="pressed",index="byg"}} 1"#);
        assert!(
            metrics.lines().any(|l| l == series),
            "no {series} in\n{metrics}"
        );
    }
    // Raising the index's capacity (GlobalSecondaryIndexUpdates Update) lets writes through.
    client
        .update_table()
        .table_name("pressed")
        .global_secondary_index_updates(
            GlobalSecondaryIndexUpdate::builder()
                .update(
                    UpdateGlobalSecondaryIndexAction::builder()
                        .index_name("byg")
                        .provisioned_throughput(throughput(1, 1000))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for key in 1000..1020 {
        put(&client, "pressed", key).await.unwrap();
    }
}

#[tokio::test]
async fn capacity_off_never_throttles() {
    let server = HavenServer::start_with(&["--in-memory", "--capacity", "off"]);
    let client = server.client_without_retries();
    provisioned_table(&client, "unbounded", (1, 1), Some((1, 1))).await;
    for key in 0..400 {
        put(&client, "unbounded", key).await.unwrap();
    }
}

#[tokio::test]
async fn a_throttled_batch_get_answers_unprocessed_keys_or_is_refused_whole() {
    let server = server();
    let client = server.client_without_retries();
    provisioned_table(&client, "read_batched", (1, 20), None).await;
    for key in 1..=5 {
        put(&client, "read_batched", key).await.unwrap();
    }
    put_large(&client, "read_batched", 9000).await;
    let key = [("pk".to_string(), item(0)["pk"].clone())];
    // A consistent read of 9 KB costs 3 units: the 2-unit read bucket goes into debt.
    client
        .get_item()
        .table_name("read_batched")
        .set_key(Some(key.into_iter().collect()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let batch = || {
        let keys = (1..=5).map(|key| {
            [("pk".to_string(), AttributeValue::S(format!("k{key}")))]
                .into_iter()
                .collect()
        });
        let keys = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
            .set_keys(Some(keys.collect()))
            .build()
            .unwrap();
        client
            .batch_get_item()
            .request_items("read_batched", keys)
            .send()
    };
    assert_eq!(error_of(batch().await), exceeded(TABLES_EXCEEDED));
    // A PartiQL batch answers the refusal per statement.
    let statement = aws_sdk_dynamodb::types::BatchStatementRequest::builder()
        .statement(r#"SELECT * FROM "read_batched" WHERE pk = 'k1'"#)
        .build()
        .unwrap();
    let answer = client
        .batch_execute_statement()
        .statements(statement)
        .send()
        .await
        .unwrap();
    let error = answer.responses()[0]
        .error()
        .expect("the statement was throttled");
    assert_eq!(
        error.code().map(|c| c.as_str()),
        Some("ProvisionedThroughputExceeded")
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answer = batch().await.unwrap();
    let found = answer.responses().unwrap()["read_batched"].len();
    let unprocessed = answer.unprocessed_keys().unwrap()["read_batched"]
        .keys()
        .len();
    assert_eq!(found + unprocessed, 5);
    assert!(
        (1..5).contains(&unprocessed),
        "{unprocessed} of 5 keys unprocessed: some should have been read, not all"
    );
}

#[tokio::test]
async fn a_transaction_spends_twice_and_is_refused_whole() {
    let server = server();
    let client = server.client_without_retries();
    provisioned_table(&client, "transacted", (1, 1), None).await;
    let transact = |key: usize| {
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name("transacted")
            .set_item(Some(item(key)))
            .build()
            .unwrap();
        client
            .transact_write_items()
            .transact_items(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .put(put)
                    .build(),
            )
            .send()
    };
    // The 2-unit bucket holds one 2-unit transaction, and a second may overdraw it.
    let mut accepted = 0;
    let refusal = loop {
        match transact(accepted).await {
            Ok(_) => accepted += 1,
            Err(error) => break error_of::<(), _, _>(Err(error)),
        }
        assert!(
            accepted <= 2,
            "{accepted} 2-unit transactions on a 2-unit bucket"
        );
    };
    assert_eq!(refusal, exceeded(TABLE_EXCEEDED));
    let stored = server
        .client()
        .get_item()
        .table_name("transacted")
        .key("pk", AttributeValue::S(format!("k{accepted}")))
        .send()
        .await
        .unwrap();
    assert!(
        stored.item().is_none(),
        "a refused transaction wrote its item"
    );
}

/// Leaving on-demand for provisioned capacity takes the table's and its global indexes'
/// throughput in one request, as DynamoDB requires; both apply, and the index is then held to its
/// own capacity (nothing in the request is dropped).
#[tokio::test]
async fn switching_to_provisioned_sets_the_table_and_its_indexes_in_one_request() {
    let server = server();
    let client = server.client_without_retries();
    let (schema, mut definitions) = table_keys(&[("pk", "S")]);
    let (index_schema, index_definitions) = table_keys(&[("g", "S")]);
    definitions.extend(index_definitions);
    let all = Projection::builder()
        .projection_type(ProjectionType::All)
        .build();
    let index = GlobalSecondaryIndex::builder()
        .index_name("byg")
        .set_key_schema(Some(index_schema))
        .projection(all);
    client
        .create_table()
        .table_name("switched")
        .set_key_schema(Some(schema))
        .set_attribute_definitions(Some(definitions))
        .billing_mode(BillingMode::PayPerRequest)
        .global_secondary_indexes(index.build().unwrap())
        .send()
        .await
        .unwrap();
    let index_update = UpdateGlobalSecondaryIndexAction::builder()
        .index_name("byg")
        .provisioned_throughput(throughput(3, 1));
    client
        .update_table()
        .table_name("switched")
        .billing_mode(BillingMode::Provisioned)
        .provisioned_throughput(throughput(7, 1000))
        .global_secondary_index_updates(
            GlobalSecondaryIndexUpdate::builder()
                .update(index_update.build().unwrap())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let described = client.describe_table().table_name("switched").send().await;
    let table = described.unwrap().table.unwrap();
    let mode = table.billing_mode_summary().and_then(|s| s.billing_mode());
    assert_eq!(mode, Some(&BillingMode::Provisioned));
    let capacity = table.provisioned_throughput().unwrap();
    assert_eq!(
        (
            capacity.read_capacity_units(),
            capacity.write_capacity_units()
        ),
        (Some(7), Some(1000))
    );
    let index = &table.global_secondary_indexes()[0];
    let capacity = index.provisioned_throughput().unwrap();
    assert_eq!(
        (
            capacity.read_capacity_units(),
            capacity.write_capacity_units()
        ),
        (Some(3), Some(1))
    );
    // The index's 1 write unit (2 s of burst) now holds the table's writes back.
    let (accepted, refusal) = put_until_refused(&client, "switched").await;
    assert!(accepted > 1, "{accepted}");
    assert_eq!(refusal, exceeded(INDEXES_EXCEEDED));
}
