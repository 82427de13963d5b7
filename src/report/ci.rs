//! Files a CI system reads: JUnit XML, a Markdown step summary, CSV, and
//! the comparison table on the console. They format; the verdicts come from
//! `analysis::compare_reports`.

use std::fmt::Write;

use comfy_table::Table;
use comfy_table::presets::UTF8_FULL_CONDENSED;

use super::escape_markup;
use crate::analysis::{ChangeState, Comparison, MetricChange};
use crate::model::{DailyReport, Status, Verdict};

fn figure(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.4}"))
}

fn interval(ci: Option<[f64; 2]>) -> String {
    ci.map_or("—".into(), |[a, b]| format!("{a:.3}–{b:.3}"))
}

pub(super) fn mde(x: &MetricChange) -> String {
    x.mde_pct.map_or("—".into(), |m| format!("{m:.1} %"))
}

/// A change's state, with the persistence label of a regression.
pub(super) fn state(x: &MetricChange) -> String {
    let name = format!("{:?}", x.state).to_lowercase();
    match x.persistent {
        Some(true) => format!("{name} (persistent)"),
        _ => name,
    }
}

/// What the night could not see, in words.
pub fn blind_spot_sentence(c: &Comparison) -> String {
    match c.mde_range_pct() {
        None => format!(
            "No regression can be declared tonight: {}.",
            c.design.describe()
        ),
        Some((lo, hi)) if (hi - lo) < 0.05 => format!(
            "Changes below {lo:.1} % cannot be seen tonight ({}; noise as measured).",
            c.design.describe()
        ),
        Some((lo, hi)) => format!(
            "Changes below {lo:.1}–{hi:.1} % (by metric: the smallest-visible column) cannot be seen tonight ({}; noise as measured).",
            c.design.describe()
        ),
    }
}

/// Why the night is advisory, in words.
pub(super) fn advisory_sentence(c: &Comparison) -> Option<String> {
    c.advisory.then(|| {
        format!(
            "the A/A control fired ({}): tonight's runs disagree with each other, so the machine may have changed during the night; verdicts are reported but do not fail it",
            c.control_regressions.join(", ")
        )
    })
}

/// JUnit: one test case per result. A regression is a failure of type
/// PerformanceRegression, a missed target a failure of type TargetMissed,
/// a crash an error, an inconclusive comparison a skip.
pub fn render_junit(report: &DailyReport, comparison: Option<&Comparison>) -> String {
    let mut cases = String::new();
    let (mut failures, mut errors, mut skipped) = (0, 0, 0);
    for r in &report.results {
        let mut body = String::new();
        if r.status == Status::Failed {
            errors += 1;
            let _ = write!(
                body,
                "<error type=\"BenchmarkFailed\" message=\"{}\"/>",
                escape_markup(r.error.as_deref().unwrap_or("failed"))
            );
        }
        for t in r.targets.iter().filter(|t| t.verdict == Verdict::Missed) {
            failures += 1;
            let _ = write!(
                body,
                "<failure type=\"TargetMissed\" message=\"{}: measured {}\"/>",
                escape_markup(&t.target),
                figure(t.measured)
            );
        }
        let changes: Vec<_> = comparison
            .map(|c| c.changes.iter().filter(|x| x.case == r.case_id).collect())
            .unwrap_or_default();
        for c in &changes {
            match c.state {
                ChangeState::Regressed => {
                    failures += 1;
                    let _ = write!(
                        body,
                        "<failure type=\"PerformanceRegression\" message=\"{} regressed: median {} → {} {} (×{}), {}\">{}</failure>",
                        escape_markup(&c.metric),
                        figure(c.baseline_median),
                        figure(c.current_median),
                        escape_markup(&c.unit),
                        figure(c.ratio),
                        escape_markup(&c.reason),
                        escape_markup(&c.reason)
                    );
                }
                ChangeState::Inconclusive if body.is_empty() => {
                    skipped += 1;
                    let _ = write!(
                        body,
                        "<skipped message=\"{} inconclusive: {}\"/>",
                        escape_markup(&c.metric),
                        escape_markup(&c.reason)
                    );
                }
                _ => {}
            }
        }
        let _ = writeln!(
            cases,
            "    <testcase classname=\"{}.day{}\" name=\"{}\" time=\"{:.3}\">{body}</testcase>",
            escape_markup(&report.campaign.name),
            report.day,
            escape_markup(&r.case_id),
            r.elapsed_s
        );
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{} day {}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" timestamp=\"{}\">\n{cases}  </testsuite>\n</testsuites>\n",
        escape_markup(&report.campaign.name),
        report.day,
        report.results.len(),
        report.started_at.to_rfc3339()
    )
}

