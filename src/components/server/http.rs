//! The HTTP front end (axum): routes, request checks, the key and the
//! queue bound (see `access`), streaming with server-sent events, and the
//! request log.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::access::{Admitted, ApiKey, MAX_BODY_BYTES, Queue, RETRY_AFTER_S, require_key};
use super::api::*;
use super::engine::{Engine, EngineEvent, EngineJob, SimulatedService};
use super::error::ApiError;
use super::log::{CLIENT_WENT_AWAY, Logged, RequestLog, RequestLogError, RequestRecord};
use crate::components::inference::{LoadedModel, TextTokenizer};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}\n  help: pick a free port, or 127.0.0.1:0 for any")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("model {0:?} has no tokenizer, so requests cannot be encoded: {1}")]
    NoTokenizer(String, String),
    #[error(transparent)]
    Engine(#[from] super::engine::EngineError),
    #[error(transparent)]
    Log(#[from] RequestLogError),
}

pub struct ServeOptions {
    /// The name clients give as `model` (the campaign's model name).
    pub model_name: String,
    pub request_log: std::path::PathBuf,
    /// Required as `Authorization: Bearer KEY` on every route but
    /// `/health`, when set.
    pub api_key: Option<ApiKey>,
    /// Generation requests that may wait while the engine runs one.
    pub max_queue: usize,
    /// How long a request may wait, from its headers to the start of its
    /// generation.
    pub max_wait: Duration,
    /// Serve a simulated service of known latency instead of the model
    /// (whose tokenizer still reads the prompts).
    pub simulate: Option<SimulatedService>,
    /// MiB of KV the prefix cache may hold (0: no prefix caching).
    pub prefix_cache_mib: u64,
    /// Tokens of a prefix-cache block.
    pub prefix_block_tokens: usize,
}

struct AppState {
    model_name: String,
    tokenizer: TextTokenizer,
    max_context: usize,
    vocab_size: usize,
    created: u64,
    engine: Mutex<std_mpsc::Sender<EngineJob>>,
    log: Arc<RequestLog>,
    next_id: AtomicU64,
    queue: Queue,
}

/// A bound server, not yet serving: its address is known, so the caller
/// can announce it before the first request can arrive.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    api_key: Option<ApiKey>,
    engine: Engine,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Server {
    pub fn bind(
        addr: SocketAddr,
        model: LoadedModel,
        options: ServeOptions,
    ) -> Result<Self, ServerError> {
        let tokenizer = model
            .tokenizer
            .clone()
            .map_err(|why| ServerError::NoTokenizer(options.model_name.clone(), why))?;
        let max_context = model.architecture.max_position_embeddings;
        let vocab_size = model.architecture.vocab_size.max(1);
        let log = RequestLog::create(&options.request_log)?;
        // Two threads: HTTP work is light; the engine has its own thread.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("http")
            .enable_all()
            .build()?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|source| ServerError::Bind { addr, source })?;
        let (engine, running) = match options.simulate {
            Some(spec) => (Engine::simulate(spec)?, spec.slots.max(1)),
            None => (
                Engine::start(model, options.prefix_cache_mib, options.prefix_block_tokens)?,
                1,
            ),
        };
        let state = Arc::new(AppState {
            model_name: options.model_name,
            tokenizer,
            max_context,
            vocab_size,
            created: unix_now(),
            engine: Mutex::new(engine.submitter()),
            log: Arc::new(log),
            next_id: AtomicU64::new(1),
            queue: Queue::new(running, options.max_queue, options.max_wait),
        });
        Ok(Self {
            runtime,
            listener,
            state,
            api_key: options.api_key,
            engine,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        Ok(self.listener.local_addr()?)
    }

    pub fn request_log(&self) -> &std::path::Path {
        self.state.log.path()
    }

    /// Serves until `shutdown` completes, then lets requests in flight
    /// finish and stops the engine.
    pub fn run<F>(self, shutdown: F) -> Result<(), ServerError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut app = Router::new()
            .route("/v1/models", get(models))
            .route("/v1/completions", post(completions))
            .route("/v1/chat/completions", post(chat_completions))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
        if let Some(key) = &self.api_key {
            // Every route so far, the fallback too: without the key a
            // client learns nothing, not even which routes exist.
            app = app.layer(axum::middleware::from_fn_with_state(
                Arc::new(key.clone()),
                require_key,
            ));
        }
        // Added after the key's layer, so a load balancer or a script can
        // probe it without the key, as llama-server's and vLLM's /health.
        let app = app
            .route("/health", get(health))
            .with_state(Arc::clone(&self.state));
        let Self {
            runtime,
            listener,
            state,
            engine,
            ..
        } = self;
        // Without TCP_NODELAY, Nagle's algorithm holds each small SSE chunk
        // until the client's delayed ACK (40 ms on Linux): the client would
        // see tokens in bursts, and a TTFT that is the server's plus 40 ms.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        runtime.block_on(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        })?;
        drop(state);
        engine.stop();
        Ok(())
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        None,
        None,
        "no such route: this server has /health, /v1/models, /v1/completions and /v1/chat/completions",
    )
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Parses a JSON body into `T`, with serde's message (field, line and
/// column) in an OpenAI-shaped error instead of axum's plain text.
fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(None, format!("invalid JSON body: {e}")))
}

