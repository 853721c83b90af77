//! Single-item operations through the AWS SDK for Rust: PutItem, GetItem and DeleteItem with every
//! attribute type, number canonical form, ReturnValues, ReturnConsumedCapacity, the item size limit,
//! key validation, and durability across a clean restart.

mod common;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue};
use common::{HavenServer, create_table, error_of, terminate};

type Item = HashMap<String, AttributeValue>;

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: &str) -> AttributeValue {
    AttributeValue::N(value.into())
}

fn b(value: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(value))
}

fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Sorts the members of every set (recursively), since DynamoDB does not promise set order.
fn normalized(value: &AttributeValue) -> AttributeValue {
    match value {
        AttributeValue::Ss(v) => {
            let mut v = v.clone();
            v.sort();
            AttributeValue::Ss(v)
        }
        AttributeValue::Ns(v) => {
            let mut v = v.clone();
            v.sort();
            AttributeValue::Ns(v)
        }
        AttributeValue::Bs(v) => {
            let mut v = v.clone();
            v.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
            AttributeValue::Bs(v)
        }
        AttributeValue::M(m) => AttributeValue::M(normalized_item(m)),
        AttributeValue::L(l) => AttributeValue::L(l.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn normalized_item(item: &Item) -> Item {
    item.iter()
        .map(|(k, v)| (k.clone(), normalized(v)))
        .collect()
}

async fn put(client: &Client, table: &str, item: Item) {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

async fn get(client: &Client, table: &str, key: Item) -> Option<Item> {
    client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// A table `things` keyed by `pk` (S) and `sk` (N), on a fresh in-memory server.
async fn things() -> (HavenServer, Client) {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "things", &[("pk", "S"), ("sk", "N")]).await;
    (server, client)
}

fn every_type_item() -> Item {
    let nested = item(&[
        ("name", s("inner")),
        (
            "list",
            AttributeValue::L(vec![n("1"), s("two"), AttributeValue::Bool(false)]),
        ),
        (
            "deeper",
            AttributeValue::M(item(&[("x", AttributeValue::Null(true))])),
        ),
        ("empty_map", AttributeValue::M(Item::new())),
        ("empty_list", AttributeValue::L(vec![])),
    ]);
    item(&[
        ("pk", s("every-type")),
        ("sk", n("42")),
        ("s", s("héllo wörld ✓ 🦀 \u{0} \"quoted\" \\ / \n\t")),
        ("empty_s", s("")),
        ("n", n("-123.456")),
        ("b", b(&[0, 1, 2, 0x7f, 0x80, 0xfe, 0xff])),
        ("empty_b", b(&[])),
        ("yes", AttributeValue::Bool(true)),
        ("no", AttributeValue::Bool(false)),
        ("nothing", AttributeValue::Null(true)),
        ("m", AttributeValue::M(nested)),
        (
            "l",
            AttributeValue::L(vec![
                s("a"),
                n("1"),
                b(b"\x00bin"),
                AttributeValue::Null(true),
                AttributeValue::L(vec![AttributeValue::M(item(&[("k", s("v"))]))]),
                AttributeValue::Ss(vec!["x".into(), "y".into()]),
            ]),
        ),
        (
            "ss",
            AttributeValue::Ss(vec!["pear".into(), "apple".into(), "".into(), "Zed".into()]),
        ),
        (
            "ns",
            AttributeValue::Ns(vec!["10".into(), "-2".into(), "3.5".into(), "0".into()]),
        ),
        (
            "bs",
            AttributeValue::Bs(vec![
                Blob::new(vec![2u8]),
                Blob::new(vec![1u8, 0]),
                Blob::new(vec![0xffu8]),
            ]),
        ),
        ("with space. and:punct#", s("odd attribute names are fine")),
    ])
}

#[tokio::test]
async fn every_attribute_type_round_trips_exactly() {
    let (_server, client) = things().await;
    let original = every_type_item();
    put(&client, "things", original.clone()).await;
    let got = get(
        &client,
        "things",
        item(&[("pk", s("every-type")), ("sk", n("42"))]),
    )
    .await
    .expect("the item is there");
    assert_eq!(normalized_item(&got), normalized_item(&original));

    // Eventually consistent reads see it too (Haven's reads are always current).
    let eventually = client
        .get_item()
        .table_name("things")
        .key("pk", s("every-type"))
        .key("sk", n("42"))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(normalized_item(&eventually), normalized_item(&original));
}

#[tokio::test]
async fn binary_keys_round_trip() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "blobs", &[("id", "B"), ("part", "B")]).await;
    let key = item(&[("id", b(&[0xff, 0, 0x10])), ("part", b(&[0]))]);
    let mut full = key.clone();
    full.insert("v".into(), s("bytes"));
    put(&client, "blobs", full.clone()).await;
    assert_eq!(get(&client, "blobs", key).await, Some(full));
    let other = item(&[("id", b(&[0xff, 0, 0x10])), ("part", b(&[0, 0]))]);
    assert_eq!(get(&client, "blobs", other).await, None);
}

/// A map nested `levels` deep around a string.
fn nested_maps(levels: usize) -> AttributeValue {
    let mut value = s("bottom");
    for _ in 0..levels {
        value = AttributeValue::M(item(&[("down", value)]));
    }
    value
}

#[tokio::test]
async fn nested_documents_round_trip_up_to_32_levels() {
    let (_server, client) = things().await;
    // 31 maps around a string: the string is at level 32, DynamoDB's deepest.
    let deep = item(&[("pk", s("deep")), ("sk", n("1")), ("doc", nested_maps(31))]);
    put(&client, "things", deep.clone()).await;
    let got = get(
        &client,
        "things",
        item(&[("pk", s("deep")), ("sk", n("1"))]),
    )
    .await;
    assert_eq!(got, Some(deep));

    let too_deep = item(&[("pk", s("deep")), ("sk", n("2")), ("doc", nested_maps(32))]);
    let (code, message) = error_of(
        client
            .put_item()
            .table_name("things")
            .set_item(Some(too_deep))
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "Nesting Levels have exceeded supported limits: Attributes in the item have nested levels beyond supported limit"
    );

    // A realistic document: lists of maps of lists.
    let order = item(&[
        ("pk", s("order")),
        ("sk", n("7")),
        (
            "lines",
            AttributeValue::L(
                (0..20)
                    .map(|i| {
                        AttributeValue::M(item(&[
                            ("sku", s(&format!("SKU-{i:04}"))),
                            ("qty", n(&i.to_string())),
                            ("tags", AttributeValue::L(vec![s("a"), s("b")])),
                        ]))
                    })
                    .collect(),
            ),
        ),
    ]);
    put(&client, "things", order.clone()).await;
    let got = get(
        &client,
        "things",
        item(&[("pk", s("order")), ("sk", n("7"))]),
    )
    .await;
    assert_eq!(got, Some(order));
}

#[tokio::test]
async fn numbers_come_back_in_canonical_form() {
    let (_server, client) = things().await;
    let cases = [
        ("01.500", "1.5"),
        ("-0.0", "0"),
        ("0e10", "0"),
        ("1E+3", "1000"),
        ("1.0e-5", "0.00001"),
        ("-00012.3400", "-12.34"),
        ("+7", "7"),
        (
            "12345678901234567890123456789012345678",
            "12345678901234567890123456789012345678",
        ),
        (
            "9.9999999999999999999999999999999999999E+125",
            "999999999999999999999999999999999999990000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "-1E-130",
            "-0.0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001",
        ),
    ];
    let mut written = item(&[("pk", s("numbers")), ("sk", n("1"))]);
    for (i, (input, _)) in cases.iter().enumerate() {
        written.insert(format!("n{i}"), n(input));
    }
    written.insert(
        "set".into(),
        AttributeValue::Ns(vec!["1.50".into(), "2e2".into()]),
    );
    put(&client, "things", written).await;
    let got = get(
        &client,
        "things",
        item(&[("pk", s("numbers")), ("sk", n("1"))]),
    )
    .await
    .unwrap();
    for (i, (input, canonical)) in cases.iter().enumerate() {
        assert_eq!(got[&format!("n{i}")], n(canonical), "input {input}");
    }
    assert_eq!(
        normalized(&got["set"]),
        AttributeValue::Ns(vec!["1.5".into(), "200".into()])
    );

    // A number key is one value whatever its spelling.
    put(
        &client,
        "things",
        item(&[("pk", s("k")), ("sk", n("1.50")), ("v", s("first"))]),
    )
    .await;
    put(
        &client,
        "things",
        item(&[("pk", s("k")), ("sk", n("15e-1")), ("v", s("second"))]),
    )
    .await;
    let got = get(&client, "things", item(&[("pk", s("k")), ("sk", n("1.5"))]))
        .await
        .unwrap();
    assert_eq!(got["v"], s("second"));
    assert_eq!(got["sk"], n("1.5"));
    let count = client
        .describe_table()
        .table_name("things")
        .send()
        .await
        .unwrap()
        .table
        .unwrap()
        .item_count;
    assert_eq!(count, Some(2));
}

#[tokio::test]
async fn invalid_numbers_are_rejected() {
    let (_server, client) = things().await;
    let cases = [
        (
            "123456789012345678901234567890123456789",
            "Attempting to store more than 38 significant digits in a Number",
        ),
        (
            "1e126",
            "Number overflow. Attempting to store a number with magnitude larger than supported range",
        ),
        (
            "1e-131",
            "Number underflow. Attempting to store a number with magnitude smaller than supported range",
        ),
        (
            "abc",
            "The parameter cannot be converted to a numeric value: abc",
        ),
    ];
    for (input, expected) in cases {
        let (code, message) = error_of(
            client
                .put_item()
                .table_name("things")
                .item("pk", s("x"))
                .item("sk", n("1"))
                .item("bad", n(input))
                .send()
                .await,
        );
        assert_eq!(code, "ValidationException", "{input}");
        assert_eq!(message, expected, "{input}");
    }
    assert_eq!(
        get(&client, "things", item(&[("pk", s("x")), ("sk", n("1"))])).await,
        None
    );
}

#[tokio::test]
async fn invalid_values_are_rejected() {
    let (_server, client) = things().await;
    let cases = [
        (
            AttributeValue::Ss(vec![]),
            "One or more parameter values were invalid: An string set  may not be empty",
        ),
        (
            AttributeValue::Ss(vec!["a".into(), "a".into()]),
            "One or more parameter values were invalid: Input collection [a, a] contains duplicates.",
        ),
        (
            AttributeValue::Ns(vec!["1".into(), "1.0".into()]),
            "Input collection contains duplicates",
        ),
        (
            AttributeValue::Null(false),
            "One or more parameter values were invalid: Null attribute value types must have the value of true",
        ),
    ];
    for (value, expected) in cases {
        let (code, message) = error_of(
            client
                .put_item()
                .table_name("things")
                .item("pk", s("x"))
                .item("sk", n("1"))
                .item("bad", value.clone())
                .send()
                .await,
        );
        assert_eq!(code, "ValidationException", "{value:?}");
        assert_eq!(message, expected, "{value:?}");
    }
    // Attribute names may not be empty, at the top level or inside a map.
    let nested = AttributeValue::M(item(&[("", s("x"))]));
    for (name, value) in [("", s("x")), ("doc", nested)] {
        let (code, message) = error_of(
            client
                .put_item()
                .table_name("things")
                .item("pk", s("x"))
                .item("sk", n("1"))
                .item(name, value)
                .send()
                .await,
        );
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("ValidationException", "Empty attribute name")
        );
    }
    assert_eq!(
        get(&client, "things", item(&[("pk", s("x")), ("sk", n("1"))])).await,
        None
    );
}

#[tokio::test]
async fn return_values_all_old() {
    let (_server, client) = things().await;
    let key = [("pk", s("rv")), ("sk", n("1"))];
    let first = item(&[key[0].clone(), key[1].clone(), ("v", s("one"))]);
    let second = item(&[
        key[0].clone(),
        key[1].clone(),
        ("v", s("two")),
        ("extra", n("2")),
    ]);

    let put_first = client
        .put_item()
        .table_name("things")
        .set_item(Some(first.clone()))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .unwrap();
    assert_eq!(put_first.attributes, None, "nothing was overwritten");

    let put_second = client
        .put_item()
        .table_name("things")
        .set_item(Some(second.clone()))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .unwrap();
    assert_eq!(put_second.attributes, Some(first.clone()));

    // NONE (and the default) return nothing.
    let put_none = client
        .put_item()
        .table_name("things")
        .set_item(Some(second.clone()))
        .return_values(ReturnValue::None)
        .send()
        .await
        .unwrap();
    assert_eq!(put_none.attributes, None);

    let deleted = client
        .delete_item()
        .table_name("things")
        .set_key(Some(item(&key)))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.attributes, Some(second));
    let deleted_again = client
        .delete_item()
        .table_name("things")
        .set_key(Some(item(&key)))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted_again.attributes, None);
    assert_eq!(get(&client, "things", item(&key)).await, None);

    // PutItem and DeleteItem accept only NONE and ALL_OLD.
    for rv in [
        ReturnValue::AllNew,
        ReturnValue::UpdatedOld,
        ReturnValue::UpdatedNew,
    ] {
        let (code, message) = error_of(
            client
                .put_item()
                .table_name("things")
                .set_item(Some(first.clone()))
                .return_values(rv.clone())
                .send()
                .await,
        );
        assert_eq!(code, "ValidationException");
        assert_eq!(message, "ReturnValues can only be ALL_OLD or NONE");
        let (code, message) = error_of(
            client
                .delete_item()
                .table_name("things")
                .set_key(Some(item(&key)))
                .return_values(rv)
                .send()
                .await,
        );
        assert_eq!(code, "ValidationException");
        assert_eq!(message, "ReturnValues can only be ALL_OLD or NONE");
    }
    // The rejected put wrote nothing.
    assert_eq!(get(&client, "things", item(&key)).await, None);
}

