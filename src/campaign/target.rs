use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::stats::Summary;

/// How a measured statistic must compare with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetOp {
    #[serde(rename = "<")]
    Less,
    #[serde(rename = "<=")]
    LessOrEqual,
    #[serde(rename = ">")]
    Greater,
    #[serde(rename = ">=")]
    GreaterOrEqual,
}

impl TargetOp {
    pub fn holds(self, measured: f64, threshold: f64) -> bool {
        match self {
            Self::Less => measured < threshold,
            Self::LessOrEqual => measured <= threshold,
            Self::Greater => measured > threshold,
            Self::GreaterOrEqual => measured >= threshold,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Self::Less => "<",
            Self::LessOrEqual => "<=",
            Self::Greater => ">",
            Self::GreaterOrEqual => ">=",
        }
    }
}

/// A target such as `ttft_ms.p99 < 100`: metric, statistic, comparison, threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub metric: String,
    pub stat: String,
    pub comparison: TargetOp,
    pub threshold: f64,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{} {} {}",
            self.metric,
            self.stat,
            self.comparison.symbol(),
            self.threshold
        )
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const FORM: &str =
            "write targets as \"<metric>.<stat> <op> <number>\", e.g. \"ttft_ms.p99 < 100\"";
        let (lhs, op, rhs) = ["<=", ">=", "<", ">"]
            .iter()
            .find_map(|op| text.split_once(op).map(|(l, r)| (l.trim(), *op, r.trim())))
            .ok_or_else(|| format!("no comparison operator (<, <=, >, >=) in {text:?}; {FORM}"))?;
        let comparison = match op {
            "<" => TargetOp::Less,
            "<=" => TargetOp::LessOrEqual,
            ">" => TargetOp::Greater,
            _ => TargetOp::GreaterOrEqual,
        };
        let (metric, stat) = lhs
            .split_once('.')
            .ok_or_else(|| format!("{lhs:?} names no statistic; {FORM}"))?;
        if !Summary::STAT_NAMES.contains(&stat) {
            return Err(format!(
                "unknown statistic {stat:?}; use one of {}",
                Summary::STAT_NAMES.join(", ")
            ));
        }
        let threshold: f64 = rhs
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite())
            .ok_or_else(|| format!("threshold {rhs:?} is not a number; {FORM}"))?;
        Ok(Self {
            metric: metric.to_string(),
            stat: stat.to_string(),
            comparison,
            threshold,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_operator() {
        let t: Target = "ttft_ms.p99 < 100".parse().unwrap();
        assert_eq!(
            (
                t.metric.as_str(),
                t.stat.as_str(),
                t.comparison,
                t.threshold
            ),
            ("ttft_ms", "p99", TargetOp::Less, 100.0)
        );
        assert_eq!(
            "a.mean>=2.5".parse::<Target>().unwrap().comparison,
            TargetOp::GreaterOrEqual
        );
        assert_eq!("a.p99.9 <= 1e3".parse::<Target>().unwrap().stat, "p99.9");
        assert_eq!(
            "a.max > 0".parse::<Target>().unwrap().comparison,
            TargetOp::Greater
        );
    }

    #[test]
    fn explains_malformed_targets() {
        assert!(
            "ttft_ms.p99 100"
                .parse::<Target>()
                .unwrap_err()
                .contains("operator")
        );
        assert!(
            "ttft_ms < 100"
                .parse::<Target>()
                .unwrap_err()
                .contains("statistic")
        );
        assert!(
            "ttft_ms.p42 < 100"
                .parse::<Target>()
                .unwrap_err()
                .contains("p99")
        );
        assert!(
            "ttft_ms.p99 < fast"
                .parse::<Target>()
                .unwrap_err()
                .contains("not a number")
        );
    }

    #[test]
    fn comparisons_hold_at_the_boundary_only_when_inclusive() {
        assert!(!TargetOp::Less.holds(1.0, 1.0));
        assert!(TargetOp::LessOrEqual.holds(1.0, 1.0));
        assert!(!TargetOp::Greater.holds(1.0, 1.0));
        assert!(TargetOp::GreaterOrEqual.holds(1.0, 1.0));
    }
}
