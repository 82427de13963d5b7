//! The A/A control: tonight's runs compared with themselves. The same
//! code ran in every run, so a systematic difference between groups of
//! runs means the machine changed during the night, and a difference from
//! the baseline may then be the machine rather than the code.
//!
//! Two splits are tested: odd against even runs (an alternating load) and
//! the first half against the second (a drift). For each, every case
//! contributes one stratum (its headline metric, oriented so that larger
//! is worse), and the strata's Mann–Whitney U statistics are summed and
//! tested exactly against the convolution of their null distributions.
//! Pooling strata is what lets the control fire: one case split 3 against
//! 4 runs can never reach p < 0.05 on its own. The threshold it judges
//! against is the configured one: nothing in the control is derived from
//! the split it tests.

use serde::{Deserialize, Serialize};

use super::design::P_THRESHOLD;
use crate::stats::{RankDistribution, median, stratified_rank_sum_p, two_sample_shift};

/// Each split is tested at this level: [`P_THRESHOLD`] shared by the two.
const SPLIT_P: f64 = P_THRESHOLD / 2.0;

pub const CONTROL_RULE: &str = "tonight's runs against themselves, odd against even and first half against second half: each case's headline metric is one stratum, the summed Mann–Whitney U is tested exactly; a split fires when p < 0.005 and the median drift across cases exceeds the threshold; either firing makes the night advisory";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Runs 1, 3, 5, … against runs 2, 4, 6, …
    OddEven,
    /// The first half of the runs against the second (the middle run of
    /// an odd count is left out).
    Halves,
}

impl Split {
    fn groups(self, runs: &[f64]) -> (Vec<f64>, Vec<f64>) {
        match self {
            Self::OddEven => (
                runs.iter().step_by(2).copied().collect(),
                runs.iter().skip(1).step_by(2).copied().collect(),
            ),
            Self::Halves => {
                let half = runs.len() / 2;
                (runs[..half].to_vec(), runs[runs.len() - half..].to_vec())
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::OddEven => "odd against even runs",
            Self::Halves => "first half against second half of the runs",
        }
    }
}

/// One split's test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlSplit {
    pub split: Split,
    /// Cases with runs in both groups.
    pub strata: usize,
    pub p_value: Option<f64>,
    /// The smallest p this split could reach tonight (every stratum
    /// separated the same way); at or above 0.005 it cannot fire.
    pub strongest_p: Option<f64>,
    /// Median over cases of second group ÷ first group (Hodges–Lehmann),
    /// oriented so that above 1 is worse.
    pub drift_ratio: Option<f64>,
    pub fired: bool,
}

/// The night's A/A control.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AaControl {
    pub rule: String,
    pub splits: Vec<ControlSplit>,
    /// Whether any split could have fired tonight.
    pub can_fire: bool,
    pub fired: bool,
}

/// One case's runs for the control: log values oriented so that larger is
/// worse, in run order.
pub struct ControlSeries<'a> {
    pub runs: &'a [f64],
}

/// Runs the control over the night's cases; `threshold` is the configured
/// threshold on the log scale.
pub fn aa_control(series: &[ControlSeries<'_>], threshold: f64) -> AaControl {
    let splits: Vec<ControlSplit> = [Split::OddEven, Split::Halves]
        .into_iter()
        .map(|split| test_split(split, series, threshold))
        .collect();
    AaControl {
        rule: CONTROL_RULE.to_string(),
        can_fire: splits
            .iter()
            .any(|s| s.strongest_p.is_some_and(|p| p < SPLIT_P)),
        fired: splits.iter().any(|s| s.fired),
        splits,
    }
}

fn test_split(split: Split, series: &[ControlSeries<'_>], threshold: f64) -> ControlSplit {
    let groups: Vec<(Vec<f64>, Vec<f64>)> = series
        .iter()
        .map(|s| split.groups(s.runs))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .collect();
    let strata: Vec<(&[f64], &[f64])> = groups
        .iter()
        .map(|(a, b)| (a.as_slice(), b.as_slice()))
        .collect();
    let p_value = stratified_rank_sum_p(&strata);
    let strongest_p = (!strata.is_empty()).then(|| {
        let parts: Vec<RankDistribution> = strata
            .iter()
            .map(|(a, b)| RankDistribution::mann_whitney(a.len(), b.len()))
            .collect();
        RankDistribution::sum(&parts).two_sided_p(0.0)
    });
    let drifts: Vec<f64> = strata
        .iter()
        .filter_map(|(a, b)| Some(two_sample_shift(a, b)?.estimate))
        .collect();
    let drift = median(&drifts);
    ControlSplit {
        split,
        strata: strata.len(),
        p_value,
        strongest_p,
        drift_ratio: drift.map(f64::exp),
        fired: p_value.is_some_and(|p| p < SPLIT_P) && drift.is_some_and(|d| d.abs() > threshold),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn night(cases: usize, runs: usize, value: impl Fn(usize, usize) -> f64) -> Vec<Vec<f64>> {
        (0..cases)
            .map(|c| (0..runs).map(|r| value(c, r)).collect())
            .collect()
    }

    fn control(night: &[Vec<f64>]) -> AaControl {
        let series: Vec<ControlSeries<'_>> =
            night.iter().map(|runs| ControlSeries { runs }).collect();
        aa_control(&series, 1.05f64.ln())
    }

    #[test]
    fn alternating_and_drifting_nights_fire_and_a_steady_one_does_not() {
        // A steady night: small noise, no pattern.
        let wobble = |c: usize, r: usize| ((c * 7 + r * 13) % 5) as f64 * 0.002;
        let steady = control(&night(8, 7, wobble));
        assert!(steady.can_fire && !steady.fired, "{steady:#?}");
        // Even-numbered runs twice as slow.
        let alternating = control(&night(8, 7, |c, r| wobble(c, r) + (r % 2) as f64 * 0.69));
        assert!(alternating.splits[0].fired, "{alternating:#?}");
        assert!(alternating.fired);
        // The machine slows by 3 % a run: the halves split sees it.
        let drifting = control(&night(8, 7, |c, r| wobble(c, r) + r as f64 * 0.03));
        assert!(drifting.splits[1].fired, "{drifting:#?}");
    }

    #[test]
    fn one_case_cannot_fire_and_says_so() {
        let alternating = control(&night(1, 7, |_, r| (r % 2) as f64));
        assert!(!alternating.can_fire && !alternating.fired);
    }
}