#[tokio::test]
async fn return_consumed_capacity() {
    let (_server, client) = things().await;
    let key = item(&[("pk", s("cap")), ("sk", n("1"))]);
    let mut small = key.clone();
    small.insert("v".into(), s("tiny"));
    let mut large = key.clone();
    large.insert("v".into(), s(&"x".repeat(5000))); // just over 4 KB: 5 write units, 2 read units

    let response = client
        .put_item()
        .table_name("things")
        .set_item(Some(small.clone()))
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .unwrap();
    let consumed = response.consumed_capacity.expect("ConsumedCapacity");
    assert_eq!(consumed.table_name(), Some("things"));
    assert_eq!(consumed.capacity_units(), Some(1.0));
    assert!(
        consumed.table().is_none(),
        "TOTAL has no per-table breakdown"
    );

    // Overwriting a small item with a large one is charged for the larger.
    let response = client
        .put_item()
        .table_name("things")
        .set_item(Some(large.clone()))
        .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
        .send()
        .await
        .unwrap();
    let consumed = response.consumed_capacity.unwrap();
    assert_eq!(consumed.capacity_units(), Some(5.0));
    assert_eq!(consumed.table().and_then(|t| t.capacity_units()), Some(5.0));

    for (consistent, units) in [(true, 2.0), (false, 1.0)] {
        let response = client
            .get_item()
            .table_name("things")
            .set_key(Some(key.clone()))
            .consistent_read(consistent)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.consumed_capacity.unwrap().capacity_units(),
            Some(units),
            "consistent read: {consistent}"
        );
    }
    // A missing item still costs the minimum.
    let response = client
        .get_item()
        .table_name("things")
        .key("pk", s("none"))
        .key("sk", n("0"))
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .unwrap();
    assert_eq!(response.item, None);
    assert_eq!(
        response.consumed_capacity.unwrap().capacity_units(),
        Some(0.5)
    );

    let response = client
        .delete_item()
        .table_name("things")
        .set_key(Some(key.clone()))
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.consumed_capacity.unwrap().capacity_units(),
        Some(5.0)
    );

    // NONE, or nothing, leaves ConsumedCapacity out.
    let response = client
        .put_item()
        .table_name("things")
        .set_item(Some(small))
        .return_consumed_capacity(ReturnConsumedCapacity::None)
        .send()
        .await
        .unwrap();
    assert!(response.consumed_capacity.is_none());
}

