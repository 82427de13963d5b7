//! A served stack reached over HTTP: a streaming client of OpenAI-compatible
//! endpoints (`/v1/completions`, `/v1/chat/completions`), built on reqwest
//! and a bounded server-sent event decoder. It stamps each content chunk
//! with the time it was read, checks the server's `usage` against what was
//! asked and streamed, and classifies every failure; it computes no metric
//! itself.

mod client;
mod sse;
mod stream;

pub use client::{
    EndpointApi, EndpointClient, EndpointConfig, EndpointError, MAX_ERROR_BODY_BYTES,
    PreparedRequest, RequestPrompt, Stamped, redact_url,
};
pub use sse::MAX_EVENT_BYTES;
pub use stream::{
    ContentChunk, ErrorClass, MAX_ADDED_PROMPT_TOKENS, MAX_CHUNKS_PER_TOKEN, MAX_TEMPLATE_TOKENS,
    MAX_TEXT_BYTES_PER_TOKEN, RequestFailure, StreamedCompletion, Surprise, Usage,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The Limits table of docs/campaign-author.md states every limit on a
    /// server's response as the code has it.
    #[test]
    fn every_limit_is_stated_in_the_docs() {
        let doc = include_str!("../../../docs/campaign-author.md");
        for row in [
            format!("| {MAX_EVENT_BYTES} bytes | one line of a server-sent event stream"),
            format!(
                "| {MAX_CHUNKS_PER_TOKEN} chunks a token asked | content chunks kept per request (`max_tokens` × {MAX_CHUNKS_PER_TOKEN})"
            ),
            format!(
                "| {MAX_TEXT_BYTES_PER_TOKEN} bytes a token asked | streamed text kept per request (`max_tokens` × {MAX_TEXT_BYTES_PER_TOKEN})"
            ),
            format!("| {MAX_ERROR_BODY_BYTES} bytes | an error response's body read"),
            format!("| {MAX_ADDED_PROMPT_TOKENS} tokens over the ids sent |"),
            format!("| one a byte plus {MAX_TEMPLATE_TOKENS} tokens |"),
        ] {
            assert!(
                doc.contains(&row),
                "docs/campaign-author.md's Limits lack: {row}"
            );
        }
    }
}
