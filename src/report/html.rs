//! A self-contained HTML page per day: tables of metrics with targets,
//! latency distributions, sweep plots, the comparison with a baseline and
//! links to flame graphs. Plots are inline SVG drawn here; the page loads
//! nothing from the network. A few lines of script count the plots and
//! record script errors in `data-` attributes, so a headless browser test
//! can check that the page rendered.

use std::fmt::Write;

use super::escape_markup;
use crate::analysis::{ChangeState, Comparison};
use crate::model::{BenchmarkResult, DailyReport, Verdict};

const W: f64 = 420.0;
const H: f64 = 240.0;
const PAD_L: f64 = 62.0;
const PAD_R: f64 = 16.0;
const PAD_T: f64 = 28.0;
const PAD_B: f64 = 42.0;

/// A tick label with enough decimals to tell ticks across `span` apart.
fn tick(v: f64, span: f64) -> String {
    let decimals = if span > 0.0 {
        (2.0 - span.log10().floor()).clamp(0.0, 6.0) as usize
    } else {
        3
    };
    format!("{v:.decimals$}")
}

fn num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Linear scale from data to pixels.
struct Axis {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>, from: f64, to: f64, zero: bool) -> Self {
        let (mut lo, mut hi) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        if zero {
            lo = lo.min(0.0);
        }
        if !(lo.is_finite() && hi.is_finite()) {
            (lo, hi) = (0.0, 1.0);
        }
        if hi <= lo {
            hi = lo + 1.0;
        }
        Self { lo, hi, from, to }
    }

    fn at(&self, v: f64) -> f64 {
        self.from + (v - self.lo) / (self.hi - self.lo) * (self.to - self.from)
    }
}

