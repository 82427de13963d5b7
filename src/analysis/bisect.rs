//! Bisect: the first commit between a good and a bad revision whose build
//! is slower. The two ends are measured against each other first, in an
//! interleaved sitting judged by the gate (`compare_paired`): no
//! regression there, no bisect. The regression found sets the size that
//! every later step is judged against: each commit measured is run against
//! the good build, pair by pair in ABBA order (a drifting machine
//! cancels), and classified by which hypothesis its paired shift is
//! nearer, the good build's (×1) or the bad build's (the size). A step's
//! sitting stops as soon as a distribution-free interval of the shift lies
//! wholly on one side of the midpoint between them, so a quiet step costs
//! its first look and a noisy one what its noise needs. A commit that
//! cannot be built or measured is skipped, as `git bisect skip` does,
//! never blamed; when only skipped commits separate the last good from
//! the first bad, all of them are named.

use serde::{Deserialize, Serialize};

use super::regression::{
    ChangeState, CompareSettings, Comparison, PairedSeries, compare_paired, paired_series,
    sample_sd,
};
use crate::model::DailyReport;
use crate::profile::FoldedStacks;
use crate::runner::{Arm, CancelFlag, Schedule, SittingRuns, Slot, SlotRun, run_sitting_until};
use crate::stats::{paired_shift_at, two_sided_z};

/// Coverage of the interval a step is judged on at each look. A step
/// looks at most [`MAX_STEP_PAIRS`] / 2 − 3 times; the interval must
/// exclude the midpoint, half the regression away from either hypothesis,
/// so a wrong call needs an error far beyond the interval's 0.5 % tail.
pub const STEP_CONFIDENCE: f64 = 0.99;
/// The first look: the fewest pairs whose signed-rank interval at
/// [`STEP_CONFIDENCE`] exists (1 / 2⁸ < 0.005).
pub const FIRST_LOOK_PAIRS: usize = 8;
/// The most pairs one step runs; a step still unsettled there is decided
/// by its estimate and says so.
pub const MAX_STEP_PAIRS: usize = 32;
/// A step runs at least this many pairs before its estimate may decide
/// it (looks at 8, 10 and 12): at 8 pairs the 99 % interval is the range
/// of the pairs, which one noisy pair keeps open.
pub const MIN_STEP_PAIRS: usize = 12;
/// How a step is judged, in words for the report.
pub const STEP_RULE: &str = "the gate compares the ends and the largest regression is followed; the bad end is measured again and that estimate is the size (it must reproduce: its 99 % interval above ×1); each commit is then run against the good build in interleaved pairs (ABBA); after 8 pairs and every 2 more, the 99 % Hodges–Lehmann interval of its paired slowdown is compared with the midpoint between ×1 and the size: wholly above, the commit is bad; wholly below, good; a step that reaches its most pairs unsettled is decided by its estimate (with at least 4 pairs) and marked unsettled";
/// How a step's most pairs are planned, in words for the report.
pub const STEP_PAIRS_RULE: &str = "most pairs of a step = ⌈(z₀.₉₉₅ · SD of the paired log slowdowns / (ln size / 4))²⌉, even, within 12..=32: by the normal approximation, the interval's half-width a quarter of the regression; the exact interval of few pairs is wider, so some steps end unsettled and say so";

/// What a measured or skipped commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitVerdict {
    /// As fast as the good build (nearer ×1 than the regression).
    Good,
    /// As slow as the bad build.
    Bad,
    /// Not built or not measured: left out of the search.
    Skipped,
}

/// Why a step was run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepRole {
    /// The bad end against the good end, judged by the gate.
    Ends,
    /// The bad end again, right after the ends: the regression must
    /// reproduce, and this sitting's estimate (not chosen by the gate as
    /// the largest of many, so not inflated by that choice) is the size
    /// every later step is judged against.
    Size,
    /// A commit between them.
    Candidate,
}

/// The series a bisect follows: the largest regression between the ends
/// (or the one `--metric` names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowedSeries {
    pub case: String,
    pub benchmark: String,
    pub metric: String,
    pub unit: String,
    pub higher_is_better: bool,
    /// The bad build's slowdown against the good one (> 1: slower) as the
    /// gate's sitting of the ends estimated it: the largest of the
    /// regressions found, so biased up by that choice.
    pub gate_size: f64,
    /// The slowdown every step is judged against: the paired
    /// Hodges–Lehmann estimate of the bad end measured again.
    pub size: f64,
    /// Its interval at [`STEP_CONFIDENCE`].
    pub size_ci: Option<[f64; 2]>,
    /// SD of the paired log slowdowns the most pairs were planned from, in %.
    pub pair_sd_pct: f64,
    /// The most pairs a step runs ([`STEP_PAIRS_RULE`]).
    pub max_step_pairs: usize,
}

