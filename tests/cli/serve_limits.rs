//! `campaign serve` facing clients it should not trust: an address other
//! machines can reach, the API key, the bound on the queue and on the
//! wait, and the size of a body. Every request is real HTTP to a real
//! `campaign serve`: curl, the crate's own endpoint client (reqwest), and
//! a raw HTTP/1.1 client where a test must hold a request at a known point.
//!
//! No test depends on the speed of generation except through one margin
//! (the two that do are serial):
//! a 4090-token generation (seconds here; 0.6 s per 1000 tokens at a
//! 1024-token context on this 2-core machine) outlasts the few steps of
//! under half a second a test takes while it runs. The queue bound itself
//! is tested with requests whose bodies are withheld: the server has
//! admitted such a request once it asks for the body (`100 Continue`),
//! and it keeps its place until the body comes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serial_test::{parallel, serial};

use super::fixture::*;
use super::serve::{SERVED, Served, sse_data};

const KEY_VAR: &str = "CAMPAIGN_SERVE_TEST_KEY";
const KEY: &str = "sk-campaign-7f3a9c1e5b2d";

/// `SERVED` with a 4096-token context, for generations that keep the
/// engine busy for seconds.
fn long_context() -> String {
    SERVED.replace(
        "max_position_embeddings = 256",
        "max_position_embeddings = 4096",
    )
}

/// An HTTP response.
struct Reply {
    status: u16,
    /// Names in lower case.
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// Checks the status and OpenAI's error shape (`message`, `type`,
    /// `param`, `code`, nothing else); returns the message.
    fn error(&self, status: u16, kind: &str, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        let body = self.json();
        let error = body["error"]
            .as_object()
            .unwrap_or_else(|| panic!("{body}"));
        let mut fields: Vec<&str> = error.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["code", "message", "param", "type"], "{body}");
        assert_eq!(error["type"], kind, "{body}");
        assert_eq!(error["code"], code, "{body}");
        assert!(error["param"].is_null(), "{body}");
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{body}"
        );
        error["message"].as_str().unwrap().to_string()
    }
}

/// An HTTP/1.1 response as curl `-i` prints it or as it came off the
/// wire, after any `100 Continue`.
fn parse_reply(raw: &str) -> Reply {
    final_reply(raw).unwrap_or_else(|| panic!("no HTTP response in {raw:?}"))
}

/// The response after any `100 Continue`, if one came whole enough to
/// have its head.
fn final_reply(raw: &str) -> Option<Reply> {
    let mut rest = raw;
    loop {
        let (head, body) = rest.split_once("\r\n\r\n")?;
        if head.starts_with("HTTP/1.1 100") {
            rest = body;
            continue;
        }
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        return Some(Reply {
            status,
            headers,
            body: body.to_string(),
        });
    }
}