/// Markdown for a CI step summary.
pub fn render_summary_markdown(report: &DailyReport, comparison: Option<&Comparison>) -> String {
    let s = &report.summary;
    let mut out = format!(
        "## {} — day {}: {}\n\n{} results: {} ok, {} failed, {} interrupted; targets: {} met, {} missed.\n",
        report.campaign.name,
        report.day,
        report.day_title,
        s.total,
        s.successful,
        s.failed,
        s.interrupted,
        s.targets_met,
        s.targets_missed
    );
    if let Some(c) = comparison {
        let count = |state| c.counts.get(&state).copied().unwrap_or(0);
        let _ = write!(
            out,
            "\nAgainst baseline `{}`: {} regressed, {} improved, {} unchanged, {} inconclusive, {} new, {} missing, {} failed. Geometric mean of ratios (above 1 is worse): {}.{}\n\n",
            c.baseline,
            count(ChangeState::Regressed),
            count(ChangeState::Improved),
            count(ChangeState::Unchanged),
            count(ChangeState::Inconclusive),
            count(ChangeState::New),
            count(ChangeState::Missing),
            count(ChangeState::Failed),
            c.geomean_ratio.map_or("—".into(), |g| format!("{g:.3}")),
            advisory_sentence(c).map_or(String::new(), |a| format!(" **Advisory:** {a}."))
        );
        let _ = writeln!(out, "{}\n", blind_spot_sentence(c));
        out.push_str("| case | metric | state | baseline | current | ratio | 95 % CI | p | threshold | smallest visible |\n| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |\n");
        for x in &c.changes {
            let _ = writeln!(
                out,
                "| `{}` | {} | **{}** | {} | {} | {} | {} | {} | ±{:.1} % | {} |",
                x.case,
                x.metric,
                state(x),
                figure(x.baseline_median),
                figure(x.current_median),
                figure(x.ratio),
                interval(x.ratio_ci95),
                figure(x.p_value),
                x.threshold_pct,
                mde(x)
            );
        }
        let _ = writeln!(out, "\n{}", c.rule);
    }
    out
}

/// One row per metric of every result.
pub fn render_csv(report: &DailyReport) -> String {
    let mut out = String::from(
        "day,benchmark_name,status,metric,unit,count,mean,stddev,min,p50,p99,max,runs,provisional\n",
    );
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for r in &report.results {
        let status = format!("{:?}", r.status).to_lowercase();
        if r.metrics.is_empty() {
            let _ = writeln!(
                out,
                "{},{},{status},,,,,,,,,,,",
                report.day,
                quote(&r.case_id),
            );
        }
        for (name, m) in &r.metrics {
            let runs = r.run_values.get(name).map_or(0, Vec::len);
            let _ = writeln!(
                out,
                "{},{},{status},{},{},{},{},{},{},{},{},{},{},{}",
                report.day,
                quote(&r.case_id),
                quote(name),
                quote(&m.unit),
                m.summary.count,
                m.summary.mean,
                m.summary.stddev,
                m.summary.min,
                m.summary.p50,
                m.summary.p99,
                m.summary.max,
                runs,
                quote(&m.summary.provisional.join(" "))
            );
        }
    }
    out
}

/// The comparison on the console.
pub fn render_comparison_table(c: &Comparison) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "case",
        "metric",
        "state",
        "baseline",
        "current",
        "ratio",
        "95 % CI",
        "p",
        "smallest visible",
        "why",
    ]);
    for x in &c.changes {
        table.add_row(vec![
            x.case.clone(),
            x.metric.clone(),
            state(x),
            figure(x.baseline_median),
            figure(x.current_median),
            figure(x.ratio),
            interval(x.ratio_ci95),
            figure(x.p_value),
            mde(x),
            x.reason.clone(),
        ]);
    }
    let mut out = format!("{table}\n{}\n{}", c.rule, blind_spot_sentence(c));
    if let Some(a) = advisory_sentence(c) {
        out.push_str(&format!("\nadvisory: {a}"));
    }
    out
}
