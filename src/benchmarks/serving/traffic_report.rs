//! What a serving case says beyond its metrics: for shaped traffic, the
//! prompt reuse its workload allowed (ideal, Belady's bound), the reuse
//! the server confirmed (`cached_tokens`), and the time to first token
//! gained against its unshared twin; for every case, the timeline of the
//! requests of its last timed iteration.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::json;

use super::traffic::PrefixReuse;
use crate::stats::nearest_rank;

/// The TTFTs of a shaped case and of its unshared twin over their timed
/// iterations: whichever concludes last has both.
#[derive(Debug, Default)]
pub(super) struct TtftPair {
    shared_ms: Vec<f64>,
    unshared_ms: Vec<f64>,
}

impl TtftPair {
    pub fn shared() -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self::default()))
    }
}

/// A case's side of the reuse: what its workload allowed, what the server
/// confirmed, and its TTFTs for the pair.
#[derive(Debug)]
pub(super) struct ReuseTally {
    workload: Option<PrefixReuse>,
    pair: Arc<Mutex<TtftPair>>,
    twin: bool,
    /// Against a server (in-process, no prefix is cached).
    served: bool,
    prompt_tokens: u64,
    cached_tokens: u64,
    reporting: u64,
    requests: u64,
}

impl ReuseTally {
    pub fn new(workload: Option<PrefixReuse>, pair: Arc<Mutex<TtftPair>>, twin: bool) -> Self {
        Self {
            workload,
            pair,
            twin,
            served: true,
            prompt_tokens: 0,
            cached_tokens: 0,
            reporting: 0,
            requests: 0,
        }
    }

    /// An in-process case: what its workload allowed, nothing confirmed.
    pub fn in_process(workload: PrefixReuse) -> Self {
        Self {
            served: false,
            ..Self::new(Some(workload), TtftPair::shared(), false)
        }
    }

    /// Forgets the warm-up.
    pub fn clear(&mut self) {
        (self.prompt_tokens, self.cached_tokens) = (0, 0);
        (self.reporting, self.requests) = (0, 0);
        if let Ok(mut pair) = self.pair.lock() {
            self.side(&mut pair).clear();
        }
    }

    fn side<'p>(&self, pair: &'p mut TtftPair) -> &'p mut Vec<f64> {
        if self.twin {
            &mut pair.unshared_ms
        } else {
            &mut pair.shared_ms
        }
    }

    /// One completed request: its TTFT, and the cached and prompt tokens
    /// the server reported (`None` when it did not say).
    pub fn request(&mut self, ttft_ms: f64, server: Option<(u64, u64)>) {
        self.requests += 1;
        if let Some((cached, prompt)) = server {
            self.reporting += 1;
            self.cached_tokens += cached;
            self.prompt_tokens += prompt;
        }
        if let Ok(mut pair) = self.pair.lock() {
            self.side(&mut pair).push(ttft_ms);
        }
    }

    pub fn conclude(&self) -> serde_json::Value {
        let mut out = json!({
            "case": if self.twin { "unshared twin (same lengths, times and turns; no token in common)" } else { "shared" },
            "workload": self.workload,
        });
        if self.reporting > 0 {
            out["confirmed"] = json!({
                "cached_tokens": self.cached_tokens,
                "prompt_tokens": self.prompt_tokens,
                "hit_pct": 100.0 * self.cached_tokens as f64 / self.prompt_tokens.max(1) as f64,
                "requests_reporting": self.reporting,
                "requests": self.requests,
            });
        } else if !self.served {
            out["confirmed"] = json!("in-process: the engine caches no prefix");
        } else if self.requests > 0 {
            out["confirmed"] = json!(
                "the server reported no usage.prompt_tokens_details.cached_tokens (no prefix cache, or it does not say)"
            );
        }
        if let Ok(pair) = self.pair.lock()
            && !pair.shared_ms.is_empty()
            && !pair.unshared_ms.is_empty()
        {
            let median = |samples: &[f64]| nearest_rank(samples, 0.5).unwrap_or(0.0);
            let (shared, unshared) = (median(&pair.shared_ms), median(&pair.unshared_ms));
            out["ttft_gained"] = json!({
                "formula": "p50 TTFT of the unshared twin − p50 TTFT of the shared case, over their timed iterations",
                "shared_p50_ms": shared,
                "unshared_p50_ms": unshared,
                "gained_ms": unshared - shared,
                "gained_pct": if unshared > 0.0 { 100.0 * (unshared - shared) / unshared } else { 0.0 },
                "shared_requests": pair.shared_ms.len(),
                "unshared_requests": pair.unshared_ms.len(),
            });
        }
        out
    }
}

/// One request on a case's timeline, in ms from its iteration's start.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct TimelineRequest {
    /// Its place in the workload.
    pub index: usize,
    pub scheduled_ms: f64,
    pub sent_ms: f64,
    pub first_token_ms: Option<f64>,
    pub finish_ms: f64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
}

/// Requests a timeline shows at most: a page stays light, and the first
/// 2000 of an iteration show its shape.
pub(super) const TIMELINE_MAX_REQUESTS: usize = 2000;

/// The requests of one timed iteration, in send order.
#[derive(Debug, Clone, Default)]
pub(super) struct Timeline {
    iteration: usize,
    total: usize,
    requests: Vec<TimelineRequest>,
}

impl Timeline {
    /// Keeps `requests`, the latest timed iteration's, in send order.
    pub fn record(&mut self, mut requests: Vec<TimelineRequest>) {
        self.iteration += 1;
        self.total = requests.len();
        requests.sort_by(|a, b| a.scheduled_ms.total_cmp(&b.scheduled_ms));
        requests.truncate(TIMELINE_MAX_REQUESTS);
        self.requests = requests;
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    pub fn conclude(&self) -> Option<serde_json::Value> {
        (self.iteration > 0).then(|| {
            json!({
                "iteration": self.iteration,
                "total": self.total,
                "requests": self.requests,
            })
        })
    }
}
