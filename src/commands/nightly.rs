//! The nightly job's commands besides `run`: `campaign compare` and
//! `campaign history`.

use std::path::Path;

use super::{CommandError, exit};
use crate::analysis::HistoryEntry;
use crate::model::DailyReport;
use crate::model::Environment;
use crate::output::OutputLayout;

/// The nights recorded in one history file, in file order; none when the
/// file does not exist yet.
pub(super) fn read_history(path: &Path) -> Result<Vec<HistoryEntry>, CommandError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(CommandError::Analysis(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                CommandError::Analysis(format!(
                    "{}:{}: not a history line: {e}",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

/// `campaign compare A.json B.json`: the verdict without a re-run.
pub fn compare_files(
    baseline: &Path,
    current: &Path,
    threshold_pct: Option<f64>,
) -> Result<(String, u8), CommandError> {
    let read = |p: &Path| -> Result<DailyReport, CommandError> {
        let bytes = std::fs::read(p)
            .map_err(|e| CommandError::Analysis(format!("cannot read {}: {e}", p.display())))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            CommandError::Analysis(format!("{} is not a day report: {e}", p.display()))
        })
    };
    let (a, b) = (read(baseline)?, read(current)?);
    let settings = crate::analysis::CompareSettings {
        threshold_pct: threshold_pct.unwrap_or(crate::analysis::DEFAULT_THRESHOLD_PCT),
        ..Default::default()
    };
    let comparison = crate::analysis::compare_reports(
        &a,
        &b,
        &baseline.display().to_string(),
        &current.display().to_string(),
        &settings,
        // Two files carry no history: the night-to-night noise is unknown,
        // and the table says so.
        &crate::analysis::NightNoise::unknown(),
    );
    let code = match comparison.outcome {
        crate::analysis::NightOutcome::Regression => exit::REGRESSION,
        crate::analysis::NightOutcome::TooNoisy => exit::TOO_NOISY,
        crate::analysis::NightOutcome::Pass => exit::OK,
    };
    Ok((
        format!("{}\n", crate::report::render_comparison_table(&comparison)),
        code,
    ))
}

/// How `campaign history` prints what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryFormat {
    #[default]
    Text,
    Json,
    Csv,
}

/// `campaign history METRIC`: the series of one metric over the nights on
/// this machine, with the change points and creeps the detector finds in
/// them, the commits and environment differences on either side of each.
pub fn history_command(
    layout: &OutputLayout,
    day: u32,
    metric: &str,
    threshold_pct: f64,
    format: HistoryFormat,
) -> Result<(String, u8), CommandError> {
    let env = Environment::capture(String::new(), 0, String::new());
    // The device is part of the key; read every device's history of this machine.
    let machine_prefix = env.machine_key();
    let machine_prefix = machine_prefix.trim_end_matches('-');
    let history_root = layout.root.join("history");
    let mut files = Vec::new();
    if let Ok(dirs) = std::fs::read_dir(&history_root) {
        for dir in dirs.flatten() {
            let name = dir.file_name().to_string_lossy().into_owned();
            if name.starts_with(machine_prefix) {
                let campaign = layout
                    .campaign_dir
                    .file_name()
                    .map(|n| n.to_owned())
                    .unwrap_or_default();
                files.push(dir.path().join(campaign).join(format!("day_{day}.jsonl")));
            }
        }
    }
    let mut entries: Vec<HistoryEntry> = Vec::new();
    for file in files {
        entries.extend(read_history(&file)?);
    }
    if entries.is_empty() {
        return Err(CommandError::Analysis(format!(
            "no history of day {day} for this machine under {}\n  help: every finished `campaign run` appends to it",
            history_root.display()
        )));
    }
    let series = crate::analysis::series_histories(&entries, metric, report_environment);
    if series.is_empty() {
        return Err(CommandError::Analysis(format!(
            "no series matches {metric:?}; series look like `case metric`, e.g. `ttft_by_prompt_length[prompt_len=128] ttft_ms`"
        )));
    }
    let text = match format {
        HistoryFormat::Text => crate::report::render_history(&series, threshold_pct),
        HistoryFormat::Csv => crate::report::render_history_csv(&series),
        HistoryFormat::Json => {
            let mut json = serde_json::to_string_pretty(&series)
                .map_err(|e| CommandError::Analysis(format!("cannot write the history: {e}")))?;
            json.push('\n');
            json
        }
    };
    Ok((text, exit::OK))
}

/// A night's report environment as flat `field` → value pairs (nested
/// objects dotted), without the commit, which is shown on its own. `None`
/// when the report is gone or unreadable: a history outlives its reports.
fn report_environment(report: &str) -> Option<std::collections::BTreeMap<String, String>> {
    fn flatten(
        prefix: &str,
        value: &serde_json::Value,
        out: &mut std::collections::BTreeMap<String, String>,
    ) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            serde_json::Value::String(s) => {
                out.insert(prefix.to_string(), s.clone());
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let bytes = std::fs::read(report).ok()?;
    let report: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let mut out = std::collections::BTreeMap::new();
    flatten("", report.get("environment")?, &mut out);
    out.remove("git_commit");
    Some(out)
}
