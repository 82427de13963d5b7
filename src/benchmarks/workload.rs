//! Seeded request workloads for the serving macrobenchmarks: prompt and
//! output lengths drawn from a distribution, prompts of random token ids,
//! and arrival times for open-loop runs (Poisson, gamma or constant gaps,
//! at a fixed rate or ramped up to it).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, Gamma, LogNormal};
use serde::{Deserialize, Serialize};

use crate::campaign::ParamProblem;
use crate::campaign::bounds::{Rate, Seconds, Shape, Tokens};

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

/// How open-loop arrivals are spaced. In a campaign, a name
/// (`arrivals = "poisson"`) or a table (`arrivals = { process = "gamma",
/// burstiness = 0.5 }`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
#[serde(tag = "process", rename_all = "snake_case")]
pub enum ArrivalProcess {
    /// Exponential gaps: independent users.
    #[default]
    Poisson,
    /// Gamma gaps of shape `burstiness` (vLLM's name for it): 1 is
    /// Poisson, below 1 burstier, above 1 more regular; the gaps'
    /// coefficient of variation is 1/√burstiness.
    Gamma { burstiness: Shape },
    /// Equal gaps: a metronome, the least bursty load at a rate.
    Constant,
}

#[derive(Deserialize)]
#[serde(tag = "process", rename_all = "snake_case", deny_unknown_fields)]
enum ArrivalTable {
    Poisson,
    Gamma { burstiness: Shape },
    Constant,
}

struct ArrivalVisitor;

impl<'de> serde::de::Visitor<'de> for ArrivalVisitor {
    type Value = ArrivalProcess;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "\"poisson\", \"constant\", or a table such as { process = \"gamma\", burstiness = 0.5 }",
        )
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match v {
            "poisson" => Ok(ArrivalProcess::Poisson),
            "constant" => Ok(ArrivalProcess::Constant),
            "gamma" => Err(E::custom(
                "\"gamma\" needs its burstiness; allowed: arrivals = { process = \"gamma\", burstiness = 0.5 } (1 is Poisson, below 1 burstier)",
            )),
            other => Err(E::custom(format!(
                "unknown arrival process {other:?}; allowed: \"poisson\", \"constant\" or {{ process = \"gamma\", burstiness = … }}"
            ))),
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        ArrivalTable::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(|table| {
            match table {
                ArrivalTable::Poisson => ArrivalProcess::Poisson,
                ArrivalTable::Gamma { burstiness } => ArrivalProcess::Gamma { burstiness },
                ArrivalTable::Constant => ArrivalProcess::Constant,
            }
        })
    }
}

impl<'de> Deserialize<'de> for ArrivalProcess {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ArrivalVisitor)
    }
}

impl ArrivalProcess {
    /// The next gap in units of the mean gap (mean 1).
    fn unit_gap(&self, rng: &mut ChaCha8Rng) -> f64 {
        match *self {
            Self::Poisson => Exp1.sample(rng),
            Self::Gamma { burstiness } => {
                Gamma::new(burstiness.get(), 1.0 / burstiness.get()).map_or(1.0, |g| g.sample(rng))
            }
            Self::Constant => 1.0,
        }
    }

