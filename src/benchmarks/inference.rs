//! Day 1 kinds: time to first token and decode speed of real forward passes.
//!
//! Definitions follow the serving benchmarks (vLLM, MLPerf): TTFT is prompt
//! submitted → first generated token (prefill plus the first sampling);
//! TPOT = (end-to-end − TTFT) / (output tokens − 1); ITL is every gap between
//! two consecutive generated tokens.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::json;

use super::params::{self, ParamProblem};
use super::{
    BenchContext, BenchmarkCase, BenchmarkError, BenchmarkKind, Headline, MetricDef, Observations,
    PreparedBenchmark, model_folder,
};
use crate::campaign::ResolvedModel;
use crate::components::inference::{GenerationSession, LoadedModel};
use crate::runner::memory;

const MIB: f64 = 1024.0 * 1024.0;

pub(super) const MODEL_SETUP_METRICS: &[MetricDef] = &[
    MetricDef::duration_ms(
        "model_load_ms",
        "config.json + safetensors → model ready on the device",
    ),
    MetricDef::quantity(
        "rss_after_load_mib",
        "MiB",
        false,
        "resident memory of the process after the model loaded",
    ),
    MetricDef::quantity(
        "model_rss_delta_mib",
        "MiB",
        false,
        "resident memory added by loading the model; near 0 when the allocator reuses memory an earlier benchmark freed (compare context.weights_bytes)",
    ),
];

pub(super) fn default_model() -> String {
    "default".to_string()
}

fn one() -> usize {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FirstTokenParams {
    #[serde(default = "default_model")]
    model: String,
    prompt_lengths: Vec<usize>,
    #[serde(default = "one")]
    batch_size: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenGenerationParams {
    #[serde(default = "default_model")]
    model: String,
    prompt_lengths: Vec<usize>,
    output_tokens: usize,
    #[serde(default = "one")]
    batch_size: usize,
    /// Busy-waits this share of each decode step's time after it, inside
    /// the timed region: a known slowdown, to check on a new machine what
    /// the regression gate can see. 0 in every real measurement.
    #[serde(default)]
    planted_slowdown_pct: f64,
}

/// Checks that `model` is defined and holds `longest_sequence` positions.
pub(super) fn check_model(
    model: &str,
    models: &BTreeMap<String, ResolvedModel>,
    longest_sequence: usize,
) -> Result<(), ParamProblem> {
    let Some(resolved) = models.get(model) else {
        let known: Vec<_> = models.keys().map(String::as_str).collect();
        return Err(ParamProblem::at(
            "model",
            format!("no model named {model:?} in [models]"),
            format!(
                "define [models.{model}] or use one of: {}",
                known.join(", ")
            ),
        ));
    };
    let limit = resolved.architecture.max_position_embeddings;
    if longest_sequence > limit {
        return Err(ParamProblem::at(
            "prompt_lengths",
            format!(
                "a prompt plus its generated tokens needs {longest_sequence} positions, more than model {model:?}'s max_position_embeddings ({limit})"
            ),
            "shorten the prompts or outputs, or raise max_position_embeddings",
        ));
    }
    Ok(())
}

/// Checks the parameters both Day 1 kinds share against the model they name.
fn check_common(
    model: &str,
    prompt_lengths: &[usize],
    batch_size: usize,
    output_tokens: usize,
    models: &BTreeMap<String, ResolvedModel>,
) -> Result<(), ParamProblem> {
    if prompt_lengths.is_empty() || prompt_lengths.contains(&0) {
        return Err(ParamProblem::at(
            "prompt_lengths",
            "prompt_lengths must list at least one length, each at least 1 token",
            "e.g. prompt_lengths = [128, 512]",
        ));
    }
    if batch_size == 0 {
        return Err(ParamProblem::at(
            "batch_size",
            "batch_size must be at least 1",
            "e.g. batch_size = 1",
        ));
    }
    let longest = prompt_lengths.iter().max().copied().unwrap_or(0);
    check_model(model, models, longest + output_tokens)
}

/// Deterministic prompt of `len` token ids: its own ChaCha stream per
/// length, so adding a length to a sweep does not change the others.
pub(super) fn prompt_tokens(seed: u64, len: usize, vocab_size: usize) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(len as u64);
    let vocab = u32::try_from(vocab_size).unwrap_or(u32::MAX);
    (0..len).map(|_| rng.random_range(0..vocab)).collect()
}

/// A model loaded for a benchmark, with what loading it cost.
pub(super) struct ModelUnderTest {
    pub model: Arc<LoadedModel>,
    pub setup: Vec<(&'static str, f64)>,
    pub context: serde_json::Value,
}

/// Loads (generating first if synthetic) the named model and measures the load.
pub(super) fn load_model(name: &str, ctx: &BenchContext) -> Result<ModelUnderTest, BenchmarkError> {
    let (resolved, folder) = model_folder(ctx, name)?;
    let device = ctx.device.open()?;
    let rss_before = memory::resident_set_bytes();
    let started = Instant::now();
    let model = LoadedModel::load(&folder, &device, ctx.settings.dtype.to_candle())?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let rss_after = memory::resident_set_bytes();
    let mut setup = vec![("model_load_ms", load_ms)];
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        setup.push(("rss_after_load_mib", after as f64 / MIB));
        setup.push((
            "model_rss_delta_mib",
            after.saturating_sub(before) as f64 / MIB,
        ));
    }
    let context = json!({
        "model": name,
        "model_source": if resolved.synthetic.is_some() { "synthetic" } else { "folder" },
        "model_folder": folder.display().to_string(),
        "architecture": &model.architecture,
        "parameters": model.architecture.parameter_count(),
        "weights_bytes": model.architecture.parameter_count() * model.dtype.size_in_bytes(),
        "weights_bytes_formula": "parameters × dtype size",
        "dtype": ctx.settings.dtype.name(),
        "device": ctx.device.to_string(),
    });
    Ok(ModelUnderTest {
        model: Arc::new(model),
        setup,
        context,
    })
}

/// Loads the model once and builds one case per prompt length, sharing it.
fn prepare_per_prompt_length(
    model_name: &str,
    prompt_lengths: &[usize],
    ctx: &BenchContext,
    make_case: impl Fn(Arc<LoadedModel>, Vec<u32>) -> Box<dyn BenchmarkCase>,
) -> Result<PreparedBenchmark, BenchmarkError> {
    let ModelUnderTest {
        model,
        setup,
        context,
    } = load_model(model_name, ctx)?;
    let cases = prompt_lengths
        .iter()
        .map(|&len| {
            let prompt = prompt_tokens(ctx.settings.seed, len, model.architecture.vocab_size);
            make_case(Arc::clone(&model), prompt)
        })
        .collect();
    Ok(PreparedBenchmark {
        setup,
        context,
        cases,
        warnings: Vec::new(),
    })
}

pub struct FirstTokenLatency;

impl BenchmarkKind for FirstTokenLatency {
    fn name(&self) -> &'static str {
        "first_token_latency"
    }

    fn description(&self) -> &'static str {
        "time to first token (prefill + greedy sampling) per prompt length"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        const METRICS: &[MetricDef] = &[
            MetricDef::duration_ms("ttft_ms", "prompt submitted → first generated token"),
            MetricDef::quantity(
                "prefill_tokens_per_s",
                "tokens/s",
                true,
                "prompt tokens × batch ÷ TTFT",
            ),
        ];
        METRICS
    }

    fn setup_metrics(&self) -> &'static [MetricDef] {
        MODEL_SETUP_METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: "ttft_ms",
            throughput: "prefill_tokens_per_s",
        }
    }

    fn check(
        &self,
        params: &toml::Table,
        models: &BTreeMap<String, ResolvedModel>,
    ) -> Result<(), ParamProblem> {
        let p: FirstTokenParams = params::parse(params)?;
        check_common(&p.model, &p.prompt_lengths, p.batch_size, 1, models)
    }

    fn prepare(
        &self,
        params: &toml::Table,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let p: FirstTokenParams =
            params::parse(params).map_err(|e| BenchmarkError::Params(e.message))?;
        prepare_per_prompt_length(&p.model, &p.prompt_lengths, ctx, |model, prompt| {
            Box::new(PrefillCase {
                model,
                prompt,
                batch_size: p.batch_size,
            })
        })
    }

    fn planned_cases(&self, params: &toml::Table) -> Result<usize, ParamProblem> {
        Ok(params::parse::<FirstTokenParams>(params)?
            .prompt_lengths
            .len())
    }
}

