//! Statistics over recorded samples: summaries, percentiles, confidence
//! intervals and outlier flags. Kept apart from `report` (which only formats)
//! and from `runner` (which only records).

mod bounds;
mod capacity;
mod proportion;
mod rank;
mod recorder;
mod summary;
mod trend;

pub use bounds::{MeanBounds, one_sided_mean_bounds};
pub use capacity::{
    BrokenSlos, CapacityPlan, CapacityProbes, CapacityReport, CapacityResult, CapacitySearch,
    Judgement, MAX_SLOS, Probe, ProbeDesign, ProbeVerdict, RequestSlo, Saturation, SearchSettings,
    TailShare, autocorrelation_time, search_capacity,
};
pub use proportion::{kish_effective_n, samples_for_half_width, two_sided_z, wilson_interval};
pub use rank::{
    CONFIDENCE, RankDistribution, ShiftTest, benjamini_hochberg, median, paired_shift,
    paired_shift_at, two_sample_shift,
};
pub use recorder::{MetricRecorder, ValueKind};
pub use summary::{
    MedianInterval, OutlierCounts, PERCENTILES, Percentile, PercentileSource, ProvisionalRule,
    Summary, elementwise_median, empirical_cdf, min_samples_for_percentile, nearest_rank,
    summarize,
};
pub use trend::{Growth, LinearTrend, WindowDrift, linear_trend, window_drift};
