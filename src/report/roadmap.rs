//! The optimization roadmap in Markdown, written from a bottleneck
//! analysis. Every figure comes from the analysis file; the prose around
//! them is generic, never about this project's numbers.

use std::fmt::Write;
use std::path::Path;

use super::markdown::{Align, MarkdownTable, code};
use super::wording::{lost_samples_line, severity, share};
use crate::analysis::{Bottleneck, BottleneckAnalysis, RemedyEstimate, WEEK1_ROI_FRACTION};

/// The text with its first letter in capitals.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// A share as the fraction p, with its 95 % interval when the analysis has one.
fn p_with_interval(share_pct: f64, ci95_pct: Option<[f64; 2]>) -> String {
    match ci95_pct {
        Some([lo, hi]) => format!(
            "{:.3} (95 % {:.3}–{:.3})",
            share_pct / 100.0,
            lo / 100.0,
            hi / 100.0
        ),
        None => format!("{:.3}", share_pct / 100.0),
    }
}

fn item(out: &mut String, r: &RemedyEstimate, profiled_time_s: f64) {
    let _ = writeln!(out, "#### {}\n", r.remedy);
    let _ = writeln!(
        out,
        "- Evidence: {} of the profiled samples ({}) in {} ({}): {}.",
        r.samples,
        share(r.share_pct, r.share_ci95_pct),
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
                "- **Measured** ({}, {} pairs of runs in ABBA order, {}): ×{:.3} on {} ({}, p = {}) → {}{}. On all profiled time: {}.",
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
                m.quality
                    .map_or(String::new(), |q| format!(", {}", q.describe())),
                match m.overall_speedup {
                    Some(overall) => format!(
                        "×{overall:.3}{}. The catalog's assumption (s = {low}–{high}) is not used",
                        m.overall_ci95
                            .map_or(String::new(), |ci| format!(" ({})", interval(Some(ci))))
                    ),
                    None => format!(
                        "not measured, because the analysis did not profile these benchmarks, so their share of the time is unknown; the overall figures stay the Amdahl estimate ×{:.3} (p = {}, s = {low}–{high} assumed)",
                        r.estimated_speedup,
                        p_with_interval(r.share_pct, r.share_ci95_pct),
                    ),
                },
            );
        }
        None => {
            let _ = writeln!(
                out,
                "- Amdahl estimate: p = {}, s = {low}–{high} (assumed, not measured; source: {}) → overall ×{:.3} (range ×{:.3}–×{:.3}).",
                p_with_interval(r.share_pct, r.share_ci95_pct),
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

/// How a remedy's quality reads in the summary.
fn quality_cell(r: &RemedyEstimate) -> &'static str {
    match &r.measured {
        Some(m) => m
            .quality
            .map_or("— (the toggle cannot change outputs)", |q| q.describe()),
        None => "not measured",
    }
}

/// Why a remedy is not among those to do first.
fn why_not_first(r: &RemedyEstimate) -> String {
    if let Some(m) = &r.measured
        && !m.is_win()
    {
        return match m.quality {
            Some(q) if m.verdict == crate::analysis::ExperimentVerdict::Gain => {
                format!("measured a gain, but {}", q.describe())
            }
            _ => format!("measured: {}", m.verdict.describe()),
        };
    }
    if r.risk != crate::analysis::Risk::Low {
        let risk = format!("{:?}", r.risk).to_lowercase();
        // A measured win is held back by the catalog's rating alone: say
        // so, since the rating is the user's to revise.
        return match &r.measured {
            Some(m) => format!(
                "the catalog rates its risk {risk} (measured: a gain{})",
                m.quality
                    .map_or(String::new(), |q| format!(", {}", q.describe()))
            ),
            None => format!("{risk} risk"),
        };
    }
    format!("ROI below {:.0} % of the best", WEEK1_ROI_FRACTION * 100.0)
}

/// The summary's opening: the remedies to do first with their measured
/// (or estimated) speed-ups and quality, and what they give together.
fn decision(out: &mut String, a: &BottleneckAnalysis) {
    let _ = writeln!(out, "### Do first\n");
    let Some(d) = &a.decision else {
        if a.remedy_plan.is_empty() {
            let _ = writeln!(
                out,
                "No remedy of the catalog ({}) matches a profiled function: nothing to decide yet. The bottlenecks below are measured; add catalog entries to estimate them.\n",
                a.remedies_file
            );
            return;
        }
        let _ = writeln!(
            out,
            "Nothing qualifies yet: Week 1 takes low-risk remedies with an ROI at least {:.0} % of the best, and a measured remedy only where it showed a gain with quality holding. The best candidates:\n",
            WEEK1_ROI_FRACTION * 100.0
        );
        let mut candidates = MarkdownTable::new(&[
            ("remedy", Align::Left),
            ("speed-up where it acts", Align::Right),
            ("quality", Align::Left),
            ("not first because", Align::Left),
        ]);
        for r in a.remedy_plan.iter().take(3) {
            candidates.row([
                r.remedy.clone(),
                speedup_cell(r),
                quality_cell(r).to_string(),
                why_not_first(r),
            ]);
        }
        let _ = writeln!(out, "{candidates}");
        return;
    };
    let first: Vec<&RemedyEstimate> = a
        .remedy_plan
        .iter()
        .filter(|r| d.remedies.contains(&r.remedy))
        .collect();
    let _ = writeln!(
        out,
        "{} with low risk and the best return on effort; {}:\n",
        if first.len() == 1 {
            "One remedy".to_string()
        } else {
            format!("{} remedies", first.len())
        },
        match d.measured {
            0 if first.iter().any(|r| r.measured.is_some()) => "their speed-ups where they act were measured, but those on all profiled time are estimates (the analysis did not profile the benchmarks the experiments ran)"
                .to_string(),
            0 => "none is measured yet (run `campaign experiment` to replace the estimates)"
                .to_string(),
            n if n == first.len() => "every speed-up below was measured".to_string(),
            n => format!("{n} of them measured, the others estimated"),
        }
    );
    let mut table = MarkdownTable::new(&[
        ("#", Align::Right),
        ("remedy", Align::Left),
        ("speed-up where it acts", Align::Right),
        ("on all profiled time", Align::Right),
        ("quality", Align::Left),
        ("saved per run", Align::Right),
    ]);
    for (i, r) in first.iter().enumerate() {
        table.row([
            (i + 1).to_string(),
            r.remedy.clone(),
            speedup_cell(r),
            overall_cell(r),
            quality_cell(r).to_string(),
            format!("{:.2} s", r.time_saved_s_per_run),
        ]);
    }
    let _ = writeln!(out, "{table}");
    match &d.together {
        Some(t) => {
            let _ = writeln!(
                out,
                "**Together: ×{:.3}{}**: {:.2} s of the {:.2} s profiled per run saved, {:.2} s left. Formula: {}.\n",
                t.speedup,
                match t.speedup_high {
                    Some(hi) => format!(" (×{:.3}–×{hi:.3})", t.speedup_low),
                    None => format!(" (×{:.3} or more)", t.speedup_low),
                },
                t.time_saved_s_per_run,
                a.profiled_time_s,
                t.after_s,
                d.formula
            );
        }
        None => {
            let _ = writeln!(
                out,
                "No total is stated: their savings would add up to all of the profiled time, so some of them must overlap; measure them together with `campaign experiment`.\n"
            );
        }
    }
    if !d.overlapping.is_empty() {
        let _ = writeln!(
            out,
            "Also in Week 1 but not in the total (their savings may overlap those of a remedy above: a shared function, or a shared benchmark where one was measured): {}.\n",
            d.overlapping.join("; ")
        );
    }
}

/// The speed-up on all profiled time, and whether it was measured.
fn overall_cell(r: &RemedyEstimate) -> String {
    format!(
        "×{:.3} ({})",
        r.estimated_speedup,
        if r.measured
            .as_ref()
            .is_some_and(|m| m.overall_speedup.is_some())
        {
            "measured"
        } else {
            "estimate"
        }
    )
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
    decision(&mut out, a);
    let _ = writeln!(
        out,
        "### Where the time goes\n\n{} profile samples from {} profiled benchmarks, which took {:.1} s of measured time. Time by component ({}):\n",
        a.total_samples,
        a.profiles.len(),
        a.profiled_time_s,
        if a.effective_samples.is_some() {
            "share of the recorded CPU time, with its 95 % interval"
        } else {
            "share of samples"
        }
    );
    if !a.share_rule.is_empty() {
        let _ = writeln!(out, "Shares: {}.\n", a.share_rule);
    }
    if let Some(line) = lost_samples_line(a) {
        let _ = writeln!(out, "{}.\n", sentence(&line));
    }
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
            share(c.share_pct, c.share_ci95_pct),
            severity(c.severity, c.severity_range, c.severity_settled),
        ]);
    }
    let _ = write!(out, "{components}");
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
            "Where s says measured, `campaign experiment` ran the remedy's toggle against the campaign as it is, alternately in one sitting: the speed-up is measured on the benchmarks it ran, and {}; where the analysis profiled those benchmarks, time saved and ROI then use it instead of the Amdahl estimate (elsewhere they stay the estimate, and say so).\n",
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
            p_with_interval(r.share_pct, r.share_ci95_pct),
            speedup_cell(r),
            overall_cell(r),
            r.effort_days.to_string(),
            format!("{:?}", r.risk),
            format!("{:.3}", r.estimated_roi),
        ]);
    }
    let _ = write!(out, "{remedies}");
    let _ = writeln!(out, "\n## Bottlenecks by share\n\n{}.\n", a.severity_rule);
    if !a.precision_rule.is_empty() {
        let _ = writeln!(out, "{}.\n", sentence(&a.precision_rule));
    }
    let mut bottlenecks = MarkdownTable::new(&[
        ("#", Align::Right),
        ("severity (95 % range)", Align::Left),
        ("component", Align::Left),
        ("function", Align::Left),
        ("share (charged, 95 % CI)", Align::Right),
        ("share (on stack)", Align::Right),
        ("samples", Align::Right),
        ("for the stated precision", Align::Right),
    ]);
    for b in &a.identified_bottlenecks {
        bottlenecks.row([
            b.rank.to_string(),
            severity(b.severity, b.severity_range, b.severity_settled),
            b.component.clone(),
            code(&b.function),
            share(b.share_pct, b.share_ci95_pct),
            format!("{:.1} %", b.total_share_pct),
            b.evidence.samples.to_string(),
            match (&b.precision_shortfall, b.share_ci95_pct) {
                (Some(s), _) => {
                    format!(
                        "{} more samples ({:.1} CPU-s)",
                        s.more_samples, s.more_cpu_s
                    )
                }
                (None, Some(_)) => "met".into(),
                // An analysis written before shares had intervals.
                (None, None) => "—".into(),
            },
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
                "- `{}` ({}, {})",
                b.function,
                b.component,
                share(b.share_pct, b.share_ci95_pct)
            );
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "## Week 3: validation and regression testing\n");
    let _ = writeln!(
        out,
        "Re-run the profiled benchmarks after each change and compare them with this run's reports; keep a change only where the measured gain is outside the noise. Where an experiment ran on benchmarks the analysis profiled, the after column is measured: the profiled time ÷ the overall speed-up the experiment measured (its interval beside it); elsewhere it is an estimate from the assumed speed-up.\n"
    );
    let mut validation = MarkdownTable::new(&[
        ("remedy", Align::Left),
        ("before (measured)", Align::Right),
        ("after", Align::Right),
    ]);
    for r in &a.remedy_plan {
        let after = match r.measured.as_ref().filter(|m| m.overall_speedup.is_some()) {
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
    if !a.headlines.is_empty() {
        let _ = writeln!(out, "\n## Measured headline of each case\n");
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
    }
    let _ = writeln!(out, "\nProfiles used:\n");
    for p in &a.profiles {
        let _ = writeln!(
            out,
            "- day {} `{}`: {} samples{}, `{}`",
            p.day,
            p.benchmark,
            p.samples,
            if p.rate_hz > 0.0 {
                format!(" at {:.0} Hz", p.rate_hz)
            } else {
                String::new()
            },
            p.folded_path
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{
        AMDAHL_FORMULA, PRECISION_RULE, ProfileEvidence, ROI_FORMULA, RankingInputs, RemedyCatalog,
        SEVERITY_RULE, SHARE_RULE, rank_bottlenecks,
    };
    use crate::profile::FoldedStacks;

    /// 57 recorded samples (13 in `hot`) and 3 lost, analysed as
    /// `campaign analyze` does.
    fn short_analysis() -> BottleneckAnalysis {
        let stacks =
            FoldedStacks::parse("t;main;hot 13\nt;main;cold 44\n", Path::new("p")).unwrap();
        let evidence = ProfileEvidence {
            day: 1,
            benchmark: "bench".into(),
            samples: 57,
            folded_path: "p.folded".into(),
            measured_s: 1.0,
            rate_hz: 199.0,
            lost_samples: 3,
        };
        let catalog: RemedyCatalog = toml::from_str(
            "[[remedy]]\nfunction_contains = \"hot\"\nremedy = \"cool it\"\nspeedup = [1.5, 3.0]\neffort_days = 1\nrisk = \"low\"\nsource = \"test\"\n",
        )
        .unwrap();
        let r = rank_bottlenecks(&RankingInputs {
            profiles: &[(evidence.clone(), stacks)],
            catalog: &catalog,
        });
        BottleneckAnalysis {
            generated_at: chrono::Utc::now(),
            campaign: "c".into(),
            days: vec![1],
            reports: Vec::new(),
            profiles: vec![evidence],
            total_samples: r.total_samples,
            effective_samples: Some(r.effective_samples),
            sample_rate_hz: Some(r.sample_rate_hz),
            lost_samples: r.lost_samples,
            lost_share_pct: Some(r.lost_share_pct),
            profiled_time_s: r.profiled_time_s,
            share_rule: SHARE_RULE.into(),
            precision_rule: PRECISION_RULE.into(),
            severity_rule: SEVERITY_RULE.into(),
            amdahl_formula: AMDAHL_FORMULA.into(),
            roi_formula: ROI_FORMULA.into(),
            remedies_file: "test".into(),
            components: r.components,
            identified_bottlenecks: r.bottlenecks,
            decision: crate::analysis::plan_decision(&r.remedy_plan, r.profiled_time_s),
            remedy_plan: r.remedy_plan,
            missed_targets: Vec::new(),
            headlines: Vec::new(),
            roofline: None,
            notes: r.notes,
        }
    }

    /// The summary leads with the decision: a remedy whose measured gain
    /// lost quality is not done first, and the summary says why instead of
    /// stating a total.
    #[test]
    fn the_summary_leads_with_what_to_do_first_or_why_nothing_qualifies() {
        let mut a = short_analysis();
        let roadmap = render_roadmap(&a, Path::new("a.json"));
        let summary = &roadmap[roadmap.find("### Do first").unwrap()..];
        assert!(
            summary.starts_with("### Do first\n\nOne remedy"),
            "{summary}"
        );
        assert!(
            summary.contains("| 1 | cool it | assumed 1.5–3 |"),
            "{summary}"
        );
        assert!(summary.contains("**Together: ×"), "{summary}");

        a.remedy_plan[0].measured = Some(crate::analysis::MeasuredRemedy {
            speedup: 2.0,
            ci95: Some([1.8, 2.2]),
            p_value: Some(0.001),
            verdict: crate::analysis::ExperimentVerdict::Gain,
            overall_speedup: Some(1.2),
            overall_ci95: Some([1.1, 1.3]),
            runs_per_side: 9,
            benchmarks: Vec::new(),
            toggle: "model option x = 1 (every model)".into(),
            measured_at: chrono::Utc::now(),
            quality: Some(crate::analysis::QualityState::Lost),
        });
        crate::analysis::assign_weeks(&mut a.remedy_plan);
        a.decision = crate::analysis::plan_decision(&a.remedy_plan, a.profiled_time_s);
        assert!(a.decision.is_none());
        let roadmap = render_roadmap(&a, Path::new("a.json"));
        let summary = &roadmap[..roadmap.find("### Where the time goes").unwrap()];
        assert!(summary.contains("Nothing qualifies yet"), "{summary}");
        assert!(
            summary.contains("| cool it | measured ×2.000 (×1.80–×2.20) | quality lost | measured a gain, but quality lost |"),
            "{summary}"
        );
        assert!(!summary.contains("Together"), "{summary}");

        // A measured win held back by the catalog's risk says so.
        if let Some(m) = a.remedy_plan[0].measured.as_mut() {
            m.quality = Some(crate::analysis::QualityState::Holds);
        }
        a.remedy_plan[0].risk = crate::analysis::Risk::Medium;
        crate::analysis::assign_weeks(&mut a.remedy_plan);
        a.decision = crate::analysis::plan_decision(&a.remedy_plan, a.profiled_time_s);
        let roadmap = render_roadmap(&a, Path::new("a.json"));
        assert!(
            roadmap.contains(
                "| quality holds | the catalog rates its risk medium (measured: a gain, quality holds) |"
            ),
            "{roadmap}"
        );

        // Measured on benchmarks the analysis did not profile: the gain
        // stays where it was measured, the overall figures an estimate.
        a.remedy_plan[0].risk = crate::analysis::Risk::Low;
        if let Some(m) = a.remedy_plan[0].measured.as_mut() {
            m.overall_speedup = None;
            m.overall_ci95 = None;
        }
        crate::analysis::assign_weeks(&mut a.remedy_plan);
        a.decision = crate::analysis::plan_decision(&a.remedy_plan, a.profiled_time_s);
        let roadmap = render_roadmap(&a, Path::new("a.json"));
        assert!(
            roadmap.contains("On all profiled time: not measured, because the analysis did not profile these benchmarks"),
            "{roadmap}"
        );
        let row = roadmap
            .lines()
            .find(|l| l.starts_with("| 1 | cool it |"))
            .unwrap_or_else(|| panic!("{roadmap}"));
        assert!(row.contains("(estimate)"), "{row}");
        assert!(row.contains("measured ×2.000"), "{row}");
        assert!(
            roadmap.contains("those on all profiled time are estimates"),
            "{roadmap}"
        );
    }

    /// The writers show what the analysis computed: each share with its
    /// interval, the class with the classes the interval spans, the lost
    /// share on its own line, and what the stated precision still needs.
    #[test]
    fn shares_are_written_with_their_intervals_and_the_lost_share_apart() {
        let a = short_analysis();
        let hot = &a.identified_bottlenecks[1];
        assert_eq!(hot.function, "hot");
        let need = hot.precision_shortfall.as_ref().unwrap();
        let roadmap = render_roadmap(&a, Path::new("a.json"));
        for needle in [
            "| HIGH (MEDIUM–CRITICAL) | other | `hot` | 22.8 % (13.8–35.2) |",
            "Samples lost: 5.0 % of the profiled CPU time (3 samples), in no share.",
            "Stated precision: ±5 percentage points at 95 %",
            &format!(
                "| {} more samples ({:.1} CPU-s) |",
                need.more_samples, need.more_cpu_s
            ),
            "p = 0.228 (95 % 0.138–0.352)",
            "> note: precision: 2 of the 2 listed shares are wider than ±5 points",
        ] {
            assert!(roadmap.contains(needle), "{needle} missing:\n{roadmap}");
        }
        let console = crate::report::render_bottleneck_table(&a);
        for needle in [
            "HIGH (MEDIUM–CRITICAL)",
            "22.8 % (13.8–35.2)",
            "\nsamples lost: 5.0 % of the profiled CPU time (3 samples), in no share",
            "wanted to ±5 points",
        ] {
            assert!(console.contains(needle), "{needle} missing:\n{console}");
        }
        // Lost samples are no component and no function.
        assert!(!console.contains("unattributed") && !roadmap.contains("| unattributed |"));
    }
}
