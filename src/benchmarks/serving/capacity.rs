//! `capacity`: the highest request rate an endpoint serves within joint
//! SLOs (p-th percentile TTFT and TPOT, the error budget), with its
//! interval, found by the search in [`crate::analysis::search_capacity`]:
//! a closed loop at the most concurrency measures what the server
//! completes flat out, then open-loop probes bracket and bisect the rate,
//! each stopped as soon as its verdict is settled.
//!
//! A probe sends its arrivals on time from this thread (as the serving
//! kinds do) and judges requests in arrival order: a look waits for every
//! request before it, so a slow request is never left out of the count.
//! Latencies count from each request's scheduled send (its wait for a
//! concurrency slot included), so a server that falls behind shows it.
//! Each probe draws its own prompts (seed + probe number), so a server
//! with a prefix cache does not meet the same prompts again.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::endpoint_target::{
    Connection, PromptSource, PromptWriter, PromptsAsked, client_memory, with_endpoint_target,
};
use crate::benchmarks::model::{PromptSpec, check_prompts};
use crate::benchmarks::workload::{ArrivalProcess, Arrivals, LengthDistribution, Request};
use crate::benchmarks::{
    BenchContext, BenchmarkCase, BenchmarkError, Conclusion, Headline, Kind, MemoryNeed, MetricDef,
    Models, Observations, ParamProblem, PreparedBenchmark,
};
use crate::campaign::bounds::{Count, Entries, Millis, Parallel, Percent, Rate, ThresholdPct};
use crate::components::endpoint::{RequestPrompt, Stamped};
use crate::model::Findings;
use crate::stats::{
    BrokenSlos, CapacityPlan, CapacityProbes, CapacityReport, Judgement, Probe, ProbeDesign,
    ProbeVerdict, RequestSlo, Saturation, search_capacity,
};

const CAPACITY_REQUESTS_PER_S: MetricDef = MetricDef::quantity(
    "capacity_requests_per_s",
    "requests/s",
    true,
    "the offered rate at which the worst SLO's measured share of breaking requests crosses its allowed share, interpolated (log–log) between the closest probes on either side",
);
const CAPACITY_LOW_REQUESTS_PER_S: MetricDef = MetricDef::quantity(
    "capacity_low_requests_per_s",
    "requests/s",
    true,
    "the highest rate whose probe settled within every SLO: the interval's low end",
);
const CAPACITY_HIGH_REQUESTS_PER_S: MetricDef = MetricDef::quantity(
    "capacity_high_requests_per_s",
    "requests/s",
    true,
    "the lowest rate whose probe settled an SLO broken: the interval's high end",
);
const SATURATION_REQUESTS_PER_S: MetricDef = MetricDef::quantity(
    "saturation_requests_per_s",
    "requests/s",
    true,
    "requests completed per second by a closed loop at max_concurrency: what the server does flat out, latency aside",
);
const CAPACITY_PROBES: MetricDef = MetricDef::quantity(
    "capacity_probes",
    "probes",
    false,
    "probes measured, the saturation probe included",
);
const CAPACITY_SEARCH_S: MetricDef = MetricDef::quantity(
    "capacity_search_s",
    "s",
    false,
    "the probes' time, end to end",
);

fn default_percentile() -> Percent {
    Percent::new_const(99.0)
}

fn default_max_concurrency() -> Parallel {
    Parallel::new_const(256)
}

fn default_max_probes() -> Count {
    Count::new_const(CapacityPlan::default().max_probes as u64)
}

fn default_tolerance_pct() -> ThresholdPct {
    ThresholdPct::new_const(100.0 * CapacityPlan::default().tolerance)
}

fn default_warmup_requests() -> Entries {
    Entries::new_const(CapacityPlan::default().warmup_requests as u64)
}

fn default_min_requests() -> Count {
    Count::new_const(CapacityPlan::default().min_requests as u64)
}

fn default_max_requests() -> Count {
    Count::new_const(CapacityPlan::default().max_requests as u64)
}

