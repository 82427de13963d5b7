//! `endurance`: a steady generation load with RSS sampled at a fixed
//! interval: a least-squares slope with its confidence interval, a leak
//! verdict, and the latency drift between the first and last window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::endpoint_serving::{FailureTally, shortfall};
use super::endpoint_target::{
    Connection, PromptWriter, PromptsAsked, client_memory, with_endpoint_target,
};
use super::quality::served_outputs;
use crate::benchmarks::model::{
    MODEL_SETUP_METRICS, architecture, check_model, generate, generation_memory, load_model,
    prompt_tokens, rss_mib,
};
use crate::benchmarks::{
    BenchContext, BenchmarkCase, BenchmarkError, Conclusion, Headline, Kind, MemoryNeed, MetricDef,
    Models, Observations, ParamProblem, PreparedBenchmark, ServedOutput,
};
use crate::campaign::bounds::{IntervalMs, LeakKib, MibAmount, Seconds, Tokens};
use crate::components::endpoint::RequestPrompt;
use crate::components::inference::LoadedModel;
use crate::machine::rss;
use crate::model::{EnduranceFindings, Findings, LatencyDrift, RssTrend};
use crate::stats::{Growth, window_drift};

/// The wait after a served request failed, so that a dead server is not
/// hammered with thousands of connection attempts per interval.
const FAILED_REQUEST_PAUSE: Duration = Duration::from_millis(20);

fn default_prompt() -> Tokens {
    Tokens::new_const(32)
}
fn default_output() -> Tokens {
    Tokens::new_const(16)
}
fn default_interval_ms() -> IntervalMs {
    IntervalMs::new_const(1000)
}
fn default_leak_threshold() -> MibAmount {
    MibAmount::new_const(1.0)
}
fn default_min_growth() -> MibAmount {
    MibAmount::new_const(4.0)
}
fn default_drift_window_s() -> Seconds {
    Seconds::new_const(60.0)
}
fn no_leak() -> LeakKib {
    LeakKib::new_const(0)
}

with_endpoint_target! {
    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct EnduranceParams {
        /// The campaign model (`default` when none is named).
        #[serde(default)]
        model: Option<String>,
        #[serde(default = "default_prompt")]
        prompt_tokens: Tokens,
        #[serde(default = "default_output")]
        output_tokens: Tokens,
        /// Each timed iteration serves requests for this long, then samples RSS.
        #[serde(default = "default_interval_ms")]
        sample_interval_ms: IntervalMs,
        /// A leak is reported only when the slope's 95 % CI excludes zero and
        /// the slope exceeds this.
        #[serde(default = "default_leak_threshold")]
        leak_threshold_mib_per_min: MibAmount,
        /// …and the fitted growth over the whole run exceeds this, so a step
        /// of allocator warm-up in a short run is not called a leak.
        #[serde(default = "default_min_growth")]
        leak_min_growth_mib: MibAmount,
        /// Latency drift compares the first and last window of this length
        /// (a quarter of the run when the run is shorter than four windows).
        #[serde(default = "default_drift_window_s")]
        drift_window_s: Seconds,
        /// Memory deliberately kept after every sample, to check the detector
        /// on this machine (a planted leak). 0 in real campaigns.
        #[serde(default = "no_leak")]
        planted_leak_kib_per_sample: LeakKib,
        /// With an endpoint: the server's process id on this machine, whose
        /// RSS is sampled (without it, a served run has no memory trend).
        #[serde(default)]
        server_pid: Option<u32>,
    }
}

/// What one request of the steady load runs on.
enum Load {
    InProcess {
        model: Arc<LoadedModel>,
        prompt: Vec<u32>,
    },
    Served {
        connection: Connection,
        prompt: RequestPrompt,
        tally: FailureTally,
    },
}

/// Whose memory is sampled.
#[derive(Debug, Clone, Copy)]
enum MemoryOf {
    ThisProcess,
    Server(u32),
    /// A served stack whose process is not visible here.
    Unseen,
}

const ENDURANCE_E2E_MS: MetricDef =
    MetricDef::duration_ms("e2e_ms", "one generation: prompt → last token");
const RSS_MIB: MetricDef = MetricDef::quantity(
    "rss_mib",
    "MiB",
    false,
    "resident memory at the end of each sample interval",
);
const ENDURANCE_REQUESTS_PER_S: MetricDef = MetricDef::quantity(
    "requests_per_s",
    "requests/s",
    true,
    "generations completed in a sample interval ÷ its length",
);
const ENDURANCE_ERROR_RATE_PCT: MetricDef = MetricDef::quantity(
    "error_rate_pct",
    "%",
    false,
    "served requests that failed in a sample interval, in % (endpoint targets)",
);
const ENDURANCE_SHORT_RESPONSE_PCT: MetricDef = MetricDef::quantity(
    "short_response_pct",
    "%",
    false,
    "endpoint with ignore_eos: completed responses of a sample interval with fewer output tokens than asked, in %",
);

