//! `machines.toml`: the classes of machine a campaign runs on as a fleet
//! (`campaign fleet`). Each class names the days it runs (every day of the
//! campaign by default), the labels that pick its GitHub Actions runners
//! and its Kubernetes nodes. A shard is one day on one class; a fleet run
//! is every shard once, identified by a name the scheduler gives (a
//! workflow run id, a night's date).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::error::{CampaignError, Diagnostic};
use super::source_map::line_column;

/// The store URL's variable when `[fleet] store_env` is not set.
pub const DEFAULT_STORE_ENV: &str = "CAMPAIGN_STORE_URL";
/// The Kubernetes Secret (key `url`) holding the store URL, by default.
pub const DEFAULT_STORE_SECRET: &str = "campaign-store";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MachinesToml {
    #[serde(default)]
    fleet: FleetToml,
    #[serde(rename = "class", default)]
    classes: Vec<ClassToml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetToml {
    image: Option<Spanned<String>>,
    namespace: Option<Spanned<String>>,
    store_env: Option<Spanned<String>>,
    store_secret: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassToml {
    name: Spanned<String>,
    days: Option<Spanned<Vec<u32>>>,
    #[serde(default)]
    runs_on: Vec<String>,
    #[serde(default)]
    node_selector: BTreeMap<String, String>,
}

/// One class of machine of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineClass {
    /// A DNS label (lowercase letters, digits, `-`): it names Kubernetes
    /// Jobs and prefixes the machine key of every night it runs.
    pub name: String,
    /// The campaign days this class runs, ascending.
    pub days: Vec<u32>,
    /// GitHub Actions runner labels (default: `self-hosted` and the name).
    pub runs_on: Vec<String>,
    /// Kubernetes node labels its pods are scheduled on.
    pub node_selector: BTreeMap<String, String>,
}

/// The fleet, checked against its campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fleet {
    pub path: PathBuf,
    /// The container image with `campaign` on its PATH (Kubernetes only).
    pub image: Option<String>,
    pub namespace: Option<String>,
    /// The variable that holds the shared store's URL.
    pub store_env: String,
    /// The Kubernetes Secret whose key `url` holds the store's URL.
    pub store_secret: String,
    pub classes: Vec<MachineClass>,
}

/// One day on one class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub class: String,
    pub day: u32,
    /// The day's place in the class's days (a Kubernetes Indexed Job's
    /// completion index).
    pub index: usize,
}

impl Shard {
    /// The shard's id within a fleet run: `RUN/CLASS/day-N`.
    pub fn id(&self, fleet_run: &str) -> String {
        format!("{fleet_run}/{}/day-{}", self.class, self.day)
    }
}

impl Fleet {
    /// Every shard, class by class, day by day.
    pub fn shards(&self) -> Vec<Shard> {
        self.classes
            .iter()
            .flat_map(|c| {
                c.days.iter().enumerate().map(|(index, day)| Shard {
                    class: c.name.clone(),
                    day: *day,
                    index,
                })
            })
            .collect()
    }

    pub fn class(&self, name: &str) -> Option<&MachineClass> {
        self.classes.iter().find(|c| c.name == name)
    }
}

