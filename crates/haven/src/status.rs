//! `haven status`: a running server's state in a few lines, for an operator at a terminal.
//!
//! It reads only what the server already serves to anyone, `/health` and `/metrics` (so it needs
//! no key, also under `--auth`), and sums the metrics into a summary: whether the node serves,
//! requests and errors by type, throttling, what is executing and waiting, the tables' sizes and
//! the storage's commits. The same numbers, graphed over time, are the Grafana dashboard's
//! (docs/metrics.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context;

/// One scrape: each sample's metric name, its labels, its value.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Prints the status of the server at `endpoint`.
pub fn run(endpoint: &str) -> anyhow::Result<()> {
    let endpoint = endpoint.trim_end_matches('/');
    let health = get(&format!("{endpoint}/health"))
        .with_context(|| format!("no Haven answers at {endpoint}"))?;
    let metrics = get(&format!("{endpoint}/metrics"))
        .context("the server does not serve /metrics (started with --no-metrics?)")?;
    let serving = health.contains("serving");
    print!("{}", summary(endpoint, serving, &parse(&metrics)));
    Ok(())
}

fn get(url: &str) -> anyhow::Result<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    Ok(agent.get(url).call()?.body_mut().read_to_string()?)
}

/// The samples of an OpenMetrics text (label values hold no `"` or `,` in Haven's metrics but
/// a table name's, which DynamoDB limits to `[a-zA-Z0-9_.-]`).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                .collect();
            let value = value.parse().ok()?;
            Some(Sample {
                name: name.to_string(),
                labels,
                value,
            })
        })
        .collect()
}

/// The sum of `name`'s samples, grouped by the value of `label` ("" to sum them all).
fn by(samples: &[Sample], name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for sample in samples.iter().filter(|s| s.name == name) {
        let key = sample.labels.get(label).cloned().unwrap_or_default();
        *sums.entry(key).or_insert(0.0) += sample.value;
    }
    sums
}

fn total(samples: &[Sample], name: &str) -> f64 {
    by(samples, name, "").values().sum()
}

fn summary(endpoint: &str, serving: bool, samples: &[Sample]) -> String {
    let mut out = String::new();
    let state = if serving { "serving" } else { "NOT serving" };
    let _ = writeln!(out, "Haven at {endpoint}: {state}");
    let outcomes = by(samples, "haven_requests_total", "outcome");
    let requests: f64 = outcomes.values().sum();
    let errors: Vec<String> = outcomes
        .iter()
        .filter(|(outcome, _)| *outcome != "ok")
        .map(|(outcome, count)| format!("{outcome} {count}"))
        .collect();
    let errors = if errors.is_empty() {
        "none".to_string()
    } else {
        errors.join(", ")
    };
    let _ = writeln!(out, "requests: {requests} since start; errors: {errors}");
    let _ = writeln!(
        out,
        "now: {} executing, {} queued, {} connections; throttled since start: {}",
        total(samples, "haven_in_flight_requests"),
        total(samples, "haven_queued_requests"),
        total(samples, "haven_open_connections"),
        total(samples, "haven_throttled_requests_total"),
    );
    let items = by(samples, "haven_table_items", "table");
    let bytes = by(samples, "haven_table_size_bytes", "table");
    let _ = writeln!(out, "tables: {}", items.len());
    for (table, count) in &items {
        let size = bytes.get(table).copied().unwrap_or(0.0);
        let _ = writeln!(out, "  {table}: {count} items, {size} bytes");
    }
    let commits = total(samples, "haven_storage_commit_batches_count");
    let batches = total(samples, "haven_storage_commit_batches_sum");
    let per_commit = if commits > 0.0 {
        batches / commits
    } else {
        0.0
    };
    let _ = writeln!(
        out,
        "storage: {commits} commits of {per_commit:.1} write batches on average, {} failed",
        total(samples, "haven_storage_commit_failures_total"),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_adds_up_the_metrics() {
        let text = r#"# TYPE haven_requests counter
haven_requests_total{operation="GetItem",outcome="ok"} 5
haven_requests_total{operation="PutItem",outcome="ok"} 2
haven_requests_total{operation="PutItem",outcome="ValidationException"} 1
haven_throttled_requests_total{operation="Scan"} 3
haven_in_flight_requests 1
haven_queued_requests 0
haven_open_connections 4
haven_table_items{table="Music"} 7
haven_table_size_bytes{table="Music"} 700
haven_storage_commit_batches_sum 12.0
haven_storage_commit_batches_count 4
haven_storage_commit_failures_total 0
# EOF
"#;
        let summary = summary("http://h", true, &parse(text));
        assert_eq!(
            summary,
            "Haven at http://h: serving\n\
             requests: 8 since start; errors: ValidationException 1\n\
             now: 1 executing, 0 queued, 4 connections; throttled since start: 3\n\
             tables: 1\n  Music: 7 items, 700 bytes\n\
             storage: 4 commits of 3.0 write batches on average, 0 failed\n"
        );
    }
}
