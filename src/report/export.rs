//! Every file format behind one trait, and one writer that decides for all
//! of them where a file goes, that it is written atomically (its folder
//! created), and what a failure means.
//!
//! A day's report comes first and is required: without it nothing of the
//! night is kept, so its failure is the run's error. The files written
//! from it afterwards (CSV, JSONL, JUnit, the Markdown summary, the HTML
//! page) are each attempted even when another fails; their failures come
//! back as warnings, and the run's exit status says the output is
//! incomplete.

use std::path::{Path, PathBuf};

use super::index::{CampaignIndex, IndexedDay};
use crate::analysis::{BottleneckAnalysis, Comparison, DayCurves};
use crate::model::DailyReport;
use crate::output::{OutputError, OutputLayout, write_atomically};

/// A file format: where its file goes and its bytes.
pub trait Exporter<Input: ?Sized> {
    /// What the file is, for messages (`JUnit XML`).
    fn format(&self) -> &'static str;
    /// Where it is written in the results folder.
    fn path(&self, layout: &OutputLayout, input: &Input) -> PathBuf;
    fn render(&self, input: &Input) -> Result<Vec<u8>, OutputError>;
}

/// What a day's writers format: the report, what the analysis drew from
/// it, and, when the night was compared, the comparison. The writers
/// compute none of it.
#[derive(Debug, Clone, Copy)]
pub struct DayArtifacts<'a> {
    pub report: &'a DailyReport,
    pub comparison: Option<&'a Comparison>,
    /// The report's [`crate::analysis::day_curves`].
    pub curves: &'a DayCurves,
}

/// What the roadmap is written from.
#[derive(Debug, Clone, Copy)]
pub struct RoadmapInput<'a> {
    pub analysis: &'a BottleneckAnalysis,
    /// The analysis file, named in the roadmap.
    pub source: &'a Path,
}

/// Renders and writes one file atomically, creating its folder.
pub fn write_artifact<Input: ?Sized>(
    layout: &OutputLayout,
    exporter: &dyn Exporter<Input>,
    input: &Input,
) -> Result<PathBuf, OutputError> {
    let path = exporter.path(layout, input);
    write_rendered(&path, &exporter.render(input)?)?;
    Ok(path)
}

/// Writes bytes rendered beforehand, as [`write_artifact`] writes what it
/// renders: for bytes that are also used elsewhere (the day report's,
/// which stdout and a baseline copy), so they are rendered only once.
///
/// The one way a file of the tool reaches the disk: its folder created,
/// the file written atomically, and a failure an [`OutputError`] that
/// names the file (or the folder that could not be made).
pub fn write_rendered(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| OutputError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    write_atomically(path, bytes)
}

/// Every JSON file of the tool but the day report (comparison, baseline
/// history, analysis, experiments, calibration, metrics, fleet and bisect
/// reports): pretty, and without the final newline the day report has,
/// because these files have always been written so and their readers
/// (diffs, checksums, other tools) see the same bytes as before.
pub struct JsonFile;

impl JsonFile {
    /// The file's text. Commands that also print the value (`--json`)
    /// print this same text, so stdout cannot differ from the file.
    pub fn text<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, OutputError> {
        Ok(serde_json::to_string_pretty(value)?)
    }

    /// Renders `value` and writes it as [`write_rendered`] does.
    pub fn write<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), OutputError> {
        write_rendered(path, Self::text(value)?.as_bytes())
    }
}

/// The files written from a day once it is measured, in this order.
pub fn day_exporters() -> [&'static dyn for<'a> Exporter<DayArtifacts<'a>>; 5] {
    [
        &ResultsCsv,
        &ResultsJsonl,
        &JunitXml,
        &SummaryMarkdown,
        &HtmlPage,
    ]
}

/// What writing the day's files did.
#[derive(Debug, Default)]
pub struct Written {
    /// (format, path) of each file written.
    pub files: Vec<(&'static str, PathBuf)>,
    /// One line per file that could not be written.
    pub failures: Vec<String>,
}

/// Writes every file of [`day_exporters`]; a failure of one does not stop
/// the others.
pub fn write_day_artifacts(layout: &OutputLayout, day: DayArtifacts<'_>) -> Written {
    let mut written = Written::default();
    for exporter in day_exporters() {
        match write_artifact(layout, exporter, &day) {
            Ok(path) => written.files.push((exporter.format(), path)),
            Err(e) => written
                .failures
                .push(format!("{} not written: {e}", exporter.format())),
        }
    }
    written
}

/// The campaign's front page, `index.html` beside the day folders.
pub struct IndexPage;

impl Exporter<CampaignIndex<'_>> for IndexPage {
    fn format(&self) -> &'static str {
        "campaign index"
    }
    fn path(&self, layout: &OutputLayout, _: &CampaignIndex<'_>) -> PathBuf {
        layout.index_page()
    }
    fn render(&self, index: &CampaignIndex<'_>) -> Result<Vec<u8>, OutputError> {
        Ok(super::index::render_index(index).into_bytes())
    }
}

/// The newest flame graphs listed; the folder keeps them all.
const MAX_FLAME_GRAPHS: usize = 50;

