//! Seeded request workloads for the serving macrobenchmarks: prompt and
//! output lengths drawn from a distribution, prompts of random token ids,
//! and Poisson arrival times for open-loop runs.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};
use serde::{Deserialize, Serialize};

use crate::campaign::ParamProblem;
use crate::campaign::bounds::{Shape, Tokens};

/// A length in tokens, fixed or drawn per request. In a campaign, a bare
/// number is a fixed length (what a user writes first); a table names its
/// `distribution`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "distribution", rename_all = "snake_case")]
pub enum LengthDistribution {
    Fixed {
        tokens: Tokens,
    },
    Uniform {
        min: Tokens,
        max: Tokens,
    },
    /// Log-normal around `median` with shape `sigma`, clamped to [min, max]:
    /// the long-tailed shape of real chat traffic.
    LogNormal {
        median: Tokens,
        sigma: Shape,
        min: Tokens,
        max: Tokens,
    },
}

/// The table form, read by serde's tagged-enum support; a separate type
/// because [`LengthDistribution`] also takes a bare number, which a
/// derived tagged enum cannot.
#[derive(Deserialize)]
#[serde(tag = "distribution", rename_all = "snake_case", deny_unknown_fields)]
enum LengthTable {
    Fixed {
        tokens: Tokens,
    },
    Uniform {
        min: Tokens,
        max: Tokens,
    },
    LogNormal {
        median: Tokens,
        sigma: Shape,
        min: Tokens,
        max: Tokens,
    },
}

impl From<LengthTable> for LengthDistribution {
    fn from(table: LengthTable) -> Self {
        match table {
            LengthTable::Fixed { tokens } => Self::Fixed { tokens },
            LengthTable::Uniform { min, max } => Self::Uniform { min, max },
            LengthTable::LogNormal {
                median,
                sigma,
                min,
                max,
            } => Self::LogNormal {
                median,
                sigma,
                min,
                max,
            },
        }
    }
}

struct LengthVisitor;

impl<'de> serde::de::Visitor<'de> for LengthVisitor {
    type Value = LengthDistribution;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a number of tokens (a fixed length: {}), or a table with distribution = \"fixed\", \"uniform\" or \"log_normal\"",
            Tokens::allowed()
        )
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Tokens::deserialize(serde::de::value::U64Deserializer::<E>::new(v))
            .map(LengthDistribution::fixed)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Tokens::deserialize(serde::de::value::I64Deserializer::<E>::new(v))
            .map(LengthDistribution::fixed)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Tokens::deserialize(serde::de::value::F64Deserializer::<E>::new(v))
            .map(LengthDistribution::fixed)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        LengthTable::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Into::into)
    }
}

impl<'de> Deserialize<'de> for LengthDistribution {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LengthVisitor)
    }
}

impl LengthDistribution {
    pub fn fixed(tokens: Tokens) -> Self {
        Self::Fixed { tokens }
    }

    pub fn max(&self) -> u64 {
        match *self {
            Self::Fixed { tokens } => tokens.get(),
            Self::Uniform { max, .. } | Self::LogNormal { max, .. } => max.get(),
        }
    }

    /// Relations between the fields; problems at `field.min`, `field.median`.
    pub fn check(&self, field: &str) -> Result<(), ParamProblem> {
        let (min, max) = match *self {
            Self::Fixed { .. } => return Ok(()),
            Self::Uniform { min, max } => (min.get(), max.get()),
            Self::LogNormal {
                median, min, max, ..
            } => {
                if median.get() < min.get() || median.get() > max.get() {
                    return Err(ParamProblem::at(
                        &format!("{field}.median"),
                        format!("found {median}; allowed: from min ({min}) to max ({max})"),
                        format!(
                            "e.g. {field} = {{ distribution = \"log_normal\", median = 64, sigma = 0.5, min = 1, max = 256 }}"
                        ),
                    ));
                }
                (min.get(), max.get())
            }
        };
        if min > max {
            return Err(ParamProblem::at(
                &format!("{field}.min"),
                format!("found {min}; allowed: at most max ({max})"),
                format!("e.g. {field} = {{ distribution = \"uniform\", min = 1, max = 128 }}"),
            ));
        }
        Ok(())
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        match *self {
            Self::Fixed { tokens } => tokens.usize(),
            Self::Uniform { min, max } => rng.random_range(min.usize()..=max.usize()),
            Self::LogNormal {
                median,
                sigma,
                min,
                max,
            } => LogNormal::new((median.get() as f64).ln(), sigma.get())
                .map(|d| (d.sample(rng).round() as usize).clamp(min.usize(), max.usize()))
                .unwrap_or(median.usize()),
        }
    }
}

