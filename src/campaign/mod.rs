//! Campaign files: the TOML schema, loading with source positions,
//! validation against the benchmark registry, and day selection.

mod error;
mod load;
mod schema;
mod target;
mod validate;

pub use error::{CampaignError, Diagnostic};
pub use load::{Campaign, ResolvedModel, load_campaign};
pub use schema::{BenchmarkSpec, CampaignFile, DaySpec, ModelSpec, Settings};
pub use target::{Comparison, Target};
