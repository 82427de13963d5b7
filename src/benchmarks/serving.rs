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
use super::model::{
    MODEL_SETUP_METRICS, PromptSpec, Prompts, architecture, check_model, check_prompts,
    default_model, generation_memory, load_model,
};
use super::request_timing::{RequestTiming, SERVING_METRICS, Slo, record_run};
use super::workload::{LengthDistribution, Request, WorkloadSpec, generate_requests};
use super::{
    BenchContext, BenchmarkCase, BenchmarkError, Headline, Kind, MemoryNeed, MetricDef, Models,
    Observations, ParamProblem, PreparedBenchmark, SweepAxis,
};
use crate::campaign::bounds::{Count, Millis, Parallel, Percent, Rate, Seconds, Tokens};
use crate::components::endpoint::{EndpointApi, EndpointClient, EndpointConfig, RequestPrompt};
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullInferenceParams {
    #[serde(default = "default_model")]
    model: String,
    /// Requests per timed iteration.
    #[serde(default = "default_requests")]
    requests: Count,
    prompt_tokens: LengthDistribution,
    output_tokens: LengthDistribution,
    /// One closed-loop case per level.
    #[serde(default)]
    concurrency: Vec<Parallel>,
    /// One open-loop case per rate (Poisson arrivals).
    #[serde(default)]
    rates_per_s: Vec<Rate>,
    /// Workers serving the open-loop arrivals.
    #[serde(default = "default_open_loop_concurrency")]
    open_loop_concurrency: Parallel,
    ttft_slo_ms: Option<Millis>,
    tpot_slo_ms: Option<Millis>,
    /// Text prompts (`{ file = … }` or `{ corpus = … }`) at the sampled lengths.
    #[serde(default)]
    prompts: Option<PromptSpec>,
    /// Serve the workload from an OpenAI-compatible endpoint
    /// (`http://host:port/v1`) instead of the in-process engine; `model`
    /// then gives the prompts (and the tokenizer that counts tokens).
    endpoint: Option<String>,
    #[serde(default)]
    api: EndpointApi,
    /// The `model` field of each request (default: the model's name).
    served_model: Option<String>,
    /// Environment variable holding the API key (never the key itself).
    api_key_env: Option<String>,
    /// Limit on one request, from sending it to its end.
    #[serde(default = "default_request_timeout_s")]
    request_timeout_s: Seconds,
    /// Share of requests that may fail before the benchmark fails (exit 4).
    #[serde(default = "no_errors")]
    error_budget_pct: Percent,
    /// Send vLLM's `ignore_eos`, so outputs have the sampled lengths (set
    /// false for servers that refuse unknown fields).
    #[serde(default = "yes")]
    ignore_eos: bool,
}

fn default_request_timeout_s() -> Seconds {
    Seconds::new_const(120.0)
}

fn yes() -> bool {
    true
}

fn no_errors() -> Percent {
    Percent::new_const(0.0)
}

/// The client's settings for an endpoint target; `api_key` is read by the
/// caller from `api_key_env`.
fn endpoint_config(
    p: &FullInferenceParams,
    endpoint: &str,
    api_key: Option<String>,
) -> Result<EndpointConfig, String> {
    Ok(EndpointConfig {
        base_url: endpoint.to_string(),
        api: p.api,
        served_model: p.served_model.clone().unwrap_or_else(|| p.model.clone()),
        api_key,
        timeout: Duration::try_from_secs_f64(p.request_timeout_s.get())
            .map_err(|e| format!("request_timeout_s: {e}"))?,
        ignore_eos: p.ignore_eos,
    })
}

