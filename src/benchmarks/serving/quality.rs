//! What a model outputs against what another outputs, on a fixed prompt
//! set: the measurement behind a remedy's quality verdict
//! (`analysis::judge_quality`). Both models are fed the same tokens (the
//! reference's greedy continuation), so each position compares two
//! next-token distributions on one context.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use serde::{Deserialize, Serialize};

use super::endpoint_target::EndpointTarget;
use crate::benchmarks::model::PromptSpec;
use crate::benchmarks::workload::LengthDistribution;
use crate::benchmarks::{BenchContext, BenchmarkError, ServedOutput};
use crate::campaign::bounds::Tokens;
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
/// Prompts of a served target's comparison. More than in-process: a
/// server cannot be fed the other arm's tokens, so a prompt tells only
/// whether and where its outputs part, and a loss at the margin parts
/// few of them (at 5 %, about one prompt in eleven); 32 prompts would call
/// such a loss holding in about 10 % of seeded trials, 128 keep it within
/// the 5 % the rule states (`analysis::quality`'s tests).
pub const QUALITY_SERVED_PROMPTS: usize = 128;
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

/// What one prompt's served outputs compare to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServedPromptQuality {
    /// Share of the compared positions from the first differing chunk on
    /// (a server cannot be fed another's tokens: after the first
    /// difference the two continue different texts, so every later
    /// position counts as differing, and a shorter output differs where it
    /// ended).
    pub disagreement: f64,
    /// Output tokens of each arm: the server's usage, else the chunks.
    pub reference_tokens: usize,
    pub candidate_tokens: usize,
    /// Whether either arm's usage counted other than the chunks streamed.
    pub usage_differs_from_stream: bool,
}

/// The fixed quality prompts sent to `target` one at a time, greedy
/// (temperature 0), up to [`QUALITY_TOKENS`] tokens, the end of sequence
/// honoured (where a remedy stops early is part of its quality).
pub(super) fn served_outputs(
    target: EndpointTarget<'_>,
    spec: Option<&PromptSpec>,
    ctx: &BenchContext,
) -> Result<Vec<ServedOutput>, BenchmarkError> {
    let target = EndpointTarget {
        ignore_eos: false,
        ..target
    };
    let source = target.prompt_source(spec, ctx)?;
    let prompt_tokens = source
        .vocab_size()
        .map(|_| LengthDistribution::fixed(Tokens::new_const(QUALITY_PROMPT_TOKENS as u64)));
    let (_, sent) = source.requests(
        &target,
        QUALITY_SEED,
        QUALITY_SERVED_PROMPTS,
        prompt_tokens,
        LengthDistribution::fixed(Tokens::new_const(QUALITY_TOKENS as u64)),
        None,
    )?;
    let connection = target.connect()?;
    sent.iter()
        .enumerate()
        .map(|(i, prompt)| {
            let streamed = connection
                .runtime
                .block_on(connection.client.stream(prompt, QUALITY_TOKENS))
                .map_err(|f| {
                    BenchmarkError::Component(format!(
                        "{}: quality prompt {} of {QUALITY_SERVED_PROMPTS}: {}: {}",
                        connection.client.url(),
                        i + 1,
                        f.class.name(),
                        f.message
                    ))
                })?;
            Ok(ServedOutput {
                usage_tokens: streamed
                    .usage
                    .as_ref()
                    .and_then(|u| u.completion_tokens)
                    .and_then(|n| usize::try_from(n).ok()),
                chunks: streamed.chunks.into_iter().map(|c| c.text).collect(),
            })
        })
        .collect()
}

/// Each prompt's served outputs of `candidate` against `reference` over
/// the first `tokens` positions.
pub fn compare_served(
    reference: &[ServedOutput],
    candidate: &[ServedOutput],
    tokens: usize,
) -> Result<Vec<ServedPromptQuality>, BenchmarkError> {
    if reference.len() != candidate.len() {
        return Err(BenchmarkError::Component(format!(
            "the two arms answered {} and {} prompts: their outputs cannot be paired",
            reference.len(),
            candidate.len()
        )));
    }
    Ok(reference
        .iter()
        .zip(candidate)
        .map(|(r, c)| {
            let (rc, cc) = (
                &r.chunks[..r.chunks.len().min(tokens)],
                &c.chunks[..c.chunks.len().min(tokens)],
            );
            let compared = rc.len().max(cc.len());
            let same = rc.iter().zip(cc).take_while(|(a, b)| a == b).count();
            let count = |o: &ServedOutput| o.usage_tokens.unwrap_or(o.chunks.len());
            ServedPromptQuality {
                disagreement: if compared == 0 {
                    0.0
                } else {
                    (compared - same) as f64 / compared as f64
                },
                reference_tokens: count(r),
                candidate_tokens: count(c),
                usage_differs_from_stream: [r, c]
                    .iter()
                    .any(|o| o.usage_tokens.is_some_and(|n| n != o.chunks.len())),
            }
        })
        .collect())
}
