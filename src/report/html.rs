//! A self-contained HTML page per day that reads like a report: what the
//! day found in sentences first, then each conclusion with a small chart
//! or table, the comparison with a baseline, the results, latency by
//! offered rate, sweeps, latency distributions and links to flame graphs.
//! A capacity search is drawn with its probes, SLO, interval and estimate,
//! and a case's per-request timeline as a chart a person can zoom. Charts
//! come from `svg`; the sentences from `wording`, shared with the console
//! and summary.md. The page loads nothing from the network. A few lines of
//! script count the plots and record script errors in `data-` attributes,
//! so a headless browser test can check that the page rendered; a page
//! with a timeline has a few more to zoom it. Nothing is computed here:
//! the percentiles are the report's, the sweep curves and latency
//! distributions the analysis's (the caller's
//! [`crate::analysis::day_curves`]).

use std::fmt::Write;

use super::escape_markup;
use super::svg::{
    Band, Bar, LinePlot, Marker, MarkerKey, RatioRow, Rule, Series, Shape, Span, TIMELINE_SCRIPT,
    TimelineRequest, fixed, horizontal_bars, num, ratio_bars, timeline,
};
use super::wording::{
    blind_spot_sentence, comparison_counts_sentence, day_counts_sentence, findings_sentences, mde,
    night_sentences, parity_sentence, peer_sentence, profile_rates, state, state_name, status_name,
};
use crate::analysis::{ChangeState, Comparison, DayCurves, LatencyCdf, SweepCurve};
use crate::model::{BenchmarkResult, DailyReport, Findings, MetricReport, Status, Verdict};

/// The empirical distribution of a result's headline latency samples.
fn cdf_plot(c: &LatencyCdf) -> String {
    LinePlot {
        title: &format!(
            "{} — {} CDF ({} samples)",
            c.case_id,
            c.metric,
            c.points.len()
        ),
        x_label: &format!("{} ({})", c.metric, c.unit),
        y_label: "fraction of samples ≤ x",
        series: &[Series {
            name: c.metric.clone(),
            points: c.points.clone(),
        }],
        band: None,
        y_from_zero: true,
        ..Default::default()
    }
    .render()
}

/// Headline p50 along each swept parameter, then the scaling curves.
fn sweep_plots(report: &DailyReport, sweeps: &[SweepCurve]) -> Vec<String> {
    let mut plots: Vec<String> = sweeps
        .iter()
        .map(|c| {
            LinePlot {
                title: &format!("{}: {} p50 by {}", c.series, c.metric, c.axis.parameter),
                x_label: c.axis.title,
                y_label: &format!("{} p50 (ms)", c.metric),
                series: &[Series {
                    name: c.series.clone(),
                    points: c.points.clone(),
                }],
                band: None,
                y_from_zero: true,
                ..Default::default()
            }
            .render()
        })
        .collect();
    for curve in &report.scaling {
        let unit = curve
            .levels
            .first()
            .map_or("", |l| l.throughput_unit.as_str());
        plots.push(
            LinePlot {
                title: &format!("{}: throughput by {}", curve.benchmark, curve.dimension),
                x_label: &curve.dimension,
                y_label: &format!("throughput ({unit})"),
                series: &[Series {
                    name: curve.benchmark.clone(),
                    points: curve
                        .levels
                        .iter()
                        .map(|l| (l.level as f64, l.throughput))
                        .collect(),
                }],
                band: None,
                y_from_zero: true,
                ..Default::default()
            }
            .render(),
        );
    }
    plots
}

/// Ratios against the baseline as bars around 1, with the threshold band.
fn comparison_plot(c: &Comparison) -> Option<String> {
    let rows: Vec<RatioRow> = c
        .changes
        .iter()
        .filter_map(|x| {
            let ratio = x.ratio?;
            Some(RatioRow {
                label: format!("{} {}", x.case, x.metric),
                ratio,
                threshold_pct: x.threshold_pct,
                class: state_name(x.state),
                tooltip: format!(
                    "{} {}: ×{ratio:.3} ({})",
                    x.case,
                    x.metric,
                    state_name(x.state)
                ),
            })
        })
        .collect();
    (!rows.is_empty()).then(|| {
        ratio_bars(
            "current ÷ baseline (Hodges–Lehmann ratio), with each metric's threshold band",
            &rows,
        )
    })
}

/// The latency metrics a load curve plots, with the key of their SLO in
/// a benchmark's `context.workload` and their short name.
const LOAD_METRICS: [(&str, &str, &str); 2] = [
    ("ttft_ms", "ttft_slo_ms", "TTFT"),
    ("tpot_ms", "tpot_slo_ms", "TPOT"),
];

/// Latency by offered rate: for each benchmark whose open-loop cases
/// (`parameters.mode = "open"`) ran at two rates or more, one plot per
/// latency metric with its p50 and p99 from each case's summary, and the
/// benchmark's SLO (`context.workload`) as a dashed line (unshared twins
/// of shaped traffic left out). With whether a
/// plotted percentile is provisional.
fn load_curve_plots(report: &DailyReport) -> (Vec<String>, bool) {
    let mut benchmarks: Vec<(&str, Vec<(f64, &BenchmarkResult)>)> = Vec::new();
    for r in &report.results {
        // A shaped case's unshared twin runs at the same rate: the curve
        // is the traffic's, the twin a control.
        if r.parameters["mode"] != "open" || r.parameters["unshared"] == true {
            continue;
        }
        let Some(rate) = r.parameters["rate_per_s"].as_f64() else {
            continue;
        };
        match benchmarks.iter_mut().find(|(b, _)| *b == r.benchmark) {
            Some((_, cases)) => cases.push((rate, r)),
            None => benchmarks.push((&r.benchmark, vec![(rate, r)])),
        }
    }
    let mut plots = Vec::new();
    let mut any_provisional = false;
    for (benchmark, mut cases) in benchmarks {
        cases.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (metric, slo_key, short) in LOAD_METRICS {
            let points: Vec<(f64, &MetricReport)> = cases
                .iter()
                .filter_map(|(rate, r)| Some((*rate, r.metrics.get(metric)?)))
                .collect();
            if points.len() < 2 {
                continue;
            }
            let series: Vec<Series> = [("p50", 0), ("p99", 1)]
                .into_iter()
                .map(|(q, which)| {
                    let provisional = points
                        .iter()
                        .any(|(_, m)| m.summary.provisional.iter().any(|p| p == q));
                    any_provisional |= provisional;
                    Series {
                        name: format!("{short} {q}{}", if provisional { " *" } else { "" }),
                        points: points
                            .iter()
                            .map(|(rate, m)| {
                                let s = &m.summary;
                                (*rate, if which == 0 { s.p50 } else { s.p99 })
                            })
                            .collect(),
                    }
                })
                .collect();
            let rules: Vec<Rule> = cases
                .iter()
                .find_map(|(_, r)| r.context["workload"][slo_key].as_f64())
                .map(|ms| Rule {
                    name: format!("SLO: {short} ≤ {} ms", fixed(ms, 3)),
                    at: ms,
                    vertical: false,
                    class: "slo",
                })
                .into_iter()
                .collect();
            let unit = &points[0].1.unit;
            plots.push(
                LinePlot {
                    title: &format!("{benchmark}: {short} by offered rate"),
                    x_label: "offered rate (requests/s)",
                    y_label: &format!("{metric} ({unit})"),
                    series: &series,
                    y_from_zero: true,
                    rules: &rules,
                    legend_right: true,
                    ..Default::default()
                }
                .render(),
            );
        }
    }
    (plots, any_provisional)
}

