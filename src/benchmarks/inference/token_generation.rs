//! `token_generation`: greedy generation with the KV cache on, per prompt
//! length. Definitions follow vLLM and MLPerf: TPOT = (end-to-end − TTFT) /
//! (output tokens − 1); ITL is every gap between two consecutive tokens.

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::json;

use super::first_token_latency::{FIRST_TOKEN_LATENCY_TTFT_MS, longest};
use crate::benchmarks::model::{
    MODEL_SETUP_METRICS, PROMPT_LENGTH_AXIS, PromptSpec, Prompts, architecture, check_model,
    check_prompts, default_model, generation_memory, load_model,
};
use crate::benchmarks::request_timing::ITL_MS;
use crate::benchmarks::{
    BenchContext, BenchmarkCase, BenchmarkError, Headline, Kind, MemoryNeed, MetricDef, Models,
    Observations, ParamProblem, PreparedBenchmark, RooflinePhase, SweepAxis,
};
use crate::campaign::bounds::{Parallel, Real, TokenRange, Tokens};
use crate::campaign::grid::Grid;
use crate::components::inference::{GenerationSession, LoadedModel};
use crate::model::{CaseParams, InferenceCaseParams, InferencePhase};

fn one() -> Parallel {
    Parallel::new_const(1)
}

/// A planted slowdown: 0 to 1000 % of each decode step.
#[derive(Debug)]
pub enum PlantedSlowdownRange {}
impl crate::campaign::bounds::FloatRange for PlantedSlowdownRange {
    const MIN: f64 = 0.0;
    const MIN_OPEN: bool = false;
    const MAX: f64 = 1000.0;
    const WHAT: &'static str = "percent of each decode step";
}

fn no_slowdown() -> Real<PlantedSlowdownRange> {
    Real::new_const(0.0)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenGenerationParams {
    #[serde(default = "default_model")]
    model: String,
    /// A list, or llama-bench's spelling: "128,512", "128-2048*2".
    prompt_lengths: Grid<TokenRange>,
    output_tokens: Tokens,
    #[serde(default = "one")]
    batch_size: Parallel,
    /// Text prompts (`{ file = … }` or `{ corpus = … }`); random ids when absent.
    #[serde(default)]
    prompts: Option<PromptSpec>,
    /// Busy-waits this share of each decode step's time after it, inside
    /// the timed region: a known slowdown, to check on a new machine what
    /// the regression gate can see. 0 in every real measurement.
    #[serde(default = "no_slowdown")]
    planted_slowdown_pct: Real<PlantedSlowdownRange>,
}

const TOKEN_GENERATION_TPOT_MS: MetricDef =
    MetricDef::duration_ms("tpot_ms", "(end-to-end − TTFT) / (output tokens − 1)");
const TOKEN_GENERATION_E2E_MS: MetricDef =
    MetricDef::duration_ms("e2e_ms", "prompt submitted → last generated token");
const DECODE_TOKENS_PER_S: MetricDef = MetricDef::quantity(
    "decode_tokens_per_s",
    "tokens/s",
    true,
    "(output tokens − 1) × batch ÷ (end-to-end − TTFT)",
);
const TOKEN_GENERATION_OUTPUT_TOKENS_PER_S: MetricDef = MetricDef::quantity(
    "output_tokens_per_s",
    "tokens/s",
    true,
    "output tokens × batch ÷ end-to-end",
);

pub struct TokenGeneration;

impl Kind for TokenGeneration {
    type Params = TokenGenerationParams;

    fn name(&self) -> &'static str {
        "token_generation"
    }

    fn description(&self) -> &'static str {
        "greedy generation with the KV cache on: TTFT, TPOT, ITL, end-to-end and decode tokens/s per prompt length"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[
            FIRST_TOKEN_LATENCY_TTFT_MS,
            TOKEN_GENERATION_TPOT_MS,
            ITL_MS,
            TOKEN_GENERATION_E2E_MS,
            DECODE_TOKENS_PER_S,
            TOKEN_GENERATION_OUTPUT_TOKENS_PER_S,
        ]
    }

    fn setup_metrics(&self) -> &'static [MetricDef] {
        MODEL_SETUP_METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(TOKEN_GENERATION_TPOT_MS.name),
            throughput: Some(DECODE_TOKENS_PER_S.name),
        }
    }

    fn sweep_axis(&self) -> Option<SweepAxis> {
        Some(PROMPT_LENGTH_AXIS)
    }

    fn roofline_phase(&self) -> Option<RooflinePhase> {
        Some(RooflinePhase {
            phase: InferencePhase::Decode,
            tokens_per_s: DECODE_TOKENS_PER_S.name,
        })
    }

    fn check(&self, p: &TokenGenerationParams, models: &Models) -> Result<(), ParamProblem> {
        if p.output_tokens.get() < 2 {
            return Err(ParamProblem::at(
                "output_tokens",
                format!(
                    "found {}; allowed: at least 2 (TPOT and ITL need two generated tokens)",
                    p.output_tokens
                ),
                "e.g. output_tokens = 64",
            ));
        }
        let longest = longest(&p.prompt_lengths, "prompt_lengths")?;
        check_prompts(p.prompts.as_ref(), &p.model, models)?;
        check_model(
            &p.model,
            models,
            longest + p.output_tokens.get(),
            "prompt_lengths",
        )
    }

    fn planned_cases(&self, p: &TokenGenerationParams) -> usize {
        p.prompt_lengths.len()
    }

    fn memory(
        &self,
        p: &TokenGenerationParams,
        models: &Models,
    ) -> Result<MemoryNeed, ParamProblem> {
        let longest = longest(&p.prompt_lengths, "prompt_lengths")?;
        generation_memory(
            architecture(&p.model, models)?,
            p.batch_size.get(),
            longest,
            p.output_tokens.get(),
            "prompt_lengths",
        )
    }

    fn prepare(
        &self,
        p: TokenGenerationParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let mut loaded = load_model(&p.model, ctx)?;
        let prompts = Prompts::load(p.prompts.as_ref(), &loaded.model, ctx)?;
        loaded.context["prompts"] = prompts.describe();
        let cases = p
            .prompt_lengths
            .iter()
            .map(|len| -> Box<dyn BenchmarkCase> {
                Box::new(DecodeCase {
                    model: Arc::clone(&loaded.model),
                    prompt: prompts.tokens(len.usize(), 0),
                    output_tokens: p.output_tokens.usize(),
                    batch_size: p.batch_size.usize(),
                    planted_slowdown: p.planted_slowdown_pct.get() / 100.0,
                })
            })
            .collect();
        Ok(PreparedBenchmark::new(cases)
            .with_setup(loaded.setup)
            .with_context(loaded.context))
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
        let mut p = InferenceCaseParams {
            prompt_len: self.prompt.len(),
            batch_size: self.batch_size,
            output_tokens: Some(self.output_tokens),
        }
        .to_parameters();
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
        obs.duration(&FIRST_TOKEN_LATENCY_TTFT_MS, ttft);
        obs.duration(&TOKEN_GENERATION_E2E_MS, e2e);
        obs.value(
            &TOKEN_GENERATION_TPOT_MS,
            decode_s * 1e3 / (self.output_tokens - 1) as f64,
        );
        obs.value(&DECODE_TOKENS_PER_S, decoded / decode_s);
        obs.value(
            &TOKEN_GENERATION_OUTPUT_TOKENS_PER_S,
            (self.output_tokens * self.batch_size) as f64 / e2e.as_secs_f64(),
        );
        obs.series(&ITL_MS, gaps_ms);
        Ok(())
    }
}
