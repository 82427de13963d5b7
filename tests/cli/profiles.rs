//! Profiles, bottleneck analysis and the roadmap, against planted truth.

use serial_test::serial;

use crate::fixture::*;

#[test]
#[serial]
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
        assert_eq!(profile["requested_hz"], 199, "the shipped default");
        assert_eq!(
            profile["effective_hz"], 199,
            "below the delivered rate: {profile:#}"
        );
        assert!(
            profile["delivered_hz"].as_f64().unwrap() >= 199.0,
            "{profile:#}"
        );
        assert!(
            !report["warnings"].to_string().contains("profile_hz"),
            "the default rate is not warned: {:#}",
            report["warnings"]
        );
        let expected = profile["cpu_s"].as_f64().unwrap() * 199.0;
        let samples = profile["samples"].as_f64().unwrap();
        // Nothing dropped: no shortfall beyond the timer's granularity. The
        // profiling timer may fire a little more often than getrusage's
        // tick-based CPU time says (seen up to 4 % on this VM), never much.
        assert!(samples >= expected * 0.97 - 3.0, "{profile:#}");
        assert!(samples <= expected * 1.10 + 3.0, "{profile:#}");
        let analysis = read_analysis(&f);
        let ranked = analysis["identified_bottlenecks"].as_array().unwrap();
        assert!(
            analysis["lost_share_pct"].as_f64().unwrap() < 5.0,
            "{analysis:#}"
        );
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
    analyze(&f, &campaign, "1", &[]).success();
    let analysis = read_analysis(&f);
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
#[serial]
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
    let analysis = read_analysis(&f);
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
        "### Do first",
        "## Week 1",
        "## Week 3",
        "(estimate)",
        "## Roofline",
        "## Measured headline of each case",
    ] {
        assert!(roadmap.contains(needle), "{needle} missing:\n{roadmap}");
    }
    let proposed = |analysis: &Value| -> Vec<String> {
        analysis["remedy_plan"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["remedy"].as_str().unwrap().to_string())
            .collect()
    };
    let quantize = "Quantize the weights";
    assert!(
        proposed(&analysis).iter().any(|r| r.starts_with(quantize)),
        "f32 weights: {:?}",
        proposed(&analysis)
    );

    // The same profiles, analysed for the model written as q8_0 GGUF:
    // quantizing is what it already does (its toggle does not load), and
    // our kernels are already its default; neither is proposed, and the
    // notes say why.
    let text = fs::read_to_string(&campaign).unwrap();
    fs::write(
        &campaign,
        text.replace("seed = 7\n", "seed = 7\nquantization = \"q8_0\"\n"),
    )
    .unwrap();
    analyze(&f, &campaign, "4", &[]).success();
    let analysis = read_analysis(&f);
    assert!(
        !proposed(&analysis).iter().any(|r| r.starts_with(quantize)),
        "{:?}",
        proposed(&analysis)
    );
    let notes: Vec<&str> = analysis["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("remedy \"Quantize the weights")
                && n.contains("is not proposed: its toggle (model option quantize = \"q8_0\"")
                && n.contains("changes no model of")
                && n.contains("model \"default\" does not take it")),
        "{notes:#?}"
    );
}

