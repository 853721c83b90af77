//! Legacy parameters: validation messages and the semantics of their translations.

use super::*;
use crate::{
    AttributeAction, AttributeUpdate, AttributeUpdates, ComparisonOperator as Op,
    ConditionalOperator, ExpectedAttribute, translate_conditions,
};

fn expected(entry: ExpectedAttribute) -> Result<Option<crate::Condition>, String> {
    translate_conditions(&[("a".to_string(), entry)], ConditionalOperator::And).map_err(|e| e.0)
}

fn with_list(op: Op, list: Vec<AttributeValue>) -> ExpectedAttribute {
    ExpectedAttribute {
        comparison_operator: Some(op),
        attribute_value_list: Some(list),
        ..ExpectedAttribute::default()
    }
}

#[test]
fn expected_validation_messages() {
    let v = Some(s("x"));
    let cases = [
        (
            ExpectedAttribute::default(),
            "Value must be provided when Exists is null for Attribute: a",
        ),
        (
            ExpectedAttribute {
                exists: Some(true),
                ..Default::default()
            },
            "Value must be provided when Exists is true for Attribute: a",
        ),
        (
            ExpectedAttribute {
                exists: Some(false),
                value: v.clone(),
                ..Default::default()
            },
            "Value cannot be used when Exists is false for Attribute: a",
        ),
        (
            ExpectedAttribute {
                exists: Some(true),
                comparison_operator: Some(Op::Eq),
                ..Default::default()
            },
            "Exists and ComparisonOperator cannot be used together for Attribute: a",
        ),
        (
            ExpectedAttribute {
                value: v.clone(),
                comparison_operator: Some(Op::Eq),
                attribute_value_list: Some(vec![s("x")]),
                ..Default::default()
            },
            "Value and AttributeValueList cannot be used together for Attribute: a",
        ),
        (
            ExpectedAttribute {
                attribute_value_list: Some(vec![s("x")]),
                ..Default::default()
            },
            "AttributeValueList can only be used with a ComparisonOperator for Attribute: a",
        ),
        (
            ExpectedAttribute {
                comparison_operator: Some(Op::Eq),
                ..Default::default()
            },
            "Value or AttributeValueList must be used with ComparisonOperator: EQ for Attribute: a",
        ),
        (
            with_list(Op::Eq, vec![s("x"), s("y")]),
            "Invalid number of argument(s) for the EQ ComparisonOperator",
        ),
        (
            with_list(Op::Null, vec![s("x")]),
            "Invalid number of argument(s) for the NULL ComparisonOperator",
        ),
        (
            with_list(Op::Between, vec![s("x")]),
            "Invalid number of argument(s) for the BETWEEN ComparisonOperator",
        ),
        (
            with_list(Op::In, vec![]),
            "Invalid number of argument(s) for the IN ComparisonOperator",
        ),
        (
            with_list(Op::Lt, vec![ss(&["x"])]),
            "ComparisonOperator LT is not valid for SS AttributeValue type",
        ),
        (
            with_list(Op::Contains, vec![l(vec![])]),
            "ComparisonOperator CONTAINS is not valid for L AttributeValue type",
        ),
        (
            with_list(Op::BeginsWith, vec![n("1")]),
            "ComparisonOperator BEGINS_WITH is not valid for N AttributeValue type",
        ),
        (
            with_list(Op::In, vec![l(vec![])]),
            "ComparisonOperator IN is not valid for L AttributeValue type",
        ),
        (
            with_list(Op::Ge, vec![AttributeValue::Null]),
            "ComparisonOperator GE is not valid for NULL AttributeValue type",
        ),
        (
            with_list(Op::Between, vec![n("5"), s("1")]),
            "AttributeValues inside AttributeValueList must be of same type",
        ),
        (
            with_list(Op::In, vec![n("5"), s("1")]),
            "AttributeValues inside AttributeValueList must be of same type",
        ),
    ];
    for (entry, message) in cases {
        assert_eq!(
            expected(entry.clone()).expect_err(message),
            format!("One or more parameter values were invalid: {message}")
        );
    }
    assert_eq!(
        expected(with_list(Op::Between, vec![n("5"), n("1")])).unwrap_err(),
        "The BETWEEN condition was provided a range where the lower bound is greater than the upper bound"
    );
    assert_eq!(Op::from_name("NOT_CONTAINS"), Some(Op::NotContains));
    assert_eq!(Op::from_name("FOO"), None);
}

