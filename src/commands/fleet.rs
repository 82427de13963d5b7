//! `campaign fleet`: one campaign on several classes of machine, run by the
//! schedulers teams already have. `plan` writes their files; each shard
//! runs `fleet run` against the shared store; `status` and `report` read
//! the store.

use std::path::{Path, PathBuf};

use super::{CommandError, exit};
use crate::campaign::{Campaign, Fleet, Shard, load_fleet};
use crate::output::{OutputError, OutputLayout};
use crate::report::{
    FleetFiles, FleetValue, JsonFile, ShardStatusLine, github_workflow, kubernetes_job,
    render_fleet_report, render_fleet_status, write_rendered,
};
use crate::store::{NightFilter, ShardMark, ShardState, StoreLocation};

/// The files and the fleet run every `fleet` command starts from.
#[derive(Debug, Clone)]
pub struct FleetArgs {
    pub campaign: PathBuf,
    pub machines: PathBuf,
    pub out: Option<PathBuf>,
    /// The fleet run: a scheduler's run id or a night's date.
    pub fleet_run: Option<String>,
    /// `--store`, else the fleet's variable, else the campaign's `[store]`.
    pub store: Option<String>,
    pub json: bool,
}

/// What `fleet run` adds: which shard, and how to run it.
#[derive(Debug, Clone)]
pub struct FleetRunArgs {
    pub fleet: FleetArgs,
    pub class: String,
    pub day: Option<u32>,
    pub index: Option<usize>,
    pub quick: bool,
    pub runs: Option<u32>,
    pub threads: Option<crate::campaign::bounds::Threads>,
}

fn open(args: &FleetArgs) -> Result<(Campaign, OutputLayout, Fleet), CommandError> {
    let (campaign, layout) = super::open_campaign(&args.campaign, args.out.as_deref())?;
    let days: Vec<u32> = campaign.days.iter().map(|d| d.number).collect();
    let fleet = load_fleet(&args.machines, &days)?;
    Ok((campaign, layout, fleet))
}

/// A fleet run's name: no `/` (it leads every shard id) and not empty.
fn fleet_run(args: &FleetArgs) -> Result<String, CommandError> {
    let run = args
        .fleet_run
        .clone()
        .unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%d").to_string());
    if run.is_empty() || run.contains('/') || run.chars().any(char::is_whitespace) {
        return Err(CommandError::Usage(format!(
            "--fleet-run {run:?}: a fleet run is a name without '/' or spaces (a scheduler's run id, a date)"
        )));
    }
    Ok(run)
}

/// The shared store: `--store`, else the fleet's variable, else the
/// campaign's `[store]`, else the results folder's SQLite file.
fn store_of(
    args: &FleetArgs,
    fleet: &Fleet,
    campaign: &Campaign,
    layout: &OutputLayout,
) -> Result<String, CommandError> {
    let text = match &args.store {
        Some(s) => s.clone(),
        None => match std::env::var(&fleet.store_env)
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            Some(url) => url,
            None => match campaign.store()? {
                Some(s) => s,
                None => StoreLocation::default_in(&layout.root)
                    .describe()
                    .to_string(),
            },
        },
    };
    StoreLocation::parse(&text)?;
    Ok(text)
}

