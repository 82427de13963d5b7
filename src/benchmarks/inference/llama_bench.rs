//! `llama_bench`: llama.cpp's `llama-bench` tests on this engine, named and
//! counted as llama-bench does, so the figures of both tools line up:
//! `pp512` (prefill of 512 tokens), `tg128` (128 decode steps), `pp512+tg128`
//! (both, timed together) and `tg128@d1024` (after a context of 1024 tokens,
//! prefilled untimed), over the Cartesian product models × batch × depth ×
//! tests. tokens/s = tokens processed × batch ÷ time, llama-bench's `avg_ts`.

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::json;

use crate::benchmarks::model::{
    MODEL_SETUP_METRICS, architecture, check_model, generation_memory, load_model, prompt_tokens,
};
use crate::benchmarks::{
    BenchContext, BenchmarkCase, BenchmarkError, Headline, Kind, MemoryNeed, MetricDef, Models,
    Observations, ParamProblem, PreparedBenchmark, SweepAxis,
};
use crate::campaign::bounds::{OptionalTokenRange, ParallelRange, ThreadRange, Tokens};
use crate::campaign::grid::Grid;
use crate::components::inference::{GenerationSession, LoadedModel};

/// Keeps a test's context tokens apart from its prompt tokens when the
/// depth equals the prompt length.
const CONTEXT_SEED_SALT: u64 = 0xc0_47e7;

