//! The measurement core: iteration plans, the timing loop on worker
//! threads, timeouts, Ctrl-C, progress, interleaved runs and calibration.

mod builds;
mod calibrate;
mod child;
mod day;
mod execute;
mod interrupt;
mod plan;
mod profiling;
mod progress;
mod results;
mod sitting;
mod threads;

pub use builds::{Build, BuildCache, BuildError, BuildRecipe, Commit, DEFAULT_BUILD, GitRepo};
pub use calibrate::calibrate;
pub use child::ChildCommand;
pub use day::{RunOptions, SelectedBenchmark, run_day, select_benchmarks};
pub use interrupt::{CancelFlag, install_interrupt_handler, wait_for_stop};
pub use plan::iteration_plan;
pub use profiling::{ProfileOptions, ProfileSelection};
pub use progress::{Progress, SilentProgress, console_progress};
pub use sitting::{
    Arm, ArmLabels, ChildError, ChildRun, LostRunCost, Schedule, Sitting, SittingError,
    SittingRuns, SittingSlot, Slot, SlotRun, run_child, run_child_to, run_sitting,
    run_sitting_until, slot_outcome,
};
pub use threads::share_model_cache;

/// candle's variable for how long its pool's threads spin before parking.
pub const CANDLE_SPIN_LIMIT: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// Sets the compute thread count for candle and rayon. Must run before any
/// other thread starts (candle reads `RAYON_NUM_THREADS` on each matmul).
pub fn configure_threads(threads: usize) {
    // SAFETY: called from `main`'s thread before any other thread exists
    // (the Ctrl-C handler and benchmark workers start afterwards), so no
    // thread can read the environment concurrently.
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        // candle runs element-wise operations on a pool of its own, beside
        // the run's rayon pool, whose threads spin 25 000 times before
        // they sleep: at 2 threads its spinning thread took 6 % of the CPU
        // from the rayon thread in a prefill of the 135M shape (`perf` by
        // thread), and parking at once gave prefill ×1.14 (geometric mean
        // of 3 alternations; decode unchanged). A user's own setting stays.
        // The value is recorded in each report's environment.
        if std::env::var_os(CANDLE_SPIN_LIMIT).is_none_or(|v| v.is_empty()) {
            std::env::set_var(CANDLE_SPIN_LIMIT, "1");
        }
    }
    // The global pool may already exist if a library initialised it; the
    // environment variable above still governs candle's own parallelism.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
}
