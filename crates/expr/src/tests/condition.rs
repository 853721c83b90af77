//! Condition parsing messages and evaluation semantics.

use super::*;
use crate::{Condition, ConditionKind, parse_condition};

fn parse(text: &str, env: &Env) -> Result<Condition, String> {
    let mut p = env.placeholders();
    parse_condition(text, &mut p, ConditionKind::Condition).map_err(|e| e.0)
}

fn error(text: &str, env: &Env) -> String {
    parse(text, env).expect_err(text)
}

fn syntax(text: &str, token: &str, near: &str) {
    assert_eq!(
        error(text, &Env::new()),
        format!("Invalid ConditionExpression: Syntax error; token: \"{token}\", near: \"{near}\""),
        "{text}"
    );
}

#[test]
fn syntax_errors_name_the_token_and_its_neighbours() {
    syntax("!!!", "!", "!!");
    syntax("a b", "b", "a b");
    syntax("a,", ",", "a,");
    syntax("a = ", "<EOF>", "= ");
    syntax("a == b", "=", "== b");
    syntax("(a = b", "<EOF>", "b");
    syntax("a = b)", ")", "b)");
    syntax("a = b AND", "<EOF>", "AND");
    syntax("attribute_exists()", ")", "()");
    syntax("a.b.c = x y z", "y", "x y z");
    syntax("a[x] = b", "x", "[x]");
    syntax("a.1 = b", "1", ".1 =");
    syntax("  ", "<EOF>", "  ");
    syntax("a IN ()", ")", "()");
    syntax("a = b AND NOT c", "<EOF>", "c");
    syntax("a BETWEEN b", "<EOF>", "b");
    syntax("a = \"x\"", "\"", "= \"x");
    syntax("a = 1", "1", "= 1");
    syntax("a[-1] = b", "-", "[-1");
    syntax("a[1.5] = b", ".", "1.5");
    syntax("#", "#", "#");
    syntax("a = :", ":", "= :");
    syntax("_a = c", "_", "_a");
    syntax("1a = c", "1", "1a");
    syntax("aé = c", "é", "aé =");
    syntax("remove = a", "remove", "remove =");
    syntax("not = a", "=", "not = a");
    syntax("a = b AND c = d e", "e", "d e");
}

#[test]
fn empty_and_oversized_expressions() {
    assert_eq!(
        error("", &Env::new()),
        "Invalid ConditionExpression: The expression can not be empty;"
    );
    let long = format!("{} = b", "a".repeat(4093));
    assert_eq!(
        error(&long, &Env::new()),
        "Invalid ConditionExpression: Expression size has exceeded the maximum allowed size; expression size: 4097"
    );
    assert!(parse(&format!("{} = b", "a".repeat(4092)), &Env::new()).is_ok());
    // The size counts UTF-16 code units, as Java does.
    assert_eq!(
        error(&"😀".repeat(2049), &Env::new()),
        "Invalid ConditionExpression: Expression size has exceeded the maximum allowed size; expression size: 4098"
    );
    syntax(&"é".repeat(2100), "é", "éé");
}

#[test]
fn error_prefix_follows_the_parameter() {
    let env = Env::new();
    let mut p = env.placeholders();
    let err = parse_condition("", &mut p, ConditionKind::Filter).unwrap_err();
    assert_eq!(
        err.0,
        "Invalid FilterExpression: The expression can not be empty;"
    );
    let err = parse_condition("", &mut p, ConditionKind::KeyCondition).unwrap_err();
    assert_eq!(
        err.0,
        "Invalid KeyConditionExpression: The expression can not be empty;"
    );
}

