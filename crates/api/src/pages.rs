//! Reading a page of items from a key range, as Query and Scan do: items in key order, at most
//! `Limit` items and about 1 MB read per page, a filter applied after the read (so ScannedCount
//! counts what was read and Count what matched), and the LastEvaluatedKey to resume from.
//! A read targets the table or one of its secondary indexes ([`ReadTarget`]).

use std::borrow::Cow;
use std::ops::Bound;

use haven_expr::{Condition, Path};
use haven_model::item_codec::decode_item;
use haven_model::schema::KeySchema;
use haven_model::{Item, item_size};
use haven_storage::Snapshot;
use serde_json::{Value, json};

use crate::Service;
use crate::catalog::{IndexKind, IndexMeta, TableMeta};
use crate::error::{DynamoError, Violations};
use crate::items::{Capacity, CapacityReport, read_item, read_units};
use crate::reply::{Member, Reply};
use crate::wire_item::WireItem;

/// DynamoDB stops a Query or Scan page once this much data has been read.
pub(crate) const PAGE_BYTES: usize = 1024 * 1024;

/// What a page returns: Select.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Select {
    AllAttributes,
    AllProjectedAttributes,
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

/// Resolves Select with the projection (Select defaults to ALL_ATTRIBUTES on a table and
/// ALL_PROJECTED_ATTRIBUTES on an index, or SPECIFIC_ATTRIBUTES when a projection is given).
/// `projection_parameter` names the parameter that carries the projection (ProjectionExpression or
/// AttributesToGet), as DynamoDB's messages do.
pub(crate) fn resolve_select(
    select: Option<&str>,
    projection_parameter: Option<&str>,
    index_name: Option<&str>,
) -> Result<Select, DynamoError> {
    match (select, projection_parameter) {
        (None, None) if index_name.is_some() => Ok(Select::AllProjectedAttributes),
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
        (Some(_), None) => Ok(Select::AllProjectedAttributes),
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

/// Checks `Limit` (DynamoDB requires at least 1).
pub(crate) fn check_limit(violations: &mut Violations, limit: Option<i64>) {
    if let Some(limit) = limit.filter(|l| *l < 1) {
        violations.push(format!(
            "Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
        ));
    }
}

/// The table, or one of its indexes, that a Query or Scan reads.
pub(crate) struct ReadTarget<'m> {
    pub meta: &'m TableMeta,
    pub index: Option<&'m IndexMeta>,
}

impl<'m> ReadTarget<'m> {
    /// Finds the index a request names, with DynamoDB's errors for a missing or unready one.
    pub fn new(
        meta: &'m TableMeta,
        index_name: Option<&str>,
    ) -> Result<ReadTarget<'m>, DynamoError> {
        let index = match index_name {
            None => None,
            Some(name) => {
                let index = meta.index(name).ok_or_else(|| {
                    DynamoError::validation(format!(
                        "The table does not have the specified index: {name}"
                    ))
                })?;
                if !index.readable() {
                    return Err(DynamoError::validation(format!(
                        "Cannot read from backfilling global secondary index: {name}"
                    )));
                }
                Some(index)
            }
        };
        Ok(ReadTarget { meta, index })
    }

    /// The key schema the read is ordered by.
    pub fn keys(&self) -> Cow<'m, KeySchema> {
        match self.index {
            Some(index) => Cow::Owned(self.meta.index_keys(index)),
            None => Cow::Borrowed(self.meta.keys()),
        }
    }

    /// Storage prefix of the entries read, and its exclusive end.
    pub fn prefix(&self) -> (Vec<u8>, Vec<u8>) {
        match self.index {
            Some(index) => (
                self.meta.index_prefix(index),
                self.meta.index_prefix_end(index),
            ),
            None => (self.meta.item_prefix(), self.meta.item_prefix_end()),
        }
    }

    /// The attributes that make up a LastEvaluatedKey: the table's key, plus the index's.
    pub fn key_attributes(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .meta
            .keys()
            .attributes()
            .map(|a| a.name.clone())
            .collect();
        if let Some(index) = self.index {
            for attribute in self.meta.index_keys(index).attributes() {
                if !names.contains(&attribute.name) {
                    names.push(attribute.name.clone());
                }
            }
        }
        names
    }

    /// Validates an ExclusiveStartKey and returns the storage key to resume after.
    pub fn start_key(&self, start: &Item) -> Result<Vec<u8>, DynamoError> {
        let invalid = || {
            DynamoError::validation(
                "The provided starting key is invalid: The provided key element does not match the schema",
            )
        };
        if start.is_empty() {
            return Err(DynamoError::validation(
                "The provided starting key is invalid",
            ));
        }
        let names = self.key_attributes();
        if self.index.is_some_and(|i| i.kind == IndexKind::Global)
            && names.iter().any(|name| !start.contains_key(name))
        {
            return Err(DynamoError::validation(
                "The provided starting key is invalid",
            ));
        }
        if start.len() != names.len() {
            return Err(DynamoError::validation(
                "Exclusive Start Key must have same size as table's key schema",
            ));
        }
        crate::items::validate_key(self.meta, &self.meta.keys().project_key(start))
            .map_err(|_| invalid())?;
        match self.index {
            None => Ok(self
                .meta
                .keys()
                .storage_key(&self.meta.item_prefix(), start)),
            Some(index) => crate::indexes::entry_key(self.meta, index, start).ok_or_else(invalid),
        }
    }

    /// Whether the read must fetch the table's item for each index entry: a local index serves
    /// attributes it does not project from the table; a global index cannot, and refuses them.
    pub fn fetches_from_table(
        &self,
        select: Select,
        projected: &[&str],
        filtered: &[&str],
    ) -> Result<bool, DynamoError> {
        let Some(index) = self.index else {
            return Ok(false);
        };
        let missing = |names: &[&str]| -> Vec<String> {
            let mut missing: Vec<String> = names
                .iter()
                .filter(|name| !crate::indexes::projects_all(self.meta, index, &[name]))
                .map(|name| name.to_string())
                .collect();
            missing.dedup();
            missing
        };
        match index.kind {
            IndexKind::Global => {
                if select == Select::AllAttributes && index.projection_type != "ALL" {
                    return Err(DynamoError::validation(format!(
                        "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index {} because its projection type is not ALL",
                        index.name
                    )));
                }
                let not_projected = missing(projected);
                if !not_projected.is_empty() {
                    return Err(DynamoError::validation(format!(
                        "One or more parameter values were invalid: Global secondary index {} does not project [{}]",
                        index.name,
                        not_projected.join(", ")
                    )));
                }
                let not_filtered = missing(filtered);
                if !not_filtered.is_empty() {
                    return Err(DynamoError::validation(format!(
                        "One or more parameter values were invalid: Secondary index {} does not project one or more filter attributes: [{}]",
                        index.name,
                        not_filtered.join(", ")
                    )));
                }
                Ok(false)
            }
            IndexKind::Local if select == Select::AllAttributes => {
                Ok(index.projection_type != "ALL")
            }
            IndexKind::Local => Ok(!missing(projected).is_empty() || !missing(filtered).is_empty()),
        }
    }

    /// Admits a read of this table or index (`crate::capacity`), before anything is read.
    pub fn admit(&self, service: &Service) -> Result<(), DynamoError> {
        service
            .capacity
            .admit(self.meta, self.index, Capacity::Read)
    }

    /// ConsumedCapacity for a page: the index's units and the table's (items fetched from it),
    /// charged to their capacity.
    pub fn capacity(
        &self,
        service: &Service,
        report: CapacityReport,
        page: &Page,
        consistent: bool,
    ) -> Option<Value> {
        let units = page_units(page.bytes_read, consistent);
        let Some(index) = self.index else {
            service
                .capacity
                .charge(self.meta, Capacity::Read, units, &[]);
            return report.render(Capacity::Read, &self.meta.name, units);
        };
        let index_units = [(index.kind, index.name.clone(), units)];
        service
            .capacity
            .charge(self.meta, Capacity::Read, page.fetched_units, &index_units);
        report.render_with_indexes(
            Capacity::Read,
            &self.meta.name,
            page.fetched_units,
            &index_units,
        )
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
    /// Replace each index entry by the table's item (see [`ReadTarget::fetches_from_table`]).
    pub fetch_from_table: bool,
    pub consistent: bool,
    /// The page stops once this much has been read ([`PAGE_BYTES`], less what earlier pages of
    /// the same answer read).
    pub max_bytes: usize,
}

