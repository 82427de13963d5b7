//! `campaign calibrate`: this machine's limits, measured and stored
//! ([`run_calibration`]), printed.

use super::{CommandError, exit};
use crate::campaign::Campaign;
use crate::output::OutputLayout;
use crate::report::render_calibration;
use crate::workflows::run_calibration;

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
