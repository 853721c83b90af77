//! The source endpoint: its two SDK clients, and the retry loop every call to it goes through.
//!
//! A source that throttles or stops answering is waited for, with backoff, for as long as it
//! takes: the copy keeps serving meanwhile and the status page says how stale it is. An answer
//! that says the request itself is wrong (no such table, no stream) is not retried.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_config::Region;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodbstreams::types::Shard;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::status::TableStatus;

/// Where the source is and whose credentials to sign with.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The endpoint URL (`https://dynamodb.eu-west-1.amazonaws.com`, `http://127.0.0.1:8000`).
    pub endpoint: String,
    /// The signing region; None: the AWS chain's (AWS_REGION, the profile's), else us-east-1.
    pub region: Option<String>,
    /// The profile of the shared AWS files; None: AWS_PROFILE, else `default`.
    pub profile: Option<String>,
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
/// The signing region when the chain names none (a local source does not care which).
const DEFAULT_REGION: &str = "us-east-1";

impl Source {
    /// Clients signed with the AWS SDK's default chain (environment variables, the profile's
    /// shared files, SSO, web identity, container and instance roles), once the chain has
    /// answered credentials: a source without any is refused now, with the reason, rather than
    /// retried for ever.
    pub async fn connect(config: SourceConfig) -> anyhow::Result<Source> {
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
        let mut loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
        if let Some(profile) = &config.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let shared = loader.load().await;
        let region = shared
            .region()
            .cloned()
            .unwrap_or_else(|| Region::new(DEFAULT_REGION));
        let credentials = shared
            .credentials_provider()
            .context("no credentials provider for the source")?;
        credentials.provide_credentials().await.map_err(|error| {
            anyhow::anyhow!(
                "no credentials for the source: {} (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                 name a profile with --source-profile or AWS_PROFILE, or run with a container or \
                 instance role)",
                DisplayErrorContext(&error)
            )
        })?;
        let tables = aws_sdk_dynamodb::config::Builder::from(&shared)
            .region(region.clone())
            .endpoint_url(&config.endpoint)
            .build();
        let streams = aws_sdk_dynamodbstreams::config::Builder::from(&shared)
            .region(region)
            .endpoint_url(&config.endpoint)
            .build();
        Ok(Source {
            config,
            tables: aws_sdk_dynamodb::Client::from_conf(tables),
            streams: aws_sdk_dynamodbstreams::Client::from_conf(streams),
        })
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
