//! ProjectionExpression (and AttributesToGet, and ReturnValues UPDATED_*): choosing parts of an item.
//! A projected nested path keeps its shape: `a.b` yields `{a: {b: ...}}`, and list elements picked by
//! index are gathered, in index order, into a shorter list.

use std::collections::BTreeMap;

use haven_model::{AttributeValue, Item};

use crate::lexer::Punct;
use crate::parser::{
    self, Cursor, Diagnostics, Parsed, PathRanks, RawPath, fail_to_error, resolve_path,
};
use crate::{ExprError, Path, PathElement, Placeholders};

const PREFIX: &str = "Invalid ProjectionExpression";

// Error ranks: reserved words and bad list indexes (first in the text wins), then undefined
// names, too deep and overlapping paths, found walking the paths from last to first.
const RANK_RESERVED: u8 = 1;
const RANK_PATHS: u8 = 2;
const PATH_RANKS: PathRanks = PathRanks {
    reserved: RANK_RESERVED,
    undefined_name: RANK_PATHS,
    nesting: RANK_PATHS,
};

/// Parses a comma-separated list of document paths.
pub fn parse_projection(
    text: &str,
    placeholders: &mut Placeholders,
) -> Result<Vec<Path>, ExprError> {
    parser::check_text(text, PREFIX, false)?;
    let mut cursor = Cursor::new(text);
    let raw = match parse_paths(&mut cursor) {
        Ok(raw) => raw,
        Err(fail) => return Err(fail_to_error(fail, &cursor, PREFIX)),
    };
    lower_paths(&raw, placeholders, Some(PREFIX))
}

/// Resolves parsed paths, reporting DynamoDB's errors; PartiQL's select lists come here too, and
/// report errors without a prefix.
pub(crate) fn lower_paths(
    raw: &[RawPath],
    placeholders: &mut Placeholders,
    prefix: Option<&str>,
) -> Result<Vec<Path>, ExprError> {
    let mut diagnostics = Diagnostics::default();
    let mut paths: Vec<Path> = Vec::with_capacity(raw.len());
    let mut own_errors = Vec::with_capacity(raw.len());
    for raw_path in raw {
        let mut found = Diagnostics::default();
        paths.push(resolve_path(
            raw_path,
            placeholders,
            &mut found,
            &PATH_RANKS,
        ));
        let mut own = None;
        for (rank, message) in found.into_entries() {
            if rank == RANK_PATHS {
                own = Some(message);
            } else {
                diagnostics.report(rank, message);
            }
        }
        own_errors.push(own);
    }
    if let Some(message) = path_error(&paths, &own_errors) {
        diagnostics.report(RANK_PATHS, message);
    }
    diagnostics.into_result(prefix)?;
    Ok(paths)
}

/// The first error walking the paths from last to first, as DynamoDB does: a path's own error
/// (undefined name, too deep), or its clash with a later path (the most recent one looked at first).
fn path_error(paths: &[Path], own_errors: &[Option<String>]) -> Option<String> {
    let mut later: Vec<&Path> = Vec::new();
    for (path, own) in paths.iter().zip(own_errors).rev() {
        if own.is_some() {
            return own.clone();
        }
        if let Some(message) = later
            .iter()
            .rev()
            .find_map(|l| crate::path::clash_message(path, l))
        {
            return Some(message);
        }
        later.push(path);
    }
    None
}

fn parse_paths(cursor: &mut Cursor) -> Parsed<Vec<RawPath>> {
    let mut paths = vec![cursor.path()?];
    while cursor.at_punct(Punct::Comma) {
        cursor.bump();
        paths.push(cursor.path()?);
    }
    cursor.expect_eof()?;
    Ok(paths)
}

/// The parts of `item` the paths name, in DynamoDB's shapes. Paths naming nothing are skipped.
pub fn project(item: &Item, paths: &[Path]) -> Item {
    let mut tree = Node::Map(BTreeMap::new());
    for path in paths {
        if path.resolve(item).is_some() {
            tree.insert(&path.0);
        }
    }
    let mut out = Item::new();
    if let Node::Map(children) = tree {
        for (name, node) in children {
            if let Some(value) = item.get(&name) {
                out.insert(name, node.pick(value));
            }
        }
    }
    out
}

/// The union of projected paths, as a tree of what to keep.
enum Node {
    /// Keep the whole value.
    All,
    Map(BTreeMap<String, Node>),
    List(BTreeMap<usize, Node>),
}

impl Node {
    fn insert(&mut self, rest: &[PathElement]) {
        let Some((first, rest)) = rest.split_first() else {
            *self = Node::All;
            return;
        };
        let child = match (&mut *self, first) {
            (Node::All, _) => return,
            (Node::Map(m), PathElement::Name(n)) => {
                m.entry(n.clone()).or_insert_with(|| empty(rest))
            }
            (Node::List(l), PathElement::Index(i)) => l.entry(*i).or_insert_with(|| empty(rest)),
            _ => return,
        };
        child.insert(rest);
    }

    fn pick(&self, value: &AttributeValue) -> AttributeValue {
        match (self, value) {
            (Node::Map(keep), AttributeValue::M(map)) => AttributeValue::M(
                keep.iter()
                    .filter_map(|(k, node)| map.get(k).map(|v| (k.clone(), node.pick(v))))
                    .collect(),
            ),
            (Node::List(keep), AttributeValue::L(list)) => AttributeValue::L(
                keep.iter()
                    .filter_map(|(i, node)| list.get(*i).map(|v| node.pick(v)))
                    .collect(),
            ),
            _ => value.clone(),
        }
    }
}

/// The node for a path whose remaining steps are `rest`.
fn empty(rest: &[PathElement]) -> Node {
    match rest.first() {
        None => Node::All,
        Some(PathElement::Name(_)) => Node::Map(BTreeMap::new()),
        Some(PathElement::Index(_)) => Node::List(BTreeMap::new()),
    }
}
