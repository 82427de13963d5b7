//! Toggles: one change to a campaign that the tool applies itself, so a
//! remedy can be measured instead of assumed. A toggle sets a benchmark
//! parameter, a `[settings]` value or a model option; it is applied to the
//! campaign's TOML text before it is parsed, so the toggled campaign goes
//! through every check an edited file would, and every other key (and its
//! line) stays as written.

use serde::{Deserialize, Serialize};
use toml_edit::{DocumentMut, Item, Table};

/// What a remedy changes, as written in `remedies.toml`:
/// `toggle = { param = "slowdown", value = 1.0, benchmarks = ["planted"] }`,
/// `toggle = { setting = "threads", value = 2 }` or
/// `toggle = { model_option = "quantize", value = "q8_0" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    /// A parameter of the benchmarks named (dotted for nested tables:
    /// `geometry.dtype`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// A key of `[settings]` (`threads`, `dtype`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
    /// A key of a `[models.NAME]` table (`quantize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_option: Option<String>,
    /// The model a `model_option` applies to (default: every model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The value the toggled side runs with.
    pub value: toml::Value,
    /// The benchmarks an experiment runs (and a `param` applies to);
    /// default: the benchmarks whose profiles are the remedy's evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub benchmarks: Vec<String>,
}

/// Why a toggle cannot be applied to a campaign.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToggleError {
    #[error(
        "a toggle sets exactly one of `param`, `setting` or `model_option` (found {0})\n  help: e.g. toggle = {{ param = \"slowdown\", value = 1.0, benchmarks = [\"planted\"] }}"
    )]
    Target(String),
    #[error(
        "a toggle of param {0:?} names no benchmark\n  help: add benchmarks = [\"NAME\"] to the toggle, or run the analysis first so its evidence names them"
    )]
    NoBenchmarks(String),
    #[error("the toggle names benchmark {0:?}, which no day of the campaign has")]
    NoSuchBenchmark(String),
    #[error("the toggle names model {0:?}, which the campaign's [models] does not define")]
    NoSuchModel(String),
    #[error("the campaign defines no [models] for the toggle's model option {0:?}")]
    NoModels(String),
    #[error("the campaign is not TOML the toggle can edit: {0}")]
    Syntax(String),
    #[error("{0:?} is not a key the toggle can set (write it as name or name.inner)")]
    BadKey(String),
}

impl Toggle {
    /// One line for people: `param slowdown = 1.0 in planted`.
    pub fn describe(&self) -> String {
        let value = self.value.to_string();
        match (&self.param, &self.setting, &self.model_option) {
            (Some(p), _, _) => format!("param {p} = {value} in {}", self.benchmarks.join(", ")),
            (_, Some(s), _) => format!("setting {s} = {value}"),
            (_, _, Some(o)) => format!(
                "model option {o} = {value} ({})",
                self.model.as_deref().unwrap_or("every model")
            ),
            _ => format!("nothing = {value}"),
        }
    }

    /// Whether the toggled side can compute different outputs (a model
    /// option, the settings that choose the numbers: dtype, device, or
    /// another served target), so its experiment measures quality beside
    /// speed.
    pub fn can_change_outputs(&self) -> bool {
        self.changes_models() || self.changes_served_target()
    }

    /// Whether the toggled side loads other models in this process.
    pub fn changes_models(&self) -> bool {
        self.model_option.is_some()
            || self
                .setting
                .as_deref()
                .is_some_and(|s| matches!(s, "dtype" | "device"))
    }

    /// Whether the toggled side sends to another served target: the
    /// endpoint or the model a server is asked for.
    pub fn changes_served_target(&self) -> bool {
        self.param
            .as_deref()
            .is_some_and(|p| matches!(p, "endpoint" | "served_model"))
    }

    /// Checks the shape alone (exactly one target).
    pub fn check(&self) -> Result<(), ToggleError> {
        let set = [
            self.param.as_ref().map(|_| "param"),
            self.setting.as_ref().map(|_| "setting"),
            self.model_option.as_ref().map(|_| "model_option"),
        ];
        let named: Vec<&str> = set.into_iter().flatten().collect();
        if named.len() == 1 {
            Ok(())
        } else if named.is_empty() {
            Err(ToggleError::Target("none".into()))
        } else {
            Err(ToggleError::Target(named.join(" and ")))
        }
    }

    /// The campaign text with the toggle applied.
    pub fn apply(&self, source: &str) -> Result<String, ToggleError> {
        self.check()?;
        let mut doc: DocumentMut = source
            .parse()
            .map_err(|e: toml_edit::TomlError| ToggleError::Syntax(e.message().to_string()))?;
        let value = to_edit_value(&self.value)?;
        if let Some(param) = &self.param {
            if self.benchmarks.is_empty() {
                return Err(ToggleError::NoBenchmarks(param.clone()));
            }
            for name in &self.benchmarks {
                let mut found = false;
                for bench in benchmarks_mut(&mut doc) {
                    if bench.get("name").and_then(Item::as_str) == Some(name.as_str()) {
                        let params = bench.entry("params").or_insert_with(toml_edit::table);
                        set_dotted(params, param, value.clone())?;
                        found = true;
                    }
                }
                if !found {
                    return Err(ToggleError::NoSuchBenchmark(name.clone()));
                }
            }
        } else if let Some(setting) = &self.setting {
            let settings = doc.entry("settings").or_insert_with(toml_edit::table);
            set_dotted(settings, setting, value)?;
        } else if let Some(option) = &self.model_option {
            let models = doc
                .get_mut("models")
                .and_then(Item::as_table_like_mut)
                .ok_or_else(|| ToggleError::NoModels(option.clone()))?;
            let names: Vec<String> = models.iter().map(|(k, _)| k.to_string()).collect();
            let chosen: Vec<String> = match &self.model {
                Some(m) if names.contains(m) => vec![m.clone()],
                Some(m) => return Err(ToggleError::NoSuchModel(m.clone())),
                None => names,
            };
            for name in chosen {
                if let Some(model) = models.get_mut(&name) {
                    set_dotted(model, option, value.clone())?;
                }
            }
        }
        Ok(doc.to_string())
    }
}

