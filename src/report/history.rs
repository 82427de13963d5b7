//! `campaign history`: a series over the nights with its change points,
//! as text for a person and CSV for a spreadsheet.

use std::fmt::Write as _;

use crate::analysis::{CHANGE_POINT_RULE, SeriesHistory};

/// Below this lag-1 correlation of the nights the history says nothing of
/// it: over 30 independent nights the estimate's standard error is about
/// 0.18 (1/√n), so a lower mark would often call them wandering.
const NOTED_AUTOCORRELATION: f64 = 0.3;

/// A commit cut to 10 characters, keeping the mark of a dirty tree.
fn short(commit: &str) -> String {
    let (hash, dirty) = match commit.strip_suffix("-dirty") {
        Some(hash) => (hash, "-dirty"),
        None => (commit, ""),
    };
    format!("{}{dirty}", hash.get(..10).unwrap_or(hash))
}

fn signed(pct: f64) -> String {
    format!("{pct:+.1} %")
}

/// The series night by night, each change point and creep marked where
/// it starts, then what lies between the nights on either side of each.
pub fn render_history(series: &[SeriesHistory]) -> String {
    let mut out = String::new();
    for s in series {
        let c = &s.changes;
        let minor = |is_minor: bool| {
            if is_minor {
                format!("; minor: below the {} % threshold", s.threshold_pct)
            } else {
                String::new()
            }
        };
        let _ = write!(out, "{}", s.series);
        if let (Some(sd), Some(mde)) = (c.noise_sd_pct, c.mid_series_mde_pct) {
            // Nights that wander together are why the MDE is above what
            // the noise alone suggests: say so where it is not small.
            let wander = c
                .night_autocorrelation
                .filter(|phi| *phi >= NOTED_AUTOCORRELATION)
                .map_or(String::new(), |phi| {
                    format!("; nights wander together, lag-1 correlation {phi:.2}")
                });
            let _ = write!(
                out,
                "  (night-to-night noise {sd:.1} %{wander}; smallest step found mid-series {mde:.1} %)"
            );
        }
        out.push('\n');
        for (i, night) in s.nights.iter().enumerate() {
            let mut marks = Vec::new();
            if let Some(cp) = c.change_points.iter().find(|cp| cp.night == i) {
                let size = if cp.minor {
                    format!(", minor: below the {} % threshold", s.threshold_pct)
                } else {
                    String::new()
                };
                marks.push(format!(
                    "◀ change point {} (p {:.4}; {} nights before, {} after; smallest findable {:.1} %{size}){}",
                    signed(cp.shift_pct),
                    cp.p_value,
                    cp.nights_before,
                    cp.nights_after,
                    cp.mde_pct,
                    if cp.provisional {
                        ", provisional until 10 nights follow it"
                    } else {
                        ""
                    }
                ));
            }
            if let Some(creep) = c.creeps.iter().find(|k| k.first_night == i) {
                marks.push(format!(
                    "◀ creep starts: {} per night, {} to night {} (p {:.4}{})",
                    signed(creep.slope_pct_per_night),
                    signed(creep.total_pct),
                    creep.last_night + 1,
                    creep.p_value,
                    minor(creep.minor)
                ));
            }
            if let Some(t) = c.tail.as_ref().filter(|t| t.first_night == i) {
                marks.push(format!(
                    "◀ watched: the last nights sit {} off the level before (too few to test yet{})",
                    signed(t.shift_pct),
                    minor(t.minor)
                ));
            }
            let _ = writeln!(
                out,
                "  {:>4}  {}  {:>14.4}  {} run{}  {}{}  {}",
                i + 1,
                night.recorded_at.format("%Y-%m-%d %H:%M"),
                night.value,
                night.runs,
                if night.runs == 1 { "" } else { "s" },
                short(&night.git_commit),
                if night.quick { " (quick)" } else { "" },
                marks.join("  ")
            );
        }
        for ctx in &s.contexts {
            let commits = if ctx.same_clean_commit {
                format!(
                    "nights {}–{} all built from {}: not a code change",
                    ctx.night.saturating_sub(1).max(1),
                    (ctx.night + 2).min(s.nights.len()),
                    short(&ctx.commits[0])
                )
            } else {
                let list: Vec<String> = ctx.commits.iter().map(|c| short(c)).collect();
                format!("commits around it: {}", list.join(" → "))
            };
            let _ = writeln!(out, "  {} at night {}: {commits}", ctx.kind, ctx.night + 1);
            if !ctx.environment_known {
                let _ = writeln!(
                    out,
                    "    environment: a report on either side is gone, not compared"
                );
            }
            if ctx.environment_known && ctx.environment_changes.is_empty() {
                let _ = writeln!(out, "    environment: the same on both nights");
            }
            for (field, before, after) in &ctx.environment_changes {
                let _ = writeln!(out, "    {field}: {before} → {after}");
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{CHANGE_POINT_RULE}");
    out
}

/// One row per series and night; `change` names a change point, a creep's
/// first night or the watched tail starting there.
pub fn render_history_csv(series: &[SeriesHistory]) -> String {
    let mut out =
        String::from("series,night,recorded_at,value,runs,quick,git_commit,change,shift_pct\n");
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for s in series {
        for (i, night) in s.nights.iter().enumerate() {
            let c = &s.changes;
            // A change smaller than the threshold is named `minor …`.
            let named = |kind: &str, minor: bool| {
                if minor {
                    format!("minor {kind}")
                } else {
                    kind.to_string()
                }
            };
            let (change, shift) = if let Some(cp) = c.change_points.iter().find(|cp| cp.night == i)
            {
                let kind = if cp.provisional {
                    "provisional change point"
                } else {
                    "change point"
                };
                (named(kind, cp.minor), format!("{:.3}", cp.shift_pct))
            } else if let Some(k) = c.creeps.iter().find(|k| k.first_night == i) {
                (named("creep", k.minor), format!("{:.3}", k.total_pct))
            } else if let Some(t) = c.tail.as_ref().filter(|t| t.first_night == i) {
                (named("watched", t.minor), format!("{:.3}", t.shift_pct))
            } else {
                (String::new(), String::new())
            };
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{}",
                quote(&s.series),
                i + 1,
                night.recorded_at.to_rfc3339(),
                night.value,
                night.runs,
                night.quick,
                quote(&night.git_commit),
                change,
                shift
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::SeriesChanges;

    fn series(night_autocorrelation: Option<f64>) -> SeriesHistory {
        SeriesHistory {
            series: "case iteration_ms".into(),
            threshold_pct: 5.0,
            nights: Vec::new(),
            changes: SeriesChanges {
                nights: 30,
                noise_sd_pct: Some(1.2),
                night_autocorrelation,
                mid_series_mde_pct: Some(4.1),
                ..SeriesChanges::default()
            },
            contexts: Vec::new(),
        }
    }

    /// The MDE counts nights that wander together; the text says why it
    /// is above what the noise alone suggests, and only where it matters.
    #[test]
    fn nights_that_wander_together_are_named_beside_the_mde() {
        let wandering = render_history(&[series(Some(0.46))]);
        assert!(
            wandering.contains(
                "(night-to-night noise 1.2 %; nights wander together, lag-1 correlation 0.46; smallest step found mid-series 4.1 %)"
            ),
            "{wandering}"
        );
        for quiet in [Some(0.29), Some(0.0), None] {
            let text = render_history(&[series(quiet)]);
            assert!(
                text.contains("(night-to-night noise 1.2 %; smallest step found mid-series 4.1 %)"),
                "{text}"
            );
        }
    }
}
