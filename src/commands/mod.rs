//! What each subcommand does, between argument parsing (`cli.rs`) and the
//! library's modules: each file adapts its command's arguments, calls the
//! layers below (the shared workflows are in [`crate::workflows`]) and
//! prints. No file here uses another file here (`tests/library/
//! architecture.rs` checks it): what two commands join, this file does.

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
pub use fleet::{FleetArgs, FleetRunArgs, fleet_plan, fleet_report, fleet_status};
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
pub use crate::workflows::{
    BisectArgs, CommandError, ExperimentArgs, day_exit_code, exit, load_named_model, open_campaign,
    open_toggled_campaign, run_analysis, run_bisect, run_calibration, run_experiments, run_roadmap,
    threshold_overrides,
};

/// `campaign fleet run`: one shard, as its scheduler starts it: the shard
/// is marked running in the store, the day runs with the class in its
/// machine key, and its night replaces any earlier night of the shard.
/// Here because it joins two commands: a fleet shard is a whole
/// `campaign run` night between `fleet.rs`'s marks in the store.
pub fn fleet_run_shard(args: &FleetRunArgs) -> Result<u8, CommandError> {
    let shard = fleet::start_shard(args)?;
    let mut run_args = RunArgs::new(args.fleet.campaign.clone(), shard.day);
    run_args.out = args.fleet.out.clone();
    run_args.quick = args.quick;
    run_args.runs = args.runs;
    run_args.threads = args.threads;
    run_args.store = Some(shard.store.clone());
    run_args.machine_class = Some(shard.machine_class.clone());
    run_args.shard = Some(shard.mark.clone());
    let result = run(&run_args);
    fleet::finish_shard(shard);
    result
}
