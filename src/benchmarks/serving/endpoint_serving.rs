//! The serving workloads against an OpenAI-compatible endpoint instead of
//! the in-process engine: the same requests (same seed, lengths and
//! arrivals), the same closed and open loops, the same metrics, plus the
//! requests that failed, counted by class.
//!
//! Client-side times: TTFT is taken when the first chunk with content is
//! read; a chunk that carries k tokens (counted with the tokenizer) counts
//! as k inter-token gaps of equal length; output tokens are those received:
//! the stream's usage, else those counts, never the `max_tokens` asked. A
//! response shorter than an `ignore_eos` request asked is counted and
//! warned, and possible but odd usage is warned by kind.
//!
//! The client audits itself: every request keeps when it should have been
//! sent, when it got a concurrency slot, when it went out, and each chunk.
//! Its lateness (dispatch lag) and the client process's CPU are recorded,
//! and a run whose lag at p99 passes a stated share of the median TTFT is
//! marked client-bound: its latencies describe the client, not the server.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use super::endpoint_target::{Connection, EndpointTarget};
use super::traffic::PrefixReuse;
use super::traffic_report::{ReuseTally, Timeline, TimelineRequest, TtftPair};
use crate::benchmarks::request_timing::{RequestTiming, Slo, record_run};
use crate::benchmarks::workload::Request;
use crate::benchmarks::{BenchmarkCase, BenchmarkError, Conclusion, MetricDef, Observations};
use crate::components::endpoint::{
    EndpointClient, ErrorClass, PreparedRequest, RequestFailure, RequestPrompt, Stamped,
    StreamedCompletion, Surprise,
};
use crate::components::inference::TextTokenizer;
use crate::machine::process_cpu_seconds;
use crate::model::Findings;

// What a run against an endpoint records besides every request's timing:
// the client's own share, the server's view, and the failures by class.
pub(super) const DISPATCH_LAG_MS: MetricDef = MetricDef::duration_ms(
    "dispatch_lag_ms",
    "endpoint: scheduled send → the request went out, less its wait for a concurrency slot: the client's own lateness (its timer, its runtime, building the body)",
);
pub(super) const CLIENT_CPU_PCT: MetricDef = MetricDef::quantity(
    "client_cpu_pct",
    "%",
    false,
    "endpoint: the client process's CPU time (user + system) ÷ the iteration's wall time, in % of one core",
);
pub(super) const CLIENT_CPU_US_PER_OUTPUT_TOKEN: MetricDef = MetricDef::quantity(
    "client_cpu_us_per_output_token",
    "µs/token",
    false,
    "endpoint: the client process's CPU time ÷ output tokens received in the iteration",
);
pub(super) const PREFIX_HIT_PCT: MetricDef = MetricDef::quantity(
    "prefix_hit_pct",
    "%",
    true,
    "endpoint: prompt tokens the server took from its prefix cache (usage.prompt_tokens_details.cached_tokens) ÷ prompt tokens, over the iteration's requests that report it",
);
pub(super) const SERVER_TTFT_MS: MetricDef = MetricDef::duration_ms(
    "server_ttft_ms",
    "endpoint: the server's own time from reading the request to its first token, as it reports it (campaign serve does)",
);
pub(super) const TRANSPORT_CLIENT_MS: MetricDef = MetricDef::duration_ms(
    "transport_client_ms",
    "endpoint: the client's time from sending to the first content chunk, minus server_ttft_ms: the network path and the client",
);
pub(super) const ENDPOINT_ERROR_RATE_PCT: MetricDef = MetricDef::quantity(
    "error_rate_pct",
    "%",
    false,
    "endpoint targets: requests of the iteration that failed, any class",
);
pub(super) const ERRORS_CONNECT: MetricDef = MetricDef::quantity(
    "errors_connect",
    "requests",
    false,
    "endpoint: no connection",
);
pub(super) const ERRORS_TIMEOUT: MetricDef = MetricDef::quantity(
    "errors_timeout",
    "requests",
    false,
    "endpoint: past request_timeout_s",
);
pub(super) const ERRORS_RATE_LIMITED: MetricDef = MetricDef::quantity(
    "errors_rate_limited",
    "requests",
    false,
    "endpoint: HTTP 429",
);
pub(super) const ERRORS_HTTP_4XX: MetricDef = MetricDef::quantity(
    "errors_http_4xx",
    "requests",
    false,
    "endpoint: other HTTP 4xx",
);
pub(super) const ERRORS_HTTP_5XX: MetricDef = MetricDef::quantity(
    "errors_http_5xx",
    "requests",
    false,
    "endpoint: HTTP 5xx, or an error object in the stream",
);
pub(super) const ERRORS_MALFORMED_SSE: MetricDef = MetricDef::quantity(
    "errors_malformed_sse",
    "requests",
    false,
    "endpoint: not the stream a chunk should be: event data that is not a chunk's JSON, a field of the wrong type, a limit passed (docs/campaign-author.md, Limits)",
);
pub(super) const ERRORS_MALFORMED_USAGE: MetricDef = MetricDef::quantity(
    "errors_malformed_usage",
    "requests",
    false,
    "endpoint: a usage the request cannot have had: a count negative or not whole, more tokens than max_tokens, a total that is not prompt + completion, a prompt count that contradicts the prompt sent",
);
pub(super) const ERRORS_CUT_SHORT: MetricDef = MetricDef::quantity(
    "errors_cut_short",
    "requests",
    false,
    "endpoint: the stream ended or broke before [DONE]",
);
pub(super) const SHORT_RESPONSES: MetricDef = MetricDef::quantity(
    "short_responses",
    "requests",
    false,
    "endpoint with ignore_eos: completed responses with fewer output tokens than the max_tokens asked (by the usage, or a finish reason other than length); not errors, but their tokens/s and latencies are of shorter outputs",
);
pub(super) const ENDPOINT_SHORT_RESPONSE_PCT: MetricDef = MetricDef::quantity(
    "short_response_pct",
    "%",
    false,
    "endpoint with ignore_eos: short_responses in % of the iteration's completed responses",
);
pub(super) const SERVER_PROMPT_TOKENS: MetricDef = MetricDef::quantity(
    "server_prompt_tokens",
    "tokens",
    false,
    "endpoint: each prompt's length as the server's usage counts it (the only length of text prompts sent whole)",
);