with_endpoint_target! {
    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CapacityParams {
        /// The campaign model that writes the prompts (`default` when none).
        #[serde(default)]
        model: Option<String>,
        #[serde(default)]
        prompt_tokens: Option<LengthDistribution>,
        output_tokens: LengthDistribution,
        /// How a probe's arrivals are spaced at its rate.
        #[serde(default)]
        arrivals: ArrivalProcess,
        /// SLO on TTFT at `slo_percentile`, from the scheduled send.
        ttft_slo_ms: Option<Millis>,
        /// SLO on TPOT at `slo_percentile`.
        tpot_slo_ms: Option<Millis>,
        #[serde(default = "default_percentile")]
        slo_percentile: Percent,
        /// Requests in flight at most; the saturation probe's concurrency.
        #[serde(default = "default_max_concurrency")]
        max_concurrency: Parallel,
        /// The first probe's rate; without it, half the saturation rate.
        start_rate_per_s: Option<Rate>,
        #[serde(default = "default_max_probes")]
        max_probes: Count,
        /// Stop when the highest pass and lowest fail are this close, in %.
        #[serde(default = "default_tolerance_pct")]
        tolerance_pct: ThresholdPct,
        #[serde(default = "default_warmup_requests")]
        warmup_requests: Entries,
        #[serde(default = "default_min_requests")]
        min_requests: Count,
        #[serde(default = "default_max_requests")]
        max_requests: Count,
        #[serde(default)]
        prompts: Option<PromptSpec>,
    }
}

impl CapacityParams {
    fn plan(&self) -> CapacityPlan {
        CapacityPlan {
            max_probes: self.max_probes.usize(),
            tolerance: self.tolerance_pct.get() / 100.0,
            confidence: CapacityPlan::default().confidence,
            warmup_requests: self.warmup_requests.usize(),
            min_requests: self.min_requests.usize(),
            max_requests: self.max_requests.usize(),
            start_rate_per_s: self.start_rate_per_s.map(Rate::get),
        }
    }

    fn bounds(&self) -> SloBounds {
        SloBounds {
            ttft_ms: self.ttft_slo_ms.map(Millis::get),
            tpot_ms: self.tpot_slo_ms.map(Millis::get),
        }
    }

    /// The SLOs in the order of a request's broken bits: TTFT, TPOT (those
    /// given), then errors.
    fn slos(&self) -> Vec<RequestSlo> {
        let q = self.slo_percentile.get();
        let share = 1.0 - q / 100.0;
        let mut slos = Vec::new();
        if let Some(ms) = self.ttft_slo_ms {
            slos.push(RequestSlo {
                name: format!("ttft_ms p{q} ≤ {ms}"),
                allowed_share: share,
                bound: Some(ms.get()),
            });
        }
        if let Some(ms) = self.tpot_slo_ms {
            slos.push(RequestSlo {
                name: format!("tpot_ms p{q} ≤ {ms}"),
                allowed_share: share,
                bound: Some(ms.get()),
            });
        }
        slos.push(RequestSlo {
            name: format!("errors ≤ {} %", self.error_budget_pct),
            allowed_share: self.error_budget_pct.get() / 100.0,
            bound: None,
        });
        slos
    }
}

/// The latency bounds a request is held to.
#[derive(Debug, Clone, Copy)]
struct SloBounds {
    ttft_ms: Option<f64>,
    tpot_ms: Option<f64>,
}

impl SloBounds {
    /// The values the latency SLOs bound, in their bits' order; NaN where
    /// the request has none (it failed, or gave one token).
    fn measures(&self, ttft_ms: Option<f64>, tpot_ms: Option<f64>) -> [f64; 2] {
        let given = [self.ttft_ms.map(|_| ttft_ms), self.tpot_ms.map(|_| tpot_ms)];
        let mut measures = [f64::NAN; 2];
        for (slot, value) in measures.iter_mut().zip(given.into_iter().flatten()) {
            *slot = value.unwrap_or(f64::NAN);
        }
        measures
    }

    /// The bits of the SLOs a request broke, in [`CapacityParams::slos`]'s
    /// order. A failed request breaks the error SLO only.
    fn broken(&self, ttft_ms: Option<f64>, tpot_ms: Option<f64>) -> BrokenSlos {
        let mut bits = 0;
        let mut bit = 0;
        let Some(ttft) = ttft_ms else {
            let latency_slos = u8::from(self.ttft_ms.is_some()) + u8::from(self.tpot_ms.is_some());
            return 1 << latency_slos;
        };
        if let Some(bound) = self.ttft_ms {
            bits |= u8::from(ttft > bound) << bit;
            bit += 1;
        }
        if let Some(bound) = self.tpot_ms {
            bits |= u8::from(tpot_ms.is_some_and(|t| t > bound)) << bit;
        }
        bits
    }
}

