//! Weight formats of GGUF files, by the names llama.cpp users know
//! (`q4_0`, `q8_0`, `q4_k`, …), mapped to candle's `GgmlDType`.

use std::fmt;
use std::str::FromStr;

use candle_core::quantized::GgmlDType;
use serde::{Deserialize, Serialize};

use super::InferenceError;

/// A weight type candle can store, quantize to and run on the CPU.
/// (`q8_1` and `q8_k` exist in GGUF only as intermediate activation types.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Quantization {
    F32,
    F16,
    Bf16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
}

impl Quantization {
    pub const ALL: [Self; 13] = [
        Self::F32,
        Self::F16,
        Self::Bf16,
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q8_0,
        Self::Q2K,
        Self::Q3K,
        Self::Q4K,
        Self::Q5K,
        Self::Q6K,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
            Self::Q4_0 => "q4_0",
            Self::Q4_1 => "q4_1",
            Self::Q5_0 => "q5_0",
            Self::Q5_1 => "q5_1",
            Self::Q8_0 => "q8_0",
            Self::Q2K => "q2_k",
            Self::Q3K => "q3_k",
            Self::Q4K => "q4_k",
            Self::Q5K => "q5_k",
            Self::Q6K => "q6_k",
        }
    }

    pub fn allowed() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    pub fn ggml(self) -> GgmlDType {
        match self {
            Self::F32 => GgmlDType::F32,
            Self::F16 => GgmlDType::F16,
            Self::Bf16 => GgmlDType::BF16,
            Self::Q4_0 => GgmlDType::Q4_0,
            Self::Q4_1 => GgmlDType::Q4_1,
            Self::Q5_0 => GgmlDType::Q5_0,
            Self::Q5_1 => GgmlDType::Q5_1,
            Self::Q8_0 => GgmlDType::Q8_0,
            Self::Q2K => GgmlDType::Q2K,
            Self::Q3K => GgmlDType::Q3K,
            Self::Q4K => GgmlDType::Q4K,
            Self::Q5K => GgmlDType::Q5K,
            Self::Q6K => GgmlDType::Q6K,
        }
    }

    /// The type of a tensor in a file, when it is one a model may hold.
    pub fn from_ggml(dtype: GgmlDType) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.ggml() == dtype)
    }

    /// Weights per block: a quantized row's length must be a multiple of it.
    pub fn block_len(self) -> usize {
        self.ggml().block_size()
    }

    /// Whether candle keeps these weights as they are stored (`true`) or
    /// widens them to f32 when it loads them (f32, f16, bf16).
    pub fn stays_quantized(self) -> bool {
        !matches!(self, Self::F32 | Self::F16 | Self::Bf16)
    }

    /// llama.cpp's `general.file_type` for a file mostly of this type.
    pub fn llama_file_type(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q8_0 => 7,
            Self::Q5_0 => 8,
            Self::Q5_1 => 9,
            Self::Q2K => 10,
            Self::Q3K => 12,
            Self::Q4K => 15,
            Self::Q5K => 17,
            Self::Q6K => 18,
            Self::Bf16 => 32,
        }
    }
}

impl FromStr for Quantization {
    type Err = InferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|q| q.name() == wanted || q.name().replace('_', "") == wanted)
            .ok_or_else(|| {
                InferenceError::InvalidConfig(format!(
                    "unknown quantization {s:?}; allowed: {}",
                    Self::allowed()
                ))
            })
    }
}

impl TryFrom<String> for Quantization {
    type Error = InferenceError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Quantization> for String {
    fn from(q: Quantization) -> Self {
        q.name().to_string()
    }
}

impl fmt::Display for Quantization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_allowed_ones() {
        for q in Quantization::ALL {
            assert_eq!(q.name().parse::<Quantization>().unwrap(), q);
            assert_eq!(Quantization::from_ggml(q.ggml()), Some(q));
        }
        assert_eq!("Q4_K".parse::<Quantization>().unwrap(), Quantization::Q4K);
        assert_eq!("q80".parse::<Quantization>().unwrap(), Quantization::Q8_0);
        let err = "iq2_xs".parse::<Quantization>().unwrap_err().to_string();
        assert!(err.contains("q4_0") && err.contains("q6_k"), "{err}");
    }
}
