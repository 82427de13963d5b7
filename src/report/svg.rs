//! Inline SVG charts for the HTML pages: line plots (with an optional
//! shaded band, reference lines, a shaded range of x, markers, a log y
//! axis), horizontal bars, ratio bars around 1, and a per-request timeline
//! that a few lines of script zoom. Drawn by hand because the pages must
//! load nothing and stay small: a plotting crate would either pull a
//! renderer or emit far larger markup for charts this simple. Every chart
//! is an `svg.plot` element that the headless-browser test counts.

use std::fmt::Write;

use super::escape_markup;

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

/// A figure with about three significant digits.
pub fn num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A scale from data to pixels: linear, or logarithmic (base 10) over
/// whole decades, where values at or below zero sit on the floor.
struct Axis {
    /// The ends: data values, or their base-10 logarithms on a log axis.
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
    log: bool,
    /// A log axis that was given values at or below zero: its floor, a
    /// decade below the smallest positive value, stands for zero.
    zero_floor: bool,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>, from: f64, to: f64, zero: bool) -> Self {
        let (mut lo, mut hi) = values
            .filter(|v| v.is_finite())
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        if zero {
            lo = lo.min(0.0);
        }
        if !(lo.is_finite() && hi.is_finite()) || lo > hi {
            (lo, hi) = (0.0, 1.0);
        }
        if hi <= lo {
            hi = lo + 1.0;
        }
        Self {
            lo,
            hi,
            from,
            to,
            log: false,
            zero_floor: false,
        }
    }

    /// A log axis over the decades that hold the positive values.
    fn new_log(values: impl Iterator<Item = f64>, from: f64, to: f64) -> Self {
        let mut zero = false;
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for v in values.filter(|v| v.is_finite()) {
            if v > 0.0 {
                (lo, hi) = (lo.min(v.log10()), hi.max(v.log10()));
            } else {
                zero = true;
            }
        }
        let (mut lo, mut hi) = if lo <= hi {
            (lo.floor(), hi.ceil())
        } else {
            (-1.0, 0.0)
        };
        if zero {
            lo -= 1.0;
        }
        if hi <= lo {
            hi = lo + 1.0;
        }
        Self {
            lo,
            hi,
            from,
            to,
            log: true,
            zero_floor: zero,
        }
    }

    fn at(&self, v: f64) -> f64 {
        let v = if self.log {
            if v > 0.0 { v.log10() } else { self.lo }
        } else {
            v
        };
        self.from + (v - self.lo) / (self.hi - self.lo) * (self.to - self.from)
    }

    /// The axis's range in data values.
    fn range(&self) -> (f64, f64) {
        if self.log {
            (10f64.powf(self.lo), 10f64.powf(self.hi))
        } else {
            (self.lo, self.hi)
        }
    }

    /// Tick values and their labels: five even ones, or each decade.
    fn ticks(&self) -> Vec<(f64, String)> {
        if !self.log {
            return (0..=4)
                .map(|i| {
                    let v = self.lo + f64::from(i) / 4.0 * (self.hi - self.lo);
                    (v, tick(v, self.hi - self.lo))
                })
                .collect();
        }
        let decades = (self.hi - self.lo).round() as i32;
        let step = decades / 6 + 1;
        (0..=decades)
            .step_by(step as usize)
            .map(|i| {
                let d = self.lo as i32 + i;
                let label = if i == 0 && self.zero_floor {
                    "0".to_string()
                } else {
                    decade(d)
                };
                (10f64.powi(d), label)
            })
            .collect()
    }
}

/// 10^d written out: 0.01, 1, 1000.
fn decade(d: i32) -> String {
    if d >= 0 {
        format!("{:.0}", 10f64.powi(d))
    } else {
        format!("{:.*}", (-d) as usize, 10f64.powi(d))
    }
}

/// One named line of a plot.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A shaded region between two curves, as `(x, low, high)`.
#[derive(Debug, Clone)]
pub struct Band {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// A reference line across the plot (named in a legend on the right):
/// horizontal at a y value (an SLO) or vertical at an x value (an
/// estimate).
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub at: f64,
    pub vertical: bool,
    /// How it is drawn: `slo` (red, dashed), `estimate` (dark, solid) or
    /// `reference` (grey, dotted).
    pub class: &'static str,
}

/// A shaded range of x (an interval); an end that is `None` runs to the
/// plot's edge.
#[derive(Debug, Clone)]
pub struct Span {
    pub name: String,
    pub from: Option<f64>,
    pub to: Option<f64>,
}

/// How a marker is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Circle,
    Square,
    /// A hollow circle.
    Ring,
}

/// A point drawn on its own, over the lines: its class gives its colour.
#[derive(Debug, Clone)]
pub struct Marker {
    pub x: f64,
    pub y: f64,
    pub shape: Shape,
    pub class: &'static str,
    pub tooltip: String,
}

/// What a kind of marker means, for the legend.
#[derive(Debug, Clone)]
pub struct MarkerKey {
    pub name: String,
    pub shape: Shape,
    pub class: &'static str,
}

