//! The smallest change a design could have declared, given the noise
//! measured tonight: each comparison's blind spot.
//!
//! A change is declared when two things hold on the log scale: the rank
//! statistic is at most the design's declarable overlap (significance
//! after Benjamini–Hochberg), and the lower end of the shift's interval
//! lies beyond the threshold. With runs drawn as `shift + σ · z`, z
//! standard normal, both are order statistics of the pairwise differences
//! (or Walsh averages, when paired) of the z: the first holds when
//! `shift > −σ · z₍ᵤ₊₁₎`, the second when `shift > t − σ · z₍ₖ₎`. So each
//! simulated night has a smallest declarable shift, and the minimum
//! detectable effect is the [`POWER`] quantile of those over
//! [`TRIALS`] nights, drawn from a fixed seed.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::design::{GateDesign, Pairing};
use crate::stats::CONFIDENCE;

/// The share of nights on which a change of the reported size is declared.
pub const POWER: f64 = 0.8;
const TRIALS: usize = 4000;
const SEED: u64 = 0x4D44_45F0_0D5E_ED00;

pub const MDE_RULE: &str = "the smallest change declared on 80 % of nights by this design (runs, comparisons, threshold) when runs vary as tonight's did: log-normal noise with the pooled run-to-run SD, simulated over 4000 seeded nights";

/// Per simulated night, the standard-normal order statistics the two
/// conditions rest on.
#[derive(Debug, Clone)]
pub struct MdeTable {
    /// (z at the declarable overlap, z at the interval's rank).
    nights: Vec<(f64, f64)>,
}

impl MdeTable {
    /// `None` when the design can declare nothing or has no interval.
    pub fn new(design: &GateDesign) -> Option<Self> {
        let overlap = usize::try_from(design.declarable_overlap?).ok()?;
        let k = design.distribution()?.interval_rank(CONFIDENCE)?;
        let mut rng = ChaCha8Rng::seed_from_u64(SEED);
        let mut draw = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|_| StandardNormal.sample(&mut rng))
                .collect::<Vec<f64>>()
        };
        let nights = (0..TRIALS)
            .filter_map(|_| {
                let mut shifts = match design.pairing {
                    Pairing::Unpaired => {
                        let (a, b) = (draw(design.baseline_runs), draw(design.current_runs));
                        a.iter()
                            .flat_map(|x| b.iter().map(move |y| y - x))
                            .collect::<Vec<f64>>()
                    }
                    Pairing::Paired => {
                        let d = draw(design.current_runs);
                        let mut w = Vec::new();
                        for i in 0..d.len() {
                            for j in i..d.len() {
                                w.push((d[i] + d[j]) / 2.0);
                            }
                        }
                        w
                    }
                };
                shifts.sort_by(f64::total_cmp);
                Some((*shifts.get(overlap)?, *shifts.get(k - 1)?))
            })
            .collect();
        Some(Self { nights })
    }

    /// The minimum detectable shift on the log scale, for a threshold `t`
    /// (log scale) and run-to-run noise `sigma` (SD of log values; of the
    /// pairs' log ratios when paired).
    pub fn minimum_detectable_shift(&self, t: f64, sigma: f64) -> Option<f64> {
        if !(t.is_finite() && sigma.is_finite() && sigma >= 0.0) || self.nights.is_empty() {
            return None;
        }
        let mut smallest: Vec<f64> = self
            .nights
            .iter()
            .map(|(z_overlap, z_interval)| (-sigma * z_overlap).max(t - sigma * z_interval))
            .collect();
        smallest.sort_by(f64::total_cmp);
        let at = ((smallest.len() as f64 * POWER).ceil() as usize).clamp(1, smallest.len());
        Some(smallest[at - 1].max(t))
    }
}

/// Pooled SD of two samples of log values; `None` with fewer than two
/// degrees of freedom.
pub fn pooled_sd(a: &[f64], b: &[f64]) -> Option<f64> {
    let ss = |v: &[f64]| {
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>()
    };
    let dof = (a.len() + b.len()).checked_sub(2).filter(|d| *d > 0)?;
    Some(((ss(a) + ss(b)) / dof as f64).sqrt())
}

/// SD of one sample; `None` with fewer than two values.
pub fn sample_sd(v: &[f64]) -> Option<f64> {
    let dof = v.len().checked_sub(1).filter(|d| *d > 0)?;
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    Some((v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / dof as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_noise_the_threshold_is_the_blind_spot() {
        let table = MdeTable::new(&GateDesign::unpaired(7, 7, 16)).unwrap();
        let t = 1.05f64.ln();
        assert!((table.minimum_detectable_shift(t, 0.0).unwrap() - t).abs() < 1e-12);
        // More noise, a larger blind spot; more runs, a smaller one.
        let noisy = table.minimum_detectable_shift(t, 0.05).unwrap();
        assert!(noisy > table.minimum_detectable_shift(t, 0.02).unwrap());
        let more = MdeTable::new(&GateDesign::unpaired(12, 12, 16)).unwrap();
        assert!(more.minimum_detectable_shift(t, 0.05).unwrap() < noisy);
        // A design that cannot declare has no blind spot to report.
        assert!(MdeTable::new(&GateDesign::unpaired(5, 5, 16)).is_none());
    }
}
