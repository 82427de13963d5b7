//! The remedy catalog: which fix to consider for which bottleneck, with
//! the speed-up the team assumes for it, its effort and its risk. It is a
//! file a user edits (`campaigns/remedies.toml`); nothing here assumes a
//! speed-up of its own.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemedyCatalog {
    #[serde(rename = "remedy", default)]
    pub remedies: Vec<Remedy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Remedy {
    /// Matches a bottleneck whose component is this, or starts with it
    /// followed by `/` (`inference` matches `inference/matmul`).
    pub component: Option<String>,
    /// Matches a bottleneck whose function name contains this.
    pub function_contains: Option<String>,
    pub remedy: String,
    /// Assumed speed-up of the bottleneck's own time, low and high.
    pub speedup: [f64; 2],
    pub effort_days: f64,
    pub risk: Risk,
    /// Where the assumed speed-up comes from.
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RemedyError {
    #[error(
        "cannot read the remedy catalog {path}: {source}\n  help: pass --remedies FILE or restore campaigns/remedies.toml"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Remedy {
    pub fn matches(&self, component: &str, function: &str) -> bool {
        let component_ok = self.component.as_deref().is_none_or(|c| {
            component == c
                || component
                    .strip_prefix(c)
                    .is_some_and(|r| r.starts_with('/'))
        });
        let function_ok = self
            .function_contains
            .as_deref()
            .is_none_or(|f| function.contains(f));
        component_ok && function_ok
    }
}

impl RemedyCatalog {
    pub fn load(path: &Path) -> Result<Self, RemedyError> {
        let text = std::fs::read_to_string(path).map_err(|source| RemedyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| RemedyError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let catalog: Self = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        for (i, r) in catalog.remedies.iter().enumerate() {
            let [low, high] = r.speedup;
            if !(low.is_finite() && low >= 1.0 && high >= low) {
                return Err(invalid(format!(
                    "remedy #{} ({}): speedup must be [low, high] with 1 ≤ low ≤ high",
                    i + 1,
                    r.remedy
                )));
            }
            if !(r.effort_days.is_finite() && r.effort_days > 0.0) {
                return Err(invalid(format!(
                    "remedy #{} ({}): effort_days must be positive",
                    i + 1,
                    r.remedy
                )));
            }
            if r.component.is_none() && r.function_contains.is_none() {
                return Err(invalid(format!(
                    "remedy #{} ({}): give component, function_contains or both",
                    i + 1,
                    r.remedy
                )));
            }
        }
        Ok(catalog)
    }

    /// The first remedy that matches, in file order.
    pub fn find(&self, component: &str, function: &str) -> Option<&Remedy> {
        self.remedies
            .iter()
            .find(|r| r.matches(component, function))
    }
}
