//! The gate's blind spot: the smallest change the night as shipped would
//! fail on with [`POWER`] probability, given the noise measured tonight
//! and the night-to-night noise the history gives.
//!
//! The night fails on a series when its first comparison declares it and
//! the confirming re-run (same night: same night offset, same common
//! shift) declares it again. Each declaration is a set of conditions of
//! the form `shift + ν > c`, where ν is what the night adds to the true
//! shift (the series' residual night offset, √2 σₙ g, and the common
//! shift's sampling error, SEc h) and each c comes from the runs' noise:
//! - the rank test is significant after Benjamini–Hochberg when its
//!   statistic is at most the design's declarable overlap u: `> −σ w₍ᵤ₊₁₎`,
//!   w the sorted pairwise differences (Walsh averages when paired) of
//!   standard normal runs;
//! - the rank interval's lower end clears the threshold t: `> t − σ w₍ₖ₎`;
//! - where the night adds variance the runs cannot show (a night offset,
//!   the common shift), the t test on the total standard error SE is
//!   significant, `> t* SE − σ w̃` (w̃ the median, t* the quantile of the
//!   smaller of 0.01 and 0.05 ÷ m), and its interval clears t too,
//!   `> t + t₉₅ SE − σ w̃`.
//!
//! So each simulated night has a smallest shift it fails on, the largest
//! of its c less ν, and the blind spot is the [`POWER`] quantile of those
//! over [`TRIALS`] nights drawn from a fixed seed: closed form per night,
//! no search.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use statrs::distribution::ContinuousCDF;

use super::design::{FDR, GateDesign, P_THRESHOLD, Pairing};
use super::noise::NightSd;
use crate::stats::CONFIDENCE;

/// The share of nights on which a change of the reported size fails the night.
pub const POWER: f64 = 0.8;
const TRIALS: usize = 4000;
const SEED: u64 = 0x4D44_45F0_0D5E_ED00;
/// The normal quantile of a 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

pub const MDE_RULE: &str = "the smallest change that fails the night on 80 % of nights as the gate is shipped (the first comparison and the same-night re-run both declare it; runs, comparisons, threshold): runs vary as tonight's did (log-normal with the pooled run-to-run SD), the night adds the series' night-to-night SD from the history (itself uncertain by its degrees of freedom) and the common shift's sampling error, simulated over 4000 seeded nights";

/// The order statistics one simulated comparison rests on (standard
/// normal runs, so they scale with the runs' SD).
#[derive(Debug, Clone, Copy)]
struct Draw {
    /// w₍ᵤ₊₁₎: the rank test is significant when shift > −σ × this.
    significance: f64,
    /// w₍ₖ₎: the interval's lower end is shift + σ × this.
    lower: f64,
    /// The median of the w: the Hodges–Lehmann estimate is shift + σ × this.
    centre: f64,
    /// The SE of the shift as the runs estimate it, per unit σ.
    standard_error: f64,
}

/// Per simulated night: the first comparison, its re-run, and the two
/// standard normals of the night's additions.
#[derive(Debug, Clone)]
pub struct MdeTable {
    nights: Vec<(Draw, Draw, [f64; 3])>,
    /// The level the added test must reach: min(P_THRESHOLD, FDR ÷ m).
    alpha: f64,
    /// Runs a side, for the runs' SE and degrees of freedom.
    runs: (usize, usize),
    pairing: Pairing,
}

/// What a comparison's noise is: all on the log scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseModel {
    /// Run-to-run SD (of the pairs' log ratios when paired).
    pub within_sd: f64,
    /// Sampling SE of the common shift taken out of the series (0 when
    /// none was).
    pub common_se: f64,
    /// The SD of one night's mean of this series from night to night, when
    /// the history gives it.
    pub night: Option<NightSd>,
}

impl NoiseModel {
    /// Whether the verdict adds a test for variance the rank test cannot
    /// see (see `combine` in the parent module).
    pub fn adds_variance(&self) -> bool {
        self.common_se > 0.0 || self.night.is_some()
    }

