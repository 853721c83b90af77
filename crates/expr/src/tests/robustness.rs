//! Property tests: evaluation and updates never panic on arbitrary items, and a failed update leaves
//! the item untouched.

use proptest::prelude::*;

use super::*;

fn value() -> impl Strategy<Value = AttributeValue> {
    let leaf = prop_oneof![
        "[a-c]{0,3}".prop_map(AttributeValue::S),
        (-5i32..50).prop_map(|i| n(&i.to_string())),
        any::<bool>().prop_map(AttributeValue::Bool),
        Just(AttributeValue::Null),
        prop::collection::vec(0u8..3, 0..3).prop_map(AttributeValue::B),
        prop::collection::btree_set("[a-c]{1,2}", 1..3)
            .prop_map(|s| AttributeValue::Ss(s.into_iter().collect())),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(AttributeValue::L),
            prop::collection::btree_map("[a-z][a-z0-9_]{0,3}", inner, 0..3)
                .prop_map(AttributeValue::M),
        ]
    })
}

fn subject() -> impl Strategy<Value = Item> {
    prop::collection::btree_map("[a-z][a-z0-9_]{0,3}", value(), 0..5)
}

proptest! {
    #[test]
    fn evaluation_never_panics(c in super::roundtrip::condition(), it in subject()) {
        let _ = c.evaluate(Some(&it));
        let _ = c.evaluate(None);
    }

    #[test]
    fn failed_updates_change_nothing(u in super::roundtrip::update(), it in subject()) {
        let mut changed = it.clone();
        if u.apply(&mut changed, &[]).is_err() {
            prop_assert_eq!(changed, it);
        }
    }
}
