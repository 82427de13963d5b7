//! What every kind that runs a model shares: loading the model (and what
//! loading cost), seeded prompts, checking a named model holds the
//! sequences asked for, and the memory a generation needs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::json;

use super::{
    BenchContext, BenchmarkError, MemoryNeed, MetricDef, Models, ParamProblem, SweepAxis,
    model_folder,
};
use crate::components::inference::{
    GenerationSession, LoadedModel, ModelArchitecture, TextTokenizer,
};
use crate::machine::checked_product;
use crate::machine::rss;

const MIB: f64 = 1024.0 * 1024.0;

/// The sweep of both model kinds that run prompts of several lengths; each
/// case writes `prompt_len` into its parameters.
pub(super) const PROMPT_LENGTH_AXIS: SweepAxis = SweepAxis {
    parameter: "prompt_len",
    title: "prompt length (tokens)",
    series_by: &[],
};

const MODEL_LOAD_MS: MetricDef = MetricDef::duration_ms(
    "model_load_ms",
    "config.json + safetensors → model ready on the device",
);
const RSS_AFTER_LOAD_MIB: MetricDef = MetricDef::quantity(
    "rss_after_load_mib",
    "MiB",
    false,
    "resident memory of the process after the model loaded",
);
const MODEL_RSS_DELTA_MIB: MetricDef = MetricDef::quantity(
    "model_rss_delta_mib",
    "MiB",
    false,
    "resident memory added by loading the model; near 0 when the allocator reuses memory an earlier benchmark freed (compare context.weights_bytes)",
);

pub(super) const MODEL_SETUP_METRICS: &[MetricDef] =
    &[MODEL_LOAD_MS, RSS_AFTER_LOAD_MIB, MODEL_RSS_DELTA_MIB];

pub(super) fn default_model() -> String {
    "default".to_string()
}

/// The architecture of the model named `model`, or a problem at `model`.
pub(super) fn architecture<'m>(
    model: &str,
    models: &'m Models,
) -> Result<&'m ModelArchitecture, ParamProblem> {
    models.get(model).map(|m| &m.architecture).ok_or_else(|| {
        let known: Vec<_> = models.keys().map(String::as_str).collect();
        ParamProblem::at(
            "model",
            format!("no model named {model:?} in [models]"),
            format!(
                "define [models.{model}] or use one of: {}",
                known.join(", ")
            ),
        )
    })
}

/// Checks that `model` is defined and holds `longest_sequence` positions;
/// `field` is the parameter the sequence length comes from.
pub(super) fn check_model(
    model: &str,
    models: &Models,
    longest_sequence: u64,
    field: &str,
) -> Result<(), ParamProblem> {
    let limit = architecture(model, models)?.max_position_embeddings as u64;
    if longest_sequence > limit {
        return Err(ParamProblem::at(
            field,
            format!(
                "a prompt plus its generated tokens needs {longest_sequence} positions, more than model {model:?}'s max_position_embeddings ({limit})"
            ),
            "shorten the prompts or outputs, or raise max_position_embeddings",
        ));
    }
    Ok(())
}

/// What one generation of `batch` sequences of `prompt` + `output` tokens
/// holds besides the weights: the KV cache (f32), prefill's attention
/// scores (heads × prompt², three f32 copies: scores, softmax, mask) and its
/// activations (prompt × the wider of hidden and intermediate, eight f32
/// buffers).
pub(super) fn generation_memory(
    a: &ModelArchitecture,
    batch: u64,
    prompt: u64,
    output: u64,
    field: &str,
) -> Result<MemoryNeed, ParamProblem> {
    let n = |v: usize| v as u64;
    let kv_per_token = checked_product(&[
        2,
        n(a.num_hidden_layers),
        n(a.num_key_value_heads),
        n(a.head_dim()),
        4,
    ]);
    let kv = kv_per_token.and_then(|k| checked_product(&[batch, prompt.checked_add(output)?, k]));
    let scores = checked_product(&[batch, n(a.num_attention_heads), prompt, prompt, 4, 3]);
    let activations = checked_product(&[
        batch,
        prompt,
        n(a.hidden_size.max(a.intermediate_size)),
        4,
        8,
    ]);
    let total = kv
        .zip(scores)
        .zip(activations)
        .and_then(|((k, s), x)| k.checked_add(s)?.checked_add(x));
    let bytes = total.ok_or_else(|| {
        ParamProblem::at(
            field,
            "these lengths multiply to more memory than 64 bits can count",
            "shorten the prompts or outputs",
        )
    })?;
    Ok(MemoryNeed::new(
        bytes,
        format!(
            "batch {batch} × (prompt {prompt} + output {output}) tokens of f32 KV, heads × prompt² attention scores × 3, prompt × width activations × 8"
        ),
    ))
}

