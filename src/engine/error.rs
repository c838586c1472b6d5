//! `RequestError`: every way an Engine.IO HTTP request is refused, and the one place that turns each
//! into the status and JSON body the Engine.IO specification gives.

use hyper::{Response, StatusCode};

/// Why an Engine.IO HTTP request was refused. Codes 0-5 are the reference server's, which clients and
/// the conformance suite know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// `transport` is missing or not one this server offers.
    UnknownTransport,
    /// `sid` names no live session.
    UnknownSid,
    /// A handshake (no `sid`) with a method other than GET.
    BadHandshakeMethod,
    /// The request does not fit the session's state: polling on an upgraded session, a second
    /// concurrent GET or POST, a malformed body.
    BadRequest,
    /// The `Origin` is not on the allow-list.
    Forbidden,
    /// `EIO` is missing or not 4.
    UnsupportedProtocolVersion,
    /// The body exceeds `maxPayload`.
    PayloadTooLarge,
    /// The server holds as many sessions as it is configured for.
    ServerFull,
    /// The server holds as many long-polling sessions as it is configured for.
    TooManyPollingSessions,
    /// This address opened sessions faster than the per-address handshake rate allows.
    TooManyHandshakes,
    /// The server is draining for a shutdown: it still serves the sessions it has, but opens none.
    ShuttingDown,
}

impl RequestError {
    pub fn status(self) -> StatusCode {
        match self {
            RequestError::Forbidden => StatusCode::FORBIDDEN,
            RequestError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::ServerFull
            | RequestError::TooManyPollingSessions
            | RequestError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::TooManyHandshakes => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The numeric code of the JSON body.
    pub fn code(self) -> u8 {
        match self {
            RequestError::UnknownTransport => 0,
            RequestError::UnknownSid => 1,
            RequestError::BadHandshakeMethod => 2,
            RequestError::BadRequest | RequestError::PayloadTooLarge => 3,
            RequestError::TooManyHandshakes => 3,
            RequestError::Forbidden
            | RequestError::ServerFull
            | RequestError::TooManyPollingSessions
            | RequestError::ShuttingDown => 4,
            RequestError::UnsupportedProtocolVersion => 5,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            RequestError::UnknownTransport => "Transport unknown",
            RequestError::UnknownSid => "Session ID unknown",
            RequestError::BadHandshakeMethod => "Bad handshake method",
            RequestError::BadRequest => "Bad request",
            RequestError::Forbidden => "Forbidden",
            RequestError::UnsupportedProtocolVersion => "Unsupported protocol version",
            RequestError::PayloadTooLarge => "Payload too large",
            RequestError::ServerFull => "Server full: too many connections",
            RequestError::TooManyPollingSessions => {
                "Server full: too many long-polling sessions, use WebSocket"
            }
            RequestError::TooManyHandshakes => "Too many handshakes from this address",
            RequestError::ShuttingDown => "Server shutting down: connect again to another node",
        }
    }

    /// The HTTP response: status plus `{"code":N,"message":"..."}`.
    pub fn response(self) -> Response<crate::http::Body> {
        let body = format!(
            r#"{{"code":{},"message":"{}"}}"#,
            self.code(),
            self.message()
        );
        let mut response = Response::new(crate::http::full(body));
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for RequestError {}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn bodies_match_the_reference_server() {
        let r = RequestError::UnknownSid.response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, r#"{"code":1,"message":"Session ID unknown"}"#);
        assert_eq!(RequestError::UnsupportedProtocolVersion.code(), 5);
        assert_eq!(RequestError::Forbidden.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            RequestError::PayloadTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