#[test]
fn expected_semantics() {
    let it = item(vec![("s", s("abc")), ("l", l(vec![s("x")])), ("n", n("5"))]);
    let check = |name: &str, entry: ExpectedAttribute| {
        translate_conditions(&[(name.to_string(), entry)], ConditionalOperator::And)
            .unwrap()
            .unwrap()
            .evaluate(Some(&it))
            .unwrap()
    };
    assert!(!check("nope", with_list(Op::NotContains, vec![s("x")])));
    assert!(check("s", with_list(Op::NotContains, vec![s("q")])));
    assert!(check("nope", with_list(Op::Ne, vec![s("x")])));
    assert!(check("l", with_list(Op::Contains, vec![s("x")])));
    assert!(check("n", with_list(Op::Between, vec![n("1"), n("5")])));
    assert!(check("n", with_list(Op::In, vec![n("1"), n("5")])));
    assert!(check(
        "nope",
        ExpectedAttribute {
            exists: Some(false),
            ..Default::default()
        }
    ));
    assert!(check(
        "s",
        ExpectedAttribute {
            value: Some(s("abc")),
            ..Default::default()
        }
    ));
    assert!(check("s", with_list(Op::NotNull, vec![])));
    assert!(check("nope", with_list(Op::Null, vec![])));

    let entries = vec![
        ("s".to_string(), with_list(Op::Eq, vec![s("zzz")])),
        ("n".to_string(), with_list(Op::Eq, vec![n("5")])),
    ];
    let or = translate_conditions(&entries, ConditionalOperator::Or)
        .unwrap()
        .unwrap();
    let and = translate_conditions(&entries, ConditionalOperator::And)
        .unwrap()
        .unwrap();
    assert!(or.evaluate(Some(&it)).unwrap());
    assert!(!and.evaluate(Some(&it)).unwrap());
    assert!(
        translate_conditions(&[], ConditionalOperator::And)
            .unwrap()
            .is_none()
    );
}

fn updates(
    entries: Vec<(&str, Option<AttributeAction>, Option<AttributeValue>)>,
) -> Result<AttributeUpdates, String> {
    let entries: Vec<(String, AttributeUpdate)> = entries
        .into_iter()
        .map(|(name, action, value)| (name.to_string(), AttributeUpdate { action, value }))
        .collect();
    AttributeUpdates::new(&entries).map_err(|e| e.0)
}

#[test]
fn attribute_updates_validation() {
    let cases = [
        (
            updates(vec![("a", Some(AttributeAction::Put), None)]),
            "Only DELETE action is allowed when no attribute value is specified",
        ),
        (
            updates(vec![("a", Some(AttributeAction::Add), Some(s("1")))]),
            "ADD action is not supported for the type STRING",
        ),
        (
            updates(vec![(
                "a",
                Some(AttributeAction::Add),
                Some(AttributeValue::Bool(true)),
            )]),
            "ADD action is not supported for the type BOOLEAN",
        ),
        (
            updates(vec![("a", Some(AttributeAction::Delete), Some(n("1")))]),
            "DELETE action with value is not supported for the type NUMBER",
        ),
        (
            updates(vec![("a", Some(AttributeAction::Delete), Some(l(vec![])))]),
            "DELETE action with value is not supported for the type LIST",
        ),
    ];
    for (result, message) in cases {
        assert_eq!(
            result.unwrap_err(),
            format!("One or more parameter values were invalid: {message}")
        );
    }
}

#[test]
fn attribute_updates_semantics() {
    let base = item(vec![
        ("id", s("k")),
        ("l", l(vec![s("x")])),
        ("n", n("1")),
        ("ss", ss(&["a", "b"])),
        ("s", s("abc")),
    ]);
    let run = |entries| {
        let mut it = base.clone();
        updates(entries)
            .unwrap()
            .apply(&mut it, &["id"])
            .map(|_| it)
            .map_err(|e| e.0)
    };
    let it = run(vec![
        ("l", Some(AttributeAction::Add), Some(l(vec![s("y")]))),
        ("newl", Some(AttributeAction::Add), Some(l(vec![s("y")]))),
        ("n", Some(AttributeAction::Add), Some(n("3"))),
        ("ss", Some(AttributeAction::Delete), Some(ss(&["a"]))),
        ("s", None, Some(s("q"))),
        ("nope", Some(AttributeAction::Delete), None),
    ])
    .unwrap();
    assert_eq!(it["l"], l(vec![s("x"), s("y")]));
    assert_eq!(it["newl"], l(vec![s("y")]));
    assert_eq!(it["n"], n("4"));
    assert_eq!(it["ss"], ss(&["b"]));
    assert_eq!(it["s"], s("q"));
    let it = run(vec![(
        "ss",
        Some(AttributeAction::Delete),
        Some(ss(&["a", "b"])),
    )])
    .unwrap();
    assert!(!it.contains_key("ss"));
    for (name, action, value) in [
        ("s", AttributeAction::Add, n("1")),
        ("s", AttributeAction::Delete, ss(&["a"])),
        ("l", AttributeAction::Add, ss(&["1"])),
        (
            "ss",
            AttributeAction::Delete,
            AttributeValue::Ns(vec![Number::parse("1").unwrap()]),
        ),
    ] {
        assert_eq!(
            run(vec![(name, Some(action), Some(value))]).unwrap_err(),
            "Type mismatch for attribute to update"
        );
    }
    assert_eq!(
        run(vec![("id", Some(AttributeAction::Put), Some(s("1")))]).unwrap_err(),
        "One or more parameter values were invalid: Cannot update attribute id. This attribute is part of the key"
    );
}

