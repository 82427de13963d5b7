use serde::de::DeserializeOwned;

/// A problem in a benchmark's `params` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamProblem {
    /// The offending key, when there is one, so the campaign loader can
    /// point at its line.
    pub key: Option<String>,
    pub message: String,
    pub help: Option<String>,
}

impl ParamProblem {
    pub fn at(key: &str, message: impl Into<String>, help: impl Into<String>) -> Self {
        Self {
            key: Some(key.to_string()),
            message: message.into(),
            help: Some(help.into()),
        }
    }
}

/// Deserialises a params table into a kind's parameter struct. serde's
/// message names the field; the key is recovered from it for positioning.
pub(super) fn parse<T: DeserializeOwned>(params: &toml::Table) -> Result<T, ParamProblem> {
    T::deserialize(toml::Value::Table(params.clone())).map_err(|e| {
        let message = e.message().trim().to_string();
        let key = message
            .split('`')
            .nth(1)
            .filter(|k| params.contains_key(*k))
            .map(str::to_string);
        ParamProblem {
            key,
            message,
            help: None,
        }
    })
}
