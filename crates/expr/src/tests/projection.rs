//! Projection parsing messages and projected shapes.

use super::*;
use crate::{Path, parse_projection, project};

fn parse(text: &str, env: &Env) -> Result<Vec<Path>, String> {
    let mut p = env.placeholders();
    parse_projection(text, &mut p).map_err(|e| e.0)
}

#[test]
fn projection_errors() {
    let env = Env::new().name("#a", "a");
    let cases = [
        ("", "The expression can not be empty;"),
        ("!!!", "Syntax error; token: \"!\", near: \"!!\""),
        ("a b", "Syntax error; token: \"b\", near: \"a b\""),
        ("a,", "Syntax error; token: \"<EOF>\", near: \",\""),
        (
            "#x",
            "An expression attribute name used in the document path is not defined; attribute name: #x",
        ),
        (
            "name",
            "Attribute name is a reserved keyword; reserved keyword: name",
        ),
        (
            "a, #a.b",
            "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a, b]",
        ),
        (
            "a[0], a.b",
            "Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [a, [0]], path two: [a, b]",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(
            parse(text, &env).expect_err(text),
            format!("Invalid ProjectionExpression: {message}"),
            "{text}"
        );
    }
}

#[test]
fn error_ranking_matches_dynamodb() {
    let env = Env::new();
    let overlap = "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a]";
    let undefined = "An expression attribute name used in the document path is not defined; attribute name: #zz";
    let cases = [
        (
            "#zz, name",
            "Attribute name is a reserved keyword; reserved keyword: name",
        ),
        ("a, a, #zz", undefined),
        ("#zz, a, a", overlap),
        ("#yy, #zz", undefined),
        ("#zz.#yy", undefined),
    ];
    for (text, message) in cases {
        assert_eq!(
            parse(text, &env).expect_err(text),
            format!("Invalid ProjectionExpression: {message}"),
            "{text}"
        );
    }
}

#[test]
fn nested_paths_keep_their_shape() {
    let it = item(vec![
        (
            "a",
            l(vec![s("x"), m(vec![("k", s("y")), ("j", s("z"))]), s("w")]),
        ),
        ("m", m(vec![("p", n("1")), ("q", n("2"))])),
        ("n", n("5")),
    ]);
    let paths = parse("a[2], a[1].k, m.q, n, nope, m.nope, a[9]", &Env::new()).unwrap();
    let out = project(&it, &paths);
    assert_eq!(
        out,
        item(vec![
            ("a", l(vec![m(vec![("k", s("y"))]), s("w")])),
            ("m", m(vec![("q", n("2"))])),
            ("n", n("5")),
        ])
    );
}

#[test]
fn size_limit_message_states_no_size() {
    assert_eq!(
        parse(&"a".repeat(4097), &Env::new()).unwrap_err(),
        "Invalid ProjectionExpression: Expression size has exceeded the maximum allowed size;"
    );
}
