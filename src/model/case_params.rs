//! Case parameters that analysis reads back from results, as typed records:
//! a kind writes one with [`CaseParams::to_parameters`], the roofline and
//! the scaling curves read it with [`CaseParams::from_parameters`], so the
//! key names live in one place. Other keys in the same `parameters` object
//! are the kind's own.

use serde::Serialize;
use serde::de::DeserializeOwned;

pub trait CaseParams: Serialize + DeserializeOwned {
    /// The record as a JSON object, to which a kind may add its own keys.
    fn to_parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The record, if `parameters` holds one.
    fn from_parameters(parameters: &serde_json::Value) -> Option<Self> {
        Self::deserialize(parameters).ok()
    }
}

/// A case that runs one phase of inference at a prompt length and batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct InferenceCaseParams {
    pub prompt_len: usize,
    pub batch_size: usize,
    /// Generated tokens per sequence, for decode cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<usize>,
}

impl CaseParams for InferenceCaseParams {}

/// A case that is one level of a scaling curve along `dimension`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ScalingCaseParams {
    pub dimension: String,
    pub level: usize,
}

impl CaseParams for ScalingCaseParams {}

/// The phase of inference a kind's cases measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InferencePhase {
    Prefill,
    Decode,
}

impl InferencePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prefill => "prefill",
            Self::Decode => "decode",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_extra_keys_and_a_missing_one_is_no_record() {
        let mut p = InferenceCaseParams {
            prompt_len: 128,
            batch_size: 2,
            output_tokens: Some(16),
        }
        .to_parameters();
        p["planted_slowdown_pct"] = serde_json::json!(5.0);
        assert_eq!(
            InferenceCaseParams::from_parameters(&p),
            Some(InferenceCaseParams {
                prompt_len: 128,
                batch_size: 2,
                output_tokens: Some(16)
            })
        );
        assert_eq!(
            ScalingCaseParams::from_parameters(&p),
            None,
            "no dimension or level"
        );
    }
}
