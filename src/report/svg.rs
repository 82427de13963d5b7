//! Inline SVG charts for the HTML pages: line plots (with an optional
//! shaded band), horizontal bars, and ratio bars around 1. Drawn by hand
//! because the pages must load nothing and stay small: a plotting crate
//! would either pull a renderer or emit far larger markup for charts this
//! simple. Every chart is an `svg.plot` element that the headless-browser
//! test counts.

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

/// Linear scale from data to pixels.
struct Axis {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
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
        Self { lo, hi, from, to }
    }

    fn at(&self, v: f64) -> f64 {
        self.from + (v - self.lo) / (self.hi - self.lo) * (self.to - self.from)
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

/// A line plot with axes, ticks, labels and a legend.
pub struct LinePlot<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
    pub band: Option<&'a Band>,
    /// Whether the y axis starts at zero (rates and latencies), or fits the
    /// data (a resident set of 400–410 MiB).
    pub y_from_zero: bool,
}

impl LinePlot<'_> {
    pub fn render(&self) -> String {
        let band_points = self.band.iter().flat_map(|b| b.points.iter());
        let x = Axis::new(
            self.series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0))
                .chain(band_points.clone().map(|p| p.0)),
            PAD_L,
            W - PAD_R,
            false,
        );
        let y = Axis::new(
            self.series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .chain(band_points.flat_map(|p| [p.1, p.2])),
            H - PAD_B,
            PAD_T,
            self.y_from_zero,
        );
        let mut svg = open_svg(W, H, self.title);
        axes(&mut svg, self.x_label, self.y_label, &x, &y);
        if let Some(band) = self.band {
            let upper = band.points.iter().map(|(a, _, hi)| (*a, *hi));
            let lower = band.points.iter().rev().map(|(a, lo, _)| (*a, *lo));
            let outline: Vec<String> = upper
                .chain(lower)
                .map(|(a, b)| format!("{:.1},{:.1}", x.at(a), y.at(b)))
                .collect();
            let _ = write!(
                svg,
                "<polygon class=\"band\" points=\"{}\"><title>{}</title></polygon><text x=\"{}\" y=\"{}\" class=\"leg\">▒ {}</text>",
                outline.join(" "),
                escape_markup(&band.name),
                PAD_L + 8.0,
                PAD_T + 12.0 + 13.0 * self.series.len() as f64,
                escape_markup(&band.name)
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
            if self.series.len() > 1 || self.band.is_some() {
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

/// Both axes with five ticks each, grid lines and axis labels.
fn axes(svg: &mut String, x_label: &str, y_label: &str, x: &Axis, y: &Axis) {
    let _ = write!(
        svg,
        "<line x1=\"{PAD_L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"ax\"/><line x1=\"{PAD_L}\" y1=\"{PAD_T}\" x2=\"{PAD_L}\" y2=\"{}\" class=\"ax\"/>",
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
        }
        .render();
        let polygon = svg.find("<polygon").unwrap();
        assert!(polygon < svg.find("<polyline").unwrap());
        assert!(svg.contains(">RSS</text>"));
    }
}
