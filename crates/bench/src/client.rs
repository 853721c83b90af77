//! One keep-alive HTTP/1.1 connection to a DynamoDB endpoint, sending SigV4-signed JSON 1.0
//! requests the way the AWS SDKs do (hyper 1 client connection, `aws-sigv4` signing).

use std::time::SystemTime;

use anyhow::Context;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::requests::Call;

/// Where to send requests and how to sign them.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `host:port`.
    pub authority: String,
    pub region: String,
    identity: Identity,
}

impl Endpoint {
    /// An endpoint from a URL such as `http://127.0.0.1:8000` (plain HTTP only).
    pub fn parse(url: &str, region: &str) -> anyhow::Result<Self> {
        let authority = url
            .strip_prefix("http://")
            .context("only http:// endpoints are supported")?
            .trim_end_matches('/')
            .to_string();
        let credentials =
            Credentials::new("AKIDHAVENBENCH", "haven-bench-secret", None, None, "bench");
        Ok(Endpoint {
            authority,
            region: region.to_string(),
            identity: credentials.into(),
        })
    }

    /// Builds a signed request for `call`.
    pub fn signed_request(&self, call: &Call) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut request = Request::post("/")
            .header(http::header::HOST, &self.authority)
            .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.0")
            .header("x-amz-target", target(call.op))
            .body(())?;
        self.sign(&mut request, call.body.as_bytes())?;
        let (parts, ()) = request.into_parts();
        Ok(Request::from_parts(
            parts,
            Full::new(Bytes::from(call.body.clone())),
        ))
    }

    fn sign(&self, request: &mut Request<()>, body: &[u8]) -> anyhow::Result<()> {
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("dynamodb")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let headers = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("")));
        let url = format!("http://{}/", self.authority);
        let signable = SignableRequest::new("POST", &url, headers, SignableBody::Bytes(body))?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

fn target(op: &'static str) -> HeaderValue {
    HeaderValue::from_str(&format!("DynamoDB_20120810.{op}")).expect("operation names are ASCII")
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
    pub async fn send(&mut self, call: &Call) -> anyhow::Result<Answer> {
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
        let endpoint = Endpoint::parse("http://127.0.0.1:8000/", "us-east-1").unwrap();
        assert_eq!(endpoint.authority, "127.0.0.1:8000");
        let call = Call {
            op: "GetItem",
            body: "{}".into(),
        };
        let request = endpoint.signed_request(&call).unwrap();
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
