//! Endpoint targets against servers that lie: a stub that speaks just
//! enough HTTP and SSE answers each request with what a test writes, so
//! impossible usage, short `ignore_eos` responses and the refusals of
//! configurations without a tokenizer are checked end to end.

use serial_test::{parallel, serial};

use super::fixture::*;

/// A server that answers each of `requests` connections with the stream
/// `respond` writes from the request's index and JSON body, then closes.
/// Joining it gives the bodies it received.
fn stub(
    requests: usize,
    respond: impl Fn(usize, &Value) -> String + Send + 'static,
) -> (String, std::thread::JoinHandle<Vec<Value>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        for (n, stream) in listener.incoming().take(requests).enumerate() {
            let mut stream = stream.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then as many body bytes as Content-Length says.
            let body = loop {
                let read = stream.read(&mut buf).unwrap();
                assert!(read > 0, "client closed early");
                request.extend_from_slice(&buf[..read]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break serde_json::from_slice::<Value>(&request[end + 4..end + 4 + length])
                            .unwrap();
                    }
                }
            };
            let mut answer = String::from(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
            );
            answer.push_str(&respond(n, &body));
            let _ = stream.write_all(answer.as_bytes());
            bodies.push(body);
        }
        bodies
    });
    (url, handle)
}

/// A completions stream: one chunk per text, the finish reason on the
/// last, then a usage chunk (when given) and `[DONE]`.
fn completion(texts: &[&str], finish: &str, usage: Option<Value>) -> String {
    let mut out = String::new();
    for (i, text) in texts.iter().enumerate() {
        let reason = if i + 1 == texts.len() {
            Value::from(finish)
        } else {
            Value::Null
        };
        let chunk =
            serde_json::json!({"choices": [{"index": 0, "text": text, "finish_reason": reason}]});
        out.push_str(&format!("data: {chunk}\n\n"));
    }
    if let Some(usage) = usage {
        let chunk = serde_json::json!({"choices": [], "usage": usage});
        out.push_str(&format!("data: {chunk}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out
}

fn usage(prompt: i64, completion: i64, total: i64) -> Option<Value> {
    Some(serde_json::json!({
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total
    }))
}

/// One `full_inference` of `requests` requests of 12 prompt ids and 4
/// output tokens against `endpoint`, one at a time, one iteration.
fn day(endpoint: &str, requests: usize, extra: &str) -> String {
    format!(
        r#"
[[days]]
number = 1
title = "served"
[[days.benchmarks]]
name = "served"
kind = "full_inference"
warmup = 0
iterations = 1
[days.benchmarks.params]
endpoint = "{endpoint}"
requests = {requests}
prompt_tokens = {{ distribution = "fixed", tokens = 12 }}
output_tokens = {{ distribution = "fixed", tokens = 4 }}
concurrency = [1]
{extra}
"#
    )
}

fn run(f: &Fixture, campaign: &Path) -> std::process::Output {
    Command::new(assert_cmd::cargo::cargo_bin!("campaign"))
        .args(["run", "--day", "1", "--no-profile", "--campaign"])
        .arg(campaign)
        .arg("--out")
        .arg(f.out())
        .output()
        .unwrap()
}

fn samples(result: &Value, metric: &str) -> Vec<f64> {
    result["metrics"][metric]["raw_samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no {metric} in {result:#}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
#[parallel]
fn impossible_usage_is_a_malformed_response_counted_against_the_error_budget() {
    let f = Fixture::new();
    // Four lies the request cannot have had, then two true answers.
    let (url, stub) = stub(6, |n, _| match n {
        0 => completion(&["a", "b"], "length", usage(12, -3, 9)),
        1 => completion(&["a", "b", "c", "d"], "length", usage(12, 4, 99)),
        2 => completion(&["a", "b", "c", "d"], "length", usage(12, 1259, 1271)),
        3 => completion(&["a", "b", "c", "d"], "length", usage(3, 4, 7)),
        _ => completion(&["a", "b", "c", "d"], "length", usage(12, 4, 16)),
    });
    let campaign = f.campaign(&day(&url, 6, ""));
    let out = run(&f, &campaign);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    stub.join().unwrap();
    let report = f.report();
    let result = &report["results"][0];
    assert_eq!(result["status"], "failed", "{result:#}");
    assert_eq!(samples(result, "errors_malformed_usage"), [4.0]);
    assert_eq!(samples(result, "errors_malformed_sse"), [0.0]);
    // The two true answers were measured, and only they count in tokens/s.
    assert_eq!(samples(result, "ttft_ms").len(), 2);
    let tokens_per_request =
        samples(result, "output_tokens_per_s")[0] / samples(result, "requests_per_s")[0];
    assert!(
        (tokens_per_request - 4.0).abs() < 1e-9,
        "{tokens_per_request}"
    );
    let error = result["error"].as_str().unwrap();
    assert!(
        error.contains("4 of 6 requests failed")
            && error.contains("malformed_usage 4")
            && error.contains("above the error budget of 0 %"),
        "{error}"
    );
    // The example (the first lie the tally met) names the field, the
    // values and what is allowed; each lie alone is checked below.
    assert!(
        [
            "usage.completion_tokens = -3; allowed: a whole number of tokens",
            "usage.total_tokens = 99, but prompt_tokens + completion_tokens = 12 + 4",
            "usage.completion_tokens = 1259, more than the max_tokens = 4 asked",
            "usage.prompt_tokens = 3 contradicts the 12 token ids sent",
        ]
        .iter()
        .any(|m| error.contains(m)),
        "{error}"
    );
    let findings = &result["conclusion"];
    assert_eq!(findings["by_class"]["malformed_usage"], 4, "{findings:#}");
}

#[test]
#[parallel]
fn each_impossible_usage_names_its_field_and_values() {
    // One request per lie, each alone, so each message is the example.
    for (usage, expected) in [
        (
            usage(12, 4, 99),
            "usage.total_tokens = 99, but prompt_tokens + completion_tokens = 12 + 4",
        ),
        (
            usage(12, 1259, 1271),
            "usage.completion_tokens = 1259, more than the max_tokens = 4 asked",
        ),
        (
            usage(3, 4, 7),
            "usage.prompt_tokens = 3 contradicts the 12 token ids sent; allowed: 12 to 20",
        ),
        (
            Some(serde_json::json!({"completion_tokens": 2.5})),
            "usage.completion_tokens = 2.5; allowed: a whole number of tokens",
        ),
    ] {
        let f = Fixture::new();
        let (url, stub) = stub(1, move |_, _| {
            completion(&["a", "b", "c", "d"], "length", usage.clone())
        });
        let campaign = f.campaign(&day(&url, 1, "error_budget_pct = 100"));
        let out = run(&f, &campaign);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stub.join().unwrap();
        let result = &f.report()["results"][0];
        assert_eq!(samples(result, "errors_malformed_usage"), [1.0]);
        let warnings = result["warnings"].to_string();
        assert!(warnings.contains(expected), "{expected} not in {warnings}");
    }
}

#[test]
#[parallel]
fn short_ignore_eos_responses_are_counted_warned_and_tokens_per_s_counts_what_came() {
    let f = Fixture::new();
    // Asked 4 tokens each with ignore_eos: one token (by the usage), all
    // four, one token (no usage: the finish reason and the count say so),
    // all four.
    let (url, stub) = stub(4, |n, _| match n {
        0 => completion(&["a"], "stop", usage(12, 1, 13)),
        2 => completion(&["a"], "stop", None),
        _ => completion(&["a", "b", "c", "d"], "length", usage(12, 4, 16)),
    });
    let campaign = f.campaign(&day(&url, 4, ""));
    let out = run(&f, &campaign);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Short responses are not errors: the run passes, and says so.
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let bodies = stub.join().unwrap();
    for body in &bodies {
        assert_eq!(body["ignore_eos"], true, "{body}");
        assert_eq!(body["max_tokens"], 4, "{body}");
        assert_eq!(body["prompt"].as_array().map(Vec::len), Some(12), "{body}");
    }
    let report = f.report();
    let result = &report["results"][0];
    assert_eq!(result["status"], "ok", "{result:#}");
    assert_eq!(samples(result, "short_responses"), [2.0]);
    assert_eq!(samples(result, "short_response_pct"), [50.0]);
    assert_eq!(samples(result, "error_rate_pct"), [0.0]);
    // 1 + 4 + 1 + 4 tokens came for 4 requests over the same wall time:
    // tokens/s is 2.5 tokens a request, not the 4 asked.
    let tokens_per_request =
        samples(result, "output_tokens_per_s")[0] / samples(result, "requests_per_s")[0];
    assert!(
        (tokens_per_request - 2.5).abs() < 1e-9,
        "{tokens_per_request}"
    );
    let warnings = result["warnings"].to_string();
    // The example is whichever short response the tally met first.
    assert!(
        warnings
            .contains("2 of 4 responses were shorter than the max_tokens asked with ignore_eos")
            && (warnings.contains("1 of 4 tokens by the usage, finish_reason stop")
                || warnings.contains(
                    "1 of 4 tokens by the finish reason and the tokens counted, finish_reason stop"
                ))
            && warnings.contains("count the tokens received, not those asked"),
        "{warnings}"
    );
    assert!(
        warnings.contains("1 of 4 responses: no usage.completion_tokens from the server"),
        "{warnings}"
    );
    assert_eq!(result["conclusion"]["short_responses"], 2);
    // The metric says what it counts.
    let description = result["metrics"]["output_tokens_per_s"]["description"]
        .as_str()
        .unwrap();
    assert!(description.contains("the tokens received"), "{description}");
}

#[test]
#[parallel]
fn a_stream_past_the_clients_limits_is_malformed_not_kept() {
    let f = Fixture::new();
    // An event that never ends its line, past the 1 MiB limit on one event;
    // then one chunk of text per byte of 100 bytes, past 16 a token asked.
    let (url, stub) = stub(2, |n, _| match n {
        0 => format!("data: {}", "x".repeat((1 << 20) + 64)),
        _ => completion(&["a"; 100], "length", usage(12, 4, 16)),
    });
    let campaign = f.campaign(&day(&url, 2, "error_budget_pct = 100"));
    let out = run(&f, &campaign);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stub.join().unwrap();
    let result = &f.report()["results"][0];
    assert_eq!(samples(result, "errors_malformed_sse"), [2.0]);
    let findings = result["warnings"].to_string();
    assert!(
        findings.contains("passed 1048576 bytes without ending")
            || findings.contains("more than 64 chunks of text for max_tokens = 4"),
        "{findings}"
    );
}

/// A campaign with no model at all, and `params` for one endpoint benchmark.
fn model_free(f: &Fixture, kind: &str, params: &str) -> PathBuf {
    f.campaign_raw(&format!(
        r#"name = "t"
[settings]
threads = 1
[[days]]
number = 1
title = "served"
[[days.benchmarks]]
name = "served"
kind = "{kind}"
[days.benchmarks.params]
endpoint = "http://127.0.0.1:9/v1"
{params}
"#
    ))
}

#[test]
#[parallel]
fn a_configuration_that_needs_a_tokenizer_it_lacks_is_refused_at_its_key() {
    let f = Fixture::new();
    fs::write(f.path("prompts.jsonl"), "{\"text\": \"Hello\"}\n").unwrap();
    let output = "output_tokens = { distribution = \"fixed\", tokens = 4 }\nconcurrency = [1]";
    for (kind, params, key, needles) in [
        (
            "full_inference",
            format!(
                "served_model = \"m\"\nprompts = {{ file = \"prompts.jsonl\" }}\nprompt_tokens = {{ distribution = \"fixed\", tokens = 12 }}\n{output}"
            ),
            "prompt_tokens",
            vec![
                "field `params.prompt_tokens`",
                "exact lengths in tokens need a tokenizer",
                "allowed without one: no prompt_tokens",
            ],
        ),
        (
            "full_inference",
            format!("served_model = \"m\"\nprompts = {{ corpus = \"prompts.jsonl\" }}\n{output}"),
            "corpus",
            vec![
                "field `params.prompts.corpus`",
                "allowed without a tokenizer: prompts = { file = … }",
            ],
        ),
        (
            "full_inference",
            format!("served_model = \"m\"\n{output}"),
            "params]",
            vec![
                "field `params.prompts`",
                "random token-id prompts need a vocabulary",
                "allowed: a prompts file",
            ],
        ),
        (
            "full_inference",
            format!("prompts = {{ file = \"prompts.jsonl\" }}\n{output}"),
            "params]",
            vec![
                "field `params.served_model`",
                "nothing names the model the server serves",
            ],
        ),
        (
            "full_inference",
            format!(
                "served_model = \"m\"\nmodel = \"default\"\ntokenizer = \"tokenizer.json\"\nprompt_tokens = {{ distribution = \"fixed\", tokens = 12 }}\n{output}"
            ),
            "tokenizer =",
            vec![
                "field `params.tokenizer`",
                "both `model` and `tokenizer` are given; allowed: one of them",
            ],
        ),
        (
            "endurance",
            "served_model = \"m\"".to_string(),
            "params]",
            vec![
                "field `params.tokenizer`",
                "this kind sends token-id prompts of prompt_tokens",
                "allowed: a tokenizer file or a campaign model",
            ],
        ),
    ] {
        let campaign = model_free(&f, kind, &params);
        let mut needles = needles;
        let at = position_of(&campaign, key);
        needles.push(&at);
        expect_usage_error(&f, &campaign, &needles);
    }
    // A campaign model without a tokenizer cannot write chat text (the
    // tiny model's vocabulary is too small for one).
    let campaign = f.campaign(&day("http://127.0.0.1:9/v1", 1, "api = \"chat\""));
    let at = position_of(&campaign, "api =");
    expect_usage_error(
        &f,
        &campaign,
        &[
            &at,
            "field `params.api`",
            "has no tokenizer to write them",
            "allowed with this model: api = \"completions\"",
        ],
    );
    // A tokenizer alone serves an endpoint; in-process it is refused.
    let campaign = f.campaign(
        r#"
[[days]]
number = 1
title = "in-process"
[[days.benchmarks]]
name = "local"
kind = "scaling"
[days.benchmarks.params]
tokenizer = "tokenizer.json"
prompt_tokens = 8
output_tokens = 4
concurrency = [1]
"#,
    );
    let at = position_of(&campaign, "tokenizer =");
    expect_usage_error(
        &f,
        &campaign,
        &[
            &at,
            "field `params.tokenizer`",
            "this benchmark has no endpoint",
        ],
    );
}

/// Reads one request (headers, then the body its Content-Length gives).
fn read_request(stream: &mut std::net::TcpStream) -> Option<Value> {
    use std::io::Read;
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = stream.read(&mut buf).ok()?;
        if read == 0 {
            return None;
        }
        request.extend_from_slice(&buf[..read]);
        let text = String::from_utf8_lossy(&request).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .and_then(|v| v.trim().parse().ok())
                })
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                return serde_json::from_slice(&request[end + 4..end + 4 + length]).ok();
            }
        }
    }
}

