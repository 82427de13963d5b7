//! The words every writer shares: how a figure, an interval and a change's
//! state are printed, the day's counts, the comparison's counts, what the
//! night could not see, and a case's conclusions as sentences. One copy
//! each, so the console, summary.md and the HTML page say the same thing.

use crate::analysis::{BottleneckAnalysis, ChangeState, Comparison, MetricChange, Severity};
use crate::model::{DaySummary, Findings, PeerComparison, ProfileRecord, ServedParity, Status};

pub fn figure(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.4}"))
}

pub fn interval(ci: Option<[f64; 2]>) -> String {
    ci.map_or("—".into(), |[a, b]| format!("{a:.3}–{b:.3}"))
}

pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "CRITICAL",
        Severity::High => "HIGH",
        Severity::Medium => "MEDIUM",
        Severity::Low => "LOW",
    }
}

/// "HIGH (MEDIUM–CRITICAL)": the measured share's class, then the classes
/// its interval spans; "CRITICAL (settled)" when the interval lies in one.
/// Older analyses have no range: the class alone.
pub fn severity(class: Severity, range: Option<[Severity; 2]>, settled: bool) -> String {
    match range {
        Some(_) if settled => format!("{} (settled)", severity_name(class)),
        Some([low, high]) => format!(
            "{} ({}–{})",
            severity_name(class),
            severity_name(low),
            severity_name(high)
        ),
        None => severity_name(class).to_string(),
    }
}

/// "22.8 % (13.8–35.2)": a share and its 95 % interval, in %.
pub fn share(share_pct: f64, ci95_pct: Option<[f64; 2]>) -> String {
    match ci95_pct {
        Some([lo, hi]) => format!("{share_pct:.1} % ({lo:.1}–{hi:.1})"),
        None => format!("{share_pct:.1} %"),
    }
}

/// "samples lost: 3.1 % of the profiled CPU time (57 samples), in no share";
/// `None` for an analysis written before lost samples were counted apart.
pub fn lost_samples_line(a: &BottleneckAnalysis) -> Option<String> {
    a.lost_share_pct.map(|pct| {
        format!(
            "samples lost: {pct:.1} % of the profiled CPU time ({} sample{}), in no share",
            a.lost_samples,
            if a.lost_samples == 1 { "" } else { "s" }
        )
    })
}

/// "1042 samples at 199 Hz": with the requested rate where it was capped,
/// the rate measured to be delivered, and the share of samples lost.
pub fn profile_rates(p: &ProfileRecord) -> String {
    let mut text = format!("{} samples at {} Hz", p.samples, p.effective_hz);
    if let Some(requested) = p.requested_hz.filter(|r| *r != p.effective_hz) {
        text.push_str(&format!(" (asked for {requested} Hz)"));
    }
    if let Some(delivered) = p.delivered_hz {
        text.push_str(&format!(
            "; the profiler delivers {delivered:.0} Hz on this machine (measured)"
        ));
    }
    if let Some(lost) = p.lost_share_pct {
        text.push_str(&format!("; samples lost: {lost:.1} %"));
    }
    text
}

pub fn mde(x: &MetricChange) -> String {
    x.mde_pct.map_or("—".into(), |m| format!("{m:.1} %"))
}

/// A change's state, with the persistence label of a regression.
pub fn state(x: &MetricChange) -> String {
    let name = state_name(x.state);
    match x.persistent {
        Some(true) => format!("{name} (persistent)"),
        _ => name.to_string(),
    }
}

pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Failed => "failed",
        Status::Interrupted => "interrupted",
        Status::Skipped => "skipped",
    }
}

pub fn state_name(state: ChangeState) -> &'static str {
    match state {
        ChangeState::Regressed => "regressed",
        ChangeState::Improved => "improved",
        ChangeState::Unchanged => "unchanged",
        ChangeState::Inconclusive => "inconclusive",
        ChangeState::New => "new",
        ChangeState::Missing => "missing",
        ChangeState::Failed => "failed",
    }
}

/// "6 results: 5 ok, 1 failed, 0 interrupted; targets: 2 met, 1 missed, 0 not measured"
/// (and "…, 2 skipped" when benchmarks were skipped).
pub fn day_counts_sentence(s: &DaySummary) -> String {
    let mut skipped = if s.skipped > 0 {
        format!(", {} skipped", s.skipped)
    } else {
        String::new()
    };
    if s.failed_runs > 0 {
        skipped.push_str(&format!(
            ", {} separate run{} failed or lost",
            s.failed_runs,
            if s.failed_runs == 1 { "" } else { "s" }
        ));
    }
    format!(
        "{} result{}: {} ok, {} failed, {} interrupted{skipped}; targets: {} met, {} missed, {} not measured",
        s.total,
        if s.total == 1 { "" } else { "s" },
        s.successful,
        s.failed,
        s.interrupted,
        s.targets_met,
        s.targets_missed,
        s.targets_not_measured
    )
}

