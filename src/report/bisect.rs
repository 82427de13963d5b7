//! `bisect.md`: what a bisect measured and found, for the console and for
//! the engineer who gets the culprit.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::export::{JsonFile, write_rendered};
use super::markdown::{Align, MarkdownTable, code};
use super::wording::state_name;
use crate::analysis::{
    BisectOutcome, BisectReport, BisectStep, CommitVerdict, STEP_CONFIDENCE, STEP_PAIRS_RULE,
    StepRole,
};
use crate::output::{OutputError, OutputLayout};

/// A bisect's report as written: its Markdown text and its JSON, each
/// rendered once, so that what is printed is the file's bytes.
#[derive(Debug, Clone)]
pub struct WrittenBisect {
    /// `bisect.md`, whose path a run prints after the text.
    pub markdown_path: PathBuf,
    pub text: String,
    pub json: String,
}

/// Writes `bisect.json` and `bisect.md` beside the bisect's profiles; the
/// caller prints what it needs of them.
pub fn write_bisect(
    layout: &OutputLayout,
    report: &BisectReport,
) -> Result<WrittenBisect, OutputError> {
    let dir = layout.bisect(&OutputLayout::run_id(&report.started_at));
    let text = render_bisect(report);
    let json = JsonFile::text(report)?;
    write_rendered(&dir.join("bisect.json"), json.as_bytes())?;
    write_rendered(&dir.join("bisect.md"), text.as_bytes())?;
    Ok(WrittenBisect {
        markdown_path: dir.join("bisect.md"),
        text,
        json,
    })
}

fn commit_label(report: &BisectReport, index: usize) -> String {
    report.commits.get(index).map_or_else(
        || format!("commit {index}"),
        |c| format!("{} {}", code(c.short()), c.subject),
    )
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("×{v:.3}"))
}

fn interval(ci: Option<[f64; 2]>) -> String {
    ci.map_or_else(|| "–".into(), |[lo, hi]| format!("[{lo:.3}, {hi:.3}]"))
}

/// A step's verdict in a word or three.
pub fn step_verdict(step: &BisectStep) -> &'static str {
    match (step.verdict, step.settled) {
        (CommitVerdict::Good, true) => "good",
        (CommitVerdict::Bad, true) => "bad",
        (CommitVerdict::Good, false) => "good (unsettled)",
        (CommitVerdict::Bad, false) => "bad (unsettled)",
        (CommitVerdict::Skipped, _) => "skipped",
    }
}