/// One request's fate, with the client's clock.
struct Outcome {
    /// Its place in the workload.
    index: usize,
    /// When it should have been sent (the run's start in a closed loop).
    scheduled: Instant,
    /// When its task began to wait for a concurrency slot.
    waiting: Instant,
    /// When it got the slot.
    began: Instant,
    /// When it went out (its body built); `began` if it never did.
    sent: Instant,
    /// The `max_tokens` the request asked.
    asked_tokens: usize,
    result: Result<StreamedCompletion, RequestFailure>,
}

/// Tells the sender that a request ended, when dropped: however its task
/// ends, the turns that follow it are not left waiting.
struct FinishReport {
    finished: std_mpsc::Sender<(usize, Instant)>,
    request: usize,
}

impl Drop for FinishReport {
    fn drop(&mut self) {
        let _ = self.finished.send((self.request, Instant::now()));
    }
}

pub(super) struct EndpointCase {
    runtime: Arc<tokio::runtime::Runtime>,
    client: Arc<EndpointClient>,
    requests: Vec<Request>,
    prompts: Vec<RequestPrompt>,
    /// The prompts' requests with their bodies serialized.
    prepared: Vec<PreparedRequest>,
    tokenizer: Option<TextTokenizer>,
    label: String,
    parameters: serde_json::Value,
    concurrency: usize,
    open_loop: bool,
    slo: Slo,
    ignore_eos: bool,
    tally: FailureTally,
    audit: ClientAudit,
    /// For shaped traffic: the reuse allowed and confirmed, and the TTFT
    /// shared with the twin case.
    reuse: Option<ReuseTally>,
    /// For shaped traffic: the vocabulary its token ids are shifted in
    /// at each iteration (see [`Self::fresh_prompts`]).
    fresh_vocab: Option<u64>,
    timeline: Timeline,
    /// A delay the sender sleeps after each request, read from
    /// `CAMPAIGN_TEST_SENDER_DELAY_MS`: a client planted slow, for the test
    /// that shows the audit catches it.
    planted_sender_delay: Option<Duration>,
}

/// Requests a case needs over its timed iterations before its client is
/// judged: the fewest whose nearest-rank p99 is not their maximum.
const AUDIT_MIN_REQUESTS: usize = 100;

/// The client's own share of what it measured, over a case's timed
/// iterations.
#[derive(Debug)]
struct ClientAudit {
    limit_pct: f64,
    lag_ms: Vec<f64>,
    ttft_from_send_ms: Vec<f64>,
    cpu_s: f64,
    wall_s: f64,
}

impl ClientAudit {
    fn new(limit_pct: f64) -> Self {
        Self {
            limit_pct,
            lag_ms: Vec::new(),
            ttft_from_send_ms: Vec::new(),
            cpu_s: 0.0,
            wall_s: 0.0,
        }
    }

    fn clear(&mut self) {
        *self = Self::new(self.limit_pct);
    }

