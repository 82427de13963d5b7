//! Our engine beside a peer in one day: a `llama_bench` case and a
//! `command` case that ran llama-bench on the same weights file, test and
//! threads, paired with the ratio of their tokens/s.

use std::path::Path;

use crate::model::{BenchmarkResult, PeerComparison, Status};
use crate::stats::two_sample_shift;

/// How a pair's ratio is estimated.
pub const PEER_RATIO_RULE: &str = "ours ÷ the peer's tokens/s: exp of the Hodges–Lehmann shift between the logs of the two sides' samples (ours: one per timed iteration; the peer's: one per repetition it reports), with the Moses 95 % interval";

/// What a case measured: the weights file, the test (`pp512`) and the
/// threads when it says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PeerTest {
    /// Our side's model name (a peer's command line has none).
    model: Option<String>,
    file: String,
    test: String,
    threads: Option<u32>,
}

/// (weights file, test, threads) of a llama-bench command line: `-m FILE`,
/// `-p P`, `-n N` (one of them 0), `-t T`.
fn llama_bench_test(argv: &[String]) -> Option<PeerTest> {
    let program = Path::new(argv.first()?).file_name()?.to_str()?;
    if !program.starts_with("llama-bench") {
        return None;
    }
    let value = |flag: &str| {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1))
    };
    let model = value("-m")?.clone();
    let prompt: u64 = value("-p").map_or(Some(512), |v| v.parse().ok())?;
    let generated: u64 = value("-n").map_or(Some(128), |v| v.parse().ok())?;
    let test = match (prompt, generated) {
        (p, 0) if p > 0 => format!("pp{p}"),
        (0, n) if n > 0 => format!("tg{n}"),
        _ => return None,
    };
    let threads = value("-t").and_then(|t| t.parse().ok());
    Some(PeerTest {
        model: None,
        file: model,
        test,
        threads,
    })
}

fn samples(result: &BenchmarkResult) -> Vec<f64> {
    result
        .metrics
        .get("tokens_per_s")
        .map(|m| m.raw_samples.clone())
        .unwrap_or_default()
}

/// (weights file, test, threads) of one of our `llama_bench` cases.
fn our_test(result: &BenchmarkResult) -> Option<PeerTest> {
    let p = &result.parameters;
    let model = p.get("model")?.as_str()?;
    // One model's context is the case's own; several are keyed by name.
    let context = result
        .context
        .get("models")
        .and_then(|m| m.get(model))
        .unwrap_or(&result.context);
    let file = context.get("model_folder")?.as_str()?;
    let test = p.get("test")?.as_str()?.to_string();
    let threads = p
        .get("threads")
        .and_then(|t| t.as_u64())
        .and_then(|t| u32::try_from(t).ok());
    Some(PeerTest {
        model: Some(model.to_string()),
        file: file.to_string(),
        test,
        threads,
    })
}

/// Every pair of our case and a peer's case of the same test, weights
/// file and threads in `results`.
pub fn peer_comparisons(results: &[BenchmarkResult]) -> Vec<PeerComparison> {
    let ok = |r: &&BenchmarkResult| r.status == Status::Ok;
    let peers: Vec<(&BenchmarkResult, PeerTest)> = results
        .iter()
        .filter(ok)
        .filter(|r| r.kind == "command")
        .filter_map(|r| {
            let argv: Vec<String> = r
                .context
                .get("argv")?
                .as_array()?
                .iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect();
            Some((r, llama_bench_test(&argv)?))
        })
        .collect();
    let mut out = Vec::new();
    for ours in results
        .iter()
        .filter(ok)
        .filter(|r| r.kind == "llama_bench")
    {
        let Some(key) = our_test(ours) else { continue };
        for (peer, peer_key) in &peers {
            let same_threads = key.threads.is_none()
                || peer_key.threads.is_none()
                || key.threads == peer_key.threads;
            if key.file != peer_key.file || key.test != peer_key.test || !same_threads {
                continue;
            }
            let (a, b) = (samples(ours), samples(peer));
            let (Some(ours_median), Some(peer_median)) =
                (crate::stats::median(&a), crate::stats::median(&b))
            else {
                continue;
            };
            let logs = |v: &[f64]| -> Vec<f64> {
                v.iter().filter(|x| **x > 0.0).map(|x| x.ln()).collect()
            };
            let Some(shift) = two_sample_shift(&logs(&b), &logs(&a)) else {
                continue;
            };
            out.push(PeerComparison {
                test: key.test.clone(),
                weights: Path::new(&key.file)
                    .file_name()
                    .map_or(key.file.clone(), |f| f.to_string_lossy().into_owned()),
                model: key.model.clone(),
                threads: key.threads.or(peer_key.threads),
                ours: ours.case_id.clone(),
                peer: peer.case_id.clone(),
                peer_program: "llama-bench".into(),
                ours_tokens_per_s: ours_median,
                peer_tokens_per_s: peer_median,
                ratio: shift.estimate.exp(),
                ratio_ci95: shift.interval.map(|(lo, hi)| [lo.exp(), hi.exp()]),
                samples: [a.len(), b.len()],
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn llama_bench_command_lines_name_their_test() {
        let test = |file: &str, test: &str, threads| PeerTest {
            model: None,
            file: file.into(),
            test: test.into(),
            threads,
        };
        assert_eq!(
            llama_bench_test(&argv("/x/llama-bench -m a.gguf -p 512 -n 0 -t 2 -r 5")),
            Some(test("a.gguf", "pp512", Some(2)))
        );
        assert_eq!(
            llama_bench_test(&argv("llama-bench -m a.gguf -p 0 -n 128")),
            Some(test("a.gguf", "tg128", None))
        );
        // Both tests in one run, or another program: not one test.
        assert_eq!(llama_bench_test(&argv("llama-bench -m a.gguf")), None);
        assert_eq!(llama_bench_test(&argv("fio -m a.gguf -p 0 -n 1")), None);
    }
}
