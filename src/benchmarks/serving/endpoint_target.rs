//! What the serving kinds (`full_inference`, `scaling`, `endurance`) share
//! to run against an OpenAI-compatible endpoint instead of the in-process
//! engine: the params (`endpoint`, `api`, `served_model`, `api_key_env`,
//! `request_timeout_s`, `error_budget_pct`, `ignore_eos`, `tokenizer`),
//! their checks, the client and its runtime, what writes the prompts each
//! request sends (a campaign model, a tokenizer file alone, or nothing: text
//! sent whole and counted by the server), and the report's description of
//! the target.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::benchmarks::model::{PromptSpec, Prompts, check_prompts, load_model, read_prompt_lines};
use crate::benchmarks::workload::{
    Arrivals, LengthDistribution, Request, WorkloadSpec, generate_requests,
};
use crate::benchmarks::{BenchContext, BenchmarkError, MemoryNeed, Models, ParamProblem};
use crate::campaign::bounds::{Percent, Seconds, Tokens};
use crate::components::endpoint::{
    EndpointApi, EndpointClient, EndpointConfig, RequestPrompt, redact_url,
};
use crate::components::inference::TextTokenizer;
use crate::machine::checked_product;

pub(super) fn default_request_timeout_s() -> Seconds {
    Seconds::new_const(120.0)
}

/// `client_bound_lag_pct` when not given: a client whose lateness at p99
/// reaches a tenth of the median TTFT already moves the tail it reports.
pub(super) fn default_client_bound_lag_pct() -> Percent {
    Percent::new_const(10.0)
}

pub(super) fn yes() -> bool {
    true
}

pub(super) fn no_errors() -> Percent {
    Percent::new_const(0.0)
}

/// The model a kind runs when its params name none.
const DEFAULT_MODEL: &str = "default";

