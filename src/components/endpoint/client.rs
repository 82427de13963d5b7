use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::stream::{
    Asked, ErrorClass, PromptSent, RequestFailure, StreamReader, StreamedCompletion,
};

/// Bytes of an error response's body read (its first characters are quoted
/// in the failure's message; the rest is not read).
pub const MAX_ERROR_BODY_BYTES: usize = 4096;

/// Which OpenAI-compatible API a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EndpointApi {
    /// `/v1/completions`: the prompt is sent as token ids, so its length is
    /// exact, or as text when no tokenizer wrote it.
    #[default]
    Completions,
    /// `/v1/chat/completions`: the prompt is sent as text in one user message.
    Chat,
}

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Base URL ending in `/v1`, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    pub api: EndpointApi,
    /// The `model` field of each request.
    pub served_model: String,
    /// Sent as `Authorization: Bearer …`; read from the environment by the
    /// caller, never written anywhere.
    pub api_key: Option<String>,
    /// Limit on one request, from sending it to its last byte.
    pub timeout: Duration,
    /// Send vLLM's `ignore_eos` so outputs have the asked length.
    pub ignore_eos: bool,
}

/// What a request sends as its prompt.
#[derive(Debug, Clone)]
pub enum RequestPrompt {
    Tokens(Vec<u32>),
    Text(String),
}

/// A request ready to send: its body serialized, and what its answer is
/// checked against.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    body: bytes::Bytes,
    asked: Asked,
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint {url}: {problem}")]
    Url { url: String, problem: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The URL with any `user:password@` replaced by `***@`, for reports and
/// messages.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("***");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        // Not a URL: hide everything before an `@`, if any.
        Err(_) => match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_string(),
        },
    }
}

/// A request's outcome and when it went out (`None` when it never did).
pub struct Stamped {
    pub sent_at: Option<Instant>,
    pub result: Result<StreamedCompletion, RequestFailure>,
}

pub struct EndpointClient {
    http: reqwest::Client,
    url: reqwest::Url,
    config: EndpointConfig,
}

impl EndpointClient {
    pub fn new(config: EndpointConfig) -> Result<Self, EndpointError> {
        let base = reqwest::Url::parse(config.base_url.trim_end_matches('/')).map_err(|e| {
            EndpointError::Url {
                url: redact_url(&config.base_url),
                problem: e.to_string(),
            }
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(EndpointError::Url {
                url: redact_url(&config.base_url),
                problem: format!("scheme {:?}; allowed: http or https", base.scheme()),
            });
        }
        let path = match config.api {
            EndpointApi::Completions => "completions",
            EndpointApi::Chat => "chat/completions",
        };
        let url = reqwest::Url::parse(&format!("{}/{path}", base.as_str().trim_end_matches('/')))
            .map_err(|e| EndpointError::Url {
            url: redact_url(&config.base_url),
            problem: e.to_string(),
        })?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| EndpointError::Client(e.to_string()))?;
        Ok(Self { http, url, config })
    }

