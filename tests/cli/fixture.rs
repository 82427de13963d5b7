//! The shared fixture: a temporary folder with a campaign, the binary to
//! run on it, the tiny model and the small days the tests build on, and
//! helpers that read what a run wrote.

#![allow(dead_code)]

pub use assert_cmd::cargo::cargo_bin_cmd;
pub use predicates::prelude::*;
pub use serde_json::Value;
pub use std::fs;
pub use std::io::{BufRead, BufReader};
pub use std::path::{Path, PathBuf};
pub use std::process::{Command, Stdio};
pub use tempfile::TempDir;

/// A Llama small enough that a forward pass takes milliseconds.
pub const TINY_MODEL: &str = r#"
[models.default.synthetic]
seed = 7
vocab_size = 256
hidden_size = 64
intermediate_size = 128
num_hidden_layers = 2
num_attention_heads = 2
num_key_value_heads = 1
max_position_embeddings = 1024
"#;

pub struct Fixture {
    dir: TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Self {
            dir: TempDir::new().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a campaign with the tiny model and the given days.
    pub fn campaign(&self, days: &str) -> PathBuf {
        self.campaign_raw(&format!(
            "name = \"t\"\n[settings]\nthreads = 1\n{TINY_MODEL}\n{days}"
        ))
    }

    pub fn campaign_raw(&self, text: &str) -> PathBuf {
        let path = self.path("campaign.toml");
        fs::write(&path, text).unwrap();
        path
    }

    pub fn out(&self) -> PathBuf {
        self.path("out")
    }

    pub fn run(&self, campaign: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
        cargo_bin_cmd!("campaign")
            .args(["run", "--day", "1", "--campaign"])
            .arg(campaign)
            .arg("--out")
            .arg(self.out())
            .args(extra)
            .assert()
    }

    pub fn report(&self) -> Value {
        self.report_of_day(1)
    }

    /// The newest report of a day.
    pub fn report_of_day(&self, day: u32) -> Value {
        let dir = self.out().join("t").join("daily_reports");
        let prefix = format!("day_{day}_report_");
        let mut reports: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "json")
                    && p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(&prefix)
            })
            .collect();
        reports.sort();
        let entry = reports
            .pop()
            .unwrap_or_else(|| panic!("no report of day {day} in {}", dir.display()));
        serde_json::from_slice(&fs::read(entry).unwrap()).unwrap()
    }
}

pub const TTFT_DAY: &str = r#"
[[days]]
number = 1
title = "baselines"
[[days.benchmarks]]
name = "ttft"
kind = "first_token_latency"
warmup = 1
iterations = 4
targets = ["ttft_ms.p50 < 60000"]
[days.benchmarks.params]
prompt_lengths = [8, 32]
"#;

pub const DECODE_BENCH: &str = r#"
[[days.benchmarks]]
name = "decode"
kind = "token_generation"
warmup = 1
iterations = 3
targets = ["decode_tokens_per_s.mean > 0.001"]
[days.benchmarks.params]
prompt_lengths = [16]
output_tokens = 6
"#;

pub fn result<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["benchmark_name"] == name)
        .unwrap_or_else(|| panic!("no result {name} in {report:#}"))
}

/// Starts a day, sends SIGINT `after_ms` after the first timed iterations
/// began, and checks that the run exits 130.
pub fn interrupt_once_timing(f: &Fixture, campaign: &Path, after_ms: u64) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("campaign"))
        .args(["run", "--day", "1", "--campaign"])
        .arg(campaign)
        .arg("--out")
        .arg(f.out())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("timed iterations") {
        line.clear();
    }
    std::thread::sleep(std::time::Duration::from_millis(after_ms));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130), "stderr: {rest}");
}

pub fn expect_usage_error(f: &Fixture, campaign: &Path, needles: &[&str]) {
    let assert = cargo_bin_cmd!("campaign")
        .arg("validate")
        .arg(campaign)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
    }
    // `run` refuses the same file before measuring anything.
    f.run(campaign, &[]).code(2);
}

/// `campaign.toml:LINE:COL` of the first occurrence of `needle`.
pub fn position_of(path: &Path, needle: &str) -> String {
    let text = fs::read_to_string(path).unwrap();
    let (line, content) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(needle))
        .unwrap();
    format!(
        "campaign.toml:{}:{}:",
        line + 1,
        content.find(needle).unwrap() + 1
    )
}

pub fn day_with(benchmarks: &str) -> String {
    format!("[[days]]\nnumber = 1\ntitle = \"macro\"\n{benchmarks}")
}

pub const ENDURANCE_PAIR: &str = r#"
[[days.benchmarks]]
name = "leaky"
kind = "endurance"
warmup = 1
iterations = 15
[days.benchmarks.params]
prompt_tokens = 8
output_tokens = 4
sample_interval_ms = 100
leak_threshold_mib_per_min = 10.0
leak_min_growth_mib = 8.0
planted_leak_kib_per_sample = 4096

