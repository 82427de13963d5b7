//! The crate's dependencies point one way. Top-level modules sit in layers
//! and may use only modules of a lower layer (or their own); within a
//! module, its files (folders count as one file) form no import cycle.
//! A module's `mod.rs` is its facade: it declares and re-exports its files
//! and may use them, so a use of `super::Name` counts as a use of the file
//! that `mod.rs` re-exports `Name` from.
//!
//! Read from the source text: `crate::name` paths, `use crate::{…}` groups
//! and `super::` paths, test modules left out.
//!
//! The documentation holds together too: README.md is a front page, and
//! every relative link of it and of `docs/` reaches a file and, with an
//! `#anchor`, a heading of that file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Layers, lowest first. A module may use modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    &["stats", "panics", "machine"],
    // Profiles read the process's CPU time from `machine`.
    &["profile"],
    &["model", "components"],
    &["output"],
    &["campaign"],
    &["benchmarks"],
    &["runner"],
    &["analysis"],
    // The results store keeps the nights the analysis reads.
    &["store"],
    &["report"],
    // The workflows shared by several commands (a night's day steps run
    // analyze, calibrate, experiment, roadmap and bisect).
    &["workflows"],
    &["commands"],
    // The binary's own module: argument parsing, using the library by name.
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn src() -> PathBuf {
    root().join("src")
}

/// The files under `dir` whose names end in `.{extension}`, in order.
fn files_with_extension(dir: &Path, extension: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, extension: &str, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, extension, out);
            } else if path.extension().is_some_and(|e| e == extension) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, extension, &mut out);
    out
}

/// The file's code without its `#[cfg(test)]` module and comments.
fn code(path: &Path) -> String {
    let text = fs::read_to_string(path).expect("source is readable");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Identifiers following `prefix` (`crate::` or `super::`), including
/// each name of a `prefix{a, b::c}` group (first segments only).
fn names_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        rest = &rest[at + prefix.len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            let mut depth = 0;
            let mut item = String::new();
            for c in group[..end].chars().chain(std::iter::once(',')) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let first: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !first.is_empty() {
                            names.insert(first);
                        }
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// The top-level module a file belongs to (`None` for lib.rs and main.rs).
fn top_module(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!["lib", "main"].contains(&name)).then(|| name.to_string())
}

fn top_level_modules() -> BTreeSet<String> {
    let files = files_with_extension(&src(), "rs");
    files.iter().filter_map(|f| top_module(f)).collect()
}

/// Top-level module → the top-level modules it uses.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = top_level_modules();
    let files = files_with_extension(&src(), "rs");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(from) = top_module(&file) else {
            continue;
        };
        let used = names_after(&code(&file), "crate::");
        let entry = graph.entry(from.clone()).or_default();
        entry.extend(
            used.into_iter()
                .filter(|m| modules.contains(m) && *m != from),
        );
    }
    graph
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0
            && let Some(cycle) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn every_top_level_module_has_a_layer() {
    for module in top_level_modules() {
        assert!(
            layer_of(&module).is_some(),
            "module {module} is in no layer of tests/library/architecture.rs: place it"
        );
    }
}

