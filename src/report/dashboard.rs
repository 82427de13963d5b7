//! The dashboard's pages: a front page of what changed in the last
//! nights, one page per campaign day with a chart per series (each
//! machine's nights, the spread of its runs as a band, change points and
//! open regressions marked with their commits), and one page per night.
//! The same pages are served by `campaign dashboard` and written by
//! `--export`. Charts are inline SVG drawn here, with one small script
//! for tooltips and clicks, so that a year of a hundred series opens in
//! well under a second with nothing to fetch.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::escape_markup as esc;
use super::svg::num;
use crate::analysis::{
    Alert, Comparison, Dashboard, DayBoard, DayCurves, NightPage, SeriesBoard, SeriesChange,
};
use crate::model::DailyReport;
use crate::output::{MAX_STEM, OutputLayout, safe_file_stem};

/// What the pages say about where they came from.
pub struct DashboardView<'a> {
    pub dashboard: &'a Dashboard,
    /// The store, as shown (no password).
    pub store: &'a str,
    pub generated_at: DateTime<Utc>,
}

/// A page of the site: its path under the site's root, and its HTML.
pub struct SitePage {
    pub path: String,
    pub html: String,
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1500px}h1{font-size:22px}h2{font-size:18px;margin-top:28px}h3{font-size:14px;margin:4px 0}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}td.n{text-align:right}.meta{color:#555}.worse{color:#c62828;font-weight:600}.better{color:#1a7f37;font-weight:600}.env{font-size:12px;color:#444;margin:0;padding-left:16px}.charts{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;padding:6px;background:#fff;content-visibility:auto;contain-intrinsic-size:auto 474px auto 230px}svg.chart{display:block}.ax{stroke:#333}.grid{stroke:#eee}.tick{font-size:10px;fill:#555}polyline{fill:none;stroke-width:1.5}polygon.band{fill-opacity:.18;stroke:none}.m0{stroke:#1f77b4;fill:#1f77b4}.m1{stroke:#d62728;fill:#d62728}.m2{stroke:#2ca02c;fill:#2ca02c}.m3{stroke:#9467bd;fill:#9467bd}.m4{stroke:#8c564b;fill:#8c564b}.m5{stroke:#e377c2;fill:#e377c2}polyline.m0,polyline.m1,polyline.m2,polyline.m3,polyline.m4,polyline.m5{fill:none}circle.reg{stroke:#c62828;stroke-width:2;fill:#fff}line.cp{stroke:#c62828;stroke-dasharray:4 3;stroke-width:1.5}line.cp.better{stroke:#1a7f37}text.cp{font-size:10px;fill:#c62828}text.cp.better{fill:#1a7f37}.cp.minor{opacity:.4}#tip{position:fixed;display:none;background:#222;color:#fff;font-size:12px;padding:4px 6px;border-radius:3px;pointer-events:none;white-space:pre}.legend span{margin-right:12px;font-size:12px}";

/// Tooltips and clicks for every chart through one listener each, and
/// what the browser test reads: charts with a size and points, the points
/// drawn, and the time from navigation to this point (interactive).
const SCRIPT: &str = r#"window.addEventListener('error',function(e){var b=document.body;b.dataset.scriptErrors=(b.dataset.scriptErrors||'')+e.message+';'});
document.addEventListener('DOMContentLoaded',function(){
var el=document.getElementById('nights');var N=el?JSON.parse(el.textContent):{};
var tip=document.getElementById('tip');
function lines(s){if(!s._l){s._l=[];s.querySelectorAll('polyline.line').forEach(function(p){var xy=p.getAttribute('points').trim().split(/[ ,]+/).map(Number);s._l.push({xy:xy,n:p.getAttribute('data-n').split(' '),v:p.getAttribute('data-v').split(' ')});});}return s._l;}
function nearest(s,e){var r=s.getBoundingClientRect(),vb=s.viewBox.baseVal;var px=(e.clientX-r.left)*vb.width/r.width,py=(e.clientY-r.top)*vb.height/r.height;var best=null,bd=144;
lines(s).forEach(function(l){for(var i=0;i<l.n.length;i++){var dx=l.xy[2*i]-px,dy=l.xy[2*i+1]-py,d=dx*dx+dy*dy;if(d<bd){bd=d;best={n:N[l.n[i]],v:l.v[i]};}}});return best;}
document.querySelectorAll('svg.chart').forEach(function(s){
s.addEventListener('mousemove',function(e){var p=nearest(s,e);if(!p||!p.n){tip.style.display='none';s.style.cursor='';return;}
s.style.cursor='pointer';tip.textContent=p.n[1]+'  '+p.v+' '+s.getAttribute('data-unit')+'\n'+p.n[2]+'\ncommit '+p.n[3];
tip.style.left=(e.clientX+12)+'px';tip.style.top=(e.clientY+12)+'px';tip.style.display='block';});
s.addEventListener('mouseleave',function(){tip.style.display='none';});
s.addEventListener('click',function(e){if(e.target.closest&&e.target.closest('a'))return;var p=nearest(s,e);if(p&&p.n){location.href=p.n[0];}});});
var charts=0,points=0;document.querySelectorAll('svg.chart').forEach(function(s){var r=s.parentNode.getBoundingClientRect(),c=0;s.querySelectorAll('polyline.line').forEach(function(p){var n=p.getAttribute('data-n').trim();if(n)c+=n.split(' ').length;});points+=c;if(r.width>0&&r.height>0&&c>0)charts++;});
var b=document.body;b.dataset.chartsRendered=String(charts);b.dataset.pointsRendered=String(points);
b.dataset.interactiveMs=String(Math.round(performance.now()));
if(location.hash==='#click-a-point'){var s=document.querySelector('svg.chart');var ls=s&&s.querySelectorAll('polyline.line');if(ls&&ls.length){var l=ls[ls.length-1],pts=l.points,q=pts.getItem(pts.numberOfItems-1),m=l.getScreenCTM();
s.dispatchEvent(new MouseEvent('click',{bubbles:true,clientX:m.a*q.x+m.c*q.y+m.e,clientY:m.b*q.x+m.d*q.y+m.f}));}}
var h=location.hash.match(/^#click-a-change-in-(s[0-9]+)$/);if(h){var a=document.querySelector('#'+h[1]+' a.change');if(a)a.dispatchEvent(new MouseEvent('click',{bubbles:true,cancelable:true}));}
});"#;

/// The page of a campaign's day, relative to the site's root.
pub fn dashboard_day_path(campaign: &str, day: u32) -> String {
    let stem = safe_file_stem(campaign, MAX_STEM);
    // Two names that clean to one stem (`a b`, `a_b`) keep two pages.
    let stem = if stem == campaign {
        stem
    } else {
        format!(
            "{stem}-{:08x}",
            xxhash_rust::xxh3::xxh3_64(campaign.as_bytes()) as u32
        )
    };
    format!("days/{stem}_day_{day}.html")
}

/// A night's page, relative to the site's root.
pub fn dashboard_night_path(run_id: &str) -> String {
    format!("nights/{}.html", safe_file_stem(run_id, MAX_STEM))
}

/// A night's whole report, beside its page.
pub fn dashboard_report_path(run_id: &str) -> String {
    format!("nights/{}.report.html", safe_file_stem(run_id, MAX_STEM))
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body>{body}<div id=\"tip\"></div></body></html>",
        t = esc(title)
    )
}

/// A tick label of at most about six characters: three significant
/// digits, with k, M or G past a thousand, so it fits the chart's margin.
fn compact(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let b = scaled.abs();
    let decimals = if b >= 100.0 {
        0
    } else if b >= 10.0 {
        1
    } else if b >= 1.0 || b == 0.0 {
        2
    } else {
        // Below 1: enough decimals for three significant digits.
        (2 - b.log10().floor() as i32).clamp(2, 9) as usize
    };
    format!("{scaled:.decimals$}{suffix}")
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{v:+.1} %")
    } else {
        "—".into()
    }
}

