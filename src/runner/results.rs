//! Turns what a worker measured into report entries: summaries, headline
//! fields, target verdicts and warnings.

use std::collections::BTreeMap;

use super::execute::CaseOutcome;
use crate::benchmarks::{BenchmarkKind, MetricCatalog};
use crate::campaign::{Target, evaluate_targets};
use crate::model::IterationPlan;
use crate::model::{BenchmarkResult, MetricReport, SeriesReport, SetupValue, Status};
use crate::stats::{elementwise_median, summarize};

/// CV at or above this gets a warning in the report.
const NOISY_CV: f64 = 0.10;

/// What the day loop knows about a benchmark when it builds its results.
pub(super) struct BenchmarkFrame<'a> {
    pub name: &'a str,
    pub kind: &'static dyn BenchmarkKind,
    /// The metrics this benchmark records (its kind's and its params').
    pub catalog: MetricCatalog,
    pub targets: &'a [Target],
    pub plan: &'a IterationPlan,
    pub setup: BTreeMap<String, SetupValue>,
    pub context: serde_json::Value,
    pub warnings: Vec<String>,
}

impl BenchmarkFrame<'_> {
    pub fn setup_values(
        catalog: &MetricCatalog,
        setup: &[(&'static str, f64)],
    ) -> BTreeMap<String, SetupValue> {
        setup
            .iter()
            .map(|(name, value)| {
                let def = catalog.metric(name);
                (
                    name.to_string(),
                    SetupValue {
                        value: *value,
                        unit: def.map_or("", |d| d.unit).to_string(),
                        description: def.map_or("", |d| d.description).to_string(),
                    },
                )
            })
            .collect()
    }

    fn empty_result(
        &self,
        case: Option<(&str, &serde_json::Value)>,
        status: Status,
        error: Option<String>,
    ) -> BenchmarkResult {
        let case_id = match case {
            Some((label, _)) => format!("{}[{label}]", self.name),
            None => self.name.to_string(),
        };
        BenchmarkResult {
            case_id,
            benchmark: self.name.to_string(),
            kind: self.kind.name().to_string(),
            case: case.map(|(label, _)| label.to_string()),
            status,
            error,
            mean_ms: None,
            p50_ms: None,
            p99_ms: None,
            latency_metric: None,
            throughput: None,
            throughput_unit: None,
            throughput_metric: None,
            parameters: case.map_or(serde_json::Value::Null, |(_, p)| p.clone()),
            context: self.context.clone(),
            plan: self.plan.clone(),
            warmup_completed: 0,
            iterations_completed: 0,
            elapsed_s: 0.0,
            peak_rss_mib: None,
            run_values: BTreeMap::new(),
            run_slots: Vec::new(),
            failed_runs: Vec::new(),
            metrics: BTreeMap::new(),
            series: BTreeMap::new(),
            setup: self.setup.clone(),
            targets: Vec::new(),
            conclusion: None,
            warnings: self.warnings.clone(),
        }
    }

    /// A result with no measurements: preparation failed, or the case never ran.
    pub fn unmeasured(
        &self,
        case: Option<(&str, &serde_json::Value)>,
        status: Status,
        error: String,
    ) -> BenchmarkResult {
        let mut result = self.empty_result(case, status, Some(error));
        // A skipped benchmark was never meant to run here: its targets are
        // not "not measured" failures of this run.
        if status != Status::Skipped {
            result.targets = evaluate_targets(self.targets, &result.metrics, &result.setup);
        }
        result
    }

    pub fn measured(
        &self,
        label: &str,
        parameters: &serde_json::Value,
        outcome: CaseOutcome,
        interrupted: bool,
        timeout_error: Option<String>,
    ) -> BenchmarkResult {
        let status = if outcome.error.is_some() || timeout_error.is_some() {
            Status::Failed
        } else if outcome.cancelled || interrupted {
            Status::Interrupted
        } else {
            Status::Ok
        };
        let error = match (outcome.error, timeout_error) {
            (Some(e), _) => Some(e),
            (None, Some(t)) => Some(t),
            (None, None) => None,
        };
        let mut result = self.empty_result(Some((label, parameters)), status, error);
        result.warmup_completed = outcome.warmup_completed;
        result.iterations_completed = outcome.iterations_completed;
        result.elapsed_s = outcome.elapsed.as_secs_f64();
        if let Some(conclusion) = outcome.conclusion {
            result.conclusion = Some(conclusion.findings);
            result.warnings.extend(conclusion.warnings);
        }
        result.peak_rss_mib = outcome.peak_rss_bytes.map(|b| b as f64 / (1024.0 * 1024.0));

        for (name, recorder) in &outcome.recorders {
            let Some(summary) = summarize(recorder) else {
                continue;
            };
            let def = self.catalog.metric(name);
            if let Some(cv) = summary
                .cv
                .filter(|cv| *cv >= NOISY_CV && self.kind.variation_is_noise())
            {
                result.warnings.push(format!(
                    "{name}: coefficient of variation {:.1} % ≥ {:.0} %: the machine was noisy or the workload varies; add iterations or quiet the machine",
                    cv * 100.0,
                    NOISY_CV * 100.0
                ));
            }
            if recorder.rejected() > 0 {
                result.warnings.push(format!(
                    "{name}: {} values were negative or not finite and were not recorded",
                    recorder.rejected()
                ));
            }
            result.metrics.insert(
                name.to_string(),
                MetricReport {
                    unit: def.map_or("", |d| d.unit).to_string(),
                    higher_is_better: def.is_some_and(|d| d.higher_is_better),
                    description: def.map_or("", |d| d.description).to_string(),
                    summary,
                    raw_samples: recorder.raw_samples().to_vec(),
                    raw_samples_truncated: recorder.raw_samples_truncated(),
                    rejected_samples: recorder.rejected(),
                },
            );
        }
        for (name, runs) in &outcome.series {
            let unit = self.catalog.metric(name).map_or("", |d| d.unit).to_string();
            result.series.insert(
                format!("{name}_by_step"),
                SeriesReport {
                    unit,
                    statistic: format!("median over {} iterations", runs.len()),
                    values: elementwise_median(runs),
                },
            );
        }

        let headline = self.catalog.headline();
        // The flat fields are milliseconds by name; a kind whose headline
        // latency is in another unit leaves them empty.
        if let Some((name, m)) = headline
            .latency
            .and_then(|l| Some((l, result.metrics.get(l)?)))
            .filter(|(_, m)| m.unit == "ms")
        {
            result.mean_ms = Some(m.summary.mean);
            result.p50_ms = Some(m.summary.p50);
            result.p99_ms = Some(m.summary.p99);
            result.latency_metric = Some(name.to_string());
        }
        if let Some((name, m)) = headline
            .throughput
            .and_then(|t| Some((t, result.metrics.get(t)?)))
        {
            result.throughput = Some(m.summary.mean);
            result.throughput_unit = Some(m.unit.clone());
            result.throughput_metric = Some(name.to_string());
        }
        result.run_values = result
            .headline_means()
            .into_iter()
            .map(|(metric, mean)| (metric, vec![mean]))
            .collect();
        result.targets = evaluate_targets(self.targets, &result.metrics, &result.setup);
        result
    }
}