pub struct Endurance;

impl Kind for Endurance {
    type Params = EnduranceParams;

    fn served_outputs(
        &self,
        p: &Self::Params,
        ctx: &BenchContext,
    ) -> Result<Option<Vec<ServedOutput>>, BenchmarkError> {
        p.endpoint_target()
            .map(|target| served_outputs(target, None, ctx))
            .transpose()
    }

    fn name(&self) -> &'static str {
        "endurance"
    }

    fn description(&self) -> &'static str {
        "steady generation load with RSS sampled every interval: MiB/min slope with 95 % CI, leak verdict, latency drift first vs last window"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[
            ENDURANCE_E2E_MS,
            RSS_MIB,
            ENDURANCE_REQUESTS_PER_S,
            ENDURANCE_ERROR_RATE_PCT,
            ENDURANCE_SHORT_RESPONSE_PCT,
        ]
    }

    fn setup_metrics(&self) -> &'static [MetricDef] {
        MODEL_SETUP_METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(ENDURANCE_E2E_MS.name),
            throughput: Some(ENDURANCE_REQUESTS_PER_S.name),
        }
    }

    fn check(&self, p: &EnduranceParams, models: &Models) -> Result<(), ParamProblem> {
        let asked = PromptsAsked {
            spec: None,
            takes_prompt_files: false,
            lengths_given: true,
        };
        let writer = p.check_target(models, asked)?;
        if writer.is_some() {
            if p.planted_leak_kib_per_sample.get() > 0 {
                return Err(ParamProblem::at(
                    "planted_leak_kib_per_sample",
                    "a planted leak grows this process, not the server; allowed with endpoint: 0",
                    "plant the leak in an in-process run (no endpoint)",
                ));
            }
        } else if p.server_pid.is_some() {
            return Err(ParamProblem::at(
                "server_pid",
                "names a server, but this benchmark has no endpoint",
                "remove server_pid, or set endpoint = \"http://host:port/v1\"",
            ));
        }
        match writer {
            None | Some(PromptWriter::Model(_)) => check_model(
                p.model_name(),
                models,
                p.prompt_tokens.get() + p.output_tokens.get(),
                "prompt_tokens",
            ),
            Some(_) => Ok(()),
        }
    }

    fn planned_cases(&self, _p: &EnduranceParams) -> usize {
        1
    }

    /// One generation at a time; a planted leak keeps its KiB every sample,
    /// at most one sample per millisecond of a week-long budget.
    fn memory(&self, p: &EnduranceParams, models: &Models) -> Result<MemoryNeed, ParamProblem> {
        if let Some(target) = p.endpoint_target()
            && !matches!(target.writer(models)?, PromptWriter::Model(_))
        {
            return client_memory(
                p.prompt_tokens.get(),
                1,
                p.output_tokens.get(),
                "prompt_tokens",
            );
        }
        generation_memory(
            architecture(p.model_name(), models)?,
            1,
            p.prompt_tokens.get(),
            p.output_tokens.get(),
            "prompt_tokens",
        )
    }

    fn prepare(
        &self,
        p: EnduranceParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let (load, memory_of, mut context, setup) = match p.endpoint_target() {
            None => {
                let loaded = load_model(p.model_name(), ctx)?;
                let prompt = prompt_tokens(
                    ctx.settings.seed,
                    p.prompt_tokens.usize(),
                    loaded.model.architecture.vocab_size,
                );
                (
                    Load::InProcess {
                        model: loaded.model,
                        prompt,
                    },
                    MemoryOf::ThisProcess,
                    loaded.context,
                    loaded.setup,
                )
            }
            Some(target) => {
                let source = target.prompt_source(None, ctx)?;
                let vocab_size = source.vocab_size().ok_or_else(|| {
                    BenchmarkError::Params(
                        "endurance sends token-id prompts: it needs a tokenizer or a campaign model"
                            .into(),
                    )
                })?;
                let ids = prompt_tokens(ctx.settings.seed, p.prompt_tokens.usize(), vocab_size);
                let prompt = target.prompt(&ids, source.tokenizer.as_ref())?;
                let mut context = source.context;
                context["endpoint"] = target.describe();
                (
                    Load::Served {
                        connection: target.connect()?,
                        prompt,
                        tally: FailureTally::new(target.error_budget_pct),
                    },
                    p.server_pid.map_or(MemoryOf::Unseen, MemoryOf::Server),
                    context,
                    source.setup,
                )
            }
        };
        context["memory_of"] = json!(match memory_of {
            MemoryOf::ThisProcess => "this process".to_string(),
            MemoryOf::Server(pid) => format!("the server, pid {pid}"),
            MemoryOf::Unseen =>
                "not sampled: the server's process is not named (server_pid)".into(),
        });
        context["leak_rule"] = json!(format!(
            "leak when the 95 % CI of the RSS slope lies above 0, the slope exceeds {} MiB/min and the fitted growth over the run exceeds {} MiB",
            p.leak_threshold_mib_per_min, p.leak_min_growth_mib
        ));
        Ok(PreparedBenchmark::new(vec![Box::new(EnduranceCase {
            load,
            memory_of,
            prompt_tokens: p.prompt_tokens.usize(),
            output_tokens: p.output_tokens.usize(),
            interval: Duration::from_millis(p.sample_interval_ms.get()),
            leak_threshold_mib_per_min: p.leak_threshold_mib_per_min.get(),
            leak_min_growth_mib: p.leak_min_growth_mib.get(),
            drift_window_s: p.drift_window_s.get(),
            planted_kib: p.planted_leak_kib_per_sample.usize(),
            retained: Vec::new(),
            started: None,
            rss_samples: Vec::new(),
            latencies: Vec::new(),
        })])
        .with_setup(setup)
        .with_context(context))
    }
}

