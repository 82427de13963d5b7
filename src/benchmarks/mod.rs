//! Benchmark kinds. Each binds a component to metrics: it prepares the
//! component, runs one iteration at a time when the runner asks, and reports
//! what it observed. The runner owns warm-up, iteration counts, timeouts and
//! cancellation; `stats` summarises; `report` formats.
//!
//! `contract` is what every kind implements and `registry` names them.
//! The kinds of one family sit in its folder (`inference`, `serving`,
//! `kvcache`, `storage`, `compression`); a kind of no family, and the files
//! several families share (`model`, `workload`, `request_timing`), sit at
//! the top.

mod agents;
mod command;
mod compression;
mod configured;
mod contract;
mod inference;
mod kvcache;
mod metric_names;
mod model;
mod observations;
mod params;
mod planted;
mod registry;
mod request_timing;
mod serving;
mod storage;
mod workflow;
mod workload;

pub use configured::ConfiguredBenchmark;
pub use contract::{
    BenchContext, BenchmarkCase, BenchmarkError, BenchmarkKind, Conclusion, Headline, Kind,
    MetricCatalog, PreparedBenchmark, RooflinePhase, ServedOutput, SweepAxis, model_path,
};
pub use model::{MAX_PROMPT_FILE_BYTES, open_model};
pub use observations::{MetricDef, Observations, ObservedParts};
pub use registry::{Registry, find_kind, kind_names, planned_comparisons, registry};
pub use serving::{
    PromptQuality, QUALITY_PROMPT_TOKENS, QUALITY_PROMPTS, QUALITY_SERVED_PROMPTS, QUALITY_TOKENS,
    ServedPromptQuality, compare_outputs, compare_served, quality_prompts,
};

pub use crate::machine::MemoryNeed;

pub use crate::campaign::{Models, ParamProblem};

// What the kinds share besides the contract, for `benchmarks` only.
use contract::{model_folder, scratch_folder, timed_chunked_memcpy};
