//! One streamed completion read from its bytes, whatever the server sends:
//! the server-sent events decoded within their limits, each chunk's JSON
//! read, and the server's `usage` checked against what the request asked
//! and what was streamed. A response the request cannot have had is a
//! failure of its own class; one that is possible but odd carries a
//! [`Surprise`] for the report. No I/O here: the client feeds the bytes as
//! they arrive, so the whole path is testable on arbitrary input.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::sse::{MAX_EVENT_BYTES, SseDecoder};

/// Content chunks kept per request, per token asked (`max_tokens`). A
/// server sends one chunk per token or fewer; a proxy that re-chunks text
/// by characters sends a few per token. Past this the stream is no stream
/// of tokens, and the client stops keeping it.
pub const MAX_CHUNKS_PER_TOKEN: usize = 16;

/// Streamed text kept per request, in bytes per token asked. The longest
/// tokens of real vocabularies are runs of a few dozen characters.
pub const MAX_TEXT_BYTES_PER_TOKEN: usize = 1024;

/// Tokens a server may add to a prompt sent as token ids (a BOS token, a
/// few special tokens) before its count contradicts the ids sent.
pub const MAX_ADDED_PROMPT_TOKENS: u64 = 8;

/// Tokens a chat template may add to a text prompt on top of one token a
/// byte (the most a byte-level tokenizer makes of text).
pub const MAX_TEMPLATE_TOKENS: u64 = 65_536;

/// Characters of outside text quoted in a message.
const EXCERPT_CHARS: usize = 120;

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
    /// Not the stream a chunk should be: an event whose data is not a
    /// chunk's JSON, a field of the wrong type, a limit passed.
    MalformedSse,
    /// A `usage` the request cannot have had: a count that is negative or
    /// not whole, more tokens than asked, a total that is not the sum, a
    /// prompt count that contradicts the prompt sent.
    MalformedUsage,
    /// The stream ended (or broke) before `[DONE]`.
    CutShort,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 8] = [
        Self::Connect,
        Self::Timeout,
        Self::RateLimited,
        Self::Http4xx,
        Self::Http5xx,
        Self::MalformedSse,
        Self::MalformedUsage,
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
            Self::MalformedUsage => "malformed_usage",
            Self::CutShort => "cut_short",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestFailure {
    pub class: ErrorClass,
    pub message: String,
}

impl RequestFailure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
        }
    }
}

/// A content-bearing chunk of a stream, stamped when it was read.
#[derive(Debug, Clone)]
pub struct ContentChunk {
    pub at: Instant,
    pub text: String,
}

/// The token counts a server reports, each checked to be a whole number
/// of tokens (absent when the server left it out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    /// `prompt_tokens_details.cached_tokens`: prompt tokens the server
    /// took from its prefix cache (OpenAI's field; vLLM and SGLang send
    /// it when prefix caching is on).
    pub cached_tokens: Option<u64>,
    /// `prompt_tokens_details` was there but not an object with a whole
    /// `cached_tokens`: an extension field, so a surprise, not a failure.
    pub odd_details: bool,
}

/// What is possible but odd in a response, for the report: `what` names
/// the kind (responses are counted by it), `detail` this response's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Surprise {
    pub what: &'static str,
    pub detail: String,
}

/// What a request sent as its prompt, to check the server's count against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptSent {
    /// This many token ids: the server reads exactly these.
    Ids(usize),
    /// Text of this many bytes (UTF-8), tokenized by the server.
    Text { bytes: usize },
}

/// What a request asked.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    /// Chat chunks carry their text in `delta.content`, completions in `text`.
    pub chat: bool,
    pub max_tokens: usize,
    pub prompt: PromptSent,
}

/// A request that streamed to its end.
#[derive(Debug, Clone)]
pub struct StreamedCompletion {
    /// Chunks that carried text, in order (role-only and empty ones left out).
    pub chunks: Vec<ContentChunk>,
    /// The last usage the stream carried, checked against the request.
    pub usage: Option<Usage>,
    pub finish_reason: Option<String>,
    /// When `[DONE]` was read.
    pub done_at: Instant,
    /// The server's own first-token time, in ms after it read the request,
    /// when it reports one (`campaign serve` sends `campaign_server_timing`).
    pub server_first_token_ms: Option<f64>,
    /// What was possible but odd in the usage.
    pub surprises: Vec<Surprise>,
}