fn short_commit(c: &str) -> String {
    let (hash, dirty) = match c.strip_suffix("-dirty") {
        Some(h) => (h, "-dirty"),
        None => (c, ""),
    };
    format!("{}{dirty}", hash.chars().take(10).collect::<String>())
}

fn commits_text(commits: &[String]) -> String {
    if commits.is_empty() {
        return "—".into();
    }
    commits
        .iter()
        .map(|c| esc(&short_commit(c)))
        .collect::<Vec<_>>()
        .join(" → ")
}

fn environment_list(changes: &[(String, String, String)], known: bool) -> String {
    if !known {
        return "<span class=\"meta\">environment not stored for one of the nights</span>".into();
    }
    if changes.is_empty() {
        return "<span class=\"meta\">no environment difference</span>".into();
    }
    let mut out = String::from("<ul class=\"env\">");
    for (field, before, after) in changes {
        let _ = write!(
            out,
            "<li>{}: {} → {}</li>",
            esc(field),
            esc(before),
            esc(after)
        );
    }
    out.push_str("</ul>");
    out
}

fn direction_class(change: &SeriesChange) -> &'static str {
    if change.worse { "worse" } else { "better" }
}

/// What a change is, with `minor` before it when it is smaller than its
/// series' threshold.
fn change_label(change: &SeriesChange) -> String {
    if change.minor {
        format!("minor {}", change.kind.label())
    } else {
        change.kind.label().to_string()
    }
}

