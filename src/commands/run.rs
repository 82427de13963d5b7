use std::path::{Path, PathBuf};

use super::{CommandError, day_exit_code};
use super::{run_analysis, run_calibration, run_roadmap};
use crate::campaign::{Campaign, DayStep, load_campaign};
use crate::components::inference::DeviceSpec;
use crate::report::{
    JsonExporter, OutputLayout, render_bottleneck_table, render_calibration, render_summary_table,
    write_atomically,
};
use crate::runner::{
    ProfileOptions, RunOptions, configure_threads, console_progress, install_interrupt_handler,
    run_day, select_benchmarks,
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
    pub profile: bool,
    pub profile_hz: Option<u32>,
}

/// `campaign run`: returns the exit status after the report is written.
pub fn run(args: &RunArgs) -> Result<u8, CommandError> {
    let (campaign, layout) = open_campaign(&args.campaign, args.out.as_deref())?;
    let options = RunOptions {
        day: args.day,
        quick: args.quick,
        only: args.only.clone(),
        device: args.device,
        threads: args.threads,
        model_cache_dir: layout.model_cache(),
        scratch_dir: layout.scratch(),
        profile: ProfileOptions {
            all: args.profile,
            frequency_hz: args.profile_hz,
            raw_dir: layout.raw_profiles(),
            flame_dir: layout.flame_graphs(),
        },
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
    if options_have_no_benchmarks(&campaign, &options) {
        run_day_steps(&campaign, &layout, args)?;
        return Ok(super::exit::OK);
    }

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
    let code = day_exit_code(&report.summary, report.interrupted);
    if report.interrupted {
        return Ok(code);
    }
    run_day_steps(&campaign, &layout, args)?;
    Ok(code)
}

/// Loads a campaign and prepares its results folder (`--out`, else the
/// campaign's output_dir, else `results/`).
pub fn open_campaign(
    path: &Path,
    out: Option<&Path>,
) -> Result<(Campaign, OutputLayout), CommandError> {
    let campaign = load_campaign(path)?;
    let out = out
        .map(Path::to_path_buf)
        .or_else(|| campaign.file.output_dir.clone())
        .unwrap_or_else(|| PathBuf::from("results"));
    let layout = OutputLayout::create(&out, &campaign.slug())?;
    Ok((campaign, layout))
}

/// The remedy catalog next to the campaign file.
pub fn default_remedies(campaign: &Campaign) -> PathBuf {
    campaign
        .path
        .parent()
        .unwrap_or(Path::new("."))
        .join("remedies.toml")
}

/// The day's `after` steps, in order.
fn run_day_steps(
    campaign: &Campaign,
    layout: &OutputLayout,
    args: &RunArgs,
) -> Result<(), CommandError> {
    let day = campaign.day(args.day)?;
    for step in &day.after {
        match step {
            DayStep::Calibrate => {
                let (calibration, path) = run_calibration(campaign, layout, args.quick)?;
                println!(
                    "{}
calibration: {}",
                    render_calibration(&calibration),
                    path.display()
                );
            }
            DayStep::Analyze => {
                let days = day
                    .analyze_days
                    .clone()
                    .unwrap_or_else(|| format!("1-{}", args.day));
                let (analysis, path) =
                    run_analysis(campaign, layout, &days, &default_remedies(campaign))?;
                println!(
                    "{}
analysis: {}",
                    render_bottleneck_table(&analysis),
                    path.display()
                );
            }
            DayStep::Roadmap => {
                let path = run_roadmap(layout)?;
                println!("roadmap: {}", path.display());
            }
        }
    }
    Ok(())
}

fn options_have_no_benchmarks(campaign: &Campaign, options: &RunOptions) -> bool {
    select_benchmarks(campaign, options).is_ok_and(|b| b.is_empty())
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
