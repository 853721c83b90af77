//! KeyConditionExpression checks against a key schema (messages from DynamoDB).

use super::*;
use crate::{
    ConditionKind, KeyCondition, KeySchema, RangeKeyCondition, key_condition, parse_condition,
};

const SCHEMA: KeySchema<'static> = KeySchema {
    hash: ("pk", "S"),
    range: Some(("sk", "N")),
};

fn keys(text: &str) -> Result<KeyCondition, String> {
    let env = Env::new()
        .value(":s", s("x"))
        .value(":n", n("1"))
        .value(":m", n("5"))
        .value(":b", AttributeValue::Bool(true));
    let mut p = env.placeholders();
    let condition = parse_condition(text, &mut p, ConditionKind::KeyCondition).map_err(|e| e.0)?;
    key_condition(&condition, &SCHEMA).map_err(|e| e.0)
}

#[test]
fn valid_key_conditions() {
    assert_eq!(
        keys("pk = :s").unwrap(),
        KeyCondition {
            hash: s("x"),
            range: None
        }
    );
    assert_eq!(
        keys("sk = :n AND pk = :s").unwrap().range,
        Some(RangeKeyCondition::Eq(n("1")))
    );
    assert_eq!(
        keys("pk = :s AND :n < sk").unwrap().range,
        Some(RangeKeyCondition::Gt(n("1")))
    );
    assert_eq!(
        keys("(pk = :s) AND (sk BETWEEN :n AND :m)").unwrap().range,
        Some(RangeKeyCondition::Between(n("1"), n("5")))
    );
    assert_eq!(keys(":s = pk").unwrap().hash, s("x"));
}

