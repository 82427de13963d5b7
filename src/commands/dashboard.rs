//! `campaign dashboard`: the results store as pages a team opens every
//! morning, served (`--addr`) or written as static files (`--export DIR`)
//! for a CI artifact. Both render the same pages from one read of the
//! store.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::Utc;

use super::{CommandError, exit};
use crate::analysis::{Comparison, Dashboard, DashboardNight, NightSeries, build_dashboard};
use crate::model::DailyReport;
use crate::report::{
    DashboardView, SitePage, dashboard_report_path, render_dashboard, render_night_report,
    report_flame_graphs,
};
use crate::store::{NightFilter, StoreLocation, StoredNight};

/// Nights of each series the front page looks back over when not given.
pub const DEFAULT_RECENT_NIGHTS: usize = 14;

pub struct DashboardArgs {
    /// `--store`; `None` is `results.sqlite` in `out`.
    pub store: Option<String>,
    /// The results folder (for the default store).
    pub out: PathBuf,
    pub addr: SocketAddr,
    pub export: Option<PathBuf>,
    pub recent_nights: usize,
    /// Only the nights of the last this many days (a large store's
    /// window); `None`: every night.
    pub since_days: Option<u32>,
    /// Changes smaller than this, in %, stay off the front page.
    pub threshold_pct: f64,
}

fn location(args: &DashboardArgs) -> Result<StoreLocation, CommandError> {
    let location = match &args.store {
        Some(text) => StoreLocation::parse(text)?,
        None => StoreLocation::default_in(&args.out),
    };
    // Opening an SQLite file creates it: a dashboard of a store that is
    // not there is a mistaken path, not an empty history.
    if let StoreLocation::Sqlite(path) = &location
        && !path.exists()
    {
        return Err(CommandError::Usage(format!(
            "no results store at {}\n  help: every finished `campaign run` writes one into its results folder; name another with --store PATH|postgres://…, or the folder with --out",
            path.display()
        )));
    }
    Ok(location)
}

/// A stored night as the dashboard reads it.
fn dashboard_night(night: StoredNight) -> DashboardNight {
    let environment = serde_json::from_str::<serde_json::Value>(&night.environment)
        .ok()
        .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        .map(|v| {
            let mut flat = crate::model::flatten_json(&v);
            flat.remove("git_commit");
            flat
        });
    DashboardNight {
        run_id: night.run_id,
        machine_key: night.machine_key,
        environment,
        has_report: night.has_report,
        series: night
            .series
            .into_iter()
            .map(|(k, s)| {
                (
                    k,
                    NightSeries {
                        unit: s.unit,
                        higher_is_better: s.higher_is_better,
                        run_values: s.run_values,
                    },
                )
            })
            .collect(),
        entry: night.entry,
    }
}

/// The dashboard of every night in the store, and how many nights it read.
fn read_dashboard(
    location: &StoreLocation,
    recent_nights: usize,
    since_days: Option<u32>,
    threshold_pct: f64,
) -> Result<(Dashboard, usize), CommandError> {
    let mut store = crate::store::open_reader(location)?;
    let filter = NightFilter {
        since: since_days.map(|d| Utc::now() - chrono::Duration::days(i64::from(d))),
        ..NightFilter::all()
    };
    let nights: Vec<DashboardNight> = store
        .select_nights(&filter)?
        .into_iter()
        .map(dashboard_night)
        .collect();
    let count = nights.len();
    Ok((build_dashboard(nights, recent_nights, threshold_pct), count))
}

/// A night's report page, from the store's documents: `None` when the
/// night or its report is not stored.
fn night_report(
    location: &StoreLocation,
    run_id: &str,
) -> Result<Option<(String, DailyReport)>, CommandError> {
    let mut store = crate::store::open_reader(location)?;
    let Some(documents) = store.night_documents(run_id)? else {
        return Ok(None);
    };
    let Some(report_json) = documents.report_json else {
        return Ok(None);
    };
    let report: DailyReport = serde_json::from_str(&report_json).map_err(|e| {
        CommandError::Analysis(format!(
            "{}: the report of night {run_id} is not a day report: {e}",
            location.describe()
        ))
    })?;
    let comparison: Option<Comparison> = documents
        .comparison_json
        .and_then(|c| serde_json::from_str(&c).ok());
    let curves = crate::analysis::day_curves(&report);
    Ok(Some((
        render_night_report(&report, comparison.as_ref(), &curves),
        report,
    )))
}

/// The nights whose whole report an export writes: the last
/// `recent_nights` of each campaign day on each machine, and every night a
/// change or regression begins on (the ones a reader clicks through to).
fn exported_reports(d: &Dashboard) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let mut by_group: BTreeMap<(&str, u32, &str), Vec<usize>> = BTreeMap::new();
    for (i, n) in d.nights.iter().enumerate() {
        by_group
            .entry((n.campaign.as_str(), n.day, n.machine_key.as_str()))
            .or_default()
            .push(i);
    }
    for members in by_group.values() {
        out.extend(members.iter().rev().take(d.recent_nights));
    }
    for day in &d.days {
        for s in &day.series {
            for m in &s.machines {
                out.extend(m.changes.iter().map(|c| c.night));
            }
        }
    }
    out.retain(|&i| d.nights[i].has_report);
    out
}

