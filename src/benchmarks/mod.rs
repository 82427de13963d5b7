//! Benchmark kinds. Each binds a component to metrics: it prepares the
//! component, runs one iteration at a time when the runner asks, and reports
//! what it observed. The runner owns warm-up, iteration counts, timeouts and
//! cancellation; `stats` summarises; `report` formats.

mod agents;
mod compression;
mod disk;
mod endurance;
mod inference;
mod kvcache;
mod observations;
mod params;
mod planted;
mod serving;
mod storage;
mod workflow;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use observations::{Observations, ObservedParts};

pub use params::ParamProblem;

use crate::campaign::{ResolvedModel, Settings};
use crate::components::inference::{DeviceSpec, InferenceError};
use crate::stats::ValueKind;

/// One metric a kind produces.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub unit: &'static str,
    pub kind: ValueKind,
    pub higher_is_better: bool,
    pub description: &'static str,
}

impl MetricDef {
    /// A duration in milliseconds (recorded at nanosecond resolution); lower is better.
    pub const fn duration_ms(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            unit: "ms",
            kind: ValueKind::DurationMs,
            higher_is_better: false,
            description,
        }
    }

    /// Any other quantity (rates, ratios, counts, sizes).
    pub const fn quantity(
        name: &'static str,
        unit: &'static str,
        higher_is_better: bool,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            unit,
            kind: ValueKind::Quantity,
            higher_is_better,
            description,
        }
    }
}

/// Which metrics feed a result's flat `mean_ms`/`p50_ms`/`p99_ms` and
/// `throughput` fields.
#[derive(Debug, Clone, Copy)]
pub struct Headline {
    pub latency: &'static str,
    pub throughput: &'static str,
}

/// What a kind needs from the campaign to prepare itself. Owned, because
/// benchmarks run on their own thread.
#[derive(Debug, Clone)]
pub struct BenchContext {
    pub models: BTreeMap<String, ResolvedModel>,
    pub settings: Settings,
    pub device: DeviceSpec,
    pub model_cache_dir: PathBuf,
    /// A folder under the run's output for files a benchmark needs while it
    /// runs (cold tiers, disk test files); removed by the benchmark.
    pub scratch_dir: PathBuf,
}

/// A registered benchmark kind.
pub trait BenchmarkKind: Sync {
    /// The registry key used as `kind = "…"` in campaign files.
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// Metrics recorded on every timed iteration.
    fn metrics(&self) -> &'static [MetricDef];
    /// Metrics measured once while preparing (model load time, memory).
    fn setup_metrics(&self) -> &'static [MetricDef] {
        &[]
    }
    fn headline(&self) -> Headline;
    /// Whether a high coefficient of variation means noise. Not for kinds
    /// whose per-request samples vary by design (queueing, mixed lengths).
    fn variation_is_noise(&self) -> bool {
        true
    }
    /// Checks parameters without running anything.
    fn check(
        &self,
        params: &toml::Table,
        models: &BTreeMap<String, ResolvedModel>,
    ) -> Result<(), ParamProblem>;
    fn prepare(
        &self,
        params: &toml::Table,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError>;
    /// How many cases checked parameters make (one per point of the
    /// sweep), without preparing anything: what a night's regression
    /// design plans its comparisons from. An upper bound where a case may
    /// be skipped at run time (direct I/O unsupported, say).
    fn planned_cases(&self, params: &toml::Table) -> Result<usize, ParamProblem>;

    /// Run-level series each case contributes to a regression verdict: its
    /// headline latency (when in ms) and its headline throughput.
    fn headline_series(&self) -> usize {
        let h = self.headline();
        let latency = self.metric(h.latency).is_some_and(|m| m.unit == "ms");
        let throughput = self.metric(h.throughput).is_some();
        usize::from(latency) + usize::from(throughput)
    }

    fn metric(&self, name: &str) -> Option<&'static MetricDef> {
        self.metrics()
            .iter()
            .chain(self.setup_metrics())
            .find(|m| m.name == name)
    }
}

