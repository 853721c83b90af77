//! CORS, so that JavaScript in a browser page can call the server (`--cors`, DynamoDB Local's
//! `-cors`).
//!
//! Answered as DynamoDB Local 3.3 answers (observed): a preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) gets a 200 with `Access-Control-Allow-Methods: POST`, the
//! requested headers echoed in `Access-Control-Allow-Headers`, `Access-Control-Max-Age: 1728000`
//! and, for an origin in the allow-list, `Access-Control-Allow-Origin: <origin>`; an API answer
//! to a listed origin carries `Access-Control-Allow-Origin` too. One difference: for `*` DynamoDB
//! Local sends no `Access-Control-Allow-Origin` at all, so browsers refuse its answers; Haven
//! echoes the origin, which is what `*` is meant to allow. Haven also exposes the response
//! headers SDKs read (`x-amzn-RequestId`, `x-amz-crc32`).

use hyper::Method;
use hyper::header::{HeaderMap, HeaderValue};

/// The origins allowed to call the server.
#[derive(Debug, Clone)]
pub enum Cors {
    /// Any origin (`*`).
    Any,
    /// Only these origins, compared exactly (`scheme://host[:port]`).
    Origins(Vec<String>),
}

/// How long a browser may cache a preflight's answer, in seconds (DynamoDB Local's 20 days).
const MAX_AGE: &str = "1728000";
/// Response headers a browser script may read: the ones SDKs check.
const EXPOSED: &str = "x-amzn-RequestId,x-amz-crc32";
/// Longest `Access-Control-Request-Headers` echoed back (a preflight's is a few dozen bytes).
const MAX_ECHOED: usize = 4096;

impl Cors {
    /// Parses DynamoDB Local's `-cors` value: `*`, or origins separated by commas.
    pub fn parse(list: &str) -> Cors {
        let origins: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .map(str::to_owned)
            .collect();
        if origins.is_empty() || origins.iter().any(|origin| origin == "*") {
            Cors::Any
        } else {
            Cors::Origins(origins)
        }
    }

    /// Whether scripts from `origin` may call the server.
    fn allows(&self, origin: &HeaderValue) -> bool {
        match self {
            Cors::Any => true,
            Cors::Origins(list) => origin
                .to_str()
                .is_ok_and(|origin| list.iter().any(|o| o == origin)),
        }
    }

    /// The headers of the answer to a preflight (status 200, no body); None if the request is
    /// not one.
    pub(crate) fn answer_preflight(
        &self,
        method: &Method,
        request: &HeaderMap,
    ) -> Option<HeaderMap> {
        let preflight = method == Method::OPTIONS
            && request.contains_key(hyper::header::ORIGIN)
            && request.contains_key(hyper::header::ACCESS_CONTROL_REQUEST_METHOD);
        preflight.then(|| {
            let mut response = HeaderMap::new();
            self.preflight(request, &mut response);
            response
        })
    }

    /// The headers of a preflight's answer (its status is 200, its body empty).
    fn preflight(&self, request: &HeaderMap, response: &mut HeaderMap) {
        use hyper::header::{
            ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_MAX_AGE,
            ACCESS_CONTROL_REQUEST_HEADERS,
        };
        response.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        if let Some(asked) = request
            .get(ACCESS_CONTROL_REQUEST_HEADERS)
            .filter(|asked| asked.len() <= MAX_ECHOED)
        {
            response.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        response.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
        if let Some(origin) = request.get(hyper::header::ORIGIN) {
            self.allow(origin, response);
        }
    }

    /// Adds `Access-Control-Allow-Origin` (and the exposed headers) when the request's `origin`
    /// is allowed.
    pub(crate) fn allow(&self, origin: &HeaderValue, response: &mut HeaderMap) {
        if self.allows(origin) {
            response.insert(hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            response.insert(
                hyper::header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED),
            );
            response.append(hyper::header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(hyper::header::ORIGIN, origin.parse().unwrap());
        headers.insert(
            hyper::header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type,x-amz-target".parse().unwrap(),
        );
        headers
    }

    #[test]
    fn an_allow_list_names_only_its_origins() {
        let cors = Cors::parse("http://a.example, http://b.example");
        let mut answer = HeaderMap::new();
        cors.preflight(&request("http://b.example"), &mut answer);
        assert_eq!(answer["access-control-allow-origin"], "http://b.example");
        assert_eq!(answer["access-control-allow-methods"], "POST");
        assert_eq!(
            answer["access-control-allow-headers"],
            "content-type,x-amz-target"
        );
        assert_eq!(answer["access-control-max-age"], "1728000");
        let mut refused = HeaderMap::new();
        cors.preflight(&request("http://c.example"), &mut refused);
        assert!(!refused.contains_key("access-control-allow-origin"));
    }

    #[test]
    fn a_star_allows_any_origin() {
        assert!(matches!(Cors::parse("*"), Cors::Any));
        assert!(matches!(Cors::parse(""), Cors::Any));
        let mut answer = HeaderMap::new();
        Cors::Any.allow(&"http://z.example".parse().unwrap(), &mut answer);
        assert_eq!(answer["access-control-allow-origin"], "http://z.example");
    }
}