#[test]
fn attributes_to_get_projects_top_level_names() {
    let it = item(vec![("a", n("1")), ("b", n("2"))]);
    let paths = crate::attributes_to_get(&["a".to_string(), "zz".to_string()]);
    assert_eq!(crate::project(&it, &paths), item(vec![("a", n("1"))]));
}

fn filter(op: Op, list: Vec<AttributeValue>) -> (String, crate::FilterCondition) {
    filter_on("a", op, list)
}

fn filter_on(name: &str, op: Op, list: Vec<AttributeValue>) -> (String, crate::FilterCondition) {
    (
        name.to_string(),
        crate::FilterCondition {
            comparison_operator: op,
            attribute_value_list: list,
        },
    )
}

#[test]
fn filters_validate_and_translate() {
    let err = |entry| {
        crate::translate_filter(&[entry], ConditionalOperator::And)
            .unwrap_err()
            .0
    };
    assert_eq!(
        err(filter(Op::Eq, vec![])),
        "One or more parameter values were invalid: Invalid number of argument(s) for the EQ ComparisonOperator"
    );
    assert_eq!(
        err(filter(Op::Lt, vec![ss(&["x"])])),
        "One or more parameter values were invalid: ComparisonOperator LT is not valid for SS AttributeValue type"
    );
    let it = item(vec![("a", n("3"))]);
    let c = crate::translate_filter(&[filter(Op::Gt, vec![n("2")])], ConditionalOperator::And)
        .unwrap()
        .unwrap();
    assert!(c.evaluate(Some(&it)).unwrap());
}

#[test]
fn key_conditions_validate_and_translate() {
    let schema = crate::KeySchema {
        hash: ("pk", "S"),
        range: Some(("sk", "N")),
    };
    let pk = || filter_on("pk", Op::Eq, vec![s("x")]);
    let run = |entries: Vec<(String, crate::FilterCondition)>| {
        crate::translate_key_conditions(&entries, &schema).map_err(|e| e.0)
    };
    let cases = [
        (vec![], "Conditions must be at least length 1"),
        (
            vec![
                pk(),
                filter_on("sk", Op::Eq, vec![n("1")]),
                filter_on("zz", Op::Eq, vec![n("1")]),
            ],
            "Conditions can be of length 1 or 2 only",
        ),
        (
            vec![filter_on("pk", Op::Lt, vec![s("x")])],
            "Query key condition not supported",
        ),
        (
            vec![filter_on("pk", Op::Null, vec![])],
            "Only scalar types can be used as Hash Key values",
        ),
        (
            vec![pk(), filter_on("sk", Op::NotNull, vec![])],
            "Only scalar types can be used as Range Key values",
        ),
        (
            vec![pk(), filter_on("sk", Op::In, vec![n("1")])],
            "Attempted conditional constraint is not an indexable operation",
        ),
        (
            vec![pk(), filter_on("sk", Op::Contains, vec![n("1")])],
            "Attempted conditional constraint is not an indexable operation",
        ),
        (
            vec![filter_on("sk", Op::Eq, vec![n("1")])],
            "Query condition missed key schema element: pk",
        ),
        (
            vec![pk(), filter_on("zz", Op::Eq, vec![n("1")])],
            "Query condition missed key schema element: sk",
        ),
        (
            vec![pk(), filter_on("sk", Op::Eq, vec![s("1")])],
            "One or more parameter values were invalid: Condition parameter type does not match schema type",
        ),
        (
            vec![pk(), filter_on("sk", Op::BeginsWith, vec![n("1")])],
            "One or more parameter values were invalid: ComparisonOperator BEGINS_WITH is not valid for N AttributeValue type",
        ),
        (
            vec![pk(), filter_on("sk", Op::Between, vec![n("5"), n("1")])],
            "The BETWEEN condition was provided a range where the lower bound is greater than the upper bound",
        ),
    ];
    for (entries, message) in cases {
        assert_eq!(run(entries).unwrap_err(), message);
    }
    let key = run(vec![pk(), filter_on("sk", Op::Gt, vec![n("1")])]).unwrap();
    assert_eq!(key.hash, s("x"));
    assert_eq!(key.range, Some(crate::RangeKeyCondition::Gt(n("1"))));
}
