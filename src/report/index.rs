//! The campaign's front page: every day measured (its newest run, what it
//! found in one sentence, links to its page and report), the roadmap, and
//! the flame graphs. Links are relative, so the folder can be copied or
//! served as it is.

use std::fmt::Write;

use super::escape_markup;
use super::wording::day_counts_sentence;
use crate::model::DailyReport;

/// One day on the index: its newest report and where its files are,
/// relative to the index page.
#[derive(Debug, Clone)]
pub struct IndexedDay<'a> {
    pub report: &'a DailyReport,
    pub report_href: String,
    pub html_href: Option<String>,
}

/// What the index page is written from.
#[derive(Debug, Clone)]
pub struct CampaignIndex<'a> {
    pub campaign: &'a str,
    /// In day order.
    pub days: Vec<IndexedDay<'a>>,
    pub roadmap_href: Option<String>,
    pub analysis_href: Option<String>,
    /// (label, href), newest first; at most a few dozen.
    pub flame_graphs: Vec<(String, String)>,
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}h1{font-size:22px}h2{font-size:18px;margin-top:28px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}.meta{color:#555}.failed{color:#c62828;font-weight:bold}";

pub fn render_index(index: &CampaignIndex<'_>) -> String {
    let title = format!("{} — campaign results", index.campaign);
    let mut out = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title><style>{STYLE}</style></head><body><h1>{0}</h1>",
        escape_markup(&title)
    );
    out.push_str("<h2>Days</h2>");
    if index.days.is_empty() {
        out.push_str("<p>No day has been run yet: <code>campaign run --day 1</code>.</p>");
    } else {
        out.push_str("<table><tr><th>day</th><th>title</th><th>newest run</th><th>what it found</th><th>files</th></tr>");
        for d in &index.days {
            let r = d.report;
            let class = if r.summary.failed > 0
                || r.summary.failed_runs > 0
                || r.summary.targets_missed > 0
            {
                " class=\"failed\""
            } else {
                ""
            };
            let page = d.html_href.as_ref().map_or(String::new(), |href| {
                format!("<a href=\"{}\">page</a> · ", escape_markup(href))
            });
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}{}{}</td><td{class}>{}.</td><td>{page}<a href=\"{}\">JSON</a></td></tr>",
                r.day,
                escape_markup(&r.day_title),
                r.started_at.format("%Y-%m-%d %H:%M UTC"),
                if r.quick { " · --quick" } else { "" },
                if r.interrupted { " · interrupted" } else { "" },
                escape_markup(&day_counts_sentence(&r.summary)),
                escape_markup(&d.report_href)
            );
        }
        out.push_str("</table>");
    }
    out.push_str("<h2>Roadmap and analysis</h2><ul>");
    match &index.roadmap_href {
        Some(href) => {
            let _ = write!(
                out,
                "<li><a href=\"{}\">Optimization roadmap</a> (Markdown)</li>",
                escape_markup(href)
            );
        }
        None => out.push_str("<li>No roadmap yet: <code>campaign roadmap</code> writes it after <code>campaign analyze</code>.</li>"),
    }
    if let Some(href) = &index.analysis_href {
        let _ = write!(
            out,
            "<li><a href=\"{}\">Bottleneck analysis</a> (JSON)</li>",
            escape_markup(href)
        );
    }
    out.push_str("</ul><h2>Flame graphs</h2>");
    if index.flame_graphs.is_empty() {
        out.push_str("<p class=\"meta\">None yet: a benchmark with <code>profile = true</code> draws one.</p>");
    } else {
        out.push_str("<ul>");
        for (label, href) in &index.flame_graphs {
            let _ = write!(
                out,
                "<li><a href=\"{}\">{}</a></li>",
                escape_markup(href),
                escape_markup(label)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</body></html>\n");
    out
}