/// One page of results.
pub(crate) struct Page {
    pub items: Vec<Item>,
    pub count: usize,
    pub scanned: usize,
    /// Bytes of the entries read (table items, or index entries).
    pub bytes_read: usize,
    /// Bytes of the table items fetched for index entries.
    /// Read units spent fetching table items for index entries (each item rounded on its own).
    pub fetched_units: f64,
    pub last_evaluated: Option<Item>,
}

impl Page {
    /// A page that has read nothing.
    pub fn empty() -> Page {
        Page {
            items: Vec::new(),
            count: 0,
            scanned: 0,
            bytes_read: 0,
            fetched_units: 0.0,
            last_evaluated: None,
        }
    }
}

/// Reads one page of `target` from `snapshot`.
pub(crate) fn read_page(
    snapshot: &dyn Snapshot,
    target: &ReadTarget,
    request: &PageRequest,
) -> Result<Page, DynamoError> {
    let key_attributes = target.key_attributes();
    let mut page = Page::empty();
    let mut failure = None;
    let range = (as_ref_bound(&request.lower), as_ref_bound(&request.upper));
    snapshot.scan(range, request.reverse, &mut |_, value| match visit_entry(
        snapshot,
        target,
        request,
        &key_attributes,
        value,
        &mut page,
    ) {
        Ok(more) => more,
        Err(error) => {
            failure = Some(error);
            false
        }
    })?;
    match failure {
        Some(error) => Err(error),
        None => Ok(page),
    }
}