    /// A short name for case labels; `None` for Poisson, the default.
    pub fn label(&self) -> Option<String> {
        match *self {
            Self::Poisson => None,
            Self::Gamma { burstiness } => Some(format!("gamma({burstiness})")),
            Self::Constant => Some("constant".into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RampShape {
    /// The rate grows by the same number of requests/s each second.
    Linear,
    /// The rate grows by the same factor each second (vLLM's exponential
    /// ramp-up): most of the time at low rates, where a server warms up.
    Exponential,
}

/// The offered rate climbs from `from_rate_per_s` to the case's rate over
/// `over_s` seconds, then stays there. Arrivals follow the changing rate
/// exactly: the process runs in the time that the rate's integral makes
/// uniform (time rescaling), so a gamma or constant process keeps its
/// shape at every rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    pub shape: RampShape,
    pub from_rate_per_s: Rate,
    pub over_s: Seconds,
}

/// The open-loop arrivals of a case: its (final) rate, the process and the
/// ramp that leads to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrivals {
    pub rate_per_s: f64,
    pub process: ArrivalProcess,
    pub ramp: Option<Ramp>,
}

impl Arrivals {
    /// The arrival time (s) at which the expected number of arrivals so far
    /// is `expected`: the inverse of the rate's integral Λ(t).
    fn time_of(&self, expected: f64) -> f64 {
        let r1 = self.rate_per_s;
        let Some(ramp) = self.ramp else {
            return expected / r1;
        };
        let (r0, over) = (ramp.from_rate_per_s.get(), ramp.over_s.get());
        let ratio = r1 / r0;
        // Λ(over) for each shape; past the ramp the rate is r1.
        let (ramped, within) = match ramp.shape {
            RampShape::Linear => {
                // Λ(t) = r0·t + (r1 − r0)·t²/(2·over); the root written so
                // that r1 < r0 (a ramp down) and r1 = r0 stay exact.
                let a = (r1 - r0) / (2.0 * over);
                let t = 2.0 * expected / (r0 + (r0 * r0 + 4.0 * a * expected).max(0.0).sqrt());
                ((r0 + r1) * over / 2.0, t)
            }
            RampShape::Exponential if (ratio - 1.0).abs() < 1e-12 => (r0 * over, expected / r0),
            RampShape::Exponential => {
                // Λ(t) = r0·over·(ratio^(t/over) − 1)/ln(ratio).
                let ln = ratio.ln();
                let t = over
                    * (1.0 + expected * ln / (r0 * over))
                        .max(f64::MIN_POSITIVE)
                        .ln()
                    / ln;
                (r0 * over * (ratio - 1.0) / ln, t)
            }
        };
        if expected <= ramped {
            within
        } else {
            over + (expected - ramped) / r1
        }
    }
}

/// Draws a case's arrival times one at a time.
struct ArrivalClock {
    arrivals: Arrivals,
    /// Arrivals expected so far: the sum of the unit gaps.
    expected: f64,
    /// Without a ramp: seconds, summed gap by gap (the form the Poisson
    /// workloads of earlier reports were drawn in, kept so that they draw
    /// the same times).
    clock_s: f64,
}

impl ArrivalClock {
    fn new(arrivals: Arrivals) -> Self {
        Self {
            arrivals,
            expected: 0.0,
            clock_s: 0.0,
        }
    }

    fn next(&mut self, rng: &mut ChaCha8Rng) -> f64 {
        let gap = self.arrivals.process.unit_gap(rng);
        if self.arrivals.ramp.is_none() {
            self.clock_s += gap * (1.0 / self.arrivals.rate_per_s);
            return self.clock_s;
        }
        self.expected += gap;
        self.arrivals.time_of(self.expected)
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
    /// The next turn of a conversation: sent `think_s` after the turn it
    /// follows has finished (its `arrival_s` is not used).
    pub follows: Option<Follow>,
}

/// A turn that waits for the previous turn of its conversation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Follow {
    /// The index of the previous turn in the workload (always earlier).
    pub previous: usize,
    pub think_s: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct WorkloadSpec {
    pub requests: usize,
    pub prompt_tokens: LengthDistribution,
    pub output_tokens: LengthDistribution,
    pub vocab_size: usize,
    /// Open-loop arrivals; `None` for a closed loop.
    pub arrivals: Option<Arrivals>,
}

/// The same seed and spec give the same requests, on any machine.
pub fn generate_requests(seed: u64, spec: &WorkloadSpec) -> Vec<Request> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let vocab = u32::try_from(spec.vocab_size.max(1)).unwrap_or(u32::MAX);
    let mut clock = spec
        .arrivals
        .filter(|a| a.rate_per_s.is_finite() && a.rate_per_s > 0.0)
        .map(ArrivalClock::new);
    (0..spec.requests)
        .map(|_| {
            let prompt_len = spec.prompt_tokens.sample(&mut rng);
            let output_tokens = spec.output_tokens.sample(&mut rng);
            let prompt = (0..prompt_len)
                .map(|_| rng.random_range(0..vocab))
                .collect();
            Request {
                prompt,
                output_tokens,
                arrival_s: clock.as_mut().map_or(0.0, |c| c.next(&mut rng)),
                follows: None,
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
            arrivals: rate.map(Arrivals::poisson),
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

    impl Arrivals {
        fn poisson(rate_per_s: f64) -> Self {
            Self {
                rate_per_s,
                process: ArrivalProcess::Poisson,
                ramp: None,
            }
        }
    }

    fn arrival_times(seed: u64, requests: usize, arrivals: Arrivals) -> Vec<f64> {
        let spec = WorkloadSpec {
            requests,
            prompt_tokens: LengthDistribution::fixed(Tokens::new_const(1)),
            output_tokens: LengthDistribution::fixed(Tokens::new_const(1)),
            vocab_size: 10,
            arrivals: Some(arrivals),
        };
        generate_requests(seed, &spec)
            .iter()
            .map(|r| r.arrival_s)
            .collect()
    }

    fn gaps(times: &[f64]) -> Vec<f64> {
        std::iter::once(times[0])
            .chain(times.windows(2).map(|w| w[1] - w[0]))
            .collect()
    }

    fn mean_and_cv(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt() / mean)
    }

    /// The Poisson arrivals are drawn exactly as before the other processes
    /// existed, so earlier workloads replay the same requests.
    #[test]
    fn poisson_arrivals_are_the_draws_of_earlier_versions() {
        let rate = 7.5;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let exp = rand_distr::Exp::new(rate).unwrap();
        let mut clock = 0.0;
        let earlier: Vec<f64> = (0..200)
            .map(|_| {
                let _token: u32 = rng.random_range(0..10);
                clock += exp.sample(&mut rng);
                clock
            })
            .collect();
        assert_eq!(arrival_times(3, 200, Arrivals::poisson(rate)), earlier);
    }

    /// Mean gap 1/rate for every process; the gaps' coefficient of
    /// variation is 1 for Poisson, 1/√b for gamma of burstiness b, 0 for
    /// constant.
    #[test]
    fn each_process_has_its_rate_and_its_burstiness() {
        let rate = 20.0;
        for (process, cv) in [
            (ArrivalProcess::Poisson, 1.0),
            (
                ArrivalProcess::Gamma {
                    burstiness: Shape::new_const(0.25),
                },
                2.0,
            ),
            (
                ArrivalProcess::Gamma {
                    burstiness: Shape::new_const(4.0),
                },
                0.5,
            ),
            (ArrivalProcess::Constant, 0.0),
        ] {
            let arrivals = Arrivals {
                rate_per_s: rate,
                process,
                ramp: None,
            };
            let (mean, found_cv) = mean_and_cv(&gaps(&arrival_times(11, 40_000, arrivals)));
            assert!(
                (mean * rate - 1.0).abs() < 0.03,
                "{process:?}: mean gap {mean}"
            );
            assert!(
                (found_cv - cv).abs() < 0.06 * cv.max(0.1),
                "{process:?}: cv {found_cv}"
            );
        }
    }

    /// Λ(t), the expected arrivals by t, written forwards (the generator
    /// inverts it).
    fn expected_by(ramp: Ramp, rate: f64, t: f64) -> f64 {
        let (r0, over) = (ramp.from_rate_per_s.get(), ramp.over_s.get());
        let within = t.min(over);
        let ramped = match ramp.shape {
            RampShape::Linear => r0 * within + (rate - r0) * within * within / (2.0 * over),
            RampShape::Exponential => {
                let k = rate / r0;
                r0 * over * (k.powf(within / over) - 1.0) / k.ln()
            }
        };
        ramped + (t - over).max(0.0) * rate
    }

    /// With constant gaps the k-th arrival is exactly where Λ reaches k, for
    /// ramps up and down of both shapes and past the ramp's end; Poisson
    /// arrivals under a ramp fall in each second as Λ says, over seeds.
    #[test]
    fn ramps_follow_the_rate_integral() {
        for (shape, from, to) in [
            (RampShape::Linear, 1.0, 10.0),
            (RampShape::Linear, 10.0, 1.0),
            (RampShape::Exponential, 1.0, 16.0),
            (RampShape::Exponential, 16.0, 2.0),
            (RampShape::Linear, 5.0, 5.0),
        ] {
            let ramp = Ramp {
                shape,
                from_rate_per_s: Rate::new_const(from),
                over_s: Seconds::new_const(8.0),
            };
            let arrivals = Arrivals {
                rate_per_s: to,
                process: ArrivalProcess::Constant,
                ramp: Some(ramp),
            };
            for (k, t) in arrival_times(5, 150, arrivals).iter().enumerate() {
                let expected = expected_by(ramp, to, *t);
                assert!(
                    (expected - (k + 1) as f64).abs() < 1e-6,
                    "{shape:?} {from}→{to}: arrival {} at {t} s has Λ = {expected}",
                    k + 1
                );
            }
            // Poisson under the same ramp: arrivals per second, over 200
            // seeds, match Λ's increments within 4 standard deviations.
            let poisson = Arrivals {
                process: ArrivalProcess::Poisson,
                ..arrivals
            };
            let mut per_second = [0.0f64; 12];
            for seed in 0..200 {
                for t in arrival_times(seed, 150, poisson) {
                    if let Some(slot) = per_second.get_mut(t as usize) {
                        *slot += 1.0 / 200.0;
                    }
                }
            }
            for (second, found) in per_second.iter().enumerate() {
                let s = second as f64;
                let expected = expected_by(ramp, to, s + 1.0) - expected_by(ramp, to, s);
                // Only seconds that 150 arrivals cover in (nearly) every seed.
                if expected_by(ramp, to, s + 1.0) < 100.0 {
                    assert!(
                        (found / expected - 1.0).abs() < 4.0 / (200.0 * expected).sqrt(),
                        "{shape:?} {from}→{to}: second {second}: {found} arrivals, Λ says {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn arrival_processes_read_as_names_or_tables_and_gamma_needs_burstiness() {
        #[derive(Deserialize)]
        struct P {
            arrivals: ArrivalProcess,
        }
        let read = |text: &str| toml::from_str::<P>(text).map(|p| p.arrivals);
        assert_eq!(
            read("arrivals = \"poisson\"").unwrap(),
            ArrivalProcess::Poisson
        );
        assert_eq!(
            read("arrivals = \"constant\"").unwrap(),
            ArrivalProcess::Constant
        );
        assert_eq!(
            read("arrivals = { process = \"gamma\", burstiness = 0.5 }").unwrap(),
            ArrivalProcess::Gamma {
                burstiness: Shape::new_const(0.5)
            }
        );
        let e = read("arrivals = \"gamma\"").unwrap_err().to_string();
        assert!(e.contains("burstiness"), "{e}");
        let e = read("arrivals = \"bursty\"").unwrap_err().to_string();
        assert!(e.contains("\"bursty\"") && e.contains("poisson"), "{e}");
        let e = read("arrivals = { process = \"gamma\", burstiness = 0 }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("burstiness") || e.contains("shape"), "{e}");
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
