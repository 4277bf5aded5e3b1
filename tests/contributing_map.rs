//! docs/CONTRIBUTING.md's Architecture table is the one map of the code: every module under src/
//! (each .rs file, each directory module) is named there, and every path the table names exists.
//!
//! A row's first cell is a directory or file; a backticked name in its second cell ending in
//! `.rs` or `/`, or holding a `/`, is a path, relative to that directory, to a directory named
//! earlier in the same row, or to the repository root. `x/mod.rs` is the directory module `x/`.
//! A module's unit tests (`tests.rs`, `tests/` beside it) belong to the module and are not named.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const DOC: &str = "docs/CONTRIBUTING.md";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Architecture section: from its heading to the next one of the same level.
fn architecture(doc: &str) -> &str {
    let start = doc
        .find("## Architecture")
        .unwrap_or_else(|| panic!("{DOC} has no \"## Architecture\" section"));
    let rest = &doc[start + 3..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

fn is_path(token: &str) -> bool {
    !token.starts_with('/')
        && !token.contains(' ')
        && (token.ends_with(".rs") || token.ends_with('/') || token.contains('/'))
}

/// Whether `token` (one `*` allowed) names something in `dir`; the path when it does.
fn resolve(dir: &Path, token: &str) -> Option<PathBuf> {
    let Some((head, tail)) = token.split_once('*') else {
        let path = dir.join(token.trim_end_matches('/'));
        return path.exists().then_some(path);
    };
    let (parent, prefix) = match head.rsplit_once('/') {
        Some((p, f)) => (dir.join(p), f),
        None => (dir.to_path_buf(), head),
    };
    let found = std::fs::read_dir(&parent).ok()?.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.len() >= prefix.len() + tail.len() && name.starts_with(prefix) && name.ends_with(tail)
    });
    found.then(|| parent.join(token))
}

/// Every path the table names, as resolved; the names that resolve to nothing.
fn table_paths(section: &str) -> (BTreeSet<PathBuf>, Vec<String>) {
    let root = root();
    let mut named = BTreeSet::new();
    let mut missing = Vec::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let mut cells = row.trim_matches('|').splitn(2, " | ");
        let first = backticked(cells.next().unwrap_or_default());
        let Some(module) = first.first() else {
            continue;
        };
        let base = root.join(module.trim_end_matches('/'));
        if !base.exists() {
            missing.push(format!("row `{module}`: {} does not exist", base.display()));
            continue;
        }
        named.insert(base.clone());
        let mut dirs = vec![base.clone()];
        for token in backticked(cells.next().unwrap_or_default()) {
            if !is_path(token) {
                continue;
            }
            let found = dirs
                .iter()
                .rev()
                .chain(std::iter::once(&root.to_path_buf()))
                .find_map(|d| resolve(d, token));
            match found {
                Some(path) => {
                    if path.is_dir() {
                        dirs.push(path.clone());
                    }
                    named.insert(path);
                }
                None => missing.push(format!(
                    "row `{module}` names `{token}`, which is not under {module}, a directory \
                     the row names before it, or the repository root"
                )),
            }
        }
    }
    (named, missing)
}

/// Every module under src/: its .rs files and directories, unit tests left out.
fn modules(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name == "tests" || name == "tests.rs" || name == "mod.rs" {
            continue;
        }
        if path.is_dir() {
            out.push(path.clone());
            modules(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_is_on_the_map_and_every_path_on_it_exists() {
    let root = root();
    let doc = std::fs::read_to_string(root.join(DOC)).expect("reading docs/CONTRIBUTING.md");
    let section = architecture(&doc);
    let (named, dangling) = table_paths(section);
    // Text around the table names modules by their path from the repository root.
    let in_text: BTreeSet<PathBuf> = backticked(section)
        .into_iter()
        .filter(|t| t.starts_with("src/"))
        .map(|t| root.join(t.trim_end_matches('/')))
        .collect();
    let mut all = Vec::new();
    modules(&root.join("src"), &mut all);
    let unmapped: Vec<String> = all
        .iter()
        .filter(|m| !named.contains(*m) && !in_text.contains(*m))
        .map(|m| m.strip_prefix(root).unwrap_or(m).display().to_string())
        .collect();
    assert!(
        unmapped.is_empty() && dangling.is_empty(),
        "{DOC}'s Architecture map is out of date.\nmodules under src/ it does not name:\n  {}\n\
         paths it names that do not exist:\n  {}",
        unmapped.join("\n  "),
        dangling.join("\n  ")
    );
}
