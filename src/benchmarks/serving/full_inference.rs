//! Serving macrobenchmarks: many requests against one shared model, closed
//! loop at a concurrency or open loop with Poisson arrivals (`full_inference`),
//! and the same workload swept over concurrency levels and batch sizes
//! (`scaling`).
//!
//! Open-loop latencies start at each request's scheduled arrival, not when a
//! worker picked it up, so time spent queued behind a busy server counts
//! (no coordinated omission).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::endpoint_serving::{
    CLIENT_CPU_PCT, CLIENT_CPU_US_PER_OUTPUT_TOKEN, DISPATCH_LAG_MS, ENDPOINT_ERROR_RATE_PCT,
    ENDPOINT_SHORT_RESPONSE_PCT, ERRORS_CONNECT, ERRORS_CUT_SHORT, ERRORS_HTTP_4XX,
    ERRORS_HTTP_5XX, ERRORS_MALFORMED_SSE, ERRORS_MALFORMED_USAGE, ERRORS_RATE_LIMITED,
    ERRORS_TIMEOUT, EndpointCase, PREFIX_HIT_PCT, SERVER_PROMPT_TOKENS, SERVER_TTFT_MS,
    SHORT_RESPONSES, TRANSPORT_CLIENT_MS,
};
use super::endpoint_target::{PromptWriter, PromptsAsked, client_memory, with_endpoint_target};
use super::quality::served_outputs;
use super::traffic::{
    MAX_TRACE_PROMPT_TOKENS, MAX_TRACE_REQUESTS, PrefixReuse, Traffic, read_trace, unshared,
};
use super::traffic_report::{ReuseTally, Timeline, TimelineRequest, TtftPair};
use crate::benchmarks::model::{
    MODEL_SETUP_METRICS, PromptSpec, Prompts, architecture, check_model, check_prompts,
    generation_memory, load_model,
};
use crate::benchmarks::request_timing::{
    GOODPUT_PCT, GOODPUT_REQUESTS_PER_S, ITL_MS, RequestTiming, SERVING_E2E_MS,
    SERVING_OUTPUT_TOKENS_PER_S, SERVING_QUEUE_MS, SERVING_REQUESTS_PER_S, SERVING_TPOT_MS,
    SERVING_TTFT_MS, Slo, TTFT_FROM_SEND_MS, record_run,
};
use crate::benchmarks::workload::{
    ArrivalProcess, Arrivals, LengthDistribution, Ramp, RampShape, Request, WorkloadSpec,
    generate_requests,
};
use crate::benchmarks::{
    BenchContext, BenchmarkCase, BenchmarkError, Conclusion, Headline, Kind, MemoryNeed, MetricDef,
    Models, Observations, ParamProblem, PreparedBenchmark, ServedOutput, SweepAxis,
};
use crate::campaign::bounds::{Count, Dimension, Millis, Parallel, Rate, Tokens};
use crate::components::inference::{
    BatchEvents, LoadedModel, ServeEvents, ServeRequest, serve_static_batches,
};
use crate::model::{CaseParams, Findings, ScalingCaseParams};

/// What both serving kinds record: every request's timing, and against an
/// endpoint the client's own share and the failures by class.
const SERVING_METRICS: &[MetricDef] = &[
    SERVING_QUEUE_MS,
    SERVING_TTFT_MS,
    TTFT_FROM_SEND_MS,
    DISPATCH_LAG_MS,
    CLIENT_CPU_PCT,
    CLIENT_CPU_US_PER_OUTPUT_TOKEN,
    PREFIX_HIT_PCT,
    SERVING_TPOT_MS,
    ITL_MS,
    SERVING_E2E_MS,
    SERVING_REQUESTS_PER_S,
    SERVING_OUTPUT_TOKENS_PER_S,
    GOODPUT_PCT,
    GOODPUT_REQUESTS_PER_S,
    SERVER_TTFT_MS,
    TRANSPORT_CLIENT_MS,
    ENDPOINT_ERROR_RATE_PCT,
    ERRORS_CONNECT,
    ERRORS_TIMEOUT,
    ERRORS_RATE_LIMITED,
    ERRORS_HTTP_4XX,
    ERRORS_HTTP_5XX,
    ERRORS_MALFORMED_SSE,
    ERRORS_MALFORMED_USAGE,
    ERRORS_CUT_SHORT,
    SHORT_RESPONSES,
    ENDPOINT_SHORT_RESPONSE_PCT,
    SERVER_PROMPT_TOKENS,
];

/// Serves `requests` on the static batching server with `concurrency`
/// workers and `batch_size` requests per batch, timing every request. In an
/// open loop a request's clock starts at its scheduled arrival (a worker
/// waits for the latest arrival of its batch); in a closed loop, when a
/// worker takes it. A later turn of a conversation is due `think_s` after
/// the turn it follows finished (its worker waits for it). Returns each
/// request's timing (in request order), their timeline, and the wall time
/// of the whole run.
pub(super) fn serve(
    model: &LoadedModel,
    requests: &[Request],
    concurrency: usize,
    batch_size: usize,
    open_loop: bool,
) -> Result<(Vec<RequestTiming>, Vec<TimelineRequest>, Duration), BenchmarkError> {
    let served: Vec<ServeRequest<'_>> = requests
        .iter()
        .map(|r| ServeRequest {
            prompt: &r.prompt,
            output_tokens: r.output_tokens,
        })
        .collect();
    let clock = ServingClock {
        start: Instant::now(),
        requests,
        open_loop,
        // Turns that follow others are handed out as they fall due; that
        // is one request a batch (full_inference's batches).
        chained: batch_size == 1 && requests.iter().any(|r| r.follows.is_some()),
        board: Arc::new(FinishBoard::new(requests, open_loop)),
    };
    let batches = serve_static_batches(model, &served, concurrency, batch_size, &clock)?;
    let wall = clock.start.elapsed();
    let timings = batches
        .iter()
        .flat_map(|batch| {
            requests[batch.requests.clone()]
                .iter()
                .map(|r| batch.timing(r.output_tokens))
        })
        .collect();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let timeline = batches
        .iter()
        .flat_map(|batch| {
            batch.requests.clone().map(|index| {
                let r = &requests[index];
                let own = &batch.tokens[..r.output_tokens.min(batch.tokens.len())];
                TimelineRequest {
                    index,
                    scheduled_ms: ms(batch.scheduled),
                    sent_ms: ms(batch.started),
                    first_token_ms: own.first().copied().map(ms),
                    finish_ms: ms(own.last().copied().unwrap_or(batch.started)),
                    ok: true,
                    cached_tokens: None,
                }
            })
        })
        .collect();
    Ok((timings, timeline, wall))
}

