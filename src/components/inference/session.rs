use candle_core::{D, Tensor};
use candle_transformers::models::llama::{Cache, Llama};

use super::gguf::GgufWeights;
use super::loader::Backend;
use super::{InferenceError, LoadedModel};

/// The KV cache of one generation, in the form each backend keeps it.
/// Cloning it copies no tensor: candle's tensors are immutable and shared,
/// and every step writes new ones, so a clone stays the cache it was.
#[derive(Clone)]
enum SessionState<'m> {
    /// candle's `Cache` is not reset when a new prompt starts at position
    /// 0, so every generation gets a fresh one.
    Safetensors { model: &'m Llama, cache: Cache },
    /// A quantized model keeps its KV cache inside its layers: each
    /// generation works on a clone, which shares the weights.
    Gguf(GgufWeights),
}

/// One greedy generation with its own KV cache.
pub struct GenerationSession<'m> {
    model: &'m LoadedModel,
    state: SessionState<'m>,
    position: usize,
    batch_size: usize,
}

impl<'m> GenerationSession<'m> {
    pub fn new(model: &'m LoadedModel, batch_size: usize) -> Result<Self, InferenceError> {
        let state = match &model.backend {
            Backend::Safetensors {
                model: llama,
                config,
            } => SessionState::Safetensors {
                model: llama,
                cache: Cache::new(true, model.dtype, config, &model.device)?,
            },
            Backend::Gguf(weights) => SessionState::Gguf(weights.clone()),
        };
        Ok(Self {
            model,
            state,
            position: 0,
            batch_size: batch_size.max(1),
        })
    }

    /// Runs the prompt through the model (prefill) and returns the first
    /// generated token of each sequence in the batch.
    pub fn prefill(&mut self, prompt: &[u32]) -> Result<Vec<u32>, InferenceError> {
        self.forward(prompt)
    }

    /// Prefill of one distinct prompt per sequence of the batch. candle's
    /// Llama has no padding mask, so the prompts must have the same length.
    pub fn prefill_each(&mut self, prompts: &[&[u32]]) -> Result<Vec<u32>, InferenceError> {
        let width = prompts.first().map_or(0, |p| p.len());
        if prompts.len() != self.batch_size || prompts.iter().any(|p| p.len() != width) {
            return Err(InferenceError::InvalidConfig(format!(
                "batched prefill needs {} prompts of one length (got {} prompts of lengths {:?})",
                self.batch_size,
                prompts.len(),
                prompts.iter().map(|p| p.len()).collect::<Vec<_>>()
            )));
        }
        let input: Vec<u32> = prompts.iter().flat_map(|p| p.iter().copied()).collect();
        let input = Tensor::from_vec(input, (self.batch_size, width), &self.model.device)?;
        self.run(&input, width)
    }

    /// Feeds back one token per sequence and returns the next ones.
    pub fn step(&mut self, tokens: &[u32]) -> Result<Vec<u32>, InferenceError> {
        if tokens.len() != self.batch_size {
            return Err(InferenceError::InvalidConfig(format!(
                "decode step got {} tokens for a batch of {}",
                tokens.len(),
                self.batch_size
            )));
        }
        let input = Tensor::from_vec(tokens.to_vec(), (self.batch_size, 1), &self.model.device)?;
        self.run(&input, 1)
    }

    fn forward(&mut self, prompt: &[u32]) -> Result<Vec<u32>, InferenceError> {
        let input: Vec<u32> = std::iter::repeat_n(prompt, self.batch_size)
            .flatten()
            .copied()
            .collect();
        let input = Tensor::from_vec(input, (self.batch_size, prompt.len()), &self.model.device)?;
        self.run(&input, prompt.len())
    }

    fn run(&mut self, input: &Tensor, width: usize) -> Result<Vec<u32>, InferenceError> {
        let limit = self.model.architecture.max_position_embeddings;
        if self.position + width > limit {
            return Err(InferenceError::SequenceTooLong {
                needed: self.position + width,
                limit,
            });
        }
        let logits = match &mut self.state {
            SessionState::Safetensors { model, cache } => {
                model.forward(input, self.position, cache)?
            }
            SessionState::Gguf(weights) => weights.forward(input, self.position)?,
        };
        let logits = self.planted_flip(logits)?;
        self.position += width;
        // Greedy sampling: the most likely next token of each sequence.
        Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
    }

    /// Logits of the last position of `prompt` (one sequence), as f32:
    /// what tests compare between formats of the same weights.
    pub fn prefill_logits(&mut self, prompt: &[u32]) -> Result<Vec<f32>, InferenceError> {
        let input = Tensor::from_vec(prompt.to_vec(), (1, prompt.len()), &self.model.device)?;
        let logits = match &mut self.state {
            SessionState::Safetensors { model, cache } => model.forward(&input, 0, cache)?,
            SessionState::Gguf(weights) => weights.forward(&input, 0)?,
        };
        self.position = prompt.len();
        Ok(logits
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?)
    }

