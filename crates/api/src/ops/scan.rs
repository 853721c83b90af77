//! Scan: the whole table in storage order (hashed partition order, as DynamoDB), or one segment of
//! a parallel scan. Segment `s` of `n` covers the partition hashes in `[s·2⁶⁴/n, (s+1)·2⁶⁴/n)`, so the
//! segments are disjoint and together cover the table exactly once.

use std::ops::Bound;

use serde_json::Value;

use crate::Service;
use crate::error::{DynamoError, Violations};
use crate::expressions::LegacyParams;
use crate::items::table;
use crate::pages::{ReadCommon, read_input, read_page, render_page};
use crate::reply::Reply;

/// DynamoDB's maximum TotalSegments.
const MAX_SEGMENTS: i64 = 1_000_000;

pub(crate) struct ScanInput {
    common: ReadCommon,
    segment: Option<i64>,
    total_segments: Option<i64>,
    scan_filter: Option<serde_json::Map<String, Value>>,
}

read_input!(ScanInput {
    segment: Option<i64>,
    total_segments: Option<i64>,
    scan_filter: Option<serde_json::Map<String, Value>>,
});

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
pub(crate) fn segment_range(
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

pub(crate) fn scan(service: &Service, input: ScanInput) -> Result<Reply, DynamoError> {
    let common = &input.common;
    let mut violations = Violations::new();
    let capacity = common.check(&mut violations);
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
    let legacy = LegacyParams {
        scan_filter: input.scan_filter.as_ref(),
        ..LegacyParams::default()
    };
    let plan = common.plan(None, legacy)?;

    let meta = table(service, common.table_name())?;
    let target = common.target(&meta, plan.consistent)?;
    let (mut lower, upper) = segment_range(target.prefix(), segment);
    if let Some(start) = &plan.start_key {
        lower = Bound::Excluded(target.start_key(start)?);
    }
    let request = plan.page_request(&target, (lower, upper), false, common.limit)?;
    target.admit(service)?;
    let snapshot = service.engine.snapshot()?;
    let page = read_page(&*snapshot, &target, &request)?;
    let capacity = target.capacity(service, capacity, &page, plan.consistent);
    Ok(render_page(page, plan.select, capacity))
}
