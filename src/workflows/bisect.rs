//! `campaign bisect --good REV --bad REV`: builds the commits between two
//! revisions and finds the first one whose build is slower, with the
//! interleaved runner; the culprit gets a differential flame graph and the
//! functions that grew.

use std::path::{Path, PathBuf};

use super::CommandError;
use crate::analysis::{
    BisectBuilds, BisectOutcome, BisectReport, BisectSettings, BisectStep, CompareSettings,
    DEFAULT_THRESHOLD_PCT, NightRequest, ProfileDifference, bisect, plan_night, profile_difference,
};
use crate::benchmarks::planned_comparisons;
use crate::campaign::Campaign;
use crate::campaign::bounds::Threads;
use crate::output::{OutputError, OutputLayout};
use crate::profile::{FlameGraphTitle, FoldedStacks, render_differential};
use crate::report::{step_verdict, write_rendered};
use crate::runner::{
    Arm, Build, BuildCache, BuildRecipe, CancelFlag, ChildCommand, Commit, GitRepo, ProfileOptions,
    ProfileSelection, RunOptions, Schedule, Slot, SlotRun, run_child_to, select_benchmarks,
    slot_outcome,
};

/// What `campaign bisect` was asked.
#[derive(Debug, Clone)]
pub struct BisectArgs {
    pub campaign: PathBuf,
    pub out: Option<PathBuf>,
    pub day: u32,
    pub good: String,
    pub bad: String,
    /// The git checkout (default: the one the current folder is in).
    pub repo: Option<PathBuf>,
    pub build: Option<String>,
    pub binary: Option<PathBuf>,
    pub only: Vec<String>,
    pub metric: Option<String>,
    pub quick: bool,
    pub threads: Option<Threads>,
    /// Each build reads the campaign file as its own commit has it.
    pub campaign_from_each_commit: bool,
    pub threshold_pct: Option<f64>,
    pub json: bool,
}

