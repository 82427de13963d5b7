use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, Normal};

use super::MetricRecorder;

/// A percentile reported for every metric.
#[derive(Debug, Clone, Copy)]
pub struct Percentile {
    pub label: &'static str,
    pub quantile: f64,
}

pub const PERCENTILES: [Percentile; 5] = [
    Percentile {
        label: "p50",
        quantile: 0.50,
    },
    Percentile {
        label: "p90",
        quantile: 0.90,
    },
    Percentile {
        label: "p95",
        quantile: 0.95,
    },
    Percentile {
        label: "p99",
        quantile: 0.99,
    },
    Percentile {
        label: "p99.9",
        quantile: 0.999,
    },
];

/// Confidence used to decide whether a tail percentile has enough samples.
const PROVISIONAL_CONFIDENCE: f64 = 0.99;

/// Confidence of the median's interval.
const MEDIAN_CI_CONFIDENCE: f64 = 0.95;

/// Tukey's fence multipliers: mild outliers beyond 1.5 IQR, severe beyond 3.
const TUKEY_MILD: f64 = 1.5;
const TUKEY_SEVERE: f64 = 3.0;

/// The rule that marks a percentile as provisional, written into reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProvisionalRule {
    pub confidence: f64,
    pub z: f64,
    pub rule: String,
}

impl ProvisionalRule {
    pub fn current() -> Self {
        Self {
            confidence: PROVISIONAL_CONFIDENCE,
            z: provisional_z(),
            rule: "percentile q is provisional when n < ceil(z^2 * q / (1 - q)): the normal \
                   approximation of the binomial count of samples above the percentile, with a \
                   margin of (1 - q) at the stated two-sided confidence"
                .to_string(),
        }
    }
}

fn provisional_z() -> f64 {
    // The standard normal always exists; its quantile at 0.995 is 2.5758.
    Normal::standard().inverse_cdf(0.5 + PROVISIONAL_CONFIDENCE / 2.0)
}

/// Fewest samples with which percentile `quantile` is not provisional.
pub fn min_samples_for_percentile(quantile: f64) -> u64 {
    let z = provisional_z();
    (z * z * quantile / (1.0 - quantile)).ceil() as u64
}

/// Nearest-rank percentile of `values`: the smallest value with at least
/// q·n values at or below it (the maximum below 1/(1 − q) values).
pub fn nearest_rank(values: &[f64], quantile: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Distribution-free confidence interval of the median from order statistics.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MedianInterval {
    pub lower: f64,
    pub upper: f64,
    /// Exact binomial coverage of [x_(lower_rank), x_(upper_rank)], at least 95 %.
    pub confidence: f64,
    pub lower_rank: u64,
    pub upper_rank: u64,
}

/// Tukey-fence outliers. They are flagged, never removed from any figure.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OutlierCounts {
    pub lower_fence: f64,
    pub upper_fence: f64,
    pub low_severe: u64,
    pub low_mild: u64,
    pub high_mild: u64,
    pub high_severe: u64,
    /// Positions, among the raw samples kept in the report, of the values
    /// outside the mild fences.
    pub flagged_raw_indices: Vec<usize>,
}

impl OutlierCounts {
    pub fn total(&self) -> u64 {
        self.low_severe + self.low_mild + self.high_mild + self.high_severe
    }
}

/// Everything the report says about one metric. count, mean, stddev, min and
/// max are exact; percentiles are nearest-rank order statistics, exact while
/// the report keeps every raw sample (see `percentile_source`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub stddev: f64,
    /// Coefficient of variation, stddev / mean; absent when the mean is 0.
    pub cv: Option<f64>,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    #[serde(rename = "p99_9")]
    pub p999: f64,
    pub max: f64,
    pub percentile_source: PercentileSource,
    /// Absent with fewer than 6 samples, where no interval reaches 95 %.
    pub median_ci95: Option<MedianInterval>,
    pub outliers: OutlierCounts,
    /// Labels of the percentiles estimated from too few samples.
    pub provisional: Vec<String>,
}