/// Handles one stored entry; returns whether the page wants more.
fn visit_entry(
    snapshot: &dyn Snapshot,
    target: &ReadTarget,
    request: &PageRequest,
    key_attributes: &[String],
    value: &[u8],
    page: &mut Page,
) -> Result<bool, DynamoError> {
    let entry = decode_item(value).map_err(|error| {
        tracing::error!(table = %target.meta.name, %error, "undecodable entry");
        DynamoError::InternalServerError
    })?;
    page.scanned += 1;
    page.bytes_read += item_size(&entry);
    let full =
        request.limit.is_some_and(|l| page.scanned >= l) || page.bytes_read >= request.max_bytes;
    if full {
        let key: Item = key_attributes
            .iter()
            .filter_map(|name| entry.get(name).map(|v| (name.clone(), v.clone())))
            .collect();
        page.last_evaluated = Some(key);
    }
    let item = if request.fetch_from_table {
        let key = target.meta.keys().project_key(&entry);
        match read_item(snapshot, target.meta, &key)? {
            Some((_, item)) => {
                page.fetched_units += read_units(item_size(&item), request.consistent);
                item
            }
            None => entry,
        }
    } else {
        entry
    };
    let matches = match request.filter {
        None => true,
        Some(filter) => filter.evaluate(Some(&item))?,
    };
    if matches {
        page.count += 1;
        if request.select != Select::Count {
            page.items.push(match request.projection {
                Some(paths) => haven_expr::project(&item, paths),
                None => item,
            });
        }
    }
    Ok(!full)
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
pub(crate) fn render_page(page: Page, select: Select, capacity: Option<Value>) -> Reply {
    let mut reply = Reply::default();
    if select != Select::Count {
        reply.push("Items", Member::Items(page.items));
    }
    reply.push("Count", Member::Json(json!(page.count)));
    reply.push("ScannedCount", Member::Json(json!(page.scanned)));
    if let Some(key) = page.last_evaluated {
        reply.push("LastEvaluatedKey", Member::Item(key));
    }
    if let Some(capacity) = capacity {
        reply.push("ConsumedCapacity", Member::Json(capacity));
    }
    reply
}

/// The top-level attribute names a projection and a filter read, separately.
pub(crate) fn attribute_roots<'a>(
    projection: Option<&'a [Path]>,
    filter: Option<&'a Condition>,
) -> (Vec<&'a str>, Vec<&'a str>) {
    let projected: Vec<&str> = projection
        .unwrap_or_default()
        .iter()
        .map(Path::root)
        .collect();
    let mut filtered = Vec::new();
    if let Some(filter) = filter {
        condition_roots(filter, &mut filtered);
    }
    (projected, filtered)
}

