//! `campaign experiment`: measures the remedies that carry a toggle
//! ([`run_experiments`]) and prints what each did.

use super::CommandError;
use crate::report::render_experiments;
use crate::runner::install_interrupt_handler;
use crate::workflows::{ExperimentArgs, run_experiments};

/// `campaign experiment`.
pub fn experiment_command(args: &ExperimentArgs) -> Result<u8, CommandError> {
    let (campaign, layout) = super::open_campaign(&args.campaign, args.out.as_deref())?;
    let interrupt = install_interrupt_handler()?;
    let (file, path, code) = run_experiments(&campaign, &layout, args, &interrupt)?;
    println!(
        "{}\nexperiments: {}",
        render_experiments(&file),
        path.display()
    );
    Ok(code)
}
