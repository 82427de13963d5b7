//! What validating a campaign needs to know of benchmark kinds. The
//! registry in `benchmarks` implements [`KindCatalog`] and is passed to
//! [`super::load_campaign`]: the kinds read this module's types (bounded
//! numbers, models, targets), so this module must not name them.

use std::collections::BTreeMap;

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

/// One benchmark kind, as validation sees it.
pub trait KindRules {
    /// Checks a benchmark's params against the campaign's models and
    /// returns the memory a run of it needs.
    fn check_params(
        &self,
        params: &toml::Table,
        models: &Models,
    ) -> Result<MemoryNeed, ParamProblem>;
    /// The metrics a target may name: timed and setup metrics, and those
    /// the params map.
    fn target_metrics(&self, params: &toml::Table) -> Vec<&'static str>;
}

/// Every benchmark kind a campaign may name.
pub trait KindCatalog {
    /// The kind called `name`, if any.
    fn find(&self, name: &str) -> Option<&dyn KindRules>;
    /// Every kind's name, in registry order.
    fn names(&self) -> Vec<&'static str>;
}
