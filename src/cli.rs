//! Command-line parsing and dispatch; the work happens in `commands`.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use campaign::campaign::Toggle;
use campaign::campaign::bounds::{self, Dimension, Millis, Parallel, Seconds, Threads};
use campaign::commands::{self, CommandError, QueuedRequests, RunArgs};
use campaign::components::inference::DeviceSpec;
use campaign::components::server::SimulatedService;

/// The campaign a command reads when `--campaign` is not given.
const DEFAULT_CAMPAIGN: &str = "campaigns/default.toml";

const EXIT_CODES: &str = "Exit status (every command):
  0    every benchmark ran and met its targets
  1    internal error
  2    usage or campaign error (bad file, unknown kind, missing model, unwritable --out)
  3    a target was missed, or a regression against the baseline was confirmed
  4    a benchmark failed (error, panic or timeout), in any of the night's separate runs
  5    too noisy to tell: re-run (regressions within the drift of a night whose runs
       disagree, or every case moved together beyond this machine's night-to-night noise)
  130  interrupted by Ctrl-C (the report of what was measured is written first)";

const BISECT_HELP: &str = "Examples:
  campaign bisect --good v1.4 --bad HEAD --day 1 --only decode
  campaign bisect --good abc123 --bad main --build 'make campaign' --binary bin/campaign

Exit status: 3 a first bad commit (or the few it is among) was found; 0 the bad
revision is not slower than the good one; 2 usage (unknown revision, not an
ancestor, an unreadable campaign); 4 an end could not be built or measured (or
its build refused the day); 130 interrupted (the steps measured so far are
written).";

/// The files and the fleet run every `campaign fleet` command reads.
#[derive(Debug, clap::Args)]
struct FleetFlags {
    /// Campaign file (as the shards' checkout or image sees it, for plan).
    #[arg(long, default_value = DEFAULT_CAMPAIGN)]
    campaign: PathBuf,
    /// The fleet's machine classes.
    #[arg(long, default_value = "machines.toml")]
    machines: PathBuf,
    /// Results folder (default: the campaign's output_dir, else results/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The fleet run: a scheduler's run id, or a night's name (default:
    /// today's date, UTC). A shard run again in the same fleet run
    /// replaces its earlier night.
    #[arg(long, value_name = "NAME")]
    fleet_run: Option<String>,
    /// The shared store (default: the variable [fleet] store_env names,
    /// else the campaign's [store], else results.sqlite).
    #[arg(long, value_name = "PATH|URL")]
    store: Option<String>,
    /// Print JSON on stdout (status and report).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum FleetCommand {
    /// Write the shards, a GitHub Actions workflow (one matrix job per
    /// shard) and a Kubernetes Indexed Job per class under
    /// <results>/<campaign>/fleet/.
    Plan(FleetFlags),
    /// Run one shard (a day on a class) as its scheduler starts it.
    Run {
        #[command(flatten)]
        fleet: FleetFlags,
        /// The machine class (a [[class]] name of the machines file).
        #[arg(long)]
        class: String,
        /// The day to run (one of the class's days).
        #[arg(long, conflicts_with = "index")]
        day: Option<u32>,
        /// The class's N-th day, from 0 (a Kubernetes Indexed Job's index).
        #[arg(long)]
        index: Option<usize>,
        /// Scale iterations, warm-up and time budgets by 0.1.
        #[arg(long)]
        quick: bool,
        /// Separate runs of the day (as `campaign run --runs`).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: Option<u32>,
        /// Compute threads, 1 to 1024.
        #[arg(long, value_parser = bounds::parse_threads)]
        threads: Option<Threads>,
    },
    /// Every shard of a fleet run: done, running, failed or missing (exit 0
    /// only when all are done, else 4).
    Status(FleetFlags),
    /// A fleet run's nights merged: each day's series side by side across
    /// classes (fleet_report_RUN.json and .md).
    Report(FleetFlags),
}

impl FleetFlags {
    fn args(self) -> commands::FleetArgs {
        commands::FleetArgs {
            campaign: self.campaign,
            machines: self.machines,
            out: self.out,
            fleet_run: self.fleet_run,
            store: self.store,
            json: self.json,
        }
    }
}

/// `campaign bisect`'s flags.
#[derive(Debug, clap::Args)]
struct BisectFlags {
    /// A revision whose build is fast (a commit, branch or tag).
    #[arg(long, value_name = "REV")]
    good: String,
    /// A later revision whose build is slower (default: HEAD).
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    bad: String,
    /// Day of the campaign to measure.
    #[arg(long, default_value_t = 1)]
    day: u32,
    /// Campaign file.
    #[arg(long, default_value = DEFAULT_CAMPAIGN)]
    campaign: PathBuf,
    /// Results folder (default: the campaign's output_dir, else results/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The git checkout whose commits are built (default: the current folder's).
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// Shell command that builds a commit, run in its worktree (default:
    /// cargo build --release into one target folder shared by every commit).
    #[arg(long, value_name = "CMD")]
    build: Option<String>,
    /// The program --build leaves, relative to the worktree.
    #[arg(long, value_name = "PATH", requires = "build")]
    binary: Option<PathBuf>,
    /// Measure only these benchmarks of the day (repeat or separate with commas).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    only: Vec<String>,
    /// Follow the regression whose `case metric` contains this text
    /// (default: the largest regression between the ends).
    #[arg(long, value_name = "TEXT")]
    metric: Option<String>,
    /// Scale iterations, warm-up and time budgets by 0.1.
    #[arg(long)]
    quick: bool,
    /// Compute threads, 1 to 1024 (overrides the campaign's settings.threads).
    #[arg(long, value_parser = bounds::parse_threads)]
    threads: Option<Threads>,
    /// Each build reads the campaign file as its own commit has it (the
    /// file must be in the repository); default: this file for every build.
    #[arg(long)]
    campaign_from_each_commit: bool,
    /// Noise threshold of the ends' verdict, in % (above 0, at most 1000; default 5).
    #[arg(long, value_parser = bounds::parse_threshold_pct)]
    threshold_pct: Option<f64>,
    /// Print the bisect as JSON on stdout (the text goes to stderr).
    #[arg(long)]
    json: bool,
}

/// The flags of `campaign run`.
#[derive(Debug, Args)]
struct RunFlags {
    /// Day number to run.
    #[arg(long)]
    day: u32,
    /// Campaign file.
    #[arg(long, default_value = DEFAULT_CAMPAIGN)]
    campaign: PathBuf,
    /// Results folder (default: the campaign's output_dir, else results/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Scale iterations, warm-up and time budgets by 0.1 (at least one iteration).
    #[arg(long)]
    quick: bool,
    /// Run only these benchmarks of the day (repeat or separate with commas).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    only: Vec<String>,
    /// Print the day report as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Device for forward passes: cpu, cuda:N or metal (overrides the campaign).
    #[arg(long)]
    device: Option<DeviceSpec>,
    /// Compute threads, 1 to 1024 (overrides the campaign's settings.threads).
    #[arg(long, value_parser = bounds::parse_threads)]
    threads: Option<Threads>,
    /// Profile every benchmark (a second, profiled pass after each).
    #[arg(long, conflicts_with = "no_profile")]
    profile: bool,
    /// Profile nothing, not even benchmarks with `profile = true`.
    #[arg(long)]
    no_profile: bool,
    /// Internal: an experiment's toggled side (a toggle as JSON,
    /// applied to the campaign's text before it is parsed).
    #[arg(long, hide = true, value_parser = parse_toggle)]
    toggle: Option<Box<Toggle>>,
    /// Internal: an experiment's run: measure, write the report, and
    /// run none of the day's `after` steps.
    #[arg(long, hide = true)]
    measure_only: bool,
    /// Internal: this run was started by another for the cases of one
    /// thread count (it runs them and starts nothing else).
    #[arg(long, hide = true)]
    thread_child: bool,
    /// Internal: where a child run of a night writes its raw profiles
    /// (its parent's folder).
    #[arg(long, hide = true)]
    raw_profiles_dir: Option<PathBuf>,
    /// Internal: where a child run of a night writes its flame graphs.
    #[arg(long, hide = true)]
    flame_graphs_dir: Option<PathBuf>,
    /// Profile sampling frequency in Hz (overrides profile_hz; 1–1000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    profile_hz: Option<u32>,
    /// Separate runs of every benchmark, each a process of its own after
    /// an untimed warm-up run (pairs with --against-bin). With
    /// --baseline, --save-baseline or --against-bin the default is the
    /// fewest runs whose design declares a regression even with one
    /// overlapping pair; a count that can declare none is refused
    /// (exit 2) with the count that would. Otherwise 1.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: Option<u32>,
    /// Save this day's report as baseline NAME.
    #[arg(long, value_name = "NAME", conflicts_with = "against_bin")]
    save_baseline: Option<String>,
    /// Compare with baseline NAME; a confirmed regression exits 3.
    #[arg(long, value_name = "NAME", conflicts_with = "against_bin")]
    baseline: Option<String>,
    /// Results store every finished night is written to: an SQLite file
    /// or a postgres:// URL (default: results.sqlite in the results folder).
    #[arg(long, value_name = "PATH|URL")]
    store: Option<String>,
    /// Compare with another build of campaign, interleaved: both run the
    /// day as child processes in a seeded ABBA order, and the verdicts
    /// come from the pairs (Wilcoxon signed-rank).
    #[arg(long, value_name = "PATH", conflicts_with = "profile")]
    against_bin: Option<PathBuf>,
    /// When the night confirms a regression (an advisory night too), bisect
    /// it from REV to this checkout's HEAD (its benchmarks only; `campaign
    /// bisect` with the default build): the culprit and its profile
    /// difference are written under bisect/ in the results folder. The
    /// night keeps its exit status.
    #[arg(long, value_name = "REV")]
    bisect_on_regression: Option<String>,
    /// Report regressions and missed targets but exit 0 for them.
    #[arg(long)]
    advisory: bool,
    /// Noise threshold of the regression verdict, in % (above 0, at most
    /// 1000; default 5).
    #[arg(long, value_parser = bounds::parse_threshold_pct)]
    threshold_pct: Option<f64>,
}

impl From<RunFlags> for RunArgs {
    fn from(flags: RunFlags) -> Self {
        let RunFlags {
            day,
            campaign,
            out,
            quick,
            only,
            json,
            device,
            threads,
            profile,
            no_profile,
            toggle,
            measure_only,
            thread_child,
            raw_profiles_dir,
            flame_graphs_dir,
            profile_hz,
            runs,
            save_baseline,
            baseline,
            against_bin,
            advisory,
            threshold_pct,
            store,
            bisect_on_regression,
        } = flags;
        RunArgs {
            campaign,
            day,
            out,
            quick,
            only,
            json,
            device,
            threads,
            profile,
            profile_hz,
            runs,
            save_baseline,
            baseline,
            against_bin,
            advisory,
            threshold_pct,
            thread_child,
            no_profile,
            toggle: toggle.map(|t| *t),
            measure_only,
            raw_profiles_dir,
            flame_graphs_dir,
            store,
            bisect_on_regression,
            machine_class: None,
            shard: None,
        }
    }
}

/// Runs day-by-day performance campaigns on in-process LLM inference components.
#[derive(Debug, Parser)]
#[command(name = "campaign", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one day of a campaign and write its report.
    Run(RunFlags),
    /// Compare two day reports metric by metric (exit 3 on a regression).
    Compare {
        /// Baseline: a day report (JSON), or a night's run id in the results store.
        baseline: PathBuf,
        /// Current: a day report (JSON), or a night's run id in the results store.
        current: PathBuf,
        /// Noise threshold of the regression verdict, in % (above 0, at most
        /// 1000; default 5).
        #[arg(long, value_parser = bounds::parse_threshold_pct)]
        threshold_pct: Option<f64>,
        /// Results store a run id is read from: an SQLite file or a
        /// postgres:// URL (default: results.sqlite in --out).
        #[arg(long, value_name = "PATH|URL")]
        store: Option<String>,
        /// Results folder whose results.sqlite is read without --store.
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Measure this machine's limits (memory, disk, matmul) for the roofline.
    Calibrate {
        #[arg(long, default_value = DEFAULT_CAMPAIGN)]
        campaign: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Smaller buffers and matrices (seconds instead of tens of seconds).
        #[arg(long)]
        quick: bool,
        /// Compute threads to measure with, 1 to 1024 (default: the
        /// campaign's settings.threads); a roofline needs the run's count.
        #[arg(long, value_parser = bounds::parse_threads)]
        threads: Option<Threads>,
    },
    /// Rank bottlenecks from the profiles and reports of a range of days.
    Analyze {
        #[arg(long, default_value = DEFAULT_CAMPAIGN)]
        campaign: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Days to read, e.g. 1-4.
        #[arg(long, default_value = "1-4")]
        days: String,
        /// Remedy catalog (default: remedies.toml next to the campaign, else
        /// the catalog built into this binary).
        #[arg(long)]
        remedies: Option<PathBuf>,
    },
    /// Measure remedies: run the benchmarks a remedy's toggle acts on, as
    /// the campaign is and toggled, alternately in a seeded ABBA order, and
    /// write experiments.json (the roadmap then uses the measured speed-ups).
    Experiment {
        #[arg(long, default_value = DEFAULT_CAMPAIGN)]
        campaign: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only remedies whose text contains TEXT (repeatable; default:
        /// every remedy with a toggle that the last analysis plans).
        #[arg(long, value_name = "TEXT")]
        remedy: Vec<String>,
        /// Remedy catalog (default: remedies.toml next to the campaign, else
        /// the catalog built into this binary).
        #[arg(long)]
        remedies: Option<PathBuf>,
        /// Pairs of runs (default: the fewest whose design declares a gain
        /// even with one overlapping pair).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: Option<u32>,
        /// Scale iterations, warm-up and time budgets by 0.1.
        #[arg(long)]
        quick: bool,
        /// Threshold of the verdict, in % (above 0, at most 1000; default 5).
        #[arg(long, value_parser = bounds::parse_threshold_pct)]
        threshold_pct: Option<f64>,
    },
    /// Write OPTIMIZATION_ROADMAP.md from the last analysis.
    Roadmap {
        #[arg(long, default_value = DEFAULT_CAMPAIGN)]
        campaign: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Find the first commit between two revisions whose build is slower:
    /// each commit built in a worktree of its own and measured against the
    /// good build with interleaved runs (exit 3 when one is named, 0 when
    /// the ends show no regression).
    #[command(after_help = BISECT_HELP)]
    Bisect(BisectFlags),
    /// One campaign on several classes of machine, through GitHub Actions
    /// or Kubernetes, every shard writing to one shared store.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Differential flame graph of two folded profiles.
    Flamegraph {
        /// BEFORE.folded AFTER.folded
        #[arg(long, num_args = 2, value_names = ["BEFORE", "AFTER"], required = true)]
        diff: Vec<PathBuf>,
        /// Output SVG.
        #[arg(long, short, default_value = "diff.svg")]
        output: PathBuf,
    },
    /// Print one metric's series over the nights on this machine, with change points.
    History {
        /// `case metric`, or a part of it (e.g. `ttft_ms`).
        metric: String,
        #[arg(long, default_value_t = 1)]
        day: u32,
        #[arg(long, default_value = DEFAULT_CAMPAIGN)]
        campaign: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Changes smaller than this (in %, above 0, at most 1000) are
        /// listed as minor, in series of benchmarks that set no
        /// regression_threshold_pct of their own (the gate's rule).
        #[arg(long, default_value_t = campaign::analysis::DEFAULT_THRESHOLD_PCT, value_parser = bounds::parse_threshold_pct)]
        threshold_pct: f64,
        /// `text`, or `json` and `csv` for other tools.
        #[arg(long, default_value = "text", value_parser = ["text", "json", "csv"])]
        format: String,
        /// Results store to read: an SQLite file or a postgres:// URL
        /// (default: results.sqlite in the results folder).
        #[arg(long, value_name = "PATH|URL")]
        store: Option<String>,
        /// Copy this results folder's JSONL history (every machine, this
        /// campaign and day) into the store first; nights already there
        /// are not copied twice.
        #[arg(long)]
        import: bool,
    },
    /// Serve the results store as a dashboard (every campaign, machine and
    /// night; what changed recently on the front page), or write it as
    /// static files with --export.
    Dashboard {
        /// Results store to read: an SQLite file or a postgres:// URL
        /// (default: results.sqlite in the results folder).
        #[arg(long, value_name = "PATH|URL")]
        store: Option<String>,
        /// Results folder whose results.sqlite is read without --store.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Address to listen on: IP:PORT or localhost:PORT; port 0 picks a
        /// free port. The first line on stdout names the URL.
        #[arg(long, default_value = "127.0.0.1:0", value_parser = commands::parse_listen_addr)]
        addr: std::net::SocketAddr,
        /// Write the pages into DIR (for a CI artifact) instead of serving them.
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
        /// The front page lists what began in this many last nights of each
        /// series (1 to 10000), and open regressions.
        #[arg(long, value_name = "N", default_value_t = commands::DEFAULT_RECENT_NIGHTS, value_parser = parse_recent_nights)]
        recent: usize,
        /// Only the nights of the last DAYS days (1 to 10000; default:
        /// every night), for a store too large to read whole. Change points
        /// are then found within that window.
        #[arg(long, value_name = "DAYS", value_parser = parse_since_days)]
        since_days: Option<u32>,
        /// Changes smaller than this (in %, above 0, at most 1000) are drawn
        /// on their chart but not listed on the front page, in series whose
        /// nights do not record the threshold the gate judged them by.
        #[arg(long, default_value_t = campaign::analysis::DEFAULT_THRESHOLD_PCT, value_parser = bounds::parse_threshold_pct)]
        threshold_pct: f64,
    },
    /// Write a day's newest report as a self-contained HTML page.
    Report {
        /// The day's newest report as one HTML page (JSON, JUnit, CSV and
        /// Markdown are written by every run).
        #[arg(long, required_unless_present = "fleet", conflicts_with = "fleet")]
        html: bool,
        /// A fleet run's nights merged across machine classes (as `campaign
        /// fleet report --fleet-run NAME`).
        #[arg(long, value_name = "NAME")]
        fleet: Option<String>,
        /// The fleet's machine classes (with --fleet).
        #[arg(long, default_value = "machines.toml")]
        machines: PathBuf,
        /// The shared store (with --fleet; default as for `campaign fleet`).
        #[arg(long, value_name = "PATH|URL")]
        store: Option<String>,
        #[arg(long, default_value_t = 1)]
        day: u32,
        #[arg(long, default_value = DEFAULT_CAMPAIGN)]
        campaign: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the days of a campaign with their benchmarks and targets.
    List {
        #[arg(long, default_value = DEFAULT_CAMPAIGN)]
        campaign: PathBuf,
    },
    /// Print a model's greedy continuation of a prompt, to see that it
    /// (and its tokenizer) loaded right.
    Generate {
        /// Campaign file that defines the model.
        #[arg(long, default_value = DEFAULT_CAMPAIGN)]
        campaign: PathBuf,
        /// Results folder, where synthetic models are cached (default: the campaign's output_dir).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Model name, as in the campaign's [models] table.
        #[arg(long, default_value = "default")]
        model: String,
        /// Prompt text.
        #[arg(long)]
        prompt: String,
        /// Most tokens to generate (stops earlier at end of sequence).
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
        max_tokens: u32,
        /// Wrap the prompt in the model's chat template as a user message.
        #[arg(long)]
        chat: bool,
    },
    /// Serve a campaign's model over an OpenAI-compatible API
    /// (/v1/completions, /v1/chat/completions, /v1/models, /health); prints
    /// `listening on http://ADDR` first and stops on Ctrl-C.
    Serve {
        /// Campaign file that defines the model.
        #[arg(long, default_value = DEFAULT_CAMPAIGN)]
        campaign: PathBuf,
        /// Results folder, where synthetic models are cached and requests logged
        /// (default: the campaign's output_dir).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Model name, as in the campaign's [models] table; clients give it as `model`.
        #[arg(long, default_value = "default")]
        model: String,
        /// Address to listen on: IP:PORT or localhost:PORT; port 0 picks a
        /// free port. Any address but loopback is warned about.
        #[arg(long, default_value = "127.0.0.1:0", value_parser = commands::parse_listen_addr)]
        addr: std::net::SocketAddr,
        /// JSONL file for the request log (default: serve_requests.jsonl in the results folder).
        #[arg(long)]
        request_log: Option<PathBuf>,
        /// Require `Authorization: Bearer KEY` on every request but
        /// /health, KEY read from the environment variable VAR (a key on
        /// the command line would show in `ps`); without it: 401.
        #[arg(long, value_name = "VAR")]
        api_key_env: Option<String>,
        /// Requests that may wait while the engine runs one, 0 to 1024;
        /// past it: 429 with retry-after.
        #[arg(long, value_name = "N", default_value_t = QueuedRequests::new_const(commands::DEFAULT_MAX_QUEUE), value_parser = commands::parse_max_queue)]
        max_queue: QueuedRequests,
        /// Seconds a request may wait, from its headers to the start of its
        /// generation (0.001 to 604800); past it: 503 with retry-after.
        #[arg(long, value_name = "S", default_value_t = Seconds::new_const(commands::DEFAULT_MAX_WAIT_S), value_parser = commands::parse_max_wait_s)]
        max_wait_s: Seconds,
        /// Serve a simulated service of known latency instead of the
        /// model: N requests at once, first come first served (an M/M/N
        /// queue, to check a client or a capacity search against the
        /// truth); with --simulate-service-ms.
        #[arg(long, value_name = "N", requires = "simulate_service_ms", value_parser = Parallel::parse)]
        simulate_slots: Option<Parallel>,
        /// Mean service time of a simulated request (exponential): its
        /// first token at once, the others spread over it.
        #[arg(long, value_name = "MS", requires = "simulate_slots", value_parser = Millis::parse)]
        simulate_service_ms: Option<Millis>,
        /// Seed of the simulated service times.
        #[arg(
            long,
            value_name = "SEED",
            default_value_t = 0,
            requires = "simulate_slots"
        )]
        simulate_seed: u64,
        /// MiB of KV the prefix cache may hold (0 to 1048576; 0, the
        /// default, turns it off): a prompt that begins with the full
        /// blocks of a recent one resumes from their KV, and its usage
        /// reports them as prompt_tokens_details.cached_tokens.
        #[arg(long, value_name = "MIB", default_value_t = commands::PrefixCacheMib::new_const(commands::DEFAULT_PREFIX_CACHE_MIB), value_parser = commands::PrefixCacheMib::parse)]
        prefix_cache_mib: commands::PrefixCacheMib,
        /// Tokens of a prefix-cache block (1 to 65536).
        #[arg(long, value_name = "N", default_value_t = Dimension::new_const(commands::DEFAULT_PREFIX_BLOCK_TOKENS), value_parser = Dimension::parse)]
        prefix_block_tokens: Dimension,
    },
    /// Check a campaign file without running it.
    Validate {
        /// Campaign file to check.
        file: PathBuf,
    },
}

fn parse_toggle(text: &str) -> Result<Box<Toggle>, String> {
    serde_json::from_str(text).map_err(|e| format!("not a toggle: {e}"))
}

/// `--recent`: a whole number of nights, 1 to 10000.
fn parse_recent_nights(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a number of nights; allowed: a whole number from 1 to 10000"
        )),
    }
}

