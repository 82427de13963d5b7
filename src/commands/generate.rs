//! `campaign generate`: one greedy continuation of a prompt, as text, so a
//! user sees at once whether a model (and its tokenizer) loaded right.

use std::fmt::Write;
use std::time::Instant;

use super::{CommandError, exit, load_named_model};
use crate::campaign::Campaign;
use crate::components::inference::{ChatMessage, GenerationSession};
use crate::output::OutputLayout;

pub struct GenerateArgs {
    pub model: String,
    pub prompt: String,
    pub max_tokens: usize,
    /// Wrap the prompt in the model's chat template as a user message.
    pub chat: bool,
}

/// Returns the continuation on stdout's text; facts about the model and
/// the timing go to stderr so the text can be piped.
pub fn generate_command(
    campaign: &Campaign,
    layout: &OutputLayout,
    args: &GenerateArgs,
) -> Result<(String, u8), CommandError> {
    let usage = |message: String| CommandError::Usage(message);
    // The campaign's compute threads, as `run` uses them: before any
    // other thread starts (candle reads them on each matmul).
    crate::runner::configure_threads(campaign.settings.threads.usize());
    let (path, model) = load_named_model(campaign, layout, &args.model)?;
    let settings = campaign.settings.clone();
    let tokenizer = model.tokenizer.as_ref().map_err(|why| {
        usage(format!(
            "model {:?} has no tokenizer, so text cannot be encoded: {why}",
            args.model
        ))
    })?;
    let text = if args.chat {
        tokenizer.apply_chat_template(&[ChatMessage {
            role: "user".into(),
            content: args.prompt.clone(),
        }])?
    } else {
        args.prompt.clone()
    };
    let prompt = tokenizer.encode(&text)?;
    if prompt.is_empty() {
        return Err(usage(
            "the prompt is empty once tokenized; give some text".into(),
        ));
    }
    let started = Instant::now();
    let generated =
        GenerationSession::greedy_until(&model, &prompt, args.max_tokens, tokenizer.eos_id)?;
    let seconds = started.elapsed().as_secs_f64();
    let mut facts = String::new();
    let _ = writeln!(
        facts,
        "model {} ({} {}, {} parameters, {} bytes of weights; tokenizer from {})",
        path.display(),
        model.weights.format,
        model.weights.quantization,
        model.weights.parameters,
        model.weights.stored_bytes,
        tokenizer.source
    );
    let _ = write!(
        facts,
        "prompt {} tokens, generated {} tokens greedily in {seconds:.2} s with {} thread(s)",
        prompt.len(),
        generated.len(),
        settings.threads
    );
    eprintln!("{facts}");
    let mut out = tokenizer.decode(&generated)?;
    out.push('\n');
    Ok((out, exit::OK))
}
