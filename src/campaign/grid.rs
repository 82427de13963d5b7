//! Lists of values in params, written the way llama-bench's users write
//! them: an array (`[128, 512]`), one number, or a string of comma-separated
//! items where an item is `N`, `FIRST-LAST+STEP` or `FIRST-LAST*FACTOR`
//! (`"128,512"`, `"128-2048*2"` → 128, 256, 512, 1024, 2048).

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::bounds::{Int, IntRange};

/// The most values one list may expand to: a typo such as `"1-1000000+1"`
/// is refused instead of planning a million cases.
pub const MAX_GRID_VALUES: usize = 1000;

/// A non-empty list of values within `R`, in the order written.
pub struct Grid<R: IntRange>(Vec<Int<R>>);

impl<R: IntRange> Grid<R> {
    pub fn values(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().map(|v| v.get())
    }
}

impl<R: IntRange> Deref for Grid<R> {
    type Target = [Int<R>];
    fn deref(&self) -> &[Int<R>] {
        &self.0
    }
}

impl<R: IntRange> Clone for Grid<R> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<R: IntRange> fmt::Debug for Grid<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl<R: IntRange> Serialize for Grid<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Expands one list written as text.
pub fn expand_grid(text: &str) -> Result<Vec<i128>, String> {
    let syntax = "items are N, FIRST-LAST+STEP or FIRST-LAST*FACTOR, separated by commas (e.g. \"128,512\" or \"128-2048*2\")";
    let number = |s: &str| -> Result<i128, String> {
        s.trim()
            .parse::<i128>()
            .map_err(|_| format!("{s:?} is not a whole number; {syntax}"))
    };
    let mut values = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("found an empty item in {text:?}; {syntax}"));
        }
        // A leading '-' is a sign, not a range.
        let Some((first, rest)) = item
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == '-')
            .map(|(at, _)| (&item[..at], &item[at + 1..]))
        else {
            values.push(number(item)?);
            continue;
        };
        let first = number(first)?;
        let (last, step) = match rest.find(['+', '*']) {
            Some(at) => (
                &rest[..at],
                Some((&rest[at..at + 1], number(&rest[at + 1..])?)),
            ),
            None => (rest, None),
        };
        let last = number(last)?;
        if last < first {
            return Err(format!(
                "{item:?} runs backwards ({first} > {last}); {syntax}"
            ));
        }
        if let Some((op, s)) = step
            && ((op == "+" && s < 1) || (op == "*" && (s < 2 || first < 1)))
        {
            return Err(format!(
                "{item:?} never reaches {last}: a step must be ≥ 1, a factor ≥ 2 and start from ≥ 1"
            ));
        }
        let mut value = first;
        while value <= last {
            values.push(value);
            if values.len() > MAX_GRID_VALUES {
                return Err(format!(
                    "{text:?} expands to more than {MAX_GRID_VALUES} values; use a larger step"
                ));
            }
            value = match step {
                None | Some(("+", _)) => value + step.map_or(1, |(_, s)| s),
                Some((_, factor)) => value * factor,
            };
        }
    }
    Ok(values)
}

struct GridVisitor<R>(PhantomData<R>);

impl<R: IntRange> GridVisitor<R> {
    fn checked<E: de::Error>(values: Vec<i128>) -> Result<Grid<R>, E> {
        if values.is_empty() {
            return Err(E::custom(
                "found an empty list; allowed: at least one value",
            ));
        }
        values
            .into_iter()
            .map(Int::check)
            .collect::<Result<Vec<_>, _>>()
            .map(Grid)
            .map_err(E::custom)
    }
}

impl<'de, R: IntRange> Visitor<'de> for GridVisitor<R> {
    type Value = Grid<R>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a list of {} (an array, one number, or a string such as \"128,512\" or \"128-2048*2\")",
            Int::<R>::allowed()
        )
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Self::checked(vec![i128::from(v)])
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Self::checked(vec![i128::from(v)])
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Self::checked(expand_grid(v).map_err(E::custom)?)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut values = Vec::new();
        while let Some(v) = seq.next_element::<Int<R>>()? {
            values.push(v);
        }
        if values.is_empty() {
            return Err(de::Error::custom(
                "found an empty list; allowed: at least one value",
            ));
        }
        Ok(Grid(values))
    }
}

impl<'de, R: IntRange> Deserialize<'de> for Grid<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(GridVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::bounds::TokenRange;

    #[test]
    fn lists_and_ranges_expand_like_llama_bench() {
        assert_eq!(expand_grid("128,512").unwrap(), vec![128, 512]);
        assert_eq!(
            expand_grid("128-2048*2").unwrap(),
            vec![128, 256, 512, 1024, 2048]
        );
        assert_eq!(expand_grid("1-4").unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(expand_grid("0-512+256, 64").unwrap(), vec![0, 256, 512, 64]);
        for (bad, says) in [
            ("", "empty item"),
            ("128,,512", "empty item"),
            ("abc", "not a whole number"),
            ("512-128", "runs backwards"),
            ("1-10*1", "factor ≥ 2"),
            ("0-10*2", "start from ≥ 1"),
            ("1-10+0", "step must be ≥ 1"),
            ("1-100000", "more than 1000 values"),
        ] {
            let err = expand_grid(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[derive(Debug, Deserialize)]
    struct P {
        lengths: Grid<TokenRange>,
    }

    #[test]
    fn every_spelling_deserialises_and_is_bounded() {
        let parse =
            |t: &str| toml::from_str::<P>(t).map(|p| p.lengths.values().collect::<Vec<_>>());
        assert_eq!(parse("lengths = [128, 512]").unwrap(), vec![128, 512]);
        assert_eq!(parse("lengths = 64").unwrap(), vec![64]);
        assert_eq!(
            parse("lengths = \"128-512*2\"").unwrap(),
            vec![128, 256, 512]
        );
        let err = parse("lengths = \"0,128\"").unwrap_err().to_string();
        assert!(err.contains("found 0; allowed"), "{err}");
        let err = parse("lengths = []").unwrap_err().to_string();
        assert!(err.contains("empty list"), "{err}");
    }
}