/// One greedy generation of `output_tokens` after `prompt`.
pub(super) fn generate(
    model: &LoadedModel,
    prompt: &[u32],
    output_tokens: usize,
) -> Result<(), BenchmarkError> {
    std::hint::black_box(GenerationSession::greedy_continuation(
        model,
        prompt,
        output_tokens,
    )?);
    Ok(())
}

pub(super) fn rss_mib() -> Result<f64, BenchmarkError> {
    rss::resident_set_bytes()
        .map(|b| b as f64 / MIB)
        .ok_or_else(|| {
            BenchmarkError::Component("this platform does not report resident memory".into())
        })
}

/// Deterministic prompt of `len` token ids: its own ChaCha stream per
/// length, so adding a length to a sweep does not change the others.
pub(super) fn prompt_tokens(seed: u64, len: usize, vocab_size: usize) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(len as u64);
    let vocab = u32::try_from(vocab_size).unwrap_or(u32::MAX);
    (0..len).map(|_| rng.random_range(0..vocab)).collect()
}

/// Where a benchmark's prompts come from: seeded random token ids when
/// absent, or text cut to the requested token lengths by the model's own
/// tokenizer. Paths are relative to the campaign file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSpec {
    /// JSON lines, one prompt per line: `{"text": "…"}`.
    #[serde(default)]
    file: Option<PathBuf>,
    /// Plain text, cut into prompts of the requested lengths.
    #[serde(default)]
    corpus: Option<PathBuf>,
}

impl PromptSpec {
    /// Exactly one of `file` and `corpus`.
    pub fn check_form(&self) -> Result<(), ParamProblem> {
        if self.file.is_some() == self.corpus.is_some() {
            return Err(ParamProblem::at(
                "prompts",
                "give exactly one of `file` (JSON lines with a \"text\" field) or `corpus` (plain text)",
                "prompts = { file = \"prompts.jsonl\" } or prompts = { corpus = \"corpus.txt\" }",
            ));
        }
        Ok(())
    }

    /// Whether the prompts are cut from a corpus (to lengths in tokens).
    pub fn is_corpus(&self) -> bool {
        self.corpus.is_some()
    }
}

/// Checks a `prompts` table and that the model can tokenize text.
pub(super) fn check_prompts(
    spec: Option<&PromptSpec>,
    model: &str,
    models: &Models,
) -> Result<(), ParamProblem> {
    let Some(spec) = spec else {
        return Ok(());
    };
    spec.check_form()?;
    if let Some(why) = models.get(model).and_then(|m| m.missing_tokenizer.as_ref()) {
        return Err(ParamProblem::at(
            "prompts",
            format!(
                "model {model:?} has no tokenizer, and text prompts are cut by the model's own tokenizer: {why}"
            ),
            "leave out `prompts` for random token ids, or put the model's tokenizer.json beside it",
        ));
    }
    Ok(())
}

/// The text of each line of a prompts file (`{"text": …}` per line, blank
/// lines skipped), with the file's full path; at least one line.
pub(super) fn read_prompt_lines(
    spec: &PromptSpec,
    ctx: &BenchContext,
) -> Result<(PathBuf, Vec<String>), BenchmarkError> {
    let file = spec
        .file
        .as_ref()
        .ok_or_else(|| BenchmarkError::Params("prompts needs `file`".into()))?;
    let full = ctx.campaign_dir.join(file);
    let text = crate::components::bounded::read_text_bounded(&full, MAX_PROMPT_FILE_BYTES)
        .map_err(|e| BenchmarkError::Component(e.to_string()))?;
    let lines = prompt_lines(&text, &full)?;
    if lines.iter().all(String::is_empty) {
        return Err(BenchmarkError::Component(format!(
            "{} holds no prompt text",
            full.display()
        )));
    }
    Ok((full, lines))
}

/// Prompts as token ids, ready for any length.
pub(super) enum Prompts {
    Random {
        seed: u64,
        vocab_size: usize,
    },
    /// One token list per line of a prompts file.
    Lines(Vec<Vec<u32>>),
    /// A whole corpus as one token stream.
    Corpus(Vec<u32>),
}

impl Prompts {
    pub fn load(
        spec: Option<&PromptSpec>,
        model: &LoadedModel,
        ctx: &BenchContext,
    ) -> Result<Self, BenchmarkError> {
        Self::load_with(
            spec,
            model.tokenizer.as_ref().map_err(String::as_str),
            model.architecture.vocab_size,
            ctx,
        )
    }

