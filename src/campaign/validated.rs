//! The campaign as validation leaves it: plain values, every target parsed
//! and every benchmark's params configured by its kind. No TOML span
//! leaves this module: positions serve the diagnostics of loading only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::bounds::{Hz, Iterations, Seconds, ThresholdPct, Warmup};
use super::kinds::Configured;
use super::toggle::Toggle;
use super::{CampaignError, DayStep, ResolvedModel, Settings, Target};

/// A campaign file that parsed and validated.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    /// Where reports go, relative to the current directory; `--out` overrides it.
    pub output_dir: Option<PathBuf>,
    /// Where finished nights are kept (`[store]`); `--store` overrides it.
    pub store: Option<StoreSource>,
    /// `[settings]`, or the defaults when the file has none.
    pub settings: Settings,
    pub models: BTreeMap<String, ResolvedModel>,
    /// The days in the file's order.
    pub days: Vec<Day>,
    /// Problems that do not stop a run (e.g. a day with no benchmarks yet).
    pub warnings: Vec<String>,
    /// The toggle applied to the file's text before it was parsed (an
    /// experiment's toggled side); child runs receive it too.
    pub toggle: Option<Toggle>,
}

/// Where the campaign's `[store]` says its nights are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSource {
    /// `url`: an SQLite file or a `postgres://` URL, trimmed.
    Url(String),
    /// `url_env`: the variable that holds the URL, read when a run needs
    /// it, and the line of its key for the error of an unset one.
    Env { var: String, line: usize },
}

/// One `[[days]]`.
#[derive(Debug, Clone)]
pub struct Day {
    pub number: u32,
    pub title: String,
    pub description: String,
    pub benchmarks: Vec<Benchmark>,
    /// Steps run after the day's benchmarks, in order.
    pub after: Vec<DayStep>,
    /// Days whose reports `analyze` reads, e.g. "1-4" (checked to parse).
    pub analyze_days: Option<String>,
}

/// One `[[days.benchmarks]]`, its targets parsed and its params
/// configured by its kind.
#[derive(Debug, Clone)]
pub struct Benchmark {
    pub name: String,
    /// Registry key of the benchmark kind.
    pub kind: String,
    pub description: String,
    pub warmup: Option<Warmup>,
    pub iterations: Option<Iterations>,
    pub time_budget_s: Option<Seconds>,
    pub timeout_s: Option<Seconds>,
    /// The targets, parsed.
    pub targets: Vec<Target>,
    /// The targets as the file writes them, for display.
    pub written_targets: Vec<String>,
    pub profile: bool,
    pub profile_hz: Option<Hz>,
    pub regression_threshold_pct: Option<ThresholdPct>,
    /// The params table as the file writes it, for display only: the
    /// kind reads [`Benchmark::configured`].
    pub written_params: toml::Table,
    /// The params as the kind parsed and checked them.
    pub configured: Configured,
}

impl Campaign {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A campaign's own remedy catalog: `remedies.toml` beside its file.
    pub fn remedies_path(&self) -> PathBuf {
        self.path
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("remedies.toml")
    }

    /// The results store the campaign's `[store]` names (the variable
    /// `url_env` names read now), `None` without `[store]`.
    pub fn store(&self) -> Result<Option<String>, CampaignError> {
        match &self.store {
            None => Ok(None),
            Some(StoreSource::Url(url)) => Ok(Some(url.clone())),
            Some(StoreSource::Env { var, line }) => match std::env::var(var) {
                Ok(url) if !url.trim().is_empty() => Ok(Some(url.trim().to_string())),
                _ => Err(CampaignError::StoreVariable {
                    path: self.path.clone(),
                    line: *line,
                    var: var.clone(),
                }),
            },
        }
    }

    pub fn day(&self, number: u32) -> Result<&Day, CampaignError> {
        self.days
            .iter()
            .find(|d| d.number == number)
            .ok_or_else(|| CampaignError::NoSuchDay {
                path: self.path.clone(),
                day: number,
                available: self
                    .days
                    .iter()
                    .map(|d| d.number.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Every benchmark of the campaign with its day number, in file order.
    pub fn benchmarks(&self) -> impl Iterator<Item = (u32, &Benchmark)> {
        self.days
            .iter()
            .flat_map(|d| d.benchmarks.iter().map(move |b| (d.number, b)))
    }
}
