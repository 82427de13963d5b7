//! `campaign flamegraph --diff BEFORE AFTER`: a differential flame graph.

use std::path::Path;

use super::{CommandError, exit};
use crate::profile::{FlameGraphTitle, FoldedStacks, render_differential};

/// `campaign flamegraph --diff BEFORE AFTER`.
pub fn differential_flamegraph(
    before: &Path,
    after: &Path,
    output: &Path,
) -> Result<(String, u8), CommandError> {
    let read = |p: &Path| FoldedStacks::read(p).map_err(|e| CommandError::Analysis(e.to_string()));
    let (a, b) = (read(before)?, read(after)?);
    let title = FlameGraphTitle {
        title: format!("differential: {} → {}", before.display(), after.display()),
        subtitle: Some(format!(
            "shape of the second profile ({} samples); red grew, blue shrank, shares normalised ({} samples before)",
            b.total_samples(),
            a.total_samples()
        )),
    };
    let svg =
        render_differential(&a, &b, &title).map_err(|e| CommandError::Analysis(e.to_string()))?;
    crate::report::write_rendered(output, &svg)?;
    Ok((
        format!("differential flame graph: {}\n", output.display()),
        exit::OK,
    ))
}
