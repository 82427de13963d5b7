//! The nights a `campaign run` reads and writes, and `campaign history`
//! reads: the results store's, with the JSONL history beside it for the
//! nights from before the store. A store that cannot be opened never
//! costs a night its verdict: the JSONL history is read instead.

use super::{
    HistoryFile, HistoryFileError, MachineMatch, NightQuery, ResultsStore, ShardMark, StoreError,
    StoreLocation, StoredNight, WriteOutcome,
};
use crate::analysis::{Comparison, HistoryEntry};
use crate::model::DailyReport;
use crate::output::OutputLayout;

/// Why the nights could not be read or written: the store, or the JSONL
/// history it falls back to.
#[derive(Debug, thiserror::Error)]
pub enum NightsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    History(#[from] HistoryFileError),
}

/// The store `--store` names, or the results folder's own.
pub fn store_location(
    store: Option<&str>,
    layout: &OutputLayout,
) -> Result<StoreLocation, StoreError> {
    Ok(match store {
        Some(text) => StoreLocation::parse(text)?,
        None => StoreLocation::default_in(&layout.root),
    })
}

/// Writes a finished night to the store.
pub fn store_night(
    store: Option<&str>,
    layout: &OutputLayout,
    report: &DailyReport,
    comparison: Option<&Comparison>,
    entry: HistoryEntry,
    shard: Option<&ShardMark>,
) -> Result<WriteOutcome, StoreError> {
    let location = store_location(store, layout)?;
    let mut night = StoredNight::from_report(report, comparison, entry);
    night.shard = shard.map(|mark| ShardMark {
        updated_at: chrono::Utc::now(),
        ..mark.clone()
    });
    super::open(&location)?.write_night(&night)
}

/// The JSONL history's nights of the machines matched.
pub fn jsonl_nights(
    layout: &OutputLayout,
    day: u32,
    machine: &MachineMatch,
) -> Result<Vec<HistoryEntry>, NightsError> {
    let mut nights = Vec::new();
    for (key, file) in HistoryFile::of_every_machine(layout, day) {
        let wanted = match machine {
            MachineMatch::Exact(k) => key == *k,
            MachineMatch::AnyDevice(p) => {
                key == *p
                    || key
                        .strip_prefix(p.as_str())
                        .is_some_and(|d| d.starts_with('-'))
            }
            MachineMatch::Any => true,
        };
        if wanted {
            nights.extend(file.read()?);
        }
    }
    nights.sort_by_key(|e| e.recorded_at);
    Ok(nights)
}

/// This machine's nights of a campaign's day: the store's, unless the
/// JSONL history holds more of them (nights from before the store, not
/// yet imported), which it then says.
pub fn machine_nights(
    store: &mut dyn ResultsStore,
    location: &StoreLocation,
    layout: &OutputLayout,
    campaign: &str,
    day: u32,
    machine: &MachineMatch,
) -> Result<Vec<HistoryEntry>, NightsError> {
    let jsonl = jsonl_nights(layout, day, machine)?;
    let stored = store.nights(&NightQuery {
        campaign: campaign.to_string(),
        day,
        machine: machine.clone(),
    })?;
    if stored.len() >= jsonl.len() {
        return Ok(stored);
    }
    if !stored.is_empty() {
        eprintln!(
            "note: {} of this machine's nights are in the JSONL history but not in {}; `campaign history --import` copies them",
            jsonl.len() - stored.len(),
            location.describe()
        );
    }
    Ok(jsonl)
}

/// The earlier nights a run's verdicts read (persistence, night-to-night
/// noise): this machine's, from the store as `campaign history` reads
/// them. A store that cannot be opened falls back to the JSONL history,
/// with a warning: the night is still judged.
pub fn earlier_nights(
    store: Option<&str>,
    layout: &OutputLayout,
    report: &DailyReport,
) -> Result<Vec<HistoryEntry>, NightsError> {
    let machine_key = report.environment.machine_key();
    let location = store_location(store, layout)?;
    let from_store = super::open(&location)
        .map_err(NightsError::from)
        .and_then(|mut opened| {
            machine_nights(
                opened.as_mut(),
                &location,
                layout,
                &report.campaign.name,
                report.day,
                &MachineMatch::Exact(machine_key.clone()),
            )
        });
    match from_store {
        Ok(nights) => Ok(nights),
        Err(e) => {
            eprintln!("warning: {e}; the verdicts read the JSONL history instead");
            Ok(HistoryFile::of(layout, &machine_key, report.day).read()?)
        }
    }
}
