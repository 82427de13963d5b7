//! The request log: one JSON line per request with the server's own
//! timestamps of its tokens, so a client can split its time to first token
//! into server time and transport plus client.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::api::{FinishReason, ServerTiming, Usage};
use super::engine::EngineEvent;

/// What the server saw of one request. Times are milliseconds after the
/// request was read (`received_unix_ms`, on the wall clock).
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub id: String,
    pub endpoint: &'static str,
    pub stream: bool,
    pub received_unix_ms: f64,
    pub prompt_tokens: usize,
    /// Prompt tokens found in the prefix cache (not computed); none
    /// without a prefix cache.
    pub cached_tokens: Option<usize>,
    pub max_tokens: usize,
    pub completion_tokens: usize,
    /// Waiting for the engine (another request was running).
    pub queue_ms: Option<f64>,
    pub first_token_ms: Option<f64>,
    /// When each token was generated, first to last.
    pub token_ms: Vec<f64>,
    pub finished_ms: Option<f64>,
    pub finish_reason: Option<FinishReason>,
    /// Why the request failed, or `client went away`.
    pub error: Option<String>,
    #[serde(skip)]
    received: Instant,
}

impl RequestRecord {
    pub fn new(
        id: String,
        endpoint: &'static str,
        stream: bool,
        received: Instant,
        prompt_tokens: usize,
        max_tokens: usize,
    ) -> Self {
        let received_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
            - received.elapsed().as_secs_f64() * 1e3;
        Self {
            id,
            endpoint,
            stream,
            received_unix_ms,
            prompt_tokens,
            cached_tokens: None,
            max_tokens,
            completion_tokens: 0,
            queue_ms: None,
            first_token_ms: None,
            token_ms: Vec::new(),
            finished_ms: None,
            finish_reason: None,
            error: None,
            received,
        }
    }

    fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.received).as_secs_f64() * 1e3
    }

    /// The usage a client is told, cached tokens as OpenAI reports them.
    pub fn usage(&self) -> Usage {
        let usage = Usage::new(self.prompt_tokens, self.completion_tokens);
        match self.cached_tokens {
            Some(cached) => usage.with_cached(cached),
            None => usage,
        }
    }

    /// The times a client is told (see [`ServerTiming`]).
    pub fn timing(&self) -> ServerTiming {
        ServerTiming {
            queue_ms: self.queue_ms,
            first_token_ms: self.first_token_ms,
            finished_ms: self.finished_ms,
        }
    }

    /// Notes an engine event.
    pub fn record(&mut self, event: &EngineEvent) {
        match event {
            EngineEvent::Started { at, cached_tokens } => {
                self.queue_ms = Some(self.ms(*at));
                self.cached_tokens = *cached_tokens;
            }
            EngineEvent::Token { at, .. } => {
                let ms = self.ms(*at);
                self.first_token_ms.get_or_insert(ms);
                self.token_ms.push(ms);
                self.completion_tokens += 1;
            }
            EngineEvent::Finished { reason, at } => {
                self.finished_ms = Some(self.ms(*at));
                self.finish_reason = Some(*reason);
            }
            EngineEvent::Failed { message } => self.error = Some(message.clone()),
        }
    }
}

/// A request's record, written to the log when dropped: however the
/// request ends (finished, failed, timed out in the queue, or dropped by
/// the HTTP server because its client hung up), it leaves one line.
pub struct Logged {
    log: Arc<RequestLog>,
    pub record: RequestRecord,
}

impl Logged {
    pub fn new(log: Arc<RequestLog>, record: RequestRecord) -> Self {
        Self { log, record }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // Dropped before it finished and without an error of its own: the
        // HTTP server dropped the request because its client went away.
        if self.record.finish_reason.is_none() && self.record.error.is_none() {
            self.record.error = Some(CLIENT_WENT_AWAY.into());
        }
        self.log.write(&self.record);
    }
}

/// The error logged for a request whose client hung up.
pub const CLIENT_WENT_AWAY: &str = "client went away";

#[derive(Debug, thiserror::Error)]
#[error("request log {path}: {source}\n  help: point --request-log at a writable folder")]
pub struct RequestLogError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Appends records to a JSONL file, one flushed line per request, so a
/// server that is killed leaves every finished request on disk.
pub struct RequestLog {
    path: PathBuf,
    file: Mutex<BufWriter<File>>,
}

impl RequestLog {
    pub fn create(path: &Path) -> Result<Self, RequestLogError> {
        let error = |source| RequestLogError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(error)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(error)?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(BufWriter::new(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a record. A failed write is reported on stderr and does not
    /// fail the request: the client's answer matters more than the log.
    pub fn write(&self, record: &RequestRecord) {
        let Ok(line) = serde_json::to_string(record) else {
            return;
        };
        let written = self.file.lock().map_err(|_| ()).and_then(|mut f| {
            writeln!(f, "{line}")
                .and_then(|()| f.flush())
                .map_err(|e| eprintln!("warning: request log {}: {e}", self.path.display()))
        });
        let _ = written;
    }
}
