//! Capacity under SLOs: the highest offered rate at which every request
//! SLO holds (p99 TTFT, p99 TPOT, the error budget), with a 95 % interval,
//! found by bracketing then bisecting, each probe stopped as soon as its
//! verdict is settled.
//!
//! A percentile SLO is a statement about a share: "p99 TTFT ≤ 50 ms" holds
//! exactly when at most 1 % of requests take longer. So each probe counts,
//! per SLO, the requests that broke it, and an exact binomial test against
//! the allowed share settles it: met when so few broke it that a share as
//! large as the allowed one would rarely give so few, broken when so many
//! did that it would rarely give so many. This is MLPerf's early stopping
//! (order statistics of the percentile) made two-sided; it assumes the
//! requests of a probe's steady window are independent, which the seeded
//! simulation in `tests/library/gate.rs` checks on a queue, where they are not.
//!
//! The errors of a verdict are spent once per probe and look: each look
//! at `n` requests tests at α / looks (Bonferroni), a fail over several
//! SLOs at α / (looks × SLOs), and α itself is the search's
//! (1 − confidence) / 2 shared over its most probes, so that the
//! interval between the highest settled pass and the lowest settled fail
//! covers the capacity with at least the stated confidence.
//!
//! The point estimate is another matter: it interpolates the breaking
//! share between probes, and a count of a few hundred breaking requests
//! is too coarse for ±3 %. It takes each latency SLO's share from the
//! tail of the latencies instead ([`TailShare`]); the verdicts and the
//! interval never do.
//!
//! Written here because no crate searches a noisy monotone threshold with
//! sequential binomial tests; statrs gives the binomial tails.

use serde::Serialize;
use statrs::function::beta::checked_beta_reg;

/// A request SLO: a name for the report and the largest share of requests
/// that may break it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestSlo {
    /// What it bounds, e.g. `ttft_ms p99 ≤ 50`.
    pub name: String,
    /// 0.01 for a p99, the error budget as a fraction for errors.
    pub allowed_share: f64,
    /// The value of a request's measure (`ProbeDesign::judge`'s
    /// `measures`) above which it breaks the SLO; `None` for an SLO that is
    /// only counted (the error budget).
    pub bound: Option<f64>,
}

/// The most SLOs one search judges (a request's broken SLOs are a bit set).
pub const MAX_SLOS: usize = 8;

/// The SLOs a request broke, bit `i` for `slos[i]`.
pub type BrokenSlos = u8;

/// How a probe is judged: how many requests warm the server up, when it
/// looks, and at what error per look.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeDesign {
    /// Requests sent first and not judged (the queue fills from empty).
    pub warmup_requests: usize,
    /// The numbers of judged requests at which the verdict is tested,
    /// doubling up to the most a probe sends.
    pub looks: Vec<usize>,
    /// Each look's chance of a wrong pass.
    pub alpha_pass: f64,
    /// Each look's chance of a wrong fail, per SLO.
    pub alpha_fail: f64,
    /// The least autocorrelation time a probe's requests are taken to
    /// have: what the search measured at a higher rate (see
    /// [`CapacitySearch::clustering_above`]); 1 for the first probes.
    pub least_clustering: f64,
}

impl ProbeDesign {
    /// Looks at `min_requests`, twice that, … up to `max_requests`; errors
    /// spent so that `max_probes` probes keep `confidence` for the interval.
    pub fn new(
        confidence: f64,
        max_probes: usize,
        (warmup_requests, min_requests, max_requests): (usize, usize, usize),
        slos: usize,
    ) -> Self {
        let mut looks = Vec::new();
        let mut n = min_requests.max(1);
        while n < max_requests {
            looks.push(n);
            n = n.saturating_mul(2);
        }
        looks.push(max_requests.max(1));
        let per_verdict = (1.0 - confidence).max(0.0) / 2.0 / max_probes.max(1) as f64;
        let per_look = per_verdict / looks.len() as f64;
        Self {
            warmup_requests,
            looks,
            alpha_pass: per_look,
            alpha_fail: per_look / slos.max(1) as f64,
            least_clustering: 1.0,
        }
    }

    /// This design for a probe whose requests cluster at least `tau`-fold.
    pub fn clustered_at_least(&self, tau: f64) -> Self {
        Self {
            least_clustering: tau.max(1.0),
            ..self.clone()
        }
    }

    /// The most requests a probe sends.
    pub fn max_requests(&self) -> usize {
        self.warmup_requests + self.looks.last().copied().unwrap_or(0)
    }

