//! `first_token_latency`: time to first token of real forward passes, per
//! prompt length. TTFT is prompt submitted → first generated token
//! (prefill plus the first greedy sampling), as in vLLM and MLPerf.

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use crate::benchmarks::model::{
    MODEL_SETUP_METRICS, PROMPT_LENGTH_AXIS, PromptSpec, Prompts, architecture, check_model,
    check_prompts, default_model, generation_memory, load_model,
};
use crate::benchmarks::{
    BenchContext, BenchmarkCase, BenchmarkError, Headline, Kind, MemoryNeed, MetricDef, Models,
    Observations, ParamProblem, PreparedBenchmark, RooflinePhase, SweepAxis,
};
use crate::campaign::bounds::{Parallel, TokenRange, Tokens};
use crate::campaign::grid::Grid;
use crate::components::inference::{GenerationSession, LoadedModel};
use crate::model::{CaseParams, InferenceCaseParams, InferencePhase};

fn one() -> Parallel {
    Parallel::new_const(1)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstTokenParams {
    #[serde(default = "default_model")]
    model: String,
    /// A list, or llama-bench's spelling: "128,512", "128-2048*2".
    prompt_lengths: Grid<TokenRange>,
    #[serde(default = "one")]
    batch_size: Parallel,
    /// Text prompts (`{ file = … }` or `{ corpus = … }`); random ids when absent.
    #[serde(default)]
    prompts: Option<PromptSpec>,
}

/// The longest of a non-empty list of lengths, or a problem at `field`.
pub(super) fn longest(lengths: &[Tokens], field: &str) -> Result<u64, ParamProblem> {
    lengths.iter().map(|t| t.get()).max().ok_or_else(|| {
        ParamProblem::at(
            field,
            "found an empty list; allowed: at least one length",
            "e.g. prompt_lengths = [128, 512]",
        )
    })
}

pub(super) const FIRST_TOKEN_LATENCY_TTFT_MS: MetricDef =
    MetricDef::duration_ms("ttft_ms", "prompt submitted → first generated token");
const PREFILL_TOKENS_PER_S: MetricDef = MetricDef::quantity(
    "prefill_tokens_per_s",
    "tokens/s",
    true,
    "prompt tokens × batch ÷ TTFT",
);

pub struct FirstTokenLatency;

impl Kind for FirstTokenLatency {
    type Params = FirstTokenParams;

    fn name(&self) -> &'static str {
        "first_token_latency"
    }

    fn description(&self) -> &'static str {
        "time to first token (prefill + greedy sampling) per prompt length"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[FIRST_TOKEN_LATENCY_TTFT_MS, PREFILL_TOKENS_PER_S]
    }

    fn setup_metrics(&self) -> &'static [MetricDef] {
        MODEL_SETUP_METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(FIRST_TOKEN_LATENCY_TTFT_MS.name),
            throughput: Some(PREFILL_TOKENS_PER_S.name),
        }
    }

    fn sweep_axis(&self) -> Option<SweepAxis> {
        Some(PROMPT_LENGTH_AXIS)
    }

    fn roofline_phase(&self) -> Option<RooflinePhase> {
        Some(RooflinePhase {
            phase: InferencePhase::Prefill,
            tokens_per_s: PREFILL_TOKENS_PER_S.name,
        })
    }

    fn check(&self, p: &FirstTokenParams, models: &Models) -> Result<(), ParamProblem> {
        let longest = longest(&p.prompt_lengths, "prompt_lengths")?;
        check_prompts(p.prompts.as_ref(), &p.model, models)?;
        check_model(&p.model, models, longest + 1, "prompt_lengths")
    }

    fn planned_cases(&self, p: &FirstTokenParams) -> usize {
        p.prompt_lengths.len()
    }

    fn memory(&self, p: &FirstTokenParams, models: &Models) -> Result<MemoryNeed, ParamProblem> {
        let longest = longest(&p.prompt_lengths, "prompt_lengths")?;
        generation_memory(
            architecture(&p.model, models)?,
            p.batch_size.get(),
            longest,
            1,
            "prompt_lengths",
        )
    }

    fn prepare(
        &self,
        p: FirstTokenParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let mut loaded = load_model(&p.model, ctx)?;
        let prompts = Prompts::load(p.prompts.as_ref(), &loaded.model, ctx)?;
        loaded.context["prompts"] = prompts.describe();
        let cases = p
            .prompt_lengths
            .iter()
            .map(|len| -> Box<dyn BenchmarkCase> {
                Box::new(PrefillCase {
                    model: Arc::clone(&loaded.model),
                    prompt: prompts.tokens(len.usize(), 0),
                    batch_size: p.batch_size.usize(),
                })
            })
            .collect();
        Ok(PreparedBenchmark::new(cases)
            .with_setup(loaded.setup)
            .with_context(loaded.context))
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
        InferenceCaseParams {
            prompt_len: self.prompt.len(),
            batch_size: self.batch_size,
            output_tokens: None,
        }
        .to_parameters()
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        let mut session = GenerationSession::new(&self.model, self.batch_size)?;
        let started = Instant::now();
        let first = session.prefill(&self.prompt)?;
        let ttft = started.elapsed();
        std::hint::black_box(first);
        obs.duration(&FIRST_TOKEN_LATENCY_TTFT_MS, ttft);
        obs.value(
            &PREFILL_TOKENS_PER_S,
            (self.prompt.len() * self.batch_size) as f64 / ttft.as_secs_f64(),
        );
        Ok(())
    }
}