pub struct Capacity;

impl Kind for Capacity {
    type Params = CapacityParams;

    fn name(&self) -> &'static str {
        "capacity"
    }

    fn description(&self) -> &'static str {
        "the highest request rate an endpoint serves within p-th percentile TTFT/TPOT SLOs and its error budget, with its interval: a saturation probe, then open-loop probes bracketing and bisecting the rate, each stopped when its binomial verdict is settled"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[
            CAPACITY_REQUESTS_PER_S,
            CAPACITY_LOW_REQUESTS_PER_S,
            CAPACITY_HIGH_REQUESTS_PER_S,
            SATURATION_REQUESTS_PER_S,
            CAPACITY_PROBES,
            CAPACITY_SEARCH_S,
        ]
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: None,
            throughput: Some(CAPACITY_REQUESTS_PER_S.name),
        }
    }

    fn variation_is_noise(&self) -> bool {
        false
    }

    fn check(&self, p: &CapacityParams, models: &Models) -> Result<(), ParamProblem> {
        if p.endpoint.is_none() {
            return Err(ParamProblem::at(
                "endpoint",
                "missing field `endpoint`: capacity probes an OpenAI-compatible endpoint",
                "e.g. endpoint = \"http://127.0.0.1:8000/v1\" (start one with `campaign serve`)",
            ));
        }
        if p.ttft_slo_ms.is_none() && p.tpot_slo_ms.is_none() {
            return Err(ParamProblem::at(
                "ttft_slo_ms",
                "found no latency SLO; allowed: ttft_slo_ms, tpot_slo_ms or both",
                "e.g. ttft_slo_ms = 500",
            ));
        }
        let q = p.slo_percentile.get();
        if q <= 0.0 || q >= 100.0 {
            return Err(ParamProblem::at(
                "slo_percentile",
                format!("found {q}; allowed: above 0 and below 100"),
                "e.g. slo_percentile = 99",
            ));
        }
        if p.min_requests.get() > p.max_requests.get() {
            return Err(ParamProblem::at(
                "min_requests",
                format!(
                    "found {}; allowed: at most max_requests ({})",
                    p.min_requests, p.max_requests
                ),
                "e.g. min_requests = 200 and max_requests = 3200",
            ));
        }
        let least = if p.start_rate_per_s.is_some() { 2 } else { 3 };
        if p.max_probes.get() < least {
            return Err(ParamProblem::at(
                "max_probes",
                format!(
                    "found {}; allowed: at least {least} (one on each side of the capacity{})",
                    p.max_probes,
                    if least == 3 {
                        ", after the saturation probe"
                    } else {
                        ""
                    }
                ),
                "e.g. max_probes = 8",
            ));
        }
        let asked = PromptsAsked {
            spec: p.prompts.as_ref(),
            takes_prompt_files: true,
            lengths_given: p.prompt_tokens.is_some(),
        };
        match p.check_target(models, asked)? {
            Some(PromptWriter::Model(_)) | None => {
                check_prompts(p.prompts.as_ref(), p.model_name(), models)?;
                p.prompt_tokens
                    .ok_or_else(|| {
                        ParamProblem::at(
                            "prompt_tokens",
                            "missing field `prompt_tokens`: the prompt lengths in tokens",
                            "e.g. prompt_tokens = 128",
                        )
                    })?
                    .check("prompt_tokens")?;
            }
            Some(PromptWriter::TokenizerFile(_)) => {
                if let Some(prompt) = p.prompt_tokens {
                    prompt.check("prompt_tokens")?;
                }
            }
            Some(PromptWriter::Server) => {}
        }
        p.output_tokens.check("output_tokens")
    }

    fn planned_cases(&self, _p: &CapacityParams) -> usize {
        1
    }

    fn memory(&self, p: &CapacityParams, _models: &Models) -> Result<MemoryNeed, ParamProblem> {
        let probe = p.warmup_requests.get() + p.max_requests.get();
        let ids = p.prompt_tokens.map_or(0, |d| d.max()).saturating_mul(probe);
        client_memory(
            ids,
            p.max_concurrency.get(),
            p.output_tokens.max(),
            "max_requests",
        )
    }

    fn prepare(
        &self,
        p: CapacityParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let target = p.endpoint_target().ok_or_else(|| {
            BenchmarkError::Params("capacity needs an endpoint (checked before)".into())
        })?;
        let source = target.prompt_source(p.prompts.as_ref(), ctx)?;
        let connection = target.connect()?;
        let slos = p.slos();
        let label = slos
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
            .join(", ");
        let parameters = json!({
            "slos": slos,
            "plan": p.plan(),
            "arrivals": p.arrivals,
            "max_concurrency": p.max_concurrency,
            "prompt_tokens": p.prompt_tokens,
            "output_tokens": p.output_tokens,
            "endpoint": connection.client.url(),
        });
        let mut context = source.context.clone();
        context["endpoint"] = target.describe();
        let setup = source.setup.clone();
        Ok(PreparedBenchmark::new(vec![Box::new(CapacityCase {
            params: p,
            source,
            connection,
            seed: ctx.settings.seed,
            label,
            parameters,
            last: None,
            probes_run: 0,
            lags: Vec::new(),
        })])
        .with_setup(setup)
        .with_context(context))
    }
}