/// Resolves the revisions, builds the ends, runs the search and profiles
/// the culprit; every failure after the revisions resolve ends in the
/// report, not in an error.
pub fn run_bisect(
    campaign: &Campaign,
    layout: &OutputLayout,
    args: &BisectArgs,
    interrupt: &CancelFlag,
) -> Result<BisectReport, CommandError> {
    let started_at = chrono::Utc::now();
    let usage = |e: crate::runner::BuildError| CommandError::Usage(e.to_string());
    let repo_dir = match &args.repo {
        Some(dir) => dir.clone(),
        None => std::env::current_dir()
            .map_err(|e| CommandError::Usage(format!("cannot read the current folder: {e}")))?,
    };
    let repo = GitRepo::open(&repo_dir).map_err(usage)?;
    let good = repo.resolve(&args.good).map_err(usage)?;
    let bad = repo.resolve(&args.bad).map_err(usage)?;
    let commits = repo.range(&good, &bad).map_err(usage)?;
    let in_repo = if args.campaign_from_each_commit {
        Some(campaign_in_repo(&args.campaign, &repo.root)?)
    } else {
        None
    };
    let ends_pairs = ends_pairs(campaign, layout, args)?;
    let recipe = BuildRecipe {
        command: args.build.clone(),
        binary: args
            .binary
            .clone()
            .unwrap_or_else(|| PathBuf::from("target/release/campaign")),
    };
    // Absolute: git runs in the repository and builds in worktrees.
    let cache_dir =
        std::path::absolute(layout.build_cache()).map_err(|source| OutputError::Write {
            path: layout.build_cache(),
            source,
        })?;
    let cache = BuildCache {
        repo: repo.clone(),
        dir: cache_dir,
        recipe,
    };
    let fixed_campaign = std::fs::canonicalize(&args.campaign)
        .map_err(|e| CommandError::Usage(format!("{}: {e}", args.campaign.display())))?;
    let run_id = OutputLayout::run_id(&started_at);
    let mut builds = ChildBuilds {
        cache: &cache,
        commits: &commits,
        built: vec![None; commits.len()],
        campaign_in_repo: in_repo.clone(),
        fixed_campaign,
        layout,
        args,
        interrupt,
        scratch: layout.scratch().join(format!("bisect_{run_id}")),
        log_path: layout.bisect(&run_id).join("runs.log"),
        runs: 0,
    };
    eprintln!(
        "bisect: {} commits after {} ({}) up to {} ({})",
        commits.len() - 1,
        good.short(),
        good.subject,
        bad.short(),
        bad.subject
    );
    let settings = BisectSettings {
        ends_pairs,
        metric: args.metric.clone(),
        compare: CompareSettings {
            threshold_pct: args.threshold_pct.unwrap_or(DEFAULT_THRESHOLD_PCT),
            overrides: super::threshold_overrides(campaign),
        },
        seed: Schedule::fresh_seed(),
    };
    let search = bisect(&mut builds, commits.len(), &settings, interrupt);
    let mut warnings = Vec::new();
    let (profile, flame_graph) = match &search.outcome {
        BisectOutcome::FirstBad { commit, last_good } if !interrupt.is_cancelled() => {
            let dir = layout.bisect(&run_id);
            match builds.profile_pair(*last_good, *commit, &dir) {
                Ok(pair) => {
                    warnings.extend(pair.warnings);
                    (Some(pair.difference), pair.flame_graph)
                }
                Err(e) => {
                    warnings.push(format!("the culprit was not profiled: {e}"));
                    (None, None)
                }
            }
        }
        _ => (None, None),
    };
    let _ = std::fs::remove_dir_all(&builds.scratch);
    Ok(BisectReport {
        campaign: campaign.name().to_string(),
        campaign_file: args.campaign.display().to_string(),
        day: args.day,
        campaign_source: match &in_repo {
            Some(path) => format!("{} as each commit has it", path.display()),
            None => format!("{} as it is now, for every build", args.campaign.display()),
        },
        repository: repo.root.display().to_string(),
        build: cache.recipe.describe(),
        cached_builds: builds
            .built
            .iter()
            .enumerate()
            .filter(|(_, b)| b.as_ref().is_some_and(|b| b.0.cached))
            .map(|(i, _)| i)
            .collect(),
        commits,
        search,
        profile_difference: profile,
        differential_flame_graph: flame_graph.map(|p| p.display().to_string()),
        started_at,
        finished_at: chrono::Utc::now(),
        warnings,
    })
}

/// The campaign's path inside the repository, for builds that read it as
/// their own commit has it.
fn campaign_in_repo(campaign: &Path, root: &Path) -> Result<PathBuf, CommandError> {
    let absolute = std::fs::canonicalize(campaign)
        .map_err(|e| CommandError::Usage(format!("{}: {e}", campaign.display())))?;
    let root = std::fs::canonicalize(root)
        .map_err(|e| CommandError::Usage(format!("{}: {e}", root.display())))?;
    absolute
        .strip_prefix(&root)
        .map(Path::to_path_buf)
        .map_err(|_| {
            CommandError::Usage(format!(
                "--campaign-from-each-commit: {} is not inside the repository {}\n  help: name a campaign file that the repository keeps, or leave the flag out to run this file with every build",
                campaign.display(),
                root.display()
            ))
        })
}

/// The ends' pairs: the gate's interleaved design for the day's (or
/// `--only`'s) comparisons.
fn ends_pairs(
    campaign: &Campaign,
    layout: &OutputLayout,
    args: &BisectArgs,
) -> Result<usize, CommandError> {
    let options = RunOptions {
        day: args.day,
        quick: args.quick,
        only: args.only.clone(),
        settings: campaign.settings.clone().overridden(args.threads, None),
        model_cache_dir: layout.model_cache(),
        scratch_dir: layout.scratch(),
        profile: ProfileOptions {
            selection: ProfileSelection::Off,
            frequency_hz: None,
            raw_dir: layout.raw_profiles(),
            flame_dir: layout.flame_graphs(),
        },
        run_id: String::new(),
        thread_child: false,
    };
    let selected = select_benchmarks(campaign, &options)?;
    let request = NightRequest {
        interleaved: Some(planned_comparisons(&selected)),
        ..NightRequest::default()
    };
    match plan_night(&request) {
        Ok(Some(plan)) => Ok(plan.runs),
        Ok(None) => Err(CommandError::Design(
            "the day has no series to compare".into(),
        )),
        Err(refusal) => Err(CommandError::Design(format!(
            "{}\n  help: follow fewer benchmarks with --only",
            refusal.design.describe()
        ))),
    }
}

