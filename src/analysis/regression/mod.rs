//! Regression verdicts a nightly job can trust, from run-level values (one
//! per separate run, each run its own process, never one run's
//! iterations), on the log scale:
//! - **test**: Mann–Whitney U against a stored baseline, or Wilcoxon's
//!   signed-rank test on the pairs of an interleaved A/B night;
//! - **night**: against a stored baseline, two nights differ by more than
//!   their runs: by a shift every case shares (the machine's, taken out of
//!   each time-like series and reported once, `common.rs`) and by each
//!   series' own night offset, whose variance the history gives
//!   (`noise.rs`) and which enters the verdict beside the rank test;
//! - **significance**: p < [`P_THRESHOLD`] and a Benjamini–Hochberg q below
//!   [`FDR`] over every comparison of the night;
//! - **size**: the 95 % interval of the shift lies wholly beyond the
//!   threshold.
//!
//! A metric is `unchanged` when that interval lies wholly inside the
//! threshold band, `inconclusive` otherwise. Every comparison also states
//! its blind spot (`mde_pct`): the smallest change the night as shipped
//! fails on four nights in five. The design is checked before a night
//! starts ([`plan_night`]): runs too few for any verdict are refused. The
//! A/A control ([`aa_control`]) withholds the regressions a drifting night
//! cannot support, never the ones that clear the drift. The night's
//! [`NightOutcome`] is what its exit code says.

mod common;
mod control;
mod design;
mod mde;
mod night;
mod noise;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

pub use common::{COMMON_SHIFT_RULE, MIN_COMMON_CASES, MachineShift, MachineShiftState};
pub use control::{
    AaControl, CONTROL_P, CONTROL_RULE, ControlSeries, ControlSplit, Split, aa_control,
};
pub use design::{
    FDR, GateDesign, MAX_RUNS, MIN_RUNS, NightPlan, NightRequest, P_THRESHOLD, Pairing,
    PlanRefusal, plan_night, runs_for_verdicts,
};
pub use mde::{MDE_RULE, MdeTable, NoiseModel, t_quantile};
pub use night::{judge_night, regressed_benchmarks};
pub use noise::{
    MAX_HISTORY_NIGHTS, MIN_NIGHT_DIFFERENCES, NIGHT_NOISE_RULE, NightNoise, NightRecord, NightSd,
    SeriesNight, SeriesNoise,
};

use crate::model::{BenchmarkResult, DailyReport, Status, environment_differences};
use crate::stats::{ShiftTest, benjamini_hochberg, median, paired_shift, two_sample_shift};
use common::{CaseShift, common_shift};

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

/// What a night's comparison means for the job that ran it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NightOutcome {
    /// Nothing regressed.
    #[default]
    Pass,
    /// A regression the night can stand behind: exit 3.
    Regression,
    /// Something moved that this night cannot judge: regressions inside
    /// the drift of a night whose runs disagree with each other, or every
    /// case moved together beyond what nights vary here. Re-run (or
    /// compare the builds with `--against-bin`): exit 5.
    TooNoisy,
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
    /// The threshold of one benchmark's comparisons, in %.
    pub fn threshold_pct(&self, benchmark: &str) -> f64 {
        self.overrides
            .get(benchmark)
            .copied()
            .unwrap_or(self.threshold_pct)
    }

    /// The threshold of one benchmark on the log scale.
    pub fn threshold_log(&self, benchmark: &str) -> f64 {
        (1.0 + self.threshold_pct(benchmark) / 100.0).ln()
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
    /// pairwise ratios, or of the pairs' Walsh averages when paired), the
    /// night's common shift taken out when `common_shift_removed`.
    pub ratio: Option<f64>,
    /// Its 95 % interval: the rank test's, widened by the night's
    /// variance the runs cannot show (night offset, common shift).
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
    /// The smallest change the night as shipped fails on four nights in
    /// five given the noise measured: changes below it cannot be seen
    /// tonight. `None` when the design cannot declare anything.
    #[serde(default)]
    pub mde_pct: Option<f64>,
    /// This series' night-to-night SD on this machine (from the history),
    /// in %: the variance a stored baseline's night adds. `None` while the
    /// history is too short to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub night_sd_pct: Option<f64>,
    /// Whether the night's common shift was taken out before testing.
    #[serde(default)]
    pub common_shift_removed: bool,
    /// For a regression on a night whose control fired: whether its
    /// interval clears the threshold plus the drift (it then still fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beyond_drift: Option<bool>,
    /// For a regression: whether it also regressed on at least 2 of the
    /// last 3 compared nights in this machine's history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<bool>,
    pub reason: String,
}

impl MetricChange {
    /// The history key of this series.
    pub fn series_key(&self) -> String {
        series_key(&self.case, &self.metric)
    }

