//! The remedy plan: each catalog remedy's estimate (or measurement) on
//! the profiled time, its week, and the decision a roadmap leads with:
//! which remedies to do first, and the gain they add up to.

use serde::{Deserialize, Serialize};

use super::measured::{DayBenchmark, MeasuredRemedy};
use super::remedies::Risk;

/// One remedy applied to every function it matches: the share it acts on
/// is the sum of theirs, so estimates of functions sharing a remedy are not
/// added up twice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemedyEstimate {
    pub remedy: String,
    pub components: Vec<String>,
    /// Functions it applies to, largest share first.
    pub functions: Vec<String>,
    pub share_pct: f64,
    #[serde(default)]
    pub share_ci95_pct: Option<[f64; 2]>,
    pub samples: u64,
    pub assumed_remedy_speedup: [f64; 2],
    pub speedup_source: String,
    pub estimated_speedup: f64,
    /// From the share's interval and the assumed range together (or the
    /// experiment's interval, once measured).
    pub estimated_speedup_range: [f64; 2],
    pub time_saved_s_per_run: f64,
    pub estimated_roi: f64,
    pub effort_days: f64,
    pub risk: Risk,
    /// The measured time per run ÷ the estimated overall speed-up.
    #[serde(default)]
    pub estimated_after_s: f64,
    /// 1: low risk and an ROI at least [`WEEK1_ROI_FRACTION`] of the best
    /// (and, when measured, a gain shown); 2: everything else.
    #[serde(default)]
    pub week: u8,
    /// The profiled benchmarks whose samples this remedy acts on: what an
    /// experiment runs unless its toggle names benchmarks.
    #[serde(default)]
    pub evidence_benchmarks: Vec<DayBenchmark>,
    /// The experiment's figures, where one ran: then the speed-up, time
    /// saved, ROI and "after" above are measured, not assumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<MeasuredRemedy>,
}

/// Week 1 or 2 for every remedy of a plan sorted by ROI.
pub fn assign_weeks(plan: &mut [RemedyEstimate]) {
    let best_roi = plan.iter().map(|r| r.estimated_roi).fold(0.0, f64::max);
    for r in plan {
        let shown = r.measured.as_ref().is_none_or(|m| m.is_win());
        r.week = if r.risk == Risk::Low && shown && r.estimated_roi >= WEEK1_ROI_FRACTION * best_roi
        {
            1
        } else {
            2
        };
    }
}

/// Week 1 takes low-risk remedies whose ROI is at least this fraction of
/// the best remedy's.
pub const WEEK1_ROI_FRACTION: f64 = 0.5;

pub const COMBINED_FORMULA: &str = "together = 1 ÷ (1 − Σ (1 − 1 / Sᵢ)) over the remedies to do first, Sᵢ each one's overall speed-up on the profiled time (measured where an experiment ran on benchmarks the analysis profiled, else its Amdahl estimate): the fractions of time they save add up because each estimate acts on functions no other one counts; a remedy is left out of the total when it shares a function with an earlier one, or when either of the two was measured overall and they share a benchmark (a measured speed-up is the benchmark's whole change, which may include the other's); its range puts every Sᵢ at the low, then the high end of its own range";

/// Week 1's remedies and what they are expected to give together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanDecision {
    /// The remedies to do first (Week 1), best ROI first.
    pub remedies: Vec<String>,
    /// Week 1 remedies left out of the total: an earlier one already acts
    /// on one of their functions, or one of the two was measured on a
    /// benchmark the other acts on, so their savings could be counted twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlapping: Vec<String>,
    /// How many of the counted remedies an experiment measured overall
    /// (on benchmarks the analysis profiled).
    pub measured: usize,
    /// `None` when their savings reach the whole time: estimates that
    /// cannot all be true at once, so no total is stated.
    pub together: Option<CombinedGain>,
    pub formula: String,
}

