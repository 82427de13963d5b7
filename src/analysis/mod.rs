//! What runs after measuring, reading day reports and profiles: regression
//! verdicts and their design, bottleneck ranking and attribution, roofline,
//! scaling and sweep curves (drawn from the kinds' typed capabilities),
//! remedies and the history of nights. It never measures
//! and never formats.

pub mod attribution;
mod bisect;
mod bottlenecks;
mod change_points;
mod dashboard;
mod experiments;
mod history;
mod measured;
mod parity;
mod peers;
mod plan;
mod quality;
mod regression;
mod remedies;
mod roofline;
mod scaling;
mod sweeps;

pub use dashboard::{
    Alert, ChangeKind, ChartPoint, Dashboard, DashboardNight, DayBoard, MachineSeries, NightPage,
    NightSeries, NightValue, SeriesBoard, SeriesChange, build_dashboard,
};
pub use parity::served_parity;
pub use peers::{PEER_RATIO_RULE, peer_comparisons};
pub use quality::{
    DEFAULT_QUALITY_MARGINS, PromptQuality, QUALITY_CONFIDENCE, QUALITY_RULE, QualityMargins,
    QualityState, QualityVerdict, SERVED_QUALITY_RULE, ServedQuality, judge_quality,
    judge_served_quality, worst_quality,
};
pub use scaling::{KNEE_TOLERANCE, scaling_curves};
pub use sweeps::{DayCurves, LatencyCdf, SweepCurve, day_curves, sweep_curves};

pub use bisect::{
    BisectBuilds, BisectOutcome, BisectReport, BisectSearch, BisectSettings, BisectStep,
    CommitVerdict, FIRST_LOOK_PAIRS, FollowedSeries, FunctionGrowth, GROWTH_FORMULA,
    MAX_STEP_PAIRS, ProfileDifference, STEP_CONFIDENCE, STEP_PAIRS_RULE, STEP_RULE, StepDesign,
    StepJudgement, StepRole, bisect, profile_difference, slowdown_logs,
};
pub use bottlenecks::{
    AMDAHL_FORMULA, Bottleneck, BottleneckAnalysis, ComponentShare, Evidence, HeadlineFigure,
    MissedTarget, PRECISION_PP, PRECISION_RULE, ProfileEvidence, ROI_FORMULA, Ranking,
    RankingInputs, SEVERITY_RULE, SHARE_CONFIDENCE, SHARE_RULE, SampleShortfall, Severity,
    ShareEstimate, amdahl, rank_bottlenecks,
};
pub use change_points::{
    CHANGE_ALPHA, CHANGE_POINT_RULE, CONFIRM_NIGHTS, ChangePoint, Creep, MIN_SEGMENT_NIGHTS,
    SeriesChanges, TailShift, detect_changes,
};
pub use experiments::{
    CaseEffect, DayBenchmark, Experiment, ExperimentPair, ExperimentVerdict, ExperimentsFile,
    MeasuredRemedy, Measurement, PROFILED_FORMULA, ProfiledEffect, SPEEDUP_FORMULA, TIME_FORMULA,
    TIME_SERIES, apply_measurements, by_day, measure, on_profiled_time,
};
pub use history::{
    ChangeContext, HistoryEntry, HistoryNight, PERSISTENCE_MIN, PERSISTENCE_WINDOW, SeriesHistory,
    benchmark_of_series, label_persistence, series_histories,
};
pub use plan::{
    COMBINED_FORMULA, CombinedGain, PlanDecision, RemedyEstimate, WEEK1_ROI_FRACTION, assign_weeks,
    plan_decision,
};
pub use regression::{
    AaControl, COMMON_SHIFT_RULE, CONTROL_P, CONTROL_RULE, ChangeState, CompareSettings,
    Comparison, ControlSplit, DEFAULT_THRESHOLD_PCT, FDR, GateDesign, MAX_HISTORY_NIGHTS, MAX_RUNS,
    MDE_RULE, MIN_COMMON_CASES, MIN_NIGHT_DIFFERENCES, MIN_RUNS, MachineShift, MachineShiftState,
    MetricChange, NIGHT_NOISE_RULE, NightNoise, NightOutcome, NightPlan, NightRecord, NightRequest,
    NightSd, P_THRESHOLD, PairedSeries, Pairing, PlanRefusal, SeriesNight, SeriesNoise, Split,
    compare_paired, compare_reports, compare_rerun, comparisons_in, confirm_with_rerun,
    is_time_like, judge_night, night_control, paired_series, plan_night, regressed_benchmarks,
    runs_for_verdicts, series_key,
};
pub use remedies::{Remedy, RemedyCatalog, RemedyError, ResolvedCatalog, Risk};
pub use roofline::{Roofline, RooflineInputs, RooflinePoint, roofline, roofline_inputs};