    /// The request URL, redacted.
    /// How long a request may take to its end of stream.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    pub fn url(&self) -> String {
        redact_url(self.url.as_str())
    }

    fn body(&self, prompt: &RequestPrompt, max_tokens: usize) -> Value {
        let mut body = json!({
            "model": self.config.served_model,
            "max_tokens": max_tokens,
            "stream": true,
            "stream_options": { "include_usage": true },
            "temperature": 0.0,
        });
        match (self.config.api, prompt) {
            (EndpointApi::Completions, RequestPrompt::Tokens(ids)) => body["prompt"] = json!(ids),
            (EndpointApi::Completions, RequestPrompt::Text(text)) => body["prompt"] = json!(text),
            (EndpointApi::Chat, RequestPrompt::Text(text)) => {
                body["messages"] = json!([{ "role": "user", "content": text }]);
            }
            (EndpointApi::Chat, RequestPrompt::Tokens(ids)) => {
                // Chat takes text; ids are only ever given with a tokenizer
                // to decode them, so this is a caller's mistake shown plainly.
                body["messages"] = json!([{ "role": "user", "content": format!("{ids:?}") }]);
            }
        }
        if self.config.ignore_eos {
            body["ignore_eos"] = json!(true);
        }
        body
    }

    /// Whether requests send `ignore_eos`: then a response shorter than
    /// `max_tokens` is short of what was asked.
    pub fn ignore_eos(&self) -> bool {
        self.config.ignore_eos
    }

    /// The request for `prompt`, its body serialized now: a long prompt's
    /// JSON (a 32 k-token prompt is some 200 kB of it) is written once,
    /// before the clock runs, not at each send by a client that should
    /// be reading streams.
    pub fn prepare(&self, prompt: &RequestPrompt, max_tokens: usize) -> PreparedRequest {
        PreparedRequest {
            // A JSON value always serializes.
            body: bytes::Bytes::from(
                serde_json::to_vec(&self.body(prompt, max_tokens)).unwrap_or_default(),
            ),
            asked: self.asked(prompt, max_tokens),
        }
    }

    /// Sends one streaming request and reads it to `[DONE]`.
    pub async fn stream(
        &self,
        prompt: &RequestPrompt,
        max_tokens: usize,
    ) -> Result<StreamedCompletion, RequestFailure> {
        self.stream_stamped(prompt, max_tokens).await.result
    }

    /// [`Self::stream`], with the instant the request went out (its body
    /// built, handed to the connection): what the client's own lateness is
    /// measured to.
    pub async fn stream_stamped(&self, prompt: &RequestPrompt, max_tokens: usize) -> Stamped {
        self.send_prepared(&self.prepare(prompt, max_tokens)).await
    }

    /// [`Self::stream_stamped`] of a request prepared before.
    pub async fn send_prepared(&self, request: &PreparedRequest) -> Stamped {
        let mut sent_at = None;
        let result = match tokio::time::timeout(
            self.config.timeout,
            self.stream_inner(request, &mut sent_at),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(RequestFailure::new(
                ErrorClass::Timeout,
                format!("no end of stream within {:?}", self.config.timeout),
            )),
        };
        Stamped { sent_at, result }
    }

    /// What the server's answer to `prompt` is checked against.
    fn asked(&self, prompt: &RequestPrompt, max_tokens: usize) -> Asked {
        let chat = self.config.api == EndpointApi::Chat;
        let prompt = match prompt {
            RequestPrompt::Tokens(ids) if !chat => PromptSent::Ids(ids.len()),
            RequestPrompt::Tokens(ids) => PromptSent::Text {
                bytes: format!("{ids:?}").len(),
            },
            RequestPrompt::Text(text) => PromptSent::Text { bytes: text.len() },
        };
        Asked {
            chat,
            max_tokens,
            prompt,
        }
    }

    async fn stream_inner(
        &self,
        prepared: &PreparedRequest,
        sent_at: &mut Option<Instant>,
    ) -> Result<StreamedCompletion, RequestFailure> {
        let mut request = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(prepared.body.clone());
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        *sent_at = Some(Instant::now());
        let mut response = request.send().await.map_err(|e| {
            let class = if e.is_timeout() {
                ErrorClass::Timeout
            } else {
                ErrorClass::Connect
            };
            // reqwest's message names the URL; keep it redacted.
            RequestFailure::new(class, format!("{}: {}", self.url(), without_url(&e)))
        })?;
        let status = response.status();
        if !status.is_success() {
            let class = match status.as_u16() {
                429 => ErrorClass::RateLimited,
                400..=499 => ErrorClass::Http4xx,
                _ => ErrorClass::Http5xx,
            };
            let excerpt = body_excerpt(&mut response).await;
            return Err(RequestFailure::new(
                class,
                format!("HTTP {status}: {excerpt}"),
            ));
        }
        // A server that ignored `"stream": true` answers with one JSON body.
        if let Some(kind) = response.headers().get(reqwest::header::CONTENT_TYPE)
            && !kind.as_bytes().starts_with(b"text/event-stream")
        {
            return Err(RequestFailure::new(
                ErrorClass::MalformedSse,
                format!(
                    "content-type {:?}; allowed: text/event-stream (a stream was asked)",
                    String::from_utf8_lossy(kind.as_bytes())
                ),
            ));
        }
        let mut reader = StreamReader::new(prepared.asked);
        loop {
            let bytes = response.chunk().await.map_err(|e| {
                reader.cut_short(&format!("the stream broke ({})", without_url(&e)))
            })?;
            let Some(bytes) = bytes else {
                return Err(reader.cut_short("the stream ended"));
            };
            if let Some(done) = reader.feed(&bytes, Instant::now())? {
                return Ok(done);
            }
        }
    }
}

/// The first characters of an error response's body, reading at most
/// [`MAX_ERROR_BODY_BYTES`] of it.
async fn body_excerpt(response: &mut reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(bytes)) => {
                let room = MAX_ERROR_BODY_BYTES - body.len();
                body.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).chars().take(200).collect()
}

/// reqwest's error text without the URL it appends (which may carry
/// credentials).
fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut text = String::from(if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    });
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_url("http://alice:s3cret@host:8000/v1"),
            "http://***@host:8000/v1"
        );
        assert_eq!(redact_url("http://host:8000/v1"), "http://host:8000/v1");
        assert!(!redact_url("not a url alice:s3cret@host").contains("s3cret"));
    }
}
