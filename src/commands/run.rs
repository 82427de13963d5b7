use std::path::PathBuf;

use super::{CommandError, day_exit_code};
use crate::campaign::load_campaign;
use crate::components::inference::DeviceSpec;
use crate::report::{JsonExporter, OutputLayout, render_summary_table, write_atomically};
use crate::runner::{
    RunOptions, configure_threads, console_progress, install_interrupt_handler, run_day,
    select_benchmarks,
};

#[derive(Debug, Clone)]
pub struct RunArgs {
    pub campaign: PathBuf,
    pub day: u32,
    pub out: Option<PathBuf>,
    pub quick: bool,
    pub only: Vec<String>,
    pub json: bool,
    pub device: Option<DeviceSpec>,
    pub threads: Option<usize>,
}

/// `campaign run`: returns the exit status after the report is written.
pub fn run(args: &RunArgs) -> Result<u8, CommandError> {
    let campaign = load_campaign(&args.campaign)?;
    let out = args
        .out
        .clone()
        .or_else(|| campaign.file.output_dir.clone())
        .unwrap_or_else(|| PathBuf::from("results"));
    let layout = OutputLayout::create(&out, &campaign.slug())?;
    let options = RunOptions {
        day: args.day,
        quick: args.quick,
        only: args.only.clone(),
        device: args.device,
        threads: args.threads,
        model_cache_dir: layout.model_cache(),
        scratch_dir: layout.scratch(),
    };
    select_benchmarks(&campaign, &options)?;
    if let Some(device) = args.device {
        device.ensure_compiled()?;
    }
    configure_threads(
        args.threads
            .unwrap_or(campaign.file.settings().threads)
            .max(1),
    );
    let interrupt = install_interrupt_handler()?;

    let mut progress = console_progress();
    let day_started = chrono::Utc::now();
    let mut write_failures = Vec::new();
    let mut report = run_day(
        &campaign,
        &options,
        &interrupt,
        progress.as_mut(),
        &mut |result| {
            let path = layout.metrics_path(args.day, &day_started, result);
            let written = serde_json::to_vec_pretty(result)
                .map_err(crate::report::OutputError::from)
                .and_then(|bytes| write_atomically(&path, &bytes));
            if let Err(e) = written {
                write_failures.push(e.to_string());
            }
        },
    )?;
    report.warnings.extend(write_failures);
    let path = layout.write_report(&report, &JsonExporter)?;

    let table = render_summary_table(&report);
    if args.json {
        eprintln!("{table}\nreport: {}", path.display());
        let json =
            serde_json::to_string_pretty(&report).map_err(crate::report::OutputError::from)?;
        println!("{json}");
    } else {
        println!("{table}\nreport: {}", path.display());
    }
    print_warnings(&report);
    Ok(day_exit_code(&report.summary, report.interrupted))
}

/// Day warnings, then each result's, prefixed with its name. Provisional
/// percentiles are counted in one line: in a --quick run every case has them.
fn print_warnings(report: &crate::report::DailyReport) {
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for result in &report.results {
        for warning in &result.warnings {
            eprintln!("warning: {}: {warning}", result.benchmark_name);
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
