//! Traffic with the structure serving sees: groups of requests behind one
//! system prompt, conversations whose every turn carries the conversation
//! so far, and replayed traces (Mooncake's JSONL: arrival times, lengths
//! and the hashes of shared prompt blocks). Each shape turns a seeded
//! workload into requests whose prompts share exactly the tokens the shape
//! says they share, so a server's prefix cache can hit for real; and each
//! has an unshared twin (same lengths, times and turns, no token in
//! common) against which the time to first token gained is measured.
//!
//! What reuse was possible is computed from the prompts themselves, with
//! the rule a server applies (full blocks, short of the last token): the
//! ideal (every block seen before hits) and Belady's bound at a stated
//! cache size.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::benchmarks::BenchmarkError;
use crate::benchmarks::workload::{Follow, Request};
use crate::campaign::bounds::{Count, Dimension, Factor, PauseSeconds, Tokens, compact_number};
use crate::components::kvcache::{TraceAccess, belady_hits, cacheable_block_keys};

/// The shape of a serving workload's traffic, in a campaign
/// `traffic = { shape = "shared_prefix" | "multi_turn" | "trace", … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case", deny_unknown_fields)]
pub enum Traffic {
    /// `groups` system prompts of `system_prompt_tokens` each, before
    /// `prompts_per_group` requests apiece (their own part drawn at
    /// `prompt_tokens`), the groups interleaved in a seeded order.
    SharedPrefix {
        groups: Count,
        prompts_per_group: Count,
        system_prompt_tokens: Tokens,
    },
    /// `users` conversations of `turns` turns: each turn sends the whole
    /// conversation so far and a new message (`prompt_tokens`), `think_s`
    /// after the previous answer ended.
    MultiTurn {
        users: Count,
        turns: Count,
        #[serde(default = "no_pause")]
        think_s: PauseSeconds,
    },
    /// A JSONL trace replayed at its own times (divided by `speedup`).
    Trace {
        file: PathBuf,
        #[serde(default = "real_time")]
        speedup: Factor,
        /// Tokens each hash id of the trace stands for (Mooncake: 512).
        #[serde(default = "mooncake_block")]
        block_tokens: Dimension,
    },
}

fn no_pause() -> PauseSeconds {
    PauseSeconds::new_const(0.0)
}

fn real_time() -> Factor {
    Factor::new_const(1.0)
}

fn mooncake_block() -> Dimension {
    Dimension::new_const(512)
}

/// The most lines a trace may hold: each becomes a request kept in memory.
pub const MAX_TRACE_REQUESTS: usize = 1_000_000;

/// The longest replay, in seconds after the speed-up: a week, the longest
/// a benchmark may run.
pub const MAX_TRACE_SPAN_S: f64 = 604_800.0;

/// The most prompt tokens a replayed trace may add up to: its prompts are
/// written before the run (4 bytes a token, twice with the unshared twin,
/// and again as the bodies the client sends), so 2^28 tokens is a few GiB.
/// Mooncake's published conversation trace holds about 2^27.
pub const MAX_TRACE_PROMPT_TOKENS: u64 = 1 << 28;

/// Seeds of the tokens a shape writes, apart from those of the workload.
const SYSTEM_STREAM: u64 = 0x5157_u64 << 48;
const ANSWER_STREAM: u64 = 0xa45e_u64 << 48;
const UNSHARED_STREAM: u64 = 0x0e5a_u64 << 48;
const TRACE_STREAM: u64 = 0x7ace_u64 << 48;

impl Traffic {
    /// The requests of one iteration, where the shape fixes them.
    pub fn requests(&self) -> Option<usize> {
        match self {
            Self::SharedPrefix {
                groups,
                prompts_per_group,
                ..
            } => Some(groups.usize().saturating_mul(prompts_per_group.usize())),
            Self::MultiTurn { users, turns, .. } => {
                Some(users.usize().saturating_mul(turns.usize()))
            }
            Self::Trace { .. } => None,
        }
    }

    /// The longest prompt the shape can write from messages of at most
    /// `message_tokens` and answers of at most `answer_tokens`; `None`
    /// for a trace (known once it is read).
    pub fn longest_prompt(&self, message_tokens: u64, answer_tokens: u64) -> Option<u64> {
        match self {
            Self::SharedPrefix {
                system_prompt_tokens,
                ..
            } => Some(system_prompt_tokens.get().saturating_add(message_tokens)),
            Self::MultiTurn { turns, .. } => Some(
                turns
                    .get()
                    .saturating_mul(message_tokens)
                    .saturating_add((turns.get() - 1).saturating_mul(answer_tokens)),
            ),
            Self::Trace { .. } => None,
        }
    }