async fn models(State(state): State<Arc<AppState>>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: vec![ModelCard {
            id: state.model_name.clone(),
            object: "model",
            created: state.created,
            owned_by: "campaign",
        }],
    })
}

/// A request once checked: its tokens and limits.
struct Prepared {
    endpoint: &'static str,
    id: String,
    shape: Shape,
    prompt: Vec<u32>,
    max_tokens: usize,
    ignore_eos: bool,
    stream: bool,
    include_usage: bool,
    received: Instant,
    /// Unix seconds when the request arrived (OpenAI's `created`).
    created: u64,
}

impl AppState {
    fn check_model(&self, model: Option<&str>) -> Result<(), ApiError> {
        match model {
            Some(name) if name != self.model_name => Err(ApiError::not_found(
                Some("model"),
                Some("model_not_found"),
                format!(
                    "the model `{name}` does not exist here; this server serves `{}`",
                    self.model_name
                ),
            )),
            _ => Ok(()),
        }
    }

    fn encode(&self, text: &str, max_tokens: usize) -> Result<Vec<u32>, ApiError> {
        let prompt = self
            .tokenizer
            .encode(text)
            .map_err(|e| ApiError::invalid(Some("prompt"), e.to_string()))?;
        self.check_tokens(prompt, max_tokens)
    }

    /// A prompt of token ids: each in the vocabulary, and with
    /// `max_tokens` within the model's context.
    fn check_tokens(&self, prompt: Vec<u32>, max_tokens: usize) -> Result<Vec<u32>, ApiError> {
        if let Some(bad) = prompt.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(ApiError::invalid(
                Some("prompt"),
                format!(
                    "token id {bad} is outside the model's vocabulary (0 to {})",
                    self.vocab_size - 1
                ),
            ));
        }
        if prompt.is_empty() {
            return Err(ApiError::invalid(
                Some("prompt"),
                "the prompt is empty once tokenized",
            ));
        }
        if prompt.len() + max_tokens > self.max_context {
            return Err(ApiError::invalid(
                Some("max_tokens"),
                format!(
                    "the prompt ({} tokens) plus max_tokens ({max_tokens}) exceeds the model's context of {} tokens",
                    prompt.len(),
                    self.max_context
                ),
            ));
        }
        Ok(prompt)
    }

    fn new_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Hands the request to the engine; its events arrive on the receiver.
    fn submit(&self, request: &Prepared) -> Result<mpsc::UnboundedReceiver<EngineEvent>, ApiError> {
        let (events, receiver) = mpsc::unbounded_channel();
        let job = EngineJob {
            prompt: request.prompt.clone(),
            max_tokens: request.max_tokens,
            stop: if request.ignore_eos {
                None
            } else {
                self.tokenizer.eos_id
            },
            received: request.received,
            events,
        };
        self.engine
            .lock()
            .map_err(|_| ApiError::unavailable("the engine is not available"))?
            .send(job)
            .map_err(|_| ApiError::unavailable("the engine has stopped"))?;
        Ok(receiver)
    }
}