/// One sitting of the bisect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BisectStep {
    /// Index of the commit measured (0 is the good end).
    pub commit: usize,
    pub role: StepRole,
    /// Complete pairs the verdict rests on.
    pub pairs: usize,
    /// Timed runs that left no report.
    pub lost_runs: usize,
    /// The commit's slowdown against the good build (> 1: slower).
    pub slowdown: Option<f64>,
    /// Its interval at [`STEP_CONFIDENCE`].
    pub slowdown_ci: Option<[f64; 2]>,
    pub verdict: CommitVerdict,
    /// Whether the interval cleared the midpoint (false: decided by the
    /// estimate at the most pairs, or not decided at all).
    pub settled: bool,
    pub reason: String,
}

impl BisectStep {
    /// A step that measured nothing (skipped), and why.
    fn unmeasured(commit: usize, role: StepRole, reason: String) -> Self {
        Self {
            commit,
            role,
            pairs: 0,
            lost_runs: 0,
            slowdown: None,
            slowdown_ci: None,
            verdict: CommitVerdict::Skipped,
            settled: false,
            reason,
        }
    }
}

/// How a bisect ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum BisectOutcome {
    /// `commit` is the first bad one; `last_good` is the one before it.
    FirstBad { commit: usize, last_good: usize },
    /// Only skipped commits lie between the last good and the first bad
    /// one: the first bad commit is one of these.
    Ambiguous {
        last_good: usize,
        candidates: Vec<usize>,
    },
    /// The bad end is not slower than the good end.
    NoRegression { reason: String },
    /// An end could not be built or measured.
    NotMeasured { reason: String },
    /// Ctrl-C: the steps so far are kept.
    Interrupted,
}

/// What a bisect measured and found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BisectSearch {
    /// Commits from the good end (0) to the bad end (`commits - 1`).
    pub commits: usize,
    pub verdicts: Vec<Option<CommitVerdict>>,
    /// Why each skipped commit was skipped, by index.
    pub skipped: Vec<(usize, String)>,
    pub steps: Vec<BisectStep>,
    /// The gate's comparison of the ends.
    pub ends: Option<Comparison>,
    pub followed: Option<FollowedSeries>,
    pub outcome: BisectOutcome,
    pub rule: String,
}

impl BisectSearch {
    /// Distinct builds measured against the good one (the ends' sitting
    /// counts the bad build; a confirmation measures it again).
    pub fn builds_measured(&self) -> usize {
        let mut measured: Vec<usize> = self
            .steps
            .iter()
            .filter(|s| s.pairs > 0)
            .map(|s| s.commit)
            .collect();
        measured.sort_unstable();
        measured.dedup();
        measured.len()
    }
}

/// The builds a bisect runs: implemented by the command over git
/// worktrees and child processes, and by the tests over a simulated
/// machine; the search and its sittings are the same code.
pub trait BisectBuilds {
    /// Makes the build of commit `index` (0: the good end) ready to run,
    /// or says why it cannot be.
    fn build(&mut self, index: usize) -> Result<(), String>;
    /// One run of a sitting: the good build for [`Arm::Reference`], build
    /// `candidate` for [`Arm::Candidate`]. `Err` stops the sitting (a
    /// build refused the day): the commit is skipped.
    fn run_slot(&mut self, candidate: usize, slot: &Slot) -> Result<SlotRun, String>;
    /// Told of each step as it ends (for progress).
    fn step_done(&mut self, _step: &BisectStep) {}
}

/// What the ends' sitting and each step need besides the builds.
#[derive(Debug, Clone)]
pub struct BisectSettings {
    /// Pairs of the ends' sitting (the gate's interleaved design for the
    /// day's comparisons).
    pub ends_pairs: usize,
    /// Follow the regression whose `case metric` contains this text.
    pub metric: Option<String>,
    pub compare: CompareSettings,
    /// Seeds each sitting's ABBA order (step k uses `seed + k`).
    pub seed: u64,
}

/// A step's decision rule for one regression size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepDesign {
    /// ln of the regression between the ends (> 0).
    pub size_log: f64,
    pub max_pairs: usize,
}

/// What the pairs of a step say so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepJudgement {
    pub verdict: Option<CommitVerdict>,
    pub settled: bool,
    pub estimate_log: Option<f64>,
    pub interval_log: Option<(f64, f64)>,
}

