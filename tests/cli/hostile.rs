//! Hostile campaigns, generated from the schema: a full campaign with every
//! kind, one to three of whose values are replaced by extreme ones (NaN,
//! infinities, zero, negatives, 1e300, the largest integers, empty and very
//! long strings, odd Unicode) or by a value of the wrong type. Whatever the
//! file holds: loading never panics, `validate` exits 0 or 2 and names the
//! file, line and field of each problem, and a run exits 0, 2, 3 or 4
//! leaving only JSON that parses.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serial_test::parallel;
use toml::Value;

/// Every kind, small enough that a quick run of day 1 takes seconds.
const BASE: &str = r#"
name = "hostile"
description = "every field of the schema"
[settings]
threads = 1
device = "cpu"
dtype = "f32"
seed = 7
max_raw_samples = 1000

[models.default.synthetic]
seed = 7
vocab_size = 256
hidden_size = 64
intermediate_size = 128
num_hidden_layers = 2
num_attention_heads = 2
num_key_value_heads = 1
max_position_embeddings = 512

[[days]]
number = 1
title = "quick kinds"

[[days.benchmarks]]
name = "planted"
kind = "planted_work"
warmup = 0
iterations = 2
time_budget_s = 5.0
timeout_s = 60.0
targets = ["iteration_ms.p50 < 100000"]
regression_threshold_pct = 5.0
[days.benchmarks.params]
work_units = 200000
major_pct = 60.0
slowdown = 1.0
libc_pct = 10.0

[[days.benchmarks]]
name = "kv_store"
kind = "kv_cache_store"
iterations = 1
[days.benchmarks.params]
geometry = { layers = 2, kv_heads = 1, head_dim = 32, dtype = "f16", block_tokens = [16] }
tokens = 256

[[days.benchmarks]]
name = "ratio"
kind = "compression_ratio"
iterations = 1
[days.benchmarks.params]
inputs = ["token_ids", "json_logs"]
codecs = ["zstd:1", "lz4"]
input_mib = 1
block_kib = 64

[[days.benchmarks]]
name = "writes"
kind = "storage_write"
iterations = 1
[days.benchmarks.params]
value_kib = [1]
commit = ["non_durable"]
ops = 10

[[days.benchmarks]]
name = "reads"
kind = "storage_read"
iterations = 1
[days.benchmarks.params]
value_kib = [1]
distribution = ["zipfian"]
zipf_s = 1.1
keys = 50
cache_entries = 10
ops = 50

[[days.benchmarks]]
name = "agents"
kind = "agent_task_latency"
iterations = 1
[days.benchmarks.params]
queues = ["lock_free"]
loads = ["closed", "open:500"]
producers = 1
workers = 2
runtime_threads = 1
tasks = 50
block_kib = 4

[[days.benchmarks]]
name = "ttft"
kind = "first_token_latency"
iterations = 1
[days.benchmarks.params]
prompt_lengths = [8]
batch_size = 1

[[days.benchmarks]]
name = "decode"
kind = "token_generation"
iterations = 1
[days.benchmarks.params]
prompt_lengths = [8]
output_tokens = 4
batch_size = 1
planted_slowdown_pct = 0.0

[[days]]
number = 2
title = "the rest of the schema"
after = ["calibrate", "analyze"]
analyze_days = "1-2"

[[days.benchmarks]]
name = "kv_access"
kind = "kv_cache_access"
profile = true
profile_hz = 199
[days.benchmarks.params]
geometry = { model = "default", dtype = "f16", block_tokens = [16, 32] }
context_tokens = 256
hot_tokens = 64
sequences = 2
shared_prefix_tokens = 32
decode_steps = 8
cold_encoding = "int8"
cold_io = "buffered"

[[days.benchmarks]]
name = "disk"
kind = "disk_block_sweep"
[days.benchmarks.params]
file_mib = 1
block_sizes_kib = [4, 64]
patterns = ["seq_read", "rand_write"]
modes = ["buffered"]
mib_per_iteration = 1

[[days.benchmarks]]
name = "speed"
kind = "compression_throughput"
[days.benchmarks.params]
inputs = ["kv_block"]
codecs = ["snappy"]
input_mib = 1
block_kib = 16
model = "default"