struct CapacityCase {
    params: CapacityParams,
    source: PromptSource,
    connection: Connection,
    seed: u64,
    label: String,
    parameters: serde_json::Value,
    /// The last search, for the conclusion.
    last: Option<CapacityReport>,
    /// Probes sent so far: each draws its prompts with its own seed.
    probes_run: u64,
    /// The client's lateness in each probe of the last search.
    lags: Vec<ProbeLag>,
}

/// One request of a probe, as the judge needs it.
struct Done {
    broke: BrokenSlos,
    /// TTFT from the scheduled send; for a failed request, the time to its
    /// failure.
    ttft_ms: f64,
    /// What each latency SLO bounds, in [`CapacityParams::slos`]'s order
    /// (TTFT, TPOT: those given); NaN where the request has none.
    measures: [f64; 2],
    finished: Instant,
    /// The client's own lateness: scheduled → sent, less the wait for a
    /// concurrency slot.
    lag_ms: f64,
}

/// The client's lateness in one probe, judged as `full_inference` judges
/// it, against the TTFT objective the probe's verdict rests on.
#[derive(Debug, Clone, serde::Serialize)]
struct ProbeLag {
    rate_per_s: f64,
    requests: usize,
    dispatch_lag_p99_ms: f64,
}

impl CapacityCase {
    /// `count` requests of the workload at `rate_per_s` (`None`: all at
    /// once), drawn with this probe's seed.
    fn workload(
        &self,
        probe: u64,
        count: usize,
        rate_per_s: Option<f64>,
    ) -> Result<(Vec<Request>, Vec<RequestPrompt>), BenchmarkError> {
        let target = self.params.endpoint_target().ok_or_else(|| {
            BenchmarkError::Params("capacity needs an endpoint (checked before)".into())
        })?;
        self.source.requests(
            &target,
            self.seed.wrapping_add(probe),
            count,
            self.params.prompt_tokens,
            self.params.output_tokens,
            rate_per_s.map(|rate_per_s| Arrivals {
                rate_per_s,
                process: self.params.arrivals,
                ramp: None,
            }),
        )
    }

