//! Campaign files: the TOML schema, loading with source positions,
//! validation against the benchmark registry, and day selection.

pub mod bounds;
mod error;
pub mod grid;
mod kinds;
mod load;
mod machines;
mod models;
mod schema;
mod source_map;
mod target;
mod toggle;
mod validate;
mod validated;
mod verdicts;

pub use error::{CampaignError, Diagnostic};
pub use kinds::{Configured, KindCatalog, KindRules, Models, ParamProblem, ParamsCheck};
pub(crate) use load::plain_message;
pub use load::{load_campaign, load_campaign_toggled};
pub use machines::{
    DEFAULT_STORE_ENV, DEFAULT_STORE_SECRET, Fleet, MachineClass, Shard, load_fleet,
};
pub use models::ResolvedModel;
use schema::{BenchmarkSpec, CampaignFile, StoreSpec};
pub use schema::{DayStep, Settings};
pub use source_map::{FieldPath, Segment, SourceMap};
pub use target::{Target, TargetOp};
pub use toggle::{Toggle, ToggleError};
pub use validated::{Benchmark, Campaign, Day, StoreSource};
pub use verdicts::evaluate_targets;

/// Parses "2" or "1-4" into an inclusive range of day numbers.
pub fn parse_day_range(text: &str) -> Option<std::ops::RangeInclusive<u32>> {
    let (from, to) = match text.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let d = text.trim().parse().ok()?;
            (d, d)
        }
    };
    (from <= to && from >= 1).then_some(from..=to)
}

#[cfg(test)]
mod tests {
    #[test]
    fn day_ranges() {
        assert_eq!(super::parse_day_range("1-4"), Some(1..=4));
        assert_eq!(super::parse_day_range("3"), Some(3..=3));
        assert_eq!(super::parse_day_range("4-1"), None);
        assert_eq!(super::parse_day_range("0-2"), None);
        assert_eq!(super::parse_day_range("x"), None);
    }
}