/// "Against baseline `x`: 1 regressed, …. Geometric mean of ratios …."
pub fn comparison_counts_sentence(c: &Comparison) -> String {
    let counts: Vec<String> = [
        ChangeState::Regressed,
        ChangeState::Improved,
        ChangeState::Unchanged,
        ChangeState::Inconclusive,
        ChangeState::New,
        ChangeState::Missing,
        ChangeState::Failed,
    ]
    .into_iter()
    .map(|state| {
        format!(
            "{} {}",
            c.counts.get(&state).copied().unwrap_or(0),
            state_name(state)
        )
    })
    .collect();
    format!(
        "Against baseline {}: {}. Geometric mean of ratios (above 1 is worse): {}.",
        c.baseline,
        counts.join(", "),
        c.geomean_ratio.map_or("—".into(), |g| format!("{g:.3}"))
    )
}

/// What differs between the environments of the two runs compared, as
/// one line; `None` when nothing does.
pub fn environment_changes_sentence(c: &Comparison) -> Option<String> {
    if c.environment_changes.is_empty() {
        return None;
    }
    let fields: Vec<String> = c
        .environment_changes
        .iter()
        .map(|(field, before, after)| format!("{field}: {before} → {after}"))
        .collect();
    Some(format!(
        "What differs from the baseline's run: {}.",
        fields.join("; ")
    ))
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
pub fn advisory_sentence(c: &Comparison) -> Option<String> {
    c.advisory.then(|| {
        let drift = c
            .control
            .as_ref()
            .and_then(crate::analysis::AaControl::drift_log)
            .map_or(String::new(), |d| format!(" by ×{:.3}", d.exp()));
        format!(
            "the A/A control fired ({}): tonight's runs disagree with each other{drift}, so the machine may have changed during the night; a regression must clear its threshold plus that drift to fail the night, and the others are too noisy to tell",
            c.control_regressions.join(", ")
        )
    })
}

/// What the night comes to and why, then what it knew of the machine:
/// its common shift and its night-to-night noise. One list for the
/// console, the CI summary and the HTML page.
pub fn night_sentences(c: &Comparison) -> Vec<String> {
    use crate::analysis::NightOutcome;
    let why = if c.outcome_reason.is_empty() {
        String::new()
    } else {
        format!(" ({})", c.outcome_reason)
    };
    let mut out = vec![match c.outcome {
        NightOutcome::Pass => format!("Verdict: pass{why}."),
        NightOutcome::Regression => format!("Verdict: regression, exit 3{why}."),
        NightOutcome::TooNoisy => format!("Verdict: {}; exit 5.", c.outcome_reason),
    }];
    for m in &c.machine_shifts {
        let interval = m.ratio_ci95.map_or(String::new(), |[lo, hi]| {
            format!(" (95 % CI ×{lo:.3}–×{hi:.3})")
        });
        out.push(format!(
            "Every case of {} moved together by ×{:.3}{interval} since the baseline's night, over {} cases: {}. It was taken out of each of them, so a case that moved beyond it still stands out.",
            m.metric, m.ratio, m.cases, m.reason
        ));
    }
    if let Some(noise) = &c.night_noise {
        let sds: Vec<f64> = c.changes.iter().filter_map(|x| x.night_sd_pct).collect();
        out.push(if sds.is_empty() {
            format!(
                "Night-to-night noise on this machine is not known yet ({} of {} nights in its history): the verdicts hold the noise between tonight's runs and the night's common shift, not how far one case moves from night to night by itself, so a change of a few percent in one case may be the night. It becomes known after {} more full nights; to judge a small change tonight, run both builds in one night with --against-bin (keep last night's binary).",
                noise.nights,
                crate::analysis::MIN_NIGHT_DIFFERENCES + 1,
                noise.nights_missing().max(1)
            )
        } else {
            let lo = sds.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = sds.iter().copied().fold(0.0, f64::max);
            format!(
                "Night-to-night noise from {} nights of this machine's history{}: a night's mean moves by {lo:.1}–{hi:.1} % (SD) per series, and that is inside every interval and p-value above.",
                noise.nights,
                match (noise.first_night, noise.last_night) {
                    (Some(a), Some(b)) => format!(
                        " ({} to {}, {} commit{})",
                        a.format("%Y-%m-%d"),
                        b.format("%Y-%m-%d"),
                        noise.commits,
                        if noise.commits == 1 { "" } else { "s" }
                    ),
                    _ => String::new(),
                }
            )
        });
    }
    out.extend(advisory_sentence(c).map(|a| format!("Advisory: {a}.")));
    out
}

fn optional(v: Option<f64>, decimals: usize, unit: &str) -> String {
    v.map_or("—".into(), |v| format!("{v:.decimals$}{unit}"))
}

/// A case's conclusions, one sentence each, every figure from the findings.
pub fn findings_sentences(findings: &Findings) -> Vec<String> {
    match findings {
        Findings::Endurance(e) => {
            let mut out = vec![match &e.rss_trend {
                Some(t) => format!(
                    "{}: RSS changed {:+.2} MiB/min (95 % CI {:+.2} to {:+.2}, {} samples over {:.0} s; fitted growth {}). A leak needs the whole interval above 0, a slope above {} MiB/min and growth above {} MiB.",
                    if e.leak_detected {
                        "Memory leak suspected"
                    } else {
                        "No leak"
                    },
                    t.slope_mib_per_min,
                    t.slope_ci95_mib_per_min[0],
                    t.slope_ci95_mib_per_min[1],
                    t.samples,
                    e.duration_s,
                    optional(e.fitted_growth_mib, 1, " MiB"),
                    e.leak_threshold_mib_per_min,
                    e.leak_min_growth_mib
                ),
                None => "No memory trend: fewer than 3 RSS samples.".into(),
            }];
            let d = &e.latency_drift;
            out.push(format!(
                "Latency p50 moved {} between the first and the last {:.1} s ({} → {}).",
                optional(d.drift_pct, 1, " %"),
                d.window_s,
                optional(d.first_window_p50_ms, 3, " ms"),
                optional(d.last_window_p50_ms, 3, " ms")
            ));
            out
        }
        Findings::StageShares(s) => {
            let largest = s
                .stage_share_pct
                .iter()
                .filter_map(|(stage, share)| Some((stage, (*share)?)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            vec![match largest {
                Some((stage, share)) => format!(
                    "Most of a request's time is {stage}: {share:.1} % of end-to-end time; queueing and everything between stages take {}.",
                    optional(s.queue_and_other_share_pct, 1, " %")
                ),
                None => "No request was timed, so no stage shares.".into(),
            }]
        }
        Findings::KvFootprint(k) => vec![format!(
            "KV per token: {} bytes measured (median) against {} bytes predicted ({}), ratio {}.",
            optional(k.kv_bytes_per_token_measured_median, 0, ""),
            k.kv_bytes_per_token_predicted,
            k.predicted_formula,
            optional(k.measured_over_predicted, 2, "")
        )],
        Findings::TimeShares(t) => vec![format!(
            "Measured time shares: {}.",
            t.time_share_pct
                .iter()
                .map(|(name, share)| format!("{name} {share:.1} %"))
                .collect::<Vec<_>>()
                .join(", ")
        )],
        Findings::MemoryGrowth(m) => vec![format!(
            "RSS grows {} per iteration of {} runs (median of {} iterations), {} per run.",
            optional(m.rss_growth_mib_median, 2, " MiB"),
            m.runs_per_iteration,
            m.rss_growth_mib_per_iteration.len(),
            optional(m.rss_growth_mib_per_run, 3, " MiB")
        )],
        Findings::Other(_) => Vec::new(),
    }
}

/// "pp512 on model.gguf, 1 thread: ours 1412 tokens/s, llama-bench's 2710:
/// ours ÷ theirs ×0.52 (95 % CI ×0.49–×0.55)".
pub fn peer_sentence(row: &PeerComparison) -> String {
    let threads = row.threads.map_or(String::new(), |t| {
        format!(", {t} thread{}", if t == 1 { "" } else { "s" })
    });
    format!(
        "{} on {}{threads}: ours {:.0} tokens/s, {}'s {:.0}: ours ÷ theirs ×{:.2}{}",
        row.test,
        row.weights_label(),
        row.ours_tokens_per_s,
        row.peer_program,
        row.peer_tokens_per_s,
        row.ratio,
        row.ratio_ci95.map_or(String::new(), |[lo, hi]| format!(
            " (95 % CI ×{lo:.2}–×{hi:.2})"
        ))
    )
}

/// "served vs in-process S (T): TTFT p50 a → b ms (+d) = server x + transport and client y; ITL p50 …".
pub fn parity_sentence(row: &ServedParity) -> String {
    let split = match (row.server_ttft_p50_ms, row.transport_client_p50_ms) {
        (Some(server), Some(rest)) => {
            format!(" = server {server:.2} + transport and client {rest:.2}")
        }
        _ => String::new(),
    };
    let itl = match (
        row.in_process_itl_p50_ms,
        row.served_itl_p50_ms,
        row.itl_diff_ms,
    ) {
        (Some(a), Some(b), Some(d)) => format!("; ITL p50 {a:.3} → {b:.3} ms ({d:+.3})"),
        _ => String::new(),
    };
    format!(
        "served vs in-process {} ({}): TTFT p50 {:.2} → {:.2} ms ({:+.2}){split}{itl}",
        row.served,
        row.in_process,
        row.in_process_ttft_p50_ms,
        row.served_ttft_p50_ms,
        row.ttft_diff_ms
    )
}