impl StepDesign {
    /// The most pairs from the noise of the ends' pairs ([`STEP_PAIRS_RULE`]).
    pub fn plan(size_log: f64, pair_sd_log: f64) -> Self {
        let z = two_sided_z(STEP_CONFIDENCE);
        let needed = (z * pair_sd_log / (size_log / 4.0)).powi(2).ceil();
        let needed = if needed.is_finite() {
            needed as usize
        } else {
            MAX_STEP_PAIRS
        };
        let even = needed + needed % 2;
        Self {
            size_log,
            max_pairs: even.clamp(MIN_STEP_PAIRS, MAX_STEP_PAIRS),
        }
    }

    /// Judges a step's paired log slowdowns; `last` when no more pairs
    /// will come (the estimate decides an unsettled step).
    pub fn judge(&self, slowdown_logs: &[f64], last: bool) -> StepJudgement {
        let mid = self.size_log / 2.0;
        let test = (slowdown_logs.len() >= FIRST_LOOK_PAIRS)
            .then(|| paired_shift_at(slowdown_logs, STEP_CONFIDENCE))
            .flatten()
            .or_else(|| {
                // Too few pairs for the interval: the estimate alone, for
                // the last word only.
                crate::stats::paired_shift(slowdown_logs).map(|mut t| {
                    t.interval = None;
                    t
                })
            });
        let Some(test) = test else {
            return StepJudgement {
                verdict: None,
                settled: false,
                estimate_log: None,
                interval_log: None,
            };
        };
        let cleared = test.interval.and_then(|(lo, hi)| {
            if lo > mid {
                Some(CommitVerdict::Bad)
            } else if hi < mid {
                Some(CommitVerdict::Good)
            } else {
                None
            }
        });
        let nearer = if test.estimate > mid {
            CommitVerdict::Bad
        } else {
            CommitVerdict::Good
        };
        let enough = slowdown_logs.len() >= FIRST_LOOK_PAIRS / 2;
        let by_estimate = (last && enough && cleared.is_none()).then_some(nearer);
        StepJudgement {
            verdict: cleared.or(by_estimate),
            settled: cleared.is_some(),
            estimate_log: Some(test.estimate),
            interval_log: test.interval,
        }
    }
}

/// A followed series' paired log slowdowns (> 0: the candidate is slower),
/// pair by pair; pairs whose value is not positive and finite are left out.
pub fn slowdown_logs(series: &PairedSeries) -> Vec<f64> {
    series
        .pairs
        .iter()
        .filter(|(a, b)| *a > 0.0 && *b > 0.0 && a.is_finite() && b.is_finite())
        .map(|(good, candidate)| {
            let log = (candidate / good).ln();
            if series.higher_is_better { -log } else { log }
        })
        .collect()
}

fn followed_logs(runs: &SittingRuns, followed: &FollowedSeries) -> Vec<f64> {
    paired_series(&runs.pairs())
        .into_iter()
        .find(|s| s.case == followed.case && s.metric == followed.metric)
        .map(|s| slowdown_logs(&s))
        .unwrap_or_default()
}

/// Where the search stands: the next commit to measure, or its end.
enum Next {
    Measure(usize),
    Done(BisectOutcome),
}

fn next_commit(verdicts: &[Option<CommitVerdict>]) -> Next {
    let last_good = verdicts
        .iter()
        .rposition(|v| *v == Some(CommitVerdict::Good))
        .unwrap_or(0);
    let first_bad = (last_good + 1..verdicts.len())
        .find(|&i| verdicts[i] == Some(CommitVerdict::Bad))
        .unwrap_or(verdicts.len() - 1);
    let open: Vec<usize> = (last_good + 1..first_bad)
        .filter(|&i| verdicts[i] != Some(CommitVerdict::Skipped))
        .collect();
    if open.is_empty() {
        let skipped: Vec<usize> = (last_good + 1..first_bad).collect();
        return Next::Done(if skipped.is_empty() {
            BisectOutcome::FirstBad {
                commit: first_bad,
                last_good,
            }
        } else {
            BisectOutcome::Ambiguous {
                last_good,
                candidates: skipped.into_iter().chain([first_bad]).collect(),
            }
        });
    }
    // The open commit nearest the middle of the range (the lower on a
    // tie): a skipped middle moves the split as little as it can.
    let middle = (last_good + first_bad) as f64 / 2.0;
    let nearest = open
        .iter()
        .copied()
        .min_by(|a, b| {
            let (da, db) = ((*a as f64 - middle).abs(), (*b as f64 - middle).abs());
            da.total_cmp(&db).then(a.cmp(b))
        })
        .unwrap_or(open[0]);
    Next::Measure(nearest)
}

