//! Two-sample tests for run-level values: Mann–Whitney U (exact for small
//! samples without ties, normal approximation with tie correction
//! otherwise), Benjamini–Hochberg adjustment, and a bootstrap confidence
//! interval of the ratio of medians.
//!
//! Written here because no maintained crate offers an exact Mann–Whitney
//! distribution; statrs supplies the normal CDF.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{ContinuousCDF, Normal};

pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Above this many (n₁ × n₂) the exact distribution is replaced by the
/// normal approximation.
const EXACT_LIMIT: usize = 400;

/// Two-sided p-value of the Mann–Whitney U test; `None` if a sample is empty.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> Option<f64> {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    // U of `a`: pairs where a wins, ties count one half.
    let mut u = 0.0f64;
    let mut ties = false;
    for x in a {
        for y in b {
            if x > y {
                u += 1.0;
            } else if x == y {
                u += 0.5;
                ties = true;
            }
        }
    }
    let mean = (n1 * n2) as f64 / 2.0;
    if !ties && n1 * n2 <= EXACT_LIMIT {
        // counts[k] = arrangements with U = k (recurrence over sample sizes).
        let dist = exact_u_distribution(n1, n2);
        let total: f64 = dist.iter().sum();
        let observed = u.min((n1 * n2) as f64 - u) as usize;
        let tail: f64 = dist[..=observed].iter().sum::<f64>() / total;
        return Some((2.0f64 * tail).min(1.0));
    }
    // Normal approximation with tie correction and continuity correction.
    let mut all: Vec<f64> = a.iter().chain(b).copied().collect();
    all.sort_by(f64::total_cmp);
    let n = (n1 + n2) as f64;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < all.len() {
        let j = all[i..].iter().take_while(|v| **v == all[i]).count();
        let t = j as f64;
        tie_term += t * t * t - t;
        i += j;
    }
    let variance = (n1 * n2) as f64 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if variance <= 0.0 {
        return Some(1.0);
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / variance.sqrt();
    let normal = Normal::new(0.0, 1.0).ok()?;
    Some((2.0 * (1.0 - normal.cdf(z))).min(1.0))
}

/// Number of arrangements giving each U for samples of n1 and n2 (no ties).
fn exact_u_distribution(n1: usize, n2: usize) -> Vec<f64> {
    // f[m][n][u] via f(m, n, u) = f(m−1, n, u − n) + f(m, n−1, u).
    let max_u = n1 * n2;
    let mut table = vec![vec![vec![0.0f64; max_u + 1]; n2 + 1]; n1 + 1];
    for row in table.iter_mut() {
        row[0][0] = 1.0;
    }
    for cell in table[0].iter_mut() {
        cell[0] = 1.0;
    }
    for m in 1..=n1 {
        for n in 1..=n2 {
            for u in 0..=m * n {
                let from_m = if u >= n { table[m - 1][n][u - n] } else { 0.0 };
                table[m][n][u] = from_m + table[m][n - 1][u];
            }
        }
    }
    table[n1][n2].clone()
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

/// Percentile bootstrap 95 % CI of median(b) ÷ median(a).
pub fn bootstrap_median_ratio_ci(
    a: &[f64],
    b: &[f64],
    seed: u64,
    resamples: usize,
) -> Option<(f64, f64)> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let draw = |v: &[f64], rng: &mut ChaCha8Rng| -> Vec<f64> {
        (0..v.len())
            .map(|_| v[rng.random_range(0..v.len())])
            .collect()
    };
    let mut ratios: Vec<f64> = (0..resamples)
        .filter_map(|_| {
            let ma = median(&draw(a, &mut rng))?;
            let mb = median(&draw(b, &mut rng))?;
            (ma != 0.0).then(|| mb / ma)
        })
        .collect();
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    Some((at(0.025), at(0.975)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_p_values_match_the_tables() {
        // Complete separation of 5 vs 5: 2 / C(10,5) = 2/252.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [6.0, 7.0, 8.0, 9.0, 10.0];
        assert!((mann_whitney_p(&a, &b).unwrap() - 2.0 / 252.0).abs() < 1e-12);
        // 3 vs 3 separated: 2/20 — never below 0.01, whatever the data.
        assert!((mann_whitney_p(&a[..3], &b[..3]).unwrap() - 0.1).abs() < 1e-12);
        // Interleaved samples: no evidence.
        assert!(mann_whitney_p(&[1.0, 3.0, 5.0], &[2.0, 4.0, 6.0]).unwrap() > 0.5);
    }

    #[test]
    fn normal_approximation_handles_ties() {
        let a = [1.0; 30];
        let b = [1.0; 30];
        assert_eq!(mann_whitney_p(&a, &b), Some(1.0));
        let low: Vec<f64> = (0..30).map(f64::from).collect();
        let high: Vec<f64> = (100..130).map(f64::from).collect();
        assert!(mann_whitney_p(&low, &high).unwrap() < 1e-9);
    }

    #[test]
    fn bh_matches_a_worked_example() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.20]);
        let expected = [0.04, 0.16 / 3.0, 0.16 / 3.0, 0.20];
        for (got, want) in q.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{q:?}");
        }
    }

    #[test]
    fn bootstrap_brackets_a_clear_ratio() {
        let a = [10.0, 10.2, 9.9, 10.1, 10.0];
        let b = [20.0, 20.3, 19.8, 20.1, 20.0];
        let (lo, hi) = bootstrap_median_ratio_ci(&a, &b, 1, 2000).unwrap();
        assert!(lo > 1.9 && hi < 2.1, "{lo}..{hi}");
        assert_eq!(median(&[3.0, 1.0, 2.0, 4.0]), Some(2.5));
    }
}
