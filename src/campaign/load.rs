use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::source_map::{SourceMap, line_column};
use super::toggle::Toggle;
use super::validate::validate;
use super::{CampaignError, CampaignFile, DaySpec, Diagnostic};
use super::{KindCatalog, ResolvedModel};

/// A campaign file that parsed and validated.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub path: PathBuf,
    pub file: CampaignFile,
    pub models: BTreeMap<String, ResolvedModel>,
    /// Problems that do not stop a run (e.g. a day with no benchmarks yet).
    pub warnings: Vec<String>,
    /// The toggle applied to the file's text before it was parsed (an
    /// experiment's toggled side); child runs receive it too.
    pub toggle: Option<Toggle>,
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
}

/// serde's wording ("invalid type: string \"two\", expected usize") as
/// this tool words every problem: what was found, and what is allowed.
pub(crate) fn plain_message(message: &str) -> String {
    let message = message.trim();
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.split_once(", expected ")
        {
            let allowed = match expected {
                "usize" | "u64" | "u32" | "u16" | "u8" => {
                    "a whole number, 0 or more (of a size the field can hold)"
                }
                "i64" | "i32" => "a whole number",
                "f64" | "f32" => "a number",
                "a boolean" => "true or false",
                other => other,
            };
            return format!("found {found}; allowed: {allowed}");
        }
    }
    message.to_string()
}

/// Reads, parses and validates a campaign file. Every problem found is
/// reported at once, each at the line and column of its key.
pub fn load_campaign(path: &Path, kinds: &dyn KindCatalog) -> Result<Campaign, CampaignError> {
    load_campaign_toggled(path, kinds, None)
}

/// [`load_campaign`] with a toggle applied to the text first; every check
/// then applies to the toggled campaign, and its problems say so.
pub fn load_campaign_toggled(
    path: &Path,
    kinds: &dyn KindCatalog,
    toggle: Option<&Toggle>,
) -> Result<Campaign, CampaignError> {
    let source = std::fs::read_to_string(path).map_err(|source| CampaignError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let Some(toggle) = toggle else {
        return parse_campaign(path, &source, kinds);
    };
    let toggled_error = |inner: CampaignError| CampaignError::Toggled {
        toggle: toggle.describe(),
        inner: Box::new(inner),
    };
    let toggled = toggle.apply(&source).map_err(|e| {
        toggled_error(CampaignError::Toggle {
            path: path.to_path_buf(),
            source: e,
        })
    })?;
    let mut campaign = parse_campaign(path, &toggled, kinds).map_err(toggled_error)?;
    campaign.toggle = Some(toggle.clone());
    Ok(campaign)
}

fn parse_campaign(
    path: &Path,
    source: &str,
    kinds: &dyn KindCatalog,
) -> Result<Campaign, CampaignError> {
    let invalid = |diagnostics| CampaignError::Invalid {
        path: path.to_path_buf(),
        diagnostics,
    };
    let map = SourceMap::parse(source);
    let file: CampaignFile = toml::from_str(source).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let located = map.as_ref().and_then(|m| {
            let (key, field) = m.key_at(offset)?;
            Some((key.start, m.describe(&field)))
        });
        let (at, field) = located.unwrap_or((offset, "syntax".to_string()));
        let (line, column) = line_column(source, at);
        invalid(vec![Diagnostic {
            line,
            column,
            field,
            message: plain_message(e.message()),
            help: Some(
                "see the campaign format in README.md; unknown fields are errors".to_string(),
            ),
        }])
    })?;
    let map = map.unwrap_or_default();
    let base = path.parent().unwrap_or(Path::new("."));
    let (models, warnings) = validate(&file, source, &map, base, kinds).map_err(invalid)?;
    Ok(Campaign {
        path: path.to_path_buf(),
        file,
        models,
        warnings,
        toggle: None,
    })
}

#[cfg(test)]
mod tests {
    use super::{line_column, plain_message};

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, text.find('=').unwrap()), (1, 3));
        assert_eq!(line_column(text, text.rfind('=').unwrap()), (2, 4));
        // Inside a multi-byte character: its start.
        assert_eq!(line_column(text, 8), (2, 2));
    }

    #[test]
    fn serde_wording_becomes_found_and_allowed() {
        assert_eq!(
            plain_message("invalid type: string \"two\", expected usize"),
            "found string \"two\"; allowed: a whole number, 0 or more (of a size the field can hold)"
        );
        assert_eq!(
            plain_message("invalid value: integer `-1`, expected u32"),
            "found integer `-1`; allowed: a whole number, 0 or more (of a size the field can hold)"
        );
        assert_eq!(
            plain_message("missing field `kind`"),
            "missing field `kind`"
        );
    }
}
