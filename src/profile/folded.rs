use std::collections::BTreeMap;
use std::path::Path;

use super::{ProfileError, UNATTRIBUTED_FRAME};

/// Collapsed stacks: root first, one line per distinct stack with its
/// sample count (Brendan Gregg's folded format, as inferno reads it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FoldedStacks {
    stacks: BTreeMap<String, u64>,
}

/// Samples of one function across a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSamples {
    pub function: String,
    /// Samples where it was the innermost frame (its own work).
    pub self_samples: u64,
    /// Samples where it was anywhere on the stack (counted once per stack).
    pub total_samples: u64,
}

/// Rust symbol hashes (`::h0123456789abcdef`) differ between builds; they
/// would stop two profiles of the same code from lining up.
fn clean_frame(name: &str) -> String {
    let name = match name.rfind("::h") {
        Some(i) if name.len() - i == 19 && name[i + 3..].chars().all(|c| c.is_ascii_hexdigit()) => {
            &name[..i]
        }
        _ => name,
    };
    // `;` separates frames in the folded format.
    name.replace(';', ":")
}

impl FoldedStacks {
    /// From stacks given root first.
    pub fn from_stacks(stacks: impl IntoIterator<Item = (Vec<String>, u64)>) -> Self {
        let mut folded = Self::default();
        for (frames, count) in stacks {
            if count == 0 || frames.is_empty() {
                continue;
            }
            let line = frames
                .iter()
                .map(|f| clean_frame(f))
                .collect::<Vec<_>>()
                .join(";");
            *folded.stacks.entry(line).or_default() += count;
        }
        folded
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ProfileError> {
        let mut stacks = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed = line
                .rsplit_once(' ')
                .and_then(|(stack, count)| Some((stack, count.trim().parse::<u64>().ok()?)));
            let Some((stack, count)) = parsed else {
                return Err(ProfileError::Parse {
                    path: path.to_path_buf(),
                    line: index + 1,
                });
            };
            *stacks.entry(stack.to_string()).or_default() += count;
        }
        Ok(Self { stacks })
    }

    pub fn read(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn to_text(&self) -> String {
        self.lines().map(|l| format!("{l}\n")).collect()
    }

    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.stacks.iter().map(|(s, c)| format!("{s} {c}"))
    }

    /// Stacks as (frames root first, samples).
    pub fn stacks(&self) -> impl Iterator<Item = (Vec<&str>, u64)> {
        self.stacks
            .iter()
            .map(|(s, c)| (s.split(';').collect(), *c))
    }

    pub fn total_samples(&self) -> u64 {
        self.stacks.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.total_samples() == 0
    }

    /// Self and total samples per function, most self samples first. The
    /// first frame of each stack is the thread name and is not a function.
    pub fn functions(&self) -> Vec<FunctionSamples> {
        let mut by_name: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for (frames, count) in self.stacks() {
            let functions = &frames[1.min(frames.len())..];
            if let Some(leaf) = functions.last() {
                by_name.entry(leaf).or_default().0 += count;
            }
            let mut seen: Vec<&str> = Vec::with_capacity(functions.len());
            for f in functions {
                if !seen.contains(f) {
                    seen.push(f);
                    by_name.entry(f).or_default().1 += count;
                }
            }
        }
        let mut functions: Vec<FunctionSamples> = by_name
            .into_iter()
            .map(
                |(function, (self_samples, total_samples))| FunctionSamples {
                    function: function.to_string(),
                    self_samples,
                    total_samples,
                },
            )
            .collect();
        functions.sort_by(|a, b| {
            b.self_samples
                .cmp(&a.self_samples)
                .then(b.total_samples.cmp(&a.total_samples))
                .then(a.function.cmp(&b.function))
        });
        functions
    }

    /// Takes out the stack older profiles kept their lost samples under
    /// (`[unattributed]`) and returns its count: those samples were never
    /// recorded, so they belong to no function and to no share.
    pub fn take_lost(&mut self) -> u64 {
        let mut taken = 0;
        self.stacks.retain(|stack, count| {
            let is_lost = stack.rsplit(';').next() == Some(UNATTRIBUTED_FRAME);
            if is_lost {
                taken += *count;
            }
            !is_lost
        });
        taken
    }

    /// Adds another profile's stacks (e.g. several benchmarks of a day).
    pub fn merge(&mut self, other: &FoldedStacks) {
        for (s, c) in &other.stacks {
            *self.stacks.entry(s.clone()).or_default() += c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::UNATTRIBUTED_THREAD;

    fn stacks() -> FoldedStacks {
        FoldedStacks::parse(
            "main;run;a;leaf 6\nmain;run;b 3\nmain;run;a 1\nmain;rec;rec;leaf 2\n",
            Path::new("t"),
        )
        .unwrap()
    }

    #[test]
    fn self_and_total_samples_per_function() {
        let f = stacks().functions();
        let get = |n: &str| f.iter().find(|x| x.function == n).unwrap().clone();
        assert_eq!(
            (get("leaf").self_samples, get("leaf").total_samples),
            (8, 8)
        );
        assert_eq!((get("a").self_samples, get("a").total_samples), (1, 7));
        assert_eq!((get("run").self_samples, get("run").total_samples), (0, 10));
        // Recursion counts once per stack.
        assert_eq!(get("rec").total_samples, 2);
        assert_eq!(f[0].function, "leaf");
        assert_eq!(stacks().total_samples(), 12);
        // The thread name (first frame) is not a function.
        assert!(f.iter().all(|x| x.function != "main"));
    }

    #[test]
    fn the_lost_samples_of_older_profiles_are_taken_out() {
        let text = format!(
            "main;run;a 30\n{UNATTRIBUTED_THREAD};{UNATTRIBUTED_FRAME} 90\nmain;run;b 10\n"
        );
        let mut s = FoldedStacks::parse(&text, Path::new("t")).unwrap();
        assert_eq!(s.take_lost(), 90);
        assert_eq!(s.total_samples(), 40);
        assert!(
            s.functions()
                .iter()
                .all(|f| f.function != UNATTRIBUTED_FRAME)
        );
        assert_eq!(s.take_lost(), 0);
    }

    #[test]
    fn text_round_trips_and_hashes_are_dropped() {
        let s = stacks();
        assert_eq!(
            FoldedStacks::parse(&s.to_text(), Path::new("t")).unwrap(),
            s
        );
        let hashed = FoldedStacks::from_stacks([(
            vec![
                "t".into(),
                "crate::f::h0123456789abcdef".into(),
                "x;y".into(),
            ],
            2,
        )]);
        assert_eq!(hashed.to_text(), "t;crate::f;x:y 2\n");
        assert!(FoldedStacks::parse("no count here", Path::new("p")).is_err());
    }
}