struct PrefillCase {
    model: Arc<LoadedModel>,
    prompt: Vec<u32>,
    batch_size: usize,
}

impl BenchmarkCase for PrefillCase {
    fn label(&self) -> String {
        format!("prompt_len={}", self.prompt.len())
    }

    fn parameters(&self) -> serde_json::Value {
        json!({ "prompt_len": self.prompt.len(), "batch_size": self.batch_size })
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        let mut session = GenerationSession::new(&self.model, self.batch_size)?;
        let started = Instant::now();
        let first = session.prefill(&self.prompt)?;
        let ttft = started.elapsed();
        std::hint::black_box(first);
        obs.duration("ttft_ms", ttft);
        obs.value(
            "prefill_tokens_per_s",
            (self.prompt.len() * self.batch_size) as f64 / ttft.as_secs_f64(),
        );
        Ok(())
    }
}

pub struct TokenGeneration;

impl BenchmarkKind for TokenGeneration {
    fn name(&self) -> &'static str {
        "token_generation"
    }

    fn description(&self) -> &'static str {
        "greedy generation with the KV cache on: TTFT, TPOT, ITL, end-to-end and decode tokens/s per prompt length"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        const METRICS: &[MetricDef] = &[
            MetricDef::duration_ms("ttft_ms", "prompt submitted → first generated token"),
            MetricDef::duration_ms("tpot_ms", "(end-to-end − TTFT) / (output tokens − 1)"),
            MetricDef::duration_ms(
                "itl_ms",
                "every gap between two consecutive generated tokens",
            ),
            MetricDef::duration_ms("e2e_ms", "prompt submitted → last generated token"),
            MetricDef::quantity(
                "decode_tokens_per_s",
                "tokens/s",
                true,
                "(output tokens − 1) × batch ÷ (end-to-end − TTFT)",
            ),
            MetricDef::quantity(
                "output_tokens_per_s",
                "tokens/s",
                true,
                "output tokens × batch ÷ end-to-end",
            ),
        ];
        METRICS
    }

    fn setup_metrics(&self) -> &'static [MetricDef] {
        MODEL_SETUP_METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: "tpot_ms",
            throughput: "decode_tokens_per_s",
        }
    }

    fn check(
        &self,
        params: &toml::Table,
        models: &BTreeMap<String, ResolvedModel>,
    ) -> Result<(), ParamProblem> {
        let p: TokenGenerationParams = params::parse(params)?;
        if p.output_tokens < 2 {
            return Err(ParamProblem::at(
                "output_tokens",
                "output_tokens must be at least 2: TPOT and ITL need two generated tokens",
                "e.g. output_tokens = 64",
            ));
        }
        if !(0.0..=1000.0).contains(&p.planted_slowdown_pct) {
            return Err(ParamProblem::at(
                "planted_slowdown_pct",
                "planted_slowdown_pct is a percentage from 0 to 1000",
                "e.g. planted_slowdown_pct = 5 to plant a 5 % slower decode",
            ));
        }
        check_common(
            &p.model,
            &p.prompt_lengths,
            p.batch_size,
            p.output_tokens,
            models,
        )
    }

    fn prepare(
        &self,
        params: &toml::Table,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let p: TokenGenerationParams =
            params::parse(params).map_err(|e| BenchmarkError::Params(e.message))?;
        prepare_per_prompt_length(&p.model, &p.prompt_lengths, ctx, |model, prompt| {
            Box::new(DecodeCase {
                model,
                prompt,
                output_tokens: p.output_tokens,
                batch_size: p.batch_size,
                planted_slowdown: p.planted_slowdown_pct / 100.0,
            })
        })
    }

    fn planned_cases(&self, params: &toml::Table) -> Result<usize, ParamProblem> {
        Ok(params::parse::<TokenGenerationParams>(params)?
            .prompt_lengths
            .len())
    }
}

