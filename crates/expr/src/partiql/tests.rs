//! Statements and their errors, as DynamoDB Local 11.1.0 answered them (the messages below were
//! recorded from it).

use haven_model::{AttributeValue, Item, Number};

use super::keys::{KeyError, ReadPlan, item_key, read_plan};
use super::*;
use crate::{KeySchema, RangeKeyCondition};

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.into())
}

fn n(text: &str) -> AttributeValue {
    AttributeValue::N(Number::parse(text).unwrap())
}

fn parse(text: &str) -> Statement {
    parse_statement(text, &[]).unwrap_or_else(|e| panic!("{text}: {e:?}"))
}

fn error(text: &str) -> String {
    error_with(text, &[])
}

fn error_with(text: &str, parameters: &[AttributeValue]) -> String {
    match parse_statement(text, parameters) {
        Ok(statement) => panic!("{text} parsed: {statement:?}"),
        Err(e) => e.message().to_string(),
    }
}

fn select(text: &str) -> Select {
    match parse(text) {
        Statement::Select(select) => select,
        other => panic!("not a select: {other:?}"),
    }
}

const SCHEMA: KeySchema = KeySchema {
    hash: ("pk", "S"),
    range: Some(("sk", "N")),
};

fn plan(where_clause: &str) -> Result<ReadPlan, String> {
    let select = select(&format!("SELECT * FROM tbl WHERE {where_clause}"));
    read_plan(select.condition.as_ref(), &SCHEMA)
}