/// A server with a known TTFT: each request on its own thread waits a
/// time drawn from a seeded log-normal (median 20 ms, σ 0.5: p99 near
/// 64 ms) from the moment its connection was accepted, then streams 4
/// tokens and their usage. Joining it gives the delays it injected, from
/// accept to the first token's write (ms), in the order the requests came.
fn ttft_stub(requests: usize) -> (String, std::thread::JoinHandle<Vec<f64>>) {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(30);
        let ttft = rand_distr::LogNormal::new(20.0f64.ln(), 0.5).unwrap();
        let workers: Vec<_> = listener
            .incoming()
            .take(requests)
            .map(|stream| {
                let accepted = std::time::Instant::now();
                let delay_ms = ttft.sample(&mut rng);
                std::thread::spawn(move || {
                    let mut stream = stream.unwrap();
                    read_request(&mut stream).expect("a request");
                    let due = accepted + std::time::Duration::from_secs_f64(delay_ms / 1e3);
                    if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let mut answer = String::from(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
                    );
                    let chunk = serde_json::json!({"choices": [{"index": 0, "text": "a", "finish_reason": null}]});
                    answer.push_str(&format!("data: {chunk}\n\n"));
                    let slept_ms = accepted.elapsed().as_secs_f64() * 1e3;
                    stream.write_all(answer.as_bytes()).unwrap();
                    let _ = stream.flush();
                    let rest = completion(&["b", "c", "d"], "length", usage(12, 4, 16));
                    let _ = stream.write_all(rest.as_bytes());
                    slept_ms
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    (url, handle)
}

/// `requests` open-loop requests at `rate_per_s` (constant gaps) against
/// `endpoint`, up to 64 in flight, one iteration.
fn open_loop_day(endpoint: &str, requests: usize, rate_per_s: f64) -> String {
    format!(
        r#"
[[days]]
number = 1
title = "served"
[[days.benchmarks]]
name = "served"
kind = "full_inference"
warmup = 0
iterations = 1
[days.benchmarks.params]
endpoint = "{endpoint}"
requests = {requests}
prompt_tokens = {{ distribution = "fixed", tokens = 12 }}
output_tokens = {{ distribution = "fixed", tokens = 4 }}
rates_per_s = [{rate_per_s:.1}]
arrivals = "constant"
open_loop_concurrency = 64
"#
    )
}

fn nearest_rank(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

/// At 200 requests/s against a server of known TTFT, the TTFT measured
/// from each request's scheduled send matches the injected one within
/// 1.5 ms at p50 and p99 (this is the test build, our code unoptimised:
/// the offset is the client's connect, send and parse) whenever the
/// client audits itself as not the bound. The audit's p99 of 400 is the
/// 396th lag: five or more requests sent 2 ms late (a stall of about
/// 20 ms, or several, on two shared cores) mark the run client-bound,
/// rightly, and stderr says so. As a user would, the test then runs it
/// again, up to three times; a client-bound run must show the lag its
/// audit names, and its TTFT from the actual send must still be the
/// server's.
#[test]
#[serial]
fn measured_ttft_matches_the_injected_one_at_200_requests_per_s() {
    let requests = 400;
    for attempt in 1..=3 {
        let f = Fixture::new();
        let (url, stub) = ttft_stub(requests);
        let campaign = f.campaign(&open_loop_day(&url, requests, 200.0));
        let out = run(&f, &campaign);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let injected = stub.join().unwrap();
        let report = f.report();
        let result = &report["results"][0];
        let measured = samples(result, "ttft_ms");
        assert_eq!(measured.len(), requests);
        let audit = &result["conclusion"]["client_audit"];
        assert_eq!(audit["requests"], requests, "{audit:#}");
        assert!(samples(result, "client_cpu_pct")[0] > 0.0);
        let lag_p99 = nearest_rank(&samples(result, "dispatch_lag_ms"), 0.99);
        if audit["client_bound"] == true {
            // The audit's rule, checked from the samples it rests on.
            let from_send = samples(result, "ttft_from_send_ms");
            let limit = audit["client_bound_lag_pct"].as_f64().unwrap() / 100.0;
            assert!(
                lag_p99 > limit * nearest_rank(&from_send, 0.5),
                "marked client-bound with a dispatch lag p99 of {lag_p99:.3} ms: {audit:#}"
            );
            assert_eq!(audit["dispatch_lag_p99_ms"].as_f64(), Some(lag_p99));
            let (m, i) = (nearest_rank(&from_send, 0.5), nearest_rank(&injected, 0.5));
            assert!(
                (m - i).abs() < 1.5,
                "p50 from the actual send: measured {m:.3} ms, injected {i:.3} ms"
            );
            assert!(stderr.contains("client-bound"), "{stderr}");
            eprintln!(
                "attempt {attempt}: client-bound (dispatch lag p99 {lag_p99:.3} ms); measuring again"
            );
            continue;
        }
        assert_eq!(audit["client_bound"], false, "{audit:#}");
        assert!(!stderr.contains("client-bound"), "{stderr}");
        for q in [0.5, 0.99] {
            let (m, i) = (nearest_rank(&measured, q), nearest_rank(&injected, q));
            assert!(
                (m - i).abs() < 1.5,
                "p{}: measured {m:.3} ms, injected {i:.3} ms; dispatch lag p99 {lag_p99:.3} ms",
                q * 100.0,
            );
        }
        println!(
            "TTFT p50 measured {:.3} ms, injected {:.3} ms; p99 measured {:.3} ms, injected {:.3} ms; dispatch lag p99 {lag_p99:.3} ms",
            nearest_rank(&measured, 0.5),
            nearest_rank(&injected, 0.5),
            nearest_rank(&measured, 0.99),
            nearest_rank(&injected, 0.99),
        );
        return;
    }
    panic!("the client was the bound in 3 runs of 3: the machine is too busy to judge the server");
}

/// A sender planted slow (it sleeps 12 ms after each request sent at
/// 200/s, so the last is sent ~0.7 s late) falls behind its schedule: the run is marked client-bound, and
/// its TTFT from the schedule grows while the TTFT from the actual send
/// stays the server's.
#[test]
#[serial]
fn a_starved_client_is_marked_client_bound() {
    let f = Fixture::new();
    let requests = 100;
    let (url, stub) = ttft_stub(requests);
    let campaign = f.campaign(&open_loop_day(&url, requests, 200.0));
    let out = Command::new(assert_cmd::cargo::cargo_bin!("campaign"))
        .args(["run", "--day", "1", "--no-profile", "--campaign"])
        .arg(&campaign)
        .arg("--out")
        .arg(f.out())
        .env("CAMPAIGN_TEST_SENDER_DELAY_MS", "12")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let injected = stub.join().unwrap();
    let report = f.report();
    let result = &report["results"][0];
    let audit = &result["conclusion"]["client_audit"];
    assert_eq!(audit["client_bound"], true, "{audit:#}");
    let warnings = result["warnings"].to_string();
    assert!(
        warnings.contains("client-bound") && warnings.contains("client_bound_lag_pct = 10 %"),
        "{warnings}"
    );
    // 100 requests sent 12 ms apart instead of 5: the last ~0.7 s late.
    let lag = samples(result, "dispatch_lag_ms");
    assert!(nearest_rank(&lag, 1.0) > 500.0, "{lag:?}");
    let from_send = samples(result, "ttft_from_send_ms");
    assert!(
        (nearest_rank(&from_send, 0.5) - nearest_rank(&injected, 0.5)).abs() < 2.0,
        "{from_send:?}"
    );
    assert!(nearest_rank(&samples(result, "ttft_ms"), 0.5) > 100.0);
}
