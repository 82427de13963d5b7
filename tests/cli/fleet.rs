//! `campaign fleet` without a cluster: the files `plan` writes pass the
//! validators users run on them (check-jsonschema's GitHub workflow
//! schema, kubernetes-validate --strict), and a fleet of local processes
//! with different machine classes runs one campaign's shards against one
//! PostgreSQL store, some killed inside their store write and retried.

use std::collections::BTreeMap;

use serial_test::{parallel, serial};

use crate::fixture::*;
use crate::postgres::TestPostgres;

/// Three small days of known work.
const FLEET_CAMPAIGN: &str = r#"name = "fleet"
[settings]
threads = 1
[[days]]
number = 1
title = "one"
[[days.benchmarks]]
name = "a"
kind = "planted_work"
warmup = 1
iterations = 3
[days.benchmarks.params]
work_units = 200000
[[days]]
number = 2
title = "two"
[[days.benchmarks]]
name = "b"
kind = "planted_work"
warmup = 1
iterations = 3
[days.benchmarks.params]
work_units = 300000
[[days]]
number = 3
title = "three"
[[days.benchmarks]]
name = "c"
kind = "planted_work"
warmup = 1
iterations = 3
[days.benchmarks.params]
work_units = 250000
"#;

const MACHINES: &str = r#"[fleet]
image = "registry.example.com/campaign:1.0"
namespace = "perf"

[[class]]
name = "laptop"
runs_on = ["self-hosted", "laptop"]
node_selector = { "campaign.dev/class" = "laptop" }

[[class]]
name = "server"
node_selector = { "node.kubernetes.io/instance-type" = "c7i.4xlarge" }
"#;

/// The campaign and machines files, written once (shards running side by
/// side read them while later commands are built).
fn files(f: &Fixture) -> (PathBuf, PathBuf) {
    let campaign = f.path("fleet.toml");
    let machines = f.path("machines.toml");
    if !campaign.exists() {
        fs::write(&campaign, FLEET_CAMPAIGN).unwrap();
        fs::write(&machines, MACHINES).unwrap();
    }
    (campaign, machines)
}

fn fleet(f: &Fixture, action: &str, extra: &[&str]) -> Command {
    fleet_in(f, action, &f.out(), extra)
}

fn fleet_in(f: &Fixture, action: &str, out: &Path, extra: &[&str]) -> Command {
    let (campaign, machines) = files(f);
    let mut c = Command::new(env!("CARGO_BIN_EXE_campaign"));
    c.args(["fleet", action, "--campaign"])
        .arg(campaign)
        .arg("--machines")
        .arg(machines)
        .arg("--out")
        .arg(out)
        .args(extra);
    c
}

/// A validator users run, when installed (CI installs both and sets
/// CAMPAIGN_REQUIRE_VALIDATORS): `Some(passed)`.
fn validate(program: &str, args: &[&str], file: &Path) -> Option<bool> {
    let ran = Command::new(program).args(args).arg(file).output();
    match ran {
        Ok(out) => Some(out.status.success()),
        Err(_) => {
            assert!(
                std::env::var_os("CAMPAIGN_REQUIRE_VALIDATORS").is_none(),
                "{program} is required here and missing"
            );
            eprintln!("{program} is not installed: not checked");
            None
        }
    }
}

