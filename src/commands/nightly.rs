//! The nightly job's commands besides `run`: `campaign compare` and
//! `campaign history`.

use std::path::Path;

use super::{CommandError, exit};
use crate::model::DailyReport;
use crate::model::Environment;
use crate::output::OutputLayout;
use crate::store::{
    HistoryFile, MachineMatch, StoreLocation, StoredNight, WriteOutcome, jsonl_nights,
    machine_nights, store_location,
};

/// `campaign compare A B`: the verdict without a re-run. Each of A and B
/// is a day report's file or, where no such file exists, the run id of a
/// night in the results store (`--store`, else `results.sqlite` in the
/// results folder `out`), as the dashboard names nights.
pub fn compare_files(
    baseline: &Path,
    current: &Path,
    threshold_pct: Option<f64>,
    store: Option<&str>,
    out: &Path,
) -> Result<(String, u8), CommandError> {
    let location = match store {
        Some(text) => StoreLocation::parse(text)?,
        None => StoreLocation::default_in(out),
    };
    let read = |p: &Path| -> Result<DailyReport, CommandError> {
        let (bytes, what) = match std::fs::read(p) {
            Ok(bytes) => (bytes, p.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let run_id = p.display().to_string();
                let stored = match &location {
                    StoreLocation::Sqlite(db) if !db.exists() => None,
                    _ => crate::store::open_reader(&location)?.night_documents(&run_id)?,
                };
                match stored.and_then(|d| d.report_json) {
                    Some(json) => (
                        json.into_bytes(),
                        format!("night {run_id} in {}", location.describe()),
                    ),
                    None => {
                        return Err(CommandError::Analysis(format!(
                            "{run_id}: no such report file, and no night with this run id and its report in {}\n  help: give a day report's JSON file, or a run id from `campaign dashboard` (a night's page shows it); --store names another store",
                            location.describe()
                        )));
                    }
                }
            }
            Err(e) => {
                return Err(CommandError::Analysis(format!(
                    "cannot read {}: {e}",
                    p.display()
                )));
            }
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| CommandError::Analysis(format!("{what} is not a day report: {e}")))
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

/// What `campaign history` was asked.
#[derive(Debug, Clone)]
pub struct HistoryRequest<'a> {
    /// The campaign's name, as its nights were stored under.
    pub campaign: &'a str,
    pub day: u32,
    pub metric: &'a str,
    /// A change smaller than its benchmark's threshold is minor: the
    /// benchmark's `regression_threshold_pct` where the campaign sets one,
    /// else this (`--threshold-pct`, default 5), as the gate decides it.
    pub threshold_pct: f64,
    pub benchmark_thresholds_pct: std::collections::BTreeMap<String, f64>,
    pub format: HistoryFormat,
    /// `--store`; `None` is `results.sqlite` in the results folder.
    pub store: Option<&'a str>,
    pub import: bool,
}

/// `campaign history METRIC`: the series of one metric over the nights on
/// this machine, from the results store (the JSONL history where the
/// store has none of them yet), with the change points and creeps the
/// detector finds, the commits and environment differences on either
/// side of each.
pub fn history_command(
    layout: &OutputLayout,
    request: &HistoryRequest<'_>,
) -> Result<(String, u8), CommandError> {
    let day = request.day;
    let env = Environment::capture(String::new(), 0, String::new());
    // The device is part of the key; read every device's history of this machine.
    let machine_prefix = env.machine_key();
    let machine_prefix = machine_prefix.trim_end_matches('-').to_string();
    let location = store_location(request.store, layout)?;
    let machine = MachineMatch::AnyDevice(machine_prefix);
    // Reading opens the store as a reader (no migration, a read-only file
    // is fine); importing writes it. No SQLite file yet: the JSONL history.
    let opened = match &location {
        StoreLocation::Sqlite(path) if !request.import && !path.exists() => None,
        _ if request.import => Some(crate::store::open(&location)),
        _ => Some(crate::store::open_reader(&location)),
    };
    let mut store = match opened.transpose() {
        Ok(store) => store,
        // Reading can do without the store; importing into it cannot.
        Err(e) if !request.import => {
            eprintln!("warning: {e}; reading the JSONL history instead");
            None
        }
        Err(e) => return Err(e.into()),
    };
    if let (true, Some(store)) = (request.import, store.as_mut()) {
        let (mut stored, mut already) = (0, 0);
        for (machine_key, file) in HistoryFile::of_every_machine(layout, day) {
            for entry in file.read()? {
                let environment = std::fs::read_to_string(&entry.report)
                    .ok()
                    .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                    .and_then(|report| report.get("environment").map(|e| e.to_string()));
                let night = StoredNight::from_history(&machine_key, entry, environment);
                match store.write_night(&night)? {
                    WriteOutcome::Stored => stored += 1,
                    WriteOutcome::AlreadyStored => already += 1,
                }
            }
        }
        eprintln!(
            "imported {stored} nights into {} ({already} were already there)",
            location.describe()
        );
    }
    let entries = match store.as_mut() {
        Some(store) => machine_nights(
            store.as_mut(),
            &location,
            layout,
            request.campaign,
            day,
            &machine,
        )?,
        None => jsonl_nights(layout, day, &machine)?,
    };
    if entries.is_empty() {
        return Err(CommandError::Analysis(format!(
            "no history of day {day} for this machine under {}\n  help: every finished `campaign run` appends to it",
            HistoryFile::root(layout).display()
        )));
    }
    let metric = request.metric;
    let series = crate::analysis::series_histories(
        &entries,
        metric,
        |series: &str| {
            request
                .benchmark_thresholds_pct
                .get(crate::analysis::benchmark_of_series(series))
                .copied()
                .unwrap_or(request.threshold_pct)
        },
        report_environment,
    );
    if series.is_empty() {
        return Err(CommandError::Analysis(format!(
            "no series matches {metric:?}; series look like `case metric`, e.g. `ttft_by_prompt_length[prompt_len=128] ttft_ms`"
        )));
    }
    let text = match request.format {
        HistoryFormat::Text => crate::report::render_history(&series),
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
    let bytes = std::fs::read(report).ok()?;
    let report: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let mut out = crate::model::flatten_json(report.get("environment")?);
    out.remove("git_commit");
    Some(out)
}
