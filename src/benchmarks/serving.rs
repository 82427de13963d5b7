//! Serving macrobenchmarks: many requests against one shared model, closed
//! loop at a concurrency or open loop with Poisson arrivals (`full_inference`),
//! and the same workload swept over concurrency levels and batch sizes
//! (`scaling`).
//!
//! Open-loop latencies start at each request's scheduled arrival, not when a
//! worker picked it up, so time spent queued behind a busy server counts
//! (no coordinated omission).

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::endpoint_serving::EndpointCase;
use super::endpoint_target::{PromptWriter, PromptsAsked, client_memory, with_endpoint_target};
use super::model::{
    MODEL_SETUP_METRICS, PromptSpec, Prompts, architecture, check_model, check_prompts,
    generation_memory, load_model,
};
use super::quality::{ServedOutput, served_outputs};
use super::request_timing::{RequestTiming, SERVING_METRICS, Slo, record_run};
use super::workload::{
    ArrivalProcess, Arrivals, LengthDistribution, Ramp, RampShape, Request, WorkloadSpec,
    generate_requests,
};
use super::{
    BenchContext, BenchmarkCase, BenchmarkError, Headline, Kind, MemoryNeed, MetricDef, Models,
    Observations, ParamProblem, PreparedBenchmark, SweepAxis,
};
use crate::campaign::bounds::{Count, Millis, Parallel, Rate, Tokens};
use crate::components::inference::{
    BatchEvents, LoadedModel, ServeEvents, ServeRequest, serve_static_batches,
};
use crate::model::{CaseParams, ScalingCaseParams};

/// Serves `requests` on the static batching server with `concurrency`
/// workers and `batch_size` requests per batch, timing every request. In an
/// open loop a request's clock starts at its scheduled arrival (a worker
/// waits for the latest arrival of its batch); in a closed loop, when a
/// worker takes it. Returns each request's timing (in request order) and the
/// wall time of the whole run.
pub(super) fn serve(
    model: &LoadedModel,
    requests: &[Request],
    concurrency: usize,
    batch_size: usize,
    open_loop: bool,
) -> Result<(Vec<RequestTiming>, Duration), BenchmarkError> {
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
    Ok((timings, wall))
}

/// Takes the time of each serving event, relative to the run's start.
struct ServingClock<'a> {
    start: Instant,
    requests: &'a [Request],
    open_loop: bool,
}

struct BatchClock {
    requests: Range<usize>,
    arrival: Duration,
    started: Duration,
    /// When the batch's i-th token existed, from the run's start.
    tokens: Vec<Duration>,
    start: Instant,
}

impl ServeEvents for ServingClock<'_> {
    type Batch = BatchClock;

    fn begin_batch(&self, requests: Range<usize>) -> BatchClock {
        let scheduled = self.requests[requests.clone()]
            .iter()
            .map(|r| Duration::from_secs_f64(r.arrival_s))
            .max()
            .unwrap_or_default();
        if let Some(wait) = scheduled.checked_sub(self.start.elapsed()) {
            std::thread::sleep(wait);
        }
        let started = self.start.elapsed();
        BatchClock {
            requests,
            arrival: if self.open_loop { scheduled } else { started },
            started,
            tokens: Vec::new(),
            start: self.start,
        }
    }
}

