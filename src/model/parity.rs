//! A served benchmark beside its in-process twin in one day, as a day
//! report stores it. Computed by `analysis::served_parity`.

use serde::{Deserialize, Serialize};

/// One case of a served benchmark and the same case in-process: the same
/// kind, model and workload. Medians (p50) of the per-request samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedParity {
    pub served: String,
    pub in_process: String,
    pub case: String,
    pub in_process_ttft_p50_ms: f64,
    pub served_ttft_p50_ms: f64,
    /// Served − in-process.
    pub ttft_diff_ms: f64,
    pub in_process_itl_p50_ms: Option<f64>,
    pub served_itl_p50_ms: Option<f64>,
    pub itl_diff_ms: Option<f64>,
    /// The split of the served TTFT, when the server reports its timing:
    /// its own first-token time and the rest (network path and client).
    pub server_ttft_p50_ms: Option<f64>,
    pub transport_client_p50_ms: Option<f64>,
}