/// Runs a bisect over `commits` commits (index 0 the good end, the last
/// the bad end) through `builds`.
pub fn bisect(
    builds: &mut dyn BisectBuilds,
    commits: usize,
    settings: &BisectSettings,
    interrupt: &CancelFlag,
) -> BisectSearch {
    let mut search = BisectSearch {
        commits,
        verdicts: vec![None; commits],
        skipped: Vec::new(),
        steps: Vec::new(),
        ends: None,
        followed: None,
        outcome: BisectOutcome::Interrupted,
        rule: STEP_RULE.to_string(),
    };
    if commits < 2 {
        search.outcome = BisectOutcome::NotMeasured {
            reason: "the good and the bad revision are the same commit".into(),
        };
        return search;
    }
    let bad = commits - 1;
    search.verdicts[0] = Some(CommitVerdict::Good);
    for (end, name) in [(0, "good"), (bad, "bad")] {
        if let Err(why) = builds.build(end) {
            search.outcome = if interrupt.is_cancelled() {
                BisectOutcome::Interrupted
            } else {
                BisectOutcome::NotMeasured {
                    reason: format!("the {name} revision cannot be built: {why}"),
                }
            };
            return search;
        }
    }
    // The ends, judged by the gate over every series of the day.
    let schedule = Schedule::interleaved(settings.ends_pairs, settings.seed);
    let runs = match run_sitting_until(
        &schedule,
        interrupt,
        |slot| builds.run_slot(bad, slot),
        |_| false,
    ) {
        Ok(runs) => runs,
        Err(why) => {
            search.outcome = BisectOutcome::NotMeasured {
                reason: format!("the ends could not be measured: {why}"),
            };
            return search;
        }
    };
    if interrupt.is_cancelled() {
        return search;
    }
    let pooled = |arm: Arm| DailyReport::pooled(&runs.arm(arm), &runs.lost(arm));
    let (Some(good_report), Some(bad_report)) = (pooled(Arm::Reference), pooled(Arm::Candidate))
    else {
        search.outcome = BisectOutcome::NotMeasured {
            reason: format!(
                "no run of an end left a report{}",
                runs.lost
                    .first()
                    .map_or(String::new(), |(_, why)| format!(" ({why})"))
            ),
        };
        return search;
    };
    let series = paired_series(&runs.pairs());
    let ends = compare_paired(
        &series,
        &good_report,
        &bad_report,
        "good",
        "bad",
        &settings.compare,
    );
    let followed = choose_followed(&ends, &series, settings.metric.as_deref());
    let ends_step = |verdict, followed: Option<&FollowedSeries>, reason: String| BisectStep {
        commit: bad,
        role: StepRole::Ends,
        pairs: runs.pairs().len(),
        lost_runs: runs.lost.len(),
        slowdown: followed.map(|f| f.gate_size),
        slowdown_ci: None,
        verdict,
        settled: followed.is_some(),
        reason,
    };
    search.ends = Some(ends);
    let mut followed = match followed {
        Ok(f) => f,
        Err(reason) => {
            search
                .steps
                .push(ends_step(CommitVerdict::Good, None, reason.clone()));
            search.outcome = BisectOutcome::NoRegression { reason };
            return search;
        }
    };
    let first = ends_step(
        CommitVerdict::Bad,
        Some(&followed),
        format!(
            "the gate found {} ×{:.3} slower at the bad end (the largest regression, so this estimate is biased up by that choice)",
            followed_name(&followed),
            followed.gate_size
        ),
    );
    builds.step_done(&first);
    search.steps.push(first);
    // The bad end again: does the regression reproduce, and how large is
    // it when nothing chose it for being large?
    let again = Schedule::interleaved(followed.max_step_pairs, settings.seed.wrapping_add(1));
    let sized = run_sitting_until(
        &again,
        interrupt,
        |slot| builds.run_slot(bad, slot),
        |_| false,
    );
    if interrupt.is_cancelled() {
        return search;
    }
    let (measured_again, size) = size_step(sized, bad, &followed);
    builds.step_done(&measured_again);
    let reproduced = measured_again.verdict == CommitVerdict::Bad;
    let why = measured_again.reason.clone();
    search.steps.push(measured_again);
    match size {
        Some((size, ci, sd_log)) if reproduced => {
            followed.size = size;
            followed.size_ci = ci;
            followed.pair_sd_pct = sd_log * 100.0;
            followed.max_step_pairs = StepDesign::plan(size.ln(), sd_log).max_pairs;
        }
        Some(_) => {
            search.followed = Some(followed);
            search.outcome = BisectOutcome::NoRegression {
                reason: format!("the regression between the ends did not reproduce: {why}"),
            };
            return search;
        }
        None => {
            search.followed = Some(followed);
            search.outcome = BisectOutcome::NotMeasured {
                reason: format!("the bad end could not be measured again: {why}"),
            };
            return search;
        }
    }
    search.verdicts[bad] = Some(CommitVerdict::Bad);
    let design = StepDesign {
        size_log: followed.size.ln(),
        max_pairs: followed.max_step_pairs,
    };
    search.followed = Some(followed.clone());
    loop {
        let commit = match next_commit(&search.verdicts) {
            Next::Measure(commit) => commit,
            Next::Done(outcome) => {
                search.outcome = outcome;
                return search;
            }
        };
        if interrupt.is_cancelled() {
            search.outcome = BisectOutcome::Interrupted;
            return search;
        }
        if let Err(why) = builds.build(commit) {
            if interrupt.is_cancelled() {
                search.outcome = BisectOutcome::Interrupted;
                return search;
            }
            search.verdicts[commit] = Some(CommitVerdict::Skipped);
            search.skipped.push((commit, format!("not built: {why}")));
            continue;
        }
        let seed = settings.seed.wrapping_add(1 + search.steps.len() as u64);
        let step = measure_step(builds, commit, &design, &followed, seed, interrupt);
        builds.step_done(&step);
        if interrupt.is_cancelled() {
            search.steps.push(step);
            search.outcome = BisectOutcome::Interrupted;
            return search;
        }
        if step.verdict == CommitVerdict::Skipped {
            search
                .skipped
                .push((commit, format!("not measured: {}", step.reason)));
        }
        search.verdicts[commit] = Some(step.verdict);
        search.steps.push(step);
    }
}

