//! Numbers a campaign may hold, each with its documented range. A field
//! typed with one of these cannot hold NaN, an infinity, a negative count
//! or 1e300 seconds: the value is refused while the file is read, and the
//! message says what was found and what is allowed. The Limits tables of
//! docs/campaign-author.md list the same ranges.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The compute threads a run may ask for.
pub const MAX_THREADS: usize = 1024;

/// A range of whole numbers, with what they count.
pub trait IntRange {
    const MIN: u64;
    const MAX: u64;
    const WHAT: &'static str;
}

/// A range of real numbers (finite), with their unit. `MIN_OPEN` excludes
/// the minimum itself (a duration or a rate must be above zero).
pub trait FloatRange {
    const MIN: f64;
    const MIN_OPEN: bool;
    const MAX: f64;
    const WHAT: &'static str;
}

/// A whole number within `R`.
pub struct Int<R: IntRange>(u64, PhantomData<R>);

/// A finite real number within `R`.
pub struct Real<R: FloatRange>(f64, PhantomData<R>);

impl<R: IntRange> Int<R> {
    /// A value known to be in range (defaults written in code).
    pub const fn new_const(value: u64) -> Self {
        assert!(value >= R::MIN && value <= R::MAX);
        Self(value, PhantomData)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// As a size or an index; every range here fits in `usize`.
    pub fn usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }

    pub fn allowed() -> String {
        format!(
            "a whole number of {} from {} to {}",
            R::WHAT,
            R::MIN,
            R::MAX
        )
    }

    pub fn check(value: i128) -> Result<Self, String> {
        if value < i128::from(R::MIN) || value > i128::from(R::MAX) {
            return Err(format!("found {value}; allowed: {}", Self::allowed()));
        }
        Ok(Self(value as u64, PhantomData))
    }

    /// Parses a flag's text (a clap value parser).
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: i128 = text.trim().parse().map_err(|_| {
            format!(
                "{text:?} is not a whole number; allowed: {}",
                Self::allowed()
            )
        })?;
        Self::check(value)
    }
}

impl<R: FloatRange> Real<R> {
    pub const fn new_const(value: f64) -> Self {
        Self(value, PhantomData)
    }

    pub fn get(self) -> f64 {
        self.0
    }

    pub fn allowed() -> String {
        if R::MIN_OPEN {
            format!(
                "a number of {} above {} and at most {}",
                R::WHAT,
                R::MIN,
                R::MAX
            )
        } else {
            format!("a number of {} from {} to {}", R::WHAT, R::MIN, R::MAX)
        }
    }

    pub fn check(value: f64) -> Result<Self, String> {
        let above_min = if R::MIN_OPEN {
            value > R::MIN
        } else {
            value >= R::MIN
        };
        if !(value.is_finite() && above_min && value <= R::MAX) {
            return Err(format!(
                "found {}; allowed: {}",
                compact_number(value),
                Self::allowed()
            ));
        }
        Ok(Self(value, PhantomData))
    }

    /// Parses a flag's text (a clap value parser).
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a number; allowed: {}", Self::allowed()))?;
        Self::check(value)
    }
}

/// A number as a person wrote it: `1e300` rather than its 301 digits, so an
/// error message about an extreme value stays one line long.
pub fn compact_number(value: f64) -> String {
    let magnitude = value.abs();
    if value.is_finite() && value != 0.0 && !(1e-4..1e9).contains(&magnitude) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

// Manual impls: derives would require the marker types to implement them.
impl<R: IntRange> Clone for Int<R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R: IntRange> Copy for Int<R> {}
impl<R: IntRange> PartialEq for Int<R> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<R: IntRange> fmt::Debug for Int<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl<R: IntRange> fmt::Display for Int<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl<R: FloatRange> Clone for Real<R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R: FloatRange> Copy for Real<R> {}
impl<R: FloatRange> PartialEq for Real<R> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<R: FloatRange> fmt::Debug for Real<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl<R: FloatRange> fmt::Display for Real<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<R: IntRange> Serialize for Int<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}
impl<R: FloatRange> Serialize for Real<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

struct IntVisitor<R>(PhantomData<R>);

impl<R: IntRange> Visitor<'_> for IntVisitor<R> {
    type Value = Int<R>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Int::<R>::allowed())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Int::check(i128::from(v)).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Int::check(i128::from(v)).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // 64.0 is a whole number written as a float: accept it; 2.5 is not.
        if v.fract() == 0.0 && v.is_finite() && v.abs() < 9.0e15 {
            Int::check(v as i128).map_err(E::custom)
        } else {
            Err(E::custom(format!(
                "found {}; allowed: {}",
                compact_number(v),
                Int::<R>::allowed()
            )))
        }
    }
}

