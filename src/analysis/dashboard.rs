//! What the dashboard shows, computed from the stored nights: per
//! campaign, day and `case metric` series, each machine's nights with the
//! run-level spread, the change points the detector finds and the nights
//! the gate confirmed a regression; the changes of the last nights for the
//! front page, each with its commits and environment differences. The
//! writers in `report::dashboard` only lay this out.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::change_points::MIN_SEGMENT_NIGHTS;
use super::history::{HistoryEntry, series_histories};
use super::regression::ChangeState;
use crate::model::environment_differences;

/// One stored night as the dashboard reads it.
#[derive(Debug, Clone)]
pub struct DashboardNight {
    pub run_id: String,
    pub machine_key: String,
    /// The report environment, flat (`field` → value), without the commit.
    /// `None` when the night was stored without it (an import whose report
    /// was gone).
    pub environment: Option<BTreeMap<String, String>>,
    pub entry: HistoryEntry,
    /// `case metric` → what the night measured of it.
    pub series: BTreeMap<String, NightSeries>,
    /// The night's whole report is in the store.
    pub has_report: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NightSeries {
    pub unit: String,
    pub higher_is_better: bool,
    pub run_values: Vec<f64>,
}

/// One night of one series on one machine.
#[derive(Debug, Clone, Serialize)]
pub struct ChartPoint {
    /// Index of the night in [`Dashboard::nights`].
    pub night: usize,
    pub recorded_at: DateTime<Utc>,
    /// Median of the night's runs.
    pub value: f64,
    /// Smallest and largest run-level value (the value itself when the
    /// night kept no run values).
    pub low: f64,
    pub high: f64,
    pub state: Option<ChangeState>,
}

/// What kind of change a marker or a front-page line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A tested step (permutation p < 0.01).
    ChangePoint,
    /// A change point with fewer than the confirming nights after it.
    ProvisionalChangePoint,
    /// A steady drift.
    Creep,
    /// The last nights sit off the level before them; not yet tested.
    Watched,
    /// The nightly gate confirmed a regression (after its re-run), and the
    /// series' latest night is still regressed.
    OpenRegression,
}

impl ChangeKind {
    /// Which of two changes on one night the front page keeps.
    fn priority(self) -> u8 {
        match self {
            Self::OpenRegression => 0,
            Self::ChangePoint => 1,
            Self::ProvisionalChangePoint => 2,
            Self::Creep => 3,
            Self::Watched => 4,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::ChangePoint => "change point",
            Self::ProvisionalChangePoint => "change point (provisional)",
            Self::Creep => "creep",
            Self::Watched => "watched",
            Self::OpenRegression => "open regression",
        }
    }
}