/// The bad end's second sitting: its step, and the size it measured
/// (estimate, interval, SD of the log slowdowns) when it measured one.
type MeasuredSize = (f64, Option<[f64; 2]>, f64);

fn size_step(
    sitting: Result<SittingRuns, String>,
    bad: usize,
    followed: &FollowedSeries,
) -> (BisectStep, Option<MeasuredSize>) {
    let mut step = BisectStep::unmeasured(bad, StepRole::Size, String::new());
    let runs = match sitting {
        Ok(runs) => runs,
        Err(why) => {
            step.reason = why;
            return (step, None);
        }
    };
    let logs = followed_logs(&runs, followed);
    step.pairs = logs.len();
    step.lost_runs = runs.lost.len();
    let test =
        paired_shift_at(&logs, STEP_CONFIDENCE).filter(|_| logs.len() >= FIRST_LOOK_PAIRS / 2);
    let Some(test) = test else {
        step.reason = format!(
            "{} complete pairs measured {}{}",
            logs.len(),
            followed_name(followed),
            runs.lost
                .first()
                .map_or(String::new(), |(_, why)| format!(" ({why})"))
        );
        return (step, None);
    };
    let ci = test.interval.map(|(lo, hi)| [lo.exp(), hi.exp()]);
    let estimate = test.estimate.exp();
    step.slowdown = Some(estimate);
    step.slowdown_ci = ci;
    let reproduced = test.estimate > 0.0 && test.interval.is_some_and(|(lo, _)| lo > 0.0);
    step.settled = test.interval.is_some();
    step.verdict = if reproduced {
        CommitVerdict::Bad
    } else {
        CommitVerdict::Good
    };
    step.reason = match ci {
        Some([lo, hi]) if reproduced => format!(
            "measured again: ×{estimate:.3} [{lo:.3}, {hi:.3}], the size the steps are judged against"
        ),
        Some([lo, hi]) => format!("measured again: ×{estimate:.3} [{lo:.3}, {hi:.3}] includes ×1"),
        None => format!("measured again: ×{estimate:.3}, too few pairs for a 99 % interval"),
    };
    let sd = sample_sd(&logs).unwrap_or(0.0);
    (step, Some((estimate, ci, sd)))
}

fn followed_name(f: &FollowedSeries) -> String {
    format!("{} {}", f.case, f.metric)
}

