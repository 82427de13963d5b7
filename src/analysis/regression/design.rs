//! Whether a night can declare a regression at all, decided before anything
//! is measured: from the runs on each side and the number of comparisons.
//!
//! A rank test on n runs has a smallest achievable p-value (complete
//! separation: 2 / C(n₁ + n₂, n₁) unpaired, 2 / 2ⁿ paired), and
//! Benjamini–Hochberg over m comparisons multiplies the p of a change in
//! one metric alone by m. A design whose strongest outcome does not reach
//! both p < [`P_THRESHOLD`] and p × m < [`FDR`] can never say "regressed",
//! however large the change.

use serde::{Deserialize, Serialize};

use crate::stats::RankDistribution;

/// A metric is significant when its p-value is below this…
pub const P_THRESHOLD: f64 = 0.01;
/// …and its Benjamini–Hochberg q-value over the night's comparisons below this.
pub const FDR: f64 = 0.05;
/// Separate runs (or pairs) the tool will ask for at most.
pub const MAX_RUNS: usize = 100;
/// The fewest runs a side a design is ever built from.
pub const MIN_RUNS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pairing {
    /// A stored baseline against tonight's runs: Mann–Whitney U.
    Unpaired,
    /// Two builds run alternately tonight: Wilcoxon signed-rank on pairs.
    Paired,
}

/// The statistical design of one night's verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateDesign {
    pub pairing: Pairing,
    /// Runs of the baseline side (pairs, when paired).
    pub baseline_runs: usize,
    /// Runs of this side (pairs, when paired).
    pub current_runs: usize,
    /// Metrics compared in the night: the m of Benjamini–Hochberg.
    pub comparisons: usize,
    /// The smallest p-value any outcome of this design can have.
    pub strongest_p: f64,
    /// `strongest_p × comparisons`: the q-value of that outcome when it is
    /// the night's only change.
    pub strongest_q: f64,
    /// The largest rank statistic (U, or T when paired) that still declares
    /// a change: 0 means only complete separation does, 1 allows one
    /// overlapping pair. `None` when nothing can be declared.
    pub declarable_overlap: Option<u64>,
    pub can_declare: bool,
}

impl GateDesign {
    pub fn unpaired(baseline_runs: usize, current_runs: usize, comparisons: usize) -> Self {
        Self::new(Pairing::Unpaired, baseline_runs, current_runs, comparisons)
    }

    pub fn paired(pairs: usize, comparisons: usize) -> Self {
        Self::new(Pairing::Paired, pairs, pairs, comparisons)
    }

    fn new(
        pairing: Pairing,
        baseline_runs: usize,
        current_runs: usize,
        comparisons: usize,
    ) -> Self {
        let m = comparisons.max(1) as f64;
        let distribution = null_distribution(pairing, baseline_runs, current_runs);
        let p_of = |s: u64| {
            distribution
                .as_ref()
                .map_or(1.0, |d| d.two_sided_p(s as f64))
        };
        let declares = |p: f64| p < P_THRESHOLD && p * m < FDR;
        let mut declarable_overlap = None;
        let mut s = 0u64;
        while distribution
            .as_ref()
            .is_some_and(|d| (s as f64) < d.max() / 2.0)
            && declares(p_of(s))
        {
            declarable_overlap = Some(s);
            s += 1;
        }
        let strongest_p = p_of(0);
        Self {
            pairing,
            baseline_runs,
            current_runs,
            comparisons,
            strongest_p,
            strongest_q: (strongest_p * m).min(1.0),
            declarable_overlap,
            can_declare: declarable_overlap.is_some(),
        }
    }

    /// The rank distribution of this design's test under "no change".
    pub fn distribution(&self) -> Option<RankDistribution> {
        null_distribution(self.pairing, self.baseline_runs, self.current_runs)
    }