    /// The interval oriented so that above 0 is worse, on the log scale.
    fn worse_interval(&self) -> Option<(f64, f64)> {
        let [lo, hi] = self.ratio_ci95?;
        let (a, b) = (
            worse(lo.ln(), self.higher_is_better),
            worse(hi.ln(), self.higher_is_better),
        );
        Some((a.min(b), a.max(b)))
    }
}

/// A series' key in the history and the night noise: `case metric`.
pub fn series_key(case: &str, metric: &str) -> String {
    format!("{case} {metric}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub baseline: String,
    pub current: String,
    pub rule: String,
    /// The night's design, planned before measuring.
    pub design: GateDesign,
    pub changes: Vec<MetricChange>,
    /// Per time-like metric of 3 cases or more, the shift its cases share
    /// between the baseline's night and this one (none for an interleaved
    /// night, whose pairs share the night).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machine_shifts: Vec<MachineShift>,
    /// What the history says about night-to-night noise, and the nights
    /// it rests on (none for an interleaved night).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub night_noise: Option<NightNoise>,
    /// Tonight's runs against themselves (none for an interleaved night,
    /// whose pairs already cancel the machine's drift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<AaControl>,
    /// The control splits that fired.
    pub control_regressions: Vec<String>,
    /// True when the control fired: regressions within the drift cannot
    /// fail the night; they make it too noisy to tell.
    pub advisory: bool,
    #[serde(default)]
    pub outcome: NightOutcome,
    /// Why the night ends as it does, in words.
    #[serde(default)]
    pub outcome_reason: String,
    pub counts: BTreeMap<ChangeState, usize>,
    /// Geometric mean of "worse" ratios (above 1 is slower/worse) over the
    /// metrics compared.
    pub geomean_ratio: Option<f64>,
    /// What differs between the two sides' environments (commit, CPU
    /// fingerprint, kernel, threads, …): (field, baseline, current).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_changes: Vec<(String, String, String)>,
}

impl Comparison {
    pub fn regressions(&self) -> impl Iterator<Item = &MetricChange> {
        self.changes
            .iter()
            .filter(|c| c.state == ChangeState::Regressed)
    }

    /// Whether this comparison fails the night: a regression it can stand
    /// behind.
    pub fn fails_the_night(&self) -> bool {
        self.outcome == NightOutcome::Regression
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

    /// Decides the night from its states, the control and the common
    /// shift: a regression whose interval clears its threshold plus the
    /// control's drift fails the night even when the control fired.
    fn settle_outcome(&mut self) {
        self.recount();
        let drift = self.control.as_ref().and_then(AaControl::drift_log);
        let advisory = self.advisory;
        for c in self.changes.iter_mut() {
            c.beyond_drift = None;
            if c.state == ChangeState::Regressed && advisory {
                let t = (1.0 + c.threshold_pct / 100.0).ln();
                let clears = c
                    .worse_interval()
                    .is_some_and(|(lo, _)| lo > t + drift.unwrap_or(0.0));
                c.beyond_drift = Some(clears);
            }
        }
        let failing: Vec<&MetricChange> = self
            .regressions()
            .filter(|c| c.beyond_drift != Some(false))
            .collect();
        let withheld = self.regressions().count() - failing.len();
        let slower = self
            .machine_shifts
            .iter()
            .find(|m| m.state == MachineShiftState::Slower);
        (self.outcome, self.outcome_reason) = if !failing.is_empty() {
            (
                NightOutcome::Regression,
                format!(
                    "{} regression{} the night stands behind{}",
                    failing.len(),
                    if failing.len() == 1 { "" } else { "s" },
                    if advisory {
                        " (beyond the threshold plus the drift of tonight's runs)"
                    } else {
                        ""
                    }
                ),
            )
        } else if withheld > 0 {
            (
                NightOutcome::TooNoisy,
                format!(
                    "too noisy to tell: re-run. {withheld} regression{} lie within the drift of tonight's runs ({}), which disagree with each other",
                    if withheld == 1 { "" } else { "s" },
                    self.control_regressions.join(", ")
                ),
            )
        } else if let Some(m) = slower {
            (
                NightOutcome::TooNoisy,
                format!(
                    "too noisy to tell: every case of {} moved together by ×{:.3}, beyond the threshold{}; the machine changed, or a change slowed every case; re-run, or compare the builds with --against-bin",
                    m.metric,
                    m.ratio,
                    if m.night_sd_pct.is_some() {
                        " and this machine's night-to-night noise"
                    } else {
                        " (this machine's night-to-night noise is not known yet)"
                    }
                ),
            )
        } else {
            (NightOutcome::Pass, "no regression".into())
        };
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
    slots: Vec<u32>,
}

fn series(result: &BenchmarkResult) -> Vec<Series<'_>> {
    let slots = result.slots();
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
                slots: slots.iter().copied().take(values.len()).collect(),
            }
        })
        .collect()
}