/// A line plot with axes, ticks, labels and a legend; optionally with
/// reference lines, a shaded range of x and markers of their own.
#[derive(Default)]
pub struct LinePlot<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
    pub band: Option<&'a Band>,
    /// Whether the y axis starts at zero (rates and latencies), or fits the
    /// data (a resident set of 400–410 MiB).
    pub y_from_zero: bool,
    /// A base-10 log y axis over whole decades (values at or below zero
    /// sit on its floor, labelled 0).
    pub y_log: bool,
    pub rules: &'a [Rule],
    pub span: Option<&'a Span>,
    pub markers: &'a [Marker],
    pub marker_keys: &'a [MarkerKey],
    /// The legend, each entry with its sample (line, area, marker), in a
    /// column right of the plot (the chart is wider): for plots with many
    /// entries. Else the series and band are named inside, top left, and
    /// rules, spans and markers are in no legend.
    pub legend_right: bool,
}

/// Room for a legend right of a plot.
const LEGEND_W: f64 = 190.0;

/// A legend entry's sample, drawn at `(x, y)` (the text's baseline).
fn swatch(svg: &mut String, x: f64, y: f64, entry: &Swatch) {
    let mid = y - 4.0;
    match entry {
        Swatch::Line(class) => {
            let _ = write!(
                svg,
                "<line x1=\"{x}\" y1=\"{mid}\" x2=\"{}\" y2=\"{mid}\" class=\"{class}\" stroke-width=\"2\"/>",
                x + 14.0
            );
        }
        Swatch::Area(class) => {
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"{}\" width=\"14\" height=\"9\" class=\"{class}\"/>",
                mid - 4.5
            );
        }
        Swatch::Mark(shape, class) => marker_shape(svg, x + 7.0, mid, *shape, class, ""),
    }
}