    /// Whether `judged` (the steady window's requests so far, in arrival
    /// order; a look's worth of them) settles the probe. `latency` is the
    /// same requests' latency (TTFT), whose autocorrelation says how many
    /// independent requests they are worth. `None`: look again later; at
    /// the last look the answer is never `None`.
    ///
    /// `measures[i]` is what SLO `i` bounds, per judged request (NaN where
    /// a request has none: it failed, or gave one token), empty for an
    /// SLO without a bound; it feeds the tail estimate of the breaking
    /// share, never the verdict, which rests on the counts alone.
    pub fn judge(
        &self,
        slos: &[RequestSlo],
        judged: &[BrokenSlos],
        latency: &[f64],
        measures: &[&[f64]],
    ) -> Option<Judgement> {
        let n = judged.len();
        let last = self.looks.last().is_none_or(|l| n >= *l);
        let broke: Vec<u64> = (0..slos.len())
            .map(|i| judged.iter().filter(|b| **b & (1 << i) != 0).count() as u64)
            .collect();
        // Each SLO's breaches cluster at least as much as the latency
        // does, and may cluster more (an outage's errors).
        // A window without a busy spell shows no clustering, though the
        // spells are there: below the capacity a queue's breaches come in
        // rare, dense spells, and 800 requests with none would pass a p99
        // that the next 800 break 20 at a time. So the clustering is at
        // least what the search measured at a higher rate.
        let tau_latency = autocorrelation_time(latency).max(self.least_clustering);
        let taus: Vec<f64> = (0..slos.len())
            .map(|i| {
                let broken: Vec<f64> = judged
                    .iter()
                    .map(|b| f64::from(u8::from(*b & (1 << i) != 0)))
                    .collect();
                tau_latency.max(autocorrelation_time(&broken))
            })
            .collect();
        let tau = taus.iter().copied().fold(1.0, f64::max);
        let n_eff = n as f64 / tau;
        let failed = slos
            .iter()
            .zip(&broke)
            .zip(&taus)
            .position(|((slo, k), t)| {
                too_many(
                    *k as f64 / t,
                    n as f64 / t,
                    slo.allowed_share,
                    self.alpha_fail,
                )
            });
        let all_met = slos.iter().zip(&broke).zip(&taus).all(|((slo, k), t)| {
            few_enough(
                *k as f64 / t,
                n as f64 / t,
                slo.allowed_share,
                self.alpha_pass,
            )
        });
        let verdict = match failed {
            Some(slo) => ProbeVerdict::Fail { slo },
            None if all_met => ProbeVerdict::Pass,
            None if last => ProbeVerdict::Unsettled,
            None => return None,
        };
        let tail_shares = slos
            .iter()
            .enumerate()
            .map(|(i, slo)| {
                let values = measures.get(i).filter(|v| v.len() == n)?;
                tail_share(values, slo.bound?, slo.allowed_share, taus[i], broke[i])
            })
            .collect();
        Some(Judgement {
            verdict,
            requests: n,
            effective_requests: n_eff,
            broke,
            tail_shares,
        })
    }
}

/// An SLO's breaking share estimated from the tail of its measure rather
/// than counted. Near the capacity a p99's count rests on a few hundred
/// requests past the bound, and the estimate's precision on that count;
/// the requests past a lower threshold (the share that a p99 allows
/// twenty times over) are twenty times as many, and the shape of their
/// excesses carries the rest of the way to the bound. The excesses are
/// taken as exponential: the generalized Pareto tail of shape 0, which a
/// queue's waits have (Erlang C) and light-tailed latencies approach.
/// The count is used instead where the excesses do not keep that shape
/// (those above the tail's median are not as long as those above its
/// start: the threshold fell in the body, a prefill floor with jitter),
/// or where the count contradicts the fit by more than 3 standard errors
/// of the two together (an upper bound: the two share their requests).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TailShare {
    /// The estimated share of requests above the bound.
    pub share: f64,
    /// The standard error of its logarithm, clustering included.
    pub ln_se: f64,
    /// Where the tail starts, and how many requests lie above it.
    pub threshold: f64,
    pub tail_requests: usize,
}

/// How many times the allowed share the tail holds (the p80 for a p99;
/// a quarter of the requests at most, so that a loose SLO's tail stays a
/// tail). A longer tail is a tighter fit where the shape holds, and the
/// shape check refuses one that reaches into the body.
const TAIL_OVER_ALLOWED: f64 = 20.0;
const TAIL_MOST_SHARE: f64 = 0.25;
/// Fewer requests in the tail than this and the count is used.
const TAIL_LEAST_REQUESTS: usize = 20;

/// The tail estimate of the share of `values` above `bound` (NaN values
/// count as below it), whose clustering is `tau` and of which `broke` were
/// counted above it; `None` where there is no tail to fit (values tied
/// with the threshold are left out of it), the bound lies inside it (the
/// count is as good), the excesses are not exponential in shape, or the
/// count contradicts the fit.
fn tail_share(values: &[f64], bound: f64, allowed: f64, tau: f64, broke: u64) -> Option<TailShare> {
    let n = values.len();
    let wanted = (n as f64 * (TAIL_OVER_ALLOWED * allowed).min(TAIL_MOST_SHARE)).round() as usize;
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if wanted < TAIL_LEAST_REQUESTS || wanted >= finite.len() || allowed <= 0.0 {
        return None;
    }
    // The `wanted` largest, and the threshold just below them; values
    // tied with it (a floor many requests sit on) are not in the tail.
    let cut = finite.len() - wanted - 1;
    finite.select_nth_unstable_by(cut, f64::total_cmp);
    let threshold = finite[cut];
    let mut tail: Vec<f64> = finite[cut + 1..]
        .iter()
        .copied()
        .filter(|v| *v > threshold)
        .collect();
    let m = tail.len();
    if m < TAIL_LEAST_REQUESTS || bound <= threshold {
        return None;
    }
    let mean_excess = tail.iter().map(|v| v - threshold).sum::<f64>() / m as f64;
    // Above an exponential tail's median the excesses have the same
    // mean. Where fewer requests queue than the tail holds, the threshold
    // lies in the body (prefill and jitter) and the upper half's excesses
    // are far longer: the shape does not hold, and the count is used.
    let half = m / 2;
    tail.select_nth_unstable_by(half, f64::total_cmp);
    let median = tail[half];
    let upper: Vec<f64> = tail[half + 1..]
        .iter()
        .map(|v| v - median)
        .filter(|e| *e > 0.0)
        .collect();
    if upper.len() < TAIL_LEAST_REQUESTS / 2 {
        return None;
    }
    let upper_excess = upper.iter().sum::<f64>() / upper.len() as f64;
    let stable_within = 3.0
        * (tau * (1.0 / upper.len() as f64 - 1.0 / m as f64))
            .max(0.0)
            .sqrt();
    if (upper_excess / mean_excess).ln().abs() > stable_within {
        return None;
    }
    let above = m as f64 / n as f64;
    let scales = (bound - threshold) / mean_excess;
    let share = above * (-scales).exp();
    // ln share = ln above − (bound − threshold) / mean excess: the
    // relative variances of the count above and of the mean excess, each
    // over tau-fold clustering.
    let ln_variance = tau / m as f64 * ((1.0 - above) + scales * scales);
    let expected = n as f64 * share;
    let count_variance = tau / (broke as f64 + 0.5);
    let apart = ((broke as f64 + 0.5) / (expected + 0.5)).ln().abs();
    if apart > 3.0 * (ln_variance + count_variance).sqrt() {
        return None;
    }
    Some(TailShare {
        share,
        ln_se: ln_variance.sqrt(),
        threshold,
        tail_requests: m,
    })
}

