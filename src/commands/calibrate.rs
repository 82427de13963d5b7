//! `campaign calibrate`: this machine's limits, measured and stored.

use std::path::PathBuf;

use super::{CommandError, exit};
use crate::campaign::Campaign;
use crate::model::Calibration;
use crate::model::Environment;
use crate::output::OutputLayout;
use crate::report::render_calibration;
use crate::runner::calibrate;

/// Measures this machine and stores the result beside the campaigns' results.
/// `threads` is the compute thread count the process was configured with.
pub fn run_calibration(
    campaign: &Campaign,
    layout: &OutputLayout,
    quick: bool,
    threads: usize,
) -> Result<(Calibration, PathBuf), CommandError> {
    let settings = campaign.settings.clone();
    let device = settings.device.open()?;
    let env = Environment::capture(settings.device.to_string(), threads, String::new());
    let calibration = calibrate(
        &layout.campaign_dir,
        &device,
        &settings.device.to_string(),
        threads,
        env.cpu_model,
        quick,
    );
    let path = layout.calibration();
    crate::report::JsonFile::write(&path, &calibration)?;
    Ok((calibration, path))
}

pub fn calibrate_command(
    campaign: &Campaign,
    layout: &OutputLayout,
    quick: bool,
    threads: Option<crate::campaign::bounds::Threads>,
) -> Result<(String, u8), CommandError> {
    let threads = threads.unwrap_or(campaign.settings.threads).usize();
    crate::runner::configure_threads(threads);
    let (calibration, path) = run_calibration(campaign, layout, quick, threads)?;
    Ok((
        format!(
            "{}\ncalibration: {}\n",
            render_calibration(&calibration),
            path.display()
        ),
        exit::OK,
    ))
}