/// curl: status, headers and body.
fn curl(url: &str, args: &[&str]) -> Reply {
    let out = Command::new("curl")
        .args(["-sS", "-N", "-i"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    parse_reply(&String::from_utf8_lossy(&out.stdout))
}

/// POSTs a JSON body with extra headers.
fn post(served: &Served, path: &str, body: &str, headers: &[&str]) -> Reply {
    let mut args = vec!["-H", "content-type: application/json", "-d", body];
    for header in headers {
        args.extend(["-H", header]);
    }
    curl(&format!("{}{path}", served.url), &args)
}

fn get(served: &Served, path: &str, headers: &[&str]) -> Reply {
    let mut args = Vec::new();
    for header in headers {
        args.extend(["-H", *header]);
    }
    curl(&format!("{}{path}", served.url), &args)
}

/// A request whose body is withheld: its headers are sent with
/// `Expect: 100-continue`, and it is returned once the server asks for
/// the body, that is once it has admitted the request.
struct Held {
    stream: TcpStream,
    body: String,
}

fn hold(served: &Served, path: &str, body: &str) -> Held {
    let addr = served.url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed after {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(
        head.starts_with("HTTP/1.1 100"),
        "the server answered instead of asking for the body: {head}"
    );
    Held {
        stream,
        body: body.to_string(),
    }
}

impl Held {
    /// Sends the body; the response.
    fn send(mut self) -> Reply {
        self.stream.write_all(self.body.as_bytes()).unwrap();
        self.reply()
    }

    /// The response, the body still withheld.
    fn reply(mut self) -> Reply {
        let mut raw = Vec::new();
        self.stream.read_to_end(&mut raw).unwrap();
        parse_reply(&String::from_utf8_lossy(&raw))
    }
}

/// A long streamed generation (curl), running on the engine once
/// [`start_long_stream`] returns: its first chunk has arrived.
struct Running {
    child: std::process::Child,
    /// Kept open: curl dies of SIGPIPE when its stdout is closed.
    _stdout: BufReader<std::process::ChildStdout>,
}

fn start_long_stream(served: &Served, max_tokens: usize) -> Running {
    let body = format!(
        r#"{{"prompt":[1,2,3],"max_tokens":{max_tokens},"ignore_eos":true,"stream":true}}"#
    );
    let mut child = Command::new("curl")
        .args(["-sN", "-H", "content-type: application/json", "-d", &body])
        .arg(format!("{}/v1/completions", served.url))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("data: {") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "no chunk came");
    }
    Running {
        child,
        _stdout: stdout,
    }
}

impl Running {
    /// Kills the client: the server stops the generation at its next token.
    fn hang_up(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn records(f: &Fixture) -> Vec<Value> {
    fs::read_to_string(f.out().join("t").join("serve_requests.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Polls `done` every 20 ms, for at most 30 s.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "still waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[parallel]
fn a_non_loopback_address_is_warned_about_and_bad_flags_are_refused() {
    let f = Fixture::new();
    let served = Served::launch(&f, SERVED, &["--addr", "0.0.0.0:0"], &[]);
    let port = served.url.rsplit(':').next().unwrap().to_string();
    let stderr = served.stderr();
    assert!(
        stderr.contains(&format!("warning: serving on 0.0.0.0:{port}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("anyone who can reach this port can use the model"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--api-key-env VAR") && stderr.contains("bind 127.0.0.1"),
        "{stderr}"
    );
    // The warning comes before the server answers anything.
    let health = curl(&format!("http://127.0.0.1:{port}/health"), &[]);
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(served.stop(), Some(0));

    // `localhost` is loopback: nothing to warn about.
    let local = Served::launch(&f, SERVED, &["--addr", "localhost:0"], &[]);
    assert!(local.url.starts_with("http://127.0.0.1:"), "{}", local.url);
    assert_eq!(get(&local, "/health", &[]).status, 200);
    assert!(!local.stderr().contains("warning"), "{}", local.stderr());
    assert_eq!(local.stop(), Some(0));

    // Flags out of their range: exit 2, with what is allowed.
    let campaign = f.campaign_raw(SERVED);
    for (flag, value, allowed) in [
        (
            "--max-queue",
            "1025",
            "allowed: a whole number of queued requests from 0 to 1024",
        ),
        (
            "--max-queue",
            "-1",
            "allowed: a whole number of queued requests from 0 to 1024",
        ),
        (
            "--max-wait-s",
            "0",
            "allowed: a number of seconds from 0.001 to 604800",
        ),
        (
            "--max-wait-s",
            "inf",
            "allowed: a number of seconds from 0.001 to 604800",
        ),
        ("--addr", "example.com:80", "allowed: IP:PORT"),
    ] {
        cargo_bin_cmd!("campaign")
            .args(["serve", "--campaign"])
            .arg(&campaign)
            .arg("--out")
            .arg(f.out())
            .arg(format!("{flag}={value}"))
            .assert()
            .code(2)
            .stderr(predicate::str::contains(allowed));
    }
}

#[test]
#[parallel]
fn an_api_key_guards_every_route_but_health_and_is_never_written() {
    let f = Fixture::new();
    let served = Served::launch(&f, SERVED, &["--api-key-env", KEY_VAR], &[(KEY_VAR, KEY)]);
    let chat = r#"{"messages":[{"role":"user","content":"Hello"}],"max_tokens":5,
        "ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}"#;
    let completion = r#"{"prompt":[5,6,7],"max_tokens":2,"ignore_eos":true}"#;

    // No key: 401 in OpenAI's shape, on every route (unknown ones too, so
    // a stranger learns nothing) but /health.
    for (path, body) in [
        ("/v1/chat/completions", Some(chat)),
        ("/v1/completions", Some(completion)),
        ("/v1/models", None),
        ("/v1/embeddings", None),
    ] {
        let reply = match body {
            Some(body) => post(&served, path, body, &[]),
            None => get(&served, path, &[]),
        };
        let message = reply.error(401, "invalid_request_error", "invalid_api_key");
        assert!(
            message.contains("no API key") && message.contains("Authorization: Bearer KEY"),
            "{path}: {message}"
        );
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{path}");
    }
    let health = get(&served, "/health", &[]);
    assert_eq!(
        (health.status, health.json()["status"].clone()),
        (200, "ok".into())
    );

    // A wrong key (one character more or fewer too), another scheme, a
    // bearer without a key: 401, and neither key is echoed.
    let longer = format!("authorization: Bearer {KEY}x");
    let shorter = format!("authorization: Bearer {}", &KEY[..KEY.len() - 1]);
    for (header, says) in [
        ("authorization: Bearer sk-wrong-key", "not valid"),
        (longer.as_str(), "not valid"),
        (shorter.as_str(), "not valid"),
        ("authorization: Basic dXNlcjpwYXNz", "not `Bearer KEY`"),
        ("authorization: Bearer", "no key after it"),
    ] {
        let reply = post(&served, "/v1/completions", completion, &[header]);
        let message = reply.error(401, "invalid_request_error", "invalid_api_key");
        assert!(message.contains(says), "{header}: {message}");
        assert!(!reply.body.contains("sk-"), "{header}: {}", reply.body);
    }

    // The key: a streamed chat completion, whole, and the scheme in any case.
    let auth = format!("authorization: Bearer {KEY}");
    let reply = post(&served, "/v1/chat/completions", chat, &[&auth]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let data = sse_data(&reply.body);
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "{}",
        reply.body
    );
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 5, "{usage}");
    let lower = format!("authorization: bearer {KEY}");
    let reply = post(&served, "/v1/completions", completion, &[&lower]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(get(&served, "/v1/models", &[&auth]).status, 200);

    // The crate's own endpoint client (reqwest), given the variable, is let in.
    let client = f.path("client.toml");
    let model = SERVED.split("[[days]]").next().unwrap();
    fs::write(
        &client,
        format!(
            r#"{model}
[[days]]
number = 1
title = "keyed"
[[days.benchmarks]]
name = "keyed"
kind = "full_inference"
warmup = 0
iterations = 1
[days.benchmarks.params]
endpoint = "{}/v1"
api_key_env = "{KEY_VAR}"
requests = 3
prompt_tokens = {{ distribution = "fixed", tokens = 12 }}
output_tokens = {{ distribution = "fixed", tokens = 4 }}
concurrency = [1]
"#,
            served.url
        ),
    )
    .unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin!("campaign"))
        .args(["run", "--day", "1", "--no-profile", "--campaign"])
        .arg(&client)
        .arg("--out")
        .arg(f.path("client-out"))
        .env(KEY_VAR, KEY)
        .output()
        .unwrap();
    let client_stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{client_stderr}");

    let server_stderr = served.stderr();
    assert!(
        server_stderr.contains(&format!("API key required (from {KEY_VAR})")),
        "{server_stderr}"
    );
    let (code, stdout) = served.stop_with_stdout();
    assert_eq!(code, Some(0));
    // Only the requests that held the key reached the log.
    assert_eq!(records(&f).len(), 2 + 3);

    // The key is nowhere: the server's stdout and stderr, the client's,
    // and every file either wrote (request log, reports, models).
    for (what, text) in [
        ("server stdout", stdout),
        ("server stderr", server_stderr),
        (
            "client stdout",
            String::from_utf8_lossy(&out.stdout).to_string(),
        ),
        ("client stderr", client_stderr),
    ] {
        assert!(!text.contains(KEY), "the key is in the {what}: {text}");
    }
    let mut dirs = vec![f.path("")];
    let mut files = 0;
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files += 1;
                let bytes = fs::read(&path).unwrap();
                assert!(
                    !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
                    "the key is in {}",
                    path.display()
                );
            }
        }
    }
    assert!(files > 5, "{files}");

    // A variable that is missing, empty or holds no sendable key: exit 2,
    // naming the variable and never quoting its value.
    let campaign = f.campaign_raw(SERVED);
    for (value, says) in [
        (None, format!("the variable {KEY_VAR} is not set")),
        (Some(""), "the key is empty".to_string()),
        (
            Some("sk-two words"),
            "character 7 of the key cannot be sent".to_string(),
        ),
    ] {
        let mut command = cargo_bin_cmd!("campaign");
        command
            .args(["serve", "--campaign"])
            .arg(&campaign)
            .arg("--out")
            .arg(f.out())
            .args(["--api-key-env", KEY_VAR]);
        match value {
            Some(value) => command.env(KEY_VAR, value),
            None => command.env_remove(KEY_VAR),
        };
        let assert = command.assert().code(2);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
        assert!(
            stderr.contains(&format!("--api-key-env {KEY_VAR}")) && stderr.contains(&says),
            "{stderr}"
        );
        assert!(!stderr.contains("words"), "{stderr}");
    }
}

#[test]
#[parallel]
fn past_max_queue_requests_get_429_with_retry_after_and_the_admitted_complete() {
    let f = Fixture::new();
    let served = Served::launch(&f, SERVED, &["--max-queue", "1"], &[]);
    let long = r#"{"prompt":[1,2,3],"max_tokens":200,"ignore_eos":true}"#;
    let streamed_chat = r#"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":200,
        "ignore_eos":true,"stream":true}"#;

    // Two long requests take the two places: the engine's and one waiting.
    let first = hold(&served, "/v1/completions", long);
    let second = hold(&served, "/v1/chat/completions", streamed_chat);

    // Every request past them: 429 with retry-after, streamed or not,
    // either API, before any event of a stream.
    for (path, body) in [
        ("/v1/completions", long),
        ("/v1/chat/completions", streamed_chat),
        ("/v1/completions", long),
    ] {
        let reply = post(&served, path, body, &[]);
        let message = reply.error(429, "rate_limit_error", "rate_limit_exceeded");
        assert_eq!(reply.header("retry-after"), Some("1"), "{path}");
        assert!(
            message.contains("--max-queue 1") && message.contains("retry after 1 s"),
            "{message}"
        );
        assert!(!reply.body.contains("data:"), "{}", reply.body);
    }
    // Routes that generate nothing are not queued.
    assert_eq!(get(&served, "/v1/models", &[]).status, 200);
    assert_eq!(get(&served, "/health", &[]).status, 200);

    // The admitted requests complete, every token of them.
    let reply = first.send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["usage"]["completion_tokens"], 200);
    let reply = second.send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let content: String = sse_data(&reply.body)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert!(!content.is_empty(), "{}", reply.body);
    assert_eq!(
        sse_data(&reply.body).last().map(String::as_str),
        Some("[DONE]")
    );

    // Their places are free again.
    assert_eq!(post(&served, "/v1/completions", long, &[]).status, 200);

    // A body over 4 MiB: 413, refused on its length before it is sent.
    let big = f.path("big.json");
    fs::write(&big, format!(r#"{{"prompt":"{}"}}"#, "a ".repeat(5 << 19))).unwrap();
    let reply = curl(
        &format!("{}/v1/completions", served.url),
        &[
            "-H",
            "content-type: application/json",
            "--data-binary",
            &format!("@{}", big.display()),
        ],
    );
    let message = reply.error(413, "invalid_request_error", "request_too_large");
    assert!(message.contains("4 MiB"), "{message}");
    // Sent without a length (chunked), it is cut at the limit: 413 too,
    // unless the server's close of the unread rest reset the connection
    // before curl read the answer (curl may have printed the server's
    // `100 Continue` by then, and nothing after it). Either way it is not
    // served.
    let out = Command::new("curl")
        .args(["-sS", "-i", "-H", "content-type: application/json"])
        .args(["-H", "transfer-encoding: chunked", "--data-binary"])
        .arg(format!("@{}", big.display()))
        .arg(format!("{}/v1/completions", served.url))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    match final_reply(&text) {
        Some(reply) => {
            reply.error(413, "invalid_request_error", "request_too_large");
        }
        None => assert!(!out.status.success(), "{text}"),
    }
    assert_eq!(post(&served, "/v1/completions", long, &[]).status, 200);

    assert_eq!(served.stop(), Some(0));
    // The refused requests never reached the log; the admitted did, whole.
    let records = records(&f);
    assert_eq!(records.len(), 4, "{records:#?}");
    for r in &records {
        assert_eq!(r["completion_tokens"], 200, "{r}");
        assert!(r["error"].is_null(), "{r}");
    }
}

/// Serial, as tests that depend on timing are (tests/cli/main.rs): it
/// relies on the margin of a long generation, and that generation keeps a
/// core busy, which would disturb the timing of planted slowdowns beside it.
#[test]
#[serial]
fn a_request_that_cannot_start_within_max_wait_s_gets_503_and_a_late_body_408() {
    let f = Fixture::new();
    let served = Served::launch(&f, &long_context(), &["--max-wait-s", "0.2"], &[]);
    let running = start_long_stream(&served, 4090);

    // Behind it, requests wait 0.2 s and are refused: 503 with
    // retry-after, a streamed one too (before any event).
    for (path, body) in [
        ("/v1/completions", r#"{"prompt":[4,5],"max_tokens":3}"#),
        (
            "/v1/chat/completions",
            r#"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":3,"stream":true}"#,
        ),
    ] {
        let sent = Instant::now();
        let reply = post(&served, path, body, &[]);
        let message = reply.error(503, "service_unavailable_error", "server_is_overloaded");
        assert!(sent.elapsed() >= Duration::from_millis(200));
        assert_eq!(reply.header("retry-after"), Some("1"), "{path}");
        assert!(
            message.contains("waited 0.2 s") && message.contains("--max-wait-s"),
            "{message}"
        );
    }
    // A body that does not come within 0.2 s of its headers: 408.
    let reply = hold(&served, "/v1/completions", r#"{"prompt":[4]}"#).reply();
    let message = reply.error(408, "invalid_request_error", "request_timeout");
    assert!(message.contains("within 0.2 s"), "{message}");

    // Once the engine is free, requests start again (it stops the long
    // one at its next token; until then they may still be refused).
    running.hang_up();
    wait_for("a request to be served", || {
        post(
            &served,
            "/v1/completions",
            r#"{"prompt":[4,5],"max_tokens":3}"#,
            &[],
        )
        .status
            == 200
    });
    assert_eq!(served.stop(), Some(0));

    // The refused requests are logged with why, never started.
    let records = records(&f);
    let refused: Vec<&Value> = records
        .iter()
        .filter(|r| {
            r["error"]
                .as_str()
                .is_some_and(|e| e.contains("--max-wait-s"))
        })
        .collect();
    assert!(refused.len() >= 2, "{records:#?}");
    assert!(
        refused
            .iter()
            .any(|r| r["endpoint"] == "/v1/chat/completions" && r["stream"] == true)
    );
    for r in &refused {
        assert!(r["queue_ms"].is_null(), "{r}");
        assert_eq!(r["completion_tokens"], 0, "{r}");
    }
    let long = records.iter().find(|r| r["max_tokens"] == 4090).unwrap();
    assert_eq!(long["error"], "client went away", "{long}");
    let generated = long["completion_tokens"].as_u64().unwrap();
    assert!((1..4090).contains(&generated), "{long}");
}

/// Serial, for the reasons of the test above.
#[test]
#[serial]
fn a_client_that_hangs_up_while_queued_frees_its_place_and_never_runs() {
    let f = Fixture::new();
    let served = Served::launch(&f, &long_context(), &["--max-queue", "1"], &[]);
    let running = start_long_stream(&served, 4090);

    // Queued behind it, a client that gives up after 0.3 s.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-m",
            "0.3",
            "-H",
            "content-type: application/json",
            "-d",
        ])
        .arg(r#"{"prompt":[4,5,6],"max_tokens":7,"ignore_eos":true}"#)
        .arg(format!("{}/v1/completions", served.url))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(28),
        "curl's code for its own timeout"
    );

    // The server drops the request at once: its record says so, and it
    // never started (its events' receiver went with it, and the engine
    // skips a request whose receiver is gone).
    wait_for("the hung-up request's record", || {
        records(&f).iter().any(|r| r["max_tokens"] == 7)
    });
    let records_now = records(&f);
    let gone = records_now.iter().find(|r| r["max_tokens"] == 7).unwrap();
    assert_eq!(gone["error"], "client went away", "{gone}");
    assert!(gone["queue_ms"].is_null(), "{gone}");
    assert_eq!(gone["completion_tokens"], 0, "{gone}");

    // Its place is free: with one request running and --max-queue 1,
    // another is admitted, and then the queue is full again.
    let next = hold(
        &served,
        "/v1/completions",
        r#"{"prompt":[8,9],"max_tokens":3,"ignore_eos":true}"#,
    );
    let reply = post(
        &served,
        "/v1/completions",
        r#"{"prompt":[4],"max_tokens":1}"#,
        &[],
    );
    reply.error(429, "rate_limit_error", "rate_limit_exceeded");

    running.hang_up();
    let reply = next.send();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["usage"]["completion_tokens"], 3);
    assert_eq!(served.stop(), Some(0));
    let records = records(&f);
    assert_eq!(records.len(), 3, "{records:#?}");
}
