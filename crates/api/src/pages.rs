//! Reading a page of items from a key range, as Query and Scan do: items in key order, at most
//! `Limit` items and about 1 MB read per page, a filter applied after the read (so ScannedCount
//! counts what was read and Count what matched), and the LastEvaluatedKey to resume from.

use std::ops::Bound;

use haven_expr::{Condition, Path};
use haven_model::item_codec::decode_item;
use haven_model::{Item, item_size};
use haven_storage::Snapshot;
use serde_json::{Map, Value, json};

use crate::catalog::TableMeta;
use crate::error::{DynamoError, Violations};
use crate::items::{CapacityReport, read_units};
use crate::wire::item_to_json;

/// DynamoDB stops a Query or Scan page once this much data has been read.
const PAGE_BYTES: usize = 1024 * 1024;

/// What a page returns: Select.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Select {
    AllAttributes,
    SpecificAttributes,
    Count,
}

/// Checks the Select enum.
pub(crate) fn check_select(violations: &mut Violations, select: Option<&str>) {
    const ALLOWED: [&str; 4] = [
        "SPECIFIC_ATTRIBUTES",
        "COUNT",
        "ALL_ATTRIBUTES",
        "ALL_PROJECTED_ATTRIBUTES",
    ];
    if let Some(select) = select.filter(|s| !ALLOWED.contains(s)) {
        violations.push(format!(
            "Value '{select}' at 'select' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            ALLOWED.join(", ")
        ));
    }
}

/// Resolves Select with the projection (Select defaults to ALL_ATTRIBUTES, or SPECIFIC_ATTRIBUTES
/// when a projection is given). `projection_parameter` names the parameter that carries the
/// projection (ProjectionExpression or AttributesToGet), as DynamoDB's messages do.
pub(crate) fn resolve_select(
    select: Option<&str>,
    projection_parameter: Option<&str>,
    index_name: Option<&str>,
) -> Result<Select, DynamoError> {
    match (select, projection_parameter) {
        (None, None) | (Some("ALL_ATTRIBUTES"), None) => Ok(Select::AllAttributes),
        (None, Some(_)) | (Some("SPECIFIC_ATTRIBUTES"), Some(_)) => Ok(Select::SpecificAttributes),
        (Some("COUNT"), None) => Ok(Select::Count),
        (Some("SPECIFIC_ATTRIBUTES"), None) => Err(DynamoError::validation(
            "Must specify the AttributesToGet or ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES",
        )),
        (Some("ALL_PROJECTED_ATTRIBUTES"), _) if index_name.is_none() => {
            Err(DynamoError::validation(
                "ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an IndexName",
            ))
        }
        (Some("COUNT"), Some(parameter)) => Err(DynamoError::validation(format!(
            "Cannot specify the {parameter} when choosing to get only the Count"
        ))),
        (Some(other), Some(parameter)) => Err(DynamoError::validation(format!(
            "Cannot specify the {parameter} when choosing to get {other}"
        ))),
        (Some(_), None) => Ok(Select::AllAttributes),
    }
}

/// Which projection parameter a request used, for Select's messages.
pub(crate) fn projection_parameter(
    expression: bool,
    attributes_to_get: bool,
) -> Option<&'static str> {
    if expression {
        Some("ProjectionExpression")
    } else if attributes_to_get {
        Some("AttributesToGet")
    } else {
        None
    }
}

/// Checks an ExclusiveStartKey against the table's key schema, with DynamoDB's messages.
pub(crate) fn validate_start_key(meta: &TableMeta, start: &Item) -> Result<(), DynamoError> {
    if start.is_empty() {
        return Err(DynamoError::validation(
            "The provided starting key is invalid",
        ));
    }
    if start.len() != meta.keys().attributes().count() {
        return Err(DynamoError::validation(
            "Exclusive Start Key must have same size as table's key schema",
        ));
    }
    crate::items::validate_key(meta, start).map_err(|_| {
        DynamoError::validation("The provided starting key is invalid: The provided key element does not match the schema")
    })
}