    /// The findings, and the warning when the client bound the run. Below
    /// [`AUDIT_MIN_REQUESTS`] the p99 would be the maximum, one request's
    /// luck: the figures are given and nothing is concluded.
    fn conclude(&self) -> Option<(serde_json::Value, Option<String>)> {
        let lag_p99 = crate::stats::nearest_rank(&self.lag_ms, 0.99)?;
        let ttft_p50 = crate::stats::nearest_rank(&self.ttft_from_send_ms, 0.5)?;
        let judged = self.lag_ms.len() >= AUDIT_MIN_REQUESTS;
        let bound = judged && lag_p99 > self.limit_pct / 100.0 * ttft_p50;
        let cpu_pct = (self.wall_s > 0.0).then(|| 100.0 * self.cpu_s / self.wall_s);
        let findings = serde_json::json!({
            "dispatch_lag_p99_ms": lag_p99,
            "ttft_from_send_p50_ms": ttft_p50,
            "client_bound_lag_pct": self.limit_pct,
            "client_bound": judged.then_some(bound),
            "judged": if judged {
                "yes".to_string()
            } else {
                format!("no: fewer than {AUDIT_MIN_REQUESTS} requests, whose p99 is their maximum")
            },
            "requests": self.lag_ms.len(),
            "client_cpu_pct": cpu_pct,
            "rule": "client-bound when dispatch_lag_ms p99 > client_bound_lag_pct % of ttft_from_send_ms p50",
        });
        let warning = bound.then(|| {
            format!(
                "client-bound: the client's dispatch lag at p99 ({lag_p99:.3} ms) is {:.0} % of the median TTFT from the actual send ({ttft_p50:.3} ms), above client_bound_lag_pct = {} %{}: these latencies describe the client, not the server; lower the rate or concurrency, or run the client on its own cores",
                100.0 * lag_p99 / ttft_p50.max(f64::MIN_POSITIVE),
                self.limit_pct,
                cpu_pct.map_or(String::new(), |c| format!(
                    "; the client process used {c:.0} % of a core"
                )),
            )
        });
        Some((findings, warning))
    }
}

/// Requests sent and failed by class over a case's timed iterations, and
/// the verdict against the error budget; with the responses that came
/// back short of an `ignore_eos` request, and the odd ones, by kind.
#[derive(Debug)]
pub(super) struct FailureTally {
    error_budget_pct: f64,
    sent: u64,
    failures: BTreeMap<ErrorClass, u64>,
    /// The first message of each class, for the report.
    examples: BTreeMap<ErrorClass, String>,
    /// Responses that streamed to their end.
    completed: u64,
    short: u64,
    short_example: Option<String>,
    /// Possible but odd responses by kind: how many, the first one's values.
    surprises: BTreeMap<&'static str, (u64, String)>,
}

/// A response shorter than the `max_tokens` an `ignore_eos` request asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Shortfall {
    pub received: usize,
    pub asked: usize,
    /// Which of the server's words says so: its usage, or its finish reason.
    pub by: &'static str,
    pub finish_reason: Option<String>,
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} tokens by the {}, finish_reason {}",
            self.received,
            self.asked,
            self.by,
            self.finish_reason.as_deref().unwrap_or("none")
        )
    }
}

/// Whether `done` came back shorter than the `asked` tokens of an
/// `ignore_eos` request; `received` is the output tokens counted for it.
/// The usage decides when the server sent one; without it, a finish
/// reason other than `length` with fewer tokens counted does (the counts
/// of a tokenizer that may not be the server's decide nothing alone).
pub(super) fn shortfall(
    done: &StreamedCompletion,
    asked: usize,
    received: usize,
    ignore_eos: bool,
) -> Option<Shortfall> {
    if !ignore_eos {
        return None;
    }
    let short = |by| Shortfall {
        received,
        asked,
        by,
        finish_reason: done.finish_reason.clone(),
    };
    match done.completion_tokens() {
        Some(n) => (n < asked).then(|| short("usage")),
        None => match done.finish_reason.as_deref() {
            Some(reason) if reason != "length" && received < asked => {
                Some(short("finish reason and the tokens counted"))
            }
            _ => None,
        },
    }
}

impl FailureTally {
    pub fn new(error_budget_pct: f64) -> Self {
        Self {
            error_budget_pct,
            sent: 0,
            failures: BTreeMap::new(),
            examples: BTreeMap::new(),
            completed: 0,
            short: 0,
            short_example: None,
            surprises: BTreeMap::new(),
        }
    }

    /// Forgets the warm-up.
    pub fn clear(&mut self) {
        self.sent = 0;
        self.failures.clear();
        self.completed = 0;
        self.short = 0;
        self.short_example = None;
        self.surprises.clear();
    }

    pub fn sent(&mut self, requests: u64) {
        self.sent += requests;
    }

