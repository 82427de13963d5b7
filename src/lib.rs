//! `campaign` runs day-by-day performance-engineering campaigns against LLM
//! inference components that live in this crate and run in-process.
//!
//! Modules depend downwards only (`tests/library/architecture.rs` checks it):
//! - [`commands`]: what each subcommand does: adapts its arguments, calls
//!   the layers below and prints;
//! - [`workflows`]: what `analyze`, `calibrate`, `roadmap`, `experiment`
//!   and `bisect` do, shared by their commands and a night's day steps,
//!   with the commands' error and exit statuses;
//! - [`report`]: writers that format reports and analyses, computing nothing;
//! - [`analysis`]: what runs after measuring: regressions, bottlenecks,
//!   roofline, scaling, remedies, history;
//! - [`runner`]: warm-up, timed iterations, timeouts, Ctrl-C, progress;
//! - [`benchmarks`]: each benchmark kind binds a component to metrics;
//! - [`campaign`]: the TOML schema, loading with positions, validation,
//!   targets;
//! - [`components`]: the systems under test (they never time themselves);
//! - at the bottom, used by all: [`model`] (the report's plain data),
//!   [`output`] (where files go), [`machine`] (memory, RSS, environment),
//!   [`stats`], [`profile`], [`panics`].
//!
//! Every number in a report is measured in the run that wrote it.

pub mod analysis;
pub mod benchmarks;
pub mod campaign;
pub mod commands;
pub mod components;
pub mod machine;
pub mod model;
pub mod output;
pub mod panics;
pub mod profile;
pub mod report;
pub mod runner;
pub mod stats;
pub mod store;
pub mod workflows;