/// A DNS-1123 label of at most `max` characters.
fn is_label(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// A class name becomes part of Kubernetes Job names (63 characters with
/// the campaign's prefix and the fleet run): kept short.
const MAX_CLASS_NAME: usize = 30;

/// Reads and checks `machines.toml` against the campaign's days.
pub fn load_fleet(path: &Path, campaign_days: &[u32]) -> Result<Fleet, CampaignError> {
    let source = std::fs::read_to_string(path).map_err(|source| CampaignError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |diagnostics: Vec<Diagnostic>| CampaignError::Invalid {
        path: path.to_path_buf(),
        diagnostics,
    };
    let at =
        |span: std::ops::Range<usize>, field: String, message: String, help: Option<String>| {
            let (line, column) = line_column(&source, span.start);
            Diagnostic {
                line,
                column,
                field,
                message,
                help,
            }
        };
    let parsed: MachinesToml = toml::from_str(&source).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        invalid(vec![at(
            span,
            "machines".into(),
            e.message().to_string(),
            Some(
                "a machines file has an optional [fleet] (image, namespace, store_env, store_secret) and [[class]] tables (name, days, runs_on, node_selector)"
                    .into(),
            ),
        )])
    })?;
    let mut problems = Vec::new();
    if parsed.classes.is_empty() {
        problems.push(at(
            0..0,
            "class".into(),
            "no machine class is defined".into(),
            Some("add a [[class]] with a name, e.g. name = \"server\"".into()),
        ));
    }
    let mut classes = Vec::new();
    for (i, c) in parsed.classes.into_iter().enumerate() {
        let name = c.name.get_ref().clone();
        let field = |f: &str| format!("class {} ({name:?}), field `{f}`", i + 1);
        if !is_label(&name, MAX_CLASS_NAME) {
            problems.push(at(
                c.name.span(),
                field("name"),
                format!("{name:?} is not a short DNS label"),
                Some(format!(
                    "lowercase letters, digits and '-', at most {MAX_CLASS_NAME} characters, not starting or ending with '-' (it names Kubernetes Jobs)"
                )),
            ));
        }
        if classes.iter().any(|k: &MachineClass| k.name == name) {
            problems.push(at(
                c.name.span(),
                field("name"),
                format!("a class named {name:?} is defined twice"),
                None,
            ));
        }
        let days = match &c.days {
            None => campaign_days.to_vec(),
            Some(days) => {
                let mut list = days.get_ref().clone();
                let unknown: Vec<String> = list
                    .iter()
                    .filter(|d| !campaign_days.contains(d))
                    .map(u32::to_string)
                    .collect();
                if !unknown.is_empty() || list.is_empty() {
                    problems.push(at(
                        days.span(),
                        field("days"),
                        if list.is_empty() {
                            "lists no day".into()
                        } else {
                            format!("the campaign has no day {}", unknown.join(", "))
                        },
                        Some(format!(
                            "days of the campaign: {}",
                            campaign_days
                                .iter()
                                .map(u32::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    ));
                }
                list.sort_unstable();
                list.dedup();
                list
            }
        };
        let runs_on = if c.runs_on.is_empty() {
            vec!["self-hosted".to_string(), name.clone()]
        } else {
            c.runs_on
        };
        classes.push(MachineClass {
            name,
            days,
            runs_on,
            node_selector: c.node_selector,
        });
    }
    let spanned = |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.get_ref().clone());
    let store_env = spanned(&parsed.fleet.store_env).unwrap_or_else(|| DEFAULT_STORE_ENV.into());
    if let Some(env) = &parsed.fleet.store_env {
        let text = env.get_ref();
        let valid = text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            problems.push(at(
                env.span(),
                "fleet, field `store_env`".into(),
                format!("{text:?} is not an environment variable's name"),
                Some("letters, digits and '_', not starting with a digit".into()),
            ));
        }
    }
    for (field, value) in [
        ("namespace", &parsed.fleet.namespace),
        ("store_secret", &parsed.fleet.store_secret),
    ] {
        if let Some(v) = value
            && !is_label(v.get_ref(), 63)
        {
            problems.push(at(
                v.span(),
                format!("fleet, field `{field}`"),
                format!("{:?} is not a Kubernetes name", v.get_ref()),
                Some("lowercase letters, digits and '-'".into()),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    Ok(Fleet {
        path: path.to_path_buf(),
        image: spanned(&parsed.fleet.image),
        namespace: spanned(&parsed.fleet.namespace),
        store_env,
        store_secret: spanned(&parsed.fleet.store_secret)
            .unwrap_or_else(|| DEFAULT_STORE_SECRET.into()),
        classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Fleet, CampaignError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("machines.toml");
        std::fs::write(&path, text).unwrap();
        load_fleet(&path, &[1, 2, 3])
    }

    #[test]
    fn classes_default_to_every_day_and_their_own_runner_label() {
        let fleet = load(
            "[[class]]\nname = \"laptop\"\ndays = [2, 1, 2]\n[[class]]\nname = \"server\"\nnode_selector = { pool = \"big\" }\n",
        )
        .unwrap();
        assert_eq!(fleet.classes[0].days, [1, 2]);
        assert_eq!(fleet.classes[1].days, [1, 2, 3]);
        assert_eq!(fleet.classes[1].runs_on, ["self-hosted", "server"]);
        assert_eq!(fleet.store_env, DEFAULT_STORE_ENV);
        let shards = fleet.shards();
        assert_eq!(shards.len(), 5);
        assert_eq!(shards[4].id("n1"), "n1/server/day-3");
        assert_eq!(shards[4].index, 2);
    }

    #[test]
    fn mistakes_are_named_with_their_line() {
        let e = load("[[class]]\nname = \"Big Box\"\n[[class]]\nname = \"gpu\"\ndays = [9]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":2:") && e.contains("not a short DNS label"),
            "{e}"
        );
        assert!(e.contains(":5:") && e.contains("no day 9"), "{e}");
        let e = load("[[class]]\nname = \"a\"\ncolour = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":3:") && e.contains("colour"), "{e}");
        let e = load("[fleet]\nstore_env = \"1X\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no machine class") && e.contains("store_env"),
            "{e}"
        );
    }
}
