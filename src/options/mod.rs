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

mod config_file;

pub(crate) use config_file::check_flag;
pub use config_file::MAX_CONFIG_SIZE;
use config_file::{
    check_runsc_config, expected_type, has_control, key_at, position, read_config_file,
    syntax_message,
};

/// The only `TypeUrl` gVisor's shim accepts for its TOML options.
pub const RUNSC_OPTIONS_TYPE_URL: &str = "io.containerd.runsc.v1.options";
/// runsc's default state root; the containerd namespace is appended to it.
pub const DEFAULT_ROOT: &str = "/run/containerd/runsc";
/// The runsc binary looked up on PATH when `binary_name` is not set.
pub const DEFAULT_BINARY: &str = "runsc";

const CRI_OPTIONS: &str = "runtimeoptions.v1.Options";
const CRI_OPTIONS_V14: &str = "cri.runtimeoptions.v1.Options";
const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
/// The message types [`decode`] reads runtime options from (the last part of an `Any`'s type URL).
pub const OPTION_TYPES: &[&str] = &[CRI_OPTIONS, CRI_OPTIONS_V14, RUNC_OPTIONS];

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
mod tests;
