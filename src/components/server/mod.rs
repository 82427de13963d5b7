//! An OpenAI-compatible server over the in-process engine, so that a
//! campaign can measure a served stack with the same model as the
//! in-process one, and split a served TTFT into server time and transport
//! plus client.
//!
//! `/v1/models`, `/v1/completions` and `/v1/chat/completions`, each
//! streaming (server-sent events, `stream_options.include_usage`) or not.
//! One engine thread runs requests one at a time in arrival order, and
//! decodes greedily: `temperature` is accepted and ignored, so the same
//! prompt gives the same tokens, as a benchmark wants. `ignore_eos` (vLLM's
//! extension) generates exactly `max_tokens`. Every request is logged as
//! one JSON line with the server's timestamps of its tokens.
//!
//! What a client can make it hold is bounded (`access`): an optional API
//! key, a queue of at most `max_queue` waiting requests (429 past it), a
//! wait of at most `max_wait` before a generation starts (503 past it),
//! and bodies of at most [`MAX_BODY_BYTES`] (413).
//!
//! A prefix cache (`prefix_cache`) keeps the KV of recent prompts' full
//! blocks and resumes later prompts that begin with them; each response's
//! `usage.prompt_tokens_details.cached_tokens` says how many prompt tokens
//! it did not compute, as OpenAI reports it.

mod access;
mod api;
mod engine;
mod error;
mod http;
mod log;
mod prefix_cache;

pub use access::{ApiKey, ApiKeyError, MAX_BODY_BYTES, RETRY_AFTER_S};

pub use api::{
    ChatChunk, ChatRequest, CompletionRequest, CompletionResponse, DEFAULT_MAX_TOKENS,
    FinishReason, PromptTokensDetails, Usage,
};
pub use engine::{Engine, EngineEvent, EngineJob, SimulatedService, TextDelta};
pub use http::{ServeOptions, Server, ServerError};
pub use log::{RequestLog, RequestLogError, RequestRecord};
pub use prefix_cache::{PrefillPlan, PrefixCache, PrefixCacheConfig, PrefixCacheCounts};
