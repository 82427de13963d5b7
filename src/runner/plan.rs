//! How many iterations a case runs, and for how long at most.

use serde::{Deserialize, Serialize};

use crate::campaign::BenchmarkSpec;

/// `--quick` multiplies iterations, warm-up and time budgets by this factor
/// (rounding up, keeping at least one timed iteration) and leaves sweep
/// points and timeouts as written.
pub const QUICK_FACTOR: f64 = 0.1;

const DEFAULT_WARMUP: u32 = 1;
const DEFAULT_ITERATIONS: u32 = 10;
const DEFAULT_TIMEOUT_S: f64 = 600.0;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IterationPlan {
    pub warmup: u32,
    pub iterations: u32,
    pub time_budget_s: Option<f64>,
    /// For the whole benchmark: preparation and all its cases.
    pub timeout_s: f64,
    /// 1.0 for a full run, [`QUICK_FACTOR`] with `--quick`.
    pub scale: f64,
}

impl IterationPlan {
    pub fn for_spec(spec: &BenchmarkSpec, quick: bool) -> Self {
        let scale = if quick { QUICK_FACTOR } else { 1.0 };
        let scaled = |n: u32| (f64::from(n) * scale).ceil() as u32;
        Self {
            warmup: scaled(spec.warmup.map_or(DEFAULT_WARMUP, |w| w.get() as u32)),
            iterations: scaled(
                spec.iterations
                    .map_or(DEFAULT_ITERATIONS, |i| i.get() as u32),
            )
            .max(1),
            time_budget_s: spec.time_budget_s.map(|s| s.get() * scale),
            timeout_s: spec.timeout_s.map_or(DEFAULT_TIMEOUT_S, |t| t.get()),
            scale,
        }
    }
}
