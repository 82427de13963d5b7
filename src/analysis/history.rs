//! Night-to-night history of run-level medians, and change points in it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::change_points::{SeriesChanges, detect_changes};
use super::regression::{
    ChangeState, Comparison, MIN_RUNS, NightRecord, SeriesNight, is_time_like, sample_sd,
    series_key,
};
use crate::model::{DailyReport, environment_differences};
use crate::stats::median;

/// One line of a history file: one run of one day.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub recorded_at: DateTime<Utc>,
    pub campaign: String,
    pub day: u32,
    pub git_commit: String,
    pub quick: bool,
    pub runs: u32,
    pub report: String,
    /// `case metric` → median of the run-level values.
    pub values: BTreeMap<String, f64>,
    /// The baseline this night was compared with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// `case metric` → its verdict that night (after the re-run).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub states: BTreeMap<String, ChangeState>,
    /// `case metric` → mean and SD of the night's log run values: what
    /// night-to-night noise is estimated from (absent in older lines).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub log_runs: BTreeMap<String, SeriesNight>,
    /// `case metric` → the regression threshold its verdict was judged by
    /// that night, in % (absent where the night was not compared, and in
    /// older lines): what a reader of many campaigns calls a minor change.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub thresholds_pct: BTreeMap<String, f64>,
}

impl HistoryEntry {
    pub fn from_report(report: &DailyReport, report_path: &str) -> Self {
        let values = report
            .results
            .iter()
            .flat_map(|r| {
                r.run_values.iter().filter_map(move |(metric, v)| {
                    Some((format!("{} {metric}", r.case_id), median(v)?))
                })
            })
            .collect();
        let log_runs = report
            .results
            .iter()
            .flat_map(|r| {
                r.run_values.iter().filter_map(move |(metric, v)| {
                    let logs: Vec<f64> = v
                        .iter()
                        .filter(|x| x.is_finite() && **x > 0.0)
                        .map(|x| x.ln())
                        .collect();
                    (logs.len() == v.len() && !logs.is_empty()).then(|| {
                        let m = r.metrics.get(metric);
                        let unit = m.map_or("", |m| m.unit.as_str());
                        (
                            series_key(&r.case_id, metric),
                            SeriesNight {
                                mean_log: logs.iter().sum::<f64>() / logs.len() as f64,
                                sd_log: sample_sd(&logs),
                                runs: logs.len() as u32,
                                time_like: is_time_like(unit),
                                higher_is_better: m.is_some_and(|m| m.higher_is_better),
                            },
                        )
                    })
                })
            })
            .collect();
        Self {
            log_runs,
            recorded_at: report.finished_at,
            campaign: report.campaign.name.clone(),
            day: report.day,
            git_commit: report.environment.git_commit.clone(),
            quick: report.quick,
            runs: report.settings.runs,
            report: report_path.to_string(),
            values,
            baseline: None,
            states: BTreeMap::new(),
            thresholds_pct: BTreeMap::new(),
        }
    }

    /// Records the night's verdicts against its baseline.
    pub fn with_comparison(mut self, comparison: &Comparison) -> Self {
        self.baseline = Some(comparison.baseline.clone());
        self.states = comparison
            .changes
            .iter()
            .filter(|c| !c.metric.is_empty())
            .map(|c| (c.series_key(), c.state))
            .collect();
        self.thresholds_pct = comparison
            .changes
            .iter()
            .filter(|c| !c.metric.is_empty())
            .filter(|c| c.configured_threshold_pct.is_finite() && c.configured_threshold_pct > 0.0)
            .map(|c| (c.series_key(), c.configured_threshold_pct))
            .collect();
        self
    }

    /// This night as the night-noise estimate reads it: `None` for a quick
    /// night or one of fewer than [`MIN_RUNS`] runs, whose spread says
    /// little. Older lines without log statistics give each series the
    /// log of its median, with no sampling variance.
    pub fn night_record(&self) -> Option<NightRecord> {
        if self.quick || (self.runs as usize) < MIN_RUNS {
            return None;
        }
        let series = if self.log_runs.is_empty() {
            self.values
                .iter()
                .filter(|(_, v)| v.is_finite() && **v > 0.0)
                .map(|(key, v)| {
                    (
                        key.clone(),
                        SeriesNight {
                            mean_log: v.ln(),
                            sd_log: None,
                            runs: self.runs,
                            // Older lines do not say; series named by a
                            // time or a rate suffix are time-like.
                            time_like: key.ends_with("_ms")
                                || key.ends_with("_s")
                                || key.ends_with("_per_s"),
                            higher_is_better: key.ends_with("_per_s"),
                        },
                    )
                })
                .collect()
        } else {
            self.log_runs.clone()
        };
        Some(NightRecord {
            recorded_at: self.recorded_at,
            git_commit: self.git_commit.clone(),
            series,
        })
    }
}

