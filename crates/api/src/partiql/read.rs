//! SELECT: the partitions its WHERE clause names read as Query reads one (in key order, ORDER BY
//! reversing partitions or sort keys), else a Scan; the whole clause filters every item read, and
//! the select list shapes what is returned. A page stops at Limit items read or 1 MB, as Query
//! and Scan do, across partitions; NextToken carries where to resume.

use std::ops::Bound;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use haven_expr::partiql::{Select, keys, select_item};
use haven_expr::{KeyCondition, RangeKeyCondition};
use haven_model::schema::KeySchema;
use haven_model::{AttributeValue, Item, item_size};
use serde_json::{Value, json};

use super::{check_name, expr_schema};
use crate::Service;
use crate::catalog::{IndexKind, TableMeta};
use crate::error::DynamoError;
use crate::items::{CapacityReport, read_item, table};
use crate::ops::{KeyRange, segment_range};
use crate::pages::{
    PAGE_BYTES, Page, PageRequest, ReadTarget, Select as Mode, attribute_roots, read_page,
};
use crate::reply::{Member, Reply};

/// ExecuteStatement's members that shape a read.
pub(crate) struct Options<'r> {
    pub limit: Option<i64>,
    pub consistent: bool,
    pub next_token: Option<&'r str>,
    pub report: CapacityReport,
}

/// The order ORDER BY asks for.
#[derive(Default, Clone, Copy)]
struct Order {
    partitions_descending: bool,
    sort_descending: bool,
}

pub(crate) fn select(
    service: &Service,
    select: &Select,
    options: &Options,
) -> Result<Reply, DynamoError> {
    check_name(&select.table)?;
    if let Some(index) = &select.index {
        check_name(index)?;
    }
    let meta = table(service, &select.table)?;
    let target = ReadTarget::new(&meta, select.index.as_deref())?;
    if options.consistent && target.index.is_some_and(|i| i.kind == IndexKind::Global) {
        return Err(DynamoError::validation(
            "Consistent reads are not supported on global secondary indexes",
        ));
    }
    let schema = target.keys();
    if schema.is_multi_attribute() {
        return Err(DynamoError::validation(
            "PartiQL statements cannot be executed on tables with composite HASH keys or composite RANGE keys.",
        ));
    }
    let plan = keys::read_plan(select.condition.as_ref(), &expr_schema(&schema))
        .map_err(DynamoError::validation)?;
    let order = order(select, plan.partitions.is_some(), &schema)?;
    let mut request = page_request(&target, select, options)?;
    let start = options.next_token.map(start_key).transpose()?;
    target.admit(service)?;
    let snapshot = service.engine.snapshot()?;
    let one_item = start.is_none().then(|| whole_key(&target, &plan)).flatten();
    let page = match (one_item, &plan.partitions) {
        (Some(key), _) => read_one(&*snapshot, &target, key, &request)?,
        (None, None) => {
            let (lower, upper) = segment_range(target.prefix(), None);
            request.lower = match &start {
                Some(start) => Bound::Excluded(target.start_key(start)?),
                None => lower,
            };
            request.upper = upper;
            read_page(&*snapshot, &target, &request)?
        }
        (None, Some(partitions)) => {
            let read = Partitions {
                target: &target,
                schema: &schema,
                range: plan.range.as_ref(),
                order,
            };
            read.pages(&*snapshot, partitions, request, start)?
        }
    };
    let capacity = target.capacity(service, options.report, &page, options.consistent);
    Ok(render(page, select, capacity))
}

/// The key of the one table item a SELECT names with equalities on its whole key: read as GetItem
/// reads it.
fn whole_key(target: &ReadTarget, plan: &keys::ReadPlan) -> Option<Item> {
    if target.index.is_some() {
        return None;
    }
    let schema = target.keys();
    let [partition] = plan.partitions.as_deref()? else {
        return None;
    };
    let mut key: Item = [(schema.hash().name.clone(), partition.clone())].into();
    match (schema.range(), &plan.range) {
        (None, _) => {}
        (Some(sort), Some(RangeKeyCondition::Eq(value))) => {
            key.insert(sort.name.clone(), value.clone());
        }
        (Some(_), _) => return None,
    }
    Some(key)
}

