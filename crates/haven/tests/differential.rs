//! Differential tests: every case in `tests/differential/*.json` (at the repository root) is sent,
//! step by step, to Haven and to AWS's DynamoDB Local, and the two answers (HTTP status and JSON
//! body) must match after normalisation. A step may pin Haven to the real service's answer where
//! DynamoDB Local differs from it (`"haven"` plus a `"why"` pointing to docs/compatibility.md).
//!
//! Case file format (one JSON object per file):
//!
//! ```json
//! { "cases": [ { "name": "...", "steps": [
//!     { "op": "PutItem", "request": { ... },
//!       "headers": { "X-Amz-Date": null },      // optional: override (string) or remove (null)
//!       "raw_body": "{not json",                  // optional: sent instead of `request`
//!       "haven": { "status": 400, "body": { ... } }, // optional: Haven's expected answer
//!       "why": "..." }                             // required with "haven"
//!
//! With `"haven": { ..., "match": "type" }` only the status and `__type` are compared.
//! ] } ] }
//! ```
//!
//! A step with `"unordered_items": true` compares `Items`, every table's list under `Responses`
//! and `UnprocessedItems`, and a `ConsumedCapacity` list as multisets: DynamoDB does not specify
//! the order of a Scan across partitions nor of a BatchGetItem's answer.
//!
//! Inside a request, `{"$repeat": ["ab", 3]}` stands for the string `"ababab"` (large items).
//!
//! DynamoDB Streams: a step with `"service": "streams"` is sent with the `DynamoDBStreams_20120810`
//! target. `"save": {"name": "/json/pointer"}` keeps a value of each server's own answer (a stream
//! ARN, a shard id, an iterator), and `{"$var": "name"}` in a later request of the case stands for
//! it, so each server is asked about its own streams. Stream labels, shard ids, sequence numbers,
//! event ids, times and regions differ by nature and are compared as present or absent.
//!
//! Environment: `DIFFERENTIAL_FILTER=<substring>` runs only the cases whose name contains it;
//! `DIFFERENTIAL_VERBOSE=1` prints every step's answers; `DIFFERENTIAL_REPORT=<file>` also writes
//! each mismatch there as a JSON line.

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use common::HavenServer;
use common::dynamodb_local::{DynamoDbLocal, repo_root};
use serde_json::{Map, Value, json};

const TARGET_PREFIX: &str = "DynamoDB_20120810.";
const STREAMS_TARGET_PREFIX: &str = "DynamoDBStreams_20120810.";

/// The headers every step sends unless it overrides them.
const DEFAULT_HEADERS: &[(&str, &str)] = &[
    ("Content-Type", "application/x-amz-json-1.0"),
    ("X-Amz-Date", "20260101T000000Z"),
    (
        "Authorization",
        "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=abcd",
    ),
];

/// Response members whose values differ by nature between two servers (timestamps, ARNs, ids).
const VOLATILE_MEMBERS: &[&str] = &[
    "CreationDateTime",
    "LastUpdateToPayPerRequestDateTime",
    "LastIncreaseDateTime",
    "LastDecreaseDateTime",
    "TableArn",
    "TableId",
];

/// Stream members whose values differ by nature: compared only as present or absent.
const PLACEHOLDER_MEMBERS: &[&str] = &[
    "StreamLabel",
    "LatestStreamLabel",
    "ShardId",
    "ParentShardId",
    "LastEvaluatedShardId",
    "SequenceNumber",
    "StartingSequenceNumber",
    "EndingSequenceNumber",
    "eventID",
    "ApproximateCreationDateTime",
    "CreationRequestDateTime",
    "awsRegion",
];

/// One HTTP answer: status and body (JSON when it parses, else the raw text as a JSON string).
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn render(&self) -> String {
        format!("{} {}", self.status, abbreviate(&self.body.to_string()))
    }
}

/// A client for one server.
struct Client {
    agent: ureq::Agent,
    endpoint: String,
}