    /// Sends `requests` at their arrival times (all at once for a closed
    /// loop) with at most `max_concurrency` in flight, hands each finished
    /// one to `judge` in arrival order as soon as every one before it has
    /// finished, and stops sending (dropping those in flight) when `judge`
    /// says so. Returns the requests sent and when the last was judged.
    fn send(
        &self,
        requests: &[Request],
        prompts: &[RequestPrompt],
        open_loop: bool,
        mut judge: impl FnMut(usize, &Done) -> bool,
    ) -> Result<(usize, Instant, Instant), BenchmarkError> {
        let handle = self.connection.runtime.handle().clone();
        let permits = Arc::new(tokio::sync::Semaphore::new(
            self.params.max_concurrency.usize(),
        ));
        let bounds = self.params.bounds();
        let (tx, rx) = mpsc::channel::<(usize, Done)>();
        let mut done: Vec<Option<Done>> = (0..requests.len()).map(|_| None).collect();
        let mut next = 0;
        let mut stop = false;
        let mut take = |(i, d): (usize, Done), next: &mut usize, stop: &mut bool| {
            done[i] = Some(d);
            while !*stop && *next < done.len() {
                let Some(d) = &done[*next] else { break };
                *stop = judge(*next, d);
                *next += 1;
            }
        };
        // Bodies serialized before the clock runs.
        let prepared: Vec<_> = requests
            .iter()
            .zip(prompts)
            .map(|(request, prompt)| {
                self.connection
                    .client
                    .prepare(prompt, request.output_tokens)
            })
            .collect();
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(requests.len());
        for (i, (request, prepared)) in requests.iter().zip(prepared).enumerate() {
            let scheduled = start
                + if open_loop {
                    Duration::from_secs_f64(request.arrival_s)
                } else {
                    Duration::ZERO
                };
            // Until it is time to send, take what finishes.
            while !stop {
                let Some(wait) = scheduled.checked_duration_since(Instant::now()) else {
                    break;
                };
                match rx.recv_timeout(wait) {
                    Ok(d) => take(d, &mut next, &mut stop),
                    Err(_) => break,
                }
            }
            if stop {
                break;
            }
            let (client, permits, tx) = (
                Arc::clone(&self.connection.client),
                Arc::clone(&permits),
                tx.clone(),
            );
            tasks.push(handle.spawn(async move {
                let waiting = Instant::now();
                let permit = permits.acquire_owned().await;
                let began = Instant::now();
                let Stamped { result, sent_at } = client.send_prepared(&prepared).await;
                drop(permit);
                let finished = Instant::now();
                let lag = sent_at
                    .unwrap_or(began)
                    .saturating_duration_since(scheduled)
                    .saturating_sub(began.saturating_duration_since(waiting));
                let (ttft_ms, tpot_ms) = match &result {
                    Ok(c) => {
                        let first = c.chunks.first().map_or(c.done_at, |c| c.at);
                        let last = c.chunks.last().map_or(c.done_at, |c| c.at);
                        let ttft = first.saturating_duration_since(scheduled);
                        let tokens = c.completion_tokens().unwrap_or(c.chunks.len());
                        let tpot = (tokens > 1)
                            .then(|| (last - first).as_secs_f64() * 1e3 / (tokens - 1) as f64);
                        (Some(ttft.as_secs_f64() * 1e3), tpot)
                    }
                    Err(_) => (None, None),
                };
                let broke = bounds.broken(ttft_ms, tpot_ms);
                let measures = bounds.measures(ttft_ms, tpot_ms);
                let ttft_ms = ttft_ms.unwrap_or_else(|| {
                    finished.saturating_duration_since(scheduled).as_secs_f64() * 1e3
                });
                let _ = tx.send((
                    i,
                    Done {
                        broke,
                        ttft_ms,
                        measures,
                        finished,
                        lag_ms: lag.as_secs_f64() * 1e3,
                    },
                ));
            }));
        }
        drop(tx);
        let sent = tasks.len();
        // Every request carries the client's timeout, so each one ends.
        let patience = Duration::from_secs_f64(self.params.request_timeout_s.get()) * 2;
        while !stop && next < sent {
            match rx.recv_timeout(patience) {
                Ok(d) => take(d, &mut next, &mut stop),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(BenchmarkError::Component(format!(
                        "a probe's request neither finished nor timed out within {patience:?}"
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let decided = Instant::now();
        for task in tasks {
            task.abort();
        }
        Ok((sent, start, decided))
    }
}

impl CapacityProbes for CapacityCase {
    type Error = BenchmarkError;

    /// At least four waves of `max_concurrency`, and the rate of the
    /// middle half of the completions: the first wave's start and the last
    /// one's tail, when the server is not kept busy, are left out.
    fn saturation(&mut self, count: usize) -> Result<Saturation, BenchmarkError> {
        let count = count.max(4 * self.params.max_concurrency.usize());
        let (requests, prompts) = self.workload(0, count, None)?;
        let mut finishes: Vec<Instant> = Vec::new();
        let errors = 1 << (self.slos_len() - 1);
        let (sent, start, decided) = self.send(&requests, &prompts, false, |_, d| {
            if d.broke & errors == 0 {
                finishes.push(d.finished);
            }
            false
        })?;
        finishes.sort();
        let elapsed_s = (decided - start).as_secs_f64();
        let (q1, q3) = (finishes.len() / 4, finishes.len() * 3 / 4);
        let span_s = match (finishes.get(q1), finishes.get(q3)) {
            (Some(a), Some(b)) if q3 > q1 => (*b - *a).as_secs_f64(),
            _ => 0.0,
        };
        if span_s <= 0.0 {
            return Err(BenchmarkError::Component(format!(
                "the endpoint completed {} of the {sent} requests of the saturation probe: too few to measure its rate",
                finishes.len()
            )));
        }
        Ok(Saturation {
            completed_per_s: (q3 - q1) as f64 / span_s,
            requests: sent,
            elapsed_s,
        })
    }

    fn probe(
        &mut self,
        rate_per_s: f64,
        design: &ProbeDesign,
        slos: &[RequestSlo],
    ) -> Result<Probe, BenchmarkError> {
        self.probes_run += 1;
        let (requests, prompts) =
            self.workload(self.probes_run, design.max_requests(), Some(rate_per_s))?;
        let warmup = design.warmup_requests;
        let mut broke: Vec<BrokenSlos> = Vec::new();
        let mut finishes: Vec<Instant> = Vec::new();
        let mut ttfts: Vec<f64> = Vec::new();
        let mut measures: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut lags: Vec<f64> = Vec::new();
        let mut judgement: Option<Judgement> = None;
        let mut looks = design.looks.iter().peekable();
        let (sent, start, decided) = self.send(&requests, &prompts, true, |i, d| {
            if i < warmup {
                return false;
            }
            broke.push(d.broke);
            finishes.push(d.finished);
            ttfts.push(d.ttft_ms);
            for (kept, value) in measures.iter_mut().zip(d.measures) {
                kept.push(value);
            }
            lags.push(d.lag_ms);
            if looks.peek().is_some_and(|l| **l == broke.len()) {
                looks.next();
                let measured = [measures[0].as_slice(), measures[1].as_slice()];
                judgement = design.judge(slos, &broke, &ttfts, &measured);
            }
            judgement.is_some()
        })?;
        let judgement = judgement.ok_or_else(|| {
            BenchmarkError::Component(format!(
                "a probe at {rate_per_s:.3} requests/s ended with {} of its {} judged requests",
                broke.len(),
                design.looks.last().copied().unwrap_or(0)
            ))
        })?;
        let judged = broke.len();
        self.lags.push(ProbeLag {
            rate_per_s,
            requests: judged,
            dispatch_lag_p99_ms: crate::stats::nearest_rank(&lags, 0.99).unwrap_or(0.0),
        });
        let window = &requests[warmup..warmup + judged];
        let (first, last) = (
            window.first().map_or(0.0, |r| r.arrival_s),
            window.last().map_or(0.0, |r| r.arrival_s),
        );
        let span = (last - first).max(f64::MIN_POSITIVE);
        let last_finish = finishes
            .iter()
            .map(|f| f.saturating_duration_since(start).as_secs_f64())
            .fold(0.0, f64::max);
        let achieved = judged as f64 / (last_finish - first).max(f64::MIN_POSITIVE);
        let good = broke.iter().filter(|b| **b == 0).count();
        Ok(Probe {
            rate_per_s,
            sent,
            elapsed_s: (decided - start).as_secs_f64(),
            window_s: [first, last],
            goodput_per_s: good as f64 / span,
            achieved_per_s: achieved,
            over_saturated: achieved < 0.9 * rate_per_s,
            judgement,
        })
    }
}

impl CapacityCase {
    fn slos_len(&self) -> usize {
        usize::from(self.params.ttft_slo_ms.is_some())
            + usize::from(self.params.tpot_slo_ms.is_some())
            + 1
    }
}

impl BenchmarkCase for CapacityCase {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn parameters(&self) -> serde_json::Value {
        self.parameters.clone()
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        let slos = self.params.slos();
        let plan = self.params.plan();
        self.lags.clear();
        let report = search_capacity(self, slos, plan)?;
        let r = &report.result;
        if let Some(c) = r.capacity_per_s {
            obs.value(&CAPACITY_REQUESTS_PER_S, c);
        }
        if let Some(low) = r.interval_per_s[0] {
            obs.value(&CAPACITY_LOW_REQUESTS_PER_S, low);
        }
        if let Some(high) = r.interval_per_s[1] {
            obs.value(&CAPACITY_HIGH_REQUESTS_PER_S, high);
        }
        if let Some(s) = report.saturation {
            obs.value(&SATURATION_REQUESTS_PER_S, s.completed_per_s);
        }
        obs.value(&CAPACITY_PROBES, r.probes as f64);
        obs.value(&CAPACITY_SEARCH_S, r.search_s);
        self.last = Some(report);
        Ok(())
    }

    fn conclude(&mut self) -> Option<Conclusion> {
        let report = self.last.as_ref()?;
        let r = &report.result;
        let mut warnings = Vec::new();
        // Settled or leaning: what the search itself went by.
        let within = |p: &Probe| match p.judgement.verdict {
            ProbeVerdict::Pass => true,
            ProbeVerdict::Fail { .. } => false,
            ProbeVerdict::Unsettled => p.judgement.pressure(&report.slos) < 1.0,
        };
        if r.capacity_per_s.is_none() {
            let top = report
                .probes
                .iter()
                .map(|p| p.rate_per_s)
                .fold(0.0, f64::max);
            warnings.push(if report.probes.iter().all(within) {
                format!(
                    "every probe met the SLOs, up to {top:.3} requests/s: the capacity is above the highest rate probed (raise max_probes, or start_rate_per_s)"
                )
            } else {
                "no probe met the SLOs: the capacity is below the lowest rate probed, or the SLOs cannot be met at any rate".to_string()
            });
        }
        if r.crossed {
            warnings.push(
                "a probe settled within the SLOs above one that settled outside them: the verdicts contradict each other (a server whose speed changed during the search?), and the interval covers nothing".into(),
            );
        }
        // A late client is charged to the server (a probe's TTFT counts
        // from the schedule): probes whose lag passes the stated share of
        // the TTFT objective may have failed for the client.
        let limit_pct = self.params.client_bound_lag_pct.get();
        let objective_ms = self.params.ttft_slo_ms.map(Millis::get);
        let late: Vec<&ProbeLag> = objective_ms.map_or_else(Vec::new, |slo| {
            // Below 100 requests a p99 is the maximum: one late send.
            self.lags
                .iter()
                .filter(|l| l.requests >= 100 && l.dispatch_lag_p99_ms > slo * limit_pct / 100.0)
                .collect()
        });
        if let (Some(slo), Some(worst)) = (
            objective_ms,
            late.iter()
                .max_by(|a, b| a.dispatch_lag_p99_ms.total_cmp(&b.dispatch_lag_p99_ms)),
        ) {
            warnings.push(format!(
                "client-bound: in {} of {} probes the client's dispatch lag at p99 passed client_bound_lag_pct = {limit_pct} % of ttft_slo_ms = {slo} (worst {:.3} ms at {:.3} requests/s): a probe's TTFT counts from the schedule, so those verdicts may be the client's; run the client on its own cores",
                late.len(),
                self.lags.len(),
                worst.dispatch_lag_p99_ms,
                worst.rate_per_s
            ));
        }
        let audit = json!({
            "rule": "client-bound when a probe of 100 judged requests or more has dispatch_lag_ms p99 > client_bound_lag_pct % of ttft_slo_ms",
            "client_bound_lag_pct": limit_pct,
            "client_bound": !late.is_empty(),
            "probes": self.lags,
        });
        Some(Conclusion {
            failure: None,
            findings: Findings::Other(json!({ "capacity": report, "client_audit": audit })),
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_bits_and_measures_follow_the_order_of_the_slos() {
        let both = SloBounds {
            ttft_ms: Some(50.0),
            tpot_ms: Some(10.0),
        };
        assert_eq!(both.broken(Some(10.0), Some(5.0)), 0);
        assert_eq!(both.broken(Some(60.0), Some(5.0)), 0b001);
        assert_eq!(both.broken(Some(10.0), Some(11.0)), 0b010);
        assert_eq!(both.broken(None, None), 0b100);
        let tpot_only = SloBounds {
            ttft_ms: None,
            tpot_ms: Some(10.0),
        };
        assert_eq!(tpot_only.broken(Some(999.0), Some(11.0)), 0b01);
        assert_eq!(tpot_only.broken(None, None), 0b10);
        // The measures the tail estimate reads sit at the same places.
        assert_eq!(both.measures(Some(60.0), Some(5.0)), [60.0, 5.0]);
        assert_eq!(tpot_only.measures(Some(999.0), Some(11.0))[0], 11.0);
        assert!(tpot_only.measures(Some(999.0), Some(11.0))[1].is_nan());
        assert!(both.measures(None, None).iter().all(|m| m.is_nan()));
        assert!(both.measures(Some(3.0), None)[1].is_nan());
    }
}