/// The integrated autocorrelation time of `x`: how many consecutive
/// values carry one value's worth of information (1 for independent ones),
/// by batch means: τ = batch size × the variance of the batch means ÷ the
/// variance of the values, in batches of √n values or n/25, whichever is
/// larger (an estimate cannot exceed its batch size, and a queue near
/// saturation has long memory). A queue's requests
/// are far from independent: a busy spell delays many in a row, so its
/// slow requests come in clusters that a count of requests would take for
/// many independent ones. Batch means rather than summed
/// autocorrelations: linear in n, where the sums cost n per lag and a
/// queue near saturation needs thousands of lags.
pub fn autocorrelation_time(x: &[f64]) -> f64 {
    let n = x.len();
    let batch = ((n as f64).sqrt().floor() as usize).max(n / 25);
    if batch < 2 {
        return 1.0;
    }
    let batches = n / batch;
    let used = &x[..batches * batch];
    let mean = used.iter().sum::<f64>() / used.len() as f64;
    let variance = used.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (used.len() - 1) as f64;
    if variance <= 0.0 || !variance.is_finite() {
        return 1.0;
    }
    let batch_variance = used
        .chunks(batch)
        .map(|c| (c.iter().sum::<f64>() / batch as f64 - mean).powi(2))
        .sum::<f64>()
        / (batches - 1).max(1) as f64;
    (batch as f64 * batch_variance / variance).max(1.0)
}

/// Whether `k` of `n` breaking is so few that a true share of `allowed`
/// (or more) would give as few with probability at most `alpha`. The
/// counts may be effective (not whole): P(X ≤ k) = I₁₋ₚ(n − k, k + 1).
fn few_enough(k: f64, n: f64, allowed: f64, alpha: f64) -> bool {
    if n <= 0.0 || allowed >= 1.0 {
        return n > 0.0;
    }
    if allowed <= 0.0 {
        // A budget of nothing is never shown to hold by counting, only
        // broken by one failure; a clean probe passes it.
        return k == 0.0;
    }
    if k >= n {
        return false;
    }
    checked_beta_reg(n - k, k + 1.0, 1.0 - allowed).is_ok_and(|p| p <= alpha)
}

/// Whether `k` of `n` breaking is so many that a true share of `allowed`
/// (or less) would give as many with probability at most `alpha`:
/// P(X ≥ k) = Iₚ(k, n − k + 1).
fn too_many(k: f64, n: f64, allowed: f64, alpha: f64) -> bool {
    if k <= 0.0 || allowed >= 1.0 {
        return false;
    }
    if allowed <= 0.0 {
        return true;
    }
    if k > n {
        return true;
    }
    checked_beta_reg(k, n - k + 1.0, allowed).is_ok_and(|p| p <= alpha)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum ProbeVerdict {
    /// Every SLO met, settled.
    Pass,
    /// SLO `slo` broken, settled.
    Fail { slo: usize },
    /// The most requests a probe sends did not settle it: its rate is
    /// close to the capacity.
    Unsettled,
}

/// A probe's verdict and the counts it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    pub verdict: ProbeVerdict,
    /// Requests judged (the steady window, warm-up excluded).
    pub requests: usize,
    /// What they are worth as independent requests: `requests` over their
    /// latency's autocorrelation time.
    pub effective_requests: f64,
    /// Of them, how many broke each SLO.
    pub broke: Vec<u64>,
    /// Each SLO's breaking share from the tail of its measure, where one
    /// could be fitted (see [`TailShare`]); the capacity estimate uses it.
    pub tail_shares: Vec<Option<TailShare>>,
}

impl Judgement {
    /// The judged requests' autocorrelation time: how many of them count
    /// as one independent request (at least 1).
    pub fn clustering(&self) -> f64 {
        (self.requests.max(1) as f64 / self.effective_requests.max(f64::MIN_POSITIVE)).max(1.0)
    }

    /// An SLO's share of breaking requests counted, `k` of the requests
    /// judged, with half a request added so that a probe where none broke
    /// still has a finite share to interpolate on.
    fn counted_share(&self, k: u64) -> f64 {
        (k as f64 + 0.5) / (self.requests as f64 + 1.0)
    }