/// Where each series' chart is: (campaign, day, series) → (page, anchor).
fn chart_anchors(dashboard: &Dashboard) -> BTreeMap<(String, u32, String), (String, String)> {
    let mut out = BTreeMap::new();
    for day in &dashboard.days {
        for (k, s) in day.series.iter().enumerate() {
            out.insert(
                (day.campaign.clone(), day.day, s.series.clone()),
                (dashboard_day_path(&day.campaign, day.day), format!("s{k}")),
            );
        }
    }
    out
}

/// Every page of the dashboard but the nights' whole reports (those are
/// rendered from the store's documents, [`render_night_report`]).
pub fn render_dashboard(view: &DashboardView<'_>) -> Vec<SitePage> {
    let d = view.dashboard;
    let anchors = chart_anchors(d);
    let mut pages = vec![SitePage {
        path: "index.html".into(),
        html: front_page(view, &anchors),
    }];
    for day in &d.days {
        pages.push(SitePage {
            path: dashboard_day_path(&day.campaign, day.day),
            html: day_page(view, day),
        });
    }
    for (i, night) in d.nights.iter().enumerate() {
        pages.push(SitePage {
            path: dashboard_night_path(&night.run_id),
            html: night_page(view, i, night, &anchors),
        });
    }
    pages
}

fn front_page(
    view: &DashboardView<'_>,
    anchors: &BTreeMap<(String, u32, String), (String, String)>,
) -> String {
    let d = view.dashboard;
    let mut out = String::new();
    let series: usize = d.days.iter().map(|day| day.series.len()).sum();
    let _ = write!(
        out,
        "<h1>Campaign dashboard</h1><p class=\"meta\">{} nights, {} series, {} machine(s) ({}) from {}; generated {}.</p>",
        d.nights.len(),
        series,
        d.machines.len(),
        esc(&d.machines.join(", ")),
        esc(view.store),
        view.generated_at.format("%Y-%m-%d %H:%M UTC"),
    );
    let _ = write!(
        out,
        "<h2>Changes of the last {} nights and open regressions ({})</h2>",
        d.recent_nights,
        d.alerts.len()
    );
    if d.alerts.is_empty() {
        let _ = write!(
            out,
            "<p>Nothing changed: no change point, creep or watched tail as large as its series' threshold (the one the gate judged it by, else {} %) began in these nights, and no confirmed regression is open.</p>",
            d.threshold_pct
        );
    } else {
        out.push_str("<table id=\"alerts\"><tr><th>night</th><th>campaign, day</th><th>series</th><th>machine</th><th>what</th><th>change</th><th>commits around it</th><th>environment before → after</th></tr>");
        for a in &d.alerts {
            alert_row(&mut out, d, a, anchors);
        }
        out.push_str("</table>");
    }
    out.push_str("<h2>Campaigns</h2><table><tr><th>campaign, day</th><th>series</th><th>machines</th><th>nights</th><th>latest night</th></tr>");
    for day in &d.days {
        let nights: Vec<&NightPage> = d
            .nights
            .iter()
            .filter(|n| n.campaign == day.campaign && n.day == day.day)
            .collect();
        let machines: std::collections::BTreeSet<&str> =
            nights.iter().map(|n| n.machine_key.as_str()).collect();
        let latest = nights.last().map_or("—".to_string(), |n| {
            format!(
                "<a href=\"{}\">{}</a>",
                esc(&dashboard_night_path(&n.run_id)),
                n.recorded_at.format("%Y-%m-%d %H:%M")
            )
        });
        let _ = write!(
            out,
            "<tr><td><a href=\"{}\">{} — day {}</a></td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td>{latest}</td></tr>",
            esc(&dashboard_day_path(&day.campaign, day.day)),
            esc(&day.campaign),
            day.day,
            day.series.len(),
            esc(&machines.into_iter().collect::<Vec<_>>().join(", ")),
            nights.len(),
        );
    }
    out.push_str("</table>");
    page("Campaign dashboard", &out)
}

