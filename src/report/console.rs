use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, Color, Table};

use super::wording::{
    day_counts_sentence, lost_samples_line, parity_sentence, peer_sentence, severity, share,
    status_name,
};
use crate::model::{DailyReport, Status, Verdict};

fn fmt(value: Option<f64>) -> String {
    value.map_or_else(
        || "—".to_string(),
        |v| {
            if v.abs() >= 100.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.3}")
            }
        },
    )
}

/// Marks a figure estimated from too few samples (see the footnote).
pub(crate) fn provisional_mark(figure: String, provisional: bool) -> String {
    if provisional {
        format!("{figure}*")
    } else {
        figure
    }
}

/// The footnote of a table with provisional marks.
pub(crate) const PROVISIONAL_FOOTNOTE: &str =
    "* provisional: too few samples for this percentile (settings.provisional_rule)";

/// The table printed at the end of a day: what was measured, each target
/// with ✓ or ✗ and the measured value.
pub fn render_summary_table(report: &DailyReport) -> String {
    let colour = console::colors_enabled_stderr() && console::colors_enabled();
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "benchmark",
        "status",
        "latency metric",
        "mean ms",
        "p50 ms",
        "p99 ms",
        "throughput",
        "peak RSS MiB",
        "targets",
    ]);
    for r in &report.results {
        let status = match r.status {
            Status::Ok => Cell::new("ok").fg(Color::Green),
            Status::Failed => Cell::new("FAILED").fg(Color::Red),
            Status::Interrupted => Cell::new("interrupted").fg(Color::Yellow),
            Status::Skipped => Cell::new("skipped").fg(Color::DarkGrey),
        };
        let status = if colour {
            status
        } else {
            Cell::new(status_name(r.status))
        };
        let throughput = match (r.throughput, &r.throughput_unit) {
            (Some(t), Some(unit)) => format!("{} {unit}", fmt(Some(t))),
            _ => "—".to_string(),
        };
        let targets = r
            .targets
            .iter()
            .map(|t| {
                let mark = match t.verdict {
                    Verdict::Met => "✓",
                    Verdict::Missed => "✗",
                    Verdict::NotMeasured => "?",
                };
                format!("{mark} {} (measured {})", t.target, fmt(t.measured))
            })
            .collect::<Vec<_>>()
            .join("\n");
        table.add_row(vec![
            Cell::new(&r.case_id),
            status,
            Cell::new(r.latency_metric.as_deref().unwrap_or("—")),
            Cell::new(fmt(r.mean_ms)),
            Cell::new(fmt(r.p50_ms)),
            Cell::new(provisional_mark(fmt(r.p99_ms), r.p99_is_provisional())),
            Cell::new(throughput),
            Cell::new(r.peak_rss_mib.map_or("—".into(), |m| format!("{m:.0}"))),
            Cell::new(targets),
        ]);
    }
    let s = &report.summary;
    let mut curves = String::new();
    for curve in &report.scaling {
        let levels: Vec<String> = curve
            .levels
            .iter()
            .map(|l| {
                format!(
                    "{} → {} {} (×{:.2}, p99 ×{})",
                    l.level,
                    fmt(Some(l.throughput)),
                    l.throughput_unit,
                    l.throughput_vs_first,
                    provisional_mark(
                        l.p99_vs_first.map_or("—".into(), |r| format!("{r:.2}")),
                        l.p99_provisional
                    )
                )
            })
            .collect();
        let knee = curve.knee.map_or_else(
            || "no knee in the levels measured".to_string(),
            |k| format!("knee at {} = {k}", curve.dimension),
        );
        curves.push_str(&format!(
            "\nscaling {} by {}: {}; {knee}",
            curve.benchmark,
            curve.dimension,
            levels.join(", ")
        ));
    }
    for row in &report.parity {
        curves.push('\n');
        curves.push_str(&parity_sentence(row));
    }
    for row in &report.peers {
        curves.push_str("\nbeside a peer: ");
        curves.push_str(&peer_sentence(row));
    }
    let provisional = report.results.iter().any(|r| r.p99_is_provisional())
        || report
            .scaling
            .iter()
            .flat_map(|c| &c.levels)
            .any(|l| l.p99_provisional);
    if provisional {
        curves.push_str(&format!("\n{PROVISIONAL_FOOTNOTE}"));
    }
    format!("{table}{curves}\n{}", day_counts_sentence(s))
}