    /// The worst SLO's estimated share over its allowed share, and the
    /// weight of its logarithm (its inverse variance): from the tail fit
    /// where there is one, else from the count (half a request added, as
    /// in [`Self::counted_share`]) weighted by the effective count of breaking
    /// requests (none: no weight).
    pub fn estimated_pressure(&self, slos: &[RequestSlo]) -> (f64, f64) {
        let tau = self.clustering();
        slos.iter()
            .zip(&self.broke)
            .zip(self.tail_shares.iter().chain(std::iter::repeat(&None)))
            .map(|((slo, k), tail)| {
                if slo.allowed_share <= 0.0 {
                    return if *k > 0 {
                        (f64::INFINITY, 0.0)
                    } else {
                        (0.0, 0.0)
                    };
                }
                match tail {
                    Some(t) => (t.share / slo.allowed_share, t.ln_se.powi(-2)),
                    None => (self.counted_share(*k) / slo.allowed_share, *k as f64 / tau),
                }
            })
            .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
    }

    /// The worst SLO's counted share of breaking requests over its
    /// allowed share: below 1 the probe looks within its SLOs.
    pub fn pressure(&self, slos: &[RequestSlo]) -> f64 {
        slos.iter()
            .zip(&self.broke)
            .map(|(slo, k)| {
                if slo.allowed_share <= 0.0 {
                    // A budget of nothing: broken by one, untouched by none.
                    return if *k > 0 { f64::INFINITY } else { 0.0 };
                }
                self.counted_share(*k) / slo.allowed_share
            })
            .fold(0.0, f64::max)
    }
}

/// What a probe measured besides its verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    pub rate_per_s: f64,
    pub judgement: Judgement,
    /// Requests sent, warm-up included.
    pub sent: usize,
    /// From the first send to the last request's end.
    pub elapsed_s: f64,
    /// The steady window judged: from the first judged request's arrival to
    /// the last one's, seconds after the probe's start.
    pub window_s: [f64; 2],
    /// Requests of the window that met every SLO, per second of it.
    pub goodput_per_s: f64,
    /// Requests of the window that finished, per second of it.
    pub achieved_per_s: f64,
    /// The server fell behind the offered rate (achieved below 90 % of it):
    /// its queue grows without bound (such a probe fails at its first
    /// looks, since every request behind the backlog breaks a latency SLO).
    pub over_saturated: bool,
}

/// Where the search may go and when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SearchSettings {
    pub start_rate_per_s: f64,
    pub min_rate_per_s: f64,
    pub max_rate_per_s: f64,
    pub max_probes: usize,
    /// Stop once the highest pass and the lowest fail are within this
    /// ratio of each other (0.05: 5 %).
    pub tolerance: f64,
    /// The factor a bracketing step moves by.
    pub growth: f64,
    /// Of the interval between the highest settled pass and the lowest
    /// settled fail (0.95).
    pub confidence: f64,
}

impl SearchSettings {
    /// Starts at half the rate the server completed flat out (a closed
    /// loop at its most concurrency) and never offers more than 1.25×
    /// it: no rate past what the server completes can meet a latency SLO,
    /// and the quarter is room for the noise of that one measurement.
    pub fn from_saturation(
        saturation_per_s: f64,
        max_probes: usize,
        tolerance: f64,
        confidence: f64,
    ) -> Self {
        Self {
            start_rate_per_s: saturation_per_s / 2.0,
            min_rate_per_s: saturation_per_s / 1000.0,
            max_rate_per_s: saturation_per_s * 1.25,
            max_probes,
            tolerance,
            growth: 2.0,
            confidence,
        }
    }

    /// The probe design that keeps this search's confidence.
    pub fn design(
        &self,
        warmup_requests: usize,
        min_requests: usize,
        max_requests: usize,
        slos: usize,
    ) -> ProbeDesign {
        ProbeDesign::new(
            self.confidence,
            self.max_probes,
            (warmup_requests, min_requests, max_requests),
            slos,
        )
    }
}

/// The probes so far and where to probe next.
#[derive(Debug, Clone)]
pub struct CapacitySearch {
    pub settings: SearchSettings,
    pub slos: Vec<RequestSlo>,
    pub probes: Vec<Probe>,
}

impl CapacitySearch {
    pub fn new(settings: SearchSettings, slos: Vec<RequestSlo>) -> Self {
        Self {
            settings,
            slos,
            probes: Vec::new(),
        }
    }

    /// The highest rate that passed and the lowest that failed, settled or
    /// (with `soft`) leaning that way by the estimate's own pressure, so
    /// that the search goes on until the estimate has a probe on either
    /// side of the capacity.
    fn bracket(&self, soft: bool) -> (Option<f64>, Option<f64>) {
        let mut low: Option<f64> = None;
        let mut high: Option<f64> = None;
        for p in &self.probes {
            let side = match p.judgement.verdict {
                ProbeVerdict::Pass => Some(true),
                ProbeVerdict::Fail { .. } => Some(false),
                ProbeVerdict::Unsettled if soft => {
                    Some(p.judgement.estimated_pressure(&self.slos).0 < 1.0)
                }
                ProbeVerdict::Unsettled => None,
            };
            match side {
                Some(true) => low = Some(low.map_or(p.rate_per_s, |l| l.max(p.rate_per_s))),
                Some(false) => high = Some(high.map_or(p.rate_per_s, |h| h.min(p.rate_per_s))),
                None => {}
            }
        }
        (low, high)
    }

