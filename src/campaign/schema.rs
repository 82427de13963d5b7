//! The TOML schema. Every table denies unknown fields, so a typo is an error
//! with a position instead of a setting that silently does nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::bounds::{Hz, Iterations, RawSamples, Seconds, Threads, ThresholdPct, Warmup};
use crate::components::inference::{DeviceSpec, MatmulKernels, Quantization, SyntheticLlamaConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignFile {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    /// Where reports go, relative to the current directory; `--out` overrides it.
    #[serde(default)]
    pub output_dir: Option<PathBuf>,
    /// Where finished nights are kept; `--store` overrides it.
    #[serde(default)]
    pub store: Option<StoreSpec>,
    #[serde(default)]
    pub settings: Option<Spanned<Settings>>,
    #[serde(default)]
    pub models: BTreeMap<String, Spanned<ModelSpec>>,
    #[serde(default)]
    pub days: Vec<Spanned<DaySpec>>,
}

/// `[store]`: the results store of this campaign's nights, for a team
/// whose machines share one. One of the two keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSpec {
    /// An SQLite file (relative to the current directory) or a
    /// `postgres://` URL.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// The environment variable that holds the URL, so that a password
    /// stays out of the campaign file.
    #[serde(default)]
    pub url_env: Option<Spanned<String>>,
}

impl CampaignFile {
    /// The `[settings]` table, or the defaults when it is absent.
    pub fn settings(&self) -> Settings {
        self.settings
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_default()
    }
}

/// Run-wide settings, recorded in every report.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Compute threads for candle and rayon. On a small shared machine more
    /// threads than idle cores make candle's spinning workers collapse, so
    /// the default is 1 and the value is always explicit in reports.
    #[serde(default = "default_threads")]
    pub threads: Threads,
    #[serde(default)]
    pub device: DeviceSpec,
    #[serde(default)]
    pub dtype: DTypeSpec,
    /// Seed of every generated input (prompts, synthetic data).
    #[serde(default)]
    pub seed: u64,
    /// How many raw samples per metric are kept in a report.
    #[serde(default = "default_max_raw_samples")]
    pub max_raw_samples: RawSamples,
}

impl Settings {
    /// These settings as a command line overrides them (`--threads`,
    /// `--device`): what a run resolves once and every step of it reads.
    pub fn overridden(mut self, threads: Option<Threads>, device: Option<DeviceSpec>) -> Self {
        self.threads = threads.unwrap_or(self.threads);
        self.device = device.unwrap_or(self.device);
        self
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            threads: default_threads(),
            device: DeviceSpec::default(),
            dtype: DTypeSpec::default(),
            seed: 0,
            max_raw_samples: default_max_raw_samples(),
        }
    }
}

fn default_threads() -> Threads {
    Threads::new_const(1)
}

fn default_max_raw_samples() -> RawSamples {
    RawSamples::new_const(10_000)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DTypeSpec {
    #[default]
    F32,
    F16,
    Bf16,
}

impl DTypeSpec {
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        }
    }

    pub fn to_candle(self) -> candle_core::DType {
        match self {
            Self::F32 => candle_core::DType::F32,
            Self::F16 => candle_core::DType::F16,
            Self::Bf16 => candle_core::DType::BF16,
        }
    }
}

/// A model: either a local folder in Hugging Face layout, or a synthetic
/// Llama generated from a seed. Exactly one of the two is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Folder with config.json and *.safetensors, or a .gguf file,
    /// relative to the campaign file.
    pub path: Option<Spanned<PathBuf>>,
    /// Quantize a folder's weights in memory when loading (`q8_0`, `q4_0`, …).
    pub quantize: Option<Quantization>,
    /// Whose kernels compute a quantized model's matrix products:
    /// `native` (ours, the default) or `candle`.
    pub matmul: Option<MatmulKernels>,
    /// A planted loss of quality: the percentage of positions (0 to 100)
    /// whose most likely next token is replaced by another, so a remedy's
    /// quality verdict can be checked against a known loss.
    pub planted_token_flip_pct: Option<f64>,
    pub synthetic: Option<SyntheticLlamaConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaySpec {
    pub number: Spanned<u32>,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub benchmarks: Vec<Spanned<BenchmarkSpec>>,
    /// Steps run after the day's benchmarks, in order.
    #[serde(default)]
    pub after: Vec<DayStep>,
    /// Days whose reports `analyze` reads, e.g. "1-4" (default: 1 to this day).
    #[serde(default)]
    pub analyze_days: Option<String>,
}

/// Work a day does besides benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DayStep {
    /// Measure this machine's limits (`campaign calibrate`).
    Calibrate,
    /// Rank bottlenecks from profiles and reports (`campaign analyze`).
    Analyze,
    /// Measure the planned remedies that carry a toggle (`campaign experiment`).
    Experiments,
    /// Write the roadmap from the analysis (`campaign roadmap`).
    Roadmap,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkSpec {
    pub name: Spanned<String>,
    /// Registry key of the benchmark kind.
    pub kind: Spanned<String>,
    #[serde(default)]
    pub description: String,
    /// Untimed iterations before measuring.
    pub warmup: Option<Warmup>,
    /// Timed iterations per case (the maximum when a time budget is set).
    pub iterations: Option<Iterations>,
    /// Stop timing a case after this many seconds, once one iteration is done.
    pub time_budget_s: Option<Seconds>,
    /// Fail the benchmark when all its cases together take longer.
    pub timeout_s: Option<Seconds>,
    #[serde(default)]
    pub targets: Vec<Spanned<String>>,
    /// Sample a CPU profile of this benchmark (also `--profile`).
    #[serde(default)]
    pub profile: bool,
    /// Sampling frequency of the profile.
    pub profile_hz: Option<Hz>,
    /// Noise threshold of the regression verdict for this benchmark, in %
    /// (default 5, or --threshold-pct).
    pub regression_threshold_pct: Option<ThresholdPct>,
    /// Kind-specific parameters, checked by the kind.
    #[serde(default)]
    pub params: Option<Spanned<toml::Table>>,
}

impl BenchmarkSpec {
    pub fn params(&self) -> toml::Table {
        self.params
            .as_ref()
            .map(|p| p.get_ref().clone())
            .unwrap_or_default()
    }
}
