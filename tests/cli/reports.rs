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
