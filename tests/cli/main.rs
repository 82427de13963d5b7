//! Drives the real `campaign` binary on real (tiny) models and real files,
//! one file per concern, sharing [`fixture`].
//!
//! Tests whose outcome depends on timing (verdicts on planted slowdowns,
//! profile shares against timers, timeouts, Ctrl-C) are `#[serial]`: they
//! run alone, while every other test is `#[parallel]` and runs beside the
//! others. On two cores a model test beside a planted slowdown makes the
//! night legitimately too noisy to judge.

mod bisect;
mod dashboard;
mod endpoint;
mod errors;
mod experiments;
mod fixture;
mod fleet;
mod hostile;
mod kinds;
mod models;
mod peer;
mod postgres;
mod profiles;
mod reports;
mod runs;
mod serve;
mod serve_limits;
mod store;
mod verdicts;
