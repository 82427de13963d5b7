//! Errors as clients of an OpenAI-compatible server expect them: a status,
//! `{"error": {"message", "type", "param", "code"}}`, and the headers that
//! tell a client what to do next (`retry-after`, `www-authenticate`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};

use super::api::{ErrorBody, ErrorResponse};

/// An error in OpenAI's shape, with its HTTP status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
    pub message: String,
    /// Whole seconds for `retry-after` (the header takes no fraction).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn invalid(param: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            param,
            code: None,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn not_found(
        param: Option<&'static str>,
        code: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code,
            ..Self::invalid(param, message)
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "server_error",
            ..Self::invalid(None, message)
        }
    }

    /// No key, or not the server's: OpenAI answers both with 401 and
    /// `invalid_api_key`, and so do clients' retry rules (they never retry
    /// a 401).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: Some("invalid_api_key"),
            ..Self::invalid(None, message)
        }
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: Some("request_too_large"),
            ..Self::invalid(None, message)
        }
    }

    /// The body did not arrive in time: the client is the slow side.
    pub fn body_timeout(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::REQUEST_TIMEOUT,
            code: Some("request_timeout"),
            ..Self::invalid(None, message)
        }
    }

    /// Every place in the queue is taken: 429 with `retry-after`, as
    /// OpenAI rate-limits, so that clients (the OpenAI SDKs, and this
    /// crate's endpoint client, which counts it as `rate_limited`) back off
    /// and retry.
    pub fn queue_full(retry_after_s: u64, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "rate_limit_error",
            code: Some("rate_limit_exceeded"),
            retry_after_s: Some(retry_after_s),
            ..Self::invalid(None, message)
        }
    }

    /// A request admitted to the queue that the engine could not start in
    /// time. 503, not 429: the client did nothing wrong and sent no more
    /// than the queue accepted; the server is overloaded, which is what
    /// RFC 9110 gives 503 for and what OpenAI answers an overloaded model
    /// with (`server_is_overloaded`). The OpenAI SDKs retry both, after
    /// `retry-after`.
    pub fn overloaded(retry_after_s: u64, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "service_unavailable_error",
            code: Some("server_is_overloaded"),
            retry_after_s: Some(retry_after_s),
            ..Self::invalid(None, message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: ErrorBody {
                message: self.message,
                kind: self.kind,
                param: self.param,
                code: self.code,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750: a 401 names the scheme the server wants.
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