struct EnduranceCase {
    load: Load,
    memory_of: MemoryOf,
    prompt_tokens: usize,
    output_tokens: usize,
    interval: Duration,
    leak_threshold_mib_per_min: f64,
    leak_min_growth_mib: f64,
    drift_window_s: f64,
    planted_kib: usize,
    retained: Vec<Vec<u8>>,
    /// Start of the first timed iteration.
    started: Option<Instant>,
    /// (seconds since start, RSS MiB) at the end of each interval.
    rss_samples: Vec<(f64, f64)>,
    /// (seconds since start at completion, e2e ms) of every generation.
    latencies: Vec<(f64, f64)>,
}

impl EnduranceCase {
    /// One request of the load: whether it completed (a served failure is
    /// counted), and whether it came back short of the tokens asked.
    fn one_request(&mut self) -> Result<(bool, bool), BenchmarkError> {
        match &mut self.load {
            Load::InProcess { model, prompt } => {
                generate(model, prompt, self.output_tokens)?;
                Ok((true, false))
            }
            Load::Served {
                connection,
                prompt,
                tally,
            } => {
                let client = &connection.client;
                match connection
                    .runtime
                    .block_on(client.stream(prompt, self.output_tokens))
                {
                    Ok(done) => {
                        let received = done.completion_tokens().unwrap_or(done.chunks.len());
                        let short =
                            shortfall(&done, self.output_tokens, received, client.ignore_eos());
                        tally.completed(&done.surprises, short.as_ref());
                        Ok((true, short.is_some()))
                    }
                    Err(failure) => {
                        tally.failed(&failure);
                        Ok((false, false))
                    }
                }
            }
        }
    }
}

impl BenchmarkCase for EnduranceCase {
    fn label(&self) -> String {
        format!("interval={}ms", self.interval.as_millis())
    }

