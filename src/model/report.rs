//! The day report (schema version 1). Plain data: runner and
//! stats fill it in; writers only format it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Environment, Findings, IterationPlan, ScalingCurve};
use crate::stats::{ProvisionalRule, Summary};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DailyReport {
    pub schema_version: u32,
    /// Unique per run: the report's and its profiles' file names carry it.
    #[serde(default)]
    pub run_id: String,
    pub campaign: CampaignInfo,
    pub day: u32,
    pub day_title: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub quick: bool,
    /// True when Ctrl-C stopped the day; results measured before it are kept.
    pub interrupted: bool,
    pub environment: Environment,
    pub settings: RunSettings,
    pub summary: DaySummary,
    pub results: Vec<BenchmarkResult>,
    /// Throughput and p99 per level of each `scaling` benchmark, and its knee.
    #[serde(default)]
    pub scaling: Vec<ScalingCurve>,
    /// Each served benchmark's cases beside their in-process twins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parity: Vec<super::ServedParity>,
    /// Our engine beside a peer's on the same test and weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<super::PeerComparison>,
    /// CPU profiles taken this day, one per profiled benchmark.
    #[serde(default)]
    pub profiles: Vec<ProfileRecord>,
    pub warnings: Vec<String>,
}

impl DailyReport {
    /// Separate runs of one day, each a report of its own tagged with its
    /// slot (its place in the night's order), as one report: each case's
    /// first successful result, with every run's headline means in
    /// `run_values` and their slots in `run_slots`. A run in which a case
    /// failed, went missing, or whose process left no report at all
    /// (`lost`: slot and why) is listed in that case's `failed_runs`, never
    /// dropped silently. `None` for no runs.
    pub fn pooled(runs: &[(u32, &DailyReport)], lost: &[(u32, String)]) -> Option<DailyReport> {
        let (_, first) = runs.first()?;
        let mut report = (*first).clone();
        let mut case_ids: Vec<&str> = Vec::new();
        for (_, run) in runs {
            for r in &run.results {
                if !case_ids.contains(&r.case_id.as_str()) {
                    case_ids.push(&r.case_id);
                }
            }
        }
        report.results = case_ids
            .iter()
            .filter_map(|case| pooled_case(case, runs, lost))
            .collect();
        for (slot, run) in runs.iter().skip(1) {
            for w in &run.warnings {
                let w = format!("run {}: {w}", slot + 1);
                if !report.warnings.contains(&w) {
                    report.warnings.push(w);
                }
            }
            report.profiles.extend(run.profiles.iter().cloned());
            report.interrupted |= run.interrupted;
            report.finished_at = report.finished_at.max(run.finished_at);
        }
        report.summary = DaySummary::of(&report.results);
        Some(report)
    }
}

/// One case over the night's runs (see [`DailyReport::pooled`]).
fn pooled_case(
    case: &str,
    runs: &[(u32, &DailyReport)],
    lost: &[(u32, String)],
) -> Option<BenchmarkResult> {
    fn find<'r>(run: &'r DailyReport, case: &str) -> Option<&'r BenchmarkResult> {
        run.results.iter().find(|r| r.case_id == case)
    }
    let base = runs
        .iter()
        .filter_map(|(_, run)| find(run, case))
        .find(|r| r.status == Status::Ok)
        .or_else(|| runs.iter().find_map(|(_, run)| find(run, case)))?;
    let mut pooled = base.clone();
    pooled.run_values = BTreeMap::new();
    pooled.run_slots = Vec::new();
    pooled.failed_runs = Vec::new();
    let metrics: Vec<String> = base.headline_means().into_iter().map(|(m, _)| m).collect();
    for (slot, run) in runs {
        let Some(r) = find(run, case) else {
            pooled.failed_runs.push(FailedRun {
                slot: *slot,
                status: Status::Failed,
                reason: "not in this run's report".into(),
            });
            continue;
        };
        let means = r.headline_means();
        let complete = metrics.iter().all(|m| means.iter().any(|(x, _)| x == m));
        if r.status == Status::Ok && complete {
            for (metric, mean) in means.into_iter().filter(|(m, _)| metrics.contains(m)) {
                pooled.run_values.entry(metric).or_default().push(mean);
            }
            pooled.run_slots.push(*slot);
        } else if r.status != Status::Skipped {
            let status = if r.status == Status::Ok {
                Status::Failed
            } else {
                r.status
            };
            pooled.failed_runs.push(FailedRun {
                slot: *slot,
                status,
                reason: r.error.clone().unwrap_or_else(|| {
                    "a headline metric was not measured in this run".to_string()
                }),
            });
        }
    }
    for (slot, why) in lost {
        pooled.failed_runs.push(FailedRun {
            slot: *slot,
            status: Status::Failed,
            reason: why.clone(),
        });
    }
    pooled.failed_runs.sort_by_key(|f| f.slot);
    Some(pooled)
}

