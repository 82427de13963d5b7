//! Regression verdicts a nightly job can trust, from run-level values (one
//! per separate run, never one run's iterations), on the log scale:
//! - **test**: Mann–Whitney U against a stored baseline, or Wilcoxon's
//!   signed-rank test on the pairs of an interleaved A/B night;
//! - **significance**: p < [`P_THRESHOLD`] and a Benjamini–Hochberg q below
//!   [`FDR`] over every comparison of the night;
//! - **size**: the Hodges–Lehmann ratio's 95 % interval (Moses, or Walsh
//!   averages when paired) lies wholly beyond the threshold.
//!
//! A metric is `unchanged` when that interval lies wholly inside the
//! threshold band, `inconclusive` otherwise. Every comparison also states
//! its blind spot (`mde_pct`): the smallest change this design could have
//! declared given tonight's noise. The design itself is checked before a
//! night starts ([`GateDesign`]): runs too few for any verdict are refused.
//! The A/A control ([`aa_control`]) makes the night advisory when tonight's
//! runs disagree with each other.

mod control;
mod design;
mod mde;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

pub use control::{AaControl, CONTROL_RULE, ControlSeries, ControlSplit, Split, aa_control};
pub use design::{FDR, GateDesign, MAX_RUNS, MIN_RUNS, P_THRESHOLD, Pairing, runs_for_verdicts};
pub use mde::{MDE_RULE, MdeTable, pooled_sd, sample_sd};

use crate::model::{BenchmarkResult, DailyReport, Status};
use crate::stats::{ShiftTest, benjamini_hochberg, median, paired_shift, two_sample_shift};

pub const DEFAULT_THRESHOLD_PCT: f64 = 5.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
}

impl Default for CompareSettings {
    fn default() -> Self {
        Self {
            threshold_pct: DEFAULT_THRESHOLD_PCT,
            overrides: BTreeMap::new(),
        }
    }
}

impl CompareSettings {
    fn threshold_pct(&self, benchmark: &str) -> f64 {
        self.overrides
            .get(benchmark)
            .copied()
            .unwrap_or(self.threshold_pct)
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
    /// Current ÷ baseline: the Hodges–Lehmann estimate (the median of all
    /// pairwise ratios, or of the pairs' Walsh averages when paired).
    pub ratio: Option<f64>,
    pub ratio_ci95: Option<[f64; 2]>,
    pub p_value: Option<f64>,
    pub q_value: Option<f64>,
    pub baseline_runs: usize,
    pub current_runs: usize,
    /// The threshold the interval is judged against, in %.
    pub threshold_pct: f64,
    /// Run-to-run noise: SD of the log run values (both sides pooled; of
    /// the pairs' log ratios when paired), in %.
    pub noise_floor_pct: Option<f64>,
    /// The threshold configured for this benchmark, in % (the same as
    /// `threshold_pct`: nothing raises it).
    pub configured_threshold_pct: f64,
    /// The smallest change this design could have declared given the
    /// noise measured: changes below it cannot be seen tonight. `None`
    /// when the design cannot declare anything.
    #[serde(default)]
    pub mde_pct: Option<f64>,
    /// For a regression: whether it also regressed on at least 2 of the
    /// last 3 compared nights in this machine's history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<bool>,
    pub reason: String,
}

impl MetricChange {
    /// The history key of this series.
    pub fn series_key(&self) -> String {
        format!("{} {}", self.case, self.metric)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub baseline: String,
    pub current: String,
    pub rule: String,
    /// The night's design, planned before measuring.
    pub design: GateDesign,
    pub changes: Vec<MetricChange>,
    /// Tonight's runs against themselves (none for an interleaved
    /// night, whose pairs already cancel the machine's drift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<AaControl>,
    /// The control splits that fired.
    pub control_regressions: Vec<String>,
    /// True when the control fired: regressions are reported but do not
    /// fail the night.
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

    /// Whether this comparison fails the night: a regression that is not
    /// advisory.
    pub fn fails_the_night(&self) -> bool {
        !self.advisory && self.regressions().next().is_some()
    }

    fn recount(&mut self) {
        self.counts.clear();
        for c in &self.changes {
            *self.counts.entry(c.state).or_default() += 1;
        }
    }

    /// The span of blind spots over the compared metrics, in %.
    pub fn mde_range_pct(&self) -> Option<(f64, f64)> {
        let mdes: Vec<f64> = self.changes.iter().filter_map(|c| c.mde_pct).collect();
        let lo = mdes.iter().copied().reduce(f64::min)?;
        let hi = mdes.iter().copied().reduce(f64::max)?;
        Some((lo, hi))
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
                case: &result.case_id,
                benchmark: &result.benchmark,
                metric,
                unit: m.map_or(String::new(), |m| m.unit.clone()),
                higher_is_better: m.is_some_and(|m| m.higher_is_better),
                values,
            }
        })
        .collect()
}