/// The API key named by `api_key_env`, from the environment only.
fn api_key(p: &FullInferenceParams) -> Result<Option<String>, BenchmarkError> {
    let Some(name) = &p.api_key_env else {
        return Ok(None);
    };
    std::env::var(name).map(Some).map_err(|_| {
        BenchmarkError::Params(format!(
            "api_key_env = {name:?}: the variable is not set (or not UTF-8); export it before the run"
        ))
    })
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
        check_prompts(p.prompts.as_ref(), &p.model, models)?;
        if let Some(endpoint) = &p.endpoint {
            endpoint_config(p, endpoint, None)
                .and_then(|config| {
                    EndpointClient::new(config)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
                .map_err(|problem| {
                    ParamProblem::at(
                        "endpoint",
                        problem,
                        "e.g. endpoint = \"http://127.0.0.1:8000/v1\"",
                    )
                })?;
        }
        check_length(&p.model, models, &p.prompt_tokens, &p.output_tokens)
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
        serving_memory(
            &p.model,
            models,
            workers,
            1,
            p.prompt_tokens.max(),
            p.output_tokens.max(),
        )
    }

    fn prepare(
        &self,
        p: FullInferenceParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let mut loaded = load_model(&p.model, ctx)?;
        let prompts = Prompts::load(p.prompts.as_ref(), &loaded.model, ctx)?;
        loaded.context["prompts"] = prompts.describe();
        let slo = Slo {
            ttft_ms: p.ttft_slo_ms.map(Millis::get),
            tpot_ms: p.tpot_slo_ms.map(Millis::get),
        };
        let requests = p.requests.usize();
        let workload = |rate_per_s| WorkloadSpec {
            requests,
            prompt_tokens: p.prompt_tokens,
            output_tokens: p.output_tokens,
            vocab_size: loaded.model.architecture.vocab_size,
            rate_per_s,
        };
        let requests_with_prompts = |rate_per_s| {
            let mut requests = generate_requests(ctx.settings.seed, &workload(rate_per_s));
            prompts.apply_to(&mut requests);
            requests
        };
        let mut cases: Vec<Box<dyn BenchmarkCase>> = Vec::new();
        if let Some(endpoint) = &p.endpoint {
            let config =
                endpoint_config(&p, endpoint, api_key(&p)?).map_err(BenchmarkError::Params)?;
            let client = Arc::new(
                EndpointClient::new(config).map_err(|e| BenchmarkError::Params(e.to_string()))?,
            );
            let runtime = Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("endpoint-client")
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        BenchmarkError::Component(format!("cannot start the client runtime: {e}"))
                    })?,
            );
            let tokenizer = loaded.model.tokenizer.as_ref().ok().cloned();
            let to_prompts = |requests: &[Request]| -> Result<Vec<RequestPrompt>, BenchmarkError> {
                requests
                    .iter()
                    .map(|r| match p.api {
                        EndpointApi::Completions => Ok(RequestPrompt::Tokens(r.prompt.clone())),
                        EndpointApi::Chat => {
                            let tokenizer = tokenizer.as_ref().ok_or_else(|| {
                                BenchmarkError::Params(format!(
                                    "api = \"chat\" sends text: model {:?} needs a tokenizer to write the prompts",
                                    p.model
                                ))
                            })?;
                            Ok(RequestPrompt::Text(tokenizer.decode(&r.prompt)?))
                        }
                    })
                    .collect()
            };
            let url = client.url();
            let modes = p.concurrency.iter().map(|c| (c.usize(), None)).chain(
                p.rates_per_s
                    .iter()
                    .map(|r| (p.open_loop_concurrency.usize(), Some(r.get()))),
            );
            for (concurrency, rate) in modes {
                let requests = requests_with_prompts(rate);
                let (label, parameters) = match rate {
                    None => (
                        format!("closed,concurrency={concurrency}"),
                        json!({"mode": "closed", "concurrency": concurrency, "requests": requests.len(), "endpoint": url}),
                    ),
                    Some(rate) => (
                        format!("open,rate={rate}/s"),
                        json!({"mode": "open", "rate_per_s": rate, "concurrency": concurrency, "requests": requests.len(), "endpoint": url}),
                    ),
                };
                cases.push(Box::new(EndpointCase {
                    runtime: Arc::clone(&runtime),
                    client: Arc::clone(&client),
                    prompts: to_prompts(&requests)?,
                    requests,
                    tokenizer: tokenizer.clone(),
                    label,
                    parameters,
                    concurrency,
                    open_loop: rate.is_some(),
                    slo,
                    error_budget_pct: p.error_budget_pct.get(),
                    sent: 0,
                    failures: Default::default(),
                    examples: Default::default(),
                }));
            }
        }
        for c in p.concurrency.iter().filter(|_| p.endpoint.is_none()) {
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
        for rate in p.rates_per_s.iter().filter(|_| p.endpoint.is_none()) {
            let rate = rate.get();
            cases.push(Box::new(ServingCase {
                model: Arc::clone(&loaded.model),
                requests: requests_with_prompts(Some(rate)),
                label: format!("open,rate={rate}/s"),
                parameters: json!({
                    "mode": "open", "rate_per_s": rate,
                    "concurrency": p.open_loop_concurrency, "requests": requests,
                }),
                concurrency: p.open_loop_concurrency.usize(),
                batch_size: 1,
                open_loop: true,
                slo,
            }));
        }
        let mut context = loaded.context;
        context["workload"] = json!({
            "seed": ctx.settings.seed,
            "prompt_tokens": p.prompt_tokens,
            "output_tokens": p.output_tokens,
            "ttft_slo_ms": p.ttft_slo_ms,
            "tpot_slo_ms": p.tpot_slo_ms,
        });
        if let Some(endpoint) = &p.endpoint {
            context["endpoint"] = json!({
                "url": crate::components::endpoint::redact_url(endpoint),
                "api": p.api,
                "served_model": p.served_model.as_deref().unwrap_or(&p.model),
                "api_key_env": p.api_key_env,
                "request_timeout_s": p.request_timeout_s,
                "error_budget_pct": p.error_budget_pct,
                "ignore_eos": p.ignore_eos,
            });
        }
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingParams {
    #[serde(default = "default_model")]
    model: String,
    #[serde(default = "default_requests")]
    requests: Count,
    prompt_tokens: Tokens,
    output_tokens: Tokens,
    #[serde(default)]
    concurrency: Vec<Parallel>,
    #[serde(default)]
    batch_sizes: Vec<Parallel>,
    /// Text prompts (`{ file = … }` or `{ corpus = … }`).
    #[serde(default)]
    prompts: Option<PromptSpec>,
}

pub struct Scaling;

impl Kind for Scaling {
    type Params = ScalingParams;

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
        check_prompts(p.prompts.as_ref(), &p.model, models)?;
        check_length(
            &p.model,
            models,
            &LengthDistribution::fixed(p.prompt_tokens),
            &LengthDistribution::fixed(p.output_tokens),
        )
    }

    fn planned_cases(&self, p: &ScalingParams) -> usize {
        p.concurrency.len() + p.batch_sizes.len()
    }

    fn memory(&self, p: &ScalingParams, models: &Models) -> Result<MemoryNeed, ParamProblem> {
        let widest = |levels: &[Parallel]| levels.iter().map(|l| l.get()).max().unwrap_or(1);
        let by_workers = serving_memory(
            &p.model,
            models,
            widest(&p.concurrency),
            1,
            p.prompt_tokens.get(),
            p.output_tokens.get(),
        )?;
        let by_batch = serving_memory(
            &p.model,
            models,
            1,
            widest(&p.batch_sizes),
            p.prompt_tokens.get(),
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
        let mut loaded = load_model(&p.model, ctx)?;
        let prompts = Prompts::load(p.prompts.as_ref(), &loaded.model, ctx)?;
        loaded.context["prompts"] = prompts.describe();
        let mut requests = generate_requests(
            ctx.settings.seed,
            &WorkloadSpec {
                requests: p.requests.usize(),
                prompt_tokens: LengthDistribution::fixed(p.prompt_tokens),
                output_tokens: LengthDistribution::fixed(p.output_tokens),
                vocab_size: loaded.model.architecture.vocab_size,
                rate_per_s: None,
            },
        );
        prompts.apply_to(&mut requests);
        let case =
            |dimension: &str, level: usize, concurrency, batch_size| -> Box<dyn BenchmarkCase> {
                Box::new(ServingCase {
                    model: Arc::clone(&loaded.model),
                    requests: requests.clone(),
                    label: format!("{dimension}={level}"),
                    parameters: {
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
                    },
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
            context: loaded.context,
            cases,
            warnings: Vec::new(),
            skipped: None,
        })
    }
}
