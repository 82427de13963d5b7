//! Roofline of a Llama-architecture model on the calibrated machine: FLOPs
//! and bytes per token for prefill and decode, arithmetic intensity, the
//! bound, the tokens/s ceiling, and the measured Day 1 numbers as MBU and
//! MFU. Every figure carries the formula it comes from.

use serde::{Deserialize, Serialize};

use crate::benchmarks::find_kind;
use crate::components::inference::ModelArchitecture;
use crate::model::{
    BenchmarkResult, Calibration, CaseParams, InferenceCaseParams, InferencePhase, Status,
};

/// What the roofline is computed from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RooflineInputs {
    pub architecture: ModelArchitecture,
    pub dtype_bytes: usize,
    pub peak_gflop_per_s: f64,
    pub memory_gb_per_s: f64,
    /// The compute threads of the run, which both figures were measured with.
    #[serde(default)]
    pub threads: usize,
    /// FLOP per byte where compute and memory time are equal.
    pub ridge_flop_per_byte: f64,
    pub source: String,
    /// Weight bytes one forward pass reads, as the model holds them (the
    /// real bytes of quantized weights); `None`: from the shapes × dtype.
    #[serde(default)]
    pub weight_bytes_per_forward: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RooflinePoint {
    pub benchmark: String,
    pub phase: String,
    pub prompt_len: usize,
    pub batch_size: usize,
    pub flop_per_token: f64,
    pub bytes_per_token: f64,
    pub arithmetic_intensity: f64,
    pub bound: String,
    pub ceiling_tokens_per_s: f64,
    pub measured_tokens_per_s: f64,
    pub fraction_of_ceiling: f64,
    /// Achieved bytes/s ÷ calibrated memory bandwidth, in %.
    pub mbu_pct: f64,
    /// Achieved FLOP/s ÷ calibrated matmul peak, in %.
    pub mfu_pct: f64,
    /// Batch size from which decode at this context is compute-bound
    /// (`None`: never, the KV cache grows as fast as the work).
    pub compute_bound_from_batch: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Roofline {
    pub inputs: RooflineInputs,
    pub formulas: Vec<String>,
    pub points: Vec<RooflinePoint>,
}

pub const FORMULAS: &[&str] = &[
    "W (weight bytes read per forward pass) = (layers × (2·h² + 2·h·kv_dim + 3·h·ffn) + vocab·h) × dtype bytes; for a GGUF model, the bytes of its matrices as loaded (quantized blocks as stored), from the report's weight_bytes_per_forward",
    "linear FLOP per token = 2 × W / dtype bytes",
    "attention FLOP per token at context c = 4 × layers × heads × head_dim × c",
    "KV bytes per token of context = 2 × layers × kv_dim × dtype bytes",
    "decode step (batch B, context c): FLOP = B × (linear + attention(c)); bytes = W + B × KV × c",
    "prefill (B × P tokens): FLOP = B × (P × linear + attention(P) × P / 2); bytes = W + B × KV × P (activations not counted)",
    "intensity = FLOP ÷ bytes; compute-bound when intensity ≥ peak FLOP/s ÷ bandwidth (the ridge)",
    "ceiling tokens/s = tokens ÷ max(FLOP ÷ peak, bytes ÷ bandwidth); MBU = measured tokens/s × bytes per token ÷ bandwidth; MFU = measured tokens/s × FLOP per token ÷ peak",
    "decode turns compute-bound at B ≥ ridge × W ÷ (FLOP per token − ridge × KV × c)",
];

struct ModelCosts {
    weight_bytes: f64,
    linear_flop: f64,
    attn_flop_per_ctx: f64,
    kv_bytes_per_ctx: f64,
}

fn costs(a: &ModelArchitecture, dtype_bytes: usize) -> ModelCosts {
    let (h, ffn, l, v) = (
        a.hidden_size as f64,
        a.intermediate_size as f64,
        a.num_hidden_layers as f64,
        a.vocab_size as f64,
    );
    let kv_dim = (a.num_key_value_heads * a.head_dim()) as f64;
    let weights = l * (2.0 * h * h + 2.0 * h * kv_dim + 3.0 * h * ffn) + v * h;
    let b = dtype_bytes as f64;
    ModelCosts {
        weight_bytes: weights * b,
        linear_flop: 2.0 * weights,
        attn_flop_per_ctx: 4.0 * l * (a.num_attention_heads * a.head_dim()) as f64,
        kv_bytes_per_ctx: 2.0 * l * kv_dim * b,
    }
}

/// Inputs from a calibration, for the dtype and thread count of a run:
/// both the matmul peak and the bandwidth must have been measured with the
/// run's thread count, or the answer says what is missing.
pub fn roofline_inputs(
    architecture: ModelArchitecture,
    dtype: &str,
    threads: usize,
    calibration: &Calibration,
) -> Result<RooflineInputs, String> {
    let remedy = format!(
        "run `campaign calibrate --threads {threads}` (the run used {threads} compute threads)"
    );
    let peak = calibration.gflop_per_s(dtype, threads).ok_or_else(|| {
        format!("no roofline: the calibration has no {dtype} matmul rate measured with {threads} thread(s); {remedy}")
    })?;
    let bw = calibration.memory_gb_per_s(threads).ok_or_else(|| {
        format!("no roofline: the calibration has no memory bandwidth measured with {threads} thread(s); {remedy}")
    })?;
    let dtype_bytes = match dtype {
        "f32" => 4,
        _ => 2,
    };
    Ok(RooflineInputs {
        architecture,
        dtype_bytes,
        peak_gflop_per_s: peak,
        memory_gb_per_s: bw,
        threads,
        ridge_flop_per_byte: peak / bw,
        weight_bytes_per_forward: None,
        source: format!(
            "calibration of {} ({}): {dtype} matmul {peak:.1} GFLOP/s with {threads} thread(s); memory read {bw:.2} GB/s with {threads} thread(s)",
            calibration.measured_at, calibration.cpu_model
        ),
    })
}

/// One point per measured prefill or decode case.
pub fn roofline(inputs: RooflineInputs, results: &[BenchmarkResult]) -> Roofline {
    let mut c = costs(&inputs.architecture, inputs.dtype_bytes);
    if let Some(bytes) = inputs.weight_bytes_per_forward {
        c.weight_bytes = bytes as f64;
    }
    let (peak, bw) = (inputs.peak_gflop_per_s * 1e9, inputs.memory_gb_per_s * 1e9);
    let ridge = inputs.ridge_flop_per_byte;
    let mut points = Vec::new();
    for r in results.iter().filter(|r| r.status == Status::Ok) {
        let Some(place) = find_kind(&r.kind).and_then(|k| k.roofline_phase()) else {
            continue;
        };
        let (Some(case), Some(measured)) = (
            InferenceCaseParams::from_parameters(&r.parameters),
            r.metrics.get(place.tokens_per_s).map(|m| m.summary.mean),
        ) else {
            continue;
        };
        let (prompt, batch) = (case.prompt_len, case.batch_size.max(1));
        let pf = prompt as f64;
        // Decode runs at the mean context over its steps.
        let decode_ctx = pf + case.output_tokens.unwrap_or(1) as f64 / 2.0;
        let phase = place.phase;
        let (flop, bytes, tokens) = match phase {
            InferencePhase::Prefill => (
                batch as f64 * (pf * c.linear_flop + c.attn_flop_per_ctx * pf * pf / 2.0),
                c.weight_bytes + batch as f64 * c.kv_bytes_per_ctx * pf,
                batch as f64 * pf,
            ),
            InferencePhase::Decode => (
                batch as f64 * (c.linear_flop + c.attn_flop_per_ctx * decode_ctx),
                c.weight_bytes + batch as f64 * c.kv_bytes_per_ctx * decode_ctx,
                batch as f64,
            ),
        };
        let intensity = flop / bytes;
        let seconds = (flop / peak).max(bytes / bw);
        let ceiling = tokens / seconds;
        let (flop_tok, bytes_tok) = (flop / tokens, bytes / tokens);
        let compute_bound_from_batch = (phase == InferencePhase::Decode).then(|| {
            let per_seq_flop = c.linear_flop + c.attn_flop_per_ctx * decode_ctx;
            let denominator = per_seq_flop - ridge * c.kv_bytes_per_ctx * decode_ctx;
            (denominator > 0.0).then(|| ridge * c.weight_bytes / denominator)
        });
        points.push(RooflinePoint {
            benchmark: r.case_id.clone(),
            phase: phase.as_str().to_string(),
            prompt_len: prompt,
            batch_size: batch,
            flop_per_token: flop_tok,
            bytes_per_token: bytes_tok,
            arithmetic_intensity: intensity,
            bound: if intensity >= ridge {
                "compute"
            } else {
                "memory"
            }
            .to_string(),
            ceiling_tokens_per_s: ceiling,
            measured_tokens_per_s: measured,
            fraction_of_ceiling: measured / ceiling,
            mbu_pct: 100.0 * measured * bytes_tok / bw,
            mfu_pct: 100.0 * measured * flop_tok / peak,
            compute_bound_from_batch: compute_bound_from_batch.flatten(),
        });
    }
    Roofline {
        inputs,
        formulas: FORMULAS.iter().map(|f| f.to_string()).collect(),
        points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch() -> ModelArchitecture {
        serde_json::from_value(serde_json::json!({
            "vocab_size": 100, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 64, "tie_word_embeddings": false
        }))
        .unwrap()
    }

    fn calibration(threads: usize) -> Calibration {
        serde_json::from_value(serde_json::json!({
            "measured_at": "2026-11-23T00:00:00Z", "cpu_model": "test", "logical_cores": 4,
            "threads": threads, "device": "cpu", "buffer_mib": 64, "memcpy_gb_per_s": 10.0,
            "memory_read_gb_per_s_1_thread": 20.0, "memory_read_gb_per_s_all_threads": 50.0,
            "memory_read_by_threads": [
                {"threads": 1, "gb_per_s": 20.0}, {"threads": threads, "gb_per_s": 35.0},
                {"threads": 4, "gb_per_s": 50.0}
            ],
            "disk_folder": "/tmp", "disk_file_mib": 64, "disk_write_mb_per_s": null,
            "disk_read_mb_per_s": null, "matmul_size": 512,
            "matmul_gflop_per_s": [{"dtype": "f32", "threads": threads, "gflop_per_s": 100.0, "error": null}],
            "method": "", "notes": []
        }))
        .unwrap()
    }

    #[test]
    fn the_roofline_uses_figures_measured_with_the_runs_threads_only() {
        let two = roofline_inputs(arch(), "f32", 2, &calibration(2)).unwrap();
        assert_eq!(
            (two.memory_gb_per_s, two.peak_gflop_per_s, two.threads),
            (35.0, 100.0, 2)
        );
        assert!(
            two.source.contains("100.0 GFLOP/s with 2 thread(s)"),
            "{}",
            two.source
        );
        assert!(
            two.source.contains("35.00 GB/s with 2 thread(s)"),
            "{}",
            two.source
        );
        // A matmul peak measured with 2 threads says nothing of 1 or 4.
        let refused = roofline_inputs(arch(), "f32", 4, &calibration(2)).unwrap_err();
        assert!(
            refused.contains("campaign calibrate --threads 4"),
            "{refused}"
        );
        assert!(roofline_inputs(arch(), "bf16", 2, &calibration(2)).is_err());
    }

    #[test]
    fn costs_follow_the_stated_formulas() {
        let c = costs(&arch(), 4);
        // head_dim 4, kv_dim 4: per layer 2·64 + 2·32 + 3·128 = 576; ×2 + 800.
        assert_eq!(c.weight_bytes, (2.0 * 576.0 + 800.0) * 4.0);
        assert_eq!(c.linear_flop, 2.0 * 1952.0);
        assert_eq!(c.attn_flop_per_ctx, 4.0 * 2.0 * 8.0);
        assert_eq!(c.kv_bytes_per_ctx, 2.0 * 2.0 * 4.0 * 4.0);
    }
}
