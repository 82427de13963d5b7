//! Rank tests for run-level values, with their exact null distributions
//! and the shift estimates and intervals that go with them:
//! - two samples (a baseline and a current night): Mann–Whitney U, the
//!   Hodges–Lehmann shift (median of all pairwise differences) and the
//!   Moses interval (order statistics of those differences);
//! - paired samples (two builds run alternately): the Wilcoxon signed-rank
//!   test, the one-sample Hodges–Lehmann shift (median of the Walsh
//!   averages) and its interval;
//!
//! The test and the interval come from the same rank distribution, so an
//! interval that excludes zero is exactly a significant test at its level.
//!
//! Written here because no maintained crate offers exact Mann–Whitney,
//! or signed-rank distributions with their intervals; statrs
//! supplies the normal CDF for samples too large to enumerate.

use statrs::distribution::{ContinuousCDF, Normal};

/// Up to this many outcomes (n₁ × n₂ for U, n(n+1)/2 for T) the null
/// distribution is enumerated exactly; past it a normal approximation is
/// used. Both stay well under a millisecond.
const EXACT_LIMIT: usize = 5_000;

/// Coverage of every interval these tests give.
pub const CONFIDENCE: f64 = 0.95;

pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(sorted_median(&v))
}

fn sorted_median(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn standard_normal() -> Normal {
    // Mean 0 and sd 1 are valid parameters: this cannot fail.
    Normal::standard()
}

/// The null distribution of a rank statistic on 0..=max, symmetric about
/// max / 2: enumerated exactly, or normal with a variance.
#[derive(Debug, Clone)]
pub enum RankDistribution {
    /// `cdf[k]` = P(S ≤ k).
    Exact {
        cdf: Vec<f64>,
    },
    Normal {
        max: f64,
        variance: f64,
    },
}

impl RankDistribution {
    fn from_counts(counts: &[f64]) -> Self {
        let total: f64 = counts.iter().sum();
        let mut running = 0.0;
        let cdf = counts
            .iter()
            .map(|c| {
                running += c / total;
                running.min(1.0)
            })
            .collect();
        Self::Exact { cdf }
    }

    /// Mann–Whitney U for samples of n₁ and n₂ without ties.
    pub fn mann_whitney(n1: usize, n2: usize) -> Self {
        if n1 * n2 > EXACT_LIMIT {
            let (a, b) = (n1 as f64, n2 as f64);
            return Self::Normal {
                max: a * b,
                variance: a * b * (a + b + 1.0) / 12.0,
            };
        }
        // f(m, n, u) = f(m − 1, n, u − n) + f(m, n − 1, u), one row of n at a time.
        let mut rows: Vec<Vec<f64>> = (0..=n2).map(|_| vec![1.0]).collect();
        for m in 1..=n1 {
            let mut next: Vec<Vec<f64>> = Vec::with_capacity(n2 + 1);
            next.push(vec![1.0]);
            for n in 1..=n2 {
                let mut row = vec![0.0; m * n + 1];
                for (u, cell) in row.iter_mut().enumerate() {
                    let from_m = u.checked_sub(n).and_then(|k| rows[n].get(k)).copied();
                    let from_n = next[n - 1].get(u).copied();
                    *cell = from_m.unwrap_or(0.0) + from_n.unwrap_or(0.0);
                }
                next.push(row);
            }
            rows = next;
        }
        Self::from_counts(&rows[n2])
    }

    /// Wilcoxon's signed-rank T for n non-zero differences without ties.
    pub fn signed_rank(n: usize) -> Self {
        let max = n * (n + 1) / 2;
        if max > EXACT_LIMIT {
            let n = n as f64;
            return Self::Normal {
                max: n * (n + 1.0) / 2.0,
                variance: n * (n + 1.0) * (2.0 * n + 1.0) / 24.0,
            };
        }
        let mut counts = vec![0.0; max + 1];
        counts[0] = 1.0;
        let mut reach = 0;
        for rank in 1..=n {
            reach += rank;
            for t in (rank..=reach).rev() {
                counts[t] += counts[t - rank];
            }
        }
        Self::from_counts(&counts)
    }

    pub fn max(&self) -> f64 {
        match self {
            Self::Exact { cdf } => (cdf.len() - 1) as f64,
            Self::Normal { max, .. } => *max,
        }
    }

    /// P(S ≤ s), with a continuity correction in the normal case.
    pub fn cdf(&self, s: f64) -> f64 {
        match self {
            Self::Exact { cdf } => {
                if s < 0.0 {
                    0.0
                } else {
                    cdf[(s.floor() as usize).min(cdf.len() - 1)]
                }
            }
            Self::Normal { max, variance } => {
                if *variance <= 0.0 {
                    return if s >= max / 2.0 { 1.0 } else { 0.0 };
                }
                standard_normal().cdf((s + 0.5 - max / 2.0) / variance.sqrt())
            }
        }
    }

    /// Two-sided p-value of an observed statistic (the distribution is
    /// symmetric, so the nearer tail is doubled).
    pub fn two_sided_p(&self, s: f64) -> f64 {
        let lower = s.min(self.max() - s);
        (2.0 * self.cdf(lower)).min(1.0)
    }

    /// The largest s whose two-sided p-value is at most `alpha`, if any:
    /// a statistic at or below it is significant at that level.
    pub fn critical_value(&self, alpha: f64) -> Option<u64> {
        let mut found = None;
        let mut s = 0u64;
        while (s as f64) <= self.max() / 2.0 && self.two_sided_p(s as f64) <= alpha {
            found = Some(s);
            s += 1;
        }
        found
    }

    /// The order-statistic index (1-based) of a distribution-free interval
    /// with coverage `confidence`: [x₍ₖ₎, x₍ₙ₊₁₋ₖ₎] of the sorted pairwise
    /// differences or Walsh averages. `None` when no such interval exists
    /// (too few samples for that coverage).
    pub fn interval_rank(&self, confidence: f64) -> Option<usize> {
        let alpha = 1.0 - confidence;
        // k − 1 is the largest s with P(S ≤ s) ≤ α / 2.
        let mut k = 0usize;
        while (k as f64) <= self.max() && self.cdf(k as f64) <= alpha / 2.0 {
            k += 1;
        }
        (k >= 1).then_some(k)
    }
}

/// A shift between two samples (or within pairs) with its test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftTest {
    /// Two-sided p-value of "no shift".
    pub p_value: f64,
    /// The Hodges–Lehmann estimate of the shift (`b − a`, or of the pairs).
    pub estimate: f64,
    /// A distribution-free interval of the shift at [`CONFIDENCE`]; `None`
    /// when the samples are too small for that coverage.
    pub interval: Option<(f64, f64)>,
    /// The rank statistic (U of `a` over `b`, or T of the negative pairs).
    pub statistic: f64,
}

