//! How many iterations a case runs, and for how long at most: the plan a
//! report records next to each result. Built by `runner::iteration_plan`.

use serde::{Deserialize, Serialize};

/// `--quick` multiplies iterations, warm-up and time budgets by this factor
/// (rounding up, keeping at least one timed iteration) and leaves sweep
/// points and timeouts as written.
pub const QUICK_FACTOR: f64 = 0.1;

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
