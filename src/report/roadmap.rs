//! The optimization roadmap in Markdown, written from a bottleneck
//! analysis. Every figure comes from the analysis file; the prose around
//! them is generic, never about this project's numbers.

use std::fmt::Write;
use std::path::Path;

use super::markdown::{Align, MarkdownTable, code};
use crate::analysis::{Bottleneck, BottleneckAnalysis, RemedyEstimate, WEEK1_ROI_FRACTION};

fn item(out: &mut String, r: &RemedyEstimate, profiled_time_s: f64) {
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
    match &r.measured {
        Some(m) => {
            let _ = writeln!(
                out,
                "- **Measured** ({}, {} pairs of runs in ABBA order, {}): ×{:.3} on {} ({}, p = {}) → {}. On all profiled time: ×{:.3}{}. The catalog's assumption (s = {low}–{high}) is not used.",
                m.toggle,
                m.runs_per_side,
                m.measured_at.format("%Y-%m-%d %H:%M UTC"),
                m.speedup,
                m.benchmarks
                    .iter()
                    .map(|b| format!("day {} `{}`", b.day, b.benchmark))
                    .collect::<Vec<_>>()
                    .join(", "),
                interval(m.ci95),
                m.p_value.map_or("—".into(), |p| format!("{p:.4}")),
                m.verdict.describe(),
                m.overall_speedup,
                m.overall_ci95
                    .map_or(String::new(), |ci| format!(" ({})", interval(Some(ci)))),
            );
        }
        None => {
            let _ = writeln!(
                out,
                "- Amdahl estimate: p = {:.3}, s = {low}–{high} (assumed, not measured; source: {}) → overall ×{:.3} (range ×{:.3}–×{:.3}).",
                r.share_pct / 100.0,
                r.speedup_source,
                r.estimated_speedup,
                r.estimated_speedup_range[0],
                r.estimated_speedup_range[1],
            );
        }
    }
    let _ = writeln!(
        out,
        "- Effort {} days, risk {:?}; estimated saving {:.2} s per run of {:.1} s → ROI {:.3} s/run/day.\n",
        r.effort_days, r.risk, r.time_saved_s_per_run, profiled_time_s, r.estimated_roi,
    );
}

/// A 95 % interval as people read it.
fn interval(ci: Option<[f64; 2]>) -> String {
    ci.map_or("no interval".into(), |[lo, hi]| {
        format!("95 % CI ×{lo:.3}–×{hi:.3}")
    })
}