/// A change in one machine's series: where it starts and what is known
/// about it.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesChange {
    pub kind: ChangeKind,
    /// Index into the series' points of the first night of the change.
    pub point: usize,
    /// Index of that night in [`Dashboard::nights`].
    pub night: usize,
    /// The level after over the level before, less 1, in % (the creep's
    /// fitted total; for an open regression the night's median over the
    /// median of the night before it, less 1).
    pub change_pct: f64,
    /// The change makes the metric worse.
    pub worse: bool,
    /// Smaller than the threshold the dashboard was built with: drawn on
    /// its chart, never a front-page line.
    pub minor: bool,
    /// Commits of the nights around it, oldest first.
    pub commits: Vec<String>,
    /// (field, before, after) between the night before and the night of
    /// the change; `environment_known` is false where either was not
    /// stored.
    pub environment_changes: Vec<(String, String, String)>,
    pub environment_known: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MachineSeries {
    pub machine_key: String,
    pub points: Vec<ChartPoint>,
    pub changes: Vec<SeriesChange>,
    /// Night-to-night noise SD of the series, in %.
    pub noise_sd_pct: Option<f64>,
    /// Changes smaller than this, in %, are minor: the threshold the gate
    /// judged the series by on its latest night that says one, else the
    /// dashboard's.
    pub threshold_pct: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeriesBoard {
    /// `case metric`.
    pub series: String,
    pub unit: String,
    pub higher_is_better: bool,
    pub machines: Vec<MachineSeries>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayBoard {
    pub campaign: String,
    pub day: u32,
    pub series: Vec<SeriesBoard>,
}

/// A line of the front page: a change that began in the last nights of
/// its series, or a regression that is still open.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub campaign: String,
    pub day: u32,
    pub series: String,
    pub machine_key: String,
    pub change: SeriesChange,
    pub unit: String,
}

/// A night with what the pages around it need.
#[derive(Debug, Clone, Serialize)]
pub struct NightPage {
    pub run_id: String,
    pub machine_key: String,
    pub campaign: String,
    pub day: u32,
    pub recorded_at: DateTime<Utc>,
    pub git_commit: String,
    pub runs: u32,
    pub quick: bool,
    pub baseline: Option<String>,
    /// (series, median, low, high, unit, state) of every series it measured.
    pub values: Vec<NightValue>,
    /// The night before and after on the same machine, campaign and day.
    pub previous: Option<usize>,
    pub next: Option<usize>,
    /// Differences from the night before; `None` where either environment
    /// was not stored.
    pub environment_changes: Option<Vec<(String, String, String)>>,
    /// The night's whole report is in the store.
    pub report_stored: bool,
    /// Its page links the report (an export may leave stored ones out).
    pub has_report: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct NightValue {
    pub series: String,
    pub median: f64,
    pub low: f64,
    pub high: f64,
    pub unit: String,
    pub state: Option<ChangeState>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    /// Every night, oldest first; points and changes index into it.
    pub nights: Vec<NightPage>,
    pub days: Vec<DayBoard>,
    /// Newest first.
    pub alerts: Vec<Alert>,
    /// The front page's window, in nights of each series.
    pub recent_nights: usize,
    /// Changes smaller than this, in %, are minor (drawn, not listed) in a
    /// series whose nights do not say the threshold it was judged by.
    pub threshold_pct: f64,
    pub machines: Vec<String>,
}

fn spread(values: &[f64], median: f64) -> (f64, f64) {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let low = finite.clone().fold(median, f64::min);
    let high = finite.fold(median, f64::max);
    (low, high)
}

fn is_worse(change_pct: f64, higher_is_better: bool) -> bool {
    if higher_is_better {
        change_pct < 0.0
    } else {
        change_pct > 0.0
    }
}

/// A key that orders `len=2` before `len=10`: runs of digits compare as
/// numbers (up to 20 digits), the rest as text.
fn natural_key(text: &str) -> Vec<(String, u128)> {
    let mut key = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (word, tail) = rest.split_at(split);
        let digits = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (number, tail) = tail.split_at(digits);
        let value = number
            .get(..20)
            .unwrap_or(number)
            .parse::<u128>()
            .unwrap_or(0);
        key.push((word.to_string(), value));
        rest = tail;
    }
    key
}

/// The dashboard of `nights` (any order). The front page lists what began
/// in the last `recent_nights` nights of each machine's series, and the
/// regressions still open at each series' latest night.
/// A change smaller than its series' threshold is drawn but not listed on
/// the front page: the threshold the gate judged the series by on its
/// latest night that records one (the campaign's `regression_threshold_pct`
/// or the night's `--threshold-pct`), else `threshold_pct`.
pub fn build_dashboard(
    mut nights: Vec<DashboardNight>,
    recent_nights: usize,
    threshold_pct: f64,
) -> Dashboard {
    nights.sort_by(|a, b| (a.entry.recorded_at, &a.run_id).cmp(&(b.entry.recorded_at, &b.run_id)));
    // (campaign, day, machine) → nights, oldest first.
    let mut groups: BTreeMap<(String, u32, String), Vec<usize>> = BTreeMap::new();
    for (i, n) in nights.iter().enumerate() {
        groups
            .entry((n.entry.campaign.clone(), n.entry.day, n.machine_key.clone()))
            .or_default()
            .push(i);
    }
    let mut pages: Vec<NightPage> = nights
        .iter()
        .map(|n| NightPage {
            run_id: n.run_id.clone(),
            machine_key: n.machine_key.clone(),
            campaign: n.entry.campaign.clone(),
            day: n.entry.day,
            recorded_at: n.entry.recorded_at,
            git_commit: n.entry.git_commit.clone(),
            runs: n.entry.runs,
            quick: n.entry.quick,
            baseline: n.entry.baseline.clone(),
            values: n
                .entry
                .values
                .iter()
                .map(|(key, &median)| {
                    let stored = n.series.get(key);
                    let (low, high) = spread(stored.map_or(&[][..], |s| &s.run_values), median);
                    NightValue {
                        series: key.clone(),
                        median,
                        low,
                        high,
                        unit: stored.map_or_else(String::new, |s| s.unit.clone()),
                        state: n.entry.states.get(key).copied(),
                    }
                })
                .collect(),
            previous: None,
            next: None,
            environment_changes: None,
            report_stored: n.has_report,
            has_report: n.has_report,
        })
        .collect();
    for members in groups.values() {
        for pair in members.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            pages[after].previous = Some(before);
            pages[before].next = Some(after);
            pages[after].environment_changes = nights[before]
                .environment
                .as_ref()
                .zip(nights[after].environment.as_ref())
                .map(|(b, a)| environment_differences(b, a));
        }
    }

    let mut boards: BTreeMap<(String, u32), BTreeMap<String, SeriesBoard>> = BTreeMap::new();
    let mut alerts = Vec::new();
    for ((campaign, day, machine_key), members) in &groups {
        // The history keeps each night's report path; the run id stands in
        // for it here, because two nights may share a path (imports whose
        // report is gone) and a run id names one night.
        let entries: Vec<HistoryEntry> = members
            .iter()
            .map(|&i| HistoryEntry {
                report: nights[i].run_id.clone(),
                ..nights[i].entry.clone()
            })
            .collect();
        let by_run: BTreeMap<&str, usize> = members
            .iter()
            .map(|&i| (nights[i].run_id.as_str(), i))
            .collect();
        let environment_of = |run_id: &str| {
            by_run
                .get(run_id)
                .and_then(|&i| nights[i].environment.clone())
        };
        // Each series' threshold from its latest night that records one.
        let mut thresholds: BTreeMap<&str, f64> = BTreeMap::new();
        for &i in members {
            for (series, &t) in &nights[i].entry.thresholds_pct {
                thresholds.insert(series, t);
            }
        }
        let threshold_of = |series: &str| thresholds.get(series).copied().unwrap_or(threshold_pct);
        for history in series_histories(&entries, "", threshold_of, environment_of) {
            let night_of: Vec<usize> = history
                .nights
                .iter()
                .filter_map(|h| by_run.get(h.report.as_str()).copied())
                .collect();
            if night_of.len() != history.nights.len() {
                continue;
            }
            let stored = |i: usize| nights[night_of[i]].series.get(&history.series);
            // A night stored with its units says the direction; an imported
            // one may not: then its log summary, else the name (rates end in
            // `_per_s`), as the history's night records decide it.
            let higher_is_better = (0..night_of.len())
                .rev()
                .find_map(|i| {
                    stored(i)
                        .filter(|s| !s.unit.is_empty())
                        .map(|s| s.higher_is_better)
                })
                .or_else(|| {
                    (0..night_of.len()).rev().find_map(|i| {
                        nights[night_of[i]]
                            .entry
                            .log_runs
                            .get(&history.series)
                            .map(|l| l.higher_is_better)
                    })
                })
                .unwrap_or_else(|| history.series.ends_with("_per_s"));
            let unit = (0..night_of.len())
                .rev()
                .find_map(|i| stored(i).map(|s| s.unit.clone()))
                .unwrap_or_default();
            let points: Vec<ChartPoint> = history
                .nights
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let (low, high) = spread(stored(i).map_or(&[][..], |s| &s.run_values), h.value);
                    ChartPoint {
                        night: night_of[i],
                        recorded_at: h.recorded_at,
                        value: h.value,
                        low,
                        high,
                        state: nights[night_of[i]]
                            .entry
                            .states
                            .get(&history.series)
                            .copied(),
                    }
                })
                .collect();
            let context = |point: usize, kind: &str| {
                history
                    .contexts
                    .iter()
                    .find(|c| c.night == point && c.kind == kind)
            };
            let mut changes = Vec::new();
            // A creep may start at the first night (a drift from the start);
            // a step or a watched tail has a night before it.
            let mut push =
                |kind: ChangeKind, point: usize, change_pct: f64, minor: bool, ctx_kind: &str| {
                    if point >= points.len() || (point == 0 && kind != ChangeKind::Creep) {
                        return;
                    }
                    let (commits, environment_changes, environment_known) =
                        match context(point, ctx_kind) {
                            Some(c) => (
                                c.commits.clone(),
                                c.environment_changes.clone(),
                                c.environment_known,
                            ),
                            None => (Vec::new(), Vec::new(), false),
                        };
                    changes.push(SeriesChange {
                        kind,
                        point,
                        night: points[point].night,
                        change_pct,
                        worse: is_worse(change_pct, higher_is_better),
                        minor,
                        commits,
                        environment_changes,
                        environment_known,
                    });
                };
            let found = &history.changes;
            for cp in &found.change_points {
                let kind = if cp.provisional {
                    ChangeKind::ProvisionalChangePoint
                } else {
                    ChangeKind::ChangePoint
                };
                push(kind, cp.night, cp.shift_pct, cp.minor, "change point");
            }
            for creep in &found.creeps {
                push(
                    ChangeKind::Creep,
                    creep.first_night,
                    creep.total_pct,
                    creep.minor,
                    "creep",
                );
            }
            if let Some(tail) = &found.tail {
                push(
                    ChangeKind::Watched,
                    tail.first_night,
                    tail.shift_pct,
                    tail.minor,
                    "watched",
                );
            }
            // A regression the gate confirmed and the latest night still
            // shows: from the first night of that run of regressed nights.
            let regressed = |p: &ChartPoint| p.state == Some(ChangeState::Regressed);
            if points.last().is_some_and(regressed) {
                let first = points
                    .iter()
                    .rposition(|p| !regressed(p))
                    .map_or(0, |i| i + 1);
                // Against the night before the regressed run, where there is
                // one with a usable value; the gate's own baseline is in the
                // night's comparison.
                let before = first.checked_sub(1).map(|b| &points[b]);
                let change_pct = before
                    .filter(|b| b.value.is_finite() && b.value > 0.0)
                    .map_or(f64::NAN, |b| (points[first].value / b.value - 1.0) * 100.0);
                let window = &points[first.saturating_sub(2)..(first + 2).min(points.len())];
                let mut commits: Vec<String> = window
                    .iter()
                    .map(|p| nights[p.night].entry.git_commit.clone())
                    .collect();
                commits.dedup();
                let a = points[first].night;
                let envs = before.and_then(|b| {
                    nights[b.night]
                        .environment
                        .as_ref()
                        .zip(nights[a].environment.as_ref())
                });
                changes.push(SeriesChange {
                    kind: ChangeKind::OpenRegression,
                    point: first,
                    night: a,
                    change_pct,
                    worse: true,
                    // The gate confirmed it against its own threshold.
                    minor: false,
                    commits,
                    environment_known: envs.is_some(),
                    environment_changes: envs
                        .map(|(b, a)| environment_differences(b, a))
                        .unwrap_or_default(),
                });
            }
            changes.sort_by_key(|c| c.point);
            let recent_from = points.len().saturating_sub(recent_nights);
            // What the front page lists: an open regression always; a step
            // or tail that began in the window, a creep still running in
            // it; never from a series too short for the detector to have
            // a level on either side, never one smaller than the threshold,
            // and one line per series, machine and night (the first kind:
            // regression, step, creep, tail).
            let long_enough = points.len() >= 2 * MIN_SEGMENT_NIGHTS;
            let creep_end: BTreeMap<usize, usize> = found
                .creeps
                .iter()
                .map(|c| (c.first_night, c.last_night))
                .collect();
            let mut listed = std::collections::BTreeSet::new();
            let mut by_priority: Vec<&SeriesChange> = changes.iter().collect();
            by_priority.sort_by_key(|c| c.kind.priority());
            for change in by_priority.into_iter().filter(|c| !c.minor) {
                let in_window = match change.kind {
                    ChangeKind::OpenRegression => true,
                    ChangeKind::Creep => {
                        long_enough
                            && creep_end
                                .get(&change.point)
                                .copied()
                                .unwrap_or(change.point)
                                >= recent_from
                    }
                    // A tail runs to the latest night: it is always recent.
                    ChangeKind::Watched => long_enough,
                    _ => long_enough && change.point >= recent_from,
                };
                if in_window && listed.insert(change.night) {
                    alerts.push(Alert {
                        campaign: campaign.clone(),
                        day: *day,
                        series: history.series.clone(),
                        machine_key: machine_key.clone(),
                        change: change.clone(),
                        unit: unit.clone(),
                    });
                }
            }
            let board = boards
                .entry((campaign.clone(), *day))
                .or_default()
                .entry(history.series.clone())
                .or_insert_with(|| SeriesBoard {
                    series: history.series.clone(),
                    unit: unit.clone(),
                    higher_is_better,
                    machines: Vec::new(),
                });
            board.machines.push(MachineSeries {
                machine_key: machine_key.clone(),
                points,
                changes,
                noise_sd_pct: found.noise_sd_pct,
                threshold_pct: history.threshold_pct,
            });
        }
    }
    // Newest first; within a night, worse first.
    alerts.sort_by(|a, b| {
        (b.change.night, b.change.worse, &a.series).cmp(&(
            a.change.night,
            a.change.worse,
            &b.series,
        ))
    });
    let days = boards
        .into_iter()
        .map(|((campaign, day), series)| DayBoard {
            campaign,
            day,
            series: {
                let mut series: Vec<SeriesBoard> = series.into_values().collect();
                series.sort_by_cached_key(|s| natural_key(&s.series));
                series
            },
        })
        .collect();
    let mut machines: Vec<String> = nights.iter().map(|n| n.machine_key.clone()).collect();
    machines.sort();
    machines.dedup();
    Dashboard {
        nights: pages,
        days,
        alerts,
        recent_nights,
        threshold_pct,
        machines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    /// The gate's default, as `campaign dashboard` uses it.
    const THRESHOLD_PCT: f64 = crate::analysis::DEFAULT_THRESHOLD_PCT;

    /// `count` nights of two series on one machine, 1 % noise; `a` steps
    /// by `step` from night `at` (commit `c1` from there), `b` is A/A. The
    /// night of the step also changed the kernel.
    fn history(count: usize, at: usize, step: f64, seed: u64) -> Vec<DashboardNight> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let noise = Normal::new(0.0, 0.01).unwrap();
        let start = DateTime::parse_from_rfc3339("2026-01-01T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        (0..count)
            .map(|i| {
                let mut entry = HistoryEntry {
                    recorded_at: start + chrono::Duration::days(i as i64),
                    campaign: "c".into(),
                    day: 1,
                    git_commit: if i < at { "c0".into() } else { "c1".into() },
                    quick: false,
                    runs: 3,
                    report: format!("r{i}.json"),
                    values: BTreeMap::new(),
                    baseline: None,
                    states: BTreeMap::new(),
                    log_runs: BTreeMap::new(),
                    thresholds_pct: BTreeMap::new(),
                };
                let mut series = BTreeMap::new();
                for (key, level) in [
                    ("a t_ms", if i < at { 10.0 } else { 10.0 * step }),
                    ("b t_ms", 5.0),
                ] {
                    let runs: Vec<f64> = (0..3)
                        .map(|_| level * (1.0 + noise.sample(&mut rng)))
                        .collect();
                    let mut sorted = runs.clone();
                    sorted.sort_by(f64::total_cmp);
                    entry.values.insert(key.into(), sorted[1]);
                    series.insert(
                        key.to_string(),
                        NightSeries {
                            unit: "ms".into(),
                            higher_is_better: false,
                            run_values: runs,
                        },
                    );
                }
                let kernel = if i < at { "6.1" } else { "6.2" };
                DashboardNight {
                    run_id: format!("run{i:03}"),
                    machine_key: "m".into(),
                    environment: Some(BTreeMap::from([("kernel".to_string(), kernel.to_string())])),
                    entry,
                    series,
                    has_report: false,
                }
            })
            .collect()
    }

    #[test]
    fn a_planted_step_is_a_front_page_change_with_its_commit_and_environment_and_aa_is_quiet() {
        let (mut found, mut located, mut quiet) = (0, 0, 0);
        let trials = 20;
        for seed in 0..trials {
            let board = build_dashboard(history(120, 100, 1.2, seed), 30, THRESHOLD_PCT);
            let a: Vec<&Alert> = board
                .alerts
                .iter()
                .filter(|a| a.series == "a t_ms")
                .collect();
            if let Some(alert) = a.iter().find(|a| a.change.kind == ChangeKind::ChangePoint) {
                found += 1;
                let night = &board.nights[alert.change.night];
                if night.run_id == "run100" {
                    located += 1;
                    assert!(alert.change.worse && alert.change.change_pct > 15.0);
                    assert!(alert.change.commits.contains(&"c1".to_string()));
                    assert!(alert.change.environment_changes.contains(&(
                        "kernel".into(),
                        "6.1".into(),
                        "6.2".into()
                    )));
                }
            }
            if !board.alerts.iter().any(|a| a.series == "b t_ms") {
                quiet += 1;
            }
            // Every night is a page, chained to its neighbours, with the
            // spread of its runs around its median.
            assert_eq!(board.nights.len(), 120);
            assert_eq!(board.nights[5].previous, Some(4));
            assert_eq!(board.nights[5].next, Some(6));
            let series = &board.days[0].series[0].machines[0];
            assert_eq!(series.points.len(), 120);
            assert!(
                series
                    .points
                    .iter()
                    .all(|p| p.low <= p.value && p.value <= p.high && p.low < p.high)
            );
        }
        assert!(
            found >= trials - 1 && located >= trials - 2,
            "found {found}, at the night {located} of {trials}"
        );
        assert!(
            quiet >= trials - 1,
            "A/A series quiet in {quiet} of {trials}"
        );
    }

    #[test]
    fn nights_that_share_a_report_path_keep_their_own_points() {
        let mut nights = history(40, 30, 1.3, 3);
        for n in &mut nights {
            n.entry.report = String::new();
        }
        let board = build_dashboard(nights, 10, THRESHOLD_PCT);
        let points = &board.days[0].series[0].machines[0].points;
        let order: Vec<usize> = points.iter().map(|p| p.night).collect();
        assert_eq!(order, (0..40).collect::<Vec<_>>());
        assert!(
            points
                .iter()
                .all(|p| board.nights[p.night].recorded_at == p.recorded_at)
        );
    }

    /// `count` nights of one series, 0.5 % noise, `level(i)` on night i.
    fn series(count: usize, level: impl Fn(usize) -> f64) -> Vec<DashboardNight> {
        let mut nights = history(count, count, 1.0, 11);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let noise = Normal::new(0.0, 0.005).unwrap();
        for (i, n) in nights.iter_mut().enumerate() {
            let v = level(i) * (1.0 + noise.sample(&mut rng));
            n.entry.values = BTreeMap::from([("a t_ms".to_string(), v)]);
            n.series.retain(|k, _| k == "a t_ms");
            if let Some(s) = n.series.get_mut("a t_ms") {
                s.run_values = vec![v * 0.99, v, v * 1.01];
            }
        }
        nights
    }

    #[test]
    fn a_drift_from_the_first_night_or_still_running_is_on_the_front_page() {
        for (name, level) in [
            (
                "from the first night",
                Box::new(|i: usize| 10.0 * (1.006f64).powi(i as i32)) as Box<dyn Fn(usize) -> f64>,
            ),
            (
                "begun before the window",
                Box::new(|i: usize| {
                    if i < 30 {
                        10.0
                    } else {
                        10.0 * (1.006f64).powi(i as i32 - 30)
                    }
                }),
            ),
        ] {
            let board = build_dashboard(series(70, level), 14, THRESHOLD_PCT);
            let kinds: Vec<ChangeKind> = board.alerts.iter().map(|a| a.change.kind).collect();
            assert!(
                kinds.contains(&ChangeKind::Creep) || kinds.contains(&ChangeKind::Watched),
                "{name}: {kinds:?} of {:?}",
                board.days[0].series[0].machines[0].changes
            );
            assert!(board.alerts.iter().all(|a| a.change.worse), "{name}");
        }
    }

    #[test]
    fn a_regression_on_every_night_is_open_and_a_short_series_raises_nothing_else() {
        let mut nights = series(8, |_| 10.0);
        for n in &mut nights {
            n.entry
                .states
                .insert("a t_ms".into(), ChangeState::Regressed);
        }
        let board = build_dashboard(nights, 14, THRESHOLD_PCT);
        assert_eq!(board.alerts.len(), 1, "{:?}", board.alerts);
        assert_eq!(board.alerts[0].change.kind, ChangeKind::OpenRegression);
        assert_eq!(board.alerts[0].change.point, 0);
        assert!(board.alerts[0].change.change_pct.is_nan());
        // Three nights, one off: too short for a level on either side.
        let board = build_dashboard(
            series(3, |i| if i == 2 { 13.0 } else { 10.0 }),
            14,
            THRESHOLD_PCT,
        );
        assert!(board.alerts.is_empty(), "{:?}", board.alerts);
    }

    /// A +2 % step at 0.5 % noise is found; at the 5 % threshold it is
    /// drawn, marked minor, and raises no front-page line; at a 1 %
    /// threshold the same step is an alert.
    #[test]
    fn a_step_below_the_threshold_is_drawn_as_minor_and_not_listed() {
        let nights = || series(60, |i| if i < 40 { 10.0 } else { 10.2 });
        let board = build_dashboard(nights(), 30, THRESHOLD_PCT);
        let changes = &board.days[0].series[0].machines[0].changes;
        let step = changes
            .iter()
            .find(|c| c.point.abs_diff(40) <= 1)
            .unwrap_or_else(|| panic!("{changes:?}"));
        assert!(
            step.minor && step.change_pct > 1.0 && step.change_pct < 3.0,
            "{step:?}"
        );
        assert!(board.alerts.is_empty(), "{:?}", board.alerts);
        let alerted = |board: &Dashboard| {
            board
                .alerts
                .iter()
                .any(|a| !a.change.minor && a.change.point.abs_diff(40) <= 1)
        };
        let board = build_dashboard(nights(), 30, 1.0);
        assert!(alerted(&board), "{:?}", board.alerts);

        // The series' own threshold, as its nights record the gate's, wins
        // over the dashboard's: the latest night that records one.
        let judged_by = |early: f64, late: f64| {
            let mut nights = nights();
            for (i, n) in nights.iter_mut().enumerate() {
                let threshold = if i < 50 { early } else { late };
                n.entry.thresholds_pct.insert("a t_ms".into(), threshold);
            }
            nights
        };
        let board = build_dashboard(judged_by(5.0, 1.0), 30, THRESHOLD_PCT);
        assert!(alerted(&board), "{:?}", board.alerts);
        assert_eq!(board.days[0].series[0].machines[0].threshold_pct, 1.0);
        let board = build_dashboard(judged_by(1.0, 5.0), 30, 1.0);
        assert!(!alerted(&board), "{:?}", board.alerts);
        assert_eq!(board.days[0].series[0].machines[0].threshold_pct, 5.0);
    }

    #[test]
    fn series_are_listed_in_natural_order() {
        let mut keys = ["a[n=10] t", "a[n=2] t", "a[n=1] t", "b t", "a[n=2] s"];
        keys.sort_by_key(|k| natural_key(k));
        assert_eq!(
            keys,
            ["a[n=1] t", "a[n=2] s", "a[n=2] t", "a[n=10] t", "b t"]
        );
    }

    #[test]
    fn a_change_older_than_the_window_stays_on_its_chart_only_and_an_open_regression_is_listed() {
        let mut nights = history(120, 40, 1.3, 7);
        // The gate confirmed a regression of `b` on the last two nights.
        for n in nights.iter_mut().skip(118) {
            n.entry
                .states
                .insert("b t_ms".into(), ChangeState::Regressed);
        }
        let board = build_dashboard(nights, 30, THRESHOLD_PCT);
        let a = &board.days[0].series[0];
        assert_eq!(a.series, "a t_ms");
        assert!(
            a.machines[0]
                .changes
                .iter()
                .any(|c| c.kind == ChangeKind::ChangePoint && c.point == 40)
        );
        assert!(!board.alerts.iter().any(|x| x.series == "a t_ms"));
        let open: Vec<&Alert> = board
            .alerts
            .iter()
            .filter(|x| x.change.kind == ChangeKind::OpenRegression)
            .collect();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].series, "b t_ms");
        assert_eq!(board.nights[open[0].change.night].run_id, "run118");
    }
}
