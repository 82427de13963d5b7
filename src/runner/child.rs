//! The command line of a child `campaign run`. A run starts children for a
//! sitting's separate runs, for a benchmark's other thread counts, for an
//! experiment's arms and for a bisection's builds; each says what it wants
//! here, in typed fields, and [`ChildCommand::argv`] is the one place the
//! flags are written (the CLI's unit tests parse it back).

use std::path::PathBuf;

use crate::components::inference::DeviceSpec;

/// What a child `campaign run` is asked to do. Its report always comes on
/// stdout (`--json`), for the parent to read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChildCommand {
    pub day: u32,
    pub campaign: PathBuf,
    /// Its own results folder.
    pub out: PathBuf,
    /// The benchmarks it runs (none named: the whole day).
    pub only: Vec<String>,
    /// `--runs`: a sitting's child is one run, never a sitting of its own.
    pub runs: Option<u32>,
    pub quick: bool,
    pub threads: Option<u64>,
    pub device: Option<DeviceSpec>,
    /// `--profile`: a second, profiled pass of every benchmark.
    pub profile: bool,
    pub no_profile: bool,
    pub profile_hz: Option<u32>,
    /// Where its profiles go: its parent's folders.
    pub raw_profiles_dir: Option<PathBuf>,
    pub flame_graphs_dir: Option<PathBuf>,
    /// Measure and report only: no `after` steps, nothing stored.
    pub measure_only: bool,
    /// It runs the cases of one thread count and starts no child itself.
    pub thread_child: bool,
    /// An experiment's toggle, as the JSON `--toggle` takes.
    pub toggle_json: Option<String>,
}

impl ChildCommand {
    /// Day `day` of `campaign`, its results in `out`, everything else as a
    /// plain `campaign run` has it.
    pub fn new(day: u32, campaign: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            day,
            campaign: campaign.into(),
            out: out.into(),
            ..Self::default()
        }
    }

    /// The arguments after the program's name.
    pub fn argv(&self) -> Vec<String> {
        let mut argv: Vec<String> = vec![
            "run".into(),
            "--day".into(),
            self.day.to_string(),
            "--campaign".into(),
            self.campaign.display().to_string(),
            "--out".into(),
            self.out.display().to_string(),
            "--json".into(),
        ];
        let mut value = |flag: &str, value: String| argv.extend([flag.to_string(), value]);
        if !self.only.is_empty() {
            value("--only", self.only.join(","));
        }
        if let Some(runs) = self.runs {
            value("--runs", runs.to_string());
        }
        if let Some(threads) = self.threads {
            value("--threads", threads.to_string());
        }
        if let Some(device) = self.device {
            value("--device", device.to_string());
        }
        if let Some(hz) = self.profile_hz {
            value("--profile-hz", hz.to_string());
        }
        if let Some(dir) = &self.raw_profiles_dir {
            value("--raw-profiles-dir", dir.display().to_string());
        }
        if let Some(dir) = &self.flame_graphs_dir {
            value("--flame-graphs-dir", dir.display().to_string());
        }
        if let Some(toggle) = &self.toggle_json {
            value("--toggle", toggle.clone());
        }
        for (set, flag) in [
            (self.quick, "--quick"),
            (self.profile, "--profile"),
            (self.no_profile, "--no-profile"),
            (self.measure_only, "--measure-only"),
            (self.thread_child, "--thread-child"),
        ] {
            if set {
                argv.push(flag.into());
            }
        }
        argv
    }
}
