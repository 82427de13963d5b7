//! `campaign analyze` (Day 4, also run as a day step): bottlenecks ranked
//! from the days' profiles and reports, with the roofline.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::CommandError;
use crate::analysis::{
    AMDAHL_FORMULA, BottleneckAnalysis, HeadlineFigure, MissedTarget, PRECISION_RULE,
    ProfileEvidence, ROI_FORMULA, Ranking, RankingInputs, Remedy, RemedyCatalog, ResolvedCatalog,
    SEVERITY_RULE, SHARE_RULE, plan_decision, rank_bottlenecks, roofline, roofline_inputs,
};
use crate::benchmarks::Registry;
use crate::benchmarks::find_kind;
use crate::campaign::{Campaign, Toggle, load_campaign_toggled, parse_day_range};
use crate::components::inference::ModelArchitecture;
use crate::model::Calibration;
use crate::model::{DailyReport, Verdict};
use crate::output::OutputLayout;
use crate::profile::FoldedStacks;

/// `campaign analyze`: ranks bottlenecks from the days' profiles and reports.
pub fn run_analysis(
    campaign: &Campaign,
    layout: &OutputLayout,
    days: &str,
    remedies: Option<&Path>,
) -> Result<(BottleneckAnalysis, PathBuf), CommandError> {
    let range = parse_day_range(days).ok_or_else(|| {
        CommandError::Analysis(format!(
            "--days {days:?} is not a day range; write it as 1-4 or 3"
        ))
    })?;
    let ResolvedCatalog {
        catalog,
        source: catalog_source,
    } = RemedyCatalog::resolve(remedies, &campaign.remedies_path())
        .map_err(|e| CommandError::Analysis(e.to_string()))?;
    let mut notes = Vec::new();
    let reports = layout.latest_reports(range.clone(), &mut notes);
    let mut profiles = Vec::new();
    for (_, report) in &reports {
        for record in &report.profiles {
            let Some(path) = &record.folded_path else {
                notes.push(format!(
                    "day {}: {} has no folded profile ({})",
                    report.day,
                    record.benchmark,
                    record.error.as_deref().unwrap_or("no file")
                ));
                continue;
            };
            match FoldedStacks::read(Path::new(path)) {
                Ok(mut stacks) => {
                    // Older profiles kept their lost samples as a stack,
                    // and counted them in the record as well.
                    let lost_samples = stacks.take_lost().max(record.lost_samples);
                    let measured_s = report
                        .results
                        .iter()
                        .filter(|r| r.benchmark == record.benchmark)
                        .map(|r| r.elapsed_s)
                        .sum();
                    profiles.push((
                        ProfileEvidence {
                            day: report.day,
                            benchmark: record.benchmark.clone(),
                            samples: stacks.total_samples(),
                            folded_path: path.clone(),
                            measured_s,
                            rate_hz: f64::from(record.effective_hz),
                            lost_samples,
                        },
                        stacks,
                    ));
                }
                Err(e) => notes.push(format!("day {}: {e}", report.day)),
            }
        }
    }
    if profiles.iter().all(|(e, _)| e.samples == 0) {
        return Err(CommandError::Analysis(format!(
            "no profile samples in the reports of days {days} under {}\n  help: run a day whose benchmarks have `profile = true` (or pass --profile) first, e.g. `campaign run --day 4`",
            layout.daily_reports().display()
        )));
    }
    let ranking = rank_applicable(campaign, &profiles, catalog, &mut notes);
    notes.extend(ranking.notes.iter().cloned());

    let mut missed_targets = Vec::new();
    let mut headlines = Vec::new();
    for (_, report) in &reports {
        for r in &report.results {
            for t in r.targets.iter().filter(|t| t.verdict == Verdict::Missed) {
                if let Some(measured) = t.measured {
                    missed_targets.push(MissedTarget {
                        day: report.day,
                        case_id: r.case_id.clone(),
                        target: t.target.clone(),
                        threshold: t.threshold,
                        measured,
                        gap_pct: (measured / t.threshold - 1.0) * 100.0,
                    });
                }
            }
            if let (Some(metric), Some(value)) = (&r.latency_metric, r.p50_ms) {
                headlines.push(HeadlineFigure {
                    day: report.day,
                    case_id: r.case_id.clone(),
                    kind: r.kind.clone(),
                    metric: format!("{metric} p50"),
                    value,
                    unit: "ms".into(),
                });
            }
            if let (Some(metric), Some(value), Some(unit)) =
                (&r.throughput_metric, r.throughput, &r.throughput_unit)
            {
                headlines.push(HeadlineFigure {
                    day: report.day,
                    case_id: r.case_id.clone(),
                    kind: r.kind.clone(),
                    metric: format!("{metric} mean"),
                    value,
                    unit: unit.clone(),
                });
            }
        }
    }

    let roofline = match read_calibration(layout) {
        Ok(calibration) => roofline_for(&reports, &calibration, &mut notes),
        Err(note) => {
            notes.push(note);
            None
        }
    };

    let analysis = BottleneckAnalysis {
        generated_at: Utc::now(),
        campaign: campaign.name().to_string(),
        days: reports.iter().map(|(_, r)| r.day).collect(),
        reports: reports
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect(),
        profiles: profiles.into_iter().map(|(e, _)| e).collect(),
        total_samples: ranking.total_samples,
        effective_samples: Some(ranking.effective_samples),
        sample_rate_hz: Some(ranking.sample_rate_hz),
        lost_samples: ranking.lost_samples,
        lost_share_pct: Some(ranking.lost_share_pct),
        profiled_time_s: ranking.profiled_time_s,
        share_rule: SHARE_RULE.into(),
        precision_rule: PRECISION_RULE.into(),
        severity_rule: SEVERITY_RULE.into(),
        amdahl_formula: AMDAHL_FORMULA.into(),
        roi_formula: ROI_FORMULA.into(),
        remedies_file: catalog_source,
        components: ranking.components,
        identified_bottlenecks: ranking.bottlenecks,
        decision: plan_decision(&ranking.remedy_plan, ranking.profiled_time_s),
        remedy_plan: ranking.remedy_plan,
        missed_targets,
        headlines,
        roofline,
        notes,
    };
    let path = layout.bottleneck_analysis();
    crate::report::JsonFile::write(&path, &analysis)?;
    Ok((analysis, path))
}

