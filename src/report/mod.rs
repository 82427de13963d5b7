//! Writers: they format reports and analyses and never compute. Every file
//! format implements [`Exporter`]; [`write_artifact`] and
//! [`write_day_artifacts`] write them, as hyperfine's export manager does.

mod bisect;
mod ci;
mod console;
mod dashboard;
mod export;
mod fleet;
mod history;
mod html;
mod index;
mod markdown;
mod roadmap;
mod svg;
mod wording;

pub use bisect::{WrittenBisect, render_bisect, step_verdict, write_bisect};
pub use ci::render_comparison_table;
pub use console::{
    render_bottleneck_table, render_calibration, render_experiments, render_summary_table,
};
pub use dashboard::{
    DashboardView, SitePage, dashboard_day_path, dashboard_night_path, dashboard_report_path,
    render_dashboard, render_night_report, report_flame_graphs,
};
pub use export::{
    DayArtifacts, Exporter, HtmlPage, IndexPage, JsonFile, JsonReport, JunitXml, ResultsCsv,
    ResultsJsonl, RoadmapInput, RoadmapMarkdown, SummaryMarkdown, Written, day_exporters,
    write_artifact, write_campaign_index, write_day_artifacts, write_rendered,
};
pub use fleet::{
    FleetFiles, FleetValue, ShardStatusLine, github_workflow, kubernetes_job, render_fleet_report,
    render_fleet_status,
};
pub use history::{render_history, render_history_csv};
pub use index::{CampaignIndex, IndexedDay};
pub use markdown::{Align, MarkdownTable};

/// Escapes text for HTML and XML (text and attribute values). Five
/// characters; not worth a dependency.
pub(crate) fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}
