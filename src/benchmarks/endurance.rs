//! Memory over time: `endurance` (a steady generation load with RSS sampled
//! at a fixed interval, a least-squares slope with its confidence interval,
//! a leak verdict and the latency drift between the first and last window)
//! and `memory_growth` (RSS after N runs, and KV-cache bytes per token
//! measured against the model's geometry).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::inference::{check_model, default_model, load_model, prompt_tokens};
use super::params::{self, ParamProblem};
use super::{
    BenchContext, BenchmarkCase, BenchmarkError, BenchmarkKind, Conclusion, Headline, MetricDef,
    Observations, PreparedBenchmark,
};
use crate::campaign::ResolvedModel;
use crate::components::inference::{GenerationSession, LoadedModel};
use crate::runner::memory;
use crate::stats::{linear_trend, median};

const MIB: f64 = 1024.0 * 1024.0;

/// One greedy generation of `output_tokens` after `prompt`.
fn generate(
    model: &LoadedModel,
    prompt: &[u32],
    output_tokens: usize,
) -> Result<(), BenchmarkError> {
    let mut session = GenerationSession::new(model, 1)?;
    let mut tokens = session.prefill(prompt)?;
    for _ in 1..output_tokens {
        tokens = session.step(&tokens)?;
    }
    std::hint::black_box(tokens);
    Ok(())
}

fn rss_mib() -> Result<f64, BenchmarkError> {
    memory::resident_set_bytes()
        .map(|b| b as f64 / MIB)
        .ok_or_else(|| {
            BenchmarkError::Component("this platform does not report resident memory".into())
        })
}

fn default_prompt() -> usize {
    32
}
fn default_output() -> usize {
    16
}
fn default_interval_ms() -> u64 {
    1000
}
fn default_leak_threshold() -> f64 {
    1.0
}
fn default_min_growth() -> f64 {
    4.0
}
fn default_drift_window_s() -> f64 {
    60.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnduranceParams {
    #[serde(default = "default_model")]
    model: String,
    #[serde(default = "default_prompt")]
    prompt_tokens: usize,
    #[serde(default = "default_output")]
    output_tokens: usize,
    /// Each timed iteration serves requests for this long, then samples RSS.
    #[serde(default = "default_interval_ms")]
    sample_interval_ms: u64,
    /// A leak is reported only when the slope's 95 % CI excludes zero and
    /// the slope exceeds this.
    #[serde(default = "default_leak_threshold")]
    leak_threshold_mib_per_min: f64,
    /// …and the fitted growth over the whole run exceeds this, so a step
    /// of allocator warm-up in a short run is not called a leak.
    #[serde(default = "default_min_growth")]
    leak_min_growth_mib: f64,
    /// Latency drift compares the first and last window of this length
    /// (a quarter of the run when the run is shorter than four windows).
    #[serde(default = "default_drift_window_s")]
    drift_window_s: f64,
    /// Memory deliberately kept after every sample, to check the detector
    /// on this machine (a planted leak). 0 in real campaigns.
    #[serde(default)]
    planted_leak_kib_per_sample: usize,
}

pub struct Endurance;

impl BenchmarkKind for Endurance {
    fn name(&self) -> &'static str {
        "endurance"
    }

    fn description(&self) -> &'static str {
        "steady generation load with RSS sampled every interval: MiB/min slope with 95 % CI, leak verdict, latency drift first vs last window"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        const METRICS: &[MetricDef] = &[
            MetricDef::duration_ms("e2e_ms", "one generation: prompt → last token"),
            MetricDef::quantity(
                "rss_mib",
                "MiB",
                false,
                "resident memory at the end of each sample interval",
            ),
            MetricDef::quantity(
                "requests_per_s",
                "requests/s",
                true,
                "generations completed in a sample interval ÷ its length",
            ),
        ];
        METRICS
    }

    fn setup_metrics(&self) -> &'static [MetricDef] {
        super::inference::MODEL_SETUP_METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: "e2e_ms",
            throughput: "requests_per_s",
        }
    }

    fn check(
        &self,
        params: &toml::Table,
        models: &BTreeMap<String, ResolvedModel>,
    ) -> Result<(), ParamProblem> {
        let p: EnduranceParams = params::parse(params)?;
        if p.prompt_tokens == 0 || p.output_tokens == 0 {
            return Err(ParamProblem::at(
                "prompt_tokens",
                "prompt_tokens and output_tokens must be at least 1",
                "e.g. prompt_tokens = 32, output_tokens = 16",
            ));
        }
        if p.sample_interval_ms == 0 {
            return Err(ParamProblem::at(
                "sample_interval_ms",
                "sample_interval_ms must be at least 1",
                "e.g. sample_interval_ms = 1000",
            ));
        }
        if !(p.leak_threshold_mib_per_min >= 0.0
            && p.leak_min_growth_mib >= 0.0
            && p.drift_window_s > 0.0)
        {
            return Err(ParamProblem::at(
                "leak_threshold_mib_per_min",
                "leak_threshold_mib_per_min and leak_min_growth_mib must be ≥ 0, drift_window_s > 0",
                "e.g. leak_threshold_mib_per_min = 1.0",
            ));
        }
        check_model(&p.model, models, p.prompt_tokens + p.output_tokens)
    }

    fn prepare(
        &self,
        params: &toml::Table,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let p: EnduranceParams =
            params::parse(params).map_err(|e| BenchmarkError::Params(e.message))?;
        let loaded = load_model(&p.model, ctx)?;
        let prompt = prompt_tokens(
            ctx.settings.seed,
            p.prompt_tokens,
            loaded.model.architecture.vocab_size,
        );
        let mut context = loaded.context;
        context["leak_rule"] = json!(format!(
            "leak when the 95 % CI of the RSS slope lies above 0, the slope exceeds {} MiB/min and the fitted growth over the run exceeds {} MiB",
            p.leak_threshold_mib_per_min, p.leak_min_growth_mib
        ));
        Ok(PreparedBenchmark {
            setup: loaded.setup,
            context,
            cases: vec![Box::new(EnduranceCase {
                model: loaded.model,
                prompt,
                output_tokens: p.output_tokens,
                interval: Duration::from_millis(p.sample_interval_ms),
                leak_threshold_mib_per_min: p.leak_threshold_mib_per_min,
                leak_min_growth_mib: p.leak_min_growth_mib,
                drift_window_s: p.drift_window_s,
                planted_kib: p.planted_leak_kib_per_sample,
                retained: Vec::new(),
                started: None,
                rss_samples: Vec::new(),
                latencies: Vec::new(),
            })],
            warnings: Vec::new(),
        })
    }

    fn planned_cases(&self, params: &toml::Table) -> Result<usize, ParamProblem> {
        params::parse::<EnduranceParams>(params)?;
        Ok(1)
    }
}