fn alert_row(
    out: &mut String,
    d: &Dashboard,
    a: &Alert,
    anchors: &BTreeMap<(String, u32, String), (String, String)>,
) {
    let night = &d.nights[a.change.night];
    let chart = anchors
        .get(&(a.campaign.clone(), a.day, a.series.clone()))
        .map_or(String::new(), |(p, anchor)| format!("{p}#{anchor}"));
    let _ = write!(
        out,
        "<tr class=\"alert\"><td><a class=\"night\" href=\"{}\">{}</a></td><td>{} — day {}</td><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"n {}\">{}</td><td>{}</td><td>{}</td></tr>",
        esc(&dashboard_night_path(&night.run_id)),
        night.recorded_at.format("%Y-%m-%d"),
        esc(&a.campaign),
        a.day,
        esc(&chart),
        esc(&a.series),
        esc(&a.machine_key),
        a.change.kind.label(),
        direction_class(&a.change),
        pct(a.change.change_pct),
        commits_text(&a.change.commits),
        environment_list(&a.change.environment_changes, a.change.environment_known),
    );
}

/// The nights a page's points name, as the script reads them:
/// index → [link, date, machine, commit].
fn nights_table(d: &Dashboard, used: impl Iterator<Item = usize>, prefix: &str) -> String {
    let mut used: Vec<usize> = used.collect();
    used.sort_unstable();
    used.dedup();
    let table: serde_json::Map<String, serde_json::Value> = used
        .into_iter()
        .map(|i| {
            let n = &d.nights[i];
            (
                i.to_string(),
                serde_json::json!([
                    format!("{prefix}{}", dashboard_night_path(&n.run_id)),
                    n.recorded_at.format("%Y-%m-%d %H:%M").to_string(),
                    n.machine_key,
                    short_commit(&n.git_commit),
                ]),
            )
        })
        .collect();
    // Inside a <script> element `</script` ends it and `<!--` changes how
    // it is parsed: no `<` at all (JSON reads \u003c as `<`).
    serde_json::Value::Object(table)
        .to_string()
        .replace('<', "\\u003c")
}

fn day_page(view: &DashboardView<'_>, day: &DayBoard) -> String {
    let d = view.dashboard;
    let mut out = String::new();
    let _ = write!(
        out,
        "<p><a href=\"../index.html\">← dashboard</a></p><h1>{} — day {}</h1><p class=\"meta\">{} series. Each chart: the median of each night's runs (points; click one for its night), the smallest to largest run as a band, change points (dashed, with their change and commits; faded when smaller than the series' threshold, shown under its chart (the one the gate judged it by, else {} %), which the front page leaves out; click for the night), confirmed regressions as red rings. Generated {} from {}.</p>",
        esc(&day.campaign),
        day.day,
        day.series.len(),
        d.threshold_pct,
        view.generated_at.format("%Y-%m-%d %H:%M UTC"),
        esc(view.store),
    );
    let mut machines: Vec<&str> = day
        .series
        .iter()
        .flat_map(|s| s.machines.iter().map(|m| m.machine_key.as_str()))
        .collect();
    machines.sort_unstable();
    machines.dedup();
    out.push_str("<p class=\"legend\">");
    for (i, m) in machines.iter().enumerate() {
        let _ = write!(
            out,
            "<span><svg width=\"18\" height=\"8\"><line class=\"m{}\" x1=\"0\" y1=\"4\" x2=\"18\" y2=\"4\" stroke-width=\"3\"/></svg> {}</span>",
            i % 6,
            esc(m)
        );
    }
    out.push_str("</p>");
    // The point markers every chart's lines share.
    out.push_str("<svg width=\"0\" height=\"0\" style=\"position:absolute\"><defs>");
    for i in 0..6 {
        let _ = write!(
            out,
            "<marker id=\"pt-m{i}\" viewBox=\"0 0 5 5\" refX=\"2.5\" refY=\"2.5\" markerWidth=\"5\" markerHeight=\"5\" markerUnits=\"userSpaceOnUse\"><circle class=\"m{i}\" cx=\"2.5\" cy=\"2.5\" r=\"2\"/></marker>"
        );
    }
    out.push_str("</defs></svg><div class=\"charts\">");
    for (k, s) in day.series.iter().enumerate() {
        let unit = if s.unit.is_empty() {
            String::new()
        } else {
            format!(" ({})", s.unit)
        };
        let _ = write!(
            out,
            "<div class=\"card\" id=\"s{k}\"><h3>{}{}</h3>",
            esc(&s.series),
            esc(&unit)
        );
        out.push_str(&chart(d, s, &machines));
        // Each distinct threshold once, whichever machines share it.
        let mut thresholds: Vec<f64> = s.machines.iter().map(|m| m.threshold_pct).collect();
        thresholds.sort_by(f64::total_cmp);
        thresholds.dedup();
        let shown: Vec<String> = thresholds.iter().map(|t| format!("{t} %")).collect();
        let _ = write!(
            out,
            "<p class=\"meta\">threshold {}</p></div>",
            esc(&shown.join(", "))
        );
    }
    out.push_str("</div>");
    let used = day.series.iter().flat_map(|s| {
        s.machines
            .iter()
            .flat_map(|m| m.points.iter().map(|p| p.night))
    });
    let _ = write!(
        out,
        "<script type=\"application/json\" id=\"nights\">{}</script>",
        nights_table(d, used, "../")
    );
    page(&format!("{} — day {}", day.campaign, day.day), &out)
}

