//! The JSONL history: one line per finished night, a file per machine and
//! day. It came before the results store and is still what an experiment's
//! runs compare with, what a night falls back on when its store cannot be
//! read, and what `campaign history --import` moves into the store. This
//! type is its only reader and writer.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::analysis::HistoryEntry;
use crate::output::OutputError;

/// A history that cannot be read: the file, and why.
#[derive(Debug, thiserror::Error)]
pub enum HistoryFileError {
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a history line: {source}")]
    NotAHistoryLine {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// One machine's history of one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryFile {
    path: PathBuf,
}

impl HistoryFile {
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The nights it records, in file order; none when it does not exist
    /// yet.
    pub fn read(&self) -> Result<Vec<HistoryEntry>, HistoryFileError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(HistoryFileError::Unreadable {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|source| HistoryFileError::NotAHistoryLine {
                    path: self.path.clone(),
                    line: i + 1,
                    source,
                })
            })
            .collect()
    }

    /// Adds a night at the end (the file and its folder are created when
    /// missing); earlier lines are never rewritten.
    pub fn append(&self, entry: &HistoryEntry) -> Result<(), OutputError> {
        let write_err = |source| OutputError::Write {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let line = serde_json::to_string(entry)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(write_err)?;
        writeln!(file, "{line}").map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DailyReport;

    fn night(report_path: &str) -> HistoryEntry {
        let report: DailyReport =
            serde_json::from_str(include_str!("../../tests/fixtures/day_report.json")).unwrap();
        HistoryEntry::from_report(&report, report_path)
    }

    fn json(entries: &[HistoryEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect()
    }

    #[test]
    fn nights_appended_are_read_back_in_order_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let history = HistoryFile::at(dir.path().join("machine/day_1.jsonl"));
        assert!(history.read().unwrap().is_empty(), "no file yet: no nights");
        let nights = [night("a.json"), night("b.json")];
        for n in &nights {
            history.append(n).unwrap();
        }
        assert_eq!(json(&history.read().unwrap()), json(&nights));

        let mut text = std::fs::read_to_string(history.path()).unwrap();
        text.push_str("\n{\"not\": \"a night\"}\n");
        std::fs::write(history.path(), text).unwrap();
        let error = history.read().unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "{}:4: not a history line",
                history.path().display()
            )),
            "{error}"
        );
    }
}