/// A time or a rate: what a faster or slower machine moves.
pub fn is_time_like(unit: &str) -> bool {
    let unit = unit.trim();
    matches!(unit, "ns" | "us" | "µs" | "ms" | "s") || unit.ends_with("/s")
}

/// Log values; `None` if any is not a positive finite number.
fn logs(values: &[f64]) -> Option<Vec<f64>> {
    values
        .iter()
        .map(|v| (v.is_finite() && *v > 0.0).then(|| v.ln()))
        .collect()
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

/// The rank test's verdict joined with the variance a night adds that the
/// runs cannot show (two nights' offsets, as the history shows them; the
/// common shift's sampling error): the p-value is the larger of the rank
/// test's and the t test's on the total SE, and the interval the union of
/// the two. Without such variance the rank test stands alone.
fn combine(test: ShiftTest, noise: NoiseModel, runs_se: f64, runs_dof: f64) -> ShiftTest {
    if !noise.adds_variance() {
        return test;
    }
    let (se, dof) = noise.total_se(runs_se, runs_dof);
    let p_model = match statrs::distribution::StudentsT::new(0.0, 1.0, dof.max(1.0)) {
        Ok(t) if se > 0.0 => {
            2.0 * statrs::distribution::ContinuousCDF::cdf(&t, -test.estimate.abs() / se)
        }
        _ => test.p_value,
    };
    let half = t_quantile(0.05, dof) * se;
    ShiftTest {
        p_value: test.p_value.max(p_model),
        interval: test
            .interval
            .map(|(lo, hi)| (lo.min(test.estimate - half), hi.max(test.estimate + half))),
        ..test
    }
}

/// A metric waiting for the night's Benjamini–Hochberg adjustment, with
/// the noise its blind spot is simulated from.
struct Pending {
    index: usize,
    test: ShiftTest,
    runs: (usize, usize),
    noise: NoiseModel,
}

/// Blind-spot tables depend on the design only: each is simulated once
/// per process.
type TableCache = Mutex<HashMap<(Pairing, usize, usize, usize), Option<Arc<MdeTable>>>>;

fn mde_table(pairing: Pairing, runs: (usize, usize), comparisons: usize) -> Option<Arc<MdeTable>> {
    static CACHE: OnceLock<TableCache> = OnceLock::new();
    let key = (pairing, runs.0, runs.1, comparisons);
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache
        .entry(key)
        .or_insert_with(|| {
            let design = match pairing {
                Pairing::Unpaired => GateDesign::unpaired(runs.0, runs.1, comparisons),
                Pairing::Paired => GateDesign::paired(runs.1, comparisons),
            };
            MdeTable::new(&design).map(Arc::new)
        })
        .clone()
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
        night_sd_pct: None,
        common_shift_removed: false,
        beyond_drift: None,
        persistent: None,
        reason: String::new(),
    }
}

/// Applies Benjamini–Hochberg over the night, sets every tested metric's
/// state and blind spot; returns the worse-oriented log shifts for the
/// geomean.
fn settle(
    changes: &mut [MetricChange],
    pending: Vec<Pending>,
    pairing: Pairing,
    confirmed: bool,
) -> Vec<f64> {
    let comparisons = pending.len();
    let q = benjamini_hochberg(&pending.iter().map(|p| p.test.p_value).collect::<Vec<_>>());
    let mut shifts = Vec::new();
    for (
        Pending {
            index,
            test,
            runs,
            noise,
        },
        q,
    ) in pending.into_iter().zip(q)
    {
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
        c.mde_pct = mde_table(pairing, runs, comparisons)
            .and_then(|table| table.minimum_detectable_shift(t, noise, confirmed))
            .map(|shift| (shift.exp() - 1.0) * 100.0);
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
        if c.common_shift_removed {
            c.reason.push_str("; the night's common shift taken out");
        }
        if let Some(sd) = c.night_sd_pct {
            c.reason
                .push_str(&format!("; night-to-night SD {sd:.1} % in the interval"));
        }
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
        night_sd_pct: None,
        common_shift_removed: false,
        beyond_drift: None,
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
    match pairing {
        Pairing::Unpaired => format!(
            "each time-like metric of 3 cases or more has the night's common shift taken out of its cases; regressed when Mann–Whitney U p < {P_THRESHOLD} and, where the history gives the series' night SD σ (the SD of a night's mean) or a common shift was taken out, the t test on SE = √(max(2σ², SE_runs²) + SE_common²) too; Benjamini–Hochberg q < {FDR} across the night's comparisons; and the 95 % interval (Moses' interval of the Hodges–Lehmann ratio, widened to the t interval on SE) lies wholly beyond the threshold; unchanged when it lies wholly inside; inconclusive otherwise"
        ),
        Pairing::Paired => format!(
            "regressed when Wilcoxon signed-rank (pairs of alternating runs) p < {P_THRESHOLD}, Benjamini–Hochberg q < {FDR} across the night's comparisons, and the Walsh-average 95 % interval of the Hodges–Lehmann ratio lies wholly beyond the threshold; unchanged when that interval lies wholly inside it; inconclusive otherwise"
        ),
    }
}

/// A series ready to test against a stored baseline.
struct Candidate<'a> {
    index: usize,
    series: Series<'a>,
    a: Vec<f64>,
    b: Vec<f64>,
    time_like: bool,
}