/// Log values; `None` if any is not a positive finite number.
fn logs(values: &[f64]) -> Option<Vec<f64>> {
    values
        .iter()
        .map(|v| (v.is_finite() && *v > 0.0).then(|| v.ln()))
        .collect()
}

/// The number of series a set of results would compare: what the
/// design's Benjamini–Hochberg m is planned from.
pub fn comparisons_in(results: &[BenchmarkResult]) -> usize {
    results.iter().map(|r| r.run_values.len()).sum()
}

fn worse(shift: f64, higher_is_better: bool) -> f64 {
    if higher_is_better { -shift } else { shift }
}

/// The state of one metric from its worse-oriented log shift and interval.
fn state_of(interval: Option<(f64, f64)>, significant: bool, t: f64) -> ChangeState {
    match interval {
        Some((lo, _)) if significant && lo > t => ChangeState::Regressed,
        Some((_, hi)) if significant && hi < -t => ChangeState::Improved,
        Some((lo, hi)) if lo >= -t && hi <= t => ChangeState::Unchanged,
        _ => ChangeState::Inconclusive,
    }
}

/// A metric waiting for the night's Benjamini–Hochberg adjustment.
struct Pending {
    index: usize,
    test: ShiftTest,
}

/// Blind-spot tables depend on the design only: each is simulated once
/// per process.
type TableCache = Mutex<HashMap<(Pairing, usize, usize, usize), Option<Arc<MdeTable>>>>;

/// A comparison's blind spot, in %.
struct MdeTables {
    pairing: Pairing,
    comparisons: usize,
}

impl MdeTables {
    fn mde_pct(&self, runs: (usize, usize), t: f64, sigma: Option<f64>) -> Option<f64> {
        static CACHE: OnceLock<TableCache> = OnceLock::new();
        let key = (self.pairing, runs.0, runs.1, self.comparisons);
        let table = {
            let mut cache = CACHE
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache
                .entry(key)
                .or_insert_with(|| {
                    let design = match self.pairing {
                        Pairing::Unpaired => GateDesign::unpaired(runs.0, runs.1, self.comparisons),
                        Pairing::Paired => GateDesign::paired(runs.1, self.comparisons),
                    };
                    MdeTable::new(&design).map(Arc::new)
                })
                .clone()
        };
        let shift = table?.minimum_detectable_shift(t, sigma?)?;
        Some((shift.exp() - 1.0) * 100.0)
    }
}

/// Builds the shared part of a metric's change before it is tested.
fn blank_change(s: &Series<'_>, threshold_pct: f64) -> MetricChange {
    MetricChange {
        case: s.case.to_string(),
        metric: s.metric.to_string(),
        unit: s.unit.clone(),
        higher_is_better: s.higher_is_better,
        state: ChangeState::Inconclusive,
        baseline_median: None,
        current_median: median(s.values),
        ratio: None,
        ratio_ci95: None,
        p_value: None,
        q_value: None,
        baseline_runs: 0,
        current_runs: s.values.len(),
        threshold_pct,
        noise_floor_pct: None,
        configured_threshold_pct: threshold_pct,
        mde_pct: None,
        persistent: None,
        reason: String::new(),
    }
}

