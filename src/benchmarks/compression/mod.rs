//! The compression kinds: ratio and throughput of each codec on the same
//! inputs and cases.

mod compression_ratio;
mod compression_throughput;
mod shared;

pub(super) use compression_ratio::CompressionRatio;
pub(super) use compression_throughput::CompressionThroughput;
