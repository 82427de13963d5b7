//! `campaign serve`: the model behind an OpenAI-compatible API, driven by
//! a standard client (curl, reading the server-sent events as they come).

use serial_test::parallel;

use super::fixture::*;

/// A tiny synthetic model with a vocabulary large enough for a tokenizer.
const SERVED: &str = r#"
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

/// A running `campaign serve`, stopped with SIGINT when dropped.
struct Served {
    child: std::process::Child,
    url: String,
}

impl Served {
    fn start(f: &Fixture, extra: &[&str]) -> Self {
        let campaign = f.campaign_raw(SERVED);
        let mut child = Command::new(assert_cmd::cargo::cargo_bin!("campaign"))
            .args(["serve", "--campaign"])
            .arg(&campaign)
            .arg("--out")
            .arg(f.out())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first stdout line: {first:?}"))
            .to_string();
        Self { child, url }
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
    fn stop(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status.code()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `data:` payloads of a server-sent event stream, in order.
fn sse_data(body: &str) -> Vec<String> {
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