/// A separate run of a case that gave no run value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailedRun {
    /// The run's slot in the night's order (0 is the first timed run).
    pub slot: u32,
    /// `failed` (an error, a panic, a timeout, a process that left no
    /// report) or `interrupted`.
    pub status: Status,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignInfo {
    pub name: String,
    pub description: String,
    pub file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSettings {
    pub threads: usize,
    pub device: String,
    pub dtype: String,
    pub seed: u64,
    pub max_raw_samples: usize,
    pub quick_factor: f64,
    pub provisional_rule: ProvisionalRule,
    pub only: Vec<String>,
    /// Separate runs of each benchmark (`--runs`).
    #[serde(default = "one_run")]
    pub runs: u32,
    /// Seed of the ABBA order of an interleaved night, drawn afresh each
    /// night (0 when the night had one arm).
    #[serde(default)]
    pub run_order_seed: u64,
    /// The other build of an interleaved night (`--against-bin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub against_bin: Option<String>,
    /// Whether each run was a process of its own (every night of more
    /// than one run since the runner started them as children).
    #[serde(default)]
    pub separate_processes: bool,
}

fn one_run() -> u32 {
    1
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DaySummary {
    pub total: usize,
    pub successful: usize,
    pub failed: usize,
    pub interrupted: usize,
    /// Benchmarks not run on this machine (a peer program not installed).
    #[serde(default)]
    pub skipped: usize,
    pub targets_met: usize,
    pub targets_missed: usize,
    /// Targets whose metric was never measured (the benchmark failed first).
    pub targets_not_measured: usize,
    /// Separate runs (after pooling, `--runs` > 1) in which a case failed
    /// or whose process was lost, over all cases: each is also listed in
    /// its case's `failed_runs`. A failure in any run fails the day (exit 4).
    #[serde(default)]
    pub failed_runs: usize,
}

impl DaySummary {
    pub fn of(results: &[BenchmarkResult]) -> Self {
        let count_status = |s: Status| results.iter().filter(|r| r.status == s).count();
        let count_verdict = |v: Verdict| {
            results
                .iter()
                .flat_map(|r| &r.targets)
                .filter(|t| t.verdict == v)
                .count()
        };
        Self {
            total: results.len(),
            successful: count_status(Status::Ok),
            failed: count_status(Status::Failed),
            interrupted: count_status(Status::Interrupted),
            skipped: count_status(Status::Skipped),
            targets_met: count_verdict(Verdict::Met),
            targets_missed: count_verdict(Verdict::Missed),
            targets_not_measured: count_verdict(Verdict::NotMeasured),
            failed_runs: results
                .iter()
                .filter(|r| r.status != Status::Failed)
                .flat_map(|r| &r.failed_runs)
                .filter(|f| f.status == Status::Failed)
                .count(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Error, panic or timeout; `error` says which.
    Failed,
    /// Stopped by Ctrl-C; the iterations completed before it are summarised.
    Interrupted,
    /// Not run on this machine, for the reason in `error` (a peer program
    /// that is not installed); neither a pass nor a failure.
    Skipped,
}

/// One case of one benchmark (a benchmark with a sweep has one per point).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchmarkResult {
    /// `<benchmark>` or `<benchmark>[<case>]`, unique within the day.
    #[serde(rename = "benchmark_name")]
    pub case_id: String,
    pub benchmark: String,
    pub kind: String,
    pub case: Option<String>,
    pub status: Status,
    pub error: Option<String>,
    /// Flat copies of the headline latency metric's summary, for plain jq.
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub latency_metric: Option<String>,
    /// Mean of the headline throughput metric.
    pub throughput: Option<f64>,
    pub throughput_unit: Option<String>,
    pub throughput_metric: Option<String>,
    pub parameters: serde_json::Value,
    pub context: serde_json::Value,
    pub plan: IterationPlan,
    pub warmup_completed: u32,
    pub iterations_completed: u32,
    pub elapsed_s: f64,
    /// Peak resident memory of the process while this case ran (its peak
    /// mark is reset when the case starts); absent where the OS cannot.
    #[serde(default)]
    pub peak_rss_mib: Option<f64>,
    /// Mean of each headline metric in each separate run (`--runs`), the
    /// first run first: the samples a regression verdict is made from.
    #[serde(default)]
    pub run_values: BTreeMap<String, Vec<f64>>,
    /// The slot of each entry of `run_values` (the same for every metric):
    /// which of the night's separate runs it came from, so that a lost run
    /// costs only its own place. Empty in a report of one run, and in
    /// older reports, whose entries are runs 0, 1, 2, …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_slots: Vec<u32>,
    /// Separate runs of this case that gave no value, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_runs: Vec<FailedRun>,
    pub metrics: BTreeMap<String, MetricReport>,
    /// Per-step vectors (e.g. `itl_ms` by generated token): the median over
    /// iterations of each step.
    pub series: BTreeMap<String, SeriesReport>,
    /// Measured once while preparing (model load, memory).
    pub setup: BTreeMap<String, SetupValue>,
    pub targets: Vec<TargetVerdict>,
    /// Judgements over the whole case (e.g. a memory trend and leak
    /// verdict), with the inputs they rest on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<Findings>,
    pub warnings: Vec<String>,
}

impl BenchmarkResult {
    /// The mean of each headline metric (latency, throughput) measured:
    /// what one run contributes to `run_values`.
    pub fn headline_means(&self) -> Vec<(String, f64)> {
        [&self.latency_metric, &self.throughput_metric]
            .into_iter()
            .flatten()
            .filter_map(|metric| {
                let m = self.metrics.get(metric)?;
                Some((metric.clone(), m.summary.mean))
            })
            .collect()
    }

    /// Whether the flat `p99_ms` rests on too few samples (the headline
    /// latency's summary lists p99 as provisional).
    pub fn p99_is_provisional(&self) -> bool {
        self.latency_metric
            .as_ref()
            .and_then(|m| self.metrics.get(m))
            .is_some_and(|m| m.summary.provisional.iter().any(|p| p == "p99"))
    }

    /// The slot of each run value: `run_slots`, or 0, 1, 2, … in a report
    /// that does not record them.
    pub fn slots(&self) -> Vec<u32> {
        let runs = self.run_values.values().map(Vec::len).max().unwrap_or(0);
        if self.run_slots.len() == runs {
            self.run_slots.clone()
        } else {
            (0..runs as u32).collect()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricReport {
    pub unit: String,
    pub higher_is_better: bool,
    pub description: String,
    pub summary: Summary,
    pub raw_samples: Vec<f64>,
    pub raw_samples_truncated: bool,
    /// Values that could not be recorded (negative or not finite).
    pub rejected_samples: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetupValue {
    pub value: f64,
    pub unit: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesReport {
    pub unit: String,
    pub statistic: String,
    pub values: Vec<f64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Met,
    Missed,
    NotMeasured,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetVerdict {
    pub target: String,
    pub metric: String,
    pub stat: String,
    pub threshold: f64,
    pub measured: Option<f64>,
    pub verdict: Verdict,
    /// True when the statistic is a percentile marked provisional.
    pub provisional: bool,
}

/// A benchmark's CPU profile: where its files are, and what profiling cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileRecord {
    pub benchmark: String,
    /// The rate the campaign (or `--profile-hz`) asked for; absent from
    /// reports written before the rate was capped.
    #[serde(default)]
    pub requested_hz: Option<u32>,
    /// The rate the timer was set to: the requested one, capped at the
    /// delivered one. Each recorded sample stands for 1 / this seconds of CPU.
    #[serde(alias = "frequency_hz")]
    pub effective_hz: u32,
    /// The rate the sampler was measured to deliver in this process (the
    /// timer asked for the most it allows); `None` when it could not be
    /// measured, or in older reports.
    #[serde(default)]
    pub delivered_hz: Option<f64>,
    /// Samples recorded (in reports written before lost samples were
    /// counted apart, these included them).
    pub samples: u64,
    /// Wall time of the profiled pass.
    pub duration_s: f64,
    pub folded_path: Option<String>,
    pub pprof_path: Option<String>,
    pub flamegraph_path: Option<String>,
    /// Each case measured without and then with the profiler running.
    pub overhead: Vec<ProfileOverhead>,
    /// The process's CPU time while sampling: recorded and lost samples
    /// together are meant to be this × `effective_hz`.
    #[serde(default)]
    pub cpu_s: Option<f64>,
    /// CPU time × `effective_hz` − recorded samples, when positive: samples
    /// the sampler lost. They are in no share.
    #[serde(default, alias = "unattributed_samples")]
    pub lost_samples: u64,
    /// Lost ÷ (recorded + lost) samples, in %; `None` without the CPU time.
    #[serde(default)]
    pub lost_share_pct: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileOverhead {
    pub case: String,
    pub metric: String,
    pub unprofiled_mean: f64,
    pub profiled_mean: f64,
    /// profiled ÷ unprofiled for a latency; unprofiled ÷ profiled for a
    /// throughput: above 1 means the profiler slowed the case down.
    pub slowdown: f64,
}