/// What the remedies to do first give together, by [`COMBINED_FORMULA`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CombinedGain {
    pub speedup: f64,
    /// Every remedy at the low end of its range.
    pub speedup_low: f64,
    /// Every remedy at the high end: `None` when their savings would
    /// reach the whole time there (see [`PlanDecision::together`]).
    pub speedup_high: Option<f64>,
    pub time_saved_s_per_run: f64,
    pub after_s: f64,
}

/// The speed-up of remedies whose overall speed-ups are `speedups`, when
/// each saves its own time: `None` when the saved fractions reach the
/// whole time (estimates that cannot all be true at once).
fn combined(speedups: impl Iterator<Item = f64>) -> Option<f64> {
    let saved: f64 = speedups.map(|s| 1.0 - 1.0 / s).sum();
    (saved < 1.0).then(|| 1.0 / (1.0 - saved))
}

/// Whether a remedy's overall speed-up was measured (an experiment on
/// benchmarks the analysis profiled), not estimated.
fn overall_measured(r: &RemedyEstimate) -> bool {
    r.measured
        .as_ref()
        .is_some_and(|m| m.overall_speedup.is_some())
}

/// The decision from a plan sorted by ROI with its weeks assigned; `None`
/// when no remedy qualifies for Week 1 (the roadmap then says why).
pub fn plan_decision(plan: &[RemedyEstimate], profiled_time_s: f64) -> Option<PlanDecision> {
    let mut counted: Vec<&RemedyEstimate> = Vec::new();
    let mut overlapping = Vec::new();
    // The benchmarks a remedy's figure rests on: those it was measured on
    // where the measurement gives its overall figure, else those its
    // profiled functions ran in (its Amdahl estimate's).
    let benchmarks = |r: &RemedyEstimate| -> Vec<DayBenchmark> {
        match r.measured.as_ref() {
            Some(m) if overall_measured(r) => m.benchmarks.clone(),
            _ => r.evidence_benchmarks.clone(),
        }
    };
    for r in plan.iter().filter(|r| r.week == 1) {
        let overlaps = counted.iter().any(|c| {
            c.functions.iter().any(|f| r.functions.contains(f))
                || ((overall_measured(c) || overall_measured(r))
                    && benchmarks(c).iter().any(|b| benchmarks(r).contains(b)))
        });
        if overlaps {
            overlapping.push(r.remedy.clone());
        } else {
            counted.push(r);
        }
    }
    if counted.is_empty() {
        return None;
    }
    let together = combined(counted.iter().map(|r| r.estimated_speedup)).map(|speedup| {
        // Each low end is at most its point, so the low total exists.
        let low = combined(
            counted
                .iter()
                .map(|r| r.estimated_speedup_range[0].min(r.estimated_speedup)),
        );
        CombinedGain {
            speedup,
            speedup_low: low.unwrap_or(speedup),
            speedup_high: combined(
                counted
                    .iter()
                    .map(|r| r.estimated_speedup_range[1].max(r.estimated_speedup)),
            ),
            time_saved_s_per_run: profiled_time_s * (1.0 - 1.0 / speedup),
            after_s: profiled_time_s / speedup,
        }
    });
    Some(PlanDecision {
        remedies: counted.iter().map(|r| r.remedy.clone()).collect(),
        overlapping,
        measured: counted.iter().filter(|r| overall_measured(r)).count(),
        together,
        formula: COMBINED_FORMULA.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Risk;

    fn remedy(name: &str, functions: &[&str], speedup: f64, week: u8) -> RemedyEstimate {
        RemedyEstimate {
            remedy: name.into(),
            components: vec!["c".into()],
            functions: functions.iter().map(|f| f.to_string()).collect(),
            share_pct: 10.0,
            share_ci95_pct: None,
            samples: 10,
            assumed_remedy_speedup: [1.5, 2.0],
            speedup_source: "test".into(),
            estimated_speedup: speedup,
            estimated_speedup_range: [speedup * 0.9, speedup * 1.1],
            time_saved_s_per_run: 0.0,
            estimated_roi: 0.0,
            effort_days: 1.0,
            risk: Risk::Low,
            estimated_after_s: 0.0,
            week,
            evidence_benchmarks: Vec::new(),
            measured: None,
        }
    }

    /// Two remedies that each save a quarter of the time save half of it
    /// together (×2), not ×(4/3)² = ×1.78; Week 2 and a remedy on a
    /// function already counted are not in the total.
    #[test]
    fn savings_add_over_distinct_functions_and_are_counted_once() {
        let plan = [
            remedy("a", &["f"], 4.0 / 3.0, 1),
            remedy("b", &["g"], 4.0 / 3.0, 1),
            remedy("a again", &["g", "h"], 2.0, 1),
            remedy("later", &["k"], 3.0, 2),
        ];
        let d = plan_decision(&plan, 10.0).unwrap();
        assert_eq!(d.remedies, ["a", "b"]);
        assert_eq!(d.overlapping, ["a again"]);
        let t = d.together.unwrap();
        assert!((t.speedup - 2.0).abs() < 1e-12);
        assert!((t.time_saved_s_per_run - 5.0).abs() < 1e-12);
        assert!((t.after_s - 5.0).abs() < 1e-12);
        let low = 1.0 / (1.0 - 2.0 * (1.0 - 1.0 / (4.0 / 3.0 * 0.9)));
        assert!((t.speedup_low - low).abs() < 1e-12);
        assert_eq!(d.measured, 0);
    }

    /// A measured speed-up is its benchmarks' whole change: a remedy
    /// measured on a benchmark another acts on is not added to it.
    #[test]
    fn a_measurement_on_a_shared_benchmark_is_not_added_twice() {
        let bench = DayBenchmark {
            day: 1,
            benchmark: "decode".into(),
        };
        let mut first = remedy("cache", &["f"], 1.5, 1);
        first.evidence_benchmarks = vec![bench.clone()];
        let mut second = remedy("queue", &["g"], 1.6, 1);
        second.measured = Some(MeasuredRemedy {
            speedup: 1.6,
            ci95: None,
            p_value: None,
            verdict: crate::analysis::ExperimentVerdict::Gain,
            overall_speedup: Some(1.6),
            overall_ci95: None,
            runs_per_side: 9,
            benchmarks: vec![bench],
            toggle: "t".into(),
            measured_at: chrono::Utc::now(),
            quality: None,
        });
        let d = plan_decision(&[first.clone(), second.clone()], 1.0).unwrap();
        assert_eq!(d.remedies, ["cache"]);
        assert_eq!(d.overlapping, ["queue"]);
        // On other benchmarks they add up.
        if let Some(m) = second.measured.as_mut() {
            m.benchmarks[0].benchmark = "prefill".into();
        }
        let d = plan_decision(&[first, second], 1.0).unwrap();
        assert_eq!(d.remedies, ["cache", "queue"]);
    }

    #[test]
    fn no_week_one_no_decision_and_impossible_totals_are_not_stated() {
        assert_eq!(plan_decision(&[remedy("x", &["f"], 2.0, 2)], 1.0), None);
        // Two estimates that would each save 60 % cannot both be true.
        let plan = [remedy("a", &["f"], 2.5, 1), remedy("b", &["g"], 2.5, 1)];
        let d = plan_decision(&plan, 1.0).unwrap();
        assert_eq!(d.remedies.len(), 2);
        assert_eq!(d.together, None);
        // Possible at the point, not at the high end of the ranges.
        let plan = [remedy("a", &["f"], 1.9, 1), remedy("b", &["g"], 1.9, 1)];
        let t = plan_decision(&plan, 1.0).unwrap().together.unwrap();
        assert!(t.speedup_high.is_none() && t.speedup_low < t.speedup);
    }
}
