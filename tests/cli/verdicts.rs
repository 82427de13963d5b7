//! Regression verdicts at the shipped settings, through the binary.

use serial_test::{parallel, serial};

use crate::fixture::*;

#[test]
#[serial]
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
    // It asks for a bisect too, from a folder that is no git checkout:
    // the bisect says why it cannot run, and the night keeps its exit 3.
    cargo_bin_cmd!("campaign")
        .current_dir(f.path(""))
        .args(["run", "--day", "1", "--campaign"])
        .arg(campaign(2.0))
        .arg("--out")
        .arg(f.out())
        .args(["--baseline", "nightly", "--bisect-on-regression", "HEAD~1"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "bisecting the regression from HEAD~1 to HEAD",
        ))
        .stderr(predicate::str::contains("the bisect did not run: "))
        .stderr(predicate::str::contains("not inside a git checkout"));
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
#[serial]
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
        .stderr(predicate::str::contains("interleaved pairs"))
        .stderr(predicate::str::contains(
            "untimed warm-up run: the other build",
        ))
        .stderr(predicate::str::contains("untimed warm-up run: this build"));
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
    assert_eq!(report["settings"]["separate_processes"], true);
    // The ABBA order is drawn afresh each night and recorded.
    let first_seed = report["settings"]["run_order_seed"].as_u64().unwrap();
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
    let second_seed = f.report()["settings"]["run_order_seed"].as_u64().unwrap();
    assert_ne!(first_seed, second_seed, "each night draws its own order");
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
#[parallel]
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

#[test]
#[parallel]
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

