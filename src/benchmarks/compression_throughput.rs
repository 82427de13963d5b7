//! `compression_throughput`: compress and decompress MB/s per input ×
//! codec, against memcpy of the same bytes in the same iteration.

use super::compression::{
    CompressionParams, RATIO_METRICS, case_count, check_params, memory, prepare_cases,
};
use super::{
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
        const METRICS: [MetricDef; 9] = [
            RATIO_METRICS[0],
            RATIO_METRICS[1],
            RATIO_METRICS[2],
            MetricDef::quantity(
                "compress_mb_per_s",
                "MB/s",
                true,
                "input bytes ÷ time to compress every block",
            ),
            MetricDef::quantity(
                "decompress_mb_per_s",
                "MB/s",
                true,
                "input bytes ÷ time to decompress every block",
            ),
            MetricDef::quantity(
                "memcpy_mb_per_s",
                "MB/s",
                true,
                "reference: memcpy of the same bytes in the same block-sized chunks, same iteration",
            ),
            MetricDef::quantity(
                "compress_fraction_of_memcpy",
                "ratio",
                true,
                "compress MB/s ÷ memcpy MB/s",
            ),
            MetricDef::quantity(
                "decompress_fraction_of_memcpy",
                "ratio",
                true,
                "decompress MB/s ÷ memcpy MB/s",
            ),
            MetricDef::duration_ms(
                "compress_block_ms",
                "mean time to compress one block in the iteration",
            ),
        ];
        &METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some("compress_block_ms"),
            throughput: Some("compress_mb_per_s"),
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