/// Compared nights a regression's persistence looks back over…
pub const PERSISTENCE_WINDOW: usize = 3;
/// …and how many of them must have regressed too.
pub const PERSISTENCE_MIN: usize = 2;

/// Labels each regression `persistent` when the same metric also
/// regressed on at least [`PERSISTENCE_MIN`] of the last
/// [`PERSISTENCE_WINDOW`] earlier nights that compared it. `history` is
/// the machine's earlier nights, in any order. A label only: the exit
/// code is decided by the same-night re-run.
pub fn label_persistence(comparison: &mut Comparison, history: &[HistoryEntry]) {
    let mut nights: Vec<&HistoryEntry> = history.iter().collect();
    nights.sort_by_key(|e| e.recorded_at);
    for change in comparison
        .changes
        .iter_mut()
        .filter(|c| c.state == ChangeState::Regressed)
    {
        let key = change.series_key();
        let recent: Vec<ChangeState> = nights
            .iter()
            .rev()
            .filter_map(|e| e.states.get(&key).copied())
            .take(PERSISTENCE_WINDOW)
            .collect();
        let regressed = recent
            .iter()
            .filter(|s| **s == ChangeState::Regressed)
            .count();
        let persistent = regressed >= PERSISTENCE_MIN;
        change.persistent = Some(persistent);
        change.reason.push_str(&format!(
            "; {} (regressed on {regressed} of the last {} compared nights)",
            if persistent {
                "persistent"
            } else {
                "new tonight"
            },
            recent.len()
        ));
    }
}

/// The benchmark a `case metric` series belongs to: its case id up to
/// the first `[` (a case is `benchmark[label]`, or the benchmark's name).
pub fn benchmark_of_series(series: &str) -> &str {
    let case = series.rsplit_once(' ').map_or(series, |(case, _)| case);
    case.split_once('[')
        .map_or(case, |(benchmark, _)| benchmark)
}

/// One night of one series, as `campaign history` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryNight {
    pub recorded_at: DateTime<Utc>,
    pub value: f64,
    pub runs: u32,
    pub quick: bool,
    pub git_commit: String,
    pub report: String,
}

/// Where a change sits: the commits of the nights around it and the
/// environment differences between the night before and the first night
/// of the new level.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeContext {
    pub night: usize,
    /// What starts there: `change point`, `creep` or `watched`.
    pub kind: String,
    /// The commits of the nights from two before to one after (a change
    /// is placed within a night of the truth), oldest first, repeats
    /// folded.
    pub commits: Vec<String>,
    /// Every night in that window ran one known, clean commit: the change
    /// did not come from the code.
    pub same_clean_commit: bool,
    /// Fields that differ between the night before and the first night at
    /// the new level: (field, before, after); the report environment's,
    /// and the runs and quick settings of the night. Empty when either
    /// report could not be read (`environment_known` says which).
    pub environment_changes: Vec<(String, String, String)>,
    pub environment_known: bool,
}

/// One `case metric` series over the nights, with what the change-point
/// detector found in it.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesHistory {
    pub series: String,
    /// Changes smaller than this, in %, are marked minor (the gate's
    /// regression threshold).
    pub threshold_pct: f64,
    pub nights: Vec<HistoryNight>,
    pub changes: SeriesChanges,
    pub contexts: Vec<ChangeContext>,
}

