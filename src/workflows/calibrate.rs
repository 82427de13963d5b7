//! `campaign calibrate` (also run as a day step): this machine's limits,
//! measured and stored.

use std::path::PathBuf;

use super::CommandError;
use crate::campaign::Campaign;
use crate::model::Calibration;
use crate::model::Environment;
use crate::output::OutputLayout;
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