/// Checks `Limit` (DynamoDB requires at least 1).
pub(crate) fn check_limit(violations: &mut Violations, limit: Option<i64>) {
    if let Some(limit) = limit.filter(|l| *l < 1) {
        violations.push(format!(
            "Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
        ));
    }
}

/// How to read one page.
pub(crate) struct PageRequest<'a> {
    pub lower: Bound<Vec<u8>>,
    pub upper: Bound<Vec<u8>>,
    pub reverse: bool,
    pub limit: Option<usize>,
    pub filter: Option<&'a Condition>,
    pub projection: Option<&'a [Path]>,
    pub select: Select,
}

/// One page of results.
pub(crate) struct Page {
    pub items: Vec<Item>,
    pub count: usize,
    pub scanned: usize,
    pub bytes_read: usize,
    pub last_evaluated: Option<Item>,
}

/// Reads one page from `snapshot`.
pub(crate) fn read_page(
    snapshot: &dyn Snapshot,
    meta: &TableMeta,
    request: &PageRequest,
) -> Result<Page, DynamoError> {
    let schema = meta.keys();
    let mut page = Page {
        items: Vec::new(),
        count: 0,
        scanned: 0,
        bytes_read: 0,
        last_evaluated: None,
    };
    let mut failure = None;
    let range = (as_ref_bound(&request.lower), as_ref_bound(&request.upper));
    snapshot.scan(range, request.reverse, &mut |_, value| {
        let item = match decode_item(value) {
            Ok(item) => item,
            Err(error) => {
                tracing::error!(table = %meta.name, %error, "undecodable item");
                failure = Some(DynamoError::InternalServerError);
                return false;
            }
        };
        page.scanned += 1;
        page.bytes_read += item_size(&item);
        let matches = match request.filter.map(|f| f.evaluate(Some(&item))) {
            None => true,
            Some(Ok(matches)) => matches,
            Some(Err(error)) => {
                failure = Some(error.into());
                return false;
            }
        };
        let full =
            request.limit.is_some_and(|l| page.scanned >= l) || page.bytes_read >= PAGE_BYTES;
        if full {
            page.last_evaluated = Some(schema.project_key(&item));
        }
        if matches {
            page.count += 1;
            if request.select != Select::Count {
                page.items.push(match request.projection {
                    Some(paths) => haven_expr::project(&item, paths),
                    None => item,
                });
            }
        }
        !full
    })?;
    match failure {
        Some(error) => Err(error),
        None => Ok(page),
    }
}

fn as_ref_bound(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(b) => Bound::Included(b.as_slice()),
        Bound::Excluded(b) => Bound::Excluded(b.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The smallest byte string greater than every string that starts with `prefix`.
pub(crate) fn prefix_successor(prefix: &[u8]) -> Bound<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Bound::Excluded(end);
        }
    }
    Bound::Unbounded
}

/// Capacity a page consumed: 4 KB read units over the bytes read, halved when eventually consistent.
pub(crate) fn page_units(bytes_read: usize, consistent: bool) -> f64 {
    if bytes_read == 0 {
        0.0
    } else {
        read_units(bytes_read, consistent)
    }
}

/// The Query/Scan response body.
pub(crate) fn render_page(page: Page, select: Select, capacity: Option<Value>) -> Value {
    let mut response = Map::new();
    if select != Select::Count {
        response.insert(
            "Items".into(),
            Value::Array(page.items.iter().map(item_to_json).collect()),
        );
    }
    response.insert("Count".into(), json!(page.count));
    response.insert("ScannedCount".into(), json!(page.scanned));
    if let Some(key) = &page.last_evaluated {
        response.insert("LastEvaluatedKey".into(), item_to_json(key));
    }
    if let Some(capacity) = capacity {
        response.insert("ConsumedCapacity".into(), capacity);
    }
    Value::Object(response)
}

/// ConsumedCapacity for a page, if asked for.
pub(crate) fn page_capacity(
    report: CapacityReport,
    table: &str,
    page: &Page,
    consistent: bool,
) -> Option<Value> {
    report.render(table, page_units(page.bytes_read, consistent))
}
