//! What a person looks at: the HTML page, rendered in headless Chromium.

use serial_test::parallel;

use crate::fixture::*;

#[test]
#[parallel]
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
    // The page is under test, not the verdict: tests running beside this
    // one on two cores can move one case of an A/A pair beyond the gate.
    f.run(&campaign, &["--baseline", "b", "--advisory"])
        .success();
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

    check_in_chromium(&f, &page, 4);
}

/// Renders `page` in headless Chromium: no script errors, every plot has a
/// size and marks, at least `min_plots` of them; then a screenshot beside
/// it (copied to `$CAMPAIGN_KEEP_SCREENSHOT` when set, to look at).
fn check_in_chromium(f: &Fixture, page: &Path, min_plots: usize) {
    let Some(browser) = chromium() else {
        eprintln!("skipped the browser check: Chromium is not installed (.ci/run installs it)");
        return;
    };
    let html = fs::read_to_string(page).unwrap();
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
    assert!(plots >= min_plots, "{plots} plots");
    assert_eq!(
        rendered, plots,
        "every plot has a size and marks in the browser"
    );
    let name = page.file_stem().unwrap().to_string_lossy().into_owned();
    let shot = page.with_extension("png");
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
        let dir = Path::new(&dir).join(f.out().file_name().unwrap());
        fs::create_dir_all(&dir).unwrap();
        fs::copy(&shot, dir.join(format!("{name}.png"))).unwrap();
        fs::copy(page, dir.join(format!("{name}.html"))).unwrap();
    }
}

#[test]
#[parallel]
fn conclusions_read_as_sentences_with_charts_and_the_index_links_every_day() {
    let f = Fixture::new();
    let campaign = f.campaign(&format!("{TTFT_DAY}{ENDURANCE_PAIR}{WORKFLOW_AND_MEMORY}"));
    f.run(&campaign, &[]).success();
    let page = out_file(&f, "html/day_1.html");
    let html = fs::read_to_string(&page).unwrap();
    for needle in [
        // The verdicts as sentences, in the summary and under each case.
        "What this day found",
        "leaky[interval=100ms]: Memory leak suspected: RSS changed +",
        "steady[interval=100ms]: No leak",
        "Most of a request&apos;s time is",
        "RSS grows",
        // And the chart or table that goes with each.
        "leaky[interval=100ms]: RSS over time",
        "95 % CI of the slope",
        "workflow[agents=2]: share of end-to-end time",
        "memory[runs=3]: RSS growth per iteration of 3 runs",
        "KV bytes per token",
    ] {
        assert!(html.contains(needle), "{needle} missing");
    }
    assert!(!html.contains("<pre>"), "no conclusion is a JSON dump");

    let index = fs::read_to_string(out_file(&f, "index.html")).unwrap();
    for needle in [
        "href=\"html/day_1.html\"",
        "href=\"daily_reports/day_1_report_",
        "results: ",
        "No roadmap yet",
    ] {
        assert!(index.contains(needle), "{needle} missing from the index");
    }
    check_in_chromium(&f, &page, 6);
}

/// A timeline of `n` requests every 10 ms: each waits 15–40 ms for its
/// first token and streams 40–60 ms; from the 100th to the 160th a busy
/// spell holds them back before their send; every 60th fails. Seeded, so
/// the page is the same every time.
fn planted_timeline(n: usize) -> Value {
    let mut state: u64 = 7;
    let mut draw = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let requests: Vec<Value> = (0..n)
        .map(|i| {
            let scheduled = i as f64 * 10.0 + draw() * 4.0;
            let queued = if (100..160).contains(&i) {
                (i - 100) as f64 * 3.0 * draw().max(0.5)
            } else {
                0.0
            };
            let sent = scheduled + queued + 0.05 + draw() * 0.3;
            let first = sent + 15.0 + draw() * 25.0;
            let finish = first + 40.0 + draw() * 20.0;
            if i % 60 == 59 {
                serde_json::json!({"scheduled_ms": scheduled, "sent_ms": sent,
                    "first_token_ms": null, "finish_ms": sent + 8.0, "ok": false})
            } else {
                serde_json::json!({"scheduled_ms": scheduled, "sent_ms": sent,
                    "first_token_ms": first, "finish_ms": finish, "ok": true,
                    "cached_tokens": if i % 3 == 0 { 16 } else { 0 }})
            }
        })
        .collect();
    serde_json::json!({"iteration": 2, "total": n, "requests": requests})
}