/// Applies Benjamini–Hochberg over the night and sets every tested
/// metric's state; returns the worse-oriented log shifts for the geomean.
fn settle(changes: &mut [MetricChange], pending: Vec<Pending>) -> Vec<f64> {
    let q = benjamini_hochberg(&pending.iter().map(|p| p.test.p_value).collect::<Vec<_>>());
    let mut shifts = Vec::new();
    for (Pending { index, test }, q) in pending.into_iter().zip(q) {
        let c = &mut changes[index];
        let t = (1.0 + c.threshold_pct / 100.0).ln();
        let hib = c.higher_is_better;
        let estimate = worse(test.estimate, hib);
        let interval = test.interval.map(|(lo, hi)| {
            let (a, b) = (worse(lo, hib), worse(hi, hib));
            (a.min(b), a.max(b))
        });
        let significant = test.p_value < P_THRESHOLD && q < FDR;
        c.state = state_of(interval, significant, t);
        c.ratio = Some(test.estimate.exp());
        c.ratio_ci95 = test.interval.map(|(lo, hi)| [lo.exp(), hi.exp()]);
        c.p_value = Some(test.p_value);
        c.q_value = Some(q);
        let interval_text = c
            .ratio_ci95
            .map_or("no 95 % interval (too few runs)".to_string(), |[lo, hi]| {
                format!("95 % CI {lo:.3}–{hi:.3}")
            });
        c.reason = format!(
            "p = {:.4} (q = {q:.4}); ratio {:.3}, {interval_text}; threshold ±{:.1} %",
            test.p_value,
            test.estimate.exp(),
            c.threshold_pct
        );
        shifts.push(estimate);
    }
    shifts
}

fn geomean(shifts: &[f64]) -> Option<f64> {
    (!shifts.is_empty()).then(|| (shifts.iter().sum::<f64>() / shifts.len() as f64).exp())
}

fn whole_case(r: &BenchmarkResult, state: ChangeState, reason: &str) -> MetricChange {
    MetricChange {
        case: r.case_id.clone(),
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
        mde_pct: None,
        persistent: None,
        reason: reason.to_string(),
    }
}

/// Cases that cannot be compared metric by metric: new, failed.
fn case_state(
    current: &BenchmarkResult,
    baseline: Option<&BenchmarkResult>,
) -> Option<MetricChange> {
    let Some(base) = baseline else {
        return Some(whole_case(current, ChangeState::New, "not in the baseline"));
    };
    if current.status == Status::Failed || base.status == Status::Failed {
        let side = if current.status == Status::Failed {
            "this run"
        } else {
            "the baseline"
        };
        return Some(whole_case(
            current,
            ChangeState::Failed,
            &format!("failed in {side}"),
        ));
    }
    None
}

fn missing_cases(baseline: &DailyReport, current: &DailyReport) -> Vec<MetricChange> {
    baseline
        .results
        .iter()
        .filter(|b| !current.results.iter().any(|r| r.case_id == b.case_id))
        .map(|b| whole_case(b, ChangeState::Missing, "in the baseline, not in this run"))
        .collect()
}

fn find<'r>(report: &'r DailyReport, case: &str) -> Option<&'r BenchmarkResult> {
    report.results.iter().find(|r| r.case_id == case)
}

/// The rule text of a comparison.
fn rule(pairing: Pairing) -> String {
    let (test, interval) = match pairing {
        Pairing::Unpaired => ("Mann–Whitney U", "Moses"),
        Pairing::Paired => (
            "Wilcoxon signed-rank (pairs of alternating runs)",
            "Walsh-average",
        ),
    };
    format!(
        "regressed when {test} p < {P_THRESHOLD}, Benjamini–Hochberg q < {FDR} across the night's comparisons, and the {interval} 95 % interval of the Hodges–Lehmann ratio lies wholly beyond the threshold; unchanged when that interval lies wholly inside it; inconclusive otherwise"
    )
}