    /// Prefill of `prompt`, then greedy decode: the `output_tokens` tokens
    /// generated (at least the first, after prefill), on a one-sequence
    /// session.
    pub fn greedy_continuation(
        model: &'m LoadedModel,
        prompt: &[u32],
        output_tokens: usize,
    ) -> Result<Vec<u32>, InferenceError> {
        let mut session = Self::new(model, 1)?;
        let mut tokens = session.prefill(prompt)?;
        let mut generated = tokens.clone();
        for _ in 1..output_tokens {
            tokens = session.step(&tokens)?;
            generated.extend(&tokens);
        }
        Ok(generated)
    }

    /// Greedy generation of at most `max_tokens` tokens after `prompt`,
    /// stopping after `stop` (the end-of-sequence token) when it comes.
    pub fn greedy_until(
        model: &'m LoadedModel,
        prompt: &[u32],
        max_tokens: usize,
        stop: Option<u32>,
    ) -> Result<Vec<u32>, InferenceError> {
        let mut generated = Vec::new();
        if max_tokens == 0 {
            return Ok(generated);
        }
        let mut session = Self::new(model, 1)?;
        let mut tokens = session.prefill(prompt)?;
        loop {
            generated.extend(&tokens);
            let done = generated.len() >= max_tokens || stop.is_some_and(|s| tokens.contains(&s));
            if done {
                return Ok(generated);
            }
            tokens = session.step(&tokens)?;
        }
    }

    /// Feeds `tokens` of one sequence (a prompt, or the token just chosen)
    /// and returns the logits of the next position, as f32: what a quality
    /// comparison reads at every step of a continuation.
    pub fn next_logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>, InferenceError> {
        let limit = self.model.architecture.max_position_embeddings;
        if self.position + tokens.len() > limit {
            return Err(InferenceError::SequenceTooLong {
                needed: self.position + tokens.len(),
                limit,
            });
        }
        let input = Tensor::from_vec(tokens.to_vec(), (1, tokens.len()), &self.model.device)?;
        let logits = match &mut self.state {
            SessionState::Safetensors { model, cache } => {
                model.forward(&input, self.position, cache)?
            }
            SessionState::Gguf(weights) => weights.forward(&input, self.position)?,
        };
        let logits = self.planted_flip(logits)?;
        self.position += tokens.len();
        Ok(logits
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?)
    }

    /// The model's planted quality loss applied to last-position logits
    /// (`[batch, vocab]`), before `self.position` moves past them.
    fn planted_flip(&self, logits: Tensor) -> Result<Tensor, InferenceError> {
        let share = self.model.planted_token_flip;
        if share <= 0.0 {
            return Ok(logits);
        }
        let dims = logits.dims().to_vec();
        let mut rows = logits
            .to_dtype(candle_core::DType::F32)?
            .flatten_to(candle_core::D::Minus2)?
            .to_vec2::<f32>()?;
        for row in &mut rows {
            let vocab = row.len();
            if vocab < 2 {
                continue;
            }
            let (best, top) = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, v)| if *v > b.1 { (i, *v) } else { b },
                );
            let hash = xxhash_rust::xxh3::xxh3_64(
                &[self.position as u64, best as u64]
                    .map(u64::to_le_bytes)
                    .concat(),
            );
            if (hash >> 11) as f64 / (1u64 << 53) as f64 >= share {
                continue;
            }
            let other = (best + 1 + (hash % (vocab as u64 - 1)) as usize) % vocab;
            row[other] = top + 1.0;
        }
        let flat: Vec<f32> = rows.into_iter().flatten().collect();
        Ok(Tensor::from_vec(flat, dims, &self.model.device)?)
    }

    /// Positions already held in the KV cache.
    pub fn position(&self) -> usize {
        self.position
    }

    /// The KV cache as it is now, to resume other generations from (a
    /// prefix cache): no tensor is copied, and this session going on does
    /// not change it.
    pub fn snapshot(&self) -> SessionSnapshot<'m> {
        SessionSnapshot {
            state: self.state.clone(),
            position: self.position,
        }
    }

    /// A one-sequence session that starts where `snapshot` was taken.
    pub fn resume(model: &'m LoadedModel, snapshot: &SessionSnapshot<'m>) -> Self {
        Self {
            model,
            state: snapshot.state.clone(),
            position: snapshot.position,
            batch_size: 1,
        }
    }
}

/// A one-sequence KV cache at a position, kept to resume from.
#[derive(Clone)]
pub struct SessionSnapshot<'m> {
    state: SessionState<'m>,
    position: usize,
}

impl SessionSnapshot<'_> {
    /// The tokens it holds.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl LoadedModel {
    /// Bytes the KV cache takes per token of one sequence: keys and values
    /// of every layer, in the dtype the activations have.
    pub fn kv_bytes_per_token(&self) -> u64 {
        let a = &self.architecture;
        let head_dim = a.hidden_size / a.num_attention_heads.max(1);
        (2 * a.num_hidden_layers * a.num_key_value_heads * head_dim * self.dtype.size_in_bytes())
            as u64
    }
}
