//! The registry: every kind this build knows, by name.

use super::configured::ConfiguredBenchmark;
use super::contract::BenchmarkKind;
use super::{agents, command, planted, workflow};
use super::{compression, inference, kvcache, serving, storage};
use crate::campaign::{KindCatalog, KindRules};

static REGISTRY: &[&dyn BenchmarkKind] = &[
    &inference::FirstTokenLatency,
    &inference::TokenGeneration,
    &inference::LlamaBench,
    &kvcache::KvCacheStore,
    &kvcache::KvCacheAccess,
    &storage::DiskBlockSweep,
    &compression::CompressionRatio,
    &compression::CompressionThroughput,
    &storage::StorageWrite,
    &storage::StorageRead,
    &agents::AgentTaskLatency,
    &serving::FullInference,
    &serving::Scaling,
    &serving::Capacity,
    &serving::Endurance,
    &inference::MemoryGrowth,
    &workflow::CollectiveWorkflow,
    &planted::PlantedWork,
    &command::CommandKind,
];

/// Every kind this build knows, in registry order.
pub fn registry() -> &'static [&'static dyn BenchmarkKind] {
    REGISTRY
}

pub fn find_kind(name: &str) -> Option<&'static dyn BenchmarkKind> {
    REGISTRY.iter().copied().find(|k| k.name() == name)
}

pub fn kind_names() -> Vec<&'static str> {
    REGISTRY.iter().map(|k| k.name()).collect()
}

/// Every kind, as campaign validation sees them: pass it to
/// [`crate::campaign::load_campaign`].
pub struct Registry;

impl KindCatalog for Registry {
    fn find(&self, name: &str) -> Option<&'static dyn KindRules> {
        find_kind(name).map(|k| k as &'static dyn KindRules)
    }

    fn names(&self) -> Vec<&'static str> {
        kind_names()
    }
}

/// Comparisons a selection of benchmarks will make: each kind's planned
/// cases × its headline series.
pub fn planned_comparisons(selected: &[&crate::campaign::Benchmark]) -> usize {
    selected
        .iter()
        .map(|spec| {
            let configured = ConfiguredBenchmark::of(spec);
            configured.planned_cases() * configured.catalog().headline_series()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// What every kind must declare for the runner, the verdicts and the
    /// writers to handle it without any other edit.
    #[test]
    fn every_registered_kind_declares_what_the_rest_reads() {
        let mut names = HashSet::new();
        for kind in REGISTRY {
            let name = kind.name();
            assert!(names.insert(name), "two kinds are named {name}");
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert!(!kind.description().is_empty(), "{name}: no description");
            let catalog = kind.catalog();
            let mut metrics = HashSet::new();
            for m in catalog.metrics() {
                assert!(metrics.insert(m.name), "{name}: metric {} twice", m.name);
                assert!(!m.unit.is_empty(), "{name}: {} has no unit", m.name);
            }
            let headline = catalog.headline();
            if let Some(latency) = headline.latency {
                let m = catalog.metric(latency);
                assert!(
                    m.is_some_and(|m| m.unit == "ms"),
                    "{name}: headline latency {latency} is not a metric in ms"
                );
            }
            if let Some(throughput) = headline.throughput {
                assert!(
                    catalog.metric(throughput).is_some(),
                    "{name}: headline throughput {throughput} is not a metric"
                );
            }
            if let Some(axis) = kind.sweep_axis() {
                assert!(!axis.parameter.is_empty() && !axis.title.is_empty());
                assert!(
                    headline.latency.is_some(),
                    "{name}: a swept kind needs a headline latency to draw"
                );
            }
            assert!(find_kind(name).is_some_and(|k| k.name() == name));
        }
        assert_eq!(kind_names().len(), REGISTRY.len());
    }
}
