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

/// `campaign history METRIC`: the series of one metric over the nights on
/// this machine, with change points marked.
pub fn history_command(
    layout: &OutputLayout,
    day: u32,
    metric: &str,
    threshold_pct: f64,
) -> Result<(String, u8), CommandError> {
    use crate::analysis::{CHANGE_RULE, change_points};
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
    entries.sort_by_key(|e| e.recorded_at);
    let keys: std::collections::BTreeSet<&String> = entries
        .iter()
        .flat_map(|e| e.values.keys())
        .filter(|k| k.contains(metric))
        .collect();
    if keys.is_empty() {
        return Err(CommandError::Analysis(format!(
            "no series matches {metric:?}; series look like `case metric`, e.g. `ttft_by_prompt_length[prompt_len=128] ttft_ms`"
        )));
    }
    let mut out = String::new();
    for key in keys {
        let points: Vec<(&HistoryEntry, f64)> = entries
            .iter()
            .filter_map(|e| e.values.get(key).map(|v| (e, *v)))
            .collect();
        let values: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
        let changes = change_points(&values, threshold_pct);
        out.push_str(&format!("{key}\n"));
        for (i, (entry, value)) in points.iter().enumerate() {
            let mark = if changes.contains(&i) {
                "  ◀ change point"
            } else {
                ""
            };
            out.push_str(&format!(
                "  {}  {:>14.4}  {} runs  {}{}{mark}\n",
                entry.recorded_at.format("%Y-%m-%d %H:%M"),
                value,
                entry.runs,
                &entry.git_commit.chars().take(10).collect::<String>(),
                if entry.quick { " (quick)" } else { "" },
            ));
        }
    }
    out.push_str(&format!("{CHANGE_RULE} ({threshold_pct} %)\n"));
    Ok((out, exit::OK))
}