/// `--since-days`: a whole number of days, 1 to 10000.
fn parse_since_days(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a number of days; allowed: a whole number from 1 to 10000"
        )),
    }
}

impl Cli {
    /// The command line, with [`EXIT_CODES`] closing the help of the
    /// program and of every command that runs something. Stated here
    /// once, a command added later cannot be left without it.
    pub fn command_with_exit_codes() -> clap::Command {
        /// A group of commands (`fleet`) runs nothing itself, so its help
        /// lists commands, not statuses; a command with closing help of
        /// its own (`bisect`) states its own statuses there.
        fn state_exit_codes(command: clap::Command) -> clap::Command {
            if command.has_subcommands() {
                command.mut_subcommands(state_exit_codes)
            } else if command.get_after_help().is_none() {
                command.after_help(EXIT_CODES)
            } else {
                command
            }
        }
        Self::command()
            .after_help(EXIT_CODES)
            .mut_subcommands(state_exit_codes)
    }

    /// Parses the process's arguments as [`Parser::parse`] does (help,
    /// version and usage errors print and exit), with the exit statuses in
    /// every help.
    pub fn parse_args() -> Self {
        let mut command = Self::command_with_exit_codes();
        let mut matches = command.get_matches_mut();
        Self::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.format(&mut command).exit())
    }

    /// Runs the command; returns its exit status.
    pub fn dispatch(self) -> Result<u8, CommandError> {
        match self.command {
            Command::Run(flags) => commands::run(&RunArgs::from(flags)),
            Command::Experiment {
                campaign,
                out,
                remedy,
                remedies,
                runs,
                quick,
                threshold_pct,
            } => commands::experiment_command(&commands::ExperimentArgs {
                campaign,
                out,
                remedy,
                remedies,
                runs,
                quick,
                threshold_pct,
            }),
            Command::Compare {
                baseline,
                current,
                threshold_pct,
                store,
                out,
            } => print(commands::compare_files(
                &baseline,
                &current,
                threshold_pct,
                store.as_deref(),
                &out,
            )),
            Command::Calibrate {
                campaign,
                out,
                quick,
                threads,
            } => print(
                commands::open_campaign(&campaign, out.as_deref()).and_then(|(c, layout)| {
                    commands::calibrate_command(&c, &layout, quick, threads)
                }),
            ),
            Command::Analyze {
                campaign,
                out,
                days,
                remedies,
            } => print(commands::open_campaign(&campaign, out.as_deref()).and_then(
                |(c, layout)| commands::analyze_command(&c, &layout, &days, remedies.as_deref()),
            )),
            Command::Roadmap { campaign, out } => print(
                commands::open_campaign(&campaign, out.as_deref()).and_then(|(_, layout)| {
                    commands::run_roadmap(&layout)
                        .map(|p| (format!("roadmap: {}\n", p.display()), 0))
                }),
            ),
            Command::Bisect(f) => commands::bisect_command(&commands::BisectArgs {
                campaign: f.campaign,
                out: f.out,
                day: f.day,
                good: f.good,
                bad: f.bad,
                repo: f.repo,
                build: f.build,
                binary: f.binary,
                only: f.only,
                metric: f.metric,
                quick: f.quick,
                threads: f.threads,
                campaign_from_each_commit: f.campaign_from_each_commit,
                threshold_pct: f.threshold_pct,
                json: f.json,
            }),
            Command::Fleet(FleetCommand::Plan(f)) => commands::fleet_plan(&f.args()),
            Command::Fleet(FleetCommand::Status(f)) => commands::fleet_status(&f.args()),
            Command::Fleet(FleetCommand::Report(f)) => commands::fleet_report(&f.args()),
            Command::Fleet(FleetCommand::Run {
                fleet,
                class,
                day,
                index,
                quick,
                runs,
                threads,
            }) => commands::fleet_run_shard(&commands::FleetRunArgs {
                fleet: fleet.args(),
                class,
                day,
                index,
                quick,
                runs,
                threads,
            }),
            Command::Flamegraph { diff, output } => print(commands::differential_flamegraph(
                &diff[0], &diff[1], &output,
            )),
            Command::History {
                metric,
                day,
                campaign,
                out,
                threshold_pct,
                format,
                store,
                import,
            } => {
                let format = match format.as_str() {
                    "json" => commands::HistoryFormat::Json,
                    "csv" => commands::HistoryFormat::Csv,
                    _ => commands::HistoryFormat::Text,
                };
                print(
                    commands::open_campaign(&campaign, out.as_deref()).and_then(|(c, layout)| {
                        let store = match store {
                            Some(store) => Some(store),
                            None => c.store()?,
                        };
                        commands::history_command(
                            &layout,
                            &commands::HistoryRequest {
                                campaign: c.name(),
                                day,
                                metric: &metric,
                                threshold_pct,
                                benchmark_thresholds_pct: commands::threshold_overrides(&c),
                                format,
                                store: store.as_deref(),
                                import,
                            },
                        )
                    }),
                )
            }
            Command::Dashboard {
                store,
                out,
                addr,
                export,
                recent,
                since_days,
                threshold_pct,
            } => print(commands::dashboard_command(&commands::DashboardArgs {
                store,
                out,
                addr,
                export,
                recent_nights: recent,
                since_days,
                threshold_pct,
            })),
            Command::Report {
                fleet: Some(fleet_run),
                machines,
                store,
                campaign,
                out,
                ..
            } => commands::fleet_report(&commands::FleetArgs {
                campaign,
                machines,
                out,
                fleet_run: Some(fleet_run),
                store,
                json: false,
            }),
            Command::Report {
                day, campaign, out, ..
            } => print(
                commands::open_campaign(&campaign, out.as_deref())
                    .and_then(|(_, layout)| commands::html_report_command(&layout, day)),
            ),
            Command::List { campaign } => print(commands::list(&campaign)),
            Command::Validate { file } => print(commands::validate(&file)),
            Command::Serve {
                campaign,
                out,
                model,
                addr,
                request_log,
                api_key_env,
                max_queue,
                max_wait_s,
                simulate_slots,
                simulate_service_ms,
                simulate_seed,
                prefix_cache_mib,
                prefix_block_tokens,
            } => print(commands::open_campaign(&campaign, out.as_deref()).and_then(
                |(c, layout)| {
                    commands::serve_command(
                        &c,
                        &layout,
                        &commands::ServeArgs {
                            model,
                            addr,
                            request_log,
                            api_key_env,
                            max_queue,
                            max_wait_s,
                            simulate: simulate_slots.zip(simulate_service_ms).map(
                                |(slots, service)| SimulatedService {
                                    slots: slots.usize(),
                                    mean_service: std::time::Duration::from_secs_f64(
                                        service.get() / 1e3,
                                    ),
                                    seed: simulate_seed,
                                },
                            ),
                            prefix_cache_mib,
                            prefix_block_tokens,
                        },
                    )
                },
            )),
            Command::Generate {
                campaign,
                out,
                model,
                prompt,
                max_tokens,
                chat,
            } => print(commands::open_campaign(&campaign, out.as_deref()).and_then(
                |(c, layout)| {
                    commands::generate_command(
                        &c,
                        &layout,
                        &commands::GenerateArgs {
                            model,
                            prompt,
                            max_tokens: max_tokens as usize,
                            chat,
                        },
                    )
                },
            )),
        }
    }
}

