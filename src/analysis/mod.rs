//! Judgements over measured results: targets now; bottlenecks, roofline and
//! regressions as they land.

mod targets;

pub use targets::evaluate_targets;