#[test]
fn top_level_modules_use_only_lower_layers() {
    let graph = module_graph();
    let mut upward = Vec::new();
    for (from, used) in &graph {
        for to in used {
            if let (Some(a), Some(b)) = (layer_of(from), layer_of(to))
                && a <= b
            {
                upward.push(format!("{from} uses {to}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "uses that do not point to a lower layer: {upward:#?}"
    );
    assert_eq!(find_cycle(&graph), None);
}

/// The unit a file of `dir` belongs to: its file stem, or its sub-folder.
fn unit_in(dir: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(dir).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.strip_suffix(".rs").unwrap_or(first).to_string())
}

/// `Name → file` for what `mod.rs` re-exports (`pub use file::{Name, …}`).
fn reexports(mod_rs: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for statement in mod_rs.split(';') {
        let statement = statement.trim();
        let Some(rest) = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("pub(crate) use "))
            .or_else(|| statement.strip_prefix("pub(super) use "))
        else {
            continue;
        };
        let Some((file, items)) = rest.split_once("::") else {
            continue;
        };
        let items = items.trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.split(" as ").last().unwrap_or("").trim();
            let name = name.rsplit("::").next().unwrap_or(name);
            if !name.is_empty() {
                map.insert(name.to_string(), file.trim().to_string());
            }
        }
    }
    map
}

/// `dir`'s module path from `src/` (`commands`, `analysis::regression`).
fn module_path(dir: &Path) -> String {
    dir.strip_prefix(src())
        .expect("under src")
        .to_string_lossy()
        .replace('/', "::")
}

/// The files of the module in `dir` (its `mod.rs` left out) → the files
/// of it each uses, by `super::` paths or `crate::` paths into the module;
/// a name its `mod.rs` re-exports counts as the file it comes from.
fn file_graph(dir: &Path, files: &[PathBuf]) -> BTreeMap<String, BTreeSet<String>> {
    let mod_rs = code(&dir.join("mod.rs"));
    let exported = reexports(&mod_rs);
    let path = module_path(dir);
    let units: BTreeSet<String> = files
        .iter()
        .filter(|f| f.starts_with(dir) && !f.ends_with(dir.join("mod.rs")))
        .filter_map(|f| unit_in(dir, f))
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Every file below `dir` speaks for its unit, a file of a
    // sub-folder too (it reaches `dir` by `crate::` paths or one
    // `super::` per level).
    for file in files
        .iter()
        .filter(|f| f.starts_with(dir) && **f != dir.join("mod.rs"))
    {
        let from = unit_in(dir, file).expect("a unit");
        let text = code(file);
        let depth = file
            .parent()
            .and_then(|p| p.strip_prefix(dir).ok())
            .map_or(0, |p| p.components().count());
        let mut used = names_after(&text, &"super::".repeat(depth + 1));
        used.extend(names_after(&text, &format!("crate::{path}::")));
        let targets = graph.entry(from.clone()).or_default();
        for name in used {
            let unit = if units.contains(&name) {
                Some(name)
            } else {
                exported.get(&name).cloned()
            };
            if let Some(unit) = unit.filter(|u| *u != from && units.contains(u)) {
                targets.insert(unit);
            }
        }
    }
    graph
}

#[test]
fn files_of_a_module_form_no_cycle() {
    let mut dirs = Vec::new();
    let files = files_with_extension(&src(), "rs");
    for file in &files {
        if file.file_name().is_some_and(|n| n == "mod.rs") {
            dirs.push(file.parent().expect("mod.rs has a folder").to_path_buf());
        }
    }
    let mut cycles = Vec::new();
    for dir in dirs {
        if let Some(cycle) = find_cycle(&file_graph(&dir, &files)) {
            cycles.push(format!("{}: {}", module_path(&dir), cycle.join(" → ")));
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles between files: {cycles:#?}"
    );
}

/// Uses between files of `commands/` that stay, `(from, to)`, each with
/// why. None: what two commands share is a workflow (`workflows/`) or
/// lives lower (`report/`, `store/`, `output/`, `runner/`), and what
/// joins two commands (`fleet run`'s shard is a `campaign run` night) is
/// `commands/mod.rs`'s own code.
const COMMAND_FILE_USES_ALLOWED: &[(&str, &str)] = &[];

/// A command's file adapts its arguments, calls the layers below and
/// prints; it never calls another command's file, whose workflow then
/// belongs below `commands/`. `mod.rs` is the facade and may use them
/// all; what it defines itself (the exit statuses of a finished day, the
/// fleet shard's night) any file may use, and a name it re-exports from
/// a file of `commands/` counts as that file.
#[test]
fn files_of_commands_use_no_other_file_of_commands() {
    let files = files_with_extension(&src(), "rs");
    let graph = file_graph(&src().join("commands"), &files);
    let mut uses = Vec::new();
    for (from, targets) in &graph {
        for to in targets {
            if !COMMAND_FILE_USES_ALLOWED.contains(&(from.as_str(), to.as_str())) {
                uses.push(format!("commands/{from}.rs uses commands/{to}.rs"));
            }
        }
    }
    assert!(
        uses.is_empty(),
        "a command's file uses another's; move what they share below commands/: {uses:#?}"
    );
    // An allowed use that is gone leaves the list.
    for (from, to) in COMMAND_FILE_USES_ALLOWED {
        assert!(
            graph.get(*from).is_some_and(|t| t.contains(*to)),
            "commands/{from}.rs no longer uses commands/{to}.rs: take it off the list"
        );
    }
}

#[test]
fn the_reader_finds_uses_and_groups() {
    let text = "use crate::{model::{A, B}, stats};\nuse crate::output::write;\nlet x = crate::panics::describe(p);\nfoo::crate::not;";
    let names = names_after(text, "crate::");
    assert_eq!(
        names,
        ["model", "output", "panics", "stats"]
            .map(String::from)
            .into()
    );
    let cyclic: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert_eq!(
        find_cycle(&cyclic),
        Some(vec!["a".to_string(), "b".to_string(), "a".to_string()])
    );
}

// The documentation's links.

/// The most lines README.md may have: a front page, the rest in docs/.
const FRONT_PAGE_MAX_LINES: usize = 260;

/// README.md and every Markdown file under docs/.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    files.extend(files_with_extension(&root().join("docs"), "md"));
    files
}

/// Lines outside fenced code blocks, in order.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fence: Option<&str> = None;
    let mut lines = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m => fence = None,
            (None, None) => lines.push(line),
            _ => {}
        }
    }
    lines
}

