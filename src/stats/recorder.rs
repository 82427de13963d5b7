use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// How a metric's values are stored in its HDR histogram, which holds
/// integers: durations at nanosecond resolution, other values (rates, ratios,
/// sizes) in thousandths of their unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    /// Milliseconds, recorded as nanoseconds.
    DurationMs,
    /// Any non-negative quantity, recorded in thousandths.
    Quantity,
}

impl ValueKind {
    /// Histogram counts per unit of the metric.
    pub fn scale(self) -> f64 {
        match self {
            ValueKind::DurationMs => 1e6,
            ValueKind::Quantity => 1e3,
        }
    }
}

/// Records one metric: every value into an HDR histogram (3 significant
/// digits, the summary's source), and the first `max_raw_samples` values
/// verbatim so a report reader can recompute or plot them.
#[derive(Debug, Clone)]
pub struct MetricRecorder {
    kind: ValueKind,
    histogram: Histogram<u64>,
    raw: Vec<f64>,
    max_raw_samples: usize,
    recorded: u64,
    rejected: u64,
    moments: Moments,
}

/// Exact running mean, variance (Welford), minimum and maximum, so these do
/// not inherit the histogram's 3-digit quantisation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Moments {
    pub mean: f64,
    m2: f64,
    pub min: f64,
    pub max: f64,
}

impl Moments {
    fn push(&mut self, value: f64, count_after: u64) {
        let delta = value - self.mean;
        self.mean += delta / count_after as f64;
        self.m2 += delta * (value - self.mean);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Sample standard deviation (n − 1 in the denominator).
    pub fn stddev(&self, count: u64) -> f64 {
        if count < 2 {
            0.0
        } else {
            (self.m2 / (count - 1) as f64).sqrt()
        }
    }
}

impl MetricRecorder {
    pub fn new(kind: ValueKind, max_raw_samples: usize) -> Self {
        // 3 significant digits and auto-resize: no value is ever out of range.
        let mut histogram =
            Histogram::new(3).expect("3 significant digits is a valid HDR precision");
        histogram.auto(true);
        Self {
            kind,
            histogram,
            raw: Vec::new(),
            max_raw_samples,
            recorded: 0,
            rejected: 0,
            moments: Moments {
                mean: 0.0,
                m2: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
            },
        }
    }

    /// Records one value in the metric's unit. Negative or non-finite values
    /// cannot be stored in the histogram; they are counted as rejected.
    pub fn record(&mut self, value: f64) {
        let scaled = value * self.kind.scale();
        if !scaled.is_finite()
            || scaled < 0.0
            || self.histogram.record(scaled.round() as u64).is_err()
        {
            self.rejected += 1;
            return;
        }
        self.recorded += 1;
        self.moments.push(value, self.recorded);
        if self.raw.len() < self.max_raw_samples {
            self.raw.push(value);
        }
    }

    pub(super) fn moments(&self) -> Moments {
        self.moments
    }

    pub fn kind(&self) -> ValueKind {
        self.kind
    }

    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    /// The values kept verbatim, in recording order.
    pub fn raw_samples(&self) -> &[f64] {
        &self.raw
    }

    pub fn count(&self) -> u64 {
        self.recorded
    }

    /// Values that could not be recorded (negative, NaN or infinite).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    pub fn raw_samples_truncated(&self) -> bool {
        (self.raw.len() as u64) < self.recorded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_raw_samples_up_to_the_bound_and_counts_all() {
        let mut r = MetricRecorder::new(ValueKind::DurationMs, 3);
        for v in [1.0, 2.0, 3.0, 4.0, 5.0] {
            r.record(v);
        }
        assert_eq!(r.count(), 5);
        assert_eq!(r.raw_samples(), &[1.0, 2.0, 3.0]);
        assert!(r.raw_samples_truncated());
        assert_eq!(r.histogram().len(), 5);
    }

    #[test]
    fn rejects_values_a_histogram_cannot_hold() {
        let mut r = MetricRecorder::new(ValueKind::Quantity, 10);
        r.record(-1.0);
        r.record(f64::NAN);
        r.record(2.5);
        assert_eq!((r.count(), r.rejected()), (1, 2));
        // 2.5 units are stored as 2500 thousandths.
        assert!(r.histogram().equivalent(r.histogram().max(), 2500));
    }
}
