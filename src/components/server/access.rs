//! Who may use the server, and how many at once: the API key
//! (`--api-key-env`), the bound on the requests it holds (`--max-queue`),
//! the time one may wait before its generation starts (`--max-wait-s`),
//! and the largest body it reads. Together they bound what any client can
//! make the server hold: at most `max_queue + 1` generation requests, each
//! with a body of at most [`MAX_BODY_BYTES`], for at most `max_wait`
//! before it runs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::error::ApiError;

/// The largest request body read: 4 MiB holds a 128K-token prompt as
/// token ids (up to 11 bytes each in JSON) or as text, with room for
/// escapes; a body past it is refused with 413 before it is buffered.
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// What a refused client is told to wait before it retries. The engine
/// frees a place each time a generation ends, which on the models served
/// here takes well under a second, so a longer wait only idles it.
pub const RETRY_AFTER_S: u64 = 1;

/// The key clients must present, held as its SHA-256 digest only: the
/// server keeps no copy it could log, print, or put in a panic message.
/// Comparing digests, in constant time, also hides the key's length.
#[derive(Clone)]
pub struct ApiKey {
    digest: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("the key is empty")]
    Empty,
    /// The message gives the position only: the key itself is never shown.
    #[error(
        "character {position} of the key cannot be sent in an `Authorization: Bearer KEY` header (allowed: visible ASCII, no spaces)"
    )]
    Unsendable { position: usize },
}

impl ApiKey {
    pub fn new(key: &str) -> Result<Self, ApiKeyError> {
        if key.is_empty() {
            return Err(ApiKeyError::Empty);
        }
        if let Some(position) = key.chars().position(|c| !c.is_ascii_graphic()) {
            return Err(ApiKeyError::Unsendable {
                position: position + 1,
            });
        }
        Ok(Self {
            digest: Sha256::digest(key.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the key. The time taken depends on the
    /// length of `presented` (the client's own data), never on how much
    /// of it matches.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        digest.ct_eq(&self.digest).into()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(redacted)")
    }
}

/// The token of `Authorization: Bearer TOKEN` (the scheme is
/// case-insensitive, RFC 9110), or why there is none.
fn bearer(headers: &HeaderMap) -> Result<&[u8], &'static str> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or("no API key: this server requires `Authorization: Bearer KEY`")?
        .as_bytes();
    let (scheme, token) = match value.iter().position(|&b| b == b' ') {
        Some(at) => value.split_at(at),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(
            "the Authorization header is not `Bearer KEY`, the only scheme this server takes",
        );
    }
    let token = token.trim_ascii();
    if token.is_empty() {
        return Err("the Authorization header has `Bearer` but no key after it");
    }
    Ok(token)
}

/// Middleware: a request without the key gets 401 in OpenAI's shape and
/// goes no further. Neither the presented token nor the key appears in
/// the answer or anywhere else.
pub async fn require_key(State(key): State<Arc<ApiKey>>, request: Request, next: Next) -> Response {
    match bearer(request.headers()) {
        Ok(token) if key.matches(token) => next.run(request).await,
        Ok(_) => ApiError::unauthorized(
            "the API key is not valid: send the key in the variable that `campaign serve --api-key-env` names",
        )
        .into_response(),
        Err(why) => ApiError::unauthorized(why).into_response(),
    }
}

/// The bound on generation requests held at once, and on their wait.
pub struct Queue {
    /// A place for each request the engine runs at once, `max_queue` for
    /// those waiting (a request holds its place from its headers to its end).
    places: Arc<Semaphore>,
    running: usize,
    max_queue: usize,
    max_wait: Duration,
}

/// A request's place in the queue, released when dropped.
pub struct Admitted {
    _place: OwnedSemaphorePermit,
    /// The request must have started generating by then.
    pub deadline: Instant,
    /// `--max-wait-s`, for messages.
    pub max_wait: Duration,
}

impl Queue {
    pub fn new(running: usize, max_queue: usize, max_wait: Duration) -> Self {
        Self {
            places: Arc::new(Semaphore::new(max_queue.saturating_add(running))),
            running,
            max_queue,
            max_wait,
        }
    }

    /// A place, or 429 when every place is taken. Taken before the body
    /// is read, so the bodies held at once are bounded too.
    pub fn admit(&self) -> Result<Admitted, ApiError> {
        let place = Arc::clone(&self.places).try_acquire_owned().map_err(|_| {
            ApiError::queue_full(
                RETRY_AFTER_S,
                format!(
                    "the server is busy: the engine runs {} at a time and {} more may wait (--max-queue {}), and every place is taken; retry after {RETRY_AFTER_S} s",
                    if self.running == 1 { "one request".to_string() } else { format!("{} requests", self.running) },
                    self.max_queue, self.max_queue
                ),
            )
        })?;
        let now = Instant::now();
        // A wait too long to add to the clock is no deadline at all (the
        // flag allows a week; a caller of this library may pass more).
        let deadline = now
            .checked_add(self.max_wait)
            .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400));
        Ok(Admitted {
            _place: place,
            deadline,
            max_wait: self.max_wait,
        })
    }
}