/// A benchmark ready to run: setup measurements and its cases (one per
/// point of its sweep, e.g. one per prompt length).
pub struct PreparedBenchmark {
    pub setup: Vec<(&'static str, f64)>,
    /// Facts about the system under test, copied into every result.
    pub context: serde_json::Value,
    pub cases: Vec<Box<dyn BenchmarkCase>>,
    /// Caveats every result of this benchmark carries (e.g. direct I/O
    /// unsupported, so those cases were not run).
    pub warnings: Vec<String>,
}

pub trait BenchmarkCase: Send {
    /// Short label such as `prompt_len=128`.
    fn label(&self) -> String;
    fn parameters(&self) -> serde_json::Value;
    /// Runs one iteration and records what it observed.
    fn run_iteration(&mut self, observations: &mut Observations) -> Result<(), BenchmarkError>;
    /// Called once between warm-up and the first timed iteration, so state
    /// a case keeps across iterations covers timed iterations only.
    fn start_timed(&mut self) {}
    /// Called once after the last timed iteration, also when the case was
    /// cancelled or timed out: judgements that need the whole run (a trend
    /// over every sample, a drift between the first and last window).
    fn conclude(&mut self) -> Option<Conclusion> {
        None
    }
}

/// What a case concluded from all its iterations.
#[derive(Debug, Clone, Default)]
pub struct Conclusion {
    /// Copied into the result's `conclusion` field.
    pub findings: serde_json::Value,
    /// Copied into the result's warnings (e.g. a suspected leak).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchmarkError {
    #[error(transparent)]
    Inference(#[from] InferenceError),
    #[error("invalid parameters: {0}")]
    Params(String),
    #[error("{0}")]
    Component(String),
}

/// The folder holding a campaign model's config.json and safetensors,
/// generating a synthetic model there first if needed.
fn model_folder<'c>(
    ctx: &'c BenchContext,
    name: &str,
) -> Result<(&'c ResolvedModel, PathBuf), BenchmarkError> {
    let resolved = ctx
        .models
        .get(name)
        .ok_or_else(|| BenchmarkError::Params(format!("no model named {name:?}")))?;
    let folder = match (&resolved.folder, &resolved.synthetic) {
        (Some(folder), _) => folder.clone(),
        (None, Some(config)) => {
            crate::components::inference::materialize_synthetic_model(config, &ctx.model_cache_dir)?
        }
        (None, None) => {
            return Err(BenchmarkError::Params(format!(
                "model {name:?} has no source"
            )));
        }
    };
    Ok((resolved, folder))
}

/// The speed reference several kinds share: copies `source` into `copy`
/// in `block`-sized chunks (the access pattern of the work it is compared
/// with) and returns how long that took.
fn timed_chunked_memcpy(copy: &mut [u8], source: &[u8], block: usize) -> std::time::Duration {
    let started = std::time::Instant::now();
    for (to, from) in copy.chunks_mut(block).zip(source.chunks(block)) {
        to.copy_from_slice(from);
    }
    std::hint::black_box(&copy);
    started.elapsed()
}

/// A private working folder inside `dir` (usually the run's scratch
/// folder), removed when the last case holding it is dropped.
fn scratch_folder(
    dir: &std::path::Path,
    prefix: &str,
) -> Result<std::sync::Arc<tempfile::TempDir>, BenchmarkError> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(dir)
        .map(std::sync::Arc::new)
        .map_err(|e| {
            BenchmarkError::Component(format!(
                "cannot create a working folder in {}: {e}",
                dir.display()
            ))
        })
}

static REGISTRY: &[&dyn BenchmarkKind] = &[
    &inference::FirstTokenLatency,
    &inference::TokenGeneration,
    &kvcache::KvCacheStore,
    &kvcache::KvCacheAccess,
    &disk::DiskBlockSweep,
    &compression::CompressionRatio,
    &compression::CompressionThroughput,
    &storage::StorageWrite,
    &storage::StorageRead,
    &agents::AgentTaskLatency,
    &serving::FullInference,
    &serving::Scaling,
    &endurance::Endurance,
    &endurance::MemoryGrowth,
    &workflow::CollectiveWorkflow,
    &planted::PlantedWork,
];

/// Every kind this build knows, in registry order.
pub fn registry() -> &'static [&'static dyn BenchmarkKind] {
    REGISTRY
}

pub fn find_kind(name: &str) -> Option<&'static dyn BenchmarkKind> {
    REGISTRY.iter().copied().find(|k| k.name() == name)
}

pub fn kind_names() -> Vec<&'static str> {
    REGISTRY.iter().map(|k| k.name()).collect()
}