/// Every `[[days.benchmarks]]` table of the document.
fn benchmarks_mut(doc: &mut DocumentMut) -> Vec<&mut Table> {
    let Some(days) = doc.get_mut("days").and_then(Item::as_array_of_tables_mut) else {
        return Vec::new();
    };
    days.iter_mut()
        .filter_map(|day| day.get_mut("benchmarks"))
        .filter_map(Item::as_array_of_tables_mut)
        .flat_map(|benches| benches.iter_mut())
        .collect()
}

/// Sets `a.b.c` under `item`, creating tables on the way.
fn set_dotted(item: &mut Item, dotted: &str, value: toml_edit::Value) -> Result<(), ToggleError> {
    let parts: Vec<&str> = dotted.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ToggleError::BadKey(dotted.to_string()));
    }
    let mut at = item;
    for part in &parts[..parts.len() - 1] {
        let table = at
            .as_table_like_mut()
            .ok_or_else(|| ToggleError::BadKey(dotted.to_string()))?;
        if table.get(part).is_none() {
            table.insert(part, toml_edit::table());
        }
        at = table
            .get_mut(part)
            .ok_or_else(|| ToggleError::BadKey(dotted.to_string()))?;
    }
    let last = parts[parts.len() - 1];
    let table = at
        .as_table_like_mut()
        .ok_or_else(|| ToggleError::BadKey(dotted.to_string()))?;
    table.insert(last, Item::Value(value));
    Ok(())
}

fn to_edit_value(value: &toml::Value) -> Result<toml_edit::Value, ToggleError> {
    value
        .to_string()
        .parse()
        .map_err(|e: toml_edit::TomlError| ToggleError::Syntax(e.message().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAMPAIGN: &str = r#"name = "t"
[settings]
threads = 1

[models.default.synthetic]
seed = 1

[[days]]
number = 1
title = "a"

[[days.benchmarks]]
name = "planted"
kind = "planted_work"
[days.benchmarks.params]
slowdown = 2.0

[[days.benchmarks]]
name = "kv"
kind = "kv_cache_access"
params = { geometry = { dtype = "f16" } }
"#;

    fn toggle(text: &str) -> Toggle {
        toml::from_str(text).unwrap()
    }

    fn parsed(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_param_toggle_changes_only_its_benchmarks_and_keeps_other_lines() {
        let t = toggle("param = \"slowdown\"\nvalue = 1.0\nbenchmarks = [\"planted\"]");
        let out = t.apply(CAMPAIGN).unwrap();
        let doc = parsed(&out);
        let benches = doc["days"][0]["benchmarks"].as_array().unwrap();
        assert_eq!(benches[0]["params"]["slowdown"].as_float(), Some(1.0));
        assert!(benches[1]["params"].get("slowdown").is_none());
        // The untouched keys keep their lines.
        let line = |s: &str, key: &str| s.lines().position(|l| l.starts_with(key));
        assert_eq!(line(&out, "name = \"kv\""), line(CAMPAIGN, "name = \"kv\""));

        let nested = toggle("param = \"geometry.dtype\"\nvalue = \"f32\"\nbenchmarks = [\"kv\"]");
        let doc = parsed(&nested.apply(CAMPAIGN).unwrap());
        let kv = &doc["days"][0]["benchmarks"][1]["params"]["geometry"];
        assert_eq!(kv["dtype"].as_str(), Some("f32"));
    }

    #[test]
    fn settings_and_model_options_are_set_where_they_belong() {
        let doc = parsed(
            &toggle("setting = \"threads\"\nvalue = 2")
                .apply(CAMPAIGN)
                .unwrap(),
        );
        assert_eq!(doc["settings"]["threads"].as_integer(), Some(2));
        let doc = parsed(
            &toggle("model_option = \"quantize\"\nvalue = \"q8_0\"")
                .apply(CAMPAIGN)
                .unwrap(),
        );
        assert_eq!(doc["models"]["default"]["quantize"].as_str(), Some("q8_0"));
        assert_eq!(
            doc["models"]["default"]["synthetic"]["seed"].as_integer(),
            Some(1)
        );
    }

    #[test]
    fn toggles_that_cannot_apply_say_why() {
        let cases = [
            ("value = 1", "exactly one"),
            (
                "param = \"a\"\nsetting = \"b\"\nvalue = 1",
                "param and setting",
            ),
            ("param = \"slowdown\"\nvalue = 1", "names no benchmark"),
            (
                "param = \"x\"\nvalue = 1\nbenchmarks = [\"nope\"]",
                "\"nope\"",
            ),
            (
                "model_option = \"quantize\"\nmodel = \"big\"\nvalue = \"q8_0\"",
                "\"big\"",
            ),
            ("setting = \"a..b\"\nvalue = 1", "not a key"),
        ];
        for (text, expected) in cases {
            let e = toggle(text).apply(CAMPAIGN).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
        // A JSON round trip (how a child run receives it) keeps the value's type.
        let t = toggle("param = \"slowdown\"\nvalue = 1.0\nbenchmarks = [\"planted\"]");
        let back: Toggle = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }
}
