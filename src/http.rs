//! HTTP pieces shared by every route: the response body type, query-string reading, and the origin
//! policy (CORS for polling, the same check on WebSocket upgrades).

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

/// A response body: one buffer for everything but file downloads, which stream from the file
/// store (`src/files`).
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A body of one buffer.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

pub fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The value of `name` in a query string (`a=1&b=2`), undecoded: every parameter Engine.IO reads is
/// plain ASCII, and a percent-encoded session id would not match a live one anyway.
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// The answer to a CORS preflight (the origin itself was checked by the caller).
pub fn preflight<B>(req: &hyper::Request<B>) -> Response<Body> {
    let mut r = response(StatusCode::NO_CONTENT, "text/plain", Bytes::new());
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    r
}

/// A browser origin that the policy does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignOrigin;

/// Which browser origins may talk to the gateway.
///
/// A request without `Origin` (native apps, Node or Python clients, curl) is always allowed: origin
/// checks protect browser users, whose browsers always send it. A browser page is allowed when it is
/// served by the gateway itself (same host), or its origin is on the list, or the list holds `*`.
/// Anything else gets 403, on polling and WebSocket alike, so a foreign page cannot use a visitor's
/// cookies to open a session in their name.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    allowed: Vec<String>,
}

impl OriginPolicy {
    pub fn new(allowed: impl IntoIterator<Item = String>) -> Self {
        OriginPolicy {
            allowed: allowed
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
        }
    }

    /// Allows every origin (`*`); for tests and public demos only.
    pub fn any() -> Self {
        OriginPolicy::new(["*".to_owned()])
    }

    /// `Ok(None)` when there is no Origin, `Ok(Some(origin))` when it is allowed (to echo back in
    /// `Access-Control-Allow-Origin`), `Err(ForeignOrigin)` when it is not.
    pub fn check<'h>(
        &self,
        headers: &'h HeaderMap,
    ) -> Result<Option<&'h HeaderValue>, ForeignOrigin> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(None);
        };
        let text = origin.to_str().map_err(|_| ForeignOrigin)?;
        if self.allowed.iter().any(|a| a == "*" || a == text) {
            return Ok(Some(origin));
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = text.split_once("://").map(|(_, rest)| rest);
        match (host, origin_host) {
            (Some(h), Some(o)) if h.eq_ignore_ascii_case(o) => Ok(Some(origin)),
            _ => Err(ForeignOrigin),
        }
    }

    /// Adds the CORS headers for an allowed origin.
    pub fn decorate(origin: Option<&HeaderValue>, response: &mut Response<Body>) {
        if let Some(origin) = origin {
            let h = response.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&'static str>, host: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_static(o));
        }
        h.insert(header::HOST, HeaderValue::from_static(host));
        h
    }

    #[test]
    fn query_params() {
        let q = "EIO=4&transport=polling&sid=abc&t=burst&flag";
        assert_eq!(query_param(q, "EIO"), Some("4"));
        assert_eq!(query_param(q, "sid"), Some("abc"));
        assert_eq!(query_param(q, "flag"), Some(""));
        assert_eq!(query_param(q, "nope"), None);
    }

    #[test]
    fn origin_policy() {
        let policy = OriginPolicy::new(["https://app.example/".to_owned()]);
        assert_eq!(policy.check(&headers(None, "gw:6969")), Ok(None));
        assert!(policy
            .check(&headers(Some("https://app.example"), "gw:6969"))
            .unwrap()
            .is_some());
        assert!(policy
            .check(&headers(Some("http://gw:6969"), "gw:6969"))
            .unwrap()
            .is_some());
        assert_eq!(
            policy.check(&headers(Some("https://evil.example"), "gw:6969")),
            Err(ForeignOrigin)
        );
        assert!(OriginPolicy::any()
            .check(&headers(Some("https://evil.example"), "gw:6969"))
            .is_ok());
    }
}
