//! The contract every benchmark kind implements: [`Kind`], seen by the
//! registry, the campaign checks and the runner as [`BenchmarkKind`]; the
//! cases it prepares ([`BenchmarkCase`]), what they conclude, the context
//! they are prepared in, their errors, and the helpers kinds share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::observations::{MetricDef, Observations};
use crate::campaign::{KindRules, Models, ParamProblem, ResolvedModel, Settings};
use crate::components::inference::{DeviceSpec, InferenceError};
use crate::machine::MemoryNeed;
use crate::model::{Findings, InferencePhase};

/// Which metrics feed a result's flat `mean_ms`/`p50_ms`/`p99_ms` and
/// `throughput` fields.
#[derive(Debug, Clone, Copy)]
pub struct Headline {
    /// The latency metric in ms, if the kind has one.
    pub latency: Option<&'static str>,
    /// The throughput metric, if the kind has one.
    pub throughput: Option<&'static str>,
}

/// The parameter a kind's cases are swept along, so its headline latency
/// is drawn against it: a typed contract between the kind, which writes
/// `parameter` into each case's parameters, and the curves drawn from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepAxis {
    /// The key each case writes in its `parameters`.
    pub parameter: &'static str,
    /// The axis title, with its unit.
    pub title: &'static str,
    /// Parameters whose values split the cases into separate curves (the
    /// closed and open loop of a serving sweep, a storage commit mode).
    pub series_by: &'static [&'static str],
}

/// Where a kind's cases sit on the roofline: the phase they measure and
/// the metric holding its measured tokens/s. Each case's parameters hold an
/// [`InferenceCaseParams`](crate::model::InferenceCaseParams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RooflinePhase {
    pub phase: InferencePhase,
    pub tokens_per_s: &'static str,
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
    /// The campaign file's folder: files named in params are relative to it.
    pub campaign_dir: PathBuf,
}

impl BenchContext {
    /// The context of `campaign`'s benchmarks, run with `settings`.
    pub fn for_campaign(
        campaign: &crate::campaign::Campaign,
        settings: Settings,
        model_cache_dir: PathBuf,
        scratch_dir: PathBuf,
    ) -> Self {
        Self {
            models: campaign.models.clone(),
            device: settings.device,
            settings,
            model_cache_dir,
            scratch_dir,
            campaign_dir: campaign
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        }
    }
}

/// A benchmark kind, written against its typed parameters: every number
/// in `Params` is a bounded type from [`crate::campaign::bounds`], so a
/// kind never sees NaN, an infinity or a count of zero where zero means
/// nothing. Implement this; the registry and the runner see it through
/// [`BenchmarkKind`], and each benchmark's parameters, parsed once,
/// through a [`ConfiguredBenchmark`](super::ConfiguredBenchmark).
pub trait Kind: Sync + Send + 'static {
    /// Parsed once, while the campaign is validated; `prepare` receives
    /// a copy.
    type Params: DeserializeOwned + Clone + Send + Sync + 'static;
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
    /// Metrics whose names the campaign gives (the outputs a `command`
    /// maps), recorded besides [`Kind::metrics`]; their names are interned
    /// by [`metric_names::intern`](super::metric_names::intern).
    fn mapped_metrics(&self, _params: &Self::Params) -> Vec<MetricDef> {
        Vec::new()
    }
    /// The headline when the campaign chooses it; [`Kind::headline`] else.
    fn mapped_headline(&self, _params: &Self::Params) -> Option<Headline> {
        None
    }
    /// The parameter its cases sweep, if they form a curve.
    fn sweep_axis(&self) -> Option<SweepAxis> {
        None
    }
    /// The roofline phase its cases measure, if any.
    fn roofline_phase(&self) -> Option<RooflinePhase> {
        None
    }
    /// Whether its cases are levels of scaling curves: each case's
    /// parameters then hold a [`ScalingCaseParams`](crate::model::ScalingCaseParams).
    fn scaling_levels(&self) -> bool {
        false
    }
    /// Whether a high coefficient of variation means noise. Not for kinds
    /// whose per-request samples vary by design (queueing, mixed lengths).
    fn variation_is_noise(&self) -> bool {
        true
    }
    /// What the parameter types cannot check alone: relations between
    /// fields, and the models they name.
    fn check(&self, _params: &Self::Params, _models: &Models) -> Result<(), ParamProblem> {
        Ok(())
    }
    /// How many cases the parameters make (one per point of the sweep):
    /// what a night's regression design plans its comparisons from. An
    /// upper bound where a case may be skipped at run time.
    fn planned_cases(&self, params: &Self::Params) -> usize;
    /// The labels of the planned cases, when the kind can name them before
    /// it runs (a grid): `campaign list` shows them.
    fn planned_labels(&self, _params: &Self::Params, _threads: usize) -> Vec<String> {
        Vec::new()
    }
    /// The thread counts the cases ask for, when the kind has a `threads`
    /// grid (empty: every case runs with the run's threads). `prepare`
    /// keeps only the cases at `ctx.settings.threads`; the runner runs the
    /// others in child processes (candle's worker pool is sized per process).
    fn case_threads(&self, _params: &Self::Params) -> Vec<usize> {
        Vec::new()
    }
    /// The memory the benchmark allocates besides its model, estimated
    /// from the parameters before anything is allocated.
    fn memory(&self, params: &Self::Params, models: &Models) -> Result<MemoryNeed, ParamProblem>;
    fn prepare(
        &self,
        params: Self::Params,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError>;
    /// The greedy outputs of the fixed quality prompts from the endpoint
    /// the params send to: what a served remedy's quality verdict compares.
    /// `None` for a benchmark of the in-process engine.
    fn served_outputs(
        &self,
        _params: &Self::Params,
        _ctx: &BenchContext,
    ) -> Result<Option<Vec<ServedOutput>>, BenchmarkError> {
        Ok(None)
    }
}

