//! Each benchmark kind, run by the binary on real components at small sizes.

use serial_test::{parallel, serial};

use crate::fixture::*;

#[test]
#[parallel]
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
#[parallel]
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
#[parallel]
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
#[parallel]
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
#[parallel]
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
#[serial]
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
#[parallel]
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
#[parallel]
fn macrobenchmarks_report_every_request_stage_and_level() {
    let f = Fixture::new();
    let campaign = f.campaign(&day_with(
        &[
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

"#,
            WORKFLOW_AND_MEMORY,
        ]
        .concat(),
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
#[serial]
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