/// Defines a kind's params struct with the endpoint fields appended, and
/// `endpoint_target()` to read them. A macro, not a flattened struct:
/// serde cannot deny unknown fields through `#[serde(flatten)]`, and a
/// misspelt key must stay an error at its line. The struct declares
/// `model: Option<String>` itself.
macro_rules! with_endpoint_target {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $($(#[$field_attr:meta])* $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$attr])*
        pub struct $name {
            $($(#[$field_attr])* $field: $ty,)*
            /// Serve the workload from an OpenAI-compatible endpoint
            /// (`http://host:port/v1`) instead of the in-process engine;
            /// `model` or `tokenizer` then writes the prompts and counts
            /// tokens, or neither does (text prompts sent whole).
            endpoint: Option<String>,
            #[serde(default)]
            api: $crate::components::endpoint::EndpointApi,
            /// The `model` field of each request (default: the model's name).
            served_model: Option<String>,
            /// Environment variable holding the API key (never the key itself).
            api_key_env: Option<String>,
            /// Limit on one request, from sending it to its end.
            #[serde(default = "crate::benchmarks::serving::endpoint_target::default_request_timeout_s")]
            request_timeout_s: $crate::campaign::bounds::Seconds,
            /// Share of requests that may fail before the benchmark fails (exit 4).
            #[serde(default = "crate::benchmarks::serving::endpoint_target::no_errors")]
            error_budget_pct: $crate::campaign::bounds::Percent,
            /// Send vLLM's `ignore_eos`, so outputs have the sampled lengths
            /// (set false for servers that refuse unknown fields).
            #[serde(default = "crate::benchmarks::serving::endpoint_target::yes")]
            ignore_eos: bool,
            /// The run is marked client-bound when the client's dispatch
            /// lag at p99 exceeds this share of the median TTFT (measured
            /// from the actual send), in %.
            #[serde(default = "crate::benchmarks::serving::endpoint_target::default_client_bound_lag_pct")]
            client_bound_lag_pct: $crate::campaign::bounds::Percent,
            /// With an endpoint: a `tokenizer.json` (relative to the campaign
            /// file) that writes and counts the prompts instead of a
            /// campaign model's, so no local weights are needed.
            tokenizer: Option<std::path::PathBuf>,
        }

        impl $name {
            /// The campaign model the params name, `default` when none.
            fn model_name(&self) -> &str {
                self.model.as_deref().unwrap_or("default")
            }

            fn endpoint_target(&self) -> Option<$crate::benchmarks::serving::endpoint_target::EndpointTarget<'_>> {
                self.endpoint.as_deref().map(|url| {
                    $crate::benchmarks::serving::endpoint_target::EndpointTarget {
                        url,
                        api: self.api,
                        model: self.model.as_deref(),
                        tokenizer: self.tokenizer.as_deref(),
                        served_model: self.served_model.as_deref(),
                        api_key_env: self.api_key_env.as_deref(),
                        request_timeout_s: self.request_timeout_s.get(),
                        error_budget_pct: self.error_budget_pct.get(),
                        ignore_eos: self.ignore_eos,
                        client_bound_lag_pct: self.client_bound_lag_pct.get(),
                    }
                })
            }

            /// The endpoint params' checks: what writes the prompts when
            /// there is an endpoint (`None` in-process, where `tokenizer`
            /// has no use).
            fn check_target(
                &self,
                models: &$crate::campaign::Models,
                asked: $crate::benchmarks::serving::endpoint_target::PromptsAsked<'_>,
            ) -> Result<
                Option<$crate::benchmarks::serving::endpoint_target::PromptWriter<'_>>,
                $crate::campaign::ParamProblem,
            > {
                match self.endpoint_target() {
                    Some(target) => target.check(models, asked).map(Some),
                    None if self.tokenizer.is_some() => Err($crate::campaign::ParamProblem::at(
                        "tokenizer",
                        "a tokenizer alone serves an endpoint target, and this benchmark has no endpoint; allowed in-process: a campaign model (`model`), whose own tokenizer is used",
                        "remove tokenizer, or set endpoint = \"http://host:port/v1\"",
                    )),
                    None => Ok(None),
                }
            }
        }
    };
}
pub(super) use with_endpoint_target;

/// A kind's endpoint params, read.
#[derive(Debug, Clone, Copy)]
pub(super) struct EndpointTarget<'a> {
    pub url: &'a str,
    pub api: EndpointApi,
    /// The campaign model named by `model`.
    pub model: Option<&'a str>,
    /// The tokenizer file named by `tokenizer`.
    pub tokenizer: Option<&'a Path>,
    pub served_model: Option<&'a str>,
    pub api_key_env: Option<&'a str>,
    pub request_timeout_s: f64,
    pub error_budget_pct: f64,
    pub ignore_eos: bool,
    pub client_bound_lag_pct: f64,
}

/// What writes an endpoint target's prompts and counts its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PromptWriter<'a> {
    /// A campaign model, loaded (its weights too) as in-process.
    Model(&'a str),
    /// A `tokenizer.json` alone: token ids of exact lengths, no weights.
    TokenizerFile(&'a Path),
    /// Nothing here: prompt lines sent whole as text, their lengths and the
    /// output's as the server's `usage` counts them.
    Server,
}

/// What a kind's params ask of the prompts.
#[derive(Debug, Clone, Copy)]
pub(super) struct PromptsAsked<'s> {
    /// The kind's `prompts` table, if given.
    pub spec: Option<&'s PromptSpec>,
    /// Whether the kind reads a `prompts` table at all.
    pub takes_prompt_files: bool,
    /// Whether prompt lengths in tokens (`prompt_tokens`) are given.
    pub lengths_given: bool,
}

/// A client ready to send: shared by every case of a benchmark.
pub(super) struct Connection {
    pub client: Arc<EndpointClient>,
    pub runtime: Arc<tokio::runtime::Runtime>,
}

/// The prompts of an endpoint target, ready: what loading them cost and
/// what the report says of them.
pub(super) struct PromptSource {
    pub setup: Vec<(&'static str, f64)>,
    pub context: serde_json::Value,
    /// The tokenizer that counts the tokens of each streamed chunk.
    pub tokenizer: Option<TextTokenizer>,
    prompts: SourcePrompts,
}

enum SourcePrompts {
    /// Token ids at the sampled lengths: random from the vocabulary, or
    /// text cut by the tokenizer.
    Ids { prompts: Prompts, vocab_size: usize },
    /// Whole lines of a prompts file, sent as text.
    Lines(Vec<String>),
}

/// Memory the client keeps for `prompt_ids` token ids of prompts and
/// `in_flight` requests of up to `output_tokens` tokens each, one chunk a
/// token (a hostile server is stopped at the client's limits, in the Limits
/// of docs/campaign-author.md).
pub(super) fn client_memory(
    prompt_ids: u64,
    in_flight: u64,
    output_tokens: u64,
    field: &str,
) -> Result<MemoryNeed, ParamProblem> {
    // A content chunk: its time, its String and a few bytes of text.
    const CHUNK_BYTES: u64 = 64;
    let bytes = checked_product(&[prompt_ids, 4])
        .zip(checked_product(&[in_flight, output_tokens, CHUNK_BYTES]))
        .and_then(|(prompts, chunks)| prompts.checked_add(chunks))
        .ok_or_else(|| {
            ParamProblem::at(
                field,
                "these sizes multiply to more memory than 64 bits can count",
                "lower the requests or lengths",
            )
        })?;
    Ok(MemoryNeed::new(
        bytes,
        format!(
            "{prompt_ids} prompt token ids × 4 bytes + {in_flight} requests in flight × {output_tokens} output tokens × {CHUNK_BYTES} bytes a streamed chunk (no model loaded here)"
        ),
    ))
}

impl<'a> EndpointTarget<'a> {
    fn config(&self, api_key: Option<String>) -> Result<EndpointConfig, String> {
        Ok(EndpointConfig {
            base_url: self.url.to_string(),
            api: self.api,
            served_model: self.served_model_name().to_string(),
            api_key,
            timeout: Duration::try_from_secs_f64(self.request_timeout_s)
                .map_err(|e| format!("request_timeout_s: {e}"))?,
            ignore_eos: self.ignore_eos,
        })
    }

    /// `served_model`, else the campaign model's name.
    fn served_model_name(&self) -> &'a str {
        self.served_model.or(self.model).unwrap_or(DEFAULT_MODEL)
    }

    /// What writes the prompts: `model`, else `tokenizer`, else the model
    /// called `default` when the campaign has one, else nothing.
    pub fn writer(&self, models: &Models) -> Result<PromptWriter<'a>, ParamProblem> {
        match (self.model, self.tokenizer) {
            (Some(_), Some(_)) => Err(ParamProblem::at(
                "tokenizer",
                "both `model` and `tokenizer` are given; allowed: one of them — model (a campaign model, loaded, whose tokenizer writes the prompts) or tokenizer (a tokenizer.json alone, no weights)",
                "remove model, or remove tokenizer",
            )),
            (Some(model), None) => Ok(PromptWriter::Model(model)),
            (None, Some(path)) => Ok(PromptWriter::TokenizerFile(path)),
            (None, None) if models.contains_key(DEFAULT_MODEL) => {
                Ok(PromptWriter::Model(DEFAULT_MODEL))
            }
            (None, None) => Ok(PromptWriter::Server),
        }
    }

    /// The campaign checks: the URL and settings make a client, and the
    /// prompts asked for can be written with what the target has.
    pub fn check(
        &self,
        models: &Models,
        asked: PromptsAsked<'_>,
    ) -> Result<PromptWriter<'a>, ParamProblem> {
        self.config(None)
            .and_then(|config| {
                EndpointClient::new(config)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .map_err(|problem| {
                ParamProblem::at(
                    "endpoint",
                    problem,
                    "e.g. endpoint = \"http://127.0.0.1:8000/v1\"",
                )
            })?;
        let writer = self.writer(models)?;
        match writer {
            PromptWriter::Model(model) => {
                check_prompts(asked.spec, model, models)?;
                let missing = models.get(model).and_then(|m| m.missing_tokenizer.as_ref());
                if let (EndpointApi::Chat, Some(why)) = (self.api, missing) {
                    return Err(ParamProblem::at(
                        "api",
                        format!(
                            "api = \"chat\" sends the prompts as text, and model {model:?} has no tokenizer to write them: {why}; allowed with this model: api = \"completions\" (token ids)"
                        ),
                        "api = \"completions\", or tokenizer = \"path/to/tokenizer.json\" instead of model",
                    ));
                }
            }
            PromptWriter::TokenizerFile(_) => {
                if let Some(spec) = asked.spec {
                    spec.check_form()?;
                }
                self.needs_served_model()?;
            }
            PromptWriter::Server => {
                self.check_server_counts(asked)?;
                self.needs_served_model()?;
            }
        }
        Ok(writer)
    }

    /// Without a tokenizer: prompt lines sent whole, nothing cut to a length.
    fn check_server_counts(&self, asked: PromptsAsked<'_>) -> Result<(), ParamProblem> {
        const NO_TOKENIZER: &str = "with neither `model` nor `tokenizer` (and no campaign model called \"default\"), nothing here tokenizes";
        if !asked.takes_prompt_files {
            return Err(ParamProblem::at(
                "tokenizer",
                format!(
                    "this kind sends token-id prompts of prompt_tokens, and {NO_TOKENIZER}; allowed: a tokenizer file or a campaign model"
                ),
                "tokenizer = \"path/to/tokenizer.json\" (the served model's), or model = \"NAME\" of [models]",
            ));
        }
        let Some(spec) = asked.spec else {
            return Err(ParamProblem::at(
                "prompts",
                format!(
                    "random token-id prompts need a vocabulary, and {NO_TOKENIZER}; allowed: a prompts file (each line sent whole, counted by the server), a tokenizer file or a campaign model"
                ),
                "prompts = { file = \"prompts.jsonl\" }, or tokenizer = \"path/to/tokenizer.json\"",
            ));
        };
        spec.check_form()?;
        if spec.is_corpus() {
            return Err(ParamProblem::at(
                "prompts.corpus",
                format!(
                    "a corpus is cut into prompts of lengths in tokens, and {NO_TOKENIZER}; allowed without a tokenizer: prompts = {{ file = … }}, each line sent whole"
                ),
                "prompts = { file = \"prompts.jsonl\" }, or tokenizer = \"path/to/tokenizer.json\"",
            ));
        }
        if asked.lengths_given {
            return Err(ParamProblem::at(
                "prompt_tokens",
                format!(
                    "prompts of exact lengths in tokens need a tokenizer to cut them, and {NO_TOKENIZER}; allowed without one: no prompt_tokens (each line is sent whole; the report gives its length as the server counts it, server_prompt_tokens)"
                ),
                "remove prompt_tokens, or set tokenizer = \"path/to/tokenizer.json\"",
            ));
        }
        Ok(())
    }

    fn needs_served_model(&self) -> Result<(), ParamProblem> {
        if self.served_model.is_none() {
            return Err(ParamProblem::at(
                "served_model",
                "missing: with no campaign model, nothing names the model the server serves; allowed: the name the server knows it by",
                "e.g. served_model = \"meta-llama/Llama-3.1-8B-Instruct\"",
            ));
        }
        Ok(())
    }

    /// The API key named by `api_key_env`, from the environment only.
    fn api_key(&self) -> Result<Option<String>, BenchmarkError> {
        let Some(name) = self.api_key_env else {
            return Ok(None);
        };
        std::env::var(name).map(Some).map_err(|_| {
            BenchmarkError::Params(format!(
                "api_key_env = {name:?}: the variable is not set (or not UTF-8); export it before the run"
            ))
        })
    }

    pub fn connect(&self) -> Result<Connection, BenchmarkError> {
        let config = self
            .config(self.api_key()?)
            .map_err(BenchmarkError::Params)?;
        let client = Arc::new(
            EndpointClient::new(config).map_err(|e| BenchmarkError::Params(e.to_string()))?,
        );
        let runtime = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("endpoint-client")
                .enable_all()
                .build()
                .map_err(|e| {
                    BenchmarkError::Component(format!("cannot start the client runtime: {e}"))
                })?,
        );
        Ok(Connection { client, runtime })
    }

    /// Loads what writes the prompts: the campaign model (weights and all,
    /// as in-process), the tokenizer file alone, or the prompts file's lines.
    pub fn prompt_source(
        &self,
        spec: Option<&PromptSpec>,
        ctx: &BenchContext,
    ) -> Result<PromptSource, BenchmarkError> {
        let writer = self
            .writer(&ctx.models)
            .map_err(|p| BenchmarkError::Params(p.message))?;
        match writer {
            PromptWriter::Model(model) => {
                let loaded = load_model(model, ctx)?;
                let prompts = Prompts::load(spec, &loaded.model, ctx)?;
                let mut context = loaded.context;
                context["prompts"] = prompts.describe();
                Ok(PromptSource {
                    setup: loaded.setup,
                    context,
                    tokenizer: loaded.model.tokenizer.as_ref().ok().cloned(),
                    prompts: SourcePrompts::Ids {
                        prompts,
                        vocab_size: loaded.model.architecture.vocab_size,
                    },
                })
            }
            PromptWriter::TokenizerFile(path) => {
                let full = ctx.campaign_dir.join(path);
                let tokenizer = TextTokenizer::from_file(&full).map_err(|e| {
                    BenchmarkError::Params(format!(
                        "tokenizer = {:?}: {e}; allowed: a tokenizer.json (Hugging Face's format), relative to the campaign file",
                        path.display().to_string()
                    ))
                })?;
                let vocab_size = tokenizer.vocab_size();
                let prompts = Prompts::load_with(spec, Ok(&tokenizer), vocab_size, ctx)?;
                Ok(PromptSource {
                    setup: Vec::new(),
                    context: json!({
                        "tokenizer": full.display().to_string(),
                        "vocab_size": vocab_size,
                        "prompts": prompts.describe(),
                    }),
                    tokenizer: Some(tokenizer),
                    prompts: SourcePrompts::Ids {
                        prompts,
                        vocab_size,
                    },
                })
            }
            PromptWriter::Server => {
                let spec = spec.ok_or_else(|| {
                    BenchmarkError::Params(
                        "without a tokenizer the prompts come from a file: prompts = { file = … }"
                            .into(),
                    )
                })?;
                let (full, mut lines) = read_prompt_lines(spec, ctx)?;
                // Sent whole, an empty line would be an empty prompt, which
                // servers refuse.
                lines.retain(|line| !line.is_empty());
                Ok(PromptSource {
                    setup: Vec::new(),
                    context: json!({
                        "tokenizer": "none: lengths in tokens are the server's usage counts",
                        "prompts": {
                            "source": "prompts file, each line sent whole as text",
                            "file": full.display().to_string(),
                            "prompts": lines.len(),
                            "bytes": lines.iter().map(String::len).sum::<usize>(),
                            "prompt_tokens": "as the server counts them: server_prompt_tokens",
                        },
                    }),
                    tokenizer: None,
                    prompts: SourcePrompts::Lines(lines),
                })
            }
        }
    }

    /// What each request sends: token ids to `/completions`, the decoded
    /// text to `/chat/completions`.
    pub fn prompts(
        &self,
        requests: &[Request],
        tokenizer: Option<&TextTokenizer>,
    ) -> Result<Vec<RequestPrompt>, BenchmarkError> {
        requests
            .iter()
            .map(|r| self.prompt(&r.prompt, tokenizer))
            .collect()
    }

    pub fn prompt(
        &self,
        tokens: &[u32],
        tokenizer: Option<&TextTokenizer>,
    ) -> Result<RequestPrompt, BenchmarkError> {
        match self.api {
            EndpointApi::Completions => Ok(RequestPrompt::Tokens(tokens.to_vec())),
            EndpointApi::Chat => {
                let tokenizer = tokenizer.ok_or_else(|| {
                    BenchmarkError::Params(
                        "api = \"chat\" sends text: the token-id prompts need a tokenizer to be written as text (the campaign model's, or tokenizer = \"…/tokenizer.json\")".into(),
                    )
                })?;
                Ok(RequestPrompt::Text(tokenizer.decode(tokens)?))
            }
        }
    }

    /// The report's description of the target, credentials redacted.
    pub fn describe(&self) -> serde_json::Value {
        json!({
            "url": redact_url(self.url),
            "api": self.api,
            "served_model": self.served_model_name(),
            "api_key_env": self.api_key_env,
            "request_timeout_s": self.request_timeout_s,
            "error_budget_pct": self.error_budget_pct,
            "ignore_eos": self.ignore_eos,
        })
    }
}