fn has_ties(values: &mut [f64]) -> bool {
    values.sort_by(f64::total_cmp);
    values.windows(2).any(|w| w[0] == w[1])
}

/// Interval from sorted candidate shifts and the rank of its ends.
fn interval_of(sorted: &[f64], rank: Option<usize>) -> Option<(f64, f64)> {
    let k = rank?;
    let hi = sorted.len().checked_sub(k)?;
    (k <= hi + 1).then(|| (sorted[k - 1], sorted[hi]))
}

/// Mann–Whitney U test of `b` against `a`, with the Hodges–Lehmann shift
/// `b − a` and the Moses interval. `None` if a sample is empty or holds a
/// value that is not finite.
pub fn two_sample_shift(a: &[f64], b: &[f64]) -> Option<ShiftTest> {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 || a.iter().chain(b).any(|v| !v.is_finite()) {
        return None;
    }
    let mut differences = Vec::with_capacity(n1 * n2);
    // U of `a`: pairs where a is larger, ties counting one half.
    let mut u = 0.0;
    for x in a {
        for y in b {
            differences.push(y - x);
            if x > y {
                u += 1.0;
            } else if x == y {
                u += 0.5;
            }
        }
    }
    differences.sort_by(f64::total_cmp);
    let mut pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let distribution = if has_ties(&mut pooled) {
        // Tie-corrected variance; the exact tables assume distinct values.
        let n = (n1 + n2) as f64;
        let mut tie_term = 0.0;
        let mut i = 0;
        while i < pooled.len() {
            let j = pooled[i..].iter().take_while(|v| **v == pooled[i]).count();
            tie_term += (j * j * j - j) as f64;
            i += j;
        }
        let (x, y) = (n1 as f64, n2 as f64);
        RankDistribution::Normal {
            max: x * y,
            variance: x * y / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0))),
        }
    } else {
        RankDistribution::mann_whitney(n1, n2)
    };
    Some(ShiftTest {
        p_value: distribution.two_sided_p(u),
        estimate: sorted_median(&differences),
        interval: interval_of(&differences, distribution.interval_rank(CONFIDENCE)),
        statistic: u,
    })
}

