//! The JSONL history: one line per finished night, a file per machine and
//! day. It came before the results store and is still what an experiment's
//! runs compare with, what a night falls back on when its store cannot be
//! read, and what `campaign history --import` moves into the store. This
//! type is its only reader and writer, and the only code that knows where
//! its files are: a night appended by `campaign run` is found by every
//! reader because they all ask here.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::analysis::HistoryEntry;
use crate::output::{OutputError, OutputLayout};

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

    /// The folder of every machine's histories in a results folder.
    pub fn root(layout: &OutputLayout) -> PathBuf {
        layout.root.join("history")
    }

    /// One machine's history of a campaign's day:
    /// `<out>/history/<machine key>/<campaign>/day_<N>.jsonl`.
    pub fn of(layout: &OutputLayout, machine_key: &str, day: u32) -> Self {
        Self::at(
            Self::root(layout)
                .join(machine_key)
                .join(campaign_folder(layout))
                .join(day_file(day)),
        )
    }

    /// The histories of a campaign's day of every machine that has a
    /// folder in the results folder, by machine key (sorted); a file may
    /// not exist yet ([`Self::read`] then finds no nights).
    pub fn of_every_machine(layout: &OutputLayout, day: u32) -> Vec<(String, Self)> {
        let campaign = campaign_folder(layout);
        let mut files: Vec<(String, Self)> = std::fs::read_dir(Self::root(layout))
            .into_iter()
            .flatten()
            .flatten()
            .map(|dir| {
                let key = dir.file_name().to_string_lossy().into_owned();
                let file = Self::at(dir.path().join(&campaign).join(day_file(day)));
                (key, file)
            })
            .collect();
        files.sort_by(|a, b| (&a.0, &a.1.path).cmp(&(&b.0, &b.1.path)));
        files
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
        // One write call per night: O_APPEND makes a single write land whole
        // at the end, but `writeln!` on a `File` is two calls (the line, then
        // the newline), and two runs appending at once interleaved them into
        // one unreadable line.
        let mut line = line;
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(write_err)
    }
}

/// The campaign's folder name, which its histories share.
fn campaign_folder(layout: &OutputLayout) -> std::ffi::OsString {
    layout
        .campaign_dir
        .file_name()
        .map(|n| n.to_owned())
        .unwrap_or_default()
}

fn day_file(day: u32) -> String {
    format!("day_{day}.jsonl")
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

    /// Runs of a night may finish at the same moment (a fleet, a retry
    /// beside a late run): every night appended must come back whole. With
    /// the line and its newline written by two calls, writers interleaved
    /// within a few hundred appends here.
    #[test]
    fn nights_appended_at_once_by_many_writers_each_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let history = HistoryFile::at(dir.path().join("day_1.jsonl"));
        let (writers, nights_each) = (8, 150);
        std::thread::scope(|scope| {
            for w in 0..writers {
                let history = &history;
                scope.spawn(move || {
                    for n in 0..nights_each {
                        history.append(&night(&format!("w{w}-n{n}.json"))).unwrap();
                    }
                });
            }
        });
        let read = history.read().unwrap();
        assert_eq!(read.len(), writers * nights_each);
        let mut paths: Vec<String> = read.iter().map(|e| e.report.clone()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(
            paths.len(),
            writers * nights_each,
            "every night exactly once"
        );
    }

    /// `campaign run` appends where `campaign history` and a night's
    /// verdicts read: the path is made in one place.
    #[test]
    fn a_night_appended_for_a_machine_is_found_among_every_machines_histories() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OutputLayout::create(dir.path(), "gate").unwrap();
        let mine = HistoryFile::of(&layout, "box-cpu", 3);
        assert_eq!(
            mine.path(),
            dir.path().join("history/box-cpu/gate/day_3.jsonl")
        );
        assert!(HistoryFile::of_every_machine(&layout, 3).is_empty());
        mine.append(&night("a.json")).unwrap();
        HistoryFile::of(&layout, "another-cpu", 3)
            .append(&night("b.json"))
            .unwrap();
        let every = HistoryFile::of_every_machine(&layout, 3);
        let keys: Vec<&str> = every.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["another-cpu", "box-cpu"]);
        assert_eq!(every[1].1, mine);
        assert_eq!(json(&every[1].1.read().unwrap()), json(&[night("a.json")]));
    }
}