    /// The SE of a shift whose runs alone give `runs_se` (on `runs_dof`
    /// degrees of freedom), and the degrees of freedom of its t quantile:
    /// two nights' means differ by the variance the history shows (both
    /// nights' offsets and sampling), or by what tonight's runs show when
    /// that is larger; the common shift's sampling error comes on top.
    pub fn total_se(&self, runs_se: f64, runs_dof: f64) -> (f64, f64) {
        let (variance, dof) = match self.night {
            Some(n) if 2.0 * n.sd * n.sd > runs_se * runs_se => (2.0 * n.sd * n.sd, n.dof),
            _ => (runs_se * runs_se, runs_dof),
        };
        ((variance + self.common_se * self.common_se).sqrt(), dof)
    }
}

/// The two-sided Student-t quantile for `alpha` on `dof` degrees of freedom.
pub fn t_quantile(alpha: f64, dof: f64) -> f64 {
    statrs::distribution::StudentsT::new(0.0, 1.0, dof.max(1.0))
        .map_or(Z95, |t| t.inverse_cdf(1.0 - alpha / 2.0))
}

impl MdeTable {
    /// `None` when the design can declare nothing or has no interval.
    pub fn new(design: &GateDesign) -> Option<Self> {
        let overlap = usize::try_from(design.declarable_overlap?).ok()?;
        let k = design.distribution()?.interval_rank(CONFIDENCE)?;
        let mut rng = ChaCha8Rng::seed_from_u64(SEED);
        let draw = |rng: &mut ChaCha8Rng| -> Option<Draw> {
            let mut normal = |n: usize| -> Vec<f64> {
                (0..n).map(|_| StandardNormal.sample(&mut *rng)).collect()
            };
            let (mut shifts, standard_error) = match design.pairing {
                Pairing::Unpaired => {
                    let (a, b) = (normal(design.baseline_runs), normal(design.current_runs));
                    let sd = super::pooled_sd(&a, &b)?;
                    let se = sd * (1.0 / a.len() as f64 + 1.0 / b.len() as f64).sqrt();
                    (
                        a.iter()
                            .flat_map(|x| b.iter().map(move |y| y - x))
                            .collect::<Vec<f64>>(),
                        se,
                    )
                }
                Pairing::Paired => {
                    let d = normal(design.current_runs);
                    let se = super::sample_sd(&d)? / (d.len() as f64).sqrt();
                    let mut w = Vec::new();
                    for i in 0..d.len() {
                        for j in i..d.len() {
                            w.push((d[i] + d[j]) / 2.0);
                        }
                    }
                    (w, se)
                }
            };
            shifts.sort_by(f64::total_cmp);
            let n = shifts.len();
            let centre = if n % 2 == 1 {
                shifts[n / 2]
            } else {
                (shifts[n / 2 - 1] + shifts[n / 2]) / 2.0
            };
            Some(Draw {
                significance: *shifts.get(overlap)?,
                lower: *shifts.get(k - 1)?,
                centre,
                standard_error,
            })
        };
        let mut nights = Vec::with_capacity(TRIALS);
        for _ in 0..TRIALS {
            let first = draw(&mut rng)?;
            let rerun = draw(&mut rng)?;
            let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
            // The night's offset, the common shift's error, and how far the
            // history's estimate of the night SD is off this night.
            let additions = [normal(), normal(), normal()];
            nights.push((first, rerun, additions));
        }
        Some(Self {
            nights,
            alpha: P_THRESHOLD.min(FDR / design.comparisons.max(1) as f64),
            runs: (design.baseline_runs, design.current_runs),
            pairing: design.pairing,
        })
    }