/// A registered benchmark kind, as the registry, the campaign checks and
/// the runner use it.
pub trait BenchmarkKind: KindRules + Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn sweep_axis(&self) -> Option<SweepAxis>;
    fn roofline_phase(&self) -> Option<RooflinePhase>;
    fn scaling_levels(&self) -> bool;
    fn variation_is_noise(&self) -> bool;
    /// The kind's own metrics and headline, before any params map more:
    /// a configured benchmark's
    /// [`catalog`](super::ConfiguredBenchmark::catalog) adds those.
    fn catalog(&self) -> MetricCatalog;
}

/// The metrics of one benchmark, as the runner records and reports them.
#[derive(Debug, Clone)]
pub struct MetricCatalog {
    metrics: Vec<MetricDef>,
    headline: Headline,
}

impl MetricCatalog {
    pub(super) fn new(metrics: Vec<MetricDef>, headline: Headline) -> Self {
        Self { metrics, headline }
    }

    pub fn metric(&self, name: &str) -> Option<&MetricDef> {
        self.metrics.iter().find(|m| m.name == name)
    }

    pub fn metrics(&self) -> &[MetricDef] {
        &self.metrics
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.metrics.iter().map(|m| m.name)
    }

    pub fn headline(&self) -> Headline {
        self.headline
    }

    /// Run-level series each case contributes to a regression verdict: its
    /// headline latency (when in ms) and its headline throughput.
    pub fn headline_series(&self) -> usize {
        let h = self.headline;
        let latency = h
            .latency
            .and_then(|l| self.metric(l))
            .is_some_and(|m| m.unit == "ms");
        let throughput = h.throughput.and_then(|t| self.metric(t)).is_some();
        usize::from(latency) + usize::from(throughput)
    }
}

impl<K: Kind> BenchmarkKind for K {
    fn name(&self) -> &'static str {
        Kind::name(self)
    }
    fn description(&self) -> &'static str {
        Kind::description(self)
    }
    fn sweep_axis(&self) -> Option<SweepAxis> {
        Kind::sweep_axis(self)
    }
    fn roofline_phase(&self) -> Option<RooflinePhase> {
        Kind::roofline_phase(self)
    }
    fn scaling_levels(&self) -> bool {
        Kind::scaling_levels(self)
    }
    fn variation_is_noise(&self) -> bool {
        Kind::variation_is_noise(self)
    }
    fn catalog(&self) -> MetricCatalog {
        let metrics = Kind::metrics(self)
            .iter()
            .chain(Kind::setup_metrics(self))
            .copied()
            .collect();
        MetricCatalog::new(metrics, Kind::headline(self))
    }
}