enum Swatch {
    Line(String),
    Area(String),
    Mark(Shape, &'static str),
}

/// A marker's element, with `inner` (a `<title>`) inside it.
fn marker_shape(svg: &mut String, cx: f64, cy: f64, shape: Shape, class: &str, inner: &str) {
    let _ = match shape {
        Shape::Circle => write!(
            svg,
            "<circle class=\"mk {class}\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"4\">{inner}</circle>"
        ),
        Shape::Ring => write!(
            svg,
            "<circle class=\"mk ring {class}\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"4\">{inner}</circle>"
        ),
        Shape::Square => write!(
            svg,
            "<rect class=\"mk {class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"8\" height=\"8\">{inner}</rect>",
            cx - 4.0,
            cy - 4.0
        ),
    };
}

impl LinePlot<'_> {
    pub fn render(&self) -> String {
        let band_points = self.band.iter().flat_map(|b| b.points.iter());
        let rule_values = |vertical: bool| {
            self.rules
                .iter()
                .filter(move |r| r.vertical == vertical)
                .map(|r| r.at)
        };
        let x = Axis::new(
            self.series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0))
                .chain(band_points.clone().map(|p| p.0))
                .chain(rule_values(true))
                .chain(self.span.iter().flat_map(|s| [s.from, s.to]).flatten())
                .chain(self.markers.iter().map(|m| m.x)),
            PAD_L,
            W - PAD_R,
            false,
        );
        let y_values = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain(band_points.flat_map(|p| [p.1, p.2]))
            .chain(rule_values(false))
            .chain(self.markers.iter().map(|m| m.y));
        let y = if self.y_log {
            Axis::new_log(y_values, H - PAD_B, PAD_T)
        } else {
            Axis::new(y_values, H - PAD_B, PAD_T, self.y_from_zero)
        };
        let width = if self.legend_right { W + LEGEND_W } else { W };
        let mut svg = open_svg(width, H, self.title);
        axes(&mut svg, self.x_label, self.y_label, &x, &y);
        let mut legend: Vec<(Swatch, &str)> = Vec::new();
        if let Some(span) = self.span {
            let (lo, hi) = x.range();
            let (a, b) = (
                x.at(span.from.unwrap_or(lo).max(lo)),
                x.at(span.to.unwrap_or(hi).min(hi)),
            );
            let _ = write!(
                svg,
                "<rect class=\"span\" x=\"{a:.1}\" y=\"{PAD_T}\" width=\"{:.1}\" height=\"{}\"><title>{}</title></rect>",
                (b - a).max(1.0),
                H - PAD_B - PAD_T,
                escape_markup(&span.name)
            );
        }
        if let Some(band) = self.band {
            let upper = band.points.iter().map(|(a, _, hi)| (*a, *hi));
            let lower = band.points.iter().rev().map(|(a, lo, _)| (*a, *lo));
            let outline: Vec<String> = upper
                .chain(lower)
                .map(|(a, b)| format!("{:.1},{:.1}", x.at(a), y.at(b)))
                .collect();
            let _ = write!(
                svg,
                "<polygon class=\"band\" points=\"{}\"><title>{}</title></polygon>",
                outline.join(" "),
                escape_markup(&band.name),
            );
            if !self.legend_right {
                let _ = write!(
                    svg,
                    "<text x=\"{}\" y=\"{}\" class=\"leg\">▒ {}</text>",
                    PAD_L + 8.0,
                    PAD_T + 12.0 + 13.0 * self.series.len() as f64,
                    escape_markup(&band.name)
                );
            }
        }
        for rule in self.rules {
            let (x1, y1, x2, y2) = if rule.vertical {
                (x.at(rule.at), PAD_T, x.at(rule.at), H - PAD_B)
            } else {
                (PAD_L, y.at(rule.at), W - PAD_R, y.at(rule.at))
            };
            let _ = write!(
                svg,
                "<line class=\"rule {}\" x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\"><title>{}</title></line>",
                rule.class,
                escape_markup(&rule.name)
            );
        }
        for (i, s) in self.series.iter().enumerate() {
            let path: Vec<String> = s
                .points
                .iter()
                .map(|(a, b)| format!("{:.1},{:.1}", x.at(*a), y.at(*b)))
                .collect();
            let _ = write!(
                svg,
                "<polyline class=\"s{}\" points=\"{}\"><title>{}</title></polyline>",
                i % 4,
                path.join(" "),
                escape_markup(&s.name)
            );
            if s.points.len() <= 32 {
                for (a, b) in &s.points {
                    let _ = write!(
                        svg,
                        "<circle class=\"s{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{}: {} → {}</title></circle>",
                        i % 4,
                        x.at(*a),
                        y.at(*b),
                        escape_markup(&s.name),
                        num(*a),
                        num(*b)
                    );
                }
            }
            legend.push((Swatch::Line(format!("s{}", i % 4)), &s.name));
            if !self.legend_right && (self.series.len() > 1 || self.band.is_some()) {
                let _ = write!(
                    svg,
                    "<text x=\"{}\" y=\"{}\" class=\"leg s{}t\">{}</text>",
                    PAD_L + 8.0,
                    PAD_T + 12.0 + 13.0 * i as f64,
                    i % 4,
                    escape_markup(&s.name)
                );
            }
        }
        if let Some(band) = self.band {
            legend.push((Swatch::Area("bandsw".into()), &band.name));
        }
        if let Some(span) = self.span {
            legend.push((Swatch::Area("span".into()), &span.name));
        }
        for rule in self.rules {
            legend.push((Swatch::Line(format!("rule {}", rule.class)), &rule.name));
        }
        for m in self.markers {
            let title = format!("<title>{}</title>", escape_markup(&m.tooltip));
            marker_shape(&mut svg, x.at(m.x), y.at(m.y), m.shape, m.class, &title);
        }
        for key in self.marker_keys {
            legend.push((Swatch::Mark(key.shape, key.class), &key.name));
        }
        // One line needs no legend: the title names it.
        if self.legend_right && legend.len() > 1 {
            let left = W - PAD_R + 14.0;
            for (i, (sample, name)) in legend.iter().enumerate() {
                let base = PAD_T + 12.0 + 14.0 * i as f64;
                swatch(&mut svg, left, base, sample);
                let _ = write!(
                    svg,
                    "<text x=\"{}\" y=\"{base}\" class=\"leg\">{}</text>",
                    left + 18.0,
                    escape_markup(name)
                );
            }
        }
        svg.push_str("</svg>");
        svg
    }
}

/// The opening of a chart: its element, its accessible title and the
/// caption centred above it.
fn open_svg(width: f64, height: f64, title: &str) -> String {
    format!(
        "<svg class=\"plot\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\"><title>{0}</title><text x=\"{1}\" y=\"16\" class=\"t\">{0}</text>",
        escape_markup(title),
        width / 2.0
    )
}

/// Both axes with their ticks, grid lines and axis labels.
fn axes(svg: &mut String, x_label: &str, y_label: &str, x: &Axis, y: &Axis) {
    let _ = write!(
        svg,
        "<line x1=\"{PAD_L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"ax\"/><line x1=\"{PAD_L}\" y1=\"{PAD_T}\" x2=\"{PAD_L}\" y2=\"{}\" class=\"ax\"/>",
        H - PAD_B,
        W - PAD_R,
        H - PAD_B,
        H - PAD_B
    );
    let (x_ticks, y_ticks) = (x.ticks(), y.ticks());
    for i in 0..x_ticks.len().max(y_ticks.len()) {
        if let Some((xv, label)) = x_ticks.get(i) {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{label}</text>",
                x.at(*xv),
                H - PAD_B + 14.0,
            );
        }
        let Some((yv, label)) = y_ticks.get(i) else {
            continue;
        };
        let yv = *yv;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{label}</text><line x1=\"{PAD_L}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" class=\"grid\"/>",
            PAD_L - 4.0,
            y.at(yv) + 4.0,
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
}

/// One bar of a bar chart; `class` colours it (`bar`, `regressed`, …).
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub class: &'static str,
}