[[days.benchmarks]]
name = "steady"
kind = "endurance"
warmup = 1
iterations = 15
[days.benchmarks.params]
prompt_tokens = 8
output_tokens = 4
sample_interval_ms = 100
leak_threshold_mib_per_min = 10.0
leak_min_growth_mib = 8.0
"#;

/// The end-to-end workflow and memory growth with its KV probe: every
/// kind whose conclusion has a chart of its own besides endurance.
pub const WORKFLOW_AND_MEMORY: &str = r#"
[[days.benchmarks]]
name = "workflow"
kind = "collective_workflow"
warmup = 0
iterations = 2
[days.benchmarks.params]
requests = 3
prompt_tokens = 32
output_tokens = 4
block_tokens = 8

[[days.benchmarks]]
name = "memory"
kind = "memory_growth"
warmup = 0
iterations = 3
[days.benchmarks.params]
prompt_tokens = 8
output_tokens = 2
runs = [3]
kv_probe_tokens = 64
"#;

pub fn out_file(f: &Fixture, rel: &str) -> PathBuf {
    f.out().join("t").join(rel)
}

/// The last `bottleneck_analysis.json` under the fixture's output.
pub fn read_analysis(f: &Fixture) -> Value {
    serde_json::from_slice(&fs::read(out_file(f, "bottleneck_analysis.json")).unwrap()).unwrap()
}

/// `campaign analyze --days DAYS` on the fixture's output, with `extra`.
pub fn analyze(
    f: &Fixture,
    campaign: &Path,
    days: &str,
    extra: &[&str],
) -> assert_cmd::assert::Assert {
    cargo_bin_cmd!("campaign")
        .args(["analyze", "--days", days, "--campaign"])
        .arg(campaign)
        .arg("--out")
        .arg(f.out())
        .args(extra)
        .assert()
}

/// A planted day: one profiled `planted_work` benchmark at the shipped
/// sampling rate, analysed on its own. Its work is sized for the tests'
/// intervals on a fast machine: a share within ±5 points needs ~400
/// samples, ~1.6 s of CPU at the ~250 Hz this kernel's timer delivers
/// (20 M units took 0.46 s here on a faster host and left the tests with
/// 90 samples).
pub fn planted_profile_day(day: u32, major_pct: u32, libc_pct: u32) -> String {
    format!(
        r#"[[days]]
number = {day}
title = "planted {day}"
after = ["analyze"]
analyze_days = "{day}"
[[days.benchmarks]]
name = "planted"
kind = "planted_work"
warmup = 1
iterations = 12
profile = true
[days.benchmarks.params]
work_units = 80000000
major_pct = {major_pct}
libc_pct = {libc_pct}
"#
    )
}

pub fn planted_day(name: &str, slowdown: f64) -> String {
    format!(
        r#"[[days]]
number = 1
title = "gate"
[[days.benchmarks]]
name = "{name}"
kind = "planted_work"
warmup = 1
iterations = 5
[days.benchmarks.params]
work_units = 6000000
slowdown = {slowdown}
"#
    )
}

pub fn gate(f: &Fixture, campaign: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    cargo_bin_cmd!("campaign")
        .args(["run", "--day", "1", "--campaign"])
        .arg(campaign)
        .arg("--out")
        .arg(f.out())
        .args(args)
        .assert()
}

pub fn changes(f: &Fixture) -> Vec<Value> {
    let c: Value =
        serde_json::from_slice(&fs::read(out_file(f, "comparison.json")).unwrap()).unwrap();
    c["changes"].as_array().unwrap().clone()
}

pub fn state_of(changes: &[Value], case: &str, metric: &str) -> String {
    changes
        .iter()
        .find(|c| c["case"] == case && c["metric"] == metric)
        .unwrap_or_else(|| panic!("no change for {case} {metric}: {changes:#?}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A copy of `report` whose run-level values are scaled (and optionally
/// cut to `keep` runs) and whose cases are renamed by `rename`.
pub fn altered(report: &Value, scale: f64, keep: usize, rename: Option<(&str, &str)>) -> Value {
    let mut r = report.clone();
    for result in r["results"].as_array_mut().unwrap() {
        for (metric, values) in result["run_values"].as_object_mut().unwrap() {
            let higher_is_better = metric.ends_with("_per_s");
            let v: Vec<Value> = values
                .as_array()
                .unwrap()
                .iter()
                .take(keep)
                .map(|x| {
                    let x = x.as_f64().unwrap();
                    Value::from(if higher_is_better {
                        x / scale
                    } else {
                        x * scale
                    })
                })
                .collect();
            *values = Value::Array(v);
        }
        if let Some((from, to)) = rename {
            let name = result["benchmark_name"].as_str().unwrap().replace(from, to);
            result["benchmark_name"] = Value::from(name);
        }
    }
    r
}

/// Debian's Chromium, where `.ci/run` installs it.
pub fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let out = Command::new("which").arg(name).output().ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
}
