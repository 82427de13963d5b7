//! The A/A control: tonight's runs compared with themselves. The same
//! code ran in every run, so a systematic difference between groups of
//! runs means the machine changed during the night, and a difference from
//! the baseline may then be the machine rather than the code.
//!
//! Two splits are tested: odd against even runs (an alternating load) and
//! the first half against the second (a drift). The cases of one run ran
//! back to back in one process and share its noise, so cases are not
//! independent strata: the unit is the whole run (a *round*). Each round
//! scores the mean over cases of its log values less each case's median,
//! and the split's difference of mean round scores is tested exactly
//! against every relabelling of whole rounds into groups of the same
//! sizes. A split fires when that permutation p is below [`CONTROL_P`]
//! and the median over cases of their drift, each in units of its own
//! threshold, exceeds one threshold.
//!
//! A fired control never turns a regression into a pass: a regression
//! whose interval clears its threshold plus the drift still fails the
//! night; one that does not makes the night "too noisy to tell".

use serde::{Deserialize, Serialize};

use crate::stats::{median, two_sample_shift};

/// A split fires below this permutation p. Whole rounds are few (seven
/// runs have 35 ways to split into 3 and 4), so the level is that of a
/// warning; a fired control only withholds verdicts it cannot trust.
pub const CONTROL_P: f64 = 0.1;
/// Relabellings enumerated exactly up to this many, else drawn.
const EXACT_RELABELLINGS: usize = 20_000;
const SEED: u64 = 0x00AA_C0A7_5EED;

pub const CONTROL_RULE: &str = "tonight's runs against themselves, odd against even runs and first half against second half: each run scores the mean over cases of its log headline less the case's median, and the difference of mean scores is tested against every relabelling of whole runs (cases of one run share its noise); a split fires when that p < 0.1 and the median over cases of their drift exceeds their threshold; a fired control makes regressions within threshold + drift 'too noisy to tell' and leaves the others failing";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Runs 1, 3, 5, … against runs 2, 4, 6, …
    OddEven,
    /// The first ⌊n/2⌋ runs against the rest.
    Halves,
}

