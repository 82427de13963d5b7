//! Judgements over measured results: targets now; bottlenecks, roofline and
//! regressions as they land.

mod scaling;
mod targets;

pub use scaling::{KNEE_MIN_GAIN, ScalingCurve, ScalingLevel, scaling_curves};

pub use targets::evaluate_targets;
