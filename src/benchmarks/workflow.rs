//! `collective_workflow`: one request path through every component. Agents
//! take requests from a queue and run each through the KV offload pipeline
//! (generation, layer-0 K/V projection, tiered KV cache, compression, blob
//! store; see `components::kv_offload`). Each stage is timed per request,
//! so the report shows where an end-to-end request spends its time.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::model::{
    MODEL_SETUP_METRICS, architecture, check_model, default_model, generation_memory, load_model,
};
use super::workload::{LengthDistribution, WorkloadSpec, generate_requests};
use super::{
    BenchContext, BenchmarkCase, BenchmarkError, Conclusion, Headline, Kind, MemoryNeed, MetricDef,
    Models, Observations, ParamProblem, PreparedBenchmark, model_folder, scratch_folder,
};
use crate::campaign::bounds::{Count, Dimension, Parallel, Tokens};
use crate::components::agents::{AgentPool, ChannelImpl, QueueKind};
use crate::components::compression::{BlockCodec, Codec, CodecKind};
use crate::components::inference::Layer0KvProjector;
use crate::components::kv_offload::{KvOffloadError, KvOffloadPipeline};
use crate::components::kvcache::{KvDType, KvGeometry, TieredKvCache, TieredKvCacheConfig};
use crate::components::storage::BlobStore;
use crate::machine::checked_product;
use crate::model::{Findings, StageShareFindings};

const WORKFLOW_QUEUE_MS: MetricDef =
    MetricDef::duration_ms("queue_ms", "request submitted → an agent starts it");
const INFERENCE_MS: MetricDef =
    MetricDef::duration_ms("inference_ms", "prefill and greedy decode of the request");
const KV_EXTRACT_MS: MetricDef = MetricDef::duration_ms(
    "kv_extract_ms",
    "layer-0 K/V of prompt + output projected from the weights",
);
const KV_CACHE_MS: MetricDef =
    MetricDef::duration_ms("kv_cache_ms", "KV blocks stored in the tiered KV cache");
const COMPRESS_MS: MetricDef =
    MetricDef::duration_ms("compress_ms", "every KV block compressed with the codec");
const WORKFLOW_STORE_MS: MetricDef =
    MetricDef::duration_ms("store_ms", "compressed blocks written to the blob store");
const WORKFLOW_E2E_MS: MetricDef =
    MetricDef::duration_ms("e2e_ms", "request submitted → its last stage done");
const WORKFLOW_REQUESTS_PER_S: MetricDef = MetricDef::quantity(
    "requests_per_s",
    "requests/s",
    true,
    "requests of the iteration ÷ its wall time",
);
const COMPRESSION_RATIO: MetricDef = MetricDef::quantity(
    "compression_ratio",
    "×",
    true,
    "KV bytes ÷ compressed bytes, per request",
);

/// Stages in request order, with the metric each is recorded under.
const STAGES: [(&str, &MetricDef); 5] = [
    ("inference", &INFERENCE_MS),
    ("kv_extract", &KV_EXTRACT_MS),
    ("kv_cache", &KV_CACHE_MS),
    ("compress", &COMPRESS_MS),
    ("store", &WORKFLOW_STORE_MS),
];

