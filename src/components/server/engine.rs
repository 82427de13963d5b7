//! The engine behind the HTTP front end: one thread owns the model and runs
//! requests one at a time, in arrival order (batch 1, as the in-process
//! benchmarks run a request), sending each token to the request's handler
//! as soon as it exists, stamped with the server's clock.

use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::mpsc;

use super::api::FinishReason;
use crate::components::inference::{GenerationSession, InferenceError, LoadedModel};

/// One generation to run.
pub struct EngineJob {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    /// Stop at this token (the model's end of sequence), unless ignored.
    pub stop: Option<u32>,
    /// When the HTTP request was read: server timestamps count from here.
    pub received: Instant,
    pub events: mpsc::UnboundedSender<EngineEvent>,
}

/// What the engine reports about a job, in order: `Started`, then one
/// `Token` per generated token, then `Finished` or `Failed`.
#[derive(Debug, Clone)]
pub enum EngineEvent {
    /// The engine took the job (the time before it is queueing).
    Started {
        at: Instant,
    },
    /// A generated token, as its id and the text it adds to the output.
    Token {
        id: u32,
        text: String,
        at: Instant,
    },
    Finished {
        reason: FinishReason,
        at: Instant,
    },
    Failed {
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the engine has stopped (it failed earlier, or the server is shutting down)")]
    Stopped,
    #[error("cannot start the engine thread: {0}")]
    Spawn(std::io::Error),
}

/// A handle on the engine thread; dropping every clone of the sender stops it.
pub struct Engine {
    jobs: std_mpsc::Sender<EngineJob>,
    thread: JoinHandle<()>,
}

/// Token ids to text, `None` when they cannot be decoded.
type Decode<'t> = dyn Fn(&[u32]) -> Option<String> + 't;

/// Turns token ids into text increments. Decoding each token alone breaks
/// multi-byte characters and tokenizers that merge spaces, so the whole
/// output is decoded and only what it adds is sent; an unfinished
/// character (decoded as U+FFFD) is held back until the next token.
pub struct TextDelta<'t> {
    decode: Box<Decode<'t>>,
    ids: Vec<u32>,
    sent: String,
}

impl<'t> TextDelta<'t> {
    pub fn new(decode: impl Fn(&[u32]) -> Option<String> + 't) -> Self {
        Self {
            decode: Box::new(decode),
            ids: Vec::new(),
            sent: String::new(),
        }
    }

    /// The text that `id` adds, possibly empty.
    pub fn push(&mut self, id: u32) -> String {
        self.ids.push(id);
        let Some(full) = (self.decode)(&self.ids) else {
            return String::new();
        };
        if full.ends_with('\u{fffd}') || !full.starts_with(&self.sent) {
            return String::new();
        }
        let added = full[self.sent.len()..].to_string();
        self.sent = full;
        added
    }
}

impl Engine {
    /// Starts the engine thread on a loaded model.
    pub fn start(model: LoadedModel) -> Result<Self, EngineError> {
        let (jobs, queue) = std_mpsc::channel::<EngineJob>();
        let thread = std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || {
                for job in queue {
                    run_job(&model, job);
                }
            })
            .map_err(EngineError::Spawn)?;
        Ok(Self { jobs, thread })
    }

    /// A sender to give jobs to the engine from any thread.
    pub fn submitter(&self) -> std_mpsc::Sender<EngineJob> {
        self.jobs.clone()
    }

    /// Stops taking jobs and waits for the one in progress.
    pub fn stop(self) {
        drop(self.jobs);
        let _ = self.thread.join();
    }
}

fn run_job(model: &LoadedModel, job: EngineJob) {
    // A client that went away before its turn costs nothing.
    if job.events.is_closed() {
        return;
    }
    let send = |event| job.events.send(event).is_ok();
    if !send(EngineEvent::Started { at: Instant::now() }) {
        return;
    }
    if let Err(e) = generate(model, &job) {
        let _ = job.events.send(EngineEvent::Failed {
            message: e.to_string(),
        });
    }
}

fn generate(model: &LoadedModel, job: &EngineJob) -> Result<(), InferenceError> {
    let tokenizer = model.tokenizer.as_ref().ok();
    let mut delta = TextDelta::new(|ids: &[u32]| tokenizer?.decode(ids).ok());
    let finish = |reason| {
        let _ = job.events.send(EngineEvent::Finished {
            reason,
            at: Instant::now(),
        });
    };
    if job.max_tokens == 0 {
        finish(FinishReason::Length);
        return Ok(());
    }
    let mut session = GenerationSession::new(model, 1)?;
    let mut next = session.prefill(&job.prompt)?;
    let mut generated = 0;
    loop {
        let Some(&id) = next.first() else {
            finish(FinishReason::Stop);
            return Ok(());
        };
        let at = Instant::now();
        generated += 1;
        let text = delta.push(id);
        if job
            .events
            .send(EngineEvent::Token { id, text, at })
            .is_err()
        {
            // The client hung up: stop spending the engine on it.
            return Ok(());
        }
        if job.stop == Some(id) {
            finish(FinishReason::Stop);
            return Ok(());
        }
        if generated >= job.max_tokens {
            finish(FinishReason::Length);
            return Ok(());
        }
        next = session.step(&[id])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_deltas_hold_back_unfinished_characters() {
        // A toy tokenizer: ids are bytes, decoded lossily as UTF-8.
        let mut delta = TextDelta::new(|ids: &[u32]| {
            let bytes: Vec<u8> = ids.iter().map(|&b| b as u8).collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        });
        assert_eq!(delta.push(b'a' as u32), "a");
        // "é" is two bytes: nothing until the second arrives.
        assert_eq!(delta.push(0xc3), "");
        assert_eq!(delta.push(0xa9), "é");
        assert_eq!(delta.push(b' ' as u32), " ");
    }
}
