//! The runtime options containerd sends and the runsc.toml they point to.
//!
//! containerd's CRI plugin sends every non-runc runtime a `runtimeoptions.v1.Options`
//! (`cri.runtimeoptions.v1.Options` up to containerd 1.4) holding `TypeUrl`, `ConfigPath` and,
//! from 1.7, `ConfigBody`. The TOML file is gVisor's `runsc.toml`, read with the same keys and
//! meaning as gVisor's Go shim so an existing file keeps working, plus `guard_mode`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::proto::runtimeoptions::Options as CriOptions;
use crate::proto::runtimeoptions_v14::Options as CriOptionsV14;

/// The only `TypeUrl` gVisor's shim accepts for its TOML options.
pub const RUNSC_OPTIONS_TYPE_URL: &str = "io.containerd.runsc.v1.options";
/// runsc's default state root; the containerd namespace is appended to it.
pub const DEFAULT_ROOT: &str = "/run/containerd/runsc";
/// The runsc binary looked up on PATH when `binary_name` is not set.
pub const DEFAULT_BINARY: &str = "runsc";

const CRI_OPTIONS: &str = "runtimeoptions.v1.Options";
const CRI_OPTIONS_V14: &str = "cri.runtimeoptions.v1.Options";
const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";

/// What the memory guard does when a sandbox's bound by its pod cannot be guaranteed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardMode {
    /// Adjust what can be adjusted, refuse (fail Create) what cannot. The default.
    #[default]
    Enforce,
    /// Adjust what can be adjusted, log violations and go on.
    Warn,
    /// Do nothing beyond what gVisor's own shim does.
    Off,
}

impl fmt::Display for GuardMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GuardMode::Enforce => "enforce",
            GuardMode::Warn => "warn",
            GuardMode::Off => "off",
        })
    }
}

impl FromStr for GuardMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "enforce" => Ok(GuardMode::Enforce),
            "warn" => Ok(GuardMode::Warn),
            "off" => Ok(GuardMode::Off),
            other => Err(Error::invalid(
                "guard_mode",
                format!("{other:?} is not one of \"enforce\", \"warn\", \"off\""),
            )),
        }
    }
}

/// The shim's configuration: the keys of gVisor's runsc.toml, with their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShimConfig {
    /// The runsc binary: a path, or a name looked up on PATH.
    pub binary_name: String,
    /// runsc's state root; `/<namespace>` is appended.
    pub root: String,
    /// Owner of the stdio pipes handed to the container.
    pub io_uid: u32,
    pub io_gid: u32,
    /// A cgroup (relative to the cgroup root) to move the shim into. gVisor's shim parses it and
    /// ignores it; this shim applies it.
    pub shim_cgroup: String,
    /// The shim's log level ("debug", "info", "warn", "error", or logrus' "trace"/"fatal"/"panic").
    pub log_level: String,
    /// A file the shim also logs to; `%ID%` becomes the container id, a trailing `/` a directory.
    pub log_path: String,
    /// One shim process per pod (the default): `start` routes a container to the shim already
    /// serving its pod's sandbox (`shim::grouping`). `false` gives every container a shim of its
    /// own, as gVisor's shim does by default.
    pub grouping: bool,
    /// gVisor's private hibernate task server. Accepted for compatibility and ignored.
    pub enable_hibernate_server: bool,
    /// The memory guard's mode.
    pub guard_mode: GuardMode,
    /// runsc global flags: each `key = "value"` becomes `--key=value` before the sub-command.
    #[serde(deserialize_with = "flag_values")]
    pub runsc_config: BTreeMap<String, String>,
    /// Keys this shim does not know. Kept so they can be reported, never fatal: a runsc.toml
    /// written for a newer gVisor shim must still start pods.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, toml::Value>,
}