/// The bisect as Markdown.
pub fn render_bisect(report: &BisectReport) -> String {
    let search = &report.search;
    let last = report.commits.len().saturating_sub(1);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Bisect of day {} of {}\n\ngood: {}  \nbad: {}  \n{} commits after the good one, on the bad one's first-parent line. Built: {}. Campaign: {}.\n",
        report.day,
        report.campaign,
        commit_label(report, 0),
        commit_label(report, last),
        last,
        report.build,
        report.campaign_source,
    );
    let _ = writeln!(out, "## Result\n");
    match &search.outcome {
        BisectOutcome::FirstBad { commit, last_good } => {
            let step = search.steps.iter().rev().find(|s| s.commit == *commit);
            let good_step = search.steps.iter().rev().find(|s| s.commit == *last_good);
            let unsettled = |s: Option<&BisectStep>| {
                if s.is_some_and(|s| !s.settled) {
                    " (unsettled: decided by its estimate)"
                } else {
                    ""
                }
            };
            let _ = writeln!(
                out,
                "**First bad commit: {}**, {} {} slower than the good build ({:.0} % interval {}){}; the commit before it, {}, is good{}.",
                commit_label(report, *commit),
                search
                    .followed
                    .as_ref()
                    .map_or_else(String::new, |f| format!("{} {}", f.case, f.metric)),
                ratio(step.and_then(|s| s.slowdown)),
                STEP_CONFIDENCE * 100.0,
                interval(step.and_then(|s| s.slowdown_ci)),
                unsettled(step),
                commit_label(report, *last_good),
                unsettled(good_step),
            );
        }
        BisectOutcome::Ambiguous {
            last_good,
            candidates,
        } => {
            let _ = writeln!(
                out,
                "**The first bad commit is one of these** (the commits between could not be built or measured; the last good one is {}):\n",
                commit_label(report, *last_good)
            );
            for c in candidates {
                let _ = writeln!(out, "- {}", commit_label(report, *c));
            }
        }
        BisectOutcome::NoRegression { reason } => {
            let _ = writeln!(
                out,
                "**No regression between {} and {}**: {reason}.",
                code(report.commits.first().map_or("good", |c| c.short())),
                code(report.commits.last().map_or("bad", |c| c.short())),
            );
        }
        BisectOutcome::NotMeasured { reason } => {
            let _ = writeln!(out, "**Not measured**: {reason}.");
        }
        BisectOutcome::Interrupted => {
            let _ = writeln!(
                out,
                "**Interrupted**: the steps measured so far are below; no culprit is named."
            );
        }
    }
    let builds = search.builds_measured();
    let budget = (last.max(1) as f64).log2().ceil() as usize + 1;
    let _ = writeln!(
        out,
        "\n{builds} builds measured (⌈log₂ {last}⌉ + 1 = {budget}), {} sittings, {} pairs in all.\n",
        search.steps.iter().filter(|s| s.pairs > 0).count(),
        search.steps.iter().map(|s| s.pairs).sum::<usize>(),
    );
    if let Some(f) = &search.followed {
        let _ = writeln!(
            out,
            "## What was followed\n\n{} {} ({}, {}): the gate found it ×{:.3} slower at the bad end, the largest regression; measured again, ×{:.3} ({:.0} % interval {}), paired SD {:.1} %: the size every step is judged against; steps of at most {} pairs ({STEP_PAIRS_RULE}).\n\nRule: {}.\n",
            f.case,
            f.metric,
            f.unit,
            if f.higher_is_better {
                "higher is better"
            } else {
                "lower is better"
            },
            f.gate_size,
            f.size,
            STEP_CONFIDENCE * 100.0,
            interval(f.size_ci),
            f.pair_sd_pct,
            f.max_step_pairs,
            search.rule,
        );
    }
    if !search.steps.is_empty() {
        let _ = writeln!(out, "## Steps\n");
    }
    let mut table = MarkdownTable::new(&[
        ("#", Align::Right),
        ("commit", Align::Left),
        ("step", Align::Left),
        ("pairs", Align::Right),
        ("lost runs", Align::Right),
        ("slowdown", Align::Right),
        ("99 % interval", Align::Right),
        ("verdict", Align::Left),
        ("why", Align::Left),
    ]);
    for (i, s) in search.steps.iter().enumerate() {
        table.row([
            (i + 1).to_string(),
            commit_label(report, s.commit),
            match s.role {
                StepRole::Ends => "the ends (gate)".into(),
                StepRole::Candidate => format!("{} of {last}", s.commit),
                StepRole::Size => "bad end again (the size)".into(),
            },
            s.pairs.to_string(),
            s.lost_runs.to_string(),
            ratio(s.slowdown),
            interval(s.slowdown_ci),
            step_verdict(s).into(),
            s.reason.clone(),
        ]);
    }
    if !table.is_empty() {
        let _ = writeln!(out, "{table}");
    }
    if !search.skipped.is_empty() {
        let _ = writeln!(out, "## Skipped commits\n");
        for (c, why) in &search.skipped {
            let _ = writeln!(out, "- {}: {}", commit_label(report, *c), why.trim_end());
        }
        let _ = writeln!(out);
    }
    if let Some(d) = &report.profile_difference {
        let _ = writeln!(
            out,
            "## What grew in the culprit\n\nCPU profiles of one run of each build ({} samples, {:.2} CPU s of the last good build; {}, {:.2} CPU s of the culprit); differential flame graph: {}.\n\n{}.\n",
            d.before_samples,
            d.before_cpu_s,
            d.after_samples,
            d.after_cpu_s,
            report
                .differential_flame_graph
                .as_deref()
                .map_or_else(|| "not written".into(), code),
            d.formula,
        );
        let mut table = MarkdownTable::new(&[
            ("function", Align::Left),
            ("last good, % of samples", Align::Right),
            ("culprit, % of samples", Align::Right),
            ("grew, points", Align::Right),
        ]);
        for g in d.grew.iter().chain(&d.shrank) {
            table.row([
                code(&g.function),
                format!("{:.1}", g.before_pct),
                format!("{:.1}", g.after_pct),
                format!("{:+.1}", g.grew_points),
            ]);
        }
        if !table.is_empty() {
            let _ = writeln!(out, "{table}");
        }
    }
    if let Some(ends) = &search.ends {
        let _ = writeln!(
            out,
            "## The ends, compared by the gate\n\n{} series, {}.\n",
            ends.changes.len(),
            ends.design.describe()
        );
        let mut table = MarkdownTable::new(&[
            ("case", Align::Left),
            ("metric", Align::Left),
            ("bad ÷ good", Align::Right),
            ("95 % interval", Align::Right),
            ("state", Align::Left),
        ]);
        for c in &ends.changes {
            table.row([
                c.case.clone(),
                c.metric.clone(),
                c.ratio.map_or_else(|| "–".into(), |r| format!("{r:.3}")),
                interval(c.ratio_ci95),
                state_name(c.state).into(),
            ]);
        }
        let _ = writeln!(out, "{table}");
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}