fn default_models() -> Vec<String> {
    vec!["default".to_string()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlamaBenchParams {
    /// Models of the campaign to run every test on (`-m`).
    #[serde(default = "default_models")]
    models: Vec<String>,
    /// Prompt lengths of the `pp` tests (`-p`); 0 for none.
    n_prompt: Grid<OptionalTokenRange>,
    /// Decode steps of the `tg` tests (`-n`); 0 for none.
    n_gen: Grid<OptionalTokenRange>,
    /// Contexts held before each test (`-d`); 0 for an empty one.
    #[serde(default)]
    n_depth: Option<Grid<OptionalTokenRange>>,
    /// Prompt-then-generate tests (`-pg 512,128`), as [prompt, gen] pairs.
    #[serde(default)]
    prompt_gen: Vec<(Tokens, Tokens)>,
    /// Sequences per forward pass.
    #[serde(default)]
    batch_size: Option<Grid<ParallelRange>>,
    /// Compute threads (`-t`); the run's `--threads` when absent. Counts
    /// other than the run's run in child processes.
    #[serde(default)]
    threads: Option<Grid<ThreadRange>>,
}

/// One llama-bench test: what is prefilled and generated, after what.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TestShape {
    prompt: usize,
    generate: usize,
    depth: usize,
    batch: usize,
    /// `None`: the run's thread count.
    threads: Option<usize>,
}

impl TestShape {
    /// llama-bench's name: pp512, tg128, pp512+tg128, with @d1024 after a context.
    fn name(&self) -> String {
        let test = match (self.prompt, self.generate) {
            (p, 0) => format!("pp{p}"),
            (0, n) => format!("tg{n}"),
            (p, n) => format!("pp{p}+tg{n}"),
        };
        if self.depth > 0 {
            format!("{test}@d{}", self.depth)
        } else {
            test
        }
    }

    /// Positions the test holds: the context, the prompt, the steps (and
    /// one seed token when a `tg` test has neither context nor prompt).
    fn positions(&self) -> u64 {
        (self.depth + self.prompt.max(1) + self.generate) as u64
    }
}

impl LlamaBenchParams {
    fn depths(&self) -> Vec<usize> {
        self.n_depth
            .as_ref()
            .map_or(vec![0], |d| d.values().map(|v| v as usize).collect())
    }

    fn batches(&self) -> Vec<usize> {
        self.batch_size
            .as_ref()
            .map_or(vec![1], |b| b.values().map(|v| v as usize).collect())
    }

    fn thread_counts(&self) -> Vec<Option<usize>> {
        self.threads.as_ref().map_or(vec![None], |t| {
            t.values().map(|v| Some(v as usize)).collect()
        })
    }

    /// Every test of one model, in llama-bench's order.
    fn tests(&self) -> Vec<TestShape> {
        let mut tests = Vec::new();
        for threads in self.thread_counts() {
            for batch in self.batches() {
                for depth in self.depths() {
                    let shape = |prompt, generate| TestShape {
                        prompt,
                        generate,
                        depth,
                        batch,
                        threads,
                    };
                    tests.extend(
                        self.n_prompt
                            .values()
                            .filter(|p| *p > 0)
                            .map(|p| shape(p as usize, 0)),
                    );
                    tests.extend(
                        self.n_gen
                            .values()
                            .filter(|n| *n > 0)
                            .map(|n| shape(0, n as usize)),
                    );
                    tests.extend(
                        self.prompt_gen
                            .iter()
                            .map(|(p, n)| shape(p.usize(), n.usize())),
                    );
                }
            }
        }
        tests
    }
}

const TEST_MS: MetricDef = MetricDef::duration_ms(
    "test_ms",
    "the test's prefill and decode steps, context prefill excluded",
);
const TOKENS_PER_S: MetricDef = MetricDef::quantity(
    "tokens_per_s",
    "tokens/s",
    true,
    "(prompt + generated tokens) × batch ÷ test time (llama-bench's avg_ts)",
);

pub struct LlamaBench;

impl Kind for LlamaBench {
    type Params = LlamaBenchParams;

    fn name(&self) -> &'static str {
        "llama_bench"
    }

    fn description(&self) -> &'static str {
        "llama-bench's tests (pp512, tg128, pp512+tg128, tg128@d1024) over models × batch × depth, tokens/s as llama-bench's avg_ts"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[TEST_MS, TOKENS_PER_S]
    }

    fn setup_metrics(&self) -> &'static [MetricDef] {
        MODEL_SETUP_METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(TEST_MS.name),
            throughput: Some(TOKENS_PER_S.name),
        }
    }

    fn sweep_axis(&self) -> Option<SweepAxis> {
        None
    }

    fn check(&self, p: &LlamaBenchParams, models: &Models) -> Result<(), ParamProblem> {
        if p.models.is_empty() {
            return Err(ParamProblem::at(
                "models",
                "found an empty list; allowed: at least one model of [models]",
                "models = [\"default\"]",
            ));
        }
        let tests = p.tests();
        let Some(longest) = tests.iter().map(TestShape::positions).max() else {
            return Err(ParamProblem::at(
                "n_prompt",
                "no test to run: every n_prompt and n_gen is 0 and prompt_gen is empty",
                "e.g. n_prompt = \"512\", n_gen = \"128\"",
            ));
        };
        for model in &p.models {
            check_model(model, models, longest, "n_depth").map_err(|e| ParamProblem {
                key: Some("models".into()),
                ..e
            })?;
        }
        Ok(())
    }

    fn planned_cases(&self, p: &LlamaBenchParams) -> usize {
        p.models.len() * p.tests().len()
    }

    fn planned_labels(&self, p: &LlamaBenchParams, threads: usize) -> Vec<String> {
        p.models
            .iter()
            .flat_map(|model| {
                p.tests().into_iter().map(move |t| {
                    let t_count = t.threads.unwrap_or(threads);
                    format!("{} {model} b{} t{t_count}", t.name(), t.batch)
                })
            })
            .collect()
    }

    fn case_threads(&self, p: &LlamaBenchParams) -> Vec<usize> {
        p.thread_counts().into_iter().flatten().collect()
    }

    fn memory(&self, p: &LlamaBenchParams, models: &Models) -> Result<MemoryNeed, ParamProblem> {
        let mut worst = MemoryNeed::new(0, "no test");
        for model in &p.models {
            for t in p.tests() {
                let need = generation_memory(
                    architecture(model, models)?,
                    t.batch as u64,
                    (t.depth + t.prompt.max(1)) as u64,
                    t.generate as u64,
                    "n_prompt",
                )?;
                if need.bytes > worst.bytes {
                    worst = need;
                }
            }
        }
        Ok(worst)
    }

    fn prepare(
        &self,
        p: LlamaBenchParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let mut setup = Vec::new();
        let mut contexts = serde_json::Map::new();
        let mut cases: Vec<Box<dyn BenchmarkCase>> = Vec::new();
        for name in &p.models {
            let loaded = load_model(name, ctx)?;
            // Setup metrics are one value each: the first model's load.
            if setup.is_empty() {
                setup = loaded.setup;
            }
            contexts.insert(name.clone(), loaded.context);
            let vocab = loaded.model.architecture.vocab_size;
            let here = ctx.settings.threads.usize();
            // Tests at other thread counts run in child processes.
            for shape in p
                .tests()
                .into_iter()
                .filter(|t| t.threads.unwrap_or(here) == here)
            {
                cases.push(Box::new(LlamaBenchCase {
                    model: Arc::clone(&loaded.model),
                    model_name: name.clone(),
                    quantization: loaded.model.weights.quantization.clone(),
                    context: prompt_tokens(
                        ctx.settings.seed ^ CONTEXT_SEED_SALT,
                        shape.depth.max(1),
                        vocab,
                    ),
                    prompt: prompt_tokens(ctx.settings.seed, shape.prompt, vocab),
                    shape,
                    threads: here,
                }));
            }
        }
        let context = if contexts.len() == 1 {
            contexts.into_iter().next().map_or(json!({}), |(_, c)| c)
        } else {
            json!({ "models": contexts })
        };
        Ok(PreparedBenchmark::new(cases)
            .with_setup(setup)
            .with_context(context))
    }
}