/// Compares tonight's report with a stored baseline, metric by metric:
/// the first comparison of a night.
pub fn compare_reports(
    baseline: &DailyReport,
    current: &DailyReport,
    baseline_name: &str,
    current_name: &str,
    settings: &CompareSettings,
    night: &NightNoise,
) -> Comparison {
    compare_unpaired(
        baseline,
        current,
        (baseline_name, current_name),
        settings,
        night,
        None,
    )
}

/// Compares a same-night re-run with the baseline: it ran in the same
/// night as the first comparison, so the common shifts that comparison
/// measured over every case are the ones taken out (the re-run repeats
/// only the suspects, too few cases to measure their own).
pub fn compare_rerun(
    baseline: &DailyReport,
    rerun: &DailyReport,
    first: &Comparison,
    settings: &CompareSettings,
    night: &NightNoise,
) -> Comparison {
    compare_unpaired(
        baseline,
        rerun,
        (&first.baseline, "re-run"),
        settings,
        night,
        Some(&first.machine_shifts),
    )
}

fn compare_unpaired(
    baseline: &DailyReport,
    current: &DailyReport,
    (baseline_name, current_name): (&str, &str),
    settings: &CompareSettings,
    night: &NightNoise,
    given_shifts: Option<&[MachineShift]>,
) -> Comparison {
    let mut changes = Vec::new();
    let mut candidates: Vec<Candidate<'_>> = Vec::new();
    for cur in &current.results {
        if let Some(change) = case_state(cur, find(baseline, &cur.case_id)) {
            changes.push(change);
            continue;
        }
        let Some(base) = find(baseline, &cur.case_id) else {
            continue;
        };
        let base_series = series(base);
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
            if a.len() < MIN_RUNS || b.len() < MIN_RUNS {
                change.reason = format!(
                    "needs at least {MIN_RUNS} separate runs on each side (baseline {}, this run {})",
                    a.len(),
                    b.len()
                );
                changes.push(change);
                continue;
            }
            changes.push(change);
            candidates.push(Candidate {
                index: changes.len() - 1,
                time_like: is_time_like(&s.unit),
                series: s,
                a,
                b,
            });
        }
    }
    let comparisons = candidates.len();
    let machine_shifts = match given_shifts {
        Some(given) => given.to_vec(),
        None => measure_common_shifts(&candidates, settings, night),
    };
    let mut pending = Vec::new();
    for cand in &candidates {
        let shift = machine_shifts
            .iter()
            .find(|m| cand.time_like && m.metric == cand.series.metric);
        let removed = shift.is_some();
        let hib = cand.series.higher_is_better;
        let raw_common = shift.map_or(0.0, |m| worse(m.shift_log(), hib));
        let b: Vec<f64> = cand.b.iter().map(|v| v - raw_common).collect();
        let key = series_key(cand.series.case, cand.series.metric);
        let noise = NoiseModel {
            within_sd: pooled_sd(&cand.a, &b).unwrap_or(0.0),
            common_se: shift.map_or(0.0, MachineShift::sampling_se_log),
            night: night.sd_log(&key, removed),
        };
        let change = &mut changes[cand.index];
        change.noise_floor_pct = Some(noise.within_sd * 100.0);
        change.night_sd_pct = noise.night.map(|n| n.sd * 100.0);
        change.common_shift_removed = removed;
        let runs_se = noise.within_sd * (1.0 / cand.a.len() as f64 + 1.0 / b.len() as f64).sqrt();
        let runs_dof = (cand.a.len() + b.len()) as f64 - 2.0;
        match two_sample_shift(&cand.a, &b) {
            Some(test) => pending.push(Pending {
                index: cand.index,
                test: combine(test, noise, runs_se, runs_dof),
                runs: (cand.a.len(), b.len()),
                noise,
            }),
            None => change.reason = "the runs could not be tested".into(),
        }
    }
    changes.extend(missing_cases(baseline, current));
    let shifts = settle(&mut changes, pending, Pairing::Unpaired, true);
    let fewest = |values: &mut dyn Iterator<Item = usize>| values.min().unwrap_or(0);
    let design = GateDesign::unpaired(
        fewest(&mut candidates.iter().map(|c| c.a.len())),
        fewest(&mut candidates.iter().map(|c| c.b.len())),
        comparisons,
    );
    for c in changes.iter_mut().filter(|c| c.p_value.is_some()) {
        let own = GateDesign::unpaired(c.baseline_runs, c.current_runs, comparisons);
        if !own.can_declare {
            c.reason.push_str(&format!("; {}", own.describe()));
        }
    }
    let control = night_control(current, settings);
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
        machine_shifts,
        night_noise: Some(night.clone()),
        outcome: NightOutcome::Pass,
        outcome_reason: String::new(),
        changes,
        counts: BTreeMap::new(),
        geomean_ratio: geomean(&shifts),
        environment_changes: environment_differences(
            &baseline.environment.flat_fields(),
            &current.environment.flat_fields(),
        ),
    };
    comparison.settle_outcome();
    comparison
}

