//! What validating a campaign needs to know of benchmark kinds. The
//! registry in `benchmarks` implements [`KindCatalog`] and is passed to
//! [`super::load_campaign`]: the kinds read this module's types (bounded
//! numbers, models, targets), so this module must not name them.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::ResolvedModel;
use crate::machine::MemoryNeed;

/// The models a campaign defines, by name.
pub type Models = BTreeMap<String, ResolvedModel>;

/// A problem in a benchmark's `params` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamProblem {
    /// The offending key, when there is one, so the campaign loader can
    /// point at its line.
    pub key: Option<String>,
    pub message: String,
    pub help: Option<String>,
}

impl ParamProblem {
    pub fn at(key: &str, message: impl Into<String>, help: impl Into<String>) -> Self {
        Self {
            key: Some(key.to_string()),
            message: message.into(),
            help: Some(help.into()),
        }
    }
}

/// A benchmark's params as its kind parsed them: opaque here, since this
/// module must not name the kinds; `benchmarks::ConfiguredBenchmark` is
/// what it holds, and reads it back. Cheap to clone.
#[derive(Clone)]
pub struct Configured(Arc<dyn Any + Send + Sync>);

impl Configured {
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Self(Arc::new(value))
    }

    /// The value, if it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl std::fmt::Debug for Configured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Configured(..)")
    }
}

/// What a kind makes of a benchmark's params table.
#[derive(Debug)]
pub struct ParamsCheck {
    /// The params parsed and checked against the campaign's models, with
    /// the memory a run of them needs; or the first problem found.
    pub checked: Result<(Configured, MemoryNeed), ParamProblem>,
    /// The metrics a target may name: timed and setup metrics, and those
    /// the params map (when they parse, even if a later check fails).
    pub target_metrics: Vec<&'static str>,
}

/// One benchmark kind, as validation sees it.
pub trait KindRules: Sync {
    /// Parses a benchmark's params into the kind's typed parameters (the
    /// one time they are read from TOML) and checks them.
    fn check_params(&'static self, params: &toml::Table, models: &Models) -> ParamsCheck;
}

/// Every benchmark kind a campaign may name.
pub trait KindCatalog {
    /// The kind called `name`, if any.
    fn find(&self, name: &str) -> Option<&'static dyn KindRules>;
    /// Every kind's name, in registry order.
    fn names(&self) -> Vec<&'static str>;
}