/// A night's runs are child processes after an untimed warm-up; a case
/// that fails in a later run, and a child that dies, are counted and
/// warned with their reasons, cost only their own slots, and fail the
/// night (exit 4) as a failure in the first run would.
#[test]
#[parallel]
fn a_failed_or_lost_later_run_is_counted_and_fails_the_night() {
    let f = Fixture::new();
    let counter = f.path("invocations");
    // Invocation 1 is the warm-up child; 2 is run 1; 3 (run 2) fails; 4
    // (run 3) kills its own `campaign run` child; the rest succeed.
    let script = format!(
        r#"n=$(($(cat {c} 2>/dev/null || echo 0) + 1)); echo $n > {c}; [ $n -eq 3 ] && {{ echo flaked >&2; exit 1; }}; [ $n -eq 4 ] && kill -9 $PPID; echo "{{\"x_ms\": 5}}""#,
        c = counter.display()
    );
    let campaign = f.campaign(&day_with(&format!(
        r#"
[[days.benchmarks]]
name = "work"
kind = "planted_work"
iterations = 2
[days.benchmarks.params]
work_units = 100000

[[days.benchmarks]]
name = "flaky"
kind = "command"
warmup = 0
iterations = 1
[days.benchmarks.params]
argv = ["sh", "-c", '{script}']
metrics = {{ x_ms = "$.x_ms" }}
"#
    )));
    let assert = f
        .run(&campaign, &["--runs", "6", "--no-profile"])
        .code(4)
        .stderr(predicate::str::contains("separate run: an untimed warm-up"))
        .stderr(predicate::str::contains("run 3 left no report"));
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    assert!(
        stdout.contains("3 separate runs failed or lost"),
        "{stdout}"
    );
    // The warm-up child ran the command too: 1 + 6 invocations.
    assert_eq!(fs::read_to_string(&counter).unwrap().trim(), "7");

    let report = f.report();
    assert_eq!(report["settings"]["runs"], 6);
    assert_eq!(report["settings"]["separate_processes"], true);
    assert_eq!(report["summary"]["failed_runs"], 3);
    let work = result(&report, "work[units=100000]");
    assert_eq!(work["status"], "ok");
    // Run 3's child died: every case lost that slot, and only that one.
    assert_eq!(work["run_slots"], serde_json::json!([0, 1, 3, 4, 5]));
    assert_eq!(
        work["run_values"]["iteration_ms"].as_array().unwrap().len(),
        5
    );
    let flaky = result(&report, "flaky[sh]");
    assert_eq!(flaky["status"], "ok");
    assert_eq!(flaky["run_slots"], serde_json::json!([0, 3, 4, 5]));
    let failed = flaky["failed_runs"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert_eq!(failed[0]["slot"], 1);
    assert!(
        failed[0]["reason"].as_str().unwrap().contains("flaked"),
        "{failed:#?}"
    );
    assert_eq!(failed[1]["slot"], 2);
    assert!(
        failed[1]["reason"]
            .as_str()
            .unwrap()
            .contains("without a day report"),
        "{failed:#?}"
    );
    // The CI files say so too.
    let junit = fs::read_to_string(out_file(&f, "junit.xml")).unwrap();
    assert!(
        junit.contains("type=\"RunFailed\" message=\"run 2: "),
        "{junit}"
    );
}

/// Every case of a metric slower together is one machine shift, not N
/// regressions: a stored baseline cannot tell a slower machine from a
/// change that slows everything, so the night is too noisy to tell (exit
/// 5) and says to compare the builds. A case that moved beyond the shift
/// still fails the night.
#[test]
#[serial]
fn a_night_where_every_case_moved_together_is_too_noisy_to_tell() {
    let f = Fixture::new();
    let day = |slowdowns: [f64; 3]| {
        let benchmarks: String = slowdowns
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "[[days.benchmarks]]\nname = \"w{i}\"\nkind = \"planted_work\"\niterations = 3\n[days.benchmarks.params]\nwork_units = {}\nslowdown = {s}\n",
                    300_000 * (i + 1)
                )
            })
            .collect();
        f.campaign(&day_with(&benchmarks))
    };
    let base = day([1.0, 1.0, 1.0]);
    f.run(&base, &["--save-baseline", "b", "--no-profile"])
        .success();
    let all = day([2.0, 2.0, 2.0]);
    f.run(&all, &["--baseline", "b", "--no-profile"])
        .code(5)
        .stdout(predicate::str::contains(
            "too noisy to tell: every case of iteration_ms moved together",
        ))
        .stdout(predicate::str::contains("--against-bin"));
    let c: Value =
        serde_json::from_slice(&fs::read(out_file(&f, "comparison.json")).unwrap()).unwrap();
    assert_eq!(c["outcome"], "too_noisy");
    let shifts = c["machine_shifts"].as_array().unwrap();
    let iteration = shifts
        .iter()
        .find(|m| m["metric"] == "iteration_ms")
        .unwrap();
    assert_eq!(iteration["state"], "slower");
    // Twice the work; the machine's own noise moves it (tests run beside
    // each other on two cores).
    let ratio = iteration["ratio"].as_f64().unwrap();
    assert!((1.5..3.0).contains(&ratio), "×{ratio}");
    // The work per second did not move with the work: its common shift is
    // the machine's alone (a rate's ratio is "worse" when it falls), so the
    // time's shift over the rate's is the planted ×2 whatever load the
    // tests beside this one put on the machine between the two nights.
    let rate = shifts
        .iter()
        .find(|m| m["metric"] == "units_per_s")
        .unwrap();
    let rate_ratio = rate["ratio"].as_f64().unwrap();
    let planted = ratio / rate_ratio;
    assert!(
        (1.6..2.5).contains(&planted),
        "time ×{ratio}, rate ×{rate_ratio}: planted ×{planted}"
    );
    assert_eq!(c["counts"].get("regressed"), None, "{c:#}");
    // One case three times as slow again on top: it stands out, exit 3.
    let one = day([2.0, 6.0, 2.0]);
    f.run(&one, &["--baseline", "b", "--no-profile"]).code(3);
    let all = changes(&f);
    assert_eq!(
        state_of(&all, "w1[units=600000]", "iteration_ms"),
        "regressed"
    );
    assert_ne!(
        state_of(&all, "w0[units=300000]", "iteration_ms"),
        "regressed"
    );
}