/// When each request finished (from the run's start), and the requests
/// due to be served, earliest first: a conversation's next turn joins them
/// when the turn before it finishes, due its think time later.
struct FinishBoard {
    state: Mutex<BoardState>,
    changed: Condvar,
}

struct BoardState {
    finished: Vec<Option<Duration>>,
    due: BinaryHeap<Reverse<(Duration, usize)>>,
    /// Turns not yet due: the turn before each has not finished.
    waiting: usize,
    followers: Vec<Vec<usize>>,
    think: Vec<Duration>,
}

impl FinishBoard {
    fn new(requests: &[Request], open_loop: bool) -> Self {
        let mut followers = vec![Vec::new(); requests.len()];
        let mut due = BinaryHeap::new();
        let mut waiting = 0;
        for (i, r) in requests.iter().enumerate() {
            match r.follows {
                Some(f) if f.previous < i => {
                    followers[f.previous].push(i);
                    waiting += 1;
                }
                _ => {
                    let at = if open_loop { r.arrival_s } else { 0.0 };
                    due.push(Reverse((Duration::from_secs_f64(at), i)));
                }
            }
        }
        Self {
            state: Mutex::new(BoardState {
                finished: vec![None; requests.len()],
                due,
                waiting,
                followers,
                think: requests
                    .iter()
                    .map(|r| Duration::from_secs_f64(r.follows.map_or(0.0, |f| f.think_s)))
                    .collect(),
            }),
            changed: Condvar::new(),
        }
    }

    fn mark(&self, request: usize, at: Duration) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let state = &mut *state;
        match state.finished.get_mut(request) {
            Some(slot @ None) => *slot = Some(at),
            _ => return,
        }
        for &f in &state.followers[request] {
            state.due.push(Reverse((at + state.think[f], f)));
            state.waiting -= 1;
        }
        self.changed.notify_all();
    }

    /// The earliest due request, waiting for one while turns wait for
    /// theirs; `None` when every request was handed out. Every request
    /// handed out is marked when its batch ends, even failed (on drop), so
    /// the wait ends.
    fn next(&self) -> Option<usize> {
        let mut state = self.state.lock().ok()?;
        loop {
            if let Some(Reverse((_, i))) = state.due.pop() {
                return Some(i);
            }
            if state.waiting == 0 {
                return None;
            }
            state = self.changed.wait(state).ok()?;
        }
    }

    /// When `request` finished, waiting for it.
    fn wait_for(&self, request: usize) -> Duration {
        let Ok(mut state) = self.state.lock() else {
            return Duration::ZERO;
        };
        loop {
            match state.finished.get(request) {
                Some(Some(at)) => return *at,
                None => return Duration::ZERO,
                Some(None) => {}
            }
            state = match self.changed.wait(state) {
                Ok(guard) => guard,
                Err(_) => return Duration::ZERO,
            };
        }
    }
}

/// Takes the time of each serving event, relative to the run's start.
struct ServingClock<'a> {
    start: Instant,
    requests: &'a [Request],
    open_loop: bool,
    /// Requests are handed out as they fall due, not in order.
    chained: bool,
    board: Arc<FinishBoard>,
}

struct BatchClock {
    requests: Range<usize>,
    /// The output tokens each request of the batch asked.
    outputs: Vec<usize>,
    scheduled: Duration,
    arrival: Duration,
    started: Duration,
    /// When the batch's i-th token existed, from the run's start.
    tokens: Vec<Duration>,
    start: Instant,
    board: Arc<FinishBoard>,
}

impl ServeEvents for ServingClock<'_> {
    type Batch = BatchClock;

    fn next_batch(&self, in_order: &dyn Fn() -> Option<usize>) -> Option<usize> {
        if self.chained {
            self.board.next()
        } else {
            in_order()
        }
    }

    fn begin_batch(&self, requests: Range<usize>) -> BatchClock {
        let scheduled = self.requests[requests.clone()]
            .iter()
            .map(|r| match r.follows {
                Some(follow) => {
                    self.board.wait_for(follow.previous) + Duration::from_secs_f64(follow.think_s)
                }
                None => Duration::from_secs_f64(r.arrival_s),
            })
            .max()
            .unwrap_or_default();
        if let Some(wait) = scheduled.checked_sub(self.start.elapsed()) {
            std::thread::sleep(wait);
        }
        let started = self.start.elapsed();
        BatchClock {
            outputs: self.requests[requests.clone()]
                .iter()
                .map(|r| r.output_tokens)
                .collect(),
            requests,
            scheduled,
            // A closed loop's clock starts when a worker takes the request
            // (a later turn's, after its think time), as against an
            // endpoint, where it starts when a concurrency slot is free.
            arrival: if self.open_loop { scheduled } else { started },
            started,
            tokens: Vec::new(),
            start: self.start,
            board: Arc::clone(&self.board),
        }
    }
}

