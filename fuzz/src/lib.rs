//! What the fuzz targets check for one input text: the parser never panics, whatever it accepts
//! evaluates (or applies, or projects) without panicking, and printing an accepted tree then
//! parsing the print gives the same tree. PartiQL statements (which do not print back) are bound,
//! planned, evaluated and applied.
//!
//! Every input resolves its placeholders through one fixed set of ExpressionAttributeNames and
//! ExpressionAttributeValues (the ones in the seed corpus and the dictionary). The names stand for
//! plain identifiers that are not reserved words, so that a printed tree is valid expression text.

use std::collections::HashMap;
use std::sync::LazyLock;

use haven_expr::{
    ConditionKind, KeySchema, Placeholders, UpdateAction, UpdateExpression, key_condition,
    parse_condition, parse_projection, parse_update, project,
};
use haven_model::{AttributeValue, Item, Number};

struct Env {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    item: Item,
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_string())
}

fn n(text: &str) -> AttributeValue {
    AttributeValue::N(number(text))
}

fn number(text: &str) -> Number {
    Number::parse(text).expect("a valid number")
}

fn map(entries: Vec<(&str, AttributeValue)>) -> AttributeValue {
    AttributeValue::M(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

static ENV: LazyLock<Env> = LazyLock::new(|| {
    let names = [
        ("#s", "st"),
        ("#c", "cnt"),
        ("#v", "version"),
        ("#t", "tags"),
        ("#a", "a"),
        ("#b", "b"),
        ("#n", "n"),
        ("#pk", "pk"),
        ("#sk", "sk"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let values = [
        (":a", n("1")),
        (":b", n("2")),
        (":c", s("c")),
        (":v", n("7")),
        (":one", n("1")),
        (":lo", n("-3.5")),
        (":hi", n("1E+10")),
        (":open", s("open")),
        (":now", s("2024-01-01T00:00:00Z")),
        (":pfx", s("ab")),
        (":empty", s("")),
        (":t", AttributeValue::L(vec![s("x"), n("2")])),
        (
            ":set",
            AttributeValue::Ss(vec!["red".to_string(), "blue".to_string()]),
        ),
        (":ns", AttributeValue::Ns(vec![number("1"), number("2")])),
        (":bs", AttributeValue::Bs(vec![vec![1, 2], vec![3]])),
        (":bin", AttributeValue::B(vec![0, 255])),
        (":yes", AttributeValue::Bool(true)),
        (":null", AttributeValue::Null),
        (":m", map(vec![("k", s("v"))])),
        (":type", s("S")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let item = [
        ("pk", s("user#1")),
        ("sk", n("42")),
        ("st", s("open")),
        ("cnt", n("3")),
        ("version", n("5")),
        ("tags", AttributeValue::L(vec![s("a"), s("b")])),
        ("seen", AttributeValue::Ss(vec!["red".to_string()])),
        ("ids", AttributeValue::Ns(vec![number("1"), number("9")])),
        ("blobs", AttributeValue::Bs(vec![vec![1, 2]])),
        ("draft", AttributeValue::Bool(true)),
        ("gone", AttributeValue::Null),
        ("bin", AttributeValue::B(vec![0, 255])),
        (
            "a",
            map(vec![(
                "b",
                AttributeValue::L(vec![n("1"), map(vec![("c", s("deep"))]), s("x")]),
            )]),
        ),
        (
            "n",
            AttributeValue::L(vec![AttributeValue::L(vec![n("0")])]),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Env {
        names,
        values,
        item,
    }
});

fn placeholders() -> Placeholders<'static> {
    Placeholders::new(Some(&ENV.names), Some(&ENV.values)).expect("well-formed placeholders")
}

/// Whether a failure to re-parse a printed tree is explained by a limit: printing adds
/// parentheses and spaces, so a print can be longer or deeper than the text it came from.
fn limit_error(message: &str) -> bool {
    message.contains("Expression size has exceeded the maximum allowed size")
        || message.contains("The expression has redundant parentheses")
        || message.contains("The expression contains too many operators")
}

/// A condition, filter or key condition.
pub fn condition(text: &str) {
    let mut p = placeholders();
    let Ok(condition) = parse_condition(text, &mut p, ConditionKind::Filter) else {
        return;
    };
    let _ = p.check_all_used();
    let _ = condition.evaluate(Some(&ENV.item));
    let _ = condition.evaluate(None);
    let schema = KeySchema {
        hash: ("pk", "S"),
        range: Some(("sk", "N")),
    };
    if let Ok(key) = key_condition(&condition, &schema)
        && let Some(range) = &key.range
    {
        let _ = range.matches(&n("42"));
        let _ = range.matches(&s("42"));
    }

    let printed = condition.to_string();
    match parse_condition(&printed, &mut placeholders(), ConditionKind::Filter) {
        Ok(again) => assert_eq!(again, condition, "{text:?} printed as {printed:?}"),
        Err(e) => assert!(
            limit_error(&e.0),
            "{text:?} printed as {printed:?} fails: {}",
            e.0
        ),
    }
}

fn clause_order(action: &UpdateAction) -> u8 {
    match action {
        UpdateAction::Set(..) => 0,
        UpdateAction::Remove(_) => 1,
        UpdateAction::Add(..) => 2,
        UpdateAction::Delete(..) => 3,
    }
}

/// An update expression.
pub fn update(text: &str) {
    let mut p = placeholders();
    let Ok(update) = parse_update(text, &mut p) else {
        return;
    };
    let _ = p.check_all_used();
    for keys in [&[][..], &["pk", "sk"][..]] {
        let mut item = ENV.item.clone();
        if update.apply(&mut item, keys).is_err() {
            assert_eq!(item, ENV.item, "a failed update changed the item: {text:?}");
        }
        let mut empty = Item::new();
        let _ = update.apply(&mut empty, keys);
    }

    // The print groups actions by clause (SET, REMOVE, ADD, DELETE), whatever order the clauses
    // were written in.
    let mut expected = update.actions.clone();
    expected.sort_by_key(clause_order);
    let expected = UpdateExpression { actions: expected };
    let printed = update.to_string();
    match parse_update(&printed, &mut placeholders()) {
        Ok(again) => assert_eq!(again, expected, "{text:?} printed as {printed:?}"),
        Err(e) => assert!(
            limit_error(&e.0),
            "{text:?} printed as {printed:?} fails: {}",
            e.0
        ),
    }
}

/// A projection expression.
pub fn projection(text: &str) {
    let mut p = placeholders();
    let Ok(paths) = parse_projection(text, &mut p) else {
        return;
    };
    let _ = project(&ENV.item, &paths);

    let printed = paths
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match parse_projection(&printed, &mut placeholders()) {
        Ok(again) => assert_eq!(again, paths, "{text:?} printed as {printed:?}"),
        Err(e) => assert!(
            limit_error(&e.0),
            "{text:?} printed as {printed:?} fails: {}",
            e.0
        ),
    }
}

/// The parameters every PartiQL input binds its `?` to, in order.
static PARAMETERS: LazyLock<Vec<AttributeValue>> = LazyLock::new(|| {
    vec![
        s("user#1"),
        n("42"),
        s("open"),
        n("-3.5"),
        AttributeValue::B(vec![0, 255]),
        AttributeValue::Ss(vec!["red".to_string()]),
        AttributeValue::L(vec![s("x"), n("2")]),
        map(vec![("k", s("v"))]),
    ]
});

/// A PartiQL statement: whatever parses binds, lowers, plans against a key schema, evaluates,
/// applies and shapes the fixed item without panicking; a failed update leaves the item unchanged.
pub fn partiql(text: &str) {
    use haven_expr::partiql::{Statement, keys, parse_statement, select_item};
    let Ok(statement) = parse_statement(text, &PARAMETERS) else {
        return;
    };
    let schemas = [
        KeySchema {
            hash: ("pk", "S"),
            range: Some(("sk", "N")),
        },
        KeySchema {
            hash: ("pk", "S"),
            range: None,
        },
    ];
    let condition = match &statement {
        Statement::Select(select) | Statement::Exists(select) => {
            let _ = select_item(ENV.item.clone(), select.projection.as_deref());
            select.condition.as_ref()
        }
        Statement::Insert(insert) => {
            let _ = haven_model::item_size(&insert.item);
            None
        }
        Statement::Update(update) => {
            let mut item = ENV.item.clone();
            if update.update.apply(&mut item, &["pk", "sk"]).is_err() {
                assert_eq!(item, ENV.item, "a failed update changed the item: {text:?}");
            }
            update.condition.as_ref()
        }
        Statement::Delete(delete) => delete.condition.as_ref(),
    };
    if let Some(condition) = condition {
        let _ = condition.evaluate(Some(&ENV.item));
        let _ = condition.evaluate(None);
    }
    for schema in &schemas {
        if let Ok(plan) = keys::read_plan(condition, schema)
            && let Some(range) = &plan.range
        {
            let _ = range.matches(&n("42"));
        }
        let _ = keys::item_key(condition, schema);
    }
}
