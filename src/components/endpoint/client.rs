use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Which OpenAI-compatible API a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EndpointApi {
    /// `/v1/completions`: the prompt is sent as token ids, so its length is exact.
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

/// A content-bearing chunk of a stream, stamped when it was read.
#[derive(Debug, Clone)]
pub struct ContentChunk {
    pub at: Instant,
    pub text: String,
}

/// A request that streamed to its end.
#[derive(Debug, Clone)]
pub struct StreamedCompletion {
    /// Chunks that carried text, in order (role-only and empty ones left out).
    pub chunks: Vec<ContentChunk>,
    /// `usage.completion_tokens` of the stream's usage chunk, when sent.
    pub completion_tokens: Option<usize>,
    pub finish_reason: Option<String>,
    /// When `[DONE]` was read.
    pub done_at: Instant,
    /// The server's own first-token time, in ms after it read the request,
    /// when it reports one (`campaign serve` sends `campaign_server_timing`).
    pub server_first_token_ms: Option<f64>,
}

/// Why a request failed: each class is counted on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// No connection (refused, reset before a response, DNS).
    Connect,
    /// The request took longer than its timeout.
    Timeout,
    /// HTTP 429: the server asked to slow down.
    RateLimited,
    /// Another 4xx: the server refused the request.
    Http4xx,
    /// A 5xx, or an error object in the stream.
    Http5xx,
    /// An event whose data is not the JSON a chunk should be.
    MalformedSse,
    /// The stream ended (or broke) before `[DONE]`.
    CutShort,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 7] = [
        Self::Connect,
        Self::Timeout,
        Self::RateLimited,
        Self::Http4xx,
        Self::Http5xx,
        Self::MalformedSse,
        Self::CutShort,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::RateLimited => "rate_limited",
            Self::Http4xx => "http_4xx",
            Self::Http5xx => "http_5xx",
            Self::MalformedSse => "malformed_sse",
            Self::CutShort => "cut_short",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RequestFailure {
    pub class: ErrorClass,
    pub message: String,
}

impl RequestFailure {
    fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
        }
    }
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

    /// Sends one streaming request and reads it to `[DONE]`.
    pub async fn stream(
        &self,
        prompt: &RequestPrompt,
        max_tokens: usize,
    ) -> Result<StreamedCompletion, RequestFailure> {
        match tokio::time::timeout(self.config.timeout, self.stream_inner(prompt, max_tokens)).await
        {
            Ok(result) => result,
            Err(_) => Err(RequestFailure::new(
                ErrorClass::Timeout,
                format!("no end of stream within {:?}", self.config.timeout),
            )),
        }
    }

    async fn stream_inner(
        &self,
        prompt: &RequestPrompt,
        max_tokens: usize,
    ) -> Result<StreamedCompletion, RequestFailure> {
        let mut request = self
            .http
            .post(self.url.clone())
            .json(&self.body(prompt, max_tokens));
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| {
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
            let body = response.text().await.unwrap_or_default();
            let excerpt: String = body.chars().take(200).collect();
            return Err(RequestFailure::new(
                class,
                format!("HTTP {status}: {excerpt}"),
            ));
        }
        let mut events = response.bytes_stream().eventsource();
        let mut chunks = Vec::new();
        let mut completion_tokens = None;
        let mut finish_reason = None;
        let mut server_first_token_ms = None;
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| {
                RequestFailure::new(ErrorClass::CutShort, format!("the stream broke: {e}"))
            })?;
            let at = Instant::now();
            if event.data.trim() == "[DONE]" {
                return Ok(StreamedCompletion {
                    chunks,
                    completion_tokens,
                    finish_reason,
                    done_at: at,
                    server_first_token_ms,
                });
            }
            let chunk: Value = serde_json::from_str(&event.data).map_err(|e| {
                let excerpt: String = event.data.chars().take(80).collect();
                RequestFailure::new(
                    ErrorClass::MalformedSse,
                    format!("event data is not JSON ({e}): {excerpt:?}"),
                )
            })?;
            if let Some(error) = chunk.get("error") {
                return Err(RequestFailure::new(
                    ErrorClass::Http5xx,
                    format!("error in the stream: {error}"),
                ));
            }
            let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
                return Err(RequestFailure::new(
                    ErrorClass::MalformedSse,
                    "a chunk without `choices`",
                ));
            };
            if let Some(ms) = chunk
                .pointer("/campaign_server_timing/first_token_ms")
                .and_then(Value::as_f64)
            {
                server_first_token_ms = Some(ms);
            }
            if let Some(tokens) = chunk
                .pointer("/usage/completion_tokens")
                .and_then(Value::as_u64)
            {
                completion_tokens = Some(tokens as usize);
            }
            let Some(choice) = choices.first() else {
                continue;
            };
            let text = match self.config.api {
                EndpointApi::Completions => choice.get("text"),
                EndpointApi::Chat => choice.pointer("/delta/content"),
            }
            .and_then(Value::as_str)
            .unwrap_or_default();
            if !text.is_empty() {
                chunks.push(ContentChunk {
                    at,
                    text: text.to_string(),
                });
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                finish_reason = Some(reason.to_string());
            }
        }
        Err(RequestFailure::new(
            ErrorClass::CutShort,
            format!(
                "the stream ended without [DONE] after {} content chunks",
                chunks.len()
            ),
        ))
    }
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