/// Compares tonight's report with a stored baseline, metric by metric.
pub fn compare_reports(
    baseline: &DailyReport,
    current: &DailyReport,
    baseline_name: &str,
    current_name: &str,
    settings: &CompareSettings,
) -> Comparison {
    let compared: Vec<(&BenchmarkResult, &BenchmarkResult)> = current
        .results
        .iter()
        .filter_map(|cur| Some((find(baseline, &cur.case_id)?, cur)))
        .filter(|(b, c)| b.status != Status::Failed && c.status != Status::Failed)
        .collect();
    let comparisons = compared
        .iter()
        .map(|(b, c)| {
            c.run_values
                .keys()
                .filter(|m| b.run_values.contains_key(*m))
                .count()
        })
        .sum::<usize>();
    let fewest_runs = |results: &mut dyn Iterator<Item = &BenchmarkResult>| {
        results
            .flat_map(|r| r.run_values.values().map(Vec::len))
            .min()
            .unwrap_or(0)
    };
    let design = GateDesign::unpaired(
        fewest_runs(&mut compared.iter().map(|p| p.0)),
        fewest_runs(&mut compared.iter().map(|p| p.1)),
        comparisons,
    );
    let tables = MdeTables {
        pairing: Pairing::Unpaired,
        comparisons,
    };

    let mut changes = Vec::new();
    let mut pending = Vec::new();
    let mut control_series = Vec::new();
    for cur in &current.results {
        if let Some(change) = case_state(cur, find(baseline, &cur.case_id)) {
            changes.push(change);
            continue;
        }
        let Some(base) = find(baseline, &cur.case_id) else {
            continue;
        };
        let base_series = series(base);
        let mut control_pick: Option<Vec<f64>> = None;
        for s in series(cur) {
            let threshold_pct = settings.threshold_pct(s.benchmark);
            let mut change = blank_change(&s, threshold_pct);
            let a_values = base_series
                .iter()
                .find(|x| x.metric == s.metric)
                .map_or(&[][..], |x| x.values);
            change.baseline_median = median(a_values);
            change.baseline_runs = a_values.len();
            let (Some(a), Some(b)) = (logs(a_values), logs(s.values)) else {
                change.reason = "a run value is zero, negative or not finite".into();
                changes.push(change);
                continue;
            };
            // The control takes each case's latency headline, else its
            // throughput, oriented so that larger is worse.
            if control_pick.is_none() || !s.higher_is_better {
                control_pick = Some(b.iter().map(|v| worse(*v, s.higher_is_better)).collect());
            }
            let t = (1.0 + threshold_pct / 100.0).ln();
            let sigma = pooled_sd(&a, &b);
            change.noise_floor_pct = sigma.map(|s| s * 100.0);
            change.mde_pct = tables.mde_pct((a.len(), b.len()), t, sigma);
            match two_sample_shift(&a, &b).filter(|_| a.len() >= MIN_RUNS && b.len() >= MIN_RUNS) {
                Some(test) => {
                    changes.push(change);
                    pending.push(Pending {
                        index: changes.len() - 1,
                        test,
                    });
                }
                None => {
                    change.reason = format!(
                        "needs at least {MIN_RUNS} separate runs on each side (baseline {}, this run {})",
                        a.len(),
                        b.len()
                    );
                    changes.push(change);
                }
            }
        }
        if let Some(runs) = control_pick {
            control_series.push(runs);
        }
    }
    changes.extend(missing_cases(baseline, current));
    let shifts = settle(&mut changes, pending);
    for c in changes.iter_mut().filter(|c| c.p_value.is_some()) {
        let own = GateDesign::unpaired(c.baseline_runs, c.current_runs, comparisons);
        if !own.can_declare {
            c.reason.push_str(&format!("; {}", own.describe()));
        }
    }

    let control = aa_control(
        &control_series
            .iter()
            .map(|runs| ControlSeries { runs })
            .collect::<Vec<_>>(),
        (1.0 + settings.threshold_pct / 100.0).ln(),
    );
    let control_regressions: Vec<String> = control
        .splits
        .iter()
        .filter(|s| s.fired)
        .map(|s| s.split.name().to_string())
        .collect();
    let mut comparison = Comparison {
        baseline: baseline_name.to_string(),
        current: current_name.to_string(),
        rule: rule(Pairing::Unpaired),
        design,
        advisory: control.fired,
        control: Some(control),
        control_regressions,
        changes,
        counts: BTreeMap::new(),
        geomean_ratio: geomean(&shifts),
    };
    comparison.recount();
    comparison
}

/// One series of an interleaved night: a case's metric with its pairs of
/// (other build, this build) run values, in run order.
#[derive(Debug, Clone)]
pub struct PairedSeries {
    pub case: String,
    pub benchmark: String,
    pub metric: String,
    pub unit: String,
    pub higher_is_better: bool,
    pub pairs: Vec<(f64, f64)>,
}

