//! Where every key of a campaign file is, so that a problem found anywhere
//! (a type error while deserialising, a value out of range, a kind's
//! parameter) is reported at the line and column of the offending key,
//! with a path a person reads: `day 1, benchmark "ttft", field timeout_s`.
//!
//! Built from toml's spanned document. Tables written as `[headers]` span
//! only their header, so lookups go through a flat index of every key and
//! array element with the span of its value, innermost first.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path into the document, e.g. `days[0].benchmarks[1].params.prompt_lengths[2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    pub fn key(mut self, key: &str) -> Self {
        self.0.push(Segment::Key(key.to_string()));
        self
    }

    pub fn index(mut self, index: usize) -> Self {
        self.0.push(Segment::Index(index));
        self
    }

    /// Appends a path in serde_path_to_error's or dotted notation
    /// (`geometry.block_tokens[1]`).
    pub fn join_dotted(mut self, dotted: &str) -> Self {
        for part in dotted.split('.').filter(|p| !p.is_empty() && *p != "?") {
            let (key, indices) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !key.is_empty() {
                self.0.push(Segment::Key(key.to_string()));
            }
            for index in indices
                .split(['[', ']'])
                .filter_map(|n| n.parse::<usize>().ok())
            {
                self.0.push(Segment::Index(index));
            }
        }
        self
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Entry {
    path: FieldPath,
    /// The key's span; an array element's own span (it has no key).
    key: Range<usize>,
    value: Range<usize>,
}

/// The positions of a parsed campaign file's keys.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    entries: Vec<Entry>,
    /// `days[i]` → its `number`, and `days[i].benchmarks[j]` → its `name`,
    /// for readable paths.
    day_numbers: Vec<Option<String>>,
    benchmark_names: Vec<Vec<Option<String>>>,
}

