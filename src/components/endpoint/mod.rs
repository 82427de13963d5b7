//! A served stack reached over HTTP: a streaming client of OpenAI-compatible
//! endpoints (`/v1/completions`, `/v1/chat/completions`), built on reqwest
//! and eventsource-stream. It stamps each content chunk with the time it
//! was read and classifies every failure; it computes no metric itself.

mod client;

pub use client::{
    ContentChunk, EndpointApi, EndpointClient, EndpointConfig, EndpointError, ErrorClass,
    RequestFailure, RequestPrompt, StreamedCompletion, redact_url,
};
