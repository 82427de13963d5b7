//! A fleet for the schedulers teams already have: a GitHub Actions
//! workflow whose matrix holds one job per shard, and a Kubernetes Indexed
//! Job per machine class (one pod per day, on that class's nodes, never
//! two on one node). Every shard runs `campaign fleet run` against the
//! shared store named by the fleet's variable. And the status and merged
//! results of a fleet run, as text.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::markdown::{Align, MarkdownTable, code};
use crate::campaign::{Fleet, MachineClass};

/// What every shard's command line needs.
#[derive(Debug, Clone)]
pub struct FleetFiles<'a> {
    pub fleet: &'a Fleet,
    pub campaign_name: &'a str,
    /// The campaign and machines files, as the scheduler's checkout or
    /// image sees them (relative to its working folder).
    pub campaign_file: &'a str,
    pub machines_file: &'a str,
}

fn yaml(value: &Value) -> String {
    serde_norway::to_string(value).unwrap_or_default()
}

/// A mapping's keys in the order given (a person reads `name` and `on`
/// before `jobs`); below the top level, keys are sorted.
fn yaml_in_order(entries: &[(&str, Value)]) -> String {
    entries
        .iter()
        .map(|(key, value)| {
            let mut one = serde_json::Map::new();
            one.insert((*key).to_string(), value.clone());
            yaml(&Value::Object(one))
        })
        .collect()
}

/// A Kubernetes name: lowercase letters, digits and `-`, at most `max`.
fn k8s_name(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    out.truncate(max);
    out.trim_end_matches('-').to_string()
}

/// The GitHub Actions workflow: a nightly schedule (and a manual start),
/// one matrix job per shard on its class's runners; the fleet run is the
/// workflow run, so a re-run of a failed job replaces that shard's night.
pub fn github_workflow(files: &FleetFiles<'_>) -> String {
    let include: Vec<Value> = files
        .fleet
        .shards()
        .iter()
        .filter_map(|s| {
            let class = files.fleet.class(&s.class)?;
            Some(json!({
                "class": s.class,
                "day": s.day,
                "runs_on": class.runs_on,
            }))
        })
        .collect();
    let env_name = &files.fleet.store_env;
    let workflow = yaml_in_order(&[
        (
            "name",
            json!(format!("campaign fleet: {}", files.campaign_name)),
        ),
        (
            "on",
            json!({
                "schedule": [{"cron": "0 2 * * *"}],
                "workflow_dispatch": {},
            }),
        ),
        (
            "concurrency",
            json!({
                "group": format!("campaign-fleet-{}", k8s_name(files.campaign_name, 40)),
                "cancel-in-progress": false,
            }),
        ),
        (
            "jobs",
            json!({
                "shard": {
                    "name": "${{ matrix.class }} day ${{ matrix.day }}",
                    "runs-on": "${{ matrix.runs_on }}",
                    "timeout-minutes": 360,
                    "strategy": {
                        "fail-fast": false,
                        "matrix": {"include": include},
                    },
                    "env": {
                        env_name.clone(): format!("${{{{ secrets.{env_name} }}}}"),
                    },
                    "steps": [
                        {"uses": "actions/checkout@v4"},
                        {"name": "Build", "run": "cargo build --release --locked"},
                        {
                            "name": "Run the shard",
                            "run": format!(
                                "target/release/campaign fleet run --campaign {} --machines {} --class \"${{{{ matrix.class }}}}\" --day \"${{{{ matrix.day }}}}\" --fleet-run \"${{{{ github.run_id }}}}\"",
                                files.campaign_file, files.machines_file
                            ),
                        },
                        {
                            "name": "Keep the shard's results",
                            "if": "always()",
                            "uses": "actions/upload-artifact@v4",
                            "with": {
                                "name": "results-${{ matrix.class }}-day-${{ matrix.day }}",
                                "path": "results/",
                                "if-no-files-found": "ignore",
                            },
                        },
                    ],
                },
            }),
        ),
    ]);
    format!(
        "# Written by `campaign fleet plan` from {}: one job per shard (a day on a\n# class of machine), each storing its night in the store that ${{{{ secrets.{env_name} }}}} names.\n{workflow}",
        files.machines_file,
    )
}

