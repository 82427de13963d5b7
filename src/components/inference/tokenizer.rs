//! A model's own tokenizer, from `tokenizer.json` (Hugging Face's format,
//! through the `tokenizers` crate) or from a GGUF file's metadata, and its
//! chat template (Jinja, through `minijinja`).

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use serde::Serialize;
use tokenizers::Tokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;

use super::InferenceError;
use super::gguf_metadata::{metadata_str, metadata_u64};

/// The `tokenizer.ggml.pre` values candle's converter gives their own split.
const CANDLE_PRE_TOKENIZERS: [&str; 4] = ["qwen2", "smaug-bpe", "lfm2", "llama3"];

/// Text ↔ token ids for one model.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// Where the vocabulary came from, for reports ("tokenizer.json", "GGUF metadata").
    pub source: String,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub eos_id: Option<u32>,
    pub chat_template: Option<String>,
}

/// One message of a chat, as chat templates read it (and as OpenAI-style
/// requests send it).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// The most a `tokenizer.json` (or its `tokenizer_config.json`) may hold:
/// real ones are a few MiB; the file is held whole while it is parsed.
pub const MAX_TOKENIZER_FILE_BYTES: u64 = 64 << 20;

impl TextTokenizer {
    pub fn new(inner: Tokenizer, source: impl Into<String>) -> Self {
        Self {
            inner,
            source: source.into(),
            bos_token: None,
            eos_token: None,
            eos_id: None,
            chat_template: None,
        }
    }

    /// Reads `tokenizer.json`, and `tokenizer_config.json` beside it when
    /// there is one (special tokens, chat template); each is refused unread
    /// past [`MAX_TOKENIZER_FILE_BYTES`].
    pub fn from_file(path: &Path) -> Result<Self, InferenceError> {
        let problem = |problem: String| InferenceError::Tokenizer {
            path: path.to_path_buf(),
            problem,
        };
        let bytes = crate::components::bounded::read_bounded(path, MAX_TOKENIZER_FILE_BYTES)
            .map_err(|e| problem(e.to_string()))?;
        // The tokenizers crate unwraps inside some of its deserializers (a
        // truncated decoder section panics): its failure is this file's
        // error, not the run's end.
        let inner = std::panic::catch_unwind(|| Tokenizer::from_bytes(&bytes))
            .map_err(|payload| {
                problem(format!(
                    "is not a tokenizer file the tokenizers crate can read ({})",
                    crate::panics::describe(payload.as_ref())
                ))
            })?
            .map_err(|e| problem(e.to_string()))?;
        let mut tokenizer = Self::new(inner, path.display().to_string());
        let config = path.with_file_name("tokenizer_config.json");
        use crate::components::bounded::{BoundedReadError, read_text_bounded};
        let text = match read_text_bounded(&config, MAX_TOKENIZER_FILE_BYTES) {
            Ok(text) => Some(text),
            // No config beside the tokenizer: it is optional.
            Err(BoundedReadError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                None
            }
            Err(e) => {
                return Err(InferenceError::Tokenizer {
                    path: config.clone(),
                    problem: e.to_string(),
                });
            }
        };
        if let Some(text) = text {
            let json: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| InferenceError::Tokenizer {
                    path: config.clone(),
                    problem: e.to_string(),
                })?;
            // A special token is written either as a string or as {"content": …}.
            let token = |key: &str| {
                let v = json.get(key)?;
                v.as_str()
                    .or_else(|| v.get("content")?.as_str())
                    .map(str::to_string)
            };
            tokenizer.bos_token = token("bos_token");
            tokenizer.eos_token = token("eos_token");
            tokenizer.chat_template = json
                .get("chat_template")
                .and_then(|t| t.as_str())
                .map(str::to_string);
        }
        tokenizer.eos_id = tokenizer
            .eos_token
            .as_deref()
            .and_then(|t| tokenizer.inner.token_to_id(t));
        Ok(tokenizer)
    }

    /// The tokenizer a GGUF file describes: byte-level BPE (`gpt2`, through
    /// candle's converter) or SentencePiece (`llama`, converted here the way
    /// Hugging Face converts it: BPE merges from the piece scores, byte
    /// fallback). `Err` says why the file has none this build can use.
    pub fn from_gguf(content: &Content) -> Result<Self, String> {
        let model = metadata_str(content, "tokenizer.ggml.model")
            .ok_or("the file has no tokenizer.ggml.model in its metadata")?
            .to_string();
        let tokens: Vec<String> = match content.metadata.get("tokenizer.ggml.tokens") {
            Some(Value::Array(values)) => values
                .iter()
                .map(|v| v.to_string().cloned().unwrap_or_default())
                .collect(),
            _ => return Err("the file has no tokenizer.ggml.tokens".into()),
        };
        let inner = match model.as_str() {
            "gpt2" => {
                let mut tokenizer = Tokenizer::from_gguf(content).map_err(|e| e.to_string())?;
                let pre = metadata_str(content, "tokenizer.ggml.pre").unwrap_or("gpt2");
                if !CANDLE_PRE_TOKENIZERS.contains(&pre) {
                    // candle's fallback puts a space before the text, which
                    // llama.cpp's GPT-2 split does not: the token counts
                    // would differ by one from the file's own engine.
                    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
                }
                tokenizer
            }
            "llama" => sentencepiece_bpe(content, &tokens)?,
            other => {
                return Err(format!(
                    "its tokenizer model {other:?} is not supported; supported: gpt2 (byte-level BPE), llama (SentencePiece)"
                ));
            }
        };
        let id = |key: &str| {
            content.metadata.get(key).and_then(|v| {
                v.to_u32()
                    .ok()
                    .or_else(|| v.to_i32().ok().map(|i| i as u32))
            })
        };
        let name = |id: Option<u32>| id.and_then(|i| tokens.get(i as usize)).cloned();
        let eos_id = id("tokenizer.ggml.eos_token_id");
        Ok(Self {
            inner,
            source: format!("GGUF metadata ({model})"),
            bos_token: name(id("tokenizer.ggml.bos_token_id")),
            eos_token: name(eos_id),
            eos_id,
            chat_template: metadata_str(content, "tokenizer.chat_template").map(str::to_string),
        })
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, InferenceError> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| InferenceError::InvalidConfig(format!("cannot tokenize the text: {e}")))
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, InferenceError> {
        self.inner
            .decode(ids, true)
            .map_err(|e| InferenceError::InvalidConfig(format!("cannot decode tokens: {e}")))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Renders `messages` through the model's chat template, ready for the
    /// assistant's reply.
    pub fn apply_chat_template(&self, messages: &[ChatMessage]) -> Result<String, InferenceError> {
        let template = self.chat_template.as_deref().ok_or_else(|| {
            InferenceError::InvalidConfig(format!(
                "the model's tokenizer ({}) has no chat template; leave out --chat",
                self.source
            ))
        })?;
        let mut env = minijinja::Environment::new();
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    message,
                ))
            },
        );
        let bad = |e: minijinja::Error| {
            InferenceError::InvalidConfig(format!("the model's chat template failed: {e}"))
        };
        env.add_template("chat", template).map_err(bad)?;
        env.get_template("chat")
            .and_then(|t| {
                t.render(minijinja::context! {
                    messages => messages,
                    add_generation_prompt => true,
                    bos_token => self.bos_token.clone().unwrap_or_default(),
                    eos_token => self.eos_token.clone().unwrap_or_default(),
                })
            })
            .map_err(bad)
    }
}

