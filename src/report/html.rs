//! A self-contained HTML page per day that reads like a report: what the
//! day found in sentences first, then each conclusion with a small chart
//! or table, the comparison with a baseline, the results, sweeps, latency
//! distributions and links to flame graphs. Charts come from `svg`; the
//! sentences from `wording`, shared with the console and summary.md. The
//! page loads nothing from the network. A few lines of script count the
//! plots and record script errors in `data-` attributes, so a headless
//! browser test can check that the page rendered.

use std::fmt::Write;

use super::escape_markup;
use super::svg::{Band, Bar, LinePlot, RatioRow, Series, horizontal_bars, num, ratio_bars};
use super::wording::{
    blind_spot_sentence, comparison_counts_sentence, day_counts_sentence, findings_sentences, mde,
    night_sentences, parity_sentence, peer_sentence, profile_rates, state, state_name, status_name,
};
use crate::analysis::{ChangeState, Comparison};
use crate::model::{BenchmarkResult, DailyReport, Findings, Status, Verdict};

/// The empirical distribution of a result's headline latency samples.
fn cdf_plot(r: &BenchmarkResult) -> Option<String> {
    let metric = r.latency_metric.as_ref()?;
    let m = r.metrics.get(metric)?;
    if m.raw_samples.len() < 2 {
        return None;
    }
    let points = crate::stats::empirical_cdf(&m.raw_samples);
    Some(
        LinePlot {
            title: &format!("{} — {metric} CDF ({} samples)", r.case_id, points.len()),
            x_label: &format!("{metric} ({})", m.unit),
            y_label: "fraction of samples ≤ x",
            series: &[Series {
                name: metric.clone(),
                points,
            }],
            band: None,
            y_from_zero: true,
        }
        .render(),
    )
}

/// Headline p50 along each swept parameter, then the scaling curves.
fn sweep_plots(report: &DailyReport) -> Vec<String> {
    let mut plots: Vec<String> = crate::analysis::sweep_curves(report)
        .into_iter()
        .map(|c| {
            LinePlot {
                title: &format!("{}: {} p50 by {}", c.series, c.metric, c.axis.parameter),
                x_label: c.axis.title,
                y_label: &format!("{} p50 (ms)", c.metric),
                series: &[Series {
                    name: c.series.clone(),
                    points: c.points,
                }],
                band: None,
                y_from_zero: true,
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
        Findings::Other(value) => format!(
            "<pre>{}</pre>",
            escape_markup(&serde_json::to_string_pretty(value).unwrap_or_default())
        ),
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

pub fn render_html(
    report: &DailyReport,
    comparison: Option<&Comparison>,
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

    let sweeps = sweep_plots(report);
    if !sweeps.is_empty() {
        out.push_str("<h2>Sweeps</h2><div class=\"plots\">");
        sweeps.iter().for_each(|p| out.push_str(p));
        out.push_str("</div>");
    }
    let cdfs: Vec<String> = report.results.iter().filter_map(cdf_plot).collect();
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
    out.push_str("</body></html>\n");
    out
}