/// The series whose key contains `filter`, oldest night first, each with
/// its change points, those smaller than its `threshold_pct_of(series)`
/// marked minor. `environment_of` reads a night's report environment
/// (as a flat field → value map) for the nights on either side of a change.
pub fn series_histories(
    entries: &[HistoryEntry],
    filter: &str,
    threshold_pct_of: impl Fn(&str) -> f64,
    mut environment_of: impl FnMut(&str) -> Option<BTreeMap<String, String>>,
) -> Vec<SeriesHistory> {
    let mut nights: Vec<&HistoryEntry> = entries.iter().collect();
    nights.sort_by_key(|e| e.recorded_at);
    let keys: std::collections::BTreeSet<&String> = nights
        .iter()
        .flat_map(|e| e.values.keys())
        .filter(|k| k.contains(filter))
        .collect();
    keys.into_iter()
        .map(|key| {
            let nights: Vec<HistoryNight> = nights
                .iter()
                .filter_map(|e| {
                    e.values.get(key).map(|v| HistoryNight {
                        recorded_at: e.recorded_at,
                        value: *v,
                        runs: e.runs,
                        quick: e.quick,
                        git_commit: e.git_commit.clone(),
                        report: e.report.clone(),
                    })
                })
                .collect();
            let values: Vec<f64> = nights.iter().map(|n| n.value).collect();
            let threshold_pct = threshold_pct_of(key);
            let mut changes = detect_changes(&values);
            changes.mark_minor(threshold_pct);
            let starts = changes
                .change_points
                .iter()
                .map(|cp| (cp.night, "change point"))
                .chain(changes.creeps.iter().map(|c| (c.first_night, "creep")))
                .chain(changes.tail.iter().map(|t| (t.first_night, "watched")));
            let contexts = starts
                .filter(|&(i, _)| i > 0)
                .map(|(i, kind)| {
                    let (before, after) = (&nights[i - 1], &nights[i]);
                    let window = &nights[i.saturating_sub(2)..(i + 2).min(nights.len())];
                    let mut commits: Vec<String> =
                        window.iter().map(|n| n.git_commit.clone()).collect();
                    commits.dedup();
                    let same_clean_commit = commits.len() == 1
                        && !commits[0].is_empty()
                        && commits[0] != "unknown"
                        && !commits[0].ends_with("-dirty");
                    let envs = environment_of(&before.report).zip(environment_of(&after.report));
                    let mut environment_changes = envs
                        .as_ref()
                        .map(|(b, a)| environment_differences(b, a))
                        .unwrap_or_default();
                    for (field, b, a) in [
                        ("runs", before.runs.to_string(), after.runs.to_string()),
                        ("quick", before.quick.to_string(), after.quick.to_string()),
                    ] {
                        if b != a {
                            environment_changes.push((field.to_string(), b, a));
                        }
                    }
                    ChangeContext {
                        night: i,
                        kind: kind.to_string(),
                        commits,
                        same_clean_commit,
                        environment_known: envs.is_some(),
                        environment_changes,
                    }
                })
                .collect();
            SeriesHistory {
                series: key.clone(),
                threshold_pct,
                nights,
                changes,
                contexts,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::regression::{GateDesign, MetricChange};

    #[test]
    fn a_series_names_its_benchmark() {
        assert_eq!(
            benchmark_of_series("decode[prompt_len=128] tpot_ms"),
            "decode"
        );
        assert_eq!(benchmark_of_series("work iteration_ms"), "work");
        assert_eq!(benchmark_of_series("a[x=1 y=2] t_ms"), "a");
    }

    fn change(state: ChangeState) -> MetricChange {
        MetricChange {
            case: "decode[prompt_len=128]".into(),
            metric: "tpot_ms".into(),
            unit: "ms".into(),
            higher_is_better: false,
            state,
            baseline_median: None,
            current_median: None,
            ratio: None,
            ratio_ci95: None,
            p_value: None,
            q_value: None,
            baseline_runs: 7,
            current_runs: 7,
            threshold_pct: 5.0,
            noise_floor_pct: None,
            configured_threshold_pct: 5.0,
            mde_pct: None,
            night_sd_pct: None,
            common_shift_removed: false,
            beyond_drift: None,
            persistent: None,
            reason: String::new(),
        }
    }

    fn night(day_offset: i64, state: Option<ChangeState>) -> HistoryEntry {
        HistoryEntry {
            recorded_at: DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(day_offset),
            campaign: "c".into(),
            day: 1,
            git_commit: String::new(),
            quick: false,
            runs: 7,
            report: String::new(),
            values: BTreeMap::new(),
            baseline: state.map(|_| "nightly".into()),
            states: state
                .map(|s| BTreeMap::from([("decode[prompt_len=128] tpot_ms".to_string(), s)]))
                .unwrap_or_default(),
            log_runs: BTreeMap::new(),
            thresholds_pct: BTreeMap::new(),
        }
    }

    fn tonight(history: &[HistoryEntry]) -> Option<bool> {
        let mut c = Comparison {
            baseline: "nightly".into(),
            current: "tonight".into(),
            rule: String::new(),
            design: GateDesign::unpaired(7, 7, 1),
            changes: vec![
                change(ChangeState::Regressed),
                change(ChangeState::Unchanged),
            ],
            machine_shifts: Vec::new(),
            night_noise: None,
            control: None,
            control_regressions: Vec::new(),
            advisory: false,
            outcome: Default::default(),
            outcome_reason: String::new(),
            counts: BTreeMap::new(),
            geomean_ratio: None,
            environment_changes: Vec::new(),
        };
        label_persistence(&mut c, history);
        assert_eq!(
            c.changes[1].persistent, None,
            "only regressions are labelled"
        );
        c.changes[0].persistent
    }

    #[test]
    fn a_regression_is_persistent_after_two_of_the_last_three_compared_nights() {
        use ChangeState::{Regressed, Unchanged};
        assert_eq!(tonight(&[]), Some(false));
        // Nights without a comparison do not count; order is by date.
        let history = [
            night(3, Some(Regressed)),
            night(1, Some(Regressed)),
            night(2, Some(Unchanged)),
            night(4, None),
        ];
        assert_eq!(tonight(&history), Some(true));
        // An older regression outside the last three compared nights does not.
        let history = [
            night(1, Some(Regressed)),
            night(2, Some(Unchanged)),
            night(3, Some(Unchanged)),
            night(4, Some(Regressed)),
        ];
        assert_eq!(tonight(&history), Some(false));
    }

    fn valued(day_offset: i64, commit: &str, runs: u32, value: f64) -> HistoryEntry {
        let mut e = night(day_offset, None);
        e.git_commit = commit.into();
        e.runs = runs;
        e.report = format!("r{day_offset}");
        e.values = BTreeMap::from([("w[n=1] iteration_ms".to_string(), value)]);
        e
    }

    #[test]
    fn a_change_is_shown_with_the_commits_and_what_changed_around_it() {
        // 15 nights at 10, then 15 at 20: the step at night 15 (0-based),
        // where the commit, the runs and the microcode changed.
        let entries: Vec<HistoryEntry> = (0..30)
            .map(|i| {
                let after = i >= 15;
                let wobble = [0.0, 0.1, -0.1, 0.05, -0.05][i as usize % 5];
                valued(
                    i,
                    if after { "bbbb" } else { "aaaa" },
                    if after { 5 } else { 3 },
                    if after { 20.0 } else { 10.0 } + wobble,
                )
            })
            .collect();
        let environment = |report: &str| {
            let night: i64 = report.trim_start_matches('r').parse().ok()?;
            let microcode = if night >= 15 { "0x2" } else { "0x1" };
            Some(BTreeMap::from([
                ("fingerprint.microcode".to_string(), microcode.to_string()),
                ("cpu_model".to_string(), "x".to_string()),
            ]))
        };
        let series = series_histories(&entries, "iteration_ms", |_| 5.0, environment);
        assert_eq!(series.len(), 1);
        let s = &series[0];
        let nights: Vec<usize> = s.changes.change_points.iter().map(|c| c.night).collect();
        assert_eq!(nights, vec![15]);
        let ctx = &s.contexts[0];
        assert_eq!((ctx.night, ctx.kind.as_str()), (15, "change point"));
        assert_eq!(ctx.commits, vec!["aaaa".to_string(), "bbbb".to_string()]);
        assert!(!ctx.same_clean_commit);
        assert_eq!(
            ctx.environment_changes,
            vec![
                ("fingerprint.microcode".into(), "0x1".into(), "0x2".into()),
                ("runs".into(), "3".into(), "5".into()),
            ]
        );
        // A report gone on either side: not compared, and said so.
        let series = series_histories(&entries, "iteration_ms", |_| 5.0, |_| None);
        assert!(!series[0].contexts[0].environment_known);
    }
}
