//! `campaign analyze`: bottlenecks ranked from the days' profiles and
//! reports ([`run_analysis`]), printed as a table.

use std::path::Path;

use super::{CommandError, exit};
use crate::campaign::Campaign;
use crate::output::OutputLayout;
use crate::report::render_bottleneck_table;
use crate::workflows::run_analysis;

pub fn analyze_command(
    campaign: &Campaign,
    layout: &OutputLayout,
    days: &str,
    remedies: Option<&Path>,
) -> Result<(String, u8), CommandError> {
    let (analysis, path) = run_analysis(campaign, layout, days, remedies)?;
    Ok((
        format!(
            "{}\nanalysis: {}\n",
            render_bottleneck_table(&analysis),
            path.display()
        ),
        exit::OK,
    ))
}
