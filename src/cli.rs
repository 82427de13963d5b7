//! Command-line parsing and dispatch; the work happens in `commands`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use campaign::commands::{self, CommandError, RunArgs};
use campaign::components::inference::DeviceSpec;

const EXIT_CODES: &str = "Exit status (every command):
  0    every benchmark ran and met its targets
  1    internal error
  2    usage or campaign error (bad file, unknown kind, missing model, unwritable --out)
  3    a target was missed
  4    a benchmark failed (error, panic or timeout)
  130  interrupted by Ctrl-C (the report of what was measured is written first)";

/// Runs day-by-day performance campaigns on in-process LLM inference components.
#[derive(Debug, Parser)]
#[command(name = "campaign", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one day of a campaign and write its report.
    #[command(after_help = EXIT_CODES)]
    Run {
        /// Day number to run.
        #[arg(long)]
        day: u32,
        /// Campaign file.
        #[arg(long, default_value = "campaigns/default.toml")]
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
        /// Compute threads (overrides the campaign's settings.threads).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// List the days of a campaign with their benchmarks and targets.
    #[command(after_help = EXIT_CODES)]
    List {
        #[arg(long, default_value = "campaigns/default.toml")]
        campaign: PathBuf,
    },
    /// Check a campaign file without running it.
    #[command(after_help = EXIT_CODES)]
    Validate {
        /// Campaign file to check.
        file: PathBuf,
    },
}

impl Cli {
    /// Runs the command; returns its exit status.
    pub fn dispatch(self) -> Result<u8, CommandError> {
        match self.command {
            Command::Run {
                day,
                campaign,
                out,
                quick,
                only,
                json,
                device,
                threads,
            } => commands::run(&RunArgs {
                campaign,
                day,
                out,
                quick,
                only,
                json,
                device,
                threads,
            }),
            Command::List { campaign } => print(commands::list(&campaign)),
            Command::Validate { file } => print(commands::validate(&file)),
        }
    }
}

fn print(result: Result<(String, u8), CommandError>) -> Result<u8, CommandError> {
    result.map(|(text, code)| {
        print!("{text}");
        code
    })
}