#[test]
#[parallel]
fn the_plan_validates_against_the_github_and_kubernetes_schemas() {
    let f = Fixture::new();
    let out = fleet(&f, "plan", &["--fleet-run", "20261204"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = f.out().join("fleet").join("fleet");
    let shards: Value =
        serde_json::from_slice(&fs::read(dir.join("shards.json")).unwrap()).unwrap();
    let ids: Vec<&str> = shards
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["shard"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 6, "2 classes × 3 days: {ids:?}");
    assert!(ids.contains(&"20261204/server/day-3"));

    let workflow = dir.join("github-workflow.yml");
    let text = fs::read_to_string(&workflow).unwrap();
    assert!(text.contains("fleet run --campaign"), "{text}");
    assert_eq!(text.matches("- class: ").count(), 6, "{text}");
    let github = ["--builtin-schema", "vendor.github-workflows"];
    if let Some(passed) = validate("check-jsonschema", &github, &workflow) {
        assert!(passed, "the workflow fails GitHub's schema:\n{text}");
        // The validator does check: a job without runs-on is refused.
        let broken = f.path("broken.yml");
        fs::write(&broken, text.replace("runs-on:", "runs-where:")).unwrap();
        assert_eq!(validate("check-jsonschema", &github, &broken), Some(false));
    }
    for class in ["laptop", "server"] {
        let job = dir.join("kubernetes").join(format!("{class}.yaml"));
        let text = fs::read_to_string(&job).unwrap();
        assert!(text.contains("completionMode: Indexed"), "{text}");
        assert!(text.contains("$(JOB_COMPLETION_INDEX)"), "{text}");
        if let Some(passed) = validate("kubernetes-validate", &["--strict"], &job) {
            assert!(
                passed,
                "the {class} Job fails the Kubernetes schema:\n{text}"
            );
            let broken = f.path(&format!("broken-{class}.yaml"));
            fs::write(
                &broken,
                text.replace(
                    "completionMode: Indexed",
                    "completionMode: Indexed\n  colour: red",
                ),
            )
            .unwrap();
            assert_eq!(
                validate("kubernetes-validate", &["--strict"], &broken),
                Some(false)
            );
        }
    }

    // A class that names a day the campaign lacks: its line, the days there are.
    let bad = f.path("bad_machines.toml");
    fs::write(&bad, "[[class]]\nname = \"gpu\"\ndays = [1, 9]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_campaign"))
        .args(["fleet", "plan", "--campaign"])
        .arg(f.path("fleet.toml"))
        .arg("--machines")
        .arg(&bad)
        .arg("--out")
        .arg(f.out())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad_machines.toml:3:") && stderr.contains("no day 9"),
        "{stderr}"
    );
}

/// One shard's process, its own results folder, against `store`.
fn shard(f: &Fixture, store: &str, run: &str, class: &str, day: u32) -> Command {
    // Each shard its own folder, as on its own machine.
    let out = f.path(&format!("out_{run}_{class}_{day}"));
    let mut c = fleet_in(
        f,
        "run",
        &out,
        &[
            "--fleet-run",
            run,
            "--class",
            class,
            "--day",
            &day.to_string(),
            "--store",
            store,
        ],
    );
    c.stdout(Stdio::null());
    c
}

/// (class, day, series) → (unit, runs) of a merged report, and its values.
type Merged = (Vec<String>, BTreeMap<String, f64>);