/// One class's Indexed Job: a pod per day (completion index → the class's
/// day), on the class's nodes, never two pods on one node (a neighbour
/// would be noise in the other's measurements); a failed index is retried
/// alone, and its retry replaces the shard's night.
pub fn kubernetes_job(files: &FleetFiles<'_>, class: &MachineClass, fleet_run: &str) -> String {
    let fleet = files.fleet;
    let name = k8s_name(
        &format!(
            "campaign-{}-{}-{}",
            k8s_name(files.campaign_name, 16),
            class.name,
            fleet_run
        ),
        63,
    );
    let labels = json!({
        "app.kubernetes.io/name": "campaign",
        "campaign.dev/campaign": k8s_name(files.campaign_name, 63),
        "campaign.dev/class": class.name,
        "campaign.dev/fleet-run": k8s_name(fleet_run, 63),
    });
    let mut metadata = json!({"name": name, "labels": labels});
    if let Some(ns) = &fleet.namespace {
        metadata["namespace"] = json!(ns);
    }
    let days = class.days.len();
    let mut pod_spec = json!({
        "restartPolicy": "Never",
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": {"matchLabels": {"campaign.dev/class": class.name}},
                    "topologyKey": "kubernetes.io/hostname",
                }],
            },
        },
        "containers": [{
            "name": "shard",
            "image": fleet.image.clone().unwrap_or_default(),
            "command": [
                "campaign", "fleet", "run",
                "--campaign", files.campaign_file,
                "--machines", files.machines_file,
                "--class", class.name,
                "--index", "$(JOB_COMPLETION_INDEX)",
                "--fleet-run", fleet_run,
            ],
            "env": [{
                "name": fleet.store_env,
                "valueFrom": {"secretKeyRef": {"name": fleet.store_secret, "key": "url"}},
            }],
        }],
    });
    if !class.node_selector.is_empty() {
        pod_spec["nodeSelector"] = json!(class.node_selector);
    }
    let job = yaml_in_order(&[
        ("apiVersion", json!("batch/v1")),
        ("kind", json!("Job")),
        ("metadata", metadata),
        (
            "spec",
            json!({
                "completionMode": "Indexed",
                "completions": days,
                "parallelism": days,
                "backoffLimitPerIndex": 2,
                "maxFailedIndexes": days,
                "ttlSecondsAfterFinished": 86400,
                "template": {
                    "metadata": {"labels": {
                        "app.kubernetes.io/name": "campaign",
                        "campaign.dev/class": class.name,
                    }},
                    "spec": pod_spec,
                },
            }),
        ),
    ]);
    format!(
        "# Written by `campaign fleet plan`: class {} of {}, fleet run {fleet_run}; index i runs day {}.\n{}",
        class.name,
        files.machines_file,
        class
            .days
            .iter()
            .enumerate()
            .map(|(i, d)| format!("{i}→{d}"))
            .collect::<Vec<_>>()
            .join(", "),
        job
    )
}

/// One shard's line of `campaign fleet status`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShardStatusLine {
    pub shard: String,
    pub class: String,
    pub day: u32,
    /// `done`, `running`, `failed` or `missing`.
    pub state: String,
    pub run_id: Option<String>,
    pub updated_at: Option<String>,
}

/// The status table.
pub fn render_fleet_status(fleet_run: &str, lines: &[ShardStatusLine]) -> String {
    let mut table = MarkdownTable::new(&[
        ("shard", Align::Left),
        ("class", Align::Left),
        ("day", Align::Right),
        ("state", Align::Left),
        ("night", Align::Left),
        ("since", Align::Left),
    ]);
    for l in lines {
        table.row([
            code(&l.shard),
            l.class.clone(),
            l.day.to_string(),
            l.state.clone(),
            l.run_id.as_deref().map_or_else(String::new, code),
            l.updated_at.clone().unwrap_or_default(),
        ]);
    }
    let count = |state: &str| lines.iter().filter(|l| l.state == state).count();
    let mut out = format!(
        "fleet run {fleet_run}: {} shards: {} done, {} running, {} failed, {} missing\n\n",
        lines.len(),
        count("done"),
        count("running"),
        count("failed"),
        count("missing")
    );
    let _ = write!(out, "{table}");
    out
}

/// One value of the merged fleet report: a series of one day on one class.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FleetValue {
    pub day: u32,
    pub series: String,
    pub class: String,
    pub unit: String,
    pub median: f64,
    pub runs: usize,
    pub shard: String,
}

/// The merged report: each day's series, one column per class.
pub fn render_fleet_report(fleet_run: &str, classes: &[String], values: &[FleetValue]) -> String {
    let mut out = format!("# Fleet run {fleet_run}\n\n");
    let mut days: Vec<u32> = values.iter().map(|v| v.day).collect();
    days.sort_unstable();
    days.dedup();
    for day in days {
        let _ = writeln!(out, "## Day {day}\n");
        let mut columns: Vec<(&str, Align)> = vec![("series", Align::Left), ("unit", Align::Left)];
        for c in classes {
            columns.push((c.as_str(), Align::Right));
        }
        let mut table = MarkdownTable::new(&columns);
        let mut series: Vec<&str> = values
            .iter()
            .filter(|v| v.day == day)
            .map(|v| v.series.as_str())
            .collect();
        series.sort_unstable();
        series.dedup();
        for s in series {
            let of = |class: &str| {
                values
                    .iter()
                    .find(|v| v.day == day && v.series == s && v.class == class)
            };
            let unit = classes
                .iter()
                .find_map(|c| of(c))
                .map_or_else(String::new, |v| v.unit.clone());
            let mut row = vec![s.to_string(), unit];
            for c in classes {
                row.push(of(c).map_or_else(|| "–".into(), |v| format!("{:.4}", v.median)));
            }
            table.row(row);
        }
        let _ = writeln!(out, "{table}");
    }
    out
}
