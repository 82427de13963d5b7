//! `kind = "command"`: external programs measured in the same campaign and
//! report, and the shipped peer campaign against llama.cpp, with a stub
//! `llama-bench` that writes what the real one writes.

use serial_test::parallel;

use crate::fixture::*;

/// A `llama-bench` that parses the real one's flags, refuses a model file
/// that is not there, logs its arguments and writes one JSONL record per
/// test with known per-repetition tokens/s.
const STUB_LLAMA_BENCH: &str = r#"#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls.log"
p=512; n=128; m=""; t=4
while [ $# -gt 0 ]; do
  case "$1" in
    -p) p=$2; shift;; -n) n=$2; shift;; -m) m=$2; shift;; -t) t=$2; shift;;
  esac
  shift
done
[ -f "$m" ] || { echo "error: failed to load model '$m'" >&2; exit 1; }
echo "llama_model_loader: loaded meta data" >&2
if [ "$p" -gt 0 ]; then
  echo "{\"model_filename\": \"$m\", \"n_threads\": $t, \"n_prompt\": $p, \"n_gen\": 0, \"avg_ts\": 2000.5, \"samples_ts\": [1999.0, 2002.0]}"
fi
if [ "$n" -gt 0 ]; then
  echo "{\"model_filename\": \"$m\", \"n_threads\": $t, \"n_prompt\": 0, \"n_gen\": $n, \"avg_ts\": 250.75, \"samples_ts\": [250.0, 251.5]}"
fi
"#;

/// The stub `llama-bench` in the fixture's `bin` folder; returns the folder.
fn install_stub_llama_bench(f: &Fixture) -> PathBuf {
    let stubs = f.path("bin");
    fs::create_dir_all(&stubs).unwrap();
    let stub = stubs.join("llama-bench");
    fs::write(&stub, STUB_LLAMA_BENCH).unwrap();
    fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    stubs
}

fn peer_campaign() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/peer_llamacpp.toml")
}

fn run_peer(f: &Fixture, path: &str) -> assert_cmd::assert::Assert {
    cargo_bin_cmd!("campaign")
        .args(["run", "--day", "1", "--quick", "--no-profile", "--campaign"])
        .arg(peer_campaign())
        .args([
            "--only",
            "llamacpp_pp512_q8_0",
            "--only",
            "llamacpp_tg128_q4_0",
        ])
        .arg("--out")
        .arg(f.out())
        .env("PATH", path)
        .assert()
}

fn newest_report(dir: &Path) -> Value {
    let mut reports: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    reports.sort();
    serde_json::from_slice(&fs::read(reports.last().unwrap()).unwrap()).unwrap()
}