/// The top-level attribute names a condition reads, in order of appearance.
pub(crate) fn condition_roots<'c>(condition: &'c Condition, out: &mut Vec<&'c str>) {
    use haven_expr::Operand;
    fn operand_roots<'c>(operand: &'c Operand, out: &mut Vec<&'c str>) {
        match operand {
            Operand::Path(path) => out.push(path.root()),
            Operand::Size(inner) => operand_roots(inner, out),
            Operand::Value { .. } => {}
        }
    }
    match condition {
        Condition::Compare(a, _, b)
        | Condition::AttributeType(a, b)
        | Condition::BeginsWith(a, b)
        | Condition::Contains(a, b) => {
            operand_roots(a, out);
            operand_roots(b, out);
        }
        Condition::Between(a, low, high) => [a, low, high]
            .into_iter()
            .for_each(|o| operand_roots(o, out)),
        Condition::In(a, list) => std::iter::once(a)
            .chain(list)
            .for_each(|o| operand_roots(o, out)),
        Condition::AttributeExists(path) | Condition::AttributeNotExists(path) => {
            out.push(path.root())
        }
        Condition::Not(inner) => condition_roots(inner, out),
        Condition::And(a, b) | Condition::Or(a, b) => {
            condition_roots(a, out);
            condition_roots(b, out);
        }
    }
}

/// The members Query and Scan share (read with each input's own members by [`read_input!`]), and
/// the steps they take with them.
pub(crate) struct ReadCommon {
    pub table_name: Option<String>,
    pub index_name: Option<String>,
    pub select: Option<String>,
    pub limit: Option<i64>,
    pub consistent_read: Option<bool>,
    pub exclusive_start_key: Option<Value>,
    pub return_consumed_capacity: Option<String>,
    pub projection_expression: Option<String>,
    pub filter_expression: Option<String>,
    pub attributes_to_get: Option<Vec<String>>,
    pub conditional_operator: Option<String>,
    pub expression_attribute_names: Option<std::collections::HashMap<String, String>>,
    pub expression_attribute_values: Option<WireItem>,
}

/// Implements `Deserialize` for Query's or Scan's input: [`ReadCommon`]'s members and its own
/// (`crate::ops::flat_input!`).
macro_rules! read_input {
    ($name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        crate::ops::flat_input!($name, ReadCommon {
            table_name: Option<String>,
            index_name: Option<String>,
            select: Option<String>,
            limit: Option<i64>,
            consistent_read: Option<bool>,
            exclusive_start_key: Option<serde_json::Value>,
            return_consumed_capacity: Option<String>,
            projection_expression: Option<String>,
            filter_expression: Option<String>,
            attributes_to_get: Option<Vec<String>>,
            conditional_operator: Option<String>,
            expression_attribute_names: Option<std::collections::HashMap<String, String>>,
            expression_attribute_values: Option<crate::wire_item::WireItem>,
        }, { $($field: $ty),* });
    };
}
pub(crate) use read_input;