struct LlamaBenchCase {
    model: Arc<LoadedModel>,
    model_name: String,
    quantization: String,
    /// The context prefilled before the test (one token when depth is 0,
    /// the seed of a `tg` test without a prompt).
    context: Vec<u32>,
    prompt: Vec<u32>,
    shape: TestShape,
    threads: usize,
}

impl BenchmarkCase for LlamaBenchCase {
    fn label(&self) -> String {
        format!(
            "{} {} {} b{} t{}",
            self.shape.name(),
            self.model_name,
            self.quantization,
            self.shape.batch,
            self.threads
        )
    }

    fn parameters(&self) -> serde_json::Value {
        json!({
            "test": self.shape.name(),
            "model": self.model_name,
            "quantization": self.quantization,
            "n_prompt": self.shape.prompt,
            "n_gen": self.shape.generate,
            "n_depth": self.shape.depth,
            "batch_size": self.shape.batch,
            "threads": self.threads,
        })
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        let batch = self.shape.batch;
        let mut session = GenerationSession::new(&self.model, batch)?;
        // The context (or the seed token of a bare tg test) is not timed.
        let needs_context = self.shape.depth > 0 || self.shape.prompt == 0;
        let mut tokens = if needs_context {
            session.prefill(&self.context)?
        } else {
            Vec::new()
        };
        let started = Instant::now();
        if self.shape.prompt > 0 {
            tokens = session.prefill(&self.prompt)?;
        }
        for _ in 0..self.shape.generate {
            tokens = session.step(&tokens)?;
        }
        let elapsed = started.elapsed();
        std::hint::black_box(tokens);
        obs.duration(&TEST_MS, elapsed);
        obs.value(
            &TOKENS_PER_S,
            ((self.shape.prompt + self.shape.generate) * batch) as f64 / elapsed.as_secs_f64(),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_are_named_and_ordered_like_llama_bench() {
        let p: LlamaBenchParams = toml::from_str(
            "n_prompt = \"128,512\"\nn_gen = 64\nn_depth = \"0,1024\"\nprompt_gen = [[512, 128]]",
        )
        .unwrap();
        let names: Vec<String> = p.tests().iter().map(TestShape::name).collect();
        assert_eq!(
            names,
            [
                "pp128",
                "pp512",
                "tg64",
                "pp512+tg128",
                "pp128@d1024",
                "pp512@d1024",
                "tg64@d1024",
                "pp512+tg128@d1024"
            ]
        );
        let p: LlamaBenchParams = toml::from_str(
            "models = [\"a\", \"b\"]\nn_prompt = 0\nn_gen = \"16-64*2\"\nbatch_size = \"1,2\"",
        )
        .unwrap();
        assert_eq!(LlamaBench.planned_cases(&p), 2 * 2 * 3);
        assert_eq!(p.tests()[0].positions(), 1 + 16);
        assert!(LlamaBench.case_threads(&p).is_empty());
        let p: LlamaBenchParams =
            toml::from_str("n_prompt = 64\nn_gen = 0\nthreads = \"1,2\"").unwrap();
        assert_eq!(LlamaBench.case_threads(&p), [1, 2]);
        assert_eq!(
            LlamaBench.planned_labels(&p, 1),
            ["pp64 default b1 t1", "pp64 default b1 t2"]
        );
    }
}