/// A `capacity` conclusion's probes: each SLO's share of a probe's judged
/// requests that broke it, by offered rate (a log scale: 0 at the floor),
/// each probe marked by its verdict; the share each SLO allows as a
/// dashed line, the interval as a shaded band, the estimate as a line and
/// the saturation rate as a dotted one. A probe's counts are what its
/// verdict was judged on; the report holds no latency percentile per
/// probe.
fn capacity_figure(case: &str, c: &serde_json::Value) -> String {
    let slos: Vec<(&str, f64)> = c["slos"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s["name"].as_str()?, s["allowed_share"].as_f64()?)))
        .collect();
    let mut probes: Vec<&serde_json::Value> = c["probes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["rate_per_s"].is_f64() && p["judgement"]["requests"].as_u64().is_some_and(|n| n > 0)
        })
        .collect();
    if slos.is_empty() || probes.is_empty() {
        return String::new();
    }
    probes.sort_by(|a, b| {
        let rate = |p: &serde_json::Value| p["rate_per_s"].as_f64().unwrap_or(0.0);
        rate(a).total_cmp(&rate(b))
    });
    let mut series = Vec::new();
    let mut markers = Vec::new();
    let mut verdicts: Vec<&str> = Vec::new();
    for (i, (name, allowed)) in slos.iter().enumerate() {
        let broke = |p: &serde_json::Value| p["judgement"]["broke"][i].as_u64().unwrap_or(0);
        // A budget of nothing that nothing broke has no line to draw.
        if *allowed <= 0.0 && probes.iter().all(|p| broke(p) == 0) {
            continue;
        }
        let mut points = Vec::new();
        for p in &probes {
            let rate = p["rate_per_s"].as_f64().unwrap_or(0.0);
            let requests = p["judgement"]["requests"].as_u64().unwrap_or(1);
            let share_pct = 100.0 * broke(p) as f64 / requests as f64;
            points.push((rate, share_pct));
            let verdict = p["judgement"]["verdict"]["verdict"]
                .as_str()
                .unwrap_or("unsettled");
            let (shape, class) = match verdict {
                "pass" => (Shape::Circle, "mk-pass"),
                "fail" => (Shape::Square, "mk-fail"),
                _ => (Shape::Ring, "mk-unsettled"),
            };
            if !verdicts.contains(&class) {
                verdicts.push(class);
            }
            markers.push(Marker {
                x: rate,
                y: share_pct,
                shape,
                class,
                tooltip: format!(
                    "probe at {} requests/s: {verdict}{}; {} of {} judged requests broke {name} ({} %, {} % allowed)",
                    num(rate),
                    if p["over_saturated"] == true {
                        ", over-saturated"
                    } else {
                        ""
                    },
                    broke(p),
                    requests,
                    fixed(share_pct, 3),
                    fixed(100.0 * allowed, 3)
                ),
            });
        }
        series.push(Series {
            name: (*name).to_string(),
            points,
        });
    }
    if series.is_empty() {
        return String::new();
    }
    let mut allowed: Vec<f64> = slos.iter().map(|(_, a)| *a).filter(|a| *a > 0.0).collect();
    allowed.dedup();
    let mut rules: Vec<Rule> = allowed
        .into_iter()
        .map(|a| Rule {
            name: format!("SLO: ≤ {} % may break", fixed(100.0 * a, 3)),
            at: 100.0 * a,
            vertical: false,
            class: "slo",
        })
        .collect();
    let result = &c["result"];
    let estimate = result["capacity_per_s"].as_f64();
    if let Some(rate) = estimate {
        rules.push(Rule {
            name: format!("capacity {} requests/s", num(rate)),
            at: rate,
            vertical: true,
            class: "estimate",
        });
    }
    if let Some(rate) = c["saturation"]["completed_per_s"].as_f64() {
        rules.push(Rule {
            name: format!("saturation {} requests/s", num(rate)),
            at: rate,
            vertical: true,
            class: "reference",
        });
    }
    let (low, high) = (
        result["interval_per_s"][0].as_f64(),
        result["interval_per_s"][1].as_f64(),
    );
    let confidence = result["confidence_pct"].as_f64().unwrap_or(95.0);
    let span = (low.is_some() || high.is_some()).then(|| Span {
        name: format!("{} % interval", fixed(confidence, 1)),
        from: low,
        to: high,
    });
    let keys: Vec<MarkerKey> = [
        ("mk-pass", Shape::Circle, "probe passed"),
        ("mk-fail", Shape::Square, "probe failed"),
        ("mk-unsettled", Shape::Ring, "probe unsettled"),
    ]
    .into_iter()
    .filter(|(class, _, _)| verdicts.contains(class))
    .map(|(class, shape, name)| MarkerKey {
        name: name.into(),
        shape,
        class,
    })
    .collect();
    let plot = LinePlot {
        title: &format!("{case}: probes of the capacity search"),
        x_label: "offered rate (requests/s)",
        y_label: "requests breaking the SLO (%, log)",
        series: &series,
        y_log: true,
        rules: &rules,
        span: span.as_ref(),
        markers: &markers,
        marker_keys: &keys,
        legend_right: true,
        ..Default::default()
    }
    .render();
    let capacity = estimate.map_or("no capacity was estimated".to_string(), |c| {
        format!(
            "the capacity is where the worst SLO crosses it, {} requests/s",
            num(c)
        )
    });
    let interval = match (low, high) {
        (Some(lo), Some(hi)) => format!("{} to {} requests/s", num(lo), num(hi)),
        (None, Some(hi)) => format!("up to {} requests/s (no probe settled a pass)", num(hi)),
        (Some(lo), None) => format!("from {} requests/s (no probe settled a fail)", num(lo)),
        (None, None) => "unbounded (no probe settled)".to_string(),
    };
    format!(
        "{plot}<p class=\"meta\">Each probe's share of judged requests that broke each SLO, by offered rate; the dashed line is the share the SLO allows, and {capacity}; the {} % interval is {interval}. A share of 0 sits on the axis's floor.</p>",
        fixed(confidence, 1),
    )
}