    /// [`Prompts::load`] with a tokenizer and vocabulary of any origin (a
    /// model's, or a tokenizer file's); `Err` says why there is none.
    pub fn load_with(
        spec: Option<&PromptSpec>,
        tokenizer: Result<&TextTokenizer, &str>,
        vocab_size: usize,
        ctx: &BenchContext,
    ) -> Result<Self, BenchmarkError> {
        let Some(spec) = spec else {
            return Ok(Self::Random {
                seed: ctx.settings.seed,
                vocab_size,
            });
        };
        let tokenizer = tokenizer.map_err(|why| {
            BenchmarkError::Component(format!(
                "text prompts need a tokenizer, and there is none: {why}"
            ))
        })?;
        let encode = |text: &str| tokenizer.encode(text).map_err(BenchmarkError::from);
        let prompts = match &spec.corpus {
            None => {
                let (full, lines) = read_prompt_lines(spec, ctx)?;
                let lines: Vec<Vec<u32>> = lines
                    .iter()
                    .map(|line| encode(line))
                    .collect::<Result<_, _>>()?;
                // Cycling through lines of no tokens would never end.
                if lines.iter().all(Vec::is_empty) {
                    return Err(BenchmarkError::Component(format!(
                        "{} holds no prompt text the tokenizer makes tokens of",
                        full.display()
                    )));
                }
                Self::Lines(lines)
            }
            Some(corpus) => {
                let full = ctx.campaign_dir.join(corpus);
                let text =
                    crate::components::bounded::read_text_bounded(&full, MAX_PROMPT_FILE_BYTES)
                        .map_err(|e| BenchmarkError::Component(e.to_string()))?;
                let tokens = encode(&text)?;
                if tokens.is_empty() {
                    return Err(BenchmarkError::Component(format!(
                        "{} holds no text",
                        full.display()
                    )));
                }
                Self::Corpus(tokens)
            }
        };
        Ok(prompts)
    }

    /// Prompt `index` at exactly `len` tokens: random ids; or that line of
    /// the file continued by the next ones and cut; or the corpus from an
    /// offset that moves with `index`, wrapping around.
    pub fn tokens(&self, len: usize, index: usize) -> Vec<u32> {
        match self {
            Self::Random { seed, vocab_size } => {
                prompt_tokens(seed.wrapping_add(index as u64), len, *vocab_size)
            }
            Self::Lines(lines) => lines
                .iter()
                .cycle()
                .skip(index % lines.len())
                .flatten()
                .copied()
                .take(len)
                .collect(),
            Self::Corpus(tokens) => tokens
                .iter()
                .cycle()
                .skip(index.wrapping_mul(len) % tokens.len())
                .copied()
                .take(len)
                .collect(),
        }
    }

    /// Gives every request of a seeded workload its text prompt of the
    /// same length (request `i` gets prompt `i`); random prompts stay.
    pub fn apply_to(&self, requests: &mut [super::workload::Request]) {
        if matches!(self, Self::Random { .. }) {
            return;
        }
        for (i, request) in requests.iter_mut().enumerate() {
            request.prompt = self.tokens(request.prompt.len(), i);
        }
    }

    /// For the report's context.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            Self::Random { .. } => json!({"source": "random token ids (seeded)"}),
            Self::Lines(lines) => json!({
                "source": "prompts file",
                "prompts": lines.len(),
                "tokens": lines.iter().map(Vec::len).sum::<usize>(),
            }),
            Self::Corpus(tokens) => json!({"source": "corpus", "tokens": tokens.len()}),
        }
    }
}

/// The most a prompts file or a corpus may hold: it is read whole and
/// tokenized; a benchmark needs thousands of prompts, not gigabytes.
pub const MAX_PROMPT_FILE_BYTES: u64 = 64 << 20;

/// The prompt texts of a JSON-lines prompts file (`{"text": "…"}` a line;
/// blank lines skipped), or the first line that is not one, by number.
pub fn prompt_lines(text: &str, path: &std::path::Path) -> Result<Vec<String>, BenchmarkError> {
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let problem = |what: String| {
            BenchmarkError::Component(format!("{} line {}: {what}", path.display(), n + 1))
        };
        let parsed: serde_json::Value =
            serde_json::from_str(line).map_err(|e| problem(format!("not JSON: {e}")))?;
        let text = parsed["text"].as_str().ok_or_else(|| {
            problem("no string field \"text\"; each line is {\"text\": \"…\"}".into())
        })?;
        lines.push(text.to_string());
    }
    Ok(lines)
}

/// The prompt of every report's sample output.
const SAMPLE_PROMPT: &str = "The time to first token of a language model";
const SAMPLE_TOKENS: usize = 16;

/// One decoded greedy continuation of a fixed prompt, so a report shows
/// what the measured model says (garbage from a model that loaded wrong is
/// visible at once). Outside every timed region.
fn sample_output(model: &LoadedModel) -> Result<serde_json::Value, BenchmarkError> {
    let tokenizer = model
        .tokenizer
        .as_ref()
        .map_err(|why| BenchmarkError::Component(why.clone()))?;
    let prompt = tokenizer.encode(SAMPLE_PROMPT)?;
    let generated =
        GenerationSession::greedy_until(model, &prompt, SAMPLE_TOKENS, tokenizer.eos_id)?;
    Ok(json!({
        "prompt": SAMPLE_PROMPT,
        "continuation": tokenizer.decode(&generated)?,
        "generated_tokens": generated.len(),
    }))
}

