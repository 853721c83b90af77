//! DescribeContributorInsights, ListContributorInsights and UpdateContributorInsights: the
//! contributor insights settings of a table and of each of its global indexes, kept in the
//! table's metadata (`TableMeta::contributor_insights`).
//!
//! Haven keeps and answers the settings as DynamoDB does, but builds no report: DynamoDB's report
//! is a set of CloudWatch Contributor Insights rules (the most accessed and most throttled keys),
//! and Haven has no CloudWatch. So a description carries no ContributorInsightsRuleList.
//!
//! DynamoDB answers an ENABLE with ENABLING and reports ENABLED a second or more later (DISABLE:
//! DISABLING, then DISABLED). Clients wait for the settled status, so Haven reports the same
//! transition: the setting stores when it changed, and a status read within [`SETTLE_MS`] of the
//! change is the transitional one. Nothing runs in the background for it.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::control::enum_violation;
use super::update_table::modify_table;
use crate::Service;
use crate::catalog::{IndexKind, TableMeta};
use crate::error::{DynamoError, Violations};

/// How long ENABLING and DISABLING last before ENABLED and DISABLED (DynamoDB: 1 to 16 s).
const SETTLE_MS: u64 = 1_000;
const ACTIONS: [&str; 2] = ["ENABLE", "DISABLE"];
const MODES: [&str; 2] = ["ACCESSED_AND_THROTTLED_KEYS", "THROTTLED_KEYS"];
const DEFAULT_MODE: &str = "ACCESSED_AND_THROTTLED_KEYS";
/// Most summaries one ListContributorInsights page holds.
const MAX_PAGE: i64 = 100;

/// The setting of the table (`index` None) or of one of its global indexes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsightsSetting {
    pub index: Option<String>,
    pub enabled: bool,
    pub mode: String,
    /// When it was last enabled or disabled, in milliseconds.
    pub changed_ms: u64,
}