/// The Walsh averages (dᵢ + dⱼ) / 2, i ≤ j, sorted.
fn walsh_averages(d: &[f64]) -> Vec<f64> {
    let mut w = Vec::with_capacity(d.len() * (d.len() + 1) / 2);
    for i in 0..d.len() {
        for j in i..d.len() {
            w.push((d[i] + d[j]) / 2.0);
        }
    }
    w.sort_by(f64::total_cmp);
    w
}

/// Wilcoxon signed-rank test of paired differences, with the one-sample
/// Hodges–Lehmann shift and its interval. `None` if there are no
/// differences or one is not finite.
pub fn paired_shift(differences: &[f64]) -> Option<ShiftTest> {
    paired_shift_at(differences, CONFIDENCE)
}

/// [`paired_shift`] with its interval at `confidence` (a sequential
/// design that looks several times needs a wider one than a single look).
pub fn paired_shift_at(differences: &[f64], confidence: f64) -> Option<ShiftTest> {
    let n = differences.len();
    if n == 0 || differences.iter().any(|d| !d.is_finite()) {
        return None;
    }
    let walsh = walsh_averages(differences);
    // T of the negative side: Walsh averages below zero, zeros counting one half.
    let statistic: f64 = walsh
        .iter()
        .map(|w| {
            if *w < 0.0 {
                1.0
            } else if *w == 0.0 {
                0.5
            } else {
                0.0
            }
        })
        .sum();
    let mut magnitudes: Vec<f64> = differences.iter().map(|d| d.abs()).collect();
    let distribution = if has_ties(&mut magnitudes) || magnitudes.contains(&0.0) {
        let m = n as f64;
        RankDistribution::Normal {
            max: m * (m + 1.0) / 2.0,
            variance: m * (m + 1.0) * (2.0 * m + 1.0) / 24.0,
        }
    } else {
        RankDistribution::signed_rank(n)
    };
    Some(ShiftTest {
        p_value: distribution.two_sided_p(statistic),
        estimate: sorted_median(&walsh),
        interval: interval_of(&walsh, distribution.interval_rank(confidence)),
        statistic,
    })
}

