//! `command`: a program outside this process, run `repeat` times per
//! iteration, its JSON or JSONL output read into metrics through JSONPath
//! expressions (RFC 9535) that the campaign gives. A peer engine's
//! benchmark (llama.cpp's `llama-bench -o jsonl`, a vLLM benchmark script)
//! is then measured in the same campaign, sitting and report as ours.
//!
//! Each run also records `wall_ms`, the program's wall time from start to
//! exit as this process saw it. A JSONL output is read as one array of its
//! records, so a path can select among them
//! (`$[?@.n_gen == 0].avg_ts`); a path that matches an array of numbers
//! records each element (llama-bench's `samples_ts`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use serde_json_path::JsonPath;

use super::metric_names::intern;
use super::{
    BenchContext, BenchmarkCase, BenchmarkError, Headline, Kind, MemoryNeed, MetricDef, Models,
    Observations, ParamProblem, PreparedBenchmark, model_path,
};
use crate::campaign::bounds::{Count, Seconds};
use crate::components::external::{ExternalError, ExternalProgram, locate};
use crate::stats::ValueKind;

const WALL_MS: MetricDef =
    MetricDef::duration_ms("wall_ms", "one run of the program, from start to exit");

/// How much of an output an error message quotes.
const QUOTED_OUTPUT_CHARS: usize = 300;

fn one() -> Count {
    Count::new_const(1)
}

fn default_run_timeout() -> Seconds {
    Seconds::new_const(600.0)
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// One JSON document, else JSON lines. A JSONL output of one line reads
    /// as a document: say `jsonl` for a program that may write one record.
    #[default]
    Auto,
    Json,
    Jsonl,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IfMissing {
    /// A program that is not installed fails the benchmark.
    #[default]
    Fail,
    /// … or skips it, with the reason in the report.
    Skip,
}

/// A metric read from the output: a JSONPath, or a table that also gives
/// the unit and direction when the name's suffix does not.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MetricMapping {
    Path(String),
    Full {
        path: String,
        unit: Option<String>,
        higher_is_better: Option<bool>,
        description: Option<String>,
    },
}

