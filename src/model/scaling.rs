//! Throughput and p99 per level of a `scaling` benchmark, and its knee, as
//! a day report stores them. Computed by `analysis::scaling_curves`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScalingLevel {
    pub level: usize,
    pub throughput: f64,
    pub throughput_unit: String,
    pub p99_ms: Option<f64>,
    /// Whether that p99 rests on too few samples.
    #[serde(default)]
    pub p99_provisional: bool,
    /// Throughput ÷ throughput at the first level.
    pub throughput_vs_first: f64,
    /// p99 ÷ p99 at the first level (the latency degradation).
    pub p99_vs_first: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScalingCurve {
    pub benchmark: String,
    /// `concurrency` or `batch_size`.
    pub dimension: String,
    pub levels: Vec<ScalingLevel>,
    /// The first level within 5 % of the best throughput; `None` when only
    /// the last level gets there (throughput still rising).
    pub knee: Option<usize>,
    pub knee_rule: String,
}
