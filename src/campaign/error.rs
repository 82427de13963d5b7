use std::fmt;
use std::path::PathBuf;

/// One problem in a campaign file, located by line and column.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    /// Where in the campaign, e.g. `day 1, benchmark "ttft", field \`kind\``.
    pub field: String,
    pub message: String,
    /// What to write instead.
    pub help: Option<String>,
}

/// A campaign that cannot be used. Displayed as one `file:line:col` line
/// per problem, so editors and CI logs can jump to it.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error(
        "cannot read campaign file {path}: {source}\n  help: pass an existing file with --campaign FILE"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(path, diagnostics))]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("{path} has no day {day}; days in this campaign: {available}")]
    NoSuchDay {
        path: PathBuf,
        day: u32,
        available: String,
    },
    #[error(
        "day {day} ({title}) of {path} lists no benchmarks yet; add [[days.benchmarks]] to it or run another day"
    )]
    EmptyDay {
        path: PathBuf,
        day: u32,
        title: String,
    },
    #[error(
        "{path}:{line}: store, field `url_env`: the variable {var} is not set (or empty)\n  help: export {var}=postgres://user@host:port/db before the run, or pass --store"
    )]
    StoreVariable {
        path: PathBuf,
        line: usize,
        var: String,
    },
    #[error("{path}: {source}")]
    Toggle {
        path: PathBuf,
        #[source]
        source: super::toggle::ToggleError,
    },
    /// A problem of the campaign as an experiment toggled it: the lines
    /// are those of the toggled text, which keeps every untouched line.
    #[error("{inner}\n  (in the campaign as toggled by {toggle})")]
    Toggled {
        toggle: String,
        inner: Box<CampaignError>,
    },
    #[error(
        "--only {names}: no benchmark of day {day} in {path} has that name; day {day} has: {available}"
    )]
    NoSuchBenchmark {
        path: PathBuf,
        day: u32,
        names: String,
        available: String,
    },
}

fn render(path: &std::path::Path, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (i, d) in diagnostics.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{}:{}:{}: {}: {}",
            path.display(),
            d.line,
            d.column,
            d.field,
            d.message
        ));
        if let Some(help) = &d.help {
            out.push_str(&format!("\n  help: {help}"));
        }
    }
    out
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.line, self.column, self.field, self.message
        )
    }
}