impl InsightsSetting {
    fn status(&self, now_ms: u64) -> &'static str {
        let settled = now_ms.saturating_sub(self.changed_ms) >= SETTLE_MS;
        match (self.enabled, settled) {
            (true, false) => "ENABLING",
            (true, true) => "ENABLED",
            (false, false) => "DISABLING",
            (false, true) => "DISABLED",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescribeContributorInsightsInput {
    table_name: Option<String>,
    index_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateContributorInsightsInput {
    table_name: Option<String>,
    index_name: Option<String>,
    contributor_insights_action: Option<String>,
    contributor_insights_mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListContributorInsightsInput {
    table_name: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

fn now_ms() -> u64 {
    (super::now() * 1000.0) as u64
}

fn check_names(violations: &mut Violations, table: Option<&str>, index: Option<&str>) {
    violations.name("tableName", table);
    if index.is_some() {
        violations.name("indexName", index);
    }
}

fn table_not_found(table: &str) -> DynamoError {
    DynamoError::ResourceNotFound(format!(
        "Requested resource not found: Table: {table} not found"
    ))
}

/// The table, which must have the global index named (a local index has no settings of its own).
fn lookup(
    service: &Service,
    table: &str,
    index: Option<&str>,
) -> Result<std::sync::Arc<TableMeta>, DynamoError> {
    let meta = service
        .catalog
        .get(table)?
        .ok_or_else(|| table_not_found(table))?;
    if let Some(index) = index
        && !has_global_index(&meta, index)
    {
        return Err(DynamoError::ResourceNotFound(format!(
            "Requested resource not found: Index: {index} not found for table: {table}"
        )));
    }
    Ok(meta)
}

fn has_global_index(meta: &TableMeta, index: &str) -> bool {
    meta.indexes
        .iter()
        .any(|i| i.kind == IndexKind::Global && i.name == index)
}

/// The setting of the table or of one of its global indexes (UpdateTable drops an index's setting
/// when it deletes the index).
fn setting<'m>(meta: &'m TableMeta, index: Option<&str>) -> Option<&'m InsightsSetting> {
    meta.contributor_insights
        .iter()
        .find(|s| s.index.as_deref() == index)
}

/// A summary or an update's answer: names, status and mode.
fn summary(table: &str, setting: &InsightsSetting, now_ms: u64) -> Value {
    let mut summary = json!({
        "TableName": table,
        "ContributorInsightsStatus": setting.status(now_ms),
        "ContributorInsightsMode": setting.mode,
    });
    if let Some(index) = &setting.index {
        summary["IndexName"] = json!(index);
    }
    summary
}

pub(crate) fn describe_contributor_insights(
    service: &Service,
    input: DescribeContributorInsightsInput,
) -> Result<Value, DynamoError> {
    let (table, index) = (input.table_name.as_deref(), input.index_name.as_deref());
    let mut violations = Violations::new();
    check_names(&mut violations, table, index);
    violations.into_result()?;
    let table = table.unwrap_or_default();
    let meta = lookup(service, table, index)?;
    let Some(setting) = setting(&meta, index) else {
        let mut answer = json!({ "TableName": table, "ContributorInsightsStatus": "DISABLED" });
        if let Some(index) = index {
            answer["IndexName"] = json!(index);
        }
        return Ok(answer);
    };
    let mut answer = summary(table, setting, now_ms());
    answer["LastUpdateDateTime"] = json!(setting.changed_ms as f64 / 1000.0);
    Ok(answer)
}

pub(crate) async fn update_contributor_insights(
    service: &Service,
    input: UpdateContributorInsightsInput,
) -> Result<Value, DynamoError> {
    let (table, index) = (input.table_name.as_deref(), input.index_name.as_deref());
    let mut violations = Violations::new();
    check_names(&mut violations, table, index);
    match &input.contributor_insights_action {
        None => violations.null("contributorInsightsAction"),
        Some(action) => enum_violation(
            &mut violations,
            "contributorInsightsAction",
            action,
            &ACTIONS,
        ),
    }
    if let Some(mode) = &input.contributor_insights_mode {
        enum_violation(&mut violations, "contributorInsightsMode", mode, &MODES);
    }
    violations.into_result()?;
    let table = table.unwrap_or_default();
    let enable = input.contributor_insights_action.as_deref() == Some("ENABLE");
    let mode = input.contributor_insights_mode.as_deref();
    let lookup = || lookup(service, table, index);
    modify_table(service, lookup, |meta| {
        let now = now_ms();
        let current = setting(meta, index);
        let wanted = InsightsSetting {
            index: index.map(str::to_owned),
            enabled: enable,
            // ENABLE without a mode is the default mode; DISABLE keeps the mode it had.
            mode: match (enable, mode, current) {
                (true, Some(mode), _) => mode.to_owned(),
                (false, _, Some(current)) => current.mode.clone(),
                _ => DEFAULT_MODE.to_owned(),
            },
            changed_ms: now,
        };
        // A request for what is already so changes nothing and echoes the status.
        let unchanged = match current {
            Some(current) => current.enabled == enable && current.mode == wanted.mode,
            None => !enable,
        };
        if unchanged {
            let echo = current.map_or_else(
                || json!({ "TableName": table, "ContributorInsightsStatus": "DISABLED" }),
                |current| summary(table, current, now),
            );
            return Ok((None, with_index(echo, index)));
        }
        let answer = summary(table, &wanted, now);
        let mut updated = meta.clone();
        updated
            .contributor_insights
            .retain(|s| s.index.as_deref() != index);
        updated.contributor_insights.push(wanted);
        Ok((Some(updated), answer))
    })
    .await
}

fn with_index(mut answer: Value, index: Option<&str>) -> Value {
    if let Some(index) = index {
        answer["IndexName"] = json!(index);
    }
    answer
}

/// Settings that are not DISABLED, of one table or of every table, table before its indexes,
/// tables in name order; NextToken is the last summary's `table/index` (`table/` for a table:
/// table names hold no `/`).
pub(crate) fn list_contributor_insights(
    service: &Service,
    input: ListContributorInsightsInput,
) -> Result<Value, DynamoError> {
    let mut violations = Violations::new();
    if let Some(table) = &input.table_name {
        violations.name("tableName", Some(table));
    }
    if let Some(max) = input.max_results {
        violations.range("maxResults", max, i64::MIN, MAX_PAGE);
    }
    violations.into_result()?;
    let limit = input.max_results.filter(|m| *m > 0).unwrap_or(MAX_PAGE) as usize;
    let tables = match &input.table_name {
        Some(table) => vec![lookup(service, table, None)?],
        None => {
            service.catalog.refresh()?;
            let names = service.catalog.names();
            let metas = names.iter().map(|name| service.catalog.get(name));
            metas
                .filter_map(Result::transpose)
                .collect::<Result<_, _>>()?
        }
    };
    let now = now_ms();
    let entries = tables.iter().flat_map(|meta| {
        let listed = meta
            .contributor_insights
            .iter()
            .filter(move |s| s.index.as_deref().is_none_or(|i| has_global_index(meta, i)))
            .filter(move |s| s.status(now) != "DISABLED");
        let mut listed: Vec<&InsightsSetting> = listed.collect();
        listed.sort_by_key(|s| s.index.clone().unwrap_or_default());
        listed.into_iter().map(move |s| (meta, s))
    });
    let position = |meta: &TableMeta, s: &InsightsSetting| {
        (meta.name.clone(), s.index.clone().unwrap_or_default())
    };
    let after = input.next_token.as_deref().map(|token| {
        let (table, index) = token.split_once('/').unwrap_or((token, ""));
        (table.to_owned(), index.to_owned())
    });
    let mut remaining =
        entries.filter(|(meta, s)| after.as_ref().is_none_or(|a| &position(meta, s) > a));
    let page: Vec<(&std::sync::Arc<TableMeta>, &InsightsSetting)> =
        remaining.by_ref().take(limit).collect();
    let mut answer = json!({
        "ContributorInsightsSummaries": page
            .iter()
            .map(|(meta, s)| summary(&meta.name, s, now))
            .collect::<Vec<_>>(),
    });
    if let (Some((meta, s)), Some(_)) = (page.last(), remaining.next()) {
        let (table, index) = position(meta, s);
        answer["NextToken"] = json!(format!("{table}/{index}"));
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_settles_after_a_second() {
        let setting = |enabled| InsightsSetting {
            index: None,
            enabled,
            mode: DEFAULT_MODE.into(),
            changed_ms: 10_000,
        };
        assert_eq!(setting(true).status(10_500), "ENABLING");
        assert_eq!(setting(true).status(11_000), "ENABLED");
        assert_eq!(setting(false).status(10_999), "DISABLING");
        assert_eq!(setting(false).status(20_000), "DISABLED");
    }
}
