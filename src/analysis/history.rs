//! Night-to-night history of run-level medians, and change points in it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::report::DailyReport;
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
}

impl HistoryEntry {
    pub fn from_report(report: &DailyReport, report_path: &str) -> Self {
        let values = report
            .results
            .iter()
            .flat_map(|r| {
                r.run_values.iter().filter_map(move |(metric, v)| {
                    Some((format!("{} {metric}", r.benchmark_name), median(v)?))
                })
            })
            .collect();
        Self {
            recorded_at: report.finished_at,
            campaign: report.campaign.name.clone(),
            day: report.day,
            git_commit: report.environment.git_commit.clone(),
            quick: report.quick,
            runs: report.settings.runs,
            report: report_path.to_string(),
            values,
        }
    }
}

/// Nights compared on each side of a candidate change point.
pub const CHANGE_WINDOW: usize = 3;

pub const CHANGE_RULE: &str = "a change point is a night that, and the median of it and the next two nights, differ from the median of the three nights before by more than the threshold";

/// Indices of change points in a series (oldest first).
pub fn change_points(values: &[f64], threshold_pct: f64) -> Vec<usize> {
    (1..values.len())
        .filter(|&i| {
            let before = &values[i.saturating_sub(CHANGE_WINDOW)..i];
            let after = &values[i..(i + CHANGE_WINDOW).min(values.len())];
            match (median(before), median(after)) {
                (Some(b), Some(a)) if b != 0.0 => {
                    let shifted = |v: f64| (v / b - 1.0).abs() * 100.0 > threshold_pct;
                    shifted(a) && shifted(values[i])
                }
                _ => false,
            }
        })
        // Only the first night of each shift.
        .fold(Vec::new(), |mut acc: Vec<usize>, i| {
            if acc.last().is_none_or(|&last| i >= last + CHANGE_WINDOW) {
                acc.push(i);
            }
            acc
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_one_change_point_and_noise_is_none() {
        let step = [10.0, 10.2, 9.9, 10.1, 15.0, 15.2, 14.9, 15.1];
        assert_eq!(change_points(&step, 5.0), vec![4]);
        let noise = [10.0, 10.3, 9.8, 10.1, 10.2, 9.9, 10.0];
        assert!(change_points(&noise, 5.0).is_empty());
    }
}