impl StreamedCompletion {
    /// `usage.completion_tokens`, when the server sent it.
    pub fn completion_tokens(&self) -> Option<usize> {
        self.usage
            .and_then(|u| u.completion_tokens)
            .and_then(|n| usize::try_from(n).ok())
    }

    /// `usage.prompt_tokens_details.cached_tokens`, when the server sent
    /// it and it is not more than the prompt's tokens.
    pub fn cached_tokens(&self) -> Option<u64> {
        self.usage
            .and_then(|u| match (u.cached_tokens, u.prompt_tokens) {
                (Some(cached), Some(prompt)) if cached > prompt => None,
                (cached, _) => cached,
            })
    }

    /// `usage.prompt_tokens`, when the server sent it.
    pub fn prompt_tokens(&self) -> Option<u64> {
        self.usage.and_then(|u| u.prompt_tokens)
    }
}

fn excerpt(text: &str) -> String {
    let mut cut: String = text.chars().take(EXCERPT_CHARS).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whole numbers a JSON float holds exactly.
const MAX_EXACT_FLOAT: f64 = 9_007_199_254_740_992.0;

const COUNT_ALLOWED: &str = "allowed: a whole number of tokens, 0 or more";

/// One count of a usage object: absent or null is none.
fn count(usage: &serde_json::Map<String, Value>, field: &str) -> Result<Option<u64>, String> {
    let value = match usage.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(value) => value,
    };
    let Value::Number(n) = value else {
        return Err(format!(
            "usage.{field} is {} ({}); {COUNT_ALLOWED}",
            type_of(value),
            excerpt(&value.to_string())
        ));
    };
    if let Some(whole) = n.as_u64() {
        return Ok(Some(whole));
    }
    match n.as_f64() {
        // A whole number written as a float (`12.0`) is still a count.
        Some(x) if x.fract() == 0.0 && (0.0..=MAX_EXACT_FLOAT).contains(&x) => Ok(Some(x as u64)),
        _ => Err(format!("usage.{field} = {n}; {COUNT_ALLOWED}")),
    }
}

impl Usage {
    /// Reads a chunk's `usage`: null is none (servers send `"usage": null`
    /// on every chunk but the last); each count present must be a whole
    /// number of tokens.
    pub fn parse(value: &Value) -> Result<Option<Self>, String> {
        let usage = match value {
            Value::Null => return Ok(None),
            Value::Object(usage) => usage,
            other => {
                return Err(format!(
                    "usage is {} ({}); allowed: an object with prompt_tokens, completion_tokens and total_tokens",
                    type_of(other),
                    excerpt(&other.to_string())
                ));
            }
        };
        let (cached_tokens, odd_details) = match usage.get("prompt_tokens_details") {
            None | Some(Value::Null) => (None, false),
            Some(Value::Object(details)) => match count(details, "cached_tokens") {
                Ok(cached) => (cached, false),
                Err(_) => (None, true),
            },
            Some(_) => (None, true),
        };
        Ok(Some(Self {
            prompt_tokens: count(usage, "prompt_tokens")?,
            completion_tokens: count(usage, "completion_tokens")?,
            total_tokens: count(usage, "total_tokens")?,
            cached_tokens,
            odd_details,
        }))
    }

