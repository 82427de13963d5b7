//! What the serving benchmarks measure of each request, whoever served it
//! (the in-process engine or an endpoint), and how an iteration is
//! recorded: the metrics, the SLOs of goodput, and the recording itself.

use std::time::Duration;

use super::{MetricDef, Observations};

/// What happened to one request.
pub(super) struct RequestTiming {
    /// Scheduled arrival → a worker started it (0 in a closed loop).
    pub queue: Duration,
    /// Arrival → first generated token.
    pub ttft: Duration,
    /// The request went out (in-process: a worker took it) → first token.
    pub ttft_from_send: Duration,
    /// Gaps between consecutive generated tokens, in ms.
    pub gaps_ms: Vec<f64>,
    /// Arrival → last generated token.
    pub e2e: Duration,
    pub output_tokens: usize,
}

impl RequestTiming {
    /// (e2e − TTFT) / (output tokens − 1); none for a one-token output.
    pub fn tpot_ms(&self) -> Option<f64> {
        (self.output_tokens > 1)
            .then(|| (self.e2e - self.ttft).as_secs_f64() * 1e3 / (self.output_tokens - 1) as f64)
    }
}

pub(super) const SERVING_QUEUE_MS: MetricDef = MetricDef::duration_ms(
    "queue_ms",
    "scheduled arrival → a worker starts the request (open loop)",
);
pub(super) const SERVING_TTFT_MS: MetricDef =
    MetricDef::duration_ms("ttft_ms", "arrival → first generated token");
pub(super) const TTFT_FROM_SEND_MS: MetricDef = MetricDef::duration_ms(
    "ttft_from_send_ms",
    "the request went out (in-process: a worker took it) → first generated token: TTFT less the client's lateness and any wait for a worker or concurrency slot",
);
pub(super) const SERVING_TPOT_MS: MetricDef = MetricDef::duration_ms(
    "tpot_ms",
    "(end-to-end − TTFT) / (output tokens − 1), per request",
);
pub(super) const ITL_MS: MetricDef = MetricDef::duration_ms(
    "itl_ms",
    "every gap between two consecutive generated tokens",
);
pub(super) const SERVING_E2E_MS: MetricDef =
    MetricDef::duration_ms("e2e_ms", "arrival → last generated token");
pub(super) const SERVING_REQUESTS_PER_S: MetricDef = MetricDef::quantity(
    "requests_per_s",
    "requests/s",
    true,
    "requests completed ÷ wall time of the iteration",
);
pub(super) const SERVING_OUTPUT_TOKENS_PER_S: MetricDef = MetricDef::quantity(
    "output_tokens_per_s",
    "tokens/s",
    true,
    "output tokens of all completed requests ÷ wall time of the iteration; for an endpoint, the tokens received (the server's usage, else counted from the stream), never the max_tokens asked: a short response counts what it returned",
);
pub(super) const GOODPUT_PCT: MetricDef = MetricDef::quantity(
    "goodput_pct",
    "%",
    true,
    "share of requests meeting both ttft_slo_ms and tpot_slo_ms",
);
pub(super) const GOODPUT_REQUESTS_PER_S: MetricDef = MetricDef::quantity(
    "goodput_requests_per_s",
    "requests/s",
    true,
    "requests meeting both SLOs ÷ wall time of the iteration",
);

/// Service-level objectives a request must meet to count as goodput.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Slo {
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
}

impl Slo {
    fn met(&self, t: &RequestTiming) -> bool {
        let ttft_ok = self
            .ttft_ms
            .is_none_or(|bound| t.ttft.as_secs_f64() * 1e3 <= bound);
        let tpot_ok = self
            .tpot_ms
            .is_none_or(|bound| t.tpot_ms().is_none_or(|v| v <= bound));
        ttft_ok && tpot_ok
    }

    fn is_set(&self) -> bool {
        self.ttft_ms.is_some() || self.tpot_ms.is_some()
    }
}

/// Records one iteration of a serving run.
pub(super) fn record_run(
    obs: &mut Observations,
    timings: &[RequestTiming],
    wall: Duration,
    open_loop: bool,
    slo: Slo,
) {
    let wall_s = wall.as_secs_f64();
    let mut output_tokens = 0;
    for t in timings {
        if open_loop {
            obs.duration(&SERVING_QUEUE_MS, t.queue);
        }
        obs.duration(&SERVING_TTFT_MS, t.ttft);
        obs.duration(&TTFT_FROM_SEND_MS, t.ttft_from_send);
        obs.duration(&SERVING_E2E_MS, t.e2e);
        if let Some(tpot) = t.tpot_ms() {
            obs.value(&SERVING_TPOT_MS, tpot);
        }
        for gap in &t.gaps_ms {
            obs.value(&ITL_MS, *gap);
        }
        output_tokens += t.output_tokens;
    }
    obs.value(&SERVING_REQUESTS_PER_S, timings.len() as f64 / wall_s);
    obs.value(&SERVING_OUTPUT_TOKENS_PER_S, output_tokens as f64 / wall_s);
    if slo.is_set() && !timings.is_empty() {
        let good = timings.iter().filter(|t| slo.met(t)).count();
        obs.value(&GOODPUT_PCT, 100.0 * good as f64 / timings.len() as f64);
        obs.value(&GOODPUT_REQUESTS_PER_S, good as f64 / wall_s);
    }
}
