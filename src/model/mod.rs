//! Plain data that every layer may read: the day report and its parts, the
//! iteration plan a result records, the machine and build a run was
//! measured on, the machine's calibration and scaling curves, and the case
//! parameters analysis reads back. Nothing here measures, judges or
//! formats; `runner` and `analysis` fill it in, `report` writes it.

mod calibration;
mod case_params;
mod environment;
mod findings;
mod parity;
mod peers;
mod plan;
mod report;
mod scaling;

pub use calibration::{Calibration, MatmulRate, ThreadRate};
pub use case_params::{CaseParams, InferenceCaseParams, InferencePhase, ScalingCaseParams};
pub use environment::{Environment, environment_differences, flatten_json, model_files};
pub use findings::{
    EnduranceFindings, Findings, KvFootprintFindings, LatencyDrift, MemoryGrowthFindings, RssTrend,
    StageShareFindings, TimeShareFindings,
};
pub use parity::ServedParity;
pub use peers::PeerComparison;
pub use plan::{IterationPlan, QUICK_FACTOR};
pub use report::*;
pub use scaling::{ScalingCurve, ScalingLevel};