fn item(entries: &[(&str, AttributeValue)]) -> Item {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[test]
fn a_select_names_its_source_list_condition_and_order() {
    let Statement::Select(select) = parse_statement(
        "select x, \"m\".k[2].d FROM \"tbl\".\"gsi\" WHERE pk = 'a' AND n > ? ORDER BY sk DESC;",
        &[n("1")],
    )
    .unwrap() else {
        unreachable!()
    };
    assert_eq!(select.table, "tbl");
    assert_eq!(select.index.as_deref(), Some("gsi"));
    let names: Vec<String> = select
        .projection
        .as_ref()
        .unwrap()
        .iter()
        .map(output_name)
        .collect();
    assert_eq!(names, ["x", "d"]);
    assert_eq!(select.order_by, [("sk".to_string(), true)]);
    let with_parameter = parse_statement("SELECT * FROM tbl WHERE n > ?", &[n("5")]).unwrap();
    let Statement::Select(with_parameter) = with_parameter else {
        unreachable!()
    };
    let condition = with_parameter.condition.unwrap();
    assert!(condition.evaluate(Some(&item(&[("n", n("6"))]))).unwrap());
    assert!(!condition.evaluate(Some(&item(&[("n", n("5"))]))).unwrap());
}

#[test]
fn conditions_evaluate_with_the_expression_semantics() {
    let row = item(&[
        ("x", s("three")),
        ("n", n("10")),
        ("ss", AttributeValue::Ss(vec!["r".into()])),
        ("nu", AttributeValue::Null),
    ]);
    let holds = |clause: &str| -> bool {
        let select = select(&format!("SELECT * FROM tbl WHERE {clause}"));
        select.condition.unwrap().evaluate(Some(&row)).unwrap()
    };
    for clause in [
        "x = 'three'",
        "n BETWEEN 5 AND 10",
        "n NOT BETWEEN 11 AND 12",
        "n IN [1, 10]",
        "n NOT IN (1, 2)",
        "gone IS MISSING",
        "x IS NOT MISSING",
        "nu IS NULL",
        "gone IS NOT NULL",
        "x IS STRING AND n IS NUMERIC AND ss IS NOT LIST",
        "begins_with(x, 'th') AND contains(ss, 'r') AND Size(x) = 5",
        "attribute_type(n, 'N') OR x = 'no'",
        "NOT x = 'one'",
        "n = +10 AND n > -11 AND n = 1e1",
        "((x = 'three'))",
    ] {
        assert!(holds(clause), "{clause}");
    }
    assert!(!holds("x <> 'three'"));
}

#[test]
fn syntax_errors_quote_the_statement() {
    for text in [
        "SELEC * FROM tbl",
        "SELECT * FROM",
        "SELECT *, x FROM tbl",
        "SELECT * FROM tbl WHERE pk = 'a",
        "SELECT * FROM tbl WHERE pk == 'a'",
        "SELECT * FROM tbl WHERE x = :a",
        "SELECT * FROM tbl WHERE x = 1e",
        "SELECT * FROM tbl WHERE é = 1",
        "SELECT size FROM tbl",
        "SELECT * FROM tbl WHERE value = 1",
        "UPDATE tbl REMOVE z, y WHERE pk = 'a'",
        "UPDATE tbl SET m.new = 1 WHERE pk = 'a'",
        "UPDATE tbl SET y = 1 WHERE pk = 'a' RETURNING ALL OLD",
        "INSERT INTO tbl VALUES {'pk': 'a'}",
        "DELETE tbl WHERE pk = 'a'",
        "",
    ] {
        assert_eq!(
            error(text),
            format!("Statement wasn't well formed, can't be processed: {text}"),
            "{text}"
        );
    }
    assert!(matches!(
        parse_statement("SELEC", &[]),
        Err(StatementError::Malformed(_))
    ));
}

#[test]
fn unsupported_constructs_have_their_own_messages() {
    let cases = [
        ("SELECT x AS y FROM tbl", "Aliasing is not supported"),
        ("SELECT * FROM tbl t", "Aliasing is not supported"),
        (
            "SELECT DISTINCT x FROM tbl",
            "Unsupported token in expression: DISTINCT",
        ),
        (
            "SELECT VALUE x FROM tbl",
            "Select projection doesn't support value or pivot keywords",
        ),
        (
            "SELECT COUNT(*) FROM tbl",
            "Unexpected path component at 1:8:5",
        ),
        (
            "SELECT * FROM tbl, other",
            "Only select from a single table or index is supported.",
        ),
        (
            "SELECT * FROM \"tbl\".\"idx\".\"x\"",
            "A path may contain at most 2 components in the FROM clause",
        ),
        ("SELECT * FROM 'tbl'", "Unexpected from source"),
        (
            "SELECT * FROM tbl WHERE pk = 'a' LIMIT 1",
            "Unsupported clause: LIMIT at 1:40:1",
        ),
        (
            "SELECT * FROM tbl WHERE x[*] = 1",
            "Wildcard path component like a[*].b are not supported at 1:27:1",
        ),
        (
            "SELECT * FROM tbl WHERE x.* = 1",
            "Unpivot path component like a.*.b are not supported at 1:27:1",
        ),
        (
            "SELECT * FROM tbl WHERE x[-1] = 1",
            "List index is not within the allowable range; index: [-1] at 1:28:1",
        ),
        (
            "INSERT INTO \"tbl\".\"gsi\" VALUE {'pk':'z'}",
            "FROM clause may only contain a single table name in data manipulation statements",
        ),
        (
            "INSERT INTO tbl VALUE {'pk':'z'} RETURNING ALL OLD *",
            "RETURNING is not supported in INSERT",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(error(text), message, "{text}");
    }
}

#[test]
fn condition_errors_are_the_expression_language_s_without_prefix() {
    let cases = [
        (
            "x = 5 + 5",
            "Unsupported operator in Condition Expression. Operator: +",
        ),
        (
            "x LIKE 'a%'",
            "Unsupported operator in Condition Expression. Operator: like",
        ),
        (
            "num = -num",
            "Unsupported operator in Condition Expression. Operator: -",
        ),
        ("n = missing", "MISSING must be compared using IS operator"),
        (
            "x",
            "WHERE clause must contain an expression that resolves to a boolean",
        ),
        (
            "attribute_type(ss, 'XX')",
            "Invalid attribute type name found; type: XX, valid types: {N,BS,L,B,NULL,M,S,SS,NS,BOOL}",
        ),
        (
            "begins_with(x, 1)",
            "Incorrect operand type for operator or function; operator or function: begins_with, operand type: N",
        ),
        (
            "num = num",
            "The first operand must be distinct from the remaining operands for this operator or function; operator: =, first operand: [num]",
        ),
        (
            "list_append(l, l)",
            "The function is not allowed in a condition expression; function: list_append",
        ),
        ("foo(x)", "Unrecognized function: foo"),
        (
            "1 IS MISSING",
            "Operator or function requires a document path; operator or function: attribute_not_exists",
        ),
        (
            "size(x) IS MISSING",
            "The left hand side argument to IS must be a Variable Reference, Literal, or Path",
        ),
        (
            "ss IS BAG",
            "Unsupported data type for IS operator: BAG. Supported data types are [MISSING, NULL, BOOLEAN, BLOB, STRING, NUMERIC, STRUCT, TUPLE, LIST] at 1:28:2",
        ),
        (
            "x IS INT",
            "Unsupported data type for IS operator: INTEGER. Supported data types are [MISSING, NULL, BOOLEAN, BLOB, STRING, NUMERIC, STRUCT, TUPLE, LIST] at 1:27:2",
        ),
        (
            "n IN ?",
            "IN operator must have a left hand argument of type Variable Reference and right hand argument of type Seq with at least one member",
        ),
        ("\"\" = 1", "Path component cannot be an empty string"),
    ];
    for (clause, message) in cases {
        let text = format!("SELECT * FROM tbl WHERE {clause}");
        assert_eq!(error_with(&text, &[s("p")]), message, "{clause}");
    }
    assert_eq!(
        error(
            "SELECT * FROM tbl WHERE n = 1 AND 1 = 1 AND n IN [1,2,3] AND x = 12345678901234567890123456789012345678901"
        ),
        "DynamoDB only supports precision up to 38 digits"
    );
}

#[test]
fn literals_become_attribute_values() {
    let Statement::Insert(insert) = parse_statement(
        "INSERT INTO tbl VALUE {'pk':'z','sk':10,'s':<<'a','b'>>,'ns':<<1,2>>,'b':true,'nu':null,'l':[1,'x',[]],'m':{},'bin':?,'neg':-1.5}",
        &[AttributeValue::B(vec![0, 1])],
    )
    .unwrap() else {
        unreachable!()
    };
    assert_eq!(
        insert.item,
        item(&[
            ("pk", s("z")),
            ("sk", n("10")),
            ("s", AttributeValue::Ss(vec!["a".into(), "b".into()])),
            (
                "ns",
                AttributeValue::Ns(vec![
                    Number::parse("1").unwrap(),
                    Number::parse("2").unwrap()
                ])
            ),
            ("b", AttributeValue::Bool(true)),
            ("nu", AttributeValue::Null),
            (
                "l",
                AttributeValue::L(vec![n("1"), s("x"), AttributeValue::L(vec![])])
            ),
            ("m", AttributeValue::M(Item::new())),
            ("bin", AttributeValue::B(vec![0, 1])),
            ("neg", n("-1.5")),
        ])
    );
}

#[test]
fn value_errors_say_where_the_value_sits() {
    let cases = [
        (
            "INSERT INTO tbl VALUE {'pk':'z','sk':1,'sk':2}",
            "Duplicate keys in tuple. Key: sk under root at 1:40:4",
        ),
        (
            "INSERT INTO tbl VALUE {'pk':'z','sk':28, 'm':{'a':1,'a':2}}",
            "Duplicate keys in tuple. Key: a under root at 1:46:1",
        ),
        (
            "INSERT INTO tbl VALUE {pk:'z',sk:14}",
            "Tuple keys must be of type String. Actual type: VariableReference under root at 1:24:2",
        ),
        (
            "INSERT INTO tbl VALUE {'pk':'z','sk':29, 'm':{1:2}}",
            "Tuple keys must be of type String. Actual type: INT under root at 1:47:1",
        ),
        (
            "INSERT INTO tbl VALUE {'pk':'z','sk':21,'a':1+1}",
            "Unsupported data type: + under key root at 1:46:1",
        ),
        (
            "INSERT INTO tbl VALUE {'pk':'z','sk':22,'a':x}",
            "Unsupported data type: x under key root at 1:45:1",
        ),
        (
            "INSERT INTO tbl VALUE {'pk':'z','sk':23,'a':{'b':x}}",
            "Unsupported data type: VariableReference under key root.b at 1:50:1",
        ),
        (
            "INSERT INTO tbl VALUE {'pk':'z','sk':30, 'x':missing}",
            "Unsupported data type: MISSING under key root at 1:46:7",
        ),
        (
            "INSERT INTO tbl VALUE {'pk':'z','sk':25, 'f': -0.0}",
            "Negative zero decimal is not supported under key root at 1:48:3",
        ),
        (
            "INSERT INTO tbl VALUE [1]",
            "Unsupported format in item expression. Please use struct format {...} to express item values for insert statement. at 1:23:1",
        ),
        (
            "SELECT * FROM tbl WHERE x = <<'a','a'>>",
            "Input collection contains duplicates",
        ),
        (
            "SELECT * FROM tbl WHERE x = <<1,'a'>>",
            "Unsupported data type in Bag. DynamoDB only supports either numbers or strings in bags",
        ),
        (
            "SELECT * FROM tbl WHERE x = <<>>",
            "Empty bags are not supported at 1:29:2",
        ),
        (
            "SELECT * FROM tbl WHERE x = <<[1]>>",
            "Unsupported data type in Bag. DynamoDB only supports either numbers or strings in bags at 1:31:1",
        ),
        (
            "UPDATE tbl SET y = {'a': x} WHERE pk = 'a'",
            "Unsupported data type: VariableReference under key root.a at 1:26:1",
        ),
        (
            "SELECT * FROM tbl WHERE x = 1e200",
            "Number overflow. Attempting to store a number with magnitude larger than supported range",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(error(text), message, "{text}");
    }
    let deep = |levels: usize| {
        format!(
            "INSERT INTO tbl VALUE {{'pk':'a','x':{}{}}}",
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    assert!(parse_statement(&deep(32), &[]).is_ok());
    assert_eq!(
        error(&deep(33)),
        "Nesting Levels have exceeded supported limits"
    );
}

#[test]
fn parameters_are_counted() {
    assert_eq!(
        error_with("SELECT * FROM tbl WHERE pk = ? AND sk = ?", &[s("a")]),
        "Number of parameters in request and statement don't match."
    );
    // Extra parameters are ignored, as DynamoDB Local does.
    assert!(parse_statement("SELECT * FROM tbl", &[s("a")]).is_ok());
}

#[test]
fn updates_lower_into_update_actions() {
    let Statement::Update(update) = parse(
        "UPDATE tbl SET y = y + 1, l = list_append(l, [2]) SET q = if_not_exists(q, 3) REMOVE z SET ss = set_add(ss, <<'q'>>) SET ns = set_delete(ns, <<1>>) WHERE pk = 'a' AND sk = 1 RETURNING MODIFIED NEW *",
    ) else {
        unreachable!()
    };
    assert_eq!(
        update.update.to_string(),
        "SET q = if_not_exists(q, :p2), l = list_append(l, :p1), y = y + :p0 REMOVE z ADD ss :p3 DELETE ns :p4"
    );
    assert_eq!(update.returning, Some(Returning::ModifiedNew));
    let mut row = item(&[
        ("y", n("1")),
        ("l", AttributeValue::L(vec![])),
        ("z", n("0")),
    ]);
    update.update.apply(&mut row, &["pk", "sk"]).unwrap();
    assert_eq!(row["y"], n("2"));
    assert_eq!(row["q"], n("3"));
    assert!(!row.contains_key("z"));
}

#[test]
fn update_errors() {
    let cases = [
        (
            "UPDATE tbl SET y = 1, y = 2 WHERE pk = 'a'",
            "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [y], path two: [y]",
        ),
        (
            "UPDATE tbl SET m = 1, m.a = 2 WHERE pk = 'a'",
            "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [m, a], path two: [m]",
        ),
        (
            "UPDATE tbl SET y = size(x) WHERE pk = 'a'",
            "The function is not allowed in an update expression; function: size",
        ),
        (
            "UPDATE tbl SET ss2 = set_add(ss, <<'z'>>) WHERE pk = 'a'",
            "The first argument to SET_ADD must equal the assignment value",
        ),
        (
            "UPDATE tbl SET ss2 = set_add(ss2, 'z') WHERE pk = 'a'",
            "The second argument to SET_ADD must be a value with type SET at 1:30:3",
        ),
        (
            "UPDATE tbl SET n = list_append(n, 1) WHERE pk = 'a'",
            "Incorrect operand type for operator or function; operator or function: list_append, operand type: N",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(error(text), message, "{text}");
    }
}

#[test]
fn select_lists_name_results_by_their_last_name() {
    let row = item(&[
        (
            "a",
            AttributeValue::M(item(&[("b", AttributeValue::M(item(&[("c", s("D"))])))])),
        ),
        (
            "l",
            AttributeValue::L(vec![
                AttributeValue::L(vec![n("1"), n("2")]),
                AttributeValue::L(vec![n("3"), n("4")]),
            ]),
        ),
    ]);
    let selected = |list: &str| {
        let select = select(&format!("SELECT {list} FROM tbl"));
        select_item(row.clone(), select.projection.as_deref())
    };
    assert_eq!(selected("a.b.c"), item(&[("c", s("D"))]));
    assert_eq!(selected("l[1][0], a.x"), item(&[("l[1][0]", n("3"))]));
    assert_eq!(
        selected("l[0]"),
        item(&[("l[0]", AttributeValue::L(vec![n("1"), n("2")]))])
    );
    assert_eq!(selected("*"), row);
    assert_eq!(
        error("SELECT a.x, b.x FROM tbl"),
        "Duplicate identifiers in select clause: x"
    );
    assert_eq!(
        error("SELECT a.b.c.d, a.b FROM tbl"),
        "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a, b], path two: [a, b, c, d]"
    );
}

#[test]
fn reads_plan_partitions_and_sort_key_ranges() {
    let partitions = |values: &[&str]| Some(values.iter().map(|v| s(v)).collect::<Vec<_>>());
    assert_eq!(
        plan("pk = 'a' AND sk > 1").unwrap(),
        ReadPlan {
            partitions: partitions(&["a"]),
            range: Some(RangeKeyCondition::Gt(n("1"))),
        }
    );
    assert_eq!(
        plan("'b' = pk AND 3 >= sk").unwrap(),
        ReadPlan {
            partitions: partitions(&["b"]),
            range: Some(RangeKeyCondition::Le(n("3"))),
        }
    );
    assert_eq!(
        plan("pk IN ['z', 'a', 'z'] AND begins_with(x, 'q')")
            .unwrap()
            .partitions,
        partitions(&["a", "z"])
    );
    assert_eq!(
        plan("pk = 'b' OR pk = 'a'").unwrap().partitions,
        partitions(&["a", "b"])
    );
    for scan in ["pk > 'a'", "pk = 'a' OR x = 1", "NOT pk = 'a'", "x = 1"] {
        assert_eq!(plan(scan).unwrap().partitions, None, "{scan}");
    }
    let key_type = "Key attribute's data type should match its data type in table's schema: Key";
    assert_eq!(plan("pk = 1").unwrap_err(), format!("{key_type} pk"));
    assert_eq!(
        plan("pk = 'a' AND sk > '1'").unwrap_err(),
        format!("{key_type} sk")
    );
    for mismatch in [
        "pk > 1",
        "pk = 'a' OR pk = 1",
        "pk = 'a' AND sk <> '1'",
        "x = 'one' AND sk = '1'",
    ] {
        assert_eq!(
            plan(mismatch).unwrap_err(),
            "One or more parameter values were invalid: Condition parameter type does not match schema type",
            "{mismatch}"
        );
    }
}

#[test]
fn writes_name_one_item() {
    let key_of = |clause: &str| {
        let select = select(&format!("SELECT * FROM tbl WHERE {clause}"));
        item_key(select.condition.as_ref(), &SCHEMA)
    };
    let (key, rest) = key_of("sk = 1 AND x = 'one' AND pk = 'a' AND pk = 'a'").unwrap();
    assert_eq!(key, item(&[("pk", s("a")), ("sk", n("1"))]));
    assert_eq!(rest.unwrap().to_string(), "x = :p1");
    assert_eq!(key_of("pk = 'a' AND sk = 1").unwrap().1, None);
    for missing in [
        "pk = 'a'",
        "pk = 'a' AND sk > 1",
        "pk = 'a' AND sk = 1 OR x = 1",
        "pk IN ['a'] AND sk = 1",
    ] {
        assert_eq!(key_of(missing).unwrap_err(), KeyError::Missing, "{missing}");
    }
    assert_eq!(
        key_of("pk = 'a' AND sk = 1 AND sk = 2")
            .unwrap_err()
            .message(),
        "Multiple conditions on same key sk. Only single item Update/Insert/Delete are supported"
    );
    assert_eq!(
        key_of("pk = 'a' AND sk = '1'").unwrap_err().message(),
        "Key attribute's data type should match its data type in table's schema: Key sk"
    );
    assert_eq!(
        item_key(None, &SCHEMA).unwrap_err().message(),
        "Where clause does not contain a mandatory equality on all key attributes"
    );
}

#[test]
fn hostile_statements_are_refused_cheaply() {
    let deep = format!(
        "SELECT * FROM tbl WHERE {}x = 1{}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    assert_eq!(
        error(&deep),
        "Nesting Levels have exceeded supported limits"
    );
    let nots = format!("SELECT * FROM tbl WHERE {}x = 1", "NOT ".repeat(5000));
    assert_eq!(
        error(&nots),
        "Nesting Levels have exceeded supported limits"
    );
    let ands = format!(
        "SELECT * FROM tbl WHERE {}",
        vec!["x = 1"; 400].join(" AND ")
    );
    assert_eq!(
        error(&ands),
        "The expression contains too many operators; operator count: 301"
    );
    let lists = format!(
        "SELECT * FROM tbl WHERE x = {}{}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert_eq!(
        error(&lists),
        "Nesting Levels have exceeded supported limits"
    );
}