    /// Checks the counts against what the request asked and what it
    /// streamed (`content_chunks` chunks of text). `Err` names a value the
    /// request cannot have had; the surprises are possible but odd.
    pub fn check(&self, asked: &Asked, content_chunks: usize) -> Result<Vec<Surprise>, String> {
        let mut surprises = Vec::new();
        let max_tokens = asked.max_tokens as u64;
        if let Some(completion) = self.completion_tokens {
            if completion > max_tokens {
                return Err(format!(
                    "usage.completion_tokens = {completion}, more than the max_tokens = {max_tokens} asked; allowed: 0 to {max_tokens}"
                ));
            }
            if completion == 0 && content_chunks > 0 {
                return Err(format!(
                    "usage.completion_tokens = 0, but {content_chunks} chunks of text were streamed; allowed: at least 1 when text came"
                ));
            }
            if completion < content_chunks as u64 {
                surprises.push(Surprise {
                    what: "usage counts fewer tokens than chunks of text (a proxy re-chunking the text?); ITL is taken per chunk",
                    detail: format!(
                        "completion_tokens = {completion} over {content_chunks} chunks"
                    ),
                });
            }
        }
        if let Some(prompt) = self.prompt_tokens {
            match asked.prompt {
                PromptSent::Ids(ids) => {
                    let ids = ids as u64;
                    let most = ids.saturating_add(MAX_ADDED_PROMPT_TOKENS);
                    if prompt < ids || prompt > most {
                        return Err(format!(
                            "usage.prompt_tokens = {prompt} contradicts the {ids} token ids sent; allowed: {ids} to {most} (a server may add a BOS and a few special tokens)"
                        ));
                    }
                    if prompt > ids {
                        surprises.push(Surprise {
                            what: "the server counts more prompt tokens than the ids sent (it adds a BOS or special tokens)",
                            detail: format!("prompt_tokens = {prompt} for {ids} ids"),
                        });
                    }
                }
                PromptSent::Text { bytes } => {
                    let bytes = bytes as u64;
                    let most = bytes.saturating_add(MAX_TEMPLATE_TOKENS);
                    if bytes > 0 && (prompt == 0 || prompt > most) {
                        return Err(format!(
                            "usage.prompt_tokens = {prompt} for a prompt of {bytes} bytes of text; allowed: 1 to {most} (one token a byte at most, plus {MAX_TEMPLATE_TOKENS} for a chat template)"
                        ));
                    }
                }
            }
        }
        if self.odd_details {
            surprises.push(Surprise {
                what: "usage.prompt_tokens_details is not an object with a whole cached_tokens: cached tokens not counted",
                detail: String::new(),
            });
        }
        if let (Some(cached), Some(prompt)) = (self.cached_tokens, self.prompt_tokens)
            && cached > prompt
        {
            surprises.push(Surprise {
                what: "usage counts more cached tokens than prompt tokens: cached tokens not counted",
                detail: format!("cached_tokens = {cached} of prompt_tokens = {prompt}"),
            });
        }
        match (
            self.prompt_tokens,
            self.completion_tokens,
            self.total_tokens,
        ) {
            (Some(prompt), Some(completion), Some(total)) => {
                let sum = prompt.checked_add(completion);
                if sum != Some(total) {
                    return Err(format!(
                        "usage.total_tokens = {total}, but prompt_tokens + completion_tokens = {prompt} + {completion}; allowed: their sum"
                    ));
                }
            }
            (Some(part), None, Some(total)) | (None, Some(part), Some(total)) if total < part => {
                return Err(format!(
                    "usage.total_tokens = {total}, less than one of its parts ({part}); allowed: prompt_tokens + completion_tokens"
                ));
            }
            _ => {}
        }
        Ok(surprises)
    }
}

fn malformed(message: impl Into<String>) -> RequestFailure {
    RequestFailure::new(ErrorClass::MalformedSse, message)
}

fn impossible_usage(message: String) -> RequestFailure {
    RequestFailure::new(ErrorClass::MalformedUsage, message)
}

/// Reads one stream as its bytes arrive, within the limits above: at most
/// [`MAX_EVENT_BYTES`] per event, [`MAX_CHUNKS_PER_TOKEN`] chunks and
/// [`MAX_TEXT_BYTES_PER_TOKEN`] bytes of text per token asked.
pub struct StreamReader {
    asked: Asked,
    decoder: SseDecoder,
    events: Vec<String>,
    chunks: Vec<ContentChunk>,
    text_bytes: usize,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    server_first_token_ms: Option<f64>,
}

impl StreamReader {
    pub fn new(asked: Asked) -> Self {
        Self {
            asked,
            decoder: SseDecoder::new(MAX_EVENT_BYTES),
            events: Vec::new(),
            chunks: Vec::new(),
            text_bytes: 0,
            usage: None,
            finish_reason: None,
            server_first_token_ms: None,
        }
    }