    fn parameters(&self) -> serde_json::Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "sample_interval_ms": self.interval.as_millis() as u64,
            "leak_threshold_mib_per_min": self.leak_threshold_mib_per_min,
            "leak_min_growth_mib": self.leak_min_growth_mib,
            "planted_leak_kib_per_sample": self.planted_kib,
        })
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let interval_start = Instant::now();
        let (mut attempts, mut served, mut short) = (0usize, 0usize, 0usize);
        // At least one attempt; a dead server ends the interval on time
        // instead of looping until a request succeeds.
        while attempts == 0 || interval_start.elapsed() < self.interval {
            attempts += 1;
            let t = Instant::now();
            let (completed, came_short) = self.one_request()?;
            short += usize::from(came_short);
            if !completed {
                // A refused connection fails at once: pace the retries.
                std::thread::sleep(FAILED_REQUEST_PAUSE.min(self.interval));
                continue;
            }
            let e2e = t.elapsed();
            obs.duration(&ENDURANCE_E2E_MS, e2e);
            self.latencies
                .push((started.elapsed().as_secs_f64(), e2e.as_secs_f64() * 1e3));
            served += 1;
        }
        if self.planted_kib > 0 {
            // Non-zero bytes: untouched zero pages would not count in RSS.
            self.retained.push(vec![0xA5; self.planted_kib * 1024]);
        }
        let rss = match self.memory_of {
            MemoryOf::ThisProcess => Some(rss_mib()?),
            MemoryOf::Server(pid) => Some(
                rss::resident_set_bytes_of(pid)
                    .map(|b| b as f64 / (1024.0 * 1024.0))
                    .ok_or_else(|| {
                        BenchmarkError::Component(format!(
                            "cannot read the resident memory of the server, pid {pid} (server_pid): is it running on this machine?"
                        ))
                    })?,
            ),
            MemoryOf::Unseen => None,
        };
        obs.value(
            &ENDURANCE_REQUESTS_PER_S,
            served as f64 / interval_start.elapsed().as_secs_f64(),
        );
        if let Load::Served { tally, .. } = &mut self.load {
            tally.sent(attempts as u64);
            obs.value(
                &ENDURANCE_ERROR_RATE_PCT,
                100.0 * (attempts - served) as f64 / attempts as f64,
            );
            if served > 0 {
                obs.value(
                    &ENDURANCE_SHORT_RESPONSE_PCT,
                    100.0 * short as f64 / served as f64,
                );
            }
        }
        if let Some(rss) = rss {
            obs.value(&RSS_MIB, rss);
            self.rss_samples
                .push((started.elapsed().as_secs_f64(), rss));
        }
        Ok(())
    }

    fn start_timed(&mut self) {
        self.started = None;
        self.rss_samples.clear();
        self.latencies.clear();
        if let Load::Served { tally, .. } = &mut self.load {
            tally.clear();
        }
    }

    fn conclude(&mut self) -> Option<Conclusion> {
        let errors = match &self.load {
            Load::Served { tally, .. } => tally.conclude(),
            Load::InProcess { .. } => None,
        };
        let growth = Growth::fit(&self.rss_samples);
        let duration_s = self.rss_samples.last().map_or(0.0, |(t, _)| *t);
        let leak = growth
            .is_some_and(|g| g.exceeds(self.leak_threshold_mib_per_min, self.leak_min_growth_mib));
        let drift = window_drift(&self.latencies, self.drift_window_s, duration_s);
        let mut warnings = Vec::new();
        if let (true, Some(g)) = (leak, growth) {
            let t = g.per_minute;
            warnings.push(format!(
                "memory leak suspected: RSS grows {:.2} MiB/min (95 % CI {:.2} to {:.2}), {:.1} MiB over {:.0} s; thresholds {} MiB/min and {} MiB",
                t.slope,
                t.slope_ci95_low,
                t.slope_ci95_high,
                g.fitted_growth(),
                duration_s,
                self.leak_threshold_mib_per_min,
                self.leak_min_growth_mib
            ));
        }
        match (growth, self.memory_of) {
            (None, MemoryOf::Unseen) => warnings.push(
                "no memory trend: the server's memory is not visible; set server_pid when it runs on this machine".into(),
            ),
            (None, _) => warnings.push(
                "fewer than 3 RSS samples: no memory trend; run longer or shorten sample_interval_ms"
                    .into(),
            ),
            (Some(_), _) => {}
        }
        // Failed requests: a warning under the error budget, the case's
        // failure over it.
        let mut failure = None;
        if let Some(errors) = errors {
            warnings.extend(errors.warnings);
            failure = errors.failure;
        }
        let band = growth.map_or_else(Vec::new, |g| {
            let first_s = self.rss_samples.first().map_or(0.0, |(t, _)| *t);
            [first_s, g.per_minute.mean_x * 60.0, duration_s]
                .into_iter()
                .map(|t| {
                    let (fit, low, high) = g.band_at(t);
                    [t, fit, low, high]
                })
                .collect()
        });
        Some(Conclusion {
            failure,
            findings: Findings::Endurance(EnduranceFindings {
                rss_trend: growth.map(|g| RssTrend {
                    slope_mib_per_min: g.per_minute.slope,
                    slope_ci95_mib_per_min: [g.per_minute.slope_ci95_low, g.per_minute.slope_ci95_high],
                    samples: g.per_minute.points,
                    method: "least squares of RSS (MiB) on time (min); CI from Student's t with n − 2 dof".into(),
                }),
                rss_first_mib: self.rss_samples.first().map(|(_, r)| *r),
                rss_last_mib: self.rss_samples.last().map(|(_, r)| *r),
                rss_samples_s_mib: self.rss_samples.iter().map(|(t, r)| [*t, *r]).collect(),
                rss_fit_band_s_mib: band,
                duration_s,
                fitted_growth_mib: growth.map(|g| g.fitted_growth()),
                leak_threshold_mib_per_min: self.leak_threshold_mib_per_min,
                leak_min_growth_mib: self.leak_min_growth_mib,
                leak_detected: leak,
                latency_drift: LatencyDrift {
                    window_s: drift.window_s,
                    first_window_p50_ms: drift.first_window_p50,
                    last_window_p50_ms: drift.last_window_p50,
                    drift_pct: drift.drift_pct,
                },
            }),
            warnings,
        })
    }
}