/// A case's per-request timeline (`timeline` in its findings): one line
/// per request of one timed iteration, zoomable.
fn timeline_figure(case: &str, t: &serde_json::Value) -> String {
    let requests: Vec<TimelineRequest> = t["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some(TimelineRequest {
                scheduled_ms: r["scheduled_ms"].as_f64()?,
                sent_ms: r["sent_ms"].as_f64(),
                first_token_ms: r["first_token_ms"].as_f64(),
                finish_ms: r["finish_ms"].as_f64(),
                ok: r["ok"].as_bool().unwrap_or(true),
                cached_tokens: r["cached_tokens"].as_u64(),
            })
        })
        .collect();
    if requests.is_empty() {
        return String::new();
    }
    let shown = requests.len();
    let total = t["total"].as_u64().map_or(shown, |n| n as usize);
    let iteration = t["iteration"]
        .as_u64()
        .map_or(String::new(), |i| format!(" {i}"));
    let count = if total > shown {
        format!("the first {shown} of {total} requests")
    } else {
        format!("{shown} requests")
    };
    let failed = requests.iter().filter(|r| !r.ok).count();
    format!(
        "{}<p class=\"meta\">Times in ms from the start of the iteration: scheduled is when its arrival fell due, sent when it went out (after any wait for a concurrency slot), then its first token and its end.{}</p>",
        timeline(
            &format!("{case}: {count} of timed iteration{iteration}"),
            &requests
        ),
        if failed > 0 {
            format!(" {failed} failed.")
        } else {
            String::new()
        }
    )
}

/// The chart or table that goes with a case's conclusion sentences.
fn findings_figure(case: &str, findings: &Findings) -> String {
    match findings {
        Findings::Endurance(e) => {
            let rss = Series {
                name: "RSS".into(),
                points: e.rss_samples_s_mib.iter().map(|[t, m]| (*t, *m)).collect(),
            };
            let fit = Series {
                name: "least-squares fit".into(),
                points: e
                    .rss_fit_band_s_mib
                    .iter()
                    .map(|[t, fit, _, _]| (*t, *fit))
                    .collect(),
            };
            let band = Band {
                name: "95 % CI of the slope".into(),
                points: e
                    .rss_fit_band_s_mib
                    .iter()
                    .map(|[t, _, low, high]| (*t, *low, *high))
                    .collect(),
            };
            if rss.points.is_empty() {
                return String::new();
            }
            LinePlot {
                title: &format!("{case}: RSS over time"),
                x_label: "seconds since the first timed iteration",
                y_label: "RSS (MiB)",
                series: &[rss, fit],
                band: (!band.points.is_empty()).then_some(&band),
                y_from_zero: false,
                ..Default::default()
            }
            .render()
        }
        Findings::StageShares(s) => {
            let mut bars: Vec<Bar> = s
                .stage_share_pct
                .iter()
                .filter_map(|(stage, share)| {
                    Some(Bar {
                        label: stage.clone(),
                        value: (*share)?,
                        class: "stage",
                    })
                })
                .collect();
            bars.sort_by(|a, b| b.value.total_cmp(&a.value));
            if let Some(other) = s.queue_and_other_share_pct {
                bars.push(Bar {
                    label: "queue and other".into(),
                    value: other,
                    class: "other",
                });
            }
            horizontal_bars(&format!("{case}: share of end-to-end time"), "%", &bars)
        }
        Findings::TimeShares(t) => {
            let bars: Vec<Bar> = t
                .time_share_pct
                .iter()
                .map(|(name, share)| Bar {
                    label: name.clone(),
                    value: *share,
                    class: "stage",
                })
                .collect();
            horizontal_bars(&format!("{case}: measured time share"), "%", &bars)
        }
        Findings::MemoryGrowth(m) => {
            if m.rss_growth_mib_per_iteration.is_empty() {
                return String::new();
            }
            LinePlot {
                title: &format!(
                    "{case}: RSS growth per iteration of {} runs",
                    m.runs_per_iteration
                ),
                x_label: "timed iteration",
                y_label: "RSS after − before (MiB)",
                series: &[Series {
                    name: "growth".into(),
                    points: m
                        .rss_growth_mib_per_iteration
                        .iter()
                        .enumerate()
                        .map(|(i, g)| ((i + 1) as f64, *g))
                        .collect(),
                }],
                band: None,
                y_from_zero: true,
                ..Default::default()
            }
            .render()
        }
        Findings::KvFootprint(k) => format!(
            "<table><tr><th>KV bytes per token</th><th>value</th><th>from</th></tr><tr><td>predicted</td><td>{}</td><td>{}</td></tr><tr><td>measured (median)</td><td>{}</td><td>{}</td></tr></table><p class=\"meta\">{}</p>",
            k.kv_bytes_per_token_predicted,
            escape_markup(&k.predicted_formula),
            k.kv_bytes_per_token_measured_median.map_or("—".into(), num),
            escape_markup(&k.method),
            escape_markup(&k.caveat)
        ),
        Findings::Other(value) => {
            let mut out = String::new();
            if let Some(c) = value.get("capacity") {
                out.push_str(&capacity_figure(case, c));
            }
            if let Some(t) = value.get("timeline") {
                out.push_str(&timeline_figure(case, t));
            }
            // The rest as JSON (folded away under a chart); the timeline
            // is drawn, and too long to read.
            let drawn = !out.is_empty();
            let rest = match value {
                serde_json::Value::Object(map) if map.contains_key("timeline") => {
                    let mut map = map.clone();
                    map.remove("timeline");
                    (!map.is_empty()).then_some(serde_json::Value::Object(map))
                }
                other => Some(other.clone()),
            };
            if let Some(rest) = rest {
                let json = escape_markup(&serde_json::to_string_pretty(&rest).unwrap_or_default());
                let _ = if drawn {
                    write!(
                        out,
                        "<details><summary>the findings as JSON</summary><pre>{json}</pre></details>"
                    )
                } else {
                    write!(out, "<pre>{json}</pre>")
                };
            }
            out
        }
    }
}

