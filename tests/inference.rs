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