impl Summary {
    /// Looks a statistic up by the name used in targets.
    pub fn stat(&self, name: &str) -> Option<f64> {
        Some(match name {
            "mean" => self.mean,
            "stddev" => self.stddev,
            "min" => self.min,
            "max" => self.max,
            "p50" | "median" => self.p50,
            "p90" => self.p90,
            "p95" => self.p95,
            "p99" => self.p99,
            "p99.9" | "p999" => self.p999,
            _ => return None,
        })
    }

    pub const STAT_NAMES: [&'static str; 10] = [
        "mean", "stddev", "min", "max", "p50", "median", "p90", "p95", "p99", "p99.9",
    ];
}

/// Where order statistics come from: the raw samples when the report keeps
/// all of them (exact, recomputable from the report), else the histogram.
enum OrderStatistics<'a> {
    Exact(Vec<f64>),
    Histogram(&'a MetricRecorder),
}

impl<'a> OrderStatistics<'a> {
    fn of(recorder: &'a MetricRecorder) -> Self {
        if recorder.raw_samples_truncated() {
            Self::Histogram(recorder)
        } else {
            let mut sorted = recorder.raw_samples().to_vec();
            sorted.sort_by(f64::total_cmp);
            Self::Exact(sorted)
        }
    }

    fn source(&self) -> PercentileSource {
        match self {
            Self::Exact(_) => PercentileSource::RawSamples,
            Self::Histogram(_) => PercentileSource::HdrHistogram,
        }
    }

    fn count(&self) -> u64 {
        match self {
            Self::Exact(sorted) => sorted.len() as u64,
            Self::Histogram(r) => r.count(),
        }
    }

    /// The k-th smallest value (1-based). From the histogram it is the
    /// highest value equivalent to the bucket holding that rank.
    fn rank(&self, rank: u64) -> f64 {
        match self {
            Self::Exact(sorted) => sorted[(rank.clamp(1, sorted.len() as u64) - 1) as usize],
            Self::Histogram(recorder) => {
                let histogram = recorder.histogram();
                let mut seen = 0;
                let mut value = histogram.max();
                for bucket in histogram.iter_recorded() {
                    seen += bucket.count_at_value();
                    if seen >= rank {
                        value = histogram.highest_equivalent(bucket.value_iterated_to());
                        break;
                    }
                }
                value as f64 / recorder.kind().scale()
            }
        }
    }

    /// Nearest-rank percentile: the smallest value with at least q·n values at or below it.
    fn percentile(&self, quantile: f64) -> f64 {
        let n = self.count();
        self.rank(((quantile * n as f64).ceil() as u64).clamp(1, n))
    }

    /// How many values fall in each Tukey region.
    fn count_where(&self, mut region: impl FnMut(f64) -> bool) -> u64 {
        match self {
            Self::Exact(sorted) => sorted.iter().filter(|v| region(**v)).count() as u64,
            Self::Histogram(recorder) => {
                let histogram = recorder.histogram();
                histogram
                    .iter_recorded()
                    .filter(|b| {
                        region(
                            histogram.highest_equivalent(b.value_iterated_to()) as f64
                                / recorder.kind().scale(),
                        )
                    })
                    .map(|b| b.count_at_value())
                    .sum()
            }
        }
    }
}

/// Where a summary's percentiles were read from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PercentileSource {
    /// Exact order statistics of the raw samples kept in the report.
    RawSamples,
    /// The HDR histogram (3 significant digits): more samples were recorded
    /// than the report keeps.
    HdrHistogram,
}

fn median_interval(order: &OrderStatistics<'_>) -> Option<MedianInterval> {
    let n = order.count();
    let binomial = Binomial::new(0.5, n).ok()?;
    let tail = (1.0 - MEDIAN_CI_CONFIDENCE) / 2.0;
    // Largest k with P(X ≤ k − 1) ≤ tail: then [x_(k), x_(n−k+1)] covers the
    // median with probability 1 − 2·P(X ≤ k − 1) ≥ 95 %.
    let k = (1..=n / 2)
        .take_while(|k| binomial.cdf(k - 1) <= tail)
        .last()?;
    Some(MedianInterval {
        lower: order.rank(k),
        upper: order.rank(n - k + 1),
        confidence: 1.0 - 2.0 * binomial.cdf(k - 1),
        lower_rank: k,
        upper_rank: n - k + 1,
    })
}