/// What the day found, most urgent first, as sentences.
fn headline_sentences(report: &DailyReport, comparison: Option<&Comparison>) -> Vec<String> {
    let mut out = vec![format!("{}.", day_counts_sentence(&report.summary))];
    for r in &report.results {
        for f in r.failed_runs.iter().filter(|f| f.status == Status::Failed) {
            out.push(format!(
                "{} failed in run {}: {}.",
                r.case_id,
                f.slot + 1,
                f.reason
            ));
        }
    }
    for status in [Status::Failed, Status::Skipped] {
        for r in report.results.iter().filter(|r| r.status == status) {
            out.push(format!(
                "{} {}: {}.",
                r.case_id,
                status_name(status),
                r.error.as_deref().unwrap_or("no message")
            ));
        }
    }
    out.extend(
        report
            .parity
            .iter()
            .map(|row| format!("{}.", parity_sentence(row))),
    );
    out.extend(
        report
            .peers
            .iter()
            .map(|row| format!("Beside a peer: {}.", peer_sentence(row))),
    );
    for r in &report.results {
        for t in r.targets.iter().filter(|t| t.verdict == Verdict::Missed) {
            out.push(format!(
                "{} missed its target {} (measured {}).",
                r.case_id,
                t.target,
                t.measured.map_or("—".into(), num)
            ));
        }
    }
    if let Some(c) = comparison {
        // The verdict and why come first: it is what the exit code says.
        out.extend(night_sentences(c).into_iter().take(1));
        out.push(comparison_counts_sentence(c));
        for x in c
            .changes
            .iter()
            .filter(|x| x.state == ChangeState::Regressed)
        {
            out.push(format!(
                "{} {} regressed: ×{} ({}).",
                x.case,
                x.metric,
                x.ratio.map_or("—".into(), |r| format!("{r:.3}")),
                x.reason
            ));
        }
    }
    for r in &report.results {
        if let Some(first) = r
            .conclusion
            .as_ref()
            .and_then(|f| findings_sentences(f).into_iter().next())
        {
            out.push(format!("{}: {first}", r.case_id));
        }
    }
    out
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}h1{font-size:22px}h2{font-size:18px;margin-top:32px}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}.ok{color:#1a7f37}.failed{color:#c62828;font-weight:bold}.interrupted{color:#b26a00}.plots{display:flex;flex-wrap:wrap;gap:12px}.plot{border:1px solid #ddd;background:#fff}.t{font-size:12px;text-anchor:middle;font-weight:600}.tick{font-size:10px;fill:#555}.lab{font-size:11px;fill:#333}.ax{stroke:#333}.grid{stroke:#eee}polyline{fill:none;stroke-width:2}.s0{stroke:#1f77b4;fill:#1f77b4}.s1{stroke:#d62728;fill:#d62728}.s2{stroke:#2ca02c;fill:#2ca02c}.s3{stroke:#9467bd;fill:#9467bd}polyline.s0,polyline.s1,polyline.s2,polyline.s3{fill:none}.leg{font-size:11px}.band{fill:#eef3fb}.bar{fill:#999}.bar.regressed{fill:#c62828}.bar.improved{fill:#1a7f37}.met{color:#1a7f37}.missed{color:#c62828}.meta{color:#555}pre{background:#f6f8fa;padding:8px;font-size:12px;overflow-x:auto}summary{cursor:pointer;font-weight:600}h3{font-size:15px;margin:20px 0 4px}.found li{margin:3px 0}.bar.stage{fill:#1f77b4}.bar.other{fill:#bbb}polygon.band{fill:#1f77b4;fill-opacity:.15;stroke:none}";

/// The style of the load charts (reference lines, intervals, probe
/// markers, legend samples) and of the timelines: added to the page's
/// only when it has one, so that a page without them is as it was.
const CHART_STYLE: &str = ".bandsw{fill:#1f77b4;fill-opacity:.15}.rule{stroke-width:1.5}.rule.slo{stroke:#c62828;stroke-dasharray:6 3}.rule.estimate{stroke:#222}.rule.reference{stroke:#777;stroke-dasharray:2 3}.span{fill:#1a7f37;fill-opacity:.15}.mk{stroke:#fff;stroke-width:1}.mk-pass{fill:#1a7f37}.mk-fail{fill:#c62828}.mk.ring{fill:#fff;stroke-width:2}.mk-unsettled{stroke:#b26a00}.tlv path,.tlg path{fill:none;vector-effect:non-scaling-stroke}.tq{stroke:#9e9e9e}.tw{stroke:#f0a202}.ts{stroke:#1f77b4}.tf{stroke:#d62728}.tlbg{fill:#fcfcfc}.tls{fill:#1f77b4;fill-opacity:.12;stroke:#1f77b4}svg[data-timeline]{touch-action:none;cursor:crosshair}.tlc{margin:4px 0 12px}.tli{font:12px ui-monospace,monospace;color:#333}";

/// Whether the page holds a chart that [`CHART_STYLE`] styles (escaped
/// text cannot hold a `"`, so none of these is a case's name).
fn uses_chart_style(page: &str) -> bool {
    [
        "class=\"rule ",
        "class=\"mk ",
        "class=\"span\"",
        "class=\"bandsw\"",
        "<div class=\"timeline\">",
    ]
    .iter()
    .any(|needle| page.contains(needle))
}

const SCRIPT: &str = "window.addEventListener('error',function(e){var b=document.body;b.dataset.scriptErrors=(b.dataset.scriptErrors||'')+e.message+';'});document.addEventListener('DOMContentLoaded',function(){var n=0;document.querySelectorAll('svg.plot').forEach(function(s){var r=s.getBoundingClientRect();if(r.width>0&&r.height>0&&s.querySelector('polyline,rect,circle'))n++});document.body.dataset.plotsRendered=String(n)});";

/// The day's page. `flame_graph_href` turns a flame graph path into a link
/// relative to where the page is written.
/// The models the day measured, as their results' contexts record them:
/// format, weights, size, tokenizer and the decoded sample output.
fn models_section(report: &DailyReport) -> String {
    let mut models: Vec<(String, &serde_json::Value)> = Vec::new();
    for r in &report.results {
        let contexts: Vec<(String, &serde_json::Value)> = match r.context["models"].as_object() {
            Some(many) => many.iter().map(|(name, c)| (name.clone(), c)).collect(),
            None => vec![(
                r.context["model"].as_str().unwrap_or_default().to_string(),
                &r.context,
            )],
        };
        for (name, context) in contexts {
            if context["weights"].is_object() && !models.iter().any(|(n, _)| *n == name) {
                models.push((name, context));
            }
        }
    }
    if models.is_empty() {
        return String::new();
    }
    let mib = |v: &serde_json::Value| {
        v.as_f64().map_or("—".to_string(), |b| {
            format!("{:.1} MiB", b / 1024.0 / 1024.0)
        })
    };
    let mut out = String::from(
        "<h2>Models</h2><table><tr><th>model</th><th>format</th><th>weights</th><th>parameters</th><th>stored</th><th>read per forward pass</th><th>tokenizer</th><th>sample output</th></tr>",
    );
    for (name, c) in models {
        let w = &c["weights"];
        let sample = match (
            c["sample_output"]["prompt"].as_str(),
            c["sample_output"]["continuation"].as_str(),
        ) {
            (Some(prompt), Some(text)) => {
                format!("<i>{}</i> → {}", escape_markup(prompt), escape_markup(text))
            }
            _ => "—".to_string(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{sample}</td></tr>",
            escape_markup(&name),
            escape_markup(w["format"].as_str().unwrap_or("—")),
            escape_markup(w["quantization"].as_str().unwrap_or("—")),
            w["parameters"]
                .as_u64()
                .map_or("—".to_string(), |p| p.to_string()),
            mib(&w["stored_bytes"]),
            mib(&w["bytes_per_forward"]),
            tokenizer_cell(c["tokenizer"].as_str().unwrap_or("—")),
        );
    }
    out.push_str("</table>");
    out
}

/// The tokenizer's source, or "none" with the reason on hover.
fn tokenizer_cell(text: &str) -> String {
    match text.strip_prefix("none: ") {
        Some(why) => format!("<span title=\"{}\">none</span>", escape_markup(why)),
        None => escape_markup(text),
    }
}

/// Served cases beside their in-process twins: the TTFT and ITL medians,
/// the difference, and the served TTFT split into the server's own time
/// and the network path plus client.
fn parity_section(report: &DailyReport) -> String {
    if report.parity.is_empty() {
        return String::new();
    }
    let ms = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.3}"));
    let diff = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:+.3}"));
    let mut out = String::from(
        "<h2>Served vs in-process</h2><p class=\"meta\">Medians (p50) in ms of the same workload on the same model, served over HTTP and in this process, in one day. The served TTFT is split into the server's own first-token time (from its response) and the rest: network path and client.</p><table><tr><th>served case</th><th>in-process twin</th><th>TTFT in-process</th><th>TTFT served</th><th>served − in-process</th><th>of which server</th><th>of which transport and client</th><th>ITL in-process</th><th>ITL served</th><th>served − in-process</th></tr>",
    );
    for row in &report.parity {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape_markup(&row.served),
            escape_markup(&row.in_process),
            ms(Some(row.in_process_ttft_p50_ms)),
            ms(Some(row.served_ttft_p50_ms)),
            diff(Some(row.ttft_diff_ms)),
            ms(row.server_ttft_p50_ms),
            ms(row.transport_client_p50_ms),
            ms(row.in_process_itl_p50_ms),
            ms(row.served_itl_p50_ms),
            diff(row.itl_diff_ms),
        );
    }
    out.push_str("</table>");
    out
}

