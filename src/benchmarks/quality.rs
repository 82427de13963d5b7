//! What a model outputs against what another outputs, on a fixed prompt
//! set: the measurement behind a remedy's quality verdict
//! (`analysis::judge_quality`). Both models are fed the same tokens (the
//! reference's greedy continuation), so each position compares two
//! next-token distributions on one context.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use serde::{Deserialize, Serialize};

use super::BenchmarkError;
use crate::components::inference::{GenerationSession, LoadedModel};

/// What one prompt measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PromptQuality {
    /// Share of the compared tokens whose greedy choice differed.
    pub disagreement: f64,
    /// Mean KL divergence over the compared positions, nats.
    pub mean_kl: f64,
}

/// Prompts of the shipped quality comparison.
pub const QUALITY_PROMPTS: usize = 32;
/// Positions compared per prompt (the first greedy tokens).
pub const QUALITY_TOKENS: usize = 16;
/// Tokens of each prompt.
pub const QUALITY_PROMPT_TOKENS: usize = 24;
/// Seed of the prompt set: the same prompts every time, for every remedy.
const QUALITY_SEED: u64 = 0x005e_ed0f_9a11;

/// The fixed prompt set: token ids drawn from a seeded generator over
/// the vocabulary the two models share (random text is not language, but
/// it reaches every part of the vocabulary and needs no tokenizer).
pub fn quality_prompts(vocab_size: usize) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(QUALITY_SEED);
    let top = u32::try_from(vocab_size.max(1)).unwrap_or(u32::MAX);
    (0..QUALITY_PROMPTS)
        .map(|_| {
            (0..QUALITY_PROMPT_TOKENS)
                .map(|_| rng.random_range(0..top))
                .collect()
        })
        .collect()
}

fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    let exp: Vec<f64> = logits.iter().map(|v| f64::from(v - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

fn argmax(logits: &[f32]) -> usize {
    logits
        .iter()
        .enumerate()
        .fold(0, |best, (i, v)| if *v > logits[best] { i } else { best })
}

/// KL(p ‖ q) in nats, over the tokens `p` gives any weight.
fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .filter(|(p, _)| **p > 0.0)
        .map(|(p, q)| p * (p / q.max(f64::MIN_POSITIVE)).ln())
        .sum()
}

/// Each prompt's disagreement and mean KL of `candidate` against
/// `reference` over the first `tokens` positions after it.
pub fn compare_outputs(
    reference: &LoadedModel,
    candidate: &LoadedModel,
    prompts: &[Vec<u32>],
    tokens: usize,
) -> Result<Vec<PromptQuality>, BenchmarkError> {
    if reference.architecture.vocab_size != candidate.architecture.vocab_size {
        return Err(BenchmarkError::Component(format!(
            "the two models have vocabularies of {} and {} tokens: their outputs cannot be compared",
            reference.architecture.vocab_size, candidate.architecture.vocab_size
        )));
    }
    let mut out = Vec::with_capacity(prompts.len());
    for prompt in prompts {
        let mut a = GenerationSession::new(reference, 1)?;
        let mut b = GenerationSession::new(candidate, 1)?;
        let (mut la, mut lb) = (a.next_logits(prompt)?, b.next_logits(prompt)?);
        let (mut differ, mut kl) = (0usize, 0f64);
        for step in 0..tokens {
            let chosen = argmax(&la);
            if argmax(&lb) != chosen {
                differ += 1;
            }
            kl += kl_divergence(&softmax(&la), &softmax(&lb));
            if step + 1 < tokens {
                let next = [chosen as u32];
                la = a.next_logits(&next)?;
                lb = b.next_logits(&next)?;
            }
        }
        let n = tokens.max(1) as f64;
        out.push(PromptQuality {
            disagreement: differ as f64 / n,
            mean_kl: kl / n,
        });
    }
    Ok(out)
}
