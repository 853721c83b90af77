//! The request decoder at small sizes (issue 9): random bytes and random JSON built from
//! DynamoDB's member names, sent as every operation, never panic and are never answered with
//! InternalServerError. The fuzz target `fuzz/fuzz_targets/decode_request.rs` runs the same harness
//! (`decoder/mod.rs`) for as long as it is given.

mod decoder;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// The operations Haven implements, and names it does not.
const OPERATIONS: &[&str] = &[
    "CreateTable",
    "DescribeTable",
    "ListTables",
    "DeleteTable",
    "UpdateTable",
    "PutItem",
    "GetItem",
    "DeleteItem",
    "UpdateItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "TransactGetItems",
    "TagResource",
    "UntagResource",
    "ListTagsOfResource",
    "UpdateTimeToLive",
    "DescribeTimeToLive",
    "DescribeLimits",
    "DescribeEndpoints",
    "ExecuteStatement",
    "",
    "putitem",
];

const MEMBERS: &[&str] = &[
    "TableName",
    "Key",
    "Item",
    "Keys",
    "KeySchema",
    "AttributeName",
    "KeyType",
    "AttributeDefinitions",
    "AttributeType",
    "ProvisionedThroughput",
    "BillingMode",
    "S",
    "N",
    "B",
    "BOOL",
    "NULL",
    "L",
    "M",
    "SS",
    "NS",
    "BS",
    "UpdateExpression",
    "ConditionExpression",
    "KeyConditionExpression",
    "FilterExpression",
    "ProjectionExpression",
    "ExpressionAttributeNames",
    "ExpressionAttributeValues",
    "Expected",
    "AttributeUpdates",
    "KeyConditions",
    "ComparisonOperator",
    "AttributeValueList",
    "RequestItems",
    "PutRequest",
    "DeleteRequest",
    "TransactItems",
    "Put",
    "Update",
    "Delete",
    "ConditionCheck",
    "Get",
    "ReturnValues",
    "Limit",
    "ExclusiveStartKey",
    "IndexName",
    "Select",
    "Segment",
    "TotalSegments",
    "pk",
    "sk",
    "g",
    ":v",
    "#n",
];

const STRINGS: &[&str] = &[
    "tab",
    "rng",
    "gsi",
    "lsi",
    "pk",
    "sk",
    "a",
    "1",
    "-1E+126",
    "S",
    "N",
    "HASH",
    "RANGE",
    "ALL_NEW",
    "COUNT",
    "EQ",
    "BETWEEN",
    "pk = :v",
    "SET #n = :v",
    "ADD n :v REMOVE l[0]",
    "attribute_exists(pk) AND size(l) > :v",
    "((((a))))",
];

fn member() -> impl Strategy<Value = String> {
    prop::sample::select(MEMBERS).prop_map(str::to_string)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(STRINGS).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((member(), inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A request body: usually an object naming one of the fixture's tables, sometimes any JSON.
fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let request =
        (prop::sample::select(&["tab", "rng"][..]), json_value()).prop_map(|(table, value)| {
            let mut object = match value {
                Value::Object(object) => object,
                other => Map::from_iter([("Item".to_string(), other)]),
            };
            object.insert("TableName".into(), table.into());
            Value::Object(object)
        });
    prop_oneof![3 => request, 1 => json_value()].prop_map(|v| v.to_string().into_bytes())
}

fn operation() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(OPERATIONS).prop_map(|name| name.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ]
}

fn run(operation: &[u8], body: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let service = decoder::fixture().await;
        if let Some(answer) = decoder::decode(&service, operation, body).await {
            decoder::check(operation, body, &answer);
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_json_request_is_answered_or_refused_as_the_clients_fault(
        operation in operation(),
        body in json_body(),
    ) {
        run(&operation, &body);
    }

    #[test]
    fn any_bytes_are_answered_or_refused_as_the_clients_fault(
        operation in operation(),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        run(&operation, &body);
    }
}