impl Split {
    /// The two groups of round numbers, from the sorted rounds.
    fn groups(self, rounds: &[u32]) -> (Vec<u32>, Vec<u32>) {
        match self {
            Self::OddEven => (
                rounds.iter().step_by(2).copied().collect(),
                rounds.iter().skip(1).step_by(2).copied().collect(),
            ),
            Self::Halves => {
                let half = rounds.len() / 2;
                (rounds[..half].to_vec(), rounds[half..].to_vec())
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
    /// Runs in each group.
    #[serde(default)]
    pub rounds: [usize; 2],
    /// Cases with runs in both groups.
    pub strata: usize,
    pub p_value: Option<f64>,
    /// The smallest p this split could reach tonight (two relabellings
    /// out of all); at or above [`CONTROL_P`] it cannot fire.
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

impl AaControl {
    /// The largest drift of a fired split, on the log scale: what a
    /// regression's interval must clear beyond its threshold.
    pub fn drift_log(&self) -> Option<f64> {
        self.splits
            .iter()
            .filter(|s| s.fired)
            .filter_map(|s| s.drift_ratio.map(|r| r.ln().abs()))
            .reduce(f64::max)
    }
}

/// One case's runs for the control: log values oriented so that larger is
/// worse, each with the round (slot) it ran in.
pub struct ControlSeries<'a> {
    pub runs: &'a [f64],
    pub rounds: &'a [u32],
    /// The case's threshold on the log scale.
    pub threshold: f64,
}

/// Runs the control over the night's cases.
pub fn aa_control(series: &[ControlSeries<'_>]) -> AaControl {
    let mut rounds: Vec<u32> = series
        .iter()
        .flat_map(|s| s.rounds.iter().copied())
        .collect();
    rounds.sort_unstable();
    rounds.dedup();
    let splits: Vec<ControlSplit> = [Split::OddEven, Split::Halves]
        .into_iter()
        .map(|split| test_split(split, series, &rounds))
        .collect();
    AaControl {
        rule: CONTROL_RULE.to_string(),
        can_fire: splits
            .iter()
            .any(|s| s.strongest_p.is_some_and(|p| p < CONTROL_P)),
        fired: splits.iter().any(|s| s.fired),
        splits,
    }
}

/// Each round's score: the mean over cases of (value − the case's median).
fn round_scores(series: &[ControlSeries<'_>], rounds: &[u32]) -> Vec<Option<f64>> {
    let centred: Vec<(f64, Vec<(u32, f64)>)> = series
        .iter()
        .filter_map(|s| {
            let m = median(s.runs)?;
            Some((
                m,
                s.rounds
                    .iter()
                    .copied()
                    .zip(s.runs.iter().map(|v| v - m))
                    .collect(),
            ))
        })
        .collect();
    rounds
        .iter()
        .map(|r| {
            let values: Vec<f64> = centred
                .iter()
                .filter_map(|(_, runs)| runs.iter().find(|(x, _)| x == r).map(|(_, v)| *v))
                .collect();
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        })
        .collect()
}

fn test_split(split: Split, series: &[ControlSeries<'_>], rounds: &[u32]) -> ControlSplit {
    let (first, second) = split.groups(rounds);
    let scores = round_scores(series, rounds);
    let scored: Vec<(u32, f64)> = rounds
        .iter()
        .zip(&scores)
        .filter_map(|(r, s)| Some((*r, (*s)?)))
        .collect();
    let in_second: Vec<bool> = scored.iter().map(|(r, _)| second.contains(r)).collect();
    let values: Vec<f64> = scored.iter().map(|(_, s)| *s).collect();
    let k = in_second.iter().filter(|x| **x).count();
    let n = values.len();
    let (p_value, strongest_p) = if k == 0 || k == n {
        (None, None)
    } else {
        let (p, count) = permutation_p(&values, &in_second);
        (Some(p), Some((2.0 / count as f64).min(1.0)))
    };
    // Per case: the drift between the groups in units of its threshold.
    let mut drifts = Vec::new();
    let mut relative = Vec::new();
    for s in series {
        let pick = |group: &[u32]| -> Vec<f64> {
            s.rounds
                .iter()
                .zip(s.runs)
                .filter(|(r, _)| group.contains(r))
                .map(|(_, v)| *v)
                .collect()
        };
        let (a, b) = (pick(&first), pick(&second));
        if let Some(t) = two_sample_shift(&a, &b) {
            drifts.push(t.estimate);
            if s.threshold > 0.0 {
                relative.push(t.estimate / s.threshold);
            }
        }
    }
    let drift = median(&drifts);
    ControlSplit {
        split,
        rounds: [n - k, k],
        strata: drifts.len(),
        p_value,
        strongest_p,
        drift_ratio: drift.map(f64::exp),
        fired: p_value.is_some_and(|p| p < CONTROL_P)
            && median(&relative).is_some_and(|r| r.abs() > 1.0),
    }
}

/// Two-sided p of the difference of group means over every relabelling
/// of the units into groups of the same sizes (or, past
/// [`EXACT_RELABELLINGS`], over as many seeded draws); and how many
/// relabellings it counted.
fn permutation_p(values: &[f64], in_second: &[bool]) -> (f64, usize) {
    let n = values.len();
    let k = in_second.iter().filter(|x| **x).count();
    let total: f64 = values.iter().sum();
    let statistic = |chosen_sum: f64| {
        let second = chosen_sum / k as f64;
        let first = (total - chosen_sum) / (n - k) as f64;
        (second - first).abs()
    };
    let observed = statistic(
        values
            .iter()
            .zip(in_second)
            .filter(|(_, s)| **s)
            .map(|(v, _)| v)
            .sum(),
    );
    // Equal up to rounding counts as equal: the observed labelling itself.
    let at_least = |s: f64| s >= observed - 1e-12 * (1.0 + observed);
    let mut hits = 0usize;
    let mut count = 0usize;
    if binomial(n, k) <= EXACT_RELABELLINGS as f64 {
        let mut chosen: Vec<usize> = (0..k).collect();
        loop {
            count += 1;
            hits += usize::from(at_least(statistic(chosen.iter().map(|&i| values[i]).sum())));
            // Next k-combination in lexicographic order.
            let Some(i) = (0..k).rev().find(|&i| chosen[i] < n - k + i) else {
                break;
            };
            chosen[i] += 1;
            for j in i + 1..k {
                chosen[j] = chosen[j - 1] + 1;
            }
        }
    } else {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED);
        let mut order: Vec<usize> = (0..n).collect();
        // The observed labelling counts once, so p is never 0.
        hits = 1;
        count = 1;
        for _ in 0..EXACT_RELABELLINGS {
            order.shuffle(&mut rng);
            count += 1;
            hits += usize::from(at_least(statistic(
                order[..k].iter().map(|&i| values[i]).sum(),
            )));
        }
    }
    (hits as f64 / count as f64, count)
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
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
        let rounds: Vec<u32> = (0..night[0].len() as u32).collect();
        let series: Vec<ControlSeries<'_>> = night
            .iter()
            .map(|runs| ControlSeries {
                runs,
                rounds: &rounds,
                threshold: 1.05f64.ln(),
            })
            .collect();
        aa_control(&series)
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
        assert!((alternating.drift_log().unwrap() - 0.69).abs() < 0.05);
        // The machine slows by 3 % a run: the halves split sees it.
        let drifting = control(&night(8, 7, |c, r| wobble(c, r) + r as f64 * 0.03));
        assert!(drifting.splits[1].fired, "{drifting:#?}");
    }

    #[test]
    fn six_runs_cannot_fire_and_say_so() {
        // 3 against 3 runs: 20 relabellings, p ≥ 2/20.
        let alternating = control(&night(8, 6, |_, r| (r % 2) as f64));
        assert!(
            !alternating.can_fire && !alternating.fired,
            "{alternating:#?}"
        );
    }

    #[test]
    fn the_exact_permutation_p_matches_enumeration_by_hand() {
        // 4 units, 2 chosen: 6 relabellings; the observed split {3, 4}
        // against {1, 2} and its mirror are the two most extreme.
        let (p, count) = permutation_p(&[1.0, 2.0, 3.0, 4.0], &[false, false, true, true]);
        assert_eq!(count, 6);
        assert!((p - 2.0 / 6.0).abs() < 1e-12);
    }
}