/// A SentencePiece vocabulary (tokens, scores) as a byte-fallback BPE:
/// every piece that splits into two pieces of the vocabulary gives a merge,
/// ranked by the score of the merged piece, as Hugging Face's
/// `SentencePieceExtractor` does. Written here because neither candle nor
/// `tokenizers` converts GGUF's `llama` tokenizer.
fn sentencepiece_bpe(content: &Content, tokens: &[String]) -> Result<Tokenizer, String> {
    use tokenizers::decoders::{
        DecoderWrapper, byte_fallback::ByteFallback, fuse::Fuse, sequence::Sequence as Decoders,
        strip::Strip,
    };
    use tokenizers::models::bpe::BPE;
    use tokenizers::normalizers::{NormalizerWrapper, Prepend, Replace, Sequence as Normalizers};

    let scores: Vec<f32> = match content.metadata.get("tokenizer.ggml.scores") {
        Some(Value::Array(values)) => values.iter().map(|v| v.to_f32().unwrap_or(0.0)).collect(),
        _ => vec![0.0; tokens.len()],
    };
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let mut merges: Vec<(f32, u32, u32, String, String)> = Vec::new();
    for (piece, score) in tokens.iter().zip(&scores) {
        let chars: Vec<(usize, char)> = piece.char_indices().collect();
        for (at, _) in chars.iter().skip(1) {
            let (left, right) = piece.split_at(*at);
            if let (Some(l), Some(r)) = (vocab.get(left), vocab.get(right)) {
                merges.push((*score, *l, *r, left.to_string(), right.to_string()));
            }
        }
    }
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let merges = merges.into_iter().map(|(_, _, _, l, r)| (l, r)).collect();
    let unk = metadata_u64(content, "tokenizer.ggml.unknown_token_id")
        .and_then(|i| tokens.get(usize::try_from(i).ok()?))
        .cloned()
        .unwrap_or_else(|| "<unk>".to_string());
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .unk_token(unk)
        .fuse_unk(true)
        .byte_fallback(true)
        .build()
        .map_err(|e| e.to_string())?;
    let mut tokenizer = Tokenizer::new(bpe);
    let space = Replace::new(" ", "▁").map_err(|e| e.to_string())?;
    tokenizer
        .with_normalizer(Some(NormalizerWrapper::Sequence(Normalizers::new(vec![
            Prepend::new("▁".into()).into(),
            space.into(),
        ]))))
        .map_err(|e| e.to_string())?;
    let unspace = Replace::new("▁", " ").map_err(|e| e.to_string())?;
    tokenizer.with_decoder(Some(DecoderWrapper::Sequence(Decoders::new(vec![
        DecoderWrapper::Replace(unspace),
        ByteFallback::new().into(),
        Fuse::new().into(),
        Strip::new(' ', 1, 0).into(),
    ]))));
    Ok(tokenizer)
}
