//! Property: after any sequence of PutItem, UpdateItem, DeleteItem and BatchWriteItem, every
//! secondary index holds exactly the entries recomputed from the table's items (items having the
//! index keys, projected), and DescribeTable's ItemCount and IndexSizeBytes of each index agree.
//!
//! The table (`pk` S, `sk` N) has global indexes (hash and range, INCLUDE; hash only, KEYS_ONLY;
//! the table's keys swapped; a multi-attribute key of two partition and two sort attributes) and a
//! local index (ALL); a small key space makes items collide on
//! table and index keys, and Scans page with a small Limit through index LastEvaluatedKeys.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;

use haven_api::{DynamoError, Service, ServiceConfig};
use haven_model::{AttributeValue, Item, Number, item_size};
use haven_storage::RedbEngine;
use proptest::prelude::*;
use serde_json::{Value, json};

const TABLE: &str = "things";

/// An index as the test understands it: key attributes and what it projects.
struct IndexSpec {
    name: &'static str,
    global: bool,
    /// (attribute, type) of the partition key's attributes, then of the sort key's.
    keys: &'static [(&'static str, &'static str)],
    /// How many of `keys` form the partition key (more than one: a multi-attribute key).
    hashes: usize,
    /// None: ALL; Some(list): the non-key attributes projected (empty for KEYS_ONLY).
    include: Option<&'static [&'static str]>,
}

const INDEXES: [IndexSpec; 5] = [
    // Global, hash and range, INCLUDE a.
    IndexSpec {
        name: "by_gk",
        global: true,
        keys: &[("gk", "S"), ("gs", "N")],
        hashes: 1,
        include: Some(&["a"]),
    },
    // Global, hash only, KEYS_ONLY.
    IndexSpec {
        name: "by_gh",
        global: true,
        keys: &[("gh", "N")],
        hashes: 1,
        include: Some(&[]),
    },
    // Global, keyed by the table's keys swapped (key attributes shared with the table).
    IndexSpec {
        name: "by_sk_pk",
        global: true,
        keys: &[("sk", "N"), ("pk", "S")],
        hashes: 1,
        include: Some(&[]),
    },
    // Local, ALL.
    IndexSpec {
        name: "by_ls",
        global: false,
        keys: &[("pk", "S"), ("ls", "S")],
        hashes: 1,
        include: None,
    },
    // Global, a multi-attribute key (two partition, two sort attributes), INCLUDE b.
    IndexSpec {
        name: "by_multi",
        global: true,
        keys: &[("gk", "S"), ("gh", "N"), ("gs", "N"), ("ls", "S")],
        hashes: 2,
        include: Some(&["b"]),
    },
];

/// Attributes an item may carry besides its key, with the values each may take.
fn attribute_value(name: &str, choice: u8) -> Value {
    match name {
        "gk" => json!({"S": (["x", "y"][choice as usize % 2])}),
        "gs" => json!({"N": (choice % 3).to_string()}),
        "gh" => json!({"N": (choice % 2).to_string()}),
        "ls" => json!({"S": (["a", "b", "c"][choice as usize % 3])}),
        "a" => json!({"S": format!("a{choice}")}),
        "b" => json!({"N": choice.to_string()}),
        _ => unreachable!(),
    }
}

/// A global index created by UpdateTable in the middle of a sequence (backfilled while the
/// following writes run), checked once ACTIVE.
const CREATED: IndexSpec = IndexSpec {
    name: "by_b",
    global: true,
    keys: &[("b", "N")],
    hashes: 1,
    include: Some(&["gk"]),
};

const ATTRIBUTES: [&str; 6] = ["gk", "gs", "gh", "ls", "a", "b"];

/// A table key: pk in p0..p2, sk in 0..3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key(u8, u8);

impl Key {
    fn json(self) -> Value {
        json!({"pk": {"S": format!("p{}", self.0)}, "sk": {"N": self.1.to_string()}})
    }
}

/// The non-key attributes of a written item: (attribute index, value choice).
type Attributes = Vec<(usize, u8)>;

#[derive(Debug, Clone)]
enum Op {
    Put(Key, Attributes),
    /// SET these attributes, REMOVE those (attribute indexes).
    Update(Key, Attributes, Vec<usize>),
    Delete(Key),
    /// Puts (Some) and deletes (None) on distinct keys.
    Batch(Vec<(Key, Option<Attributes>)>),
    /// A write with a wrong-typed or empty index key: refused, changes nothing.
    BadPut(Key, u8),
    /// UpdateTable creating the `CREATED` index (the first time only).
    CreateIndex,
}

fn key() -> impl Strategy<Value = Key> {
    (0u8..3, 0u8..4).prop_map(|(p, s)| Key(p, s))
}

