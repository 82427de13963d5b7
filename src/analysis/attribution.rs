//! Which function and which component a profile sample belongs to.
//!
//! Rules are substrings of demangled frame names, checked from the
//! innermost frame outwards (docs/component-engineer.md, "Analysis"):
//! - **function**: the innermost frame that is not plumbing (std, core,
//!   alloc, primitive-type impls, rayon's scheduler), so a loop's iterator
//!   calls count for the function that runs the loop;
//!   Frames in shared libraries (libc's memcpy, malloc, futex waits) are
//!   plumbing too: a function's calls into libc are that function's cost.
//! - **component**: the innermost frame that matches a domain rule (matmul,
//!   softmax, rope, norm, sampling, attention, other inference, kvcache,
//!   compression, storage, agents); failing that, `allocator`, `memory
//!   copy` or `runtime` when the innermost frame is one of theirs (malloc,
//!   memcpy, a futex);
//!   failing that, `other`. The `[unattributed]` stack under which older
//!   profiles kept the samples the profiler lost is `unattributed`; the
//!   ranking takes it out before charging anything, since lost samples
//!   belong to no function (they are reported apart).

use crate::profile::{UNATTRIBUTED_FRAME, shared_library_of};

/// Domain components, most specific first within a frame.
pub const DOMAIN_RULES: &[(&str, &[&str])] = &[
    (
        "inference/matmul",
        &[
            "gemm", "MatMul", "::matmul", "sgemm", "qmatmul", "k_quants", "vec_dot",
        ],
    ),
    ("inference/softmax", &["softmax"]),
    ("inference/rope", &["rotary_emb", "rope"]),
    (
        "inference/norm",
        &["rms_norm", "RmsNorm", "layer_norm", "LayerNorm"],
    ),
    ("inference/sampling", &["argmax", "LogitsProcessor"]),
    (
        "inference/attention",
        &["CausalSelfAttention", "attention", "masked_fill"],
    ),
    ("kvcache", &["components::kvcache"]),
    (
        "compression",
        &["zstd", "lz4", "snap::", "components::compression"],
    ),
    ("storage", &["redb", "components::storage"]),
    ("agents", &["components::agents", "tokio::", "crossbeam"]),
];

/// Inference code no domain rule names. Innermost first like the domain
/// rules, with one exception: candle's helpers inlined into one of candle's
/// own kernels (`sum_i16_pairs_float` under `vec_dot_q8_0_q8_0`) belong to
/// the kernel's component, not to "other inference".
pub const INFERENCE_OTHER_RULE: (&str, &[&str]) =
    ("inference/other", &["candle_", "components::inference"]);

/// Frames of candle itself (as opposed to code that calls it).
const CANDLE: &str = "candle_";

/// Checked against the innermost frame only, when no domain rule matched
/// anywhere on the stack (every thread's outer frames are runtime code).
pub const RUNTIME_RULES: &[(&str, &[&str])] = &[
    (
        "allocator",
        &[
            "malloc",
            "free",
            "realloc",
            "calloc",
            "alloc::alloc",
            "__rust_alloc",
            "__rust_dealloc",
            "mmap",
            "madvise",
        ],
    ),
    // Copies are their own component: their remedy (copy less) is not
    // the thread pool's.
    ("memory copy", &["memcpy", "memmove", "memset"]),
    (
        "runtime",
        &["rayon", "pthread", "futex", "syscall", "sched_yield"],
    ),
];

pub const OTHER: &str = "other";
pub const UNATTRIBUTED: &str = "unattributed";

const PLUMBING_PREFIXES: &[&str] = &[
    // SIMD intrinsics (core::arch), as inlined frames name them.
    "_mm",
    "core::",
    "std::",
    "alloc::",
    "<core::",
    "<std::",
    "<alloc::",
    "<u8",
    "<u16",
    "<u32",
    "<u64",
    "<u128",
    "<usize",
    "<i8",
    "<i16",
    "<i32",
    "<i64",
    "<i128",
    "<isize",
    "<f32",
    "<f64",
    "<bool",
    "<[",
    "<&",
    "<str",
    "<char",
    "__rust_",
    "rayon::",
    "rayon_core::",
    "<rayon",
    "<T as ",
];

pub fn is_plumbing(frame: &str) -> bool {
    PLUMBING_PREFIXES.iter().any(|p| frame.starts_with(p)) || shared_library_of(frame).is_some()
}

