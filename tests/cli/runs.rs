//! What a run does with its results: exit codes, failures, timeouts, Ctrl-C, output files.

use serial_test::{parallel, serial};

use crate::fixture::*;

#[test]
#[parallel]
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
#[parallel]
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
#[parallel]
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
#[parallel]
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
#[serial]
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
#[serial]
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

#[test]
#[parallel]
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
#[parallel]
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
