//! The campaign's `index.html`, rewritten after every day, roadmap and
//! page: the newest report of each day found on disk, the roadmap and the
//! flame graphs.

use std::path::PathBuf;

use crate::output::{OutputError, OutputLayout};
use crate::report::{CampaignIndex, IndexPage, IndexedDay, write_artifact};

/// The newest flame graphs listed; the folder keeps them all.
const MAX_FLAME_GRAPHS: usize = 50;

/// The days that have at least one report in the results folder.
fn reported_days(layout: &OutputLayout) -> Vec<u32> {
    let mut days: Vec<u32> = std::fs::read_dir(layout.daily_reports())
        .map(|entries| {
            entries
                .filter_map(|e| {
                    let name = e.ok()?.file_name().into_string().ok()?;
                    let rest = name.strip_prefix("day_")?;
                    let (day, tail) = rest.split_once("_report_")?;
                    tail.ends_with(".json").then(|| day.parse().ok())?
                })
                .collect()
        })
        .unwrap_or_default();
    days.sort_unstable();
    days.dedup();
    days
}

/// Writes the index; a report that cannot be read is left off it.
pub fn write_campaign_index(layout: &OutputLayout, campaign: &str) -> Result<PathBuf, OutputError> {
    let mut notes = Vec::new();
    let days = reported_days(layout);
    // One pass over the folder; a day between them without a report only
    // adds a note, which the index does not show.
    let reports = match (days.first(), days.last()) {
        (Some(first), Some(last)) => {
            super::analyze::latest_reports(layout, *first..=*last, &mut notes)
        }
        _ => Vec::new(),
    };
    let days = reports
        .iter()
        .map(|(path, report)| {
            let page = layout.html_report(report.day);
            IndexedDay {
                report,
                report_href: layout.index_href(path),
                html_href: page.exists().then(|| layout.index_href(&page)),
            }
        })
        .collect();
    let existing = |path: PathBuf| path.exists().then(|| layout.index_href(&path));
    let mut flame_graphs: Vec<(std::time::SystemTime, PathBuf)> =
        std::fs::read_dir(layout.flame_graphs())
            .map(|entries| {
                entries
                    .filter_map(|e| {
                        let e = e.ok()?;
                        let modified = e.metadata().ok()?.modified().ok()?;
                        Some((modified, e.path()))
                    })
                    .filter(|(_, p)| p.extension().is_some_and(|x| x == "svg"))
                    .collect()
            })
            .unwrap_or_default();
    flame_graphs.sort_by(|a, b| b.cmp(a));
    flame_graphs.truncate(MAX_FLAME_GRAPHS);
    let index = CampaignIndex {
        campaign,
        days,
        roadmap_href: existing(layout.roadmap()),
        analysis_href: existing(layout.bottleneck_analysis()),
        flame_graphs: flame_graphs
            .iter()
            .map(|(_, p)| {
                let label = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (label, layout.index_href(p))
            })
            .collect(),
    };
    write_artifact(layout, &IndexPage, &index)
}