fn default_requests() -> Count {
    Count::new_const(8)
}
fn default_prompt() -> Tokens {
    Tokens::new_const(64)
}
fn default_output() -> Tokens {
    Tokens::new_const(16)
}
fn default_agents() -> Parallel {
    Parallel::new_const(2)
}
fn default_queue() -> QueueKind {
    QueueKind::LockFree
}
fn default_codec() -> String {
    "zstd:3".into()
}
fn default_block_tokens() -> Dimension {
    Dimension::new_const(16)
}
fn default_hot_blocks() -> Count {
    Count::new_const(64)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowParams {
    #[serde(default = "default_model")]
    model: String,
    /// Requests per timed iteration (each iteration draws new prompts).
    #[serde(default = "default_requests")]
    requests: Count,
    #[serde(default = "default_prompt")]
    prompt_tokens: Tokens,
    #[serde(default = "default_output")]
    output_tokens: Tokens,
    #[serde(default = "default_agents")]
    agents: Parallel,
    #[serde(default = "default_queue")]
    queue: QueueKind,
    #[serde(default = "default_codec")]
    codec: String,
    #[serde(default = "default_block_tokens")]
    block_tokens: Dimension,
    #[serde(default = "default_hot_blocks")]
    hot_blocks: Count,
}

fn parse_codec(text: &str) -> Result<Codec, ParamProblem> {
    let codec: Codec = text
        .parse()
        .map_err(|e| ParamProblem::at("codec", format!("{e}"), "use zstd:LEVEL, lz4 or snappy"))?;
    if codec.kind == CodecKind::ZstdDict {
        return Err(ParamProblem::at(
            "codec",
            "zstd_dict needs a trained dictionary, which the workflow does not train",
            "use zstd:LEVEL, lz4 or snappy",
        ));
    }
    Ok(codec)
}

pub struct CollectiveWorkflow;

impl Kind for CollectiveWorkflow {
    type Params = WorkflowParams;

    fn name(&self) -> &'static str {
        "collective_workflow"
    }

    fn description(&self) -> &'static str {
        "agents → generation → layer-0 KV projection → tiered KV cache → compression → blob store, per request: end-to-end latency and time per stage"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[
            WORKFLOW_QUEUE_MS,
            INFERENCE_MS,
            KV_EXTRACT_MS,
            KV_CACHE_MS,
            COMPRESS_MS,
            WORKFLOW_STORE_MS,
            WORKFLOW_E2E_MS,
            WORKFLOW_REQUESTS_PER_S,
            COMPRESSION_RATIO,
        ]
    }

    fn setup_metrics(&self) -> &'static [MetricDef] {
        MODEL_SETUP_METRICS
    }

    fn variation_is_noise(&self) -> bool {
        false
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(WORKFLOW_E2E_MS.name),
            throughput: Some(WORKFLOW_REQUESTS_PER_S.name),
        }
    }

    fn check(&self, p: &WorkflowParams, models: &Models) -> Result<(), ParamProblem> {
        parse_codec(&p.codec)?;
        check_model(
            &p.model,
            models,
            p.prompt_tokens.get() + p.output_tokens.get(),
            "prompt_tokens",
        )
    }

    fn planned_cases(&self, _p: &WorkflowParams) -> usize {
        1
    }

    /// One generation per agent, and the hot tier of layer-0 blocks.
    fn memory(&self, p: &WorkflowParams, models: &Models) -> Result<MemoryNeed, ParamProblem> {
        let a = architecture(&p.model, models)?;
        let generation = generation_memory(
            a,
            1,
            p.prompt_tokens.get(),
            p.output_tokens.get(),
            "prompt_tokens",
        )?;
        let block = checked_product(&[
            2,
            a.num_key_value_heads as u64,
            a.head_dim() as u64,
            2,
            p.block_tokens.get(),
        ]);
        let bytes = block
            .and_then(|b| b.checked_mul(p.hot_blocks.get()))
            .and_then(|hot| {
                generation
                    .bytes
                    .checked_mul(p.agents.get())?
                    .checked_add(hot)
            })
            .ok_or_else(|| {
                ParamProblem::at(
                    "hot_blocks",
                    "hot_blocks × block bytes does not fit in 64 bits",
                    "lower hot_blocks",
                )
            })?;
        Ok(MemoryNeed::new(
            bytes,
            format!(
                "{} agents × ({}) + {} hot blocks",
                p.agents, generation.formula, p.hot_blocks
            ),
        ))
    }

    fn prepare(
        &self,
        p: WorkflowParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let codec = parse_codec(&p.codec).map_err(|e| BenchmarkError::Params(e.message))?;
        let loaded = load_model(&p.model, ctx)?;
        let (_, folder) = model_folder(ctx, &p.model)?;
        let arch = loaded.model.architecture.clone();
        let geometry = KvGeometry {
            layers: 1,
            kv_heads: arch.num_key_value_heads,
            head_dim: arch.head_dim(),
            dtype: KvDType::F16,
            block_tokens: p.block_tokens.usize(),
        };
        let scratch = scratch_folder(&ctx.scratch_dir, "workflow-")?;
        let component = |e: &dyn std::fmt::Display| BenchmarkError::Component(e.to_string());
        let cache = TieredKvCache::open(&TieredKvCacheConfig::new(
            geometry,
            p.hot_blocks.usize(),
            scratch.path().join("cold.kv"),
        ))
        .map_err(|e| component(&e))?;
        let store =
            BlobStore::open(&scratch.path().join("blobs.redb"), 0).map_err(|e| component(&e))?;
        let agents = p.agents.usize();
        let codecs = (0..agents)
            .map(|_| BlockCodec::new(codec, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| component(&e))?;
        let pipeline = Arc::new(
            KvOffloadPipeline::new(
                Arc::clone(&loaded.model),
                Layer0KvProjector::open(&folder)?,
                geometry,
                cache,
                store,
                codecs,
            )
            .map_err(|e| component(&e))?,
        );
        let pool = AgentPool::start(
            p.queue,
            ChannelImpl::default(),
            agents,
            agents,
            Arc::new(move |agent, job: Job| {
                let result = run_job(&pipeline, agent, &job).map_err(|e| e.to_string());
                let _ = job.reply.send(result);
            }),
        )
        .map_err(|e| component(&e))?;
        let mut context = loaded.context;
        context["workflow"] = json!({
            "stages": STAGES.iter().map(|(stage, _)| *stage).collect::<Vec<_>>(),
            "queue": p.queue.name(),
            "agents": p.agents,
            "codec": codec.to_string(),
            "kv_geometry": geometry,
            "kv_source": "layer 0 K/V projected from the model's weights (f16)",
            "store_commit": "non_durable",
        });
        Ok(PreparedBenchmark::new(vec![Box::new(WorkflowCase {
            pool: Some(pool),
            _scratch: scratch,
            spec: WorkloadSpec {
                requests: p.requests.usize(),
                prompt_tokens: LengthDistribution::fixed(p.prompt_tokens),
                output_tokens: LengthDistribution::fixed(p.output_tokens),
                vocab_size: arch.vocab_size,
                arrivals: None,
            },
            seed: ctx.settings.seed,
            iteration: 0,
            stage_totals: [Duration::ZERO; STAGES.len()],
            e2e_total: Duration::ZERO,
            agents,
        })])
        .with_setup(loaded.setup)
        .with_context(context))
    }
}