/// A generation request: a place in the queue (429 without one), the
/// body within the deadline, the checks of `prepare`, then the engine.
/// The body is dropped once parsed, so a waiting request holds only its
/// token ids.
async fn generation(
    state: Arc<AppState>,
    request: Request,
    prepare: fn(&AppState, &Bytes, Instant) -> Result<Prepared, ApiError>,
) -> Response {
    let admitted = match state.queue.admit() {
        Ok(admitted) => admitted,
        Err(e) => return e.into_response(),
    };
    let body = match admitted.read_body(request).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let prepared = prepare(&state, &body, Instant::now());
    drop(body);
    match prepared {
        Ok(p) => respond(state, admitted, p).await,
        Err(e) => e.into_response(),
    }
}

async fn completions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    generation(state, request, prepare_completion).await
}

async fn chat_completions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    generation(state, request, prepare_chat).await
}

fn prepare_completion(
    state: &AppState,
    body: &Bytes,
    received: Instant,
) -> Result<Prepared, ApiError> {
    let request: CompletionRequest = parse_body(body)?;
    state.check_model(request.model.as_deref())?;
    let max_tokens = request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let prompt = match request.prompt {
        PromptInput::Text(text) => state.encode(&text, max_tokens)?,
        PromptInput::Tokens(ids) => state.check_tokens(ids, max_tokens)?,
        PromptInput::Batch(mut texts) if texts.len() == 1 => {
            state.encode(&texts.remove(0), max_tokens)?
        }
        PromptInput::Batch(_) => {
            return Err(ApiError::invalid(
                Some("prompt"),
                "this server takes one prompt per request",
            ));
        }
    };
    Ok(Prepared::new(
        state,
        Shape::Completion,
        prompt,
        max_tokens,
        request.flags,
        received,
    ))
}