const CW: f64 = 460.0;
const CH: f64 = 190.0;
const L: f64 = 58.0;
const R: f64 = 10.0;
const T: f64 = 22.0;
const B: f64 = 24.0;

/// One series' chart: every machine's band, line, points and changes on a
/// shared time axis.
fn chart(d: &Dashboard, s: &SeriesBoard, machines: &[&str]) -> String {
    let points = s.machines.iter().flat_map(|m| m.points.iter());
    let (t0, t1) = points.clone().fold((i64::MAX, i64::MIN), |(a, b), p| {
        let t = p.recorded_at.timestamp();
        (a.min(t), b.max(t))
    });
    let (lo, hi) = points.clone().fold((f64::MAX, f64::MIN), |(a, b), p| {
        (a.min(p.low), b.max(p.high))
    });
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi > lo {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    } else if lo.is_finite() {
        (lo * 0.95 - 1e-9, lo * 1.05 + 1e-9)
    } else {
        (0.0, 1.0)
    };
    let span_t = (t1 - t0).max(1) as f64;
    let x = |t: DateTime<Utc>| L + (t.timestamp() - t0) as f64 / span_t * (CW - L - R);
    let y = |v: f64| T + (hi - v) / (hi - lo) * (CH - T - B);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"chart\" width=\"{CW}\" height=\"{CH}\" viewBox=\"0 0 {CW} {CH}\" data-unit=\"{}\" role=\"img\" aria-label=\"{}\">",
        esc(&s.unit),
        esc(&s.series)
    );
    // Axes and ticks: three values, the first and last night.
    for i in 0..3 {
        let v = lo + (hi - lo) * (0.05 + 0.45 * i as f64);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{L}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            CW - R,
            L - 4.0,
            y(v) + 3.0,
            esc(&compact(v)),
            y = y(v),
        );
    }
    let _ = write!(
        out,
        "<line class=\"ax\" x1=\"{L}\" x2=\"{L}\" y1=\"{T}\" y2=\"{b}\"/><line class=\"ax\" x1=\"{L}\" x2=\"{r}\" y1=\"{b}\" y2=\"{b}\"/>",
        b = CH - B,
        r = CW - R
    );
    if let (Some(first), Some(last)) = (
        DateTime::<Utc>::from_timestamp(t0, 0),
        DateTime::<Utc>::from_timestamp(t1, 0),
    ) {
        // Nights within two days of each other are told apart by the hour.
        let format = if t1 - t0 < 2 * 86_400 {
            "%m-%d %H:%M"
        } else {
            "%Y-%m-%d"
        };
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{L}\" y=\"{}\">{}</text><text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            CH - 8.0,
            first.format(format),
            CW - R,
            CH - 8.0,
            last.format(format)
        );
    }
    for m in &s.machines {
        let class = format!(
            "m{}",
            machines
                .iter()
                .position(|k| *k == m.machine_key)
                .unwrap_or(0)
                % 6
        );
        let mut band = String::new();
        for p in &m.points {
            let _ = write!(band, "{:.0},{:.0} ", x(p.recorded_at), y(p.high));
        }
        for p in m.points.iter().rev() {
            let _ = write!(band, "{:.0},{:.0} ", x(p.recorded_at), y(p.low));
        }
        let line: String = m
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.recorded_at), y(p.value)))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            out,
            "<polygon class=\"band {class}\" points=\"{}\"/>",
            band.trim_end()
        );
        // Every night is a vertex of the line, drawn by the line's markers
        // and found by the script from these lists: one element per
        // machine and series, not one per night, so a year of a hundred
        // series stays light.
        let nights: Vec<String> = m.points.iter().map(|p| p.night.to_string()).collect();
        let values: Vec<String> = m.points.iter().map(|p| num(p.value)).collect();
        let _ = write!(
            out,
            "<polyline class=\"line {class}\" points=\"{line}\" data-n=\"{}\" data-v=\"{}\" marker-start=\"url(#pt-{class})\" marker-mid=\"url(#pt-{class})\" marker-end=\"url(#pt-{class})\"/>",
            nights.join(" "),
            values.join(" ")
        );
        for p in &m.points {
            if p.state == Some(crate::analysis::ChangeState::Regressed) {
                let _ = write!(
                    out,
                    "<circle class=\"reg\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\"/>",
                    x(p.recorded_at),
                    y(p.value),
                );
            }
        }
        for c in &m.changes {
            let Some(p) = m.points.get(c.point) else {
                continue;
            };
            let cx = x(p.recorded_at);
            let dir = match (c.worse, c.minor) {
                (true, false) => "",
                (false, false) => " better",
                (true, true) => " minor",
                (false, true) => " better minor",
            };
            let title = format!(
                "{} on {}: {} from the night of {} ({}); commits {}",
                change_label(c),
                m.machine_key,
                pct(c.change_pct),
                p.recorded_at.format("%Y-%m-%d"),
                short_commit(&d.nights[c.night].git_commit),
                c.commits
                    .iter()
                    .map(|c| short_commit(c))
                    .collect::<Vec<_>>()
                    .join(" → ")
            );
            let _ = write!(
                out,
                "<a class=\"change\" href=\"../{}\"><title>{}</title><line class=\"cp{dir}\" x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{T}\" y2=\"{}\"/><text class=\"cp{dir}\" x=\"{:.1}\" y=\"{}\">{} {}</text></a>",
                esc(&dashboard_night_path(&d.nights[c.night].run_id)),
                esc(&title),
                CH - B,
                (cx + 3.0).min(CW - 60.0),
                T - 6.0,
                esc(&pct(c.change_pct)),
                esc(&short_commit(&d.nights[c.night].git_commit)),
            );
        }
    }
    out.push_str("</svg>");
    out
}