impl BatchEvents for BatchClock {
    fn token(&mut self, _step: usize) {
        let at = self.start.elapsed();
        self.tokens.push(at);
        let produced = self.tokens.len();
        for (k, &asked) in self.outputs.iter().enumerate() {
            if asked == produced {
                self.board.mark(self.requests.start + k, at);
            }
        }
    }
}

impl Drop for BatchClock {
    /// Requests the batch did not finish (it failed) are marked now, so no
    /// turn waits for them forever.
    fn drop(&mut self) {
        let at = self.start.elapsed();
        for request in self.requests.clone() {
            self.board.mark(request, at);
        }
    }
}

impl BatchClock {
    /// A request of this batch that wanted `output_tokens`: it finishes at
    /// its own last token, even though the batch keeps decoding.
    fn timing(&self, output_tokens: usize) -> RequestTiming {
        let own = &self.tokens[..output_tokens.min(self.tokens.len())];
        let first = own.first().copied().unwrap_or(self.started);
        let last = own.last().copied().unwrap_or(self.started);
        RequestTiming {
            queue: self.started.saturating_sub(self.arrival),
            ttft_from_send: first.saturating_sub(self.started),
            ttft: first.saturating_sub(self.arrival),
            gaps_ms: own
                .windows(2)
                .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
                .collect(),
            e2e: last.saturating_sub(self.arrival),
            output_tokens,
        }
    }
}

fn default_requests() -> Count {
    Count::new_const(16)
}

fn default_open_loop_concurrency() -> Parallel {
    Parallel::new_const(4)
}

with_endpoint_target! {
    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FullInferenceParams {
        /// The campaign model (`default` when none is named).
        #[serde(default)]
        model: Option<String>,
        /// Requests per timed iteration (16); with `traffic`, its shape
        /// sets the count (a trace: at most this many of its requests).
        #[serde(default)]
        requests: Option<Count>,
        /// Required, but for an endpoint without a tokenizer (text sent whole).
        #[serde(default)]
        prompt_tokens: Option<LengthDistribution>,
        /// Required, but for a trace (which gives each request's).
        #[serde(default)]
        output_tokens: Option<LengthDistribution>,
        /// Traffic with structure: `{ shape = "shared_prefix", … }`,
        /// `{ shape = "multi_turn", … }` or `{ shape = "trace", … }`; each
        /// case runs beside its unshared twin.
        #[serde(default)]
        traffic: Option<Traffic>,
        /// Tokens of a prefix-cache block, for the reuse a workload allows
        /// (`campaign serve`'s `--prefix-block-tokens`).
        #[serde(default = "default_prefix_block_tokens")]
        prefix_block_tokens: Dimension,
        /// The server's prefix cache in tokens, for Belady's bound
        /// (unbounded when not given).
        #[serde(default)]
        prefix_cache_tokens: Option<Tokens>,
        /// One closed-loop case per level.
        #[serde(default)]
        concurrency: Vec<Parallel>,
        /// One open-loop case per rate (Poisson arrivals).
        #[serde(default)]
        rates_per_s: Vec<Rate>,
        /// Workers serving the open-loop arrivals: at most this many
        /// requests in flight, the others wait (and their latency counts
        /// the wait).
        #[serde(default = "default_open_loop_concurrency")]
        open_loop_concurrency: Parallel,
        /// How the open-loop arrivals are spaced: `"poisson"` (the
        /// default), `"constant"`, or `{ process = "gamma", burstiness = b }`.
        #[serde(default)]
        arrivals: ArrivalProcess,
        /// Each open-loop case climbs to its rate:
        /// `{ shape = "linear" | "exponential", from_rate_per_s, over_s }`.
        #[serde(default)]
        ramp: Option<Ramp>,
        ttft_slo_ms: Option<Millis>,
        tpot_slo_ms: Option<Millis>,
        /// Text prompts (`{ file = … }` or `{ corpus = … }`) at the sampled lengths.
        #[serde(default)]
        prompts: Option<PromptSpec>,
    }
}

fn default_prefix_block_tokens() -> Dimension {
    Dimension::new_const(16)
}

impl FullInferenceParams {
    /// The output lengths: a trace's own lengths replace them, so there
    /// any will do.
    fn outputs(&self) -> LengthDistribution {
        self.output_tokens
            .unwrap_or_else(|| LengthDistribution::fixed(Tokens::new_const(1)))
    }

    /// Requests per timed iteration without a traffic shape.
    fn request_count(&self) -> usize {
        self.requests.unwrap_or_else(default_requests).usize()
    }

    /// The closed-loop levels and open-loop arrivals of the cases, each
    /// with its concurrency: a trace is one open loop at its own times.
    fn modes(&self) -> Vec<(usize, Option<Arrivals>)> {
        if let Some(Traffic::Trace { .. }) = self.traffic {
            return vec![(
                self.open_loop_concurrency.usize(),
                Some(self.arrivals_at(1.0)),
            )];
        }
        self.concurrency
            .iter()
            .map(|c| (c.usize(), None))
            .chain(self.rates_per_s.iter().map(|r| {
                (
                    self.open_loop_concurrency.usize(),
                    Some(self.arrivals_at(r.get())),
                )
            }))
            .collect()
    }

    /// A case's label and parameters.
    fn case_label(
        &self,
        concurrency: usize,
        arrivals: Option<&Arrivals>,
        requests: usize,
    ) -> (String, serde_json::Value) {
        let (mut label, mut parameters) = match arrivals {
            None => (
                format!("closed,concurrency={concurrency}"),
                json!({"mode": "closed", "concurrency": concurrency, "requests": requests}),
            ),
            Some(arrivals) => {
                let mut parameters = json!({"mode": "open", "rate_per_s": arrivals.rate_per_s, "concurrency": concurrency, "requests": requests});
                describe_arrivals(arrivals, &mut parameters);
                (open_label(arrivals), parameters)
            }
        };
        if let Some(traffic) = &self.traffic {
            if let Traffic::Trace { .. } = traffic {
                label = format!("{},concurrency={concurrency}", traffic.label());
                parameters =
                    json!({"mode": "open", "concurrency": concurrency, "requests": requests});
            } else {
                label = format!("{},{label}", traffic.label());
            }
            parameters["traffic"] = json!(traffic);
        }
        (label, parameters)
    }