    /// The rate of the next probe; `None` when the search is done.
    pub fn next_rate(&self) -> Option<f64> {
        let s = &self.settings;
        if self.probes.len() >= s.max_probes {
            return None;
        }
        if self.probes.is_empty() {
            return Some(s.start_rate_per_s.clamp(s.min_rate_per_s, s.max_rate_per_s));
        }
        let tried = |rate: f64| {
            self.probes
                .iter()
                .any(|p| (p.rate_per_s / rate - 1.0).abs() < 1e-9)
        };
        let next = match self.bracket(true) {
            (Some(low), None) => (low * s.growth).min(s.max_rate_per_s),
            (None, Some(high)) => (high / s.growth).max(s.min_rate_per_s),
            (Some(low), Some(high)) if low < high => {
                if high / low <= 1.0 + s.tolerance {
                    return None;
                }
                (low * high).sqrt()
            }
            // A pass above a fail: the noise crossed; probe between them
            // once more, where the truth must be.
            (Some(low), Some(high)) => {
                let (a, b) = (high.min(low), high.max(low));
                if b / a <= 1.0 + s.tolerance {
                    return None;
                }
                (a * b).sqrt()
            }
            (None, None) => return None,
        };
        (!tried(next)).then_some(next)
    }

    /// The autocorrelation time measured at the lowest rate above `rate`
    /// (1 when none was probed): a queue's requests cluster more as its
    /// load grows, so this is the least a probe at `rate` can be taken to
    /// have. Over-saturated probes are left out (their queue only grows).
    pub fn clustering_above(&self, rate: f64) -> f64 {
        self.probes
            .iter()
            .filter(|p| p.rate_per_s > rate && !p.over_saturated)
            .min_by(|a, b| a.rate_per_s.total_cmp(&b.rate_per_s))
            .map_or(1.0, |p| p.judgement.clustering())
    }

    pub fn record(&mut self, probe: Probe) {
        self.probes.push(probe);
    }

    pub fn result(&self) -> CapacityResult {
        let (low, high) = self.bracket(false);
        let crossed = matches!((low, high), (Some(l), Some(h)) if l > h);
        let estimate = self.estimate();
        let grid_s = self.grid_time_s();
        CapacityResult {
            capacity_per_s: estimate,
            interval_per_s: [low, high],
            confidence_pct: 100.0 * self.settings.confidence,
            crossed,
            probes: self.probes.len(),
            search_s: self.probes.iter().map(|p| p.elapsed_s).sum(),
            grid_s,
        }
    }

    /// The rate where the worst SLO's estimated pressure crosses 1: a
    /// weighted least-squares line of log pressure on log rate through
    /// the probes whose pressure lies within 10× of 1 either way (each
    /// weighted by the inverse of its log pressure's variance, see
    /// [`Judgement::estimated_pressure`]), solved for pressure 1; with fewer than two
    /// such probes, or a line that does not rise, interpolated between the
    /// closest probes on either side. `None` until both sides were probed.
    fn estimate(&self) -> Option<f64> {
        let mut points: Vec<(f64, f64, f64)> = self
            .probes
            .iter()
            .map(|p| {
                let (pressure, weight) = p.judgement.estimated_pressure(&self.slos);
                (p.rate_per_s, pressure, weight)
            })
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let below = points.iter().rev().find(|p| p.1 < 1.0).copied();
        let above = points.iter().find(|p| p.1 >= 1.0).copied();
        let ((r0, p0, _), (r1, p1, _)) = match (below, above) {
            (Some(b), Some(a)) => (b, a),
            _ => return None,
        };
        if r0 >= r1 {
            // Crossed: the midpoint of the two closest probes.
            return Some((r0 * r1).sqrt());
        }
        let fit: Vec<(f64, f64, f64)> = points
            .iter()
            .filter(|(_, pressure, k)| *k > 0.0 && (0.1..=10.0).contains(pressure))
            .map(|(r, pressure, k)| (r.ln(), pressure.ln(), *k))
            .collect();
        if fit.len() >= 2 {
            let w: f64 = fit.iter().map(|p| p.2).sum();
            let mx = fit.iter().map(|p| p.2 * p.0).sum::<f64>() / w;
            let my = fit.iter().map(|p| p.2 * p.1).sum::<f64>() / w;
            let sxx: f64 = fit.iter().map(|p| p.2 * (p.0 - mx).powi(2)).sum();
            let sxy: f64 = fit.iter().map(|p| p.2 * (p.0 - mx) * (p.1 - my)).sum();
            if sxx > 0.0 && sxy > 0.0 {
                let slope = sxy / sxx;
                let at = mx - my / slope;
                return Some(at.exp().clamp(r0, r1));
            }
        }
        let (l0, l1) = (p0.ln(), p1.ln());
        let t = if (l1 - l0).abs() < 1e-12 {
            0.5
        } else {
            (-l0 / (l1 - l0)).clamp(0.0, 1.0)
        };
        Some((r0.ln() + t * (r1.ln() - r0.ln())).exp())
    }

    /// What a 10-point grid (10 %, 20 %, … 100 % of the highest rate
    /// probed) would take at every point's most requests: the time the
    /// search saved is measured against it.
    fn grid_time_s(&self) -> f64 {
        let top = self.probes.iter().map(|p| p.rate_per_s).fold(0.0, f64::max);
        let most = self.probes.iter().map(|p| p.sent).max().unwrap_or(0) as f64;
        if top <= 0.0 {
            return 0.0;
        }
        (1..=10).map(|i| most / (top * i as f64 / 10.0)).sum()
    }
}

/// The capacity found, and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityResult {
    /// Interpolated where the worst SLO's measured share crosses its
    /// allowed one; `None` when every probe passed or every one failed.
    pub capacity_per_s: Option<f64>,
    /// [highest settled pass, lowest settled fail]: the capacity lies in
    /// it at the search's confidence; an end is `None` when no probe
    /// settled on that side.
    pub interval_per_s: [Option<f64>; 2],
    pub confidence_pct: f64,
    /// A settled pass above a settled fail (the interval's ends swapped):
    /// the verdicts contradict each other and the interval covers nothing.
    pub crossed: bool,
    pub probes: usize,
    /// The probes' time, end to end.
    pub search_s: f64,
    /// A 10-point grid's time at the same requests per point, for
    /// comparison (same formula, same inputs: see `grid_time_s`).
    pub grid_s: f64,
}