struct EnduranceCase {
    model: Arc<LoadedModel>,
    prompt: Vec<u32>,
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

impl BenchmarkCase for EnduranceCase {
    fn label(&self) -> String {
        format!("interval={}ms", self.interval.as_millis())
    }

    fn parameters(&self) -> serde_json::Value {
        json!({
            "prompt_tokens": self.prompt.len(),
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
        let mut served = 0usize;
        while served == 0 || interval_start.elapsed() < self.interval {
            let t = Instant::now();
            generate(&self.model, &self.prompt, self.output_tokens)?;
            let e2e = t.elapsed();
            obs.duration("e2e_ms", e2e);
            self.latencies
                .push((started.elapsed().as_secs_f64(), e2e.as_secs_f64() * 1e3));
            served += 1;
        }
        if self.planted_kib > 0 {
            // Non-zero bytes: untouched zero pages would not count in RSS.
            self.retained.push(vec![0xA5; self.planted_kib * 1024]);
        }
        let rss = rss_mib()?;
        obs.value("rss_mib", rss);
        obs.value(
            "requests_per_s",
            served as f64 / interval_start.elapsed().as_secs_f64(),
        );
        self.rss_samples
            .push((started.elapsed().as_secs_f64(), rss));
        Ok(())
    }

    fn start_timed(&mut self) {
        self.started = None;
        self.rss_samples.clear();
        self.latencies.clear();
    }

    fn conclude(&mut self) -> Option<Conclusion> {
        let minutes: Vec<f64> = self.rss_samples.iter().map(|(t, _)| t / 60.0).collect();
        let rss: Vec<f64> = self.rss_samples.iter().map(|(_, r)| *r).collect();
        let trend = linear_trend(&minutes, &rss);
        let duration_s = self.rss_samples.last().map_or(0.0, |(t, _)| *t);
        let fitted_growth_mib = trend.map(|t| t.slope * duration_s / 60.0);
        let leak = trend.is_some_and(|t| {
            t.rises()
                && t.slope > self.leak_threshold_mib_per_min
                && t.slope * duration_s / 60.0 > self.leak_min_growth_mib
        });
        let window_s = self.drift_window_s.min(duration_s / 4.0);
        let window_median = |from: f64, to: f64| {
            let v: Vec<f64> = self
                .latencies
                .iter()
                .filter(|(t, _)| *t >= from && *t <= to)
                .map(|(_, l)| *l)
                .collect();
            median(&v)
        };
        let first = window_median(0.0, window_s);
        let last = window_median(duration_s - window_s, duration_s);
        let drift_pct = first.zip(last).map(|(f, l)| (l / f - 1.0) * 100.0);
        let mut warnings = Vec::new();
        if let (true, Some(t)) = (leak, trend) {
            warnings.push(format!(
                "memory leak suspected: RSS grows {:.2} MiB/min (95 % CI {:.2} to {:.2}), {:.1} MiB over {:.0} s; thresholds {} MiB/min and {} MiB",
                t.slope,
                t.slope_ci95_low,
                t.slope_ci95_high,
                t.slope * duration_s / 60.0,
                duration_s,
                self.leak_threshold_mib_per_min,
                self.leak_min_growth_mib
            ));
        }
        if trend.is_none() {
            warnings.push(
                "fewer than 3 RSS samples: no memory trend; run longer or shorten sample_interval_ms"
                    .into(),
            );
        }
        Some(Conclusion {
            findings: json!({
                "rss_trend": trend.map(|t| json!({
                    "slope_mib_per_min": t.slope,
                    "slope_ci95_mib_per_min": [t.slope_ci95_low, t.slope_ci95_high],
                    "samples": t.points,
                    "method": "least squares of RSS (MiB) on time (min); CI from Student's t with n − 2 dof",
                })),
                "rss_first_mib": rss.first(),
                "rss_last_mib": rss.last(),
                "duration_s": duration_s,
                "fitted_growth_mib": fitted_growth_mib,
                "leak_threshold_mib_per_min": self.leak_threshold_mib_per_min,
                "leak_min_growth_mib": self.leak_min_growth_mib,
                "leak_detected": leak,
                "latency_drift": {
                    "window_s": window_s,
                    "first_window_p50_ms": first,
                    "last_window_p50_ms": last,
                    "drift_pct": drift_pct,
                },
            }),
            warnings,
        })
    }
}

fn default_runs() -> Vec<usize> {
    vec![10, 100]
}
fn default_kv_probe() -> usize {
    512
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryGrowthParams {
    #[serde(default = "default_model")]
    model: String,
    #[serde(default = "default_prompt")]
    prompt_tokens: usize,
    #[serde(default = "default_output")]
    output_tokens: usize,
    /// One case per count: RSS before and after that many generations.
    #[serde(default = "default_runs")]
    runs: Vec<usize>,
    /// Prompt length of the KV-cache probe (0 skips it).
    #[serde(default = "default_kv_probe")]
    kv_probe_tokens: usize,
}

pub struct MemoryGrowth;

impl BenchmarkKind for MemoryGrowth {
    fn name(&self) -> &'static str {
        "memory_growth"
    }

    fn description(&self) -> &'static str {
        "RSS growth over N generations, and KV-cache bytes per token measured (RSS of a live session) vs predicted from the model geometry"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        const METRICS: &[MetricDef] = &[
            MetricDef::quantity("rss_before_mib", "MiB", false, "RSS before the runs"),
            MetricDef::quantity("rss_after_mib", "MiB", false, "RSS after the runs"),
            MetricDef::quantity(
                "kv_bytes_per_token_measured",
                "bytes",
                false,
                "RSS added by a live session after its prefill ÷ prompt tokens (freed memory trimmed first)",
            ),
        ];
        METRICS
    }

    fn setup_metrics(&self) -> &'static [MetricDef] {
        super::inference::MODEL_SETUP_METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: "",
            throughput: "",
        }
    }