    /// The requests of a case, shaped by the traffic: `draw(count)` gives
    /// the seeded workload of `count` requests.
    fn shaped(
        &self,
        seed: u64,
        vocab_size: usize,
        ctx: &BenchContext,
        draw: impl FnOnce(usize) -> Result<Vec<Request>, BenchmarkError>,
    ) -> Result<Vec<Request>, BenchmarkError> {
        match &self.traffic {
            None => draw(self.request_count()),
            Some(Traffic::Trace {
                file,
                speedup,
                block_tokens,
            }) => Ok(read_trace(
                &ctx.campaign_dir.join(file),
                speedup.get(),
                block_tokens.usize(),
                seed,
                vocab_size,
                self.requests.map(Count::usize),
            )?),
            Some(traffic) => {
                let count = traffic.requests().unwrap_or_else(|| self.request_count());
                Ok(traffic.shape(seed, draw(count)?, vocab_size))
            }
        }
    }

    fn check_traffic(&self, traffic: &Traffic, models: &Models) -> Result<(), ParamProblem> {
        let _ = models;
        if self.endpoint_target().is_some()
            && self.api == crate::components::endpoint::EndpointApi::Chat
        {
            return Err(ParamProblem::at(
                "api",
                "shaped traffic shares token ids between prompts, and a chat request sends text that the server templates and tokenizes again, which moves the shared blocks; allowed with traffic: api = \"completions\"",
                "set api = \"completions\" (prompts sent as token ids)",
            ));
        }
        if let Some(requests) = traffic.requests() {
            let message = self.prompt_tokens.map_or(0, |d| d.max());
            let answer = self.output_tokens.map_or(0, |d| d.max());
            let tokens = traffic
                .longest_prompt(message, answer)
                .map_or(0, |longest| longest.saturating_mul(requests as u64));
            if requests > MAX_TRACE_REQUESTS || tokens > MAX_TRACE_PROMPT_TOKENS {
                return Err(ParamProblem::at(
                    "traffic",
                    format!(
                        "the shape writes {requests} requests of up to {} prompt tokens each; allowed: at most {MAX_TRACE_REQUESTS} requests and {MAX_TRACE_PROMPT_TOKENS} prompt tokens in all (they are written before the run)",
                        traffic.longest_prompt(message, answer).unwrap_or(0)
                    ),
                    "fewer groups, prompts per group, users or turns, or shorter prompts",
                ));
            }
        }
        if let Traffic::Trace { .. } = traffic {
            for (field, given) in [
                ("concurrency", !self.concurrency.is_empty()),
                ("rates_per_s", !self.rates_per_s.is_empty()),
                ("prompts", self.prompts.is_some()),
                ("ramp", self.ramp.is_some()),
            ] {
                if given {
                    return Err(ParamProblem::at(
                        field,
                        format!(
                            "a trace replays its own times, lengths and prompt blocks; `{field}` is not allowed with traffic = {{ shape = \"trace\" }}"
                        ),
                        "remove it; open_loop_concurrency caps the requests in flight, speedup scales the trace's times",
                    ));
                }
            }
            return Ok(());
        }
        if let Some(count) = self.requests {
            return Err(ParamProblem::at(
                "requests",
                format!(
                    "requests = {count}, but the traffic's shape sets the count ({} requests); allowed: no `requests` with this traffic",
                    traffic.requests().unwrap_or_default()
                ),
                "remove `requests`; change groups × prompts_per_group or users × turns",
            ));
        }
        Ok(())
    }

    fn arrivals_at(&self, rate_per_s: f64) -> Arrivals {
        Arrivals {
            rate_per_s,
            process: self.arrivals,
            ramp: self.ramp,
        }
    }
}

/// An open-loop case's label: its rate, then the process and the ramp
/// where they are not the default (Poisson, no ramp), so that earlier
/// nights' cases keep their names.
fn open_label(arrivals: &Arrivals) -> String {
    let mut label = format!("open,rate={}/s", arrivals.rate_per_s);
    if let Some(process) = arrivals.process.label() {
        label.push(',');
        label.push_str(&process);
    }
    if let Some(ramp) = arrivals.ramp {
        let shape = match ramp.shape {
            RampShape::Linear => "linear",
            RampShape::Exponential => "exponential",
        };
        label.push_str(&format!(
            ",ramp={shape}(from {}/s over {} s)",
            ramp.from_rate_per_s, ramp.over_s
        ));
    }
    label
}

/// The process and ramp in a case's parameters, where not the default.
fn describe_arrivals(arrivals: &Arrivals, parameters: &mut serde_json::Value) {
    if arrivals.process != ArrivalProcess::Poisson {
        parameters["arrivals"] = json!(arrivals.process);
    }
    if let Some(ramp) = arrivals.ramp {
        parameters["ramp"] = json!(ramp);
    }
}

fn check_length(
    model: &str,
    models: &Models,
    prompt: &LengthDistribution,
    output: &LengthDistribution,
) -> Result<(), ParamProblem> {
    prompt.check("prompt_tokens")?;
    output.check("output_tokens")?;
    check_model(model, models, prompt.max() + output.max(), "prompt_tokens")
}