#[test]
fn key_condition_errors() {
    let cases = [
        ("sk = :n", "Query condition missed key schema element: pk"),
        (
            "pk = :s AND zz = :n",
            "Query condition missed key schema element: sk",
        ),
        ("pk < :s", "Query key condition not supported"),
        ("begins_with(pk, :s)", "Query key condition not supported"),
        (
            "pk = :s OR sk = :n",
            "Invalid operator used in KeyConditionExpression: OR",
        ),
        (
            "NOT pk = :s",
            "Invalid operator used in KeyConditionExpression: NOT",
        ),
        (
            "pk = :s AND sk <> :n",
            "Invalid operator used in KeyConditionExpression: <>",
        ),
        (
            "pk = :s AND sk IN (:n)",
            "Invalid operator used in KeyConditionExpression: IN",
        ),
        (
            "pk = :s AND contains(sk, :n)",
            "Invalid operator used in KeyConditionExpression: contains",
        ),
        (
            "pk = :s AND attribute_exists(sk)",
            "Invalid operator used in KeyConditionExpression: attribute_exists",
        ),
        (
            "pk = :s AND sk = :n AND sk = :m",
            "KeyConditionExpressions must only contain one condition per key",
        ),
        (
            "pk = :s AND sk = :n AND x = :m",
            "Conditions can be of length 1 or 2 only",
        ),
        (
            "pk = :s AND pk = :s",
            "KeyConditionExpressions must only contain one condition per key",
        ),
        (
            "pk = :s AND begins_with(pk, :s)",
            "KeyConditionExpressions must only contain one condition per key",
        ),
        (
            "pk = :n",
            "One or more parameter values were invalid: Condition parameter type does not match schema type",
        ),
        (
            "pk = :s AND sk = :s",
            "One or more parameter values were invalid: Condition parameter type does not match schema type",
        ),
        (
            "pk = :s AND begins_with(sk, :s)",
            "One or more parameter values were invalid: Condition parameter type does not match schema type",
        ),
        (
            "pk = :s AND sk = :b",
            "One or more parameter values were invalid: Condition parameter type does not match schema type",
        ),
        (
            "pk = sk",
            "Invalid condition in KeyConditionExpression: Multiple attribute names used in one condition",
        ),
        (
            ":s = :s",
            "Invalid condition in KeyConditionExpression: No key attribute specified",
        ),
        (
            "pk.x = :s",
            "Key attributes must be scalars; list random access '[]' and map lookup '.' are not allowed: Key: pk",
        ),
        (
            "pk[0] = :s",
            "Key attributes must be scalars; list random access '[]' and map lookup '.' are not allowed: Key: pk",
        ),
        (
            "pk = :s AND size(sk) = :n",
            "KeyConditionExpressions cannot contain nested operations",
        ),
        (
            "pk = :s AND begins_with(:s, sk)",
            "Invalid condition in KeyConditionExpression: begins_with operator must have the key attribute as its first operand",
        ),
        (
            "pk = :s AND sk BETWEEN :m AND :n",
            "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {N:5}, upper bound operand: AttributeValue: {N:1}",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(keys(text).expect_err(text), message, "{text}");
    }
}

#[test]
fn range_conditions_match_sort_keys() {
    assert!(RangeKeyCondition::Between(n("1"), n("5")).matches(&n("5")));
    assert!(!RangeKeyCondition::Lt(n("1")).matches(&n("1")));
    assert!(RangeKeyCondition::BeginsWith(s("ab")).matches(&s("abc")));
    assert!(!RangeKeyCondition::Ge(s("b")).matches(&n("1")));
}

/// Partition (t S, r S), sort (n N, m S, o S).
fn multi_keys(text: &str) -> Result<crate::KeyPredicate, String> {
    let schema = crate::MultiKeySchema {
        hash: vec![("t", "S"), ("r", "S")],
        range: vec![("n", "N"), ("m", "S"), ("o", "S")],
    };
    let env = Env::new().value(":s", s("x")).value(":n", n("1"));
    let mut p = env.placeholders();
    let condition = parse_condition(text, &mut p, ConditionKind::KeyCondition).map_err(|e| e.0)?;
    crate::multi_key_condition(&condition, &schema).map_err(|e| e.0)
}

#[test]
fn multi_attribute_key_conditions() {
    let key = multi_keys("r = :s AND t = :s AND m > :s AND n = :n").unwrap();
    assert_eq!(key.hash, [s("x"), s("x")]);
    assert_eq!(
        key.range,
        [RangeKeyCondition::Eq(n("1")), RangeKeyCondition::Gt(s("x"))]
    );
    assert!(multi_keys("t = :s AND r = :s").unwrap().range.is_empty());
    let cases = [
        (
            "t = :s",
            "HASH key attributes r must have equality conditions specified in the query",
        ),
        (
            "n = :n",
            "HASH key attributes t, r must have equality conditions specified in the query",
        ),
        (
            "t = :s AND begins_with(r, :s)",
            "HASH key attributes r must have equality conditions specified in the query",
        ),
        (
            "t = :s AND r = :s AND o = :s",
            "RANGE key attributes n, m must have equality conditions specified in the query because a condition is present on key attribute o",
        ),
        (
            "t = :s AND r = :s AND m = :s AND o = :s",
            "RANGE key attributes n must have equality conditions specified in the query because a condition is present on key attribute m",
        ),
        (
            "t = :s AND r = :s AND n > :n AND m = :s",
            "RANGE key attributes n must have equality conditions specified in the query because a condition is present on key attribute m",
        ),
        (
            "t = :s AND r = :s AND x = :s",
            "Query condition missed key schema element",
        ),
        (
            "t = :s AND r = :s AND n = :n AND m = :s AND o = :s AND x = :s",
            "Query key condition not supported",
        ),
        (
            "t = :s AND r = :s AND r = :s",
            "KeyConditionExpressions must only contain one condition per key",
        ),
        (
            "t = :n AND r = :s",
            "One or more parameter values were invalid: Condition parameter type does not match schema type",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(multi_keys(text).unwrap_err(), message, "{text}");
    }
}
