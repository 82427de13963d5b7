//! `memory_growth`: RSS after N generations, and the KV cache's bytes per
//! token measured in a live session against the model's geometry.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use crate::benchmarks::model::{
    MODEL_SETUP_METRICS, architecture, check_model, default_model, generate, generation_memory,
    load_model, prompt_tokens, rss_mib,
};
use crate::benchmarks::{
    BenchContext, BenchmarkCase, BenchmarkError, Conclusion, Headline, Kind, MemoryNeed, MetricDef,
    Models, Observations, ParamProblem, PreparedBenchmark,
};
use crate::campaign::bounds::{Count, OptionalTokens, Tokens};
use crate::components::inference::{GenerationSession, LoadedModel};
use crate::machine::rss;
use crate::model::{Findings, KvFootprintFindings, MemoryGrowthFindings};
use crate::stats::median;

fn default_prompt() -> Tokens {
    Tokens::new_const(32)
}
fn default_output() -> Tokens {
    Tokens::new_const(16)
}
fn default_runs() -> Vec<Count> {
    vec![Count::new_const(10), Count::new_const(100)]
}
fn default_kv_probe() -> OptionalTokens {
    OptionalTokens::new_const(512)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryGrowthParams {
    #[serde(default = "default_model")]
    model: String,
    #[serde(default = "default_prompt")]
    prompt_tokens: Tokens,
    #[serde(default = "default_output")]
    output_tokens: Tokens,
    /// One case per count: RSS before and after that many generations.
    #[serde(default = "default_runs")]
    runs: Vec<Count>,
    /// Prompt length of the KV-cache probe (0 skips it).
    #[serde(default = "default_kv_probe")]
    kv_probe_tokens: OptionalTokens,
}

const RSS_BEFORE_MIB: MetricDef =
    MetricDef::quantity("rss_before_mib", "MiB", false, "RSS before the runs");
const RSS_AFTER_MIB: MetricDef =
    MetricDef::quantity("rss_after_mib", "MiB", false, "RSS after the runs");
const KV_BYTES_PER_TOKEN_MEASURED: MetricDef = MetricDef::quantity(
    "kv_bytes_per_token_measured",
    "bytes",
    false,
    "RSS added by a live session after its prefill ÷ prompt tokens (freed memory trimmed first)",
);

pub struct MemoryGrowth;

impl Kind for MemoryGrowth {
    type Params = MemoryGrowthParams;

    fn name(&self) -> &'static str {
        "memory_growth"
    }

    fn description(&self) -> &'static str {
        "RSS growth over N generations, and KV-cache bytes per token measured (RSS of a live session) vs predicted from the model geometry"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[RSS_BEFORE_MIB, RSS_AFTER_MIB, KV_BYTES_PER_TOKEN_MEASURED]
    }

    fn setup_metrics(&self) -> &'static [MetricDef] {
        MODEL_SETUP_METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: None,
            throughput: None,
        }
    }

    fn check(&self, p: &MemoryGrowthParams, models: &Models) -> Result<(), ParamProblem> {
        check_model(
            &p.model,
            models,
            (p.prompt_tokens.get() + p.output_tokens.get()).max(p.kv_probe_tokens.get()),
            "prompt_tokens",
        )
    }

    fn planned_cases(&self, p: &MemoryGrowthParams) -> usize {
        p.runs.len() + usize::from(p.kv_probe_tokens.get() > 0)
    }

    fn memory(&self, p: &MemoryGrowthParams, models: &Models) -> Result<MemoryNeed, ParamProblem> {
        let a = architecture(&p.model, models)?;
        let run = generation_memory(
            a,
            1,
            p.prompt_tokens.get(),
            p.output_tokens.get(),
            "prompt_tokens",
        )?;
        let probe = generation_memory(a, 1, p.kv_probe_tokens.get(), 1, "kv_probe_tokens")?;
        Ok(if run.bytes >= probe.bytes { run } else { probe })
    }

    fn prepare(
        &self,
        p: MemoryGrowthParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let loaded = load_model(&p.model, ctx)?;
        let vocab = loaded.model.architecture.vocab_size;
        let prompt = prompt_tokens(ctx.settings.seed, p.prompt_tokens.usize(), vocab);
        let mut cases: Vec<Box<dyn BenchmarkCase>> = p
            .runs
            .iter()
            .map(|runs| -> Box<dyn BenchmarkCase> {
                Box::new(GrowthCase {
                    model: Arc::clone(&loaded.model),
                    prompt: prompt.clone(),
                    output_tokens: p.output_tokens.usize(),
                    runs: runs.usize(),
                    samples: Vec::new(),
                })
            })
            .collect();
        if p.kv_probe_tokens.get() > 0 {
            cases.push(Box::new(KvProbeCase {
                model: Arc::clone(&loaded.model),
                prompt: prompt_tokens(ctx.settings.seed, p.kv_probe_tokens.usize(), vocab),
                measured: Vec::new(),
            }));
        }
        Ok(PreparedBenchmark::new(cases)
            .with_setup(loaded.setup)
            .with_context(loaded.context))
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
        obs.value(&RSS_BEFORE_MIB, before);
        obs.value(&RSS_AFTER_MIB, after);
        self.samples.push((before, after));
        Ok(())
    }

    fn conclude(&mut self) -> Option<Conclusion> {
        let growth: Vec<f64> = self.samples.iter().map(|(b, a)| a - b).collect();
        let growth_median = median(&growth);
        Some(Conclusion {
            failure: None,
            findings: Findings::MemoryGrowth(MemoryGrowthFindings {
                rss_growth_mib_median: growth_median,
                rss_growth_mib_per_run: growth_median.map(|m| m / self.runs as f64),
                rss_growth_mib_per_iteration: growth,
                runs_per_iteration: self.runs,
                formula: "median over iterations of (RSS after − RSS before); per run = ÷ runs"
                    .into(),
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
        rss::release_free_memory();
        let before = rss::resident_set_bytes();
        let mut session = GenerationSession::new(&self.model, 1)?;
        std::hint::black_box(session.prefill(&self.prompt)?);
        rss::release_free_memory();
        let after = rss::resident_set_bytes();
        drop(session);
        if let (Some(b), Some(a)) = (before, after) {
            let per_token = a.saturating_sub(b) as f64 / self.prompt.len() as f64;
            obs.value(&KV_BYTES_PER_TOKEN_MEASURED, per_token);
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
            failure: None,
            findings: Findings::KvFootprint(KvFootprintFindings {
                kv_bytes_per_token_predicted: predicted as u64,
                predicted_formula: format!(
                    "2 × layers {} × kv_heads {} × head_dim {} × dtype bytes {}",
                    a.num_hidden_layers, a.num_key_value_heads, a.head_dim(), dtype_bytes
                ),
                kv_bytes_per_token_measured_median: measured_median,
                measured_over_predicted: measured_median.map(|m| m / predicted as f64),
                method: "RSS after the prefill minus before, both after malloc_trim, ÷ prompt tokens".into(),
                caveat: "includes whatever else the session keeps alive besides K and V (e.g. candle's mask and rotary tables)".into(),
            }),
            warnings: Vec::new(),
        })
    }
}