#[tokio::test]
async fn item_size_limit_is_400_kb() {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "big", &[("id", "S")]).await;
    // Size = "id" (2) + "k" (1) + "data" (4) + the string: 409,600 bytes in all at the limit.
    let at_limit = 409_600 - 2 - 1 - 4;
    let response = client
        .put_item()
        .table_name("big")
        .item("id", s("k"))
        .item("data", s(&"x".repeat(at_limit)))
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.consumed_capacity.unwrap().capacity_units(),
        Some(400.0)
    );
    let table = client
        .describe_table()
        .table_name("big")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(table.table_size_bytes(), Some(409_600));

    let (code, message) = error_of(
        client
            .put_item()
            .table_name("big")
            .item("id", s("k"))
            .item("data", s(&"y".repeat(at_limit + 1)))
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert_eq!(message, "Item size has exceeded the maximum allowed size");
    // The item at the limit is untouched.
    let got = get(&client, "big", item(&[("id", s("k"))])).await.unwrap();
    assert_eq!(got["data"], s(&"x".repeat(at_limit)));
}

#[tokio::test]
async fn key_validation_errors() {
    let (_server, client) = things().await;
    let put_error = |fields: Item| {
        let client = client.clone();
        async move {
            error_of(
                client
                    .put_item()
                    .table_name("things")
                    .set_item(Some(fields))
                    .send()
                    .await,
            )
        }
    };
    let invalid = "One or more parameter values were invalid: ";
    let cases = [
        (item(&[("pk", s("a"))]), format!("{invalid}Missing the key sk in the item")),
        (item(&[("sk", n("1"))]), format!("{invalid}Missing the key pk in the item")),
        (
            item(&[("pk", n("1")), ("sk", n("1"))]),
            format!("{invalid}Type mismatch for key pk expected: S actual: N"),
        ),
        (
            item(&[("pk", s("a")), ("sk", s("1"))]),
            format!("{invalid}Type mismatch for key sk expected: N actual: S"),
        ),
        (
            item(&[("pk", s("")), ("sk", n("1"))]),
            "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: pk".to_string(),
        ),
        (
            item(&[("pk", s(&"p".repeat(2049))), ("sk", n("1"))]),
            format!("{invalid}Size of hashkey has exceeded the maximum size limit of2048 bytes"),
        ),
    ];
    for (fields, expected) in cases {
        let (code, message) = put_error(fields.clone()).await;
        assert_eq!(code, "ValidationException", "{fields:?}");
        assert_eq!(message, expected);
    }
    // The largest partition key is accepted.
    put(
        &client,
        "things",
        item(&[("pk", s(&"p".repeat(2048))), ("sk", n("1"))]),
    )
    .await;

    // Sort keys are limited to 1024 bytes.
    let server = HavenServer::start_in_memory();
    let client2 = server.client();
    create_table(&client2, "sorted", &[("pk", "S"), ("sk", "S")]).await;
    client2
        .put_item()
        .table_name("sorted")
        .item("pk", s("a"))
        .item("sk", s(&"s".repeat(1024)))
        .send()
        .await
        .unwrap();
    let (code, message) = error_of(
        client2
            .put_item()
            .table_name("sorted")
            .item("pk", s("a"))
            .item("sk", s(&"s".repeat(1025)))
            .send()
            .await,
    );
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        format!(
            "{invalid}Aggregated size of all range keys has exceeded the size limit of 1024 bytes"
        )
    );
    let (_, message) = error_of(
        client2
            .put_item()
            .table_name("sorted")
            .item("pk", s("a"))
            .item("sk", b(&[]))
            .send()
            .await,
    );
    assert_eq!(
        message,
        format!("{invalid}Type mismatch for key sk expected: S actual: B")
    );

    // Keys for GetItem and DeleteItem must match the schema exactly.
    let mismatch = "The provided key element does not match the schema";
    let bad_keys = [
        item(&[("pk", s("a"))]),
        item(&[("pk", s("a")), ("sk", s("1"))]),
        item(&[("pk", s("a")), ("sk", n("1")), ("other", s("x"))]),
        item(&[("pk", s("a")), ("nope", n("1"))]),
    ];
    for key in bad_keys {
        let (code, message) = error_of(
            client
                .get_item()
                .table_name("things")
                .set_key(Some(key.clone()))
                .send()
                .await,
        );
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("ValidationException", mismatch),
            "{key:?}"
        );
        let (code, message) = error_of(
            client
                .delete_item()
                .table_name("things")
                .set_key(Some(key.clone()))
                .send()
                .await,
        );
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("ValidationException", mismatch),
            "{key:?}"
        );
    }
    let (_, message) = error_of(
        client
            .get_item()
            .table_name("things")
            .key("pk", s(""))
            .key("sk", n("1"))
            .send()
            .await,
    );
    assert_eq!(
        message,
        "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: pk"
    );
}