/// A campaign kept outside this repository has no remedies.toml beside
/// it: the analysis uses the catalog built into the binary and says so; a
/// campaign's own catalog can extend it, and a missing --remedies is exit 2.
#[test]
#[serial]
fn the_remedy_catalog_travels_with_the_binary() {
    let f = Fixture::new();
    let campaign = f.campaign(&planted_profile_day(1, 60, 0));
    assert!(!f.path("remedies.toml").exists());
    f.run(&campaign, &[]).success();
    let source = read_analysis(&f)["remedies_file"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(source.contains("built-in"), "{source}");

    fs::write(
        f.path("remedies.toml"),
        r#"extends_built_in = true
[[remedy]]
function_contains = "planted_hotspot"
remedy = "do less planted work"
speedup = [2.0, 2.0]
effort_days = 1
risk = "low"
source = "the test's own assumption"
"#,
    )
    .unwrap();
    let analyze = |extra: &[&str]| analyze(&f, &campaign, "1", extra);
    analyze(&[]).success();
    let extended = read_analysis(&f);
    let source = extended["remedies_file"].as_str().unwrap();
    assert!(
        source.contains("remedies.toml, then the built-in"),
        "{source}"
    );
    let plan = extended["remedy_plan"].to_string();
    assert!(plan.contains("do less planted work"), "{plan}");

    analyze(&["--remedies", "nowhere.toml"])
        .code(2)
        .stderr(predicate::str::contains(
            "cannot read the remedy catalog nowhere.toml",
        ));
}

/// Asking for more than the profiler delivers (1000 Hz; this kernel's
/// timer gives about 250 per CPU-second) is warned and capped: the report
/// names the requested, effective and measured delivered rates, few
/// samples are lost, and the planted split is found within each share's
/// stated 95 % interval (a lost share would have pushed the planted shares
/// below it, as 25 % in memcpy once showed as 6.4 %).
#[test]
#[serial]
fn a_rate_above_the_delivered_one_is_warned_capped_and_the_split_still_found() {
    let f = Fixture::new();
    let campaign =
        f.campaign(&planted_profile_day(1, 50, 25).replace("iterations = 12", "iterations = 16"));
    let run = f.run(&campaign, &["--profile-hz", "1000"]).success();
    let output = String::from_utf8_lossy(&run.get_output().stdout).into_owned()
        + &String::from_utf8_lossy(&run.get_output().stderr);
    let report = f.report();
    let profile = &report["profiles"][0];
    let delivered = profile["delivered_hz"].as_f64().unwrap();
    let effective = profile["effective_hz"].as_f64().unwrap();
    assert_eq!(profile["requested_hz"], 1000, "{profile:#}");
    assert!(effective <= delivered, "{profile:#}");
    if delivered < 1000.0 {
        let warning = report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .find(|w| w.contains("profile_hz 1000 Hz"))
            .unwrap_or_else(|| panic!("no warning: {:#}", report["warnings"]));
        assert!(warning.contains(&format!("{delivered:.0} Hz")), "{warning}");
        assert!(output.contains("profile_hz 1000 Hz"), "{output}");
    }
    // Capped, the sampler loses almost nothing (at 1000 Hz it lost 75 %).
    let lost = profile["lost_share_pct"].as_f64().unwrap();
    assert!(lost < 5.0, "{profile:#}");
    let measured = report["results"][0]["conclusion"]["time_share_pct"]
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(measured.len(), 3);
    let analysis = read_analysis(&f);
    assert_eq!(analysis["profiles"][0]["rate_hz"].as_f64(), Some(effective));
    let ranked = analysis["identified_bottlenecks"].as_array().unwrap();
    assert!(
        ranked
            .iter()
            .all(|b| !b["function"].as_str().unwrap().contains("unattributed")),
        "{ranked:#?}"
    );
    // The truth is timed in the unprofiled pass, the profile sampled in
    // the other one. The kind times its parts on the thread's CPU clock
    // and sizes each iteration's copy to its own split, so on a machine
    // with one build beside it the split moved at most 0.5 points between
    // passes (three runs). Under the full cli suite, with other tests and
    // builds running, one share was once 2.9 points below its interval:
    // the sampler's tick-based process clock and the thread's exact one
    // part ways there. Every share is within its 95 % interval give or
    // take 3 points; a share the sampler loses is far outside it (memcpy
    // once showed 6.4 % for 25 %). No rule on how many are strictly
    // inside: with shares that move together, "2 of 3" fails about 3 %
    // of runs that sample perfectly.
    const PASS_DRIFT_PP: f64 = 3.0;
    for (function, truth) in &measured {
        let found = ranked
            .iter()
            .find(|b| b["function"].as_str().unwrap().ends_with(function.as_str()))
            .unwrap_or_else(|| panic!("{function} not found in {ranked:#?}"));
        let truth = truth.as_f64().unwrap();
        let [lo, hi] = [0, 1].map(|i| found["share_ci95_pct"][i].as_f64().unwrap());
        let stated = format!(
            "{function}: measured {truth:.1} %, profiled {:.1} % ({lo:.1}–{hi:.1})",
            found["share_pct"]
        );
        assert!(hi - lo < 10.0, "{stated}: too few samples to test anything");
        assert!(
            lo - PASS_DRIFT_PP <= truth && truth <= hi + PASS_DRIFT_PP,
            "{stated}"
        );
        assert!(found["severity_range"].is_array(), "{found:#}");
    }
    // The console table shows the intervals and the lost share's line.
    for needle in ["95 % CI", "samples lost:", "wanted to ±5 points"] {
        assert!(output.contains(needle), "{needle} missing:\n{output}");
    }
}