/// One request of a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub prompt: Vec<u32>,
    pub output_tokens: usize,
    /// Seconds after the start of the run at which the request arrives;
    /// 0 for every request of a closed loop.
    pub arrival_s: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct WorkloadSpec {
    pub requests: usize,
    pub prompt_tokens: LengthDistribution,
    pub output_tokens: LengthDistribution,
    pub vocab_size: usize,
    /// Poisson arrivals at this rate; `None` for a closed loop.
    pub rate_per_s: Option<f64>,
}

/// The same seed and spec give the same requests, on any machine.
pub fn generate_requests(seed: u64, spec: &WorkloadSpec) -> Vec<Request> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let vocab = u32::try_from(spec.vocab_size.max(1)).unwrap_or(u32::MAX);
    let gaps = spec
        .rate_per_s
        .filter(|r| r.is_finite() && *r > 0.0)
        .and_then(|r| Exp::new(r).ok());
    let mut clock = 0.0;
    (0..spec.requests)
        .map(|_| {
            let prompt_len = spec.prompt_tokens.sample(&mut rng);
            let output_tokens = spec.output_tokens.sample(&mut rng);
            let prompt = (0..prompt_len)
                .map(|_| rng.random_range(0..vocab))
                .collect();
            if let Some(gaps) = &gaps {
                clock += gaps.sample(&mut rng);
            }
            Request {
                prompt,
                output_tokens,
                arrival_s: clock,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rate: Option<f64>) -> WorkloadSpec {
        WorkloadSpec {
            requests: 400,
            prompt_tokens: LengthDistribution::LogNormal {
                median: Tokens::new_const(64),
                sigma: Shape::new_const(0.6),
                min: Tokens::new_const(8),
                max: Tokens::new_const(512),
            },
            output_tokens: LengthDistribution::Uniform {
                min: Tokens::new_const(4),
                max: Tokens::new_const(32),
            },
            vocab_size: 1000,
            rate_per_s: rate,
        }
    }

    #[test]
    fn same_seed_same_requests_other_seed_other_requests() {
        let a = generate_requests(42, &spec(Some(5.0)));
        assert_eq!(a, generate_requests(42, &spec(Some(5.0))));
        assert_ne!(a, generate_requests(43, &spec(Some(5.0))));
    }

    #[test]
    fn draws_respect_their_distribution() {
        let requests = generate_requests(7, &spec(Some(5.0)));
        assert!(requests.iter().all(|r| (8..=512).contains(&r.prompt.len())));
        assert!(requests.iter().all(|r| (4..=32).contains(&r.output_tokens)));
        assert!(requests.iter().flat_map(|r| &r.prompt).all(|t| *t < 1000));
        let mut lens: Vec<usize> = requests.iter().map(|r| r.prompt.len()).collect();
        lens.sort_unstable();
        let median = lens[lens.len() / 2];
        assert!((48..=85).contains(&median), "median {median}");
        // 400 arrivals at 5/s: the last near 80 s (Poisson, sd ≈ 4 s).
        let last = requests.last().unwrap().arrival_s;
        assert!((60.0..100.0).contains(&last), "last arrival {last}");
        assert!(
            requests
                .windows(2)
                .all(|w| w[0].arrival_s <= w[1].arrival_s)
        );
    }

    #[test]
    fn closed_loop_requests_all_arrive_at_zero() {
        assert!(
            generate_requests(1, &spec(None))
                .iter()
                .all(|r| r.arrival_s == 0.0)
        );
    }
}