impl Client {
    fn new(endpoint: String) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Client { agent, endpoint }
    }

    /// Sends one step: default headers, then the step's overrides, then its body. `op` is the
    /// whole target's operation part (`DynamoDBStreams_20120810.` prefixed for Streams steps).
    fn send(&self, op: Option<&str>, headers: &[(String, Option<String>)], body: &[u8]) -> Answer {
        let mut all: Vec<(String, String)> = DEFAULT_HEADERS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(op) = op {
            let target = if op.starts_with(STREAMS_TARGET_PREFIX) {
                op.to_string()
            } else {
                format!("{TARGET_PREFIX}{op}")
            };
            all.push(("X-Amz-Target".into(), target));
        }
        for (name, value) in headers {
            all.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            if let Some(value) = value {
                all.push((name.clone(), value.clone()));
            }
        }
        let mut request = self.agent.post(&format!("{}/", self.endpoint));
        for (name, value) in &all {
            request = request.header(name, value);
        }
        let mut response = request
            .send(body)
            .unwrap_or_else(|e| panic!("request to {} failed: {e}", self.endpoint));
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer { status, body }
    }

    fn call(&self, op: &str, request: &Value) -> Answer {
        self.send(Some(op), &[], request.to_string().as_bytes())
    }

    /// Deletes every table, so that the next case starts from nothing.
    fn delete_all_tables(&self) {
        let mut names = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let mut request = json!({});
            if let Some(start) = &start {
                request["ExclusiveStartTableName"] = json!(start);
            }
            let answer = self.call("ListTables", &request);
            assert_eq!(
                answer.status,
                200,
                "ListTables on {} failed: {}",
                self.endpoint,
                answer.render()
            );
            for name in answer.body["TableNames"].as_array().into_iter().flatten() {
                names.push(name.as_str().unwrap_or_default().to_string());
            }
            match answer.body["LastEvaluatedTableName"].as_str() {
                Some(last) => start = Some(last.to_string()),
                None => break,
            }
        }
        for name in names {
            let mut answer = self.call("DeleteTable", &json!({ "TableName": name }));
            if answer.status != 200 {
                // A case may leave deletion protection on.
                let request = json!({ "TableName": name, "DeletionProtectionEnabled": false });
                self.call("UpdateTable", &request);
                answer = self.call("DeleteTable", &json!({ "TableName": name }));
            }
            assert_eq!(
                answer.status,
                200,
                "DeleteTable {name} on {} failed: {}",
                self.endpoint,
                answer.render()
            );
        }
    }
}

/// Makes two answers comparable: drops volatile members and ARNs, folds `Message` into `message`,
/// turns numbers into floats (1 and 1.0 mean the same to every SDK), sorts set members and object
/// keys, and reduces a NextToken (opaque, each server's own) to its presence.
fn normalise(value: &Value) -> Value {
    match value {
        Value::Object(object) => {
            let mut members: Vec<(String, Value)> = Vec::new();
            for (key, member) in object {
                if VOLATILE_MEMBERS.contains(&key.as_str()) || key.ends_with("Arn") {
                    continue;
                }
                let key = if key == "Message" {
                    "message".to_string()
                } else {
                    key.clone()
                };
                if PLACEHOLDER_MEMBERS.contains(&key.as_str()) {
                    members.push((key, json!("<varies>")));
                    continue;
                }
                let mut member = normalise(member);
                if key == "NextToken" {
                    // Each server encodes its own resume point: only its presence compares.
                    member = json!("<token>");
                }
                if matches!(key.as_str(), "SS" | "NS" | "BS")
                    && let Value::Array(items) = &mut member
                {
                    items.sort_by_key(|v| v.to_string());
                }
                members.push((key, member));
            }
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(members.into_iter().collect::<Map<String, Value>>())
        }
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        Value::Number(n) => json!(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) if s.starts_with("arn:") => json!("<arn>"),
        other => other.clone(),
    }
}

/// Sorts the order-free lists of an already normalised answer: `Items`, each table's list under
/// `Responses` and `UnprocessedItems`, and a `ConsumedCapacity` list.
fn sort_unordered(value: &mut Value) {
    fn sort(list: &mut Value) {
        if let Value::Array(items) = list {
            items.sort_by_key(|v| v.to_string());
        }
    }
    let Value::Object(object) = value else {
        return;
    };
    for (key, member) in object.iter_mut() {
        match key.as_str() {
            "Items" | "ConsumedCapacity" => sort(member),
            "Responses" | "UnprocessedItems" => {
                if let Value::Object(tables) = member {
                    tables.values_mut().for_each(sort);
                }
            }
            _ => {}
        }
    }
}

