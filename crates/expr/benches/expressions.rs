//! Parse and evaluate times of a handful of realistic expressions: parsing alone (with the
//! placeholder maps a request carries), evaluating an already parsed tree alone, and both, as one
//! request does. A program that prints figures, never a pass/fail check: see docs/benchmarks.md.
//!
//! Run: `cargo bench -p haven-expr --bench expressions`

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use haven_expr::{
    ConditionKind, KeySchema, Placeholders, key_condition, parse_condition, parse_projection,
    parse_update, project,
};
use haven_model::{AttributeValue, Item, Number};

const CONDITION: &str = "attribute_not_exists(pk) OR (#s = :open AND version < :v)";
const UPDATE: &str =
    "SET #c = #c + :one, tags = list_append(tags, :t), updated = :now REMOVE draft ADD seen :set";
const PROJECTION: &str =
    "pk, profile.#nm, profile.address.city, orders[0].amount, orders[2].products[1].sku, #t[0]";
const FILTER: &str =
    "#s IN (:open, :pending, :review) AND price BETWEEN :lo AND :hi AND size(tags) > :one";
const KEY_CONDITION: &str = "pk = :pk AND begins_with(sk, :prefix)";
const KEYS: [&str; 2] = ["pk", "sk"];

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_string())
}

fn n(text: &str) -> AttributeValue {
    AttributeValue::N(Number::parse(text).expect("a number"))
}

fn map(entries: Vec<(&str, AttributeValue)>) -> AttributeValue {
    AttributeValue::M(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// ExpressionAttributeNames and Values shared by every expression here, and an item of about
/// twenty attributes with nested maps and lists.
struct Fixture {
    names: HashMap<String, String>,
    values: BTreeMap<String, AttributeValue>,
    item: Item,
}

impl Fixture {
    fn new() -> Fixture {
        let names = [
            ("#s", "status"),
            ("#c", "count"),
            ("#t", "tags"),
            ("#nm", "name"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let values = [
            (":open", s("open")),
            (":pending", s("pending")),
            (":review", s("review")),
            (":v", n("12")),
            (":one", n("1")),
            (":lo", n("10")),
            (":hi", n("99.95")),
            (":now", s("2026-11-23T01:00:00Z")),
            (":t", AttributeValue::L(vec![s("urgent")])),
            (
                ":set",
                AttributeValue::Ss(vec!["web".into(), "mobile".into()]),
            ),
            (":pk", s("customer#0042")),
            (":prefix", s("order#2026-")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let order = |i: u32| {
            map(vec![
                ("id", s(&format!("order#{i}"))),
                ("amount", n(&format!("{}.50", 10 * i + 3))),
                (
                    "products",
                    AttributeValue::L(
                        (0..3)
                            .map(|j| {
                                map(vec![("sku", s(&format!("sku-{i}-{j}"))), ("qty", n("2"))])
                            })
                            .collect(),
                    ),
                ),
            ])
        };
        let mut item: Item = [
            ("pk", s("customer#0042")),
            ("sk", s("order#2026-11-01")),
            ("status", s("open")),
            ("version", n("7")),
            ("count", n("41")),
            ("price", n("42.5")),
            ("draft", AttributeValue::Bool(true)),
            ("tags", AttributeValue::L(vec![s("new"), s("gift")])),
            ("seen", AttributeValue::Ss(vec!["email".into()])),
            (
                "profile",
                map(vec![
                    ("name", s("Ada Lovelace")),
                    ("email", s("ada@example.com")),
                    (
                        "address",
                        map(vec![("city", s("London")), ("zip", s("NW1"))]),
                    ),
                ]),
            ),
            ("orders", AttributeValue::L((0..4).map(order).collect())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for i in 0..9 {
            item.insert(format!("extra{i}"), s("some text of a typical length"));
        }
        Fixture {
            names,
            values,
            item,
        }
    }

    fn placeholders(&self) -> Placeholders<'_> {
        Placeholders::new(Some(&self.names), Some(&self.values)).expect("valid placeholders")
    }
}

const SCHEMA: KeySchema<'static> = KeySchema {
    hash: ("pk", "S"),
    range: Some(("sk", "S")),
};

fn conditions(c: &mut Criterion, f: &Fixture) {
    for (name, text) in [("condition", CONDITION), ("filter", FILTER)] {
        let parse = || {
            parse_condition(
                black_box(text),
                &mut f.placeholders(),
                ConditionKind::Filter,
            )
        };
        let parsed = parse().expect("parses");
        assert!(parsed.evaluate(Some(&f.item)).is_ok());
        c.bench_function(&format!("parse/{name}"), |b| b.iter(parse));
        c.bench_function(&format!("evaluate/{name}"), |b| {
            b.iter(|| parsed.evaluate(Some(black_box(&f.item))))
        });
        c.bench_function(&format!("parse+evaluate/{name}"), |b| {
            b.iter(|| parse().expect("parses").evaluate(Some(black_box(&f.item))))
        });
    }
}

fn update(c: &mut Criterion, f: &Fixture) {
    let parse = || parse_update(black_box(UPDATE), &mut f.placeholders());
    let parsed = parse().expect("parses");
    assert!(parsed.apply(&mut f.item.clone(), &KEYS).is_ok());
    // Each run applies to a fresh copy of the item; making the copy is not timed.
    c.bench_function("parse/update", |b| b.iter(parse));
    c.bench_function("evaluate/update", |b| {
        b.iter_batched_ref(
            || f.item.clone(),
            |item| parsed.apply(item, &KEYS),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("parse+evaluate/update", |b| {
        b.iter_batched_ref(
            || f.item.clone(),
            |item| parse().expect("parses").apply(item, &KEYS),
            BatchSize::SmallInput,
        )
    });
}

fn projection(c: &mut Criterion, f: &Fixture) {
    let parse = || parse_projection(black_box(PROJECTION), &mut f.placeholders());
    let parsed = parse().expect("parses");
    assert_eq!(project(&f.item, &parsed).len(), 4);
    c.bench_function("parse/projection", |b| b.iter(parse));
    c.bench_function("evaluate/projection", |b| {
        b.iter(|| project(black_box(&f.item), &parsed))
    });
    c.bench_function("parse+evaluate/projection", |b| {
        b.iter(|| project(black_box(&f.item), &parse().expect("parses")))
    });
}

/// A Query's key condition: parsing, then reducing the tree to the key values and the sort-key
/// test, which runs once per item read.
fn key_conditions(c: &mut Criterion, f: &Fixture) {
    let parse = || {
        parse_condition(
            black_box(KEY_CONDITION),
            &mut f.placeholders(),
            ConditionKind::KeyCondition,
        )
    };
    let parsed = parse().expect("parses");
    let sort_key = &f.item["sk"];
    let reduce_and_match = |condition: &haven_expr::Condition| {
        let key = key_condition(condition, &SCHEMA).expect("a valid key condition");
        key.range.expect("a sort-key condition").matches(sort_key)
    };
    assert!(reduce_and_match(&parsed));
    c.bench_function("parse/key_condition", |b| b.iter(parse));
    c.bench_function("evaluate/key_condition", |b| {
        b.iter(|| reduce_and_match(black_box(&parsed)))
    });
    c.bench_function("parse+evaluate/key_condition", |b| {
        b.iter(|| reduce_and_match(&parse().expect("parses")))
    });
}

fn expressions(c: &mut Criterion) {
    let fixture = Fixture::new();
    conditions(c, &fixture);
    update(c, &fixture);
    projection(c, &fixture);
    key_conditions(c, &fixture);
}

criterion_group!(benches, expressions);
criterion_main!(benches);