/// `prompt_tokens`, which every prompt but a whole text line needs.
fn required_prompt_tokens<T>(prompt_tokens: Option<T>) -> Result<T, ParamProblem> {
    prompt_tokens.ok_or_else(|| {
        ParamProblem::at(
            "prompt_tokens",
            "missing field `prompt_tokens`: the prompt lengths in tokens; allowed without it: only an endpoint target with no tokenizer, whose prompt lines are sent whole",
            "e.g. prompt_tokens = { distribution = \"fixed\", tokens = 128 } (scaling: prompt_tokens = 128)",
        )
    })
}

/// `workers` generations at once, each of a batch at the longest lengths.
fn serving_memory(
    model: &str,
    models: &Models,
    workers: u64,
    batch: u64,
    prompt: u64,
    output: u64,
) -> Result<MemoryNeed, ParamProblem> {
    let one = generation_memory(
        architecture(model, models)?,
        batch,
        prompt,
        output,
        "prompt_tokens",
    )?;
    let bytes = one.bytes.checked_mul(workers).ok_or_else(|| {
        ParamProblem::at(
            "concurrency",
            "workers × generation memory does not fit in 64 bits",
            "lower the levels",
        )
    })?;
    Ok(MemoryNeed::new(
        bytes,
        format!("{workers} workers × ({})", one.formula),
    ))
}

pub struct FullInference;

impl Kind for FullInference {
    type Params = FullInferenceParams;

    fn served_outputs(
        &self,
        p: &Self::Params,
        ctx: &BenchContext,
    ) -> Result<Option<Vec<ServedOutput>>, BenchmarkError> {
        p.endpoint_target()
            .map(|target| served_outputs(target, p.prompts.as_ref(), ctx))
            .transpose()
    }

