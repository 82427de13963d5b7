//! `campaign roadmap` (Day 5, also run as a day step): the Markdown
//! roadmap from the last analysis.

use std::path::PathBuf;

use super::CommandError;
use crate::analysis::{BottleneckAnalysis, ExperimentsFile, apply_measurements, plan_decision};
use crate::output::OutputLayout;
use crate::report::{RoadmapInput, RoadmapMarkdown, write_artifact, write_campaign_index};

/// `campaign roadmap`: the Markdown roadmap from the last analysis.
pub fn run_roadmap(layout: &OutputLayout) -> Result<PathBuf, CommandError> {
    let source = layout.bottleneck_analysis();
    let bytes = std::fs::read(&source).map_err(|_| {
        CommandError::Analysis(format!(
            "{} is missing\n  help: run `campaign analyze` (or `campaign run --day 4`) first",
            source.display()
        ))
    })?;
    let mut analysis: BottleneckAnalysis = serde_json::from_slice(&bytes)
        .map_err(|e| CommandError::Analysis(format!("{}: {e}", source.display())))?;
    // Measured speed-ups replace assumed ones where an experiment ran.
    let experiments_path = layout.experiments();
    if let Ok(bytes) = std::fs::read(&experiments_path) {
        let experiments: ExperimentsFile = serde_json::from_slice(&bytes)
            .map_err(|e| CommandError::Analysis(format!("{}: {e}", experiments_path.display())))?;
        apply_measurements(
            &mut analysis.remedy_plan,
            &analysis.profiles,
            analysis.profiled_time_s,
            &experiments,
        );
    }
    // Again in every case: experiments may have changed the plan, and an
    // analysis written by an older build has no decision.
    analysis.decision = plan_decision(&analysis.remedy_plan, analysis.profiled_time_s);
    let path = write_artifact(
        layout,
        &RoadmapMarkdown,
        &RoadmapInput {
            analysis: &analysis,
            source: &source,
        },
    )?;
    write_campaign_index(layout, &analysis.campaign)?;
    Ok(path)
}