#[test]
fn semantic_errors() {
    let env = Env::new()
        .value(":s", s("x"))
        .value(":n", n("1"))
        .value(":t", s("X"))
        .value(":b", AttributeValue::Bool(true))
        .value(":ss", ss(&["a"]));
    let cases = [
        (
            "a = :v",
            "An expression attribute value used in expression is not defined; attribute value: :v",
        ),
        (
            "a = #n",
            "An expression attribute name used in the document path is not defined; attribute name: #n",
        ),
        (
            "a.#x = b",
            "An expression attribute name used in the document path is not defined; attribute name: #x",
        ),
        (
            "size(a)",
            "The function is not allowed to be used this way in an expression; function: size",
        ),
        (
            "a = b OR size(a)",
            "The function is not allowed to be used this way in an expression; function: size",
        ),
        (
            "attribute_exists(a) = b",
            "The function is not allowed to be used this way in an expression; function: attribute_exists",
        ),
        ("((a = b))", "The expression has redundant parentheses;"),
        ("((a)) = b", "The expression has redundant parentheses;"),
        ("foo(a)", "Invalid function name; function: foo"),
        (
            "attribute_exists(foo(a))",
            "Invalid function name; function: foo",
        ),
        (
            "contains(a)",
            "Incorrect number of operands for operator or function; operator or function: contains, number of operands: 1",
        ),
        (
            "attribute_exists(a, b)",
            "Incorrect number of operands for operator or function; operator or function: attribute_exists, number of operands: 2",
        ),
        (
            "size(a, b) = :n",
            "Incorrect number of operands for operator or function; operator or function: size, number of operands: 2",
        ),
        (
            "name = b",
            "Attribute name is a reserved keyword; reserved keyword: name",
        ),
        (
            "a.name = b",
            "Attribute name is a reserved keyword; reserved keyword: name",
        ),
        (
            "size(size(a)) = b",
            "Incorrect operand type for operator or function; operator or function: size, operand type: N",
        ),
        (
            "size(:n) = b",
            "Incorrect operand type for operator or function; operator or function: size, operand type: N",
        ),
        (
            "attribute_exists(size(a))",
            "Operator or function requires a document path; operator or function: attribute_exists",
        ),
        (
            "attribute_exists(:s)",
            "Operator or function requires a document path; operator or function: attribute_exists",
        ),
        (
            "begins_with(a, :n)",
            "Incorrect operand type for operator or function; operator or function: begins_with, operand type: N",
        ),
        (
            "begins_with(a, size(b))",
            "Incorrect operand type for operator or function; operator or function: begins_with, operand type: N",
        ),
        (
            "attribute_type(a, :t)",
            "Invalid attribute type name found; type: X, valid types: {N,BS,L,B,NULL,M,S,SS,NS,BOOL}",
        ),
        (
            "attribute_type(a, :n)",
            "Incorrect operand type for operator or function; operator or function: attribute_type, operand type: N",
        ),
        (
            "attribute_type(a, b)",
            "Incorrect operand type for operator or function; operator or function: attribute_type, operand type: {NS,SS,L,BS,N,M,B,BOOL,NULL,S}",
        ),
        (
            "a = a",
            "The first operand must be distinct from the remaining operands for this operator or function; operator: =, first operand: [a]",
        ),
        (
            "a BETWEEN b AND a",
            "The first operand must be distinct from the remaining operands for this operator or function; operator: BETWEEN, first operand: [a]",
        ),
        (
            "a IN (b, a)",
            "The first operand must be distinct from the remaining operands for this operator or function; operator: IN, first operand: [a]",
        ),
        (
            "begins_with(a, a)",
            "The first operand must be distinct from the remaining operands for this operator or function; operator: begins_with, first operand: [a]",
        ),
        (
            "a < :b",
            "Incorrect operand type for operator or function; operator or function: <, operand type: BOOL",
        ),
        (
            "a <= :ss",
            "Incorrect operand type for operator or function; operator or function: <=, operand type: SS",
        ),
        (
            "a BETWEEN :ss AND :n",
            "Incorrect operand type for operator or function; operator or function: BETWEEN, operand type: SS",
        ),
        (
            "a BETWEEN :s AND :n",
            "The BETWEEN operator requires same data type for lower and upper bounds; lower bound operand: AttributeValue: {S:x}, upper bound operand: AttributeValue: {N:1}",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(
            parse(text, &env).expect_err(text),
            format!("Invalid ConditionExpression: {message}"),
            "{text}"
        );
    }
    let env = Env::new().value(":lo", n("5")).value(":hi", n("1"));
    assert_eq!(
        error("a BETWEEN :lo AND :hi", &env),
        "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {N:5}, upper bound operand: AttributeValue: {N:1}"
    );
}

#[test]
fn too_many_operators_and_in_operands() {
    let env = Env::new();
    let many = format!("{}a = b", "a = b AND ".repeat(150));
    assert_eq!(
        error(&many, &env),
        "Invalid ConditionExpression: The expression contains too many operators; operator count: 301"
    );
    assert!(parse(&format!("{}a = b", "a = b AND ".repeat(149)), &env).is_ok());
    let nots = format!("{}a = b", "NOT ".repeat(1000));
    assert_eq!(
        error(&nots, &env),
        "Invalid ConditionExpression: The expression contains too many operators; operator count: 301"
    );
    let list = vec!["b"; 101].join(",");
    assert_eq!(
        error(&format!("a IN ({list})"), &env),
        "Invalid ConditionExpression: The IN operator is provided with too many operands; number of operands: 101"
    );
    assert!(parse(&format!("a IN ({})", vec!["b"; 100].join(",")), &env).is_ok());
    // A syntax error outranks the operator count.
    let broken = format!("{}a = b c", "a = b AND ".repeat(200));
    assert_eq!(
        error(&broken, &env),
        "Invalid ConditionExpression: Syntax error; token: \"c\", near: \"b c\""
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let env = Env::new();
    let deep = format!("{}a = b{}", "(".repeat(2000), ")".repeat(2000));
    assert_eq!(
        error(&deep, &env),
        "Invalid ConditionExpression: The expression has redundant parentheses;"
    );
    let deep = format!("{}a){}", "size(".repeat(800), " = b");
    assert!(error(&deep, &env).contains("too many operators"));
    let nested = format!("{}a = b{}", "(a = b AND ".repeat(149), ")".repeat(149));
    assert!(parse(&nested, &env).is_ok());
}

#[test]
fn precedence_is_not_and_or() {
    let c = parse("a = b OR c = d AND NOT e = f", &Env::new()).unwrap();
    assert_eq!(c.to_string(), "(a = b) OR ((c = d) AND (NOT (e = f)))");
    let c = parse("(a) = b", &Env::new()).unwrap();
    assert_eq!(c.to_string(), "a = b");
    let c = parse("a between b and c", &Env::new()).unwrap();
    assert_eq!(c.to_string(), "a BETWEEN b AND c");
}

#[test]
fn keywords_are_case_insensitive_and_size_is_not_reserved() {
    assert!(parse("a = b and not c = d or size = e", &Env::new()).is_ok());
    assert!(parse("a in (b, c)", &Env::new()).is_ok());
}

fn holds(text: &str, env: &Env, subject: Option<&Item>) -> bool {
    parse(text, env).unwrap().evaluate(subject).unwrap()
}

#[test]
fn evaluation_follows_dynamodb() {
    let it = item(vec![
        ("a", l(vec![s("x"), s("y"), s("z")])),
        ("m", m(vec![("p", n("1")), ("q", l(vec![n("1"), n("2")]))])),
        ("n", n("5")),
        ("s", s("héllo")),
        ("ss", ss(&["a", "b"])),
        ("b", AttributeValue::B(vec![1, 2, 3])),
    ]);
    let env = Env::new()
        .value(":x", s("x"))
        .value(":five", n("5"))
        .value(":six", n("6"))
        .value(":one", n("1"))
        .value(":two", n("2"))
        .value(":three", n("3"))
        .value(":y", s("y"))
        .value(":he", s("hé"))
        .value(":ll", s("ll"))
        .value(":big", s("héllo!"))
        .value(":b", AttributeValue::B(vec![1]))
        .value(":ssb", ss(&["b"]))
        .value(":ba", ss(&["b", "a"]))
        .value(":N", s("N"));
    let it = Some(&it);
    let truths = [
        ("nope <> :x", true),
        ("n <> :x", true),
        ("NOT nope = :x", true),
        ("NOT nope < :x", true),
        ("size(s) = :five", true),
        ("size(s) = :six", false),
        ("size(n) = :five", false),
        ("size(n) <> :five", true),
        ("size(b) = :three", true),
        ("size(m) = :two", true),
        ("contains(a, :y)", true),
        ("contains(ss, :ssb)", false),
        ("contains(ss, :y)", false),
        ("contains(s, :ll)", true),
        ("contains(:big, s)", true),
        ("contains(b, :b)", true),
        ("begins_with(s, :he)", true),
        ("begins_with(b, :b)", true),
        ("n BETWEEN :one AND :five", true),
        ("n BETWEEN :one AND :two", false),
        ("n IN (:one, :five)", true),
        ("attribute_type(n, :N)", true),
        ("attribute_type(s, :N)", false),
        ("ss = :ba", true),
        ("a[1] = :y", true),
        ("a[5] = :y", false),
        ("m.q[1] = :two", true),
        ("m.nope.x = :two", false),
        ("n > :one AND n >= :five AND n < :six AND n <= :five", true),
        ("s > :x", false),
        ("attribute_exists(m.q[1])", true),
        ("attribute_not_exists(m.q[2])", true),
    ];
    for (text, expected) in truths {
        assert_eq!(holds(text, &env, it), expected, "{text}");
    }
    assert!(!holds("attribute_exists(n)", &env, None));
    assert!(holds("attribute_not_exists(n)", &env, None));
}

#[test]
fn error_ranking_matches_dynamodb() {
    let env = Env::new()
        .value(":n", n("1"))
        .value(":b", AttributeValue::Bool(true));
    let cases = [
        // Parentheses first; then functions and reserved words in text order; then operand errors
        // (undefined placeholders, counts, distinct operands, types) in text order.
        (
            "foo(c) AND ((a = b))",
            "The expression has redundant parentheses;",
        ),
        (
            "name = b AND foo(a)",
            "Attribute name is a reserved keyword; reserved keyword: name",
        ),
        (
            "foo(a) AND name = b",
            "Invalid function name; function: foo",
        ),
        (
            "size(b) AND foo(a)",
            "The function is not allowed to be used this way in an expression; function: size",
        ),
        (
            "a = :zz AND size(a)",
            "The function is not allowed to be used this way in an expression; function: size",
        ),
        (
            "contains(a) AND a = :zz",
            "Incorrect number of operands for operator or function; operator or function: contains, number of operands: 1",
        ),
        (
            "a = :zz AND contains(a)",
            "An expression attribute value used in expression is not defined; attribute value: :zz",
        ),
        (
            "begins_with(a, :n) AND a = a",
            "Incorrect operand type for operator or function; operator or function: begins_with, operand type: N",
        ),
        (
            "a < :b AND a = :zz",
            "Incorrect operand type for operator or function; operator or function: <, operand type: BOOL",
        ),
        (
            "a = #zz AND b = :zz",
            "An expression attribute name used in the document path is not defined; attribute name: #zz",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(
            error(text, &env),
            format!("Invalid ConditionExpression: {message}"),
            "{text}"
        );
    }
}

#[test]
fn list_indexes_have_no_leading_zeros() {
    syntax("a[01] = b", "1", "01]");
    syntax("a[0010] = b", "0", "0010");
    assert!(parse("a[0] = b AND a[10] = c", &Env::new()).is_ok());
}

#[test]
fn list_index_range_and_path_depth() {
    let env = Env::new();
    let deep = |root: &str| {
        format!(
            "{root}{}",
            (0..32).map(|i| format!(".b{i}")).collect::<String>()
        )
    };
    let cases = [
        (
            "a[2147483648] = b".to_string(),
            "List index is not within the allowable range; index: [2147483648]",
        ),
        (
            "a[99999999999999999999] = b".to_string(),
            "List index is not within the allowable range; index: [99999999999999999999]",
        ),
        (
            "a[2147483648] = b AND name = c".to_string(),
            "List index is not within the allowable range; index: [2147483648]",
        ),
        (
            format!("{} = b", deep("a")),
            "The document path has too many nesting levels; nesting levels: 33",
        ),
        (
            format!("{} = b AND contains(a)", deep("a")),
            "The document path has too many nesting levels; nesting levels: 33",
        ),
        (
            format!("{} = b AND name = c", deep("a")),
            "Attribute name is a reserved keyword; reserved keyword: name",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(
            error(&text, &env),
            format!("Invalid ConditionExpression: {message}"),
            "{text}"
        );
    }
    assert!(parse("a[2147483647] = b", &env).is_ok());
    assert!(
        parse(
            &format!("{} = b", &deep("a")[..deep("a").rfind('.').unwrap()]),
            &env
        )
        .is_ok()
    );
}

/// The deepest nesting a legal expression can have (every level needs an operator) parses and
/// evaluates on a 2 MB stack, the default for spawned threads and tokio workers, even unoptimised.
#[test]
fn deepest_legal_nesting_fits_a_default_thread_stack() {
    let text = format!("{}a = b{}", "NOT (".repeat(299), ")".repeat(299));
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || parse(&text, &Env::new()).map(|c| c.evaluate(None)))
        .unwrap();
    assert_eq!(handle.join().unwrap(), Ok(Ok(true)));
}

/// FilterExpression messages the real service gave, as recorded by dynalite's test suite.
#[test]
fn filter_messages_recorded_from_the_real_service() {
    let filter = |text: &str, env: &Env| {
        let mut p = env.placeholders();
        parse_condition(text, &mut p, ConditionKind::Filter).map_err(|e| e.0)
    };
    let none = Env::new();
    for text in [
        "things are not gonna be ok",
        "attribute_exists(Pictures-RearView)",
        "attribute_exists(Pictures..RearView)",
        "a.:a < b.:b",
        "a in b, c",
        "a in (b,c,)",
        "(a)between(b.(c.d))and(c)",
        "b[:a] > a",
        "ü > a",
        "(a)between(b.c[4.5].#d)and(:a)",
        "size(a).b > a",
        "(size(a))[0] > a",
    ] {
        let err = filter(text, &none).unwrap_err();
        assert!(
            err.starts_with("Invalid FilterExpression: Syntax error; "),
            "{text}: {err}"
        );
    }
    let cases = [
        (
            "a=a and a > ((views))",
            "The expression has redundant parentheses;",
        ),
        (
            "(a)between(((b.c)).d)and(c)",
            "The expression has redundant parentheses;",
        ),
        (
            "a=a OR ((a=a OR (a=a OR a=a)))",
            "The expression has redundant parentheses;",
        ),
        (
            "attRIbute_exIsts((views), #a)",
            "Invalid function name; function: attRIbute_exIsts",
        ),
        (
            "size(contains(a, b)) > a",
            "The function is not allowed to be used this way in an expression; function: contains",
        ),
        (
            "a in (b, attribute_exists(things))",
            "The function is not allowed to be used this way in an expression; function: attribute_exists",
        ),
        (
            "attribute_exists(views, #a)",
            "Attribute name is a reserved keyword; reserved keyword: views",
        ),
        (
            "(#P between :lo and :hi) and (#PC in (:cat1, :cat2))",
            "An expression attribute name used in the document path is not defined; attribute name: #P",
        ),
        (
            "(a)between(b.c[45].#d)and(:a)",
            "An expression attribute name used in the document path is not defined; attribute name: #d",
        ),
        (
            "begins_with(:hello, #a, #b)",
            "An expression attribute value used in expression is not defined; attribute value: :hello",
        ),
        (
            "begins_with(things, size(a), b)",
            "Incorrect number of operands for operator or function; operator or function: begins_with, number of operands: 3",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(
            filter(text, &none).unwrap_err(),
            format!("Invalid FilterExpression: {message}"),
            "{text}"
        );
    }
    let names = Env::new().name("#a", "a");
    assert_eq!(
        filter("contains(ab.bc[1].a, ab.bc[1].#a)", &names).unwrap_err(),
        "Invalid FilterExpression: The first operand must be distinct from the remaining operands for this operator or function; operator: contains, first operand: [ab, bc, [1], a]"
    );
    let number = Env::new().value(":a", n("1"));
    assert_eq!(
        filter("attribute_not_exists(size(:a))", &number).unwrap_err(),
        "Invalid FilterExpression: Incorrect operand type for operator or function; operator or function: size, operand type: N"
    );
}
