//! The optimization roadmap in Markdown, written from a bottleneck
//! analysis. Every figure comes from the analysis file; the prose around
//! them is generic, never about this project's numbers.

use std::fmt::Write;
use std::path::Path;

use crate::analysis::{Bottleneck, BottleneckAnalysis, RemedyEstimate, WEEK1_ROI_FRACTION};

fn item(out: &mut String, r: &RemedyEstimate, baseline_s: f64) {
    let _ = writeln!(out, "#### {}\n", r.remedy);
    let _ = writeln!(
        out,
        "- Evidence: {} of the profiled samples ({:.1} %) in {} ({}): {}.",
        r.samples,
        r.share_pct,
        r.components.join(", "),
        if r.functions.len() == 1 {
            "1 function".to_string()
        } else {
            format!("{} functions", r.functions.len())
        },
        r.functions
            .iter()
            .take(5)
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let [low, high] = r.assumed_remedy_speedup;
    let _ = writeln!(
        out,
        "- Amdahl estimate: p = {:.3}, s = {low}–{high} (assumed; source: {}) → overall ×{:.3} (range ×{:.3}–×{:.3}).",
        r.share_pct / 100.0,
        r.speedup_source,
        r.estimated_speedup,
        r.estimated_speedup_range[0],
        r.estimated_speedup_range[1],
    );
    let _ = writeln!(
        out,
        "- Effort {} days, risk {:?}; estimated saving {:.2} s per run of {:.1} s → ROI {:.3} s/run/day.\n",
        r.effort_days, r.risk, r.time_saved_s_per_run, baseline_s, r.estimated_roi,
    );
}

/// The roadmap document.
pub fn render_roadmap(a: &BottleneckAnalysis, source: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Optimization roadmap: {}\n", a.campaign);
    let _ = writeln!(
        out,
        "Generated {} from `{}` (days {:?}). Every figure below was measured in those runs or is an estimate whose formula and inputs are given next to it.\n",
        a.generated_at.format("%Y-%m-%d %H:%M UTC"),
        source.display(),
        a.days
    );

    let _ = writeln!(out, "## Executive summary\n");
    let _ = writeln!(
        out,
        "{} profile samples from {} profiled benchmarks, which took {:.1} s of measured time. Time by component (share of samples):\n",
        a.total_samples,
        a.profiles.len(),
        a.baseline_s
    );
    let _ = writeln!(
        out,
        "| component | samples | share | severity |\n| --- | ---: | ---: | --- |"
    );
    for c in &a.components {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} % | {:?} |",
            c.component, c.samples, c.share_pct, c.severity
        );
    }
    let _ = writeln!(out, "\nMeasured baseline (headline of each case):\n");
    let _ = writeln!(
        out,
        "| day | case | metric | measured |\n| ---: | --- | --- | ---: |"
    );
    for f in &a.baseline {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {:.3} {} |",
            f.day, f.case_id, f.metric, f.value, f.unit
        );
    }
    if !a.missed_targets.is_empty() {
        let _ = writeln!(out, "\nTargets missed:\n");
        let _ = writeln!(
            out,
            "| day | case | target | measured | gap |\n| ---: | --- | --- | ---: | ---: |"
        );
        for t in &a.missed_targets {
            let _ = writeln!(
                out,
                "| {} | `{}` | `{}` | {:.3} | {:+.1} % |",
                t.day, t.case_id, t.target, t.measured, t.gap_pct
            );
        }
    }

    let _ = writeln!(out, "\n## Remedies ranked by ROI\n");
    let _ = writeln!(
        out,
        "{}. {}. A remedy acts on every profiled function it matches, so its p is the sum of their shares.\n",
        a.amdahl_formula, a.roi_formula
    );
    let _ = writeln!(
        out,
        "| # | remedy | components | p | assumed s | est. overall speed-up | effort (days) | risk | ROI (s/run/day) |\n| ---: | --- | --- | ---: | ---: | ---: | ---: | --- | ---: |"
    );
    for (i, r) in a.remedy_plan.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.3} | {}–{} | ×{:.3} | {} | {:?} | {:.3} |",
            i + 1,
            r.remedy,
            r.components.join(", "),
            r.share_pct / 100.0,
            r.assumed_remedy_speedup[0],
            r.assumed_remedy_speedup[1],
            r.estimated_speedup,
            r.effort_days,
            r.risk,
            r.estimated_roi
        );
    }
    let _ = writeln!(out, "\n## Bottlenecks by share\n\n{}.\n", a.severity_rule);
    let _ = writeln!(
        out,
        "| # | severity | component | function | share (charged) | share (on stack) | samples |\n| ---: | --- | --- | --- | ---: | ---: | ---: |"
    );
    for b in &a.identified_bottlenecks {
        let _ = writeln!(
            out,
            "| {} | {:?} | {} | `{}` | {:.1} % | {:.1} % | {} |",
            b.rank,
            b.severity,
            b.component,
            b.function,
            b.share_pct,
            b.total_share_pct,
            b.evidence.samples
        );
    }

    let (week1, week2): (Vec<&RemedyEstimate>, Vec<&RemedyEstimate>) =
        a.remedy_plan.iter().partition(|r| r.week == 1);
    let _ = writeln!(out, "\n## Week 1: high ROI, low risk\n");
    let _ = writeln!(
        out,
        "Remedies with low risk and an ROI at least {:.0} % of the best.\n",
        WEEK1_ROI_FRACTION * 100.0
    );
    if week1.is_empty() {
        let _ = writeln!(out, "None qualifies with the current catalog.\n");
    }
    for r in &week1 {
        item(&mut out, r, a.baseline_s);
    }
    let _ = writeln!(out, "## Week 2: medium ROI or higher risk\n");
    if week2.is_empty() {
        let _ = writeln!(out, "Nothing else has an estimate.\n");
    }
    for r in &week2 {
        item(&mut out, r, a.baseline_s);
    }
    let unmatched: Vec<&Bottleneck> = a
        .identified_bottlenecks
        .iter()
        .filter(|b| b.remedy.is_none())
        .collect();
    if !unmatched.is_empty() {
        let _ = writeln!(
            out,
            "Bottlenecks no catalog entry matches (measured, not estimated; add a remedy to estimate them):\n"
        );
        for b in unmatched {
            let _ = writeln!(
                out,
                "- `{}` ({}, {:.1} %)",
                b.function, b.component, b.share_pct
            );
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "## Week 3: validation and regression testing\n");
    let _ = writeln!(
        out,
        "Re-run the profiled benchmarks after each change and compare them with this run's reports; keep a change only where the measured gain is outside the noise. The after column is an estimate: the measured time ÷ the estimated overall speed-up.\n"
    );
    let _ = writeln!(
        out,
        "| remedy | before (measured) | after (estimate) |\n| --- | ---: | ---: |"
    );
    for r in &a.remedy_plan {
        let _ = writeln!(
            out,
            "| {} | {:.2} s | {:.2} s (estimate) |",
            r.remedy, a.baseline_s, r.estimated_after_s
        );
    }
    let _ = writeln!(out, "\nProfiles used:\n");
    for p in &a.profiles {
        let _ = writeln!(
            out,
            "- day {} `{}`: {} samples, `{}`",
            p.day, p.benchmark, p.samples, p.folded_path
        );
    }
    if let Some(r) = &a.roofline {
        let _ = writeln!(out, "\n## Roofline\n\n{}\n", r.inputs.source);
        let _ = writeln!(
            out,
            "| case | phase | intensity (FLOP/B) | bound | ceiling tok/s | measured tok/s | of ceiling | MBU | MFU |\n| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for p in &r.points {
            let _ = writeln!(
                out,
                "| `{}` | {} | {:.2} | {} | {:.1} | {:.1} | {:.1} % | {:.1} % | {:.1} % |",
                p.benchmark,
                p.phase,
                p.arithmetic_intensity,
                p.bound,
                p.ceiling_tokens_per_s,
                p.measured_tokens_per_s,
                p.fraction_of_ceiling * 100.0,
                p.mbu_pct,
                p.mfu_pct
            );
        }
        let _ = writeln!(out, "\nFormulas:\n");
        for f in &r.formulas {
            let _ = writeln!(out, "- {f}");
        }
    }
    for note in &a.notes {
        let _ = writeln!(out, "\n> note: {note}");
    }
    out
}
