//! Where a campaign's results go: the folder layout, file names that are
//! always valid and unique, and atomic writes. Used while measuring (raw
//! profiles, per-result files) and by the writers.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::model::{BenchmarkResult, DailyReport};

/// Problems with the results folder.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(
        "results folder {path} is not usable: {source}\n  help: pass a writable folder with --out DIR (or set output_dir in the campaign)"
    )]
    Unwritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the report: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The folders of one campaign's results:
/// `<out>/<campaign>/{daily_reports,metrics_json,raw_profiles,flame_graphs}`.
#[derive(Debug, Clone)]
pub struct OutputLayout {
    pub root: PathBuf,
    pub campaign_dir: PathBuf,
}

impl OutputLayout {
    /// Creates the folders and proves they are writable before anything
    /// runs, so a bad `--out` fails in a second, not after an hour. The
    /// campaign's folder is named after it (letters, digits, `-_.=`; cut
    /// with a hash when long).
    pub fn create(out: &Path, campaign_name: &str) -> Result<Self, OutputError> {
        let stem = safe_file_stem(campaign_name.trim(), MAX_STEM);
        let stem = if stem.is_empty() {
            "campaign".to_string()
        } else {
            stem
        };
        let layout = Self {
            root: out.to_path_buf(),
            campaign_dir: out.join(stem),
        };
        for dir in [
            layout.daily_reports(),
            layout.metrics_json(),
            layout.raw_profiles(),
            layout.flame_graphs(),
            layout.model_cache(),
            layout.scratch(),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| OutputError::Unwritable {
                path: dir.clone(),
                source,
            })?;
        }
        let probe_dir = layout.daily_reports();
        tempfile::NamedTempFile::new_in(&probe_dir)
            .and_then(|mut f| f.write_all(b"probe"))
            .map_err(|source| OutputError::Unwritable {
                path: probe_dir,
                source,
            })?;
        Ok(layout)
    }

    pub fn daily_reports(&self) -> PathBuf {
        self.campaign_dir.join("daily_reports")
    }

    pub fn metrics_json(&self) -> PathBuf {
        self.campaign_dir.join("metrics_json")
    }

    pub fn raw_profiles(&self) -> PathBuf {
        self.campaign_dir.join("raw_profiles")
    }

    pub fn flame_graphs(&self) -> PathBuf {
        self.campaign_dir.join("flame_graphs")
    }

    /// This machine's measured limits (`campaign calibrate`).
    pub fn calibration(&self) -> PathBuf {
        self.root.join("calibration.json")
    }

    /// The self-contained HTML page of a day.
    pub fn html_report(&self, day: u32) -> PathBuf {
        self.campaign_dir
            .join("html")
            .join(format!("day_{day}.html"))
    }

    /// The campaign's front page, linking every day, the roadmap and the
    /// flame graphs.
    pub fn index_page(&self) -> PathBuf {
        self.campaign_dir.join("index.html")
    }

    /// A path inside the campaign's folder as a link from the index page.
    pub fn index_href(&self, path: &Path) -> String {
        path.strip_prefix(&self.campaign_dir)
            .unwrap_or(path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// A flame graph's link as seen from the HTML pages' folder.
    pub fn flame_graph_href(path: &str) -> String {
        let name = Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("../flame_graphs/{name}")
    }

    /// A saved baseline's report of one day.
    pub fn baseline(&self, name: &str, day: u32) -> PathBuf {
        self.campaign_dir
            .join("baselines")
            .join(name)
            .join(format!("day_{day}.json"))
    }

    /// CI artifacts of the latest run: junit.xml, summary.md, results.csv,
    /// results.jsonl, comparison.json.
    pub fn ci_file(&self, name: &str) -> PathBuf {
        self.campaign_dir.join(name)
    }

    pub fn bottleneck_analysis(&self) -> PathBuf {
        self.campaign_dir.join("bottleneck_analysis.json")
    }

    /// The latest experiment of each remedy (`campaign experiment`).
    pub fn experiments(&self) -> PathBuf {
        self.campaign_dir.join("experiments.json")
    }

    /// The request log of `campaign serve`.
    pub fn serve_requests(&self) -> PathBuf {
        self.campaign_dir.join("serve_requests.jsonl")
    }

    pub fn roadmap(&self) -> PathBuf {
        self.campaign_dir.join("OPTIMIZATION_ROADMAP.md")
    }

    /// Working files of benchmarks (cold tiers, disk test files), removed
    /// by the benchmark that made them.
    pub fn scratch(&self) -> PathBuf {
        self.campaign_dir.join("scratch")
    }

    /// One bisect's report, differential flame graph and profiles.
    pub fn bisect(&self, run_id: &str) -> PathBuf {
        self.campaign_dir.join("bisect").join(run_id)
    }

    /// Builds of commits (`campaign bisect`), shared by every campaign
    /// under the same root.
    pub fn build_cache(&self) -> PathBuf {
        self.root.join("build_cache")
    }

    /// Synthetic models are shared by every campaign under the same root.
    pub fn model_cache(&self) -> PathBuf {
        self.root.join("model_cache")
    }

    /// A run's id: its start in UTC to the millisecond, then the process
    /// id, so that file names sort by time and two runs started in the
    /// same second into one folder never share a name.
    pub fn run_id(started_at: &DateTime<Utc>) -> String {
        format!(
            "{}-{}",
            started_at.format("%Y%m%dT%H%M%S%.3fZ"),
            std::process::id()
        )
    }

    /// The day report's file, for a format's extension (`json`).
    pub fn day_report_path(&self, report: &DailyReport, extension: &str) -> PathBuf {
        self.daily_reports().join(format!(
            "day_{}_report_{}.{extension}",
            report.day, report.run_id
        ))
    }

    /// The newest report of each day in `days`, oldest day first; a day
    /// without a readable report adds a note instead.
    pub fn latest_reports(
        &self,
        days: std::ops::RangeInclusive<u32>,
        notes: &mut Vec<String>,
    ) -> Vec<(PathBuf, DailyReport)> {
        let mut found = Vec::new();
        let entries: Vec<PathBuf> = std::fs::read_dir(self.daily_reports())
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        for day in days {
            let prefix = format!("day_{day}_report_");
            let mut candidates: Vec<&PathBuf> = entries
                .iter()
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".json"))
                })
                .collect();
            // File names carry a UTC timestamp: the last in order is the newest.
            candidates.sort();
            let Some(path) = candidates.last() else {
                notes.push(format!(
                    "day {day}: no report in {}",
                    self.daily_reports().display()
                ));
                continue;
            };
            match std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<DailyReport>(&b).map_err(|e| e.to_string()))
            {
                Ok(report) => found.push(((*path).clone(), report)),
                Err(e) => notes.push(format!("day {day}: {} unreadable: {e}", path.display())),
            }
        }
        found
    }

    /// The days that have at least one report in the results folder.
    pub fn reported_days(&self) -> Vec<u32> {
        let mut days: Vec<u32> = std::fs::read_dir(self.daily_reports())
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

    /// One file per benchmark result, written as soon as the result exists.
    pub fn metrics_path(&self, day: u32, run_id: &str, result: &BenchmarkResult) -> PathBuf {
        // `bench[prompt_len=128]` becomes `bench.prompt_len=128`.
        let name = result.case_id.replace('[', ".").replace(']', "");
        self.metrics_json().join(format!(
            "day_{day}_{run_id}_{}.json",
            safe_file_stem(&name, MAX_STEM)
        ))
    }
}

