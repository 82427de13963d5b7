//! One decode step and one short prefill of a small synthetic Llama, as f32
//! safetensors and as GGUF at q8_0 and q4_0. The reference measured in the
//! same run is a single matmul of the model's largest projection (vocab ×
//! hidden), the floor an f32 decode step cannot beat. candle sizes its
//! quantized worker pool once per process, so threads are set from outside:
//! `RAYON_NUM_THREADS=1 cargo bench --bench inference`, then `=2`.

use std::hint::black_box;

use campaign::components::inference::{
    GenerationSession, LoadedModel, Quantization, SyntheticLlamaConfig, materialize_synthetic_model,
};
use candle_core::{DType, Device, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};

fn model(quantization: Option<Quantization>) -> (tempfile::TempDir, LoadedModel) {
    let config = SyntheticLlamaConfig {
        seed: 42,
        vocab_size: 8192,
        hidden_size: 384,
        intermediate_size: 1024,
        num_hidden_layers: 6,
        num_attention_heads: 6,
        num_key_value_heads: 2,
        max_position_embeddings: 4096,
        rope_theta: 10_000.0,
        rms_norm_eps: 1e-5,
        tie_word_embeddings: false,
        quantization,
    };
    let dir = tempfile::TempDir::new().expect("temporary folder");
    let folder = materialize_synthetic_model(&config, dir.path()).expect("synthetic model");
    let model = LoadedModel::load(&folder, &Device::Cpu, DType::F32).expect("model loads");
    (dir, model)
}

fn decode(c: &mut Criterion) {
    let prompt: Vec<u32> = (0..128).collect();
    let mut group = c.benchmark_group("decode");
    group.bench_function("reference_lm_head_matmul", |b| {
        let x = Tensor::ones((1, 384), DType::F32, &Device::Cpu).expect("tensor");
        let w = Tensor::ones((384, 8192), DType::F32, &Device::Cpu).expect("tensor");
        b.iter(|| black_box(x.matmul(&w).expect("matmul")));
    });
    for quantization in [None, Some(Quantization::Q8_0), Some(Quantization::Q4_0)] {
        let (_dir, model) = model(quantization);
        let name = quantization.map_or("f32_safetensors", Quantization::name);
        group.bench_function(format!("{name}/step_after_128_token_prompt"), |b| {
            let mut session = GenerationSession::new(&model, 1).expect("session");
            let mut token = session.prefill(&prompt).expect("prefill");
            b.iter(|| {
                if session.position() + 1 >= 4096 {
                    session = GenerationSession::new(&model, 1).expect("session");
                    token = session.prefill(&prompt).expect("prefill");
                }
                token = session.step(&token).expect("step");
            });
        });
        group.bench_function(format!("{name}/prefill_128_tokens"), |b| {
            b.iter(|| {
                let mut session = GenerationSession::new(&model, 1).expect("session");
                black_box(session.prefill(&prompt).expect("prefill"))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