    /// Reads the next bytes of the stream, read at `at`: the completion
    /// once `[DONE]` arrives (what follows it is not read), or the failure.
    /// Not to be fed again after either.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        at: Instant,
    ) -> Result<Option<StreamedCompletion>, RequestFailure> {
        let decoded = self.decoder.feed(bytes, &mut self.events);
        // The events before a decoding error stand: a `[DONE]` among them
        // ends the stream before the bad bytes.
        let events = std::mem::take(&mut self.events);
        for data in &events {
            if data.trim() == "[DONE]" {
                return self.finish(at).map(Some);
            }
            self.chunk(data, at)?;
        }
        decoded.map_err(|e| malformed(e.to_string()))?;
        Ok(None)
    }

    /// The failure of a stream that ended before `[DONE]`.
    pub fn cut_short(&self, why: &str) -> RequestFailure {
        RequestFailure::new(
            ErrorClass::CutShort,
            format!(
                "{why} without [DONE] after {} content chunks",
                self.chunks.len()
            ),
        )
    }

    fn chunk(&mut self, data: &str, at: Instant) -> Result<(), RequestFailure> {
        let chunk: Value = serde_json::from_str(data)
            .map_err(|e| malformed(format!("event data is not JSON ({e}): {:?}", excerpt(data))))?;
        if let Some(error) = chunk.get("error") {
            return Err(RequestFailure::new(
                ErrorClass::Http5xx,
                format!("error in the stream: {}", excerpt(&error.to_string())),
            ));
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return Err(malformed(format!(
                "a chunk without a `choices` array: {:?}",
                excerpt(data)
            )));
        };
        if let Some(ms) = chunk.pointer("/campaign_server_timing/first_token_ms") {
            match ms.as_f64() {
                Some(ms) if ms >= 0.0 => self.server_first_token_ms = Some(ms),
                _ if ms.is_null() => {}
                _ => {
                    return Err(malformed(format!(
                        "campaign_server_timing.first_token_ms = {}; allowed: milliseconds, 0 or more",
                        excerpt(&ms.to_string())
                    )));
                }
            }
        }
        if let Some(usage) = chunk.get("usage")
            && let Some(usage) = Usage::parse(usage).map_err(impossible_usage)?
        {
            self.usage = Some(usage);
        }
        let Some(choice) = choices.first() else {
            return Ok(());
        };
        let (field, text) = if self.asked.chat {
            (
                "choices[0].delta.content",
                choice.get("delta").and_then(|d| d.get("content")),
            )
        } else {
            ("choices[0].text", choice.get("text"))
        };
        let text = match text {
            None | Some(Value::Null) => "",
            Some(Value::String(text)) => text.as_str(),
            Some(other) => {
                return Err(malformed(format!(
                    "{field} is {}; allowed: a string",
                    type_of(other)
                )));
            }
        };
        if !text.is_empty() {
            self.keep(text, at)?;
        }
        match choice.get("finish_reason") {
            None | Some(Value::Null) => {}
            Some(Value::String(reason)) => self.finish_reason = Some(excerpt(reason)),
            Some(other) => {
                return Err(malformed(format!(
                    "choices[0].finish_reason is {}; allowed: a string or null",
                    type_of(other)
                )));
            }
        }
        Ok(())
    }

    /// Keeps a chunk of text, within the per-request limits.
    fn keep(&mut self, text: &str, at: Instant) -> Result<(), RequestFailure> {
        let max_tokens = self.asked.max_tokens.max(1);
        let max_chunks = max_tokens.saturating_mul(MAX_CHUNKS_PER_TOKEN);
        if self.chunks.len() >= max_chunks {
            return Err(malformed(format!(
                "more than {max_chunks} chunks of text for max_tokens = {max_tokens}; allowed: {MAX_CHUNKS_PER_TOKEN} a token asked"
            )));
        }
        let max_bytes = max_tokens.saturating_mul(MAX_TEXT_BYTES_PER_TOKEN);
        let bytes = self.text_bytes.saturating_add(text.len());
        if bytes > max_bytes {
            return Err(malformed(format!(
                "more than {max_bytes} bytes of text for max_tokens = {max_tokens}; allowed: {MAX_TEXT_BYTES_PER_TOKEN} a token asked"
            )));
        }
        self.text_bytes = bytes;
        self.chunks.push(ContentChunk {
            at,
            text: text.to_string(),
        });
        Ok(())
    }

    fn finish(&mut self, at: Instant) -> Result<StreamedCompletion, RequestFailure> {
        let surprises = match &self.usage {
            Some(usage) => usage
                .check(&self.asked, self.chunks.len())
                .map_err(impossible_usage)?,
            None => Vec::new(),
        };
        Ok(StreamedCompletion {
            chunks: std::mem::take(&mut self.chunks),
            usage: self.usage,
            finish_reason: self.finish_reason.take(),
            done_at: at,
            server_first_token_ms: self.server_first_token_ms,
            surprises,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const ASKED: Asked = Asked {
        chat: false,
        max_tokens: 4,
        prompt: PromptSent::Ids(12),
    };

    fn read(asked: Asked, pieces: &[&[u8]]) -> Result<StreamedCompletion, RequestFailure> {
        let mut reader = StreamReader::new(asked);
        let at = Instant::now();
        for piece in pieces {
            if let Some(done) = reader.feed(piece, at)? {
                return Ok(done);
            }
        }
        Err(reader.cut_short("the stream ended"))
    }

    fn stream(texts: &[&str], usage: Value) -> String {
        let mut s = String::new();
        for t in texts {
            s.push_str(&format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "text": t, "finish_reason": null}]})
            ));
        }
        s.push_str(&format!(
            "data: {}\n\ndata: [DONE]\n\n",
            json!({"choices": [], "usage": usage})
        ));
        s
    }

    fn usage(prompt: i64, completion: i64, total: i64) -> Value {
        json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total})
    }

    fn failure(texts: &[&str], usage: Value) -> RequestFailure {
        read(ASKED, &[stream(texts, usage).as_bytes()]).unwrap_err()
    }

    #[test]
    fn a_consistent_usage_is_kept() {
        let done = read(ASKED, &[stream(&["a", "b"], usage(12, 4, 16)).as_bytes()]).unwrap();
        assert_eq!(done.completion_tokens(), Some(4));
        assert_eq!(done.prompt_tokens(), Some(12));
        assert_eq!(done.chunks.len(), 2);
        assert!(done.surprises.is_empty());
    }

    #[test]
    fn cached_tokens_are_read_from_the_prompt_tokens_details() {
        let with = |details: Value| {
            let mut u = usage(12, 4, 16);
            u["prompt_tokens_details"] = details;
            read(ASKED, &[stream(&["a"], u).as_bytes()])
        };
        assert_eq!(
            with(json!({"cached_tokens": 8})).unwrap().cached_tokens(),
            Some(8)
        );
        assert_eq!(with(Value::Null).unwrap().cached_tokens(), None);
        assert_eq!(with(json!({})).unwrap().cached_tokens(), None);
        assert_eq!(
            read(ASKED, &[stream(&["a"], usage(12, 4, 16)).as_bytes()])
                .unwrap()
                .cached_tokens(),
            None
        );
        // An extension field: what cannot be right is a surprise, and not
        // counted, never a failed request.
        for (details, expected) in [
            (
                json!({"cached_tokens": 13}),
                "usage counts more cached tokens than prompt tokens",
            ),
            (
                json!({"cached_tokens": -1}),
                "usage.prompt_tokens_details is not an object with a whole cached_tokens",
            ),
            (
                json!("8"),
                "usage.prompt_tokens_details is not an object with a whole cached_tokens",
            ),
        ] {
            let done = with(details).unwrap();
            assert_eq!(done.cached_tokens(), None);
            assert!(
                done.surprises.iter().any(|s| s.what.contains(expected)),
                "{:?}",
                done.surprises
            );
        }
    }

    #[test]
    fn impossible_usage_is_malformed_and_says_which_field_and_values() {
        for (usage, expected) in [
            (
                usage(12, -3, 9),
                "usage.completion_tokens = -3; allowed: a whole number",
            ),
            (usage(-1, 4, 3), "usage.prompt_tokens = -1"),
            (
                json!({"completion_tokens": 2.5}),
                "usage.completion_tokens = 2.5",
            ),
            (
                json!({"completion_tokens": "4"}),
                "usage.completion_tokens is a string",
            ),
            (json!("lots"), "usage is a string"),
            (
                usage(12, 9, 21),
                "usage.completion_tokens = 9, more than the max_tokens = 4 asked",
            ),
            (
                usage(12, 4, 17),
                "usage.total_tokens = 17, but prompt_tokens + completion_tokens = 12 + 4",
            ),
            (
                usage(11, 4, 15),
                "usage.prompt_tokens = 11 contradicts the 12 token ids sent; allowed: 12 to 20",
            ),
            (
                usage(1_000_000_000_000, 4, 1_000_000_000_004),
                "contradicts the 12 token ids sent",
            ),
            (
                json!({"completion_tokens": 0}),
                "usage.completion_tokens = 0, but 2 chunks of text were streamed",
            ),
            (
                json!({"completion_tokens": 4, "total_tokens": 3}),
                "usage.total_tokens = 3, less than one of its parts (4)",
            ),
        ] {
            let failure = failure(&["a", "b"], usage.clone());
            assert_eq!(
                failure.class,
                ErrorClass::MalformedUsage,
                "{usage}: {failure:?}"
            );
            assert!(
                failure.message.contains(expected),
                "{usage}: {}",
                failure.message
            );
        }
        let huge = json!({"prompt_tokens": 12, "completion_tokens": u64::MAX, "total_tokens": 11});
        assert_eq!(failure(&["a"], huge).class, ErrorClass::MalformedUsage);
    }

    #[test]
    fn possible_but_odd_usage_is_a_surprise() {
        let done = read(
            ASKED,
            &[stream(&["a", "b", "c"], usage(13, 2, 15)).as_bytes()],
        )
        .unwrap();
        let what: Vec<&str> = done.surprises.iter().map(|s| s.what).collect();
        assert_eq!(what.len(), 2, "{what:?}");
        assert!(what[0].contains("fewer tokens than chunks"));
        assert!(what[1].contains("more prompt tokens than the ids sent"));
        // A whole number written as a float is a count.
        let done = read(
            ASKED,
            &[stream(&["a"], json!({"completion_tokens": 1.0})).as_bytes()],
        )
        .unwrap();
        assert_eq!(done.completion_tokens(), Some(1));
        // A text prompt: the server's count is its own.
        let text = Asked {
            prompt: PromptSent::Text { bytes: 40 },
            ..ASKED
        };
        assert!(read(text, &[stream(&["a"], usage(30, 1, 31)).as_bytes()]).is_ok());
        let zero = read(text, &[stream(&["a"], usage(0, 1, 1)).as_bytes()]).unwrap_err();
        assert!(
            zero.message
                .contains("usage.prompt_tokens = 0 for a prompt of 40 bytes")
        );
    }

    #[test]
    fn a_stream_past_its_limits_is_malformed() {
        let many: Vec<&str> = vec!["a"; 4 * MAX_CHUNKS_PER_TOKEN + 1];
        let f = failure(&many, Value::Null);
        assert_eq!(f.class, ErrorClass::MalformedSse);
        assert!(
            f.message
                .contains("more than 64 chunks of text for max_tokens = 4"),
            "{}",
            f.message
        );
        let long = "x".repeat(4 * MAX_TEXT_BYTES_PER_TOKEN + 1);
        let f = failure(&[&long], Value::Null);
        assert!(
            f.message.contains("more than 4096 bytes of text"),
            "{}",
            f.message
        );
        let not_text = read(
            ASKED,
            &[b"data: {\"choices\":[{\"text\":5}]}\n\ndata: [DONE]\n\n"],
        )
        .unwrap_err();
        assert_eq!(not_text.class, ErrorClass::MalformedSse);
        assert!(not_text.message.contains("choices[0].text is a number"));
    }

    /// JSON values a hostile server might put where a count belongs.
    fn count_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            (0u64..64).prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|x| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)),
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            "[0-9a-z-]{0,6}".prop_map(Value::from),
            Just(json!([1])),
            Just(json!({"n": 1})),
        ]
    }

    fn usage_value() -> impl Strategy<Value = Value> {
        let field = || proptest::option::of(count_value());
        prop_oneof![
            4 => (field(), field(), field()).prop_map(|(p, c, t)| {
                let mut usage = serde_json::Map::new();
                for (name, value) in [("prompt_tokens", p), ("completion_tokens", c), ("total_tokens", t)] {
                    if let Some(value) = value {
                        usage.insert(name.into(), value);
                    }
                }
                Value::Object(usage)
            }),
            1 => count_value(),
        ]
    }

    /// One event of a hostile stream.
    fn event() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[a-z ]{0,8}".prop_map(|t| json!({"choices": [{"text": t, "finish_reason": null}]}).to_string()),
            1 => proptest::option::of("[a-z]{0,8}")
                .prop_map(|r| json!({"choices": [{"text": "", "finish_reason": r}]}).to_string()),
            2 => usage_value().prop_map(|u| json!({"choices": [], "usage": u}).to_string()),
            1 => Just("[DONE]".to_string()),
            1 => "\\PC{0,12}",
            1 => count_value().prop_map(|v| json!({"choices": [{"text": v}]}).to_string()),
            1 => Just(json!({"error": {"message": "overloaded"}}).to_string()),
            1 => Just(json!({"choices": [], "campaign_server_timing": {"first_token_ms": -1}}).to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Any usage object: parsing never panics, and a usage that is
        /// accepted holds whole counts no larger than asked, with a total
        /// that is the sum of its parts.
        #[test]
        fn any_usage_is_accepted_only_when_possible(
            usage in usage_value(),
            max_tokens in 1usize..64,
            ids in 0usize..64,
            chunks in 0usize..8,
        ) {
            let asked = Asked { chat: false, max_tokens, prompt: PromptSent::Ids(ids) };
            let Ok(Some(parsed)) = Usage::parse(&usage) else { return Ok(()); };
            if parsed.check(&asked, chunks).is_ok() {
                let u = parsed;
                if let Some(c) = u.completion_tokens {
                    prop_assert!(c <= max_tokens as u64);
                    prop_assert!(c > 0 || chunks == 0);
                }
                if let Some(p) = u.prompt_tokens {
                    prop_assert!((ids as u64..=ids as u64 + MAX_ADDED_PROMPT_TOKENS).contains(&p));
                }
                if let (Some(p), Some(c), Some(t)) = (u.prompt_tokens, u.completion_tokens, u.total_tokens) {
                    prop_assert_eq!(p + c, t);
                }
            }
        }

        /// A stream of hostile events, as bytes split anywhere: no panic,
        /// the same outcome however it was split, every failure of a
        /// stream class, and a completion only when its usage is possible.
        #[test]
        fn any_stream_split_anywhere_is_read_alike_and_classified(
            events in proptest::collection::vec(event(), 0..10),
            garbage in proptest::collection::vec(any::<u8>(), 0..40),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
            chat in any::<bool>(),
        ) {
            let mut bytes = Vec::new();
            for e in &events {
                bytes.extend_from_slice(format!("data: {e}\n\n").as_bytes());
            }
            bytes.extend_from_slice(&garbage);
            let asked = Asked { chat, ..ASKED };
            let whole = read(asked, &[&bytes]);
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces: Vec<&[u8]> = Vec::new();
            let mut from = 0;
            for cut in cuts {
                pieces.push(&bytes[from..cut]);
                from = cut;
            }
            pieces.push(&bytes[from..]);
            let split = read(asked, &pieces);
            match (&whole, &split) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(a.usage, b.usage);
                    prop_assert_eq!(a.chunks.len(), b.chunks.len());
                    if let Some(usage) = a.usage {
                        prop_assert!(usage.check(&asked, a.chunks.len()).is_ok());
                    }
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                _ => prop_assert!(false, "{whole:?} vs {split:?}"),
            }
            if let Err(f) = &whole {
                prop_assert!(matches!(
                    f.class,
                    ErrorClass::MalformedSse | ErrorClass::MalformedUsage | ErrorClass::CutShort | ErrorClass::Http5xx
                ), "{f:?}");
            }
        }
    }
}
