//! Errors from runsc's JSON log (`--log-format=json`).
//!
//! runsc reports why a command failed in its log, not on stderr. Each call reads only what was
//! appended during that call, so an old error in the shared `<bundle>/log.json` is never blamed
//! for a new failure.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;

#[derive(Deserialize)]
struct LogLine {
    #[serde(default)]
    level: String,
    #[serde(default)]
    msg: String,
}

/// The log's length now, to read what a call appends.
pub fn current_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The message of the last `"level":"error"` line written after `offset`.
pub fn last_error_since(path: &Path, offset: u64) -> Option<String> {
    // A FIFO or a device where the log belongs is refused at once, not waited on.
    let mut file = crate::fsread::open_regular_file(path, crate::fsread::Symlinks::Follow).ok()?;
    // A log that shrank was rotated or truncated: read it whole.
    let start = if current_len(path) < offset {
        0
    } else {
        offset
    };
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    last_error(&text)
}

/// The message of the last error line in a JSON log text.
pub fn last_error(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<LogLine>(l).ok())
        .find(|l| l.level == "error" && !l.msg.is_empty())
        .map(|l| l.msg)
}

/// The last non-empty stderr line, for failures that happen before runsc opens its log.
pub fn last_stderr_line(stderr: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_line_wins() {
        let text = "{\"level\":\"error\",\"msg\":\"first\"}\nnot json\n\
                    {\"level\":\"error\",\"msg\":\"second\"}\n{\"level\":\"info\",\"msg\":\"x\"}\n";
        assert_eq!(last_error(text).as_deref(), Some("second"));
        assert_eq!(last_error("{\"level\":\"info\",\"msg\":\"x\"}"), None);
    }

    #[test]
    fn only_what_was_appended_counts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.json");
        std::fs::write(&p, "{\"level\":\"error\",\"msg\":\"old\"}\n").unwrap();
        let off = current_len(&p);
        assert_eq!(last_error_since(&p, off), None);
        std::fs::write(&p, "{\"level\":\"error\",\"msg\":\"new\"}\n").unwrap();
        assert_eq!(last_error_since(&p, 1000).as_deref(), Some("new"));
        assert_eq!(last_error_since(&dir.path().join("missing"), 0), None);
    }

    #[test]
    fn stderr_fallback() {
        assert_eq!(
            last_stderr_line(b"a\nflag provided but not defined: -x\n\n").as_deref(),
            Some("flag provided but not defined: -x")
        );
        assert_eq!(last_stderr_line(b""), None);
    }
}
