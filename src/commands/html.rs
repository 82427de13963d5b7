//! `campaign report --html`: a day's page from its newest report.

use super::{CommandError, exit};
use crate::output::OutputLayout;
use crate::report::{DayArtifacts, HtmlPage, write_artifact, write_campaign_index};

/// `campaign report --html`: the newest report of a day as an HTML page,
/// with the last comparison when it was made for that report.
pub fn html_report_command(layout: &OutputLayout, day: u32) -> Result<(String, u8), CommandError> {
    let mut notes = Vec::new();
    let reports = layout.latest_reports(day..=day, &mut notes);
    let Some((path, report)) = reports.into_iter().next() else {
        return Err(CommandError::Analysis(format!(
            "{}\n  help: run `campaign run --day {day}` first",
            notes.join("; ")
        )));
    };
    let comparison: Option<crate::analysis::Comparison> =
        std::fs::read(layout.ci_file("comparison.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|c: &crate::analysis::Comparison| c.current == path.display().to_string());
    let curves = crate::analysis::day_curves(&report);
    let written = write_artifact(
        layout,
        &HtmlPage,
        &DayArtifacts {
            report: &report,
            comparison: comparison.as_ref(),
            curves: &curves,
        },
    )?;
    let index = write_campaign_index(layout, &report.campaign.name)?;
    Ok((
        format!("html: {}\nindex: {}\n", written.display(), index.display()),
        exit::OK,
    ))
}