/// A flame graph a stored report names, if it is one: an `.svg` file in a
/// `flame_graphs` folder that starts as SVG. A report in a shared store
/// is written by any machine; the path it names is not trusted to point
/// at a flame graph, and nothing else is read.
fn flame_graph_file(recorded: &str) -> Option<Vec<u8>> {
    let path = std::fs::canonicalize(recorded).ok()?;
    let in_folder = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|f| f == "flame_graphs");
    let svg = path.extension().is_some_and(|e| e == "svg");
    if !(in_folder && svg) {
        return None;
    }
    let bytes = std::fs::read(&path).ok()?;
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
    (head.contains("<svg") || head.trim_start().starts_with("<?xml")).then_some(bytes)
}

fn write_page(dir: &Path, path: &str, bytes: &[u8]) -> Result<(), CommandError> {
    let file = dir.join(path);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|source| {
            CommandError::Usage(format!(
                "cannot write the dashboard into {}: {source}\n  help: pass a writable folder with --export DIR",
                parent.display()
            ))
        })?;
    }
    crate::report::write_rendered(&file, bytes)?;
    Ok(())
}

/// `campaign dashboard --export DIR`.
fn export(args: &DashboardArgs, dir: &Path) -> Result<(String, u8), CommandError> {
    let location = location(args)?;
    let (mut dashboard, count) = read_dashboard(
        &location,
        args.recent_nights,
        args.since_days,
        args.threshold_pct,
    )?;
    let with_report = exported_reports(&dashboard);
    // The nights' reports first: a night page links its report only where
    // the export holds it.
    let mut written = BTreeSet::new();
    let (mut flame_graphs, mut missing_flame_graphs, mut unreadable) =
        (BTreeSet::new(), 0, Vec::new());
    for &i in &with_report {
        let run_id = &dashboard.nights[i].run_id;
        // One night's report that cannot be read costs that page, not the
        // export.
        let (html, report) = match night_report(&location, run_id) {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(e) => {
                unreadable.push(format!("{run_id}: {e}"));
                continue;
            }
        };
        write_page(dir, &dashboard_report_path(run_id), html.as_bytes())?;
        written.insert(i);
        for (name, source) in report_flame_graphs(&report) {
            match flame_graph_file(&source) {
                Some(bytes) => {
                    if flame_graphs.insert(name.clone()) {
                        write_page(dir, &format!("flame_graphs/{name}"), &bytes)?;
                    }
                }
                None => missing_flame_graphs += 1,
            }
        }
    }
    for (i, n) in dashboard.nights.iter_mut().enumerate() {
        n.has_report = written.contains(&i);
    }
    let view = DashboardView {
        dashboard: &dashboard,
        store: &location.describe(),
        generated_at: Utc::now(),
    };
    let pages = render_dashboard(&view);
    for SitePage { path, html } in &pages {
        write_page(dir, path, html.as_bytes())?;
    }
    let reports = written.len();
    let mut text = format!(
        "dashboard: {}\n{} nights, {} pages, {} night reports, {} flame graphs written\n",
        dir.join("index.html").display(),
        count,
        pages.len(),
        reports,
        flame_graphs.len()
    );
    if missing_flame_graphs > 0 {
        text.push_str(&format!(
            "{missing_flame_graphs} flame graph link(s) of the reports name no flame graph here (measured on another machine, moved, or not an .svg in a flame_graphs folder): those links stay dead\n"
        ));
    }
    if !unreadable.is_empty() {
        eprintln!(
            "warning: {} night report(s) could not be read and were left out:\n  {}",
            unreadable.len(),
            unreadable.join("\n  ")
        );
    }
    Ok((text, exit::OK))
}

/// What the server holds: the rendered pages, rebuilt when the store's
/// count of nights changes, and the flame graph files the reports served
/// so far link (only those are served, by name).
struct Site {
    location: StoreLocation,
    recent_nights: usize,
    since_days: Option<u32>,
    threshold_pct: f64,
    pages: Mutex<(usize, BTreeMap<String, String>)>,
    flame_graphs: Mutex<BTreeMap<String, PathBuf>>,
    /// When the store was last checked for new nights; held while one
    /// request refreshes.
    refreshing: Mutex<std::time::Instant>,
}

/// How often a request may check the store for new nights.
const REFRESH_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

impl Site {
    fn render(&self) -> Result<(usize, BTreeMap<String, String>), CommandError> {
        let (dashboard, count) = read_dashboard(
            &self.location,
            self.recent_nights,
            self.since_days,
            self.threshold_pct,
        )?;
        let view = DashboardView {
            dashboard: &dashboard,
            store: &self.location.describe(),
            generated_at: Utc::now(),
        };
        Ok((
            count,
            render_dashboard(&view)
                .into_iter()
                .map(|p| (p.path, p.html))
                .collect(),
        ))
    }