fn night_page(
    view: &DashboardView<'_>,
    index: usize,
    n: &NightPage,
    anchors: &BTreeMap<(String, u32, String), (String, String)>,
) -> String {
    let d = view.dashboard;
    let mut out = String::new();
    let title = format!(
        "{} — day {}: night of {} on {}",
        n.campaign,
        n.day,
        n.recorded_at.format("%Y-%m-%d %H:%M UTC"),
        n.machine_key
    );
    let link = |i: Option<usize>, label: &str| {
        i.map_or(String::new(), |i| {
            format!(
                " · <a href=\"../{}\">{label}</a>",
                esc(&dashboard_night_path(&d.nights[i].run_id))
            )
        })
    };
    let _ = write!(
        out,
        "<p><a href=\"../index.html\">← dashboard</a> · <a href=\"../{}\">charts of day {}</a>{}{}{}</p><h1 data-run-id=\"{}\">{}</h1><p class=\"meta\">commit {} · {} run(s){}{} · run id {}</p>",
        esc(&dashboard_day_path(&n.campaign, n.day)),
        n.day,
        link(n.previous, "previous night"),
        link(n.next, "next night"),
        if n.has_report {
            format!(
                " · <a class=\"report\" href=\"../{}\">this night's report, flame graphs and comparison</a>",
                esc(&dashboard_report_path(&n.run_id))
            )
        } else {
            String::new()
        },
        esc(&n.run_id),
        esc(&title),
        esc(&n.git_commit),
        n.runs,
        if n.quick { " · quick" } else { "" },
        n.baseline.as_ref().map_or(String::new(), |b| format!(
            " · compared with baseline {}",
            esc(b)
        )),
        esc(&n.run_id),
    );
    if n.report_stored && !n.has_report {
        out.push_str("<p class=\"meta\">This night's whole report is in the store but not in this export (an export writes the last nights' reports and those of the nights a change begins on); `campaign dashboard` serves every one. Its values are below.</p>");
    } else if !n.has_report {
        out.push_str("<p class=\"meta\">This night's whole report is not in the store (a night imported from the JSONL history, or stored by an older version): its values are below.</p>");
    }
    let starting: Vec<(&SeriesBoard, &SeriesChange)> = d
        .days
        .iter()
        .filter(|day| day.campaign == n.campaign && day.day == n.day)
        .flat_map(|day| day.series.iter())
        .flat_map(|s| {
            s.machines
                .iter()
                .filter(|m| m.machine_key == n.machine_key)
                .flat_map(move |m| m.changes.iter().map(move |c| (s, c)))
        })
        .filter(|(_, c)| c.night == index)
        .collect();
    if !starting.is_empty() {
        let _ = write!(
            out,
            "<h2>Changes that begin this night ({})</h2><table><tr><th>series</th><th>what</th><th>change</th><th>commits around it</th></tr>",
            starting.len()
        );
        for (s, c) in &starting {
            let chart = anchors
                .get(&(n.campaign.clone(), n.day, s.series.clone()))
                .map_or(String::new(), |(p, a)| format!("../{p}#{a}"));
            let _ = write!(
                out,
                "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td class=\"n {}\">{}</td><td>{}</td></tr>",
                esc(&chart),
                esc(&s.series),
                change_label(c),
                direction_class(c),
                pct(c.change_pct),
                commits_text(&c.commits)
            );
        }
        out.push_str("</table>");
    }
    out.push_str("<h2>Environment against the night before</h2>");
    match (&n.environment_changes, n.previous) {
        (_, None) => {
            out.push_str("<p class=\"meta\">The first night of this day on this machine.</p>")
        }
        (Some(changes), Some(_)) => out.push_str(&environment_list(changes, true)),
        (None, Some(_)) => out.push_str(&environment_list(&[], false)),
    }
    let _ = write!(
        out,
        "<h2>Values ({})</h2><table><tr><th>series</th><th>median</th><th>runs from</th><th>to</th><th>unit</th><th>gate</th></tr>",
        n.values.len()
    );
    for v in &n.values {
        let state = v.state.map_or(String::new(), |s| {
            serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        });
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            esc(&v.series),
            num(v.median),
            num(v.low),
            num(v.high),
            esc(&v.unit),
            if state == "regressed" { "worse" } else { "" },
            esc(&state)
        );
    }
    out.push_str("</table>");
    page(&title, &out)
}