    /// A short name for case labels.
    pub fn label(&self) -> String {
        match self {
            Self::SharedPrefix {
                groups,
                prompts_per_group,
                system_prompt_tokens,
            } => {
                format!("shared_prefix({groups}x{prompts_per_group},system={system_prompt_tokens})")
            }
            Self::MultiTurn {
                users,
                turns,
                think_s,
            } => format!("multi_turn({users}x{turns},think={think_s}s)"),
            Self::Trace { speedup, .. } => format!("trace(speedup={speedup})"),
        }
    }

    /// Gives `base` (a seeded workload of [`Traffic::requests`] requests:
    /// the messages, answer lengths and arrivals) the shape's structure.
    /// A trace writes its own requests ([`read_trace`]) and leaves `base`
    /// as it is.
    pub fn shape(&self, seed: u64, mut base: Vec<Request>, vocab_size: usize) -> Vec<Request> {
        match self {
            Self::SharedPrefix {
                groups,
                system_prompt_tokens,
                ..
            } => {
                let systems: Vec<Vec<u32>> = (0..groups.get())
                    .map(|g| {
                        draw_tokens(
                            seed ^ SYSTEM_STREAM ^ g,
                            system_prompt_tokens.usize(),
                            vocab_size,
                        )
                    })
                    .collect();
                let mut group_of: Vec<usize> = (0..base.len()).map(|i| i % systems.len()).collect();
                group_of.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ SYSTEM_STREAM));
                for (request, g) in base.iter_mut().zip(group_of) {
                    let mut prompt = systems[g].clone();
                    prompt.append(&mut request.prompt);
                    request.prompt = prompt;
                }
                base
            }
            Self::MultiTurn { users, think_s, .. } => {
                // Turn-major order: turn t of user u at t × users + u, so a
                // turn always comes after the one it follows and the first
                // turns keep the workload's arrival times.
                let users = users.usize().max(1);
                let mut history: Vec<Vec<u32>> = vec![Vec::new(); users];
                for (i, request) in base.iter_mut().enumerate() {
                    let (turn, user) = (i / users, i % users);
                    let conversation = &mut history[user];
                    conversation.extend_from_slice(&request.prompt);
                    request.prompt = conversation.clone();
                    // The answer in the history is a seeded stand-in of the
                    // asked length, not the text a server returned: every
                    // run sends the same tokens.
                    conversation.extend(draw_tokens(
                        seed ^ ANSWER_STREAM ^ i as u64,
                        request.output_tokens,
                        vocab_size,
                    ));
                    if turn > 0 {
                        request.follows = Some(Follow {
                            previous: i - users,
                            think_s: think_s.get(),
                        });
                    }
                }
                base
            }
            Self::Trace { .. } => base,
        }
    }
}

/// The twin of `requests` that shares nothing: each prompt redrawn at its
/// length, times and turns unchanged.
pub fn unshared(seed: u64, requests: &[Request], vocab_size: usize) -> Vec<Request> {
    requests
        .iter()
        .enumerate()
        .map(|(i, r)| Request {
            prompt: draw_tokens(
                seed ^ UNSHARED_STREAM ^ i as u64,
                r.prompt.len(),
                vocab_size,
            ),
            ..r.clone()
        })
        .collect()
}

fn draw_tokens(seed: u64, count: usize, vocab_size: usize) -> Vec<u32> {
    let vocab = u32::try_from(vocab_size.max(1)).unwrap_or(u32::MAX);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count).map(|_| rng.random_range(0..vocab)).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: crate::components::bounded::BoundedReadError,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
    #[error(
        "{path}: its prompts add up to {tokens} tokens; allowed: at most {MAX_TRACE_PROMPT_TOKENS} (cut the trace, or replay the first requests with `requests = N`)"
    )]
    TooLarge { path: String, tokens: u64 },
    #[error(
        "{path} holds no request (one JSON object a line: timestamp, input_length, output_length, hash_ids)"
    )]
    Empty { path: String },
}

impl From<TraceError> for BenchmarkError {
    fn from(e: TraceError) -> Self {
        match e {
            TraceError::Read { .. } => BenchmarkError::Component(e.to_string()),
            _ => BenchmarkError::Params(e.to_string()),
        }
    }
}