    /// Re-reads the store when nights were added since the pages were
    /// drawn: checked on any page's request, at most every
    /// [`REFRESH_CHECK`], by one request at a time (the others wait and
    /// then see the new pages).
    fn refresh(&self) -> Result<(), CommandError> {
        let Ok(mut last_check) = self.refreshing.lock() else {
            return Ok(());
        };
        if last_check.elapsed() < REFRESH_CHECK {
            return Ok(());
        }
        *last_check = std::time::Instant::now();
        let count = crate::store::open_reader(&self.location)?.night_count()?;
        let stale = self.pages.lock().map_or(true, |p| p.0 as u64 != count);
        if stale {
            let fresh = self.render()?;
            if let Ok(mut pages) = self.pages.lock() {
                *pages = fresh;
            }
        }
        Ok(())
    }

    /// (status, content type, body) of a path.
    fn answer(&self, path: &str) -> (u16, &'static str, Vec<u8>) {
        let path = path.trim_start_matches('/');
        let path = if path.is_empty() { "index.html" } else { path };
        const HTML: &str = "text/html; charset=utf-8";
        if path == "index.html"
            && let Err(e) = self.refresh()
        {
            return (
                503,
                "text/plain; charset=utf-8",
                format!("{e}\n").into_bytes(),
            );
        }
        if let Some(html) = self.pages.lock().ok().and_then(|p| p.1.get(path).cloned()) {
            return (200, HTML, html.into_bytes());
        }
        if let Some(run_id) = path
            .strip_prefix("nights/")
            .and_then(|p| p.strip_suffix(".report.html"))
        {
            return match night_report(&self.location, run_id) {
                Ok(Some((html, report))) => {
                    if let Ok(mut known) = self.flame_graphs.lock() {
                        for (name, source) in report_flame_graphs(&report) {
                            known.insert(name, PathBuf::from(source));
                        }
                    }
                    (200, HTML, html.into_bytes())
                }
                Ok(None) => (404, HTML, b"no report of this night is stored".to_vec()),
                Err(e) => (
                    503,
                    "text/plain; charset=utf-8",
                    format!("{e}\n").into_bytes(),
                ),
            };
        }
        if let Some(name) = path.strip_prefix("flame_graphs/") {
            let source = self
                .flame_graphs
                .lock()
                .ok()
                .and_then(|k| k.get(name).cloned());
            if let Some(bytes) = source.and_then(|s| flame_graph_file(&s.to_string_lossy())) {
                return (200, "image/svg+xml", bytes);
            }
        }
        (404, HTML, b"not found".to_vec())
    }
}

/// `campaign dashboard`: serves the pages until Ctrl-C or SIGTERM, or
/// writes them with `--export`.
pub fn dashboard_command(args: &DashboardArgs) -> Result<(String, u8), CommandError> {
    if let Some(dir) = &args.export {
        return export(args, dir);
    }
    let site = Site {
        location: location(args)?,
        recent_nights: args.recent_nights,
        since_days: args.since_days,
        threshold_pct: args.threshold_pct,
        pages: Mutex::new((0, BTreeMap::new())),
        flame_graphs: Mutex::new(BTreeMap::new()),
        refreshing: Mutex::new(std::time::Instant::now()),
    };
    // The first render before listening: a store that cannot be read is
    // said at once, and the first visitor does not wait for it.
    let first = site.render()?;
    if let Ok(mut pages) = site.pages.lock() {
        *pages = first;
    }
    let site = Arc::new(site);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CommandError::Analysis(format!("cannot start the HTTP server: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .map_err(|e| CommandError::Usage(format!("cannot listen on {}: {e}", args.addr)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| CommandError::Usage(format!("cannot listen on {}: {e}", args.addr)))?;
        if !addr.ip().is_loopback() {
            eprintln!(
                "warning: the dashboard listens on {addr}, reachable from other machines; it has no authentication"
            );
        }
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "dashboard: http://{addr}/");
        let _ = stdout.flush();
        eprintln!("serving the dashboard of {}; Ctrl-C stops", site.location.describe());
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let site = Arc::clone(&site);
            async move {
                let path = uri.path().to_string();
                let (status, content_type, body) =
                    tokio::task::spawn_blocking(move || site.answer(&path))
                        .await
                        .unwrap_or((500, "text/plain", b"the page failed".to_vec()));
                (
                    axum::http::StatusCode::from_u16(status)
                        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
                    [
                        (axum::http::header::CONTENT_TYPE, content_type),
                        (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                    ],
                    body,
                )
            }
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(crate::runner::wait_for_stop())
            .await
            .map_err(|e| CommandError::Analysis(format!("the dashboard server failed: {e}")))
    })?;
    Ok((String::new(), exit::OK))
}