/// The regression to follow: the one `metric` names, else the largest.
fn choose_followed(
    ends: &Comparison,
    series: &[PairedSeries],
    metric: Option<&str>,
) -> Result<FollowedSeries, String> {
    let matches =
        |case: &str, m: &str| metric.is_none_or(|text| format!("{case} {m}").contains(text));
    let regressed = ends
        .changes
        .iter()
        .filter(|c| c.state == ChangeState::Regressed && matches(&c.case, &c.metric));
    let slowdown = |ratio: f64, higher_is_better: bool| {
        if higher_is_better { 1.0 / ratio } else { ratio }
    };
    let largest = regressed
        .filter_map(|c| Some((c, slowdown(c.ratio?, c.higher_is_better))))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let Some((change, _)) = largest else {
        let others = ends.regressions().count();
        return Err(match (metric, others) {
            (Some(text), n) if n > 0 => format!(
                "no regression between the ends matches --metric {text:?} ({n} other series regressed: {})",
                ends.regressions()
                    .map(|c| format!("{} {}", c.case, c.metric))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (Some(text), _) if !series.iter().any(|s| matches(&s.case, &s.metric)) => {
                format!("no series of the day matches --metric {text:?}")
            }
            _ => format!(
                "no regression between the good and the bad revision: the gate found none among {} series ({})",
                series.len(),
                ends.design.describe()
            ),
        });
    };
    let s = series
        .iter()
        .find(|s| s.case == change.case && s.metric == change.metric)
        .ok_or_else(|| format!("{} {} has no pairs", change.case, change.metric))?;
    let logs = slowdown_logs(s);
    let test = paired_shift_at(&logs, STEP_CONFIDENCE);
    let size_log = test.map_or(0.0, |t| t.estimate);
    if size_log <= 0.0 {
        return Err(format!(
            "{} {} regressed by the gate's test but its paired estimate is not a slowdown",
            change.case, change.metric
        ));
    }
    let sd = sample_sd(&logs).unwrap_or(0.0);
    let design = StepDesign::plan(size_log, sd);
    Ok(FollowedSeries {
        case: s.case.clone(),
        benchmark: s.benchmark.clone(),
        metric: s.metric.clone(),
        unit: s.unit.clone(),
        higher_is_better: s.higher_is_better,
        gate_size: size_log.exp(),
        size: size_log.exp(),
        size_ci: None,
        pair_sd_pct: sd * 100.0,
        max_step_pairs: design.max_pairs,
    })
}

fn measure_step(
    builds: &mut dyn BisectBuilds,
    commit: usize,
    design: &StepDesign,
    followed: &FollowedSeries,
    seed: u64,
    interrupt: &CancelFlag,
) -> BisectStep {
    let schedule = Schedule::interleaved(design.max_pairs, seed);
    let sitting = run_sitting_until(
        &schedule,
        interrupt,
        |slot| builds.run_slot(commit, slot),
        |runs| design.judge(&followed_logs(runs, followed), false).settled,
    );
    let blank = |reason: String| BisectStep::unmeasured(commit, StepRole::Candidate, reason);
    let runs = match sitting {
        Ok(runs) => runs,
        Err(why) => return blank(why),
    };
    let logs = followed_logs(&runs, followed);
    let judgement = design.judge(&logs, true);
    let slowdown = judgement.estimate_log.map(f64::exp);
    let ci = judgement.interval_log.map(|(lo, hi)| [lo.exp(), hi.exp()]);
    let (verdict, reason) = match (judgement.verdict, slowdown) {
        (Some(v), Some(s)) => {
            let midpoint = (design.size_log / 2.0).exp();
            let how = if judgement.settled {
                match ci {
                    Some([lo, hi]) => format!(
                        "×{s:.3} [{lo:.3}, {hi:.3}] is wholly {} the midpoint ×{midpoint:.3}",
                        if v == CommitVerdict::Bad {
                            "above"
                        } else {
                            "below"
                        }
                    ),
                    None => format!("×{s:.3}"),
                }
            } else {
                format!(
                    "unsettled after {} pairs: its estimate ×{s:.3} is {} the midpoint ×{midpoint:.3}",
                    logs.len(),
                    if v == CommitVerdict::Bad {
                        "above"
                    } else {
                        "below"
                    }
                )
            };
            (v, how)
        }
        _ => (
            CommitVerdict::Skipped,
            format!(
                "no complete pair of runs measured {}{}",
                followed_name(followed),
                runs.lost
                    .first()
                    .map_or(String::new(), |(_, why)| format!(" ({why})"))
            ),
        ),
    };
    BisectStep {
        commit,
        role: StepRole::Candidate,
        pairs: logs.len(),
        lost_runs: runs.lost.len(),
        slowdown,
        slowdown_ci: ci,
        verdict,
        settled: judgement.settled,
        reason,
    }
}

/// A bisect as written to `bisect.json` and rendered by the writers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BisectReport {
    pub campaign: String,
    pub campaign_file: String,
    pub day: u32,
    /// Where each build's campaign came from, in words.
    pub campaign_source: String,
    pub repository: String,
    /// How each commit was built, in words.
    pub build: String,
    /// The commits searched, the good end first and the bad end last.
    pub commits: Vec<crate::runner::Commit>,
    /// Commits whose build came from the cache.
    pub cached_builds: Vec<usize>,
    pub search: BisectSearch,
    /// The culprit against the last good commit, when one was found and
    /// both could be profiled.
    pub profile_difference: Option<ProfileDifference>,
    pub differential_flame_graph: Option<String>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub warnings: Vec<String>,
}

