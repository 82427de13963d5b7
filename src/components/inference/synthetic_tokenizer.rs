//! The synthetic model's tokenizer: a byte-level BPE (GPT-2 style, as
//! SmolLM2 uses) trained with the `tokenizers` crate on a fixed text that
//! ships in the binary, padded with unused tokens to the model's vocabulary
//! size. It is written as `tokenizer.json` and as GGUF metadata, so text
//! prompts, `campaign generate` and llama.cpp all work on the default model.

use candle_core::quantized::gguf_file::Value;
use serde_json::json;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use super::InferenceError;

/// The training text. A copy, so that editing the README never changes a
/// model's vocabulary.
const CORPUS: &str = include_str!("synthetic_corpus.txt");

/// Control tokens, first in the vocabulary: end of text, and ChatML's turn
/// markers for the chat template.
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// ChatML, as SmolLM2 and Qwen2 use it.
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// The smallest vocabulary the synthetic tokenizer fits in.
pub const MIN_VOCAB: usize = SPECIAL_TOKENS.len() + 256;

/// llama.cpp's token types.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const UNUSED: i32 = 5;

/// The tokenizer as files: `tokenizer.json` text and GGUF metadata.
pub struct SyntheticTokenizer {
    pub json: String,
    pub tokens: Vec<String>,
    pub merges: Vec<String>,
    pub token_types: Vec<i32>,
}

impl SyntheticTokenizer {
    /// Trains on the fixed text; the same vocabulary size always gives the
    /// same tokenizer (the trainer breaks ties by the pair itself).
    pub fn train(vocab_size: usize) -> Result<Self, InferenceError> {
        let bad = |e: tokenizers::Error| {
            InferenceError::InvalidConfig(format!("cannot build the synthetic tokenizer: {e}"))
        };
        if vocab_size < MIN_VOCAB {
            return Err(InferenceError::InvalidConfig(format!(
                "a synthetic tokenizer needs vocab_size ≥ {MIN_VOCAB} (256 bytes and {} control tokens); found {vocab_size}",
                SPECIAL_TOKENS.len()
            )));
        }
        let trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(
                SPECIAL_TOKENS
                    .iter()
                    .map(|t| AddedToken::from(*t, true))
                    .collect(),
            )
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        // GPT-2's split and byte mapping, without a space put before the
        // text: what llama.cpp does for a `gpt2` vocabulary.
        let byte_level = ByteLevel::new(false, true, true);
        let mut tokenizer = Tokenizer::new(BPE::default());
        tokenizer.with_pre_tokenizer(Some(byte_level));
        tokenizer.with_decoder(Some(byte_level));
        tokenizer.with_post_processor(Some(byte_level));
        tokenizer
            .train(
                &mut TrainerWrapper::BpeTrainer(trainer),
                CORPUS.split("\n\n"),
            )
            .map_err(bad)?;

        // Read vocabulary and merges back from the serialised form, pad the
        // vocabulary with unused tokens, and write it again.
        let mut spec: serde_json::Value =
            serde_json::from_str(&tokenizer.to_string(false).map_err(bad)?)
                .map_err(|e| InferenceError::InvalidConfig(format!("synthetic tokenizer: {e}")))?;
        let vocab = spec["model"]["vocab"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut tokens = vec![String::new(); vocab_size];
        for (token, id) in &vocab {
            if let Some(slot) = id.as_u64().and_then(|i| tokens.get_mut(i as usize)) {
                *slot = token.clone();
            }
        }
        let mut token_types = vec![NORMAL; vocab_size];
        for (id, token) in tokens.iter_mut().enumerate() {
            if token.is_empty() {
                *token = format!("<|unused_{id}|>");
                token_types[id] = UNUSED;
                spec["model"]["vocab"][token.as_str()] = json!(id);
            } else if SPECIAL_TOKENS.contains(&token.as_str()) {
                token_types[id] = CONTROL;
            }
        }
        let merges = spec["model"]["merges"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|pair| match pair {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Array(p) => {
                            Some(format!("{} {}", p.first()?.as_str()?, p.get(1)?.as_str()?))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let json = serde_json::to_string(&spec)
            .map_err(|e| InferenceError::InvalidConfig(format!("synthetic tokenizer: {e}")))?;
        Ok(Self {
            json,
            tokens,
            merges,
            token_types,
        })
    }

    /// `tokenizer_config.json`: the special tokens and the chat template.
    pub fn config_json(&self) -> String {
        json!({
            "bos_token": SPECIAL_TOKENS[0],
            "eos_token": SPECIAL_TOKENS[2],
            "chat_template": CHAT_TEMPLATE,
        })
        .to_string()
    }

    /// The `tokenizer.*` keys of a GGUF file, as llama.cpp writes them.
    pub fn gguf_metadata(&self) -> Vec<(&'static str, Value)> {
        let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
        vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.pre", Value::String("gpt-2".into())),
            ("tokenizer.ggml.tokens", strings(&self.tokens)),
            ("tokenizer.ggml.merges", strings(&self.merges)),
            (
                "tokenizer.ggml.token_type",
                Value::Array(self.token_types.iter().map(|t| Value::I32(*t)).collect()),
            ),
            ("tokenizer.ggml.bos_token_id", Value::U32(0)),
            ("tokenizer.ggml.eos_token_id", Value::U32(2)),
            ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
            (
                "tokenizer.chat_template",
                Value::String(CHAT_TEMPLATE.into()),
            ),
        ]
    }
}
