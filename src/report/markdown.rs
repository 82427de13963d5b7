//! Markdown tables for every Markdown writer (summary.md, the roadmap).
//! Written here rather than with comfy-table's Markdown preset because a
//! GitHub table needs per-column alignment markers (`---:`) and cells
//! escaped so that a `|` or a line break in a case name cannot break the
//! table; the preset does neither.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table built row by row and printed with `Display`.
#[derive(Debug, Clone)]
pub struct MarkdownTable {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl MarkdownTable {
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Self {
            columns: columns
                .iter()
                .map(|(name, align)| (name.to_string(), *align))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are left empty, extra cells dropped.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut row: Vec<String> = cells.into_iter().map(Into::into).collect();
        row.resize(self.columns.len(), String::new());
        self.rows.push(row);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// A cell's text made safe inside a table row. GitHub reads `\|` as a
/// pipe even inside a code span, and a line break would end the row.
fn escape_cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\r', '\n'], " ")
}

/// Inline code that survives any backticks inside the text.
pub fn code(text: &str) -> String {
    let longest_run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

impl fmt::Display for MarkdownTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = |cells: &mut dyn Iterator<Item = String>| {
            let cells: Vec<String> = cells.collect();
            format!("| {} |", cells.join(" | "))
        };
        writeln!(
            f,
            "{}",
            line(&mut self.columns.iter().map(|(name, _)| escape_cell(name)))
        )?;
        writeln!(
            f,
            "{}",
            line(&mut self.columns.iter().map(|(_, align)| match align {
                Align::Left => "---".to_string(),
                Align::Right => "---:".to_string(),
            }))
        )?;
        for row in &self.rows {
            writeln!(f, "{}", line(&mut row.iter().map(|c| escape_cell(c))))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_has_alignment_markers_and_escaped_cells() {
        let mut t = MarkdownTable::new(&[("case", Align::Left), ("p99 ms", Align::Right)]);
        t.row(["a|b\nc", "1.5"]);
        t.row(["short"]);
        assert_eq!(
            t.to_string(),
            "| case | p99 ms |\n| --- | ---: |\n| a\\|b c | 1.5 |\n| short |  |\n"
        );
    }

    #[test]
    fn code_spans_hold_backticks() {
        assert_eq!(code("plain"), "`plain`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x"), "`` `x ``");
    }
}