    fn name(&self) -> &'static str {
        "full_inference"
    }

    fn description(&self) -> &'static str {
        "many requests with seeded length distributions, closed loop per concurrency and open loop per Poisson rate: TTFT, TPOT, ITL, e2e, requests/s, tokens/s, goodput"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        SERVING_METRICS
    }

    fn setup_metrics(&self) -> &'static [MetricDef] {
        MODEL_SETUP_METRICS
    }

    fn variation_is_noise(&self) -> bool {
        false
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(SERVING_E2E_MS.name),
            throughput: Some(SERVING_OUTPUT_TOKENS_PER_S.name),
        }
    }

    fn sweep_axis(&self) -> Option<SweepAxis> {
        Some(SweepAxis {
            parameter: "concurrency",
            title: "requests in flight",
            series_by: &["mode"],
        })
    }

    fn check(&self, p: &FullInferenceParams, models: &Models) -> Result<(), ParamProblem> {
        if let Some(traffic) = &p.traffic {
            p.check_traffic(traffic, models)?;
        }
        match (&p.traffic, p.output_tokens) {
            (Some(Traffic::Trace { .. }), Some(_)) => {
                return Err(ParamProblem::at(
                    "output_tokens",
                    "a trace gives each request's output length (output_length); allowed: no output_tokens with traffic = { shape = \"trace\" }",
                    "remove output_tokens",
                ));
            }
            (Some(Traffic::Trace { .. }), None) | (_, Some(_)) => {}
            (_, None) => {
                return Err(ParamProblem::at(
                    "output_tokens",
                    "missing field `output_tokens`: the output lengths in tokens",
                    "e.g. output_tokens = { distribution = \"fixed\", tokens = 32 }",
                ));
            }
        }
        let traced = matches!(p.traffic, Some(Traffic::Trace { .. }));
        if !traced && p.concurrency.is_empty() && p.rates_per_s.is_empty() {
            return Err(ParamProblem::at(
                "concurrency",
                "found neither concurrency levels nor rates; allowed: at least one closed-loop concurrency or open-loop rate",
                "e.g. concurrency = [1, 2] and/or rates_per_s = [4.0]",
            ));
        }
        if p.rates_per_s.is_empty() && !traced {
            let shaping = if p.ramp.is_some() {
                Some("ramp")
            } else {
                (p.arrivals != ArrivalProcess::Poisson).then_some("arrivals")
            };
            if let Some(field) = shaping {
                return Err(ParamProblem::at(
                    field,
                    format!(
                        "`{field}` shapes open-loop arrivals, and no open-loop rate is given; allowed: with rates_per_s"
                    ),
                    "e.g. rates_per_s = [4.0]",
                ));
            }
        }
        let asked = PromptsAsked {
            spec: p.prompts.as_ref(),
            takes_prompt_files: true,
            lengths_given: p.prompt_tokens.is_some(),
        };
        let writer = p.check_target(models, asked)?;
        if p.traffic.is_some() && writer == Some(PromptWriter::Server) {
            return Err(ParamProblem::at(
                "traffic",
                "shaped traffic shares token ids between prompts, and this endpoint target sends whole text lines; allowed: with a tokenizer (the campaign model's, or tokenizer = \"…/tokenizer.json\")",
                "add tokenizer = \"…/tokenizer.json\" to the endpoint target, or remove traffic",
            ));
        }
        if traced {
            p.outputs().check("output_tokens")?;
            return Ok(());
        }
        match writer {
            None | Some(PromptWriter::Model(_)) => {
                check_prompts(p.prompts.as_ref(), p.model_name(), models)?;
                let prompt = required_prompt_tokens(p.prompt_tokens)?;
                prompt.check("prompt_tokens")?;
                p.outputs().check("output_tokens")?;
                let longest = p
                    .traffic
                    .as_ref()
                    .and_then(|t| t.longest_prompt(prompt.max(), p.outputs().max()))
                    .unwrap_or(prompt.max());
                check_model(
                    p.model_name(),
                    models,
                    longest.saturating_add(p.outputs().max()),
                    if p.traffic.is_some() {
                        "traffic"
                    } else {
                        "prompt_tokens"
                    },
                )
            }
            Some(PromptWriter::TokenizerFile(_)) => {
                required_prompt_tokens(p.prompt_tokens)?.check("prompt_tokens")?;
                p.outputs().check("output_tokens")
            }
            Some(PromptWriter::Server) => p.outputs().check("output_tokens"),
        }
    }

    fn planned_cases(&self, p: &FullInferenceParams) -> usize {
        // Against a server, each shaped case runs beside its unshared twin.
        let twins = p.traffic.is_some() && p.endpoint_target().is_some();
        p.modes().len() * if twins { 2 } else { 1 }
    }

    fn memory(&self, p: &FullInferenceParams, models: &Models) -> Result<MemoryNeed, ParamProblem> {
        let workers = p.modes().iter().map(|(c, _)| *c as u64).max().unwrap_or(1);
        let message_max = p.prompt_tokens.map_or(0, |d| d.max());
        // A trace's lengths are known once it is read: its prompts are
        // checked then.
        let prompt_max = p
            .traffic
            .as_ref()
            .and_then(|t| t.longest_prompt(message_max, p.outputs().max()))
            .unwrap_or(message_max);
        if let Some(target) = p.endpoint_target()
            && !matches!(target.writer(models)?, PromptWriter::Model(_))
        {
            let cases = self.planned_cases(p) as u64;
            let requests = p
                .traffic
                .as_ref()
                .and_then(Traffic::requests)
                .unwrap_or_else(|| p.request_count()) as u64;
            let ids = prompt_max
                .checked_mul(requests)
                .and_then(|ids| ids.checked_mul(cases))
                .unwrap_or(u64::MAX);
            return client_memory(ids, workers, p.outputs().max(), "requests");
        }
        serving_memory(
            p.model_name(),
            models,
            workers,
            1,
            prompt_max,
            p.outputs().max(),
        )
    }

    fn prepare(
        &self,
        p: FullInferenceParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let slo = Slo {
            ttft_ms: p.ttft_slo_ms.map(Millis::get),
            tpot_ms: p.tpot_slo_ms.map(Millis::get),
        };
        let seed = ctx.settings.seed;
        let mut workload_context = json!({
            "seed": seed,
            "prompt_tokens": p.prompt_tokens,
            "output_tokens": p.output_tokens,
            "ttft_slo_ms": p.ttft_slo_ms,
            "tpot_slo_ms": p.tpot_slo_ms,
        });
        if let Some(traffic) = &p.traffic {
            workload_context["traffic"] = json!(traffic);
        }
        let block_tokens = p.prefix_block_tokens.usize();
        let capacity = p.prefix_cache_tokens.map(Tokens::get);
        if let Some(target) = p.endpoint_target() {
            let source = target.prompt_source(p.prompts.as_ref(), ctx)?;
            let connection = target.connect()?;
            let url = connection.client.url();
            let vocab_size = source.vocab_size().unwrap_or(1);
            let mut cases: Vec<Box<dyn BenchmarkCase>> = Vec::new();
            for (concurrency, arrivals) in p.modes() {
                // What the source writes is sent as it is (a prompts file's
                // lines as text); a shape rewrites token ids, sent as such.
                let mut written = None;
                let requests = p.shaped(seed, vocab_size, ctx, |count| {
                    source
                        .requests(&target, seed, count, p.prompt_tokens, p.outputs(), arrivals)
                        .map(|(requests, prompts)| {
                            written = Some(prompts);
                            requests
                        })
                })?;
                if p.traffic.is_some() {
                    written = None;
                }
                let twin = p
                    .traffic
                    .is_some()
                    .then(|| unshared(seed, &requests, vocab_size));
                let pair = twin.as_ref().map(|_| TtftPair::shared());
                let (label, mut parameters) =
                    p.case_label(concurrency, arrivals.as_ref(), requests.len());
                parameters["endpoint"] = json!(url);
                let mut variants = vec![(requests, label, parameters, false)];
                if let Some(twin) = twin {
                    let (label, parameters) = (&variants[0].1, &variants[0].2);
                    let mut parameters = parameters.clone();
                    parameters["unshared"] = json!(true);
                    variants.push((twin, format!("{label},unshared"), parameters, true));
                }
                for (requests, label, parameters, is_twin) in variants {
                    let prompts = match written.take() {
                        Some(prompts) => prompts,
                        None => target.prompts(&requests, source.tokenizer.as_ref())?,
                    };
                    let reuse = p
                        .traffic
                        .as_ref()
                        .map(|_| PrefixReuse::of(&requests, block_tokens, capacity));
                    let mut case = EndpointCase::new(
                        &connection,
                        prompts,
                        requests,
                        source.tokenizer.clone(),
                        (label, parameters),
                        (concurrency, arrivals.is_some()),
                        slo,
                        &target,
                    );
                    if let Some(pair) = &pair {
                        case = case
                            .with_prefix_reuse(reuse, Arc::clone(pair), is_twin)
                            .with_fresh_prompts(vocab_size);
                    }
                    cases.push(Box::new(case));
                }
            }
            let mut context = source.context;
            context["workload"] = workload_context;
            context["endpoint"] = target.describe();
            return Ok(PreparedBenchmark::new(cases)
                .with_setup(source.setup)
                .with_context(context));
        }
        let mut loaded = load_model(p.model_name(), ctx)?;
        let prompts = Prompts::load(p.prompts.as_ref(), &loaded.model, ctx)?;
        loaded.context["prompts"] = prompts.describe();
        let vocab_size = loaded.model.architecture.vocab_size;
        let mut cases: Vec<Box<dyn BenchmarkCase>> = Vec::new();
        for (concurrency, arrivals) in p.modes() {
            let requests = p.shaped(seed, vocab_size, ctx, |count| {
                let prompt_tokens = required_prompt_tokens(p.prompt_tokens)
                    .map_err(|e| BenchmarkError::Params(e.message))?;
                let mut requests = generate_requests(
                    seed,
                    &WorkloadSpec {
                        requests: count,
                        prompt_tokens,
                        output_tokens: p.outputs(),
                        vocab_size,
                        arrivals,
                    },
                );
                prompts.apply_to(&mut requests);
                Ok(requests)
            })?;
            let limit = loaded.model.architecture.max_position_embeddings;
            if let Some(longest) = requests
                .iter()
                .map(|r| r.prompt.len() + r.output_tokens)
                .max()
                && longest > limit
            {
                return Err(BenchmarkError::Params(format!(
                    "traffic: a request needs {longest} positions (prompt and output), more than the {limit} model {:?} holds; allowed: prompts and outputs within its context",
                    p.model_name()
                )));
            }
            // The in-process engine caches no prefix: an unshared twin
            // would measure nothing the shaped case does not.
            let (label, parameters) = p.case_label(concurrency, arrivals.as_ref(), requests.len());
            {
                let reuse = p.traffic.as_ref().map(|_| {
                    ReuseTally::in_process(PrefixReuse::of(&requests, block_tokens, capacity))
                });
                cases.push(Box::new(ServingCase {
                    model: Arc::clone(&loaded.model),
                    requests,
                    label,
                    parameters,
                    concurrency,
                    batch_size: 1,
                    open_loop: arrivals.is_some(),
                    slo,
                    reuse,
                    timeline: Timeline::default(),
                }));
            }
        }
        let mut context = loaded.context;
        context["workload"] = workload_context;
        Ok(PreparedBenchmark::new(cases)
            .with_setup(loaded.setup)
            .with_context(context))
    }
}

