//! `compression_ratio`: how small each codec makes each input, every block
//! round-tripped and compared.

use super::shared::{
    COMPRESSED_BYTES, CompressionParams, RATIO, SPACE_SAVING_PCT, case_count, check_params, memory,
    prepare_cases,
};
use crate::benchmarks::{
    BenchContext, BenchmarkError, Headline, Kind, MemoryNeed, MetricDef, Models, ParamProblem,
    PreparedBenchmark,
};

pub struct CompressionRatio;

impl Kind for CompressionRatio {
    type Params = CompressionParams;

    fn name(&self) -> &'static str {
        "compression_ratio"
    }

    fn description(&self) -> &'static str {
        "compression ratio per input × codec, every block round-tripped and compared"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[RATIO, COMPRESSED_BYTES, SPACE_SAVING_PCT]
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: None,
            throughput: Some(RATIO.name),
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
        prepare_cases(&p, ctx, false)
    }
}