/// Replaces each `{"$var": name}` with the value saved under `name` from this server's answers.
fn substitute(value: &Value, saved: &Map<String, Value>) -> Value {
    match value {
        Value::Object(object) => {
            if let (1, Some(Value::String(name))) = (object.len(), object.get("$var")) {
                return saved
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| panic!("no saved value {name:?}"));
            }
            Value::Object(
                object
                    .iter()
                    .map(|(k, v)| (k.clone(), substitute(v, saved)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, saved)).collect()),
        other => other.clone(),
    }
}

/// Keeps the values a step's `save` names from one server's answer.
fn save(step: &Step, answer: &Answer, saved: &mut Map<String, Value>) {
    for (name, pointer) in &step.save {
        if let Some(value) = answer.body.pointer(pointer) {
            saved.insert(name.clone(), value.clone());
        }
    }
}

/// Expands `{"$repeat": [text, count]}` into `text` repeated `count` times.
fn expand(value: &Value) -> Value {
    match value {
        Value::Object(object) => {
            if let (1, Some(Value::Array(args))) = (object.len(), object.get("$repeat")) {
                let text = args[0].as_str().expect("$repeat text");
                let count = args[1].as_u64().expect("$repeat count") as usize;
                return Value::String(text.repeat(count));
            }
            Value::Object(object.iter().map(|(k, v)| (k.clone(), expand(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(expand).collect()),
        other => other.clone(),
    }
}

fn abbreviate(text: &str) -> String {
    const MAX: usize = 3000;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

struct Step {
    op: Option<String>,
    request: Value,
    headers: Vec<(String, Option<String>)>,
    raw_body: Option<String>,
    haven: Option<Answer>,
    /// The override pins only the status and `__type` (`"match": "type"`), for errors whose exact
    /// wording in the real service is not recorded anywhere we can cite.
    type_only: bool,
    /// Item lists are compared as multisets (`"unordered_items": true`).
    unordered_items: bool,
    /// Values to keep from each server's answer: (name, JSON pointer).
    save: Vec<(String, String)>,
}

struct Case {
    file: String,
    name: String,
    steps: Vec<Step>,
}

fn load_cases() -> Vec<Case> {
    let dir = repo_root().join("tests/differential");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    let mut names = std::collections::HashSet::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let document: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: invalid JSON: {e}"));
        for case in document["cases"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: no \"cases\" array"))
        {
            let name = case["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: a case has no name"))
                .to_string();
            assert!(
                names.insert(name.clone()),
                "{file}: duplicate case name {name:?}"
            );
            let steps = case["steps"]
                .as_array()
                .unwrap_or_else(|| panic!("{file}: case {name:?} has no steps"))
                .iter()
                .map(|step| parse_step(&file, &name, step))
                .collect();
            cases.push(Case {
                file: file.clone(),
                name,
                steps,
            });
        }
    }
    cases
}

fn parse_step(file: &str, case: &str, step: &Value) -> Step {
    let known = [
        "op",
        "request",
        "headers",
        "raw_body",
        "haven",
        "why",
        "unordered_items",
        "service",
        "save",
    ];
    for key in step.as_object().expect("a step is an object").keys() {
        assert!(
            known.contains(&key.as_str()),
            "{file}: case {case:?}: unknown step field {key:?}"
        );
    }
    let haven = step.get("haven").map(|expected| {
        assert!(
            step["why"].as_str().is_some_and(|w| !w.is_empty()),
            "{file}: case {case:?}: a \"haven\" override needs a \"why\""
        );
        Answer {
            status: expected["status"]
                .as_u64()
                .unwrap_or_else(|| panic!("{file}: case {case:?}: override without status"))
                as u16,
            body: expected.get("body").cloned().unwrap_or(Value::Null),
        }
    });
    let headers = step
        .get("headers")
        .and_then(Value::as_object)
        .map(|headers| {
            headers
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
                .collect()
        })
        .unwrap_or_default();
    let op = step["op"]
        .as_str()
        .map(|op| match step["service"].as_str() {
            Some("streams") => format!("{STREAMS_TARGET_PREFIX}{op}"),
            Some(other) => panic!("{file}: case {case:?}: unknown service {other:?}"),
            None => op.to_string(),
        });
    let save = step
        .get("save")
        .and_then(Value::as_object)
        .map(|saves| {
            saves
                .iter()
                .map(|(name, pointer)| {
                    (
                        name.clone(),
                        pointer.as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Step {
        op,
        save,
        request: expand(step.get("request").unwrap_or(&json!({}))),
        headers,
        raw_body: step["raw_body"].as_str().map(str::to_string),
        type_only: step["haven"]["match"] == "type",
        unordered_items: step["unordered_items"] == true,
        haven,
    }
}

#[test]
fn haven_answers_like_dynamodb_local() {
    let cases = load_cases();
    let filter = std::env::var("DIFFERENTIAL_FILTER").unwrap_or_default();
    let verbose = std::env::var_os("DIFFERENTIAL_VERBOSE").is_some();
    let local = DynamoDbLocal::start();
    let haven_server = HavenServer::start_in_memory();
    let haven = Client::new(haven_server.endpoint());
    let oracle = Client::new(local.endpoint());

    let mut report = std::env::var_os("DIFFERENTIAL_REPORT")
        .map(|path| std::fs::File::create(path).expect("create the report file"));
    let (mut case_count, mut step_count, mut mismatches) = (0, 0, 0);
    let mut stale_overrides = Vec::new();
    for case in cases.iter().filter(|c| c.name.contains(&filter)) {
        case_count += 1;
        haven.delete_all_tables();
        oracle.delete_all_tables();
        let (mut saved_haven, mut saved_local) = (Map::new(), Map::new());
        for (index, step) in case.steps.iter().enumerate() {
            step_count += 1;
            let body = |saved: &Map<String, Value>| match &step.raw_body {
                Some(raw) => raw.clone().into_bytes(),
                None => substitute(&step.request, saved).to_string().into_bytes(),
            };
            let from_haven = haven.send(step.op.as_deref(), &step.headers, &body(&saved_haven));
            let from_local = oracle.send(step.op.as_deref(), &step.headers, &body(&saved_local));
            save(step, &from_haven, &mut saved_haven);
            save(step, &from_local, &mut saved_local);
            let expected = step.haven.as_ref().unwrap_or(&from_local);
            let comparable = |body: &Value| {
                let mut body = normalise(body);
                if step.unordered_items {
                    sort_unordered(&mut body);
                }
                body
            };
            let same = |a: &Answer, b: &Answer| {
                if step.type_only {
                    a.status == b.status && a.body.get("__type") == b.body.get("__type")
                } else {
                    a.status == b.status && comparable(&a.body) == comparable(&b.body)
                }
            };
            let label = format!(
                "[{}] {:?} step {} ({})",
                case.file,
                case.name,
                index + 1,
                step.op.as_deref().unwrap_or("no target")
            );
            if !same(&from_haven, expected) {
                mismatches += 1;
                if let Some(report) = &mut report {
                    let line = json!({
                        "file": case.file, "case": case.name, "step": index,
                        "haven": {"status": from_haven.status, "body": from_haven.body},
                        "local": {"status": from_local.status, "body": from_local.body},
                    });
                    writeln!(report, "{line}").unwrap();
                }
                let request = match &step.raw_body {
                    Some(raw) => format!("raw body {raw:?}"),
                    None => abbreviate(&step.request.to_string()),
                };
                println!("MISMATCH {label}");
                println!("  request:        {request}");
                if !step.headers.is_empty() {
                    println!("  headers:        {:?}", step.headers);
                }
                println!("  haven:          {}", from_haven.render());
                if step.haven.is_some() {
                    println!("  expected:       {}", expected.render());
                }
                println!("  dynamodb-local: {}", from_local.render());
            } else if verbose {
                println!("ok {label}: {}", from_haven.render());
            }
            let agree = from_local.status == from_haven.status
                && comparable(&from_local.body) == comparable(&from_haven.body);
            if step.haven.is_some() && agree {
                stale_overrides.push(label);
            }
        }
    }
    for label in &stale_overrides {
        println!("NOTE {label}: DynamoDB Local and Haven now agree; the override can go");
    }
    println!("differential: {case_count} cases, {step_count} steps, {mismatches} mismatches");
    assert!(case_count > 0, "no differential case matched {filter:?}");
    assert_eq!(
        mismatches, 0,
        "Haven and DynamoDB Local disagree; see above"
    );
}