impl SourceMap {
    /// `None` when the text is not TOML (the syntax error is reported
    /// on its own).
    pub fn parse(source: &str) -> Option<Self> {
        let document = DeTable::parse(source).ok()?;
        let mut map = Self::default();
        map.walk_table(document.get_ref(), &FieldPath::default());
        if let Some(days) = document
            .get_ref()
            .get("days")
            .and_then(|d| d.get_ref().as_array())
        {
            for day in days.iter() {
                let scalar = |key: &str| -> Option<String> {
                    let v = day.get_ref().as_table()?.get(key)?.get_ref();
                    v.as_str()
                        .map(str::to_string)
                        .or_else(|| v.as_integer().map(|i| i.as_str().to_string()))
                };
                map.day_numbers.push(scalar("number"));
                let names = day
                    .get_ref()
                    .as_table()
                    .and_then(|t| t.get("benchmarks"))
                    .and_then(|b| b.get_ref().as_array())
                    .map(|benchmarks| {
                        benchmarks
                            .iter()
                            .map(|b| {
                                b.get_ref()
                                    .as_table()
                                    .and_then(|t| t.get("name"))
                                    .and_then(|n| n.get_ref().as_str())
                                    .map(str::to_string)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                map.benchmark_names.push(names);
            }
        }
        Some(map)
    }

    fn walk_table(&mut self, table: &DeTable<'_>, path: &FieldPath) {
        for (key, value) in table.iter() {
            let path = path.clone().key(key.get_ref());
            self.entries.push(Entry {
                path: path.clone(),
                key: key.span(),
                value: value.span(),
            });
            self.walk_value(value, &path);
        }
    }

    fn walk_value(&mut self, value: &Spanned<DeValue<'_>>, path: &FieldPath) {
        match value.get_ref() {
            DeValue::Table(table) => self.walk_table(table, path),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let path = path.clone().index(i);
                    self.entries.push(Entry {
                        path: path.clone(),
                        key: item.span(),
                        value: item.span(),
                    });
                    self.walk_value(item, &path);
                }
            }
            _ => {}
        }
    }

    /// The innermost key whose value holds `offset`: its span and path.
    pub fn key_at(&self, offset: usize) -> Option<(Range<usize>, FieldPath)> {
        self.entries
            .iter()
            .filter(|e| e.value.contains(&offset) || e.key.contains(&offset))
            .min_by_key(|e| (e.value.len(), std::cmp::Reverse(e.path.0.len())))
            .map(|e| (e.key.clone(), e.path.clone()))
    }

    /// The span of the key at `path`, or of its nearest ancestor that the
    /// file writes (a missing field is reported at its table).
    pub fn key_span(&self, path: &FieldPath) -> Option<Range<usize>> {
        (0..=path.0.len()).rev().find_map(|n| {
            self.entries
                .iter()
                .find(|e| e.path.0 == path.0[..n])
                .map(|e| e.key.clone())
        })
    }

    /// A path as a person reads it: `day 1, benchmark "ttft", field
    /// `params.prompt_lengths[2]``; `settings, field `threads``.
    pub fn describe(&self, path: &FieldPath) -> String {
        let segments = &path.0;
        let field = |rest: &[Segment]| -> String {
            if rest.is_empty() {
                String::new()
            } else {
                format!(", field `{}`", FieldPath(rest.to_vec()))
            }
        };
        match segments.as_slice() {
            [Segment::Key(days), Segment::Index(d), rest @ ..] if days == "days" => {
                let day = self.day_numbers.get(*d).cloned().flatten().map_or_else(
                    || format!("the day at position {}", d + 1),
                    |n| format!("day {n}"),
                );
                match rest {
                    [Segment::Key(b), Segment::Index(j), inner @ ..] if b == "benchmarks" => {
                        let name = self
                            .benchmark_names
                            .get(*d)
                            .and_then(|names| names.get(*j))
                            .cloned()
                            .flatten()
                            .map_or_else(
                                || format!("benchmark {}", j + 1),
                                |n| format!("benchmark {n:?}"),
                            );
                        format!("{day}, {name}{}", field(inner))
                    }
                    _ => format!("{day}{}", field(rest)),
                }
            }
            [Segment::Key(models), Segment::Key(name), rest @ ..] if models == "models" => {
                format!("model {name:?}{}", field(rest))
            }
            [Segment::Key(_)] | [Segment::Key(_), Segment::Index(_), ..] => {
                format!("field `{}`", FieldPath(segments.clone()))
            }
            [Segment::Key(top), rest @ ..] => format!("{top}{}", field(rest)),
            _ => "the file".to_string(),
        }
    }
}

/// Turns a byte offset into a 1-based line and column.
pub(super) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"name = "c"
[settings]
threads = 2

[models.small.synthetic]
seed = 1

[[days]]
number = 3
title = "t"

[[days.benchmarks]]
name = "ttft"
kind = "first_token_latency"
timeout_s = 1e300
[days.benchmarks.params]
prompt_lengths = [8, -1]
geometry = { model = "small", block_tokens = [16] }
"#;

    fn at(needle: &str) -> usize {
        FILE.find(needle).unwrap()
    }

    #[test]
    fn an_offset_inside_a_value_finds_its_key_and_path() {
        let map = SourceMap::parse(FILE).unwrap();
        let (key, path) = map.key_at(at("1e300")).unwrap();
        assert_eq!(&FILE[key], "timeout_s");
        assert_eq!(path.to_string(), "days[0].benchmarks[0].timeout_s");
        assert_eq!(
            map.describe(&path),
            "day 3, benchmark \"ttft\", field `timeout_s`"
        );
        let (_, path) = map.key_at(at("-1]")).unwrap();
        assert_eq!(
            path.to_string(),
            "days[0].benchmarks[0].params.prompt_lengths[1]"
        );
        let (key, path) = map.key_at(at("16]")).unwrap();
        assert_eq!(
            path.to_string(),
            "days[0].benchmarks[0].params.geometry.block_tokens[0]"
        );
        assert!(FILE[key].starts_with("16"));
        let (key, path) = map.key_at(at("2\n")).unwrap();
        assert_eq!(
            (&FILE[key], map.describe(&path).as_str()),
            ("threads", "settings, field `threads`")
        );
    }

    #[test]
    fn a_path_finds_its_key_or_its_nearest_ancestor() {
        let map = SourceMap::parse(FILE).unwrap();
        let params = FieldPath::default()
            .key("days")
            .index(0)
            .key("benchmarks")
            .index(0)
            .key("params");
        let key = map
            .key_span(&params.clone().join_dotted("geometry.block_tokens[0]"))
            .unwrap();
        assert!(FILE[key].starts_with("16"));
        let key = map
            .key_span(&params.clone().join_dotted("geometry.model"))
            .unwrap();
        assert_eq!(&FILE[key], "model");
        let key = map
            .key_span(&params.clone().join_dotted("prompt_lengths"))
            .unwrap();
        assert_eq!(&FILE[key], "prompt_lengths");
        // A field the file does not write: its table.
        let key = map.key_span(&params.join_dotted("output_tokens")).unwrap();
        assert_eq!(&FILE[key], "params");
        let model = FieldPath::default()
            .key("models")
            .key("small")
            .key("synthetic")
            .key("seed");
        assert_eq!(
            map.describe(&model),
            "model \"small\", field `synthetic.seed`"
        );
    }
}
