//! Reading runsc.toml without trusting it: a regular file of bounded size, the runsc flags of
//! `[runsc_config]` checked one by one, and errors that give a key's line and column but never
//! quote the file (a ConfigPath pointing at the wrong file must not copy it into a log).

use std::path::Path;

use crate::error::{Error, Result};

/// runsc.toml is a few hundred bytes; a file this large is not one (and reading `/dev/zero` or a
/// log file whole would grow the shim, which the kernel's OOM killer spares last).
pub const MAX_CONFIG_SIZE: u64 = 1 << 20;

/// runsc global flags the shim sets itself, with what to do instead. runsc takes the last value
/// of a flag, and `[runsc_config]` comes after the shim's own: these would win and break how the
/// shim finds runsc's state and reads its errors.
const SHIM_OWNED_FLAGS: &[(&str, &str)] = &[
    (
        "root",
        "set the top-level key `root` instead (the shim appends the namespace to it)",
    ),
    (
        "log",
        "the shim reads runsc's errors from <bundle>/log.json; use `debug-log` for a log of your own",
    ),
    (
        "log-fd",
        "the shim reads runsc's errors from <bundle>/log.json; use `debug-log` for a log of your own",
    ),
    (
        "log-format",
        "the shim reads runsc's log as JSON; use `debug-log-format` for the debug log",
    ),
];

/// Whether a flag name or value holds what no runsc flag has: NUL, tab, newline, any control.
pub(super) fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A `[runsc_config]` entry becomes the single argument `--key=value`: refuse what would not be
/// read back as that one flag, and the flags the shim owns.
pub(crate) fn check_flag(key: &str, value: &str) -> std::result::Result<(), String> {
    if let Some((_, instead)) = SHIM_OWNED_FLAGS.iter().find(|(k, _)| *k == key) {
        return Err(format!("--{key} is set by the shim itself: {instead}"));
    }
    let name_ok = !key.is_empty()
        && !key.starts_with('-')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(format!(
            "{key:?} is not a runsc flag name: write it without dashes, of [A-Za-z0-9_.-]"
        ));
    }
    if has_control(value) {
        return Err(
            "the value holds a control character (NUL, tab or newline), which no runsc flag takes"
                .to_string(),
        );
    }
    Ok(())
}

/// Checks `[runsc_config]` in the parsed document, where each entry's line is known, so the
/// error names the key and the line (the value itself is never quoted).
pub(super) fn check_runsc_config(
    doc: &toml::de::DeTable<'_>,
    text: &str,
    origin: &str,
) -> Result<()> {
    use toml::de::DeValue;
    let Some((key, value)) = doc.iter().find(|(k, _)| k.get_ref() == "runsc_config") else {
        return Ok(());
    };
    let DeValue::Table(table) = value.get_ref() else {
        return Err(Error::invalid(
            format!(
                "runsc_config in {origin} ({})",
                position(text, Some(key.span()))
            ),
            "must be a table ([runsc_config] with key = \"value\" lines)",
        ));
    };
    for (k, v) in table {
        let name = k.get_ref().as_ref();
        let field = || {
            // The key is printed escaped: it may hold the very characters refused here.
            format!(
                "runsc_config.{} in {origin} ({})",
                name.escape_debug(),
                position(text, Some(k.span()))
            )
        };
        let value = match v.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Boolean(_) | DeValue::Integer(_) => String::new(),
            other => {
                return Err(Error::invalid(
                    field(),
                    format!(
                        "must be a string, boolean or integer, not {}",
                        de_type(other)
                    ),
                ))
            }
        };
        check_flag(name, &value).map_err(|reason| Error::invalid(field(), reason))?;
    }
    Ok(())
}

fn de_type(v: &toml::de::DeValue<'_>) -> &'static str {
    use toml::de::DeValue;
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The top-level key whose entry holds the byte at `at`.
pub(super) fn key_at(doc: &toml::de::DeTable<'_>, at: usize) -> Option<String> {
    doc.iter()
        .find(|(k, v)| k.span().contains(&at) || v.span().contains(&at))
        .map(|(k, _)| k.get_ref().to_string())
}

/// What a known key's value must be, for an error that does not quote the value found.
pub(super) fn expected_type(key: &str) -> &'static str {
    match key {
        "io_uid" | "io_gid" => "an integer from 0 to 4294967295",
        "grouping" | "enable_hibernate_server" => "true or false",
        "guard_mode" => "one of \"enforce\", \"warn\", \"off\"",
        "runsc_config" => "a table of runsc flags",
        _ => "a string",
    }
}

/// `line L, column C` of a byte offset in the text.
pub(super) fn position(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return "position unknown".to_string();
    };
    let before = text.get(..span.start.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

/// toml's syntax messages name the grammar, but a duplicate or unexpected key is quoted in
/// backticks: keep the grammar, drop quoted text longer than a token.
pub(super) fn syntax_message(message: &str) -> String {
    let mut out = String::new();
    for (i, part) in message.lines().next().unwrap_or("").split('`').enumerate() {
        if i % 2 == 1 {
            // Inside backticks: a grammar token such as `=` or `]` is kept, anything else
            // may be the file's content.
            if part.chars().count() <= 3 && !part.chars().any(char::is_alphanumeric) {
                out.push('`');
                out.push_str(part);
                out.push('`');
            } else {
                out.push_str("`...`");
            }
        } else {
            out.push_str(part);
        }
    }
    let out = out.trim().to_string();
    if out.is_empty() {
        "syntax error".to_string()
    } else {
        out
    }
}

/// Reads ConfigPath without trusting it (`crate::fsread`): a regular file only (opening a FIFO
/// would block until a writer comes, and `/dev/zero` never ends), at most [`MAX_CONFIG_SIZE`]
/// bytes. A symlink is followed: files under `/etc` are often links.
pub(super) fn read_config_file(path: &Path) -> Result<String> {
    use crate::fsread::{read_regular_to_string, Symlinks};
    read_regular_to_string(path, MAX_CONFIG_SIZE, Symlinks::Follow).map_err(|e| {
        Error::Options(format!(
            "ConfigPath {}: {e}; fix the runtime's options.ConfigPath in containerd's config",
            path.display()
        ))
    })
}