    pub fn failed(&mut self, failure: &RequestFailure) {
        *self.failures.entry(failure.class).or_default() += 1;
        self.examples
            .entry(failure.class)
            .or_insert_with(|| failure.message.clone());
    }

    /// A response that streamed to its end, with what was short or odd in it.
    pub fn completed(&mut self, surprises: &[Surprise], short: Option<&Shortfall>) {
        self.completed += 1;
        if let Some(short) = short {
            self.short += 1;
            self.short_example.get_or_insert_with(|| short.to_string());
        }
        for surprise in surprises {
            self.surprises
                .entry(surprise.what)
                .or_insert_with(|| (0, surprise.detail.clone()))
                .0 += 1;
        }
    }

    /// Past the error budget over all timed iterations, the case fails
    /// (exit 4), keeping everything it measured; under it, a warning.
    /// Short and odd responses are warnings whatever their number: the
    /// server answered, and what it answered is what was measured.
    pub fn conclude(&self) -> Option<Conclusion> {
        let errors: u64 = self.failures.values().sum();
        if self.sent == 0 || (errors == 0 && self.short == 0 && self.surprises.is_empty()) {
            return None;
        }
        let rate = 100.0 * errors as f64 / self.sent as f64;
        let mut warnings = Vec::new();
        let mut failure = None;
        if errors > 0 {
            let by_class: Vec<String> = self
                .failures
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(class, n)| {
                    let example = self.examples.get(class).map_or("", String::as_str);
                    format!("{} {n} (e.g. {example})", class.name())
                })
                .collect();
            let summary = format!(
                "{errors} of {} requests failed ({rate:.1} %): {}",
                self.sent,
                by_class.join("; ")
            );
            if rate > self.error_budget_pct {
                failure = Some(format!(
                    "{summary}; above the error budget of {} % (error_budget_pct)",
                    self.error_budget_pct
                ));
            } else {
                warnings.push(summary);
            }
        }
        if self.short > 0 {
            warnings.push(format!(
                "{} of {} responses were shorter than the max_tokens asked with ignore_eos (e.g. {}): the server ignored ignore_eos, or stopped at a stop sequence or its context; output_tokens_per_s, TPOT and e2e count the tokens received, not those asked",
                self.short,
                self.completed,
                self.short_example.as_deref().unwrap_or_default()
            ));
        }
        for (what, (n, example)) in &self.surprises {
            warnings.push(format!(
                "{n} of {} responses: {what} (e.g. {example})",
                self.completed
            ));
        }
        let counts: BTreeMap<&str, u64> = self
            .failures
            .iter()
            .map(|(class, n)| (class.name(), *n))
            .collect();
        let surprises: BTreeMap<&str, u64> = self
            .surprises
            .iter()
            .map(|(what, (n, _))| (*what, *n))
            .collect();
        Some(Conclusion {
            failure,
            findings: Findings::Other(serde_json::json!({
                "requests": self.sent,
                "failed": errors,
                "error_rate_pct": rate,
                "by_class": counts,
                "completed": self.completed,
                "short_responses": self.short,
                "surprising_responses": surprises,
            })),
            warnings,
        })
    }
}