[[days.benchmarks]]
name = "serving"
kind = "full_inference"
[days.benchmarks.params]
requests = 2
prompt_tokens = { distribution = "log_normal", median = 16, sigma = 0.5, min = 8, max = 32 }
output_tokens = { distribution = "uniform", min = 2, max = 4 }
concurrency = [1, 2]
rates_per_s = [4.0]
open_loop_concurrency = 1
ttft_slo_ms = 1000.0
tpot_slo_ms = 100.0

[[days.benchmarks]]
name = "scaling"
kind = "scaling"
[days.benchmarks.params]
requests = 2
prompt_tokens = 8
output_tokens = 2
concurrency = [1, 2]
batch_sizes = [1, 2]

[[days.benchmarks]]
name = "endurance"
kind = "endurance"
time_budget_s = 1.0
[days.benchmarks.params]
prompt_tokens = 8
output_tokens = 2
sample_interval_ms = 100
leak_threshold_mib_per_min = 1.0
leak_min_growth_mib = 4.0
drift_window_s = 1.0
planted_leak_kib_per_sample = 0

[[days.benchmarks]]
name = "memory"
kind = "memory_growth"
[days.benchmarks.params]
prompt_tokens = 8
output_tokens = 2
runs = [2]
kv_probe_tokens = 16

[[days.benchmarks]]
name = "workflow"
kind = "collective_workflow"
[days.benchmarks.params]
requests = 2
prompt_tokens = 16
output_tokens = 2
agents = 1
queue = "mutex_deque"
codec = "lz4"
block_tokens = 8
hot_blocks = 4
"#;

/// Values no field should take quietly.
fn extremes() -> Vec<Value> {
    let long = "x".repeat(10_000);
    vec![
        Value::Float(f64::NAN),
        Value::Float(f64::INFINITY),
        Value::Float(f64::NEG_INFINITY),
        Value::Float(1e300),
        Value::Float(-1e300),
        Value::Float(1e-300),
        Value::Float(0.5),
        Value::Integer(0),
        Value::Integer(-1),
        Value::Integer(i64::MAX),
        Value::Integer(i64::MIN),
        Value::Integer(1 << 40),
        Value::String(String::new()),
        Value::String(long),
        Value::String("é∞🦀\u{202e}\u{0}'\"\\".into()),
        Value::String("open:1e-300".into()),
        Value::String("../../../../etc/passwd".into()),
        Value::Boolean(true),
        Value::Array(Vec::new()),
        Value::Array(vec![Value::Float(1e300), Value::Integer(-5)]),
        Value::Table(toml::Table::new()),
    ]
}

