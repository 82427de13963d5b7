//! `campaign serve`: the model behind an OpenAI-compatible API, driven by
//! a standard client (curl, reading the server-sent events as they come).

use serial_test::parallel;

use super::fixture::*;

/// A tiny synthetic model with a vocabulary large enough for a tokenizer.
pub(crate) const SERVED: &str = r#"
name = "t"
[settings]
threads = 1
[models.default.synthetic]
seed = 5
vocab_size = 512
hidden_size = 64
intermediate_size = 128
num_hidden_layers = 2
num_attention_heads = 2
num_key_value_heads = 1
max_position_embeddings = 256
[[days]]
number = 1
title = "served"
[[days.benchmarks]]
name = "work"
kind = "planted_work"
"#;

/// A running `campaign serve`, killed when dropped.
pub(crate) struct Served {
    pub child: std::process::Child,
    pub url: String,
    /// The rest of stdout, after the `listening on` line.
    stdout: BufReader<std::process::ChildStdout>,
    /// Where its stderr goes.
    pub stderr: PathBuf,
}

impl Served {
    fn start(f: &Fixture, extra: &[&str]) -> Self {
        Self::launch(f, SERVED, extra, &[])
    }

    /// `campaign serve` on the campaign `text`, with `extra` arguments and
    /// `env` variables.
    pub fn launch(f: &Fixture, text: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let campaign = f.campaign_raw(text);
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stderr = f.path(&format!("serve-stderr-{n}.txt"));
        let mut child = Command::new(assert_cmd::cargo::cargo_bin!("campaign"))
            .args(["serve", "--campaign"])
            .arg(&campaign)
            .arg("--out")
            .arg(f.out())
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "first stdout line: {first:?}; stderr: {}",
                    fs::read_to_string(&stderr).unwrap_or_default()
                )
            })
            .to_string();
        Self {
            child,
            url,
            stdout,
            stderr,
        }
    }

    /// What the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap()
    }

    /// SIGINT, then the exit status and the rest of stdout.
    pub fn stop_with_stdout(mut self) -> (Option<i32>, String) {
        let mut rest = String::new();
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        );
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).unwrap();
        let status = self.child.wait().unwrap();
        (status.code(), rest)
    }

    /// `curl` with a JSON body; returns the HTTP status and the body.
    fn post(&self, path: &str, body: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args([
                "-sN",
                "-w",
                "\n%{http_code}",
                "-H",
                "content-type: application/json",
            ])
            .arg("-d")
            .arg(body)
            .arg(format!("{}{path}", self.url))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.parse().unwrap(), body.to_string())
    }

    fn get(&self, path: &str) -> Value {
        let out = Command::new("curl")
            .args(["-s", &format!("{}{path}", self.url)])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// SIGINT, then the exit status.
    pub fn stop(self) -> Option<i32> {
        self.stop_with_stdout().0
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `data:` payloads of a server-sent event stream, in order.
pub(crate) fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[test]
#[parallel]
fn curl_streams_a_chat_completion_and_the_server_logs_its_tokens() {
    let f = Fixture::new();
    let served = Served::start(&f, &[]);
    // A loopback address: nothing to warn about.
    assert!(!served.stderr().contains("warning"), "{}", served.stderr());

    let models = served.get("/v1/models");
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "default");

    let chat = r#"{"model":"default","messages":[{"role":"user","content":"Hello, who are you?"}],
        "max_tokens":7,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}"#;
    let (status, body) = served.post("/v1/chat/completions", chat);
    assert_eq!(status, 200, "{body}");
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{body}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-"));
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|r| !r.is_null())
        .collect();
    assert_eq!(finish, [&Value::from("length")]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 7, "{body}");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["prompt_tokens"].as_u64().unwrap() + 7)
    );

    // The same request without streaming: the same text (greedy decoding).
    let (status, whole) = served.post(
        "/v1/chat/completions",
        &chat.replace("\"stream\":true", "\"stream\":false"),
    );
    assert_eq!(status, 200, "{whole}");
    let whole: Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["message"]["content"], streamed.as_str());
    assert_eq!(whole["usage"]["completion_tokens"], 7);
    let server_first = whole["campaign_server_timing"]["first_token_ms"]
        .as_f64()
        .unwrap();
    assert!(server_first > 0.0, "{whole}");

    let (status, completion) = served.post(
        "/v1/completions",
        r#"{"model":"default","prompt":"The cache","max_tokens":3}"#,
    );
    assert_eq!(status, 200, "{completion}");
    let completion: Value = serde_json::from_str(&completion).unwrap();
    assert_eq!(completion["object"], "text_completion");
    let tokens = completion["usage"]["completion_tokens"].as_u64().unwrap();
    assert!((1..=3).contains(&tokens), "{completion}");

    // A prompt of token ids (exact lengths for benchmarks).
    let (status, ids) = served.post(
        "/v1/completions",
        r#"{"prompt":[5,6,7,8,9],"max_tokens":2,"ignore_eos":true}"#,
    );
    assert_eq!(status, 200, "{ids}");
    let ids: Value = serde_json::from_str(&ids).unwrap();
    assert_eq!(ids["usage"]["prompt_tokens"], 5);
    assert_eq!(ids["usage"]["completion_tokens"], 2);

    // Bad requests get OpenAI-shaped errors, and the server carries on.
    let (status, body) = served.post("/v1/chat/completions", r#"{"model":"gpt-4","messages":[]}"#);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("model_not_found"), "{body}");
    let (status, body) = served.post("/v1/completions", r#"{"prompt": 5}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_request_error"), "{body}");
    let (status, body) = served.post(
        "/v1/completions",
        r#"{"prompt":"too long","max_tokens":1000}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("context of 256 tokens"), "{body}");
    let (status, body) = served.post("/v1/completions", r#"{"prompt":[1,512]}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("token id 512 is outside"), "{body}");

    assert_eq!(served.stop(), Some(0), "SIGINT stops the server cleanly");

    // One log line per generation, with a server timestamp per token.
    let log = fs::read_to_string(f.out().join("t").join("serve_requests.jsonl")).unwrap();
    let records: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4, "{log}");
    assert_eq!(records[0]["stream"], true);
    assert_eq!(records[0]["endpoint"], "/v1/chat/completions");
    for r in &records {
        let times: Vec<f64> = r["token_ms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_f64().unwrap())
            .collect();
        assert_eq!(
            times.len() as u64,
            r["completion_tokens"].as_u64().unwrap(),
            "{r}"
        );
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{r}");
        assert_eq!(r["first_token_ms"].as_f64(), times.first().copied());
        assert!(r["queue_ms"].as_f64().unwrap() <= times[0], "{r}");
        assert!(
            r["finished_ms"].as_f64().unwrap() >= *times.last().unwrap(),
            "{r}"
        );
    }
}

#[test]
#[parallel]
fn an_address_in_use_is_a_clear_error() {
    let f = Fixture::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let campaign = f.campaign_raw(SERVED);
    cargo_bin_cmd!("campaign")
        .args(["serve", "--campaign"])
        .arg(&campaign)
        .arg("--out")
        .arg(f.out())
        .args(["--addr", &addr])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!("cannot listen on {addr}")));
}

/// A day that serves a small workload from `endpoint`.
fn endpoint_day(
    endpoint: &str,
    requests: u32,
    output_tokens: u32,
    iterations: u32,
    extra: &str,
) -> String {
    format!(
        r#"
[[days]]
number = 1
title = "served"
[[days.benchmarks]]
name = "served"
kind = "full_inference"
warmup = 0
iterations = {iterations}
[days.benchmarks.params]
endpoint = "{endpoint}"
requests = {requests}
prompt_tokens = {{ distribution = "fixed", tokens = 12 }}
output_tokens = {{ distribution = "fixed", tokens = {output_tokens} }}
concurrency = [1]
{extra}
"#
    )
}

/// The campaign of `SERVED` with its day replaced by `day`.
fn served_campaign(f: &Fixture, day: &str) -> PathBuf {
    let model = SERVED.split("[[days]]").next().unwrap();
    let path = f.path("client.toml");
    fs::write(&path, format!("{model}{day}")).unwrap();
    path
}

fn run_client(f: &Fixture, campaign: &Path) -> std::process::Output {
    Command::new(assert_cmd::cargo::cargo_bin!("campaign"))
        .args(["run", "--day", "1", "--no-profile", "--campaign"])
        .arg(campaign)
        .arg("--out")
        .arg(f.path("client-out"))
        .output()
        .unwrap()
}

/// [`run_client`], which must pass (exit 0).
fn run_client_ok(f: &Fixture, campaign: &Path) -> std::process::Output {
    let out = run_client(f, campaign);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn client_report(f: &Fixture) -> Value {
    let dir = f.path("client-out").join("t").join("daily_reports");
    let newest = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    serde_json::from_str(&fs::read_to_string(newest).unwrap()).unwrap()
}

fn samples(result: &Value, metric: &str) -> Vec<f64> {
    let mut v: Vec<f64> = result["metrics"][metric]["raw_samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no {metric} in {result:#}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

#[test]
#[parallel]
fn a_campaign_against_campaign_serve_sees_at_least_the_servers_first_token_time() {
    let f = Fixture::new();
    let served = Served::start(&f, &[]);
    // The same workload in-process too, after the served one: its twin.
    let twin = r#"
[[days.benchmarks]]
name = "in_process"
kind = "full_inference"
warmup = 0
iterations = 2
[days.benchmarks.params]
requests = 5
prompt_tokens = { distribution = "fixed", tokens = 12 }
output_tokens = { distribution = "fixed", tokens = 6 }
concurrency = [1]
"#;
    let day = endpoint_day(&format!("{}/v1", served.url), 5, 6, 2, "") + twin;
    let out = run_client_ok(&f, &served_campaign(&f, &day));
    assert_eq!(served.stop(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(
            "served vs in-process served[closed,concurrency=1] (in_process[closed,concurrency=1])"
        ),
        "{table}"
    );

    let report = client_report(&f);
    let result = &report["results"][0];
    assert_eq!(result["status"], "ok", "{result:#}");
    assert_eq!(result["metrics"]["error_rate_pct"]["summary"]["max"], 0.0);
    let client_ttft = samples(result, "ttft_ms");
    assert_eq!(client_ttft.len(), 10);
    // The server's own first-token times of the same ten requests. Each
    // request's client TTFT includes its server time, so the sorted lists
    // compare element by element.
    let log = fs::read_to_string(f.out().join("t").join("serve_requests.jsonl")).unwrap();
    let mut server_ttft: Vec<f64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["first_token_ms"]
                .as_f64()
                .unwrap()
        })
        .collect();
    server_ttft.sort_by(f64::total_cmp);
    assert_eq!(server_ttft.len(), 10, "{log}");
    for (client, server) in client_ttft.iter().zip(&server_ttft) {
        assert!(
            client >= server,
            "client {client_ttft:?} vs server {server_ttft:?}"
        );
    }
    // The server tells each client its first-token time: the same numbers
    // as its log, and the rest of the client's TTFT is never negative.
    assert_eq!(samples(result, "server_ttft_ms"), server_ttft);
    let transport = samples(result, "transport_client_ms");
    assert_eq!(transport.len(), 10);
    assert!(transport[0] >= 0.0, "{transport:?}");
    // ignore_eos: every request generated its 6 tokens. A chunk may carry
    // several (text held back until a character is whole), so there are at
    // most 5 gaps per request, and each is a positive time.
    for line in log.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        assert_eq!(record["completion_tokens"], 6, "{record}");
    }
    let itl = samples(result, "itl_ms");
    assert!(!itl.is_empty() && itl.len() <= 10 * 5, "{itl:?}");
    assert!(itl[0] > 0.0);
    assert_eq!(
        report["results"][0]["context"]["endpoint"]["api"],
        "completions"
    );

    // The report sets the served case beside its in-process twin.
    let parity = &report["parity"][0];
    let p50 = |r: &Value, m: &str| r["metrics"][m]["summary"]["p50"].as_f64().unwrap();
    let twin = &report["results"][1];
    assert_eq!(parity["in_process"], "in_process[closed,concurrency=1]");
    assert_eq!(
        parity["served_ttft_p50_ms"].as_f64(),
        Some(p50(result, "ttft_ms"))
    );
    assert_eq!(
        parity["in_process_ttft_p50_ms"].as_f64(),
        Some(p50(twin, "ttft_ms"))
    );
    // The report's numbers are rounded for JSON; the difference was taken
    // before rounding.
    let diff = parity["ttft_diff_ms"].as_f64().unwrap();
    assert!(
        (diff - (p50(result, "ttft_ms") - p50(twin, "ttft_ms"))).abs() < 1e-6,
        "{parity}"
    );
    assert_eq!(
        parity["server_ttft_p50_ms"].as_f64(),
        Some(p50(result, "server_ttft_ms"))
    );
    assert_eq!(report["parity"].as_array().unwrap().len(), 1);

    // The HTML page shows the same row, with the report's own figures.
    let html = fs::read_to_string(
        f.path("client-out")
            .join("t")
            .join("html")
            .join("day_1.html"),
    )
    .unwrap();
    let section = html
        .split("<h2>Served vs in-process</h2>")
        .nth(1)
        .unwrap_or_else(|| panic!("no parity section in the page"));
    let row = section.split("</table>").next().unwrap();
    for figure in [
        "served[closed,concurrency=1]".to_string(),
        "in_process[closed,concurrency=1]".to_string(),
        format!("{:+.3}", diff),
        format!("{:.3}", p50(result, "server_ttft_ms")),
    ] {
        assert!(row.contains(&figure), "{figure} not in {row}");
    }
}

#[test]
#[parallel]
fn killing_the_server_mid_run_counts_the_errors_writes_the_report_and_exits_4() {
    let f = Fixture::new();
    let served = Served::start(&f, &[]);
    let campaign = served_campaign(
        &f,
        &endpoint_day(&format!("{}/v1", served.url), 40, 48, 3, ""),
    );
    let client = Command::new(assert_cmd::cargo::cargo_bin!("campaign"))
        .args(["run", "--day", "1", "--no-profile", "--campaign"])
        .arg(&campaign)
        .arg("--out")
        .arg(f.path("client-out"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server (SIGKILL: no goodbye) once it has answered a few requests.
    let log = f.out().join("t").join("serve_requests.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while fs::read_to_string(&log).map_or(0, |t| t.lines().count()) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the server answered nothing"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(served);
    let out = client.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let report = client_report(&f);
    let result = &report["results"][0];
    assert_eq!(result["status"], "failed", "{result:#}");
    let error = result["error"].as_str().unwrap();
    assert!(error.contains("above the error budget of 0 %"), "{error}");
    let failed: f64 = ["errors_connect", "errors_cut_short"]
        .iter()
        .map(|m| {
            result["metrics"][*m]["raw_samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .sum::<f64>()
        })
        .sum();
    assert!(failed > 0.0, "{result:#}");
    // What was served before the kill is kept.
    assert!(!samples(result, "ttft_ms").is_empty());
}

/// A server that speaks just enough HTTP and SSE, and sends malformed event
/// data to every third request.
fn flaky_sse_stub() -> (String, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        for (n, stream) in listener.incoming().take(9).enumerate() {
            let mut stream = stream.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then as many body bytes as Content-Length says.
            loop {
                let read = stream.read(&mut buf).unwrap();
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
                        break;
                    }
                }
                assert!(read > 0, "client closed early");
            }
            let chunk = |t: &str| {
                format!(
                    "data: {{\"choices\":[{{\"index\":0,\"text\":\"{t}\",\"finish_reason\":null}}]}}\n\n"
                )
            };
            let mut body = String::from(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
            );
            body.push_str(&chunk("a"));
            if n % 3 == 2 {
                body.push_str("data: {\"choices\": [oops\n\n");
            }
            body.push_str(&chunk("b"));
            body.push_str("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":2,\"total_tokens\":14}}\n\n");
            body.push_str("data: [DONE]\n\n");
            let _ = stream.write_all(body.as_bytes());
        }
    });
    (url, handle)
}

#[test]
#[parallel]
fn malformed_sse_fails_only_the_requests_it_touches() {
    let f = Fixture::new();
    let (url, stub) = flaky_sse_stub();
    let campaign = served_campaign(&f, &endpoint_day(&url, 9, 2, 1, "error_budget_pct = 50"));
    let out = run_client(&f, &campaign);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stub.join().unwrap();
    let report = client_report(&f);
    let result = &report["results"][0];
    assert_eq!(result["status"], "ok", "{result:#}");
    assert_eq!(samples(result, "errors_malformed_sse"), [3.0]);
    assert_eq!(samples(result, "errors_cut_short"), [0.0]);
    let rate = samples(result, "error_rate_pct")[0];
    assert!((rate - 100.0 / 3.0).abs() < 1e-9, "{rate}");
    // The six good requests were measured: two tokens (from usage), one gap.
    assert_eq!(samples(result, "ttft_ms").len(), 6);
    assert_eq!(samples(result, "itl_ms").len(), 6);
    let warnings = result["warnings"].to_string();
    assert!(warnings.contains("3 of 9 requests failed"), "{warnings}");
    assert!(warnings.contains("malformed_sse 3"), "{warnings}");
}

#[test]
#[parallel]
fn scaling_and_endurance_drive_campaign_serve_as_they_drive_the_engine() {
    let f = Fixture::new();
    let served = Served::start(&f, &[]);
    let endpoint = format!("{}/v1", served.url);
    let pid = served.child.id();
    let day = format!(
        r#"
[[days]]
number = 1
title = "served levels and load"
[[days.benchmarks]]
name = "levels"
kind = "scaling"
warmup = 0
iterations = 1
[days.benchmarks.params]
endpoint = "{endpoint}"
requests = 3
prompt_tokens = 12
output_tokens = 4
concurrency = [1, 2]

[[days.benchmarks]]
name = "steady"
kind = "endurance"
warmup = 0
iterations = 3
[days.benchmarks.params]
endpoint = "{endpoint}"
api = "chat"
prompt_tokens = 12
output_tokens = 4
sample_interval_ms = 150
server_pid = {pid}
"#
    );
    run_client_ok(&f, &served_campaign(&f, &day));
    let server_rss_mib = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .map(|v| {
            v.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .unwrap()
                / 1024.0
        })
        .unwrap();
    assert_eq!(served.stop(), Some(0));

    let report = client_report(&f);
    let by_id = |id: &str| {
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["benchmark_name"] == id)
            .unwrap_or_else(|| panic!("no {id} in {report:#}"))
            .clone()
    };
    for level in [1, 2] {
        let r = by_id(&format!("levels[concurrency={level}]"));
        assert_eq!(r["status"], "ok", "{r:#}");
        assert_eq!(r["parameters"]["level"], level);
        assert_eq!(r["parameters"]["dimension"], "concurrency");
        assert_eq!(samples(&r, "e2e_ms").len(), 3);
        assert_eq!(samples(&r, "server_ttft_ms").len(), 3);
    }
    let steady = by_id("steady[interval=150ms]");
    assert_eq!(steady["status"], "ok", "{steady:#}");
    assert_eq!(
        steady["context"]["memory_of"],
        format!("the server, pid {pid}")
    );
    assert_eq!(steady["metrics"]["error_rate_pct"]["summary"]["max"], 0.0);
    // The RSS sampled is the server's (which holds the model), not ours.
    let rss = samples(&steady, "rss_mib");
    assert_eq!(rss.len(), 3);
    for sample in &rss {
        assert!(
            (sample - server_rss_mib).abs() <= 0.25 * server_rss_mib,
            "{rss:?} vs the server's {server_rss_mib} MiB"
        );
    }
    // Every request the client counted reached the server, and no other.
    let steady_requests = samples(&steady, "e2e_ms").len();
    let log = fs::read_to_string(f.out().join("t").join("serve_requests.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2 * 3 + steady_requests, "{log}");

    // A server batches by itself: batch sizes are refused with an endpoint.
    let refused = day.replace("concurrency = [1, 2]", "batch_sizes = [2]");
    let campaign = served_campaign(&f, &refused);
    let out = run_client(&f, &campaign);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("params.batch_sizes") && stderr.contains("batches requests itself"),
        "{stderr}"
    );
}

/// The `tokenizer.json` of the model `campaign serve` built in the results
/// folder: all an endpoint target needs of the served model.
fn served_tokenizer(f: &Fixture) -> PathBuf {
    fn find(dir: &Path) -> Option<PathBuf> {
        for entry in fs::read_dir(dir).ok()? {
            let path = entry.ok()?.path();
            if path.is_dir() {
                if let Some(found) = find(&path) {
                    return Some(found);
                }
            } else if path.file_name().is_some_and(|n| n == "tokenizer.json") {
                return Some(path);
            }
        }
        None
    }
    find(&f.out()).unwrap_or_else(|| panic!("no tokenizer.json under {}", f.out().display()))
}

#[test]
#[parallel]
fn an_endpoint_target_needs_no_local_weights_a_tokenizer_file_or_the_servers_counts() {
    let f = Fixture::new();
    let served = Served::start(&f, &[]);
    let endpoint = format!("{}/v1", served.url);
    let tokenizer = served_tokenizer(&f);
    fs::write(
        f.path("prompts.jsonl"),
        "{\"text\": \"The cache holds the keys and the values of every layer\"}\n{\"text\": \"Hello, who are you?\"}\n",
    )
    .unwrap();
    // No [models] at all: a tokenizer file writes token-id prompts of exact
    // lengths; without one, prompt lines are sent whole as text and the
    // server counts them, through both APIs.
    let campaign = f.path("client.toml");
    fs::write(
        &campaign,
        format!(
            r#"name = "t"
[settings]
threads = 1
[[days]]
number = 1
title = "no local weights"
[[days.benchmarks]]
name = "by_tokenizer"
kind = "full_inference"
warmup = 0
iterations = 1
[days.benchmarks.params]
endpoint = "{endpoint}"
served_model = "default"
tokenizer = "{tokenizer}"
requests = 3
prompt_tokens = {{ distribution = "fixed", tokens = 12 }}
output_tokens = {{ distribution = "fixed", tokens = 4 }}
concurrency = [1]

[[days.benchmarks]]
name = "by_server"
kind = "full_inference"
warmup = 0
iterations = 1
[days.benchmarks.params]
endpoint = "{endpoint}"
served_model = "default"
prompts = {{ file = "prompts.jsonl" }}
requests = 4
output_tokens = {{ distribution = "fixed", tokens = 4 }}
concurrency = [1]

[[days.benchmarks]]
name = "chat_by_server"
kind = "scaling"
warmup = 0
iterations = 1
[days.benchmarks.params]
endpoint = "{endpoint}"
api = "chat"
served_model = "default"
prompts = {{ file = "prompts.jsonl" }}
requests = 2
output_tokens = 3
concurrency = [1]
"#,
            tokenizer = tokenizer.display()
        ),
    )
    .unwrap();
    run_client_ok(&f, &campaign);
    assert_eq!(served.stop(), Some(0));
    let log: Vec<Value> = fs::read_to_string(f.out().join("t").join("serve_requests.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(log.len(), 3 + 4 + 2);
    let report = client_report(&f);
    let by_name = |name: &str| {
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["benchmark"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report:#}"))
            .clone()
    };
    let tokens_per_request =
        |r: &Value| samples(r, "output_tokens_per_s")[0] / samples(r, "requests_per_s")[0];

    let by_tokenizer = by_name("by_tokenizer");
    assert_eq!(by_tokenizer["status"], "ok", "{by_tokenizer:#}");
    assert_eq!(
        by_tokenizer["context"]["tokenizer"],
        tokenizer.display().to_string()
    );
    // No model was loaded here: no load time, and the exact lengths asked.
    assert!(by_tokenizer["setup"].get("model_load_ms").is_none());
    assert_eq!(samples(&by_tokenizer, "server_prompt_tokens"), [12.0; 3]);
    assert!((tokens_per_request(&by_tokenizer) - 4.0).abs() < 1e-9);
    assert_eq!(samples(&by_tokenizer, "short_responses"), [0.0]);
    for record in &log[..3] {
        assert_eq!(record["prompt_tokens"], 12, "{record}");
    }

    // Text sent whole: its length is the server's count, request by request.
    let by_server = by_name("by_server");
    assert_eq!(by_server["status"], "ok", "{by_server:#}");
    assert!(
        by_server["context"]["prompts"]["source"]
            .as_str()
            .unwrap()
            .contains("sent whole"),
        "{by_server:#}"
    );
    let mut counted = samples(&by_server, "server_prompt_tokens");
    let mut logged: Vec<f64> = log[3..7]
        .iter()
        .map(|r| r["prompt_tokens"].as_f64().unwrap())
        .collect();
    counted.sort_by(f64::total_cmp);
    logged.sort_by(f64::total_cmp);
    assert_eq!(counted, logged);
    assert!(
        counted[0] < counted[3],
        "two prompts of two lengths: {counted:?}"
    );
    assert!((tokens_per_request(&by_server) - 4.0).abs() < 1e-9);
    assert!(
        by_server["warnings"].as_array().unwrap().is_empty(),
        "{by_server:#}"
    );

    let chat = by_name("chat_by_server");
    assert_eq!(chat["status"], "ok", "{chat:#}");
    assert_eq!(samples(&chat, "server_prompt_tokens").len(), 2);
    assert!((tokens_per_request(&chat) - 3.0).abs() < 1e-9);
    for record in &log[7..] {
        assert_eq!(record["endpoint"], "/v1/chat/completions", "{record}");
        assert_eq!(record["completion_tokens"], 3, "{record}");
    }
}

/// A remedy that serves from another endpoint gets a quality verdict
/// beside its speed: `campaign experiment` sends the fixed prompts to both
/// servers, greedy. A server whose model flips a planted 30 % of its
/// tokens is judged lost; a twin of the untoggled server holds, its
/// outputs and token counts equal.
#[test]
#[parallel]
fn a_served_remedy_is_judged_for_quality_against_the_untoggled_server() {
    let f = Fixture::new();
    let reference = Served::start(&f, &[]);
    let twin = Served::start(&f, &[]);
    let flipped_campaign = SERVED.replace(
        "[models.default.synthetic]",
        "[models.default]\nplanted_token_flip_pct = 30\n[models.default.synthetic]",
    );
    let flipped = Served::launch(&f, &flipped_campaign, &[], &[]);
    let campaign = served_campaign(
        &f,
        &endpoint_day(&format!("{}/v1", reference.url), 2, 4, 1, ""),
    );
    let remedy = |name: &str, url: &str| {
        format!(
            "[[remedy]]\nfunction_contains = \"nothing_profiled\"\nremedy = \"{name}\"\nspeedup = [1.1, 1.2]\neffort_days = 1\nrisk = \"low\"\nsource = \"test\"\ntoggle = {{ param = \"endpoint\", value = \"{url}/v1\", benchmarks = [\"served\"] }}\n"
        )
    };
    fs::write(
        f.path("remedies.toml"),
        remedy("Serve from the twin", &twin.url) + &remedy("Serve from the flipped", &flipped.url),
    )
    .unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin!("campaign"))
        .args(["experiment", "--remedy", "Serve from", "--campaign"])
        .arg(&campaign)
        .arg("--out")
        .arg(f.path("client-out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let file: Value = serde_json::from_slice(
        &fs::read(f.path("client-out").join("t").join("experiments.json")).unwrap(),
    )
    .unwrap();
    let quality = |remedy: &str| -> Value {
        let e = file["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["remedy"] == remedy)
            .unwrap_or_else(|| panic!("no {remedy} in {file:#}"));
        let q = e["quality"].as_array().unwrap();
        assert_eq!(q.len(), 1, "{e:#}");
        q[0].clone()
    };
    let twin_q = quality("Serve from the twin");
    assert_eq!(twin_q["state"], "holds", "{twin_q:#}");
    assert_eq!(twin_q["token_agreement"], 1.0);
    assert_eq!(twin_q["prompts"], 128);
    assert_eq!(twin_q["mean_kl"], Value::Null);
    let served = &twin_q["served"];
    assert_eq!(served["benchmark"], "served");
    assert_eq!(served["prompts_of_other_length"], 0);
    assert_eq!(
        served["reference_output_tokens_mean"],
        served["candidate_output_tokens_mean"]
    );
    let flipped_q = quality("Serve from the flipped");
    assert_eq!(flipped_q["state"], "lost", "{flipped_q:#}");
    assert!(flipped_q["token_agreement"].as_f64().unwrap() < 0.9);
    assert!(stderr.contains("128 prompts served"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("served (served): quality lost"), "{stdout}");
}

/// P(wait > t) of an M/M/c queue at arrival rate `rate` (Erlang C).
fn erlang_wait_exceeds(slots: usize, service_s: f64, rate: f64, t: f64) -> f64 {
    let (c, mu) = (slots as f64, 1.0 / service_s);
    let a = rate / mu;
    if a >= c {
        return 1.0;
    }
    let (mut term, mut sum) = (1.0, 0.0);
    for k in 0..slots {
        if k > 0 {
            term *= a / k as f64;
        }
        sum += term;
    }
    let last = term * a / c / (1.0 - a / c);
    last / (sum + last) * (-(c * mu - rate) * t).exp()
}

/// `campaign serve --simulate-slots 4 --simulate-service-ms 20` is an
/// M/M/4 queue of known capacity under "p99 TTFT ≤ 50 ms" (Erlang C:
/// 129.0 requests/s); a `capacity` day against it over real HTTP, with
/// 800 requests a probe at most, finds it within 15 % in at most 8
/// probes, and its report holds every probe.
#[test]
#[serial_test::serial]
fn capacity_against_a_simulated_server_finds_its_known_capacity() {
    let f = Fixture::new();
    let served = Served::launch(
        &f,
        SERVED,
        &[
            "--simulate-slots",
            "4",
            "--simulate-service-ms",
            "20",
            "--simulate-seed",
            "3",
            "--max-queue",
            "1024",
        ],
        &[],
    );
    assert!(served.stderr().contains("a simulated service (4 at once"));
    let day = format!(
        r#"
[[days]]
number = 1
title = "capacity"
[[days.benchmarks]]
name = "capacity"
kind = "capacity"
warmup = 0
iterations = 1
[days.benchmarks.params]
endpoint = "{}/v1"
prompt_tokens = 12
output_tokens = 4
ttft_slo_ms = 50
max_requests = 800
"#,
        served.url
    );
    let campaign = served_campaign(&f, &day);
    let out = run_client_ok(&f, &campaign);
    let report = client_report(&f);
    let result = &report["results"][0];
    let capacity = samples(result, "capacity_requests_per_s")[0];
    let (mut lo, mut hi) = (1.0, 199.0);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if erlang_wait_exceeds(4, 0.020, mid, 0.050) > 0.01 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let truth = lo;
    let found = &result["conclusion"]["capacity"];
    assert!(
        (capacity / truth - 1.0).abs() < 0.15,
        "capacity {capacity:.1}/s, truth {truth:.1}/s: {found:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probes = samples(result, "capacity_probes")[0];
    assert!(probes <= 8.0, "{found:#}");
    assert_eq!(
        found["probes"].as_array().unwrap().len() + 1,
        probes as usize,
        "{found:#}"
    );
    let saturation = samples(result, "saturation_requests_per_s")[0];
    assert!((150.0..=210.0).contains(&saturation), "{saturation}");
    println!(
        "capacity {capacity:.1}/s (truth {truth:.1}/s), interval {}–{}, {probes} probes, {:.1} s",
        found["result"]["interval_per_s"][0],
        found["result"]["interval_per_s"][1],
        samples(result, "capacity_search_s")[0]
    );
    served.stop();
}

/// A result's `conclusion` findings.
fn findings(result: &Value) -> &Value {
    &result["conclusion"]
}

#[test]
#[parallel]
fn shaped_traffic_against_campaign_serve_confirms_the_reuse_its_workload_allows() {
    let f = Fixture::new();
    let served = Served::start(&f, &["--prefix-cache-mib", "1024"]);
    // The banner follows the address line on stdout: wait for it.
    let banner = (0..200)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            served.stderr()
        })
        .find(|e| e.contains("serving model"))
        .unwrap_or_else(|| served.stderr());
    assert!(
        banner.contains("a prefix cache of 1024 MiB in blocks of 16 tokens"),
        "{banner}"
    );
    let trace = f.path("trace.jsonl");
    fs::write(
        &trace,
        concat!(
            "{\"timestamp\": 0, \"input_length\": 40, \"output_length\": 3, \"hash_ids\": [1, 2, 3]}\n",
            "{\"timestamp\": 200, \"input_length\": 40, \"output_length\": 3, \"hash_ids\": [1, 2, 4]}\n",
            "{\"timestamp\": 100, \"input_length\": 20, \"output_length\": 2, \"hash_ids\": [9, 8]}\n",
        ),
    )
    .unwrap();
    let day = format!(
        r#"
[[days]]
number = 1
title = "shaped"
[[days.benchmarks]]
name = "groups"
kind = "full_inference"
warmup = 1
iterations = 2
[days.benchmarks.params]
endpoint = "{url}/v1"
prompt_tokens = 12
output_tokens = 4
concurrency = [1]
traffic = {{ shape = "shared_prefix", groups = 2, prompts_per_group = 4, system_prompt_tokens = 64 }}
[[days.benchmarks]]
name = "conversations"
kind = "full_inference"
warmup = 0
iterations = 1
[days.benchmarks.params]
endpoint = "{url}/v1"
prompt_tokens = 12
output_tokens = 4
concurrency = [2]
traffic = {{ shape = "multi_turn", users = 2, turns = 3, think_s = 0.05 }}
[[days.benchmarks]]
name = "conversations_in_process"
kind = "full_inference"
warmup = 0
iterations = 1
[days.benchmarks.params]
prompt_tokens = 12
output_tokens = 4
rates_per_s = [50]
traffic = {{ shape = "multi_turn", users = 2, turns = 3, think_s = 0.05 }}
[[days.benchmarks]]
name = "replay"
kind = "full_inference"
warmup = 0
iterations = 1
[days.benchmarks.params]
endpoint = "{url}/v1"
traffic = {{ shape = "trace", file = "{trace}", speedup = 2, block_tokens = 16 }}
"#,
        url = served.url,
        trace = trace.display()
    );
    let campaign = served_campaign(&f, &day);
    let out = run_client_ok(&f, &campaign);
    let report = client_report(&f);
    let results = report["results"].as_array().unwrap();
    let case = |label: &str| {
        results
            .iter()
            .find(|r| {
                r["benchmark_name"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("[{label}]"))
            })
            .unwrap_or_else(|| {
                panic!(
                    "no case {label}: {:?}\n{}",
                    results
                        .iter()
                        .map(|r| &r["benchmark_name"])
                        .collect::<Vec<_>>(),
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    };

    // Two groups of four behind 64 system tokens, 12 of their own: the
    // first of each group computes its prompt, the other three resume
    // from the 64 (4 blocks of 16; the last token is always computed).
    let shared = case("shared_prefix(2x4,system=64),closed,concurrency=1");
    let reuse = &findings(shared)["prefix_reuse"];
    assert_eq!(reuse["workload"]["prompt_tokens"], 8 * 76, "{reuse:#}");
    assert_eq!(
        reuse["workload"]["ideal_cached_tokens"],
        6 * 64,
        "{reuse:#}"
    );
    // Each iteration's prompts are new to the server: the warm-up's blocks
    // are not found again, so the server confirms exactly the ideal.
    assert_eq!(reuse["confirmed"]["cached_tokens"], 2 * 6 * 64, "{reuse:#}");
    let ideal = reuse["workload"]["ideal_hit_pct"].as_f64().unwrap();
    for hit in samples(shared, "prefix_hit_pct") {
        assert!((hit - ideal).abs() < 1e-9, "{hit} vs {ideal}");
    }
    let twin = case("shared_prefix(2x4,system=64),closed,concurrency=1,unshared");
    assert_eq!(
        findings(twin)["prefix_reuse"]["confirmed"]["cached_tokens"],
        0
    );
    assert_eq!(samples(twin, "prefix_hit_pct"), [0.0, 0.0]);
    let gained = &findings(twin)["prefix_reuse"]["ttft_gained"];
    assert_eq!(gained["shared_requests"], 16, "{gained:#}");
    assert_eq!(gained["unshared_requests"], 16, "{gained:#}");

    // Two users, three turns: prompts of 12, 28 and 44 tokens (each turn
    // the last prompt, its 4-token answer and 12 new); the third turn
    // resumes from the second's first block.
    let talk = case("multi_turn(2x3,think=0.05s),closed,concurrency=2");
    let reuse = &findings(talk)["prefix_reuse"];
    assert_eq!(
        reuse["workload"]["prompt_tokens"],
        2 * (12 + 28 + 44),
        "{reuse:#}"
    );
    assert_eq!(
        reuse["workload"]["ideal_cached_tokens"],
        2 * 16,
        "{reuse:#}"
    );
    assert_eq!(reuse["confirmed"]["cached_tokens"], 2 * 16, "{reuse:#}");
    for name in [
        "multi_turn(2x3,think=0.05s),closed,concurrency=2",
        "multi_turn(2x3,think=0.05s),open,rate=50/s",
    ] {
        let timeline = &findings(case(name))["timeline"]["requests"];
        let by_index: std::collections::BTreeMap<u64, &Value> = timeline
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["index"].as_u64().unwrap(), r))
            .collect();
        assert_eq!(by_index.len(), 6, "{timeline:#}");
        // Turn t of user u is request 2t + u: due 50 ms after the turn
        // before it finished.
        for i in 2..6u64 {
            let (this, before) = (by_index[&i], by_index[&(i - 2)]);
            let due = this["scheduled_ms"].as_f64().unwrap();
            let finished = before["finish_ms"].as_f64().unwrap();
            assert!(
                due >= finished + 50.0 - 1e-6,
                "{name}: request {i} due at {due} ms, its previous turn finished at {finished} ms"
            );
            assert!(this["sent_ms"].as_f64().unwrap() >= due);
        }
    }

    // In-process, no prefix is cached: no twin runs, the ideal is given.
    assert!(!results.iter().any(|r| r["benchmark_name"]
        == "conversations_in_process[multi_turn(2x3,think=0.05s),open,rate=50/s,unshared]"));
    let local = case("multi_turn(2x3,think=0.05s),open,rate=50/s");
    assert_eq!(
        findings(local)["prefix_reuse"]["confirmed"],
        "in-process: the engine caches no prefix"
    );
    assert_eq!(
        findings(local)["prefix_reuse"]["workload"]["ideal_cached_tokens"],
        2 * 16
    );

    // The trace, in time order at twice its speed: the 40-token prompts
    // share hashes 1 and 2 (32 tokens, 2 blocks of 16).
    let replay = case("trace(speedup=2),concurrency=4");
    let reuse = &findings(replay)["prefix_reuse"];
    assert_eq!(reuse["workload"]["prompt_tokens"], 100, "{reuse:#}");
    assert_eq!(reuse["workload"]["ideal_cached_tokens"], 32, "{reuse:#}");
    assert_eq!(reuse["confirmed"]["cached_tokens"], 32, "{reuse:#}");
    let scheduled: Vec<f64> = findings(replay)["timeline"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["scheduled_ms"].as_f64().unwrap())
        .collect();
    assert_eq!(scheduled.len(), 3);
    for (at, want) in scheduled.iter().zip([0.0, 50.0, 100.0]) {
        assert!((at - want).abs() < 1e-6, "{scheduled:?}");
    }
    served.stop();
}

#[test]
#[parallel]
fn shaped_traffic_over_chat_is_refused_at_its_key() {
    let f = Fixture::new();
    let day = endpoint_day(
        "http://127.0.0.1:9/v1",
        4,
        4,
        1,
        "api = \"chat\"\ntraffic = { shape = \"multi_turn\", users = 2, turns = 2 }",
    )
    .replace("requests = 4\n", "");
    let campaign = served_campaign(&f, &day);
    let out = Command::new(assert_cmd::cargo::cargo_bin!("campaign"))
        .arg("validate")
        .arg(&campaign)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("field `params.api`")
            && stderr.contains("allowed with traffic: api = \"completions\""),
        "{stderr}"
    );
}
