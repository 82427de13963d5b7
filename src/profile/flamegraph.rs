use std::io::BufReader;

use super::{FoldedStacks, ProfileError};

/// What a flame graph says about itself.
pub struct FlameGraphTitle {
    pub title: String,
    pub subtitle: Option<String>,
}

/// Renders a flame graph SVG. An empty profile is an error: inferno cannot
/// draw one, and an empty picture would look like a result.
pub fn render_flamegraph(
    stacks: &FoldedStacks,
    title: &FlameGraphTitle,
) -> Result<Vec<u8>, ProfileError> {
    if stacks.is_empty() {
        return Err(ProfileError::Empty);
    }
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.title.clone();
    options.subtitle = title.subtitle.clone();
    options.count_name = "samples".to_string();
    let lines: Vec<String> = stacks.lines().collect();
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
        .map_err(ProfileError::Render)?;
    Ok(svg)
}

/// A differential flame graph: the shape of `after`, coloured by how each
/// frame's samples changed from `before` (red grew, blue shrank).
pub fn render_differential(
    before: &FoldedStacks,
    after: &FoldedStacks,
    title: &FlameGraphTitle,
) -> Result<Vec<u8>, ProfileError> {
    if before.is_empty() || after.is_empty() {
        return Err(ProfileError::Empty);
    }
    let mut diff = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options {
            // Compare shares, not counts: the two runs sampled for different times.
            normalize: true,
            ..Default::default()
        },
        BufReader::new(before.to_text().as_bytes()),
        BufReader::new(after.to_text().as_bytes()),
        &mut diff,
    )
    .map_err(ProfileError::Render)?;
    let text = String::from_utf8_lossy(&diff).into_owned();
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.title.clone();
    options.subtitle = title.subtitle.clone();
    options.count_name = "samples".to_string();
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, text.lines(), &mut svg)
        .map_err(ProfileError::Render)?;
    Ok(svg)
}