impl BatchEvents for BatchClock {
    fn token(&mut self, _step: usize) {
        self.tokens.push(self.start.elapsed());
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
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FullInferenceParams {
        /// The campaign model (`default` when none is named).
        #[serde(default)]
        model: Option<String>,
        /// Requests per timed iteration.
        #[serde(default = "default_requests")]
        requests: Count,
        /// Required, but for an endpoint without a tokenizer (text sent whole).
        #[serde(default)]
        prompt_tokens: Option<LengthDistribution>,
        output_tokens: LengthDistribution,
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

impl FullInferenceParams {
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
            latency: Some("e2e_ms"),
            throughput: Some("output_tokens_per_s"),
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
        if p.concurrency.is_empty() && p.rates_per_s.is_empty() {
            return Err(ParamProblem::at(
                "concurrency",
                "found neither concurrency levels nor rates; allowed: at least one closed-loop concurrency or open-loop rate",
                "e.g. concurrency = [1, 2] and/or rates_per_s = [4.0]",
            ));
        }
        if p.rates_per_s.is_empty() {
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
        match p.check_target(models, asked)? {
            None | Some(PromptWriter::Model(_)) => {
                check_prompts(p.prompts.as_ref(), p.model_name(), models)?;
                let prompt = required_prompt_tokens(p.prompt_tokens)?;
                check_length(p.model_name(), models, &prompt, &p.output_tokens)
            }
            Some(PromptWriter::TokenizerFile(_)) => {
                required_prompt_tokens(p.prompt_tokens)?.check("prompt_tokens")?;
                p.output_tokens.check("output_tokens")
            }
            Some(PromptWriter::Server) => p.output_tokens.check("output_tokens"),
        }
    }

    fn planned_cases(&self, p: &FullInferenceParams) -> usize {
        p.concurrency.len() + p.rates_per_s.len()
    }

    fn memory(&self, p: &FullInferenceParams, models: &Models) -> Result<MemoryNeed, ParamProblem> {
        let workers = p
            .concurrency
            .iter()
            .map(|c| c.get())
            .chain((!p.rates_per_s.is_empty()).then(|| p.open_loop_concurrency.get()))
            .max()
            .unwrap_or(1);
        let prompt_max = p.prompt_tokens.map_or(0, |d| d.max());
        if let Some(target) = p.endpoint_target()
            && !matches!(target.writer(models)?, PromptWriter::Model(_))
        {
            let cases = self.planned_cases(p) as u64;
            let ids = prompt_max
                .checked_mul(p.requests.get())
                .and_then(|ids| ids.checked_mul(cases))
                .unwrap_or(u64::MAX);
            return client_memory(ids, workers, p.output_tokens.max(), "requests");
        }
        serving_memory(
            p.model_name(),
            models,
            workers,
            1,
            prompt_max,
            p.output_tokens.max(),
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
        let workload_context = json!({
            "seed": ctx.settings.seed,
            "prompt_tokens": p.prompt_tokens,
            "output_tokens": p.output_tokens,
            "ttft_slo_ms": p.ttft_slo_ms,
            "tpot_slo_ms": p.tpot_slo_ms,
        });
        if let Some(target) = p.endpoint_target() {
            let source = target.prompt_source(p.prompts.as_ref(), ctx)?;
            let connection = target.connect()?;
            let url = connection.client.url();
            let modes =
                p.concurrency
                    .iter()
                    .map(|c| (c.usize(), None))
                    .chain(p.rates_per_s.iter().map(|r| {
                        (
                            p.open_loop_concurrency.usize(),
                            Some(p.arrivals_at(r.get())),
                        )
                    }));
            let mut cases: Vec<Box<dyn BenchmarkCase>> = Vec::new();
            for (concurrency, arrivals) in modes {
                let (requests, prompts) = source.requests(
                    &target,
                    ctx.settings.seed,
                    p.requests.usize(),
                    p.prompt_tokens,
                    p.output_tokens,
                    arrivals,
                )?;
                let (label, parameters) = match arrivals {
                    None => (
                        format!("closed,concurrency={concurrency}"),
                        json!({"mode": "closed", "concurrency": concurrency, "requests": requests.len(), "endpoint": url}),
                    ),
                    Some(arrivals) => {
                        let mut parameters = json!({"mode": "open", "rate_per_s": arrivals.rate_per_s, "concurrency": concurrency, "requests": requests.len(), "endpoint": url});
                        describe_arrivals(&arrivals, &mut parameters);
                        (open_label(&arrivals), parameters)
                    }
                };
                cases.push(Box::new(EndpointCase::new(
                    &connection,
                    prompts,
                    requests,
                    source.tokenizer.clone(),
                    (label, parameters),
                    (concurrency, arrivals.is_some()),
                    slo,
                    &target,
                )));
            }
            let mut context = source.context;
            context["workload"] = workload_context;
            context["endpoint"] = target.describe();
            return Ok(PreparedBenchmark {
                setup: source.setup,
                context,
                cases,
                warnings: Vec::new(),
                skipped: None,
            });
        }
        let mut loaded = load_model(p.model_name(), ctx)?;
        let prompts = Prompts::load(p.prompts.as_ref(), &loaded.model, ctx)?;
        loaded.context["prompts"] = prompts.describe();
        let prompt_tokens = required_prompt_tokens(p.prompt_tokens)
            .map_err(|e| BenchmarkError::Params(e.message))?;
        let requests = p.requests.usize();
        let workload = |arrivals| WorkloadSpec {
            requests,
            prompt_tokens,
            output_tokens: p.output_tokens,
            vocab_size: loaded.model.architecture.vocab_size,
            arrivals,
        };
        let requests_with_prompts = |arrivals| {
            let mut requests = generate_requests(ctx.settings.seed, &workload(arrivals));
            prompts.apply_to(&mut requests);
            requests
        };
        let mut cases: Vec<Box<dyn BenchmarkCase>> = Vec::new();
        for c in &p.concurrency {
            let c = c.usize();
            cases.push(Box::new(ServingCase {
                model: Arc::clone(&loaded.model),
                requests: requests_with_prompts(None),
                label: format!("closed,concurrency={c}"),
                parameters: json!({"mode": "closed", "concurrency": c, "requests": requests}),
                concurrency: c,
                batch_size: 1,
                open_loop: false,
                slo,
            }));
        }
        for rate in &p.rates_per_s {
            let arrivals = p.arrivals_at(rate.get());
            let mut parameters = json!({
                "mode": "open", "rate_per_s": arrivals.rate_per_s,
                "concurrency": p.open_loop_concurrency, "requests": requests,
            });
            describe_arrivals(&arrivals, &mut parameters);
            cases.push(Box::new(ServingCase {
                model: Arc::clone(&loaded.model),
                requests: requests_with_prompts(Some(arrivals)),
                label: open_label(&arrivals),
                parameters,
                concurrency: p.open_loop_concurrency.usize(),
                batch_size: 1,
                open_loop: true,
                slo,
            }));
        }
        let mut context = loaded.context;
        context["workload"] = workload_context;
        Ok(PreparedBenchmark {
            setup: loaded.setup,
            context,
            cases,
            warnings: Vec::new(),
            skipped: None,
        })
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
}

impl BenchmarkCase for ServingCase {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn parameters(&self) -> serde_json::Value {
        self.parameters.clone()
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        let (timings, wall) = serve(
            &self.model,
            &self.requests,
            self.concurrency,
            self.batch_size,
            self.open_loop,
        )?;
        record_run(obs, &timings, wall, self.open_loop, self.slo);
        Ok(())
    }
}

with_endpoint_target! {
    #[derive(Debug, Deserialize)]
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
            latency: Some("e2e_ms"),
            throughput: Some("output_tokens_per_s"),
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
            return Ok(PreparedBenchmark {
                setup: source.setup,
                context,
                cases,
                warnings: Vec::new(),
                skipped: None,
            });
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
        Ok(PreparedBenchmark {
            setup: loaded.setup,
            context,
            cases,
            warnings: Vec::new(),
            skipped: None,
        })
    }
}