fn attributes() -> impl Strategy<Value = Attributes> {
    some_attributes(0)
}

fn some_attributes(at_least: usize) -> impl Strategy<Value = Attributes> {
    proptest::collection::btree_map(
        0usize..ATTRIBUTES.len(),
        any::<u8>(),
        at_least..=ATTRIBUTES.len(),
    )
    .prop_map(|m| m.into_iter().collect())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (key(), attributes()).prop_map(|(k, a)| Op::Put(k, a)),
        // At least one SET: an update that only removes would create a key-only item.
        4 => (key(), some_attributes(1), proptest::collection::vec(0usize..ATTRIBUTES.len(), 0..3))
            .prop_map(|(k, a, r)| Op::Update(k, a, r)),
        2 => key().prop_map(Op::Delete),
        2 => proptest::collection::vec((key(), proptest::option::of(attributes())), 1..6)
            .prop_map(|writes| {
                let mut seen = BTreeSet::new();
                Op::Batch(
                    writes
                        .into_iter()
                        .filter(|(k, _)| seen.insert((k.0, k.1)))
                        .collect(),
                )
            }),
        1 => (key(), any::<u8>()).prop_map(|(k, c)| Op::BadPut(k, c)),
        1 => Just(Op::CreateIndex),
    ]
}

fn item_json(key: Key, attributes: &Attributes) -> Value {
    let mut item = key.json();
    for (attribute, choice) in attributes {
        let name = ATTRIBUTES[*attribute];
        item[name] = attribute_value(name, *choice);
    }
    item
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

async fn call(service: &Service, operation: &str, request: Value) -> Value {
    service
        .call(operation, request.clone())
        .await
        .unwrap_or_else(|e| panic!("{operation} {request}: {e:?}"))
}

fn create_table_request() -> Value {
    let index = |spec: &IndexSpec| {
        let key_schema: Vec<Value> = spec
            .keys
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                let key_type = if i < spec.hashes { "HASH" } else { "RANGE" };
                json!({"AttributeName": name, "KeyType": key_type})
            })
            .collect();
        let projection = match spec.include {
            None => json!({"ProjectionType": "ALL"}),
            Some([]) => json!({"ProjectionType": "KEYS_ONLY"}),
            Some(list) => json!({"ProjectionType": "INCLUDE", "NonKeyAttributes": list}),
        };
        json!({"IndexName": spec.name, "KeySchema": key_schema, "Projection": projection})
    };
    let mut definitions = vec![
        json!({"AttributeName": "pk", "AttributeType": "S"}),
        json!({"AttributeName": "sk", "AttributeType": "N"}),
    ];
    for spec in &INDEXES {
        for (name, kind) in spec.keys {
            if !definitions.iter().any(|d| d["AttributeName"] == *name) {
                definitions.push(json!({"AttributeName": name, "AttributeType": kind}));
            }
        }
    }
    json!({
        "TableName": TABLE,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": definitions,
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": INDEXES.iter().filter(|s| s.global).map(index).collect::<Vec<_>>(),
        "LocalSecondaryIndexes": INDEXES.iter().filter(|s| !s.global).map(index).collect::<Vec<_>>(),
    })
}

