//! Files a CI system reads: JUnit XML, a Markdown step summary, CSV, and
//! the comparison table on the console. They format; the verdicts come from
//! `analysis::compare_reports`.

use std::fmt::Write;

use comfy_table::Table;
use comfy_table::presets::UTF8_FULL_CONDENSED;

use super::escape_markup;
use super::markdown::{Align, MarkdownTable, code};
use super::wording::{
    blind_spot_sentence, comparison_counts_sentence, day_counts_sentence,
    environment_changes_sentence, figure, findings_sentences, interval, mde, night_sentences,
    state, status_name,
};
use crate::analysis::{ChangeState, Comparison};
use crate::model::{DailyReport, Status, Verdict};

/// JUnit: one test case per result. A regression is a failure of type
/// PerformanceRegression, a missed target a failure of type TargetMissed,
/// a crash an error, an inconclusive comparison a skip.
pub fn render_junit(report: &DailyReport, comparison: Option<&Comparison>) -> String {
    let mut cases = String::new();
    let (mut failures, mut errors, mut skipped) = (0, 0, 0);
    for r in &report.results {
        let mut body = String::new();
        if r.status == Status::Skipped {
            skipped += 1;
            let _ = write!(
                body,
                "<skipped message=\"{}\"/>",
                escape_markup(r.error.as_deref().unwrap_or("skipped"))
            );
        }
        if r.status == Status::Failed {
            errors += 1;
            let _ = write!(
                body,
                "<error type=\"BenchmarkFailed\" message=\"{}\"/>",
                escape_markup(r.error.as_deref().unwrap_or("failed"))
            );
        }
        // A failure in a later separate run fails the case as the first
        // run's would (the night exits 4).
        for f in r
            .failed_runs
            .iter()
            .filter(|f| f.status == Status::Failed && r.status != Status::Failed)
        {
            errors += 1;
            let _ = write!(
                body,
                "<error type=\"RunFailed\" message=\"run {}: {}\"/>",
                f.slot + 1,
                escape_markup(&f.reason)
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
                // Withheld by the A/A control: too noisy to tell, not a failure.
                ChangeState::Regressed if c.beyond_drift == Some(false) => {
                    skipped += 1;
                    let _ = write!(
                        body,
                        "<skipped message=\"{} too noisy to tell (within the drift of tonight's runs): {}\"/>",
                        escape_markup(&c.metric),
                        escape_markup(&c.reason)
                    );
                }
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
    let mut out = format!(
        "## {} — day {}: {}\n\n{}.\n",
        report.campaign.name,
        report.day,
        report.day_title,
        day_counts_sentence(&report.summary)
    );
    let concluded: Vec<(&str, Vec<String>)> = report
        .results
        .iter()
        .filter_map(|r| {
            Some((
                r.case_id.as_str(),
                findings_sentences(r.conclusion.as_ref()?),
            ))
        })
        .filter(|(_, sentences)| !sentences.is_empty())
        .collect();
    if !concluded.is_empty() {
        out.push_str("\n### Conclusions\n\n");
        for (case, sentences) in concluded {
            let _ = writeln!(out, "- {}: {}", code(case), sentences.join(" "));
        }
    }
    if let Some(c) = comparison {
        let _ = write!(
            out,
            "\n{}\n\n{}\n\n{}\n\n",
            comparison_counts_sentence(c),
            night_sentences(c).join("\n\n"),
            blind_spot_sentence(c)
        );
        let mut table = MarkdownTable::new(&[
            ("case", Align::Left),
            ("metric", Align::Left),
            ("state", Align::Left),
            ("baseline", Align::Right),
            ("current", Align::Right),
            ("ratio", Align::Right),
            ("95 % CI", Align::Left),
            ("p", Align::Right),
            ("threshold", Align::Right),
            ("smallest visible", Align::Right),
        ]);
        for x in &c.changes {
            table.row([
                code(&x.case),
                x.metric.clone(),
                format!("**{}**", state(x)),
                figure(x.baseline_median),
                figure(x.current_median),
                figure(x.ratio),
                interval(x.ratio_ci95),
                figure(x.p_value),
                format!("±{:.1} %", x.threshold_pct),
                mde(x),
            ]);
        }
        let _ = write!(out, "{table}\n{}\n", c.rule);
        if let Some(sentence) = environment_changes_sentence(c) {
            let _ = write!(out, "\n{sentence}\n");
        }
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
        let status = status_name(r.status);
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
    let mut text = format!(
        "{table}\n{}\n{}\n{}",
        c.rule,
        blind_spot_sentence(c),
        night_sentences(c).join("\n")
    );
    if let Some(sentence) = environment_changes_sentence(c) {
        text.push('\n');
        text.push_str(&sentence);
    }
    text
}