/// One line of a Mooncake trace.
#[derive(Debug, Deserialize)]
struct TraceLine {
    /// Milliseconds from the trace's start.
    timestamp: f64,
    input_length: u64,
    output_length: u64,
    #[serde(default)]
    hash_ids: Vec<u64>,
}

/// The requests of a trace: at `timestamp / speedup` (from its first),
/// with its lengths; the prompt is written block by block, each hash id's
/// block the same seeded tokens wherever it appears (a last, partial block
/// their first tokens), and tokens past the listed hashes drawn for that
/// request alone. At most `limit` requests, the earliest.
pub fn read_trace(
    path: &Path,
    speedup: f64,
    block_tokens: usize,
    seed: u64,
    vocab_size: usize,
    limit: Option<usize>,
) -> Result<Vec<Request>, TraceError> {
    let shown = path.display().to_string();
    let text = crate::components::bounded::read_text_bounded(
        path,
        crate::benchmarks::model::MAX_PROMPT_FILE_BYTES,
    )
    .map_err(|source| TraceError::Read {
        path: shown.clone(),
        source,
    })?;
    let max_tokens = 1u64 << 20;
    let mut lines: Vec<(f64, usize, TraceLine)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let problem = |message: String| TraceError::Line {
            path: shown.clone(),
            line: number + 1,
            message,
        };
        let parsed: TraceLine = serde_json::from_str(line).map_err(|e| {
            problem(format!(
                "{e}; allowed: {{\"timestamp\": ms ≥ 0, \"input_length\": 1 to {max_tokens}, \"output_length\": 1 to {max_tokens}, \"hash_ids\": [non-negative integers]}}"
            ))
        })?;
        if !parsed.timestamp.is_finite() || parsed.timestamp < 0.0 {
            return Err(problem(format!(
                "timestamp = {}; allowed: milliseconds, 0 or more",
                parsed.timestamp
            )));
        }
        for (field, value) in [
            ("input_length", parsed.input_length),
            ("output_length", parsed.output_length),
        ] {
            if !(1..=max_tokens).contains(&value) {
                return Err(problem(format!(
                    "{field} = {value}; allowed: 1 to {max_tokens} tokens"
                )));
            }
        }
        if lines.len() == MAX_TRACE_REQUESTS {
            return Err(problem(format!(
                "more than {MAX_TRACE_REQUESTS} requests; allowed: at most {MAX_TRACE_REQUESTS} (cut the trace, or replay it in parts)"
            )));
        }
        lines.push((parsed.timestamp, number + 1, parsed));
    }
    // Stable: requests of one millisecond keep the trace's order.
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    lines.truncate(limit.unwrap_or(usize::MAX));
    let total: u64 = lines.iter().map(|(_, _, l)| l.input_length).sum();
    if total > MAX_TRACE_PROMPT_TOKENS {
        return Err(TraceError::TooLarge {
            path: shown,
            tokens: total,
        });
    }
    let Some(first_ms) = lines.first().map(|(t, _, _)| *t) else {
        return Err(TraceError::Empty { path: shown });
    };
    if let Some((last_ms, line, _)) = lines.last()
        && (last_ms - first_ms) / 1e3 / speedup > MAX_TRACE_SPAN_S
    {
        return Err(TraceError::Line {
            path: shown,
            line: *line,
            message: format!(
                "timestamp = {} ms comes {} s after the first request at speedup {speedup}; allowed: a replay of at most {MAX_TRACE_SPAN_S} s (a week)",
                compact_number(*last_ms),
                compact_number(((last_ms - first_ms) / 1e3 / speedup).round())
            ),
        });
    }
    let block_tokens = block_tokens.max(1);
    Ok(lines
        .into_iter()
        .enumerate()
        .map(|(i, (timestamp, _, line))| {
            let length = line.input_length as usize;
            let mut prompt = Vec::with_capacity(length);
            for hash in &line.hash_ids {
                if prompt.len() >= length {
                    break;
                }
                let take = block_tokens.min(length - prompt.len());
                prompt.extend(draw_tokens(seed ^ TRACE_STREAM ^ hash, take, vocab_size));
            }
            let rest = length - prompt.len();
            prompt.extend(draw_tokens(
                seed ^ UNSHARED_STREAM ^ TRACE_STREAM ^ i as u64,
                rest,
                vocab_size,
            ));
            Request {
                prompt,
                output_tokens: line.output_length as usize,
                arrival_s: (timestamp - first_ms) / 1e3 / speedup,
                follows: None,
            }
        })
        .collect())
}