/// The top 10 bottlenecks of an analysis.
pub fn render_bottleneck_table(analysis: &crate::analysis::BottleneckAnalysis) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "#",
        "severity (95 % range)",
        "component",
        "function",
        "share % (95 % CI)",
        "remedy",
        "est. speed-up (range)",
        "ROI s/run/day",
    ]);
    for b in analysis.identified_bottlenecks.iter().take(10) {
        let function: String = if b.function.chars().count() > 60 {
            let tail: String = b.function.chars().rev().take(59).collect();
            format!("…{}", tail.chars().rev().collect::<String>())
        } else {
            b.function.clone()
        };
        table.add_row(vec![
            Cell::new(b.rank),
            Cell::new(severity(b.severity, b.severity_range, b.severity_settled)),
            Cell::new(&b.component),
            Cell::new(function),
            Cell::new(share(b.share_pct, b.share_ci95_pct)),
            Cell::new(b.remedy.as_deref().unwrap_or("— (no catalog entry)")),
            Cell::new(match (b.estimated_speedup, b.estimated_speedup_range) {
                (Some(s), Some([lo, hi])) => format!("×{s:.3} (×{lo:.3}–×{hi:.3})"),
                (Some(s), None) => format!("×{s:.3}"),
                _ => "—".into(),
            }),
            Cell::new(fmt(b.estimated_roi)),
        ]);
    }
    let effective = analysis
        .effective_samples
        .filter(|n| (*n - analysis.total_samples as f64).abs() >= 0.5)
        .map_or(String::new(), |n| format!(" ({n:.0} effective)"));
    let rate = analysis
        .sample_rate_hz
        .map_or(String::new(), |hz| format!(" at {hz:.0} Hz"));
    let mut out = format!(
        "{table}\n{} samples{effective} from {} profiles{rate} over {:.1} s of measured time",
        analysis.total_samples,
        analysis.profiles.len(),
        analysis.profiled_time_s
    );
    if let Some(line) = lost_samples_line(analysis) {
        out.push_str(&format!("\n{line}"));
    }
    if analysis.effective_samples.is_some() {
        out.push_str(&format!(
            "\nshares are of the recorded CPU time, with 95 % intervals; wanted to ±{} points",
            crate::analysis::PRECISION_PP
        ));
    }
    for note in &analysis.notes {
        out.push_str(&format!("\nnote: {note}"));
    }
    out
}

/// Experiments, one remedy per row: the measured speed-up, its interval,
/// p and the verdict.
pub fn render_experiments(file: &crate::analysis::ExperimentsFile) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "remedy", "toggle", "pairs", "speed-up", "95 % CI", "p", "verdict", "quality",
    ]);
    for e in &file.experiments {
        let m = &e.measurement;
        table.add_row(vec![
            Cell::new(&e.remedy),
            Cell::new(&e.toggle_description),
            Cell::new(m.runs_per_side),
            Cell::new(
                m.measured_speedup
                    .map_or("—".into(), |s| format!("×{s:.3}")),
            ),
            Cell::new(
                m.ci95
                    .map_or("—".into(), |[lo, hi]| format!("×{lo:.3}–×{hi:.3}")),
            ),
            Cell::new(m.p_value.map_or("—".into(), |p| format!("{p:.4}"))),
            Cell::new(m.verdict.describe()),
            Cell::new(quality_cell(&e.quality)),
        ]);
    }
    let rules: std::collections::BTreeSet<&str> = file
        .experiments
        .iter()
        .flat_map(|e| &e.quality)
        .map(|q| q.rule.as_str())
        .collect();
    let quality_rule: String = rules
        .into_iter()
        .map(|rule| format!("\nquality: {rule}"))
        .collect();
    format!(
        "{table}
{}
{}{quality_rule}",
        file.time_formula, file.speedup_formula
    )
}

/// Each model's quality verdict: agreement of greedy tokens and mean KL
/// with their bounds against the margins; "—" for a toggle that cannot
/// change outputs.
fn quality_cell(verdicts: &[crate::analysis::QualityVerdict]) -> String {
    if verdicts.is_empty() {
        return "—".into();
    }
    verdicts
        .iter()
        .map(|q| match (&q.served, q.mean_kl) {
            (Some(served), _) => format!(
                "{} (served): {} ({:.1} % of tokens agree up to the first difference; {:.1} → {:.1} output tokens a prompt, {} of {} prompts of another length; margin {:.1} %)",
                served.benchmark,
                q.state.describe(),
                100.0 * q.token_agreement,
                served.reference_output_tokens_mean,
                served.candidate_output_tokens_mean,
                served.prompts_of_other_length,
                q.prompts,
                100.0 * q.margins.max_token_disagreement,
            ),
            (None, kl) => format!(
                "{}: {} ({:.1} % of tokens agree, KL {}{}; margins {:.1} %, {:.3})",
                q.model,
                q.state.describe(),
                100.0 * q.token_agreement,
                kl.map_or("not measured".into(), |kl| format!("{kl:.4} nats")),
                q.kl_bounds
                    .map_or(String::new(), |[_, hi]| format!(" ≤ {hi:.4}")),
                100.0 * q.margins.max_token_disagreement,
                q.margins.max_mean_kl,
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A calibration, one limit per line.
pub fn render_calibration(c: &crate::model::Calibration) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["limit", "measured"]);
    let disk = |v: Option<f64>| v.map_or("not measured".into(), |v| format!("{v:.0} MB/s"));
    table.add_row(vec![
        "memcpy".into(),
        format!("{:.2} GB/s", c.memcpy_gb_per_s),
    ]);
    for r in &c.memory_read_by_threads {
        table.add_row(vec![
            format!(
                "memory read, {} thread{}",
                r.threads,
                if r.threads == 1 { "" } else { "s" }
            ),
            format!("{:.2} GB/s", r.gb_per_s),
        ]);
    }
    table.add_row(vec![
        "disk sequential write".into(),
        disk(c.disk_write_mb_per_s),
    ]);
    table.add_row(vec![
        "disk sequential read (cold)".into(),
        disk(c.disk_read_mb_per_s),
    ]);
    for m in &c.matmul_gflop_per_s {
        table.add_row(vec![
            format!(
                "matmul {} {}² ({} threads)",
                m.dtype,
                c.matmul_size,
                if m.threads == 0 { c.threads } else { m.threads }
            ),
            m.gflop_per_s.map_or_else(
                || format!("unsupported: {}", m.error.as_deref().unwrap_or("?")),
                |g| format!("{g:.1} GFLOP/s"),
            ),
        ]);
    }
    let mut out = format!("{table}\n{}", c.method);
    for note in &c.notes {
        out.push_str(&format!("\nnote: {note}"));
    }
    out
}
