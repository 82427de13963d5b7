//! Writers: they format a [`DailyReport`] and never compute statistics.
//! One [`Exporter`] per format, as in hyperfine.

mod ci;
mod console;
mod html;
mod json;
mod layout;
mod model;
mod roadmap;

pub use ci::{render_comparison_table, render_csv, render_junit, render_summary_markdown};
pub use console::{render_bottleneck_table, render_calibration, render_summary_table};
pub use html::render_html;
pub use json::JsonExporter;
pub use layout::{OutputError, OutputLayout, write_atomically};
pub use model::*;
pub use roadmap::render_roadmap;

/// Escapes text for HTML and XML (text and attribute values). Five
/// characters; not worth a dependency.
pub(crate) fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A format a day report can be written in.
pub trait Exporter {
    /// File extension without the dot.
    fn extension(&self) -> &'static str;
    fn serialize(&self, report: &DailyReport) -> Result<Vec<u8>, OutputError>;
}