impl<'de, R: IntRange> Deserialize<'de> for Int<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntVisitor(PhantomData))
    }
}

struct RealVisitor<R>(PhantomData<R>);

impl<R: FloatRange> Visitor<'_> for RealVisitor<R> {
    type Value = Real<R>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Real::<R>::allowed())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Real::check(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Real::check(v as f64).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Real::check(v as f64).map_err(E::custom)
    }
}

impl<'de, R: FloatRange> Deserialize<'de> for Real<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RealVisitor(PhantomData))
    }
}

macro_rules! int_ranges {
    ($($(#[$doc:meta])* $name:ident: $min:expr, $max:expr, $what:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub enum $name {}
        impl IntRange for $name {
            const MIN: u64 = $min;
            const MAX: u64 = $max;
            const WHAT: &'static str = $what;
        }
    )*};
}

macro_rules! float_ranges {
    ($($(#[$doc:meta])* $name:ident: $min:expr, $open:expr, $max:expr, $what:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub enum $name {}
        impl FloatRange for $name {
            const MIN: f64 = $min;
            const MIN_OPEN: bool = $open;
            const MAX: f64 = $max;
            const WHAT: &'static str = $what;
        }
    )*};
}

int_ranges! {
    /// Compute threads (`settings.threads`, `--threads`).
    ThreadRange: 1, MAX_THREADS as u64, "compute threads";
    /// Tokens of a prompt, an output or a context: 1 to 1 Mi.
    TokenRange: 1, 1 << 20, "tokens";
    /// Tokens where 0 turns a probe or a shared prefix off.
    OptionalTokenRange: 0, 1 << 20, "tokens";
    /// Repetitions of an operation: requests, ops, tasks, keys, steps.
    CountRange: 1, 100_000_000, "operations";
    /// Entries of a cache, 0 for none.
    EntryRange: 0, 100_000_000, "entries";
    /// Parallel workers, producers, agents, sequences, levels, batch.
    ParallelRange: 1, 4096, "workers";
    /// I/O requests kept in flight: NVMe queues take up to 64K, but past a
    /// few hundred threads of positioned reads only add scheduling.
    QueueDepthRange: 1, 256, "requests in flight";
    /// Timed iterations of a case.
    IterationRange: 1, 10_000_000, "iterations";
    /// Untimed warm-up iterations.
    WarmupRange: 0, 1_000_000, "warm-up iterations";
    /// Raw samples kept per metric in a report.
    RawSampleRange: 1, 10_000_000, "raw samples";
    /// Profile sampling frequency.
    HzRange: 1, 1000, "samples per second (Hz)";
    /// Sizes in KiB: blocks and values, 1 KiB to 1 GiB.
    KibRange: 1, 1 << 20, "KiB";
    /// Sizes in MiB: files and inputs, 1 MiB to 1 TiB.
    MibRange: 1, 1 << 20, "MiB";
    /// KiB kept on purpose per sample by a planted leak, 0 for none.
    LeakKibRange: 0, 1 << 20, "KiB";
    /// Model and KV cache dimensions: layers, heads, head size, block tokens.
    DimensionRange: 1, 1 << 16, "elements";
    /// A sampling interval in milliseconds: 1 ms to one hour.
    IntervalMsRange: 1, 3_600_000, "milliseconds";
}

float_ranges! {
    /// Durations in seconds: a millisecond (below it the clock's own cost
    /// dominates) to a week.
    SecondsRange: 0.001, false, 604_800.0, "seconds";
    /// Pauses that may be none: a user's think time, 0 to an hour.
    PauseRange: 0.0, false, 3_600.0, "seconds";
    /// Latency objectives in milliseconds: a microsecond to an hour.
    MillisRange: 0.001, false, 3_600_000.0, "milliseconds";
    /// Arrival rates: from one per 1000 s to a million per second.
    RateRange: 0.001, false, 1_000_000.0, "arrivals per second";
    /// Percentages that may reach 100.
    PercentRange: 0.0, false, 100.0, "percent";
    /// Thresholds in percent: above 0, at most 1000.
    ThresholdRange: 0.0, true, 1000.0, "percent";
    /// Memory growth in MiB or MiB per minute: 0 to 1 TiB.
    MibAmountRange: 0.0, false, 1_048_576.0, "MiB";
    /// Shape parameters of distributions (Zipf's s, log-normal σ).
    ShapeRange: 0.0, true, 100.0, "(shape parameter)";
    /// Multiplying factors: above 0, at most 1000.
    FactorRange: 0.0, true, 1000.0, "(factor)";
}

pub type Threads = Int<ThreadRange>;
pub type Tokens = Int<TokenRange>;
pub type OptionalTokens = Int<OptionalTokenRange>;
pub type Count = Int<CountRange>;
pub type Entries = Int<EntryRange>;
pub type Parallel = Int<ParallelRange>;
pub type QueueDepth = Int<QueueDepthRange>;
pub type Iterations = Int<IterationRange>;
pub type Warmup = Int<WarmupRange>;
pub type RawSamples = Int<RawSampleRange>;
pub type Hz = Int<HzRange>;
pub type Kib = Int<KibRange>;
pub type Mib = Int<MibRange>;
pub type LeakKib = Int<LeakKibRange>;
pub type Dimension = Int<DimensionRange>;
pub type IntervalMs = Int<IntervalMsRange>;
pub type Seconds = Real<SecondsRange>;
pub type PauseSeconds = Real<PauseRange>;
pub type Millis = Real<MillisRange>;
pub type Rate = Real<RateRange>;
pub type Percent = Real<PercentRange>;
pub type ThresholdPct = Real<ThresholdRange>;
pub type MibAmount = Real<MibAmountRange>;
pub type Shape = Real<ShapeRange>;
pub type Factor = Real<FactorRange>;

/// Parses `--threads` (a clap value parser).
pub fn parse_threads(text: &str) -> Result<Threads, String> {
    Threads::parse(text)
}

/// Parses `--threshold-pct`.
pub fn parse_threshold_pct(text: &str) -> Result<f64, String> {
    ThresholdPct::parse(text).map(ThresholdPct::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Limits tables of docs/campaign-author.md quote every range
    /// exactly as errors say it.
    #[test]
    fn every_range_is_documented_in_the_docs() {
        let doc = include_str!("../../docs/campaign-author.md");
        for allowed in [
            Threads::allowed(),
            Tokens::allowed(),
            OptionalTokens::allowed(),
            Count::allowed(),
            Entries::allowed(),
            Parallel::allowed(),
            QueueDepth::allowed(),
            Iterations::allowed(),
            Warmup::allowed(),
            RawSamples::allowed(),
            Hz::allowed(),
            Kib::allowed(),
            Mib::allowed(),
            LeakKib::allowed(),
            Dimension::allowed(),
            IntervalMs::allowed(),
            Seconds::allowed(),
            Millis::allowed(),
            Rate::allowed(),
            Percent::allowed(),
            ThresholdPct::allowed(),
            MibAmount::allowed(),
            Shape::allowed(),
            Factor::allowed(),
        ] {
            assert!(doc.contains(&format!("| {allowed} |")), "{allowed}");
        }
    }

    #[derive(Debug, Deserialize)]
    struct Fields {
        threads: Threads,
        timeout_s: Seconds,
    }

    fn parse(text: &str) -> Result<Fields, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn numbers_outside_their_range_are_refused_with_what_is_allowed() {
        let ok = parse("threads = 2\ntimeout_s = 1.5").unwrap();
        assert_eq!((ok.threads.get(), ok.timeout_s.get()), (2, 1.5));
        // A whole number written as a float is still a whole number.
        assert_eq!(
            parse("threads = 2.0\ntimeout_s = 3").unwrap().threads.get(),
            2
        );
        for (text, found) in [
            (
                "threads = 0\ntimeout_s = 1",
                "found 0; allowed: a whole number of compute threads from 1 to 1024",
            ),
            ("threads = 1000000\ntimeout_s = 1", "found 1000000"),
            ("threads = -1\ntimeout_s = 1", "found -1"),
            ("threads = 2.5\ntimeout_s = 1", "found 2.5"),
            (
                "threads = 1\ntimeout_s = 1e300",
                "found 1e300; allowed: a number of seconds from 0.001 to 604800",
            ),
            ("threads = 1\ntimeout_s = nan", "found NaN"),
            ("threads = 1\ntimeout_s = -inf", "found -inf"),
            ("threads = 1\ntimeout_s = 0", "found 0"),
            ("threads = 1\ntimeout_s = 1e-300", "found 1e-300"),
        ] {
            let message = parse(text).unwrap_err();
            assert!(message.contains(found), "{text}: {message}");
        }
        let wrong_type = parse("threads = \"two\"\ntimeout_s = 1").unwrap_err();
        assert!(
            wrong_type.contains("expected a whole number of compute threads from 1 to 1024"),
            "{wrong_type}"
        );
    }

    #[test]
    fn flags_are_checked_like_fields() {
        assert_eq!(parse_threads("2").map(Threads::get), Ok(2));
        assert!(parse_threads("0").unwrap_err().contains("from 1 to 1024"));
        assert!(parse_threshold_pct("-5").is_err());
        assert!(parse_threshold_pct("nan").is_err());
        assert_eq!(parse_threshold_pct("7.5"), Ok(7.5));
    }
}