/// How a function's CPU time changed from the last good build to the
/// culprit, in one profiled run of the day's benchmarks each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionGrowth {
    pub function: String,
    /// Self samples ÷ all samples of the last good build, in %.
    pub before_pct: f64,
    /// The same of the culprit, in %.
    pub after_pct: f64,
    /// [`GROWTH_FORMULA`]: points of the last good build's profiled CPU time.
    pub grew_points: f64,
}

/// How growth is measured, in words.
pub const GROWTH_FORMULA: &str = "grew (points of the last good build's profiled CPU time) = (culprit's self CPU seconds − last good build's) ÷ last good build's profiled CPU seconds × 100, CPU seconds = samples ÷ sampling rate; both runs do the same iterations, so over every function these sum to the whole run's change";

/// The culprit's profile against the last good build's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileDifference {
    pub before_samples: u64,
    pub after_samples: u64,
    /// Profiled CPU seconds of each run (samples ÷ rate).
    pub before_cpu_s: f64,
    pub after_cpu_s: f64,
    /// Functions that grew, most points first.
    pub grew: Vec<FunctionGrowth>,
    /// Functions that shrank, most points first.
    pub shrank: Vec<FunctionGrowth>,
    pub formula: String,
}

/// Below this a function neither grew nor shrank (rounding).
const UNCHANGED_POINTS: f64 = 1e-9;

