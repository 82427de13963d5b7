//! `disk_block_sweep`: the file system under the cold tier, measured raw.
//! Sequential and random reads and writes at several block sizes, through
//! the page cache as found (`buffered`), after dropping it
//! (`buffered_cold`), and bypassing it (`direct`, O_DIRECT), so that
//! page-cache effects are visible instead of hidden in one number.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::benchmarks::{
    BenchContext, BenchmarkCase, BenchmarkError, Headline, Kind, MemoryNeed, MetricDef, Models,
    Observations, ParamProblem, PreparedBenchmark, SweepAxis, scratch_folder,
};
use crate::campaign::bounds::{Kib, Mib};
use crate::components::blockio::{
    AlignedBuf, IO_ALIGN, IoMode, direct_io_supported, drop_page_cache, open_block_file,
};

const MIB: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Pattern {
    SeqRead,
    SeqWrite,
    RandRead,
    RandWrite,
}

impl Pattern {
    fn is_write(self) -> bool {
        matches!(self, Self::SeqWrite | Self::RandWrite)
    }

    fn name(self) -> &'static str {
        match self {
            Self::SeqRead => "seq_read",
            Self::SeqWrite => "seq_write",
            Self::RandRead => "rand_read",
            Self::RandWrite => "rand_write",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SweepMode {
    /// Through the page cache, in whatever state the run left it (warm).
    Buffered,
    /// Through the page cache, after asking the kernel to drop the file's pages.
    BufferedCold,
    /// O_DIRECT: no page cache.
    Direct,
}

impl SweepMode {
    fn name(self) -> &'static str {
        match self {
            Self::Buffered => "buffered",
            Self::BufferedCold => "buffered_cold",
            Self::Direct => "direct",
        }
    }
}

fn default_file_mib() -> Mib {
    Mib::new_const(256)
}

fn default_mib_per_iteration() -> Mib {
    Mib::new_const(32)
}

fn default_block_sizes() -> Vec<Kib> {
    [4, 16, 64, 256, 1024].map(Kib::new_const).to_vec()
}

fn default_patterns() -> Vec<Pattern> {
    vec![
        Pattern::SeqRead,
        Pattern::SeqWrite,
        Pattern::RandRead,
        Pattern::RandWrite,
    ]
}

fn default_modes() -> Vec<SweepMode> {
    vec![
        SweepMode::Buffered,
        SweepMode::BufferedCold,
        SweepMode::Direct,
    ]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepParams {
    #[serde(default = "default_file_mib")]
    file_mib: Mib,
    #[serde(default = "default_block_sizes")]
    block_sizes_kib: Vec<Kib>,
    #[serde(default = "default_patterns")]
    patterns: Vec<Pattern>,
    #[serde(default = "default_modes")]
    modes: Vec<SweepMode>,
    /// Bytes moved per timed iteration (at least 16 operations).
    #[serde(default = "default_mib_per_iteration")]
    mib_per_iteration: Mib,
    /// Folder of the test file; default: the run's scratch folder.
    dir: Option<PathBuf>,
}

const OP_LATENCY_MS: MetricDef = MetricDef::duration_ms(
    "op_latency_ms",
    "one read or write of one block (pread/pwrite)",
);
const DISK_MB_PER_S: MetricDef = MetricDef::quantity(
    "mb_per_s",
    "MB/s",
    true,
    "bytes ÷ iteration time; writes include a final fdatasync",
);
const DISK_OPS_PER_S: MetricDef =
    MetricDef::quantity("ops_per_s", "ops/s", true, "operations ÷ iteration time");

pub struct DiskBlockSweep;

impl Kind for DiskBlockSweep {
    type Params = SweepParams;

    fn name(&self) -> &'static str {
        "disk_block_sweep"
    }

    fn description(&self) -> &'static str {
        "sequential and random reads and writes per block size, buffered (warm and dropped page cache) and direct"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[OP_LATENCY_MS, DISK_MB_PER_S, DISK_OPS_PER_S]
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(OP_LATENCY_MS.name),
            throughput: Some(DISK_MB_PER_S.name),
        }
    }

    fn sweep_axis(&self) -> Option<SweepAxis> {
        Some(SweepAxis {
            parameter: "block_bytes",
            title: "block size (bytes)",
            series_by: &["mode", "pattern"],
        })
    }

    fn check(&self, p: &SweepParams, _models: &Models) -> Result<(), ParamProblem> {
        for (i, kib) in p.block_sizes_kib.iter().enumerate() {
            if (kib.usize() * 1024) % IO_ALIGN != 0 {
                return Err(ParamProblem::at(
                    &format!("block_sizes_kib[{i}]"),
                    format!(
                        "found {kib}; allowed: a multiple of 4 KiB (direct I/O needs aligned blocks)"
                    ),
                    "e.g. block_sizes_kib = [4, 16, 64, 256, 1024]",
                ));
            }
        }
        let Some(largest) = p.block_sizes_kib.iter().map(|k| k.get()).max() else {
            return Err(ParamProblem::at(
                "block_sizes_kib",
                "found an empty list; allowed: at least one block size",
                "e.g. block_sizes_kib = [4, 16, 64, 256, 1024]",
            ));
        };
        if p.file_mib.get() * 1024 < largest {
            return Err(ParamProblem::at(
                "file_mib",
                format!(
                    "found {}; allowed: at least one block of the largest size ({largest} KiB)",
                    p.file_mib
                ),
                "raise file_mib",
            ));
        }
        for (field, empty) in [
            ("patterns", p.patterns.is_empty()),
            ("modes", p.modes.is_empty()),
        ] {
            if empty {
                return Err(ParamProblem::at(
                    field,
                    "found an empty list; allowed: at least one entry",
                    "omit it for the full sweep",
                ));
            }
        }
        Ok(())
    }

    fn planned_cases(&self, p: &SweepParams) -> usize {
        p.modes.len() * p.patterns.len() * p.block_sizes_kib.len()
    }

    /// One block buffer per case and a 1 MiB chunk while filling; the test
    /// file itself (file_mib) is on disk.
    fn memory(&self, p: &SweepParams, _models: &Models) -> Result<MemoryNeed, ParamProblem> {
        let blocks: u64 = p.block_sizes_kib.iter().map(|k| k.get() * 1024).sum();
        let cases = (p.modes.len() * p.patterns.len()) as u64;
        Ok(MemoryNeed::new(
            blocks * cases + MIB as u64,
            "one block buffer per case, and a 1 MiB chunk",
        ))
    }

    fn prepare(
        &self,
        p: SweepParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let dir = p.dir.clone().unwrap_or_else(|| ctx.scratch_dir.clone());
        let folder = scratch_folder(&dir, "disk_block_sweep-")?;
        let path = folder.path().join("sweep.bin");
        let file_bytes = p.file_mib.usize() * MIB;
        fill_test_file(&path, file_bytes, ctx.settings.seed)?;

        let mut warnings = Vec::new();
        let direct = direct_io_supported(&dir);
        let mut modes = p.modes.clone();
        if let Err(why) = &direct
            && modes.contains(&SweepMode::Direct)
        {
            warnings.push(format!(
                "direct I/O is not supported here ({why}): the direct cases were not run"
            ));
            modes.retain(|m| *m != SweepMode::Direct);
        }

        let mut cases: Vec<Box<dyn BenchmarkCase>> = Vec::new();
        for &mode in &modes {
            for &pattern in &p.patterns {
                for kib in &p.block_sizes_kib {
                    let block = kib.usize() * 1024;
                    let io = if mode == SweepMode::Direct {
                        IoMode::Direct
                    } else {
                        IoMode::Buffered
                    };
                    let file = open_block_file(&path, io, false).map_err(|e| {
                        BenchmarkError::Component(format!("cannot open {}: {e}", path.display()))
                    })?;
                    cases.push(Box::new(SweepCase {
                        file,
                        mode,
                        pattern,
                        block,
                        file_blocks: (file_bytes / block) as u64,
                        ops: (p.mib_per_iteration.usize() * MIB / block).max(16),
                        buf: AlignedBuf::zeroed(block),
                        rng: ChaCha8Rng::seed_from_u64(ctx.settings.seed ^ block as u64),
                        cursor: 0,
                        _folder: Arc::clone(&folder),
                    }));
                }
            }
        }
        Ok(PreparedBenchmark::new(cases)
            .with_context(json!({
                "file": path.display().to_string(),
                "file_mib": p.file_mib,
                "direct_io": match &direct { Ok(()) => "supported".to_string(), Err(why) => format!("unsupported: {why}") },
                "modes": {
                    "buffered": "through the page cache as the run left it (the file was just written: warm)",
                    "buffered_cold": "through the page cache after posix_fadvise(DONTNEED) on the file before each iteration",
                    "direct": "O_DIRECT, no page cache",
                },
            }))
            .with_warnings(warnings))
    }
}

