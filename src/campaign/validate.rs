use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use super::source_map::line_column;
use super::source_map::{FieldPath, SourceMap};
use super::validated::{Benchmark, Day};
use super::{BenchmarkSpec, CampaignFile, Diagnostic, KindCatalog, ResolvedModel, Target};
use crate::components::inference::{describe_model, model_memory};
use crate::machine::MemoryNeed;

/// The longest benchmark name: it becomes part of file names.
const MAX_NAME_CHARS: usize = 64;

/// Collects diagnostics, each at the line and column of its key.
struct Checker<'a> {
    source: &'a str,
    map: &'a SourceMap,
    /// Bytes of memory this machine has available, when known.
    memory_available: Option<u64>,
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    /// A problem with the field at `path`; `path` may go below what the
    /// file writes (a missing field): it is reported at the nearest key.
    fn error(&mut self, path: &FieldPath, message: String, help: Option<String>) {
        let at = self.map.key_span(path).map_or(0, |s| s.start);
        let (line, column) = line_column(self.source, at);
        self.diagnostics.push(Diagnostic {
            line,
            column,
            field: self.map.describe(path),
            message,
            help,
        });
    }

    /// Refuses a need larger than the memory this machine has available.
    fn fits_in_memory(&mut self, path: &FieldPath, what: &str, need: &MemoryNeed) {
        let Some(available) = self.memory_available else {
            return;
        };
        if need.bytes > available {
            self.error(
                path,
                format!(
                    "{what} needs about {} ({}), more than the {} of memory available on this machine",
                    gib(need.bytes),
                    need.formula,
                    gib(available)
                ),
                Some("make it smaller, or run on a machine with more memory".into()),
            );
        }
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// What validation learnt of a valid campaign: its resolved models, its
/// warnings and its days, targets parsed and params configured.
pub(super) struct Validated {
    pub models: BTreeMap<String, ResolvedModel>,
    pub warnings: Vec<String>,
    pub days: Vec<Day>,
}

/// Checks everything a run would otherwise discover late: kinds, params,
/// targets, models, memory. Numbers were range-checked while reading.
pub(super) fn validate(
    file: &CampaignFile,
    source: &str,
    map: &SourceMap,
    base: &Path,
    kinds: &dyn KindCatalog,
) -> Result<Validated, Vec<Diagnostic>> {
    let mut c = Checker {
        source,
        map,
        memory_available: crate::machine::available_memory_bytes(),
        diagnostics: Vec::new(),
    };
    let mut warnings = Vec::new();
    let root = FieldPath::default();

    if file.name.get_ref().trim().is_empty() {
        c.error(
            &root.clone().key("name"),
            "campaign name is empty".into(),
            Some("e.g. name = \"llm-inference\"".into()),
        );
    }
    if let Some(settings) = &file.settings
        && let Err(e) = settings.get_ref().device.ensure_compiled()
    {
        c.error(
            &root.clone().key("settings").key("device"),
            e.to_string(),
            None,
        );
    }
    if let Some(store) = &file.store {
        check_store(&mut c, store, &root.clone().key("store"));
    }
    let models = resolve_models(&mut c, file, base);

    if file.days.is_empty() {
        c.error(
            &root,
            "campaign has no [[days]]".into(),
            Some("add [[days]] with number, title and [[days.benchmarks]]".into()),
        );
    }
    let mut day_numbers = HashSet::new();
    let mut days = Vec::new();
    for (d, day) in file.days.iter().enumerate() {
        let day = day.get_ref();
        let at = root.clone().key("days").index(d);
        let number = *day.number.get_ref();
        if number == 0 {
            c.error(
                &at.clone().key("number"),
                "found 0; allowed: day numbers from 1".into(),
                None,
            );
        }
        if !day_numbers.insert(number) {
            c.error(
                &at.clone().key("number"),
                format!("day {number} is defined twice"),
                Some("give every [[days]] its own number".into()),
            );
        }
        if let Some(range) = &day.analyze_days
            && crate::campaign::parse_day_range(range).is_none()
        {
            c.error(
                &at.clone().key("analyze_days"),
                format!("found {range:?}; allowed: a day range such as \"1-4\" or \"2\""),
                None,
            );
        }
        if day.benchmarks.is_empty() && day.after.is_empty() {
            warnings.push(format!(
                "day {number} ({}) lists no benchmarks yet",
                day.title
            ));
        }
        let mut names = HashSet::new();
        let mut benchmarks = Vec::new();
        for (b, bench) in day.benchmarks.iter().enumerate() {
            let at = at.clone().key("benchmarks").index(b);
            check_prompt_files(
                &mut c,
                &bench.get_ref().params(),
                &at.clone().key("params"),
                base,
            );
            benchmarks.extend(check_benchmark(
                &mut c,
                &at,
                number,
                bench.get_ref(),
                &models,
                &mut names,
                kinds,
            ));
        }
        days.push(Day {
            number,
            title: day.title.clone(),
            description: day.description.clone(),
            benchmarks,
            after: day.after.clone(),
            analyze_days: day.analyze_days.clone(),
        });
    }
    // A benchmark is left out of its day only with a diagnostic, so the
    // days are whole when there is none.
    if c.diagnostics.is_empty() {
        Ok(Validated {
            models,
            warnings,
            days,
        })
    } else {
        Err(c.diagnostics)
    }
}

fn resolve_models(
    c: &mut Checker<'_>,
    file: &CampaignFile,
    base: &Path,
) -> BTreeMap<String, ResolvedModel> {
    let mut models = BTreeMap::new();
    let dtype = file.settings().dtype;
    for (name, spec) in &file.models {
        let at = FieldPath::default().key("models").key(name);
        let spec = spec.get_ref();
        let resolved = match (&spec.path, &spec.synthetic) {
            (Some(path), None) => {
                let folder = base.join(path.get_ref());
                match describe_model(&folder) {
                    Ok(description) => Some(ResolvedModel {
                        name: name.clone(),
                        folder: Some(folder),
                        synthetic: None,
                        architecture: description.architecture,
                        gguf: description.gguf,
                        missing_tokenizer: description.missing_tokenizer,
                        quantize: spec.quantize,
                        matmul: spec.matmul.unwrap_or_default(),
                        planted_token_flip: spec.planted_token_flip_pct.unwrap_or(0.0) / 100.0,
                    }),
                    Err(e) => {
                        c.error(
                            &at.clone().key("path"),
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
                    gguf: None,
                    missing_tokenizer: synthetic.missing_tokenizer(),
                    quantize: spec.quantize,
                    matmul: spec.matmul.unwrap_or_default(),
                    planted_token_flip: spec.planted_token_flip_pct.unwrap_or(0.0) / 100.0,
                }),
                Err(e) => {
                    c.error(&at.clone().key("synthetic"), e.to_string(), None);
                    None
                }
            },
            _ => {
                c.error(&at, "a model needs exactly one of `path` (a local folder or a .gguf file) or `synthetic` (a generated Llama)".into(), Some("path = \"models/SmolLM2-135M\", path = \"models/smollm2-135m-q4_1.gguf\", or [models.NAME.synthetic] with seed and sizes".into()));
                None
            }
        };
        if let Some(r) = &resolved
            && r.quantize.is_some()
            && (r.gguf.is_some()
                || r.synthetic
                    .as_ref()
                    .is_some_and(|s| s.quantization.is_some()))
        {
            c.error(
                &at.clone().key("quantize"),
                "`quantize` applies to safetensors weights (a folder, or a synthetic model without `quantization`); a GGUF file, and a synthetic model written as GGUF, keep their own weight types".into(),
                Some("[models.NAME] path = \"folder\" with quantize = \"q8_0\", or [models.NAME.synthetic] quantization = \"q8_0\"".into()),
            );
        }
        if let Some(pct) = spec.planted_token_flip_pct
            && !(0.0..=100.0).contains(&pct)
        {
            c.error(
                &at.clone().key("planted_token_flip_pct"),
                format!("{pct} is not a percentage; allowed: 0 to 100"),
                None,
            );
        }
        if let Some(r) = &resolved
            && spec.matmul.is_some()
            && !r.is_quantized()
        {
            c.error(
                &at.clone().key("matmul"),
                "`matmul` chooses the kernels of quantized weights; this model's weights are not quantized (candle's f32/f16 GEMM runs them)".into(),
                Some("a GGUF file, [models.NAME.synthetic] quantization = \"q8_0\", or quantize = \"q8_0\" on a folder".into()),
            );
        }
        if let Some(r) = resolved {
            let need = match &r.gguf {
                Some(weights) => Ok(MemoryNeed::new(
                    weights.memory_bytes,
                    format!(
                        "the GGUF file's weights as candle holds them ({} stored; f32/f16 matrices and the embedding table widened to f32) and rotary tables",
                        weights.stored_bytes
                    ),
                )),
                None if r.quantize.is_some() => {
                    model_memory(&r.architecture, candle_core::DType::F32, true).map(|need| {
                        MemoryNeed::new(
                            need.bytes,
                            "the weights read as f32, then their quantized image: at most 2 × f32 (and rotary tables)",
                        )
                    })
                }
                None => model_memory(&r.architecture, dtype.to_candle(), r.synthetic.is_some()),
            };
            match need {
                Ok(need) => c.fits_in_memory(&at, "the model", &need),
                Err(e) => c.error(&at, e.to_string(), None),
            }
            models.insert(name.clone(), r);
        }
    }
    models
}

/// Text prompts (`params.prompts = { file = … }` or `{ corpus = … }`) are
/// read relative to the campaign file; a missing one is an error here, at
/// its key, rather than a failed benchmark later.
/// `[store]`: one of `url` (a path or a postgres URL) and `url_env` (a
/// variable's name); the variable itself is read when a run needs it.
fn check_store(c: &mut Checker<'_>, store: &super::StoreSpec, at: &FieldPath) {
    const ALLOWED: &str = "allowed: url = \"results.sqlite\" (an SQLite file) or \"postgres://user@host:port/db\", or url_env = \"NAME\" (the variable that holds it)";
    match (&store.url, &store.url_env) {
        (Some(_), Some(_)) | (None, None) => c.error(
            at,
            "give one of url and url_env".into(),
            Some(ALLOWED.into()),
        ),
        (Some(url), None) => {
            let text = url.get_ref().trim();
            let postgres = text.starts_with("postgres://") || text.starts_with("postgresql://");
            if text.is_empty() || (text.contains("://") && !postgres) {
                c.error(
                    &at.clone().key("url"),
                    format!("{text:?} is not a results store"),
                    Some(ALLOWED.into()),
                );
            }
        }
        (None, Some(var)) => {
            let name = var.get_ref();
            let valid = name
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
                && name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
            if !valid {
                c.error(
                    &at.clone().key("url_env"),
                    format!("{name:?} is not an environment variable's name"),
                    Some("allowed: letters, digits and _, not starting with a digit, e.g. url_env = \"CAMPAIGN_STORE_URL\"".into()),
                );
            }
        }
    }
}

/// Prompt files named by any kind's `prompts.file` / `prompts.corpus`.
/// Read from the TOML by key, not from the kind's typed params: a kind
/// whose other params fail to parse yields no typed value, and the user
/// should still learn in the same pass that the prompt file is missing.
fn check_prompt_files(c: &mut Checker<'_>, params: &toml::Table, at: &FieldPath, base: &Path) {
    let Some(prompts) = params.get("prompts").and_then(|p| p.as_table()) else {
        return;
    };
    for key in ["file", "corpus"] {
        if let Some(path) = prompts.get(key).and_then(|p| p.as_str()) {
            let full = base.join(path);
            if !full.is_file() {
                c.error(
                    &at.clone().key("prompts").key(key),
                    format!("{} does not exist or is not a file", full.display()),
                    Some(format!(
                        "paths are relative to the campaign file's folder ({})",
                        base.display()
                    )),
                );
            }
        }
    }
}

/// Checks one benchmark and returns it validated, or `None` after
/// reporting why it is not valid.
fn check_benchmark(
    c: &mut Checker<'_>,
    at: &FieldPath,
    day: u32,
    bench: &BenchmarkSpec,
    models: &BTreeMap<String, ResolvedModel>,
    names: &mut HashSet<String>,
    kinds: &dyn KindCatalog,
) -> Option<Benchmark> {
    let problems_before = c.diagnostics.len();
    let name = bench.name.get_ref();
    let field = |key: &str| at.clone().key(key);
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
    {
        c.error(
            &field("name"),
            format!(
                "found {name:?}; allowed: 1 to {MAX_NAME_CHARS} letters, digits, '_', '-' and '.'"
            ),
            Some("names become file names in the results folder".into()),
        );
    }
    if !names.insert(name.clone()) {
        c.error(
            &field("name"),
            format!("day {day} has two benchmarks named {name:?}"),
            Some("benchmark names must be unique within a day".into()),
        );
    }

    let Some(kind) = kinds.find(bench.kind.get_ref()) else {
        c.error(
            &field("kind"),
            format!("unknown benchmark kind {:?}", bench.kind.get_ref()),
            Some(format!("known kinds: {}", kinds.names().join(", "))),
        );
        return None;
    };

    let params = bench.params();
    let params_at = field("params");
    let check = kind.check_params(&params, models);
    let configured = match check.checked {
        Ok((configured, need)) => {
            c.fits_in_memory(&params_at, "this benchmark", &need);
            Some(configured)
        }
        Err(problem) => {
            let path = match &problem.key {
                Some(key) => params_at.join_dotted(key),
                None => params_at,
            };
            c.error(&path, problem.message, problem.help);
            None
        }
    };
    let metrics = check.target_metrics;
    let mut targets = Vec::new();
    for (t, target) in bench.targets.iter().enumerate() {
        let at = field("targets").index(t);
        match target.get_ref().parse::<Target>() {
            Err(message) => c.error(&at, message, None),
            Ok(t) if !metrics.contains(&t.metric.as_str()) => {
                c.error(
                    &at,
                    format!("kind {} has no metric {:?}", bench.kind.get_ref(), t.metric),
                    Some(format!("its metrics: {}", metrics.join(", "))),
                );
            }
            Ok(t) => targets.push(t),
        }
    }
    if c.diagnostics.len() > problems_before {
        return None;
    }
    Some(Benchmark {
        name: name.clone(),
        kind: bench.kind.get_ref().clone(),
        description: bench.description.clone(),
        warmup: bench.warmup,
        iterations: bench.iterations,
        time_budget_s: bench.time_budget_s,
        timeout_s: bench.timeout_s,
        targets,
        written_targets: bench.targets.iter().map(|t| t.get_ref().clone()).collect(),
        profile: bench.profile,
        profile_hz: bench.profile_hz,
        regression_threshold_pct: bench.regression_threshold_pct,
        written_params: params,
        configured: configured?,
    })
}