fn merged(f: &Fixture, store: &str, run: &str) -> Merged {
    let out = fleet(
        f,
        "report",
        &["--fleet-run", run, "--store", store, "--json"],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut shape = Vec::new();
    let mut values = BTreeMap::new();
    for v in report["values"].as_array().unwrap() {
        let key = format!(
            "{} day {} {}",
            v["class"].as_str().unwrap(),
            v["day"],
            v["series"].as_str().unwrap()
        );
        shape.push(format!("{key} {} runs={}", v["unit"], v["runs"]));
        values.insert(key, v["median"].as_f64().unwrap());
    }
    shape.sort();
    (shape, values)
}

#[test]
#[serial]
fn six_shards_at_once_two_killed_and_retried_store_each_shard_once() {
    let Some(server) = TestPostgres::start() else {
        eprintln!("PostgreSQL is not installed here: the fleet test needs it");
        return;
    };
    let f = Fixture::new();
    files(&f);
    let store = server.database("fleet");
    let shards: Vec<(&str, u32)> = ["laptop", "server"]
        .into_iter()
        .flat_map(|c| (1..=3).map(move |d| (c, d)))
        .collect();
    // All six at once; two pause inside their store write and are killed
    // there: nothing of them is committed.
    let killed = [("laptop", 2), ("server", 3)];
    let mut children: Vec<(&str, u32, std::process::Child)> = shards
        .iter()
        .map(|&(class, day)| {
            let mut c = shard(&f, &store, "concurrent", class, day);
            if killed.contains(&(class, day)) {
                c.env("CAMPAIGN_STORE_PAUSE_BEFORE_COMMIT_MS", "60000")
                    .stderr(Stdio::piped());
            } else {
                c.stderr(Stdio::null());
            }
            (class, day, c.spawn().unwrap())
        })
        .collect();
    for (class, day, child) in &mut children {
        if killed.contains(&(*class, *day)) {
            let stderr = child.stderr.take().unwrap();
            let mut seen = Vec::new();
            let paused = BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .inspect(|line| seen.push(line.clone()))
                .any(|line| line.contains("store: paused before commit"));
            assert!(
                paused,
                "{class} day {day} never reached its store write:\n{}",
                seen.join("\n")
            );
            child.kill().unwrap();
        }
    }
    for (class, day, child) in &mut children {
        let status = child.wait().unwrap();
        assert_eq!(
            status.success(),
            !killed.contains(&(*class, *day)),
            "{class} day {day}: {status:?}"
        );
    }
    // The status names the two killed shards as still running.
    let status = fleet(
        &f,
        "status",
        &["--fleet-run", "concurrent", "--store", &store, "--json"],
    )
    .output()
    .unwrap();
    assert_eq!(status.status.code(), Some(4));
    let lines: Value = serde_json::from_slice(&status.stdout).unwrap();
    let running: Vec<String> = lines
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["state"] == "running")
        .map(|l| l["shard"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        running,
        ["concurrent/laptop/day-2", "concurrent/server/day-3"],
        "{lines:#}"
    );
    // Retried: the two killed, and one that had finished (its night is
    // replaced, not added).
    for (class, day) in [("laptop", 2), ("server", 3), ("laptop", 1)] {
        let out = shard(&f, &store, "concurrent", class, day)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(out.success(), "retry of {class} day {day}");
    }
    let status = fleet(
        &f,
        "status",
        &["--fleet-run", "concurrent", "--store", &store],
    )
    .output()
    .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let mut s =
        campaign::store::open(&campaign::store::StoreLocation::Postgres(store.clone())).unwrap();
    assert_eq!(s.run_ids().unwrap().len(), 6, "one night per shard");

    // The same shards one after another, as another fleet run.
    for &(class, day) in &shards {
        let out = shard(&f, &store, "sequential", class, day)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(out.success());
    }
    assert_eq!(s.run_ids().unwrap().len(), 12);
    let (concurrent_shape, concurrent_values) = merged(&f, &store, "concurrent");
    let (sequential_shape, _) = merged(&f, &store, "sequential");
    assert_eq!(concurrent_shape.len(), 6 * 2, "{concurrent_shape:#?}");
    // `campaign report --fleet` is the same merged report.
    let (campaign, machines) = files(&f);
    let out = Command::new(env!("CARGO_BIN_EXE_campaign"))
        .args([
            "report",
            "--fleet",
            "concurrent",
            "--store",
            &store,
            "--campaign",
        ])
        .arg(&campaign)
        .arg("--machines")
        .arg(&machines)
        .arg("--out")
        .arg(f.out())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("| series | unit | laptop | server |"),
        "{text}"
    );
    assert_eq!(
        concurrent_shape.join("\n"),
        sequential_shape.join("\n"),
        "the merged reports differ in what they hold"
    );
    // The dashboard draws the classes side by side: one line per class.
    let site = f.path("site");
    let out = Command::new(env!("CARGO_BIN_EXE_campaign"))
        .args(["dashboard", "--store", &store, "--export"])
        .arg(&site)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let day = fs::read_to_string(site.join("days").join("fleet_day_2.html")).unwrap();
    assert!(
        day.contains("laptop-") && day.contains("server-"),
        "both classes' machine keys on the day page"
    );
    // Every merged value is its own shard's: the run value in the day
    // report that shard wrote in its own folder (the last retry's).
    for &(class, day) in &shards {
        let reports = f
            .path(&format!("out_concurrent_{class}_{day}"))
            .join("fleet")
            .join("daily_reports");
        let mut files: Vec<PathBuf> = fs::read_dir(&reports)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let report: Value =
            serde_json::from_slice(&fs::read(files.last().unwrap()).unwrap()).unwrap();
        assert_eq!(report["environment"]["machine_class"], class);
        for r in report["results"].as_array().unwrap() {
            for (metric, values) in r["run_values"].as_object().unwrap() {
                let key = format!(
                    "{class} day {day} {} {metric}",
                    r["benchmark_name"].as_str().unwrap()
                );
                let stored = concurrent_values.get(&key).unwrap_or_else(|| {
                    panic!("{key} missing from the merged report: {concurrent_values:#?}")
                });
                let value = values[0].as_f64().unwrap();
                assert!(
                    (stored - value).abs() <= 1e-9 * value.abs(),
                    "{key}: {stored} vs {value}"
                );
            }
        }
    }
}
