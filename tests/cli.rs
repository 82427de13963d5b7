//! Drives the real `campaign` binary on real (tiny) models and real files.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use assert_cmd::cargo::cargo_bin_cmd;
use predicates::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

/// A Llama small enough that a forward pass takes milliseconds.
const TINY_MODEL: &str = r#"
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

struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: TempDir::new().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a campaign with the tiny model and the given days.
    fn campaign(&self, days: &str) -> PathBuf {
        self.campaign_raw(&format!(
            "name = \"t\"\n[settings]\nthreads = 1\n{TINY_MODEL}\n{days}"
        ))
    }

    fn campaign_raw(&self, text: &str) -> PathBuf {
        let path = self.path("campaign.toml");
        fs::write(&path, text).unwrap();
        path
    }

    fn out(&self) -> PathBuf {
        self.path("out")
    }

    fn run(&self, campaign: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
        cargo_bin_cmd!("campaign")
            .args(["run", "--day", "1", "--campaign"])
            .arg(campaign)
            .arg("--out")
            .arg(self.out())
            .args(extra)
            .assert()
    }

    fn report(&self) -> Value {
        self.report_of_day(1)
    }

    /// The newest report of a day.
    fn report_of_day(&self, day: u32) -> Value {
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

const TTFT_DAY: &str = r#"
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

const DECODE_BENCH: &str = r#"
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

fn result<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["benchmark_name"] == name)
        .unwrap_or_else(|| panic!("no result {name} in {report:#}"))
}

