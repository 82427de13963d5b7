//! How many iterations a case runs, and for how long at most.

use crate::campaign::Benchmark;
use crate::model::{IterationPlan, QUICK_FACTOR};

const DEFAULT_WARMUP: u32 = 1;
const DEFAULT_ITERATIONS: u32 = 10;
const DEFAULT_TIMEOUT_S: f64 = 600.0;

/// The plan a benchmark spec asks for, scaled down by `--quick`.
pub fn iteration_plan(spec: &Benchmark, quick: bool) -> IterationPlan {
    let scale = if quick { QUICK_FACTOR } else { 1.0 };
    let scaled = |n: u32| (f64::from(n) * scale).ceil() as u32;
    IterationPlan {
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