/// Reads one item by key as a page of at most one item, with what a Query of that key would
/// answer: the item if the clause holds, and a NextToken when Limit is 1.
fn read_one(
    snapshot: &dyn haven_storage::Snapshot,
    target: &ReadTarget,
    key: Item,
    request: &PageRequest,
) -> Result<Page, DynamoError> {
    crate::items::validate_key(target.meta, &key)?;
    let mut page = Page::empty();
    let Some((_, item)) = read_item(snapshot, target.meta, &key)? else {
        return Ok(page);
    };
    page.scanned = 1;
    page.bytes_read = item_size(&item);
    if request.limit == Some(1) {
        page.last_evaluated = Some(key);
    }
    if request
        .filter
        .map_or(Ok(true), |f| f.evaluate(Some(&item)))?
    {
        page.count = 1;
        page.items.push(item);
    }
    Ok(page)
}

/// What to read of each item: index reads of `*` return what the index projects.
fn page_request<'a>(
    target: &ReadTarget,
    select: &'a Select,
    options: &Options,
) -> Result<PageRequest<'a>, DynamoError> {
    let mode = match (&select.projection, &select.index) {
        (Some(_), _) => Mode::SpecificAttributes,
        (None, Some(_)) => Mode::AllProjectedAttributes,
        (None, None) => Mode::AllAttributes,
    };
    let (projected, filtered) =
        attribute_roots(select.projection.as_deref(), select.condition.as_ref());
    Ok(PageRequest {
        lower: Bound::Unbounded,
        upper: Bound::Unbounded,
        reverse: false,
        limit: options.limit.map(|l| l as usize),
        filter: select.condition.as_ref(),
        projection: None,
        select: mode,
        fetch_from_table: target.fetches_from_table(mode, &projected, &filtered)?,
        consistent: options.consistent,
        max_bytes: PAGE_BYTES,
    })
}

/// ORDER BY may only name key attributes, and needs the partitions to be named.
fn order(
    select: &Select,
    reads_partitions: bool,
    schema: &KeySchema,
) -> Result<Order, DynamoError> {
    let mut order = Order::default();
    if select.order_by.is_empty() {
        return Ok(order);
    }
    if select.condition.is_none() {
        return Err(DynamoError::validation(
            "Must have WHERE clause in the statement when using ORDER BY clause.",
        ));
    }
    let sort = schema.range().map(|s| s.name.as_str());
    let (mut partitions, mut sort_keys) = (None, None);
    // A key named twice keeps its first direction.
    for (name, descending) in &select.order_by {
        if *name == schema.hash().name {
            partitions.get_or_insert(*descending);
        } else if Some(name.as_str()) == sort {
            sort_keys.get_or_insert(*descending);
        } else {
            return Err(DynamoError::validation(format!(
                "Variable reference {name} in ORDER BY clause must be part of the primary key"
            )));
        }
    }
    order.partitions_descending = partitions.unwrap_or(false);
    order.sort_descending = sort_keys.unwrap_or(false);
    if !reads_partitions {
        return Err(DynamoError::validation(
            "Must have at least one non-optional hash key condition in WHERE clause when using ORDER BY clause.",
        ));
    }
    Ok(order)
}

/// A storage key range.
type Bounds = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Reading the partitions a SELECT names, one range each, as one page.
struct Partitions<'r> {
    target: &'r ReadTarget<'r>,
    schema: &'r KeySchema,
    range: Option<&'r RangeKeyCondition>,
    order: Order,
}