/// The culprit's profile against the last good build's.
struct ProfiledPair {
    difference: ProfileDifference,
    flame_graph: Option<PathBuf>,
    warnings: Vec<String>,
}

/// The builds of the range, run as child processes.
struct ChildBuilds<'a> {
    cache: &'a BuildCache,
    commits: &'a [Commit],
    /// Each commit's build and the campaign file it runs, once built.
    built: Vec<Option<(Build, PathBuf)>>,
    campaign_in_repo: Option<PathBuf>,
    fixed_campaign: PathBuf,
    layout: &'a OutputLayout,
    args: &'a BisectArgs,
    interrupt: &'a CancelFlag,
    scratch: PathBuf,
    /// Where the children's messages go.
    log_path: PathBuf,
    runs: usize,
}

impl ChildBuilds<'_> {
    /// The log every child's messages are appended to.
    fn children_log(&self) -> Result<std::fs::File, String> {
        if let Some(dir) = self.log_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("{}: {e}", self.log_path.display()))
    }

    fn ready(&self, index: usize) -> Result<&(Build, PathBuf), String> {
        self.built
            .get(index)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("commit {index} was not built"))
    }

    /// One child `campaign run` of build `index`, its report or why none.
    /// `with` adds what this run asks of it beyond the bisection's flags.
    fn run_once(
        &mut self,
        index: usize,
        arm: Arm,
        with: impl FnOnce(&mut ChildCommand),
    ) -> Result<SlotRun, String> {
        let (build, campaign) = self.ready(index)?.clone();
        self.runs += 1;
        let out = self.scratch.join(format!("run_{}", self.runs));
        let mut child = ChildCommand {
            // Measure only: no `after` steps, nothing written to a store.
            measure_only: true,
            quick: self.args.quick,
            only: self.args.only.clone(),
            threads: self.args.threads.map(|t| t.get()),
            ..super::sitting_child(self.args.day, campaign.as_path(), &out, self.layout)
                .map_err(|e| e.to_string())?
        };
        with(&mut child);
        // The children's tables go to one log, not over the progress.
        let log = self.children_log()?;
        let ran = run_child_to(arm, &build.binary, &child, self.interrupt, log.into());
        let _ = std::fs::remove_dir_all(&out);
        // The sittings' one rule for a child's exit; the messages are in
        // the log, not above.
        match slot_outcome(ran, arm, &build.binary, child.day) {
            Err(_) => Err(format!(
                "the build of {} refused the day (exit 2; its message is in {})",
                build.commit.short(),
                self.log_path.display()
            )),
            Ok(SlotRun::Lost(why)) => Ok(SlotRun::Lost(format!(
                "{why} (its messages: {})",
                self.log_path.display()
            ))),
            Ok(report) => Ok(report),
        }
    }

    /// One profiled run of each build; their folded stacks merged per
    /// build, the differential flame graph and the functions that grew.
    fn profile_pair(
        &mut self,
        before: usize,
        after: usize,
        dir: &Path,
    ) -> Result<ProfiledPair, String> {
        // Per side: merged stacks, samples per CPU second, iterations run.
        let mut sides: Vec<(FoldedStacks, f64, u64)> = Vec::new();
        for (index, side) in [(before, "last_good"), (after, "culprit")] {
            eprintln!(
                "profiling {} ({side})",
                self.commits.get(index).map_or("?", |c| c.short())
            );
            let raw = dir.join("profiles").join(side);
            let flames = dir.join("flame_graphs").join(side);
            for folder in [&raw, &flames] {
                std::fs::create_dir_all(folder)
                    .map_err(|e| format!("{}: {e}", folder.display()))?;
            }
            let profiled = |child: &mut ChildCommand| {
                child.profile = true;
                child.raw_profiles_dir = Some(raw.clone());
                child.flame_graphs_dir = Some(flames.clone());
            };
            let SlotRun::Report(report) = self.run_once(index, Arm::Candidate, profiled)? else {
                return Err(format!("the profiled run of {side} left no report"));
            };
            let mut merged = FoldedStacks::default();
            // CPU seconds of each profile: its samples at its own rate.
            let mut cpu_s = 0.0;
            for p in &report.profiles {
                let Some(path) = &p.folded_path else { continue };
                let one = FoldedStacks::read(Path::new(path)).map_err(|e| e.to_string())?;
                if p.effective_hz > 0 {
                    cpu_s += one.total_samples() as f64 / f64::from(p.effective_hz);
                }
                merged.merge(&one);
            }
            if merged.is_empty() || cpu_s <= 0.0 {
                return Err(format!("the profiled run of {side} recorded no samples"));
            }
            let rate = merged.total_samples() as f64 / cpu_s;
            let iterations = report
                .results
                .iter()
                .map(|r| u64::from(r.iterations_completed))
                .sum();
            sides.push((merged, rate, iterations));
        }
        let ((a, a_hz, a_iter), (b, b_hz, b_iter)) = (&sides[0], &sides[1]);
        let difference = profile_difference(a, *a_hz, b, *b_hz, 15);
        let mut warnings = Vec::new();
        if a_iter != b_iter {
            warnings.push(format!(
                "the two profiled runs did different work ({a_iter} and {b_iter} iterations): what grew compares whole runs, not the same work"
            ));
        }
        let label = |i: usize| self.commits.get(i).map_or("?", |c| c.short()).to_string();
        let title = FlameGraphTitle {
            title: format!("bisect: {} → {} (culprit)", label(before), label(after)),
            subtitle: Some(format!(
                "shape of the culprit's profile ({} samples); red grew, blue shrank, shares normalised ({} samples before)",
                b.total_samples(),
                a.total_samples()
            )),
        };
        let svg = match render_differential(a, b, &title) {
            Ok(svg) => {
                let path = dir.join("differential.svg");
                write_rendered(&path, &svg)
                    .map(|()| Some(path))
                    .map_err(|e| e.to_string())?
            }
            Err(_) => None,
        };
        Ok(ProfiledPair {
            difference,
            flame_graph: svg,
            warnings,
        })
    }
}