/// The longest name a case, benchmark or campaign contributes to a file
/// name: with the day and run id the whole stays far below the 255 bytes
/// file systems allow.
pub const MAX_STEM: usize = 96;

/// `text` as part of a file name: letters, digits and `-_.=` kept, anything
/// else `_`; longer than `max`, cut and followed by a hash of the whole
/// text, so that two long labels never share a name.
pub fn safe_file_stem(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.=".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    // A name of dots alone would be `.` or `..`.
    let clean = if clean.chars().all(|c| c == '.') {
        format!("_{clean}")
    } else {
        clean
    };
    if clean.len() <= max {
        return clean;
    }
    let hash = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
    format!("{}-{hash:016x}", &clean[..max.saturating_sub(17)])
}

/// Writes through a temporary file in the same folder and renames it into
/// place: readers never see a half-written report, even after a crash.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let write_err = |source| OutputError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
    file.write_all(bytes).map_err(write_err)?;
    file.as_file().sync_all().map_err(write_err)?;
    file.persist(path).map_err(|e| write_err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_short_valid_and_unique() {
        assert_eq!(
            safe_file_stem("bench.prompt_len=128", 96),
            "bench.prompt_len=128"
        );
        assert_eq!(safe_file_stem("a/b c:é", 96), "a_b_c__");
        assert_eq!(safe_file_stem("..", 96), "_..");
        let long = format!("open_loop_rate={}", "1".repeat(300));
        let other = format!("open_loop_rate={}2", "1".repeat(299));
        let (a, b) = (safe_file_stem(&long, 96), safe_file_stem(&other, 96));
        assert_eq!(a.len(), 96);
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.=".contains(c))
        );
    }
}