impl MetricMapping {
    fn path(&self) -> &str {
        match self {
            Self::Path(path) | Self::Full { path, .. } => path,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandParams {
    /// The program and its arguments. `{model.NAME}` is replaced by the
    /// path of the campaign's model NAME (a synthetic model is written
    /// first), `{threads}` by the run's threads, `{scratch}` by a working
    /// folder removed after the benchmark.
    argv: Vec<String>,
    /// Runs per iteration; every run's values are samples.
    #[serde(default = "one")]
    repeat: Count,
    #[serde(default)]
    output: OutputFormat,
    /// Read this file after each run instead of stdout (placeholders as in
    /// `argv`).
    #[serde(default)]
    result_file: Option<String>,
    /// Metric name → JSONPath into the output.
    metrics: BTreeMap<String, MetricMapping>,
    /// The metric the report's headline shows and the nightly gate
    /// compares: `wall_ms` or a mapped metric. Default: `wall_ms`.
    #[serde(default)]
    headline: Option<String>,
    #[serde(default)]
    if_missing: IfMissing,
    /// One run is killed past this.
    #[serde(default = "default_run_timeout")]
    run_timeout_s: Seconds,
}

/// A placeholder of `argv`, as written.
#[derive(Debug, PartialEq, Eq)]
enum Placeholder<'a> {
    Model(&'a str),
    Threads,
    Scratch,
}

/// The placeholders in `text`, with their byte ranges. Other braces are
/// left as they are (a JSON argument keeps its own).
fn placeholders(text: &str) -> Vec<(std::ops::Range<usize>, Placeholder<'_>)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find('{').map(|i| from + i) {
        let Some(close) = text[open..].find('}').map(|i| open + i) else {
            break;
        };
        let inner = &text[open + 1..close];
        let placeholder = match inner {
            "threads" => Some(Placeholder::Threads),
            "scratch" => Some(Placeholder::Scratch),
            _ => inner.strip_prefix("model.").map(Placeholder::Model),
        };
        match placeholder {
            Some(p) => {
                found.push((open..close + 1, p));
                from = close + 1;
            }
            None => from = open + 1,
        }
    }
    found
}

/// Unit, direction and value kind that a metric's name implies, by the
/// suffix convention of this tool's own metrics (units in names).
fn implied_by_name(name: &str) -> Option<(String, bool, ValueKind)> {
    let words: Vec<&str> = name.split('_').collect();
    match words.as_slice() {
        [.., what, "per", "s"] => Some((format!("{what}/s"), true, ValueKind::Quantity)),
        [_, .., "ms"] => Some(("ms".into(), false, ValueKind::DurationMs)),
        [_, .., "us"] => Some(("µs".into(), false, ValueKind::Quantity)),
        [_, .., "ns"] => Some(("ns".into(), false, ValueKind::Quantity)),
        [_, .., "s"] => Some(("s".into(), false, ValueKind::Quantity)),
        _ => None,
    }
}

/// A mapped metric's definition, or why it has none.
fn metric_def(name: &str, mapping: &MetricMapping) -> Result<MetricDef, String> {
    let implied = implied_by_name(name);
    let (unit, higher_is_better, description) = match mapping {
        MetricMapping::Path(_) => (None, None, None),
        MetricMapping::Full {
            unit,
            higher_is_better,
            description,
            ..
        } => (unit.clone(), *higher_is_better, description.clone()),
    };
    let value_kind = match (&unit, &implied) {
        (Some(u), _) if u != "ms" => ValueKind::Quantity,
        (_, Some((_, _, kind))) => *kind,
        (Some(_), None) => ValueKind::DurationMs,
        (None, None) => ValueKind::Quantity,
    };
    let unit = unit.or_else(|| implied.as_ref().map(|i| i.0.clone()));
    let higher_is_better = higher_is_better.or(implied.as_ref().map(|i| i.1));
    let (Some(unit), Some(higher_is_better)) = (unit, higher_is_better) else {
        return Err(format!(
            "the name {name:?} says neither its unit nor whether higher is better"
        ));
    };
    let description =
        description.unwrap_or_else(|| format!("{} of the program's output", mapping.path()));
    Ok(MetricDef {
        name: intern(name),
        unit: intern(&unit),
        kind: value_kind,
        higher_is_better,
        description: intern(&description),
    })
}

fn valid_metric_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

pub struct CommandKind;

impl Kind for CommandKind {
    type Params = CommandParams;

    fn name(&self) -> &'static str {
        "command"
    }

    fn description(&self) -> &'static str {
        "an external program (a peer engine's benchmark), run repeat times per iteration, its JSON or JSONL output mapped to metrics by JSONPath; wall_ms is its wall time"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[WALL_MS]
    }

    fn mapped_metrics(&self, p: &CommandParams) -> Vec<MetricDef> {
        p.metrics
            .iter()
            .filter_map(|(name, mapping)| metric_def(name, mapping).ok())
            .collect()
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(WALL_MS.name),
            throughput: None,
        }
    }

    fn mapped_headline(&self, p: &CommandParams) -> Option<Headline> {
        let name = p.headline.as_deref()?;
        let mapping = p.metrics.get(name)?;
        let def = metric_def(name, mapping).ok()?;
        Some(if def.unit == "ms" {
            Headline {
                latency: Some(def.name),
                throughput: None,
            }
        } else {
            Headline {
                latency: Some(WALL_MS.name),
                throughput: Some(def.name),
            }
        })
    }

