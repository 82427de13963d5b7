//! `campaign` runs day-by-day performance-engineering campaigns against LLM
//! inference components that live in this crate and run in-process.
//!
//! The folders follow the flow of a run:
//! - [`campaign`]: the TOML schema, loading with positions, validation;
//! - [`runner`]: warm-up, timed iterations, timeouts, Ctrl-C, progress;
//! - [`stats`]: HDR histograms, percentiles, confidence intervals, outliers;
//! - [`components`]: the systems under test (they never time themselves);
//! - [`benchmarks`]: each benchmark kind binds a component to metrics;
//! - [`analysis`]: judgements over results (targets);
//! - [`report`]: writers that format results and compute nothing;
//! - [`commands`]: what each subcommand does.
//!
//! Every number in a report is measured in the run that wrote it.

pub mod analysis;
pub mod benchmarks;
pub mod campaign;
pub mod commands;
pub mod components;
pub mod machine;
pub mod panics;
pub mod profile;
pub mod report;
pub mod runner;
pub mod stats;
