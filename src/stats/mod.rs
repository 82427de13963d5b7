//! Statistics over recorded samples: summaries, percentiles, confidence
//! intervals and outlier flags. Kept apart from `report` (which only formats)
//! and from `runner` (which only records).

mod compare;
mod recorder;
mod summary;
mod trend;

pub use compare::{benjamini_hochberg, bootstrap_median_ratio_ci, mann_whitney_p, median};
pub use recorder::{MetricRecorder, ValueKind};
pub use summary::{
    MedianInterval, OutlierCounts, PERCENTILES, Percentile, PercentileSource, ProvisionalRule,
    Summary, elementwise_median, min_samples_for_percentile, summarize,
};
pub use trend::{LinearTrend, linear_trend};