fn outliers(order: &OrderStatistics<'_>, raw: &[f64]) -> OutlierCounts {
    let q1 = order.percentile(0.25);
    let q3 = order.percentile(0.75);
    let iqr = q3 - q1;
    let (low_severe, low_mild) = (q1 - TUKEY_SEVERE * iqr, q1 - TUKEY_MILD * iqr);
    let (high_mild, high_severe) = (q3 + TUKEY_MILD * iqr, q3 + TUKEY_SEVERE * iqr);
    OutlierCounts {
        lower_fence: low_mild,
        upper_fence: high_mild,
        low_severe: order.count_where(|v| v < low_severe),
        low_mild: order.count_where(|v| (low_severe..low_mild).contains(&v)),
        high_mild: order.count_where(|v| v > high_mild && v <= high_severe),
        high_severe: order.count_where(|v| v > high_severe),
        flagged_raw_indices: raw
            .iter()
            .enumerate()
            .filter(|(_, v)| **v < low_mild || **v > high_mild)
            .map(|(i, _)| i)
            .collect(),
    }
}

/// Summarises a recorder; `None` when nothing was recorded.
pub fn summarize(recorder: &MetricRecorder) -> Option<Summary> {
    let n = recorder.count();
    if n == 0 {
        return None;
    }
    let moments = recorder.moments();
    let stddev = moments.stddev(n);
    let order = OrderStatistics::of(recorder);
    // A bucket's highest equivalent value can exceed the exact maximum (or
    // undercut the minimum); percentiles stay within the exact range.
    let at = |q: f64| order.percentile(q).clamp(moments.min, moments.max);
    Some(Summary {
        count: n,
        mean: moments.mean,
        stddev,
        cv: (moments.mean != 0.0).then(|| stddev / moments.mean.abs()),
        min: moments.min,
        p50: at(0.50),
        p90: at(0.90),
        p95: at(0.95),
        p99: at(0.99),
        p999: at(0.999),
        max: moments.max,
        percentile_source: order.source(),
        median_ci95: median_interval(&order),
        outliers: outliers(&order, recorder.raw_samples()),
        provisional: PERCENTILES
            .iter()
            .filter(|p| n < min_samples_for_percentile(p.quantile))
            .map(|p| p.label.to_string())
            .collect(),
    })
}

/// The median of each position across runs of possibly different lengths
/// (e.g. the gap before the k-th generated token over all iterations).
pub fn elementwise_median(runs: &[Vec<f64>]) -> Vec<f64> {
    let longest = runs.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .map(|step| {
            let mut column: Vec<f64> = runs.iter().filter_map(|r| r.get(step).copied()).collect();
            column.sort_by(f64::total_cmp);
            let mid = column.len() / 2;
            if column.len().is_multiple_of(2) {
                (column[mid - 1] + column[mid]) / 2.0
            } else {
                column[mid]
            }
        })
        .collect()
}