    fn check(&self, p: &CommandParams, models: &Models) -> Result<(), ParamProblem> {
        if p.argv
            .first()
            .is_none_or(|program| program.trim().is_empty())
        {
            return Err(ParamProblem::at(
                "argv",
                "found no program; allowed: the program, then its arguments",
                r#"e.g. argv = ["llama-bench", "-m", "{model.q8_0}", "-o", "jsonl"]"#,
            ));
        }
        let mut texts: Vec<(String, &String)> = p
            .argv
            .iter()
            .enumerate()
            .map(|(i, arg)| (format!("argv[{i}]"), arg))
            .collect();
        if let Some(file) = &p.result_file {
            texts.push(("result_file".into(), file));
        }
        for (key, text) in texts {
            for (_, placeholder) in placeholders(text) {
                if let Placeholder::Model(name) = placeholder
                    && !models.contains_key(name)
                {
                    return Err(ParamProblem::at(
                        &key,
                        format!("{{model.{name}}} names no model of this campaign"),
                        format!(
                            "its models: {}",
                            models.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        if p.metrics.is_empty() {
            return Err(ParamProblem::at(
                "metrics",
                "maps no metric; allowed: a table of metric name = JSONPath",
                r#"e.g. metrics = { tg_tokens_per_s = "$[?@.n_gen > 0].avg_ts" }"#,
            ));
        }
        for (name, mapping) in &p.metrics {
            let key = format!("metrics.{name}");
            if !valid_metric_name(name) || name == WALL_MS.name {
                return Err(ParamProblem::at(
                    &key,
                    format!("{name:?} cannot name a metric"),
                    "allowed: lower-case letters, digits and _, starting with a letter, other than wall_ms (recorded for every run)",
                ));
            }
            if let Err(e) = JsonPath::parse(mapping.path()) {
                return Err(ParamProblem::at(
                    &key,
                    format!("{:?} is not a JSONPath: {e}", mapping.path()),
                    "a JSONPath as RFC 9535 writes it, e.g. \"$.avg_ts\" or \"$[?@.n_gen == 128].samples_ts\"",
                ));
            }
            if let Err(message) = metric_def(name, mapping) {
                return Err(ParamProblem::at(
                    &key,
                    message,
                    "end the name in its unit (_ms, _s, _us, _ns, or <what>_per_s), or give a table: { path = \"…\", unit = \"GB/s\", higher_is_better = true }",
                ));
            }
        }
        if let Some(headline) = &p.headline
            && headline != WALL_MS.name
            && !p.metrics.contains_key(headline)
        {
            return Err(ParamProblem::at(
                "headline",
                format!("{headline:?} is not a metric of this benchmark"),
                format!(
                    "allowed: wall_ms, {}",
                    p.metrics.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn planned_cases(&self, _p: &CommandParams) -> usize {
        1
    }

    fn memory(&self, _p: &CommandParams, _models: &Models) -> Result<MemoryNeed, ParamProblem> {
        // The program's memory is its own; this process keeps its output.
        Ok(MemoryNeed::small())
    }

    fn prepare(
        &self,
        p: CommandParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let program = p.argv.first().cloned().unwrap_or_default();
        if p.if_missing == IfMissing::Skip
            && let Err(e) = locate(&program)
        {
            return Ok(PreparedBenchmark::skipped(format!(
                "{e}; install it or put it on PATH to measure it here (if_missing = \"skip\")"
            ))
            .with_context(json!({ "program": program })));
        }
        let scratch = super::scratch_folder(&ctx.scratch_dir, "command-")?;
        let expand = |text: &str| -> Result<String, BenchmarkError> {
            let mut expanded = String::new();
            let mut last = 0;
            for (range, placeholder) in placeholders(text) {
                expanded.push_str(&text[last..range.start]);
                match placeholder {
                    Placeholder::Model(name) => {
                        let resolved = ctx.models.get(name).ok_or_else(|| {
                            BenchmarkError::Params(format!("no model named {name:?}"))
                        })?;
                        let path = model_path(resolved, &ctx.model_cache_dir)?;
                        expanded.push_str(&path.to_string_lossy());
                    }
                    Placeholder::Threads => {
                        expanded.push_str(&ctx.settings.threads.get().to_string())
                    }
                    Placeholder::Scratch => expanded.push_str(&scratch.path().to_string_lossy()),
                }
                last = range.end;
            }
            expanded.push_str(&text[last..]);
            Ok(expanded)
        };
        let argv = p
            .argv
            .iter()
            .map(|a| expand(a))
            .collect::<Result<Vec<_>, _>>()?;
        let result_file = p
            .result_file
            .as_deref()
            .map(|f| expand(f).map(|f| ctx.campaign_dir.join(f)))
            .transpose()?;
        let time_limit = Duration::try_from_secs_f64(p.run_timeout_s.get())
            .map_err(|e| BenchmarkError::Params(format!("run_timeout_s: {e}")))?;
        let external = ExternalProgram::new(&argv, result_file.clone(), time_limit)
            .map_err(|e| BenchmarkError::Component(e.to_string()))?;
        let mut mappings = Vec::new();
        for (name, mapping) in &p.metrics {
            let path = JsonPath::parse(mapping.path()).map_err(|e| {
                BenchmarkError::Params(format!("metrics.{name}: not a JSONPath: {e}"))
            })?;
            mappings.push((intern(name), mapping.path().to_string(), path));
        }
        let context = json!({
            "program": program,
            "executable": external.executable(),
            "argv": argv,
            "result_file": result_file,
            "output": p.output,
            "repeat": p.repeat.get(),
            "metrics": p.metrics.iter().map(|(n, m)| (n.clone(), m.path().to_string())).collect::<BTreeMap<_, _>>(),
        });
        Ok(PreparedBenchmark::new(vec![Box::new(CommandCase {
            program,
            external,
            repeat: p.repeat.get(),
            output: p.output,
            mappings,
            _scratch: scratch,
        })])
        .with_context(context))
    }
}

struct CommandCase {
    program: String,
    external: ExternalProgram,
    repeat: u64,
    output: OutputFormat,
    /// Metric name, the path as written, the parsed path.
    mappings: Vec<(&'static str, String, JsonPath)>,
    _scratch: std::sync::Arc<tempfile::TempDir>,
}

impl BenchmarkCase for CommandCase {
    fn label(&self) -> String {
        self.program.clone()
    }

    fn parameters(&self) -> Value {
        json!({ "program": self.program, "repeat": self.repeat })
    }

    fn run_iteration(&mut self, observations: &mut Observations) -> Result<(), BenchmarkError> {
        for _ in 0..self.repeat {
            let started = Instant::now();
            let output = self.external.run().map_err(component)?;
            observations.duration(&WALL_MS, started.elapsed());
            let document = parse_output(&output.bytes, self.output)
                .map_err(|e| BenchmarkError::Component(format!("{}: {e}", self.program)))?;
            for (name, written, path) in &self.mappings {
                let values = read_numbers(&document, path).map_err(|e| {
                    BenchmarkError::Component(format!(
                        "metric {name}: {written} {e} in the output of {}: {}",
                        self.program,
                        quote(&output.bytes)
                    ))
                })?;
                for value in values {
                    observations.mapped_value(name, value);
                }
            }
        }
        Ok(())
    }
}

fn component(e: ExternalError) -> BenchmarkError {
    BenchmarkError::Component(e.to_string())
}

/// The output as one JSON value: the document itself, or the array of a
/// JSONL output's records.
fn parse_output(bytes: &[u8], format: OutputFormat) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("its output is not UTF-8: {e}"))?;
    if text.trim().is_empty() {
        return Err("it wrote no output".into());
    }
    let whole = || serde_json::from_str::<Value>(text);
    match format {
        OutputFormat::Json => whole().map_err(|e| format!("its output is not JSON: {e}")),
        OutputFormat::Jsonl => parse_lines(text),
        OutputFormat::Auto => whole().or_else(|_| parse_lines(text)),
    }
}

fn parse_lines(text: &str) -> Result<Value, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                let shown: String = line.chars().take(80).collect();
                format!("line {} of its output is not JSON ({e}): {shown:?}", i + 1)
            })
        })
        .collect::<Result<Vec<Value>, _>>()
        .map(Value::Array)
}

/// The numbers a path selects: each number it matches, and each element
/// of each array of numbers it matches.
fn read_numbers(document: &Value, path: &JsonPath) -> Result<Vec<f64>, String> {
    let nodes = path.query_located(document);
    if nodes.is_empty() {
        return Err("matched nothing".into());
    }
    let mut numbers = Vec::new();
    for node in nodes.iter() {
        let not_a_number = |value: &Value| {
            format!(
                "matched {} at {}, not a number",
                short(value),
                node.location()
            )
        };
        match node.node() {
            Value::Number(n) => numbers.push(n.as_f64().ok_or_else(|| not_a_number(node.node()))?),
            Value::Array(items) if !items.is_empty() => {
                for item in items {
                    numbers.push(item.as_f64().ok_or_else(|| not_a_number(item))?);
                }
            }
            other => return Err(not_a_number(other)),
        }
    }
    Ok(numbers)
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(QUOTED_OUTPUT_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever a program writes is parsed or refused with a reason:
        /// never a panic; a JSON-lines output is one record a line.
        #[test]
        fn any_output_is_parsed_or_refused(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            lines in proptest::collection::vec(
                prop_oneof![
                    "\\{\"x_ms\": -?[0-9]{1,6}(\\.[0-9]{1,3})?\\}",
                    "\\[[0-9, ]{0,20}\\]",
                    "\\PC{0,40}",
                    Just(String::new()),
                    Just("[".repeat(300)),
                ],
                0..40,
            ),
            format in 0..3usize,
        ) {
            let format = [OutputFormat::Auto, OutputFormat::Json, OutputFormat::Jsonl][format];
            let _ = parse_output(&bytes, format);
            let text = lines.join("\n");
            if let Ok(Value::Array(records)) = parse_output(text.as_bytes(), OutputFormat::Jsonl) {
                let written = lines.iter().filter(|l| !l.trim().is_empty()).count();
                prop_assert_eq!(records.len(), written);
            }
            // Any document and any of these paths: numbers or a reason.
            if let Ok(document) = parse_output(text.as_bytes(), format) {
                for path in ["$[*].x_ms", "$..x_ms", "$[0]", "$[?@.x_ms > 3].x_ms", "$.a.b"] {
                    let path = JsonPath::parse(path).expect("a valid path");
                    let _ = read_numbers(&document, &path);
                }
            }
        }
    }

    /// Two records as `llama-bench -o jsonl` writes them (fields trimmed).
    const LLAMA_BENCH_JSONL: &str = concat!(
        r#"{"n_prompt": 512, "n_gen": 0, "avg_ts": 2244.5, "samples_ts": [2240.0, 2249.0]}"#,
        "\n",
        r#"{"n_prompt": 0, "n_gen": 128, "avg_ts": 242.25, "samples_ts": [240.5, 244.0]}"#,
        "\n"
    );

    fn numbers(output: &str, format: OutputFormat, path: &str) -> Result<Vec<f64>, String> {
        let document = parse_output(output.as_bytes(), format)?;
        read_numbers(&document, &JsonPath::parse(path).unwrap())
    }

    #[test]
    fn jsonl_records_are_selected_by_filters_and_sample_arrays_are_spread() {
        for format in [OutputFormat::Auto, OutputFormat::Jsonl] {
            assert_eq!(
                numbers(LLAMA_BENCH_JSONL, format, "$[?@.n_gen == 0].avg_ts"),
                Ok(vec![2244.5])
            );
            assert_eq!(
                numbers(LLAMA_BENCH_JSONL, format, "$[?@.n_gen == 128].samples_ts"),
                Ok(vec![240.5, 244.0])
            );
            assert_eq!(
                numbers(LLAMA_BENCH_JSONL, format, "$[*].avg_ts"),
                Ok(vec![2244.5, 242.25])
            );
        }
        assert_eq!(
            numbers(
                r#"{"result": {"ttft_ms": [3, 4.5]}}"#,
                OutputFormat::Json,
                "$.result.ttft_ms"
            ),
            Ok(vec![3.0, 4.5])
        );
    }

    #[test]
    fn outputs_that_do_not_hold_the_metric_say_where() {
        let e = numbers(
            LLAMA_BENCH_JSONL,
            OutputFormat::Auto,
            "$[?@.n_gen == 64].avg_ts",
        )
        .unwrap_err();
        assert_eq!(e, "matched nothing");
        let e = numbers(r#"{"model": "q8_0"}"#, OutputFormat::Auto, "$.model").unwrap_err();
        assert_eq!(e, r#"matched "q8_0" at $['model'], not a number"#);
        let e = numbers("{\"a\": 1}\nloading model…\n", OutputFormat::Auto, "$.a").unwrap_err();
        assert!(e.starts_with("line 2 of its output is not JSON"), "{e}");
        let e = numbers("{\"a\": 1}\n{\"a\": 2}\n", OutputFormat::Json, "$.a").unwrap_err();
        assert!(e.starts_with("its output is not JSON"), "{e}");
        assert_eq!(
            numbers(" \n", OutputFormat::Auto, "$.a").unwrap_err(),
            "it wrote no output"
        );
    }

    #[test]
    fn names_imply_units_and_directions_and_tables_give_the_rest() {
        let def = |name: &str, mapping: MetricMapping| metric_def(name, &mapping);
        let path = || MetricMapping::Path("$.x".into());
        let tg = def("tg_tokens_per_s", path()).unwrap();
        assert_eq!((tg.unit, tg.higher_is_better), ("tokens/s", true));
        let ttft = def("ttft_ms", path()).unwrap();
        assert_eq!((ttft.unit, ttft.higher_is_better), ("ms", false));
        assert!(matches!(ttft.kind, ValueKind::DurationMs));
        assert!(def("hit_rate_pct", path()).is_err());
        let table = MetricMapping::Full {
            path: "$.x".into(),
            unit: Some("%".into()),
            higher_is_better: Some(true),
            description: None,
        };
        let hit = def("hit_rate_pct", table).unwrap();
        assert_eq!((hit.unit, hit.higher_is_better), ("%", true));
    }

    #[test]
    fn placeholders_are_found_and_other_braces_kept() {
        let text = r#"{"n": 1} -m {model.q8_0} -t {threads} --out {scratch}/r.json {model"#;
        let found: Vec<_> = placeholders(text).into_iter().map(|(_, p)| p).collect();
        assert_eq!(
            found,
            vec![
                Placeholder::Model("q8_0"),
                Placeholder::Threads,
                Placeholder::Scratch
            ]
        );
    }
}