/// The series of interleaved runs: each case's headline means, the k-th
/// run of one side paired with the k-th of the other; a pair missing on
/// either side (a failed run) is left out.
pub fn paired_series(others: &[&DailyReport], these: &[&DailyReport]) -> Vec<PairedSeries> {
    let Some(first) = these.first() else {
        return Vec::new();
    };
    let mean_of = |report: &DailyReport, case: &str, metric: &str| -> Option<f64> {
        let r = report
            .results
            .iter()
            .find(|r| r.case_id == case && r.status == Status::Ok)?;
        r.headline_means()
            .into_iter()
            .find(|(m, _)| m == metric)
            .map(|(_, v)| v)
    };
    first
        .results
        .iter()
        .flat_map(|r| {
            r.headline_means().into_iter().map(move |(metric, _)| {
                let m = r.metrics.get(&metric);
                PairedSeries {
                    case: r.case_id.clone(),
                    benchmark: r.benchmark.clone(),
                    unit: m.map_or(String::new(), |m| m.unit.clone()),
                    higher_is_better: m.is_some_and(|m| m.higher_is_better),
                    pairs: others
                        .iter()
                        .zip(these)
                        .filter_map(|(a, b)| {
                            Some((
                                mean_of(a, &r.case_id, &metric)?,
                                mean_of(b, &r.case_id, &metric)?,
                            ))
                        })
                        .collect(),
                    metric,
                }
            })
        })
        .collect()
}

/// Compares this build with another one run alternately tonight: each
/// pair's log ratio, tested with Wilcoxon's signed-rank test.
pub fn compare_paired(
    series: &[PairedSeries],
    other: &DailyReport,
    this: &DailyReport,
    other_name: &str,
    this_name: &str,
    settings: &CompareSettings,
) -> Comparison {
    let comparisons = series.len();
    let pairs = series.iter().map(|s| s.pairs.len()).min().unwrap_or(0);
    let design = GateDesign::paired(pairs, comparisons);
    let tables = MdeTables {
        pairing: Pairing::Paired,
        comparisons,
    };
    let mut changes = Vec::new();
    let mut pending = Vec::new();
    for cur in &this.results {
        if let Some(change) = case_state(cur, find(other, &cur.case_id)) {
            changes.push(change);
        }
    }
    for s in series {
        let threshold_pct = settings.threshold_pct(&s.benchmark);
        let (a, b): (Vec<f64>, Vec<f64>) = s.pairs.iter().copied().unzip();
        let view = Series {
            case: &s.case,
            benchmark: &s.benchmark,
            metric: &s.metric,
            unit: s.unit.clone(),
            higher_is_better: s.higher_is_better,
            values: &b,
        };
        let mut change = blank_change(&view, threshold_pct);
        change.baseline_median = median(&a);
        change.baseline_runs = a.len();
        let (Some(la), Some(lb)) = (logs(&a), logs(&b)) else {
            change.reason = "a run value is zero, negative or not finite".into();
            changes.push(change);
            continue;
        };
        let d: Vec<f64> = la.iter().zip(&lb).map(|(x, y)| y - x).collect();
        let t = (1.0 + threshold_pct / 100.0).ln();
        let sigma = sample_sd(&d);
        change.noise_floor_pct = sigma.map(|s| s * 100.0);
        change.mde_pct = tables.mde_pct((d.len(), d.len()), t, sigma);
        match paired_shift(&d).filter(|_| d.len() >= MIN_RUNS) {
            Some(test) => {
                changes.push(change);
                pending.push(Pending {
                    index: changes.len() - 1,
                    test,
                });
            }
            None => {
                change.reason = format!(
                    "needs at least {MIN_RUNS} complete pairs ({} here)",
                    d.len()
                );
                changes.push(change);
            }
        }
    }
    changes.extend(missing_cases(other, this));
    let shifts = settle(&mut changes, pending);
    for c in changes.iter_mut().filter(|c| c.p_value.is_some()) {
        let own = GateDesign::paired(c.current_runs, comparisons);
        if !own.can_declare {
            c.reason.push_str(&format!("; {}", own.describe()));
        }
    }
    let mut comparison = Comparison {
        baseline: other_name.to_string(),
        current: this_name.to_string(),
        rule: rule(Pairing::Paired),
        design,
        control: None,
        control_regressions: Vec::new(),
        advisory: false,
        changes,
        counts: BTreeMap::new(),
        geomean_ratio: geomean(&shifts),
    };
    comparison.recount();
    comparison
}

