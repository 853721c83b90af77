//! One keep-alive HTTP/1.1 connection to a DynamoDB endpoint, sending SigV4-signed JSON 1.0
//! requests the way the AWS SDKs do (hyper 1 client connection, `aws-sigv4` signing).

use std::time::SystemTime;

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::requests::Call;
use crate::sign::{CONTENT_TYPE, Signer};

/// Where to send requests and how to sign them (any credentials: a fixed test key).
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `host:port`.
    pub authority: String,
    signer: Signer,
}

impl Endpoint {
    /// An endpoint from a URL such as `http://127.0.0.1:8000` (plain HTTP only).
    pub fn parse(url: &str, region: &str) -> anyhow::Result<Self> {
        let authority = url
            .strip_prefix("http://")
            .context("only http:// endpoints are supported")?
            .trim_end_matches('/')
            .to_string();
        let signer = Signer::new("AKIDHAVENBENCH", "haven-bench-secret", region, &authority);
        Ok(Endpoint { authority, signer })
    }

    /// Builds a signed request for `call`.
    pub fn signed_request(&mut self, call: Call) -> anyhow::Result<Request<Full<Bytes>>> {
        let target = target(call.op);
        let (date, authorization) =
            self.signer
                .sign(SystemTime::now(), target.to_str()?, call.body.as_bytes());
        Ok(Request::post("/")
            .header(http::header::HOST, &self.authority)
            .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
            .header("x-amz-target", target)
            .header("x-amz-date", date)
            .header(http::header::AUTHORIZATION, authorization)
            .body(Full::new(Bytes::from(call.body)))?)
    }
}

/// The `X-Amz-Target` header of an operation.
fn target(op: &'static str) -> HeaderValue {
    HeaderValue::from_static(match op {
        "GetItem" => "DynamoDB_20120810.GetItem",
        "PutItem" => "DynamoDB_20120810.PutItem",
        "UpdateItem" => "DynamoDB_20120810.UpdateItem",
        "Query" => "DynamoDB_20120810.Query",
        "BatchWriteItem" => "DynamoDB_20120810.BatchWriteItem",
        "CreateTable" => "DynamoDB_20120810.CreateTable",
        "DescribeTable" => "DynamoDB_20120810.DescribeTable",
        "DescribeStream" => "DynamoDBStreams_20120810.DescribeStream",
        "GetShardIterator" => "DynamoDBStreams_20120810.GetShardIterator",
        "GetRecords" => "DynamoDBStreams_20120810.GetRecords",
        other => {
            return HeaderValue::from_str(&format!("DynamoDB_20120810.{other}")).expect("ASCII");
        }
    })
}

/// A response: status and body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// One open connection.
pub struct Connection {
    endpoint: Endpoint,
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Opens a connection (TCP_NODELAY, as SDK clients do).
    pub async fn open(endpoint: &Endpoint) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(&endpoint.authority)
            .await
            .with_context(|| format!("cannot connect to {}", endpoint.authority))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection {
            endpoint: endpoint.clone(),
            sender,
        })
    }

    /// Sends `call` and reads the whole answer; reconnects once if the connection was closed.
    pub async fn send(&mut self, call: Call) -> anyhow::Result<Answer> {
        if self.sender.ready().await.is_err() {
            *self = Connection::open(&self.endpoint).await?;
        }
        let response = self
            .sender
            .send_request(self.endpoint.signed_request(call)?)
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_signed_with_sigv4() {
        let mut endpoint = Endpoint::parse("http://127.0.0.1:8000/", "us-east-1").unwrap();
        assert_eq!(endpoint.authority, "127.0.0.1:8000");
        let call = Call {
            op: "GetItem",
            body: "{}".into(),
        };
        let request = endpoint.signed_request(call).unwrap();
        let headers = request.headers();
        assert_eq!(headers["x-amz-target"], "DynamoDB_20120810.GetItem");
        let authorization = headers["authorization"].to_str().unwrap();
        assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDHAVENBENCH/"));
        assert!(authorization.contains("/us-east-1/dynamodb/aws4_request"));
        assert!(authorization.contains("x-amz-target"));
        assert!(headers.contains_key("x-amz-date"));
    }

    #[test]
    fn only_plain_http_endpoints() {
        assert!(Endpoint::parse("https://example.com", "us-east-1").is_err());
    }
}
