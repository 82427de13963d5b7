//! This machine's measured limits, as `campaign calibrate` stores them and
//! the roofline reads them. Measured by `runner::calibrate`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub measured_at: DateTime<Utc>,
    pub cpu_model: String,
    pub logical_cores: usize,
    /// Compute threads candle used for the matmuls.
    pub threads: usize,
    pub device: String,
    pub buffer_mib: usize,
    pub memcpy_gb_per_s: f64,
    pub memory_read_gb_per_s_1_thread: f64,
    pub memory_read_gb_per_s_all_threads: f64,
    /// Summing reads with 1 thread, the calibration's thread count and
    /// every core: each figure with the threads it was measured with.
    #[serde(default)]
    pub memory_read_by_threads: Vec<ThreadRate>,
    pub disk_folder: String,
    pub disk_file_mib: usize,
    /// Sequential 1 MiB writes then fdatasync.
    pub disk_write_mb_per_s: Option<f64>,
    /// Sequential 1 MiB reads after the file's pages were dropped.
    pub disk_read_mb_per_s: Option<f64>,
    pub matmul_size: usize,
    /// Best of several n×n matmuls: 2n³ FLOP ÷ time.
    pub matmul_gflop_per_s: Vec<MatmulRate>,
    pub method: String,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatmulRate {
    pub dtype: String,
    /// Compute threads candle used (0 in calibrations written before the
    /// field existed: the calibration's own `threads`).
    #[serde(default)]
    pub threads: usize,
    pub gflop_per_s: Option<f64>,
    pub error: Option<String>,
}

/// A bandwidth measured with a given number of threads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThreadRate {
    pub threads: usize,
    pub gb_per_s: f64,
}

impl Calibration {
    /// Peak matmul rate for a dtype name (`f32`, `f16`, `bf16`), measured
    /// with exactly `threads` compute threads.
    pub fn gflop_per_s(&self, dtype: &str, threads: usize) -> Option<f64> {
        self.matmul_gflop_per_s
            .iter()
            .filter(|m| m.dtype == dtype)
            .find(|m| {
                let measured_with = if m.threads == 0 {
                    self.threads
                } else {
                    m.threads
                };
                measured_with == threads
            })
            .and_then(|m| m.gflop_per_s)
    }

    /// Memory read bandwidth measured with exactly `threads` threads.
    pub fn memory_gb_per_s(&self, threads: usize) -> Option<f64> {
        self.memory_read_by_threads
            .iter()
            .find(|r| r.threads == threads)
            .map(|r| r.gb_per_s)
            .or_else(|| (threads == 1).then_some(self.memory_read_gb_per_s_1_thread))
            .or_else(|| {
                (threads == self.logical_cores).then_some(self.memory_read_gb_per_s_all_threads)
            })
    }
}