impl Default for ShimConfig {
    fn default() -> Self {
        ShimConfig {
            binary_name: DEFAULT_BINARY.to_string(),
            root: DEFAULT_ROOT.to_string(),
            io_uid: 0,
            io_gid: 0,
            shim_cgroup: String::new(),
            log_level: String::new(),
            log_path: String::new(),
            grouping: true,
            enable_hibernate_server: false,
            guard_mode: GuardMode::default(),
            runsc_config: BTreeMap::new(),
            unknown: BTreeMap::new(),
        }
    }
}

/// runsc flag values are strings in gVisor's format; unquoted booleans and integers are accepted
/// too (gVisor's shim rejects them, which surprises everyone who writes `debug = true`).
fn flag_values<'de, D>(d: D) -> std::result::Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error as _;
    let raw = BTreeMap::<String, toml::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            let s = match v {
                toml::Value::String(s) => s,
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Integer(i) => i.to_string(),
                other => {
                    return Err(D::Error::custom(format!(
                        "runsc_config.{k} must be a string, boolean or integer, not a {}",
                        other.type_str()
                    )))
                }
            };
            Ok((k, s))
        })
        .collect()
}

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
fn has_control(s: &str) -> bool {
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
fn check_runsc_config(doc: &toml::de::DeTable<'_>, text: &str, origin: &str) -> Result<()> {
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
fn key_at(doc: &toml::de::DeTable<'_>, at: usize) -> Option<String> {
    doc.iter()
        .find(|(k, v)| k.span().contains(&at) || v.span().contains(&at))
        .map(|(k, _)| k.get_ref().to_string())
}

/// What a known key's value must be, for an error that does not quote the value found.
fn expected_type(key: &str) -> &'static str {
    match key {
        "io_uid" | "io_gid" => "an integer from 0 to 4294967295",
        "grouping" | "enable_hibernate_server" => "true or false",
        "guard_mode" => "one of \"enforce\", \"warn\", \"off\"",
        "runsc_config" => "a table of runsc flags",
        _ => "a string",
    }
}

/// `line L, column C` of a byte offset in the text.
fn position(text: &str, span: Option<std::ops::Range<usize>>) -> String {
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
fn syntax_message(message: &str) -> String {
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

/// Reads ConfigPath without trusting it: a regular file only (opening a FIFO would block
/// until a writer comes, and `/dev/zero` never ends), at most [`MAX_CONFIG_SIZE`] bytes.
fn read_config_file(path: &Path) -> Result<String> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    const FIX: &str = "fix the runtime's options.ConfigPath in containerd's config";
    let fail =
        |what: String| Error::Options(format!("ConfigPath {}: {what}; {FIX}", path.display()));
    // O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer,
    // and the type check below refuses it. It changes nothing for a regular file.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| fail(e.to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(fail(format!("is {what}, not a regular file")));
    }
    let too_big = || {
        fail(format!(
            "is larger than {MAX_CONFIG_SIZE} bytes, which no runsc.toml is"
        ))
    };
    if meta.len() > MAX_CONFIG_SIZE {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_CONFIG_SIZE {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|_| fail("is not UTF-8 text".to_string()))
}

impl ShimConfig {
    /// Parses runsc.toml text. `origin` names where it came from, for the error message.
    ///
    /// Errors name the key and its line, never the file's content: a ConfigPath pointing at the
    /// wrong file (a secret) must not copy it into containerd's log.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let doc = toml::de::DeTable::parse(text).map_err(|e| {
            Error::Options(format!(
                "{origin} is not a valid runsc.toml: {}: {}",
                position(text, e.span()),
                syntax_message(e.message())
            ))
        })?;
        check_runsc_config(doc.get_ref(), text, origin)?;
        let config: ShimConfig = toml::from_str(text).map_err(|e| {
            let (key, what) = e
                .span()
                .and_then(|span| key_at(doc.get_ref(), span.start))
                .map(|k| (k.clone(), expected_type(&k)))
                .unwrap_or_else(|| ("a key".to_string(), "another type"));
            Error::invalid(
                format!("{key} in {origin} ({})", position(text, e.span())),
                format!("must be {what}; fix or remove the key"),
            )
        })?;
        let located = |key: &str| {
            doc.get_ref()
                .iter()
                .find(|(k, _)| k.get_ref() == key)
                .map(|(k, _)| position(text, Some(k.span())))
        };
        config.validate(origin, &located)?;
        Ok(config)
    }

    /// The checks every source of a configuration passes, runsc.toml or runc-style options.
    /// `located` gives a key's position in the file, for a configuration read from one.
    fn validate(&self, origin: &str, located: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        if self.binary_name.is_empty() {
            return Err(Error::invalid(
                format!("binary_name in {origin}"),
                "is empty; remove the key to use \"runsc\" from PATH",
            ));
        }
        if has_control(&self.binary_name) {
            return Err(Error::invalid(
                format!("binary_name in {origin}"),
                "holds a control character (NUL, tab or newline); write a path or a name",
            ));
        }
        if self.root.is_empty() || !Path::new(&self.root).is_absolute() || has_control(&self.root) {
            // A value read from a file is not quoted (the file may be the wrong one, a secret);
            // its position is.
            let (field, value) = match located("root") {
                Some(at) => (format!("root in {origin} ({at})"), "the value".to_string()),
                None => (format!("root in {origin}"), format!("{:?}", self.root)),
            };
            return Err(Error::invalid(
                field,
                format!("{value} must be an absolute path without control characters"),
            ));
        }
        for (key, value) in &self.runsc_config {
            check_flag(key, value).map_err(|reason| {
                Error::invalid(format!("runsc_config.{key} in {origin}"), reason)
            })?;
        }
        Ok(())
    }

    /// Reads and parses a runsc.toml file: a regular file of at most [`MAX_CONFIG_SIZE`] bytes.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = read_config_file(path)?;
        Self::from_toml(&text, &format!("ConfigPath {}", path.display()))
    }

    /// The runsc state root for a containerd namespace.
    pub fn runsc_root(&self, namespace: &str) -> PathBuf {
        Path::new(&self.root).join(namespace)
    }

    /// The keys of the file this shim does not know, for a warning.
    pub fn unknown_keys(&self) -> Vec<&str> {
        self.unknown.keys().map(String::as_str).collect()
    }

    /// The shim log file for a container: `%ID%` replaced, a trailing `/` meaning a directory
    /// that gets `runsc-shim-<id>.log`, as gVisor's shim does. None when no log_path is set.
    pub fn shim_log_file(&self, id: &str) -> Option<PathBuf> {
        if self.log_path.is_empty() {
            return None;
        }
        let path = self.log_path.replace("%ID%", id);
        if path.ends_with('/') {
            Some(PathBuf::from(path).join(format!("runsc-shim-{id}.log")))
        } else {
            Some(PathBuf::from(path))
        }
    }
}

