//! `compression_throughput`: compress and decompress MB/s per input ×
//! codec, against memcpy of the same bytes in the same iteration.

use super::shared::{
    COMPRESS_BLOCK_MS, COMPRESS_FRACTION_OF_MEMCPY, COMPRESS_MB_PER_S, COMPRESSED_BYTES,
    CompressionParams, DECOMPRESS_FRACTION_OF_MEMCPY, DECOMPRESS_MB_PER_S, MEMCPY_MB_PER_S, RATIO,
    SPACE_SAVING_PCT, case_count, check_params, memory, prepare_cases,
};
use crate::benchmarks::{
    BenchContext, BenchmarkError, Headline, Kind, MemoryNeed, MetricDef, Models, ParamProblem,
    PreparedBenchmark,
};

pub struct CompressionThroughput;

impl Kind for CompressionThroughput {
    type Params = CompressionParams;

    fn name(&self) -> &'static str {
        "compression_throughput"
    }

    fn description(&self) -> &'static str {
        "compress and decompress MB/s per input × codec, against memcpy of the same bytes in the same iteration"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[
            RATIO,
            COMPRESSED_BYTES,
            SPACE_SAVING_PCT,
            COMPRESS_MB_PER_S,
            DECOMPRESS_MB_PER_S,
            MEMCPY_MB_PER_S,
            COMPRESS_FRACTION_OF_MEMCPY,
            DECOMPRESS_FRACTION_OF_MEMCPY,
            COMPRESS_BLOCK_MS,
        ]
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(COMPRESS_BLOCK_MS.name),
            throughput: Some(COMPRESS_MB_PER_S.name),
        }
    }

    fn check(&self, p: &CompressionParams, models: &Models) -> Result<(), ParamProblem> {
        check_params(p, models)
    }

    fn planned_cases(&self, p: &CompressionParams) -> usize {
        case_count(p)
    }

    fn memory(&self, p: &CompressionParams, _models: &Models) -> Result<MemoryNeed, ParamProblem> {
        memory(p)
    }

    fn prepare(
        &self,
        p: CompressionParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        prepare_cases(&p, ctx, true)
    }
}
