//! The web console served at `/console`: plain HTML, CSS and JavaScript embedded in the binary
//! (no CDN, no build step), so it works air-gapped and its version is the server's.
//!
//! The console is only a client: it calls the same DynamoDB API from the browser, signing each
//! request with SigV4 (`console/sigv4.js`), so it has exactly the rights of the key it is given
//! (under `--auth` it asks for one; without, any signature is accepted, as for every client).
//! It is CSRF-safe because the API is: a request needs an `X-Amz-Target` header and a JSON content
//! type, which no form or simple cross-site request can send, and the server answers no CORS
//! preflight. The pages forbid framing and scripts from anywhere else (`SECURITY_HEADERS`), and
//! the key stays in the page's memory, never in a URL, in storage or in a log.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};

/// Each asset: its path, content type and bytes.
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "/console",
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    ),
    (
        "/console/app.js",
        "text/javascript; charset=utf-8",
        include_str!("console/app.js"),
    ),
    (
        "/console/sigv4.js",
        "text/javascript; charset=utf-8",
        include_str!("console/sigv4.js"),
    ),
    (
        "/console/style.css",
        "text/css; charset=utf-8",
        include_str!("console/style.css"),
    ),
];

/// Headers on every console response: only this origin's scripts, styles and API; no framing
/// (clickjacking); no sniffing; no referrer.
const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

/// Whether `path` is the console's.
pub(crate) fn is_console(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// The asset at `path` (`/console/` is the page too), or 404.
pub(crate) fn asset(path: &str, request_id: &str) -> Response<Full<Bytes>> {
    let path = if path == "/console/" {
        "/console"
    } else {
        path
    };
    let found = ASSETS.iter().find(|(asset, _, _)| *asset == path);
    let (status, content_type, body) = match found {
        Some((_, content_type, body)) => (StatusCode::OK, *content_type, *body),
        None => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no such page\n",
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        "x-amzn-requestid",
        HeaderValue::from_str(request_id).expect("uuid is ASCII"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_the_security_headers_and_others_are_not_found() {
        for (path, content_type, _) in ASSETS {
            let response = asset(path, "id");
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["content-type"], content_type);
            assert_eq!(response.headers()["x-frame-options"], "DENY");
        }
        assert_eq!(asset("/console/", "id").status(), StatusCode::OK);
        assert_eq!(
            asset("/console/../etc", "id").status(),
            StatusCode::NOT_FOUND
        );
        assert!(is_console("/console/app.js") && !is_console("/consoles"));
    }
}