/// The campaign's `index.html`, rewritten after every day, roadmap and
/// page: the newest report of each day found on disk, the roadmap and the
/// flame graphs. It gathers links to the files that exist and computes
/// nothing; a report that cannot be read is left off it.
pub fn write_campaign_index(layout: &OutputLayout, campaign: &str) -> Result<PathBuf, OutputError> {
    let mut notes = Vec::new();
    let days = layout.reported_days();
    // One pass over the folder; a day between them without a report only
    // adds a note, which the index does not show.
    let reports = match (days.first(), days.last()) {
        (Some(first), Some(last)) => layout.latest_reports(*first..=*last, &mut notes),
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

/// The canonical day report: pretty JSON, schema version 1.
pub struct JsonReport;

impl JsonReport {
    /// The report's file as text, a final newline included. A run renders
    /// it once and prints and saves these same bytes, so the report on
    /// stdout and a baseline cannot differ from the file.
    pub fn text(report: &DailyReport) -> Result<String, OutputError> {
        let mut text = serde_json::to_string_pretty(report)?;
        text.push('\n');
        Ok(text)
    }
}

impl Exporter<DailyReport> for JsonReport {
    fn format(&self) -> &'static str {
        "JSON report"
    }
    fn path(&self, layout: &OutputLayout, report: &DailyReport) -> PathBuf {
        layout.day_report_path(report, "json")
    }
    fn render(&self, report: &DailyReport) -> Result<Vec<u8>, OutputError> {
        Self::text(report).map(String::into_bytes)
    }
}

/// `results.csv`: one row per result.
pub struct ResultsCsv;

impl Exporter<DayArtifacts<'_>> for ResultsCsv {
    fn format(&self) -> &'static str {
        "results.csv"
    }
    fn path(&self, layout: &OutputLayout, _day: &DayArtifacts<'_>) -> PathBuf {
        layout.ci_file("results.csv")
    }
    fn render(&self, day: &DayArtifacts<'_>) -> Result<Vec<u8>, OutputError> {
        Ok(super::ci::render_csv(day.report).into_bytes())
    }
}

/// `results.jsonl`: one line per result. While the day runs, the same lines
/// are streamed into a `.partial` file for CI to tail.
pub struct ResultsJsonl;

impl Exporter<DayArtifacts<'_>> for ResultsJsonl {
    fn format(&self) -> &'static str {
        "results.jsonl"
    }
    fn path(&self, layout: &OutputLayout, _day: &DayArtifacts<'_>) -> PathBuf {
        layout.ci_file("results.jsonl")
    }
    fn render(&self, day: &DayArtifacts<'_>) -> Result<Vec<u8>, OutputError> {
        let mut bytes = Vec::new();
        for result in &day.report.results {
            bytes.extend(serde_json::to_vec(result)?);
            bytes.push(b'\n');
        }
        Ok(bytes)
    }
}

/// `junit.xml`: regressions and missed targets as failures.
pub struct JunitXml;

impl Exporter<DayArtifacts<'_>> for JunitXml {
    fn format(&self) -> &'static str {
        "junit.xml"
    }
    fn path(&self, layout: &OutputLayout, _day: &DayArtifacts<'_>) -> PathBuf {
        layout.ci_file("junit.xml")
    }
    fn render(&self, day: &DayArtifacts<'_>) -> Result<Vec<u8>, OutputError> {
        Ok(super::ci::render_junit(day.report, day.comparison).into_bytes())
    }
}

/// `summary.md`, for a CI step summary.
pub struct SummaryMarkdown;

impl Exporter<DayArtifacts<'_>> for SummaryMarkdown {
    fn format(&self) -> &'static str {
        "summary.md"
    }
    fn path(&self, layout: &OutputLayout, _day: &DayArtifacts<'_>) -> PathBuf {
        layout.ci_file("summary.md")
    }
    fn render(&self, day: &DayArtifacts<'_>) -> Result<Vec<u8>, OutputError> {
        Ok(super::ci::render_summary_markdown(day.report, day.comparison).into_bytes())
    }
}

/// `html/day_N.html`.
pub struct HtmlPage;

impl Exporter<DayArtifacts<'_>> for HtmlPage {
    fn format(&self) -> &'static str {
        "HTML page"
    }
    fn path(&self, layout: &OutputLayout, day: &DayArtifacts<'_>) -> PathBuf {
        layout.html_report(day.report.day)
    }
    fn render(&self, day: &DayArtifacts<'_>) -> Result<Vec<u8>, OutputError> {
        Ok(super::html::render_html(
            day.report,
            day.comparison,
            day.curves,
            &OutputLayout::flame_graph_href,
        )
        .into_bytes())
    }
}

/// `OPTIMIZATION_ROADMAP.md`.
pub struct RoadmapMarkdown;

impl Exporter<RoadmapInput<'_>> for RoadmapMarkdown {
    fn format(&self) -> &'static str {
        "roadmap"
    }
    fn path(&self, layout: &OutputLayout, _input: &RoadmapInput<'_>) -> PathBuf {
        layout.roadmap()
    }
    fn render(&self, input: &RoadmapInput<'_>) -> Result<Vec<u8>, OutputError> {
        Ok(super::roadmap::render_roadmap(input.analysis, input.source).into_bytes())
    }
}