struct Job {
    prompt: Vec<u32>,
    output_tokens: usize,
    submitted: Instant,
    reply: mpsc::Sender<Result<JobTiming, String>>,
}

struct JobTiming {
    queue: Duration,
    stages: [Duration; STAGES.len()],
    e2e: Duration,
    kv_bytes: usize,
    compressed_bytes: usize,
}

/// Runs one job through the pipeline, timing each stage.
fn run_job(
    pipeline: &KvOffloadPipeline,
    agent: usize,
    job: &Job,
) -> Result<JobTiming, KvOffloadError> {
    let queue = job.submitted.elapsed();
    let mut stages = [Duration::ZERO; STAGES.len()];
    let mut lap = Instant::now();
    let mut mark = |stage: usize| {
        stages[stage] = lap.elapsed();
        lap = Instant::now();
    };
    let sequence = pipeline.generate(&job.prompt, job.output_tokens)?;
    mark(0);
    let blocks = pipeline.extract_blocks(&sequence)?;
    mark(1);
    pipeline.cache_blocks(&blocks)?;
    mark(2);
    let compressed = pipeline.compress_blocks(agent, &blocks)?;
    mark(3);
    pipeline.store_blocks(&compressed)?;
    mark(4);
    Ok(JobTiming {
        queue,
        stages,
        e2e: job.submitted.elapsed(),
        kv_bytes: blocks.iter().map(|b| b.bytes.len()).sum(),
        compressed_bytes: compressed.iter().map(|b| b.bytes.len()).sum(),
    })
}