/// The speed-up column: measured with its interval, or assumed.
fn speedup_cell(r: &RemedyEstimate) -> String {
    match &r.measured {
        Some(m) => format!(
            "measured ×{:.3} ({})",
            m.speedup,
            m.ci95.map_or("no interval".into(), |[lo, hi]| format!(
                "×{lo:.2}–×{hi:.2}"
            ))
        ),
        None => format!(
            "assumed {}–{}",
            r.assumed_remedy_speedup[0], r.assumed_remedy_speedup[1]
        ),
    }
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
        a.profiled_time_s
    );
    let mut components = MarkdownTable::new(&[
        ("component", Align::Left),
        ("samples", Align::Right),
        ("share", Align::Right),
        ("severity", Align::Left),
    ]);
    for c in &a.components {
        components.row([
            c.component.clone(),
            c.samples.to_string(),
            format!("{:.1} %", c.share_pct),
            format!("{:?}", c.severity),
        ]);
    }
    let _ = write!(out, "{components}");
    let _ = writeln!(out, "\nMeasured headline of each case:\n");
    let mut measured = MarkdownTable::new(&[
        ("day", Align::Right),
        ("case", Align::Left),
        ("metric", Align::Left),
        ("measured", Align::Right),
    ]);
    for f in &a.headlines {
        measured.row([
            f.day.to_string(),
            code(&f.case_id),
            f.metric.clone(),
            format!("{:.3} {}", f.value, f.unit),
        ]);
    }
    let _ = write!(out, "{measured}");
    if !a.missed_targets.is_empty() {
        let _ = writeln!(out, "\nTargets missed:\n");
        let mut missed = MarkdownTable::new(&[
            ("day", Align::Right),
            ("case", Align::Left),
            ("target", Align::Left),
            ("measured", Align::Right),
            ("gap", Align::Right),
        ]);
        for t in &a.missed_targets {
            missed.row([
                t.day.to_string(),
                code(&t.case_id),
                code(&t.target),
                format!("{:.3}", t.measured),
                format!("{:+.1} %", t.gap_pct),
            ]);
        }
        let _ = write!(out, "{missed}");
    }

    let _ = writeln!(out, "\n## Remedies ranked by ROI\n");
    let _ = writeln!(
        out,
        "{}. {}. A remedy acts on every profiled function it matches, so its p is the sum of their shares.\n",
        a.amdahl_formula, a.roi_formula
    );
    if a.remedy_plan.iter().any(|r| r.measured.is_some()) {
        let _ = writeln!(
            out,
            "Where s says measured, `campaign experiment` ran the remedy's toggle against the campaign as it is, alternately in one sitting: the speed-up is measured on the benchmarks it ran, and {}; time saved and ROI then use it instead of the Amdahl estimate.\n",
            crate::analysis::PROFILED_FORMULA
        );
    }
    let mut remedies = MarkdownTable::new(&[
        ("#", Align::Right),
        ("remedy", Align::Left),
        ("components", Align::Left),
        ("p", Align::Right),
        ("s", Align::Right),
        ("overall speed-up", Align::Right),
        ("effort (days)", Align::Right),
        ("risk", Align::Left),
        ("ROI (s/run/day)", Align::Right),
    ]);
    for (i, r) in a.remedy_plan.iter().enumerate() {
        remedies.row([
            (i + 1).to_string(),
            r.remedy.clone(),
            r.components.join(", "),
            format!("{:.3}", r.share_pct / 100.0),
            speedup_cell(r),
            format!(
                "×{:.3} ({})",
                r.estimated_speedup,
                if r.measured.is_some() {
                    "measured"
                } else {
                    "estimate"
                }
            ),
            r.effort_days.to_string(),
            format!("{:?}", r.risk),
            format!("{:.3}", r.estimated_roi),
        ]);
    }
    let _ = write!(out, "{remedies}");
    let _ = writeln!(out, "\n## Bottlenecks by share\n\n{}.\n", a.severity_rule);
    let mut bottlenecks = MarkdownTable::new(&[
        ("#", Align::Right),
        ("severity", Align::Left),
        ("component", Align::Left),
        ("function", Align::Left),
        ("share (charged)", Align::Right),
        ("share (on stack)", Align::Right),
        ("samples", Align::Right),
    ]);
    for b in &a.identified_bottlenecks {
        bottlenecks.row([
            b.rank.to_string(),
            format!("{:?}", b.severity),
            b.component.clone(),
            code(&b.function),
            format!("{:.1} %", b.share_pct),
            format!("{:.1} %", b.total_share_pct),
            b.evidence.samples.to_string(),
        ]);
    }
    let _ = write!(out, "{bottlenecks}");

    let (week1, week2): (Vec<&RemedyEstimate>, Vec<&RemedyEstimate>) =
        a.remedy_plan.iter().partition(|r| r.week == 1);
    let _ = writeln!(out, "\n## Week 1: high ROI, low risk\n");
    let _ = writeln!(
        out,
        "Remedies with low risk and an ROI at least {:.0} % of the best (a measured remedy only if it showed a gain).\n",
        WEEK1_ROI_FRACTION * 100.0
    );
    if week1.is_empty() {
        let _ = writeln!(out, "None qualifies with the current catalog.\n");
    }
    for r in &week1 {
        item(&mut out, r, a.profiled_time_s);
    }
    let _ = writeln!(out, "## Week 2: medium ROI or higher risk\n");
    if week2.is_empty() {
        let _ = writeln!(out, "Nothing else has an estimate.\n");
    }
    for r in &week2 {
        item(&mut out, r, a.profiled_time_s);
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
        "Re-run the profiled benchmarks after each change and compare them with this run's reports; keep a change only where the measured gain is outside the noise. Where an experiment ran, the after column is measured: the profiled time ÷ the overall speed-up the experiment measured (its interval beside it); elsewhere it is an estimate from the assumed speed-up.\n"
    );
    let mut validation = MarkdownTable::new(&[
        ("remedy", Align::Left),
        ("before (measured)", Align::Right),
        ("after", Align::Right),
    ]);
    for r in &a.remedy_plan {
        let after = match &r.measured {
            Some(m) => format!(
                "{:.2} s (measured{})",
                r.estimated_after_s,
                m.overall_ci95.map_or(String::new(), |[lo, hi]| format!(
                    ", {:.2}–{:.2} s",
                    a.profiled_time_s / hi,
                    a.profiled_time_s / lo
                ))
            ),
            None => format!("{:.2} s (estimate)", r.estimated_after_s),
        };
        validation.row([
            r.remedy.clone(),
            format!("{:.2} s", a.profiled_time_s),
            after,
        ]);
    }
    let _ = write!(out, "{validation}");
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
        let mut points = MarkdownTable::new(&[
            ("case", Align::Left),
            ("phase", Align::Left),
            ("intensity (FLOP/B)", Align::Right),
            ("bound", Align::Left),
            ("ceiling tok/s", Align::Right),
            ("measured tok/s", Align::Right),
            ("of ceiling", Align::Right),
            ("MBU", Align::Right),
            ("MFU", Align::Right),
        ]);
        for p in &r.points {
            points.row([
                code(&p.benchmark),
                p.phase.clone(),
                format!("{:.2}", p.arithmetic_intensity),
                p.bound.clone(),
                format!("{:.1}", p.ceiling_tokens_per_s),
                format!("{:.1}", p.measured_tokens_per_s),
                format!("{:.1} %", p.fraction_of_ceiling * 100.0),
                format!("{:.1} %", p.mbu_pct),
                format!("{:.1} %", p.mfu_pct),
            ]);
        }
        let _ = write!(out, "{points}");
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