fn prepare_chat(state: &AppState, body: &Bytes, received: Instant) -> Result<Prepared, ApiError> {
    let request: ChatRequest = parse_body(body)?;
    state.check_model(request.model.as_deref())?;
    if request.messages.is_empty() {
        return Err(ApiError::invalid(
            Some("messages"),
            "messages is empty: give at least one message",
        ));
    }
    let text = state
        .tokenizer
        .apply_chat_template(&request.messages)
        .map_err(|e| ApiError::invalid(Some("messages"), e.to_string()))?;
    let max_tokens = request
        .max_completion_tokens
        .or(request.max_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    Ok(Prepared::new(
        state,
        Shape::Chat,
        state.encode(&text, max_tokens)?,
        max_tokens,
        request.flags,
        received,
    ))
}

impl Prepared {
    fn new(
        state: &AppState,
        shape: Shape,
        prompt: Vec<u32>,
        max_tokens: usize,
        flags: GenerationFlags,
        received: Instant,
    ) -> Self {
        let (endpoint, prefix) = match shape {
            Shape::Completion => ("/v1/completions", "cmpl"),
            Shape::Chat => ("/v1/chat/completions", "chatcmpl"),
        };
        Self {
            endpoint,
            id: state.new_id(prefix),
            shape,
            prompt,
            max_tokens,
            ignore_eos: flags.ignore_eos,
            stream: flags.stream,
            include_usage: flags.stream_options.unwrap_or_default().include_usage,
            received,
            created: unix_now(),
        }
    }
}

#[derive(Clone, Copy)]
enum Shape {
    Completion,
    Chat,
}

/// The JSON of one stream chunk carrying `text` (and the role first, for chat).
fn chunk(
    state: &AppState,
    request: &Prepared,
    shape: Shape,
    text: Option<String>,
    first: bool,
    finish: Option<(FinishReason, ServerTiming)>,
    usage: Option<Usage>,
) -> String {
    let timing = finish.map(|(_, timing)| timing);
    let finish = finish.map(|(reason, _)| reason);
    match shape {
        Shape::Completion => to_json(&CompletionResponse {
            id: request.id.clone(),
            object: "text_completion",
            created: request.created,
            model: state.model_name.clone(),
            choices: if usage.is_some() {
                Vec::new()
            } else {
                vec![CompletionChoice {
                    index: 0,
                    text: text.unwrap_or_default(),
                    logprobs: None,
                    finish_reason: finish,
                }]
            },
            usage,
            campaign_server_timing: timing,
        }),
        Shape::Chat => to_json(&ChatChunk {
            id: request.id.clone(),
            object: "chat.completion.chunk",
            created: request.created,
            model: state.model_name.clone(),
            choices: if usage.is_some() {
                Vec::new()
            } else {
                vec![ChatChunkChoice {
                    index: 0,
                    delta: ChatDelta {
                        role: first.then_some("assistant"),
                        content: text,
                    },
                    finish_reason: finish,
                }]
            },
            usage,
            campaign_server_timing: timing,
        }),
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    // The response types hold only strings and numbers: they always serialise.
    serde_json::to_string(value).unwrap_or_default()
}

/// The engine's events for one request, the first already received.
type Events = tokio_stream::adapters::Chain<
    tokio_stream::Once<EngineEvent>,
    UnboundedReceiverStream<EngineEvent>,
>;

/// A request being served: its place in the queue and its record, given
/// up together when it ends, the place first, so that whoever reads the
/// record finds the place free.
struct InProgress {
    place: Option<Admitted>,
    logged: Logged,
}

impl InProgress {
    fn record(&mut self) -> &mut RequestRecord {
        &mut self.logged.record
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        // Fields drop after this: the record is written once the place is free.
        drop(self.place.take());
    }
}

/// Hands the request to the engine and waits, until the deadline, for its
/// generation to start: only then is the answer's status known, so a
/// stream's headers wait too. A request past the deadline gets 503 and
/// is dropped from the engine's queue (the engine skips a request whose
/// receiver is gone).
async fn respond(state: Arc<AppState>, admitted: Admitted, request: Prepared) -> Response {
    let shape = request.shape;
    let (deadline, max_wait) = (admitted.deadline, admitted.max_wait);
    let mut progress = InProgress {
        place: Some(admitted),
        logged: Logged::new(
            Arc::clone(&state.log),
            RequestRecord::new(
                request.id.clone(),
                request.endpoint,
                request.stream,
                request.received,
                request.prompt.len(),
                request.max_tokens,
            ),
        ),
    };
    let mut receiver = match state.submit(&request) {
        Ok(events) => events,
        Err(e) => {
            progress.record().error = Some(e.message.clone());
            return e.into_response();
        }
    };
    let first = match tokio::time::timeout_at(deadline, receiver.recv()).await {
        Ok(Some(event)) => event,
        Ok(None) => {
            let e = ApiError::unavailable("the engine stopped before the request started");
            progress.record().error = Some(e.message.clone());
            return e.into_response();
        }
        Err(_) => {
            let max_wait_s = max_wait.as_secs_f64();
            progress.record().error = Some(format!(
                "waited {max_wait_s} s (--max-wait-s) without starting"
            ));
            return ApiError::overloaded(
                RETRY_AFTER_S,
                format!(
                    "the request waited {max_wait_s} s, the most --max-wait-s allows, and the engine had not started it: the server is overloaded; retry after {RETRY_AFTER_S} s, or send fewer requests at once"
                ),
            )
            .into_response();
        }
    };
    let events = tokio_stream::once(first).chain(UnboundedReceiverStream::new(receiver));
    if request.stream {
        stream(state, request, shape, progress, events)
    } else {
        whole(state, request, shape, progress, events).await
    }
}

/// Waits for the whole generation and answers with one JSON body. The
/// queue place is held until the end, as the engine is busy until then.
async fn whole(
    state: Arc<AppState>,
    request: Prepared,
    shape: Shape,
    mut progress: InProgress,
    mut events: Events,
) -> Response {
    let mut text = String::new();
    let mut finish = None;
    while let Some(event) = events.next().await {
        progress.record().record(&event);
        match event {
            EngineEvent::Token { text: t, .. } => text.push_str(&t),
            EngineEvent::Finished { reason, .. } => finish = Some(reason),
            EngineEvent::Failed { message } => {
                return ApiError::unavailable(format!("generation failed: {message}"))
                    .into_response();
            }
            EngineEvent::Started { .. } => {}
        }
    }
    let Some(reason) = finish else {
        let e = ApiError::unavailable("the engine stopped before the generation finished");
        progress.record().error = Some(e.message.clone());
        return e.into_response();
    };
    let record = progress.record();
    let usage = record.usage();
    match shape {
        Shape::Completion => Json(CompletionResponse {
            id: request.id,
            object: "text_completion",
            created: request.created,
            model: state.model_name.clone(),
            choices: vec![CompletionChoice {
                index: 0,
                text,
                logprobs: None,
                finish_reason: Some(reason),
            }],
            usage: Some(usage),
            campaign_server_timing: Some(record.timing()),
        })
        .into_response(),
        Shape::Chat => Json(ChatResponse {
            id: request.id,
            object: "chat.completion",
            created: request.created,
            model: state.model_name.clone(),
            choices: vec![ChatChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content: text,
                },
                finish_reason: reason,
            }],
            usage,
            campaign_server_timing: record.timing(),
        })
        .into_response(),
    }
}

