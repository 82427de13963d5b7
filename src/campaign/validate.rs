use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::Path;

use super::load::{ResolvedModel, line_column};
use super::{BenchmarkSpec, CampaignFile, Diagnostic, Target};
use crate::benchmarks::{find_kind, kind_names};
use crate::components::inference::read_architecture;

/// Collects diagnostics with positions taken from toml spans.
struct Checker<'a> {
    source: &'a str,
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, field: String, message: String, help: Option<String>) {
        let (line, column) = line_column(self.source, span.start);
        self.diagnostics.push(Diagnostic {
            line,
            column,
            field,
            message,
            help,
        });
    }

    /// The span of `key = …` in a table, so an error in a kind's params
    /// points at the offending line. toml's span of a `[header]` table
    /// covers only the header, so the search runs on to the next header.
    fn key_span(&self, table: Range<usize>, key: &str) -> Range<usize> {
        let mut offset = table.start;
        for (i, line) in self.source[table.start..].split_inclusive('\n').enumerate() {
            let trimmed = line.trim_start();
            if i > 0 && trimmed.starts_with('[') && offset >= table.end {
                break;
            }
            // Inline tables hold their keys on the header's own line.
            let mut search = 0;
            while let Some(found) = line[search..].find(key) {
                let at = search + found;
                let before_ok =
                    at == 0 || !line[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
                let after = line[at + key.len()..].trim_start();
                if before_ok && after.starts_with('=') {
                    return offset + at..offset + at + key.len();
                }
                search = at + key.len();
            }
            offset += line.len();
        }
        table
    }
}

/// Resolved models and warnings of a valid campaign.
pub(super) type Validated = (BTreeMap<String, ResolvedModel>, Vec<String>);

/// Checks everything a run would otherwise discover late: kinds, params,
/// targets, models, settings. Returns the resolved models and warnings.
pub(super) fn validate(
    file: &CampaignFile,
    source: &str,
    base: &Path,
) -> Result<Validated, Vec<Diagnostic>> {
    let mut c = Checker {
        source,
        diagnostics: Vec::new(),
    };
    let mut warnings = Vec::new();

    if file.name.get_ref().trim().is_empty() {
        c.error(
            file.name.span(),
            "name".into(),
            "campaign name is empty".into(),
            Some("e.g. name = \"llm-inference\"".into()),
        );
    }
    check_settings(&mut c, file);
    let models = resolve_models(&mut c, file, base);

    if file.days.is_empty() {
        c.error(
            0..0,
            "days".into(),
            "campaign has no [[days]]".into(),
            Some("add [[days]] with number, title and [[days.benchmarks]]".into()),
        );
    }
    let mut day_numbers = HashSet::new();
    for day in &file.days {
        let day = day.get_ref();
        let number = *day.number.get_ref();
        if number == 0 {
            c.error(
                day.number.span(),
                "days.number".into(),
                "day numbers start at 1".into(),
                None,
            );
        }
        if !day_numbers.insert(number) {
            c.error(
                day.number.span(),
                format!("day {number}"),
                format!("day {number} is defined twice"),
                Some("give every [[days]] its own number".into()),
            );
        }
        if let Some(range) = &day.analyze_days
            && crate::campaign::parse_day_range(range).is_none()
        {
            c.error(
                day.number.span(),
                format!("day {number}, field `analyze_days`"),
                format!("analyze_days {range:?} is not a day range"),
                Some("write it as \"1-4\" or \"2\"".into()),
            );
        }
        if day.benchmarks.is_empty() && day.after.is_empty() {
            warnings.push(format!(
                "day {number} ({}) lists no benchmarks yet",
                day.title
            ));
        }
        let mut names = HashSet::new();
        for bench in &day.benchmarks {
            check_benchmark(&mut c, number, bench.get_ref(), &models, &mut names);
        }
    }
    if c.diagnostics.is_empty() {
        Ok((models, warnings))
    } else {
        Err(c.diagnostics)
    }
}

fn check_settings(c: &mut Checker<'_>, file: &CampaignFile) {
    let Some(settings) = &file.settings else {
        return;
    };
    let span = settings.span();
    let s = settings.get_ref();
    if let Err(e) = s.device.ensure_compiled() {
        let at = c.key_span(span.clone(), "device");
        c.error(at, "settings.device".into(), e.to_string(), None);
    }
    if s.threads == 0 {
        let at = c.key_span(span.clone(), "threads");
        c.error(
            at,
            "settings.threads".into(),
            "threads must be at least 1".into(),
            Some("threads = 1 is safest on a small shared machine".into()),
        );
    }
    if s.max_raw_samples == 0 {
        let at = c.key_span(span, "max_raw_samples");
        c.error(
            at,
            "settings.max_raw_samples".into(),
            "max_raw_samples must be at least 1".into(),
            None,
        );
    }
}