#[tokio::test]
async fn data_survives_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = HavenServer::start_on_disk(dir.path());
    let client = server.client();
    create_table(&client, "durable", &[("pk", "S"), ("sk", "N")]).await;
    create_table(&client, "second", &[("id", "B")]).await;
    let mut everything = every_type_item();
    everything.insert("pk".into(), s("all"));
    put(&client, "durable", everything.clone()).await;
    for i in 0..50 {
        put(
            &client,
            "durable",
            item(&[
                ("pk", s("many")),
                ("sk", n(&i.to_string())),
                ("v", s(&format!("value {i}"))),
            ]),
        )
        .await;
    }
    // A deleted item stays deleted.
    client
        .delete_item()
        .table_name("durable")
        .key("pk", s("many"))
        .key("sk", n("7"))
        .send()
        .await
        .unwrap();
    put(&client, "second", item(&[("id", b(&[1, 2, 3]))])).await;
    let before = client
        .describe_table()
        .table_name("durable")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();

    let status = terminate(server);
    assert!(status.success(), "haven exited with {status} after SIGTERM");

    let server = HavenServer::start_on_disk(dir.path());
    let client = server.client();
    let tables = client.list_tables().send().await.unwrap();
    assert_eq!(tables.table_names(), ["durable", "second"]);
    let after = client
        .describe_table()
        .table_name("durable")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(after, before, "the description is unchanged");
    assert_eq!(after.item_count(), Some(50));

    let got = get(
        &client,
        "durable",
        item(&[("pk", s("all")), ("sk", n("42"))]),
    )
    .await;
    assert_eq!(
        got.map(|i| normalized_item(&i)),
        Some(normalized_item(&everything))
    );
    for i in 0..50 {
        let got = get(
            &client,
            "durable",
            item(&[("pk", s("many")), ("sk", n(&i.to_string()))]),
        )
        .await;
        if i == 7 {
            assert_eq!(got, None);
        } else {
            assert_eq!(got.unwrap()["v"], s(&format!("value {i}")));
        }
    }
    assert!(
        get(&client, "second", item(&[("id", b(&[1, 2, 3]))]))
            .await
            .is_some()
    );

    // And the restarted server takes writes.
    put(&client, "second", item(&[("id", b(&[4]))])).await;
    assert!(
        get(&client, "second", item(&[("id", b(&[4]))]))
            .await
            .is_some()
    );
}
