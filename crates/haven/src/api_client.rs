//! A small DynamoDB JSON client for the operator commands (`haven backup`, `haven export`,
//! `haven import`): the same API any client uses, so they work against Haven or AWS alike, signed
//! with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY when set (a placeholder key otherwise, which a
//! server without --auth accepts).

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

/// How often the commands' waits ask again.
pub const POLL: Duration = Duration::from_millis(200);

/// A string member of an answer, or an error showing the answer.
pub fn text(value: &Value) -> anyhow::Result<&str> {
    value
        .as_str()
        .with_context(|| format!("unexpected answer: {value}"))
}

/// A DynamoDB JSON client for a few control-plane calls.
pub struct Client {
    endpoint: String,
    region: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(endpoint: &str, region: String) -> Client {
        Client {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            region,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .new_agent(),
        }
    }

    /// Calls one operation; an error answer becomes `<ErrorType>: <message>`.
    pub fn call(&self, operation: &str, request: Value) -> anyhow::Result<Value> {
        let body = request.to_string();
        let url = format!("{}/", self.endpoint);
        let target = format!("DynamoDB_20120810.{operation}");
        let headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", target.as_str()),
        ];
        let key_id = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "haven".into());
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "haven".into());
        let signing = haven_api::Signing {
            service: "dynamodb",
            region: &self.region,
            key: (&key_id, &secret),
        };
        let signed = signing
            .headers("POST", &url, &headers, body.as_bytes())
            .map_err(anyhow::Error::msg)?;
        let mut request = self.agent.post(&url);
        for (name, value) in headers.iter().copied() {
            request = request.header(name, value);
        }
        for (name, value) in &signed {
            request = request.header(name, value);
        }
        let mut response = request
            .send(body.as_bytes())
            .with_context(|| format!("cannot reach {}", self.endpoint))?;
        let status = response.status().as_u16();
        let answer: Value = response
            .body_mut()
            .read_json()
            .with_context(|| format!("{operation}: the answer is not JSON"))?;
        if status != 200 {
            let kind = answer["__type"].as_str().unwrap_or_default();
            let kind = kind.rsplit('#').next().unwrap_or(kind);
            bail!(
                "{operation}: {kind}: {}",
                answer["message"].as_str().unwrap_or_default()
            );
        }
        Ok(answer)
    }
}
