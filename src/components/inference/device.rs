use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::InferenceError;

/// Where forward passes run, as written in a campaign or on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
    Metal,
}

impl FromStr for DeviceSpec {
    type Err = InferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "metal" => Ok(Self::Metal),
            "cuda" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| InferenceError::UnknownDevice(other.to_string())),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = InferenceError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> Self {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal => write!(f, "metal"),
        }
    }
}

impl DeviceSpec {
    /// Checks that this build can drive the device, without touching it.
    pub fn ensure_compiled(&self) -> Result<(), InferenceError> {
        match self {
            Self::Cpu => Ok(()),
            Self::Cuda(_) if !cfg!(feature = "cuda") => Err(InferenceError::DeviceNotCompiled {
                device: self.to_string(),
                feature: "cuda",
            }),
            Self::Metal if !cfg!(feature = "metal") => Err(InferenceError::DeviceNotCompiled {
                device: self.to_string(),
                feature: "metal",
            }),
            _ => Ok(()),
        }
    }

    pub fn open(&self) -> Result<Device, InferenceError> {
        self.ensure_compiled()?;
        Ok(match self {
            Self::Cpu => Device::Cpu,
            Self::Cuda(n) => Device::new_cuda(*n)?,
            Self::Metal => Device::new_metal(0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for text in ["cpu", "cuda:1", "metal"] {
            let spec: DeviceSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn uncompiled_device_names_the_feature() {
        let err = DeviceSpec::Cuda(0).ensure_compiled().unwrap_err();
        assert!(err.to_string().contains("--features cuda"), "{err}");
    }
}
