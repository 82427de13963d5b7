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

pub(super) const SERVING_METRICS: &[MetricDef] = &[
    MetricDef::duration_ms(
        "queue_ms",
        "scheduled arrival → a worker starts the request (open loop)",
    ),
    MetricDef::duration_ms("ttft_ms", "arrival → first generated token"),
    MetricDef::duration_ms(
        "ttft_from_send_ms",
        "the request went out (in-process: a worker took it) → first generated token: TTFT less the client's lateness and any wait for a worker or concurrency slot",
    ),
    MetricDef::duration_ms(
        "dispatch_lag_ms",
        "endpoint: scheduled send → the request went out, less its wait for a concurrency slot: the client's own lateness (its timer, its runtime, building the body)",
    ),
    MetricDef::quantity(
        "client_cpu_pct",
        "%",
        false,
        "endpoint: the client process's CPU time (user + system) ÷ the iteration's wall time, in % of one core",
    ),
    MetricDef::quantity(
        "client_cpu_us_per_output_token",
        "µs/token",
        false,
        "endpoint: the client process's CPU time ÷ output tokens received in the iteration",
    ),
    MetricDef::quantity(
        "prefix_hit_pct",
        "%",
        true,
        "endpoint: prompt tokens the server took from its prefix cache (usage.prompt_tokens_details.cached_tokens) ÷ prompt tokens, over the iteration's requests that report it",
    ),
    MetricDef::duration_ms(
        "tpot_ms",
        "(end-to-end − TTFT) / (output tokens − 1), per request",
    ),
    MetricDef::duration_ms(
        "itl_ms",
        "every gap between two consecutive generated tokens",
    ),
    MetricDef::duration_ms("e2e_ms", "arrival → last generated token"),
    MetricDef::quantity(
        "requests_per_s",
        "requests/s",
        true,
        "requests completed ÷ wall time of the iteration",
    ),
    MetricDef::quantity(
        "output_tokens_per_s",
        "tokens/s",
        true,
        "output tokens of all completed requests ÷ wall time of the iteration; for an endpoint, the tokens received (the server's usage, else counted from the stream), never the max_tokens asked: a short response counts what it returned",
    ),
    MetricDef::quantity(
        "goodput_pct",
        "%",
        true,
        "share of requests meeting both ttft_slo_ms and tpot_slo_ms",
    ),
    MetricDef::quantity(
        "goodput_requests_per_s",
        "requests/s",
        true,
        "requests meeting both SLOs ÷ wall time of the iteration",
    ),
    MetricDef::duration_ms(
        "server_ttft_ms",
        "endpoint: the server's own time from reading the request to its first token, as it reports it (campaign serve does)",
    ),
    MetricDef::duration_ms(
        "transport_client_ms",
        "endpoint: the client's time from sending to the first content chunk, minus server_ttft_ms: the network path and the client",
    ),
    MetricDef::quantity(
        "error_rate_pct",
        "%",
        false,
        "endpoint targets: requests of the iteration that failed, any class",
    ),
    MetricDef::quantity(
        "errors_connect",
        "requests",
        false,
        "endpoint: no connection",
    ),
    MetricDef::quantity(
        "errors_timeout",
        "requests",
        false,
        "endpoint: past request_timeout_s",
    ),
    MetricDef::quantity(
        "errors_rate_limited",
        "requests",
        false,
        "endpoint: HTTP 429",
    ),
    MetricDef::quantity(
        "errors_http_4xx",
        "requests",
        false,
        "endpoint: other HTTP 4xx",
    ),
    MetricDef::quantity(
        "errors_http_5xx",
        "requests",
        false,
        "endpoint: HTTP 5xx, or an error object in the stream",
    ),
    MetricDef::quantity(
        "errors_malformed_sse",
        "requests",
        false,
        "endpoint: not the stream a chunk should be: event data that is not a chunk's JSON, a field of the wrong type, a limit passed (docs/campaign-author.md, Limits)",
    ),
    MetricDef::quantity(
        "errors_malformed_usage",
        "requests",
        false,
        "endpoint: a usage the request cannot have had: a count negative or not whole, more tokens than max_tokens, a total that is not prompt + completion, a prompt count that contradicts the prompt sent",
    ),
    MetricDef::quantity(
        "errors_cut_short",
        "requests",
        false,
        "endpoint: the stream ended or broke before [DONE]",
    ),
    MetricDef::quantity(
        "short_responses",
        "requests",
        false,
        "endpoint with ignore_eos: completed responses with fewer output tokens than the max_tokens asked (by the usage, or a finish reason other than length); not errors, but their tokens/s and latencies are of shorter outputs",
    ),
    MetricDef::quantity(
        "short_response_pct",
        "%",
        false,
        "endpoint with ignore_eos: short_responses in % of the iteration's completed responses",
    ),
    MetricDef::quantity(
        "server_prompt_tokens",
        "tokens",
        false,
        "endpoint: each prompt's length as the server's usage counts it (the only length of text prompts sent whole)",
    ),
];

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
            obs.duration("queue_ms", t.queue);
        }
        obs.duration("ttft_ms", t.ttft);
        obs.duration("ttft_from_send_ms", t.ttft_from_send);
        obs.duration("e2e_ms", t.e2e);
        if let Some(tpot) = t.tpot_ms() {
            obs.value("tpot_ms", tpot);
        }
        for gap in &t.gaps_ms {
            obs.value("itl_ms", *gap);
        }
        output_tokens += t.output_tokens;
    }
    obs.value("requests_per_s", timings.len() as f64 / wall_s);
    obs.value("output_tokens_per_s", output_tokens as f64 / wall_s);
    if slo.is_set() && !timings.is_empty() {
        let good = timings.iter().filter(|t| slo.met(t)).count();
        obs.value("goodput_pct", 100.0 * good as f64 / timings.len() as f64);
        obs.value("goodput_requests_per_s", good as f64 / wall_s);
    }
}
