//! The HTTP front end (axum): routes, request checks, streaming with
//! server-sent events, and the request log.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::api::*;
use super::engine::{Engine, EngineEvent, EngineJob};
use super::log::{RequestLog, RequestLogError, RequestRecord};
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
}

struct AppState {
    model_name: String,
    tokenizer: TextTokenizer,
    max_context: usize,
    vocab_size: usize,
    created: u64,
    engine: Mutex<std_mpsc::Sender<EngineJob>>,
    log: RequestLog,
    next_id: AtomicU64,
}

/// A bound server, not yet serving: its address is known, so the caller
/// can announce it before the first request can arrive.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
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
        let engine = Engine::start(model)?;
        let state = Arc::new(AppState {
            model_name: options.model_name,
            tokenizer,
            max_context,
            vocab_size,
            created: unix_now(),
            engine: Mutex::new(engine.submitter()),
            log,
            next_id: AtomicU64::new(1),
        });
        Ok(Self {
            runtime,
            listener,
            state,
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
        let app = Router::new()
            .route("/v1/models", get(models))
            .route("/v1/completions", post(completions))
            .route("/v1/chat/completions", post(chat_completions))
            .fallback(not_found)
            .with_state(Arc::clone(&self.state));
        let Self {
            runtime,
            listener,
            state,
            engine,
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

/// An error in OpenAI's shape, with its HTTP status.
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    param: Option<&'static str>,
    message: String,
}

impl ApiError {
    fn invalid(param: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            param,
            message: message.into(),
        }
    }

    fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "server_error",
            param: None,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = (self.status == StatusCode::NOT_FOUND).then_some("model_not_found");
        let body = ErrorResponse {
            error: ErrorBody {
                message: self.message,
                kind: self.kind,
                param: self.param,
                code,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "invalid_request_error",
        param: None,
        message:
            "no such route: this server has /v1/models, /v1/completions and /v1/chat/completions"
                .into(),
    }
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
            Some(name) if name != self.model_name => Err(ApiError {
                status: StatusCode::NOT_FOUND,
                kind: "invalid_request_error",
                param: Some("model"),
                message: format!(
                    "the model `{name}` does not exist here; this server serves `{}`",
                    self.model_name
                ),
            }),
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

async fn completions(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let received = Instant::now();
    let prepared = (|| {
        let request: CompletionRequest = parse_body(&body)?;
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
            &state,
            Shape::Completion,
            prompt,
            max_tokens,
            request.flags,
            received,
        ))
    })();
    respond_to(state, prepared).await
}

async fn chat_completions(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let received = Instant::now();
    let prepared = (|| {
        let request: ChatRequest = parse_body(&body)?;
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
            &state,
            Shape::Chat,
            state.encode(&text, max_tokens)?,
            max_tokens,
            request.flags,
            received,
        ))
    })();
    respond_to(state, prepared).await
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

async fn respond_to(state: Arc<AppState>, prepared: Result<Prepared, ApiError>) -> Response {
    match prepared {
        Ok(p) => respond(state, p).await,
        Err(e) => e.into_response(),
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

async fn respond(state: Arc<AppState>, request: Prepared) -> Response {
    let shape = request.shape;
    let record = RequestRecord::new(
        request.id.clone(),
        request.endpoint,
        request.stream,
        request.received,
        request.prompt.len(),
        request.max_tokens,
    );
    let events = match state.submit(&request) {
        Ok(events) => events,
        Err(e) => return e.into_response(),
    };
    if request.stream {
        stream(state, request, shape, record, events)
    } else {
        whole(state, request, shape, record, events).await
    }
}

/// Waits for the whole generation and answers with one JSON body.
async fn whole(
    state: Arc<AppState>,
    request: Prepared,
    shape: Shape,
    mut record: RequestRecord,
    mut events: mpsc::UnboundedReceiver<EngineEvent>,
) -> Response {
    let mut text = String::new();
    let mut finish = None;
    while let Some(event) = events.recv().await {
        record.record(&event);
        match event {
            EngineEvent::Token { text: t, .. } => text.push_str(&t),
            EngineEvent::Finished { reason, .. } => finish = Some(reason),
            EngineEvent::Failed { message } => {
                state.log.write(&record);
                return ApiError::unavailable(format!("generation failed: {message}"))
                    .into_response();
            }
            EngineEvent::Started { .. } => {}
        }
    }
    state.log.write(&record);
    let Some(reason) = finish else {
        return ApiError::unavailable("the engine stopped before the generation finished")
            .into_response();
    };
    let usage = Usage::new(record.prompt_tokens, record.completion_tokens);
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
/// logged even when the client hangs up (and the engine then stops).
fn stream(
    state: Arc<AppState>,
    request: Prepared,
    shape: Shape,
    mut record: RequestRecord,
    mut events: mpsc::UnboundedReceiver<EngineEvent>,
) -> Response {
    let (sse, body) = mpsc::unbounded_channel::<Result<Event, Infallible>>();
    tokio::spawn(async move {
        let send = |data: String| sse.send(Ok(Event::default().data(data))).is_ok();
        let mut first = true;
        let mut connected = true;
        while let Some(event) = events.recv().await {
            record.record(&event);
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
                    Some((reason, record.timing())),
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
                record.error = Some("client went away".into());
                break;
            }
        }
        if connected && record.finish_reason.is_some() {
            if request.include_usage {
                let usage = Usage::new(record.prompt_tokens, record.completion_tokens);
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
        state.log.write(&record);
    });
    Sse::new(UnboundedReceiverStream::new(body)).into_response()
}
