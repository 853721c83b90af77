//! File-driven parser tests: each file in `tests/parser_cases/` lists expressions with the tree
//! they parse into (printed fully parenthesised) or the exact error DynamoDB gives.
//!
//! A case is three lines: `kind: condition|filter|key|update|projection`, `input: <text>` and
//! `expect: <printed tree>` or `error: <message>`; cases are separated by blank lines and `#` starts
//! a comment. Every case resolves placeholders through the same fixed names and values below.
//! `HAVEN_BLESS=1 cargo test -p haven-expr --test parser_cases` rewrites the expectations from the
//! current parser (review the diff before committing it).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use haven_expr::{ConditionKind, Placeholders, parse_condition, parse_projection, parse_update};
use haven_model::{AttributeValue, Number};

fn names() -> HashMap<String, String> {
    [("#n", "name"), ("#s", "status"), ("#a", "a")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn values() -> BTreeMap<String, AttributeValue> {
    let n = |t: &str| AttributeValue::N(Number::parse(t).unwrap());
    [
        (":one", n("1")),
        (":two", n("2")),
        (":s", AttributeValue::S("x".into())),
        (":l", AttributeValue::L(vec![n("1")])),
        (":ss", AttributeValue::Ss(vec!["a".into()])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Parses `input` as `kind` and prints the tree, or the error message prefixed with `error: `.
fn outcome(kind: &str, input: &str) -> String {
    let (names, values) = (names(), values());
    let mut placeholders =
        Placeholders::new(Some(&names), Some(&values)).expect("fixed placeholders are valid");
    let result = match kind {
        "condition" => parse_condition(input, &mut placeholders, ConditionKind::Condition)
            .map(|c| c.to_string()),
        "filter" => {
            parse_condition(input, &mut placeholders, ConditionKind::Filter).map(|c| c.to_string())
        }
        "key" => parse_condition(input, &mut placeholders, ConditionKind::KeyCondition)
            .map(|c| c.to_string()),
        "update" => parse_update(input, &mut placeholders).map(|u| u.to_string()),
        "projection" => parse_projection(input, &mut placeholders).map(|paths| {
            paths
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }),
        other => panic!("unknown kind {other:?}"),
    };
    match result {
        Ok(tree) => format!("expect: {tree}"),
        Err(error) => format!("error: {}", error.0),
    }
}

struct Case {
    kind: String,
    input: String,
    expected: String,
}

fn read_cases(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for block in text.split("\n\n") {
        let lines: Vec<&str> = block
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        if lines.is_empty() {
            continue;
        }
        let field = |name: &str| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(name))
                .map(|rest| rest.strip_prefix(' ').unwrap_or(rest).to_string())
        };
        let kind = field("kind:").unwrap_or_else(|| panic!("case without kind: {block}"));
        let input = field("input:").unwrap_or_else(|| panic!("case without input: {block}"));
        let expected = lines
            .iter()
            .find(|l| l.starts_with("expect: ") || l.starts_with("error: "))
            .map(|l| l.to_string())
            .unwrap_or_default();
        cases.push(Case {
            kind,
            input,
            expected,
        });
    }
    cases
}

fn write_cases(path: &Path, original: &str, cases: &[Case], outcomes: &[String]) {
    let header: String = original
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let body: Vec<String> = cases
        .iter()
        .zip(outcomes)
        .map(|(c, o)| format!("kind: {}\ninput: {}\n{o}\n", c.kind, c.input))
        .collect();
    std::fs::write(path, format!("{header}\n{}", body.join("\n"))).unwrap();
}

#[test]
fn parser_cases_match_their_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parser_cases");
    let bless = std::env::var_os("HAVEN_BLESS").is_some();
    let mut failures = Vec::new();
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let cases = read_cases(&text);
        let outcomes: Vec<String> = cases.iter().map(|c| outcome(&c.kind, &c.input)).collect();
        total += cases.len();
        if bless {
            write_cases(&path, &text, &cases, &outcomes);
            continue;
        }
        for (case, actual) in cases.iter().zip(&outcomes) {
            if &case.expected != actual {
                failures.push(format!(
                    "{}: {} {:?}\n  file:   {}\n  parser: {actual}",
                    path.display(),
                    case.kind,
                    case.input,
                    case.expected
                ));
            }
        }
    }
    assert!(total >= 50, "only {total} parser cases");
    assert!(
        failures.is_empty(),
        "{} of {total} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