impl Partitions<'_> {
    /// Reads the partitions in order (from the one a NextToken names) until the page is full.
    fn pages(
        &self,
        snapshot: &dyn haven_storage::Snapshot,
        partitions: &[AttributeValue],
        mut request: PageRequest,
        start: Option<Item>,
    ) -> Result<Page, DynamoError> {
        let mut ordered: Vec<&AttributeValue> = partitions.iter().collect();
        if self.order.partitions_descending {
            ordered.reverse();
        }
        let first = match &start {
            None => 0,
            Some(start) => self.resuming_partition(&ordered, start)?,
        };
        let mut start = start;
        let limit = request.limit;
        let mut total = Page::empty();
        for partition in &ordered[first..] {
            let (lower, upper) = self.bounds(partition, start.take())?;
            request.lower = lower;
            request.upper = upper;
            request.reverse = self.order.sort_descending;
            request.limit = limit.map(|l| l - total.scanned);
            request.max_bytes = PAGE_BYTES - total.bytes_read;
            let page = read_page(snapshot, self.target, &request)?;
            merge(&mut total, page);
            if total.last_evaluated.is_some() {
                break;
            }
        }
        Ok(total)
    }

    /// Where a NextToken's key sits among the partitions read.
    fn resuming_partition(
        &self,
        ordered: &[&AttributeValue],
        start: &Item,
    ) -> Result<usize, DynamoError> {
        let hash = start.get(&self.schema.hash().name);
        ordered
            .iter()
            .position(|p| hash.is_some_and(|h| h.same_value(p)))
            .ok_or_else(|| {
                DynamoError::validation(
                    "The provided starting key does not match the range key predicate",
                )
            })
    }

    /// The storage range of one partition, after `start` when resuming in it.
    fn bounds(
        &self,
        partition: &AttributeValue,
        start: Option<Item>,
    ) -> Result<Bounds, DynamoError> {
        let condition = KeyCondition {
            hash: partition.clone(),
            range: self.range.cloned(),
        }
        .into();
        let range = KeyRange::new(condition, self.schema, self.target)?;
        let (mut lower, mut upper) = (range.lower.clone(), range.upper.clone());
        if let Some(start) = start {
            let after = Bound::Excluded(range.start_after(&start, self.schema, self.target)?);
            if self.order.sort_descending {
                upper = after;
            } else {
                lower = after;
            }
        }
        Ok((lower, upper))
    }
}

fn merge(total: &mut Page, page: Page) {
    total.items.extend(page.items);
    total.count += page.count;
    total.scanned += page.scanned;
    total.bytes_read += page.bytes_read;
    total.fetched_units += page.fetched_units;
    total.last_evaluated = page.last_evaluated;
}

/// ExecuteStatement's answer: the items as the select list shapes them, and where to resume.
fn render(page: Page, select: &Select, capacity: Option<Value>) -> Reply {
    let projection = select.projection.as_deref();
    let items: Vec<Item> = page
        .items
        .into_iter()
        .map(|item| select_item(item, projection))
        .collect();
    let mut reply = Reply::default();
    reply.push("Items", Member::Items(items));
    if let Some(key) = page.last_evaluated {
        reply.push("NextToken", Member::Json(json!(next_token(&key))));
    }
    if let Some(capacity) = capacity {
        reply.push("ConsumedCapacity", Member::Json(capacity));
    }
    reply
}

/// A NextToken: the key to resume after, as JSON in base64.
fn next_token(key: &Item) -> String {
    let token = json!({ "ExclusiveStartKey": crate::wire::item_to_json(key) });
    BASE64.encode(token.to_string())
}

/// The key a NextToken resumes after.
fn start_key(token: &str) -> Result<Item, DynamoError> {
    let invalid = || DynamoError::validation("Invalid NextToken");
    let bytes = BASE64.decode(token).map_err(|_| invalid())?;
    let token: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let key = token.get("ExclusiveStartKey").ok_or_else(invalid)?;
    crate::wire::parse_item(key).map_err(|_| invalid())
}

/// The partition key values a SELECT reads (for `dynamodb:LeadingKeys`); `None` for a scan.
pub(crate) fn partitions(meta: &TableMeta, select: &Select) -> Option<Vec<AttributeValue>> {
    let target = ReadTarget::new(meta, select.index.as_deref()).ok()?;
    let schema = target.keys();
    keys::read_plan(select.condition.as_ref(), &expr_schema(&schema))
        .ok()?
        .partitions
}

/// A SELECT of a batch or a transaction: it must name one item of a table, with nothing else in
/// its WHERE clause (`refusal` words it otherwise). Returns the table and the item's key.
pub(crate) fn one_item(
    service: &Service,
    select: &Select,
    refusal: &str,
) -> Result<(std::sync::Arc<TableMeta>, Item), DynamoError> {
    check_name(&select.table)?;
    let refused = || DynamoError::validation(refusal);
    if select.index.is_some() {
        return Err(refused());
    }
    let meta = table(service, &select.table)?;
    let schema = meta.keys();
    let (key, rest) = match keys::item_key(select.condition.as_ref(), &expr_schema(schema)) {
        Ok(found) => found,
        Err(error @ keys::KeyError::WrongType(_)) => {
            return Err(DynamoError::validation(error.message()));
        }
        Err(_) => return Err(refused()),
    };
    if rest.is_some() {
        return Err(refused());
    }
    crate::items::validate_key(&meta, &key)?;
    Ok((meta, key))
}