fn matching(rules: &[(&'static str, &[&str])], frame: &str) -> Option<&'static str> {
    rules
        .iter()
        .find(|(_, patterns)| patterns.iter().any(|p| frame.contains(p)))
        .map(|(component, _)| *component)
}

/// The component of a stack given root first (thread name included).
pub fn component_of(frames: &[&str]) -> &'static str {
    if frames.last() == Some(&UNATTRIBUTED_FRAME) {
        return UNATTRIBUTED;
    }
    let inner_first = || frames.iter().skip(1).rev();
    let domain =
        |f: &str| matching(DOMAIN_RULES, f).or_else(|| matching(&[INFERENCE_OTHER_RULE], f));
    inner_first()
        .enumerate()
        .find_map(|(i, f)| {
            let component = domain(f)?;
            if component != INFERENCE_OTHER_RULE.0 || !f.contains(CANDLE) {
                return Some(component);
            }
            // Outward through candle's own frames (and the intrinsics
            // inlined among them) to the first one a rule names: when that
            // is a candle inference kernel, the helper is part of it.
            let kernel = inner_first()
                .skip(i + 1)
                .take_while(|g| g.contains(CANDLE) || is_plumbing(g))
                .find_map(|g| matching(DOMAIN_RULES, g).filter(|_| g.contains(CANDLE)))
                .filter(|c| c.starts_with("inference/"));
            Some(kernel.unwrap_or(component))
        })
        .or_else(|| {
            inner_first()
                .next()
                .and_then(|f| matching(RUNTIME_RULES, f))
        })
        .unwrap_or(OTHER)
}

/// The function a stack's sample is charged to (root first, thread name
/// included); the innermost frame when every frame is plumbing.
pub fn function_of<'a>(frames: &[&'a str]) -> Option<&'a str> {
    let functions = frames.get(1..)?;
    functions
        .iter()
        .rev()
        .find(|f| !is_plumbing(f))
        .or(functions.last())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn innermost_domain_frame_decides_the_component() {
        let gemm_in_attention = [
            "t",
            "candle_transformers::models::llama::CausalSelfAttention::forward",
            "candle_core::tensor::Tensor::matmul",
            "gemm_f32::microkernel::f32x8",
        ];
        assert_eq!(component_of(&gemm_in_attention), "inference/matmul");
        let copy_in_attention = [
            "t",
            "candle_transformers::models::llama::CausalSelfAttention::forward",
            "__memmove_avx_unaligned_erms",
        ];
        assert_eq!(component_of(&copy_in_attention), "inference/attention");
        assert_eq!(component_of(&["t", "main", "malloc"]), "allocator");
        assert_eq!(component_of(&["t", "main", "my::thing"]), OTHER);
        // candle's quantized matmul, whose inner frames name only k_quants
        // (and candle), is matmul, not "other inference".
        let candle_q8 = [
            "t",
            "campaign::forward",
            "{closure#1}<candle_core::quantized::k_quants::BlockQ8_0>",
        ];
        assert_eq!(component_of(&candle_q8), "inference/matmul");
        // Its dot products, as inlined frames name them.
        let dot = ["t", "campaign::forward", "candle_core::vec_dot_q8_0_q8_0"];
        assert_eq!(component_of(&dot), "inference/matmul");
        // candle's helpers inlined into the dot product are the dot
        // product's, though they name only candle.
        let helper = [
            "t",
            "candle_transformers::models::quantized_llama::ModelWeights::forward",
            "candle_core::vec_dot_q8_0_q8_0",
            "candle_core::mul_sum_i8_pairs_float",
            "candle_core::sum_i16_pairs_float",
            "_mm256_cvtepi32_ps",
        ];
        assert_eq!(component_of(&helper), "inference/matmul");
        assert_eq!(
            function_of(&helper),
            Some("candle_core::sum_i16_pairs_float")
        );
        // Candle alone is still other inference.
        let op = [
            "t",
            "campaign::forward",
            "candle_core::cpu_backend::unary_map",
        ];
        assert_eq!(component_of(&op), "inference/other");
        // A candle copy that our attention calls is candle's, not the
        // attention's (only candle's own kernels take its helpers).
        let copy = [
            "t",
            "campaign::components::inference::native_llama::attention",
            "candle_core::tensor::Tensor::contiguous",
            "candle_core::cpu_backend::utils::copy_strided_src",
        ];
        assert_eq!(component_of(&copy), "inference/other");
        // Tokenizing on a tokio worker is inference, not the agents' queue.
        let tokenize = [
            "t",
            "tokio::runtime::task::harness::poll",
            "campaign::components::server::http::complete",
            "campaign::components::inference::tokenizer::TextTokenizer::encode",
            "tokenizers::tokenizer::TokenizerImpl::encode",
        ];
        assert_eq!(component_of(&tokenize), "inference/other");
    }

    #[test]
    fn an_intrinsic_is_charged_to_the_kernel_it_is_inlined_into() {
        let ours = [
            "t",
            "campaign::matmul_with",
            "campaign::q8<1, false>",
            "_mm512_cvtepi32_ps",
        ];
        assert_eq!(component_of(&ours), "inference/matmul");
        assert_eq!(function_of(&ours), Some("campaign::q8<1, false>"));
    }

    #[test]
    fn plumbing_is_charged_to_its_caller() {
        let stack = [
            "t",
            "campaign::benchmarks::planted::planted_hotspot_major",
            "<core::ops::range::Range<u64> as core::iter::Iterator>::next",
            "<u64 as core::iter::range::Step>::forward_unchecked",
        ];
        assert_eq!(
            function_of(&stack),
            Some("campaign::benchmarks::planted::planted_hotspot_major")
        );
        assert_eq!(function_of(&["t", "core::x"]), Some("core::x"));
        assert_eq!(function_of(&["t"]), None);
        // A call into libc is its caller's cost; the component still says
        // where the time went.
        let copy = [
            "t",
            "campaign::benchmarks::planted::planted_hotspot_libc",
            "__memcpy_avx512_unaligned_erms [libc.so.6]",
        ];
        assert_eq!(
            function_of(&copy),
            Some("campaign::benchmarks::planted::planted_hotspot_libc")
        );
        assert_eq!(component_of(&copy), "memory copy");
        let lost = ["[unattributed]", UNATTRIBUTED_FRAME];
        assert_eq!(component_of(&lost), UNATTRIBUTED);
        assert_eq!(function_of(&lost), Some(UNATTRIBUTED_FRAME));
    }
}
