//! The library in-process, one module per concern: components on real
//! files, codecs and forward passes; the verdicts against planted truth
//! (`gate`); every exporter's bytes (`exporters`, snapshots); and the
//! crate's own structure and documentation (`architecture`). The tests
//! that drive the `campaign` binary are the other test binary,
//! `tests/cli/`. Two binaries, not one per file: each links the whole
//! crate, which costs a link and about 100 MB of disk per binary.
//!
//! Nothing here depends on timing, so every test runs beside the others;
//! `kvcache_alloc` counts the allocations of its own thread only.

mod agents;
mod architecture;
mod compression;
mod exporters;
mod gate;
mod gguf;
mod inference;
mod kvcache;
mod kvcache_alloc;
mod outside_data;
mod small_fs;
mod storage;