struct ServingCase {
    model: Arc<LoadedModel>,
    requests: Vec<Request>,
    label: String,
    parameters: serde_json::Value,
    concurrency: usize,
    batch_size: usize,
    open_loop: bool,
    slo: Slo,
    /// For shaped traffic: the reuse its workload allowed and the TTFT
    /// shared with its twin (the in-process engine caches no prefix).
    reuse: Option<ReuseTally>,
    timeline: Timeline,
}

impl BenchmarkCase for ServingCase {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn parameters(&self) -> serde_json::Value {
        self.parameters.clone()
    }

    fn start_timed(&mut self) {
        self.timeline.clear();
        if let Some(reuse) = &mut self.reuse {
            reuse.clear();
        }
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        let (timings, timeline, wall) = serve(
            &self.model,
            &self.requests,
            self.concurrency,
            self.batch_size,
            self.open_loop,
        )?;
        record_run(obs, &timings, wall, self.open_loop, self.slo);
        if let Some(reuse) = &mut self.reuse {
            for timing in &timings {
                reuse.request(timing.ttft.as_secs_f64() * 1e3, None);
            }
        }
        self.timeline.record(timeline);
        Ok(())
    }

    fn conclude(&mut self) -> Option<Conclusion> {
        let mut findings = serde_json::Map::new();
        if let Some(reuse) = &self.reuse {
            findings.insert("prefix_reuse".into(), reuse.conclude());
        }
        if let Some(timeline) = self.timeline.conclude() {
            findings.insert("timeline".into(), timeline);
        }
        (!findings.is_empty()).then(|| Conclusion {
            failure: None,
            findings: Findings::Other(serde_json::Value::Object(findings)),
            warnings: Vec::new(),
        })
    }
}

with_endpoint_target! {
    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ScalingParams {
        /// The campaign model (`default` when none is named).
        #[serde(default)]
        model: Option<String>,
        #[serde(default = "default_requests")]
        requests: Count,
        /// Required, but for an endpoint without a tokenizer (text sent whole).
        #[serde(default)]
        prompt_tokens: Option<Tokens>,
        output_tokens: Tokens,
        #[serde(default)]
        concurrency: Vec<Parallel>,
        #[serde(default)]
        batch_sizes: Vec<Parallel>,
        /// Text prompts (`{ file = … }` or `{ corpus = … }`).
        #[serde(default)]
        prompts: Option<PromptSpec>,
    }
}

pub struct Scaling;

impl Kind for Scaling {
    type Params = ScalingParams;

    fn served_outputs(
        &self,
        p: &Self::Params,
        ctx: &BenchContext,
    ) -> Result<Option<Vec<ServedOutput>>, BenchmarkError> {
        p.endpoint_target()
            .map(|target| served_outputs(target, p.prompts.as_ref(), ctx))
            .transpose()
    }

