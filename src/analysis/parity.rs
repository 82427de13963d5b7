//! Served against in-process: a benchmark that served its workload from an
//! endpoint, set beside the benchmark of the same day that ran the same
//! kind, model and workload in-process, case by case.

use crate::model::{BenchmarkResult, ServedParity, Status};

fn p50(result: &BenchmarkResult, metric: &str) -> Option<f64> {
    result.metrics.get(metric).map(|m| m.summary.p50)
}

/// Twins share kind, case, model and workload (seed, lengths, SLOs), and
/// only the served one names an endpoint.
fn twins(served: &BenchmarkResult, other: &BenchmarkResult) -> bool {
    other.status == Status::Ok
        && other.kind == served.kind
        && other.case == served.case
        && other.context.get("endpoint").is_none()
        && other.context.get("workload") == served.context.get("workload")
        && other.context.get("model") == served.context.get("model")
}

/// One row per served case whose in-process twin ran the same day.
pub fn served_parity(results: &[BenchmarkResult]) -> Vec<ServedParity> {
    results
        .iter()
        .filter(|r| r.status == Status::Ok && r.context.get("endpoint").is_some())
        .filter_map(|served| {
            let twin = results.iter().find(|r| twins(served, r))?;
            let served_ttft = p50(served, "ttft_ms")?;
            let in_process_ttft = p50(twin, "ttft_ms")?;
            let served_itl = p50(served, "itl_ms");
            let in_process_itl = p50(twin, "itl_ms");
            Some(ServedParity {
                served: served.case_id.clone(),
                in_process: twin.case_id.clone(),
                case: served.case.clone().unwrap_or_default(),
                in_process_ttft_p50_ms: in_process_ttft,
                served_ttft_p50_ms: served_ttft,
                ttft_diff_ms: served_ttft - in_process_ttft,
                in_process_itl_p50_ms: in_process_itl,
                served_itl_p50_ms: served_itl,
                itl_diff_ms: served_itl.zip(in_process_itl).map(|(s, i)| s - i),
                server_ttft_p50_ms: p50(served, "server_ttft_ms"),
                transport_client_p50_ms: p50(served, "transport_client_ms"),
            })
        })
        .collect()
}