/// `campaign fleet plan`: the shards, a GitHub Actions workflow and a
/// Kubernetes Indexed Job per class, under `<results>/<campaign>/fleet/`.
pub fn fleet_plan(args: &FleetArgs) -> Result<u8, CommandError> {
    let (campaign, layout, fleet) = open(args)?;
    let run = fleet_run(args)?;
    let dir = layout.campaign_dir.join("fleet");
    let relative = |p: &Path| p.display().to_string();
    let files = FleetFiles {
        fleet: &fleet,
        campaign_name: campaign.name(),
        campaign_file: &relative(&args.campaign),
        machines_file: &relative(&args.machines),
    };
    let mut written = Vec::new();
    let mut write = |path: PathBuf, text: &[u8]| -> Result<(), CommandError> {
        write_rendered(&path, text)?;
        written.push(path);
        Ok(())
    };
    let shards = fleet.shards();
    let listing: Vec<serde_json::Value> = shards
        .iter()
        .map(|s| {
            serde_json::json!({"shard": s.id(&run), "class": s.class, "day": s.day, "index": s.index})
        })
        .collect();
    write(
        dir.join("shards.json"),
        JsonFile::text(&listing)?.as_bytes(),
    )?;
    write(
        dir.join("github-workflow.yml"),
        github_workflow(&files).as_bytes(),
    )?;
    let mut notes = Vec::new();
    if fleet.image.is_some() {
        for class in &fleet.classes {
            write(
                dir.join("kubernetes").join(format!("{}.yaml", class.name)),
                kubernetes_job(&files, class, &run).as_bytes(),
            )?;
        }
    } else {
        notes.push(format!(
            "no Kubernetes Jobs: {} names no [fleet] image (a container image with campaign on its PATH)",
            fleet.path.display()
        ));
    }
    println!(
        "fleet run {run}: {} shards on {} classes ({})",
        shards.len(),
        fleet.classes.len(),
        fleet
            .classes
            .iter()
            .map(|c| format!(
                "{}: days {}",
                c.name,
                c.days
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    for path in &written {
        println!("wrote {}", path.display());
    }
    for note in notes {
        eprintln!("note: {note}");
    }
    Ok(exit::OK)
}

/// A fleet shard marked running in the store, whose night is next: what
/// `campaign run` is given beyond the shard's own flags.
pub(super) struct ShardNight {
    pub day: u32,
    /// The store every shard of the fleet run writes to.
    pub store: String,
    pub machine_class: String,
    pub mark: ShardMark,
    location: StoreLocation,
}

/// The first half of `campaign fleet run`: the shard its scheduler
/// started, resolved and marked running in the store.
pub(super) fn start_shard(args: &FleetRunArgs) -> Result<ShardNight, CommandError> {
    let (campaign, layout, fleet) = open(&args.fleet)?;
    let run = fleet_run(&args.fleet)?;
    let class = fleet.class(&args.class).ok_or_else(|| {
        CommandError::Usage(format!(
            "--class {}: {} has no such class; classes: {}",
            args.class,
            fleet.path.display(),
            fleet
                .classes
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let days = || {
        class
            .days
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let day = match (args.day, args.index) {
        (Some(day), _) if class.days.contains(&day) => day,
        (Some(day), _) => {
            return Err(CommandError::Usage(format!(
                "--day {day}: class {} does not run it; its days: {}",
                class.name,
                days()
            )));
        }
        (None, Some(index)) => *class.days.get(index).ok_or_else(|| {
            CommandError::Usage(format!(
                "--index {index}: class {} has {} days ({}); indexes 0 to {}",
                class.name,
                class.days.len(),
                days(),
                class.days.len().saturating_sub(1)
            ))
        })?,
        (None, None) => {
            return Err(CommandError::Usage(
                "fleet run needs --day N or --index I (a Kubernetes Indexed Job's completion index)"
                    .into(),
            ));
        }
    };
    let store = store_of(&args.fleet, &fleet, &campaign, &layout)?;
    let location = StoreLocation::parse(&store)?;
    let shard = Shard {
        class: class.name.clone(),
        day,
        index: class.days.iter().position(|d| *d == day).unwrap_or(0),
    };
    let mark = ShardMark {
        campaign: campaign.name().to_string(),
        shard: shard.id(&run),
        fleet_run: run.clone(),
        machine_class: class.name.clone(),
        day,
        state: ShardState::Running,
        run_id: None,
        updated_at: chrono::Utc::now(),
    };
    // A store that cannot be reached stops the shard before it measures.
    crate::store::open(&location)?.mark_shard(&mark)?;
    eprintln!(
        "fleet run {run}: shard {} (class {}, day {day}), store {}",
        mark.shard,
        class.name,
        location.describe()
    );
    Ok(ShardNight {
        day,
        store,
        machine_class: class.name.clone(),
        mark,
        location,
    })
}

/// The second half, after the night ran (or failed): a shard that stored
/// no night says so in the store.
pub(super) fn finish_shard(shard: ShardNight) {
    let ShardNight { mark, location, .. } = shard;
    let done = crate::store::open(&location)
        .and_then(|mut s| s.shards(&mark.campaign, &mark.fleet_run))
        .map(|rows| {
            rows.iter()
                .any(|r| r.shard == mark.shard && r.state == ShardState::Done)
        })
        .unwrap_or(false);
    if !done {
        let failed = ShardMark {
            state: ShardState::Failed,
            updated_at: chrono::Utc::now(),
            ..mark
        };
        if let Err(e) = crate::store::open(&location).and_then(|mut s| s.mark_shard(&failed)) {
            eprintln!("warning: the shard's failure was not recorded: {e}");
        }
    }
}

/// Where each shard of a fleet run stands, from the store.
fn status_lines(fleet: &Fleet, rows: &[ShardMark], run: &str) -> Vec<ShardStatusLine> {
    fleet
        .shards()
        .iter()
        .map(|s| {
            let id = s.id(run);
            let row = rows.iter().find(|r| r.shard == id);
            ShardStatusLine {
                shard: id,
                class: s.class.clone(),
                day: s.day,
                state: row.map_or("missing", |r| r.state.name()).to_string(),
                run_id: row.and_then(|r| r.run_id.clone()),
                updated_at: row.map(|r| {
                    r.updated_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                }),
            }
        })
        .collect()
}

/// `campaign fleet status`: every shard of a fleet run, done, running,
/// failed or missing; exit 0 only when every shard is done.
pub fn fleet_status(args: &FleetArgs) -> Result<u8, CommandError> {
    let (campaign, layout, fleet) = open(args)?;
    let run = fleet_run(args)?;
    let store = store_of(args, &fleet, &campaign, &layout)?;
    let rows =
        crate::store::open_reader(&StoreLocation::parse(&store)?)?.shards(campaign.name(), &run)?;
    let lines = status_lines(&fleet, &rows, &run);
    if args.json {
        let json = serde_json::to_string_pretty(&lines).map_err(OutputError::from)?;
        println!("{json}");
    } else {
        println!("{}", render_fleet_status(&run, &lines));
    }
    Ok(all_done(&lines))
}

/// 0 when every shard is done, else 4: a fleet run is not whole yet.
fn all_done(lines: &[ShardStatusLine]) -> u8 {
    if lines.iter().all(|l| l.state == ShardState::Done.name()) {
        exit::OK
    } else {
        exit::BENCHMARK_FAILED
    }
}

/// `campaign fleet report`: the fleet run's nights merged, each day's
/// series side by side across classes (`fleet_report.json` and `.md`).
pub fn fleet_report(args: &FleetArgs) -> Result<u8, CommandError> {
    let (campaign, layout, fleet) = open(args)?;
    let run = fleet_run(args)?;
    let store = store_of(args, &fleet, &campaign, &layout)?;
    let mut reader = crate::store::open_reader(&StoreLocation::parse(&store)?)?;
    let rows = reader.shards(campaign.name(), &run)?;
    let done: Vec<&ShardMark> = rows
        .iter()
        .filter(|r| r.state == ShardState::Done && r.run_id.is_some())
        .collect();
    let since = done
        .iter()
        .map(|r| r.updated_at)
        .min()
        .map(|t| t - chrono::Duration::days(1));
    let nights = reader.select_nights(&NightFilter {
        campaign: Some(campaign.name().to_string()),
        day: None,
        machine: crate::store::MachineMatch::Any,
        since,
    })?;
    let mut values: Vec<FleetValue> = Vec::new();
    for mark in &done {
        let Some(night) = nights
            .iter()
            .find(|n| Some(&n.run_id) == mark.run_id.as_ref())
        else {
            continue;
        };
        for (series, s) in &night.series {
            values.push(FleetValue {
                day: mark.day,
                series: series.clone(),
                class: mark.machine_class.clone(),
                unit: s.unit.clone(),
                median: s.median,
                runs: s.run_values.len(),
                shard: mark.shard.clone(),
            });
        }
    }
    values.sort_by(|a, b| (a.day, &a.series, &a.class).cmp(&(b.day, &b.series, &b.class)));
    let classes: Vec<String> = fleet.classes.iter().map(|c| c.name.clone()).collect();
    let text = render_fleet_report(&run, &classes, &values);
    let lines = status_lines(&fleet, &rows, &run);
    let dir = layout.campaign_dir.join("fleet");
    let merged = serde_json::json!({
        "campaign": campaign.name(),
        "fleet_run": run,
        "shards": lines,
        "values": values,
    });
    // Rendered once: `--json` prints the file's bytes.
    let merged_json = JsonFile::text(&merged)?;
    write_rendered(
        &dir.join(format!("fleet_report_{run}.json")),
        merged_json.as_bytes(),
    )?;
    write_rendered(&dir.join(format!("fleet_report_{run}.md")), text.as_bytes())?;
    if args.json {
        println!("{merged_json}");
    } else {
        println!("{}\n{text}", render_fleet_status(&run, &lines));
    }
    Ok(all_done(&lines))
}