/// `text` without its code spans (`` `…` ``, closed within a paragraph).
fn without_code_spans(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('`') {
        out.push_str(&rest[..at]);
        let run = rest[at..].len() - rest[at..].trim_start_matches('`').len();
        let after = &rest[at + run..];
        let paragraph = &after[..after.find("\n\n").unwrap_or(after.len())];
        let mut close = None;
        let mut from = 0;
        while let Some(i) = paragraph[from..].find('`') {
            let start = from + i;
            let len = paragraph[start..].len() - paragraph[start..].trim_start_matches('`').len();
            if len == run {
                close = Some(start);
                break;
            }
            from = start + len;
        }
        match close {
            Some(end) => rest = &after[end + run..],
            None => {
                out.push_str(&rest[at..at + run]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The targets of the Markdown links `[text](target)` of a document,
/// outside code; the text may span lines.
fn link_targets(text: &str) -> Vec<String> {
    let prose = without_code_spans(&prose_lines(text).join("\n"));
    let mut targets = Vec::new();
    let mut rest = prose.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let end = rest.find(')').unwrap_or(rest.len());
        let target = rest[..end].split_whitespace().next().unwrap_or("");
        if !target.is_empty() {
            targets.push(target.to_string());
        }
    }
    targets
}

/// GitHub's anchor of a heading: lower case, spaces to `-`, punctuation
/// dropped but `-` and `_`, letters of any script kept.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a document's headings; a repeated one gets `-1`, `-2`, …
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    for line in prose_lines(text) {
        let hashes = line.len() - line.trim_start_matches('#').len();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let n = seen.entry(base.clone()).or_insert(0);
        anchors.insert(if *n == 0 { base } else { format!("{base}-{n}") });
        *n += 1;
    }
    anchors
}

/// A path as the repository names it.
fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// What a relative link from `from` misses, if anything.
fn missing(from: &Path, target: &str) -> Option<String> {
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let file = if path.is_empty() {
        from.to_path_buf()
    } else {
        from.parent().expect("a document has a folder").join(path)
    };
    if !file.exists() {
        return Some(format!("no file {}", shown(&file)));
    }
    let anchor = anchor?;
    if file.is_dir() || file.extension().is_none_or(|e| e != "md") {
        return Some(format!(
            "#{anchor} points into {}, not a Markdown file",
            shown(&file)
        ));
    }
    let text = fs::read_to_string(&file).expect("the target is readable");
    (!anchors(&text).contains(anchor))
        .then(|| format!("no heading of {} has the anchor #{anchor}", shown(&file)))
}

#[test]
fn every_relative_link_of_the_docs_reaches_its_file_and_heading() {
    let mut checked = 0;
    let mut broken = Vec::new();
    for file in doc_files() {
        let text = fs::read_to_string(&file).expect("a document is readable");
        let name = shown(&file);
        for target in link_targets(&text) {
            if ["http://", "https://", "mailto:"]
                .iter()
                .any(|scheme| target.starts_with(scheme))
            {
                continue;
            }
            checked += 1;
            if let Some(what) = missing(&file, &target) {
                broken.push(format!("{name}: link ({target}): {what}"));
            }
        }
    }
    assert!(checked > 0, "no relative link found in README.md and docs/");
    assert!(
        broken.is_empty(),
        "{} broken links:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn the_readme_is_a_front_page() {
    let text = fs::read_to_string(root().join("README.md")).expect("README.md is readable");
    let lines = text.lines().count();
    assert!(
        lines <= FRONT_PAGE_MAX_LINES,
        "README.md has {lines} lines, more than {FRONT_PAGE_MAX_LINES}: it is the front page; move the rest to a page of docs/"
    );
}

#[test]
fn the_link_checker_reads_links_and_headings_as_github_does() {
    assert_eq!(
        slug("Served stacks: `campaign serve`"),
        "served-stacks-campaign-serve"
    );
    assert_eq!(
        slug("Quantized weights and threads on this machine, against llama.cpp"),
        "quantized-weights-and-threads-on-this-machine-against-llamacpp"
    );
    assert_eq!(
        slug("From \"it got slower\" to the commit: `campaign bisect`"),
        "from-it-got-slower-to-the-commit-campaign-bisect"
    );
    assert_eq!(slug("Größe_und Maß – 2×"), "größe_und-maß--2");
    assert_eq!(
        anchors("# A\n## A\n```\n# not a heading\n```\n### A\n#no\n"),
        ["a", "a-1", "a-2"].map(String::from).into()
    );
    assert_eq!(
        link_targets(
            "[x](a.md#b) `[y](code.md)` [two\nlines](#c) [w](https://x.org \"t\")\n```\n[z](fenced.md)\n```\n``[q](code.md)`` a lone ` and [l](l.md)\n"
        ),
        ["a.md#b", "#c", "https://x.org", "l.md"]
    );
    let readme = root().join("README.md");
    assert_eq!(missing(&readme, "docs/README.md"), None);
    assert!(missing(&readme, "docs/nowhere.md").is_some_and(|m| m.contains("no file")));
    assert!(missing(&readme, "#no-such-heading").is_some_and(|m| m.contains("no heading")));
}

// The integration tests.

/// The test binaries: each links the whole crate (a link and about 100 MB
/// of disk apiece), so the integration tests are two, by what they drive.
const TEST_BINARIES: &[&str] = &["cli", "library"];

#[test]
fn the_integration_tests_are_two_binaries() {
    let tests = root().join("tests");
    let mut binaries = Vec::new();
    let mut loose = Vec::new();
    for entry in fs::read_dir(&tests).expect("tests is readable") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .to_string();
        if path.is_dir() && path.join("main.rs").is_file() {
            binaries.push(name);
        } else if path.extension().is_some_and(|e| e == "rs") {
            loose.push(name);
        }
    }
    binaries.sort();
    assert!(
        loose.is_empty(),
        "{loose:?} at the top of tests/ would each be a test binary: make them modules of tests/cli/ (they drive the binary) or tests/library/"
    );
    assert_eq!(binaries, TEST_BINARIES, "test binaries under tests/");
}

/// The attributes (`#[…]` lines) stacked on each `#[test]` of a file.
fn test_attributes(text: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut tests = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if *line != "#[test]" {
            continue;
        }
        let above = lines[..i].iter().rev().take_while(|l| l.starts_with("#["));
        let below = lines[i + 1..].iter().take_while(|l| l.starts_with("#["));
        tests.push(above.chain(below).map(|l| l.to_string()).collect());
    }
    tests
}

/// The binary's tests run side by side on two cores, so a test that
/// depends on timing must say so (`#[serial]`), and the rest that they
/// may run beside others (`#[parallel]`): an unmarked test would run
/// beside a serial one and make its night legitimately noisy.
#[test]
fn every_test_of_the_cli_binary_says_whether_it_may_run_beside_others() {
    let mut unmarked = Vec::new();
    for file in files_with_extension(&root().join("tests/cli"), "rs") {
        let text = fs::read_to_string(&file).expect("readable");
        for (n, attributes) in test_attributes(&text).into_iter().enumerate() {
            let marked = attributes
                .iter()
                .any(|a| a.starts_with("#[serial") || a.starts_with("#[parallel"));
            if !marked {
                unmarked.push(format!("{} (its test number {})", shown(&file), n + 1));
            }
        }
    }
    assert!(
        unmarked.is_empty(),
        "tests with neither #[serial] nor #[parallel]: {unmarked:#?}"
    );
    assert_eq!(
        test_attributes("#[test]\n#[parallel]\nfn a() {}\n#[cfg(unix)]\n#[test]\nfn b() {}"),
        [
            vec!["#[parallel]".to_string()],
            vec!["#[cfg(unix)]".to_string()]
        ]
    );
}