impl EndpointCase {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        connection: &Connection,
        prompts: Vec<RequestPrompt>,
        requests: Vec<Request>,
        tokenizer: Option<TextTokenizer>,
        (label, parameters): (String, serde_json::Value),
        (concurrency, open_loop): (usize, bool),
        slo: Slo,
        target: &EndpointTarget<'_>,
    ) -> Self {
        let prepared = prepare_all(&connection.client, &requests, &prompts);
        Self {
            runtime: Arc::clone(&connection.runtime),
            client: Arc::clone(&connection.client),
            requests,
            prompts,
            prepared,
            tokenizer,
            label,
            parameters,
            concurrency,
            open_loop,
            slo,
            ignore_eos: connection.client.ignore_eos(),
            tally: FailureTally::new(target.error_budget_pct),
            audit: ClientAudit::new(target.client_bound_lag_pct),
            reuse: None,
            fresh_vocab: None,
            timeline: Timeline::default(),
            planted_sender_delay: std::env::var("CAMPAIGN_TEST_SENDER_DELAY_MS")
                .ok()
                .and_then(|ms| ms.parse::<f64>().ok())
                .filter(|ms| ms.is_finite() && *ms > 0.0)
                .map(|ms| Duration::from_secs_f64(ms / 1e3)),
        }
    }

    /// Counts this case's prefix reuse: what its workload allowed, what
    /// the server confirmed, and its TTFTs beside its twin's.
    pub fn with_prefix_reuse(
        mut self,
        workload: Option<PrefixReuse>,
        pair: Arc<Mutex<TtftPair>>,
        twin: bool,
    ) -> Self {
        self.reuse = Some(ReuseTally::new(workload, pair, twin));
        self
    }

    /// Shifts the token ids of every prompt by the same amount (mod the
    /// vocabulary) at each iteration: a bijection, so what the prompts
    /// share within an iteration is exactly the workload's, while no
    /// iteration (nor another case, nor an earlier run against the same
    /// server) finds its blocks in the server's prefix cache. Each
    /// iteration is a cold cache, as the workload's ideal assumes.
    pub fn with_fresh_prompts(mut self, vocab_size: usize) -> Self {
        self.fresh_vocab = Some(vocab_size.max(1) as u64);
        self
    }

    /// The prompts of the next iteration, their ids shifted by the next
    /// shift of the process: distinct for every iteration of every case
    /// of a run (up to the vocabulary's size), and starting from the
    /// clock so that a run after another against the same server differs.
    fn fresh_prompts(&mut self) -> Result<(), BenchmarkError> {
        static NEXT_SHIFT: std::sync::OnceLock<std::sync::atomic::AtomicU64> =
            std::sync::OnceLock::new();
        let Some(vocab) = self.fresh_vocab else {
            return Ok(());
        };
        let next = NEXT_SHIFT.get_or_init(|| {
            std::sync::atomic::AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
            )
        });
        let shift = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % vocab;
        for (request, sent) in self.requests.iter().zip(self.prompts.iter_mut()) {
            let ids: Vec<u32> = request
                .prompt
                .iter()
                .map(|&t| ((u64::from(t) + shift) % vocab) as u32)
                .collect();
            *sent = match sent {
                RequestPrompt::Tokens(_) => RequestPrompt::Tokens(ids),
                RequestPrompt::Text(_) => {
                    let tokenizer = self.tokenizer.as_ref().ok_or_else(|| {
                        BenchmarkError::Params(
                            "shaped traffic sent as text needs a tokenizer".into(),
                        )
                    })?;
                    RequestPrompt::Text(tokenizer.decode(&ids)?)
                }
            };
        }
        self.prepared = prepare_all(&self.client, &self.requests, &self.prompts);
        Ok(())
    }

    /// Sends every request of the workload: all at t = 0 through
    /// `concurrency` permits (a closed loop), or each at its scheduled
    /// arrival with at most `concurrency` in flight (an open loop); a later
    /// turn of a conversation `think_s` after the turn it follows finished.
    ///
    /// This thread is the sender: it sleeps to each arrival and hands the
    /// request to the runtime. The OS timer wakes it within tens of
    /// microseconds, where tokio's timer wheel rounds every sleep up to the
    /// next millisecond, which alone would add up to 1 ms to every TTFT
    /// measured from the schedule. Returns the outcomes in request order,
    /// the wall time and the start.
    fn send_all(&self) -> (Vec<Outcome>, Duration, Instant) {
        let handle = self.runtime.handle().clone();
        let permits = Arc::new(tokio::sync::Semaphore::new(self.concurrency.max(1)));
        let start = Instant::now();
        let count = self.requests.len();
        let mut followers: Vec<Vec<usize>> = vec![Vec::new(); count];
        // Due requests, earliest first (ties in request order).
        let mut due: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
        for (i, request) in self.requests.iter().enumerate() {
            match request.follows {
                Some(follow) if follow.previous < i => followers[follow.previous].push(i),
                _ => {
                    let at = if self.open_loop {
                        Duration::from_secs_f64(request.arrival_s)
                    } else {
                        Duration::ZERO
                    };
                    due.push(Reverse((start + at, i)));
                }
            }
        }
        let chained = followers.iter().any(|f| !f.is_empty());
        let (finished_tx, finished) = std_mpsc::channel::<(usize, Instant)>();
        let mut tasks: Vec<Option<tokio::task::JoinHandle<Outcome>>> =
            (0..count).map(|_| None).collect();
        let mut launched = 0;
        while launched < count {
            let next = due.peek().map(|Reverse((at, i))| (*at, *i));
            if let Some((scheduled, i)) = next
                && scheduled <= Instant::now()
            {
                due.pop();
                tasks[i] = Some(self.launch(&handle, &permits, i, scheduled, &finished_tx));
                launched += 1;
                if let Some(delay) = self.planted_sender_delay {
                    std::thread::sleep(delay);
                }
                continue;
            }
            let wait = next.map(|(at, _)| at.saturating_duration_since(Instant::now()));
            // Wait for the next due request, or for a turn to finish that
            // another follows; without followers, a plain sleep.
            let woke = if !chained {
                if let Some(wait) = wait {
                    std::thread::sleep(wait);
                }
                None
            } else {
                // Nothing due: every request left follows one in flight,
                // and each of those ends within the client's timeout.
                let patience = self.client.timeout().saturating_mul(2);
                match finished.recv_timeout(wait.unwrap_or(patience)) {
                    Ok(done) => Some(done),
                    Err(_) if wait.is_none() => break,
                    Err(_) => None,
                }
            };
            if let Some((done, at)) = woke {
                for &f in &followers[done] {
                    let think = self.requests[f].follows.map_or(0.0, |f| f.think_s);
                    due.push(Reverse((at + Duration::from_secs_f64(think), f)));
                }
            }
        }
        drop(finished_tx);
        self.runtime.block_on(async move {
            let mut outcomes = Vec::with_capacity(count);
            for task in tasks.into_iter().flatten() {
                if let Ok(outcome) = task.await {
                    outcomes.push(outcome);
                }
            }
            (outcomes, start.elapsed(), start)
        })
    }

    /// Hands request `i` to the runtime; when it ends (however it ends),
    /// `finished` hears of it, for the turns that follow it.
    fn launch(
        &self,
        handle: &tokio::runtime::Handle,
        permits: &Arc<tokio::sync::Semaphore>,
        i: usize,
        scheduled: Instant,
        finished: &std_mpsc::Sender<(usize, Instant)>,
    ) -> tokio::task::JoinHandle<Outcome> {
        let (client, permits) = (Arc::clone(&self.client), Arc::clone(permits));
        let (prepared, max_tokens) = (self.prepared[i].clone(), self.requests[i].output_tokens);
        let report = FinishReport {
            finished: finished.clone(),
            request: i,
        };
        handle.spawn(async move {
            let waiting = Instant::now();
            let permit = permits.acquire_owned().await;
            let began = Instant::now();
            let Stamped { sent_at, result } = client.send_prepared(&prepared).await;
            drop(permit);
            drop(report);
            Outcome {
                index: i,
                scheduled,
                waiting,
                began,
                sent: sent_at.unwrap_or(began),
                asked_tokens: max_tokens,
                result,
            }
        })
    }

    /// Tokens each chunk carries. With the stream's usage (N tokens over C
    /// chunks): one each when N = C, which is what servers send token by
    /// token; otherwise the N tokens shared in proportion to each chunk's
    /// text through the model's tokenizer (at least one each, largest
    /// remainders first). Without usage, those tokenizer counts, or one
    /// per chunk without a tokenizer.
    fn chunk_tokens(&self, done: &StreamedCompletion) -> Vec<usize> {
        let chunks = done.chunks.len();
        let by_tokenizer = || -> Vec<usize> {
            done.chunks
                .iter()
                .map(|c| {
                    self.tokenizer
                        .as_ref()
                        .and_then(|t| t.encode(&c.text).ok())
                        .map_or(1, |ids| ids.len().max(1))
                })
                .collect()
        };
        // The tokenizer runs only where the usage leaves the split open.
        match done.completion_tokens() {
            Some(n) if n <= chunks => vec![1; chunks],
            Some(n) => share(n, &by_tokenizer()),
            None => by_tokenizer(),
        }
    }

    fn timing(&self, outcome: &Outcome, done: &StreamedCompletion) -> RequestTiming {
        let arrival = if self.open_loop {
            outcome.scheduled
        } else {
            outcome.began
        };
        let first = done.chunks.first().map_or(done.done_at, |c| c.at);
        let last = done.chunks.last().map_or(done.done_at, |c| c.at);
        let tokens = self.chunk_tokens(done);
        let mut gaps_ms = Vec::new();
        for (pair, &k) in done.chunks.windows(2).zip(tokens.iter().skip(1)) {
            let gap_ms = (pair[1].at - pair[0].at).as_secs_f64() * 1e3 / k as f64;
            gaps_ms.extend(std::iter::repeat_n(gap_ms, k));
        }
        RequestTiming {
            queue: outcome.began.saturating_duration_since(outcome.scheduled),
            ttft: first.saturating_duration_since(arrival),
            ttft_from_send: first.saturating_duration_since(outcome.sent),
            gaps_ms,
            e2e: last.saturating_duration_since(arrival),
            output_tokens: done
                .completion_tokens()
                .unwrap_or_else(|| tokens.iter().sum()),
        }
    }
}