fn resolve_models(
    c: &mut Checker<'_>,
    file: &CampaignFile,
    base: &Path,
) -> BTreeMap<String, ResolvedModel> {
    let mut models = BTreeMap::new();
    for (name, spec) in &file.models {
        let span = spec.span();
        let field = format!("models.{name}");
        let spec = spec.get_ref();
        let resolved = match (&spec.path, &spec.synthetic) {
            (Some(path), None) => {
                let folder = base.join(path.get_ref());
                match read_architecture(&folder) {
                    Ok(architecture) => Some(ResolvedModel {
                        name: name.clone(),
                        folder: Some(folder),
                        synthetic: None,
                        architecture,
                    }),
                    Err(e) => {
                        c.error(
                            path.span(),
                            format!("{field}.path"),
                            e.to_string(),
                            Some(format!(
                                "paths are relative to the campaign file's folder ({})",
                                base.display()
                            )),
                        );
                        None
                    }
                }
            }
            (None, Some(synthetic)) => match synthetic.check() {
                Ok(()) => Some(ResolvedModel {
                    name: name.clone(),
                    folder: None,
                    synthetic: Some(synthetic.clone()),
                    architecture: synthetic.architecture(),
                }),
                Err(e) => {
                    c.error(span, format!("{field}.synthetic"), e.to_string(), None);
                    None
                }
            },
            _ => {
                c.error(span, field, "a model needs exactly one of `path` (a local folder) or `synthetic` (a generated Llama)".into(), Some("path = \"models/SmolLM2-135M\" or [models.NAME.synthetic] with seed and sizes".into()));
                None
            }
        };
        if let Some(r) = resolved {
            models.insert(name.clone(), r);
        }
    }
    models
}

fn check_benchmark(
    c: &mut Checker<'_>,
    day: u32,
    bench: &BenchmarkSpec,
    models: &BTreeMap<String, ResolvedModel>,
    names: &mut HashSet<String>,
) {
    let name = bench.name.get_ref();
    let at = |field: &str| format!("day {day}, benchmark {name:?}, field `{field}`");
    if name.is_empty()
        || !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
    {
        c.error(bench.name.span(), at("name"), format!("benchmark name {name:?} must be non-empty and use only letters, digits, '_', '-' and '.'"), Some("names become file names in the results folder".into()));
    }
    if !names.insert(name.clone()) {
        c.error(
            bench.name.span(),
            at("name"),
            format!("day {day} has two benchmarks named {name:?}"),
            Some("benchmark names must be unique within a day".into()),
        );
    }
    for (field, value) in [
        ("time_budget_s", bench.time_budget_s),
        ("timeout_s", bench.timeout_s),
    ] {
        if value.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
            c.error(
                bench.name.span(),
                at(field),
                format!("{field} must be a positive number of seconds"),
                None,
            );
        }
    }
    if bench
        .regression_threshold_pct
        .is_some_and(|t| !(t.is_finite() && t > 0.0))
    {
        c.error(
            bench.name.span(),
            at("regression_threshold_pct"),
            "regression_threshold_pct must be a positive percentage".into(),
            Some("e.g. regression_threshold_pct = 5".into()),
        );
    }
    if bench
        .profile_hz
        .is_some_and(|hz| !(1..=crate::profile::MAX_PROFILE_HZ).contains(&hz))
    {
        c.error(
            bench.name.span(),
            at("profile_hz"),
            format!(
                "profile_hz must be between 1 and {}",
                crate::profile::MAX_PROFILE_HZ
            ),
            Some("the sampler tops out near 250 Hz on many kernels; 99 or 199 is typical".into()),
        );
    }
    if bench.iterations == Some(0) {
        c.error(
            bench.name.span(),
            at("iterations"),
            "iterations must be at least 1".into(),
            None,
        );
    }

    let Some(kind) = find_kind(bench.kind.get_ref()) else {
        c.error(
            bench.kind.span(),
            at("kind"),
            format!("unknown benchmark kind {:?}", bench.kind.get_ref()),
            Some(format!("known kinds: {}", kind_names().join(", "))),
        );
        return;
    };

    let params = bench.params();
    if let Err(problem) = kind.check(&params, models) {
        let table_span = bench
            .params
            .as_ref()
            .map_or(bench.kind.span(), |p| p.span());
        let span = match &problem.key {
            Some(key) => c.key_span(table_span, key),
            None => table_span,
        };
        let field = problem
            .key
            .as_deref()
            .map_or("params".to_string(), |k| format!("params.{k}"));
        c.error(span, at(&field), problem.message, problem.help);
    }

    for target in &bench.targets {
        match target.get_ref().parse::<Target>() {
            Err(message) => c.error(target.span(), at("targets"), message, None),
            Ok(t) if kind.metric(&t.metric).is_none() => {
                let known: Vec<_> = kind
                    .metrics()
                    .iter()
                    .chain(kind.setup_metrics())
                    .map(|m| m.name)
                    .collect();
                c.error(
                    target.span(),
                    at("targets"),
                    format!("kind {} has no metric {:?}", kind.name(), t.metric),
                    Some(format!("its metrics: {}", known.join(", "))),
                );
            }
            Ok(_) => {}
        }
    }
}
