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

pub use scaling::{KNEE_TOLERANCE, ScalingCurve, ScalingLevel, scaling_curves};

pub use bottlenecks::{
    AMDAHL_FORMULA, BaselineFigure, Bottleneck, BottleneckAnalysis, ComponentShare, Evidence,
    MissedTarget, ProfileEvidence, ROI_FORMULA, Ranking, RankingInputs, RemedyEstimate,
    SEVERITY_RULE, Severity, amdahl, rank_bottlenecks,
};
pub use history::{
    CHANGE_RULE, CHANGE_WINDOW, HistoryEntry, PERSISTENCE_MIN, PERSISTENCE_WINDOW, change_points,
    label_persistence,
};
pub use regression::{
    AaControl, CONTROL_RULE, ChangeState, CompareSettings, Comparison, ControlSplit,
    DEFAULT_THRESHOLD_PCT, FDR, GateDesign, MAX_RUNS, MDE_RULE, MIN_RUNS, MetricChange,
    P_THRESHOLD, PairedSeries, Pairing, Split, compare_paired, compare_reports, comparisons_in,
    confirm_with_rerun, regressed_benchmarks, runs_for_verdicts,
};
pub use remedies::{Remedy, RemedyCatalog, RemedyError, Risk};
pub use roofline::{Roofline, RooflineInputs, RooflinePoint, roofline, roofline_inputs};
pub use targets::evaluate_targets;
