//! Expressions through the AWS SDK for Rust: UpdateItem's UpdateExpression, ConditionExpression on
//! PutItem/UpdateItem/DeleteItem, ProjectionExpression on GetItem, and their errors.

mod common;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use common::{HavenServer, create_table, error_of};

type Item = HashMap<String, AttributeValue>;

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: &str) -> AttributeValue {
    AttributeValue::N(value.into())
}

fn ns(values: &[&str]) -> AttributeValue {
    AttributeValue::Ns(values.iter().map(|v| v.to_string()).collect())
}

fn ss(values: &[&str]) -> AttributeValue {
    AttributeValue::Ss(values.iter().map(|v| v.to_string()).collect())
}

fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Sorts set members (DynamoDB promises no order for them).
fn sorted(item: &Item) -> Item {
    item.iter()
        .map(|(k, v)| {
            let v = match v {
                AttributeValue::Ss(m) | AttributeValue::Ns(m) => {
                    let mut m = m.clone();
                    m.sort();
                    if matches!(v, AttributeValue::Ss(_)) {
                        AttributeValue::Ss(m)
                    } else {
                        AttributeValue::Ns(m)
                    }
                }
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// A fresh in-memory server with a table `docs` keyed by `id` (S).
async fn docs() -> (HavenServer, Client) {
    let server = HavenServer::start_in_memory();
    let client = server.client();
    create_table(&client, "docs", &[("id", "S")]).await;
    (server, client)
}

/// A string set, which ADD cannot add to a number.
fn set_of_one() -> AttributeValue {
    ss(&["x"])
}

fn key(id: &str) -> Item {
    item(&[("id", s(id))])
}

async fn get(client: &Client, id: &str) -> Option<Item> {
    client
        .get_item()
        .table_name("docs")
        .set_key(Some(key(id)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test]
async fn update_expression_set_remove_add_delete() {
    let (_server, client) = docs().await;
    let created = client
        .update_item()
        .table_name("docs")
        .set_key(Some(key("a")))
        .update_expression("SET #n = :name, cnt = :zero, tags = :tags, doc = :doc")
        .expression_attribute_names("#n", "name")
        .expression_attribute_values(":name", s("first"))
        .expression_attribute_values(":zero", n("0"))
        .expression_attribute_values(":tags", ss(&["red"]))
        .expression_attribute_values(
            ":doc",
            AttributeValue::M(item(&[(
                "l",
                AttributeValue::L(vec![n("1"), n("2"), n("3")]),
            )])),
        )
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .unwrap();
    let expected = item(&[
        ("id", s("a")),
        ("name", s("first")),
        ("cnt", n("0")),
        ("tags", ss(&["red"])),
        (
            "doc",
            AttributeValue::M(item(&[(
                "l",
                AttributeValue::L(vec![n("1"), n("2"), n("3")]),
            )])),
        ),
    ]);
    assert_eq!(created.attributes, Some(expected.clone()));

    // Arithmetic, ADD to a set, REMOVE a list element: UPDATED_NEW returns the updated paths as
    // they are afterwards (for `REMOVE doc.l[0]`, the element now at doc.l[0]; DynamoDB Local agrees).
    let updated = client
        .update_item()
        .table_name("docs")
        .set_key(Some(key("a")))
        .update_expression("SET cnt = cnt + :two ADD tags :more REMOVE doc.l[0]")
        .expression_attribute_values(":two", n("2"))
        .expression_attribute_values(":more", ss(&["blue", "green"]))
        .return_values(ReturnValue::UpdatedNew)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(
        sorted(&updated),
        item(&[
            ("cnt", n("2")),
            ("tags", ss(&["blue", "green", "red"])),
            (
                "doc",
                AttributeValue::M(item(&[("l", AttributeValue::L(vec![n("2")]))]))
            ),
        ])
    );

    // UPDATED_OLD: the changed attributes as they were.
    let old = client
        .update_item()
        .table_name("docs")
        .set_key(Some(key("a")))
        .update_expression("SET cnt = cnt - :one DELETE tags :gone")
        .expression_attribute_values(":one", n("1"))
        .expression_attribute_values(":gone", ss(&["red", "green", "not-there"]))
        .return_values(ReturnValue::UpdatedOld)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(
        sorted(&old),
        item(&[("cnt", n("2")), ("tags", ss(&["blue", "green", "red"]))])
    );

    // ALL_OLD: the whole item before the update. Deleting a set's last member removes it.
    let all_old = client
        .update_item()
        .table_name("docs")
        .set_key(Some(key("a")))
        .update_expression("DELETE tags :last REMOVE #n")
        .expression_attribute_names("#n", "name")
        .expression_attribute_values(":last", ss(&["blue"]))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(all_old["tags"], ss(&["blue"]));
    assert_eq!(all_old["name"], s("first"));
    assert_eq!(
        get(&client, "a").await,
        Some(item(&[
            ("id", s("a")),
            ("cnt", n("1")),
            (
                "doc",
                AttributeValue::M(item(&[("l", AttributeValue::L(vec![n("2"), n("3")]))]))
            ),
        ]))
    );
}

#[tokio::test]
async fn update_item_creates_missing_items() {
    let (_server, client) = docs().await;
    // No UpdateExpression: the item is created with its key alone.
    let response = client
        .update_item()
        .table_name("docs")
        .set_key(Some(key("bare")))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .unwrap();
    assert_eq!(response.attributes, None);
    assert_eq!(get(&client, "bare").await, Some(key("bare")));

    // ADD creates numbers and sets; if_not_exists and list_append build values.
    let response = client
        .update_item()
        .table_name("docs")
        .set_key(Some(key("counter")))
        .update_expression(
            "ADD hits :five, seen :ids SET created = if_not_exists(created, :now), entries = list_append(:entry, :entry)",
        )
        .expression_attribute_values(":five", n("5"))
        .expression_attribute_values(":ids", ns(&["1", "2"]))
        .expression_attribute_values(":now", n("1700000000"))
        .expression_attribute_values(":entry", AttributeValue::L(vec![s("x")]))
        .return_values(ReturnValue::AllNew)
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.attributes.map(|a| sorted(&a)),
        Some(item(&[
            ("id", s("counter")),
            ("hits", n("5")),
            ("seen", ns(&["1", "2"])),
            ("created", n("1700000000")),
            ("entries", AttributeValue::L(vec![s("x"), s("x")])),
        ]))
    );
    assert_eq!(
        response.consumed_capacity.unwrap().capacity_units(),
        Some(1.0)
    );
    // if_not_exists keeps the existing value.
    let response = client
        .update_item()
        .table_name("docs")
        .set_key(Some(key("counter")))
        .update_expression("SET created = if_not_exists(created, :later) ADD hits :one")
        .expression_attribute_values(":later", n("1800000000"))
        .expression_attribute_values(":one", n("1"))
        .return_values(ReturnValue::UpdatedNew)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.attributes,
        Some(item(&[("created", n("1700000000")), ("hits", n("6"))]))
    );
    let table = client
        .describe_table()
        .table_name("docs")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(table.item_count(), Some(2));
}

#[tokio::test]
async fn condition_expressions_guard_put_update_and_delete() {
    let (_server, client) = docs().await;
    let original = item(&[("id", s("c")), ("v", n("5")), ("tags", ss(&["a", "b"]))]);
    // Put-if-absent.
    client
        .put_item()
        .table_name("docs")
        .set_item(Some(original.clone()))
        .condition_expression("attribute_not_exists(id)")
        .send()
        .await
        .unwrap();
    let error = client
        .put_item()
        .table_name("docs")
        .item("id", s("c"))
        .condition_expression("attribute_not_exists(id)")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let PutItemError::ConditionalCheckFailedException(e) = error else {
        panic!("expected ConditionalCheckFailedException, got {error:?}");
    };
    assert_eq!(e.message(), Some("The conditional request failed"));
    assert!(e.item().is_none(), "no item unless asked for");
    assert_eq!(
        get(&client, "c").await.map(|i| sorted(&i)),
        Some(original.clone())
    );

    // ReturnValuesOnConditionCheckFailure puts the current item on the error.
    let error = client
        .update_item()
        .table_name("docs")
        .set_key(Some(key("c")))
        .update_expression("SET v = :new")
        .condition_expression("v = :expected")
        .expression_attribute_values(":new", n("6"))
        .expression_attribute_values(":expected", n("4"))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    let UpdateItemError::ConditionalCheckFailedException(e) = error else {
        panic!("expected ConditionalCheckFailedException, got {error:?}");
    };
    assert_eq!(e.item().map(sorted), Some(original.clone()));

    // An update on a missing item under attribute_exists fails and creates nothing.
    let (code, message) = error_of(
        client
            .update_item()
            .table_name("docs")
            .set_key(Some(key("ghost")))
            .update_expression("SET v = :v")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":v", n("1"))
            .send()
            .await,
    );
    assert_eq!(
        (code.as_str(), message.as_str()),
        (
            "ConditionalCheckFailedException",
            "The conditional request failed"
        )
    );
    assert_eq!(get(&client, "ghost").await, None);

    // Comparison operators and functions.
    let holds = [
        "v = :five",
        "v <> :four AND NOT (v > :five)",
        "v BETWEEN :four AND :five",
        "v IN (:one, :five)",
        "begins_with(id, :c) AND size(tags) = :two",
        "contains(tags, :a) OR v < :one",
        "attribute_type(v, :N) AND attribute_exists(tags) AND attribute_not_exists(nothing)",
    ];
    let fails = [
        "v < :five",
        "v IN (:one, :four)",
        "contains(tags, :c)",
        "attribute_type(v, :S)",
        "size(tags) > :two",
        "nothing = :one",
    ];
    let values = [
        (":one", n("1")),
        (":two", n("2")),
        (":four", n("4")),
        (":five", n("5")),
        (":a", s("a")),
        (":c", s("c")),
        (":N", s("N")),
        (":S", s("S")),
    ];
    for (condition, expected) in holds
        .iter()
        .map(|c| (c, true))
        .chain(fails.iter().map(|c| (c, false)))
    {
        let used: Item = values
            .iter()
            .filter(|(name, _)| {
                condition
                    .split(|c: char| !(c.is_alphanumeric() || c == ':'))
                    .any(|token| token == *name)
            })
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        let result = client
            .update_item()
            .table_name("docs")
            .set_key(Some(key("c")))
            .update_expression("SET checked = :one")
            .condition_expression(*condition)
            .set_expression_attribute_values(Some({
                let mut all = used;
                all.insert(":one".into(), n("1"));
                all
            }))
            .send()
            .await;
        match (expected, result) {
            (true, Ok(_)) => {}
            (false, Err(error)) => {
                let error = error.into_service_error();
                assert!(
                    error.is_conditional_check_failed_exception(),
                    "{condition}: {error:?}"
                );
            }
            (expected, result) => {
                panic!("{condition}: expected to hold: {expected}, got {result:?}")
            }
        }
    }

    // Conditional delete with the old item returned.
    let error = client
        .delete_item()
        .table_name("docs")
        .set_key(Some(key("c")))
        .condition_expression("v > :five")
        .expression_attribute_values(":five", n("5"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(error, DeleteItemError::ConditionalCheckFailedException(_)),
        "{error:?}"
    );
    let deleted = client
        .delete_item()
        .table_name("docs")
        .set_key(Some(key("c")))
        .condition_expression("v = :five")
        .expression_attribute_values(":five", n("5"))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .unwrap();
    let mut expected = original.clone();
    expected.insert("checked".into(), n("1"));
    assert_eq!(deleted.attributes.map(|i| sorted(&i)), Some(expected));
    assert_eq!(get(&client, "c").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn optimistic_locking_and_counters_under_concurrency() {
    let (_server, client) = docs().await;
    client
        .put_item()
        .table_name("docs")
        .item("id", s("lock"))
        .item("version", n("0"))
        .send()
        .await
        .unwrap();
    const TASKS: usize = 8;
    const INCREMENTS: usize = 10;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let client = client.clone();
        tasks.spawn(async move {
            let mut conflicts = 0;
            for _ in 0..INCREMENTS {
                loop {
                    // Read, then write only if nobody else wrote in between.
                    let current = get(&client, "lock").await.unwrap();
                    let AttributeValue::N(version) = &current["version"] else {
                        panic!("version is not a number");
                    };
                    let next = (version.parse::<u64>().unwrap() + 1).to_string();
                    let result = client
                        .update_item()
                        .table_name("docs")
                        .set_key(Some(key("lock")))
                        .update_expression("SET version = :next ADD counted :one")
                        .condition_expression("version = :current")
                        .expression_attribute_values(":next", n(&next))
                        .expression_attribute_values(":current", n(version))
                        .expression_attribute_values(":one", n("1"))
                        .send()
                        .await;
                    match result {
                        Ok(_) => break,
                        Err(error) => {
                            let error = error.into_service_error();
                            assert!(error.is_conditional_check_failed_exception(), "{error:?}");
                            conflicts += 1;
                        }
                    }
                }
                // An unconditional ADD never loses an increment.
                client
                    .update_item()
                    .table_name("docs")
                    .set_key(Some(key("hits")))
                    .update_expression("ADD hits :one")
                    .expression_attribute_values(":one", n("1"))
                    .send()
                    .await
                    .unwrap();
            }
            conflicts
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    let total = (TASKS * INCREMENTS).to_string();
    let lock = get(&client, "lock").await.unwrap();
    assert_eq!(lock["version"], n(&total));
    assert_eq!(lock["counted"], n(&total));
    assert_eq!(get(&client, "hits").await.unwrap()["hits"], n(&total));
}

#[tokio::test]
async fn projection_expression_selects_paths() {
    let (_server, client) = docs().await;
    client
        .put_item()
        .table_name("docs")
        .item("id", s("p"))
        .item("name", s("projected"))
        .item("extra", n("1"))
        .item(
            "m",
            AttributeValue::M(item(&[
                (
                    "a",
                    AttributeValue::L(vec![
                        n("1"),
                        AttributeValue::M(item(&[("deep", s("yes")), ("x", s("no"))])),
                    ]),
                ),
                ("b", s("bb")),
                ("c", s("cc")),
            ])),
        )
        .item("l", AttributeValue::L(vec![s("l0"), s("l1"), s("l2")]))
        .send()
        .await
        .unwrap();
    let project = |expression: &'static str, names: &[(&str, &str)]| {
        let mut request = client
            .get_item()
            .table_name("docs")
            .set_key(Some(key("p")))
            .projection_expression(expression);
        for (placeholder, name) in names {
            request = request.expression_attribute_names(*placeholder, *name);
        }
        request.send()
    };

    let got = project("#n, m.a[1].deep, m.b, l[2], l[0]", &[("#n", "name")])
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        got,
        item(&[
            ("name", s("projected")),
            (
                "m",
                AttributeValue::M(item(&[
                    (
                        "a",
                        AttributeValue::L(vec![AttributeValue::M(item(&[("deep", s("yes"))]))])
                    ),
                    ("b", s("bb")),
                ])),
            ),
            ("l", AttributeValue::L(vec![s("l0"), s("l2")])),
        ])
    );
    // Paths that match nothing give an empty item, not a missing one.
    let got = project("nothing, m.a[7]", &[]).await.unwrap().item;
    assert_eq!(got, Some(Item::new()));
    // A missing item is still missing.
    let missing = client
        .get_item()
        .table_name("docs")
        .set_key(Some(key("none")))
        .projection_expression("m")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.item, None);

    let cases = [
        (
            "name",
            vec![],
            "Invalid ProjectionExpression: Attribute name is a reserved keyword; reserved keyword: name",
        ),
        (
            "extra, extra",
            vec![],
            "Invalid ProjectionExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [extra], path two: [extra]",
        ),
        (
            "m.b",
            vec![("#unused", "x")],
            "Value provided in ExpressionAttributeNames unused in expressions: keys: {#unused}",
        ),
        (
            "#missing",
            vec![],
            "Invalid ProjectionExpression: An expression attribute name used in the document path is not defined; attribute name: #missing",
        ),
    ];
    for (expression, names, expected) in cases {
        let (code, message) = error_of(project(expression, &names).await);
        assert_eq!(code, "ValidationException", "{expression}");
        assert_eq!(message, expected, "{expression}");
    }
}

#[tokio::test]
async fn expression_validation_errors() {
    let (_server, client) = docs().await;
    client
        .put_item()
        .table_name("docs")
        .item("id", s("e"))
        .item("cnt", n("1"))
        .send()
        .await
        .unwrap();
    let update = |expression: &'static str, values: &[(&str, AttributeValue)]| {
        let mut request = client
            .update_item()
            .table_name("docs")
            .set_key(Some(key("e")))
            .update_expression(expression);
        for (placeholder, value) in values {
            request = request.expression_attribute_values(*placeholder, value.clone());
        }
        request.send()
    };
    type Case<'a> = (&'a str, Vec<(&'a str, AttributeValue)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "SET cnt = :one",
            vec![(":one", n("1")), (":unused", n("1"))],
            "Value provided in ExpressionAttributeValues unused in expressions: keys: {:unused}",
        ),
        (
            "SET #x = :one",
            vec![(":one", n("1"))],
            "Invalid UpdateExpression: An expression attribute name used in the document path is not defined; attribute name: #x",
        ),
        (
            "SET cnt = :missing",
            vec![],
            "Invalid UpdateExpression: An expression attribute value used in expression is not defined; attribute value: :missing",
        ),
        (
            "SET id = :v",
            vec![(":v", s("other"))],
            "One or more parameter values were invalid: Cannot update attribute id. This attribute is part of the key",
        ),
        (
            "SET a = :v REMOVE a",
            vec![(":v", s("x"))],
            "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a]",
        ),
        (
            "SET cnt = cnt + :s",
            vec![(":s", s("x"))],
            "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: +, operand type: S",
        ),
        (
            "SET cnt = :v,",
            vec![(":v", s("x"))],
            "Invalid UpdateExpression: Syntax error; token: \"<EOF>\", near: \",\"",
        ),
        (
            "SET absent.child = :v",
            vec![(":v", s("x"))],
            "The document path provided in the update expression is invalid for update",
        ),
        (
            "ADD cnt :v",
            vec![(":v", set_of_one())],
            "An operand in the update expression has an incorrect data type",
        ),
        (
            "REMOVE other",
            vec![],
            "Invalid UpdateExpression: Attribute name is a reserved keyword; reserved keyword: other",
        ),
        (
            "SET big = :v",
            vec![(":v", s(&"x".repeat(409_600)))],
            "Item size to update has exceeded the maximum allowed size",
        ),
    ];
    for (expression, values, expected) in cases {
        let (code, message) = error_of(update(expression, &values).await);
        assert_eq!(code, "ValidationException", "{expression}");
        assert_eq!(message, expected, "{expression}");
    }
    // ADD of a string is refused when the expression is checked, with DynamoDB's typeSet suffix.
    let (code, message) = error_of(update("ADD cnt :v", &[(":v", s("x"))]).await);
    assert_eq!(code, "ValidationException");
    assert_eq!(
        message,
        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: ADD, operand type: STRING, typeSet: ALLOWED_FOR_ADD_OPERAND"
    );
    let condition_cases = [
        (
            "cnt = ",
            "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \"= \"",
        ),
        (
            "nope(cnt)",
            "Invalid ConditionExpression: Invalid function name; function: nope",
        ),
    ];
    for (condition, expected) in condition_cases {
        let (code, message) = error_of(
            client
                .delete_item()
                .table_name("docs")
                .set_key(Some(key("e")))
                .condition_expression(condition)
                .send()
                .await,
        );
        assert_eq!(code, "ValidationException", "{condition}");
        assert_eq!(message, expected, "{condition}");
    }
    // Nothing above changed the item.
    assert_eq!(
        get(&client, "e").await,
        Some(item(&[("id", s("e")), ("cnt", n("1"))]))
    );
}