/// Where the configuration came from: reported in logs and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// No options at all (`ctr run --runtime io.containerd.runsc.v1`): defaults.
    Defaults,
    /// `ConfigBody` sent inline by containerd (1.7+), with the path it names.
    Body(String),
    /// Read from `ConfigPath`.
    Path(PathBuf),
    /// containerd's runc options (`containerd.runc.v1.Options`).
    RuncOptions,
}

/// Decodes the `Any` containerd put in CreateTaskRequest.options (or on the stdin of `start` and
/// `-info`) into the shim's configuration.
pub fn decode(options: Option<&Any>) -> Result<(ShimConfig, ConfigSource)> {
    let Some(any) = options.filter(|a| !a.type_url.is_empty() || !a.value.is_empty()) else {
        return Ok((ShimConfig::default(), ConfigSource::Defaults));
    };
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let (type_url, config_path, body) = match name {
        CRI_OPTIONS => {
            let o = CriOptions::parse_from_bytes(&any.value)
                .map_err(|e| Error::Options(format!("cannot decode {}: {e}", any.type_url)))?;
            (o.type_url, o.config_path, o.config_body)
        }
        CRI_OPTIONS_V14 => {
            let o = CriOptionsV14::parse_from_bytes(&any.value)
                .map_err(|e| Error::Options(format!("cannot decode {}: {e}", any.type_url)))?;
            (o.type_url, o.config_path, Vec::new())
        }
        RUNC_OPTIONS => {
            let o = RuncOptions::parse_from_bytes(&any.value)
                .map_err(|e| Error::Options(format!("cannot decode {}: {e}", any.type_url)))?;
            return Ok((from_runc_options(&o)?, ConfigSource::RuncOptions));
        }
        _ => {
            return Err(Error::Options(format!(
                "unsupported option type {:?}: set the runtime's options to TypeUrl = \
                 {RUNSC_OPTIONS_TYPE_URL:?} and ConfigPath = <runsc.toml> in containerd's config",
                any.type_url
            )))
        }
    };
    if config_path.is_empty() && body.is_empty() {
        return Ok((ShimConfig::default(), ConfigSource::Defaults));
    }
    // gVisor's shim of 2022 insists on this TypeUrl; an empty one is accepted like its newer
    // releases do, anything else is a configuration mistake worth stopping on.
    if !type_url.is_empty() && type_url != RUNSC_OPTIONS_TYPE_URL {
        return Err(Error::Options(format!(
            "unsupported TypeUrl {type_url:?} in the runtime's options: it must be \
             {RUNSC_OPTIONS_TYPE_URL:?}"
        )));
    }
    if !body.is_empty() {
        let text = String::from_utf8(body).map_err(|_| {
            Error::Options(format!("ConfigBody for {config_path:?} is not UTF-8 text"))
        })?;
        let origin = if config_path.is_empty() {
            "ConfigBody".to_string()
        } else {
            format!("ConfigPath {config_path}")
        };
        let config = ShimConfig::from_toml(&text, &origin)?;
        return Ok((config, ConfigSource::Body(config_path)));
    }
    let path = PathBuf::from(&config_path);
    if !path.is_absolute() {
        return Err(Error::invalid(
            "ConfigPath",
            format!("{config_path:?} must be an absolute path"),
        ));
    }
    let config = ShimConfig::from_file(&path)?;
    Ok((config, ConfigSource::Path(path)))
}

