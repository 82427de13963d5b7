//! The table of bounds on outside data in docs/campaign-author.md (Limits)
//! says what the code does: each row is built from the constant the code
//! checks.

use campaign::benchmarks::MAX_PROMPT_FILE_BYTES;
use campaign::components::external::MAX_OUTPUT_BYTES;
use campaign::components::inference::{
    MAX_GGUF_ARRAY_ELEMENTS, MAX_GGUF_ENTRIES, MAX_GGUF_METADATA_ELEMENTS, MAX_GGUF_STRING_BYTES,
    MAX_TOKENIZER_FILE_BYTES,
};

#[test]
fn every_bound_on_outside_data_is_documented_as_the_code_checks_it() {
    let doc = include_str!("../../docs/campaign-author.md");
    let mib = |bytes: u64| format!("{} MiB", bytes >> 20);
    for row in [
        format!(
            "| the output of one run of a `command` benchmark (stdout, or its `result_file`) | {} |",
            mib(MAX_OUTPUT_BYTES as u64)
        ),
        format!(
            "| a `tokenizer.json` or the `tokenizer_config.json` beside it | {} |",
            mib(MAX_TOKENIZER_FILE_BYTES)
        ),
        format!(
            "| a prompts file or a corpus (`prompts = {{ file = … }}`, `{{ corpus = … }}`) | {} |",
            mib(MAX_PROMPT_FILE_BYTES)
        ),
        format!("| one GGUF metadata array | {MAX_GGUF_ARRAY_ELEMENTS} elements |"),
        format!("| all GGUF metadata arrays together | {MAX_GGUF_METADATA_ELEMENTS} elements |"),
        format!(
            "| one GGUF string (a key, a value, a tensor name) | {} |",
            mib(MAX_GGUF_STRING_BYTES)
        ),
        format!("| GGUF metadata entries; GGUF tensors | {MAX_GGUF_ENTRIES} each |"),
    ] {
        assert!(
            doc.contains(&row),
            "docs/campaign-author.md (Limits) lacks the row {row}"
        );
    }
}
