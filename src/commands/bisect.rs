//! `campaign bisect --good REV --bad REV`: the bisection ([`run_bisect`]),
//! its report written and printed.

use super::{CommandError, exit};
use crate::analysis::{BisectOutcome, BisectReport};
use crate::output::OutputLayout;
use crate::report::write_bisect;
use crate::runner::install_interrupt_handler;
use crate::workflows::{BisectArgs, run_bisect};

/// `campaign bisect`: the exit status is 3 when a first bad commit (or a
/// set of candidates) was found, 0 when the ends show no regression.
pub fn bisect_command(args: &BisectArgs) -> Result<u8, CommandError> {
    let (campaign, layout) = super::open_campaign(&args.campaign, args.out.as_deref())?;
    let interrupt = install_interrupt_handler()?;
    let report = run_bisect(&campaign, &layout, args, &interrupt)?;
    write_and_print(&layout, &report, args.json)?;
    Ok(match report.search.outcome {
        BisectOutcome::FirstBad { .. } | BisectOutcome::Ambiguous { .. } => exit::REGRESSION,
        BisectOutcome::NoRegression { .. } => exit::OK,
        BisectOutcome::NotMeasured { .. } => exit::BENCHMARK_FAILED,
        BisectOutcome::Interrupted => exit::INTERRUPTED,
    })
}

/// Writes the bisect's files and prints its text: the JSON on stdout
/// with `json` (the text then on stderr), else the text on stdout.
fn write_and_print(
    layout: &OutputLayout,
    report: &BisectReport,
    json: bool,
) -> Result<(), CommandError> {
    let written = write_bisect(layout, report)?;
    let place = format!("bisect: {}", written.markdown_path.display());
    if json {
        println!("{}", written.json);
        eprintln!("{}\n{place}", written.text);
    } else {
        println!("{}\n{place}", written.text);
    }
    Ok(())
}