/// Answers with server-sent events: a chunk per token as it is generated
/// (tokens whose text is held back ride with the next chunk),
/// a last chunk with the finish reason, the usage chunk when asked for,
/// and `[DONE]`. A task forwards the engine's events, so the request is
/// logged even when the client hangs up (and the engine then stops); it
/// holds the queue place until the generation ends.
fn stream(
    state: Arc<AppState>,
    request: Prepared,
    shape: Shape,
    mut progress: InProgress,
    mut events: Events,
) -> Response {
    let (sse, body) = mpsc::unbounded_channel::<Result<Event, Infallible>>();
    tokio::spawn(async move {
        let send = |data: String| sse.send(Ok(Event::default().data(data))).is_ok();
        let mut first = true;
        let mut connected = true;
        while let Some(event) = events.next().await {
            progress.record().record(&event);
            let data = match event {
                // A token whose text is held back (an unfinished character)
                // sends no chunk: the next one carries both, as a chunk may
                // carry several tokens.
                EngineEvent::Token { text, .. } if text.is_empty() => continue,
                EngineEvent::Token { text, .. } => {
                    let data = chunk(&state, &request, shape, Some(text), first, None, None);
                    first = false;
                    data
                }
                EngineEvent::Finished { reason, .. } => chunk(
                    &state,
                    &request,
                    shape,
                    None,
                    first,
                    Some((reason, progress.record().timing())),
                    None,
                ),
                EngineEvent::Failed { message } => to_json(&ErrorResponse {
                    error: ErrorBody {
                        message: format!("generation failed: {message}"),
                        kind: "server_error",
                        param: None,
                        code: None,
                    },
                }),
                EngineEvent::Started { .. } => continue,
            };
            if !send(data) {
                connected = false;
                progress.record().error = Some(CLIENT_WENT_AWAY.into());
                break;
            }
        }
        if connected && progress.record().finish_reason.is_some() {
            if request.include_usage {
                let usage = progress.record().usage();
                send(chunk(
                    &state,
                    &request,
                    shape,
                    None,
                    false,
                    None,
                    Some(usage),
                ));
            }
            send("[DONE]".into());
        }
    });
    Sse::new(UnboundedReceiverStream::new(body)).into_response()
}