    /// One sentence for people: what this design can and cannot declare.
    pub fn describe(&self) -> String {
        let sides = match self.pairing {
            Pairing::Unpaired => format!(
                "{} baseline runs against {} runs",
                self.baseline_runs, self.current_runs
            ),
            Pairing::Paired => format!("{} interleaved pairs", self.current_runs),
        };
        let test = match self.pairing {
            Pairing::Unpaired => "Mann–Whitney",
            Pairing::Paired => "Wilcoxon signed-rank",
        };
        match self.declarable_overlap {
            None => format!(
                "{sides} over {} comparisons cannot declare any regression: the strongest {test} p is {:.4}, and after Benjamini–Hochberg {:.4} (a verdict needs p < {P_THRESHOLD} and q < {FDR})",
                self.comparisons, self.strongest_p, self.strongest_q
            ),
            Some(0) => format!(
                "{sides} over {} comparisons declare a regression only when every run is worse than every baseline run ({test} p = {:.4}, q = {:.4}); one overlapping pair hides it",
                self.comparisons, self.strongest_p, self.strongest_q
            ),
            Some(overlap) => format!(
                "{sides} over {} comparisons declare a regression with up to {overlap} overlapping {} (strongest {test} p = {:.5}, q = {:.4})",
                self.comparisons,
                if overlap == 1 { "pair" } else { "pairs" },
                self.strongest_p,
                self.strongest_q
            ),
        }
    }
}

fn null_distribution(
    pairing: Pairing,
    baseline_runs: usize,
    current_runs: usize,
) -> Option<RankDistribution> {
    if baseline_runs == 0 || current_runs == 0 {
        return None;
    }
    Some(match pairing {
        Pairing::Unpaired => RankDistribution::mann_whitney(baseline_runs, current_runs),
        Pairing::Paired => RankDistribution::signed_rank(current_runs),
    })
}

/// How many runs (or pairs) a night needs for verdicts: the fewest that
/// still declare a regression with one overlapping pair, so that a single
/// noisy run cannot hide it; failing that within [`MAX_RUNS`], the fewest
/// that declare one at all. `baseline_runs` is fixed when comparing with a
/// stored baseline; `None` means both sides get the chosen count.
pub fn runs_for_verdicts(
    pairing: Pairing,
    comparisons: usize,
    baseline_runs: Option<usize>,
) -> Option<usize> {
    let design = |n: usize| match pairing {
        Pairing::Paired => GateDesign::paired(n, comparisons),
        Pairing::Unpaired => GateDesign::unpaired(baseline_runs.unwrap_or(n), n, comparisons),
    };
    let fewest = |overlap: u64| {
        (MIN_RUNS..=MAX_RUNS).find(|&n| design(n).declarable_overlap.is_some_and(|o| o >= overlap))
    };
    fewest(1).or_else(|| fewest(0))
}

/// What a night asks of its design.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NightRequest {
    /// `--runs`, when given.
    pub explicit_runs: Option<usize>,
    /// Interleaved against another build: the day's planned comparisons.
    pub interleaved: Option<usize>,
    /// Against a stored baseline: its comparisons and its fewest runs.
    pub baseline: Option<(usize, usize)>,
    /// Saving tonight as a baseline: the day's planned comparisons.
    pub saves: Option<usize>,
}

/// The night's runs (pairs, when interleaved) and the design its verdict
/// is judged by.
#[derive(Debug, Clone, PartialEq)]
pub struct NightPlan {
    pub runs: usize,
    pub design: GateDesign,
}

/// A night that could never declare a regression, refused before
/// anything is measured.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRefusal {
    pub design: GateDesign,
    /// The count that would declare one, if any within [`MAX_RUNS`].
    pub needed: Option<usize>,
    /// Against a stored baseline of too few runs: its runs, and the runs
    /// a baseline saved again would get.
    pub small_baseline: Option<(usize, usize)>,
}