/// Our engine beside a peer: per test and weights, both tokens/s, the
/// ratio with its interval, and the ratios as bars from ×1.
fn peers_section(report: &DailyReport) -> String {
    if report.peers.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "<h2>Beside a peer</h2><p class=\"meta\">The same test on the same weights file and threads, in this day. {}.</p><table><tr><th>test</th><th>weights</th><th>threads</th><th>ours, tokens/s</th><th>peer</th><th>peer, tokens/s</th><th>ours ÷ peer</th><th>95 % CI</th><th>samples (ours, peer)</th></tr>",
        escape_markup(crate::analysis::PEER_RATIO_RULE)
    );
    for row in &report.peers {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{:.0}</td><td>×{:.2}</td><td>{}</td><td>{}, {}</td></tr>",
            escape_markup(&row.test),
            escape_markup(&row.weights_label()),
            row.threads.map_or("—".into(), |t| t.to_string()),
            row.ours_tokens_per_s,
            escape_markup(&row.peer_program),
            row.peer_tokens_per_s,
            row.ratio,
            row.ratio_ci95
                .map_or("—".into(), |[lo, hi]| format!("×{lo:.2}–×{hi:.2}")),
            row.samples[0],
            row.samples[1],
        );
    }
    out.push_str("</table>");
    let rows: Vec<RatioRow> = report
        .peers
        .iter()
        .map(|row| RatioRow {
            label: format!("{} {}", row.test, row.weights_label()),
            ratio: row.ratio,
            threshold_pct: 0.0,
            class: if row.ratio >= 1.0 {
                "improved"
            } else {
                "regressed"
            },
            tooltip: peer_sentence(row),
        })
        .collect();
    out.push_str(&ratio_bars("ours ÷ peer, tokens/s (×1: as fast)", &rows));
    out
}

