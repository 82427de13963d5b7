//! Systems under test. Components expose operations; they never time
//! themselves — measuring is the job of `crate::benchmarks`.

pub mod agents;
pub mod blockio;
pub mod bounded;
pub mod compression;
pub mod endpoint;
pub mod external;
pub mod inference;
pub mod kv_offload;
pub mod kvcache;
pub mod server;
pub mod storage;
