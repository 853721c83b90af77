//! The source endpoint: its two SDK clients, and the retry loop every call to it goes through.
//!
//! A source that throttles or stops answering is waited for, with backoff, for as long as it
//! takes: the copy keeps serving meanwhile and the status page says how stale it is. An answer
//! that says the request itself is wrong (no such table, no stream) is not retried.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodbstreams::types::Shard;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::status::TableStatus;

/// Where the source is and how to sign for it.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The endpoint URL (`https://dynamodb.eu-west-1.amazonaws.com`, `http://127.0.0.1:8000`).
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// Clients for the source's tables and streams.
#[derive(Clone)]
pub struct Source {
    pub config: SourceConfig,
    pub tables: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
}

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

impl Source {
    pub fn new(config: SourceConfig) -> Source {
        let http = if config.endpoint.starts_with("https://") {
            use aws_smithy_http_client::tls;
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https()
        } else {
            aws_smithy_http_client::Builder::new().build_http()
        };
        let credentials = aws_sdk_dynamodb::config::Credentials::new(
            &config.access_key_id,
            &config.secret_access_key,
            config.session_token.clone(),
            None,
            "haven-mirror",
        );
        let tables = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new(config.region.clone()))
            .endpoint_url(&config.endpoint)
            .credentials_provider(credentials.clone())
            .http_client(http.clone())
            .build();
        let streams = aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodbstreams::config::Region::new(
                config.region.clone(),
            ))
            .endpoint_url(&config.endpoint)
            .credentials_provider(credentials)
            .http_client(http)
            .build();
        Source {
            config,
            tables: aws_sdk_dynamodb::Client::from_conf(tables),
            streams: aws_sdk_dynamodbstreams::Client::from_conf(streams),
        }
    }
}

/// Whether an error is the source being busy or away (worth waiting for), rather than an answer.
pub(crate) fn transient<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    match error {
        SdkError::ServiceError(_) => matches!(
            error.code(),
            Some(
                "ThrottlingException"
                    | "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
                    | "LimitExceededException"
                    | "InternalServerError"
                    | "ServiceUnavailable"
            )
        ),
        _ => true,
    }
}

/// Runs `call` until it succeeds or fails with an answer, waiting with capped exponential backoff
/// in between; the table's status shows the source as unreachable while it waits.
pub async fn retrying<T, E, R, F, Fut>(
    status: &Arc<TableStatus>,
    what: &str,
    mut call: F,
) -> Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        match call().await {
            Ok(value) => {
                status.source_answered();
                return Ok(value);
            }
            Err(error) if transient(&error) => {
                let reason = describe(&error);
                tracing::warn!(table = %status.table, what, %reason, ?backoff, "source unavailable; retrying");
                status.source_failed(reason);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(error) => return Err(error),
        }
    }
}

/// An SDK error in one line: the service's code and message, or the transport's failure.
pub fn describe<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    error: &SdkError<E, R>,
) -> String {
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            text
        }
    }
}

/// Shards listed at most (DescribeStream pages of 100).
const MAX_SHARD_PAGES: usize = 1000;

/// Every shard of the stream at `arn`, in DescribeStream's order.
pub async fn shards(
    source: &Source,
    status: &Arc<TableStatus>,
    arn: &str,
) -> anyhow::Result<Vec<Shard>> {
    let mut shards = Vec::new();
    let mut start: Option<String> = None;
    for _ in 0..MAX_SHARD_PAGES {
        let answer = retrying(status, "DescribeStream", || {
            source
                .streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
        })
        .await
        .map_err(|e| anyhow::anyhow!("cannot describe stream {arn}: {}", describe(&e)))?;
        let Some(description) = answer.stream_description else {
            break;
        };
        shards.extend(description.shards.unwrap_or_default());
        start = description.last_evaluated_shard_id;
        if start.is_none() {
            break;
        }
    }
    Ok(shards)
}