/// containerd's runc options carry a few keys that mean the same for runsc; they pass the same
/// checks as runsc.toml's.
fn from_runc_options(o: &RuncOptions) -> Result<ShimConfig> {
    let mut config = ShimConfig {
        io_uid: o.io_uid,
        io_gid: o.io_gid,
        shim_cgroup: o.shim_cgroup.clone(),
        ..ShimConfig::default()
    };
    if !o.binary_name.is_empty() {
        config.binary_name = o.binary_name.clone();
    }
    if !o.root.is_empty() {
        config.root = o.root.clone();
    }
    if o.systemd_cgroup {
        config
            .runsc_config
            .insert("systemd-cgroup".to_string(), "true".to_string());
    }
    config.validate("the runtime's runc options", &|_| None)?;
    Ok(config)
}

/// Encodes CRI runtime options as containerd sends them (used by tests and `runsc-guard`).
pub fn encode_cri_options(type_url: &str, config_path: &str, body: &[u8]) -> Any {
    let o = CriOptions {
        type_url: type_url.to_string(),
        config_path: config_path.to_string(),
        config_body: body.to_vec(),
        ..Default::default()
    };
    Any {
        type_url: CRI_OPTIONS.to_string(),
        value: o
            .write_to_bytes()
            .expect("encoding a plain message cannot fail"),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("runsc.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn no_options_means_defaults() {
        let (c, src) = decode(None).unwrap();
        assert_eq!(src, ConfigSource::Defaults);
        assert_eq!(c.binary_name, "runsc");
        assert_eq!(c.root, "/run/containerd/runsc");
        assert_eq!(c.guard_mode, GuardMode::Enforce);
        assert_eq!(
            c.runsc_root("k8s.io"),
            PathBuf::from("/run/containerd/runsc/k8s.io")
        );
        let empty = Any::default();
        assert_eq!(decode(Some(&empty)).unwrap().1, ConfigSource::Defaults);
    }

    #[test]
    fn every_key_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            r#"
binary_name = "/usr/bin/runsc"
root = "/run/runsc"
io_uid = 1000
io_gid = 1001
shim_cgroup = "/system.slice/shims"
log_level = "debug"
log_path = "/var/log/runsc/%ID%/shim.log"
grouping = false
enable_hibernate_server = false
guard_mode = "warn"
[runsc_config]
debug = "true"
platform = "ptrace"
systemd-cgroup = true
num-network-channels = 2
"#,
        );
        let any = encode_cri_options(RUNSC_OPTIONS_TYPE_URL, p.to_str().unwrap(), b"");
        let (c, src) = decode(Some(&any)).unwrap();
        assert_eq!(src, ConfigSource::Path(p.clone()));
        assert_eq!(c.binary_name, "/usr/bin/runsc");
        assert_eq!(c.root, "/run/runsc");
        assert_eq!((c.io_uid, c.io_gid), (1000, 1001));
        assert_eq!(c.shim_cgroup, "/system.slice/shims");
        assert_eq!(c.log_level, "debug");
        assert!(!c.grouping, "grouping = false: one shim per container");
        assert!(
            ShimConfig::default().grouping,
            "one shim per pod by default"
        );
        assert_eq!(c.guard_mode, GuardMode::Warn);
        assert_eq!(c.runsc_config["debug"], "true");
        assert_eq!(c.runsc_config["systemd-cgroup"], "true");
        assert_eq!(c.runsc_config["num-network-channels"], "2");
        assert_eq!(
            c.shim_log_file("abc"),
            Some(PathBuf::from("/var/log/runsc/abc/shim.log"))
        );
    }

    #[test]
    fn config_body_wins_over_reading_the_path() {
        let any = encode_cri_options(
            RUNSC_OPTIONS_TYPE_URL,
            "/nonexistent/runsc.toml",
            b"binary_name = \"/opt/runsc\"\n",
        );
        let (c, src) = decode(Some(&any)).unwrap();
        assert_eq!(c.binary_name, "/opt/runsc");
        assert_eq!(src, ConfigSource::Body("/nonexistent/runsc.toml".into()));
    }

    #[test]
    fn log_path_directory_form() {
        let c = ShimConfig {
            log_path: "/var/log/runsc/".into(),
            ..Default::default()
        };
        assert_eq!(
            c.shim_log_file("x"),
            Some(PathBuf::from("/var/log/runsc/runsc-shim-x.log"))
        );
        assert_eq!(ShimConfig::default().shim_log_file("x"), None);
    }

    #[test]
    fn missing_config_path_names_the_path_and_the_fix() {
        let any = encode_cri_options(RUNSC_OPTIONS_TYPE_URL, "/nonexistent/runsc.toml", b"");
        let err = decode(Some(&any)).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/runsc.toml"), "{err}");
        assert!(err.contains("ConfigPath"), "{err}");
    }

    #[test]
    fn bad_toml_is_reported_with_its_origin() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "binary_name = \n");
        let any = encode_cri_options(RUNSC_OPTIONS_TYPE_URL, p.to_str().unwrap(), b"");
        let err = decode(Some(&any)).unwrap_err().to_string();
        assert!(err.contains("not a valid runsc.toml"), "{err}");
        assert!(err.contains(p.to_str().unwrap()), "{err}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let err = ShimConfig::from_toml("io_uid = \"root\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("io_uid"), "{err}");
        let err = ShimConfig::from_toml("[runsc_config]\nnet = [1]\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("runsc_config.net"), "{err}");
        let err = ShimConfig::from_toml("guard_mode = \"strict\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("guard_mode") || err.contains("strict"),
            "{err}"
        );
        let err = ShimConfig::from_toml("root = \"relative\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("root"), "{err}");
        let err = ShimConfig::from_toml("[runsc_config]\n\"--debug\" = \"true\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--debug"), "{err}");
    }

    #[test]
    fn unknown_keys_are_kept_not_fatal() {
        let c = ShimConfig::from_toml("some_future_key = 1\n", "t").unwrap();
        assert_eq!(c.unknown_keys(), vec!["some_future_key"]);
    }

    #[test]
    fn wrong_type_url_is_refused() {
        let any = encode_cri_options("io.containerd.runc.v1.options", "/etc/runsc.toml", b"");
        let err = decode(Some(&any)).unwrap_err().to_string();
        assert!(err.contains("io.containerd.runc.v1.options"), "{err}");
        assert!(err.contains(RUNSC_OPTIONS_TYPE_URL), "{err}");
    }

    #[test]
    fn unknown_any_type_is_refused() {
        let any = Any {
            type_url: "example.com/Other".into(),
            value: vec![1, 2],
            ..Default::default()
        };
        let err = decode(Some(&any)).unwrap_err().to_string();
        assert!(err.contains("example.com/Other"), "{err}");
    }

    #[test]
    fn old_cri_options_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "root = \"/run/r\"\n");
        let o = CriOptionsV14 {
            type_url: RUNSC_OPTIONS_TYPE_URL.into(),
            config_path: p.to_str().unwrap().into(),
            ..Default::default()
        };
        let any = Any {
            type_url: format!("type.googleapis.com/{CRI_OPTIONS_V14}"),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        };
        assert_eq!(decode(Some(&any)).unwrap().0.root, "/run/r");
    }

    #[test]
    fn runc_options_map_onto_the_config() {
        let o = RuncOptions {
            binary_name: "/usr/local/bin/runsc".into(),
            systemd_cgroup: true,
            io_uid: 7,
            ..Default::default()
        };
        let any = Any {
            type_url: format!("containerd.{}", &RUNC_OPTIONS["containerd.".len()..]),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let (c, src) = decode(Some(&any)).unwrap();
        assert_eq!(src, ConfigSource::RuncOptions);
        assert_eq!(c.binary_name, "/usr/local/bin/runsc");
        assert_eq!(c.io_uid, 7);
        assert_eq!(c.runsc_config["systemd-cgroup"], "true");
    }

    #[test]
    fn relative_config_path_is_refused() {
        let any = encode_cri_options(RUNSC_OPTIONS_TYPE_URL, "runsc.toml", b"");
        let err = decode(Some(&any)).unwrap_err().to_string();
        assert!(err.contains("ConfigPath"), "{err}");
    }

    #[test]
    fn a_fifo_config_path_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("runsc.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(
                ShimConfig::from_file(&path)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            );
        });
        let err = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO ConfigPath blocked")
            .unwrap_err();
        assert!(
            err.contains("FIFO") && err.contains("regular file"),
            "{err}"
        );
        assert!(err.contains(fifo.to_str().unwrap()), "{err}");
    }

    #[test]
    fn a_device_or_directory_config_path_is_refused() {
        let err = ShimConfig::from_file(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/dev/zero") && err.contains("a device"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let err = ShimConfig::from_file(dir.path()).unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
    }

    #[test]
    fn a_config_path_over_the_size_cap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("# {}\n", "x".repeat(MAX_CONFIG_SIZE as usize));
        let p = write(dir.path(), &text);
        let err = ShimConfig::from_file(&p).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
        // Just under the cap is read.
        let p = write(dir.path(), &format!("#{}\n", "x".repeat(1000)));
        ShimConfig::from_file(&p).unwrap();
    }

    /// A ConfigPath pointing at the wrong file must not copy that file into containerd's log.
    #[test]
    fn errors_name_the_line_and_never_quote_the_file() {
        let secret = "hunter2SECRET";
        let cases = [
            format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
            format!("password={secret}\n"),
            format!("token = \"{secret}\"\ntoken = \"{secret}\"\n"),
            format!("[{secret}\n"),
            format!("# a comment\nio_uid = \"{secret}\"\n"),
            format!("guard_mode = \"{secret}\"\n"),
            format!("binary_name = [\"{secret}\"]\n"),
            format!("[runsc_config]\nplatform = [\"{secret}\"]\n"),
            format!("{secret} = \"x\"\n{secret}x = \"\n"),
        ];
        for text in &cases {
            let err = ShimConfig::from_toml(text, "ConfigPath /etc/shadow")
                .unwrap_err()
                .to_string();
            assert!(!err.contains("SECRET"), "the error quotes the file: {err}");
            assert!(err.contains("line "), "the error names the line: {err}");
            assert!(err.contains("/etc/shadow"), "{err}");
        }
        let err = ShimConfig::from_toml(&cases[4], "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("io_uid") && err.contains("line 2"), "{err}");
        let err = ShimConfig::from_toml(&cases[5], "t")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("guard_mode") && err.contains("\"enforce\""),
            "{err}"
        );
        let err = ShimConfig::from_toml(&cases[7], "t")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("runsc_config.platform") && err.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn flags_the_shim_owns_are_refused_by_name() {
        for key in ["root", "log", "log-format", "log-fd"] {
            let text = format!("root = \"/run/r\"\n[runsc_config]\n{key} = \"/x\"\n");
            let err = ShimConfig::from_toml(&text, "t").unwrap_err().to_string();
            assert!(err.contains(&format!("runsc_config.{key} ")), "{err}");
            assert!(
                err.contains("line 3") && err.contains("set by the shim"),
                "{err}"
            );
        }
        // debug-log is the operator's (the shim only expands %ID% in it).
        ShimConfig::from_toml("[runsc_config]\ndebug-log = \"/var/log/%ID%/\"\n", "t").unwrap();
    }

    #[test]
    fn flags_that_would_not_be_one_argument_are_refused() {
        let bad = [
            "\"a\\tb\" = \"1\"",
            "\"a\\u0000b\" = \"1\"",
            "\"a\\nb\" = \"1\"",
            "\"a=b\" = \"1\"",
            "\"-debug\" = \"1\"",
            "\"a b\" = \"1\"",
            "\"\" = \"1\"",
            "platform = \"ptrace\\tx\"",
            "platform = \"ptrace\\u0000\"",
            "platform = \"ptrace\\n--root=/tmp\"",
        ];
        for entry in bad {
            let text = format!("[runsc_config]\n{entry}\n");
            let err = ShimConfig::from_toml(&text, "t").unwrap_err().to_string();
            assert!(
                err.contains("runsc_config.") && err.contains("line 2"),
                "{entry}: {err}"
            );
            assert!(!err.contains('\0') && !err.contains('\t'), "{err:?}");
        }
        let ok = ShimConfig::from_toml(
            "[runsc_config]\nTESTONLY-unsafe-nonroot = true\nnet-raw = \"true\"\noverlay2 = \"root:self\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(ok.runsc_config["overlay2"], "root:self");
    }

    #[test]
    fn runc_options_pass_the_same_checks() {
        let o = RuncOptions {
            root: "relative/root".into(),
            ..Default::default()
        };
        let any = Any {
            type_url: RUNC_OPTIONS.to_string(),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let err = decode(Some(&any)).unwrap_err().to_string();
        assert!(
            err.contains("root") && err.contains("relative/root"),
            "{err}"
        );
        assert!(err.contains("absolute"), "{err}");
    }
}