/// Why a remedy's toggle would change nothing in this campaign, if it
/// would not. Proposing such a remedy sends a user to do what is done, or
/// cannot be done:
/// - a model option is judged model by model: it applies when at least one
///   model loads with it and comes out different (`matmul = "native"` is
///   already what quantized models run, and an f32 model refuses it;
///   `quantize` is refused by GGUF weights, which keep their own types);
/// - a param or setting is judged by the text alone: already written with
///   that value. A toggle that fails to load for another reason (a
///   benchmark this campaign does not have) is kept: its experiment will
///   say why it cannot run, and the estimate still stands.
fn inapplicable(campaign: &Campaign, source: &str, remedy: &Remedy) -> Option<String> {
    // A param toggle names its benchmarks only once an analysis gives the
    // evidence (it cannot be judged before), and a toggled campaign (an
    // experiment's side) is not the one its file describes.
    let toggle = remedy
        .toggle
        .as_ref()
        .filter(|t| t.param.is_none() || !t.benchmarks.is_empty())
        .filter(|_| campaign.toggle.is_none())?;
    if toggle.model_option.is_none() {
        let parsed = |text: &str| toml::from_str::<toml::Value>(text).ok();
        let unchanged = match (
            toggle.apply(source).ok().as_deref().map(parsed),
            parsed(source),
        ) {
            (Some(Some(after)), Some(before)) => after == before,
            _ => false,
        };
        return unchanged.then(|| {
            format!(
                "its toggle ({}) is already in effect in {}",
                toggle.describe(),
                campaign.path.display()
            )
        });
    }
    let models: Vec<&String> = match &toggle.model {
        Some(name) => campaign.models.keys().filter(|m| *m == name).collect(),
        None => campaign.models.keys().collect(),
    };
    let mut reasons = Vec::new();
    for name in models {
        let one = Toggle {
            model: Some(name.clone()),
            ..toggle.clone()
        };
        match load_campaign_toggled(&campaign.path, &Registry, Some(&one)) {
            // Every key of [models.X] is resolved into the model, defaults
            // included: an equal model means the option is in effect.
            Ok(toggled) => {
                let before = campaign.models.get(name).map(|m| format!("{m:?}"));
                let after = toggled.models.get(name).map(|m| format!("{m:?}"));
                if before == after {
                    reasons.push(format!("model {name:?} already runs with it"));
                } else {
                    return None;
                }
            }
            Err(e) => {
                let message = e.to_string();
                let first = message
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or_default()
                    .to_string();
                reasons.push(format!("model {name:?} does not take it: {first}"));
            }
        }
    }
    if reasons.is_empty() {
        // No model to judge by: the experiment will say why.
        return None;
    }
    Some(format!(
        "its toggle ({}) changes no model of {}: {}",
        toggle.describe(),
        campaign.path.display(),
        reasons.join("; ")
    ))
}

