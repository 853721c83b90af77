//! Property tests: printing a parsed expression and parsing it again gives the same tree.

use proptest::prelude::*;

use super::*;
use crate::ast::{Comparator, Condition, Operand};
use crate::{ConditionKind, Path, PathElement, parse_condition};

fn path() -> impl Strategy<Value = Path> {
    let name = "[a-z][a-z0-9_]{0,3}"
        .prop_filter("not reserved", |n| !crate::reserved::is_reserved(n))
        .prop_filter("not a keyword", |n| {
            ![
                "and", "or", "not", "in", "between", "set", "remove", "add", "delete",
            ]
            .contains(&n.as_str())
        });
    let element = prop_oneof![
        name.clone().prop_map(PathElement::Name),
        (0usize..5).prop_map(PathElement::Index)
    ];
    (name, prop::collection::vec(element, 0..3)).prop_map(|(root, rest)| {
        let mut elements = vec![PathElement::Name(root)];
        elements.extend(rest);
        Path(elements)
    })
}

fn operand() -> impl Strategy<Value = Operand> {
    prop_oneof![
        path().prop_map(Operand::Path),
        (0u8..3).prop_map(|i| Operand::Value {
            placeholder: format!(":v{i}"),
            value: n(&i.to_string()),
        }),
        path().prop_map(|p| Operand::Size(Box::new(Operand::Path(p)))),
    ]
}

fn comparator() -> impl Strategy<Value = Comparator> {
    prop_oneof![
        Just(Comparator::Eq),
        Just(Comparator::Ne),
        Just(Comparator::Lt),
        Just(Comparator::Le),
        Just(Comparator::Gt),
        Just(Comparator::Ge),
    ]
}

pub(super) fn condition() -> impl Strategy<Value = Condition> {
    let leaf = prop_oneof![
        (operand(), comparator(), operand()).prop_map(|(a, op, b)| Condition::Compare(a, op, b)),
        path().prop_map(Condition::AttributeExists),
        path().prop_map(Condition::AttributeNotExists),
        (operand(), operand()).prop_map(|(a, b)| Condition::Contains(a, b)),
        (operand(), operand(), operand()).prop_map(|(a, b, c)| Condition::Between(a, b, c)),
        (operand(), prop::collection::vec(operand(), 1..4)).prop_map(|(a, l)| Condition::In(a, l)),
    ];
    leaf.prop_recursive(4, 16, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| Condition::Not(Box::new(c))),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Condition::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Condition::Or(Box::new(a), Box::new(b))),
        ]
    })
}

proptest! {
    #[test]
    fn condition_print_parse_round_trip(c in condition()) {
        let text = c.to_string();
        let env = Env::new().value(":v0", n("0")).value(":v1", n("1")).value(":v2", n("2"));
        let mut p = env.placeholders();
        // Generated trees may break semantic rules (`a = a`, operand types); those must fail as
        // validation errors, never as syntax errors, and valid ones must come back unchanged.
        match parse_condition(&text, &mut p, ConditionKind::Condition) {
            Ok(parsed) => prop_assert_eq!(parsed, c),
            Err(e) => prop_assert!(!e.0.contains("Syntax error"), "{}: {}", text, e.0),
        }
    }

    #[test]
    fn tokenizer_and_parser_never_panic(text in "[ -~]{0,60}") {
        let env = Env::new().value(":v", n("1")).name("#n", "n");
        let mut p = env.placeholders();
        let _ = parse_condition(&text, &mut p, ConditionKind::Filter);
        let _ = crate::parse_update(&text, &mut p);
        let _ = crate::parse_projection(&text, &mut p);
    }
}

fn update_operand() -> impl Strategy<Value = crate::UpdateOperand> {
    use crate::UpdateOperand;
    let leaf = prop_oneof![
        path().prop_map(UpdateOperand::Path),
        (0u8..3).prop_map(|i| UpdateOperand::Value {
            placeholder: format!(":v{i}"),
            value: n(&i.to_string()),
        }),
    ];
    leaf.prop_recursive(2, 4, 1, |inner| {
        (path(), inner).prop_map(|(p, v)| UpdateOperand::IfNotExists(p, Box::new(v)))
    })
}

pub(super) fn update() -> impl Strategy<Value = crate::UpdateExpression> {
    use crate::{SetValue, UpdateAction, UpdateOperand};
    let set_value = prop_oneof![
        update_operand().prop_map(SetValue::Operand),
        (update_operand(), update_operand()).prop_map(|(a, b)| SetValue::Plus(a, b)),
        (update_operand(), update_operand()).prop_map(|(a, b)| SetValue::Minus(a, b)),
        (path(), path()).prop_map(|(a, b)| SetValue::Operand(UpdateOperand::ListAppend(
            Box::new(UpdateOperand::Path(a)),
            Box::new(UpdateOperand::Path(b)),
        ))),
    ];
    let sets = prop::collection::vec((path(), set_value), 0..3);
    let removes = prop::collection::vec(path(), 0..3);
    let adds = prop::collection::vec(path(), 0..2);
    let deletes = prop::collection::vec(path(), 0..2);
    (sets, removes, adds, deletes)
        .prop_filter("at least one action", |(s, r, a, d)| {
            !(s.is_empty() && r.is_empty() && a.is_empty() && d.is_empty())
        })
        .prop_map(|(sets, removes, adds, deletes)| {
            let mut actions: Vec<UpdateAction> = sets
                .into_iter()
                .map(|(p, v)| UpdateAction::Set(p, v))
                .collect();
            actions.extend(removes.into_iter().map(UpdateAction::Remove));
            actions.extend(
                adds.into_iter()
                    .map(|p| UpdateAction::Add(p, ":v1".into(), n("1"))),
            );
            actions.extend(
                deletes
                    .into_iter()
                    .map(|p| UpdateAction::Delete(p, ":ss".into(), ss(&["a"]))),
            );
            crate::UpdateExpression { actions }
        })
}

proptest! {
    #[test]
    fn update_print_parse_round_trip(u in update()) {
        let text = u.to_string();
        let env = Env::new()
            .value(":v0", n("0"))
            .value(":v1", n("1"))
            .value(":v2", n("2"))
            .value(":ss", ss(&["a"]));
        let mut p = env.placeholders();
        // Random paths may overlap; that must be a validation error, never a syntax error.
        match crate::parse_update(&text, &mut p) {
            Ok(parsed) => prop_assert_eq!(parsed, u),
            Err(e) => prop_assert!(!e.0.contains("Syntax error"), "{}: {}", text, e.0),
        }
    }
}
