//! Judgements over measured results: targets now; bottlenecks, roofline and
//! regressions as they land.

pub mod attribution;
mod bottlenecks;
mod history;
mod regression;
mod remedies;
mod roofline;
mod scaling;
mod targets;

pub use scaling::{KNEE_MIN_GAIN, ScalingCurve, ScalingLevel, scaling_curves};

pub use bottlenecks::{
    AMDAHL_FORMULA, BaselineFigure, Bottleneck, BottleneckAnalysis, ComponentShare, Evidence,
    MissedTarget, ProfileEvidence, ROI_FORMULA, Ranking, RankingInputs, RemedyEstimate,
    SEVERITY_RULE, Severity, amdahl, rank_bottlenecks,
};
pub use history::{CHANGE_RULE, CHANGE_WINDOW, HistoryEntry, change_points};
pub use regression::{
    ChangeState, CompareSettings, Comparison, DEFAULT_THRESHOLD_PCT, MIN_RUNS, MetricChange,
    compare_reports,
};
pub use remedies::{Remedy, RemedyCatalog, RemedyError, Risk};
pub use roofline::{Roofline, RooflineInputs, RooflinePoint, roofline, roofline_inputs};
pub use targets::evaluate_targets;
