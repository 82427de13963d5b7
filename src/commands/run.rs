//! `campaign run`: the night is a workflow ([`crate::workflows::run_night`]);
//! this file prints what it shows, at the points the night reaches them.

use std::path::Path;

use super::CommandError;
use crate::model::DailyReport;
use crate::workflows::{NightOutput, run_night};

pub use crate::workflows::RunArgs;

/// `campaign run`: returns the exit status after the report is written.
pub fn run(args: &RunArgs) -> Result<u8, CommandError> {
    run_night(args, &Console { json: args.json })
}

/// The night's output on the console: results on stdout, or on stderr
/// when stdout carries the `--json` report.
struct Console {
    json: bool,
}

impl NightOutput for Console {
    fn measured(&self, table: &str, report_path: &Path, json: &str) {
        if self.json {
            eprintln!("{table}\nreport: {}", report_path.display());
            print!("{json}");
        } else {
            println!("{table}\nreport: {}", report_path.display());
        }
    }

    fn child_report(&self, json: &str) {
        // Nothing but the report: the parent reads it from stdout.
        print!("{json}");
    }

    fn warnings(&self, report: &DailyReport) {
        print_warnings(report);
    }

    /// Human-readable output: stdout, or stderr when stdout carries --json.
    fn say(&self, text: &str) {
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    fn bisected(&self, text: &str, markdown: &Path) {
        // As `campaign bisect` prints it without --json, on stdout even
        // under --json.
        println!("{text}\nbisect: {}", markdown.display());
    }
}

/// Day warnings, then each result's, prefixed with its name. Provisional
/// percentiles are counted in one line: in a --quick run every case has them.
fn print_warnings(report: &DailyReport) {
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for result in &report.results {
        for warning in &result.warnings {
            eprintln!("warning: {}: {warning}", result.case_id);
        }
    }
    let provisional = report
        .results
        .iter()
        .flat_map(|r| &r.targets)
        .filter(|t| t.provisional)
        .count();
    if provisional > 0 {
        eprintln!(
            "warning: {provisional} target verdicts rest on provisional percentiles (too few samples for the rule in settings.provisional_rule); run without --quick or add iterations"
        );
    }
}