/// Tonight's runs against themselves: each case's latency headline, else
/// its throughput, oriented so that larger is worse. The control of every
/// night against a baseline, and of a night that saves one.
pub fn night_control(report: &DailyReport, settings: &CompareSettings) -> AaControl {
    let mut picks: Vec<(Vec<f64>, Vec<u32>, f64)> = Vec::new();
    for r in report.results.iter().filter(|r| r.status == Status::Ok) {
        let mut pick: Option<(Vec<f64>, Vec<u32>, f64)> = None;
        for s in series(r) {
            let Some(b) = logs(s.values) else {
                continue;
            };
            if pick.is_none() || !s.higher_is_better {
                pick = Some((
                    b.iter().map(|v| worse(*v, s.higher_is_better)).collect(),
                    s.slots.clone(),
                    settings.threshold_log(s.benchmark),
                ));
            }
        }
        picks.extend(pick);
    }
    aa_control(
        &picks
            .iter()
            .map(|(runs, rounds, threshold)| ControlSeries {
                runs,
                rounds,
                threshold: *threshold,
            })
            .collect::<Vec<_>>(),
    )
}

/// The night's common shift of each time-like metric over its cases'
/// worse-oriented Hodges–Lehmann shifts.
fn measure_common_shifts(
    candidates: &[Candidate<'_>],
    settings: &CompareSettings,
    night: &NightNoise,
) -> Vec<MachineShift> {
    let mut by_metric: BTreeMap<&str, (Vec<CaseShift>, Vec<f64>)> = BTreeMap::new();
    for c in candidates.iter().filter(|c| c.time_like) {
        let Some(test) = two_sample_shift(&c.a, &c.b) else {
            continue;
        };
        let sd = pooled_sd(&c.a, &c.b).unwrap_or(0.0);
        let (shifts, thresholds) = by_metric.entry(c.series.metric).or_default();
        shifts.push(CaseShift {
            shift: worse(test.estimate, c.series.higher_is_better),
            variance: sd * sd * (1.0 / c.a.len() as f64 + 1.0 / c.b.len() as f64),
        });
        thresholds.push(settings.threshold_log(c.series.benchmark));
    }
    by_metric
        .into_iter()
        .filter_map(|(metric, (shifts, thresholds))| {
            common_shift(
                metric,
                &shifts,
                median(&thresholds)?,
                night.common_sd_log(metric),
            )
        })
        .collect()
}

/// One series of an interleaved night: a case's metric with its pairs of
/// (other build, this build) run values, pair by pair.
#[derive(Debug, Clone)]
pub struct PairedSeries {
    pub case: String,
    pub benchmark: String,
    pub metric: String,
    pub unit: String,
    pub higher_is_better: bool,
    pub pairs: Vec<(f64, f64)>,
}

/// The series of interleaved runs from their complete pairs (pair
/// number, the other side's report, this side's): each case's headline
/// means. A pair in which the case failed on either side is left out of
/// that case alone.
pub fn paired_series(pairs: &[(u32, &DailyReport, &DailyReport)]) -> Vec<PairedSeries> {
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
    // Every case any run of this side measured, in first-seen order.
    let mut cases: Vec<&BenchmarkResult> = Vec::new();
    for (_, _, this) in pairs {
        for r in this.results.iter().filter(|r| r.status == Status::Ok) {
            if !cases.iter().any(|c| c.case_id == r.case_id) {
                cases.push(r);
            }
        }
    }
    cases
        .into_iter()
        .flat_map(|r| {
            r.headline_means().into_iter().map(move |(metric, _)| {
                let m = r.metrics.get(&metric);
                PairedSeries {
                    case: r.case_id.clone(),
                    benchmark: r.benchmark.clone(),
                    unit: m.map_or(String::new(), |m| m.unit.clone()),
                    higher_is_better: m.is_some_and(|m| m.higher_is_better),
                    pairs: pairs
                        .iter()
                        .filter_map(|(_, a, b)| {
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
/// pair's log ratio, tested with Wilcoxon's signed-rank test. The pairs
/// share their night, so no night noise enters.
pub fn compare_paired(
    series: &[PairedSeries],
    other: &DailyReport,
    this: &DailyReport,
    other_name: &str,
    this_name: &str,
    settings: &CompareSettings,
) -> Comparison {
    let mut changes = Vec::new();
    let mut pending = Vec::new();
    for cur in &this.results {
        if let Some(change) = case_state(cur, find(other, &cur.case_id)) {
            changes.push(change);
        }
    }
    let mut tested = Vec::new();
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
            slots: Vec::new(),
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
        let sigma = sample_sd(&d);
        change.noise_floor_pct = sigma.map(|s| s * 100.0);
        match paired_shift(&d).filter(|_| d.len() >= MIN_RUNS) {
            Some(test) => {
                changes.push(change);
                tested.push(d.len());
                pending.push(Pending {
                    index: changes.len() - 1,
                    test,
                    runs: (d.len(), d.len()),
                    noise: NoiseModel {
                        within_sd: sigma.unwrap_or(0.0),
                        common_se: 0.0,
                        night: None,
                    },
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
    let comparisons = series.len();
    let design = GateDesign::paired(tested.iter().copied().min().unwrap_or(0), comparisons);
    changes.extend(missing_cases(other, this));
    let shifts = settle(&mut changes, pending, Pairing::Paired, false);
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
        machine_shifts: Vec::new(),
        night_noise: None,
        control: None,
        control_regressions: Vec::new(),
        advisory: false,
        outcome: NightOutcome::Pass,
        outcome_reason: String::new(),
        changes,
        counts: BTreeMap::new(),
        geomean_ratio: geomean(&shifts),
        environment_changes: environment_differences(
            &other.environment.flat_fields(),
            &this.environment.flat_fields(),
        ),
    };
    comparison.settle_outcome();
    comparison
}

/// Keeps a regression only if a same-night re-run of its benchmark
/// regressed too; the others become inconclusive.
pub fn confirm_with_rerun(first: &mut Comparison, rerun: Option<&Comparison>) {
    for change in first
        .changes
        .iter_mut()
        .filter(|c| c.state == ChangeState::Regressed)
    {
        let confirmed = rerun.is_some_and(|r| {
            r.changes.iter().any(|x| {
                x.case == change.case
                    && x.metric == change.metric
                    && x.state == ChangeState::Regressed
            })
        });
        if confirmed {
            change.reason.push_str("; confirmed by a same-night re-run");
        } else {
            change.state = ChangeState::Inconclusive;
            change.reason.push_str(if rerun.is_some() {
                "; did not persist in a same-night re-run"
            } else {
                "; the same-night re-run that must confirm it did not run"
            });
        }
    }
    first.settle_outcome();
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
                r.run_slots = (0..ttft.len() as u32).collect();
                r
            })
            .collect();
        report
    }

    /// A report of cases c0, c1, … with these ttft_ms run values.
    fn cases(values: &[Vec<f64>]) -> DailyReport {
        let names: Vec<String> = (0..values.len()).map(|i| format!("c{i}")).collect();
        report(
            &names
                .iter()
                .zip(values)
                .map(|(n, v)| (n.as_str(), Status::Ok, v.as_slice()))
                .collect::<Vec<_>>(),
        )
    }

    /// Seven runs around `center` with ±0.2 % spread.
    fn runs(center: f64) -> Vec<f64> {
        [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
            .iter()
            .map(|k| center * (1.0 + 0.000_7 * k))
            .collect()
    }

    fn change<'c>(c: &'c Comparison, case: &str, metric: &str) -> &'c MetricChange {
        c.changes
            .iter()
            .find(|x| x.case == case && x.metric == metric)
            .unwrap_or_else(|| panic!("no change for {case} {metric}"))
    }

    fn state(c: &Comparison, case: &str, metric: &str) -> ChangeState {
        change(c, case, metric).state
    }

    #[test]
    fn a_comparison_names_what_differs_between_the_two_runs_environments() {
        let base = report(&[("a", Status::Ok, &[1.0, 1.1, 0.9])]);
        let mut cur = base.clone();
        assert!(compare(&base, &cur).environment_changes.is_empty());
        cur.environment.threads = base.environment.threads + 1;
        cur.environment.fingerprint.microcode = Some("0xnew".into());
        cur.environment.hostname = Some("another-name".into());
        let changes = compare(&base, &cur).environment_changes;
        let fields: Vec<&str> = changes.iter().map(|c| c.0.as_str()).collect();
        // The host name differs without meaning and is left out.
        assert_eq!(fields, ["fingerprint.microcode", "threads"], "{changes:?}");
        assert_eq!(changes[0].2, "0xnew");
    }

    fn compare(baseline: &DailyReport, current: &DailyReport) -> Comparison {
        compare_reports(
            baseline,
            current,
            "b",
            "c",
            &CompareSettings::default(),
            &NightNoise::unknown(),
        )
    }

    #[test]
    fn stored_baseline_gives_each_state() {
        let (ten, slower, faster, same) = (runs(10.0), runs(12.0), runs(8.0), runs(10.01));
        let wide: Vec<f64> = [6.0, 14.0, 9.0, 11.0, 7.0, 13.0, 10.0].to_vec();
        let baseline = report(&[
            ("slower", Status::Ok, &ten),
            ("faster", Status::Ok, &ten),
            ("same", Status::Ok, &ten),
            ("same too", Status::Ok, &ten),
            ("noisy", Status::Ok, &ten),
            ("broken", Status::Ok, &ten),
            ("dropped", Status::Ok, &ten),
        ]);
        let current = report(&[
            ("slower", Status::Ok, &slower),
            ("faster", Status::Ok, &faster),
            ("same", Status::Ok, &same),
            ("same too", Status::Ok, &ten),
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
        assert_eq!(c.outcome, NightOutcome::Regression);
        assert_eq!(c.counts[&ChangeState::Regressed], 2);
        // Ratios are current ÷ baseline, whichever way is better; the
        // common shift of each metric's five cases (the median: none) is
        // taken out.
        assert_eq!(c.machine_shifts.len(), 2);
        for m in &c.machine_shifts {
            assert_eq!(m.cases, 5);
            assert!((m.ratio - 1.0).abs() < 0.002, "{m:?}");
        }
        let ratio = |metric: &str| change(&c, "slower", metric).ratio.unwrap();
        assert!((ratio("ttft_ms") - 1.2).abs() < 0.01);
        assert!((ratio("prefill_tokens_per_s") - 1.0 / 1.2).abs() < 0.01);
        assert!(change(&c, "slower", "ttft_ms").common_shift_removed);
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
        let reason = |case: &str| change(&c, case, "ttft_ms").reason.clone();
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
        let base_cases: Vec<(String, Vec<f64>)> =
            (0..6).map(|i| (format!("c{i}"), ten.clone())).collect();
        let as_cases = |v: &[(String, Vec<f64>)]| -> DailyReport {
            report(
                &v.iter()
                    .map(|(c, r)| (c.as_str(), Status::Ok, r.as_slice()))
                    .collect::<Vec<_>>(),
            )
        };
        let baseline = as_cases(&base_cases);
        let mut first = base_cases.clone();
        first[0].1 = runs(12.0);
        first[1].1 = runs(12.0);
        let mut again = base_cases.clone();
        again[0].1 = runs(12.0);
        let first = as_cases(&first);
        let mut night = compare(&baseline, &first);
        let rerun = compare_rerun(
            &baseline,
            &as_cases(&again),
            &night,
            &CompareSettings::default(),
            &NightNoise::unknown(),
        );
        confirm_with_rerun(&mut night, Some(&rerun));
        assert_eq!(state(&night, "c0", "ttft_ms"), ChangeState::Regressed);
        assert_eq!(state(&night, "c1", "ttft_ms"), ChangeState::Inconclusive);
        assert_eq!(night.outcome, NightOutcome::Regression);
        // No re-run at all: nothing is confirmed.
        let mut unconfirmed = compare(&baseline, &first);
        confirm_with_rerun(&mut unconfirmed, None);
        assert_eq!(unconfirmed.regressions().count(), 0);
        assert_eq!(unconfirmed.outcome, NightOutcome::Pass);
    }

    #[test]
    fn a_night_that_moved_together_is_a_machine_shift_not_n_regressions() {
        let night = |factor: &dyn Fn(usize) -> f64| -> DailyReport {
            cases(&(0..8).map(|i| runs(10.0 * factor(i))).collect::<Vec<_>>())
        };
        let baseline = night(&|_| 1.0);
        // Every case 10 % slower: one machine shift, no regression, and
        // the night is too noisy to tell.
        let all = compare(&baseline, &night(&|_| 1.10));
        assert_eq!(all.regressions().count(), 0, "{:#?}", all.changes);
        for m in &all.machine_shifts {
            assert_eq!(m.state, MachineShiftState::Slower);
            assert!((m.ratio - 1.10).abs() < 0.005);
        }
        assert_eq!(all.outcome, NightOutcome::TooNoisy);
        assert!(
            all.outcome_reason.contains("moved together"),
            "{}",
            all.outcome_reason
        );
        // One case twice as slow on top of the shift still stands out.
        let one = compare(&baseline, &night(&|i| if i == 3 { 2.2 } else { 1.10 }));
        assert_eq!(
            one.regressions()
                .map(|c| c.case.as_str())
                .collect::<std::collections::BTreeSet<_>>(),
            ["c3"].into()
        );
        assert!((change(&one, "c3", "ttft_ms").ratio.unwrap() - 2.0).abs() < 0.02);
        assert_eq!(one.outcome, NightOutcome::Regression);
        // Night-to-night noise from the history that covers 10 %: within.
        let mut noise = NightNoise::unknown();
        noise.common_sd_pct = [
            ("ttft_ms".to_string(), 8.0),
            ("prefill_tokens_per_s".to_string(), 8.0),
        ]
        .into();
        let explained = compare_reports(
            &baseline,
            &night(&|_| 1.10),
            "b",
            "c",
            &CompareSettings::default(),
            &noise,
        );
        assert!(
            explained
                .machine_shifts
                .iter()
                .all(|m| m.state == MachineShiftState::Within)
        );
        assert_eq!(explained.outcome, NightOutcome::Pass);
    }

    #[test]
    fn night_noise_from_the_history_widens_the_interval_and_raises_p() {
        let mk = |centers: [f64; 2]| cases(&centers.map(runs));
        let (baseline, current) = (mk([10.0, 10.0]), mk([10.8, 10.0]));
        let quiet = compare(&baseline, &current);
        assert_eq!(state(&quiet, "c0", "ttft_ms"), ChangeState::Regressed);
        // Two cases: no common shift; c0's nightly means vary by 4 % SD.
        let mut noise = NightNoise::unknown();
        noise.series.insert(
            series_key("c0", "ttft_ms"),
            SeriesNoise {
                differences: 10,
                residual_sd_pct: Some(1.0),
                total_sd_pct: Some(4.0),
            },
        );
        let noisy = compare_reports(
            &baseline,
            &current,
            "b",
            "c",
            &CompareSettings::default(),
            &noise,
        );
        let c = change(&noisy, "c0", "ttft_ms");
        assert_eq!(c.night_sd_pct, Some(4.0));
        assert!(!c.common_shift_removed);
        assert_eq!(c.state, ChangeState::Inconclusive, "{c:#?}");
        let [lo, hi] = c.ratio_ci95.unwrap();
        // ±t₉₅(6.7 dof) × √2 × 4 % around 8 %, at least: ±0.13.
        assert!(
            lo < 1.08 * (-0.13f64).exp() && hi > 1.08 * 0.13f64.exp(),
            "{lo} {hi}"
        );
        assert!(c.p_value.unwrap() > change(&quiet, "c0", "ttft_ms").p_value.unwrap());
        assert!(c.mde_pct.unwrap() > change(&quiet, "c0", "ttft_ms").mde_pct.unwrap());
    }

    #[test]
    fn a_drifting_night_withholds_only_the_regressions_within_its_drift() {
        let baseline = cases(&vec![runs(10.0); 8]);
        // The machine slows by 5 % a run through the night, in every case,
        // and c0 is also 1.3× or 3× slower throughout.
        let night = |planted: f64| {
            let values: Vec<Vec<f64>> = (0..8)
                .map(|i| {
                    runs(10.0)
                        .iter()
                        .enumerate()
                        .map(|(r, v)| {
                            v * (0.05 * r as f64).exp() * if i == 0 { planted } else { 1.0 }
                        })
                        .collect()
                })
                .collect();
            cases(&values)
        };
        let small = compare(&baseline, &night(1.3));
        assert!(small.advisory, "{:#?}", small.control);
        assert_eq!(state(&small, "c0", "ttft_ms"), ChangeState::Regressed);
        assert_eq!(change(&small, "c0", "ttft_ms").beyond_drift, Some(false));
        assert_eq!(small.outcome, NightOutcome::TooNoisy);
        assert!(
            small
                .outcome_reason
                .starts_with("too noisy to tell: re-run")
        );
        let large = compare(&baseline, &night(3.0));
        assert!(large.advisory);
        assert_eq!(change(&large, "c0", "ttft_ms").beyond_drift, Some(true));
        assert_eq!(large.outcome, NightOutcome::Regression);
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
        assert_eq!(c.outcome, NightOutcome::Regression);
    }
}