/// The ranking with only remedies that can change this campaign: an
/// inapplicable remedy the plan proposes leaves the catalog, with a note,
/// and its functions go to the next entry that matches.
fn rank_applicable(
    campaign: &Campaign,
    profiles: &[(ProfileEvidence, FoldedStacks)],
    mut catalog: RemedyCatalog,
    notes: &mut Vec<String>,
) -> Ranking {
    let source = std::fs::read_to_string(&campaign.path).unwrap_or_default();
    // Applicability does not depend on the ranking: each remedy is judged once.
    let mut applicable = std::collections::HashSet::new();
    loop {
        let ranking = rank_bottlenecks(&RankingInputs {
            profiles,
            catalog: &catalog,
        });
        let mut dropped = Vec::new();
        for planned in &ranking.remedy_plan {
            let Some(remedy) = catalog.remedies.iter().find(|r| r.remedy == planned.remedy) else {
                continue;
            };
            if applicable.contains(&remedy.remedy) {
                continue;
            }
            match inapplicable(campaign, &source, remedy) {
                Some(why) => dropped.push((remedy.remedy.clone(), why)),
                None => {
                    applicable.insert(remedy.remedy.clone());
                }
            }
        }
        if dropped.is_empty() {
            return ranking;
        }
        for (remedy, why) in dropped {
            notes.push(format!("remedy {remedy:?} is not proposed: {why}"));
            catalog.remedies.retain(|r| r.remedy != remedy);
        }
    }
}

fn read_calibration(layout: &OutputLayout) -> Result<Calibration, String> {
    let path = layout.calibration();
    let bytes = std::fs::read(&path).map_err(|_| {
        format!(
            "no roofline: {} is missing; run `campaign calibrate` (or a day with after = [\"calibrate\"])",
            path.display()
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("no roofline: {} unreadable: {e}", path.display()))
}

fn roofline_for(
    reports: &[(PathBuf, DailyReport)],
    calibration: &Calibration,
    notes: &mut Vec<String>,
) -> Option<crate::analysis::Roofline> {
    let inference = |kind: &str| find_kind(kind).is_some_and(|k| k.roofline_phase().is_some());
    // The newest day with inference results; its model and settings.
    let (_, report) = reports
        .iter()
        .rev()
        .find(|(_, r)| r.results.iter().any(|x| inference(&x.kind)))?;
    let model_result = report
        .results
        .iter()
        .find(|r| inference(&r.kind) && r.context["architecture"].is_object())?;
    let architecture: ModelArchitecture =
        serde_json::from_value(model_result.context["architecture"].clone()).ok()?;
    // The activations' type (f32 for a GGUF model, whatever the settings
    // say) and the real bytes of its weights, when the report has them.
    let dtype = model_result.context["dtype"]
        .as_str()
        .unwrap_or(&report.settings.dtype);
    let weight_bytes = model_result.context["weight_bytes_per_forward"].as_u64();
    match roofline_inputs(architecture, dtype, report.settings.threads, calibration) {
        Ok(mut inputs) => {
            inputs.weight_bytes_per_forward = weight_bytes;
            Some(roofline(inputs, &report.results))
        }
        Err(note) => {
            notes.push(note);
            None
        }
    }
}
