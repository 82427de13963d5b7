//! The engine behind the HTTP front end: one thread owns the model and runs
//! requests one at a time, in arrival order (batch 1, as the in-process
//! benchmarks run a request), sending each token to the request's handler
//! as soon as it exists, stamped with the server's clock.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

use tokio::sync::mpsc;

use super::api::FinishReason;
use super::prefix_cache::{PrefillPlan, PrefixCache, PrefixCacheConfig};
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
    /// The engine took the job (the time before it is queueing), and
    /// found `cached_tokens` of its prompt in the prefix cache (`None`
    /// without a prefix cache).
    Started {
        at: Instant,
        cached_tokens: Option<usize>,
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
    /// Starts the engine thread on a loaded model, with a prefix cache of
    /// `prefix_cache_mib` MiB of KV (0: none) in blocks of `block_tokens`.
    pub fn start(
        model: LoadedModel,
        prefix_cache_mib: u64,
        block_tokens: usize,
    ) -> Result<Self, EngineError> {
        let (jobs, queue) = std_mpsc::channel::<EngineJob>();
        let thread = std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || {
                // A model planted to flip tokens flips by the position a
                // forward pass starts at, which a resumed prefill moves:
                // it would answer otherwise than in-process.
                let capacity_mib = if model.planted_token_flip > 0.0 {
                    0
                } else {
                    prefix_cache_mib
                };
                let mut cache = PrefixCache::new(PrefixCacheConfig {
                    block_tokens,
                    capacity_bytes: capacity_mib.saturating_mul(1 << 20),
                    bytes_per_token: model.kv_bytes_per_token(),
                });
                for job in queue {
                    run_job(&model, &mut cache, job);
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

/// A server of known service instead of a model: `slots` requests served
/// at once, first come first served, each holding its slot for a time
/// drawn from an exponential of mean `mean_service` (seeded), its first
/// token at once and the others spread evenly over that time. An M/M/c
/// queue: its latency at any rate is Erlang's C formula, so a client's
/// accuracy and a capacity search can be checked against the truth over
/// real HTTP.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulatedService {
    pub slots: usize,
    pub mean_service: Duration,
    pub seed: u64,
}

impl SimulatedService {
    /// The text of each simulated token: one token of any tokenizer's
    /// vocabulary is not needed, since nothing decodes it back.
    pub const TOKEN_TEXT: &'static str = " a";
}

impl Engine {
    /// Starts `spec.slots` workers that take jobs in arrival order.
    pub fn simulate(spec: SimulatedService) -> Result<Self, EngineError> {
        let (jobs, queue) = std_mpsc::channel::<EngineJob>();
        let queue = Arc::new(Mutex::new(queue));
        let services = Arc::new(Mutex::new(ServiceTimes::new(spec)));
        let workers = (0..spec.slots.max(1))
            .map(|i| {
                let (queue, services) = (Arc::clone(&queue), Arc::clone(&services));
                std::thread::Builder::new()
                    .name(format!("simulated-{i}"))
                    .spawn(move || {
                        loop {
                            // The lock is held only to take the next job.
                            let next = match queue.lock() {
                                Ok(receiver) => receiver.recv(),
                                Err(_) => return,
                            };
                            let Ok(job) = next else { return };
                            let service = match services.lock() {
                                Ok(mut s) => s.next(),
                                Err(_) => return,
                            };
                            simulate_job(job, service);
                        }
                    })
                    .map_err(EngineError::Spawn)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let thread = std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || {
                for worker in workers {
                    let _ = worker.join();
                }
            })
            .map_err(EngineError::Spawn)?;
        Ok(Self { jobs, thread })
    }
}

/// The seeded service times, drawn in the order jobs start.
struct ServiceTimes {
    rng: ChaCha8Rng,
    exp: Option<Exp<f64>>,
    mean: Duration,
}

impl ServiceTimes {
    fn new(spec: SimulatedService) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(spec.seed),
            exp: Exp::new(1.0 / spec.mean_service.as_secs_f64().max(1e-9)).ok(),
            mean: spec.mean_service,
        }
    }

    fn next(&mut self) -> Duration {
        match &self.exp {
            Some(exp) => {
                Duration::try_from_secs_f64(exp.sample(&mut self.rng)).unwrap_or(self.mean)
            }
            None => self.mean,
        }
    }
}

fn simulate_job(job: EngineJob, service: Duration) {
    if job.events.is_closed() {
        return;
    }
    let start = Instant::now();
    let started = EngineEvent::Started {
        at: start,
        cached_tokens: None,
    };
    if job.events.send(started).is_err() {
        return;
    }
    let tokens = job.max_tokens;
    for i in 0..tokens {
        let due = start + service.mul_f64(i as f64 / tokens as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let token = EngineEvent::Token {
            id: 0,
            text: SimulatedService::TOKEN_TEXT.into(),
            at: Instant::now(),
        };
        if job.events.send(token).is_err() {
            // The client hung up: its slot is free at once.
            return;
        }
    }
    if let Some(wait) = (start + service).checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    let _ = job.events.send(EngineEvent::Finished {
        reason: FinishReason::Length,
        at: Instant::now(),
    });
}

fn run_job<'m>(model: &'m LoadedModel, cache: &mut PrefixCache<'m>, job: EngineJob) {
    // A client that went away before its turn costs nothing.
    if job.events.is_closed() {
        return;
    }
    let at = Instant::now();
    // A request that generates nothing computes nothing.
    let plan = (job.max_tokens > 0).then(|| cache.plan(&job.prompt));
    let cached_tokens = cache
        .enabled()
        .then(|| plan.as_ref().map_or(0, PrefillPlan::cached_tokens));
    let send = |event| job.events.send(event).is_ok();
    if !send(EngineEvent::Started { at, cached_tokens }) {
        return;
    }
    if let Err(e) = generate(model, cache, plan, &job) {
        let _ = job.events.send(EngineEvent::Failed {
            message: e.to_string(),
        });
    }
}

fn generate<'m>(
    model: &'m LoadedModel,
    cache: &mut PrefixCache<'m>,
    plan: Option<PrefillPlan<'m>>,
    job: &EngineJob,
) -> Result<(), InferenceError> {
    let tokenizer = model.tokenizer.as_ref().ok();
    let mut delta = TextDelta::new(|ids: &[u32]| tokenizer?.decode(ids).ok());
    let finish = |reason| {
        let _ = job.events.send(EngineEvent::Finished {
            reason,
            at: Instant::now(),
        });
    };
    let Some(plan) = plan else {
        finish(FinishReason::Length);
        return Ok(());
    };
    let mut session = match &plan.resume {
        Some(snapshot) => GenerationSession::resume(model, snapshot),
        None => GenerationSession::new(model, 1)?,
    };
    for &stop in &plan.stops {
        session.prefill(&job.prompt[session.position()..stop])?;
        cache.insert(&plan, session.snapshot());
    }
    let mut next = session.prefill(&job.prompt[session.position()..])?;
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