/// Applies one operation and checks its outcome (the bad put must be refused).
async fn apply(service: &Service, op: &Op) {
    match op {
        Op::Put(key, attributes) => {
            call(
                service,
                "PutItem",
                json!({"TableName": TABLE, "Item": item_json(*key, attributes)}),
            )
            .await;
        }
        Op::Update(key, set, remove) => {
            let mut clauses = Vec::new();
            let mut names = serde_json::Map::new();
            let mut values = serde_json::Map::new();
            let setting: BTreeSet<usize> = set.iter().map(|(a, _)| *a).collect();
            for (attribute, choice) in set {
                let name = ATTRIBUTES[*attribute];
                clauses.push(format!("#{name} = :{name}"));
                names.insert(format!("#{name}"), json!(name));
                values.insert(format!(":{name}"), attribute_value(name, *choice));
            }
            let mut expression = String::new();
            if !clauses.is_empty() {
                expression = format!("SET {}", clauses.join(", "));
            }
            let removed: BTreeSet<usize> = remove
                .iter()
                .copied()
                .filter(|a| !setting.contains(a))
                .collect();
            if !removed.is_empty() {
                let list: Vec<String> = removed
                    .iter()
                    .map(|a| {
                        let name = ATTRIBUTES[*a];
                        names.insert(format!("#{name}"), json!(name));
                        format!("#{name}")
                    })
                    .collect();
                expression = format!("{expression} REMOVE {}", list.join(", "));
            }
            let mut request = json!({"TableName": TABLE, "Key": key.json()});
            if !expression.is_empty() {
                request["UpdateExpression"] = json!(expression.trim());
                request["ExpressionAttributeNames"] = Value::Object(names);
                if !values.is_empty() {
                    request["ExpressionAttributeValues"] = Value::Object(values);
                }
            }
            call(service, "UpdateItem", request).await;
        }
        Op::Delete(key) => {
            call(
                service,
                "DeleteItem",
                json!({"TableName": TABLE, "Key": key.json()}),
            )
            .await;
        }
        Op::Batch(writes) => {
            let requests: Vec<Value> = writes
                .iter()
                .map(|(key, write)| match write {
                    Some(attributes) => {
                        json!({"PutRequest": {"Item": item_json(*key, attributes)}})
                    }
                    None => json!({"DeleteRequest": {"Key": key.json()}}),
                })
                .collect();
            let response = call(
                service,
                "BatchWriteItem",
                json!({"RequestItems": {TABLE: requests}}),
            )
            .await;
            assert_eq!(response["UnprocessedItems"], json!({}), "{response}");
        }
        Op::CreateIndex => {
            let description = call(service, "DescribeTable", json!({"TableName": TABLE})).await;
            let exists = description["Table"]["GlobalSecondaryIndexes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["IndexName"] == CREATED.name);
            if !exists {
                call(
                    service,
                    "UpdateTable",
                    json!({
                        "TableName": TABLE,
                        "AttributeDefinitions": [{"AttributeName": "b", "AttributeType": "N"}],
                        "GlobalSecondaryIndexUpdates": [{"Create": {
                            "IndexName": CREATED.name,
                            "KeySchema": [{"AttributeName": "b", "KeyType": "HASH"}],
                            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["gk"]},
                        }}],
                    }),
                )
                .await;
            }
        }
        Op::BadPut(key, choice) => {
            let mut item = key.json();
            let (attribute, value, message) = match choice % 4 {
                0 => (
                    "gk",
                    json!({"N": "1"}),
                    "One or more parameter values were invalid: Type mismatch for Index Key gk Expected: S Actual: N IndexName: by_gk",
                ),
                1 => (
                    "gh",
                    json!({"S": "1"}),
                    "One or more parameter values were invalid: Type mismatch for Index Key gh Expected: N Actual: S IndexName: by_gh",
                ),
                2 => (
                    "ls",
                    json!({"S": ""}),
                    "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty string value. IndexName: by_ls, IndexKey: ls",
                ),
                _ => (
                    "gk",
                    json!({"S": ""}),
                    "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty string value. IndexName: by_gk, IndexKey: gk",
                ),
            };
            item[attribute] = value;
            let error = service
                .call("PutItem", json!({"TableName": TABLE, "Item": item}))
                .await
                .expect_err("a bad index key is refused");
            match error {
                DynamoError::Validation(actual) => assert_eq!(actual, message),
                other => panic!("expected a ValidationException, got {other:?}"),
            }
        }
    }
}

/// Every page of a Scan (of the index when named), with a small Limit so that paging through
/// index LastEvaluatedKeys is exercised.
async fn scan_all(service: &Service, index: Option<&str>) -> Vec<Value> {
    let mut items = Vec::new();
    let mut start: Option<Value> = None;
    loop {
        let mut request = json!({"TableName": TABLE, "Limit": 4});
        if let Some(index) = index {
            request["IndexName"] = json!(index);
        }
        if let Some(start) = start.take() {
            request["ExclusiveStartKey"] = start;
        }
        let response = call(service, "Scan", request).await;
        items.extend(response["Items"].as_array().unwrap().iter().cloned());
        match response.get("LastEvaluatedKey") {
            Some(key) => start = Some(key.clone()),
            None => return items,
        }
    }
}

/// An item in a comparable form: attribute name → its JSON.
type Canonical = BTreeMap<String, String>;

fn canonical(item: &Value) -> Canonical {
    item.as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.clone(), value.to_string()))
        .collect()
}

fn model_item(item: &Value) -> Item {
    item.as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| {
            let value = if let Some(s) = value.get("S") {
                AttributeValue::S(s.as_str().unwrap().to_string())
            } else {
                AttributeValue::N(Number::from_str(value["N"].as_str().unwrap()).unwrap())
            };
            (name.clone(), value)
        })
        .collect()
}

/// The entries `spec` should hold for `table_items`.
fn expected_index(spec: &IndexSpec, table_items: &[Value]) -> Vec<Value> {
    table_items
        .iter()
        .filter(|item| spec.keys.iter().all(|(name, _)| item.get(*name).is_some()))
        .map(|item| match spec.include {
            None => item.clone(),
            Some(list) => {
                let mut projected = serde_json::Map::new();
                for (name, value) in item.as_object().unwrap() {
                    let keep = name == "pk"
                        || name == "sk"
                        || spec.keys.iter().any(|(k, _)| k == name)
                        || list.contains(&name.as_str());
                    if keep {
                        projected.insert(name.clone(), value.clone());
                    }
                }
                Value::Object(projected)
            }
        })
        .collect()
}