/// Every value of the document with its path (array elements too).
fn leaves(value: &Value, path: Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    match value {
        Value::Table(t) => {
            for (k, v) in t {
                let mut p = path.clone();
                p.push(PathStep::Key(k.clone()));
                out.push(p.clone());
                leaves(v, p, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let mut p = path.clone();
                p.push(PathStep::Index(i));
                out.push(p.clone());
                leaves(v, p, out);
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn slot<'v>(value: &'v mut Value, path: &[PathStep]) -> Option<&'v mut Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(value);
    };
    let next = match (value, first) {
        (Value::Table(t), PathStep::Key(k)) => t.get_mut(k)?,
        (Value::Array(a), PathStep::Index(i)) => a.get_mut(*i)?,
        _ => return None,
    };
    slot(next, rest)
}

/// The base campaign with `(path index, extreme index)` substitutions.
fn mutated(mutations: &[(usize, usize)]) -> String {
    let mut doc: Value = toml::from_str(BASE).expect("the base campaign is TOML");
    let mut paths = Vec::new();
    leaves(&doc, Vec::new(), &mut paths);
    let values = extremes();
    for (p, v) in mutations {
        let path = &paths[p % paths.len()];
        if let Some(target) = slot(&mut doc, path) {
            *target = values[v % values.len()].clone();
        }
    }
    toml::to_string(&doc).expect("any TOML value serialises")
}

fn write_campaign(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("campaign.toml");
    std::fs::write(&path, text).expect("the temporary folder is writable");
    path
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    /// Loading never panics; every problem has a position and a field.
    #[test]
    #[parallel]
    fn loading_any_mutation_never_panics(mutations in prop::collection::vec((0usize..2000, 0usize..64), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        let text = mutated(&mutations);
        let path = write_campaign(dir.path(), &text);
        let loaded = std::panic::catch_unwind(|| campaign::campaign::load_campaign(&path, &campaign::benchmarks::Registry));
        let loaded = loaded.map_err(|_| TestCaseError::fail(format!("load_campaign panicked on:\n{text}")))?;
        if let Err(campaign::campaign::CampaignError::Invalid { diagnostics, .. }) = loaded {
            for d in diagnostics {
                prop_assert!(d.line >= 1 && d.column >= 1, "{d:?}");
                prop_assert!(!d.field.is_empty() && !d.message.is_empty(), "{d:?}");
            }
        }
    }
}

/// The binary's outcome, killed after `limit`.
fn run_binary(args: &[&str], limit: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_campaign"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait works") {
            let mut stderr = String::new();
            use std::io::Read;
            let _ = child
                .stderr
                .take()
                .map(|mut s| s.read_to_string(&mut stderr));
            return (status.code(), stderr);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return (None, "killed: ran past its limit".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `campaign run --day 1` of `campaign` into `out`, with `extra` flags.
fn run_day_1(campaign: &str, out: &Path, extra: &[&str], limit_s: u64) -> (Option<i32>, String) {
    let out = out.to_string_lossy();
    let mut args = vec!["run", "--day", "1", "--campaign", campaign, "--out", &out];
    args.extend_from_slice(extra);
    run_binary(&args, Duration::from_secs(limit_s))
}

/// Every JSON file under `dir` parses; JSONL files line by line.
fn every_json_parses(dir: &Path) -> Result<usize, String> {
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p.to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            if name.ends_with(".json") {
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| format!("{name}: {e}"))?;
                count += 1;
            } else if name.ends_with(".jsonl") {
                for line in text.lines() {
                    serde_json::from_str::<serde_json::Value>(line)
                        .map_err(|e| format!("{name}: {e}"))?;
                }
            }
        }
    }
    Ok(count)
}

#[test]
#[parallel]
fn validate_and_tiny_runs_of_mutations_exit_cleanly() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20_261_123);
    let mut runs = 0;
    // About one mutation in fifty is still valid, so many are drawn (each
    // `validate` takes milliseconds) to find the few that must then run.
    for trial in 0..1500 {
        if runs >= 6 {
            break;
        }
        let mutations: Vec<(usize, usize)> = (0..rng.random_range(1..3))
            .map(|_| (rng.random_range(0..2000), rng.random_range(0..64)))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let text = mutated(&mutations);
        let path = write_campaign(dir.path(), &text);
        let file = path.to_string_lossy().into_owned();
        let (code, stderr) = run_binary(&["validate", &file], Duration::from_secs(60));
        assert!(
            matches!(code, Some(0 | 2)),
            "trial {trial}: validate exited {code:?}: {stderr}\n{text}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
            "{stderr}"
        );
        if code == Some(2) {
            assert!(
                stderr.contains(&format!("{file}:")),
                "no position: {stderr}"
            );
            // What is allowed is said in a user's words, never in the
            // names serde gives its own types.
            for serde_words in ["internally tagged", "enum ", "struct ", "untagged"] {
                assert!(
                    !stderr.contains(serde_words),
                    "trial {trial}: {serde_words:?} in {stderr}"
                );
            }
            continue;
        }
        // A valid mutation: a quick run of day 1 must end cleanly too.
        runs += 1;
        let out = dir.path().join("out");
        let (code, stderr) = run_day_1(&file, &out, &["--quick"], 300);
        assert!(
            matches!(code, Some(0 | 2 | 3 | 4)),
            "trial {trial}: run exited {code:?}: {stderr}\n{text}"
        );
        assert!(
            !stderr.contains("panicked at") && !stderr.contains("RUST_BACKTRACE"),
            "{stderr}"
        );
        every_json_parses(&out).unwrap_or_else(|e| panic!("trial {trial}: {e}"));
    }
    assert!(runs >= 6, "only {runs} mutations were valid enough to run");
}

