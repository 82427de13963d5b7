//! Seeded request workloads for the serving macrobenchmarks: prompt and
//! output lengths drawn from a distribution, prompts of random token ids,
//! and Poisson arrival times for open-loop runs.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};
use serde::{Deserialize, Serialize};

use super::params::ParamProblem;

/// A length in tokens, fixed or drawn per request.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(tag = "distribution", rename_all = "snake_case", deny_unknown_fields)]
pub enum LengthDistribution {
    Fixed {
        tokens: usize,
    },
    Uniform {
        min: usize,
        max: usize,
    },
    /// Log-normal around `median` with shape `sigma`, clamped to [min, max]:
    /// the long-tailed shape of real chat traffic.
    LogNormal {
        median: usize,
        sigma: f64,
        min: usize,
        max: usize,
    },
}

impl LengthDistribution {
    pub fn max(&self) -> usize {
        match *self {
            Self::Fixed { tokens } => tokens,
            Self::Uniform { max, .. } | Self::LogNormal { max, .. } => max,
        }
    }

    pub fn check(&self, field: &str, least: usize) -> Result<(), ParamProblem> {
        let (min, max) = match *self {
            Self::Fixed { tokens } => (tokens, tokens),
            Self::Uniform { min, max } => (min, max),
            Self::LogNormal {
                median,
                sigma,
                min,
                max,
            } => {
                if !(sigma.is_finite() && sigma > 0.0) || median < min || median > max {
                    return Err(ParamProblem::at(
                        field,
                        "log_normal needs sigma > 0 and min ≤ median ≤ max",
                        format!(
                            "e.g. {field} = {{ distribution = \"log_normal\", median = 64, sigma = 0.5, min = {least}, max = 256 }}"
                        ),
                    ));
                }
                (min, max)
            }
        };
        if min < least || min > max {
            return Err(ParamProblem::at(
                field,
                format!("lengths must satisfy {least} ≤ min ≤ max"),
                format!(
                    "e.g. {field} = {{ distribution = \"uniform\", min = {least}, max = 128 }}"
                ),
            ));
        }
        Ok(())
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        match *self {
            Self::Fixed { tokens } => tokens,
            Self::Uniform { min, max } => rng.random_range(min..=max),
            Self::LogNormal {
                median,
                sigma,
                min,
                max,
            } => LogNormal::new((median as f64).ln(), sigma)
                .map(|d| (d.sample(rng).round() as usize).clamp(min, max))
                .unwrap_or(median),
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
                median: 64,
                sigma: 0.6,
                min: 8,
                max: 512,
            },
            output_tokens: LengthDistribution::Uniform { min: 4, max: 32 },
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