/// A capacity search as `conclusion.capacity` holds it: probes bracketing
/// then bisecting about 118 requests/s under p99 TTFT ≤ 50 ms.
fn planted_capacity() -> Value {
    let probe = |rate: f64, verdict: Value, requests: u64, broke: u64| {
        serde_json::json!({
            "rate_per_s": rate,
            "judgement": {"verdict": verdict, "requests": requests,
                          "effective_requests": requests as f64 / 3.0, "broke": [broke, 0]},
            "sent": requests + 100, "elapsed_s": requests as f64 / rate,
            "window_s": [1.0, requests as f64 / rate], "goodput_per_s": rate,
            "achieved_per_s": rate.min(180.0), "over_saturated": rate > 200.0,
        })
    };
    let pass = serde_json::json!({"verdict": "pass"});
    let fail = serde_json::json!({"verdict": "fail", "slo": 0});
    serde_json::json!({
        "slos": [{"name": "ttft_ms p99 ≤ 50", "allowed_share": 0.01},
                 {"name": "errors ≤ 0 %", "allowed_share": 0.0}],
        "saturation": {"completed_per_s": 205.0, "requests": 1024, "elapsed_s": 5.0},
        "probes": [
            probe(102.5, pass.clone(), 400, 1),
            probe(205.0, fail.clone(), 200, 180),
            probe(145.0, fail.clone(), 400, 41),
            probe(122.0, serde_json::json!({"verdict": "unsettled"}), 3200, 38),
            probe(112.0, pass, 1600, 6),
            probe(133.0, fail, 800, 25),
        ],
        "result": {"capacity_per_s": 118.4, "interval_per_s": [112.0, 133.0],
                   "confidence_pct": 95.0, "crossed": false, "probes": 7,
                   "search_s": 41.0, "grid_s": 160.0},
    })
}

#[test]
#[parallel]
fn load_curves_capacity_and_request_timelines_render_in_chromium() {
    let f = Fixture::new();
    // Open-loop cases at three rates, measured for real on the tiny model.
    let campaign = f.campaign(&day_with(
        r#"
[[days.benchmarks]]
name = "serving"
kind = "full_inference"
warmup = 0
iterations = 2
[days.benchmarks.params]
requests = 8
prompt_tokens = 8
output_tokens = { distribution = "fixed", tokens = 4 }
rates_per_s = [20.0, 50.0, 100.0]
ttft_slo_ms = 60000.0
tpot_slo_ms = 60000.0
"#,
    ));
    f.run(&campaign, &[]).success();
    let dir = f.out().join("t").join("daily_reports");
    let mut reports: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    reports.sort();
    let path = reports.pop().unwrap();
    let mut report: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let results = report["results"].as_array_mut().unwrap();
    assert_eq!(results.len(), 3, "three open-loop cases");
    // SLOs within the measured range (the tiny model answers in
    // milliseconds), a timeline in one case's findings and a capacity
    // search beside them, then the page from that report.
    let middle_p99 = results[1]["metrics"]["ttft_ms"]["summary"]["p99"]
        .as_f64()
        .unwrap();
    let middle_tpot = results[1]["metrics"]["tpot_ms"]["summary"]["p50"]
        .as_f64()
        .unwrap();
    for r in results.iter_mut() {
        r["context"]["workload"]["ttft_slo_ms"] = serde_json::json!(middle_p99);
        r["context"]["workload"]["tpot_slo_ms"] = serde_json::json!(middle_tpot);
    }
    results[2]["conclusion"] = serde_json::json!({"timeline": planted_timeline(300)});
    let mut capacity = results[0].clone();
    capacity["benchmark_name"] = "capacity".into();
    capacity["benchmark"] = "capacity".into();
    capacity["kind"] = "capacity".into();
    capacity["case"] = Value::Null;
    capacity["parameters"] = serde_json::json!({});
    capacity["metrics"] = serde_json::json!({});
    capacity["latency_metric"] = Value::Null;
    capacity["conclusion"] = serde_json::json!({"capacity": planted_capacity()});
    results.push(capacity);
    fs::write(&path, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
    cargo_bin_cmd!("campaign")
        .args(["report", "--html", "--day", "1", "--campaign"])
        .arg(&campaign)
        .arg("--out")
        .arg(f.out())
        .assert()
        .success();
    let page = out_file(&f, "html/day_1.html");
    let html = fs::read_to_string(&page).unwrap();
    for needle in [
        "<h2>Latency by offered rate</h2>",
        "serving: TTFT by offered rate",
        "serving: TPOT by offered rate",
        "class=\"rule slo\"",
        "capacity: probes of the capacity search",
        "class=\"span\"",
        "class=\"rule estimate\"",
        "serving[open,rate=100/s]: 300 requests of timed iteration 2",
        "data-zoom=\"reset\"",
    ] {
        assert!(html.contains(needle), "{needle} missing");
    }
    for needle in ["<link", " src=", "@import", "url("] {
        assert!(!html.contains(needle), "{needle} in the page");
    }
    check_in_chromium(&f, &page, 5);

    // The zoom works in the browser: a wheel turn, then a drag over the
    // middle half, narrow the time shown; reset shows all of it again.
    let Some(browser) = chromium() else {
        return;
    };
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
        .arg(format!("file://{}#zoom-check", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(!dom.contains("data-script-errors"), "script errors: {dom}");
    let widths: Vec<f64> = dom
        .split("data-zoom-check=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no zoom check in the page"))
        .split(' ')
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(widths.len(), 3, "{widths:?}");
    assert!(widths[0] < 0.9, "the wheel zoomed in: {widths:?}");
    assert!(
        (widths[1] / widths[0] - 0.5).abs() < 0.02,
        "the drag over half the plot halved the view: {widths:?}"
    );
    assert_eq!(widths[2], 1.0, "reset: {widths:?}");
}