fn fill_test_file(path: &std::path::Path, bytes: usize, seed: u64) -> Result<(), BenchmarkError> {
    let io = |e: std::io::Error| {
        BenchmarkError::Component(format!(
            "cannot write the test file {}: {e}",
            path.display()
        ))
    };
    let file = File::create(path).map_err(io)?;
    let mut chunk = vec![0u8; MIB];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in 0..bytes.div_ceil(MIB) {
        rng.fill_bytes(&mut chunk);
        let len = (bytes - i * MIB).min(MIB);
        file.write_all_at(&chunk[..len], (i * MIB) as u64)
            .map_err(io)?;
    }
    file.sync_all().map_err(io)
}

struct SweepCase {
    file: File,
    mode: SweepMode,
    pattern: Pattern,
    block: usize,
    file_blocks: u64,
    ops: usize,
    buf: AlignedBuf,
    rng: ChaCha8Rng,
    cursor: u64,
    _folder: Arc<tempfile::TempDir>,
}

impl BenchmarkCase for SweepCase {
    fn label(&self) -> String {
        format!(
            "{}/{}/{}k",
            self.mode.name(),
            self.pattern.name(),
            self.block / 1024
        )
    }

    fn parameters(&self) -> serde_json::Value {
        json!({
            "mode": self.mode,
            "pattern": self.pattern,
            "block_bytes": self.block,
            "ops_per_iteration": self.ops,
        })
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        let io = |e: std::io::Error| BenchmarkError::Component(format!("disk I/O failed: {e}"));
        if self.mode == SweepMode::BufferedCold {
            drop_page_cache(&self.file).map_err(io)?;
        }
        let started = Instant::now();
        for _ in 0..self.ops {
            let index = match self.pattern {
                Pattern::SeqRead | Pattern::SeqWrite => {
                    self.cursor = (self.cursor + 1) % self.file_blocks;
                    self.cursor
                }
                Pattern::RandRead | Pattern::RandWrite => {
                    self.rng.random_range(0..self.file_blocks)
                }
            };
            let offset = index * self.block as u64;
            let op = Instant::now();
            if self.pattern.is_write() {
                self.file.write_all_at(&self.buf, offset).map_err(io)?;
            } else {
                self.file.read_exact_at(&mut self.buf, offset).map_err(io)?;
            }
            obs.duration(&OP_LATENCY_MS, op.elapsed());
        }
        if self.pattern.is_write() {
            self.file.sync_data().map_err(io)?;
        }
        let elapsed: Duration = started.elapsed();
        obs.value(
            &DISK_MB_PER_S,
            (self.ops * self.block) as f64 / 1e6 / elapsed.as_secs_f64(),
        );
        obs.value(&DISK_OPS_PER_S, self.ops as f64 / elapsed.as_secs_f64());
        Ok(())
    }
}
