//! Scan: the whole table in storage order (hashed partition order, as DynamoDB), or one segment of
//! a parallel scan. Segment `s` of `n` covers the partition hashes in `[s·2⁶⁴/n, (s+1)·2⁶⁴/n)`, so the
//! segments are disjoint and together cover the table exactly once.

use std::collections::HashMap;
use std::ops::Bound;

use serde::Deserialize;
use serde_json::Value;

use crate::Service;
use crate::error::{DynamoError, Violations};
use crate::expressions::{ExpressionTexts, LegacyParams, parse_request_conditions};
use crate::items::{CapacityReport, check_table_name, table};
use crate::pages::{
    PageRequest, ReadTarget, attribute_roots, check_limit, check_select, projection_parameter,
    read_page, render_page, resolve_select,
};
use crate::wire::parse_item;

/// DynamoDB's maximum TotalSegments.
const MAX_SEGMENTS: i64 = 1_000_000;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ScanInput {
    table_name: Option<String>,
    index_name: Option<String>,
    select: Option<String>,
    limit: Option<i64>,
    consistent_read: Option<bool>,
    exclusive_start_key: Option<Value>,
    return_consumed_capacity: Option<String>,
    segment: Option<i64>,
    total_segments: Option<i64>,
    projection_expression: Option<String>,
    filter_expression: Option<String>,
    attributes_to_get: Option<Vec<String>>,
    scan_filter: Option<serde_json::Map<String, Value>>,
    conditional_operator: Option<String>,
    expression_attribute_names: Option<HashMap<String, String>>,
    expression_attribute_values: Option<Value>,
}

fn check_segments(violations: &mut Violations, segment: Option<i64>, total: Option<i64>) {
    if let Some(total) = total {
        if total < 1 {
            violations.push(format!(
                "Value '{total}' at 'totalSegments' failed to satisfy constraint: Member must have value greater than or equal to 1"
            ));
        } else if total > MAX_SEGMENTS {
            violations.push(format!(
                "Value '{total}' at 'totalSegments' failed to satisfy constraint: Member must have value less than or equal to {MAX_SEGMENTS}"
            ));
        }
    }
    if let Some(segment) = segment {
        if segment < 0 {
            violations.push(format!(
                "Value '{segment}' at 'segment' failed to satisfy constraint: Member must have value greater than or equal to 0"
            ));
        } else if let Some(total) = total.filter(|t| segment >= *t && *t >= 1) {
            violations.push(format!(
                "Value '{segment}' at 'segment' failed to satisfy constraint: Member must have value less than or equal to {}",
                total - 1
            ));
        }
    }
}

/// The storage range of one segment (or of the whole table or index), given its prefix and end.
fn segment_range(
    (prefix, prefix_end): (Vec<u8>, Vec<u8>),
    segment: Option<(u64, u64)>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let at_hash = |hash: u128| -> Vec<u8> {
        if hash > u64::MAX as u128 {
            prefix_end.clone()
        } else {
            [prefix.as_slice(), &(hash as u64).to_be_bytes()].concat()
        }
    };
    match segment {
        None => (
            Bound::Included(prefix.clone()),
            Bound::Excluded(prefix_end.clone()),
        ),
        Some((segment, total)) => {
            let span = (u64::MAX as u128 + 1) / total as u128;
            let start = at_hash(segment as u128 * span);
            let end = if segment + 1 == total {
                prefix_end.clone()
            } else {
                at_hash((segment as u128 + 1) * span)
            };
            (Bound::Included(start), Bound::Excluded(end))
        }
    }
}

pub(crate) fn scan(service: &Service, input: ScanInput) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    check_table_name(&mut violations, input.table_name.as_deref());
    check_select(&mut violations, input.select.as_deref());
    check_limit(&mut violations, input.limit);
    let capacity =
        CapacityReport::parse(&mut violations, input.return_consumed_capacity.as_deref());
    check_segments(&mut violations, input.segment, input.total_segments);
    violations.into_result()?;
    let segment = match (input.segment, input.total_segments) {
        (Some(s), Some(t)) => Some((s as u64, t as u64)),
        (Some(_), None) => {
            return Err(DynamoError::validation(
                "The TotalSegments parameter is required but was not present in the request when Segment parameter is present",
            ));
        }
        (None, Some(_)) => {
            return Err(DynamoError::validation(
                "The Segment parameter is required but was not present in the request when parameter TotalSegments is present",
            ));
        }
        (None, None) => None,
    };
    let texts = ExpressionTexts {
        filter: input.filter_expression.as_deref(),
        projection: input.projection_expression.as_deref(),
        ..ExpressionTexts::default()
    };
    let legacy = LegacyParams {
        attributes_to_get: input.attributes_to_get.as_deref(),
        scan_filter: input.scan_filter.as_ref(),
        conditional_operator: input.conditional_operator.as_deref(),
        ..LegacyParams::default()
    };
    let expressions = parse_request_conditions(
        texts,
        legacy,
        input.expression_attribute_names.as_ref(),
        input.expression_attribute_values.as_ref(),
    )?;
    let projection = projection_parameter(
        input.projection_expression.is_some(),
        input.attributes_to_get.is_some(),
    );
    let select = resolve_select(
        input.select.as_deref(),
        projection,
        input.index_name.as_deref(),
    )?;
    let start_key = input
        .exclusive_start_key
        .as_ref()
        .map(parse_item)
        .transpose()?;

    let meta = table(service, input.table_name.as_deref().unwrap_or_default())?;
    let target = ReadTarget::new(&meta, input.index_name.as_deref())?;
    let consistent = input.consistent_read.unwrap_or(false);
    if consistent
        && target
            .index
            .is_some_and(|i| i.kind == crate::catalog::IndexKind::Global)
    {
        return Err(DynamoError::validation(
            "Consistent reads are not supported on global secondary indexes",
        ));
    }
    let (mut lower, upper) = segment_range(target.prefix(), segment);
    if let Some(start) = &start_key {
        lower = Bound::Excluded(target.start_key(start)?);
    }
    let roots = attribute_roots(
        expressions.projection.as_deref(),
        expressions.filter.as_ref(),
    );
    let request = PageRequest {
        lower,
        upper,
        reverse: false,
        limit: input.limit.map(|l| l as usize),
        filter: expressions.filter.as_ref(),
        projection: expressions.projection.as_deref(),
        select,
        fetch_from_table: target.fetches_from_table(select, &roots.0, &roots.1)?,
        consistent,
    };
    let snapshot = service.engine.snapshot()?;
    let page = read_page(&*snapshot, &target, &request)?;
    let capacity = target.capacity(capacity, &page, consistent);
    Ok(render_page(page, select, capacity))
}