#[test]
fn run_writes_a_report_of_real_measurements() {
    let f = Fixture::new();
    let campaign = f.campaign(&format!("{TTFT_DAY}{DECODE_BENCH}"));
    f.run(&campaign, &[])
        .success()
        .stdout(predicate::str::contains("✓ ttft_ms.p50 < 60000"));

    let report = f.report();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["day"], 1);
    assert_eq!(report["summary"]["total"], 3);
    assert_eq!(report["summary"]["successful"], 3);
    assert_eq!(report["summary"]["targets_met"], 3);
    assert_eq!(report["environment"]["threads"], 1);
    assert!(report["environment"]["cpu_model"].is_string());

    let ttft = result(&report, "ttft[prompt_len=32]");
    assert_eq!(ttft["status"], "ok");
    assert_eq!(ttft["iterations_completed"], 4);
    let samples = ttft["metrics"]["ttft_ms"]["raw_samples"]
        .as_array()
        .unwrap();
    assert_eq!(
        samples.len(),
        4,
        "one TTFT per timed iteration, warm-up excluded"
    );
    assert!(samples.iter().all(|s| s.as_f64().unwrap() > 0.0));
    assert_eq!(ttft["latency_metric"], "ttft_ms");
    assert!(ttft["p50_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(ttft["throughput_unit"], "tokens/s");
    assert!(ttft["setup"]["model_load_ms"]["value"].as_f64().unwrap() > 0.0);
    assert_eq!(
        ttft["context"]["parameters"],
        2 * 256 * 64 + 64 + 2 * (2 * 64 + 64 * 64 * 2 + 32 * 64 * 2 + 3 * 64 * 128)
    );

    let decode = result(&report, "decode[prompt_len=16]");
    let itl = &decode["metrics"]["itl_ms"];
    assert_eq!(
        itl["summary"]["count"],
        3 * 5,
        "5 gaps between 6 tokens, 3 iterations"
    );
    assert_eq!(
        decode["series"]["itl_ms_by_step"]["values"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    // TPOT is defined from the same run: (e2e − TTFT) / (tokens − 1).
    let e2e = decode["metrics"]["e2e_ms"]["raw_samples"][0]
        .as_f64()
        .unwrap();
    let first = decode["metrics"]["ttft_ms"]["raw_samples"][0]
        .as_f64()
        .unwrap();
    let tpot = decode["metrics"]["tpot_ms"]["raw_samples"][0]
        .as_f64()
        .unwrap();
    assert!(
        (tpot - (e2e - first) / 5.0).abs() < 1e-6,
        "{tpot} vs {e2e} {first}"
    );

    let per_benchmark = fs::read_dir(f.out().join("t").join("metrics_json"))
        .unwrap()
        .count();
    assert_eq!(per_benchmark, 3);
    assert!(f.out().join("t").join("raw_profiles").is_dir());
    assert!(f.out().join("t").join("flame_graphs").is_dir());
}

#[test]
fn kv_cache_and_disk_kinds_measure_against_their_references() {
    let f = Fixture::new();
    let campaign = f.campaign(
        r#"[[days]]
number = 1
title = "kv"
[[days.benchmarks]]
name = "store"
kind = "kv_cache_store"
warmup = 1
iterations = 3
[days.benchmarks.params]
geometry = { model = "default", dtype = "f16", block_tokens = [4, 8] }
tokens = 256
[[days.benchmarks]]
name = "trace"
kind = "kv_cache_access"
iterations = 2
[days.benchmarks.params]
geometry = { layers = 2, kv_heads = 2, head_dim = 32, dtype = "f16", block_tokens = [4] }
context_tokens = 64
hot_tokens = 16
sequences = 2
shared_prefix_tokens = 16
decode_steps = 4
cold_encoding = "int8"
cold_io = "buffered"
[[days.benchmarks]]
name = "disk"
kind = "disk_block_sweep"
warmup = 0
iterations = 2
[days.benchmarks.params]
file_mib = 1
block_sizes_kib = [4, 64]
patterns = ["seq_read", "rand_write"]
modes = ["buffered", "direct"]
mib_per_iteration = 1
"#,
    );
    f.run(&campaign, &[]).success();
    let report = f.report();

    let store = result(&report, "store[block_tokens=8]");
    // The fixture's model: 2 (K and V) × 2 layers × 1 KV head × 32 dims × 2 bytes (f16).
    assert_eq!(store["parameters"]["bytes_per_token"], 2 * 2 * 32 * 2);
    assert_eq!(store["parameters"]["tokens"], 256);
    let fraction = store["metrics"]["store_fraction_of_memcpy"]["raw_samples"][0]
        .as_f64()
        .unwrap();
    let store_gbps = store["metrics"]["store_gb_per_s"]["raw_samples"][0]
        .as_f64()
        .unwrap();
    let memcpy_gbps = store["metrics"]["memcpy_gb_per_s"]["raw_samples"][0]
        .as_f64()
        .unwrap();
    assert!((fraction - store_gbps / memcpy_gbps).abs() < 1e-9);

    let trace = result(&report, "trace[block_tokens=4]");
    assert_eq!(trace["status"], "ok", "{trace:#}");
    let m = &trace["metrics"];
    let value = |name: &str| {
        m[name]["raw_samples"][0]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    // 16 shared prefix tokens = 4 blocks stored once for both sequences.
    assert_eq!(value("shared_prefix_hits"), 4.0);
    assert!(value("evictions") > 0.0 && value("promotions") > 0.0);
    assert!((value("hot_hit_rate_pct") + value("cold_hit_rate_pct") - 100.0).abs() < 1e-9);
    assert!(value("block_fetch_cold_ms") > 0.0);
    assert!(
        value("int8_max_abs_error") > 0.0,
        "int8 is lossy and the error is measured"
    );
    assert!(value("int8_rms_error") <= value("int8_max_abs_error"));
    assert!(value("raw_read_mb_per_s") > 0.0);

    let disk_results: Vec<&Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["benchmark"] == "disk")
        .collect();
    let direct_ran = disk_results
        .iter()
        .any(|r| r["case"].as_str().unwrap().starts_with("direct/"));
    let said_unsupported = disk_results[0]["warnings"]
        .to_string()
        .contains("direct I/O is not supported");
    assert!(
        direct_ran != said_unsupported,
        "direct cases run, or the report says why not"
    );
    let buffered = result(&report, "disk[buffered/seq_read/64k]");
    assert_eq!(buffered["parameters"]["ops_per_iteration"], 16);
    assert_eq!(
        buffered["metrics"]["op_latency_ms"]["summary"]["count"],
        2 * 16
    );
    let scratch: Vec<_> = fs::read_dir(f.out().join("t").join("scratch"))
        .unwrap()
        .collect();
    assert!(scratch.is_empty(), "benchmarks remove their working files");
}

#[test]
fn compression_kinds_round_trip_every_input_with_every_codec() {
    let f = Fixture::new();
    let user_file = f.path("user.bin");
    fs::write(&user_file, b"campaign ".repeat(20_000)).unwrap();
    let campaign = f.campaign(&format!(
        r#"[[days]]
number = 1
title = "codecs"
[[days.benchmarks]]
name = "ratio"
kind = "compression_ratio"
iterations = 1
targets = ["ratio.min > 1"]
[days.benchmarks.params]
inputs = ["token_ids", "kv_block", "json_logs", "file:{}"]
codecs = ["zstd:1", "zstd_dict:3", "lz4", "snappy"]
input_mib = 1
block_kib = 16
[[days.benchmarks]]
name = "speed"
kind = "compression_throughput"
iterations = 2
[days.benchmarks.params]
inputs = ["json_logs"]
codecs = ["zstd:3", "lz4"]
input_mib = 1
"#,
        user_file.display()
    ));
    f.run(&campaign, &[]).success();
    let report = f.report();
    assert_eq!(report["summary"]["total"], 4 * 4 + 2);
    assert_eq!(
        report["summary"]["successful"], 18,
        "every round trip verified"
    );
    let logs = result(&report, "ratio[json_logs/zstd:1]");
    assert!(
        logs["throughput"].as_f64().unwrap() > 2.0,
        "log lines compress: {logs:#}"
    );
    let file = result(&report, "ratio[file:user.bin/lz4]");
    assert!(
        file["throughput"].as_f64().unwrap() > 10.0,
        "a repeated word compresses well"
    );
    let speed = result(&report, "speed[json_logs/lz4]");
    let m = &speed["metrics"];
    let sample = |name: &str| m[name]["raw_samples"][0].as_f64().unwrap();
    assert!(
        (sample("compress_fraction_of_memcpy")
            - sample("compress_mb_per_s") / sample("memcpy_mb_per_s"))
        .abs()
            < 1e-9
    );
    assert_eq!(m["compress_mb_per_s"]["summary"]["count"], 2);
}

#[test]
fn storage_kinds_verify_reads_and_record_an_unusable_folder_as_a_failure() {
    let f = Fixture::new();
    let blocker = f.path("blocker");
    fs::write(&blocker, b"").unwrap();
    let campaign = f.campaign(&format!(
        r#"[[days]]
number = 1
title = "storage"
[[days.benchmarks]]
name = "write"
kind = "storage_write"
iterations = 2
[days.benchmarks.params]
value_kib = [1, 16]
commit = ["durable", "non_durable"]
ops = 10
[[days.benchmarks]]
name = "read"
kind = "storage_read"
iterations = 2
[days.benchmarks.params]
value_kib = [4]
keys = 200
cache_entries = 20
ops = 300
[[days.benchmarks]]
name = "nowhere"
kind = "storage_write"
iterations = 1
[days.benchmarks.params]
value_kib = [1]
ops = 1
dir = "{}"
"#,
        blocker.join("db").display()
    ));
    f.run(&campaign, &[]).code(4);
    let report = f.report();
    let durable = result(&report, "write[16k/durable]");
    assert_eq!(durable["status"], "ok");
    assert_eq!(durable["metrics"]["put_ms"]["summary"]["count"], 20);
    let zipf = result(&report, "read[4k/zipfian]");
    let uniform = result(&report, "read[4k/uniform]");
    let hit = |r: &Value| {
        r["metrics"]["cache_hit_ratio_pct"]["summary"]["mean"]
            .as_f64()
            .unwrap()
    };
    // A 20-entry cache over 200 keys: skewed keys hit it far more often.
    assert!(
        hit(zipf) > hit(uniform),
        "zipfian {} vs uniform {}",
        hit(zipf),
        hit(uniform)
    );
    let nowhere = result(&report, "nowhere");
    assert_eq!(nowhere["status"], "failed");
    assert!(
        nowhere["error"].as_str().unwrap().contains("blocker"),
        "{nowhere:#}"
    );
    assert_eq!(report["summary"]["failed"], 1);
}

#[test]
fn agent_latency_runs_every_queue_under_both_loads() {
    let f = Fixture::new();
    let campaign = f.campaign(
        r#"[[days]]
number = 1
title = "agents"
[[days.benchmarks]]
name = "agents"
kind = "agent_task_latency"
iterations = 2
targets = ["e2e_ms.p50 < 10000"]
[days.benchmarks.params]
loads = ["closed", "open:500"]
producers = 2
workers = 2
tasks = 100
block_kib = 4
"#,
    );
    f.run(&campaign, &[]).success();
    let report = f.report();
    assert_eq!(
        report["summary"]["successful"], 6,
        "3 queues × 2 loads, each task run exactly once"
    );
    for queue in ["tokio_mpsc", "mutex_deque", "lock_free"] {
        let closed = result(&report, &format!("agents[{queue}/closed]"));
        let m = &closed["metrics"];
        assert_eq!(
            m["e2e_ms"]["summary"]["count"], 200,
            "100 tasks × 2 iterations"
        );
        // End-to-end is queue wait plus service, task by task.
        let (w, s, e) = (
            m["queue_wait_ms"]["raw_samples"][7].as_f64().unwrap(),
            m["service_ms"]["raw_samples"][7].as_f64().unwrap(),
            m["e2e_ms"]["raw_samples"][7].as_f64().unwrap(),
        );
        assert!((w + s - e).abs() < 1e-6, "{w} + {s} != {e}");
    }
    let open = result(&report, "agents[lock_free/open:500]");
    // 100 Poisson arrivals at 500/s take about 0.2 s: far below a closed loop's pace.
    assert!(open["throughput"].as_f64().unwrap() < 2000.0, "{open:#}");
}

#[test]
fn a_bigger_model_takes_longer_to_first_token() {
    let f = Fixture::new();
    let campaign = f.campaign_raw(&format!(
        r#"name = "t"
{TINY_MODEL}
[models.big.synthetic]
seed = 7
vocab_size = 256
hidden_size = 256
intermediate_size = 1024
num_hidden_layers = 8
num_attention_heads = 4
num_key_value_heads = 2
max_position_embeddings = 1024

[[days]]
number = 1
title = "size"
[[days.benchmarks]]
name = "small"
kind = "first_token_latency"
iterations = 5
[days.benchmarks.params]
prompt_lengths = [128]
[[days.benchmarks]]
name = "big"
kind = "first_token_latency"
iterations = 5
[days.benchmarks.params]
model = "big"
prompt_lengths = [128]
"#
    ));
    f.run(&campaign, &[]).success();
    let report = f.report();
    let small = result(&report, "small[prompt_len=128]")["p50_ms"]
        .as_f64()
        .unwrap();
    let big = result(&report, "big[prompt_len=128]")["p50_ms"]
        .as_f64()
        .unwrap();
    // About 60x the FLOPs per token: the ordering cannot flip by noise.
    assert!(
        big > small * 2.0,
        "big model TTFT {big} ms vs small {small} ms"
    );
}

#[test]
fn json_flag_prints_the_report_on_stdout() {
    let f = Fixture::new();
    let campaign = f.campaign(TTFT_DAY);
    let output = f
        .run(&campaign, &["--json", "--quick"])
        .success()
        .get_output()
        .stdout
        .clone();
    let printed: Value =
        serde_json::from_slice(&output).expect("stdout is exactly one JSON document");
    assert_eq!(printed["summary"], f.report()["summary"]);
    assert_eq!(printed["quick"], true);
    assert_eq!(
        printed["results"][0]["plan"]["iterations"], 1,
        "--quick scales 4 iterations to ceil(0.4)"
    );
}

#[test]
fn only_selects_benchmarks_and_rejects_unknown_names() {
    let f = Fixture::new();
    let campaign = f.campaign(&format!("{TTFT_DAY}{DECODE_BENCH}"));
    f.run(&campaign, &["--only", "decode", "--quick"]).success();
    assert_eq!(f.report()["summary"]["total"], 1);
    f.run(&campaign, &["--only", "nope"])
        .code(2)
        .stderr(predicate::str::contains("nope").and(predicate::str::contains("ttft, decode")));
}

#[test]
fn a_missed_target_exits_3_after_writing_the_report() {
    let f = Fixture::new();
    let campaign = f.campaign(&TTFT_DAY.replace("ttft_ms.p50 < 60000", "ttft_ms.p50 < 0.000001"));
    f.run(&campaign, &["--quick"])
        .code(3)
        .stdout(predicate::str::contains("✗ ttft_ms.p50 < 0.000001"));
    let report = f.report();
    assert_eq!(report["summary"]["targets_missed"], 2);
    assert_eq!(report["results"][0]["targets"][0]["verdict"], "missed");
}

#[test]
fn a_failing_benchmark_does_not_stop_the_day() {
    let f = Fixture::new();
    // A model folder whose config is fine but whose weights are garbage:
    // validation passes, loading fails at run time.
    let broken = f.path("broken-model");
    fs::create_dir(&broken).unwrap();
    fs::write(
        broken.join("config.json"),
        r#"{"hidden_size":64,"intermediate_size":128,"vocab_size":256,"num_hidden_layers":2,
            "num_attention_heads":2,"num_key_value_heads":1,"rms_norm_eps":1e-5,"max_position_embeddings":512}"#,
    )
    .unwrap();
    fs::write(broken.join("model.safetensors"), b"not a safetensors file").unwrap();
    let campaign = f.campaign(&format!(
        r#"[models.broken]
path = "broken-model"
[[days]]
number = 1
title = "x"
[[days.benchmarks]]
name = "first"
kind = "first_token_latency"
iterations = 2
targets = ["ttft_ms.p50 < 60000"]
[days.benchmarks.params]
model = "broken"
prompt_lengths = [8]
{DECODE_BENCH}"#
    ));
    f.run(&campaign, &[])
        .code(4)
        .stderr(predicate::str::contains("FAILED"));
    let report = f.report();
    let first = result(&report, "first");
    assert_eq!(first["status"], "failed");
    assert!(
        first["error"].as_str().unwrap().contains("safetensors"),
        "{}",
        first["error"]
    );
    assert_eq!(first["targets"][0]["verdict"], "not_measured");
    assert_eq!(result(&report, "decode[prompt_len=16]")["status"], "ok");
    assert_eq!(report["summary"]["failed"], 1);
}

#[test]
fn a_timeout_fails_the_benchmark_keeps_its_samples_and_the_day_goes_on() {
    let f = Fixture::new();
    let campaign = f.campaign(&format!(
        r#"[[days]]
number = 1
title = "x"
[[days.benchmarks]]
name = "slow"
kind = "first_token_latency"
warmup = 0
iterations = 100000
timeout_s = 1.0
[days.benchmarks.params]
prompt_lengths = [64, 128]
{DECODE_BENCH}"#
    ));
    f.run(&campaign, &[]).code(4);
    let report = f.report();
    let slow = result(&report, "slow[prompt_len=64]");
    assert_eq!(slow["status"], "failed");
    assert!(
        slow["error"].as_str().unwrap().contains("timed out"),
        "{}",
        slow["error"]
    );
    let done = slow["iterations_completed"].as_u64().unwrap();
    assert!(done > 0 && done < 100_000);
    assert_eq!(
        slow["metrics"]["ttft_ms"]["summary"]["count"]
            .as_u64()
            .unwrap(),
        done
    );
    let never = result(&report, "slow[prompt_len=128]");
    assert!(
        never["error"].as_str().unwrap().contains("not run"),
        "{never:#}"
    );
    assert_eq!(result(&report, "decode[prompt_len=16]")["status"], "ok");
}

#[test]
fn ctrl_c_stops_at_a_safe_point_and_writes_what_was_measured() {
    let f = Fixture::new();
    let campaign = f.campaign(&format!(
        r#"[[days]]
number = 1
title = "x"
[[days.benchmarks]]
name = "long"
kind = "first_token_latency"
warmup = 0
iterations = 1000000
[days.benchmarks.params]
prompt_lengths = [32]
{DECODE_BENCH}"#
    ));
    interrupt_once_timing(&f, &campaign, 500);

    let report = f.report();
    assert_eq!(report["interrupted"], true);
    let long = result(&report, "long[prompt_len=32]");
    assert_eq!(long["status"], "interrupted");
    assert!(
        long["metrics"]["ttft_ms"]["summary"]["count"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(result(&report, "decode")["status"], "interrupted");
}

/// Starts a day, sends SIGINT `after_ms` after the first timed iterations
/// began, and checks that the run exits 130.
fn interrupt_once_timing(f: &Fixture, campaign: &Path, after_ms: u64) {
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

fn expect_usage_error(f: &Fixture, campaign: &Path, needles: &[&str]) {
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
fn position_of(path: &Path, needle: &str) -> String {
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

#[test]
fn malformed_toml_names_file_line_and_column() {
    let f = Fixture::new();
    let campaign = f.campaign_raw("name = \"t\"\n[[days]]\nnumber = \n");
    expect_usage_error(&f, &campaign, &["campaign.toml:3:", "syntax", "README.md"]);
}

#[test]
fn unknown_kind_lists_the_known_ones() {
    let f = Fixture::new();
    let campaign = f.campaign(&TTFT_DAY.replace("first_token_latency", "warp_drive"));
    expect_usage_error(
        &f,
        &campaign,
        &[
            &position_of(&campaign, "kind = \"warp_drive\""),
            "unknown benchmark kind \"warp_drive\"",
            "first_token_latency, token_generation",
        ],
    );
}

#[test]
fn unknown_fields_are_errors_not_ignored() {
    let f = Fixture::new();
    let campaign = f.campaign(&TTFT_DAY.replace("iterations = 4", "iteratoins = 4"));
    expect_usage_error(&f, &campaign, &["iteratoins", "iterations"]);
    let campaign = f.campaign(&TTFT_DAY.replace(
        "prompt_lengths = [8, 32]",
        "prompt_lengths = [8]\nprompt_lenghts = [32]",
    ));
    expect_usage_error(
        &f,
        &campaign,
        &[
            &position_of(&campaign, "prompt_lenghts"),
            "params.prompt_lenghts",
            "unknown field",
        ],
    );
}

#[test]
fn settings_errors_point_at_their_line() {
    let f = Fixture::new();
    let campaign = f.campaign(TTFT_DAY);
    let text = fs::read_to_string(&campaign)
        .unwrap()
        .replace("threads = 1", "threads = 0");
    fs::write(&campaign, text).unwrap();
    expect_usage_error(
        &f,
        &campaign,
        &[
            &position_of(&campaign, "threads = 0"),
            "settings, field `threads`",
            "found 0; allowed: a whole number of compute threads from 1 to 1024",
        ],
    );
}

#[test]
fn bad_targets_name_the_metrics_of_the_kind() {
    let f = Fixture::new();
    let campaign = f.campaign(&TTFT_DAY.replace("ttft_ms.p50 < 60000", "tpot_ms.p50 < 1"));
    expect_usage_error(
        &f,
        &campaign,
        &["no metric \"tpot_ms\"", "ttft_ms, prefill_tokens_per_s"],
    );
}

#[test]
fn missing_model_path_is_a_campaign_error() {
    let f = Fixture::new();
    let campaign = f.campaign(&format!(
        "[models.real]\npath = \"no/such/model\"\n{TTFT_DAY}"
    ));
    expect_usage_error(
        &f,
        &campaign,
        &[
            &position_of(&campaign, "path = \"no/such/model\""),
            "model \"real\", field `path`",
            "no/such/model",
            "does not exist",
        ],
    );
}

#[test]
fn prompt_longer_than_the_model_allows_is_a_campaign_error() {
    let f = Fixture::new();
    let campaign = f.campaign(&TTFT_DAY.replace("[8, 32]", "[8, 4096]"));
    expect_usage_error(
        &f,
        &campaign,
        &["max_position_embeddings (1024)", "params.prompt_lengths"],
    );
}

#[test]
fn unwritable_output_folder_is_a_usage_error() {
    let f = Fixture::new();
    let campaign = f.campaign(TTFT_DAY);
    // A regular file where a folder should be: fails even for root.
    let blocker = f.path("blocker");
    fs::write(&blocker, b"").unwrap();
    cargo_bin_cmd!("campaign")
        .args(["run", "--day", "1", "--campaign"])
        .arg(&campaign)
        .arg("--out")
        .arg(blocker.join("results"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("blocker").and(predicate::str::contains("--out DIR")));
}

#[test]
fn missing_day_and_empty_day_are_usage_errors() {
    let f = Fixture::new();
    let campaign = f.campaign(&format!(
        "{TTFT_DAY}\n[[days]]\nnumber = 2\ntitle = \"later\"\n"
    ));
    cargo_bin_cmd!("campaign")
        .args(["run", "--day", "9", "--campaign"])
        .arg(&campaign)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no day 9").and(predicate::str::contains("1, 2")));
    cargo_bin_cmd!("campaign")
        .args(["run", "--day", "2", "--campaign"])
        .arg(&campaign)
        .arg("--out")
        .arg(f.out())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("lists no benchmarks yet"));
}

#[cfg(not(feature = "cuda"))]
#[test]
fn a_device_not_compiled_in_names_its_cargo_feature() {
    let f = Fixture::new();
    let campaign = f.campaign(TTFT_DAY);
    f.run(&campaign, &["--device", "cuda:0"])
        .code(2)
        .stderr(predicate::str::contains("--features cuda"));
}

#[test]
fn list_and_validate_describe_the_default_campaign() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let campaign = root.join("campaigns/default.toml");
    cargo_bin_cmd!("campaign")
        .arg("validate")
        .arg(&campaign)
        .assert()
        .success()
        .stdout(predicate::str::contains("ok (5 days"));
    for other in ["cpu_baseline.toml", "ssd_tiered.toml"] {
        cargo_bin_cmd!("campaign")
            .arg("validate")
            .arg(root.join("campaigns").join(other))
            .assert()
            .success();
    }
    cargo_bin_cmd!("campaign")
        .args(["list", "--campaign"])
        .arg(&campaign)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("Day 1: LLM inference baselines")
                .and(predicate::str::contains("[first_token_latency]"))
                .and(predicate::str::contains("target: ttft_ms.p50"))
                .and(predicate::str::contains("Day 5:")),
        );
}

#[test]
fn help_documents_the_exit_codes() {
    cargo_bin_cmd!("campaign")
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("4    a benchmark failed"));
}

fn day_with(benchmarks: &str) -> String {
    format!("[[days]]\nnumber = 1\ntitle = \"macro\"\n{benchmarks}")
}

const ENDURANCE_PAIR: &str = r#"
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

#[test]
fn endurance_calls_a_planted_leak_a_leak_and_a_steady_load_not() {
    let f = Fixture::new();
    let campaign = f.campaign(&day_with(ENDURANCE_PAIR));
    f.run(&campaign, &[])
        .success()
        .stderr(predicate::str::contains(
            "leaky[interval=100ms]: memory leak suspected",
        ))
        .stderr(predicate::str::contains("steady[interval=100ms]: memory leak").not());
    let report = f.report();
    let leaky = &result(&report, "leaky[interval=100ms]")["conclusion"];
    assert_eq!(leaky["leak_detected"], true, "{leaky:#}");
    // 4 MiB kept every 100 ms is 2400 MiB/min; the fit must see most of it.
    let slope = leaky["rss_trend"]["slope_mib_per_min"].as_f64().unwrap();
    assert!((1500.0..3500.0).contains(&slope), "slope {slope}");
    assert_eq!(leaky["rss_trend"]["samples"], 15);
    let steady = &result(&report, "steady[interval=100ms]")["conclusion"];
    assert_eq!(steady["leak_detected"], false, "{steady:#}");
    assert!(steady["latency_drift"]["drift_pct"].is_number());
}

#[test]
fn macrobenchmarks_report_every_request_stage_and_level() {
    let f = Fixture::new();
    let campaign = f.campaign(&day_with(
        r#"
[[days.benchmarks]]
name = "serving"
kind = "full_inference"
warmup = 0
iterations = 2
[days.benchmarks.params]
requests = 6
prompt_tokens = { distribution = "uniform", min = 4, max = 24 }
output_tokens = { distribution = "fixed", tokens = 5 }
concurrency = [1, 2]
rates_per_s = [50.0]
ttft_slo_ms = 60000.0
tpot_slo_ms = 60000.0

[[days.benchmarks]]
name = "scaling"
kind = "scaling"
warmup = 0
iterations = 1
[days.benchmarks.params]
requests = 4
prompt_tokens = 8
output_tokens = 3
concurrency = [1, 2]
batch_sizes = [1, 4]

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
iterations = 1
[days.benchmarks.params]
prompt_tokens = 8
output_tokens = 2
runs = [3]
kv_probe_tokens = 64
"#,
    ));
    f.run(&campaign, &[]).success();
    let report = f.report();
    for case in [
        "closed,concurrency=1",
        "closed,concurrency=2",
        "open,rate=50/s",
    ] {
        let r = result(&report, &format!("serving[{case}]"));
        let metrics = &r["metrics"];
        // Every request of both iterations, with 4 gaps each.
        assert_eq!(metrics["e2e_ms"]["summary"]["count"], 12, "{case}");
        assert_eq!(metrics["itl_ms"]["summary"]["count"], 48, "{case}");
        assert_eq!(metrics["goodput_pct"]["summary"]["mean"], 100.0, "{case}");
        assert_eq!(metrics["queue_ms"].is_object(), case.starts_with("open"));
        assert!(r["peak_rss_mib"].as_f64().unwrap() > 0.0);
    }
    let curves = report["scaling"].as_array().unwrap();
    let dims: Vec<&str> = curves
        .iter()
        .map(|c| c["dimension"].as_str().unwrap())
        .collect();
    assert_eq!(dims, ["concurrency", "batch_size"]);
    for c in curves {
        assert_eq!(c["levels"][0]["throughput_vs_first"], 1.0);
        assert_eq!(c["levels"].as_array().unwrap().len(), 2);
    }
    let workflow = result(&report, "workflow[agents=2]");
    assert_eq!(workflow["metrics"]["e2e_ms"]["summary"]["count"], 6);
    let shares = workflow["conclusion"]["stage_share_pct"]
        .as_object()
        .unwrap();
    let total: f64 = shares.values().map(|v| v.as_f64().unwrap()).sum();
    assert_eq!(shares.len(), 5);
    assert!(total > 0.0 && total <= 100.0 + 1e-9, "{shares:?}");
    assert!(
        workflow["metrics"]["compression_ratio"]["summary"]["mean"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let probe = &result(&report, "memory[kv_probe=64]")["conclusion"];
    // Tiny model: 2 × 2 layers × 1 kv head × head_dim 32 × 4 bytes.
    assert_eq!(probe["kv_bytes_per_token_predicted"], 512);
    assert!(result(&report, "memory[runs=3]")["conclusion"]["rss_growth_mib_median"].is_number());
}

#[test]
fn ctrl_c_during_endurance_keeps_the_samples_and_the_trend() {
    let f = Fixture::new();
    let campaign = f.campaign(&day_with(
        r#"
[[days.benchmarks]]
name = "soak"
kind = "endurance"
warmup = 0
iterations = 100000
[days.benchmarks.params]
prompt_tokens = 8
output_tokens = 4
sample_interval_ms = 100
"#,
    ));
    interrupt_once_timing(&f, &campaign, 1500);
    let report = f.report();
    let soak = result(&report, "soak[interval=100ms]");
    assert_eq!(soak["status"], "interrupted");
    let samples = soak["metrics"]["rss_mib"]["summary"]["count"]
        .as_u64()
        .unwrap();
    assert!(samples >= 3, "{samples} samples");
    assert_eq!(soak["conclusion"]["rss_trend"]["samples"], samples);
}

fn out_file(f: &Fixture, rel: &str) -> PathBuf {
    f.out().join("t").join(rel)
}

/// A planted day: one profiled `planted_work` benchmark at the shipped
/// sampling rate, analysed on its own.
fn planted_profile_day(day: u32, major_pct: u32, libc_pct: u32) -> String {
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
work_units = 20000000
major_pct = {major_pct}
libc_pct = {libc_pct}
"#
    )
}

#[test]
fn analysis_finds_every_planted_function_at_its_measured_share() {
    let f = Fixture::new();
    // Three planted splits, one with no time in libc.
    let trials = [(1, 60, 0), (2, 50, 25), (3, 70, 45)];
    let campaign = f.campaign(
        &trials
            .iter()
            .map(|(day, major, libc)| planted_profile_day(*day, *major, *libc))
            .collect::<String>(),
    );
    fs::write(
        f.path("remedies.toml"),
        r#"[[remedy]]
function_contains = "planted_hotspot"
remedy = "do less planted work"
speedup = [2.0, 2.0]
effort_days = 1
risk = "low"
source = "the test's own assumption"
"#,
    )
    .unwrap();
    for (day, _, libc) in trials {
        cargo_bin_cmd!("campaign")
            .args(["run", "--day", &day.to_string(), "--campaign"])
            .arg(&campaign)
            .arg("--out")
            .arg(f.out())
            .assert()
            .success()
            .stdout(predicate::str::contains("planted_hotspot_major"));
        let report = f.report_of_day(day);
        // The truth: each function's share of the iterations, by timers.
        let measured = report["results"][0]["conclusion"]["time_share_pct"]
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(measured.len(), if libc > 0 { 3 } else { 2 });
        // The profile counts all CPU time: recorded samples match the CPU
        // time at the sampling rate, and nothing in libc was dropped.
        let profile = &report["profiles"][0];
        assert_eq!(profile["frequency_hz"], 199, "the shipped default");
        let expected = profile["cpu_s"].as_f64().unwrap() * 199.0;
        let samples = profile["samples"].as_f64().unwrap();
        assert!(
            (samples - expected).abs() <= expected * 0.03 + 3.0,
            "{profile:#}"
        );
        let analysis: Value =
            serde_json::from_slice(&fs::read(out_file(&f, "bottleneck_analysis.json")).unwrap())
                .unwrap();
        let ranked = analysis["identified_bottlenecks"].as_array().unwrap();
        for (function, truth) in &measured {
            let found = ranked
                .iter()
                .find(|b| b["function"].as_str().unwrap().ends_with(function.as_str()))
                .unwrap_or_else(|| panic!("day {day}: {function} not found in {ranked:#?}"));
            let (share, truth) = (
                found["share_pct"].as_f64().unwrap(),
                truth.as_f64().unwrap(),
            );
            assert!(
                (share - truth).abs() <= 5.0,
                "day {day}: {function} measured {truth:.1} %, profiled {share:.1} %"
            );
        }
        if libc > 0 {
            let libc_row = ranked
                .iter()
                .find(|b| {
                    b["function"]
                        .as_str()
                        .unwrap()
                        .ends_with("planted_hotspot_libc")
                })
                .unwrap();
            assert_eq!(libc_row["component"], "memory copy", "{libc_row:#}");
        }
    }
    // Day 1 again for the ranking and its estimates.
    cargo_bin_cmd!("campaign")
        .args(["analyze", "--days", "1", "--campaign"])
        .arg(&campaign)
        .arg("--out")
        .arg(f.out())
        .assert()
        .success();
    let analysis: Value =
        serde_json::from_slice(&fs::read(out_file(&f, "bottleneck_analysis.json")).unwrap())
            .unwrap();
    let ranked = analysis["identified_bottlenecks"].as_array().unwrap();
    let share = |i: usize| ranked[i]["share_pct"].as_f64().unwrap();
    assert!(
        ranked[0]["function"]
            .as_str()
            .unwrap()
            .ends_with("planted_hotspot_major"),
        "{:#}",
        ranked[0]
    );
    assert!(
        ranked[1]["function"]
            .as_str()
            .unwrap()
            .ends_with("planted_hotspot_minor"),
        "{ranked:#?}"
    );
    assert_eq!(ranked[0]["severity"], "CRITICAL");
    assert_eq!(ranked[0]["risk"], "low");
    // Amdahl at p = share, s = 2, with the inputs printed beside it.
    let p = share(0) / 100.0;
    let expected = 1.0 / ((1.0 - p) + p / 2.0);
    assert!((ranked[0]["estimated_speedup"].as_f64().unwrap() - expected).abs() < 1e-9);
    assert!(ranked[0]["estimated_roi"].as_f64().unwrap() > 0.0);
    assert!(ranked[0]["evidence"]["samples"].as_u64().unwrap() > 100);
    // One remedy for both functions: its share is theirs together.
    let plan = &analysis["remedy_plan"][0];
    assert!((plan["share_pct"].as_f64().unwrap() - share(0) - share(1)).abs() < 1e-9);

    // Each day's report points to its own profile files.
    let report = f.report_of_day(1);
    let profile = &report["profiles"][0];
    let path = |key: &str| PathBuf::from(profile[key].as_str().unwrap());
    let svg = fs::read_to_string(path("flamegraph_path")).unwrap();
    assert!(svg.contains("planted_hotspot_major") && svg.contains("planted_hotspot_minor"));
    assert!(svg.contains("planted — day 1 —"));
    assert!(
        !svg.contains("planted_hotspot_libc"),
        "day 1 planted nothing in libc"
    );
    assert!(fs::metadata(path("pprof_path")).unwrap().len() > 100);
    let overhead = &report["profiles"][0]["overhead"][0];
    assert!(overhead["slowdown"].as_f64().unwrap() > 0.0);
    assert_eq!(overhead["metric"], "iteration_ms");

    // A differential graph of the profile against itself renders.
    let folded = path("folded_path");
    cargo_bin_cmd!("campaign")
        .args(["flamegraph", "--diff"])
        .arg(&folded)
        .arg(&folded)
        .arg("--output")
        .arg(f.path("diff.svg"))
        .assert()
        .success();
    assert!(
        fs::read_to_string(f.path("diff.svg"))
            .unwrap()
            .contains("planted_hotspot_minor")
    );
}

#[test]
fn day_4_analyses_real_inference_profiles_and_day_5_writes_the_roadmap() {
    let f = Fixture::new();
    let campaign = f.campaign(
        r#"[[days]]
number = 4
title = "analysis"
after = ["calibrate", "analyze"]
[[days.benchmarks]]
name = "decode"
kind = "token_generation"
warmup = 1
iterations = 600
profile = true
profile_hz = 199
[days.benchmarks.params]
prompt_lengths = [128]
output_tokens = 64

[[days]]
number = 5
title = "roadmap"
after = ["roadmap"]
"#,
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    fs::copy(
        root.join("campaigns/remedies.toml"),
        f.path("remedies.toml"),
    )
    .unwrap();
    let run = |day: &str| {
        cargo_bin_cmd!("campaign")
            .args(["run", "--quick", "--day", day, "--campaign"])
            .arg(&campaign)
            .arg("--out")
            .arg(f.out())
            .assert()
            .success()
    };
    cargo_bin_cmd!("campaign")
        .args(["run", "--day", "5", "--campaign"])
        .arg(&campaign)
        .arg("--out")
        .arg(f.out())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("run `campaign analyze`"));
    run("4").stdout(predicate::str::contains("matmul"));
    let analysis: Value =
        serde_json::from_slice(&fs::read(out_file(&f, "bottleneck_analysis.json")).unwrap())
            .unwrap();
    let components: Vec<&str> = analysis["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["component"].as_str().unwrap())
        .collect();
    assert!(
        components.iter().any(|c| c.starts_with("inference/")),
        "{components:?}"
    );
    let point = &analysis["roofline"]["points"][0];
    assert_eq!(point["phase"], "decode");
    assert!(point["mbu_pct"].as_f64().unwrap() > 0.0);
    assert!(["memory", "compute"].contains(&point["bound"].as_str().unwrap()));
    assert!(f.out().join("calibration.json").exists());

    run("5");
    let roadmap = fs::read_to_string(out_file(&f, "OPTIMIZATION_ROADMAP.md")).unwrap();
    for needle in [
        "## Executive summary",
        "## Week 1",
        "## Week 3",
        "(estimate)",
        "## Roofline",
    ] {
        assert!(roadmap.contains(needle), "{needle} missing:\n{roadmap}");
    }
}

fn planted_day(name: &str, slowdown: f64) -> String {
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

fn gate(f: &Fixture, campaign: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    cargo_bin_cmd!("campaign")
        .args(["run", "--day", "1", "--campaign"])
        .arg(campaign)
        .arg("--out")
        .arg(f.out())
        .args(args)
        .assert()
}

fn changes(f: &Fixture) -> Vec<Value> {
    let c: Value =
        serde_json::from_slice(&fs::read(out_file(f, "comparison.json")).unwrap()).unwrap();
    c["changes"].as_array().unwrap().clone()
}

fn state_of(changes: &[Value], case: &str, metric: &str) -> String {
    changes
        .iter()
        .find(|c| c["case"] == case && c["metric"] == metric)
        .unwrap_or_else(|| panic!("no change for {case} {metric}: {changes:#?}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn baseline_gate_flags_a_planted_slowdown_and_nothing_else() {
    let f = Fixture::new();
    let case = "work[units=6000000]";
    let campaign = |slowdown: f64| f.campaign(&planted_day("work", slowdown));
    // Saving a baseline runs every benchmark as often as the design
    // needs to declare a regression with an overlapping pair (2
    // comparisons here: 6 runs), and says so before measuring.
    gate(&f, &campaign(1.0), &["--save-baseline", "nightly"])
        .success()
        .stderr(predicate::str::contains(
            "verdict design: 6 baseline runs against 6 runs over 2 comparisons",
        ));
    let saved: Value =
        serde_json::from_slice(&fs::read(out_file(&f, "baselines/nightly/day_1.json")).unwrap())
            .unwrap();
    assert_eq!(saved["settings"]["runs"], 6);
    let runs = &saved["results"][0]["run_values"]["iteration_ms"];
    assert_eq!(runs.as_array().unwrap().len(), 6);

    // The same workload again passes. Tests run side by side on two
    // cores, so the threshold is wide enough for that noise.
    gate(
        &f,
        &campaign(1.0),
        &[
            "--runs",
            "5",
            "--baseline",
            "nightly",
            "--threshold-pct",
            "40",
        ],
    )
    .success();
    assert_ne!(state_of(&changes(&f), case, "iteration_ms"), "regressed");

    // A planted 2× slowdown: regressed, confirmed by the re-run, exit 3,
    // and a JUnit failure of type PerformanceRegression. Seven runs leave
    // room for an overlapping pair under machine noise.
    gate(
        &f,
        &campaign(2.0),
        &["--runs", "7", "--baseline", "nightly"],
    )
    .code(3)
    .stdout(predicate::str::contains("confirmed by a same-night re-run"));
    let all = changes(&f);
    assert_eq!(state_of(&all, case, "iteration_ms"), "regressed");
    // The work per second is the same; only the work per iteration doubled.
    assert_ne!(state_of(&all, case, "units_per_s"), "regressed");
    let junit = fs::read_to_string(out_file(&f, "junit.xml")).unwrap();
    assert!(junit.contains("type=\"PerformanceRegression\""), "{junit}");
    assert!(
        fs::read_to_string(out_file(&f, "summary.md"))
            .unwrap()
            .contains("**regressed**")
    );
    let csv = fs::read_to_string(out_file(&f, "results.csv")).unwrap();
    assert!(csv.starts_with("day,benchmark_name,status,metric"));
    let jsonl = fs::read_to_string(out_file(&f, "results.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 1);
    let first = changes(&f);
    let persistent = |all: &[Value]| {
        all.iter()
            .find(|c| c["case"] == case && c["metric"] == "iteration_ms")
            .unwrap()["persistent"]
            .clone()
    };
    assert_eq!(persistent(&first), false, "the first regressed night");
    // --advisory reports it and exits 0.
    gate(
        &f,
        &campaign(2.0),
        &["--runs", "6", "--baseline", "nightly", "--advisory"],
    )
    .success();
    // A third slowed night: it regressed on 2 of the last 3 compared
    // nights before it, so it is persistent.
    gate(&f, &campaign(2.0), &["--baseline", "nightly"]).code(3);
    assert_eq!(persistent(&changes(&f)), true);

    // Every finished run went into the machine's history.
    cargo_bin_cmd!("campaign")
        .args(["history", "iteration_ms", "--campaign"])
        .arg(campaign(1.0))
        .arg("--out")
        .arg(f.out())
        .assert()
        .success()
        .stdout(predicate::str::contains("work[units=6000000] iteration_ms"));

    // A missing baseline is a usage error before anything runs.
    gate(&f, &campaign(1.0), &["--baseline", "nope"])
        .code(2)
        .stderr(predicate::str::contains("--save-baseline nope"));
}

#[test]
fn interleaved_nights_against_another_build() {
    let f = Fixture::new();
    let slow = f.campaign(&planted_day("work", 2.0));
    let this = PathBuf::from(env!("CARGO_BIN_EXE_campaign"));
    // The same build on both sides: an A/A night, nothing regresses.
    gate(&f, &slow, &["--against-bin"])
        .code(2)
        .stderr(predicate::str::contains("a value is required"));
    let aa = cargo_bin_cmd!("campaign")
        .args(["run", "--day", "1", "--campaign"])
        .arg(&slow)
        .arg("--out")
        .arg(f.out())
        .arg("--against-bin")
        .arg(&this)
        .assert()
        .success()
        .stderr(predicate::str::contains("interleaved pairs"));
    let _ = aa;
    let comparison: Value =
        serde_json::from_slice(&fs::read(out_file(&f, "comparison.json")).unwrap()).unwrap();
    assert_eq!(comparison["design"]["pairing"], "paired");
    let pairs = comparison["design"]["current_runs"].as_u64().unwrap();
    assert!(comparison["design"]["can_declare"].as_bool().unwrap());
    assert_eq!(
        comparison["counts"].get("regressed"),
        None,
        "{comparison:#}"
    );
    let report = f.report();
    assert_eq!(report["settings"]["runs"], pairs);
    assert_eq!(
        report["results"][0]["run_values"]["iteration_ms"]
            .as_array()
            .unwrap()
            .len() as u64,
        pairs
    );
    // Against a build that does half the work: a wrapper that runs this
    // binary on the unslowed campaign. This build is twice as slow.
    let fast = f.path("fast.toml");
    fs::write(
        &fast,
        fs::read_to_string(&slow)
            .unwrap()
            .replace("slowdown = 2", "slowdown = 1"),
    )
    .unwrap();
    let wrapper = f.path("other-build.sh");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a do\n  shift\n  [ \"$a\" = \"{}\" ] && a=\"{}\"\n  set -- \"$@\" \"$a\"\ndone\nexec \"{}\" \"$@\"\n",
            slow.display(),
            fast.display(),
            this.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    cargo_bin_cmd!("campaign")
        .args(["run", "--day", "1", "--campaign"])
        .arg(&slow)
        .arg("--out")
        .arg(f.out())
        .arg("--against-bin")
        .arg(&wrapper)
        .assert()
        .code(3);
    let all = changes(&f);
    assert_eq!(
        state_of(&all, "work[units=6000000]", "iteration_ms"),
        "regressed"
    );
    // A program that does not exist is a usage error before anything runs.
    gate(&f, &slow, &["--against-bin", "/nonexistent/campaign"])
        .code(2)
        .stderr(predicate::str::contains("no such program"));
}

#[test]
fn two_runs_started_together_into_one_folder_keep_both_reports() {
    let f = Fixture::new();
    let campaign = f.campaign(&planted_day("work", 1.0));
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_campaign"))
            .args(["run", "--day", "1", "--campaign"])
            .arg(&campaign)
            .arg("--out")
            .arg(f.out())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (start(), start());
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let count = |dir: &str| fs::read_dir(f.out().join("t").join(dir)).unwrap().count();
    assert_eq!(count("daily_reports"), 2);
    assert_eq!(count("metrics_json"), 2);
    let ids: std::collections::BTreeSet<String> = fs::read_dir(f.out().join("t/daily_reports"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let report: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            let id = report["run_id"].as_str().unwrap().to_string();
            assert!(path.to_string_lossy().contains(&id));
            id
        })
        .collect();
    assert_eq!(ids.len(), 2);
}

#[test]
fn provisional_percentiles_are_marked_wherever_p99_is_shown() {
    let f = Fixture::new();
    // Five iterations: p99 needs 657 samples, so it is provisional.
    let campaign = f.campaign(&planted_day("work", 1.0));
    f.run(&campaign, &[])
        .success()
        .stdout(predicate::str::contains("* provisional: too few samples"));
    let report = f.report();
    assert!(
        report["results"][0]["metrics"]["iteration_ms"]["summary"]["provisional"]
            .as_array()
            .unwrap()
            .contains(&Value::from("p99"))
    );
    let csv = fs::read_to_string(out_file(&f, "results.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(header.last(), Some(&"provisional"));
    let row = csv.lines().find(|l| l.contains("iteration_ms")).unwrap();
    let marked = row.rsplit(',').next().unwrap().trim_matches('"');
    assert!(marked.split(' ').any(|p| p == "p99"), "{row}");
    let html = fs::read_to_string(out_file(&f, "html/day_1.html")).unwrap();
    assert!(html.contains("* provisional: too few samples"));
}

#[test]
fn runs_that_can_never_declare_a_regression_are_refused_before_measuring() {
    let f = Fixture::new();
    // Day 1 of the default campaign: 16 comparisons. Five runs a side
    // reach p = 2/252 at best, q = 0.127 after Benjamini–Hochberg.
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/default.toml");
    let refused = cargo_bin_cmd!("campaign")
        .args([
            "run",
            "--day",
            "1",
            "--runs",
            "5",
            "--save-baseline",
            "x",
            "--campaign",
        ])
        .arg(&default)
        .arg("--out")
        .arg(f.out())
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "over 16 comparisons cannot declare any regression",
        ))
        .stderr(predicate::str::contains("--runs 7 would"));
    let _ = refused;
    // Nothing was measured: no report.
    assert!(
        !f.out().join("llm-inference/daily_reports").exists()
            || fs::read_dir(f.out().join("llm-inference/daily_reports"))
                .unwrap()
                .count()
                == 0
    );
    // Three runs can never declare anything, even for one comparison.
    let campaign = f.campaign(&planted_day("work", 1.0));
    gate(&f, &campaign, &["--runs", "3", "--save-baseline", "x"])
        .code(2)
        .stderr(predicate::str::contains("--runs 6 would"));
}

/// A copy of `report` whose run-level values are scaled (and optionally
/// cut to `keep` runs) and whose cases are renamed by `rename`.
fn altered(report: &Value, scale: f64, keep: usize, rename: Option<(&str, &str)>) -> Value {
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

#[test]
fn compare_gives_each_state_from_run_level_values_only() {
    let f = Fixture::new();
    let campaign = f.campaign(&planted_day("work", 1.0));
    gate(&f, &campaign, &["--runs", "6"]).success();
    // The verdicts rest on run-level values only: give the real report
    // fixed ones with 1 % spread, so the states do not depend on how
    // noisy the machine was while the tests ran side by side.
    let mut base = f.report();
    let runs = [100.0, 101.0, 99.0, 100.5, 99.5, 100.2];
    let result = &mut base["results"][0];
    result["run_values"]["iteration_ms"] = Value::from(runs.to_vec());
    result["run_values"]["units_per_s"] =
        Value::from(runs.iter().map(|r| 6e6 / r * 1e3).collect::<Vec<f64>>());
    let write = |name: &str, v: &Value| {
        let p = f.path(name);
        fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
        p
    };
    let a = write("a.json", &base);
    let compare = |b: &Path| {
        cargo_bin_cmd!("campaign")
            .arg("compare")
            .arg(&a)
            .arg(b)
            .assert()
    };
    let case = "work[units=6000000]";
    let state = |out: &assert_cmd::assert::Assert, metric: &str| -> String {
        let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        text.lines()
            .find(|l| l.contains(case) && l.contains(metric))
            .and_then(|l| l.split('┆').nth(2))
            .unwrap_or_else(|| panic!("no {metric} row:\n{text}"))
            .trim()
            .to_string()
    };
    // The same run-level values: unchanged.
    let same = compare(&write("same.json", &altered(&base, 1.0, 6, None))).success();
    assert_eq!(state(&same, "iteration_ms"), "unchanged");
    // 2 % slower, below the 5 % threshold: not a regression.
    let small = compare(&write("small.json", &altered(&base, 1.02, 6, None))).success();
    assert_ne!(state(&small, "iteration_ms"), "regressed");
    // 2× slower in every run: regressed, exit 3.
    let slow = compare(&write("slow.json", &altered(&base, 2.0, 6, None))).code(3);
    assert_eq!(state(&slow, "iteration_ms"), "regressed");
    assert_eq!(state(&slow, "units_per_s"), "regressed");
    // 2× slower but one run only: never a verdict.
    let one = compare(&write("one.json", &altered(&base, 2.0, 1, None))).success();
    assert_eq!(state(&one, "iteration_ms"), "inconclusive");
    // A renamed benchmark: missing and new.
    let renamed = altered(&base, 1.0, 6, Some(("work[", "work2[")));
    let out = compare(&write("renamed.json", &renamed)).success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        text.lines()
            .any(|l| l.contains(case) && l.contains("missing")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("work2[units=6000000]") && l.contains("new"))
    );
}

/// Debian's Chromium, where `.ci/run` installs it.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let out = Command::new("which").arg(name).output().ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
}

#[test]
fn html_report_is_self_contained_and_its_plots_render_in_chromium() {
    let f = Fixture::new();
    // A storage sweep too: its cases carry `value_bytes`, which the kind
    // declares as its sweep axis.
    let storage = r#"
[[days.benchmarks]]
name = "writes"
kind = "storage_write"
iterations = 2
[days.benchmarks.params]
value_kib = [1, 8]
commit = ["non_durable"]
ops = 20
"#;
    let campaign = f.campaign(&format!("{TTFT_DAY}{DECODE_BENCH}{storage}"));
    f.run(&campaign, &["--save-baseline", "b"]).success();
    f.run(&campaign, &["--baseline", "b"]).success();
    cargo_bin_cmd!("campaign")
        .args(["report", "--html", "--day", "1", "--campaign"])
        .arg(&campaign)
        .arg("--out")
        .arg(f.out())
        .assert()
        .success();
    let page = out_file(&f, "html/day_1.html");
    let html = fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch (SVG namespaces are names, not loads).
    for needle in ["<link", " src=", "@import", "url("] {
        assert!(!html.contains(needle), "{needle} in the page");
    }
    for needle in [
        "ttft[prompt_len=32]",
        "ttft: ttft_ms p50 by prompt_len",
        "prompt length (tokens)",
        "writes (non_durable): put_ms p50 by value_bytes",
        "value size (bytes)",
        "CDF",
        "Against baseline b",
        "✓ ttft_ms.p50 &lt; 60000",
    ] {
        assert!(html.contains(needle), "{needle} missing");
    }

    let Some(browser) = chromium() else {
        eprintln!("skipped the browser check: Chromium is not installed (.ci/run installs it)");
        return;
    };
    let url = format!("file://{}", page.display());
    let dom = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--virtual-time-budget=2000",
            "--dump-dom",
        ])
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(!dom.contains("data-script-errors"), "script errors: {dom}");
    let rendered: usize = dom
        .split("data-plots-rendered=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "the page's script did not run: {}",
                &dom[..dom.len().min(500)]
            )
        });
    let plots = html.matches("class=\"plot\"").count();
    assert!(plots >= 4, "{plots} plots");
    assert_eq!(
        rendered, plots,
        "every plot has a size and marks in the browser"
    );
    // A screenshot to look at, beside the page.
    let shot = out_file(&f, "html/day_1.png");
    let status = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1400,2400",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .status()
        .unwrap();
    assert!(status.success() && fs::metadata(&shot).unwrap().len() > 10_000);
    if let Ok(dir) = std::env::var("CAMPAIGN_KEEP_SCREENSHOT") {
        fs::copy(&shot, Path::new(&dir).join("day_1.png")).unwrap();
        fs::copy(&page, Path::new(&dir).join("day_1.html")).unwrap();
    }
}