    fn check(
        &self,
        params: &toml::Table,
        models: &BTreeMap<String, ResolvedModel>,
    ) -> Result<(), ParamProblem> {
        let p: MemoryGrowthParams = params::parse(params)?;
        if p.runs.contains(&0) || p.prompt_tokens == 0 || p.output_tokens == 0 {
            return Err(ParamProblem::at(
                "runs",
                "runs, prompt_tokens and output_tokens must be at least 1",
                "e.g. runs = [10, 100]",
            ));
        }
        check_model(
            &p.model,
            models,
            (p.prompt_tokens + p.output_tokens).max(p.kv_probe_tokens),
        )
    }

    fn prepare(
        &self,
        params: &toml::Table,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let p: MemoryGrowthParams =
            params::parse(params).map_err(|e| BenchmarkError::Params(e.message))?;
        let loaded = load_model(&p.model, ctx)?;
        let vocab = loaded.model.architecture.vocab_size;
        let prompt = prompt_tokens(ctx.settings.seed, p.prompt_tokens, vocab);
        let mut cases: Vec<Box<dyn BenchmarkCase>> = p
            .runs
            .iter()
            .map(|&runs| -> Box<dyn BenchmarkCase> {
                Box::new(GrowthCase {
                    model: Arc::clone(&loaded.model),
                    prompt: prompt.clone(),
                    output_tokens: p.output_tokens,
                    runs,
                    samples: Vec::new(),
                })
            })
            .collect();
        if p.kv_probe_tokens > 0 {
            cases.push(Box::new(KvProbeCase {
                model: Arc::clone(&loaded.model),
                prompt: prompt_tokens(ctx.settings.seed, p.kv_probe_tokens, vocab),
                measured: Vec::new(),
            }));
        }
        Ok(PreparedBenchmark {
            setup: loaded.setup,
            context: loaded.context,
            cases,
            warnings: Vec::new(),
        })
    }