/// Keeps a regression only if a same-night re-run of its benchmark
/// regressed too; the others become inconclusive.
pub fn confirm_with_rerun(first: &mut Comparison, rerun: &Comparison) {
    for change in first
        .changes
        .iter_mut()
        .filter(|c| c.state == ChangeState::Regressed)
    {
        let confirmed = rerun.changes.iter().any(|x| {
            x.case == change.case && x.metric == change.metric && x.state == ChangeState::Regressed
        });
        if confirmed {
            change.reason.push_str("; confirmed by a same-night re-run");
        } else {
            change.state = ChangeState::Inconclusive;
            change
                .reason
                .push_str("; did not persist in a same-night re-run");
        }
    }
    first.recount();
}

/// Benchmarks with a regression: what a confirming re-run must repeat.
pub fn regressed_benchmarks(comparison: &Comparison, report: &DailyReport) -> Vec<String> {
    comparison
        .regressions()
        .filter_map(|c| find(report, &c.case).map(|r| r.benchmark.clone()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    //! Every state a comparison can give, each planted in a pair of small
    //! reports: the runs are written so that the answer is known.
    use super::*;

    /// A report whose cases (id, status, ttft_ms run values) are built on
    /// the fixture's first result; prefill_tokens_per_s runs are the
    /// reciprocals, so the throughput moves with the latency.
    fn report(cases: &[(&str, Status, &[f64])]) -> DailyReport {
        let mut report: DailyReport =
            serde_json::from_str(include_str!("../../../tests/fixtures/day_report.json"))
                .expect("the fixture is a day report");
        let template = report.results[0].clone();
        report.results = cases
            .iter()
            .map(|(case, status, ttft)| {
                let mut r = template.clone();
                r.case_id = case.to_string();
                r.status = *status;
                r.run_values = BTreeMap::from([
                    ("ttft_ms".to_string(), ttft.to_vec()),
                    (
                        "prefill_tokens_per_s".to_string(),
                        ttft.iter().map(|v| 1000.0 / v).collect(),
                    ),
                ]);
                r
            })
            .collect();
        report
    }

    /// Seven runs around `center` with ±0.2 % spread.
    fn runs(center: f64) -> Vec<f64> {
        [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
            .iter()
            .map(|k| center * (1.0 + 0.000_7 * k))
            .collect()
    }

    fn state(c: &Comparison, case: &str, metric: &str) -> ChangeState {
        c.changes
            .iter()
            .find(|x| x.case == case && x.metric == metric)
            .unwrap_or_else(|| panic!("no change for {case} {metric}"))
            .state
    }

    fn compare(baseline: &DailyReport, current: &DailyReport) -> Comparison {
        compare_reports(baseline, current, "b", "c", &CompareSettings::default())
    }

    #[test]
    fn stored_baseline_gives_each_state() {
        let (ten, slower, faster, same) = (runs(10.0), runs(12.0), runs(8.0), runs(10.01));
        let wide: Vec<f64> = [6.0, 14.0, 9.0, 11.0, 7.0, 13.0, 10.0].to_vec();
        let baseline = report(&[
            ("slower", Status::Ok, &ten),
            ("faster", Status::Ok, &ten),
            ("same", Status::Ok, &ten),
            ("noisy", Status::Ok, &ten),
            ("broken", Status::Ok, &ten),
            ("dropped", Status::Ok, &ten),
        ]);
        let current = report(&[
            ("slower", Status::Ok, &slower),
            ("faster", Status::Ok, &faster),
            ("same", Status::Ok, &same),
            ("noisy", Status::Ok, &wide),
            ("broken", Status::Failed, &[]),
            ("added", Status::Ok, &ten),
        ]);
        let c = compare(&baseline, &current);
        assert_eq!(state(&c, "slower", "ttft_ms"), ChangeState::Regressed);
        // Throughput falls as latency rises: worse in both orientations.
        assert_eq!(
            state(&c, "slower", "prefill_tokens_per_s"),
            ChangeState::Regressed
        );
        assert_eq!(state(&c, "faster", "ttft_ms"), ChangeState::Improved);
        assert_eq!(
            state(&c, "faster", "prefill_tokens_per_s"),
            ChangeState::Improved
        );
        assert_eq!(state(&c, "same", "ttft_ms"), ChangeState::Unchanged);
        assert_eq!(state(&c, "noisy", "ttft_ms"), ChangeState::Inconclusive);
        assert_eq!(state(&c, "broken", ""), ChangeState::Failed);
        assert_eq!(state(&c, "added", ""), ChangeState::New);
        assert_eq!(state(&c, "dropped", ""), ChangeState::Missing);
        assert!(c.fails_the_night());
        assert_eq!(c.counts[&ChangeState::Regressed], 2);
        // Ratios are current ÷ baseline, whichever way is better.
        let ratio = |metric: &str| {
            c.changes
                .iter()
                .find(|x| x.case == "slower" && x.metric == metric)
                .and_then(|x| x.ratio)
                .unwrap()
        };
        assert!((ratio("ttft_ms") - 1.2).abs() < 0.01);
        assert!((ratio("prefill_tokens_per_s") - 1.0 / 1.2).abs() < 0.01);
    }

    #[test]
    fn too_few_runs_or_an_unusable_value_is_inconclusive_with_the_reason() {
        let baseline = report(&[
            ("short", Status::Ok, &[10.0, 10.0]),
            ("zero", Status::Ok, &runs(10.0)),
        ]);
        let mut zero = runs(20.0);
        zero[0] = 0.0;
        let current = report(&[
            ("short", Status::Ok, &[20.0, 20.0]),
            ("zero", Status::Ok, &zero),
        ]);
        let c = compare(&baseline, &current);
        for case in ["short", "zero"] {
            assert_eq!(state(&c, case, "ttft_ms"), ChangeState::Inconclusive);
        }
        let reason = |case: &str| {
            c.changes
                .iter()
                .find(|x| x.case == case && x.metric == "ttft_ms")
                .unwrap()
                .reason
                .clone()
        };
        assert!(reason("short").contains("at least"), "{}", reason("short"));
        assert!(
            reason("zero").contains("zero, negative"),
            "{}",
            reason("zero")
        );
        assert!(!c.fails_the_night());
    }

    #[test]
    fn a_regression_the_rerun_does_not_repeat_becomes_inconclusive() {
        let ten = runs(10.0);
        let baseline = report(&[("a", Status::Ok, &ten), ("b", Status::Ok, &ten)]);
        let first = report(&[
            ("a", Status::Ok, &runs(12.0)),
            ("b", Status::Ok, &runs(12.0)),
        ]);
        let rerun = report(&[("a", Status::Ok, &runs(12.0)), ("b", Status::Ok, &ten)]);
        let mut night = compare(&baseline, &first);
        confirm_with_rerun(&mut night, &compare(&baseline, &rerun));
        assert_eq!(state(&night, "a", "ttft_ms"), ChangeState::Regressed);
        assert_eq!(state(&night, "b", "ttft_ms"), ChangeState::Inconclusive);
        assert_eq!(
            regressed_benchmarks(&night, &first),
            [baseline.results[0].benchmark.clone()]
        );
    }

    #[test]
    fn interleaved_pairs_give_regressed_unchanged_and_too_few_pairs() {
        let pairs = |factor: f64, n: usize| -> Vec<(f64, f64)> {
            runs(10.0)
                .into_iter()
                .cycle()
                .take(n)
                .enumerate()
                // Drift over the night moves both builds alike.
                .map(|(i, v)| {
                    let drift = 1.0 + 0.05 * i as f64;
                    (v * drift, v * drift * factor)
                })
                .collect()
        };
        let series = |case: &str, pairs: Vec<(f64, f64)>| PairedSeries {
            case: case.into(),
            benchmark: "ttft".into(),
            metric: "ttft_ms".into(),
            unit: "ms".into(),
            higher_is_better: false,
            pairs,
        };
        let ten = runs(10.0);
        let both = report(&[
            ("slower", Status::Ok, &ten),
            ("same", Status::Ok, &ten),
            ("short", Status::Ok, &ten),
        ]);
        let c = compare_paired(
            &[
                series("slower", pairs(1.15, 10)),
                series("same", pairs(1.001, 10)),
                series("short", pairs(1.5, 2)),
            ],
            &both,
            &both,
            "other",
            "this",
            &CompareSettings::default(),
        );
        assert_eq!(state(&c, "slower", "ttft_ms"), ChangeState::Regressed);
        assert_eq!(state(&c, "same", "ttft_ms"), ChangeState::Unchanged);
        assert_eq!(state(&c, "short", "ttft_ms"), ChangeState::Inconclusive);
    }
}
