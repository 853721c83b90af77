//! Update parsing messages and application semantics.

use super::*;
use crate::{UpdateExpression, parse_update};

fn parse(text: &str, env: &Env) -> Result<UpdateExpression, String> {
    let mut p = env.placeholders();
    parse_update(text, &mut p).map_err(|e| e.0)
}

fn values() -> Env {
    Env::new()
        .value(":v", s("x"))
        .value(":n", n("1"))
        .value(":l", l(vec![s("a")]))
        .value(":ss", ss(&["a", "b"]))
        .value(":null", AttributeValue::Null)
        .value(":bool", AttributeValue::Bool(true))
        .value(":m", m(vec![]))
        .value(":bin", AttributeValue::B(vec![1]))
}

#[test]
fn parse_errors() {
    let env = values().name("#c", "c").name("#d", "[3]");
    let cases = [
        ("", "The expression can not be empty;"),
        (" ", "Syntax error; token: \"<EOF>\", near: \" \""),
        ("SET", "Syntax error; token: \"<EOF>\", near: \"SET\""),
        ("SET a", "Syntax error; token: \"<EOF>\", near: \"a\""),
        (
            "whatever",
            "Syntax error; token: \"whatever\", near: \"whatever\"",
        ),
        (
            "SET a = :n + :n + :n",
            "Syntax error; token: \"+\", near: \":n + :n\"",
        ),
        ("REMOVE a b", "Syntax error; token: \"b\", near: \"a b\""),
        ("SET a = :v,", "Syntax error; token: \"<EOF>\", near: \",\""),
        (
            "SET a = :v, and = :v",
            "Syntax error; token: \"and\", near: \", and =\"",
        ),
        (
            "SET a = :v SET b = :n",
            "The \"SET\" section can only be used once in an update expression;",
        ),
        (
            "remove #d set a = b remove e",
            "The \"REMOVE\" section can only be used once in an update expression;",
        ),
        (
            "SET a = :v REMOVE a",
            "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a]",
        ),
        (
            "SET a = :v REMOVE a.b",
            "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a, b]",
        ),
        (
            "SET a[1] = :v REMOVE a.b",
            "Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [a, [1]], path two: [a, b]",
        ),
        (
            "set #c[3].#d = a, #c[3] = a",
            "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [c, [3], [3]], path two: [c, [3]]",
        ),
        (
            "set #c[3].#d = a, #c.#d[3] = if_not_exists(a, b)",
            "Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [c, [3], [3]], path two: [c, [3], [3]]",
        ),
        (
            "SET a = :v + :n",
            "Incorrect operand type for operator or function; operator or function: +, operand type: S",
        ),
        (
            "SET a = :n - :v",
            "Incorrect operand type for operator or function; operator or function: -, operand type: S",
        ),
        (
            "SET a = list_append(:l, :v)",
            "Incorrect operand type for operator or function; operator or function: list_append, operand type: S",
        ),
        (
            "SET a = list_append(:l)",
            "Incorrect number of operands for operator or function; operator or function: list_append, number of operands: 1",
        ),
        (
            "SET a = if_not_exists(:v, :v)",
            "Operator or function requires a document path; operator or function: if_not_exists",
        ),
        ("SET a = foo(:v)", "Invalid function name; function: foo"),
        (
            "SET a = size(b)",
            "The function is not allowed in an update expression; function: size",
        ),
        (
            "ADD a :v",
            "Incorrect operand type for operator or function; operator: ADD, operand type: STRING, typeSet: ALLOWED_FOR_ADD_OPERAND",
        ),
        (
            "ADD a :l",
            "Incorrect operand type for operator or function; operator: ADD, operand type: LIST, typeSet: ALLOWED_FOR_ADD_OPERAND",
        ),
        (
            "ADD a :null",
            "Incorrect operand type for operator or function; operator: ADD, operand type: NULL, typeSet: ALLOWED_FOR_ADD_OPERAND",
        ),
        (
            "ADD a :bool",
            "Incorrect operand type for operator or function; operator: ADD, operand type: BOOLEAN, typeSet: ALLOWED_FOR_ADD_OPERAND",
        ),
        (
            "ADD a :m",
            "Incorrect operand type for operator or function; operator: ADD, operand type: MAP, typeSet: ALLOWED_FOR_ADD_OPERAND",
        ),
        (
            "ADD a :bin",
            "Incorrect operand type for operator or function; operator: ADD, operand type: BINARY, typeSet: ALLOWED_FOR_ADD_OPERAND",
        ),
        (
            "DELETE a :n",
            "Incorrect operand type for operator or function; operator: DELETE, operand type: NUMBER, typeSet: ALLOWED_FOR_DELETE_OPERAND",
        ),
        (
            "SET name = :v",
            "Attribute name is a reserved keyword; reserved keyword: name",
        ),
        (
            "SET #a = :v",
            "An expression attribute name used in the document path is not defined; attribute name: #a",
        ),
        (
            "SET a = :zz",
            "An expression attribute value used in expression is not defined; attribute value: :zz",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(
            parse(text, &env).expect_err(text),
            format!("Invalid UpdateExpression: {message}"),
            "{text}"
        );
    }
}

#[test]
fn valid_updates_parse() {
    let env = values();
    for text in [
        "SET a = :v",
        "set a = :v, b = :n",
        "SET a = (:n + :n)",
        "SET a = (b) + :n",
        "SET a = list_append(if_not_exists(a, :l), :l)",
        "ADD a :ss, b :n",
        "DELETE a :ss",
        "REMOVE a, b[1].c SET size = :v",
    ] {
        assert!(parse(text, &env).is_ok(), "{text}");
    }
}

fn apply(text: &str, env: &Env, subject: &Item) -> Result<Item, String> {
    let update = parse(text, env).unwrap();
    let mut it = subject.clone();
    update.apply(&mut it, &["id"]).map_err(|e| e.0)?;
    Ok(it)
}

fn sample() -> Item {
    item(vec![
        ("id", s("k")),
        ("a", l(vec![s("x"), s("y"), s("z")])),
        ("m", m(vec![("p", n("1")), ("q", l(vec![n("1"), n("2")]))])),
        ("n", n("5")),
        ("ss", ss(&["a", "b"])),
        ("str", s("s")),
    ])
}

#[test]
fn set_then_remove_with_original_indexes() {
    let env = Env::new().value(":x", s("NEW"));
    let it = apply("REMOVE a[0] SET a[1] = :x", &env, &sample()).unwrap();
    assert_eq!(it["a"], l(vec![s("NEW"), s("z")]));
    let it = apply("REMOVE a[0], a[1]", &Env::new(), &sample()).unwrap();
    assert_eq!(it["a"], l(vec![s("z")]));
    let it = apply("SET a[10] = :x, a[11] = :x", &env, &sample()).unwrap();
    assert_eq!(it["a"], l(vec![s("x"), s("y"), s("z"), s("NEW"), s("NEW")]));
    let it = apply("REMOVE a[7], m.zz, nope", &Env::new(), &sample()).unwrap();
    assert_eq!(it, sample());
}

#[test]
fn set_values_read_the_original_item() {
    let env = Env::new().value(":one", n("1"));
    let it = apply("SET n = n + :one, dup = n", &env, &sample()).unwrap();
    assert_eq!(it["n"], n("6"));
    assert_eq!(it["dup"], n("5"));
    let it = apply(
        "SET x = if_not_exists(nope, :one), y = if_not_exists(n, :one)",
        &env,
        &sample(),
    )
    .unwrap();
    assert_eq!((&it["x"], &it["y"]), (&n("1"), &n("5")));
}

#[test]
fn runtime_errors() {
    let env = Env::new()
        .value(":x", s("NEW"))
        .value(":one", n("1"))
        .value(":l", l(vec![]))
        .value(":ns", AttributeValue::Ns(vec![Number::parse("1").unwrap()]));
    let cases = [
        (
            "SET m.zz.y = :x",
            "The document path provided in the update expression is invalid for update",
        ),
        (
            "SET str.a = :x",
            "The document path provided in the update expression is invalid for update",
        ),
        (
            "SET m[0] = :x",
            "The document path provided in the update expression is invalid for update",
        ),
        (
            "REMOVE y.a",
            "The document path provided in the update expression is invalid for update",
        ),
        (
            "REMOVE m[1]",
            "The document path provided in the update expression is invalid for update",
        ),
        (
            "ADD y.a :one",
            "The document path provided in the update expression is invalid for update",
        ),
        (
            "DELETE y.a :ns",
            "The document path provided in the update expression is invalid for update",
        ),
        (
            "SET c = nope",
            "The provided expression refers to an attribute that does not exist in the item",
        ),
        (
            "SET c = list_append(nope, :l)",
            "The provided expression refers to an attribute that does not exist in the item",
        ),
        (
            "SET c = str + :one",
            "An operand in the update expression has an incorrect data type",
        ),
        (
            "SET c = list_append(n, :l)",
            "An operand in the update expression has an incorrect data type",
        ),
        (
            "ADD ss :ns",
            "An operand in the update expression has an incorrect data type",
        ),
        (
            "ADD str :one",
            "An operand in the update expression has an incorrect data type",
        ),
        (
            "DELETE n :ns",
            "An operand in the update expression has an incorrect data type",
        ),
        (
            "SET id = :x",
            "One or more parameter values were invalid: Cannot update attribute id. This attribute is part of the key",
        ),
        (
            "REMOVE id.x",
            "One or more parameter values were invalid: Cannot update attribute id. This attribute is part of the key",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(
            apply(text, &env, &sample()).expect_err(text),
            message,
            "{text}"
        );
    }
}

#[test]
fn add_and_delete() {
    let env = Env::new()
        .value(":one", n("1"))
        .value(":cd", ss(&["b", "c", "d"]))
        .value(":ab", ss(&["a", "b", "q"]));
    let it = apply(
        "ADD n :one, fresh :one, ss :cd, fresh_set :cd",
        &env,
        &sample(),
    )
    .unwrap();
    assert_eq!(it["n"], n("6"));
    assert_eq!(it["fresh"], n("1"));
    assert_eq!(it["ss"], ss(&["a", "b", "c", "d"]));
    assert_eq!(it["fresh_set"], ss(&["b", "c", "d"]));
    let it = apply("DELETE ss :cd", &env, &sample()).unwrap();
    assert_eq!(it["ss"], ss(&["a"]));
    let it = apply("DELETE ss :ab, nope :ab", &env, &sample()).unwrap();
    assert!(!it.contains_key("ss"));
    assert!(!it.contains_key("nope"));
}

#[test]
fn arithmetic_limits() {
    let env = Env::new()
        .value(":big", n("9E+125"))
        .value(":wide", n("99999999999999999999999999999999999999"))
        .value(":half", n("0.5"));
    let err = apply("SET n = :big + :big", &env, &sample()).unwrap_err();
    assert_eq!(
        err,
        "Number overflow. Attempting to store a number with magnitude larger than supported range"
    );
    let err = apply("SET n = :wide + :half", &env, &sample()).unwrap_err();
    assert_eq!(err, "DynamoDB only supports precision up to 38 digits");
    let err = apply("SET n = :wide ADD w :half", &env, &sample());
    assert!(err.is_ok());
}

/// dynalite's recording of the real service ("should update nested attributes"): SET/ADD run in
/// path order, values read the old item, UPDATED_NEW projects the new item on the paths as written.
#[test]
fn nested_update_matches_the_real_service() {
    let env = Env::new().value(":a", n("2")).value(":b", ss(&["a"]));
    let old = item(vec![
        ("a", s("key")),
        ("b", m(vec![("a", n("1")), ("b", n("2")), ("c", n("3"))])),
        ("c", l(vec![n("1"), n("3")])),
    ]);
    let update = parse(
        "set b.c=((c[1])+(b.a)),b.a = a,c[1] = a, c[4] = b.a - b.b, c[2] = b.c add c[8] :b, c[6] :a",
        &env,
    )
    .unwrap();
    let mut new = old.clone();
    let paths = update.apply(&mut new, &[]).unwrap();
    assert_eq!(
        new,
        item(vec![
            ("a", s("key")),
            ("b", m(vec![("a", s("key")), ("b", n("2")), ("c", n("4"))])),
            (
                "c",
                l(vec![n("1"), s("key"), n("3"), n("-1"), n("2"), ss(&["a"])])
            ),
        ])
    );
    assert_eq!(
        crate::project(&new, &paths.0),
        item(vec![
            ("b", m(vec![("a", s("key")), ("c", n("4"))])),
            ("c", l(vec![s("key"), n("3"), n("2")])),
        ])
    );
    assert_eq!(paths.attribute_names(), vec!["b", "c"]);
}

#[test]
fn list_writes_run_in_index_order_across_clauses() {
    let env = Env::new()
        .value(":x", s("x"))
        .value(":y", s("y"))
        .value(":n", n("8"));
    let it = apply("SET a[4] = :x, a[3] = :y", &env, &sample()).unwrap();
    assert_eq!(it["a"], l(vec![s("x"), s("y"), s("z"), s("y"), s("x")]));
    let it = apply("ADD a[7] :n SET a[8] = :x", &env, &sample()).unwrap();
    assert_eq!(it["a"], l(vec![s("x"), s("y"), s("z"), n("8"), s("x")]));
}

#[test]
fn error_ranking_matches_dynamodb() {
    let env = values().value(":b", AttributeValue::Bool(true));
    let cases = [
        // Reserved words, unknown functions and repeated sections: first in the text.
        (
            "SET a = foo(b) REMOVE name",
            "Invalid function name; function: foo",
        ),
        (
            "REMOVE name SET a = foo(b)",
            "Attribute name is a reserved keyword; reserved keyword: name",
        ),
        (
            "SET a = b SET c = d REMOVE name",
            "The \"SET\" section can only be used once in an update expression;",
        ),
        (
            "SET a = b SET c = foo(d)",
            "Invalid function name; function: foo",
        ),
        // Overlapping paths outrank undefined placeholders.
        (
            "SET a = b, a = :zz",
            "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a]",
        ),
        // Undefined placeholders: first within an action, last across actions, REMOVE after SET.
        (
            "SET a = :zz, b = #zz",
            "An expression attribute name used in the document path is not defined; attribute name: #zz",
        ),
        (
            "SET a = #zz, b = :zz",
            "An expression attribute value used in expression is not defined; attribute value: :zz",
        ),
        (
            "SET #zz = :zz",
            "An expression attribute name used in the document path is not defined; attribute name: #zz",
        ),
        (
            "REMOVE #zz SET a = :zz",
            "An expression attribute name used in the document path is not defined; attribute name: #zz",
        ),
        (
            "SET a = list_append(:zz, #zz)",
            "An expression attribute value used in expression is not defined; attribute value: :zz",
        ),
        // Operand types: first within an action, last across actions.
        (
            "SET a = :v + :n, b = list_append(:v)",
            "Incorrect number of operands for operator or function; operator or function: list_append, number of operands: 1",
        ),
        (
            "SET b = list_append(:v), a = :v + :n",
            "Incorrect operand type for operator or function; operator or function: +, operand type: S",
        ),
        (
            "DELETE b :n ADD a :v",
            "Incorrect operand type for operator or function; operator: ADD, operand type: STRING, typeSet: ALLOWED_FOR_ADD_OPERAND",
        ),
        (
            "SET a = :v - :b",
            "Incorrect operand type for operator or function; operator or function: -, operand type: S",
        ),
        // Redundant parentheses and misplaced list_append.
        ("SET a = ((b))", "The expression has redundant parentheses;"),
        (
            "SET b = ((a)) + c",
            "The expression has redundant parentheses;",
        ),
        (
            "SET b = ((a + c))",
            "The expression has redundant parentheses;",
        ),
        (
            "SET a = list_append(((b)), c)",
            "The expression has redundant parentheses;",
        ),
        (
            "SET b = :n + list_append(a, c)",
            "The function is not allowed to be used this way in an expression; function: list_append",
        ),
        (
            "SET a = if_not_exists(c, list_append(a, b))",
            "The function is not allowed to be used this way in an expression; function: list_append",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(
            parse(text, &env).expect_err(text),
            format!("Invalid UpdateExpression: {message}"),
            "{text}"
        );
    }
    for text in [
        "SET a = (b)",
        "SET a = (b) + (c)",
        "SET a = list_append(if_not_exists(a, b), c)",
        "SET a = if_not_exists(c, if_not_exists(a, b))",
    ] {
        assert!(parse(text, &env).is_ok(), "{text}");
    }
}

#[test]
fn path_depth_and_overlap_share_a_rank() {
    let env = values();
    let deep = format!("q{}", (0..32).map(|i| format!(".b{i}")).collect::<String>());
    let nesting = "The document path has too many nesting levels; nesting levels: 33";
    let overlap = "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a]";
    let cases = [
        (format!("SET a = b, a = c, {deep} = d"), nesting),
        (format!("SET {deep} = d, a = b, a = c"), overlap),
        (format!("SET a = :zz, {deep} = d"), nesting),
        (format!("SET {deep} = d ADD x :v"), nesting),
        (
            "SET c[2147483648] = d SET a = b".to_string(),
            "List index is not within the allowable range; index: [2147483648]",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(
            parse(&text, &env).expect_err(&text),
            format!("Invalid UpdateExpression: {message}"),
            "{text}"
        );
    }
}

/// dynalite's recordings of the real service: which pair of paths is reported follows DynamoDB's
/// walk from the last action to the first.
#[test]
fn overlapping_paths_as_the_real_service_reports_them() {
    let env = Env::new().name("#b", "b").name("#c", "c").name("#d", "[3]");
    let overlap = [
        (
            "set d[1] = a, d.b = a, c[1].a = a, #c = if_not_exists(a, b)",
            "[c, [1], a]",
            "[c]",
        ),
        ("set c.b.#c = a, c = a, #d = a", "[c, b, c]", "[c]"),
        ("set a = b remove a, #c, #d", "[a]", "[a]"),
        ("set #c[3].#d = a, #c[3] = a", "[c, [3], [3]]", "[c, [3]]"),
        ("remove c, #c.a, #d", "[c]", "[c, a]"),
        ("remove a, #c, a, #d", "[a]", "[a]"),
    ];
    for (text, one, two) in overlap {
        assert_eq!(
            parse(text, &env).expect_err(text),
            format!(
                "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: {one}, path two: {two}"
            ),
            "{text}"
        );
    }
    let conflict = [
        (
            "set #c[3].#d = a, #c.#d[3] = if_not_exists(a, b)",
            "[c, [3], [3]]",
            "[c, [3], [3]]",
        ),
        ("remove a.#c set a[1] = #d", "[a, c]", "[a, [1]]"),
    ];
    for (text, one, two) in conflict {
        assert_eq!(
            parse(text, &env).expect_err(text),
            format!(
                "Invalid UpdateExpression: Two document paths conflict with each other; must remove or rewrite one of these paths; path one: {one}, path two: {two}"
            ),
            "{text}"
        );
    }
}

/// When an update has several runtime faults, the one DynamoDB finds first is reported.
#[test]
fn runtime_fault_precedence() {
    let env = Env::new()
        .value(":n", n("3"))
        .value(":ss", ss(&["b"]))
        .value(":ns", AttributeValue::Ns(vec![Number::parse("2").unwrap()]))
        .value(":m", m(vec![]));
    let subject = item(vec![
        ("n", n("5")),
        ("s", s("str")),
        ("a", l(vec![s("x")])),
        ("m", m(vec![("p", n("1"))])),
    ]);
    let missing = "The provided expression refers to an attribute that does not exist in the item";
    let wrong_type = "An operand in the update expression has an incorrect data type";
    let invalid = "The document path provided in the update expression is invalid for update";
    let cases = [
        ("SET a.x = :m, m.p = zz", missing),
        ("ADD n[0] :n SET s = zz", invalid),
        ("DELETE n :ns SET s = zz", wrong_type),
        ("ADD s :n SET t = zz", missing),
        // SET values are computed greatest path first.
        ("SET x = zz, y = s + :n", wrong_type),
        ("SET y = zz, x = s + :n", missing),
        ("SET x = zz + s", missing),
        ("SET x = s + zz", wrong_type),
        ("SET m.p[0] = :n, x = zz", invalid),
        ("ADD s :n SET a.x = :m", wrong_type),
    ];
    for (text, message) in cases {
        assert_eq!(
            apply(text, &env, &subject).expect_err(text),
            message,
            "{text}"
        );
    }
}

#[test]
fn size_limit_message_states_no_size() {
    let text = format!("SET {} = b", "a".repeat(4093));
    assert_eq!(
        parse(&text, &Env::new()).unwrap_err(),
        "Invalid UpdateExpression: Expression size has exceeded the maximum allowed size;"
    );
}

#[test]
fn a_repeated_text_is_lowered_with_each_request_s_placeholders() {
    let text = "SET a = :v REMOVE #c";
    let first = values().name("#c", "c");
    let second = Env::new().value(":v", n("2")).name("#c", "d");
    let expected = |env: &Env| parse(&format!("{text} "), env).unwrap();
    assert_eq!(parse(text, &first).unwrap(), expected(&first));
    assert_eq!(parse(text, &second).unwrap(), expected(&second));
    assert_ne!(parse(text, &first), parse(text, &second));
    // Errors are the same every time, before and after the text parsed cleanly.
    let missing = Env::new().name("#c", "c");
    let error = parse(text, &missing).unwrap_err();
    assert_eq!(parse(text, &missing).unwrap_err(), error);
    assert!(error.contains(":v"), "{error}");
    assert!(parse("SET a = ", &first).is_err());
    assert!(parse("SET a = ", &first).is_err());
    assert_eq!(parse(text, &first).unwrap(), expected(&first));
}