/// The empirical distribution function at each sample: (value, fraction
/// of samples ≤ value), in ascending order; NaN samples are left out.
pub fn empirical_cdf(samples: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    sorted
        .iter()
        .enumerate()
        .map(|(i, v)| (*v, (i + 1) as f64 / n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::ValueKind;

    #[test]
    fn the_empirical_cdf_steps_by_one_over_n() {
        assert_eq!(
            empirical_cdf(&[3.0, 1.0, f64::NAN, 2.0, 2.0]),
            vec![(1.0, 0.25), (2.0, 0.5), (2.0, 0.75), (3.0, 1.0)]
        );
        assert!(empirical_cdf(&[]).is_empty());
    }

    fn recorder(values: &[f64]) -> MetricRecorder {
        let mut r = MetricRecorder::new(ValueKind::Quantity, 10_000);
        values.iter().for_each(|v| r.record(*v));
        r
    }

    #[test]
    fn nearest_rank_percentiles_of_one_to_hundred() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarize(&recorder(&values)).unwrap();
        assert_eq!(s.percentile_source, PercentileSource::RawSamples);
        assert_eq!(
            (s.min, s.p50, s.p90, s.p95, s.p99, s.max),
            (1.0, 50.0, 90.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(s.p999, 100.0);
        assert!((s.mean - 50.5).abs() < 1e-12);
        // Sample standard deviation of 1..=100 is sqrt(841.666…).
        assert!((s.stddev - 29.011_491_975_882_016).abs() < 1e-9);
    }

    #[test]
    fn median_interval_matches_binomial_tables() {
        // For n = 100 the 95 % order-statistic interval is [x_(40), x_(61)].
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let ci = summarize(&recorder(&values)).unwrap().median_ci95.unwrap();
        assert_eq!((ci.lower_rank, ci.upper_rank), (40, 61));
        assert_eq!((ci.lower, ci.upper), (40.0, 61.0));
        assert!(
            ci.confidence >= 0.95 && ci.confidence < 0.97,
            "{}",
            ci.confidence
        );
    }

    #[test]
    fn no_median_interval_below_six_samples() {
        let five = summarize(&recorder(&[1.0, 2.0, 3.0, 4.0, 5.0])).unwrap();
        assert!(five.median_ci95.is_none());
        let six = summarize(&recorder(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])).unwrap();
        let ci = six.median_ci95.unwrap();
        assert_eq!((ci.lower_rank, ci.upper_rank), (1, 6));
    }

    #[test]
    fn tukey_flags_but_keeps_outliers() {
        // 1..=20 then 100 and 35 (n = 22): nearest-rank Q1 is the 6th value
        // (6) and Q3 the 17th (17), IQR = 11, so the mild fences are -10.5
        // and 33.5 and the severe ones -27 and 50.
        let mut values: Vec<f64> = (1..=20).map(f64::from).collect();
        values.extend([100.0, 35.0]);
        let s = summarize(&recorder(&values)).unwrap();
        assert_eq!(
            (s.outliers.lower_fence, s.outliers.upper_fence),
            (-10.5, 33.5)
        );
        assert_eq!((s.outliers.high_mild, s.outliers.high_severe), (1, 1));
        assert_eq!(s.outliers.low_mild + s.outliers.low_severe, 0);
        assert_eq!(s.outliers.flagged_raw_indices, vec![20, 21]);
        assert_eq!(
            (s.count, s.max),
            (22, 100.0),
            "outliers stay in every figure"
        );
    }

    #[test]
    fn provisional_thresholds_follow_the_stated_rule() {
        // z = 2.5758 at 99 % confidence: p99 needs ceil(6.6349 * 99) samples.
        assert_eq!(min_samples_for_percentile(0.99), 657);
        assert_eq!(min_samples_for_percentile(0.5), 7);
        let s = summarize(&recorder(&[1.0; 100])).unwrap();
        assert_eq!(s.provisional, vec!["p95", "p99", "p99.9"]);
    }

    #[test]
    fn elementwise_median_handles_uneven_runs() {
        let runs = vec![vec![1.0, 10.0, 7.0], vec![3.0, 20.0], vec![2.0, 30.0]];
        assert_eq!(elementwise_median(&runs), vec![2.0, 20.0, 7.0]);
        assert!(elementwise_median(&[]).is_empty());
    }

    #[test]
    fn past_the_raw_sample_bound_percentiles_come_from_the_histogram() {
        let mut r = MetricRecorder::new(ValueKind::DurationMs, 10);
        (1..=1000).for_each(|v| r.record(f64::from(v) * 0.123));
        let s = summarize(&r).unwrap();
        assert_eq!(s.percentile_source, PercentileSource::HdrHistogram);
        assert!((s.mean - 500.5 * 0.123).abs() < 1e-9, "mean stays exact");
        assert_eq!((s.min, s.max), (0.123, 123.0));
        // Three significant digits: within 0.1 % of the exact order statistic.
        assert!(
            (s.p99 - 990.0 * 0.123).abs() / (990.0 * 0.123) < 1e-3,
            "{}",
            s.p99
        );
        assert!(
            (s.p50 - 500.0 * 0.123).abs() / (500.0 * 0.123) < 1e-3,
            "{}",
            s.p50
        );
        // Binomial tables give ranks 469 and 532 for n = 1000.
        let ci = s.median_ci95.unwrap();
        assert_eq!((ci.lower_rank, ci.upper_rank), (469, 532));
    }
}
