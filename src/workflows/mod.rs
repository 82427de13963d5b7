//! The workflows behind the subcommands: what `campaign analyze`,
//! `calibrate`, `roadmap`, `experiment` and `bisect` do, and what a
//! night's `after` steps and `--bisect-on-regression` run again; and the
//! night of `campaign run` itself (`night.rs`), which a fleet shard runs
//! too. Each takes its arguments as plain values and returns what it
//! found and wrote (its progress goes to stderr as it runs); `commands/`
//! adapts the command line to them and prints the results. The night
//! prints between its steps, so it hands what it shows to a
//! [`NightOutput`] that `commands/run.rs` prints. Here, and not in
//! `commands/`, because a command's file never uses another's, and
//! `campaign run` runs every one of these as well as its own command.
//!
//! The error and exit statuses are shared by every command, so they live
//! here too, with what opening a campaign takes and the exit status a
//! finished day earns.

mod analyze;
mod bisect;
mod calibrate;
mod experiment;
mod night;
mod roadmap;

pub use analyze::run_analysis;
pub use bisect::{BisectArgs, run_bisect};
pub use calibrate::run_calibration;
pub use experiment::{ExperimentArgs, run_experiments};
pub use night::{NightOutput, RunArgs, run_night};
pub use roadmap::run_roadmap;

use std::path::{Path, PathBuf};

use crate::campaign::{Campaign, CampaignError, Toggle, load_campaign_toggled};
use crate::components::inference::{InferenceError, LoadedModel};
use crate::components::server::ServerError;
use crate::model::DaySummary;
use crate::output::OutputError;
use crate::output::OutputLayout;
use crate::runner::ChildCommand;

/// Loads a campaign and prepares its results folder (`--out`, else the
/// campaign's output_dir, else `results/`).
pub fn open_campaign(
    path: &Path,
    out: Option<&Path>,
) -> Result<(Campaign, OutputLayout), CommandError> {
    open_toggled_campaign(path, out, None)
}

/// [`open_campaign`] with an experiment's toggle applied.
pub fn open_toggled_campaign(
    path: &Path,
    out: Option<&Path>,
    toggle: Option<&Toggle>,
) -> Result<(Campaign, OutputLayout), CommandError> {
    let campaign = load_campaign_toggled(path, &crate::benchmarks::Registry, toggle)?;
    let out = out
        .map(Path::to_path_buf)
        .or_else(|| campaign.output_dir.clone())
        .unwrap_or_else(|| PathBuf::from("results"));
    let layout = OutputLayout::create(&out, campaign.name())?;
    Ok((campaign, layout))
}