/// What a Query or Scan resolved from its shared members.
pub(crate) struct ReadPlan {
    pub conditions: crate::expressions::RequestConditions,
    pub select: Select,
    pub start_key: Option<Item>,
    pub consistent: bool,
}

impl ReadCommon {
    /// The shared field constraints (in DynamoDB's member order); returns ReturnConsumedCapacity.
    pub fn check(&self, violations: &mut Violations) -> CapacityReport {
        crate::items::check_table_name(violations, self.table_name.as_deref());
        check_select(violations, self.select.as_deref());
        check_limit(violations, self.limit);
        CapacityReport::parse(violations, self.return_consumed_capacity.as_deref())
    }

    /// Parses the expressions or legacy parameters (`legacy` carries the operation's own ones),
    /// Select and the ExclusiveStartKey.
    pub fn plan(
        &self,
        key_condition: Option<&str>,
        legacy: crate::expressions::LegacyParams,
    ) -> Result<ReadPlan, DynamoError> {
        let texts = crate::expressions::ExpressionTexts {
            key_condition,
            filter: self.filter_expression.as_deref(),
            projection: self.projection_expression.as_deref(),
            ..crate::expressions::ExpressionTexts::default()
        };
        let legacy = crate::expressions::LegacyParams {
            attributes_to_get: self.attributes_to_get.as_deref(),
            conditional_operator: self.conditional_operator.as_deref(),
            ..legacy
        };
        let conditions = crate::expressions::parse_request_conditions(
            texts,
            legacy,
            self.expression_attribute_names.as_ref(),
            self.expression_attribute_values.as_ref().map(Into::into),
        )?;
        let projection = projection_parameter(
            self.projection_expression.is_some(),
            self.attributes_to_get.is_some(),
        );
        let select = resolve_select(
            self.select.as_deref(),
            projection,
            self.index_name.as_deref(),
        )?;
        let start_key = self
            .exclusive_start_key
            .as_ref()
            .map(crate::wire::parse_item)
            .transpose()?;
        Ok(ReadPlan {
            conditions,
            select,
            start_key,
            consistent: self.consistent_read.unwrap_or(false),
        })
    }

    /// The table or index read, refusing consistent reads of a global index.
    pub fn target<'m>(
        &self,
        meta: &'m TableMeta,
        consistent: bool,
    ) -> Result<ReadTarget<'m>, DynamoError> {
        let target = ReadTarget::new(meta, self.index_name.as_deref())?;
        if consistent && target.index.is_some_and(|i| i.kind == IndexKind::Global) {
            return Err(DynamoError::validation(
                "Consistent reads are not supported on global secondary indexes",
            ));
        }
        Ok(target)
    }

    pub fn table_name(&self) -> &str {
        self.table_name.as_deref().unwrap_or_default()
    }
}

impl ReadPlan {
    /// The page request over `lower..upper` of `target`.
    pub fn page_request<'a>(
        &'a self,
        target: &ReadTarget,
        (lower, upper): (Bound<Vec<u8>>, Bound<Vec<u8>>),
        reverse: bool,
        limit: Option<i64>,
    ) -> Result<PageRequest<'a>, DynamoError> {
        let roots = attribute_roots(
            self.conditions.projection.as_deref(),
            self.conditions.filter.as_ref(),
        );
        Ok(PageRequest {
            lower,
            upper,
            reverse,
            limit: limit.map(|l| l as usize),
            filter: self.conditions.filter.as_ref(),
            projection: self.conditions.projection.as_deref(),
            select: self.select,
            fetch_from_table: target.fetches_from_table(self.select, &roots.0, &roots.1)?,
            consistent: self.consistent,
            max_bytes: PAGE_BYTES,
        })
    }
}
