//! What a kind measures: the metrics it declares, and what one iteration
//! observed of them.

use std::time::Duration;

use crate::stats::ValueKind;

/// One metric a kind produces. Kinds declare each as a constant named
/// after the metric and record it by reference, so that a misspelt name
/// does not compile; a name that kinds define differently (`e2e_ms`,
/// `ops_per_s`) has one constant per definition, prefixed with its kind.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub unit: &'static str,
    pub kind: ValueKind,
    pub higher_is_better: bool,
    pub description: &'static str,
}

impl MetricDef {
    /// A duration in milliseconds (recorded at nanosecond resolution); lower is better.
    pub const fn duration_ms(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            unit: "ms",
            kind: ValueKind::DurationMs,
            higher_is_better: false,
            description,
        }
    }

    /// Any other quantity (rates, ratios, counts, sizes).
    pub const fn quantity(
        name: &'static str,
        unit: &'static str,
        higher_is_better: bool,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            unit,
            kind: ValueKind::Quantity,
            higher_is_better,
            description,
        }
    }
}

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
