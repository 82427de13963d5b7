//! Reading typed values from a GGUF file's metadata.

use candle_core::quantized::gguf_file::{Content, Value};

/// A metadata integer of any width and sign, when it is a non-negative one.
pub(super) fn metadata_u64(content: &Content, key: &str) -> Option<u64> {
    match content.metadata.get(key)? {
        Value::U8(v) => Some(u64::from(*v)),
        Value::U16(v) => Some(u64::from(*v)),
        Value::U32(v) => Some(u64::from(*v)),
        Value::U64(v) => Some(*v),
        Value::I8(v) => u64::try_from(*v).ok(),
        Value::I16(v) => u64::try_from(*v).ok(),
        Value::I32(v) => u64::try_from(*v).ok(),
        Value::I64(v) => u64::try_from(*v).ok(),
        _ => None,
    }
}

/// A metadata string, when the key holds one.
pub(super) fn metadata_str<'c>(content: &'c Content, key: &str) -> Option<&'c str> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .map(String::as_str)
}
