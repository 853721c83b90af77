//! The ceiling probe: a trivial server on the same stack as Haven (tokio multi-thread runtime,
//! hyper HTTP/1.1 keep-alive) that reads each request and answers with a canned 1 KB GetItem
//! response. Nothing a DynamoDB server does can be faster than this on the same machine.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::requests::{Layout, RequestBuilder};

/// The canned answer: the item a GetItem of item 0 would return.
pub fn canned_body() -> Bytes {
    let put = RequestBuilder::new("bench", Layout::Hash, 1024).put(0);
    let item = put
        .body
        .split_once(r#""Item":"#)
        .expect("a put holds an item")
        .1;
    Bytes::from(format!(r#"{{"Item":{}"#, item))
}

/// Serves the canned answer on `listen` until the process is stopped.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!(
        "ceiling server listening on http://{}",
        listener.local_addr()?
    );
    let body = canned_body();
    let crc = crc32(&body).to_string();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (body, crc) = (body.clone(), crc.clone());
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |request| {
                answer(request, body.clone(), crc.clone())
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), handler)
                .await;
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    body: Bytes,
    crc: String,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let _ = request.into_body().collect().await;
    Ok(Response::builder()
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-requestid", "00000000-0000-0000-0000-000000000000")
        .header("x-amz-crc32", crc)
        .body(Full::new(body))
        .expect("valid response"))
}

/// CRC-32 (IEEE), bitwise: computed once at start-up.
fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |mut crc, byte| {
        crc ^= *byte as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
        crc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_answer_is_a_get_item_response() {
        let value: serde_json::Value = serde_json::from_slice(&canned_body()).unwrap();
        assert_eq!(value["Item"]["pk"]["S"], "user000000000000");
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