/// The model `resolved` describes, from `folder`, as every path that runs
/// it loads it (benchmarks, `campaign serve`, `generate`, the quality
/// comparison): quantized when the campaign asks, with its planted flips.
pub fn open_model(
    resolved: &crate::campaign::ResolvedModel,
    folder: &std::path::Path,
    device: &candle_core::Device,
    dtype: candle_core::DType,
) -> Result<LoadedModel, crate::components::inference::InferenceError> {
    let mut model = match resolved.quantize {
        Some(q) => LoadedModel::load_quantized_with(folder, device, q, resolved.matmul)?,
        None => LoadedModel::load_with(folder, device, dtype, resolved.matmul)?,
    };
    model.planted_token_flip = resolved.planted_token_flip;
    Ok(model)
}

/// A model loaded for a benchmark, with what loading it cost.
pub(super) struct ModelUnderTest {
    pub model: Arc<LoadedModel>,
    pub setup: Vec<(&'static str, f64)>,
    pub context: serde_json::Value,
}

/// Loads (generating first if synthetic) the named model and measures the load.
pub(super) fn load_model(name: &str, ctx: &BenchContext) -> Result<ModelUnderTest, BenchmarkError> {
    let (resolved, folder) = model_folder(ctx, name)?;
    let device = ctx.device.open()?;
    let rss_before = rss::resident_set_bytes();
    let started = Instant::now();
    let model = open_model(resolved, &folder, &device, ctx.settings.dtype.to_candle())?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let rss_after = rss::resident_set_bytes();
    let mut setup = vec![(MODEL_LOAD_MS.name, load_ms)];
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        setup.push((RSS_AFTER_LOAD_MIB.name, after as f64 / MIB));
        setup.push((
            MODEL_RSS_DELTA_MIB.name,
            after.saturating_sub(before) as f64 / MIB,
        ));
    }
    let context = json!({
        "model": name,
        "model_source": match (&resolved.synthetic, model.weights.format.as_str()) {
            (Some(_), "gguf") => "synthetic gguf",
            (Some(_), _) if resolved.quantize.is_some() => "synthetic, quantized in memory",
            (Some(_), _) => "synthetic",
            (None, "gguf") => "gguf file",
            (None, _) if resolved.quantize.is_some() => "folder, quantized in memory",
            (None, _) => "folder",
        },
        "model_folder": folder.display().to_string(),
        "weights_fingerprint": crate::components::inference::weights_fingerprint(&folder),
        "architecture": &model.architecture,
        "weights": &model.weights,
        "quantization": &model.weights.quantization,
        "parameters": model.weights.parameters,
        "weights_bytes": model.weights.stored_bytes,
        "weights_bytes_formula": "bytes of the weight tensors as stored",
        "weight_bytes_per_forward": model.weights.bytes_per_forward,
        "dtype": format!("{:?}", model.dtype).to_lowercase(),
        "tokenizer": match &model.tokenizer {
            Ok(t) => t.source.clone(),
            Err(why) => format!("none: {why}"),
        },
        "device": ctx.device.to_string(),
    });
    let mut context = context;
    if let Ok(sample) = sample_output(&model) {
        context["sample_output"] = sample;
    }
    Ok(ModelUnderTest {
        model: Arc::new(model),
        setup,
        context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any prompts file is read or refused at its first bad line,
        /// never a panic; every kept line had a string `text`.
        #[test]
        fn any_prompts_file_is_read_or_refused_by_line(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    "\\{\"text\": \"[a-z ]{0,20}\"\\}",
                    "\\{\"text\": [0-9]{1,3}\\}",
                    "\\PC{0,30}",
                    proptest::strategy::Just(String::new()),
                ],
                0..30,
            ),
        ) {
            let text = lines.join("\n");
            match prompt_lines(&text, std::path::Path::new("p.jsonl")) {
                Ok(kept) => proptest::prop_assert!(kept.len() <= lines.len()),
                Err(e) => proptest::prop_assert!(e.to_string().starts_with("p.jsonl line "), "{}", e),
            }
        }
    }

    #[test]
    fn prompts_are_reproducible_and_independent_per_length() {
        let a = prompt_tokens(7, 64, 1000);
        assert_eq!(a, prompt_tokens(7, 64, 1000));
        assert_ne!(a, prompt_tokens(8, 64, 1000));
        assert!(a.iter().all(|t| *t < 1000));
        // A 32-token prompt is not the first half of the 64-token one.
        assert_ne!(&prompt_tokens(7, 32, 1000)[..], &a[..32]);
    }
}