/// What every child `campaign run` of a sitting starts from: the day, one
/// run, the report on stdout, in its own results folder `out` (created
/// here) that shares this run's model cache.
pub(crate) fn sitting_child(
    day: u32,
    campaign: &Path,
    out: &Path,
    layout: &OutputLayout,
) -> Result<ChildCommand, CommandError> {
    std::fs::create_dir_all(out).map_err(|source| crate::output::OutputError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    crate::runner::share_model_cache(&layout.model_cache(), out);
    Ok(ChildCommand {
        runs: Some(1),
        ..ChildCommand::new(day, campaign, out)
    })
}

/// Each benchmark's own `regression_threshold_pct`, by name: every verdict
/// (nights, their control, experiments) judges a benchmark by it.
pub fn threshold_overrides(campaign: &Campaign) -> std::collections::BTreeMap<String, f64> {
    campaign
        .benchmarks()
        .filter_map(|(_, b)| {
            b.regression_threshold_pct
                .map(|t| (b.name.clone(), t.get()))
        })
        .collect()
}

/// Exit statuses, the same for every command.
pub mod exit {
    /// Every benchmark ran and met its targets.
    pub const OK: u8 = 0;
    /// A bug or an environment problem inside the tool.
    pub const INTERNAL: u8 = 1;
    /// Bad command line, campaign file, model path or results folder.
    pub const USAGE: u8 = 2;
    /// A target was missed.
    pub const TARGET_MISSED: u8 = 3;
    /// A regression against the baseline was confirmed (the same status
    /// as a missed target: the night did not meet its bar).
    pub const REGRESSION: u8 = 3;
    /// A benchmark failed: error, panic or timeout, in any of the
    /// night's separate runs.
    pub const BENCHMARK_FAILED: u8 = 4;
    /// Too noisy to tell: regressions within the drift of a night whose
    /// runs disagree with each other, or every case moved together beyond
    /// the machine's night-to-night noise. Re-run, or compare builds with
    /// `--against-bin`.
    pub const TOO_NOISY: u8 = 5;
    /// Stopped by Ctrl-C after writing what was measured.
    pub const INTERRUPTED: u8 = 130;
}

/// The exit status a finished day earns: failures outrank missed targets.
pub fn day_exit_code(summary: &DaySummary, interrupted: bool) -> u8 {
    if summary.failed > 0 || summary.failed_runs > 0 {
        exit::BENCHMARK_FAILED
    } else if interrupted {
        exit::INTERRUPTED
    } else if summary.targets_missed > 0 {
        exit::TARGET_MISSED
    } else {
        exit::OK
    }
}

/// Loads a model of the campaign by its name in `[models]` (a synthetic
/// one is built into the results folder's model cache first).
pub fn load_named_model(
    campaign: &Campaign,
    layout: &OutputLayout,
    name: &str,
) -> Result<(PathBuf, LoadedModel), CommandError> {
    let resolved = campaign.models.get(name).ok_or_else(|| {
        CommandError::Usage(format!(
            "{}: no model named {name:?} in [models]; defined: {}",
            campaign.path.display(),
            campaign
                .models
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let path = crate::benchmarks::model_path(resolved, &layout.model_cache())
        .map_err(|e| CommandError::Usage(format!("model {name:?}: {e}")))?;
    let settings = campaign.settings.clone();
    let device = settings.device.open()?;
    let model =
        crate::benchmarks::open_model(resolved, &path, &device, settings.dtype.to_candle())?;
    Ok((path, model))
}

/// Errors that stop a command before or instead of a run.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Campaign(#[from] CampaignError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Device(#[from] InferenceError),
    #[error("cannot install the Ctrl-C handler: {0}")]
    Interrupt(#[from] ctrlc::Error),
    /// Missing or unusable inputs of analyze, roadmap or flamegraph.
    #[error("{0}")]
    Analysis(String),
    /// A night whose runs can never support the verdicts it asks for.
    #[error("{0}")]
    Design(String),
    /// An `--against-bin` program that is missing or refuses the day.
    #[error("{0}")]
    AgainstBin(String),
    /// An interleaved night whose runs produced nothing to compare.
    #[error("{0}")]
    Interleave(String),
    /// A command line that names something the campaign does not have.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    History(#[from] crate::store::HistoryFileError),
}

/// The nights' two sources keep their own variants (and exit statuses).
impl From<crate::store::NightsError> for CommandError {
    fn from(e: crate::store::NightsError) -> Self {
        match e {
            crate::store::NightsError::Store(e) => Self::Store(e),
            crate::store::NightsError::History(e) => Self::History(e),
        }
    }
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Campaign(_)
            | Self::Output(OutputError::Unwritable { .. })
            | Self::Device(_)
            | Self::Analysis(_)
            | Self::History(_)
            | Self::Design(_)
            | Self::AgainstBin(_)
            | Self::Usage(_) => exit::USAGE,
            Self::Interleave(_) => exit::BENCHMARK_FAILED,
            Self::Server(ServerError::Io(_) | ServerError::Engine(_)) => exit::INTERNAL,
            Self::Server(_) | Self::Store(_) => exit::USAGE,
            Self::Output(_) | Self::Interrupt(_) => exit::INTERNAL,
        }
    }
}