/// A day's page; `curves` are the report's sweep curves and latency
/// distributions ([`crate::analysis::day_curves`]).
pub fn render_html(
    report: &DailyReport,
    comparison: Option<&Comparison>,
    curves: &DayCurves,
    flame_graph_href: &dyn Fn(&str) -> String,
) -> String {
    let mut out = String::new();
    let title = format!(
        "{} — day {}: {}",
        report.campaign.name, report.day, report.day_title
    );
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body><h1>{}</h1>",
        escape_markup(&title),
        escape_markup(&title)
    );
    let e = &report.environment;
    let _ = write!(
        out,
        "<p class=\"meta\"><a href=\"../index.html\">campaign index</a> · {} → {}{}{} · {} ({} logical cores) · {} threads on {} · {} · commit {}</p><h2>What this day found</h2><ul class=\"found\">",
        report.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        report.finished_at.format("%H:%M:%S"),
        if report.quick { " · --quick" } else { "" },
        if report.interrupted {
            " · interrupted"
        } else {
            ""
        },
        escape_markup(&e.cpu_model),
        e.logical_cores,
        report.settings.threads,
        escape_markup(&report.settings.device),
        escape_markup(&report.settings.dtype),
        escape_markup(&e.git_commit),
    );
    for sentence in headline_sentences(report, comparison) {
        let _ = write!(out, "<li>{}</li>", escape_markup(&sentence));
    }
    out.push_str("</ul>");

    let concluded: Vec<(&BenchmarkResult, &Findings)> = report
        .results
        .iter()
        .filter_map(|r| Some((r, r.conclusion.as_ref()?)))
        .collect();
    if !concluded.is_empty() {
        out.push_str("<h2>Conclusions</h2>");
        for (r, findings) in concluded {
            let _ = write!(out, "<h3>{}</h3>", escape_markup(&r.case_id));
            for sentence in findings_sentences(findings) {
                let _ = write!(out, "<p>{}</p>", escape_markup(&sentence));
            }
            out.push_str(&findings_figure(&r.case_id, findings));
        }
    }

    out.push_str(&models_section(report));

    out.push_str("<h2>Results</h2><table><tr><th>case</th><th>status</th><th>latency metric</th><th>mean ms</th><th>p50 ms</th><th>p99 ms</th><th>throughput</th><th>peak RSS MiB</th><th>targets</th></tr>");
    let cell = |v: Option<f64>| v.map_or("—".to_string(), num);
    for r in &report.results {
        let status = status_name(r.status);
        let targets: Vec<String> = r
            .targets
            .iter()
            .map(|t| {
                let (class, mark) = match t.verdict {
                    Verdict::Met => ("met", "✓"),
                    Verdict::Missed => ("missed", "✗"),
                    Verdict::NotMeasured => ("", "?"),
                };
                format!(
                    "<span class=\"{class}\">{mark} {} ({})</span>",
                    escape_markup(&t.target),
                    cell(t.measured)
                )
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"{status}\">{status}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape_markup(&r.case_id),
            escape_markup(r.latency_metric.as_deref().unwrap_or("—")),
            cell(r.mean_ms),
            cell(r.p50_ms),
            if r.p99_is_provisional() {
                format!(
                    "<span title=\"{}\">{}*</span>",
                    escape_markup(super::console::PROVISIONAL_FOOTNOTE),
                    cell(r.p99_ms)
                )
            } else {
                cell(r.p99_ms)
            },
            r.throughput.map_or("—".into(), |t| format!(
                "{} {}",
                num(t),
                escape_markup(r.throughput_unit.as_deref().unwrap_or(""))
            )),
            cell(r.peak_rss_mib),
            targets.join("<br>")
        );
    }
    out.push_str("</table>");
    if report.results.iter().any(|r| r.p99_is_provisional()) {
        let _ = write!(
            out,
            "<p class=\"meta\">{}</p>",
            escape_markup(super::console::PROVISIONAL_FOOTNOTE)
        );
    }
    out.push_str(&parity_section(report));
    out.push_str(&peers_section(report));

    if let Some(c) = comparison {
        let _ = write!(
            out,
            "<h2>Against baseline {}</h2><p>{}</p><p>{}</p><p class=\"meta\">{}</p>",
            escape_markup(&c.baseline),
            escape_markup(&comparison_counts_sentence(c)),
            escape_markup(&blind_spot_sentence(c)),
            escape_markup(&c.rule)
        );
        for (i, sentence) in night_sentences(c).iter().enumerate() {
            let class = if i == 0 && c.outcome != crate::analysis::NightOutcome::Pass {
                " class=\"missed\""
            } else {
                ""
            };
            let _ = write!(out, "<p{class}>{}</p>", escape_markup(sentence));
        }
        if let Some(sentence) = super::wording::environment_changes_sentence(c) {
            let _ = write!(out, "<p class=\"meta\">{}</p>", escape_markup(&sentence));
        }
        if let Some(plot) = comparison_plot(c) {
            out.push_str(&plot);
        }
        out.push_str("<table><tr><th>case</th><th>metric</th><th>state</th><th>baseline</th><th>current</th><th>ratio</th><th>smallest visible</th><th>why</th></tr>");
        for x in &c.changes {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape_markup(&x.case),
                escape_markup(&x.metric),
                escape_markup(&state(x)),
                cell(x.baseline_median),
                cell(x.current_median),
                cell(x.ratio),
                escape_markup(&mde(x)),
                escape_markup(&x.reason)
            );
        }
        out.push_str("</table>");
    }

    let (load, provisional) = load_curve_plots(report);
    if !load.is_empty() {
        out.push_str("<h2>Latency by offered rate</h2><p class=\"meta\">Each open-loop case's latency percentiles at its offered rate, from its summary; the dashed line is the benchmark's SLO.</p><div class=\"plots\">");
        load.iter().for_each(|p| out.push_str(p));
        out.push_str("</div>");
        if provisional {
            let _ = write!(
                out,
                "<p class=\"meta\">{}</p>",
                escape_markup(super::console::PROVISIONAL_FOOTNOTE)
            );
        }
    }
    let sweep_plots = sweep_plots(report, &curves.sweeps);
    if !sweep_plots.is_empty() {
        out.push_str("<h2>Sweeps</h2><div class=\"plots\">");
        sweep_plots.iter().for_each(|p| out.push_str(p));
        out.push_str("</div>");
    }
    let cdfs: Vec<String> = curves.cdfs.iter().map(cdf_plot).collect();
    if !cdfs.is_empty() {
        out.push_str("<h2>Latency distributions</h2><div class=\"plots\">");
        cdfs.iter().for_each(|p| out.push_str(p));
        out.push_str("</div>");
    }
    if !report.profiles.is_empty() {
        out.push_str("<h2>Flame graphs</h2><ul>");
        for p in &report.profiles {
            match &p.flamegraph_path {
                Some(path) => {
                    let _ = write!(
                        out,
                        "<li><a href=\"{}\">{}</a> — {}; profiler overhead {}</li>",
                        escape_markup(&flame_graph_href(path)),
                        escape_markup(&p.benchmark),
                        escape_markup(&profile_rates(p)),
                        p.overhead
                            .iter()
                            .map(|o| format!("{} ×{:.3}", escape_markup(&o.case), o.slowdown))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                None => {
                    let _ = write!(
                        out,
                        "<li>{}: no flame graph ({})</li>",
                        escape_markup(&p.benchmark),
                        escape_markup(p.error.as_deref().unwrap_or("?"))
                    );
                }
            }
        }
        out.push_str("</ul>");
    }
    if out.contains("<div class=\"timeline\">") {
        let _ = write!(out, "<script>{TIMELINE_SCRIPT}</script>");
    }
    if uses_chart_style(&out) {
        out = out.replacen("</style>", &format!("{CHART_STYLE}</style>"), 1);
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::stats::{
        CapacityPlan, CapacityReport, CapacityResult, Judgement, Probe, ProbeDesign, ProbeVerdict,
        RequestSlo, Saturation,
    };

    fn fixture() -> DailyReport {
        serde_json::from_str(include_str!("../../tests/fixtures/day_report.json"))
            .expect("the fixture is a day report")
    }

    fn page(report: &DailyReport) -> String {
        let curves = crate::analysis::day_curves(report);
        render_html(report, None, &curves, &|p| p.to_string())
    }

    /// The chart whose title starts with `title`, from `<svg` to the first
    /// `</svg>` (of a timeline, that of its inner plot).
    fn chart<'a>(html: &'a str, title: &str) -> &'a str {
        let at = html
            .find(&format!("<title>{title}"))
            .unwrap_or_else(|| panic!("no chart {title}"));
        let start = html[..at].rfind("<svg").unwrap();
        let end = at + html[at..].find("</svg>").unwrap();
        &html[start..end]
    }

    /// The numeric attribute `name` of the first element that opens with `open`.
    fn attr(svg: &str, open: &str, name: &str) -> f64 {
        let element = &svg[svg.find(open).unwrap_or_else(|| panic!("no {open}"))..];
        let element = &element[..element.find('>').unwrap()];
        let value = element.split(&format!(" {name}=\"")).nth(1).unwrap();
        value[..value.find('"').unwrap()].parse().unwrap()
    }

    /// An open-loop case of `serve` at `rate` with these ttft_ms and
    /// tpot_ms (p50, p99), built on the fixture's first result.
    fn open_case(
        template: &BenchmarkResult,
        rate: f64,
        ttft: (f64, f64),
        tpot: (f64, f64),
    ) -> BenchmarkResult {
        let mut r = template.clone();
        r.benchmark = "serve".into();
        r.kind = "full_inference".into();
        r.case_id = format!("serve[open,rate={rate}/s]");
        r.parameters = json!({"mode": "open", "rate_per_s": rate, "concurrency": 64});
        r.context =
            json!({"model": "default", "workload": {"ttft_slo_ms": 250.0, "tpot_slo_ms": null}});
        let metric = |(p50, p99): (f64, f64)| {
            let mut m = template.metrics["ttft_ms"].clone();
            (m.summary.p50, m.summary.p99) = (p50, p99);
            m.summary.provisional.clear();
            m
        };
        r.metrics = BTreeMap::from([
            ("ttft_ms".to_string(), metric(ttft)),
            ("tpot_ms".to_string(), metric(tpot)),
        ]);
        r
    }

    #[test]
    fn open_loop_cases_at_three_rates_draw_latency_by_rate_with_the_slo() {
        let mut report = fixture();
        let t = report.results[0].clone();
        // Out of order: the curve goes by rate.
        report.results = vec![
            open_case(&t, 40.0, (30.0, 120.0), (5.0, 9.0)),
            open_case(&t, 10.0, (20.0, 60.0), (4.0, 7.0)),
            open_case(&t, 80.0, (90.0, 400.0), (8.0, 30.0)),
        ];
        let html = page(&report);
        assert!(html.contains("<h2>Latency by offered rate</h2>"));
        let ttft = chart(&html, "serve: TTFT by offered rate");
        assert_eq!(ttft.matches("<polyline").count(), 2, "p50 and p99");
        for needle in [
            ">TTFT p50</text>",
            ">TTFT p99</text>",
            ">SLO: TTFT ≤ 250 ms</text>",
            ">offered rate (requests/s)</text>",
            ">ttft_ms (",
        ] {
            assert!(ttft.contains(needle), "{needle} missing");
        }
        assert_eq!(ttft.matches("<circle class=\"s").count(), 6);
        // The SLO is a horizontal line between p99 at 40/s (120 ms) and at
        // 80/s (400 ms): y grows downwards.
        let slo_y = attr(ttft, "<line class=\"rule slo\"", "y1");
        assert_eq!(slo_y, attr(ttft, "<line class=\"rule slo\"", "y2"));
        let p99: Vec<&str> = ttft.split("<circle class=\"s1\"").skip(1).collect();
        let cy = |c: &str| attr(&format!("<c{c}"), "<c", "cy");
        assert!(cy(p99[1]) > slo_y && cy(p99[2]) < slo_y, "{ttft}");
        // Points by rate: x grows along the line.
        let x: Vec<f64> = p99
            .iter()
            .map(|c| attr(&format!("<c{c}"), "<c", "cx"))
            .collect();
        assert!(x[0] < x[1] && x[1] < x[2]);
        // TPOT has no SLO in the context: its plot has no SLO line.
        let tpot = chart(&html, "serve: TPOT by offered rate");
        assert!(tpot.contains(">TPOT p99</text>") && !tpot.contains("rule slo"));
    }

    #[test]
    fn a_page_without_load_data_draws_none_of_it() {
        let html = page(&fixture());
        for needle in [
            "by offered rate",
            "rule slo",
            "data-timeline=",
            "zoom-check",
            "capacity search",
            CHART_STYLE,
        ] {
            assert!(
                !html.contains(needle),
                "{needle} in a page without load data"
            );
        }
        // One rate is no curve.
        let mut report = fixture();
        let t = report.results[0].clone();
        report.results = vec![open_case(&t, 40.0, (30.0, 120.0), (5.0, 9.0))];
        assert!(!page(&report).contains("by offered rate"));
    }

    fn probe(rate: f64, verdict: ProbeVerdict, requests: usize, broke: u64) -> Probe {
        Probe {
            rate_per_s: rate,
            judgement: Judgement {
                verdict,
                requests,
                effective_requests: requests as f64 / 2.0,
                broke: vec![broke, 0],
                tail_shares: vec![None, None],
            },
            sent: requests + 100,
            elapsed_s: 5.0,
            window_s: [0.5, 4.5],
            goodput_per_s: rate,
            achieved_per_s: rate,
            over_saturated: rate > 180.0,
        }
    }

    /// A capacity case whose search probed 50 … 200 requests/s under a p99
    /// TTFT SLO and no error budget, with this interval.
    fn capacity_report(interval: [Option<f64>; 2]) -> DailyReport {
        let slos = vec![
            RequestSlo {
                name: "ttft_ms p99 ≤ 50".into(),
                allowed_share: 0.01,
                bound: Some(50.0),
            },
            RequestSlo {
                name: "errors ≤ 0 %".into(),
                allowed_share: 0.0,
                bound: None,
            },
        ];
        let search = CapacityReport {
            design: ProbeDesign::new(0.95, 8, (100, 200, 3200), slos.len()),
            slos,
            plan: CapacityPlan::default(),
            saturation: Some(Saturation {
                completed_per_s: 210.0,
                requests: 300,
                elapsed_s: 2.0,
            }),
            probes: vec![
                probe(100.0, ProbeVerdict::Pass, 400, 1),
                probe(200.0, ProbeVerdict::Fail { slo: 0 }, 200, 150),
                probe(50.0, ProbeVerdict::Pass, 200, 0),
                probe(140.0, ProbeVerdict::Fail { slo: 0 }, 800, 40),
                probe(120.0, ProbeVerdict::Unsettled, 3200, 35),
            ],
            result: CapacityResult {
                capacity_per_s: Some(118.0),
                interval_per_s: interval,
                confidence_pct: 95.0,
                crossed: false,
                probes: 6,
                search_s: 30.0,
                grid_s: 100.0,
            },
        };
        let mut report = fixture();
        let mut r = report.results[0].clone();
        r.case_id = "cap".into();
        r.kind = "capacity".into();
        r.conclusion = Some(Findings::Other(
            json!({ "capacity": serde_json::to_value(&search).unwrap() }),
        ));
        report.results = vec![r];
        report
    }

    #[test]
    fn a_capacity_search_draws_its_probes_the_slo_the_interval_and_the_estimate() {
        let html = page(&capacity_report([Some(100.0), Some(140.0)]));
        let svg = chart(&html, "cap: probes of the capacity search");
        // The errors SLO broke nowhere and allows nothing: no line of its own.
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        // Each probe's mark, and one of each kind in the legend.
        assert_eq!(svg.matches("<circle class=\"mk mk-pass\"").count(), 2 + 1);
        assert_eq!(svg.matches("<rect class=\"mk mk-fail\"").count(), 2 + 1);
        assert_eq!(
            svg.matches("<circle class=\"mk ring mk-unsettled\"")
                .count(),
            1 + 1
        );
        for needle in [
            ">SLO: ≤ 1 % may break</text>",
            ">95 % interval</text>",
            ">capacity 118.0 requests/s</text>",
            ">saturation 210.0 requests/s</text>",
            ">probe unsettled</text>",
            "150 of 200 judged requests broke ttft_ms p99 ≤ 50 (75 %, 1 % allowed)",
            "over-saturated",
        ] {
            assert!(svg.contains(needle), "{needle} missing");
        }
        // The band spans 100 to 140 requests/s, with the estimate inside.
        let (x, width) = (
            attr(svg, "<rect class=\"span\"", "x"),
            attr(svg, "<rect class=\"span\"", "width"),
        );
        let estimate = attr(svg, "<line class=\"rule estimate\"", "x1");
        assert!(
            x < estimate && estimate < x + width,
            "{x} {width} {estimate}"
        );
        // A share of 0 sits on the floor, labelled 0; 1 % is a decade up.
        assert!(svg.contains("text-anchor=\"end\">0</text>"));
        assert!(svg.contains("text-anchor=\"end\">1</text>"));
        assert!(html.contains(
            "the worst SLO crosses it, 118.0 requests/s; the 95 % interval is 100.0 to 140.0 requests/s."
        ));

        // No settled pass: the band runs from the axis's start.
        let html = page(&capacity_report([None, Some(140.0)]));
        let svg = chart(&html, "cap: probes of the capacity search");
        assert_eq!(attr(svg, "<rect class=\"span\"", "x"), 62.0);
        assert!(html.contains("interval is up to 140.0 requests/s (no probe settled a pass)"));
    }

    /// A case whose findings hold a client audit and a timeline of `requests`.
    fn timeline_report(requests: serde_json::Value, total: usize) -> DailyReport {
        let mut report = fixture();
        let mut r = report.results[0].clone();
        r.case_id = "serve[open,rate=40/s]".into();
        r.conclusion = Some(Findings::Other(json!({
            "client_audit": {"dispatch_lag_ms_p99": 0.3},
            "timeline": {"iteration": 3, "total": total, "requests": requests},
        })));
        report.results = vec![r];
        report
    }

    #[test]
    fn a_timeline_draws_each_request_and_can_be_zoomed() {
        let requests = json!([
            {"scheduled_ms": 0.0, "sent_ms": 0.21, "first_token_ms": 20.4, "finish_ms": 61.0, "ok": true, "cached_tokens": 0},
            {"scheduled_ms": 5.0, "sent_ms": 5.1, "first_token_ms": null, "finish_ms": 30.0, "ok": false},
            {"scheduled_ms": 10.0, "sent_ms": 10.3, "first_token_ms": 25.0, "finish_ms": 70.0, "ok": true},
            {"scheduled_ms": 15.0, "sent_ms": 40.0, "first_token_ms": null, "finish_ms": 45.0, "ok": true},
            {"scheduled_ms": 20.0, "sent_ms": 20.1, "first_token_ms": 31.0, "finish_ms": 80.5, "ok": true, "cached_tokens": 16}
        ]);
        let html = page(&timeline_report(requests, 400));
        let svg = chart(
            &html,
            "serve[open,rate=40/s]: the first 5 of 400 requests of timed iteration 3",
        );
        let path = |class: &str| {
            let d = &svg[svg.find(&format!("<path class=\"{class}\"")).unwrap()..];
            let d = &d[d.find(" d=\"").unwrap() + 4..];
            d[..d.find('"').unwrap()].to_string()
        };
        // One dispatch mark per request, each on its own row.
        let dispatch = path("tq");
        let rows: Vec<&str> = dispatch
            .split('M')
            .skip(1)
            .map(|m| m.split(['H', ' ']).nth(1).unwrap())
            .collect();
        assert_eq!(rows, ["0.5", "1.5", "2.5", "3.5", "4.5"]);
        assert_eq!(path("tf"), "M5.1 1.5H30", "the failed one");
        assert!(html.contains("<title>failed requests</title><path class=\"tf\" stroke-width=\"10.00\" d=\"M0 1.5H1\"/>"));
        assert_eq!(path("tw").matches('M').count(), 4, "every ok one waits");
        assert_eq!(path("ts").matches('M').count(), 3, "three streamed");
        let data = &svg[svg.find("data-rq=\"").unwrap() + 9..];
        let data: Vec<Vec<Option<f64>>> =
            serde_json::from_str(&data[..data.find('"').unwrap()]).unwrap();
        assert_eq!(data.len(), 5);
        assert_eq!(data[4], [20.0, 20.1, 31.0, 80.5, 1.0, 16.0].map(Some));
        assert_eq!(data[1][2], None);
        for needle in [
            "data-zoom=\"reset\"",
            "data-zoom=\"in\"",
            ">sent → first token</text>",
            ">failed (also marked at the right)</text>",
            "viewBox=\"0 0 82.11 5\" preserveAspectRatio=\"none\"",
        ] {
            assert!(html.contains(needle), "{needle} missing");
        }
        assert_eq!(html.matches(TIMELINE_SCRIPT).count(), 1);
        assert!(html.contains("1 failed."));
        // The rest of the findings stays readable; the timeline is not dumped.
        assert!(html.contains("dispatch_lag_ms_p99"));
        assert!(!html.contains("&quot;timeline&quot;"));
    }

    #[test]
    fn a_timeline_of_2000_requests_stays_small() {
        let requests: Vec<serde_json::Value> = (0..2000)
            .map(|i| {
                let at = f64::from(i) * 30.0 + 0.123;
                json!({"scheduled_ms": at, "sent_ms": at + 0.217, "first_token_ms": at + 180.5,
                       "finish_ms": at + 900.25, "ok": i % 100 != 7, "cached_tokens": 32})
            })
            .collect();
        let html = page(&timeline_report(json!(requests), 4000));
        let svg = chart(&html, "serve[open,rate=40/s]: the first 2000 of 4000");
        assert_eq!(svg.matches("<path").count(), 4);
        assert!(svg.len() < 300_000, "{} bytes", svg.len());
    }
}