/// Each request's body, serialized before any is sent.
fn prepare_all(
    client: &EndpointClient,
    requests: &[Request],
    prompts: &[RequestPrompt],
) -> Vec<PreparedRequest> {
    requests
        .iter()
        .zip(prompts)
        .map(|(r, p)| client.prepare(p, r.output_tokens))
        .collect()
}

/// `total` shared over slots in proportion to `weights`, each slot at
/// least one (`total` ≥ the number of slots), by largest remainders.
fn share(total: usize, weights: &[usize]) -> Vec<usize> {
    let slots = weights.len();
    if slots == 0 {
        return Vec::new();
    }
    let spare = total.saturating_sub(slots);
    let weight: usize = weights.iter().sum::<usize>().max(1);
    let exact: Vec<f64> = weights
        .iter()
        .map(|&w| spare as f64 * w as f64 / weight as f64)
        .collect();
    let mut out: Vec<usize> = exact.iter().map(|e| 1 + e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..slots).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let missing = total.saturating_sub(out.iter().sum());
    for &i in order.iter().take(missing) {
        out[i] += 1;
    }
    out
}

impl BenchmarkCase for EndpointCase {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn parameters(&self) -> serde_json::Value {
        self.parameters.clone()
    }

    fn start_timed(&mut self) {
        self.tally.clear();
        self.audit.clear();
        self.timeline.clear();
        if let Some(reuse) = &mut self.reuse {
            reuse.clear();
        }
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        // Before the client's CPU is read: writing the bodies is not
        // sending them.
        self.fresh_prompts()?;
        let cpu_before = process_cpu_seconds();
        let (outcomes, wall, start) = self.send_all();
        let ms = |at: Instant| at.saturating_duration_since(start).as_secs_f64() * 1e3;
        self.timeline.record(
            outcomes
                .iter()
                .map(|o| {
                    let done = o.result.as_ref().ok();
                    TimelineRequest {
                        index: o.index,
                        scheduled_ms: ms(o.scheduled),
                        sent_ms: ms(o.sent),
                        first_token_ms: done.and_then(|d| d.chunks.first()).map(|c| ms(c.at)),
                        finish_ms: done.map_or_else(|| ms(o.sent), |d| ms(d.done_at)),
                        ok: done.is_some(),
                        cached_tokens: done.and_then(StreamedCompletion::cached_tokens),
                    }
                })
                .collect(),
        );
        let (mut cached_tokens, mut reported_prompt_tokens) = (0u64, 0u64);
        let client_cpu_s = cpu_before
            .zip(process_cpu_seconds())
            .map(|(before, after)| (after - before).max(0.0));
        for outcome in &outcomes {
            // The client's lateness: scheduled → sent, less the wait for a
            // concurrency slot (the cap the campaign asked for).
            let slot_wait = outcome.began.saturating_duration_since(outcome.waiting);
            let lag = outcome
                .sent
                .saturating_duration_since(outcome.scheduled)
                .saturating_sub(slot_wait);
            let lag_ms = lag.as_secs_f64() * 1e3;
            obs.value(&DISPATCH_LAG_MS, lag_ms);
            self.audit.lag_ms.push(lag_ms);
        }
        let mut timings = Vec::new();
        let mut failed: BTreeMap<ErrorClass, u64> = BTreeMap::new();
        let mut short = 0usize;
        for outcome in &outcomes {
            match &outcome.result {
                Ok(done) => {
                    let timing = self.timing(outcome, done);
                    let ttft_ms = timing.ttft.as_secs_f64() * 1e3;
                    let shortfall = shortfall(
                        done,
                        outcome.asked_tokens,
                        timing.output_tokens,
                        self.ignore_eos,
                    );
                    short += usize::from(shortfall.is_some());
                    let mut surprises = done.surprises.clone();
                    if done.completion_tokens().is_none() {
                        surprises.push(Surprise {
                            what: if self.tokenizer.is_some() {
                                "no usage.completion_tokens from the server: output tokens are the tokenizer's count of the streamed text"
                            } else {
                                "no usage.completion_tokens from the server and no tokenizer: output tokens are counted one a chunk of text"
                            },
                            detail: format!(
                                "{} tokens counted over {} chunks",
                                timing.output_tokens,
                                done.chunks.len()
                            ),
                        });
                    }
                    self.tally.completed(&surprises, shortfall.as_ref());
                    self.audit
                        .ttft_from_send_ms
                        .push(timing.ttft_from_send.as_secs_f64() * 1e3);
                    timings.push(timing);
                    if let Some(tokens) = done.prompt_tokens() {
                        obs.value(&SERVER_PROMPT_TOKENS, tokens as f64);
                    }
                    let prompt_tokens = done.prompt_tokens().unwrap_or(
                        self.requests
                            .get(outcome.index)
                            .map_or(0, |r| r.prompt.len() as u64),
                    );
                    let server = done.cached_tokens().map(|cached| (cached, prompt_tokens));
                    if let Some((cached, prompt)) = server {
                        cached_tokens += cached;
                        reported_prompt_tokens += prompt;
                    }
                    if let Some(reuse) = &mut self.reuse {
                        reuse.request(ttft_ms, server);
                    }
                    if let Some(server_ms) = done.server_first_token_ms {
                        let first = done.chunks.first().map_or(done.done_at, |c| c.at);
                        let client_ms =
                            first.saturating_duration_since(outcome.sent).as_secs_f64() * 1e3;
                        obs.value(&SERVER_TTFT_MS, server_ms);
                        obs.value(&TRANSPORT_CLIENT_MS, client_ms - server_ms);
                    }
                }
                Err(failure) => {
                    *failed.entry(failure.class).or_default() += 1;
                    self.tally.failed(failure);
                }
            }
        }
        record_run(obs, &timings, wall, self.open_loop, self.slo);
        if reported_prompt_tokens > 0 {
            obs.value(
                &PREFIX_HIT_PCT,
                100.0 * cached_tokens as f64 / reported_prompt_tokens as f64,
            );
        }
        if let Some(cpu_s) = client_cpu_s {
            obs.value(&CLIENT_CPU_PCT, 100.0 * cpu_s / wall.as_secs_f64());
            let tokens: usize = timings.iter().map(|t| t.output_tokens).sum();
            if tokens > 0 {
                obs.value(&CLIENT_CPU_US_PER_OUTPUT_TOKEN, cpu_s * 1e6 / tokens as f64);
            }
            self.audit.cpu_s += cpu_s;
            self.audit.wall_s += wall.as_secs_f64();
        }
        let errors: u64 = failed.values().sum();
        obs.value(
            &ENDPOINT_ERROR_RATE_PCT,
            100.0 * errors as f64 / self.requests.len().max(1) as f64,
        );
        for class in ErrorClass::ALL {
            obs.value(
                error_metric(class),
                failed.get(&class).copied().unwrap_or(0) as f64,
            );
        }
        obs.value(&SHORT_RESPONSES, short as f64);
        if !timings.is_empty() {
            obs.value(
                &ENDPOINT_SHORT_RESPONSE_PCT,
                100.0 * short as f64 / timings.len() as f64,
            );
        }
        self.tally.sent(self.requests.len() as u64);
        Ok(())
    }