/// A night's whole report, as `campaign report --html` draws it, with the
/// comparison it was judged by and its curves
/// ([`crate::analysis::day_curves`]); flame graphs linked beside the
/// nights.
pub fn render_night_report(
    report: &DailyReport,
    comparison: Option<&Comparison>,
    curves: &DayCurves,
) -> String {
    super::html::render_html(report, comparison, curves, &|path| {
        OutputLayout::flame_graph_href(path)
    })
}

/// The flame graph files a report links, by file name as the pages link
/// them (`flame_graphs/<name>` under the site's root) → the path the
/// report recorded.
pub fn report_flame_graphs(report: &DailyReport) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = report
        .profiles
        .iter()
        .filter_map(|p| p.flamegraph_path.clone())
        .filter_map(|path| {
            let name = std::path::Path::new(&path)
                .file_name()?
                .to_string_lossy()
                .into_owned();
            Some((name, path))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::compact;

    #[test]
    fn tick_labels_stay_short_at_every_magnitude() {
        assert_eq!(compact(1417.0), "1.42k");
        assert_eq!(compact(746_000.0), "746k");
        assert_eq!(compact(52.3), "52.3");
        assert_eq!(compact(9.011), "9.01");
        assert_eq!(compact(0.00123), "0.00123");
        assert_eq!(compact(2.5e9), "2.50G");
        assert_eq!(compact(0.0), "0.00");
    }
}