/// The search a `capacity` benchmark runs: every setting it ships with is
/// a default here, and the seeded simulation in `tests/library/gate.rs` runs this
/// same plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CapacityPlan {
    /// Probes measured, the saturation probe included when there is one.
    pub max_probes: usize,
    pub tolerance: f64,
    pub confidence: f64,
    pub warmup_requests: usize,
    pub min_requests: usize,
    pub max_requests: usize,
    /// Where to start; `None`: half the saturation throughput, measured
    /// first by a closed loop of `warmup_requests + min_requests`.
    pub start_rate_per_s: Option<f64>,
}

impl Default for CapacityPlan {
    fn default() -> Self {
        Self {
            max_probes: 8,
            tolerance: 0.05,
            confidence: 0.95,
            // The queue fills from empty: a hundred requests is many times
            // the servers' parallelism at any rate worth probing.
            warmup_requests: 100,
            // A p99 judged on fewer than 200 has at most 2 breaking.
            min_requests: 200,
            // Near the capacity a queue's p99 rests on a few busy spells:
            // with the tail estimate, 102 400 hold enough of them for ±3 %
            // in 95 of 100 searches on three M/M/c servers, 25 600 for
            // ±6 % (tests/library/gate.rs; docs/serving.md has the counts). A
            // probe settles sooner away from the capacity.
            max_requests: 102_400,
            start_rate_per_s: None,
        }
    }
}

/// A closed loop at the most concurrency: what the server completes flat out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Saturation {
    pub completed_per_s: f64,
    pub requests: usize,
    pub elapsed_s: f64,
}

/// What runs the probes: the endpoint in a benchmark, a simulated queue
/// in the tests.
pub trait CapacityProbes {
    type Error;
    fn saturation(&mut self, requests: usize) -> Result<Saturation, Self::Error>;
    fn probe(
        &mut self,
        rate_per_s: f64,
        design: &ProbeDesign,
        slos: &[RequestSlo],
    ) -> Result<Probe, Self::Error>;
}

/// A finished search: every probe and the capacity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityReport {
    pub slos: Vec<RequestSlo>,
    pub plan: CapacityPlan,
    pub design: ProbeDesign,
    pub saturation: Option<Saturation>,
    pub probes: Vec<Probe>,
    pub result: CapacityResult,
}