    fn conclude(&mut self) -> Option<Conclusion> {
        let tally = self.tally.conclude();
        let audit = self.audit.conclude();
        let reuse = self.reuse.as_ref().map(ReuseTally::conclude);
        let timeline = self.timeline.conclude();
        if audit.is_none() && reuse.is_none() && timeline.is_none() {
            return tally;
        }
        let mut conclusion = tally.unwrap_or(Conclusion {
            failure: None,
            findings: Findings::Other(serde_json::json!({})),
            warnings: Vec::new(),
        });
        if let Findings::Other(serde_json::Value::Object(findings)) = &mut conclusion.findings {
            if let Some((audit, _)) = &audit {
                findings.insert("client_audit".into(), audit.clone());
            }
            if let Some(reuse) = reuse {
                findings.insert("prefix_reuse".into(), reuse);
            }
            if let Some(timeline) = timeline {
                findings.insert("timeline".into(), timeline);
            }
        }
        if let Some((_, client_bound)) = audit {
            conclusion.warnings.extend(client_bound);
        }
        Some(conclusion)
    }
}

/// The metric counting one class of failures.
pub(super) fn error_metric(class: ErrorClass) -> &'static MetricDef {
    match class {
        ErrorClass::Connect => &ERRORS_CONNECT,
        ErrorClass::Timeout => &ERRORS_TIMEOUT,
        ErrorClass::RateLimited => &ERRORS_RATE_LIMITED,
        ErrorClass::Http4xx => &ERRORS_HTTP_4XX,
        ErrorClass::Http5xx => &ERRORS_HTTP_5XX,
        ErrorClass::MalformedSse => &ERRORS_MALFORMED_SSE,
        ErrorClass::MalformedUsage => &ERRORS_MALFORMED_USAGE,
        ErrorClass::CutShort => &ERRORS_CUT_SHORT,
    }
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn tokens_are_shared_over_chunks_by_weight_at_least_one_each() {
        assert_eq!(share(6, &[1, 1, 1]), [2, 2, 2]);
        // A spare of 3 by weights 3 : 1 is 2.25 : 0.75; the larger remainder wins.
        assert_eq!(share(5, &[3, 1]), [3, 2]);
        assert_eq!(share(4, &[1, 1, 1, 1]), [1, 1, 1, 1]);
        for (total, weights) in [(10, vec![2, 5, 1]), (7, vec![1, 1]), (9, vec![4, 4, 4])] {
            let shared = share(total, &weights);
            assert_eq!(shared.iter().sum::<usize>(), total, "{weights:?}");
            assert!(shared.iter().all(|&k| k >= 1));
        }
    }
}
