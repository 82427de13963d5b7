use std::fmt::Write;
use std::path::Path;

use super::{CommandError, exit};
use crate::benchmarks::ConfiguredBenchmark;
use crate::campaign::grid::expand_grid;
use crate::campaign::load_campaign;

/// `campaign list`: days, their benchmarks, plans and targets.
pub fn list(path: &Path) -> Result<(String, u8), CommandError> {
    let campaign = load_campaign(path, &crate::benchmarks::Registry)?;
    let mut out = String::new();
    let _ = writeln!(out, "{} — {}", campaign.name(), campaign.description.trim());
    let threads = campaign.settings.threads.usize();
    for day in &campaign.days {
        let _ = writeln!(out, "\nDay {}: {}", day.number, day.title);
        if day.benchmarks.is_empty() {
            let _ = writeln!(out, "  (no benchmarks yet)");
        }
        for bench in &day.benchmarks {
            let plan = crate::runner::iteration_plan(bench, false);
            let quick = crate::runner::iteration_plan(bench, true);
            let _ = writeln!(
                out,
                "  {} [{}]: {} warm-up + {} iterations (--quick: {} + {}){}; timeout {} s",
                bench.name,
                bench.kind,
                plan.warmup,
                plan.iterations,
                quick.warmup,
                quick.iterations,
                plan.time_budget_s
                    .map(|b| format!(", budget {b} s"))
                    .unwrap_or_default(),
                plan.timeout_s
            );
            let params = &bench.written_params;
            if !params.is_empty() {
                let inline: Vec<String> = params
                    .iter()
                    .map(|(k, v)| match v.as_str().map(expand_grid) {
                        // A llama-bench list, shown expanded.
                        Some(Ok(values))
                            if values.len() > 1
                                || v.as_str().is_some_and(|t| t.contains(['-', ','])) =>
                        {
                            format!("{k} = {v} → {values:?}")
                        }
                        _ => format!("{k} = {v}"),
                    })
                    .collect();
                let _ = writeln!(out, "      params: {}", inline.join(", "));
            }
            let configured = ConfiguredBenchmark::of(bench);
            let labels = configured.planned_labels(threads);
            let _ = writeln!(
                out,
                "      cases: {}{}",
                configured.planned_cases(),
                if labels.is_empty() {
                    String::new()
                } else {
                    format!(": {}", labels.join(", "))
                }
            );
            for target in &bench.written_targets {
                let _ = writeln!(out, "      target: {target}");
            }
        }
    }
    Ok((out, exit::OK))
}

/// `campaign validate`: loads and checks a campaign without running it.
pub fn validate(path: &Path) -> Result<(String, u8), CommandError> {
    let campaign = load_campaign(path, &crate::benchmarks::Registry)?;
    let days = campaign.days.len();
    let benchmarks = campaign.benchmarks().count();
    let mut out = format!(
        "{}: ok ({days} days, {benchmarks} benchmarks, {} models)\n",
        path.display(),
        campaign.models.len()
    );
    for warning in &campaign.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    Ok((out, exit::OK))
}