fn print(result: Result<(String, u8), CommandError>) -> Result<u8, CommandError> {
    result.map(|(text, code)| {
        print!("{text}");
        code
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use campaign::campaign::Toggle;
    use campaign::runner::ChildCommand;
    use clap::Parser;

    use super::{BISECT_HELP, Cli, Command, EXIT_CODES, RunArgs};

    /// Every command that runs something states its exit status in its
    /// help: the statuses shared by all (bisect, its own); a group of
    /// commands runs nothing, so its help lists commands instead.
    #[test]
    fn every_command_that_runs_something_states_its_exit_status() {
        fn after_help(command: &clap::Command) -> Option<String> {
            command.get_after_help().map(ToString::to_string)
        }
        fn check(command: &clap::Command, path: &str, leaves: &mut Vec<String>) {
            for sub in command.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.has_subcommands() {
                    assert_eq!(after_help(sub), None, "{path} runs nothing");
                    check(sub, &path, leaves);
                } else {
                    let expected = if path == "campaign bisect" {
                        BISECT_HELP
                    } else {
                        EXIT_CODES
                    };
                    assert_eq!(after_help(sub).as_deref(), Some(expected), "{path}");
                    leaves.push(path);
                }
            }
        }
        let command = Cli::command_with_exit_codes();
        assert_eq!(after_help(&command).as_deref(), Some(EXIT_CODES));
        let mut leaves = Vec::new();
        check(&command, "campaign", &mut leaves);
        // The walk reached the commands of a group too.
        for path in ["campaign run", "campaign validate", "campaign fleet run"] {
            assert!(leaves.iter().any(|l| l == path), "{path} in {leaves:?}");
        }
    }

    /// The run `child`'s command line asks of `campaign run`.
    fn parsed(child: &ChildCommand) -> RunArgs {
        let argv = std::iter::once("campaign".to_string()).chain(child.argv());
        let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{child:?}: {e}"));
        let Command::Run(flags) = cli.command else {
            panic!("{child:?} is not a run");
        };
        RunArgs::from(flags)
    }

    fn assert_round_trip(child: &ChildCommand) {
        let args = parsed(child);
        let toggle: Option<Toggle> = child
            .toggle_json
            .as_deref()
            .map(|json| serde_json::from_str(json).unwrap());
        let back = ChildCommand {
            day: args.day,
            campaign: args.campaign.clone(),
            out: args.out.clone().unwrap(),
            only: args.only.clone(),
            runs: args.runs,
            quick: args.quick,
            threads: args.threads.map(|t| t.get()),
            device: args.device,
            profile: args.profile,
            no_profile: args.no_profile,
            profile_hz: args.profile_hz,
            raw_profiles_dir: args.raw_profiles_dir.clone(),
            flame_graphs_dir: args.flame_graphs_dir.clone(),
            measure_only: args.measure_only,
            thread_child: args.thread_child,
            toggle_json: child.toggle_json.clone(),
        };
        assert_eq!(&back, child);
        assert_eq!(args.toggle, toggle);
        assert!(args.json, "a child's report comes on stdout");
    }

    #[test]
    fn every_child_command_line_parses_back_to_the_run_it_describes() {
        let plain = ChildCommand::new(3, "campaigns/a b.toml", "/tmp/out dir");
        assert_round_trip(&plain);
        let toggle = serde_json::json!({ "setting": "threads", "value": 2 }).to_string();
        let full = ChildCommand {
            only: vec!["first_token".into(), "decode".into()],
            runs: Some(1),
            quick: true,
            threads: Some(4),
            device: Some("cpu".parse().unwrap()),
            profile_hz: Some(250),
            raw_profiles_dir: Some(PathBuf::from("/tmp/raw")),
            flame_graphs_dir: Some(PathBuf::from("/tmp/flames")),
            measure_only: true,
            thread_child: true,
            toggle_json: Some(toggle),
            ..plain.clone()
        };
        assert_round_trip(&full);
        // Each flag alone (profile and no-profile exclude each other).
        for child in [
            ChildCommand {
                profile: true,
                ..full.clone()
            },
            ChildCommand {
                no_profile: true,
                ..full.clone()
            },
            ChildCommand {
                quick: false,
                ..full.clone()
            },
            ChildCommand {
                only: vec!["one".into()],
                ..plain.clone()
            },
        ] {
            assert_round_trip(&child);
        }
    }
}
