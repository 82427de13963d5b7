use std::fmt::Write;
use std::path::Path;

use super::{CommandError, exit};
use crate::campaign::grid::expand_grid;
use crate::campaign::load_campaign;

/// `campaign list`: days, their benchmarks, plans and targets.
pub fn list(path: &Path) -> Result<(String, u8), CommandError> {
    let campaign = load_campaign(path, &crate::benchmarks::Registry)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} — {}",
        campaign.name(),
        campaign.file.description.trim()
    );
    for day in campaign.file.days.iter().map(|d| d.get_ref()) {
        let _ = writeln!(out, "\nDay {}: {}", day.number.get_ref(), day.title);
        if day.benchmarks.is_empty() {
            let _ = writeln!(out, "  (no benchmarks yet)");
        }
        for bench in day.benchmarks.iter().map(|b| b.get_ref()) {
            let plan = crate::runner::iteration_plan(bench, false);
            let quick = crate::runner::iteration_plan(bench, true);
            let _ = writeln!(
                out,
                "  {} [{}]: {} warm-up + {} iterations (--quick: {} + {}){}; timeout {} s",
                bench.name.get_ref(),
                bench.kind.get_ref(),
                plan.warmup,
                plan.iterations,
                quick.warmup,
                quick.iterations,
                plan.time_budget_s
                    .map(|b| format!(", budget {b} s"))
                    .unwrap_or_default(),
                plan.timeout_s
            );
            let params = bench.params();
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
            if let Some(kind) = crate::benchmarks::find_kind(bench.kind.get_ref()) {
                let threads = campaign.file.settings().threads.usize();
                if let Ok(cases) = kind.planned_cases(&params) {
                    let labels = kind.planned_labels(&params, threads).unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "      cases: {cases}{}",
                        if labels.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", labels.join(", "))
                        }
                    );
                }
            }
            for target in &bench.targets {
                let _ = writeln!(out, "      target: {}", target.get_ref());
            }
        }
    }
    Ok((out, exit::OK))
}

/// `campaign validate`: loads and checks a campaign without running it.
pub fn validate(path: &Path) -> Result<(String, u8), CommandError> {
    let campaign = load_campaign(path, &crate::benchmarks::Registry)?;
    let days = campaign.file.days.len();
    let benchmarks: usize = campaign
        .file
        .days
        .iter()
        .map(|d| d.get_ref().benchmarks.len())
        .sum();
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
