use std::path::Path;

use super::source_map::{SourceMap, line_column};
use super::toggle::Toggle;
use super::validate::{Validated, validate};
use super::validated::{Campaign, StoreSource};
use super::{CampaignError, CampaignFile, Diagnostic, KindCatalog};

/// serde's wording ("invalid type: string \"two\", expected usize") as
/// this tool words every problem: what was found, and what is allowed.
pub(crate) fn plain_message(message: &str) -> String {
    let message = message.trim();
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.split_once(", expected ")
        {
            return format!("found {found}; allowed: {}", plain_expected(expected));
        }
    }
    // serde's "invalid length 0, expected struct X with 12 elements": an
    // array where a table (or an array of another length) belongs.
    if let Some(rest) = message.strip_prefix("invalid length ")
        && let Some((length, expected)) = rest.split_once(", expected ")
    {
        return format!(
            "found an array of {length} item{}; allowed: {}",
            if length == "1" { "" } else { "s" },
            plain_expected(expected)
        );
    }
    message.to_string()
}

/// What serde says it expected, in a user's words: never the names serde
/// gives its own types.
fn plain_expected(expected: &str) -> &str {
    match expected {
        "usize" | "u64" | "u32" | "u16" | "u8" => {
            "a whole number, 0 or more (of a size the field can hold)"
        }
        "i64" | "i32" => "a whole number",
        "f64" | "f32" => "a number",
        "a boolean" => "true or false",
        "a map" => "a table",
        "a sequence" => "an array",
        other
            if other.contains("enum ")
                || other.starts_with("struct ")
                || other.contains("tuple") =>
        {
            "a table of this field's keys (see docs/campaign-author.md for the field)"
        }
        other => other,
    }
}

/// A key set twice in one table, which the TOML parser reports without
/// its name: the key as written at `span`, with its table, and the line
/// it was first set on. `None` when the span holds no key.
fn duplicate_key(source: &str, span: std::ops::Range<usize>) -> Option<(String, String)> {
    let key = source.get(span.clone())?.trim().trim_matches('"');
    if key.is_empty() || key.contains('\n') {
        return None;
    }
    let before = source.get(..span.start)?;
    // The table the key sits in: the last header above it.
    let header_at = before
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with('['))
        .last();
    let table = header_at.map_or(String::new(), |(_, l)| {
        l.trim()
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string()
    });
    let first = before
        .lines()
        .enumerate()
        .skip(header_at.map_or(0, |(i, _)| i + 1))
        .find(|(_, l)| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1);
    let field = if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    };
    let message = match first {
        Some(line) => format!(
            "`{key}` is set twice in this table (first at line {line}); allowed: each key once per table"
        ),
        None => format!("`{key}` is set twice in this table; allowed: each key once per table"),
    };
    Some((field, message))
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
        let duplicate = e
            .message()
            .contains("duplicate key")
            .then(|| e.span().and_then(|span| duplicate_key(source, span)))
            .flatten();
        let (at, field, message) = match (located, duplicate) {
            (_, Some((field, message))) => (offset, field, message),
            (Some((at, field)), None) => (at, field, plain_message(e.message())),
            (None, None) => (offset, "syntax".to_string(), plain_message(e.message())),
        };
        let (line, column) = line_column(source, at);
        invalid(vec![Diagnostic {
            line,
            column,
            field,
            message,
            help: Some(
                "see the campaign format in docs/campaign-author.md; unknown fields are errors"
                    .to_string(),
            ),
        }])
    })?;
    let map = map.unwrap_or_default();
    let base = path.parent().unwrap_or(Path::new("."));
    let Validated {
        models,
        warnings,
        days,
    } = validate(&file, source, &map, base, kinds).map_err(invalid)?;
    // Validation allows one of `url` and `url_env`.
    let store = file.store.as_ref().and_then(|store| {
        if let Some(url) = &store.url {
            return Some(StoreSource::Url(url.get_ref().trim().to_string()));
        }
        store.url_env.as_ref().map(|var| StoreSource::Env {
            var: var.get_ref().clone(),
            line: line_column(source, var.span().start).0,
        })
    });
    Ok(Campaign {
        path: path.to_path_buf(),
        name: file.name.get_ref().clone(),
        description: file.description.clone(),
        output_dir: file.output_dir.clone(),
        store,
        settings: file.settings(),
        models,
        days,
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
