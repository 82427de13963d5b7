//! What an experiment measured about a remedy, in the terms the remedy
//! plan and the roadmap use (kept apart from the experiment's statistics,
//! which read the plan).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What an experiment says about its remedy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentVerdict {
    /// Faster beyond the gate's threshold, significantly.
    Gain,
    /// Slower beyond the gate's threshold, significantly.
    Loss,
    /// The 95 % interval includes 1: no gain was shown.
    NoGainShown,
    /// Significant, but the interval is not wholly beyond the threshold.
    BelowThreshold,
    /// The interval excludes 1 but p is not below the gate's level.
    Inconclusive,
    /// The complete pairs are too few for this design to declare a gain
    /// or a loss at all, whatever the effect.
    Undeclarable,
    /// Too few complete pairs to say anything.
    NotMeasured,
}

impl ExperimentVerdict {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Gain => "gain",
            Self::Loss => "loss",
            Self::NoGainShown => "no gain shown (the interval includes ×1)",
            Self::BelowThreshold => "a change below the threshold",
            Self::Inconclusive => {
                "inconclusive (the interval excludes ×1, but p is above the gate's level)"
            }
            Self::Undeclarable => "undeclarable (too few complete pairs for any verdict)",
            Self::NotMeasured => "not measured (too few complete pairs)",
        }
    }
}

/// One benchmark an experiment ran.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DayBenchmark {
    pub day: u32,
    pub benchmark: String,
}

/// A remedy's measured figures, as the roadmap shows them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeasuredRemedy {
    /// On the experiment's benchmarks.
    pub speedup: f64,
    pub ci95: Option<[f64; 2]>,
    pub p_value: Option<f64>,
    pub verdict: ExperimentVerdict,
    /// On all profiled time (the Amdahl input replaced by a measurement):
    /// `None` when the analysis did not profile the experiment's
    /// benchmarks, so their share of that time is unknown and the plan's
    /// overall figures stay its estimate.
    pub overall_speedup: Option<f64>,
    pub overall_ci95: Option<[f64; 2]>,
    pub runs_per_side: usize,
    pub benchmarks: Vec<DayBenchmark>,
    pub toggle: String,
    pub measured_at: DateTime<Utc>,
    /// The worst quality verdict over the toggled models, when the toggle
    /// can change outputs (`NotMeasured` when none was reached): a gain
    /// counts only where quality holds. `None`: the toggle cannot change
    /// outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<super::QualityState>,
}

impl MeasuredRemedy {
    /// Faster, and no worse where the toggle can change outputs.
    pub fn is_win(&self) -> bool {
        self.verdict == ExperimentVerdict::Gain
            && self.quality.is_none_or(|q| q == super::QualityState::Holds)
    }
}