/// Plans a night that makes verdicts (`None` for a night that makes
/// none): without `--runs`, the fewest runs whose design declares a
/// regression even with one overlapping pair; a `--runs` that could never
/// declare one is refused with the count that would. The one planning
/// rule `campaign run` uses and the gate's tests run.
pub fn plan_night(request: &NightRequest) -> Result<Option<NightPlan>, PlanRefusal> {
    let explicit = request.explicit_runs;
    if let Some(m) = request.interleaved {
        let needed = runs_for_verdicts(Pairing::Paired, m, None);
        let n = explicit.or(needed).unwrap_or(MAX_RUNS);
        let design = GateDesign::paired(n, m);
        if !design.can_declare {
            return Err(PlanRefusal {
                design,
                needed,
                small_baseline: None,
            });
        }
        return Ok(Some(NightPlan { runs: n, design }));
    }
    let mut plan: Option<NightPlan> = None;
    let mut n = explicit.unwrap_or(0);
    if let Some((m, baseline_runs)) = request.baseline {
        let needed = runs_for_verdicts(Pairing::Unpaired, m, Some(baseline_runs));
        let chosen = explicit.or(needed).unwrap_or(MAX_RUNS);
        let design = GateDesign::unpaired(baseline_runs, chosen, m);
        if !design.can_declare {
            let again = runs_for_verdicts(Pairing::Unpaired, m, None).unwrap_or(baseline_runs);
            return Err(PlanRefusal {
                design,
                needed,
                small_baseline: Some((baseline_runs, again)),
            });
        }
        n = n.max(chosen);
        plan = Some(NightPlan {
            runs: chosen,
            design,
        });
    }
    if let Some(m) = request.saves {
        let needed = runs_for_verdicts(Pairing::Unpaired, m, None);
        let chosen = explicit.unwrap_or_else(|| n.max(needed.unwrap_or(MAX_RUNS)));
        let design = GateDesign::unpaired(chosen, chosen, m);
        if !design.can_declare {
            return Err(PlanRefusal {
                design,
                needed,
                small_baseline: None,
            });
        }
        n = n.max(chosen);
        plan.get_or_insert(NightPlan {
            runs: chosen,
            design,
        });
    }
    // The design of the runs the night will make: the larger of the
    // counts each purpose needs.
    Ok(plan.map(|p| NightPlan {
        runs: n,
        design: match request.baseline {
            Some((m, baseline_runs)) => GateDesign::unpaired(baseline_runs, n, m),
            None => p.design,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_nightly_design_could_not_declare_a_one_metric_regression() {
        // 5 runs a side over 16 comparisons: p ≥ 2/252, q ≥ 0.127.
        let d = GateDesign::unpaired(5, 5, 16);
        assert!((d.strongest_p - 2.0 / 252.0).abs() < 1e-12);
        assert!(!d.can_declare, "{}", d.describe());
        // 3 or 4 runs cannot declare anything, even alone.
        assert!(!GateDesign::unpaired(3, 3, 1).can_declare);
        assert!(!GateDesign::unpaired(4, 4, 1).can_declare);
        // 6 runs: only complete separation; 7: two overlapping pairs too
        // (U ≤ 2 has p = 2 × 4 / 3432, q = 0.037).
        assert_eq!(GateDesign::unpaired(6, 6, 16).declarable_overlap, Some(0));
        assert_eq!(GateDesign::unpaired(7, 7, 16).declarable_overlap, Some(2));
    }

    #[test]
    fn runs_are_chosen_so_one_overlapping_pair_still_declares() {
        for m in [1, 4, 16, 40, 200] {
            let n = runs_for_verdicts(Pairing::Unpaired, m, None).unwrap();
            assert!(GateDesign::unpaired(n, n, m).declarable_overlap >= Some(1));
            assert!(GateDesign::unpaired(n - 1, n - 1, m).declarable_overlap < Some(1));
        }
        // A small stored baseline needs more runs tonight.
        let n = runs_for_verdicts(Pairing::Unpaired, 16, Some(5)).unwrap();
        assert!(n > runs_for_verdicts(Pairing::Unpaired, 16, None).unwrap());
        assert!(GateDesign::unpaired(5, n, 16).declarable_overlap >= Some(1));
        // Pairs: 2 / 2ⁿ × 16 < 0.05 needs n ≥ 10; one overlap needs one more.
        assert!(!GateDesign::paired(9, 16).can_declare);
        assert_eq!(GateDesign::paired(10, 16).declarable_overlap, Some(0));
        assert_eq!(runs_for_verdicts(Pairing::Paired, 16, None), Some(11));
    }
}
