//! The size limits on the source: no file under src/ over 600 lines, so each file keeps one
//! concern. Functions over 100 lines are clippy's `too_many_lines` (clippy.toml), warned on in
//! each crate root and denied by the lint run.

use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 600;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_is_over_600_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(!files.is_empty(), "no .rs file under src/");
    let over: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let lines = text.lines().count();
            let rel = path.strip_prefix(root).unwrap_or(path);
            (lines > MAX_FILE_LINES).then(|| format!("{} ({lines} lines)", rel.display()))
        })
        .collect();
    assert!(
        over.is_empty(),
        "files under src/ over {MAX_FILE_LINES} lines (split each by concern): {}",
        over.join(", ")
    );
}