/// An SVG line plot with axes, labels and one or more series.
fn line_plot(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> String {
    let points = || series.iter().flat_map(|(_, p)| p.iter());
    let x = Axis::new(points().map(|p| p.0), PAD_L, W - PAD_R, false);
    let y = Axis::new(points().map(|p| p.1), H - PAD_B, PAD_T, true);
    let mut svg = format!(
        "<svg class=\"plot\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\"><title>{}</title>",
        escape_markup(title)
    );
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"16\" class=\"t\">{}</text><line x1=\"{PAD_L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"ax\"/><line x1=\"{PAD_L}\" y1=\"{PAD_T}\" x2=\"{PAD_L}\" y2=\"{}\" class=\"ax\"/>",
        W / 2.0,
        escape_markup(title),
        H - PAD_B,
        W - PAD_R,
        H - PAD_B,
        H - PAD_B
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let (xv, yv) = (x.lo + f * (x.hi - x.lo), y.lo + f * (y.hi - y.lo));
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{}</text><text x=\"{}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{}</text><line x1=\"{PAD_L}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" class=\"grid\"/>",
            x.at(xv),
            H - PAD_B + 14.0,
            tick(xv, x.hi - x.lo),
            PAD_L - 4.0,
            y.at(yv) + 4.0,
            tick(yv, y.hi - y.lo),
            y.at(yv),
            W - PAD_R,
            y.at(yv)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" class=\"lab\" text-anchor=\"middle\">{}</text><text x=\"14\" y=\"{}\" class=\"lab\" text-anchor=\"middle\" transform=\"rotate(-90 14 {})\">{}</text>",
        (PAD_L + W - PAD_R) / 2.0,
        H - 6.0,
        escape_markup(x_label),
        (PAD_T + H - PAD_B) / 2.0,
        (PAD_T + H - PAD_B) / 2.0,
        escape_markup(y_label)
    );
    for (i, (name, pts)) in series.iter().enumerate() {
        let path: Vec<String> = pts
            .iter()
            .map(|(a, b)| format!("{:.1},{:.1}", x.at(*a), y.at(*b)))
            .collect();
        let _ = write!(
            svg,
            "<polyline class=\"s{}\" points=\"{}\"><title>{}</title></polyline>",
            i % 4,
            path.join(" "),
            escape_markup(name)
        );
        if pts.len() <= 32 {
            for (a, b) in pts {
                let _ = write!(
                    svg,
                    "<circle class=\"s{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{}: {} → {}</title></circle>",
                    i % 4,
                    x.at(*a),
                    y.at(*b),
                    escape_markup(name),
                    num(*a),
                    num(*b)
                );
            }
        }
        if series.len() > 1 {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" class=\"leg s{}t\">{}</text>",
                PAD_L + 8.0,
                PAD_T + 12.0 + 13.0 * i as f64,
                i % 4,
                escape_markup(name)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The empirical distribution of a result's headline latency samples.
fn cdf_plot(r: &BenchmarkResult) -> Option<String> {
    let metric = r.latency_metric.as_ref()?;
    let m = r.metrics.get(metric)?;
    if m.raw_samples.len() < 2 {
        return None;
    }
    let pts = crate::stats::empirical_cdf(&m.raw_samples);
    Some(line_plot(
        &format!("{} — {metric} CDF ({} samples)", r.case_id, pts.len()),
        &format!("{metric} ({})", m.unit),
        "fraction of samples ≤ x",
        &[(metric.clone(), pts)],
    ))
}

/// Headline p50 along each swept parameter, then the scaling curves.
fn sweep_plots(report: &DailyReport) -> Vec<String> {
    let mut plots: Vec<String> = crate::analysis::sweep_curves(report)
        .into_iter()
        .map(|c| {
            line_plot(
                &format!("{}: {} p50 by {}", c.series, c.metric, c.axis.parameter),
                c.axis.title,
                &format!("{} p50 (ms)", c.metric),
                &[(c.series.clone(), c.points)],
            )
        })
        .collect();
    for curve in &report.scaling {
        let pts: Vec<(f64, f64)> = curve
            .levels
            .iter()
            .map(|l| (l.level as f64, l.throughput))
            .collect();
        let unit = curve
            .levels
            .first()
            .map_or("", |l| l.throughput_unit.as_str());
        plots.push(line_plot(
            &format!("{}: throughput by {}", curve.benchmark, curve.dimension),
            &curve.dimension,
            &format!("throughput ({unit})"),
            &[(curve.benchmark.clone(), pts)],
        ));
    }
    plots
}

/// Ratios against the baseline as bars around 1, with the threshold band.
fn comparison_plot(c: &Comparison) -> Option<String> {
    let rows: Vec<(&str, &str, f64, ChangeState, f64)> = c
        .changes
        .iter()
        .filter_map(|x| {
            Some((
                x.case.as_str(),
                x.metric.as_str(),
                x.ratio?,
                x.state,
                x.threshold_pct,
            ))
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let row_h = 22.0;
    let height = PAD_T + row_h * rows.len() as f64 + 30.0;
    let width = 760.0;
    let (left, right) = (330.0, width - 20.0);
    let x = Axis::new(
        rows.iter()
            .flat_map(|r| [r.2, 1.0 + r.4 / 100.0, 1.0 - r.4 / 100.0]),
        left,
        right,
        false,
    );
    let mut svg = format!(
        "<svg class=\"plot\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\"><title>ratio to baseline</title><text x=\"{}\" y=\"16\" class=\"t\">current ÷ baseline (Hodges–Lehmann ratio), with each metric's threshold band</text>",
        width / 2.0
    );
    for (i, (case, metric, ratio, state, thr)) in rows.iter().enumerate() {
        let y = PAD_T + row_h * i as f64;
        let (lo, hi) = (x.at(1.0 - thr / 100.0), x.at(1.0 + thr / 100.0));
        let (a, b) = (x.at(1.0).min(x.at(*ratio)), x.at(1.0).max(x.at(*ratio)));
        let _ = write!(
            svg,
            "<rect x=\"{lo:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{}\" class=\"band\"/><rect x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{}\" class=\"bar {}\"><title>{} {}: ×{:.3} ({:?})</title></rect><text x=\"{}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{} {}</text>",
            hi - lo,
            row_h - 4.0,
            y + 4.0,
            (b - a).max(1.0),
            row_h - 12.0,
            format!("{state:?}").to_lowercase(),
            escape_markup(case),
            escape_markup(metric),
            ratio,
            state,
            left - 6.0,
            y + 14.0,
            escape_markup(case),
            escape_markup(metric)
        );
    }
    let _ = write!(
        svg,
        "<line x1=\"{0:.1}\" y1=\"{PAD_T}\" x2=\"{0:.1}\" y2=\"{1:.1}\" class=\"ax\"/><text x=\"{0:.1}\" y=\"{2:.1}\" class=\"tick\" text-anchor=\"middle\">1.0</text></svg>",
        x.at(1.0),
        height - 24.0,
        height - 10.0
    );
    Some(svg)
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}h1{font-size:22px}h2{font-size:18px;margin-top:32px}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}.ok{color:#1a7f37}.failed{color:#c62828;font-weight:bold}.interrupted{color:#b26a00}.plots{display:flex;flex-wrap:wrap;gap:12px}.plot{border:1px solid #ddd;background:#fff}.t{font-size:12px;text-anchor:middle;font-weight:600}.tick{font-size:10px;fill:#555}.lab{font-size:11px;fill:#333}.ax{stroke:#333}.grid{stroke:#eee}polyline{fill:none;stroke-width:2}.s0{stroke:#1f77b4;fill:#1f77b4}.s1{stroke:#d62728;fill:#d62728}.s2{stroke:#2ca02c;fill:#2ca02c}.s3{stroke:#9467bd;fill:#9467bd}polyline.s0,polyline.s1,polyline.s2,polyline.s3{fill:none}.leg{font-size:11px}.band{fill:#eef3fb}.bar{fill:#999}.bar.regressed{fill:#c62828}.bar.improved{fill:#1a7f37}.met{color:#1a7f37}.missed{color:#c62828}.meta{color:#555}pre{background:#f6f8fa;padding:8px;font-size:12px;overflow-x:auto}summary{cursor:pointer;font-weight:600}";

const SCRIPT: &str = "window.addEventListener('error',function(e){var b=document.body;b.dataset.scriptErrors=(b.dataset.scriptErrors||'')+e.message+';'});document.addEventListener('DOMContentLoaded',function(){var n=0;document.querySelectorAll('svg.plot').forEach(function(s){var r=s.getBoundingClientRect();if(r.width>0&&r.height>0&&s.querySelector('polyline,rect,circle'))n++});document.body.dataset.plotsRendered=String(n)});";

/// The day's page. `flame_graph_href` turns a flame graph path into a link
/// relative to where the page is written.
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
    let s = &report.summary;
    let _ = write!(
        out,
        "<p class=\"meta\">{} → {}{}{} · {} ({} logical cores) · {} threads on {} · {} · commit {}</p><p>{} results: {} ok, {} failed, {} interrupted · targets: {} met, {} missed, {} not measured</p>",
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
        s.total,
        s.successful,
        s.failed,
        s.interrupted,
        s.targets_met,
        s.targets_missed,
        s.targets_not_measured
    );

    out.push_str("<h2>Results</h2><table><tr><th>case</th><th>status</th><th>latency metric</th><th>mean ms</th><th>p50 ms</th><th>p99 ms</th><th>throughput</th><th>peak RSS MiB</th><th>targets</th></tr>");
    let cell = |v: Option<f64>| v.map_or("—".to_string(), num);
    for r in &report.results {
        let status = format!("{:?}", r.status).to_lowercase();
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

    if let Some(c) = comparison {
        let _ = write!(
            out,
            "<h2>Against baseline {}</h2><p>{}</p><p class=\"meta\">{}</p>",
            escape_markup(&c.baseline),
            escape_markup(&super::ci::blind_spot_sentence(c)),
            escape_markup(&c.rule)
        );
        if let Some(a) = super::ci::advisory_sentence(c) {
            let _ = write!(
                out,
                "<p class=\"missed\">Advisory: {}.</p>",
                escape_markup(&a)
            );
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
                escape_markup(&super::ci::state(x)),
                cell(x.baseline_median),
                cell(x.current_median),
                cell(x.ratio),
                escape_markup(&super::ci::mde(x)),
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
    let concluded: Vec<&BenchmarkResult> = report
        .results
        .iter()
        .filter(|r| !r.conclusion.is_null())
        .collect();
    if !concluded.is_empty() {
        out.push_str("<h2>Conclusions</h2><p class=\"meta\">Judgements over whole cases (trends, leak verdicts, stage shares), with the inputs they rest on.</p>");
        for r in concluded {
            let text = serde_json::to_string_pretty(&r.conclusion).unwrap_or_default();
            let _ = write!(
                out,
                "<details open><summary>{}</summary><pre>{}</pre></details>",
                escape_markup(&r.case_id),
                escape_markup(&text)
            );
        }
    }
    if !report.profiles.is_empty() {
        out.push_str("<h2>Flame graphs</h2><ul>");
        for p in &report.profiles {
            match &p.flamegraph_path {
                Some(path) => {
                    let _ = write!(
                        out,
                        "<li><a href=\"{}\">{}</a> — {} samples at {} Hz; profiler overhead {}</li>",
                        escape_markup(&flame_graph_href(path)),
                        escape_markup(&p.benchmark),
                        p.samples,
                        p.frequency_hz,
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