#[test]
#[parallel]
fn the_base_campaign_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_campaign(dir.path(), BASE);
    if let Err(e) = campaign::campaign::load_campaign(&path, &campaign::benchmarks::Registry) {
        panic!("{e}");
    }
}

/// `file:line:column` where `needle` starts in `text`.
fn position(file: &str, text: &str, needle: &str) -> String {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the campaign"));
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
    format!("{file}:{line}:{column}")
}

/// Each class of input the runner once crashed on or accepted: refused by
/// `validate` and `run` with exit 2, at the offending key, naming the field,
/// what was found and what is allowed.
#[test]
#[parallel]
fn extreme_values_are_refused_at_their_key_with_what_is_allowed() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "timeout_s = 60.0",
            "timeout_s = 1e300",
            "timeout_s = 1e300",
            &[
                "day 1, benchmark \"planted\", field `timeout_s`",
                "found 1e300; allowed: a number of seconds from 0.001 to 604800",
            ],
        ),
        (
            "time_budget_s = 5.0",
            "time_budget_s = 1e300",
            "time_budget_s",
            &["field `time_budget_s`", "found 1e300"],
        ),
        (
            "timeout_s = 60.0",
            "timeout_s = nan",
            "timeout_s",
            &["field `timeout_s`", "found NaN"],
        ),
        (
            "\"open:500\"",
            "\"open:1e-300\"",
            "\"open:1e-300\"",
            &[
                "benchmark \"agents\", field `params.loads[1]`",
                "found 1e-300; allowed: a number of arrivals per second from 0.001 to 1000000",
            ],
        ),
        (
            "hidden_size = 64\n",
            "hidden_size = 65536\n",
            "default.synthetic]",
            &[
                "model \"default\": the model needs about",
                "GiB",
                "parameters × 4 bytes",
                "available on this machine",
            ],
        ),
        (
            "max_position_embeddings = 512",
            "max_position_embeddings = 1099511627776",
            "default.synthetic]",
            &[
                "rotary tables 3 × 1099511627776 positions",
                "available on this machine",
            ],
        ),
        (
            "layers = 2,",
            "layers = 1099511627776,",
            "layers = 1099511627776",
            &[
                "benchmark \"kv_store\", field `params.geometry.layers`",
                "found 1099511627776; allowed: a whole number of elements from 1 to 65536",
            ],
        ),
        (
            "threads = 1\n",
            "threads = 1000000\n",
            "threads = 1000000",
            &[
                "settings, field `threads`",
                "found 1000000; allowed: a whole number of compute threads from 1 to 1024",
            ],
        ),
        (
            "iterations = 2",
            "iterations = \"two\"",
            "iterations = \"two\"",
            &[
                "benchmark \"planted\", field `iterations`",
                "found string \"two\"; allowed: a whole number of iterations",
            ],
        ),
        (
            "iterations = 2",
            "iterations = -1",
            "iterations = -1",
            &["field `iterations`", "found -1"],
        ),
        (
            "timeout_s = 60.0",
            "timeout_s = 60.0\nprofile_hz = 0",
            "profile_hz = 0",
            &[
                "field `profile_hz`",
                "found 0; allowed: a whole number of samples per second (Hz) from 1 to 1000",
            ],
        ),
        (
            "work_units = 200000",
            "work_units = 18446744073709551615",
            "work_units",
            &["field `params.work_units`"],
        ),
        (
            "output_tokens = { distribution = \"uniform\", min = 2, max = 4 }",
            "output_tokens = \"4\"",
            "output_tokens = \"4\"",
            &[
                "benchmark \"serving\", field `params.output_tokens`",
                "found string \"4\"; allowed: a number of tokens (a fixed length: a whole number of tokens from 1 to 1048576), or a table with distribution = \"fixed\", \"uniform\" or \"log_normal\"",
            ],
        ),
        (
            "output_tokens = { distribution = \"uniform\", min = 2, max = 4 }",
            "output_tokens = { distribution = \"gamma\", min = 2, max = 4 }",
            "distribution = \"gamma\"",
            &[
                "field `params.output_tokens.distribution`",
                "unknown variant `gamma`, expected one of `fixed`, `uniform`, `log_normal`",
            ],
        ),
        (
            "requests = 2\nprompt_tokens = { distribution",
            "requests = 2\nrequests = 3\nprompt_tokens = { distribution",
            "requests = 3",
            &[
                "days.benchmarks.params.requests: `requests` is set twice in this table (first at line",
                "allowed: each key once per table",
            ],
        ),
        (
            "\ntokens = 256",
            "\ntokens = 1099511627776",
            "tokens = 1099511627776",
            &["field `params.tokens`", "found 1099511627776"],
        ),
    ];
    for (from, to, key, needles) in cases {
        assert!(BASE.contains(from), "{from:?} is not in the campaign");
        let text = BASE.replacen(from, to, 1);
        let dir = tempfile::tempdir().unwrap();
        let path = write_campaign(dir.path(), &text);
        let file = path.to_string_lossy().into_owned();
        let (code, stderr) = run_binary(&["validate", &file], Duration::from_secs(60));
        assert_eq!(code, Some(2), "{to}: {stderr}");
        let at = position(&file, &text, key);
        assert!(
            stderr.contains(&format!("{at}: ")),
            "{to}: not at {at}: {stderr}"
        );
        for needle in *needles {
            assert!(stderr.contains(needle), "{to}: {needle:?} not in {stderr}");
        }
        // `run` refuses it the same way, before measuring, writing nothing.
        let out = dir.path().join("out");
        let (code, run_stderr) = run_day_1(&file, &out, &[], 60);
        assert_eq!(code, Some(2), "{to}: {run_stderr}");
        assert!(run_stderr.contains(&at), "{to}: {run_stderr}");
        assert_eq!(every_json_parses(&out), Ok(0), "{to}: run wrote a report");
    }
}