    /// The blind spot on the log scale for threshold `t` (log scale);
    /// `confirmed`: the night needs the re-run to declare too.
    pub fn minimum_detectable_shift(
        &self,
        t: f64,
        noise: NoiseModel,
        confirmed: bool,
    ) -> Option<f64> {
        let sigma = noise.within_sd;
        let valid = |x: f64| x.is_finite() && x >= 0.0;
        if !(t.is_finite() && valid(sigma) && valid(noise.common_se))
            || noise.night.is_some_and(|n| !valid(n.sd))
            || self.nights.is_empty()
        {
            return None;
        }
        let (na, nb) = (self.runs.0 as f64, self.runs.1 as f64);
        let (runs_scale, runs_dof) = match self.pairing {
            Pairing::Unpaired => ((1.0 / na + 1.0 / nb).sqrt(), na + nb - 2.0),
            Pairing::Paired => ((1.0 / nb).sqrt(), nb - 1.0),
        };
        // What two nights add beyond their runs' sampling, for a night SD
        // off the history's estimate by u: log σ̂ has SD about 1 ÷ √(2 dof).
        let runs_variance = (sigma * runs_scale).powi(2);
        let night = |u: f64| {
            noise.night.map_or(0.0, |n| {
                let sd = n.sd * (u / (2.0 * n.dof).sqrt()).exp();
                (2.0 * sd * sd - runs_variance).max(0.0).sqrt()
            })
        };
        let quantiles = |dof: f64| (t_quantile(self.alpha, dof), t_quantile(0.05, dof));
        let by_runs = quantiles(runs_dof);
        let by_night = noise.night.map_or(by_runs, |n| quantiles(n.dof));
        let needs = |d: &Draw| -> f64 {
            let mut c = (-sigma * d.significance).max(t - sigma * d.lower);
            if noise.adds_variance() {
                let (se, dof) = noise.total_se(sigma * d.standard_error, runs_dof);
                let (significant, interval) = if dof == runs_dof { by_runs } else { by_night };
                c = c
                    .max(significant * se - sigma * d.centre)
                    .max(t + interval * se - sigma * d.centre);
            }
            c
        };
        let mut smallest: Vec<f64> = self
            .nights
            .iter()
            .map(|(first, rerun, [g, h, u])| {
                let added = night(*u) * g + noise.common_se * h;
                let c = if confirmed {
                    needs(first).max(needs(rerun))
                } else {
                    needs(first)
                };
                c - added
            })
            .collect();
        let at = ((smallest.len() as f64 * POWER).ceil() as usize).clamp(1, smallest.len());
        let (_, quantile, _) = smallest.select_nth_unstable_by(at - 1, f64::total_cmp);
        Some(quantile.max(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(sigma: f64) -> NoiseModel {
        NoiseModel {
            within_sd: sigma,
            common_se: 0.0,
            night: None,
        }
    }

    #[test]
    fn without_noise_the_threshold_is_the_blind_spot() {
        let table = MdeTable::new(&GateDesign::unpaired(7, 7, 16)).unwrap();
        let t = 1.05f64.ln();
        let mde = |n: NoiseModel, c: bool| table.minimum_detectable_shift(t, n, c).unwrap();
        assert!((mde(quiet(0.0), true) - t).abs() < 1e-12);
        // More noise, a larger blind spot; more runs, a smaller one; a
        // re-run that must agree, a larger one.
        let noisy = mde(quiet(0.05), true);
        assert!(noisy > mde(quiet(0.02), true));
        assert!(noisy > mde(quiet(0.05), false));
        let more = MdeTable::new(&GateDesign::unpaired(12, 12, 16)).unwrap();
        assert!(more.minimum_detectable_shift(t, quiet(0.05), true).unwrap() < noisy);
        // Night-to-night noise the runs cannot show widens it.
        let nights = NoiseModel {
            night: Some(NightSd {
                sd: 0.05,
                dof: 10.0,
            }),
            ..quiet(0.05)
        };
        assert!(mde(nights, true) > noisy + 0.02);
        // A design that cannot declare has no blind spot to report.
        assert!(MdeTable::new(&GateDesign::unpaired(5, 5, 16)).is_none());
    }
}
