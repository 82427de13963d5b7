//! The inference component on real forward passes of small synthetic models.

use std::collections::HashMap;
use std::fs;

use campaign::components::inference::{
    GenerationSession, InferenceError, LoadedModel, SyntheticLlamaConfig,
    materialize_synthetic_model,
};
use candle_core::{DType, Device, Tensor};
use tempfile::TempDir;

fn config(seed: u64) -> SyntheticLlamaConfig {
    SyntheticLlamaConfig {
        seed,
        vocab_size: 128,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        max_position_embeddings: 64,
        rope_theta: 10_000.0,
        rms_norm_eps: 1e-5,
        tie_word_embeddings: false,
        quantization: None,
    }
}

fn generate(model: &LoadedModel, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut session = GenerationSession::new(model, 1).unwrap();
    let mut tokens = session.prefill(prompt).unwrap();
    let mut out = tokens.clone();
    for _ in 1..n {
        tokens = session.step(&tokens).unwrap();
        out.extend(&tokens);
    }
    out
}

#[test]
fn same_seed_gives_the_same_weights_and_tokens() {
    let (a, b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let folder_a = materialize_synthetic_model(&config(1), a.path()).unwrap();
    let folder_b = materialize_synthetic_model(&config(1), b.path()).unwrap();
    let bytes_a = fs::read(folder_a.join("model.safetensors")).unwrap();
    assert_eq!(
        bytes_a,
        fs::read(folder_b.join("model.safetensors")).unwrap()
    );

    let other = materialize_synthetic_model(&config(2), a.path()).unwrap();
    assert_ne!(other, folder_a, "another seed gets its own cache folder");
    assert_ne!(bytes_a, fs::read(other.join("model.safetensors")).unwrap());

    let prompt = [3, 14, 15, 92, 65, 35];
    let model_a = LoadedModel::load(&folder_a, &Device::Cpu, DType::F32).unwrap();
    let model_b = LoadedModel::load(&folder_b, &Device::Cpu, DType::F32).unwrap();
    let tokens = generate(&model_a, &prompt, 8);
    assert_eq!(tokens.len(), 8);
    assert!(tokens.iter().all(|t| *t < 128));
    assert_eq!(tokens, generate(&model_b, &prompt, 8));
    // A fresh session starts from an empty KV cache: same prompt, same output.
    assert_eq!(tokens, generate(&model_a, &prompt, 8));
}

#[test]
fn a_cached_model_is_reused_not_regenerated() {
    let dir = TempDir::new().unwrap();
    let folder = materialize_synthetic_model(&config(3), dir.path()).unwrap();
    let weights = folder.join("model.safetensors");
    let written = fs::metadata(&weights).unwrap().modified().unwrap();
    assert_eq!(
        materialize_synthetic_model(&config(3), dir.path()).unwrap(),
        folder
    );
    assert_eq!(fs::metadata(&weights).unwrap().modified().unwrap(), written);
}

#[test]
fn kv_cached_decode_matches_recomputing_the_whole_sequence() {
    let dir = TempDir::new().unwrap();
    let folder = materialize_synthetic_model(&config(4), dir.path()).unwrap();
    let model = LoadedModel::load(&folder, &Device::Cpu, DType::F32).unwrap();
    let prompt = [1, 2, 3, 4, 5];
    let generated = generate(&model, &prompt, 4);
    // Without a cache, each next token comes from a prefill of everything so far.
    let mut sequence = prompt.to_vec();
    for expected in &generated {
        let next = GenerationSession::new(&model, 1)
            .unwrap()
            .prefill(&sequence)
            .unwrap()[0];
        assert_eq!(next, *expected);
        sequence.push(next);
    }
}

#[test]
fn a_missing_tensor_is_an_error_not_a_panic() {
    let dir = TempDir::new().unwrap();
    let folder = materialize_synthetic_model(&config(5), dir.path()).unwrap();
    let weights = folder.join("model.safetensors");
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    tensors.remove("model.layers.1.mlp.up_proj.weight");
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    match LoadedModel::load(&folder, &Device::Cpu, DType::F32) {
        Err(InferenceError::TensorMismatch { problems, .. }) => {
            assert!(
                problems.contains("missing tensor model.layers.1.mlp.up_proj.weight"),
                "{problems}"
            )
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a model with a missing tensor loaded"),
    }
}

#[test]
fn a_sequence_past_max_positions_is_refused() {
    let dir = TempDir::new().unwrap();
    let folder = materialize_synthetic_model(&config(6), dir.path()).unwrap();
    let model = LoadedModel::load(&folder, &Device::Cpu, DType::F32).unwrap();
    let prompt = vec![1; 65];
    let err = GenerationSession::new(&model, 1)
        .unwrap()
        .prefill(&prompt)
        .unwrap_err();
    assert!(
        matches!(
            err,
            InferenceError::SequenceTooLong {
                needed: 65,
                limit: 64
            }
        ),
        "{err}"
    );
}

#[test]
fn invalid_shapes_are_rejected_before_generation() {
    let mut bad = config(7);
    bad.num_key_value_heads = 3;
    let err = materialize_synthetic_model(&bad, TempDir::new().unwrap().path()).unwrap_err();
    assert!(
        err.to_string().contains("multiple of num_key_value_heads"),
        "{err}"
    );
}

/// Runs `prompts` one after another through an engine with a prefix cache
/// of `cache_mib` MiB in blocks of 8 tokens: each one's generated tokens
/// and the cached tokens the engine reported.
fn through_engine(
    model: LoadedModel,
    prompts: &[Vec<u32>],
    cache_mib: u64,
) -> Vec<(Vec<u32>, Option<usize>)> {
    use campaign::components::server::{Engine, EngineEvent, EngineJob};
    let engine = Engine::start(model, cache_mib, 8).unwrap();
    let submit = engine.submitter();
    let results = prompts
        .iter()
        .map(|prompt| {
            let (events, mut receiver) = tokio::sync::mpsc::unbounded_channel();
            submit
                .send(EngineJob {
                    prompt: prompt.clone(),
                    max_tokens: 6,
                    stop: None,
                    received: std::time::Instant::now(),
                    events,
                })
                .unwrap();
            let (mut tokens, mut cached) = (Vec::new(), None);
            while let Some(event) = receiver.blocking_recv() {
                match event {
                    EngineEvent::Started { cached_tokens, .. } => cached = Some(cached_tokens),
                    EngineEvent::Token { id, .. } => tokens.push(id),
                    EngineEvent::Finished { .. } => break,
                    EngineEvent::Failed { message } => panic!("generation failed: {message}"),
                }
            }
            (tokens, cached.expect("a Started event"))
        })
        .collect();
    drop(submit);
    engine.stop();
    results
}

#[test]
fn the_prefix_cache_resumes_shared_prompts_and_generates_the_same_tokens() {
    use campaign::components::inference::Quantization;
    // Three groups behind a 32-token system prompt, their requests
    // interleaved; each prompt 32 + 12 tokens: 5 full blocks of 8 short of
    // the last token.
    let system = |g: u32| -> Vec<u32> { (0..32).map(|i| (g * 37 + i * 7) % 120 + 1).collect() };
    let prompts: Vec<Vec<u32>> = (0..9u32)
        .map(|i| {
            let mut p = system(i % 3);
            p.extend((0..12).map(|k| (i * 13 + k * 5) % 120 + 3));
            p
        })
        .collect();
    // The first of a group computes all; the second leaves the shared 32
    // tokens behind (the cache cannot cut the first one's KV shorter); the
    // third and later resume from them.
    let expected_cached = [0, 0, 0, 0, 0, 0, 32, 32, 32];
    for quantization in [None, Some(Quantization::Q8_0)] {
        let dir = TempDir::new().unwrap();
        let mut cfg = config(11);
        cfg.max_position_embeddings = 128;
        cfg.quantization = quantization;
        let folder = materialize_synthetic_model(&cfg, dir.path()).unwrap();
        let load = || LoadedModel::load(&folder, &Device::Cpu, DType::F32).unwrap();
        let with_cache = through_engine(load(), &prompts, 64);
        let without = through_engine(load(), &prompts, 0);
        let cached: Vec<Option<usize>> = with_cache.iter().map(|(_, c)| *c).collect();
        assert_eq!(cached, expected_cached.map(Some), "{quantization:?}");
        // Without a cache, nothing is claimed either way.
        assert!(without.iter().all(|(_, c)| c.is_none()));
        for (i, ((a, _), (b, _))) in with_cache.iter().zip(&without).enumerate() {
            assert_eq!(
                a, b,
                "{quantization:?}: request {i} generated other tokens from the cache"
            );
        }
    }
}

#[test]
fn the_prefix_cache_holds_its_memory_bound_least_recently_used_first() {
    let dir = TempDir::new().unwrap();
    let mut cfg = config(12);
    cfg.max_position_embeddings = 128;
    let folder = materialize_synthetic_model(&cfg, dir.path()).unwrap();
    let model = LoadedModel::load(&folder, &Device::Cpu, DType::F32).unwrap();
    // Keys and values of 2 layers × 2 KV heads × 8 dims in f32: 256 bytes
    // a token; a 41-token prompt leaves 40 tokens: 10 KiB of KV and at
    // most 40² bytes of masks, 11 840 bytes: 1 MiB holds 88.
    assert_eq!(model.kv_bytes_per_token(), 256);
    let prompt = |i: u32| -> Vec<u32> { (0..41).map(|k| (i * 31 + k * 7) % 127 + 1).collect() };
    let sequence = |others: u32| -> Vec<Vec<u32>> {
        let mut s = vec![prompt(0)];
        s.extend((1..=others).map(prompt));
        s.push(prompt(0));
        s
    };
    let load = || LoadedModel::load(&folder, &Device::Cpu, DType::F32).unwrap();
    let kept = through_engine(model, &sequence(86), 1);
    assert_eq!(kept.last().unwrap().1, Some(40), "86 others fit beside it");
    let evicted = through_engine(load(), &sequence(88), 1);
    assert_eq!(
        evicted.last().unwrap().1,
        Some(0),
        "88 others pushed it out"
    );
    // Used again before the others fill the cache, it is the last to go.
    let mut touched = sequence(88);
    touched.insert(40, prompt(0));
    let recent = through_engine(load(), &touched, 1);
    assert_eq!(recent[40].1, Some(40));
    assert_eq!(
        recent.last().unwrap().1,
        Some(40),
        "least recently used first"
    );
}
