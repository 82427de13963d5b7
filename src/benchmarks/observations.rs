use std::time::Duration;

use super::MetricDef;

/// Scalar values and per-step vectors, by metric.
pub type ObservedParts = (Vec<(&'static str, f64)>, Vec<(&'static str, Vec<f64>)>);

/// What one iteration observed: scalar values per metric and, optionally,
/// per-step vectors (e.g. the gap before each generated token).
#[derive(Debug, Default)]
pub struct Observations {
    values: Vec<(&'static str, f64)>,
    series: Vec<(&'static str, Vec<f64>)>,
}

impl Observations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn duration(&mut self, metric: &MetricDef, elapsed: Duration) {
        self.values.push((metric.name, elapsed.as_secs_f64() * 1e3));
    }

    pub fn value(&mut self, metric: &MetricDef, value: f64) {
        self.values.push((metric.name, value));
    }

    /// Only for the metrics a campaign names (a `command`'s mapped
    /// outputs), which no kind can declare as a constant: every other
    /// metric is recorded by its [`MetricDef`], so a misspelt one does not
    /// compile.
    pub fn mapped_value(&mut self, metric: &'static str, value: f64) {
        self.values.push((metric, value));
    }

    /// A vector of values indexed by step; every element is also recorded
    /// as a sample of `metric`.
    pub fn series(&mut self, metric: &MetricDef, values: Vec<f64>) {
        self.series.push((metric.name, values));
    }

    /// The scalar values and the per-step vectors, for the recorder.
    pub fn into_parts(self) -> ObservedParts {
        (self.values, self.series)
    }
}
