//! Models as people run them on a CPU: a quantized GGUF (the synthetic
//! model written at q8_0), text prompts through the model's own tokenizer,
//! llama-bench's grids, `campaign generate`, and the refusals of bad input.

use serial_test::{parallel, serial};

use super::fixture::*;

/// A synthetic model large enough in vocabulary for the byte-level
/// tokenizer, stored as GGUF with q8_0 weights.
const Q8_MODEL: &str = r#"
[models.q8.synthetic]
seed = 3
vocab_size = 512
hidden_size = 64
intermediate_size = 128
num_hidden_layers = 2
num_attention_heads = 2
num_key_value_heads = 1
max_position_embeddings = 256
quantization = "q8_0"
"#;

const GRID_DAY: &str = r#"
[[days]]
number = 1
title = "gguf"
[[days.benchmarks]]
name = "decode_text"
kind = "token_generation"
warmup = 0
iterations = 2
[days.benchmarks.params]
model = "q8"
prompt_lengths = "8,16"
output_tokens = 4
prompts = { file = "prompts.jsonl" }
[[days.benchmarks]]
name = "served_text"
kind = "full_inference"
warmup = 0
iterations = 1
[days.benchmarks.params]
model = "q8"
requests = 3
prompt_tokens = { distribution = "uniform", min = 4, max = 24 }
output_tokens = { distribution = "fixed", tokens = 3 }
concurrency = [1]
prompts = { corpus = "prompts.jsonl" }
[[days.benchmarks]]
name = "grid"
kind = "llama_bench"
warmup = 0
iterations = 1
[days.benchmarks.params]
models = ["q8"]
n_prompt = "8-16*2"
n_gen = 4
n_depth = "0,8"
"#;

fn q8_campaign(f: &Fixture, days: &str) -> PathBuf {
    fs::write(
        f.path("prompts.jsonl"),
        "{\"text\": \"Where does the time of a forward pass go?\"}\n\n{\"text\": \"Quantized weights read fewer bytes per token.\"}\n",
    )
    .unwrap();
    f.campaign(&format!("{Q8_MODEL}\n{days}"))
}