impl PromptSource {
    /// The vocabulary random token ids are drawn from; none when the
    /// prompts are whole text lines.
    pub fn vocab_size(&self) -> Option<usize> {
        match &self.prompts {
            SourcePrompts::Ids { vocab_size, .. } => Some(*vocab_size),
            SourcePrompts::Lines(_) => None,
        }
    }

    /// A seeded workload of `count` requests (output lengths and arrivals
    /// as in-process) and what each sends. Token-id prompts take
    /// `prompt_tokens`; text lines are sent whole, request `i` line `i`.
    #[allow(clippy::too_many_arguments)]
    pub fn requests(
        &self,
        target: &EndpointTarget<'_>,
        seed: u64,
        count: usize,
        prompt_tokens: Option<LengthDistribution>,
        output_tokens: LengthDistribution,
        arrivals: Option<Arrivals>,
    ) -> Result<(Vec<Request>, Vec<RequestPrompt>), BenchmarkError> {
        match &self.prompts {
            SourcePrompts::Ids {
                prompts,
                vocab_size,
            } => {
                let prompt_tokens = prompt_tokens.ok_or_else(|| {
                    BenchmarkError::Params(
                        "prompt_tokens is missing: token-id prompts need their lengths".into(),
                    )
                })?;
                let mut requests = generate_requests(
                    seed,
                    &WorkloadSpec {
                        requests: count,
                        prompt_tokens,
                        output_tokens,
                        vocab_size: *vocab_size,
                        arrivals,
                    },
                );
                prompts.apply_to(&mut requests);
                let sent = target.prompts(&requests, self.tokenizer.as_ref())?;
                Ok((requests, sent))
            }
            SourcePrompts::Lines(lines) => {
                // Output lengths and arrivals are drawn as for any
                // workload; the one-id prompts drawn with them are not sent.
                let mut requests = generate_requests(
                    seed,
                    &WorkloadSpec {
                        requests: count,
                        prompt_tokens: LengthDistribution::fixed(Tokens::new_const(1)),
                        output_tokens,
                        vocab_size: 1,
                        arrivals,
                    },
                );
                let sent = requests
                    .iter_mut()
                    .zip(lines.iter().cycle())
                    .map(|(request, line)| {
                        request.prompt.clear();
                        RequestPrompt::Text(line.clone())
                    })
                    .collect();
                Ok((requests, sent))
            }
        }
    }
}
