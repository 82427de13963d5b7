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
    /// CPU profiles taken this day, one per profiled benchmark.
    #[serde(default)]
    pub profiles: Vec<ProfileRecord>,
    pub warnings: Vec<String>,
}

impl DailyReport {
    /// Separate runs of one day as one report: the first run's results
    /// with every run's headline means in `run_values`, in run order.
    /// `None` for no runs.
    pub fn pooled(runs: &[&DailyReport]) -> Option<DailyReport> {
        let (first, later) = runs.split_first()?;
        let mut report = (*first).clone();
        for again in later.iter().flat_map(|r| &r.results) {
            if let Some(first) = report
                .results
                .iter_mut()
                .find(|r| r.case_id == again.case_id)
            {
                first.append_run(again);
            }
        }
        Some(report)
    }
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
    /// Seed of the shuffled order of runs 2 and later (of the ABBA order
    /// of an interleaved night).
    #[serde(default)]
    pub run_order_seed: u64,
    /// The other build of an interleaved night (`--against-bin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub against_bin: Option<String>,
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

    /// Adds a later run's headline means to this (first) run's result. A
    /// failed run adds nothing, so a metric's list is shorter than `runs`.
    pub fn append_run(&mut self, again: &BenchmarkResult) {
        if again.status != Status::Ok {
            return;
        }
        for (metric, mean) in again.headline_means() {
            self.run_values.entry(metric).or_default().push(mean);
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
