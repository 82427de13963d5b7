//! This machine's limits, measured: memory copy and read bandwidth, the
//! output folder's sequential disk speed, and matmul FLOP/s through candle.
//! The roofline divides measured throughput by these.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use chrono::Utc;
use rayon::prelude::*;

use crate::components::blockio::drop_page_cache;
use crate::model::{Calibration, MatmulRate, ThreadRate};

const REPEATS: usize = 3;

fn best_of<F: FnMut() -> f64>(mut f: F) -> f64 {
    (0..REPEATS).map(|_| f()).fold(f64::MIN, f64::max)
}

/// Measures everything; `quick` uses smaller buffers (64 MiB, 512²).
/// `threads` must be the compute threads candle was configured with
/// ([`super::configure_threads`]): the matmuls run with them.
pub fn calibrate(
    disk_folder: &Path,
    device: &Device,
    device_name: &str,
    threads: usize,
    cpu_model: String,
    quick: bool,
) -> Calibration {
    let buffer_mib = if quick { 64 } else { 256 };
    let bytes = buffer_mib << 20;
    let mut notes = Vec::new();
    // Non-zero contents, so every page is really backed.
    let source: Vec<u64> = (0..bytes / 8).map(|i| i as u64 ^ 0x5A5A).collect();
    let mut copy = vec![0u64; source.len()];
    let gb = bytes as f64 / 1e9;

    let memcpy = best_of(|| {
        let t = Instant::now();
        copy.copy_from_slice(&source);
        std::hint::black_box(&copy);
        gb / t.elapsed().as_secs_f64()
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut counts = vec![1, threads.max(1), cores];
    counts.sort_unstable();
    counts.dedup();
    let mut memory_read_by_threads = Vec::new();
    for n in counts {
        let rate = if n == 1 {
            Some(best_of(|| {
                let t = Instant::now();
                let sum = source.iter().fold(0u64, |a, b| a.wrapping_add(*b));
                std::hint::black_box(sum);
                gb / t.elapsed().as_secs_f64()
            }))
        } else {
            match rayon::ThreadPoolBuilder::new().num_threads(n).build() {
                Ok(pool) => Some(best_of(|| {
                    let t = Instant::now();
                    let sum: u64 = pool.install(|| {
                        source
                            .par_chunks(1 << 16)
                            .map(|c| c.iter().fold(0u64, |a, b| a.wrapping_add(*b)))
                            .sum()
                    });
                    std::hint::black_box(sum);
                    gb / t.elapsed().as_secs_f64()
                })),
                Err(e) => {
                    notes.push(format!("memory read with {n} threads not measured: {e}"));
                    None
                }
            }
        };
        if let Some(gb_per_s) = rate {
            memory_read_by_threads.push(ThreadRate {
                threads: n,
                gb_per_s,
            });
        }
    }
    let at = |n: usize| {
        memory_read_by_threads
            .iter()
            .find(|r| r.threads == n)
            .map_or(0.0, |r| r.gb_per_s)
    };
    let (read_1, read_all) = (at(1), at(cores));
    drop(copy);

    let (disk_write, disk_read) = match disk_speeds(disk_folder, &source) {
        Ok((w, r)) => (Some(w), Some(r)),
        Err(e) => {
            notes.push(format!(
                "disk not measured in {}: {e}",
                disk_folder.display()
            ));
            (None, None)
        }
    };
    drop(source);

    let n = if quick { 512 } else { 1024 };
    let matmul_gflop_per_s = [DType::F32, DType::F16, DType::BF16]
        .into_iter()
        .map(|dtype| match matmul_rate(device, dtype, n) {
            Ok(rate) => MatmulRate {
                dtype: dtype.as_str().to_string(),
                threads,
                gflop_per_s: Some(rate),
                error: None,
            },
            Err(e) => MatmulRate {
                dtype: dtype.as_str().to_string(),
                threads,
                gflop_per_s: None,
                error: Some(e.to_string()),
            },
        })
        .collect();

    Calibration {
        measured_at: Utc::now(),
        cpu_model,
        logical_cores: cores,
        threads,
        device: device_name.to_string(),
        buffer_mib,
        memcpy_gb_per_s: memcpy,
        memory_read_gb_per_s_1_thread: read_1,
        memory_read_gb_per_s_all_threads: read_all,
        memory_read_by_threads,
        disk_folder: disk_folder.display().to_string(),
        disk_file_mib: buffer_mib,
        disk_write_mb_per_s: disk_write,
        disk_read_mb_per_s: disk_read,
        matmul_size: n,
        matmul_gflop_per_s,
        method: format!(
            "best of {REPEATS}: memcpy and summing reads of a {buffer_mib} MiB buffer; disk: {buffer_mib} MiB in 1 MiB sequential writes + fdatasync, then reads after dropping the file's pages; matmul: {n}×{n} on the device, 2n³ FLOP ÷ time"
        ),
        notes,
    }
}

fn disk_speeds(folder: &Path, data: &[u64]) -> std::io::Result<(f64, f64)> {
    let bytes: &[u8] = bytemuck_bytes(data);
    let mut file = tempfile::NamedTempFile::new_in(folder)?;
    let t = Instant::now();
    for chunk in bytes.chunks(1 << 20) {
        file.write_all(chunk)?;
    }
    file.as_file().sync_data()?;
    let write = bytes.len() as f64 / 1e6 / t.elapsed().as_secs_f64();
    drop_page_cache(file.as_file())?;
    let mut reader = std::fs::File::open(file.path())?;
    let mut buf = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut read_bytes = 0usize;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        read_bytes += n;
    }
    let read = read_bytes as f64 / 1e6 / t.elapsed().as_secs_f64();
    Ok((write, read))
}

/// The bytes of a u64 slice. Written out because it is the only such cast
/// here; a dependency for one cast is not worth it.
fn bytemuck_bytes(data: &[u64]) -> &[u8] {
    // SAFETY: u64 has no padding and any byte pattern is a valid u8; the
    // length is the slice's size in bytes and the lifetime is the input's.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data)) }
}

fn matmul_rate(device: &Device, dtype: DType, n: usize) -> candle_core::Result<f64> {
    let a = Tensor::randn(0f32, 1.0, (n, n), device)?.to_dtype(dtype)?;
    let b = Tensor::randn(0f32, 1.0, (n, n), device)?.to_dtype(dtype)?;
    // One untimed product: first-use allocations and kernel selection.
    a.matmul(&b)?;
    let flop = 2.0 * (n as f64).powi(3);
    let mut best = 0.0f64;
    for _ in 0..REPEATS {
        let t = Instant::now();
        let c = a.matmul(&b)?;
        device.synchronize()?;
        std::hint::black_box(c);
        best = best.max(flop / 1e9 / t.elapsed().as_secs_f64());
    }
    Ok(best)
}