    fn planned_cases(&self, params: &toml::Table) -> Result<usize, ParamProblem> {
        let p: MemoryGrowthParams = params::parse(params)?;
        Ok(p.runs.len() + usize::from(p.kv_probe_tokens > 0))
    }
}

struct GrowthCase {
    model: Arc<LoadedModel>,
    prompt: Vec<u32>,
    output_tokens: usize,
    runs: usize,
    samples: Vec<(f64, f64)>,
}

impl BenchmarkCase for GrowthCase {
    fn label(&self) -> String {
        format!("runs={}", self.runs)
    }

    fn parameters(&self) -> serde_json::Value {
        json!({"runs": self.runs, "prompt_tokens": self.prompt.len(), "output_tokens": self.output_tokens})
    }

    fn start_timed(&mut self) {
        self.samples.clear();
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        let before = rss_mib()?;
        for _ in 0..self.runs {
            generate(&self.model, &self.prompt, self.output_tokens)?;
        }
        let after = rss_mib()?;
        obs.value("rss_before_mib", before);
        obs.value("rss_after_mib", after);
        self.samples.push((before, after));
        Ok(())
    }

    fn conclude(&mut self) -> Option<Conclusion> {
        let growth: Vec<f64> = self.samples.iter().map(|(b, a)| a - b).collect();
        let growth_median = median(&growth);
        Some(Conclusion {
            findings: json!({
                "rss_growth_mib_median": growth_median,
                "rss_growth_mib_per_run": growth_median.map(|m| m / self.runs as f64),
                "formula": "median over iterations of (RSS after − RSS before); per run = ÷ runs",
            }),
            warnings: Vec::new(),
        })
    }
}

struct KvProbeCase {
    model: Arc<LoadedModel>,
    prompt: Vec<u32>,
    measured: Vec<f64>,
}

impl BenchmarkCase for KvProbeCase {
    fn label(&self) -> String {
        format!("kv_probe={}", self.prompt.len())
    }

    fn parameters(&self) -> serde_json::Value {
        json!({"prompt_tokens": self.prompt.len()})
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        // Trimmed before and after, so both readings count live memory: the
        // prefill's freed activations are returned, the session's KV stays.
        memory::release_free_memory();
        let before = memory::resident_set_bytes();
        let mut session = GenerationSession::new(&self.model, 1)?;
        std::hint::black_box(session.prefill(&self.prompt)?);
        memory::release_free_memory();
        let after = memory::resident_set_bytes();
        drop(session);
        if let (Some(b), Some(a)) = (before, after) {
            let per_token = a.saturating_sub(b) as f64 / self.prompt.len() as f64;
            obs.value("kv_bytes_per_token_measured", per_token);
            self.measured.push(per_token);
        }
        Ok(())
    }

    fn start_timed(&mut self) {
        self.measured.clear();
    }

    fn conclude(&mut self) -> Option<Conclusion> {
        let a = &self.model.architecture;
        let dtype_bytes = self.model.dtype.size_in_bytes();
        let predicted =
            2 * a.num_hidden_layers * a.num_key_value_heads * a.head_dim() * dtype_bytes;
        let measured_median = median(&self.measured);
        Some(Conclusion {
            findings: json!({
                "kv_bytes_per_token_predicted": predicted,
                "predicted_formula": format!(
                    "2 × layers {} × kv_heads {} × head_dim {} × dtype bytes {}",
                    a.num_hidden_layers, a.num_key_value_heads, a.head_dim(), dtype_bytes
                ),
                "kv_bytes_per_token_measured_median": measured_median,
                "measured_over_predicted": measured_median.map(|m| m / predicted as f64),
                "method": "RSS after the prefill minus before, both after malloc_trim, ÷ prompt tokens",
                "caveat": "includes whatever else the session keeps alive besides K and V (e.g. candle's mask and rotary tables)",
            }),
            warnings: Vec::new(),
        })
    }
}