impl BisectBuilds for ChildBuilds<'_> {
    fn build(&mut self, index: usize) -> Result<(), String> {
        let commit = self
            .commits
            .get(index)
            .ok_or_else(|| format!("no commit {index}"))?;
        eprintln!("building {} ({})", commit.short(), commit.subject);
        let build = self
            .cache
            .build(commit, self.interrupt)
            .map_err(|e| e.to_string())?;
        let campaign = match &self.campaign_in_repo {
            Some(path) => self
                .cache
                .campaign_at(commit, path)
                .map_err(|e| e.to_string())?,
            None => self.fixed_campaign.clone(),
        };
        self.built[index] = Some((build, campaign));
        Ok(())
    }

    fn step_done(&mut self, step: &BisectStep) {
        let commit = self.commits.get(step.commit);
        eprintln!(
            "commit {} of {} ({}): {} {}",
            step.commit,
            self.commits.len() - 1,
            commit.map_or("?", |c| c.short()),
            step_verdict(step),
            step.reason
        );
    }

    fn run_slot(&mut self, candidate: usize, slot: &Slot) -> Result<SlotRun, String> {
        let index = match slot.arm {
            Arm::Reference => 0,
            Arm::Candidate => candidate,
        };
        let label = self.commits.get(index).map_or("?", |c| c.short());
        if slot.warmup {
            eprintln!("  untimed warm-up: {label}");
        } else if slot.arm == Arm::Candidate {
            eprintln!("  pair {}: {label} against the good build", slot.pair + 1);
        }
        // A warm-up only wakes caches up: quick is enough.
        self.run_once(index, slot.arm, |child| child.quick |= slot.warmup)
    }
}