#[test]
#[parallel]
fn flags_out_of_range_are_refused_with_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_campaign(dir.path(), BASE);
    let file = path.to_string_lossy().into_owned();
    for (flag, needle) in [
        (
            "--threads=0",
            "found 0; allowed: a whole number of compute threads from 1 to 1024",
        ),
        ("--threads=1000000", "found 1000000"),
        (
            "--threshold-pct=-5",
            "found -5; allowed: a number of percent above 0 and at most 1000",
        ),
        ("--threshold-pct=nan", "found NaN"),
        ("--threshold-pct=inf", "found inf"),
        ("--runs=0", "not in 1..=100"),
        ("--profile-hz=0", "not in 1..=1000"),
    ] {
        let out = dir.path().join("out");
        let (code, stderr) = run_day_1(&file, &out, &[flag], 60);
        assert_eq!(code, Some(2), "{flag}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{flag}: {needle:?} not in {stderr}"
        );
        assert!(!out.exists(), "{flag}: output was written");
    }
}

/// A panic inside a benchmark is a failed benchmark with its message in the
/// report: the day goes on, the run exits 4, nothing looks like a crash.
#[test]
#[parallel]
fn a_panic_in_a_benchmark_fails_it_and_the_day_goes_on() {
    let text = BASE.replacen(
        "libc_pct = 10.0",
        "libc_pct = 10.0\npanic_at_iteration = 2",
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write_campaign(dir.path(), &text);
    let out = dir.path().join("out");
    let (code, stderr) = run_day_1(&path.to_string_lossy(), &out, &[], 300);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        !stderr.contains("stack backtrace") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    let reports: Vec<_> = std::fs::read_dir(out.join("hostile/daily_reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&reports[0]).unwrap()).unwrap();
    let results = report["results"].as_array().unwrap();
    let status = |name: &str| {
        results
            .iter()
            .filter(|r| r["benchmark"] == name)
            .map(|r| {
                (
                    r["status"].as_str().unwrap().to_string(),
                    r["error"].to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let planted = status("planted");
    assert!(
        planted
            .iter()
            .all(|(s, e)| s == "failed" && e.contains("planted panic at iteration 2")),
        "{planted:?}"
    );
    for other in ["kv_store", "ratio", "agents", "ttft", "decode"] {
        let rest = status(other);
        assert!(
            !rest.is_empty() && rest.iter().all(|(s, _)| s == "ok"),
            "{other}: {rest:?}"
        );
    }
    assert!(every_json_parses(&out).unwrap() >= 1);
}
