//! A benchmark's kind with its params, parsed and typed once while the
//! campaign is validated: what `campaign list`, the planner and the runner
//! read instead of the params table.

use std::sync::Arc;

use super::contract::{
    BenchContext, BenchmarkError, BenchmarkKind, Kind, MetricCatalog, PreparedBenchmark,
    ServedOutput,
};
use super::observations::MetricDef;
use super::params;
use crate::campaign::{Benchmark, Configured, KindRules, Models, ParamProblem, ParamsCheck};
use crate::machine::MemoryNeed;

/// A kind and its parsed parameters. Cheap to clone; built by
/// [`ConfiguredBenchmark::new`] (validation does it through
/// [`crate::campaign::KindRules::check_params`]).
#[derive(Clone)]
pub struct ConfiguredBenchmark(Arc<dyn Configuration>);

impl std::fmt::Debug for ConfiguredBenchmark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConfiguredBenchmark({})", self.kind().name())
    }
}

impl ConfiguredBenchmark {
    /// `kind` with `params`, already parsed.
    pub fn new<K: Kind>(kind: &'static K, params: K::Params) -> Self {
        Self(Arc::new(Typed { kind, params }))
    }

    /// What validation configured for `benchmark`.
    ///
    /// # Panics
    ///
    /// When the campaign was validated against a catalog of kinds other
    /// than this crate's (whose kinds configure a `ConfiguredBenchmark`):
    /// a programming error, never a problem of the campaign file.
    pub fn of(benchmark: &Benchmark) -> &Self {
        match benchmark.configured.get::<Self>() {
            Some(configured) => configured,
            None => panic!(
                "benchmark {}: its params were configured by a catalog of kinds other than the registry's",
                benchmark.name
            ),
        }
    }

    pub fn kind(&self) -> &'static dyn BenchmarkKind {
        self.0.kind()
    }

    /// [`Kind::check`], then that the params plan a case, then
    /// [`Kind::memory`].
    pub fn check(&self, models: &Models) -> Result<MemoryNeed, ParamProblem> {
        self.0.check(models)
    }

    /// [`Kind::planned_cases`].
    pub fn planned_cases(&self) -> usize {
        self.0.planned_cases()
    }

    /// [`Kind::planned_labels`].
    pub fn planned_labels(&self, threads: usize) -> Vec<String> {
        self.0.planned_labels(threads)
    }

    /// [`Kind::case_threads`].
    pub fn case_threads(&self) -> Vec<usize> {
        self.0.case_threads()
    }

    /// Every metric this benchmark records and its headline: its kind's,
    /// plus those its params map.
    pub fn catalog(&self) -> MetricCatalog {
        self.0.catalog()
    }

    /// [`Kind::prepare`], on a copy of the params.
    pub fn prepare(&self, ctx: &BenchContext) -> Result<PreparedBenchmark, BenchmarkError> {
        self.0.prepare(ctx)
    }

    /// [`Kind::served_outputs`].
    pub fn served_outputs(
        &self,
        ctx: &BenchContext,
    ) -> Result<Option<Vec<ServedOutput>>, BenchmarkError> {
        self.0.served_outputs(ctx)
    }
}

/// [`ConfiguredBenchmark`]'s operations, with the kind's type erased.
trait Configuration: Send + Sync {
    fn kind(&self) -> &'static dyn BenchmarkKind;
    fn check(&self, models: &Models) -> Result<MemoryNeed, ParamProblem>;
    fn planned_cases(&self) -> usize;
    fn planned_labels(&self, threads: usize) -> Vec<String>;
    fn case_threads(&self) -> Vec<usize>;
    fn catalog(&self) -> MetricCatalog;
    fn prepare(&self, ctx: &BenchContext) -> Result<PreparedBenchmark, BenchmarkError>;
    fn served_outputs(
        &self,
        ctx: &BenchContext,
    ) -> Result<Option<Vec<ServedOutput>>, BenchmarkError>;
}

struct Typed<K: Kind> {
    kind: &'static K,
    params: K::Params,
}

impl<K: Kind> Configuration for Typed<K> {
    fn kind(&self) -> &'static dyn BenchmarkKind {
        self.kind
    }

    fn check(&self, models: &Models) -> Result<MemoryNeed, ParamProblem> {
        Kind::check(self.kind, &self.params, models)?;
        // Empty sweep lists would run a benchmark that measures nothing and
        // reports nothing: refuse it like any value out of range.
        if Kind::planned_cases(self.kind, &self.params) == 0 {
            return Err(ParamProblem {
                key: None,
                message: "these params plan no case to measure".into(),
                help: Some("give at least one value in each list that this kind sweeps".into()),
            });
        }
        Kind::memory(self.kind, &self.params, models)
    }

    fn planned_cases(&self) -> usize {
        Kind::planned_cases(self.kind, &self.params)
    }

    fn planned_labels(&self, threads: usize) -> Vec<String> {
        Kind::planned_labels(self.kind, &self.params, threads)
    }

    fn case_threads(&self) -> Vec<usize> {
        Kind::case_threads(self.kind, &self.params)
    }

    fn catalog(&self) -> MetricCatalog {
        let mut metrics: Vec<MetricDef> = Kind::metrics(self.kind)
            .iter()
            .chain(Kind::setup_metrics(self.kind))
            .copied()
            .collect();
        metrics.extend(Kind::mapped_metrics(self.kind, &self.params));
        let headline = Kind::mapped_headline(self.kind, &self.params)
            .unwrap_or_else(|| Kind::headline(self.kind));
        MetricCatalog::new(metrics, headline)
    }

    fn prepare(&self, ctx: &BenchContext) -> Result<PreparedBenchmark, BenchmarkError> {
        Kind::prepare(self.kind, self.params.clone(), ctx)
    }

    fn served_outputs(
        &self,
        ctx: &BenchContext,
    ) -> Result<Option<Vec<ServedOutput>>, BenchmarkError> {
        Kind::served_outputs(self.kind, &self.params, ctx)
    }
}

impl<K: Kind> KindRules for K {
    fn check_params(&'static self, params: &toml::Table, models: &Models) -> ParamsCheck {
        // Parsed once: the typed checks, the case count, the memory
        // estimate, the metrics and later the run all read these.
        let configured = match params::parse::<K::Params>(params) {
            Ok(parsed) => ConfiguredBenchmark::new(self, parsed),
            Err(problem) => {
                return ParamsCheck {
                    checked: Err(problem),
                    target_metrics: BenchmarkKind::catalog(self).names().collect(),
                };
            }
        };
        ParamsCheck {
            target_metrics: configured.catalog().names().collect(),
            checked: configured
                .check(models)
                .map(|need| (Configured::new(configured), need)),
        }
    }
}
