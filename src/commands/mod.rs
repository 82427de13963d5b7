//! What each subcommand does, between argument parsing (`cli.rs`) and the
//! library's modules: each file adapts its command's arguments, calls the
//! layers below (the shared workflows are in [`crate::workflows`]) and
//! prints.

mod analyze;
mod bisect;
mod calibrate;
mod dashboard;
mod experiment;
mod flamegraph;
mod fleet;
mod generate;
mod html;
mod list;
mod nightly;
mod run;
mod serve;

pub use analyze::analyze_command;
pub use bisect::bisect_command;
pub use calibrate::calibrate_command;
pub use dashboard::{DEFAULT_RECENT_NIGHTS, DashboardArgs, dashboard_command};
pub use experiment::experiment_command;
pub use flamegraph::differential_flamegraph;
pub use fleet::{FleetArgs, FleetRunArgs, fleet_plan, fleet_report, fleet_run_shard, fleet_status};
pub use generate::{GenerateArgs, generate_command};
pub use html::html_report_command;
pub use list::{list, validate};
pub use nightly::{HistoryFormat, HistoryRequest, compare_files, history_command};
pub use run::{RunArgs, run};
pub use serve::{
    DEFAULT_MAX_QUEUE, DEFAULT_MAX_WAIT_S, DEFAULT_PREFIX_BLOCK_TOKENS, DEFAULT_PREFIX_CACHE_MIB,
    PrefixCacheMib, QueuedRequests, ServeArgs, parse_listen_addr, parse_max_queue,
    parse_max_wait_s, serve_command,
};

// The workflows and what every command shares, under the names the
// binary and the tests have always used.
pub(crate) use crate::workflows::sitting_child;
pub use crate::workflows::{
    BisectArgs, CommandError, ExperimentArgs, exit, load_named_model, open_campaign,
    open_toggled_campaign, run_analysis, run_bisect, run_calibration, run_experiments, run_roadmap,
    threshold_overrides,
};

use crate::model::DaySummary;

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
