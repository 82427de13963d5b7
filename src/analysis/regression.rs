//! Baseline comparison with a verdict a nightly job can trust. A metric
//! regressed only when all of these hold:
//! - its run-level values (one per separate run, never one run's
//!   iterations) differ by Mann–Whitney U with p < 0.01;
//! - the Benjamini–Hochberg q-value across every comparison of the
//!   campaign is below 0.05;
//! - the bootstrap 95 % CI of the ratio of medians lies wholly beyond the
//!   noise threshold: max(configured threshold, 1.5 × the A/A noise floor).
//!
//! A metric is unchanged when that CI lies wholly inside the band, or when
//! the difference is not significant and its median ratio is within the
//! configured threshold; anything else without a verdict is inconclusive.
//!
//! The A/A control compares the current run's odd runs with its even runs:
//! the same code, so any difference is noise. If the control itself
//! "regresses", the comparison is advisory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::{BenchmarkResult, DailyReport, Status};
use crate::stats::{benjamini_hochberg, bootstrap_median_ratio_ci, mann_whitney_p, median};

pub const P_THRESHOLD: f64 = 0.01;
pub const FDR: f64 = 0.05;
pub const DEFAULT_THRESHOLD_PCT: f64 = 5.0;
/// Fewer runs than this on either side cannot give a verdict.
pub const MIN_RUNS: usize = 3;
const NOISE_FLOOR_FACTOR: f64 = 1.5;
const BOOTSTRAP_RESAMPLES: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeState {
    Regressed,
    Improved,
    Unchanged,
    Inconclusive,
    New,
    Missing,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareSettings {
    pub threshold_pct: f64,
    /// Per-benchmark thresholds (by benchmark name, not case).
    pub overrides: BTreeMap<String, f64>,
    pub bootstrap_seed: u64,
}

impl Default for CompareSettings {
    fn default() -> Self {
        Self {
            threshold_pct: DEFAULT_THRESHOLD_PCT,
            overrides: BTreeMap::new(),
            bootstrap_seed: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricChange {
    pub case: String,
    pub metric: String,
    pub unit: String,
    pub higher_is_better: bool,
    pub state: ChangeState,
    pub baseline_median: Option<f64>,
    pub current_median: Option<f64>,
    /// current ÷ baseline median.
    pub ratio: Option<f64>,
    pub ratio_ci95: Option<[f64; 2]>,
    pub p_value: Option<f64>,
    pub q_value: Option<f64>,
    pub baseline_runs: usize,
    pub current_runs: usize,
    /// max(configured, 1.5 × noise floor), in %.
    pub threshold_pct: f64,
    pub noise_floor_pct: Option<f64>,
    /// The threshold before the noise floor raised it, in %.
    pub configured_threshold_pct: f64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub baseline: String,
    pub current: String,
    pub rule: String,
    pub changes: Vec<MetricChange>,
    /// The A/A control: the current run against itself.
    pub control_regressions: Vec<String>,
    pub advisory: bool,
    pub counts: BTreeMap<ChangeState, usize>,
    /// Geometric mean of "worse" ratios (above 1 is slower/worse) over the
    /// metrics compared.
    pub geomean_ratio: Option<f64>,
}

impl Comparison {
    pub fn regressions(&self) -> impl Iterator<Item = &MetricChange> {
        self.changes
            .iter()
            .filter(|c| c.state == ChangeState::Regressed)
    }
}

/// One comparable series: a headline metric of one case.
struct Series<'a> {
    case: &'a str,
    benchmark: &'a str,
    metric: &'a str,
    unit: String,
    higher_is_better: bool,
    values: &'a [f64],
}

fn series(result: &BenchmarkResult) -> Vec<Series<'_>> {
    result
        .run_values
        .iter()
        .map(|(metric, values)| {
            let m = result.metrics.get(metric);
            Series {
                case: &result.benchmark_name,
                benchmark: &result.benchmark,
                metric,
                unit: m.map_or(String::new(), |m| m.unit.clone()),
                higher_is_better: m.is_some_and(|m| m.higher_is_better),
                values,
            }
        })
        .collect()
}

/// Ratio oriented so that above 1 is worse.
fn worse(ratio: f64, higher_is_better: bool) -> f64 {
    if higher_is_better { 1.0 / ratio } else { ratio }
}

struct Tested {
    p: f64,
    ratio: f64,
    ci: (f64, f64),
}

fn test(a: &[f64], b: &[f64], seed: u64) -> Option<Tested> {
    let p = mann_whitney_p(a, b)?;
    let ratio = median(b)? / median(a)?;
    let ci = bootstrap_median_ratio_ci(a, b, seed, BOOTSTRAP_RESAMPLES)?;
    Some(Tested { p, ratio, ci })
}

/// The A/A split of one run's values: (even runs, odd runs).
fn aa_halves(values: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let even = values.iter().step_by(2).copied().collect();
    let odd = values.iter().skip(1).step_by(2).copied().collect();
    (even, odd)
}

/// |median(odd runs) ÷ median(even runs) − 1|, in %.
fn noise_floor_pct(values: &[f64]) -> Option<f64> {
    let (even, odd) = aa_halves(values);
    Some((median(&odd)? / median(&even)? - 1.0).abs() * 100.0)
}

/// A test's ratio and CI oriented so that above 1 is worse.
fn worse_oriented(t: &Tested, higher_is_better: bool) -> (f64, (f64, f64)) {
    let ci = if higher_is_better {
        (1.0 / t.ci.1, 1.0 / t.ci.0)
    } else {
        t.ci
    };
    (worse(t.ratio, higher_is_better), ci)
}

/// `thr` is the effective threshold; `configured` the one before the noise
/// floor raised it.
fn state_of(
    worse_ci: (f64, f64),
    worse_ratio: f64,
    significant: bool,
    thr: f64,
    configured: f64,
) -> ChangeState {
    let (lo, hi) = worse_ci;
    if significant && lo > 1.0 + thr {
        ChangeState::Regressed
    } else if significant && hi < 1.0 - thr {
        ChangeState::Improved
    } else if (lo >= 1.0 - thr && hi <= 1.0 + thr)
        || (!significant && (worse_ratio - 1.0).abs() <= configured)
    {
        ChangeState::Unchanged
    } else {
        ChangeState::Inconclusive
    }
}

/// Compares two day reports metric by metric.
pub fn compare_reports(
    baseline: &DailyReport,
    current: &DailyReport,
    baseline_name: &str,
    current_name: &str,
    settings: &CompareSettings,
) -> Comparison {
    let mut changes = Vec::new();
    let mut pending: Vec<(usize, Tested, bool)> = Vec::new();
    let find = |report: &'_ DailyReport, name: &str| -> Option<BenchmarkResult> {
        report
            .results
            .iter()
            .find(|r| r.benchmark_name == name)
            .cloned()
    };
    let mut control_regressions = Vec::new();
    let mut control_pending: Vec<(String, Tested, bool, f64)> = Vec::new();
    // The control's threshold is the configured one: it measures the noise.

    for cur in &current.results {
        let Some(base) = find(baseline, &cur.benchmark_name) else {
            changes.push(whole_case(cur, ChangeState::New, "not in the baseline"));
            continue;
        };
        if cur.status == Status::Failed || base.status == Status::Failed {
            let side = if cur.status == Status::Failed {
                "this run"
            } else {
                "the baseline"
            };
            changes.push(whole_case(
                cur,
                ChangeState::Failed,
                &format!("failed in {side}"),
            ));
            continue;
        }
        let base_series = series(&base);
        for s in series(cur) {
            let configured = settings
                .overrides
                .get(s.benchmark)
                .copied()
                .unwrap_or(settings.threshold_pct);
            let noise = noise_floor_pct(s.values);
            let threshold_pct = configured.max(NOISE_FLOOR_FACTOR * noise.unwrap_or(0.0));
            let b = base_series.iter().find(|x| x.metric == s.metric);
            let a_values = b.map_or(&[][..], |x| x.values);
            let mut change = MetricChange {
                case: s.case.to_string(),
                metric: s.metric.to_string(),
                unit: s.unit.clone(),
                higher_is_better: s.higher_is_better,
                state: ChangeState::Inconclusive,
                baseline_median: median(a_values),
                current_median: median(s.values),
                ratio: None,
                ratio_ci95: None,
                p_value: None,
                q_value: None,
                baseline_runs: a_values.len(),
                current_runs: s.values.len(),
                threshold_pct,
                noise_floor_pct: noise,
                configured_threshold_pct: configured,
                reason: String::new(),
            };
            if a_values.len() < MIN_RUNS || s.values.len() < MIN_RUNS {
                change.reason = format!(
                    "needs at least {MIN_RUNS} separate runs on each side (baseline {}, this run {}); run with --runs 5",
                    a_values.len(),
                    s.values.len()
                );
                changes.push(change);
                continue;
            }
            match test(a_values, s.values, settings.bootstrap_seed) {
                Some(t) => {
                    let hib = s.higher_is_better;
                    changes.push(change);
                    pending.push((changes.len() - 1, t, hib));
                }
                None => {
                    change.reason = "a median is zero or missing".into();
                    changes.push(change);
                }
            }
            // The A/A control on the current run's own runs.
            let (even, odd) = aa_halves(s.values);
            if let Some(t) = test(&even, &odd, settings.bootstrap_seed) {
                control_pending.push((
                    format!("{} {}", s.case, s.metric),
                    t,
                    s.higher_is_better,
                    threshold_pct,
                ));
            }
        }
    }
    for base in &baseline.results {
        if !current
            .results
            .iter()
            .any(|r| r.benchmark_name == base.benchmark_name)
        {
            changes.push(whole_case(
                base,
                ChangeState::Missing,
                "in the baseline, not in this run",
            ));
        }
    }

    let q = benjamini_hochberg(&pending.iter().map(|(_, t, _)| t.p).collect::<Vec<_>>());
    let mut worse_ratios = Vec::new();
    for ((index, t, hib), q) in pending.into_iter().zip(q) {
        let c = &mut changes[index];
        let thr = c.threshold_pct / 100.0;
        let (worse_ratio, worse_ci) = worse_oriented(&t, hib);
        let significant = t.p < P_THRESHOLD && q < FDR;
        c.state = state_of(
            worse_ci,
            worse_ratio,
            significant,
            thr,
            c.configured_threshold_pct / 100.0,
        );
        c.ratio = Some(t.ratio);
        c.ratio_ci95 = Some([t.ci.0, t.ci.1]);
        c.p_value = Some(t.p);
        c.q_value = Some(q);
        c.reason = format!(
            "p = {:.4} (q = {:.4}); median ratio {:.3}, 95 % CI {:.3}–{:.3}; threshold ±{:.1} %",
            t.p, q, t.ratio, t.ci.0, t.ci.1, c.threshold_pct
        );
        worse_ratios.push(worse_ratio);
    }
    let control_q = benjamini_hochberg(&control_pending.iter().map(|c| c.1.p).collect::<Vec<_>>());
    for ((name, t, hib, thr_pct), q) in control_pending.into_iter().zip(control_q) {
        let (worse_ratio, worse_ci) = worse_oriented(&t, hib);
        let significant = t.p < P_THRESHOLD && q < FDR;
        if state_of(
            worse_ci,
            worse_ratio,
            significant,
            thr_pct / 100.0,
            thr_pct / 100.0,
        ) == ChangeState::Regressed
        {
            control_regressions.push(name);
        }
    }
    let mut counts = BTreeMap::new();
    for c in &changes {
        *counts.entry(c.state).or_default() += 1;
    }
    let geomean_ratio = (!worse_ratios.is_empty()).then(|| {
        (worse_ratios.iter().map(|r| r.ln()).sum::<f64>() / worse_ratios.len() as f64).exp()
    });
    Comparison {
        baseline: baseline_name.to_string(),
        current: current_name.to_string(),
        rule: format!(
            "regressed when Mann–Whitney p < {P_THRESHOLD}, Benjamini–Hochberg q < {FDR} across all comparisons, and the bootstrap 95 % CI of the median ratio lies beyond max(threshold, {NOISE_FLOOR_FACTOR} × A/A noise floor); at least {MIN_RUNS} separate runs per side"
        ),
        advisory: !control_regressions.is_empty(),
        control_regressions,
        changes,
        counts,
        geomean_ratio,
    }
}

fn whole_case(r: &BenchmarkResult, state: ChangeState, reason: &str) -> MetricChange {
    MetricChange {
        case: r.benchmark_name.clone(),
        metric: String::new(),
        unit: String::new(),
        higher_is_better: false,
        state,
        baseline_median: None,
        current_median: None,
        ratio: None,
        ratio_ci95: None,
        p_value: None,
        q_value: None,
        baseline_runs: 0,
        current_runs: 0,
        threshold_pct: 0.0,
        noise_floor_pct: None,
        configured_threshold_pct: 0.0,
        reason: reason.to_string(),
    }
}