fn samples(result: &Value, metric: &str) -> Vec<f64> {
    result["metrics"][metric]["raw_samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no {metric} in {result}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
#[parallel]
fn the_peer_campaign_reads_llama_bench_from_path_and_skips_without_it() {
    let f = Fixture::new();
    let stubs = install_stub_llama_bench(&f);

    let path = format!("{}:/usr/bin:/bin", stubs.display());
    run_peer(&f, &path).success();
    let reports = f.out().join("peer-llamacpp").join("daily_reports");
    let report = newest_report(&reports);
    let pp = result(&report, "llamacpp_pp512_q8_0[llama-bench]");
    let tg = result(&report, "llamacpp_tg128_q4_0[llama-bench]");
    for (r, planted) in [(pp, [1999.0, 2002.0]), (tg, [250.0, 251.5])] {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(samples(r, "tokens_per_s"), planted);
        assert_eq!(r["metrics"]["tokens_per_s"]["unit"], "tokens/s");
        assert_eq!(r["throughput"], (planted[0] + planted[1]) / 2.0);
        assert_eq!(r["throughput_metric"], "tokens_per_s");
        assert_eq!(samples(r, "wall_ms").len(), 1, "one process per iteration");
    }

    // The placeholders became the files of the campaign's two models and the
    // run's thread count.
    let calls = fs::read_to_string(stubs.join("calls.log")).unwrap();
    let calls: Vec<Vec<&str>> = calls.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let model = |call: &[&str]| PathBuf::from(call[1]);
    assert_eq!(
        calls[0][2..],
        ["-p", "512", "-n", "0", "-t", "1", "-r", "5", "-o", "jsonl"]
    );
    assert_eq!(
        calls[1][2..],
        ["-p", "0", "-n", "128", "-t", "1", "-r", "5", "-o", "jsonl"]
    );
    for call in &calls {
        assert!(
            model(call).is_file() && call[1].ends_with(".gguf"),
            "{call:?}"
        );
    }
    assert_ne!(
        model(&calls[0]),
        model(&calls[1]),
        "q8_0 and q4_0 are two files"
    );

    // Without llama-bench, both are skipped with the reason, and the run passes.
    fs::remove_dir_all(&reports).unwrap();
    let empty = f.path("empty");
    fs::create_dir_all(&empty).unwrap();
    run_peer(&f, empty.to_str().unwrap())
        .success()
        .stdout(predicate::str::contains("2 skipped"));
    let report = newest_report(&reports);
    assert_eq!(report["summary"]["skipped"], 2);
    assert_eq!(report["summary"]["failed"], 0);
    let skipped = result(&report, "llamacpp_pp512_q8_0");
    assert_eq!(skipped["status"], "skipped");
    let reason = skipped["error"].as_str().unwrap();
    assert!(reason.starts_with("llama-bench is not on PATH"), "{reason}");
    assert!(skipped["targets"].as_array().unwrap().is_empty());
    let html = fs::read_to_string(
        f.out()
            .join("peer-llamacpp")
            .join("html")
            .join("day_1.html"),
    )
    .unwrap();
    assert!(
        html.contains("llamacpp_pp512_q8_0 skipped: llama-bench is not on PATH"),
        "the page says why"
    );
}

#[test]
#[parallel]
fn a_commands_runs_become_samples_and_its_failures_stay_in_their_benchmark() {
    let f = Fixture::new();
    let bench = |name: &str, script: &str, metrics: &str| {
        format!(
            r#"
[[days.benchmarks]]
name = "{name}"
kind = "command"
warmup = 1
iterations = 2
[days.benchmarks.params]
argv = ["sh", "-c", '{script}']
repeat = 2
metrics = {metrics}
"#
        )
    };
    let campaign = f.campaign(&day_with(&format!(
        "{}{}{}",
        bench(
            "emits",
            r#"echo "{\"result\": {\"x_ms\": [1.5, 2.5]}}""#,
            r#"{ x_ms = "$.result.x_ms", hits_pct = { path = "$.result.x_ms[0]", unit = "%", higher_is_better = true } }"#
        ),
        bench("exits", "echo oops >&2; exit 3", r#"{ x_ms = "$.x" }"#),
        bench("misses", r#"echo "{\"y\": 1}""#, r#"{ x_ms = "$.x" }"#),
    )));
    let assert = f.run(&campaign, &["--no-profile"]).code(4);
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    assert!(stdout.contains("1 ok, 2 failed"), "{stdout}");

    let report = f.report();
    let emits = result(&report, "emits[sh]");
    assert_eq!(emits["status"], "ok");
    // 2 iterations × repeat 2 runs × 2 values; warm-up not recorded.
    assert_eq!(samples(emits, "x_ms"), [1.5, 2.5].repeat(4));
    assert_eq!(samples(emits, "hits_pct"), [1.5; 4]);
    assert_eq!(emits["metrics"]["hits_pct"]["unit"], "%");
    assert_eq!(emits["metrics"]["hits_pct"]["higher_is_better"], true);
    assert_eq!(samples(emits, "wall_ms").len(), 4);
    assert_eq!(emits["latency_metric"], "wall_ms");

    let exits = result(&report, "exits[sh]");
    assert_eq!(exits["status"], "failed");
    let error = exits["error"].as_str().unwrap();
    assert!(
        error.contains("exit status: 3") && error.contains("oops"),
        "{error}"
    );

    let misses = result(&report, "misses[sh]");
    assert_eq!(misses["status"], "failed");
    let error = misses["error"].as_str().unwrap();
    assert!(
        error.contains(r#"metric x_ms: $.x matched nothing in the output of sh: "{\"y\": 1}""#),
        "{error}"
    );
}

#[test]
#[parallel]
fn bad_command_params_are_refused_at_their_keys() {
    let f = Fixture::new();
    let day = |params: &str| {
        day_with(&format!(
            "[[days.benchmarks]]\nname = \"peer\"\nkind = \"command\"\n[days.benchmarks.params]\n{params}\n"
        ))
    };
    let cases: [(&str, &[&str]); 5] = [
        (
            "argv = [\"x\"]\nmetrics = { x_ms = \"$.[\" }",
            &["metrics.x_ms", "is not a JSONPath"],
        ),
        (
            "argv = [\"x\", \"-m\", \"{model.nope}\"]\nmetrics = { x_ms = \"$.a\" }",
            &[
                "argv[2]",
                "{model.nope} names no model",
                "its models: default",
            ],
        ),
        (
            "argv = [\"x\"]\nmetrics = { hit_rate_pct = \"$.a\" }",
            &[
                "metrics.hit_rate_pct",
                "neither its unit nor whether higher is better",
            ],
        ),
        (
            "argv = []\nmetrics = { x_ms = \"$.a\" }",
            &["argv", "found no program"],
        ),
        (
            "argv = [\"x\"]\nmetrics = { x_ms = \"$.a\" }\nheadline = \"y_ms\"",
            &[
                "headline",
                "\"y_ms\" is not a metric",
                "allowed: wall_ms, x_ms",
            ],
        ),
    ];
    for (params, needles) in cases {
        let campaign = f.campaign(&day(params));
        expect_usage_error(&f, &campaign, needles);
    }
}

/// A program that floods its output, and one whose child would outlive it
/// holding the output pipe: each fails its own benchmark promptly, with a
/// message saying what happened and the bound, and the day goes on.
#[test]
#[parallel]
fn a_flooding_or_orphaning_program_fails_only_its_benchmark_and_promptly() {
    let f = Fixture::new();
    let campaign = f.campaign(&day_with(
        r#"
[[days.benchmarks]]
name = "flood"
kind = "command"
warmup = 0
iterations = 1
[days.benchmarks.params]
argv = ["sh", "-c", "yes '{\"x_ms\":1}' | head -c 300000000"]
output = "jsonl"
metrics = { x_ms = "$[*].x_ms" }

[[days.benchmarks]]
name = "orphan"
kind = "command"
warmup = 0
iterations = 1
[days.benchmarks.params]
argv = ["sh", "-c", "(sleep 1000 &) ; sleep 1000"]
run_timeout_s = 2
metrics = { x_ms = "$.x_ms" }

[[days.benchmarks]]
name = "fine"
kind = "command"
warmup = 0
iterations = 1
[days.benchmarks.params]
argv = ["sh", "-c", "echo '{\"x_ms\": 3}'"]
metrics = { x_ms = "$.x_ms" }
"#,
    ));
    let started = std::time::Instant::now();
    f.run(&campaign, &["--no-profile"]).code(4);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(50),
        "the day took {:?}",
        started.elapsed()
    );
    let report = f.report();
    let error = |name: &str| result(&report, name)["error"].as_str().unwrap().to_string();
    assert!(
        error("flood[sh]").contains("more than 16 MiB of output"),
        "{}",
        error("flood[sh]")
    );
    assert!(
        error("orphan[sh]")
            .contains("time limit of 2 s and was killed, with every process it started"),
        "{}",
        error("orphan[sh]")
    );
    assert_eq!(result(&report, "fine[sh]")["status"], "ok");
}

/// A day with our engine and llama-bench on the same file and test pairs
/// them: one row per test in the report, with ours ÷ theirs from the two
/// sides' samples, a sentence on the console and a table and chart on the
/// page. A small quantized model and short tests keep it quick; the stub
/// reports known tokens/s.
#[test]
#[parallel]
fn our_engine_and_a_peer_on_the_same_file_and_test_are_paired() {
    let f = Fixture::new();
    let stubs = install_stub_llama_bench(&f);
    let peer = |name: &str, p: u32, n: u32| {
        format!(
            "[[days.benchmarks]]\nname = \"{name}\"\nkind = \"command\"\nwarmup = 0\niterations = 1\n[days.benchmarks.params]\nargv = [\"llama-bench\", \"-m\", \"{{model.q8}}\", \"-p\", \"{p}\", \"-n\", \"{n}\", \"-t\", \"{{threads}}\", \"-r\", \"2\", \"-o\", \"jsonl\"]\noutput = \"jsonl\"\nmetrics = {{ tokens_per_s = \"$[*].samples_ts\" }}\nheadline = \"tokens_per_s\"\n"
        )
    };
    let campaign = f.campaign_raw(&format!(
        "name = \"p\"\n[settings]\nthreads = 1\n[models.q8.synthetic]\nseed = 1\nvocab_size = 512\nhidden_size = 64\nintermediate_size = 128\nnum_hidden_layers = 1\nnum_attention_heads = 2\nnum_key_value_heads = 1\nmax_position_embeddings = 256\nquantization = \"q8_0\"\n[[days]]\nnumber = 1\ntitle = \"peers\"\n[[days.benchmarks]]\nname = \"ours\"\nkind = \"llama_bench\"\nwarmup = 0\niterations = 3\n[days.benchmarks.params]\nmodels = [\"q8\"]\nn_prompt = \"32\"\nn_gen = \"8\"\n{}{}",
        peer("peer_pp", 32, 0),
        peer("peer_tg", 0, 8)
    ));
    let assert = cargo_bin_cmd!("campaign")
        .args(["run", "--day", "1", "--no-profile", "--campaign"])
        .arg(&campaign)
        .arg("--out")
        .arg(f.out())
        .env("PATH", format!("{}:/usr/bin:/bin", stubs.display()))
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    let report = newest_report(&f.out().join("p").join("daily_reports"));
    let peers = report["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "{peers:#?}");
    for (row, test, planted) in [
        (&peers[0], "pp32", [1999.0, 2002.0]),
        (&peers[1], "tg8", [250.0, 251.5]),
    ] {
        assert_eq!(row["test"], test, "{row:#}");
        assert_eq!(row["weights"], "model.gguf");
        assert_eq!(row["model"], "q8", "our side names its model");
        assert_eq!(row["threads"], 1);
        assert_eq!(row["samples"], serde_json::json!([3, 2]));
        let ours = result(&report, row["ours"].as_str().unwrap());
        assert_eq!(ours["kind"], "llama_bench");
        let ours_samples = samples(ours, "tokens_per_s");
        assert_eq!(ours_samples.len(), 3);
        // The Hodges–Lehmann ratio of the two sides' samples, by hand.
        let mut logs: Vec<f64> = ours_samples
            .iter()
            .flat_map(|o| planted.iter().map(move |p| (o / p).ln()))
            .collect();
        logs.sort_by(f64::total_cmp);
        let expected = ((logs[2] + logs[3]) / 2.0).exp();
        let ratio = row["ratio"].as_f64().unwrap();
        assert!(
            (ratio - expected).abs() < 1e-9 * expected,
            "×{ratio} against ×{expected}"
        );
        assert!(
            stdout.contains(&format!(
                "beside a peer: {test} on q8 (model.gguf), 1 thread: ours"
            )),
            "{stdout}"
        );
    }
    let html = fs::read_to_string(f.out().join("p").join("html").join("day_1.html")).unwrap();
    assert!(
        html.contains("<h2>Beside a peer</h2>"),
        "the page has the table"
    );
    assert!(
        html.contains("Beside a peer: pp32 on q8 (model.gguf)"),
        "and the finding"
    );
    assert!(html.contains("ours ÷ peer, tokens/s"), "and the chart");
}
