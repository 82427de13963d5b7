use serde::de::DeserializeOwned;

use crate::campaign::ParamProblem;

/// Deserialises a params table into a kind's parameter struct, keeping
/// the path of the offending value (`geometry.block_tokens[1]`) so the
/// campaign loader can point at its key.
pub(super) fn parse<T: DeserializeOwned>(params: &toml::Table) -> Result<T, ParamProblem> {
    serde_path_to_error::deserialize(toml::Value::Table(params.clone())).map_err(|e| {
        let path = e.path().to_string();
        let message = crate::campaign::plain_message(e.inner().message());
        // An unknown or missing field names its key in the message.
        let named = message
            .split('`')
            .nth(1)
            .filter(|k| !k.is_empty() && !k.contains(' '))
            .map(str::to_string);
        let key = if path == "." || path.is_empty() {
            named
        } else if message.starts_with("missing field") {
            named.map(|k| format!("{path}.{k}"))
        } else {
            Some(path)
        };
        ParamProblem {
            key,
            message,
            help: None,
        }
    })
}