/// A benchmark ready to run: setup measurements and its cases (one per
/// point of its sweep, e.g. one per prompt length). The runner takes the
/// fields apart, so they stay public; kinds build it with `new` or `skipped`.
pub struct PreparedBenchmark {
    pub setup: Vec<(&'static str, f64)>,
    /// Facts about the system under test, copied into every result.
    pub context: serde_json::Value,
    pub cases: Vec<Box<dyn BenchmarkCase>>,
    /// Caveats every result of this benchmark carries (e.g. direct I/O
    /// unsupported, so those cases were not run).
    pub warnings: Vec<String>,
    /// Why the whole benchmark is not run on this machine (a peer
    /// program that is not installed): reported as skipped, not failed.
    pub skipped: Option<String>,
}

impl PreparedBenchmark {
    /// Every kind builds through here, so a new field with a default is one edit, not one per kind.
    pub fn new(cases: Vec<Box<dyn BenchmarkCase>>) -> Self {
        Self {
            setup: Vec::new(),
            context: serde_json::Value::Null,
            cases,
            warnings: Vec::new(),
            skipped: None,
        }
    }

    /// A peer program is missing here: the run reports skipped, not failed, and runs no case.
    pub fn skipped(reason: impl Into<String>) -> Self {
        Self {
            skipped: Some(reason.into()),
            ..Self::new(Vec::new())
        }
    }

    /// Measurements taken while preparing (a model's load), which every result carries.
    pub fn with_setup(mut self, setup: Vec<(&'static str, f64)>) -> Self {
        self.setup = setup;
        self
    }

    /// Facts about the system under test, copied into every result.
    pub fn with_context(mut self, context: serde_json::Value) -> Self {
        self.context = context;
        self
    }

    /// Caveats found while preparing (cases dropped, figures to read with care) for every result.
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }
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
#[derive(Debug, Clone)]
pub struct Conclusion {
    /// The case fails with this reason once its iterations are kept (an
    /// error budget exceeded over the whole run, say).
    pub failure: Option<String>,
    /// Copied into the result's `conclusion` field.
    pub findings: Findings,
    /// Copied into the result's warnings (e.g. a suspected leak).
    pub warnings: Vec<String>,
}

/// One prompt's greedy output from a served target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedOutput {
    /// The streamed content chunks, in order (one a token, as
    /// OpenAI-compatible servers stream greedy output).
    pub chunks: Vec<String>,
    /// The output tokens the server's `usage` counts, if it sent one.
    pub usage_tokens: Option<usize>,
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

/// The path a campaign model loads from (a folder or a GGUF file),
/// generating a synthetic model in `cache_dir` first if needed.
pub fn model_path(resolved: &ResolvedModel, cache_dir: &Path) -> Result<PathBuf, BenchmarkError> {
    match (&resolved.folder, &resolved.synthetic) {
        (Some(folder), _) => Ok(folder.clone()),
        (None, Some(config)) => Ok(crate::components::inference::materialize_synthetic_model(
            config, cache_dir,
        )?),
        (None, None) => Err(BenchmarkError::Params(format!(
            "model {:?} has no source",
            resolved.name
        ))),
    }
}

/// [`model_path`] of the model named `name` in the campaign.
pub(super) fn model_folder<'c>(
    ctx: &'c BenchContext,
    name: &str,
) -> Result<(&'c ResolvedModel, PathBuf), BenchmarkError> {
    let resolved = ctx
        .models
        .get(name)
        .ok_or_else(|| BenchmarkError::Params(format!("no model named {name:?}")))?;
    Ok((resolved, model_path(resolved, &ctx.model_cache_dir)?))
}

/// The speed reference several kinds share: copies `source` into `copy`
/// in `block`-sized chunks (the access pattern of the work it is compared
/// with) and returns how long that took.
pub(super) fn timed_chunked_memcpy(
    copy: &mut [u8],
    source: &[u8],
    block: usize,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    for (to, from) in copy.chunks_mut(block).zip(source.chunks(block)) {
        to.copy_from_slice(from);
    }
    std::hint::black_box(&copy);
    started.elapsed()
}

/// A private working folder inside `dir` (usually the run's scratch
/// folder), removed when the last case holding it is dropped.
pub(super) fn scratch_folder(
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