/// Runs `plan` against `probes`.
pub fn search_capacity<P: CapacityProbes>(
    probes: &mut P,
    slos: Vec<RequestSlo>,
    plan: CapacityPlan,
) -> Result<CapacityReport, P::Error> {
    let (saturation, settings) = match plan.start_rate_per_s {
        Some(start) => (
            None,
            SearchSettings {
                start_rate_per_s: start,
                min_rate_per_s: start / 1000.0,
                max_rate_per_s: start * 1000.0,
                max_probes: plan.max_probes,
                tolerance: plan.tolerance,
                growth: 2.0,
                confidence: plan.confidence,
            },
        ),
        None => {
            let saturation = probes.saturation(plan.warmup_requests + plan.min_requests)?;
            let settings = SearchSettings::from_saturation(
                saturation.completed_per_s,
                plan.max_probes.saturating_sub(1).max(1),
                plan.tolerance,
                plan.confidence,
            );
            (Some(saturation), settings)
        }
    };
    let design = settings.design(
        plan.warmup_requests,
        plan.min_requests,
        plan.max_requests,
        slos.len(),
    );
    let mut search = CapacitySearch::new(settings, slos);
    while let Some(rate) = search.next_rate() {
        let clustered = design.clustered_at_least(search.clustering_above(rate));
        let probe = probes.probe(rate, &clustered, &search.slos)?;
        search.record(probe);
    }
    let mut result = search.result();
    if let Some(s) = saturation {
        result.search_s += s.elapsed_s;
        result.probes += 1;
    }
    Ok(CapacityReport {
        slos: search.slos,
        plan,
        design,
        saturation,
        probes: search.probes,
        result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p99() -> Vec<RequestSlo> {
        vec![RequestSlo {
            name: "ttft_ms p99 ≤ 50".into(),
            allowed_share: 0.01,
            bound: Some(50.0),
        }]
    }

    fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
        let mut term = (1.0 - p).powi(n as i32);
        let mut sum = term;
        for i in 1..=k {
            term *= (n - i + 1) as f64 / i as f64 * p / (1.0 - p);
            sum += term;
        }
        sum
    }

    /// Independent values are worth one each; a series that moves in runs
    /// of ten (an AR(1) with ρ = 0.9: τ = 19) is worth about one in 19.
    #[test]
    fn autocorrelation_time_counts_what_runs_of_values_are_worth() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let independent: Vec<f64> = (0..20_000).map(|_| normal.sample(&mut rng)).collect();
        let tau = autocorrelation_time(&independent);
        assert!((0.9..1.15).contains(&tau), "{tau}");
        let mut x = 0.0;
        let ar: Vec<f64> = (0..20_000)
            .map(|_| {
                x = 0.9 * x + normal.sample(&mut rng);
                x
            })
            .collect();
        let tau = autocorrelation_time(&ar);
        assert!((15.0..23.0).contains(&tau), "{tau}");
        assert_eq!(autocorrelation_time(&[3.0; 100]), 1.0);
    }

    #[test]
    fn looks_double_and_the_errors_are_shared_over_looks_probes_and_slos() {
        let d = ProbeDesign::new(0.95, 8, (50, 200, 1600), 2);
        assert_eq!(d.looks, [200, 400, 800, 1600]);
        assert_eq!(d.max_requests(), 1650);
        let per_verdict = 0.05 / 2.0 / 8.0;
        assert!((d.alpha_pass - per_verdict / 4.0).abs() < 1e-15);
        assert!((d.alpha_fail - per_verdict / 8.0).abs() < 1e-15);
        // The last look is the most, even off the doubling.
        assert_eq!(
            ProbeDesign::new(0.95, 8, (0, 300, 1000), 1).looks,
            [300, 600, 1000]
        );
    }

    /// The exact binomial tails: with p0 = 1 %, none broken of 1600 is a
    /// pass (0.99^1600 ≈ 1e-7), 30 of 200 a fail, 2 of 200 neither.
    #[test]
    fn a_probe_settles_only_on_clear_counts() {
        let d = ProbeDesign::new(0.95, 8, (0, 200, 1600), 1);
        // k breaking requests spread evenly over n: no clusters.
        let with = |n: usize, k: usize| -> Vec<BrokenSlos> {
            let step = n / k.max(1);
            (0..n)
                .map(|i| u8::from(i % step == 0 && i / step < k))
                .collect()
        };
        assert_eq!(d.judge(&p99(), &with(200, 2), &[], &[]), None);
        assert_eq!(
            d.judge(&p99(), &with(200, 30), &[], &[]).map(|j| j.verdict),
            Some(ProbeVerdict::Fail { slo: 0 })
        );
        assert_eq!(
            d.judge(&p99(), &with(1600, 0), &[], &[]).map(|j| j.verdict),
            Some(ProbeVerdict::Pass)
        );
        // The same 30 in one run are one busy spell, not 30 independent
        // breaches: not enough to settle a fail at the first look.
        let block: Vec<BrokenSlos> = (0..200).map(|i| u8::from(i < 30)).collect();
        assert_eq!(d.judge(&p99(), &block, &[], &[]), None);
        // At the last look, a count near the allowed share is unsettled.
        let j = d.judge(&p99(), &with(1600, 16), &[], &[]).unwrap();
        assert_eq!(j.verdict, ProbeVerdict::Unsettled);
        assert_eq!(j.broke, [16]);
        // Exactness: 0 of n passes iff 0.99^n ≤ α.
        let n_needed = (d.alpha_pass.ln() / 0.99f64.ln()).ceil();
        assert!(few_enough(0.0, n_needed, 0.01, d.alpha_pass));
        assert!(!few_enough(0.0, n_needed - 1.0, 0.01, d.alpha_pass));
        // Whole counts give the binomial's own tails.
        assert!(
            (checked_beta_reg(200.0 - 2.0, 3.0, 0.99).unwrap() - binomial_cdf(2, 200, 0.01)).abs()
                < 1e-12
        );
    }

    /// Log errors of the tail estimate and of the count against the true
    /// share above `bound` (0.01), over 200 seeded samples of 20 000
    /// independent draws; `None` where the count contradicted the fit.
    fn tail_errors(
        bound: f64,
        draw: impl Fn(&mut rand_chacha::ChaCha8Rng) -> f64,
    ) -> Vec<(Option<TailShare>, f64, f64)> {
        use rand::SeedableRng;
        (0..200)
            .map(|seed| {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let x: Vec<f64> = (0..20_000).map(|_| draw(&mut rng)).collect();
                let k = x.iter().filter(|v| **v > bound).count() as u64;
                let tail = tail_share(&x, bound, 0.01, 1.0, k);
                let counted = ((k as f64 + 0.5) / 20_001.0 / 0.01).ln();
                let fitted = tail.map_or(f64::NAN, |t| (t.share / 0.01).ln());
                (tail, fitted, counted)
            })
            .collect()
    }

    fn mean_sd(x: &[f64]) -> (f64, f64) {
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (x.len() - 1) as f64;
        (mean, var.sqrt())
    }

    /// Where the tail is exponential (a queue's wait past a floor), the
    /// fit is unbiased, tighter than the count, and its stated error
    /// covers the truth; where it is not (a Pareto tail of index 2, a
    /// normal one), it errs high on average, towards a lower capacity, or
    /// the count overrules it.
    #[test]
    fn the_tail_estimate_is_tighter_where_its_model_holds_and_errs_high_where_not() {
        use rand_distr::{Distribution, Exp, Normal, Pareto};
        let exp = Exp::new(0.2).unwrap();
        let runs = tail_errors(10.0 + 5.0 * 100f64.ln(), |r| 10.0 + exp.sample(r));
        assert!(runs.iter().all(|r| r.0.is_some()));
        let fitted: Vec<f64> = runs.iter().map(|r| r.1).collect();
        let counted: Vec<f64> = runs.iter().map(|r| r.2).collect();
        let (bias, sd) = mean_sd(&fitted);
        let (_, count_sd) = mean_sd(&counted);
        let covered = runs
            .iter()
            .filter(|r| r.1.abs() <= 2.0 * r.0.map_or(0.0, |t| t.ln_se))
            .count();
        assert!(
            bias.abs() < 0.02 && sd < 0.9 * count_sd,
            "{bias} {sd} {count_sd}"
        );
        assert!(covered >= 180, "{covered}");
        let pareto = Pareto::new(1.0, 2.0).unwrap();
        let normal = Normal::new(0.0, 1.0).unwrap();
        // P(Pareto(1, 2) > 10) = 0.01; P(N(0, 1) > 2.3263) = 0.01.
        for runs in [
            tail_errors(10.0, |r| pareto.sample(r)),
            tail_errors(2.326_347_874, |r| normal.sample(r)),
        ] {
            let optimistic = runs
                .iter()
                .filter(|r| r.0.is_some_and(|t| r.1 < -2.0 * t.ln_se))
                .count();
            let used: Vec<f64> = runs
                .iter()
                .map(|r| if r.0.is_some() { r.1 } else { r.2 })
                .collect();
            let (bias, _) = mean_sd(&used);
            // The stated error assumes the exponential shape, so a heavier
            // tail overshoots it more often than 1 in 40 (12 of 200 for
            // the Pareto); on average the error is high.
            assert!(optimistic <= 20 && bias > -0.02, "{optimistic} {bias}");
        }
    }

    fn probe(rate: f64, verdict: ProbeVerdict, k: u64, n: usize) -> Probe {
        Probe {
            rate_per_s: rate,
            judgement: Judgement {
                verdict,
                requests: n,
                effective_requests: n as f64,
                broke: vec![k],
                tail_shares: vec![None],
            },
            sent: n,
            elapsed_s: n as f64 / rate,
            window_s: [0.0, 0.0],
            goodput_per_s: 0.0,
            achieved_per_s: rate,
            over_saturated: false,
        }
    }

    /// A probe's clustering is floored by the nearest higher rate's, not
    /// by an over-saturated probe's (its queue only grows).
    #[test]
    fn clustering_is_carried_down_from_the_nearest_higher_rate() {
        let settings = SearchSettings::from_saturation(100.0, 8, 0.05, 0.95);
        let mut s = CapacitySearch::new(settings, p99());
        let with_tau = |rate: f64, tau: f64, saturated: bool| {
            let mut p = probe(rate, ProbeVerdict::Unsettled, 5, 800);
            p.judgement.effective_requests = 800.0 / tau;
            p.over_saturated = saturated;
            p
        };
        s.record(with_tau(10.0, 1.0, false));
        s.record(with_tau(40.0, 4.0, false));
        s.record(with_tau(20.0, 2.0, false));
        s.record(with_tau(80.0, 14.0, true));
        assert_eq!(s.clustering_above(15.0), 2.0);
        assert_eq!(s.clustering_above(30.0), 4.0);
        assert_eq!(s.clustering_above(50.0), 1.0);
        assert_eq!(s.clustering_above(5.0), 1.0);
        let design = settings.design(100, 200, 1600, 1);
        assert_eq!(design.clustered_at_least(4.0).least_clustering, 4.0);
        // The floor counts: 30 breaking of 800 evenly spread would settle
        // a fail at 800 independent requests, not at 800 / 40.
        let spread: Vec<BrokenSlos> = (0..800).map(|i| u8::from(i % 26 == 0)).collect();
        let fail = ProbeVerdict::Fail { slo: 0 };
        let judge = |d: &ProbeDesign| d.judge(&p99(), &spread, &[], &[]).map(|j| j.verdict);
        assert_eq!(
            judge(&ProbeDesign::new(0.95, 8, (0, 800, 1600), 1)),
            Some(fail)
        );
        let floored = ProbeDesign::new(0.95, 8, (0, 800, 1600), 1).clustered_at_least(40.0);
        assert_eq!(judge(&floored), None);
    }

    #[test]
    fn the_search_brackets_then_bisects_in_log_rate_and_stops_at_the_tolerance() {
        let settings = SearchSettings {
            start_rate_per_s: 10.0,
            min_rate_per_s: 0.1,
            max_rate_per_s: 1000.0,
            max_probes: 8,
            tolerance: 0.05,
            growth: 2.0,
            confidence: 0.95,
        };
        let mut s = CapacitySearch::new(settings, p99());
        assert_eq!(s.next_rate(), Some(10.0));
        s.record(probe(10.0, ProbeVerdict::Pass, 0, 800));
        assert_eq!(s.next_rate(), Some(20.0));
        s.record(probe(20.0, ProbeVerdict::Pass, 0, 800));
        assert_eq!(s.next_rate(), Some(40.0));
        s.record(probe(40.0, ProbeVerdict::Fail { slo: 0 }, 100, 200));
        let mid = s.next_rate().unwrap();
        assert!((mid - 800f64.sqrt()).abs() < 1e-9);
        s.record(probe(mid, ProbeVerdict::Pass, 0, 800));
        let r = s.result();
        assert_eq!(r.interval_per_s, [Some(mid), Some(40.0)]);
        assert!(!r.crossed);
        let c = r.capacity_per_s.unwrap();
        assert!(mid < c && c < 40.0, "{c}");
        // Within 5 % of each other: done.
        // A zero error budget that nothing broke leaves the pressure to
        // the latency SLO: an unsettled probe with none slow leans to pass.
        let mut with_errors = p99();
        with_errors.push(RequestSlo {
            name: "errors ≤ 0 %".into(),
            allowed_share: 0.0,
            bound: None,
        });
        let mut s3 = CapacitySearch::new(settings, with_errors.clone());
        let mut clean = probe(10.0, ProbeVerdict::Unsettled, 0, 800);
        clean.judgement.broke = vec![0, 0];
        assert!(clean.judgement.pressure(&with_errors) < 1.0);
        s3.record(clean);
        assert_eq!(s3.next_rate(), Some(20.0));
        let mut s2 = CapacitySearch::new(settings, p99());
        s2.record(probe(100.0, ProbeVerdict::Pass, 0, 800));
        s2.record(probe(104.0, ProbeVerdict::Fail { slo: 0 }, 50, 200));
        assert_eq!(s2.next_rate(), None);
    }
}