/// Benjamini–Hochberg adjusted p-values (q-values), in input order.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p_values[*a].total_cmp(&p_values[*b]));
    let mut q = vec![1.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p_values[i] * m as f64 / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn mann_whitney_p_values_match_the_tables() {
        // Complete separation of n vs n: 2 / C(2n, n).
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let b = [11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0];
        for (n, p) in [
            (3, 0.1),
            (4, 2.0 / 70.0),
            (5, 2.0 / 252.0),
            (7, 2.0 / 3432.0),
        ] {
            let t = two_sample_shift(&a[..n], &b[..n]).unwrap();
            assert!(close(t.p_value, p), "n = {n}: {}", t.p_value);
            assert_eq!(t.statistic, 0.0);
        }
        // One overlapping pair in 5 vs 5: U = 1, p = 2 × 2 / 252.
        let t = two_sample_shift(&[1.0, 2.0, 3.0, 4.0, 11.5], &b[..5]).unwrap();
        assert_eq!(t.statistic, 1.0);
        assert!(close(t.p_value, 4.0 / 252.0));
        // Interleaved samples: no evidence.
        assert!(
            two_sample_shift(&[1.0, 3.0, 5.0], &[2.0, 4.0, 6.0])
                .unwrap()
                .p_value
                > 0.5
        );
    }

    #[test]
    fn hodges_lehmann_and_moses_interval_of_a_pure_shift() {
        let a = [10.0, 10.5, 9.5, 10.2, 9.8, 10.1, 9.9];
        let b: Vec<f64> = a.iter().map(|x| x + 3.0).collect();
        let t = two_sample_shift(&a, &b).unwrap();
        assert!(close(t.estimate, 3.0), "{}", t.estimate);
        let (lo, hi) = t.interval.unwrap();
        assert!(lo < 3.0 && hi > 3.0 && lo > 2.0 && hi < 4.0, "{lo}..{hi}");
        // 7 vs 7 at 95 %: U ≤ 8 is significant, so the interval runs
        // from the 9th smallest to the 9th largest of 49 differences.
        let dist = RankDistribution::mann_whitney(7, 7);
        assert_eq!(dist.interval_rank(0.95), Some(9));
        assert_eq!(dist.critical_value(0.05), Some(8));
        // 3 vs 3 is too small for a 95 % interval.
        assert!(
            two_sample_shift(&a[..3], &b[..3])
                .unwrap()
                .interval
                .is_none()
        );
    }

    #[test]
    fn signed_rank_distribution_matches_the_tables() {
        // n = 10: P(T ≤ 8) = 0.0244, P(T ≤ 10) = 0.0420 (Wilcoxon's table).
        let d = RankDistribution::signed_rank(10);
        assert!((d.cdf(8.0) - 25.0 / 1024.0).abs() < 1e-12);
        assert!((d.cdf(10.0) - 43.0 / 1024.0).abs() < 1e-12);
        // All differences positive: p = 2 / 2ⁿ.
        let t = paired_shift(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]).unwrap();
        assert!(close(t.p_value, 2.0 / 64.0));
        assert!(close(t.estimate, 0.35));
        let t = paired_shift(&[-0.3, 0.1, -0.2, 0.25, 0.05, -0.15]).unwrap();
        assert!(t.p_value > 0.5);
    }

    #[test]
    fn normal_approximation_takes_over_for_large_or_tied_samples() {
        let a = [1.0; 30];
        assert!(two_sample_shift(&a, &a).unwrap().p_value > 0.99);
        let low: Vec<f64> = (0..100).map(f64::from).collect();
        let high: Vec<f64> = (200..300).map(f64::from).collect();
        let t = two_sample_shift(&low, &high).unwrap();
        assert!(t.p_value < 1e-12);
        assert!(close(t.estimate, 200.0));
        // The exact and the normal distribution agree where both apply.
        let exact = RankDistribution::mann_whitney(20, 20);
        let normal = RankDistribution::Normal {
            max: 400.0,
            variance: 400.0 * 41.0 / 12.0,
        };
        assert!((exact.cdf(130.0) - normal.cdf(130.0)).abs() < 0.005);
    }

    #[test]
    fn bh_matches_a_worked_example() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.20]);
        let expected = [0.04, 0.16 / 3.0, 0.16 / 3.0, 0.20];
        for (got, want) in q.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{q:?}");
        }
        assert_eq!(median(&[3.0, 1.0, 2.0, 4.0]), Some(2.5));
    }
}