async fn check_indexes(service: &Service, model: &BTreeMap<(u8, u8), Value>, step: usize) {
    let table_items = scan_all(service, None).await;
    let table: BTreeSet<Canonical> = table_items.iter().map(canonical).collect();
    let modelled: BTreeSet<Canonical> = model.values().map(canonical).collect();
    assert_eq!(
        table, modelled,
        "step {step}: the table differs from the model"
    );
    let description = call(service, "DescribeTable", json!({"TableName": TABLE})).await;
    let created_active = description["Table"]["GlobalSecondaryIndexes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["IndexName"] == CREATED.name && i["IndexStatus"] == "ACTIVE");
    let checked = INDEXES.iter().chain(created_active.then_some(&CREATED));
    for spec in checked {
        let expected_items = expected_index(spec, &table_items);
        let expected: BTreeSet<Canonical> = expected_items.iter().map(canonical).collect();
        let scanned = scan_all(service, Some(spec.name)).await;
        let actual: BTreeSet<Canonical> = scanned.iter().map(canonical).collect();
        assert_eq!(
            scanned.len(),
            actual.len(),
            "step {step}: index {} returned an entry twice",
            spec.name
        );
        assert_eq!(actual, expected, "step {step}: index {}", spec.name);
        let field = if spec.global {
            "GlobalSecondaryIndexes"
        } else {
            "LocalSecondaryIndexes"
        };
        let described = description["Table"][field]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["IndexName"] == spec.name)
            .unwrap();
        assert_eq!(
            described["ItemCount"],
            json!(expected.len()),
            "step {step}: ItemCount of {}",
            spec.name
        );
        let size: usize = expected_items
            .iter()
            .map(|i| item_size(&model_item(i)))
            .sum();
        assert_eq!(
            described["IndexSizeBytes"],
            json!(size),
            "step {step}: IndexSizeBytes of {}",
            spec.name
        );
    }
    assert_eq!(description["Table"]["ItemCount"], json!(model.len()));
}

/// What the table should hold after `op`.
fn apply_to_model(model: &mut BTreeMap<(u8, u8), Value>, op: &Op) {
    match op {
        Op::Put(key, attributes) => {
            model.insert((key.0, key.1), item_json(*key, attributes));
        }
        Op::Update(key, set, remove) => {
            let item = model.entry((key.0, key.1)).or_insert_with(|| key.json());
            let setting: BTreeSet<usize> = set.iter().map(|(a, _)| *a).collect();
            for (attribute, choice) in set {
                let name = ATTRIBUTES[*attribute];
                item[name] = attribute_value(name, *choice);
            }
            for attribute in remove.iter().filter(|a| !setting.contains(a)) {
                item.as_object_mut().unwrap().remove(ATTRIBUTES[*attribute]);
            }
        }
        Op::Delete(key) => {
            model.remove(&(key.0, key.1));
        }
        Op::Batch(writes) => {
            for (key, write) in writes {
                match write {
                    Some(attributes) => {
                        model.insert((key.0, key.1), item_json(*key, attributes));
                    }
                    None => {
                        model.remove(&(key.0, key.1));
                    }
                }
            }
        }
        Op::BadPut(..) | Op::CreateIndex => {}
    }
}

proptest! {
    // 64 cases unless PROPTEST_CASES asks for more (a longer hunt).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn indexes_match_the_table(ops in proptest::collection::vec(op(), 1..30)) {
        block_on(async {
            let engine = Arc::new(RedbEngine::in_memory().unwrap());
            let service = Service::new(engine, ServiceConfig::default()).unwrap();
            call(&service, "CreateTable", create_table_request()).await;
            let mut model = BTreeMap::new();
            for (step, op) in ops.iter().enumerate() {
                apply(&service, op).await;
                apply_to_model(&mut model, op);
                check_indexes(&service, &model, step).await;
            }
            // An index created along the way becomes ACTIVE, and is then checked like the others.
            if ops.iter().any(|op| matches!(op, Op::CreateIndex)) {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                loop {
                    let description =
                        call(&service, "DescribeTable", json!({"TableName": TABLE})).await;
                    let active = description["Table"]["GlobalSecondaryIndexes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|i| i["IndexName"] == CREATED.name && i["IndexStatus"] == "ACTIVE");
                    if active {
                        break;
                    }
                    assert!(std::time::Instant::now() < deadline, "{} stays CREATING", CREATED.name);
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                check_indexes(&service, &model, ops.len()).await;
            }
        });
    }
}