impl Admitted {
    /// Reads the body, at most [`MAX_BODY_BYTES`] and before the deadline,
    /// so a client that sends it slowly holds its place no longer than
    /// one that waits for the engine.
    pub async fn read_body(&self, request: Request) -> Result<Bytes, ApiError> {
        let too_large = || {
            ApiError::too_large(format!(
                "the request body is larger than {MAX_BODY_BYTES} bytes (4 MiB), the most this server reads; send a shorter prompt"
            ))
        };
        // Refused on its declared length, before the body is polled: a
        // client that sent `Expect: 100-continue` then never uploads it,
        // and one that did not is not reset mid-upload before it reads
        // the answer. A body without a length is cut at the limit below.
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let read = tokio::time::timeout_at(self.deadline, Bytes::from_request(request, &()));
        match read.await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(too_large())
            }
            Ok(Err(rejection)) => Err(ApiError::invalid(
                None,
                format!("cannot read the request body: {}", rejection.body_text()),
            )),
            Err(_) => Err(ApiError::body_timeout(format!(
                "the request body did not arrive within {} s of its headers (--max-wait-s)",
                self.max_wait.as_secs_f64()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    #[test]
    fn keys_match_only_themselves_and_never_show() {
        let key = ApiKey::new("sk-test-1234").unwrap();
        assert!(key.matches(b"sk-test-1234"));
        assert!(!key.matches(b"sk-test-1235"));
        assert!(!key.matches(b"sk-test-123"));
        assert!(!key.matches(b""));
        assert_eq!(format!("{key:?}"), "ApiKey(redacted)");
        assert!(matches!(ApiKey::new(""), Err(ApiKeyError::Empty)));
        let error = ApiKey::new("sk secret").unwrap_err().to_string();
        assert!(error.contains("character 3"), "{error}");
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn the_bearer_scheme_is_read_case_insensitively() {
        assert_eq!(bearer(&headers("Bearer abc")), Ok(&b"abc"[..]));
        assert_eq!(bearer(&headers("bearer  abc ")), Ok(&b"abc"[..]));
        assert!(bearer(&headers("Basic abc")).is_err());
        assert!(bearer(&headers("Bearer ")).is_err());
        assert!(bearer(&headers("Bearerabc")).is_err());
        assert!(
            bearer(&HeaderMap::new())
                .unwrap_err()
                .contains("no API key")
        );
    }

    #[test]
    fn the_queue_holds_one_running_and_max_queue_waiting() {
        let queue = Queue::new(1, 1, Duration::from_secs(1));
        let first = queue.admit().unwrap();
        let _second = queue.admit().unwrap();
        let refused = queue.admit().map(|_| ()).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after_s, Some(RETRY_AFTER_S));
        assert!(
            refused.message.contains("--max-queue 1"),
            "{}",
            refused.message
        );
        drop(first);
        assert!(queue.admit().is_ok());
    }
}
