//! What the serving kinds (`full_inference`, `scaling`, `endurance`) share
//! to run against an OpenAI-compatible endpoint instead of the in-process
//! engine: the params (`endpoint`, `api`, `served_model`, `api_key_env`,
//! `request_timeout_s`, `error_budget_pct`, `ignore_eos`), their checks,
//! the client and its runtime, the prompts each request sends, and the
//! report's description of the target.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::workload::Request;
use super::{BenchmarkError, ParamProblem};
use crate::campaign::bounds::{Percent, Seconds};
use crate::components::endpoint::{
    EndpointApi, EndpointClient, EndpointConfig, RequestPrompt, redact_url,
};
use crate::components::inference::TextTokenizer;

pub(super) fn default_request_timeout_s() -> Seconds {
    Seconds::new_const(120.0)
}

pub(super) fn yes() -> bool {
    true
}

pub(super) fn no_errors() -> Percent {
    Percent::new_const(0.0)
}

/// Defines a kind's params struct with the endpoint fields appended, and
/// `endpoint_target()` to read them. A macro, not a flattened struct:
/// serde cannot deny unknown fields through `#[serde(flatten)]`, and a
/// misspelt key must stay an error at its line.
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
            /// `model` then gives the prompts (and the tokenizer that counts
            /// tokens).
            endpoint: Option<String>,
            #[serde(default)]
            api: $crate::components::endpoint::EndpointApi,
            /// The `model` field of each request (default: the model's name).
            served_model: Option<String>,
            /// Environment variable holding the API key (never the key itself).
            api_key_env: Option<String>,
            /// Limit on one request, from sending it to its end.
            #[serde(default = "crate::benchmarks::endpoint_target::default_request_timeout_s")]
            request_timeout_s: $crate::campaign::bounds::Seconds,
            /// Share of requests that may fail before the benchmark fails (exit 4).
            #[serde(default = "crate::benchmarks::endpoint_target::no_errors")]
            error_budget_pct: $crate::campaign::bounds::Percent,
            /// Send vLLM's `ignore_eos`, so outputs have the sampled lengths
            /// (set false for servers that refuse unknown fields).
            #[serde(default = "crate::benchmarks::endpoint_target::yes")]
            ignore_eos: bool,
        }

        impl $name {
            fn endpoint_target(&self) -> Option<$crate::benchmarks::endpoint_target::EndpointTarget<'_>> {
                self.endpoint.as_deref().map(|url| {
                    $crate::benchmarks::endpoint_target::EndpointTarget {
                        url,
                        api: self.api,
                        model: &self.model,
                        served_model: self.served_model.as_deref(),
                        api_key_env: self.api_key_env.as_deref(),
                        request_timeout_s: self.request_timeout_s.get(),
                        error_budget_pct: self.error_budget_pct.get(),
                        ignore_eos: self.ignore_eos,
                    }
                })
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
    /// The campaign model that writes the prompts.
    pub model: &'a str,
    pub served_model: Option<&'a str>,
    pub api_key_env: Option<&'a str>,
    pub request_timeout_s: f64,
    pub error_budget_pct: f64,
    pub ignore_eos: bool,
}

/// A client ready to send: shared by every case of a benchmark.
pub(super) struct Connection {
    pub client: Arc<EndpointClient>,
    pub runtime: Arc<tokio::runtime::Runtime>,
}

impl EndpointTarget<'_> {
    fn config(&self, api_key: Option<String>) -> Result<EndpointConfig, String> {
        Ok(EndpointConfig {
            base_url: self.url.to_string(),
            api: self.api,
            served_model: self.served_model.unwrap_or(self.model).to_string(),
            api_key,
            timeout: Duration::try_from_secs_f64(self.request_timeout_s)
                .map_err(|e| format!("request_timeout_s: {e}"))?,
            ignore_eos: self.ignore_eos,
        })
    }

    /// The campaign check: the URL and settings make a client.
    pub fn check(&self) -> Result<(), ParamProblem> {
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
            })
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
                    BenchmarkError::Params(format!(
                        "api = \"chat\" sends text: model {:?} needs a tokenizer to write the prompts",
                        self.model
                    ))
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
            "served_model": self.served_model.unwrap_or(self.model),
            "api_key_env": self.api_key_env,
            "request_timeout_s": self.request_timeout_s,
            "error_budget_pct": self.error_budget_pct,
            "ignore_eos": self.ignore_eos,
        })
    }
}
