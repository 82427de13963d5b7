//! What a case concluded from all its iterations (a trend, a leak verdict,
//! stage shares), as typed records: a kind fills one in, the writers read
//! it, and the JSON keeps the field names users' queries read
//! (`.conclusion.leak_detected`). A report from an older version whose
//! conclusion has another shape still loads, as [`Findings::Other`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Untagged: each record has a required field no other has, and the
/// records are tried in this order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Findings {
    Endurance(EnduranceFindings),
    StageShares(StageShareFindings),
    KvFootprint(KvFootprintFindings),
    TimeShares(TimeShareFindings),
    MemoryGrowth(MemoryGrowthFindings),
    Other(serde_json::Value),
}

/// A steady load's resident set over time and its latency drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnduranceFindings {
    pub rss_trend: Option<RssTrend>,
    pub rss_first_mib: Option<f64>,
    pub rss_last_mib: Option<f64>,
    /// `[seconds since start, RSS MiB]` at the end of each interval.
    #[serde(default)]
    pub rss_samples_s_mib: Vec<[f64; 2]>,
    /// `[seconds, fitted MiB, low, high]` at the start, the centroid and
    /// the end: the fitted line and the band its slope interval spans.
    #[serde(default)]
    pub rss_fit_band_s_mib: Vec<[f64; 4]>,
    pub duration_s: f64,
    pub fitted_growth_mib: Option<f64>,
    pub leak_threshold_mib_per_min: f64,
    pub leak_min_growth_mib: f64,
    pub leak_detected: bool,
    pub latency_drift: LatencyDrift,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RssTrend {
    pub slope_mib_per_min: f64,
    pub slope_ci95_mib_per_min: [f64; 2],
    pub samples: usize,
    pub method: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyDrift {
    pub window_s: f64,
    pub first_window_p50_ms: Option<f64>,
    pub last_window_p50_ms: Option<f64>,
    pub drift_pct: Option<f64>,
}

/// Where an end-to-end request spends its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageShareFindings {
    /// Stage → percent of end-to-end time (none when nothing was timed).
    pub stage_share_pct: BTreeMap<String, Option<f64>>,
    pub queue_and_other_share_pct: Option<f64>,
    pub formula: String,
}

/// KV bytes per token: the architecture's prediction against RSS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvFootprintFindings {
    pub kv_bytes_per_token_predicted: u64,
    pub predicted_formula: String,
    pub kv_bytes_per_token_measured_median: Option<f64>,
    pub measured_over_predicted: Option<f64>,
    pub method: String,
    pub caveat: String,
}

/// Each planted function's share of the time, measured with a timer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeShareFindings {
    pub time_share_pct: BTreeMap<String, f64>,
    pub time_share_rule: String,
}

/// Resident set growth over repeated runs of one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryGrowthFindings {
    // Required (not defaulted to none like other options), so this record
    // only matches a conclusion that has it.
    #[serde(deserialize_with = "Option::deserialize")]
    pub rss_growth_mib_median: Option<f64>,
    pub rss_growth_mib_per_run: Option<f64>,
    /// RSS after − before, per timed iteration, in order.
    #[serde(default)]
    pub rss_growth_mib_per_iteration: Vec<f64>,
    #[serde(default)]
    pub runs_per_iteration: usize,
    pub formula: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_record_reads_back_as_itself_and_unknown_shapes_as_other() {
        let shares = Findings::TimeShares(TimeShareFindings {
            time_share_pct: BTreeMap::from([("major".into(), 70.0)]),
            time_share_rule: "r".into(),
        });
        let growth = Findings::MemoryGrowth(MemoryGrowthFindings {
            rss_growth_mib_median: None,
            rss_growth_mib_per_run: None,
            rss_growth_mib_per_iteration: vec![1.0],
            runs_per_iteration: 3,
            formula: "f".into(),
        });
        let stages = Findings::StageShares(StageShareFindings {
            stage_share_pct: BTreeMap::from([("inference".into(), Some(90.0))]),
            queue_and_other_share_pct: Some(1.0),
            formula: "f".into(),
        });
        for findings in [shares, growth, stages] {
            let back: Findings =
                serde_json::from_value(serde_json::to_value(&findings).unwrap()).unwrap();
            assert_eq!(back, findings);
        }
        let odd = json!({"formula": "f", "something": 1});
        assert_eq!(
            serde_json::from_value::<Findings>(odd.clone()).unwrap(),
            Findings::Other(odd)
        );
    }
}