/// Horizontal bars from zero, labelled on the left, values on the right.
pub fn horizontal_bars(title: &str, unit: &str, bars: &[Bar]) -> String {
    let row_h = 22.0;
    let height = PAD_T + row_h * bars.len() as f64 + 12.0;
    let width = 560.0;
    let (left, right) = (170.0, width - 80.0);
    let x = Axis::new(bars.iter().map(|b| b.value), left, right, true);
    let mut svg = open_svg(width, height, title);
    for (i, bar) in bars.iter().enumerate() {
        let y = PAD_T + row_h * i as f64;
        let (a, b) = (x.at(0.0), x.at(bar.value.max(0.0)));
        let _ = write!(
            svg,
            "<rect x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{}\" class=\"bar {}\"><title>{}: {} {}</title></rect><text x=\"{}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\">{} {}</text>",
            y + 4.0,
            (b - a).max(1.0),
            row_h - 8.0,
            bar.class,
            escape_markup(&bar.label),
            num(bar.value),
            escape_markup(unit),
            left - 6.0,
            y + 16.0,
            escape_markup(&bar.label),
            b + 4.0,
            y + 16.0,
            num(bar.value),
            escape_markup(unit)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One row of a ratio chart: current ÷ reference with its threshold band.
#[derive(Debug, Clone)]
pub struct RatioRow {
    pub label: String,
    pub ratio: f64,
    pub threshold_pct: f64,
    pub class: &'static str,
    pub tooltip: String,
}

/// Bars from 1 to each ratio over the ±threshold band, labelled left.
pub fn ratio_bars(title: &str, rows: &[RatioRow]) -> String {
    let row_h = 22.0;
    let height = PAD_T + row_h * rows.len() as f64 + 30.0;
    let width = 760.0;
    let (left, right) = (330.0, width - 20.0);
    let x = Axis::new(
        rows.iter().flat_map(|r| {
            [
                r.ratio,
                1.0 + r.threshold_pct / 100.0,
                1.0 - r.threshold_pct / 100.0,
            ]
        }),
        left,
        right,
        false,
    );
    let mut svg = open_svg(width, height, title);
    for (i, row) in rows.iter().enumerate() {
        let y = PAD_T + row_h * i as f64;
        let (lo, hi) = (
            x.at(1.0 - row.threshold_pct / 100.0),
            x.at(1.0 + row.threshold_pct / 100.0),
        );
        let (a, b) = (
            x.at(1.0).min(x.at(row.ratio)),
            x.at(1.0).max(x.at(row.ratio)),
        );
        let _ = write!(
            svg,
            "<rect x=\"{lo:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{}\" class=\"band\"/><rect x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{}\" class=\"bar {}\"><title>{}</title></rect><text x=\"{}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{}</text>",
            hi - lo,
            row_h - 4.0,
            y + 4.0,
            (b - a).max(1.0),
            row_h - 12.0,
            row.class,
            escape_markup(&row.tooltip),
            left - 6.0,
            y + 14.0,
            escape_markup(&row.label)
        );
    }
    let _ = write!(
        svg,
        "<line x1=\"{0:.1}\" y1=\"{PAD_T}\" x2=\"{0:.1}\" y2=\"{1:.1}\" class=\"ax\"/><text x=\"{0:.1}\" y=\"{2:.1}\" class=\"tick\" text-anchor=\"middle\">1.0</text></svg>",
        x.at(1.0),
        height - 24.0,
        height - 10.0
    );
    svg
}

/// One request of a timeline: times in ms from its iteration's start.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineRequest {
    pub scheduled_ms: f64,
    pub sent_ms: Option<f64>,
    /// `None`: it failed, or it returned no token.
    pub first_token_ms: Option<f64>,
    pub finish_ms: Option<f64>,
    pub ok: bool,
    pub cached_tokens: Option<u64>,
}

const TL_W: f64 = 960.0;
const TL_TOP: f64 = 52.0;

/// A figure to `decimals` places without trailing zeros (`null` when not
/// finite): compact, for coordinates, data attributes and round settings.
pub fn fixed(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "null".into();
    }
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" { "0".into() } else { s.into() }
}

/// A time to the microsecond (the readout's precision).
fn short(v: f64) -> String {
    fixed(v, 3)
}

/// Round ticks over `lo..=hi`, about `n` of them, at least `least` apart:
/// steps of 1, 2 or 5 times a power of ten. With the step.
fn nice_ticks(lo: f64, hi: f64, n: f64, least: f64) -> (Vec<f64>, f64) {
    let raw = ((hi - lo) / n).max(f64::MIN_POSITIVE);
    let power = 10f64.powf(raw.log10().floor());
    let m = raw / power;
    let step = (power
        * if m < 1.5 {
            1.0
        } else if m < 3.5 {
            2.0
        } else if m < 7.5 {
            5.0
        } else {
            10.0
        })
    .max(least);
    let mut ticks = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-9 && ticks.len() < 50 {
        ticks.push(v);
        v += step;
    }
    (ticks, step)
}

/// A tick at a multiple of `step`, with the decimals the step needs.
fn step_label(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

/// One horizontal line per request, in send order from the top: scheduled
/// → sent thin (the wait for a slot and the client's dispatch lag), sent →
/// first token, first token → finish, a failed request's time after its
/// send in its own colour. The requests are drawn in an inner `svg` whose
/// `viewBox` is the data's (ms across, request index down), so
/// [`TIMELINE_SCRIPT`] zooms by setting it; strokes keep their width in
/// pixels. `data-rq` holds each request's times for the readout under
/// the pointer.
pub fn timeline(title: &str, requests: &[TimelineRequest]) -> String {
    let n = requests.len();
    let plot_h = (n as f64 * 4.0).clamp(100.0, 480.0);
    let height = TL_TOP + plot_h + PAD_B;
    let plot_w = TL_W - PAD_L - PAD_R;
    let times = requests.iter().flat_map(|r| {
        [
            Some(r.scheduled_ms),
            r.sent_ms,
            r.first_token_ms,
            r.finish_ms,
        ]
        .into_iter()
        .flatten()
        .filter(|v| v.is_finite())
    });
    let (lo, hi) = times.fold((0.0f64, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let span = if hi > lo { (hi - lo) * 1.02 } else { 1.0 };
    let rows = n.max(1) as f64;
    let stroke = (0.8 * plot_h / rows).clamp(0.6, 10.0);
    let thin = (0.4 * stroke).max(0.5);

    // Coordinates to about a hundred-thousandth of the span: the most a
    // zoom shows (the readout has the microseconds).
    let decimals = (5.0 - span.log10().ceil()).clamp(1.0, 3.0) as usize;
    let mut paths: [String; 4] = Default::default();
    // Failures also marked right of the plot, where a short one shows.
    let mut failures = String::new();
    let mut data = String::from("[");
    for (i, r) in requests.iter().enumerate() {
        let y = format!("{i}.5");
        let mut segment = |which: usize, a: f64, b: f64| {
            let _ = write!(
                paths[which],
                "M{} {y}H{}",
                fixed(a, decimals),
                fixed(b, decimals)
            );
        };
        let sent = r.sent_ms.unwrap_or(r.scheduled_ms);
        segment(0, r.scheduled_ms, sent);
        if !r.ok {
            let _ = write!(failures, "M0 {y}H1");
        }
        match (r.ok, r.first_token_ms, r.finish_ms) {
            (false, _, end) => segment(3, sent, end.or(r.first_token_ms).unwrap_or(sent)),
            (true, Some(first), end) => {
                segment(1, sent, first);
                segment(2, first, end.unwrap_or(first));
            }
            (true, None, end) => segment(1, sent, end.unwrap_or(sent)),
        }
        let opt = |v: Option<f64>| v.map_or("null".to_string(), short);
        let _ = write!(
            data,
            "{}[{},{},{},{},{},{}]",
            if i == 0 { "" } else { "," },
            short(r.scheduled_ms),
            opt(r.sent_ms),
            opt(r.first_token_ms),
            opt(r.finish_ms),
            u8::from(r.ok),
            r.cached_tokens
                .map_or("null".to_string(), |c| c.to_string())
        );
    }
    data.push(']');

    let mut svg = format!(
        "<div class=\"timeline\"><svg class=\"plot\" data-timeline=\"\" data-plot=\"{PAD_L} {TL_TOP} {plot_w} {plot_h}\" data-rq=\"{data}\" viewBox=\"0 0 {TL_W} {height}\" width=\"{TL_W}\" height=\"{height}\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\"><title>{0}</title><text x=\"{1}\" y=\"16\" class=\"t\">{0}</text>",
        escape_markup(title),
        TL_W / 2.0
    );
    let legend = [
        (
            "tq",
            thin.max(2.0),
            "scheduled → sent (slot wait, dispatch lag)",
        ),
        ("tw", 5.0, "sent → first token"),
        ("ts", 5.0, "first token → finish (streaming)"),
        ("tf", 5.0, "failed (also marked at the right)"),
    ];
    let mut left = PAD_L;
    for (class, width, name) in legend {
        let _ = write!(
            svg,
            "<line x1=\"{left}\" y1=\"34\" x2=\"{}\" y2=\"34\" class=\"{class}\" stroke-width=\"{width}\"/><text x=\"{}\" y=\"38\" class=\"leg\">{name}</text>",
            left + 16.0,
            left + 20.0
        );
        left += 20.0 + 5.8 * name.chars().count() as f64 + 12.0;
    }
    let _ = write!(
        svg,
        "<rect class=\"tlbg\" x=\"{PAD_L}\" y=\"{TL_TOP}\" width=\"{plot_w}\" height=\"{plot_h}\"/><g class=\"tla\">"
    );
    let (xt, xstep) = nice_ticks(lo, lo + span, 8.0, 0.0);
    for t in xt {
        let px = PAD_L + (t - lo) / span * plot_w;
        let _ = write!(
            svg,
            "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{TL_TOP}\" y2=\"{}\" class=\"grid\"/><text x=\"{px:.1}\" y=\"{}\" class=\"tick\" text-anchor=\"middle\">{}</text>",
            TL_TOP + plot_h,
            TL_TOP + plot_h + 14.0,
            step_label(t, xstep)
        );
    }
    let (yt, _) = nice_ticks(0.0, rows - 1.0, 6.0, 1.0);
    for t in yt {
        let py = TL_TOP + (t + 0.5) / rows * plot_h;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{t:.0}</text>",
            PAD_L - 4.0,
            py + 3.0
        );
    }
    let _ = write!(
        svg,
        "</g><svg class=\"tlv\" x=\"{PAD_L}\" y=\"{TL_TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" viewBox=\"{} 0 {} {rows}\" preserveAspectRatio=\"none\">",
        short(lo),
        short(span)
    );
    for (path, class) in paths.iter().zip(["tq", "tw", "ts", "tf"]) {
        if !path.is_empty() {
            let width = if class == "tq" { thin } else { stroke };
            let _ = write!(
                svg,
                "<path class=\"{class}\" stroke-width=\"{width:.2}\" d=\"{path}\"/>"
            );
        }
    }
    svg.push_str("</svg>");
    if !failures.is_empty() {
        let _ = write!(
            svg,
            "<svg class=\"tlg\" x=\"{}\" y=\"{TL_TOP}\" width=\"10\" height=\"{plot_h}\" viewBox=\"0 0 1 {rows}\" preserveAspectRatio=\"none\"><title>failed requests</title><path class=\"tf\" stroke-width=\"{stroke:.2}\" d=\"{failures}\"/></svg>",
            PAD_L + plot_w + 3.0
        );
    }
    let _ = write!(
        svg,
        "<line x1=\"{PAD_L}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" class=\"ax\"/><line x1=\"{PAD_L}\" y1=\"{TL_TOP}\" x2=\"{PAD_L}\" y2=\"{0}\" class=\"ax\"/><rect class=\"tls\" visibility=\"hidden\" x=\"0\" y=\"0\" width=\"0\" height=\"0\"/><text x=\"{2}\" y=\"{3}\" class=\"lab\" text-anchor=\"middle\">ms since the iteration's start</text><text x=\"14\" y=\"{4}\" class=\"lab\" text-anchor=\"middle\" transform=\"rotate(-90 14 {4})\">request, in send order</text></svg>",
        TL_TOP + plot_h,
        PAD_L + plot_w,
        PAD_L + plot_w / 2.0,
        height - 6.0,
        TL_TOP + plot_h / 2.0
    );
    svg.push_str("<div class=\"tlc\"><button type=\"button\" data-zoom=\"in\">zoom in</button> <button type=\"button\" data-zoom=\"out\">zoom out</button> <button type=\"button\" data-zoom=\"reset\">reset zoom</button> <span class=\"meta\">wheel: zoom time (with shift: requests) · drag: zoom to a range (or a box) · double-click: reset</span><br><output class=\"tli\"></output></div></div>");
    svg
}

/// The timelines' zoom, once per page: the wheel zooms time about the
/// pointer (with shift, the requests), a drag zooms to the range dragged
/// (to the box when it is also tall), the buttons zoom about the middle
/// and reset; the pointer's request is read out under the plot. Ticks are
/// redrawn for the view. With `#zoom-check` in the address it zooms by a
/// synthetic wheel, drag and reset and records the widths shown, for the
/// browser test.
pub const TIMELINE_SCRIPT: &str = r#"(function(){var NS='http://www.w3.org/2000/svg';
function nice(lo,hi,n,least){var r=Math.max((hi-lo)/n,1e-12),p=Math.pow(10,Math.floor(Math.log10(r))),m=r/p,st=Math.max(p*(m<1.5?1:m<3.5?2:m<7.5?5:10),least),t=[];for(var v=Math.ceil(lo/st)*st;v<=hi+st*1e-9&&t.length<50;v+=st)t.push(v);return [t,st]}
function lab(v,st){return v.toFixed(Math.max(0,Math.min(6,-Math.floor(Math.log10(st)))))}
function el(p,n,a,t){var e=document.createElementNS(NS,n);for(var k in a)e.setAttribute(k,a[k]);if(t!=null)e.textContent=t;p.appendChild(e);return e}
function f(v){return v==null?'—':v.toFixed(2)}
document.querySelectorAll('div.timeline').forEach(function(w){
var s=w.querySelector('svg[data-timeline]'),v=s.querySelector('svg.tlv'),gt=s.querySelector('svg.tlg'),ax=s.querySelector('.tla'),sel=s.querySelector('.tls'),out=w.querySelector('output'),P=s.dataset.plot.split(' ').map(Number),F=v.getAttribute('viewBox').split(' ').map(Number),V=F.slice(),rq=JSON.parse(s.dataset.rq),drag=null;
function pt(e){var p=s.createSVGPoint();p.x=e.clientX;p.y=e.clientY;return p.matrixTransform(s.getScreenCTM().inverse())}
function inside(p){return p.x>=P[0]&&p.x<=P[0]+P[2]&&p.y>=P[1]&&p.y<=P[1]+P[3]}
function at(p){return [V[0]+(p.x-P[0])/P[2]*V[2],V[1]+(p.y-P[1])/P[3]*V[3]]}
function show(){V[2]=Math.min(Math.max(V[2],F[2]*1e-5),F[2]);V[0]=Math.min(Math.max(V[0],F[0]),F[0]+F[2]-V[2]);V[3]=Math.min(Math.max(V[3],Math.min(4,F[3])),F[3]);V[1]=Math.min(Math.max(V[1],F[1]),F[1]+F[3]-V[3]);
v.setAttribute('viewBox',V.join(' '));if(gt)gt.setAttribute('viewBox','0 '+V[1]+' 1 '+V[3]);var wd=Math.max(0.6,Math.min(10,0.8*P[3]/V[3]));
s.querySelectorAll('svg path').forEach(function(p){p.setAttribute('stroke-width',p.classList.contains('tq')?Math.max(0.5,0.4*wd):wd)});
while(ax.firstChild)ax.removeChild(ax.firstChild);
var x=nice(V[0],V[0]+V[2],8,0);x[0].forEach(function(t){var px=P[0]+(t-V[0])/V[2]*P[2];el(ax,'line',{x1:px,x2:px,y1:P[1],y2:P[1]+P[3],'class':'grid'});el(ax,'text',{x:px,y:P[1]+P[3]+14,'class':'tick','text-anchor':'middle'},lab(t,x[1]))});
var y=nice(Math.ceil(V[1]-0.5),V[1]+V[3]-0.5,6,1);y[0].forEach(function(t){var py=P[1]+(t+0.5-V[1])/V[3]*P[3];if(py>=P[1]&&py<=P[1]+P[3])el(ax,'text',{x:P[0]-4,y:py+3,'class':'tick','text-anchor':'end'},t.toFixed(0))})}
function hover(p){var d=at(p),i=Math.floor(d[1]),r=inside(p)&&rq[i];out.value=r?'request '+i+': scheduled '+f(r[0])+', sent '+f(r[1])+', first token '+f(r[2])+', finish '+f(r[3])+' ms; '+(r[4]?'ok':'failed')+(r[5]!=null?'; '+r[5]+' cached tokens':'')+' · pointer at '+d[0].toFixed(2)+' ms':''}
function box(a,b){var x0=Math.max(P[0],Math.min(a.x,b.x)),x1=Math.min(P[0]+P[2],Math.max(a.x,b.x)),y0=Math.max(P[1],Math.min(a.y,b.y)),y1=Math.min(P[1]+P[3],Math.max(a.y,b.y));if(y1-y0<10){y0=P[1];y1=P[1]+P[3]}return [x0,y0,x1,y1]}
function reset(){V=F.slice();show()}
s.addEventListener('wheel',function(e){var p=pt(e);if(!inside(p))return;e.preventDefault();var d=at(p),k=Math.exp((e.deltaY||e.deltaX)*0.0015);if(e.shiftKey){V[3]*=k;V[1]=d[1]-(d[1]-V[1])*k}else{V[2]*=k;V[0]=d[0]-(d[0]-V[0])*k}show()},{passive:false});
s.addEventListener('pointerdown',function(e){var p=pt(e);if(e.button!==0||!inside(p))return;drag=p;try{s.setPointerCapture(e.pointerId)}catch(_){}e.preventDefault()});
s.addEventListener('pointermove',function(e){var p=pt(e);hover(p);if(!drag)return;var b=box(drag,p);sel.setAttribute('x',b[0]);sel.setAttribute('y',b[1]);sel.setAttribute('width',b[2]-b[0]);sel.setAttribute('height',b[3]-b[1]);sel.setAttribute('visibility','visible')});
s.addEventListener('pointerup',function(e){if(!drag)return;var b=box(drag,pt(e));drag=null;sel.setAttribute('visibility','hidden');if(b[2]-b[0]<4)return;var a=at({x:b[0],y:b[1]}),c=at({x:b[2],y:b[3]});V=[a[0],a[1],c[0]-a[0],c[1]-a[1]];show()});
s.addEventListener('dblclick',reset);
w.querySelectorAll('button[data-zoom]').forEach(function(b){b.addEventListener('click',function(){var z=b.dataset.zoom;if(z=='reset')return reset();var c=V[0]+V[2]/2;V[2]*=z=='in'?0.5:2;V[0]=c-V[2]/2;show()})});
show();
if(location.hash=='#zoom-check'){var r=s.getBoundingClientRect(),k=r.width/+s.getAttribute('width'),cx=r.left+(P[0]+P[2]/2)*k,cy=r.top+(P[1]+P[3]/2)*k,o={clientX:cx,clientY:cy,button:0,pointerId:1,bubbles:true,cancelable:true},log=[];
s.dispatchEvent(new WheelEvent('wheel',{deltaY:-400,clientX:cx,clientY:cy,bubbles:true,cancelable:true}));log.push(V[2]/F[2]);
o.clientX=cx-P[2]*k/4;s.dispatchEvent(new PointerEvent('pointerdown',o));o.clientX=cx+P[2]*k/4;s.dispatchEvent(new PointerEvent('pointermove',o));s.dispatchEvent(new PointerEvent('pointerup',o));log.push(V[2]/F[2]);
w.querySelector('button[data-zoom=reset]').click();log.push(V[2]/F[2]);s.dataset.zoomCheck=log.map(function(x){return x.toFixed(3)}).join(' ')}
})})();"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_axis_ignores_non_finite_values_and_never_has_zero_width() {
        let a = Axis::new(
            [f64::NAN, 5.0, f64::INFINITY].into_iter(),
            0.0,
            100.0,
            false,
        );
        assert_eq!((a.lo, a.hi), (5.0, 6.0));
        let empty = Axis::new(std::iter::empty(), 0.0, 100.0, true);
        assert_eq!((empty.lo, empty.hi), (0.0, 1.0));
        assert_eq!(empty.at(0.5), 50.0);
    }

    #[test]
    fn a_band_is_drawn_under_its_line_and_named_in_the_legend() {
        let line = Series {
            name: "RSS".into(),
            points: vec![(0.0, 10.0), (1.0, 12.0)],
        };
        let band = Band {
            name: "95 % CI".into(),
            points: vec![(0.0, 9.0, 11.0), (1.0, 11.0, 13.0)],
        };
        let svg = LinePlot {
            title: "t",
            x_label: "x",
            y_label: "y",
            series: &[line],
            band: Some(&band),
            y_from_zero: false,
            ..Default::default()
        }
        .render();
        let polygon = svg.find("<polygon").unwrap();
        assert!(polygon < svg.find("<polyline").unwrap());
        assert!(svg.contains(">RSS</text>"));
    }

    #[test]
    fn a_log_axis_spans_whole_decades_with_zero_on_its_floor() {
        let a = Axis::new_log([0.0, 0.3, 1.0, 75.0].into_iter(), 200.0, 0.0);
        assert_eq!((a.lo, a.hi), (-2.0, 2.0));
        let labels: Vec<String> = a.ticks().into_iter().map(|(_, l)| l).collect();
        assert_eq!(labels, ["0", "0.1", "1", "10", "100"]);
        assert_eq!(a.at(0.0), 200.0);
        assert_eq!(a.at(1.0), 100.0);
        assert_eq!(a.at(100.0), 0.0);
        // Nothing positive: zero at the floor, 0.1 and 1 above it.
        let zeros = Axis::new_log([0.0].into_iter(), 100.0, 0.0);
        assert_eq!((zeros.lo, zeros.hi), (-2.0, 0.0));
    }

    #[test]
    fn ticks_are_round_and_figures_short() {
        assert_eq!(
            nice_ticks(0.0, 62.0, 8.0, 0.0),
            (vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0], 10.0)
        );
        assert_eq!(nice_ticks(0.0, 4.0, 6.0, 1.0).0, [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(step_label(0.5, 0.5), "0.5");
        assert_eq!(short(1.2300), "1.23");
        assert_eq!(short(-0.0001), "0");
        assert_eq!(short(f64::NAN), "null");
        assert_eq!(fixed(120.0, 0), "120");
    }

    #[test]
    fn rules_spans_and_markers_widen_the_axes_and_are_named() {
        let line = Series {
            name: "p99".into(),
            points: vec![(10.0, 20.0), (20.0, 40.0)],
        };
        let rules = [
            Rule {
                name: "SLO".into(),
                at: 100.0,
                vertical: false,
                class: "slo",
            },
            Rule {
                name: "estimate".into(),
                at: 30.0,
                vertical: true,
                class: "estimate",
            },
        ];
        let span = Span {
            name: "interval".into(),
            from: Some(25.0),
            to: None,
        };
        let markers = [Marker {
            x: 15.0,
            y: 0.0,
            shape: Shape::Square,
            class: "mk-fail",
            tooltip: "failed probe".into(),
        }];
        let keys = [MarkerKey {
            name: "probe failed".into(),
            shape: Shape::Square,
            class: "mk-fail",
        }];
        let svg = LinePlot {
            title: "t",
            series: &[line],
            rules: &rules,
            span: Some(&span),
            markers: &markers,
            marker_keys: &keys,
            legend_right: true,
            ..Default::default()
        }
        .render();
        assert!(svg.contains(&format!("width=\"{}\"", W + LEGEND_W)));
        // The SLO at 100 is the top of the y axis, the estimate at 30 the
        // right end of x, and the open span runs to it.
        assert!(svg.contains(&format!(
            "<line class=\"rule slo\" x1=\"{PAD_L:.1}\" y1=\"{PAD_T:.1}\""
        )));
        assert!(svg.contains(&format!(
            "<line class=\"rule estimate\" x1=\"{:.1}\"",
            W - PAD_R
        )));
        assert!(svg.contains("<rect class=\"mk mk-fail\""));
        for name in ["p99", "SLO", "estimate", "interval", "probe failed"] {
            assert!(svg.contains(&format!(">{name}</text>")), "{name}");
        }
    }
}
