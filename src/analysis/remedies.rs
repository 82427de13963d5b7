//! The remedy catalog: which fix to consider for which bottleneck, with
//! the speed-up the team assumes for it, its effort and its risk. The
//! default catalog (`campaigns/remedies.toml`) is built into the binary, so
//! a campaign kept anywhere can be analysed; a campaign's own
//! `remedies.toml`, or `--remedies FILE`, replaces it, or extends it with
//! `extends_built_in = true`. Nothing here assumes a speed-up of its own.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::campaign::Toggle;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemedyCatalog {
    /// A file's entries come first, then the built-in ones (first match wins).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extends_built_in: bool,
    #[serde(rename = "remedy", default)]
    pub remedies: Vec<Remedy>,
    /// The quality margins of every remedy whose toggle can change a
    /// model's outputs, unless the remedy sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<super::QualityMargins>,
}

/// The catalog built into the binary.
const BUILT_IN_CATALOG: &str = include_str!("../../campaigns/remedies.toml");

/// What `built-in` stands for in reports.
pub const BUILT_IN_NAME: &str = "the built-in catalog (campaigns/remedies.toml of this build)";

/// A catalog and where it came from, as the analysis reports it.
#[derive(Debug, Clone)]
pub struct ResolvedCatalog {
    pub catalog: RemedyCatalog,
    pub source: String,
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
    /// The change the tool can make itself to measure this remedy
    /// (`campaign experiment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toggle: Option<Toggle>,
    /// This remedy's quality margins (default: the catalog's `[quality]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<super::QualityMargins>,
}

#[derive(Debug, thiserror::Error)]
pub enum RemedyError {
    #[error(
        "cannot read the remedy catalog {path}: {source}\n  help: pass --remedies FILE, or remove the flag to use the built-in catalog"
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
        Self::parse(&text, path)
    }

    /// The catalog this build carries.
    pub fn built_in() -> Result<Self, RemedyError> {
        Self::parse(BUILT_IN_CATALOG, Path::new("<built-in remedies.toml>"))
    }

    /// The catalog an analysis uses: `explicit` (`--remedies`) if given,
    /// else `beside_campaign` if that file exists, else the built-in one;
    /// a file with `extends_built_in = true` goes before the built-in entries.
    pub fn resolve(
        explicit: Option<&Path>,
        beside_campaign: &Path,
    ) -> Result<ResolvedCatalog, RemedyError> {
        let file = match explicit {
            Some(path) => Some(path),
            None => beside_campaign.is_file().then_some(beside_campaign),
        };
        let Some(path) = file else {
            return Ok(ResolvedCatalog {
                catalog: Self::built_in()?,
                source: BUILT_IN_NAME.to_string(),
            });
        };
        let mut catalog = Self::load(path)?;
        if !catalog.extends_built_in {
            return Ok(ResolvedCatalog {
                catalog,
                source: path.display().to_string(),
            });
        }
        catalog.remedies.extend(Self::built_in()?.remedies);
        Ok(ResolvedCatalog {
            catalog,
            source: format!("{}, then {BUILT_IN_NAME}", path.display()),
        })
    }

    fn parse(text: &str, path: &Path) -> Result<Self, RemedyError> {
        let invalid = |message: String| RemedyError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let catalog: Self = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
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
            if let Some(Err(e)) = r.toggle.as_ref().map(Toggle::check) {
                return Err(invalid(format!("remedy #{} ({}): {e}", i + 1, r.remedy)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_catalog_parses_and_files_replace_or_extend_it() {
        let built_in = RemedyCatalog::built_in().unwrap();
        assert!(!built_in.remedies.is_empty());
        let dir = tempfile::TempDir::new().unwrap();
        let absent = dir.path().join("remedies.toml");
        let resolved = RemedyCatalog::resolve(None, &absent).unwrap();
        assert_eq!(resolved.source, BUILT_IN_NAME);
        assert_eq!(resolved.catalog.remedies.len(), built_in.remedies.len());

        let entry = "[[remedy]]\ncomponent = \"kvcache\"\nremedy = \"own\"\nspeedup = [1.0, 1.5]\neffort_days = 1\nrisk = \"low\"\nsource = \"test\"\n";
        std::fs::write(&absent, entry).unwrap();
        let replaced = RemedyCatalog::resolve(None, &absent).unwrap();
        assert_eq!(replaced.catalog.remedies.len(), 1);
        assert_eq!(replaced.source, absent.display().to_string());

        std::fs::write(&absent, format!("extends_built_in = true\n{entry}")).unwrap();
        let extended = RemedyCatalog::resolve(Some(&absent), Path::new("unused")).unwrap();
        assert_eq!(extended.catalog.remedies.len(), built_in.remedies.len() + 1);
        assert_eq!(extended.catalog.remedies[0].remedy, "own");
        assert!(extended.source.ends_with(BUILT_IN_NAME));

        let missing = RemedyCatalog::resolve(Some(&dir.path().join("none.toml")), &absent);
        assert!(matches!(missing, Err(RemedyError::Read { .. })));
    }
}