struct WorkflowCase {
    pool: Option<AgentPool<Job>>,
    _scratch: Arc<tempfile::TempDir>,
    spec: WorkloadSpec,
    seed: u64,
    iteration: u64,
    stage_totals: [Duration; STAGES.len()],
    e2e_total: Duration,
    agents: usize,
}

impl BenchmarkCase for WorkflowCase {
    fn label(&self) -> String {
        format!("agents={}", self.agents)
    }

    fn parameters(&self) -> serde_json::Value {
        json!({"agents": self.agents, "requests": self.spec.requests})
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| BenchmarkError::Component("the agent pool has stopped".into()))?;
        // New prompts every iteration, so the KV cache sees new blocks.
        self.iteration += 1;
        let requests = generate_requests(self.seed.wrapping_add(self.iteration), &self.spec);
        let (reply, replies) = mpsc::channel();
        let started = Instant::now();
        for request in requests {
            pool.submit(Job {
                prompt: request.prompt,
                output_tokens: request.output_tokens,
                submitted: Instant::now(),
                reply: reply.clone(),
            })
            .map_err(|e| BenchmarkError::Component(e.to_string()))?;
        }
        drop(reply);
        let mut done = 0;
        for timing in replies {
            let t = timing.map_err(BenchmarkError::Component)?;
            obs.duration(&WORKFLOW_QUEUE_MS, t.queue);
            for ((_, metric), elapsed) in STAGES.iter().zip(t.stages) {
                obs.duration(metric, elapsed);
            }
            obs.duration(&WORKFLOW_E2E_MS, t.e2e);
            if t.compressed_bytes > 0 {
                obs.value(
                    &COMPRESSION_RATIO,
                    t.kv_bytes as f64 / t.compressed_bytes as f64,
                );
            }
            for (total, elapsed) in self.stage_totals.iter_mut().zip(t.stages) {
                *total += elapsed;
            }
            self.e2e_total += t.e2e;
            done += 1;
        }
        if done != self.spec.requests {
            return Err(BenchmarkError::Component(format!(
                "{done} of {} requests came back",
                self.spec.requests
            )));
        }
        obs.value(
            &WORKFLOW_REQUESTS_PER_S,
            done as f64 / started.elapsed().as_secs_f64(),
        );
        Ok(())
    }

    fn start_timed(&mut self) {
        self.stage_totals = [Duration::ZERO; STAGES.len()];
        self.e2e_total = Duration::ZERO;
    }

    fn conclude(&mut self) -> Option<Conclusion> {
        let e2e = self.e2e_total.as_secs_f64();
        let shares = STAGES
            .iter()
            .zip(self.stage_totals)
            .map(|((stage, _), total)| {
                let share = (e2e > 0.0).then(|| 100.0 * total.as_secs_f64() / e2e);
                (stage.to_string(), share)
            })
            .collect();
        let staged: f64 = self.stage_totals.iter().map(Duration::as_secs_f64).sum();
        Some(Conclusion {
            failure: None,
            findings: Findings::StageShares(StageShareFindings {
                stage_share_pct: shares,
                queue_and_other_share_pct: (e2e > 0.0).then(|| 100.0 * (e2e - staged) / e2e),
                formula: "sum of a stage's time ÷ sum of end-to-end time, over every timed request"
                    .into(),
            }),
            warnings: Vec::new(),
        })
    }
}

impl Drop for WorkflowCase {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let _ = pool.shutdown();
        }
    }
}
