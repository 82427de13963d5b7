//! A static batching server: a fixed number of workers share one model;
//! each takes the next `batch_size` requests in order and decodes them as one
//! batch until the longest is done, as the simplest serving engines do
//! (no continuous batching: a batch admits nobody until it ends).
//!
//! The server only serves. Whoever drives it learns what happened through
//! [`ServeEvents`], called on the worker's thread at each point a serving
//! metric is taken from, so timing stays with the caller.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{GenerationSession, InferenceError, LoadedModel};

/// One request: its prompt and how many tokens to generate.
#[derive(Debug, Clone, Copy)]
pub struct ServeRequest<'a> {
    pub prompt: &'a [u32],
    pub output_tokens: usize,
}

/// Hooks into a serving run. `begin_batch` runs on the worker before the
/// batch starts and may block (an open-loop driver waits there for the
/// batch's arrival time); the returned value sees every decode step of that
/// batch and is handed back, in batch order, when the run ends.
pub trait ServeEvents: Sync {
    type Batch: BatchEvents + Send;
    fn begin_batch(&self, requests: Range<usize>) -> Self::Batch;

    /// The batch a free worker serves next (its index), `None` when none
    /// is left. `in_order` hands out the batches in request order, which
    /// is the default; a driver whose requests fall due out of order (the
    /// later turns of conversations) hands out the earliest due instead,
    /// and may block until one is.
    fn next_batch(&self, in_order: &dyn Fn() -> Option<usize>) -> Option<usize> {
        in_order()
    }
}

/// One batch's decode steps, on the thread that serves it.
pub trait BatchEvents {
    /// The batch's `step`-th token (0 = the first, after prefill) exists for
    /// every request of the batch.
    fn token(&mut self, step: usize);
}

/// Serves `requests` with `workers` threads, `batch_size` requests per
/// batch, and returns each batch's events value in batch order. A worker
/// that fails or panics fails the run.
pub fn serve_static_batches<E: ServeEvents>(
    model: &LoadedModel,
    requests: &[ServeRequest<'_>],
    workers: usize,
    batch_size: usize,
    events: &E,
) -> Result<Vec<E::Batch>, InferenceError> {
    let batch_size = batch_size.max(1);
    let batches: Vec<Range<usize>> = (0..requests.len())
        .step_by(batch_size)
        .map(|start| start..(start + batch_size).min(requests.len()))
        .collect();
    let next = AtomicUsize::new(0);
    let per_worker = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<Vec<(usize, E::Batch)>, InferenceError> {
                    let mut done = Vec::new();
                    let in_order = || {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        (index < batches.len()).then_some(index)
                    };
                    loop {
                        let Some((index, range)) = events
                            .next_batch(&in_order)
                            .and_then(|i| Some((i, batches.get(i)?)))
                        else {
                            return Ok(done);
                        };
                        let mut batch = events.begin_batch(range.clone());
                        decode_batch(model, &requests[range.clone()], &mut batch)?;
                        done.push((index, batch));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|payload| {
                    Err(InferenceError::WorkerPanicked(
                        crate::panics::describe_joined("a serving worker", payload.as_ref()),
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    let mut served: Vec<(usize, E::Batch)> = per_worker.into_iter().flatten().collect();
    served.sort_by_key(|(index, _)| *index);
    Ok(served.into_iter().map(|(_, batch)| batch).collect())
}

/// Prefill of every prompt, then greedy decode until the longest request
/// of the batch has its tokens.
fn decode_batch(
    model: &LoadedModel,
    batch: &[ServeRequest<'_>],
    events: &mut impl BatchEvents,
) -> Result<(), InferenceError> {
    let output_tokens = batch.iter().map(|r| r.output_tokens).max().unwrap_or(1);
    let mut session = GenerationSession::new(model, batch.len())?;
    let prompts: Vec<&[u32]> = batch.iter().map(|r| r.prompt).collect();
    let mut tokens = session.prefill_each(&prompts)?;
    events.token(0);
    for step in 1..output_tokens {
        tokens = session.step(&tokens)?;
        events.token(step);
    }
    std::hint::black_box(tokens);
    Ok(())
}
