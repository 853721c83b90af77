//! Document paths (`a.b[3].c`): how expressions name an attribute or a part of one, how DynamoDB
//! prints them in messages (`[a, b, [3], c]`), and how they are looked up in an item.

use std::fmt;

use haven_model::{AttributeValue, Item};

/// One step of a document path: a map key (or top-level attribute name) or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathElement {
    Name(String),
    Index(usize),
}

/// A document path. It always starts with a [`PathElement::Name`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path(pub Vec<PathElement>);

impl Path {
    /// A top-level attribute.
    pub fn attribute(name: &str) -> Path {
        Path(vec![PathElement::Name(name.to_string())])
    }

    /// The top-level attribute the path starts at.
    pub fn root(&self) -> &str {
        match self.0.first() {
            Some(PathElement::Name(name)) => name,
            _ => "",
        }
    }

    /// The value the path points at, if the item has one there.
    pub fn resolve<'i>(&self, item: &'i Item) -> Option<&'i AttributeValue> {
        let mut current = item.get(self.root())?;
        for element in &self.0[1..] {
            current = child(current, element)?;
        }
        Some(current)
    }

    /// Message form used by DynamoDB: `[a, b, [3]]`.
    pub fn message_form(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| match e {
                PathElement::Name(n) => n.clone(),
                PathElement::Index(i) => format!("[{i}]"),
            })
            .collect();
        format!("[{}]", parts.join(", "))
    }
}

pub(crate) fn child<'v>(
    value: &'v AttributeValue,
    element: &PathElement,
) -> Option<&'v AttributeValue> {
    match (value, element) {
        (AttributeValue::M(map), PathElement::Name(name)) => map.get(name),
        (AttributeValue::L(list), PathElement::Index(i)) => list.get(*i),
        _ => None,
    }
}

/// Expression syntax, with names written as they are (they print back as valid expression text
/// when they are plain identifiers that are not reserved words).
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, element) in self.0.iter().enumerate() {
            match element {
                PathElement::Name(name) if i == 0 => f.write_str(name)?,
                PathElement::Name(name) => write!(f, ".{name}")?,
                PathElement::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// How two paths of one expression relate, for DynamoDB's overlap and conflict checks.
pub(crate) enum Clash {
    /// One path is a prefix of the other (or they are equal).
    Overlap,
    /// At the first difference one path indexes a list and the other names a map key.
    Conflict,
}

pub(crate) fn clash(a: &Path, b: &Path) -> Option<Clash> {
    for (x, y) in a.0.iter().zip(&b.0) {
        match (x, y) {
            (PathElement::Name(p), PathElement::Name(q)) if p != q => return None,
            (PathElement::Index(p), PathElement::Index(q)) if p != q => return None,
            (PathElement::Name(_), PathElement::Index(_))
            | (PathElement::Index(_), PathElement::Name(_)) => return Some(Clash::Conflict),
            _ => {}
        }
    }
    Some(Clash::Overlap)
}

/// The message for `later` clashing with `earlier`, if it does. Paths holding an undefined
/// placeholder (resolved to an empty name) or nested too deep clash with nothing: their own error
/// is reported instead.
pub(crate) fn clash_message(earlier: &Path, later: &Path) -> Option<String> {
    let rejected = |p: &Path| {
        p.0.len() > crate::parser::MAX_PATH_DEPTH
            || p.0
                .iter()
                .any(|e| matches!(e, PathElement::Name(n) if n.is_empty()))
    };
    if rejected(earlier) || rejected(later) {
        return None;
    }
    let kind = match clash(earlier, later)? {
        Clash::Overlap => "overlap",
        Clash::Conflict => "conflict",
    };
    Some(format!(
        "Two document paths {kind} with each other; must remove or rewrite one of these paths; path one: {}, path two: {}",
        earlier.message_form(),
        later.message_form()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(elements: &[&str]) -> Path {
        Path(
            elements
                .iter()
                .map(|e| match e.parse::<usize>() {
                    Ok(i) => PathElement::Index(i),
                    Err(_) => PathElement::Name(e.to_string()),
                })
                .collect(),
        )
    }

    #[test]
    fn message_form_brackets_indexes() {
        assert_eq!(p(&["c", "3", "x"]).message_form(), "[c, [3], x]");
        assert_eq!(p(&["c", "3", "x"]).to_string(), "c[3].x");
    }

    #[test]
    fn prefix_overlaps_and_mixed_kinds_conflict() {
        assert_eq!(
            clash_message(&p(&["a"]), &p(&["a", "b"])).unwrap(),
            "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a, b]"
        );
        assert_eq!(
            clash_message(&p(&["a", "1"]), &p(&["a", "b"])).unwrap(),
            "Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [a, [1]], path two: [a, b]"
        );
        assert!(clash_message(&p(&["a", "1"]), &p(&["a", "2"])).is_none());
        assert!(clash_message(&p(&["a"]), &p(&["b"])).is_none());
    }
}
