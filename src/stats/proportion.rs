//! Intervals for a share counted from samples (a profile's samples that
//! land in one function): Wilson's score interval, Kish's effective sample
//! size of a weighted sample, and how many samples a stated precision takes.
//!
//! Wilson rather than the normal ("Wald") interval: a profile's shares are
//! often small or rest on few samples, where the Wald interval runs below
//! zero and covers far less than it says. Written here because it is a few
//! lines on top of statrs's normal quantile.

use statrs::distribution::{ContinuousCDF, Normal};

/// The z of a two-sided interval of this confidence (1.96 at 0.95).
pub fn two_sided_z(confidence: f64) -> f64 {
    Normal::standard().inverse_cdf(0.5 + confidence / 2.0)
}

/// Wilson's score interval of a proportion `p` observed over `n` samples,
/// as fractions in 0..=1. `n` may be an effective, non-integer count; with
/// no samples nothing is known and the interval is all of 0..=1.
pub fn wilson_interval(p: f64, n: f64, z: f64) -> [f64; 2] {
    if n.is_nan() || n <= 0.0 || !p.is_finite() {
        return [0.0, 1.0];
    }
    let p = p.clamp(0.0, 1.0);
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At p = 0 (or 1) the bound is exactly 0 (or 1); rounding would leave
    // it a hair inside.
    let lo = if p == 0.0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if p == 1.0 {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    [lo, hi]
}

/// Kish's effective sample size, (Σw)² / Σw², of samples given as groups
/// of (count, weight each): equal weights give the count itself, unequal
/// ones fewer, because heavy samples carry more of the estimate.
pub fn kish_effective_n(groups: impl IntoIterator<Item = (f64, f64)>) -> f64 {
    let (sum, sum_sq) = groups
        .into_iter()
        .filter(|(count, weight)| *count > 0.0 && weight.is_finite())
        .fold((0.0, 0.0), |(s, q), (count, weight)| {
            (s + count * weight, q + count * weight * weight)
        });
    if sum_sq > 0.0 {
        sum * sum / sum_sq
    } else {
        0.0
    }
}

/// The fewest samples at which a share `p` would have a Wilson interval
/// no wider than ± `half_width` (fractions): close to the planning formula
/// z² p (1 − p) / E², but consistent with the interval that is shown, also
/// for shares near 0 where that formula asks for almost nothing.
pub fn samples_for_half_width(p: f64, half_width: f64, z: f64) -> u64 {
    let wide = |n: f64| {
        let [lo, hi] = wilson_interval(p, n, z);
        (hi - lo) / 2.0 > half_width
    };
    if half_width.is_nan() || half_width <= 0.0 {
        return u64::MAX;
    }
    // The half-width falls as n grows: double, then bisect.
    let mut high = 1.0_f64;
    while wide(high) {
        high *= 2.0;
        if high > 1e12 {
            return u64::MAX;
        }
    }
    let mut low = high / 2.0;
    while high - low > 0.5 {
        let mid = (low + high) / 2.0;
        if wide(mid) {
            low = mid;
        } else {
            high = mid;
        }
    }
    high.ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Binomial, Distribution};

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn wilson_matches_published_values() {
        let z = two_sided_z(0.95);
        assert!(close(z, 1.959_964, 1e-6), "{z}");
        // Newcombe (1998), Statistics in Medicine 17:857, table I, method
        // 3 (score interval without continuity correction): 81/263 gives
        // 0.2553–0.3662, 15/148 gives 0.0624–0.1605, 0/20 gives 0–0.1611.
        let [lo, hi] = wilson_interval(81.0 / 263.0, 263.0, z);
        assert!(
            close(lo, 0.2553, 5e-5) && close(hi, 0.3662, 5e-5),
            "{lo} {hi}"
        );
        let [lo, hi] = wilson_interval(15.0 / 148.0, 148.0, z);
        assert!(
            close(lo, 0.0624, 5e-5) && close(hi, 0.1605, 5e-5),
            "{lo} {hi}"
        );
        let [lo, hi] = wilson_interval(0.0, 20.0, z);
        assert!(lo == 0.0 && close(hi, 0.1611, 5e-5), "{lo} {hi}");
        // The case that started this: 13 of 57 samples (22.8 %) of a
        // share planted at 30 %.
        let [lo, hi] = wilson_interval(13.0 / 57.0, 57.0, z);
        assert!(
            close(lo, 0.1384, 5e-4) && close(hi, 0.3520, 5e-4),
            "{lo} {hi}"
        );
        assert_eq!(wilson_interval(0.5, 0.0, z), [0.0, 1.0]);
    }

    #[test]
    fn kish_counts_equal_weights_fully_and_unequal_ones_less() {
        assert!(close(kish_effective_n([(100.0, 0.01)]), 100.0, 1e-9));
        assert!(close(
            kish_effective_n([(50.0, 2.0), (50.0, 2.0)]),
            100.0,
            1e-9
        ));
        // 1000 samples at 100 Hz and 2000 at 200 Hz, 10 CPU-s each:
        // (10 + 10)² / (1000 × 0.01² + 2000 × 0.005²) = 400 / 0.15.
        let n = kish_effective_n([(1000.0, 0.01), (2000.0, 0.005)]);
        assert!(close(n, 400.0 / 0.15, 1e-6), "{n}");
        assert_eq!(kish_effective_n([]), 0.0);
    }

    #[test]
    fn samples_needed_meet_the_precision_and_agree_with_the_planning_formula() {
        let z = two_sided_z(0.95);
        for p in [0.05, 0.228, 0.3, 0.5] {
            let n = samples_for_half_width(p, 0.05, z);
            let half = |n: f64| {
                let [lo, hi] = wilson_interval(p, n, z);
                (hi - lo) / 2.0
            };
            assert!(half(n as f64) <= 0.05, "p {p}: n {n}");
            assert!(
                half(n as f64 - 1.0) > 0.05,
                "p {p}: n {n} is not the fewest"
            );
            // Away from 0 the planning formula agrees; near 0 Wilson's
            // interval is wider than the normal one and asks for more.
            let planning = z * z * p * (1.0 - p) / 0.0025;
            if p >= 0.2 {
                assert!(
                    (n as f64 - planning).abs() <= 0.02 * planning + 2.0,
                    "p {p}: {n} vs {planning}"
                );
            } else {
                assert!(n as f64 >= planning, "p {p}: {n} vs {planning}");
            }
        }
        // Near 0 the planning formula asks for 8 samples; the interval
        // shown would still be ±9 points with so few.
        assert!(samples_for_half_width(0.002, 0.05, z) > 30);
    }

    /// From a share planted at 30 %, binomial sample counts at n = 57 and
    /// n = 570: the 95 % interval covers the truth in at least 93 % of
    /// draws, and is about √10 times narrower with ten times the samples.
    #[test]
    fn the_interval_covers_a_planted_share() {
        let z = two_sided_z(0.95);
        let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0030);
        for n in [57_u64, 570] {
            let binomial = Binomial::new(n, 0.3).unwrap();
            let trials = 4000;
            let (mut covered, mut width) = (0, 0.0);
            for _ in 0..trials {
                let x = binomial.sample(&mut rng);
                let [lo, hi] = wilson_interval(x as f64 / n as f64, n as f64, z);
                covered += usize::from(lo <= 0.3 && 0.3 <= hi);
                width += hi - lo;
            }
            let coverage = covered as f64 / trials as f64;
            assert!(coverage >= 0.93, "n {n}: coverage {coverage}");
            let mean_half_pp = 100.0 * width / trials as f64 / 2.0;
            let expected = if n == 57 { 11.5 } else { 3.7 };
            assert!(
                close(mean_half_pp, expected, 0.5),
                "n {n}: ±{mean_half_pp:.1} points"
            );
        }
    }
}