/// Functions whose self CPU time grew or shrank between two profiles of
/// the same work, each sampled at its rate (`*_hz`: samples per CPU
/// second), in points of the first profile's CPU time.
pub fn profile_difference(
    before: &FoldedStacks,
    before_hz: f64,
    after: &FoldedStacks,
    after_hz: f64,
    top: usize,
) -> ProfileDifference {
    let (tb, ta) = (before.total_samples(), after.total_samples());
    let cpu = |samples: u64, hz: f64| if hz > 0.0 { samples as f64 / hz } else { 0.0 };
    let (before_cpu, after_cpu) = (cpu(tb, before_hz), cpu(ta, after_hz));
    let pct = |samples: u64, total: u64| {
        if total == 0 {
            0.0
        } else {
            samples as f64 / total as f64 * 100.0
        }
    };
    let mut by_function: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for f in before.functions() {
        by_function.entry(f.function).or_default().0 = f.self_samples;
    }
    for f in after.functions() {
        by_function.entry(f.function).or_default().1 = f.self_samples;
    }
    let mut all: Vec<FunctionGrowth> = by_function
        .into_iter()
        .map(|(function, (b, a))| FunctionGrowth {
            function,
            before_pct: pct(b, tb),
            after_pct: pct(a, ta),
            grew_points: if before_cpu > 0.0 {
                (cpu(a, after_hz) - cpu(b, before_hz)) / before_cpu * 100.0
            } else {
                0.0
            },
        })
        .collect();
    all.sort_by(|x, y| {
        y.grew_points
            .total_cmp(&x.grew_points)
            .then(x.function.cmp(&y.function))
    });
    let grew: Vec<FunctionGrowth> = all
        .iter()
        .filter(|g| g.grew_points > UNCHANGED_POINTS)
        .take(top)
        .cloned()
        .collect();
    let shrank: Vec<FunctionGrowth> = all
        .iter()
        .rev()
        .filter(|g| g.grew_points < -UNCHANGED_POINTS)
        .take(top)
        .cloned()
        .collect();
    ProfileDifference {
        before_samples: tb,
        after_samples: ta,
        before_cpu_s: before_cpu,
        after_cpu_s: after_cpu,
        grew,
        shrank,
        formula: GROWTH_FORMULA.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(v: &[Option<CommitVerdict>]) -> Next {
        next_commit(v)
    }

    #[test]
    fn the_search_halves_the_range_and_steps_around_skipped_commits() {
        use CommitVerdict::*;
        let mut v = vec![None; 17];
        v[0] = Some(Good);
        v[16] = Some(Bad);
        assert!(matches!(verdicts(&v), Next::Measure(8)));
        v[8] = Some(Skipped);
        // Nearest the middle: 7 and 9 are as near; the lower goes first.
        assert!(matches!(verdicts(&v), Next::Measure(7)));
        v[7] = Some(Good);
        assert!(matches!(verdicts(&v), Next::Measure(11)));
        v[9..16].fill(Some(Bad));
        // Only the skipped 8 lies between good 7 and bad 9.
        match verdicts(&v) {
            Next::Done(BisectOutcome::Ambiguous {
                last_good,
                candidates,
            }) => {
                assert_eq!(last_good, 7);
                assert_eq!(candidates, [8, 9]);
            }
            _ => panic!("expected an ambiguous end"),
        }
        v[8] = Some(Good);
        match verdicts(&v) {
            Next::Done(BisectOutcome::FirstBad { commit, last_good }) => {
                assert_eq!((commit, last_good), (9, 8));
            }
            _ => panic!("expected the first bad commit"),
        }
    }

    #[test]
    fn a_step_clears_the_midpoint_or_waits_for_more_pairs() {
        let design = StepDesign {
            size_log: 0.2,
            max_pairs: 16,
        };
        let near = |centre: f64, n: usize| -> Vec<f64> {
            // Distinct magnitudes: the exact signed-rank table applies.
            let offsets = [-11.0, 4.0, -7.0, 13.0, -2.0, 9.0, -15.0, 6.0, 1.0];
            offsets[..n].iter().map(|o| centre + o / 1000.0).collect()
        };
        let bad = design.judge(&near(0.2, 8), false);
        assert_eq!((bad.verdict, bad.settled), (Some(CommitVerdict::Bad), true));
        let good = design.judge(&near(0.0, 8), false);
        assert_eq!(
            (good.verdict, good.settled),
            (Some(CommitVerdict::Good), true)
        );
        // Seven pairs: no 99 % interval yet, so no verdict before the end.
        assert_eq!(design.judge(&near(0.2, 7), false).verdict, None);
        // On the midpoint: unsettled; at the last look the estimate decides.
        let mid = design.judge(&near(0.11, 8), false);
        assert_eq!((mid.verdict, mid.settled), (None, false));
        let last = design.judge(&near(0.11, 8), true);
        assert_eq!(
            (last.verdict, last.settled),
            (Some(CommitVerdict::Bad), false)
        );
    }

    #[test]
    fn the_most_pairs_follow_the_noise_within_bounds() {
        // ln 1.2 with 2 % pair noise: (2.576 × 0.02 / 0.0456)² ≈ 1.3 →
        // the floor, 12.
        assert_eq!(
            StepDesign::plan(1.2f64.ln(), 0.02).max_pairs,
            MIN_STEP_PAIRS
        );
        // 7 % noise: (2.576 × 0.07 / 0.0456)² ≈ 15.6 → 16.
        assert_eq!(StepDesign::plan(1.2f64.ln(), 0.07).max_pairs, 16);
        assert_eq!(StepDesign::plan(1.2f64.ln(), 0.5).max_pairs, MAX_STEP_PAIRS);
        assert_eq!(StepDesign::plan(0.0, 0.05).max_pairs, MAX_STEP_PAIRS);
    }

    #[test]
    fn growth_is_each_functions_own_cpu_time_not_its_share() {
        // A is untouched (75 samples both times); B, used only by the
        // slowed case, goes from 25 to 31.25 (×1.25 on that case alone):
        // at 4 samples per unit, 100 → 125 samples of B.
        let before = FoldedStacks::from_stacks([
            (vec!["main".into(), "a".into()], 300),
            (vec!["main".into(), "b".into()], 100),
        ]);
        let after = FoldedStacks::from_stacks([
            (vec!["main".into(), "a".into()], 300),
            (vec!["main".into(), "b".into()], 125),
        ]);
        let d = profile_difference(&before, 4.0, &after, 4.0, 10);
        assert_eq!(d.grew.len(), 1, "{d:?}");
        assert_eq!(d.grew[0].function, "b");
        assert!((d.grew[0].grew_points - 6.25).abs() < 1e-9, "{d:?}");
        assert!(d.shrank.is_empty());
        // At another sampling rate the same CPU time reads the same.
        let slower_clock = FoldedStacks::from_stacks([
            (vec!["main".into(), "a".into()], 150),
            (vec!["main".into(), "b".into()], 62),
        ]);
        let d = profile_difference(&before, 4.0, &slower_clock, 2.0, 10);
        assert_eq!(d.grew[0].function, "b");
        assert!((d.grew[0].grew_points - 6.0).abs() < 1e-9, "{d:?}");
        assert!((d.after_cpu_s - 106.0).abs() < 1e-9);
    }
}