/// The first timed run of a night takes the profiles, and they land in
/// this run's folders (its child's own folder is removed).
#[test]
#[parallel]
fn separate_runs_keep_the_first_runs_profile_in_the_nights_folders() {
    let f = Fixture::new();
    let campaign = f.campaign(&planted_profile_day(1, 60, 0));
    f.run(&campaign, &["--runs", "3", "--profile"]).success();
    let report = f.report();
    assert_eq!(report["settings"]["runs"], 3);
    let profiles = report["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 1, "one profiled pass, from the first run");
    for key in ["folded_path", "flamegraph_path"] {
        let path = PathBuf::from(profiles[0][key].as_str().unwrap());
        assert!(path.starts_with(f.out()), "{key}: {}", path.display());
        assert!(path.is_file(), "{key}: {}", path.display());
        assert!(
            !path.to_string_lossy().contains("scratch"),
            "{}",
            path.display()
        );
    }
}

/// Nights of a real benchmark, the work doubled from the 13th on: the
/// history finds the change where it was planted and nowhere else, in
/// every format.
#[test]
#[serial]
fn history_finds_the_night_a_planted_slowdown_began() {
    let f = Fixture::new();
    // One campaign file, rewritten each night as a commit would.
    for night in 0..24 {
        let slowdown = if night < 12 { 1.0 } else { 2.0 };
        // Three runs a night: a night's median, as a nightly job keeps,
        // not one run that a busy moment on two cores can double.
        gate(
            &f,
            &f.campaign(&planted_day("work", slowdown)),
            &["--runs", "3"],
        )
        .success();
    }
    let campaign = f.campaign(&planted_day("work", 1.0));
    let history = |format: &str| {
        let out = cargo_bin_cmd!("campaign")
            .args(["history", "iteration_ms", "--format", format, "--campaign"])
            .arg(&campaign)
            .arg("--out")
            .arg(f.out())
            .assert()
            .success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    };
    let json: Value = serde_json::from_str(&history("json")).unwrap();
    let series = json.as_array().unwrap();
    assert_eq!(series.len(), 1, "{json}");
    let changes = &series[0]["changes"];
    // Quiet nights make a step of a fraction of a percent significant (a
    // +0.45 % one at a noise of 0.36 % has been seen): it may be listed,
    // marked minor, but the only change above the threshold is the one
    // planted.
    let above = |list: &str| -> Vec<Value> {
        changes[list]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["minor"] == false)
            .cloned()
            .collect()
    };
    assert_eq!(series[0]["threshold_pct"], 5.0, "{json}");
    let points = above("change_points");
    assert_eq!(points.len(), 1, "{changes}");
    let night = points[0]["night"].as_u64().unwrap();
    assert!((11..=13).contains(&night), "{changes}");
    assert!(points[0]["shift_pct"].as_f64().unwrap() > 50.0, "{changes}");
    assert_eq!(points[0]["provisional"], false);
    assert!(above("creeps").is_empty(), "{changes}");
    let minor_points = changes["change_points"].as_array().unwrap().len() - 1;
    // Every night around it was built from this checkout; a clean one
    // (as in CI) is called not a code change, a dirty one is not.
    let context = series[0]["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["night"] == night && c["kind"] == "change point")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(context["kind"], "change point");
    let commits = context["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 1, "{context}");
    let commit = commits[0].as_str().unwrap();
    let clean = commit != "unknown" && !commit.ends_with("-dirty");
    assert_eq!(context["same_clean_commit"], clean, "{context}");
    assert_eq!(context["environment_known"], true);

    let text = history("text");
    assert!(text.contains("◀ change point +"), "{text}");
    assert_eq!(
        text.matches(", minor: below the 5 % threshold").count(),
        minor_points,
        "{text}"
    );
    assert_eq!(text.contains("not a code change"), clean, "{text}");
    let csv = history("csv");
    assert!(csv.starts_with("series,night,recorded_at,value"), "{csv}");
    assert_eq!(csv.lines().count(), 25, "{csv}");
    assert_eq!(csv.matches(",change point,").count(), 1, "{csv}");

    // The dashboard of the same store: the change on its front page, its
    // night's page, and that night's whole report from the store.
    let site = f.path("site");
    cargo_bin_cmd!("campaign")
        .args(["dashboard", "--recent", "24", "--out"])
        .arg(f.out())
        .arg("--export")
        .arg(&site)
        .assert()
        .success();
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    let row = index
        .split("<tr class=\"alert\">")
        .find(|row| row.contains(">change point<") && row.contains("iteration_ms<"))
        .unwrap_or_else(|| panic!("{index}"));
    let night_link = row
        .split("href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let night = std::fs::read_to_string(site.join(night_link)).unwrap();
    let report_link = night
        .split("class=\"report\" href=\"../")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("{night}"));
    let report = std::fs::read_to_string(site.join(report_link)).unwrap();
    assert!(
        report.contains("work[") || report.contains(">work<"),
        "{report}"
    );
    assert!(report.contains("day 1: gate"), "{report}");
}