    fn name(&self) -> &'static str {
        "scaling"
    }

    fn description(&self) -> &'static str {
        "one fixed workload per concurrency level (batch 1) and per batch size (one worker): throughput, p99 and their change relative to level 1; the report names the knee"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        SERVING_METRICS
    }

    fn setup_metrics(&self) -> &'static [MetricDef] {
        MODEL_SETUP_METRICS
    }

    fn variation_is_noise(&self) -> bool {
        false
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(SERVING_E2E_MS.name),
            throughput: Some(SERVING_OUTPUT_TOKENS_PER_S.name),
        }
    }

    fn scaling_levels(&self) -> bool {
        true
    }

    fn check(&self, p: &ScalingParams, models: &Models) -> Result<(), ParamProblem> {
        if p.concurrency.is_empty() && p.batch_sizes.is_empty() {
            return Err(ParamProblem::at(
                "concurrency",
                "found neither concurrency levels nor batch sizes; allowed: either, or both",
                "e.g. concurrency = [1, 2, 4] and batch_sizes = [1, 4, 16]",
            ));
        }
        let asked = PromptsAsked {
            spec: p.prompts.as_ref(),
            takes_prompt_files: true,
            lengths_given: p.prompt_tokens.is_some(),
        };
        let writer = p.check_target(models, asked)?;
        if writer.is_some() && !p.batch_sizes.is_empty() {
            return Err(ParamProblem::at(
                "batch_sizes",
                "a served stack batches requests itself; allowed with endpoint: concurrency levels only",
                "remove batch_sizes, or run the in-process engine (no endpoint)",
            ));
        }
        match writer {
            None | Some(PromptWriter::Model(_)) => {
                check_prompts(p.prompts.as_ref(), p.model_name(), models)?;
                check_length(
                    p.model_name(),
                    models,
                    &LengthDistribution::fixed(required_prompt_tokens(p.prompt_tokens)?),
                    &LengthDistribution::fixed(p.output_tokens),
                )
            }
            Some(PromptWriter::TokenizerFile(_)) => {
                required_prompt_tokens(p.prompt_tokens).map(|_| ())
            }
            Some(PromptWriter::Server) => Ok(()),
        }
    }

    fn planned_cases(&self, p: &ScalingParams) -> usize {
        p.concurrency.len() + p.batch_sizes.len()
    }

    fn memory(&self, p: &ScalingParams, models: &Models) -> Result<MemoryNeed, ParamProblem> {
        let widest = |levels: &[Parallel]| levels.iter().map(|l| l.get()).max().unwrap_or(1);
        let prompt_tokens = p.prompt_tokens.map_or(0, Tokens::get);
        if let Some(target) = p.endpoint_target()
            && !matches!(target.writer(models)?, PromptWriter::Model(_))
        {
            let ids = prompt_tokens.saturating_mul(p.requests.get());
            return client_memory(
                ids,
                widest(&p.concurrency),
                p.output_tokens.get(),
                "requests",
            );
        }
        let by_workers = serving_memory(
            p.model_name(),
            models,
            widest(&p.concurrency),
            1,
            prompt_tokens,
            p.output_tokens.get(),
        )?;
        let by_batch = serving_memory(
            p.model_name(),
            models,
            1,
            widest(&p.batch_sizes),
            prompt_tokens,
            p.output_tokens.get(),
        )?;
        Ok(if by_workers.bytes >= by_batch.bytes {
            by_workers
        } else {
            by_batch
        })
    }

    fn prepare(
        &self,
        p: ScalingParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let parameters = |dimension: &str, level: usize, concurrency, batch_size| {
            let mut parameters = ScalingCaseParams {
                dimension: dimension.to_string(),
                level,
            }
            .to_parameters();
            parameters["concurrency"] = json!(concurrency);
            parameters["batch_size"] = json!(batch_size);
            parameters["requests"] = json!(p.requests);
            parameters["prompt_tokens"] = json!(p.prompt_tokens);
            parameters["output_tokens"] = json!(p.output_tokens);
            parameters
        };
        if let Some(target) = p.endpoint_target() {
            // A served stack: closed-loop levels of requests in flight.
            let source = target.prompt_source(p.prompts.as_ref(), ctx)?;
            let connection = target.connect()?;
            let (requests, prompts) = source.requests(
                &target,
                ctx.settings.seed,
                p.requests.usize(),
                p.prompt_tokens.map(LengthDistribution::fixed),
                LengthDistribution::fixed(p.output_tokens),
                None,
            )?;
            let mut cases: Vec<Box<dyn BenchmarkCase>> = Vec::new();
            for c in p.concurrency.iter().map(|c| c.usize()) {
                let mut case_parameters = parameters("concurrency", c, c, 1);
                case_parameters["endpoint"] = json!(connection.client.url());
                cases.push(Box::new(EndpointCase::new(
                    &connection,
                    prompts.clone(),
                    requests.clone(),
                    source.tokenizer.clone(),
                    (format!("concurrency={c}"), case_parameters),
                    (c, false),
                    Slo::default(),
                    &target,
                )));
            }
            let mut context = source.context;
            context["endpoint"] = target.describe();
            return Ok(PreparedBenchmark::new(cases)
                .with_setup(source.setup)
                .with_context(context));
        }
        let mut loaded = load_model(p.model_name(), ctx)?;
        let prompts = Prompts::load(p.prompts.as_ref(), &loaded.model, ctx)?;
        loaded.context["prompts"] = prompts.describe();
        let prompt_tokens = required_prompt_tokens(p.prompt_tokens)
            .map_err(|e| BenchmarkError::Params(e.message))?;
        let mut requests = generate_requests(
            ctx.settings.seed,
            &WorkloadSpec {
                requests: p.requests.usize(),
                prompt_tokens: LengthDistribution::fixed(prompt_tokens),
                output_tokens: LengthDistribution::fixed(p.output_tokens),
                vocab_size: loaded.model.architecture.vocab_size,
                arrivals: None,
            },
        );
        prompts.apply_to(&mut requests);
        let context = loaded.context.clone();
        let case =
            |dimension: &str, level: usize, concurrency, batch_size| -> Box<dyn BenchmarkCase> {
                Box::new(ServingCase {
                    model: Arc::clone(&loaded.model),
                    requests: requests.clone(),
                    label: format!("{dimension}={level}"),
                    parameters: parameters(dimension, level, concurrency, batch_size),
                    concurrency,
                    batch_size,
                    open_loop: false,
                    slo: Slo::default(),
                    reuse: None,
                    timeline: Timeline::default(),
                })
            };
        let cases = p
            .concurrency
            .iter()
            .map(|c| case("concurrency", c.usize(), c.usize(), 1))
            .chain(
                p.batch_sizes
                    .iter()
                    .map(|b| case("batch_size", b.usize(), 1, b.usize())),
            )
            .collect();
        Ok(PreparedBenchmark::new(cases)
            .with_setup(loaded.setup)
            .with_context(context))
    }
}