/// The prompt reuse a workload allows, counted in prompt tokens with a
/// server's rule (full blocks of `block_tokens`, short of the last token),
/// requests in workload order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PrefixReuse {
    pub block_tokens: usize,
    pub prompt_tokens: u64,
    /// Every block seen before hits: an unbounded cache.
    pub ideal_cached_tokens: u64,
    pub ideal_hit_pct: f64,
    /// The cache size of Belady's bound, `None` for unbounded.
    pub bound_capacity_tokens: Option<u64>,
    /// Belady's MIN over blocks at that size: no eviction policy of a
    /// cache that size hits more (a prefix cache, which hits a block only
    /// after all before it, hits at most this).
    pub belady_cached_tokens: u64,
    pub belady_hit_pct: f64,
}

impl PrefixReuse {
    pub fn of(requests: &[Request], block_tokens: usize, capacity_tokens: Option<u64>) -> Self {
        let block_tokens = block_tokens.max(1);
        let mut seen = std::collections::HashSet::new();
        let mut trace = Vec::new();
        let (mut prompt_tokens, mut ideal_blocks) = (0u64, 0u64);
        for request in requests {
            prompt_tokens += request.prompt.len() as u64;
            let keys = cacheable_block_keys(&request.prompt, block_tokens);
            ideal_blocks += keys.iter().take_while(|k| seen.contains(*k)).count() as u64;
            for key in keys {
                seen.insert(key);
                trace.push(TraceAccess { key, counted: true });
            }
        }
        let capacity_blocks = capacity_tokens.map_or(usize::MAX, |t| (t as usize) / block_tokens);
        let (belady_blocks, _) = belady_hits(&trace, capacity_blocks.min(trace.len()));
        let pct = |tokens: u64| 100.0 * tokens as f64 / prompt_tokens.max(1) as f64;
        let ideal_cached_tokens = ideal_blocks * block_tokens as u64;
        let belady_cached_tokens = belady_blocks * block_tokens as u64;
        Self {
            block_tokens,
            prompt_tokens,
            ideal_cached_tokens,
            ideal_hit_pct: pct(ideal_cached_tokens),
            bound_capacity_tokens: capacity_tokens,
            belady_cached_tokens,
            belady_hit_pct: pct(belady_cached_tokens),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::benchmarks::workload::{LengthDistribution, WorkloadSpec, generate_requests};

    fn base(requests: usize, prompt: u64, output: u64) -> Vec<Request> {
        generate_requests(
            9,
            &WorkloadSpec {
                requests,
                prompt_tokens: LengthDistribution::fixed(Tokens::new_const(prompt)),
                output_tokens: LengthDistribution::fixed(Tokens::new_const(output)),
                vocab_size: 5000,
                arrivals: None,
            },
        )
    }

    #[test]
    fn shared_prefix_groups_share_exactly_their_system_prompt() {
        let traffic = Traffic::SharedPrefix {
            groups: Count::new_const(3),
            prompts_per_group: Count::new_const(5),
            system_prompt_tokens: Tokens::new_const(64),
        };
        let requests = traffic.shape(1, base(15, 16, 4), 5000);
        assert_eq!(requests.len(), 15);
        let mut systems: Vec<&[u32]> = requests.iter().map(|r| &r.prompt[..64]).collect();
        assert!(requests.iter().all(|r| r.prompt.len() == 80));
        systems.sort();
        systems.dedup();
        assert_eq!(systems.len(), 3);
        for s in &systems {
            assert_eq!(requests.iter().filter(|r| &r.prompt[..64] == *s).count(), 5);
        }
        // Block 16, prompts of 80: 4 cacheable blocks (79 tokens), the 4
        // system blocks shared; each group's first request misses.
        let reuse = PrefixReuse::of(&requests, 16, None);
        assert_eq!(reuse.prompt_tokens, 15 * 80);
        assert_eq!(reuse.ideal_cached_tokens, 12 * 64);
        assert_eq!(reuse.belady_cached_tokens, reuse.ideal_cached_tokens);
        // Room for one group's blocks only: Belady keeps fewer hits.
        let small = PrefixReuse::of(&requests, 16, Some(64));
        assert!(small.belady_cached_tokens < reuse.belady_cached_tokens);
        assert!(small.belady_cached_tokens >= 4 * 64);
        // The twin shares nothing.
        let twin = unshared(1, &requests, 5000);
        assert_eq!(PrefixReuse::of(&twin, 16, None).ideal_cached_tokens, 0);
        assert!(
            twin.iter()
                .zip(&requests)
                .all(|(a, b)| a.prompt.len() == b.prompt.len())
        );
    }

    #[test]
    fn each_turn_carries_the_conversation_so_far() {
        let traffic = Traffic::MultiTurn {
            users: Count::new_const(2),
            turns: Count::new_const(3),
            think_s: PauseSeconds::new_const(0.5),
        };
        let requests = traffic.shape(1, base(6, 10, 4), 5000);
        // Turn-major: user u's turn t at t × 2 + u.
        for user in 0..2 {
            let turns: Vec<&Request> = (0..3).map(|t| &requests[t * 2 + user]).collect();
            assert_eq!(turns[0].follows, None);
            for t in 1..3 {
                let (previous, this) = (turns[t - 1], turns[t]);
                assert_eq!(
                    this.follows,
                    Some(Follow {
                        previous: (t - 1) * 2 + user,
                        think_s: 0.5
                    })
                );
                // Previous prompt + its answer (4) + a new message (10).
                assert_eq!(this.prompt.len(), previous.prompt.len() + 4 + 10);
                assert_eq!(&this.prompt[..previous.prompt.len()], &previous.prompt[..]);
            }
        }
        assert_eq!(traffic.longest_prompt(10, 4), Some(38));
        assert_eq!(requests.iter().map(|r| r.prompt.len()).max(), Some(38));
    }

    #[test]
    fn a_trace_replays_its_times_lengths_and_shared_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.jsonl");
        std::fs::write(
            &path,
            concat!(
                "{\"timestamp\": 1000, \"input_length\": 40, \"output_length\": 5, \"hash_ids\": [7, 8, 9]}\n",
                "\n",
                "{\"timestamp\": 0, \"input_length\": 20, \"output_length\": 3, \"hash_ids\": [7, 8]}\n",
                "{\"timestamp\": 3000, \"input_length\": 12, \"output_length\": 2, \"hash_ids\": [1]}\n",
            ),
        )
        .unwrap();
        let requests = read_trace(&path, 2.0, 16, 3, 5000, None).unwrap();
        let arrivals: Vec<f64> = requests.iter().map(|r| r.arrival_s).collect();
        assert_eq!(arrivals, [0.0, 0.5, 1.5]);
        let lengths: Vec<usize> = requests.iter().map(|r| r.prompt.len()).collect();
        assert_eq!(lengths, [20, 40, 12]);
        // Hashes 7 and 8: the first 16 tokens and the 4 of block 8 shared.
        assert_eq!(requests[0].prompt[..], requests[1].prompt[..20]);
        assert_ne!(requests[2].prompt[..12], requests[0].prompt[..12]);
        assert_eq!(
            read_trace(&path, 1.0, 16, 3, 5000, Some(1)).unwrap().len(),
            1
        );

        std::fs::write(
            &path,
            "{\"timestamp\": 0, \"input_length\": 0, \"output_length\": 3}\n",
        )
        .unwrap();
        let e = read_trace(&path, 1.0, 16, 3, 5000, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("trace.jsonl:1: input_length = 0; allowed: 1 to"),
            "{e}"
        );
        std::fs::write(&path, "{\"timestamp\": 0}\nnot json\n").unwrap();
        let e = read_trace(&path, 1.0, 16, 3, 5000, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("trace.jsonl:1: missing field `input_length`"),
            "{e}"
        );
        std::fs::write(
            &path,
            "{\"timestamp\": 0, \"input_length\": 4, \"output_length\": 3}\n{\"timestamp\": 1e300, \"input_length\": 4, \"output_length\": 3}\n",
        )
        .unwrap();
        let e = read_trace(&path, 1.0, 16, 3, 5000, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("trace.jsonl:2: timestamp = 1e300 ms"), "{e}");
        assert!(e.contains("allowed: a replay of at most 604800 s"), "{e}");
        std::fs::write(&path, "\n\n").unwrap();
        let e = read_trace(&path, 1.0, 16, 3, 5000, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds no request"), "{e}");
    }
}