#[test]
#[parallel]
fn a_gguf_model_runs_text_prompts_and_a_llama_bench_grid() {
    let f = Fixture::new();
    let campaign = q8_campaign(&f, GRID_DAY);

    let list = cargo_bin_cmd!("campaign")
        .args(["list", "--campaign"])
        .arg(&campaign)
        .assert()
        .success();
    let listed = String::from_utf8_lossy(&list.get_output().stdout).to_string();
    assert!(
        listed.contains("n_prompt = \"8-16*2\" → [8, 16]"),
        "{listed}"
    );
    assert!(
        listed.contains("cases: 6: pp8 q8 b1 t1, pp16 q8 b1 t1, tg4 q8 b1 t1, pp8@d8 q8 b1 t1"),
        "{listed}"
    );

    f.run(&campaign, &[]).success();
    let report = f.report();
    let results = report["results"].as_array().unwrap();
    let decode = results
        .iter()
        .find(|r| r["benchmark"] == "decode_text")
        .unwrap();
    let context = &decode["context"];
    assert_eq!(context["model_source"], "synthetic gguf");
    // The weights the night measured are named in its environment, so a
    // change point beside other weights says so.
    let fingerprint = context["weights_fingerprint"].as_str().unwrap();
    assert_eq!(fingerprint.len(), 16);
    assert_eq!(
        report["environment"]["model_files"][context["model"].as_str().unwrap()],
        fingerprint
    );
    assert_eq!(context["quantization"], "q8_0");
    assert_eq!(context["weights"]["format"], "gguf");
    // Seven matrices per layer, the embedding table and the output matrix
    // in q8_0; the norms stay f32.
    assert_eq!(context["weights"]["tensor_types"]["q8_0"], 2 * 7 + 2);
    assert_eq!(context["weights"]["tensor_types"]["f32"], 2 * 2 + 1);
    assert!(context["weight_bytes_per_forward"].as_u64().unwrap() > 0);
    assert_eq!(context["tokenizer"], "GGUF metadata (gpt2)");
    assert_eq!(context["prompts"]["source"], "prompts file");
    assert_eq!(context["prompts"]["prompts"], 2);
    assert_eq!(context["sample_output"]["generated_tokens"], 16);
    // The lengths asked for are the lengths run, counted in the model's tokens.
    let lengths: Vec<u64> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["benchmark"] == "decode_text")
        .map(|r| r["parameters"]["prompt_len"].as_u64().unwrap())
        .collect();
    assert_eq!(lengths, [8, 16]);

    // The day page names the model and shows what it said.
    let html = fs::read_to_string(f.out().join("t").join("html").join("day_1.html")).unwrap();
    let models = &html[html.find("<h2>Models</h2>").expect("a Models section")..];
    for needle in [
        "<td>q8</td>",
        "<td>gguf</td>",
        "<td>q8_0</td>",
        "GGUF metadata (gpt2)",
        "The time to first token of a language model",
    ] {
        assert!(
            models.contains(needle),
            "{needle} not in {}",
            &models[..models.len().min(2000)]
        );
    }

    let served = results
        .iter()
        .find(|r| r["benchmark"] == "served_text")
        .unwrap();
    assert_eq!(served["status"], "ok");
    assert_eq!(served["context"]["prompts"]["source"], "corpus");

    let cases: Vec<String> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["benchmark"] == "grid")
        .map(|r| r["case"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        cases,
        [
            "pp8 q8 q8_0 b1 t1",
            "pp16 q8 q8_0 b1 t1",
            "tg4 q8 q8_0 b1 t1",
            "pp8@d8 q8 q8_0 b1 t1",
            "pp16@d8 q8 q8_0 b1 t1",
            "tg4@d8 q8 q8_0 b1 t1"
        ]
    );
    let tg = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["case"] == "tg4@d8 q8 q8_0 b1 t1")
        .unwrap();
    assert_eq!(tg["status"], "ok");
    assert_eq!(tg["parameters"]["n_depth"], 8);
    assert!(
        tg["metrics"]["tokens_per_s"]["summary"]["mean"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

#[test]
#[parallel]
fn generate_prints_a_continuation_with_or_without_the_chat_template() {
    let f = Fixture::new();
    let campaign = q8_campaign(&f, GRID_DAY);
    for chat in [false, true] {
        let mut cmd = cargo_bin_cmd!("campaign");
        cmd.args([
            "generate",
            "--model",
            "q8",
            "--max-tokens",
            "5",
            "--campaign",
        ])
        .arg(&campaign)
        .arg("--out")
        .arg(f.out())
        .args(["--prompt", "The cold tier reads"]);
        if chat {
            cmd.arg("--chat");
        }
        let assert = cmd.assert().success();
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
        assert!(stderr.contains("gguf q8_0"), "{stderr}");
        assert!(stderr.contains("tokenizer from GGUF metadata"), "{stderr}");
        assert!(stderr.contains("tokens greedily"), "{stderr}");
    }
    // The tiny model has no tokenizer: said, exit 2.
    cargo_bin_cmd!("campaign")
        .args(["generate", "--prompt", "hi", "--campaign"])
        .arg(&campaign)
        .arg("--out")
        .arg(f.out())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("has no tokenizer"));
}

#[test]
#[parallel]
fn bad_models_prompts_and_grids_are_refused_at_their_keys() {
    let f = Fixture::new();
    // Text prompts on a model without a tokenizer.
    let campaign = f.campaign(&day_with(
        r#"
[[days.benchmarks]]
name = "ttft"
kind = "first_token_latency"
[days.benchmarks.params]
prompt_lengths = [8]
prompts = { corpus = "corpus.txt" }
"#,
    ));
    fs::write(f.path("corpus.txt"), "some text").unwrap();
    expect_usage_error(&f, &campaign, &["has no tokenizer", "prompts"]);

    // A prompts file that does not exist, a grid that runs backwards.
    let campaign = q8_campaign(
        &f,
        &day_with(
            r#"
[[days.benchmarks]]
name = "ttft"
kind = "first_token_latency"
[days.benchmarks.params]
model = "q8"
prompt_lengths = "64-8*2"
prompts = { file = "missing.jsonl" }
"#,
        ),
    );
    expect_usage_error(
        &f,
        &campaign,
        &["missing.jsonl does not exist", "runs backwards"],
    );

    // An unknown quantization lists the ones allowed.
    let campaign = f.campaign_raw(&format!(
        "name = \"t\"\n{}\n{}",
        Q8_MODEL.replace("q8_0", "iq2_xs"),
        day_with("")
    ));
    expect_usage_error(&f, &campaign, &["unknown quantization \"iq2_xs\"", "q4_k"]);

    // A truncated GGUF file, named by its path.
    let f2 = Fixture::new();
    let campaign = q8_campaign(&f2, GRID_DAY);
    f2.run(&campaign, &["--only", "grid", "--quick"]).success();
    let gguf = fs::read_dir(f2.out().join("model_cache"))
        .unwrap()
        .map(|e| e.unwrap().path().join("model.gguf"))
        .find(|p| p.is_file())
        .unwrap();
    let bytes = fs::read(&gguf).unwrap();
    fs::write(f.path("cut.gguf"), &bytes[..bytes.len() / 2]).unwrap();
    let campaign = f.campaign_raw(&format!(
        "name = \"t\"\n[models.cut]\npath = \"cut.gguf\"\n{}",
        day_with("")
    ));
    expect_usage_error(&f, &campaign, &["cut.gguf", "is truncated"]);
}

/// Serial: its child computes on both cores, which would disturb the
/// timing tests beside it.
#[test]
#[serial]
fn a_threads_grid_runs_other_counts_in_a_child_and_joins_their_results() {
    let f = Fixture::new();
    let campaign = q8_campaign(
        &f,
        &day_with(
            r#"
[[days.benchmarks]]
name = "grid"
kind = "llama_bench"
warmup = 0
iterations = 1
[days.benchmarks.params]
models = ["q8"]
n_prompt = 8
n_gen = 2
threads = "1,2"
"#,
        ),
    );
    f.run(&campaign, &[]).success();
    let report = f.report();
    let cases: Vec<(String, u64, String)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["case"].as_str().unwrap().to_string(),
                r["parameters"]["threads"].as_u64().unwrap(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        cases,
        [
            ("pp8 q8 q8_0 b1 t1".to_string(), 1, "ok".to_string()),
            ("tg2 q8 q8_0 b1 t1".to_string(), 1, "ok".to_string()),
            ("pp8 q8 q8_0 b1 t2".to_string(), 2, "ok".to_string()),
            ("tg2 q8 q8_0 b1 t2".to_string(), 2, "ok".to_string()),
        ]
    );
    assert_eq!(report["settings"]["threads"], 1);
    // The child's working folder is gone.
    let scratch = f.out().join("t").join("scratch");
    let left: Vec<_> = fs::read_dir(&scratch)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
#[parallel]
fn safetensors_models_are_quantized_in_memory_and_gguf_ones_refuse_quantize() {
    let f = Fixture::new();
    // A first run generates the synthetic model's safetensors folder.
    let dense = Q8_MODEL.replace("quantization = \"q8_0\"\n", "");
    let grid = r#"
[[days.benchmarks]]
name = "grid"
kind = "llama_bench"
warmup = 0
iterations = 1
[days.benchmarks.params]
models = ["q8"]
n_prompt = 8
n_gen = 2
"#;
    let campaign = f.campaign(&format!("{dense}\n{}", day_with(grid)));
    f.run(&campaign, &[]).success();
    let folder = fs::read_dir(f.out().join("model_cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("model.safetensors").is_file())
        .unwrap();

    let campaign = f.campaign_raw(&format!(
        "name = \"t\"\n[models.q8]\npath = {:?}\nquantize = \"q4_0\"\n{}",
        folder.display().to_string(),
        day_with(grid)
    ));
    f.run(&campaign, &[]).success();
    let report = f.report();
    let context = &report["results"][0]["context"];
    assert_eq!(context["model_source"], "folder, quantized in memory");
    assert_eq!(context["weights"]["quantization"], "q4_0");
    assert_eq!(report["results"][0]["case"], "pp8 q8 q4_0 b1 t1");

    // A synthetic model written as safetensors is quantized in memory too
    // (what an experiment's quantization toggle does to the default model).
    let quantized_synthetic = dense.replace(
        "[models.q8.synthetic]",
        "[models.q8]\nquantize = \"q8_0\"\n[models.q8.synthetic]",
    );
    let campaign = f.campaign(&format!("{quantized_synthetic}\n{}", day_with(grid)));
    f.run(&campaign, &[]).success();
    let report = f.report();
    let context = &report["results"][0]["context"];
    assert_eq!(context["model_source"], "synthetic, quantized in memory");
    assert_eq!(context["weights"]["quantization"], "q8_0");

    // One written as GGUF keeps its own types.
    let campaign = f.campaign_raw(&format!(
        "name = \"t\"\n{}\n{}",
        Q8_MODEL.replace(
            "[models.q8.synthetic]",
            "[models.q8]\nquantize = \"q4_0\"\n[models.q8.synthetic]"
        ),
        day_with(grid)
    ));
    expect_usage_error(
        &f,
        &campaign,
        &["`quantize` applies to safetensors weights"],
    );
}