struct DecodeCase {
    model: Arc<LoadedModel>,
    prompt: Vec<u32>,
    output_tokens: usize,
    batch_size: usize,
    /// `planted_slowdown_pct` as a fraction.
    planted_slowdown: f64,
}

/// Busy-waits for `fraction` of `step`: planted work that takes the CPU
/// like real work would, not a sleep the scheduler could hide.
fn plant_slowdown(step: std::time::Duration, fraction: f64) {
    if fraction <= 0.0 {
        return;
    }
    let until = Instant::now() + step.mul_f64(fraction);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

impl BenchmarkCase for DecodeCase {
    fn label(&self) -> String {
        format!("prompt_len={}", self.prompt.len())
    }

    fn parameters(&self) -> serde_json::Value {
        let mut p = json!({
            "prompt_len": self.prompt.len(),
            "output_tokens": self.output_tokens,
            "batch_size": self.batch_size,
        });
        if self.planted_slowdown > 0.0 {
            p["planted_slowdown_pct"] = json!(self.planted_slowdown * 100.0);
        }
        p
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        let mut session = GenerationSession::new(&self.model, self.batch_size)?;
        let started = Instant::now();
        let mut tokens = session.prefill(&self.prompt)?;
        let ttft = started.elapsed();
        let mut previous = ttft;
        let mut gaps_ms = Vec::with_capacity(self.output_tokens - 1);
        for _ in 1..self.output_tokens {
            let step_started = Instant::now();
            tokens = session.step(&tokens)?;
            plant_slowdown(step_started.elapsed(), self.planted_slowdown);
            let now = started.elapsed();
            gaps_ms.push((now - previous).as_secs_f64() * 1e3);
            previous = now;
        }
        let e2e = previous;
        let decode_s = (e2e - ttft).as_secs_f64();
        let decoded = ((self.output_tokens - 1) * self.batch_size) as f64;
        obs.duration("ttft_ms", ttft);
        obs.duration("e2e_ms", e2e);
        obs.value("tpot_ms", decode_s * 1e3 / (self.output_tokens - 1) as f64);
        obs.value("decode_tokens_per_s", decoded / decode_s);
        obs.value(
            "output_tokens_per_s",
            (self.output_tokens * self.batch_size) as f64 / e2e.as_secs_f64(),
        );
        obs.series("itl_ms", gaps_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_reproducible_and_independent_per_length() {
        let a = prompt_tokens(7, 64, 1000);
        assert_eq!(a, prompt_tokens(7, 64, 1000));
        assert_ne!(a, prompt_tokens(8, 64, 1000));
        assert!(a.iter().all(|t| *t < 1000));
        // A 32-token prompt is not the first half of the 64-token one.
        assert_ne!(&prompt_tokens(7, 32, 1000)[..], &a[..32]);
    }
}
