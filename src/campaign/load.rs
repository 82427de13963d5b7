use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::validate::validate;
use super::{CampaignError, CampaignFile, DaySpec, Diagnostic};
use crate::components::inference::{ModelArchitecture, SyntheticLlamaConfig};

/// A model named in the campaign, with its source resolved.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    pub name: String,
    /// Set for models loaded from a folder (resolved against the campaign file).
    pub folder: Option<PathBuf>,
    /// Set for synthetic models.
    pub synthetic: Option<SyntheticLlamaConfig>,
    pub architecture: ModelArchitecture,
}

/// A campaign file that parsed and validated.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub path: PathBuf,
    pub file: CampaignFile,
    pub models: BTreeMap<String, ResolvedModel>,
    /// Problems that do not stop a run (e.g. a day with no benchmarks yet).
    pub warnings: Vec<String>,
}

impl Campaign {
    pub fn name(&self) -> &str {
        self.file.name.get_ref()
    }

    pub fn day(&self, number: u32) -> Result<&DaySpec, CampaignError> {
        self.file
            .days
            .iter()
            .map(|d| d.get_ref())
            .find(|d| *d.number.get_ref() == number)
            .ok_or_else(|| CampaignError::NoSuchDay {
                path: self.path.clone(),
                day: number,
                available: self
                    .file
                    .days
                    .iter()
                    .map(|d| d.get_ref().number.get_ref().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// A folder name derived from the campaign name (letters, digits, `-`, `_`).
    pub fn slug(&self) -> String {
        let slug: String = self
            .name()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if slug.is_empty() {
            "campaign".to_string()
        } else {
            slug
        }
    }
}

/// Turns a byte offset into a 1-based line and column.
pub(super) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Reads, parses and validates a campaign file. Every problem found is
/// reported at once, each with its line and column.
pub fn load_campaign(path: &Path) -> Result<Campaign, CampaignError> {
    let source = std::fs::read_to_string(path).map_err(|source| CampaignError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file: CampaignFile = toml::from_str(&source).map_err(|e| {
        let (line, column) = line_column(&source, e.span().map_or(0, |s| s.start));
        CampaignError::Invalid {
            path: path.to_path_buf(),
            diagnostics: vec![Diagnostic {
                line,
                column,
                field: "syntax".to_string(),
                message: e.message().trim().to_string(),
                help: Some(
                    "see the campaign format in README.md; unknown fields are errors".to_string(),
                ),
            }],
        }
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let (models, warnings) =
        validate(&file, &source, base).map_err(|diagnostics| CampaignError::Invalid {
            path: path.to_path_buf(),
            diagnostics,
        })?;
    Ok(Campaign {
        path: path.to_path_buf(),
        file,
        models,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, text.find('=').unwrap()), (1, 3));
        assert_eq!(line_column(text, text.rfind('=').unwrap()), (2, 4));
    }
}
