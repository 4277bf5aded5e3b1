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
    /// One shim per pod (gVisor 2026). Accepted; one shim per container is what runs today.
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
            grouping: false,
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
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let config: ShimConfig = toml::from_str(text).map_err(|e| {
            Error::Options(format!(
                "{origin} is not a valid runsc.toml: {}",
                e.to_string().trim_end()
            ))
        })?;
        if config.binary_name.is_empty() {
            return Err(Error::invalid(
                format!("binary_name in {origin}"),
                "is empty; remove the key to use \"runsc\" from PATH",
            ));
        }
        if config.root.is_empty() || !Path::new(&config.root).is_absolute() {
            return Err(Error::invalid(
                format!("root in {origin}"),
                format!("{:?} must be an absolute path", config.root),
            ));
        }
        for key in config.runsc_config.keys() {
            if key.is_empty() || key.starts_with('-') || key.contains('=') || key.contains(' ') {
                return Err(Error::invalid(
                    format!("runsc_config in {origin}"),
                    format!("{key:?} is not a runsc flag name (write it without dashes)"),
                ));
            }
        }
        Ok(config)
    }

    /// Reads and parses a runsc.toml file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Options(format!(
                "ConfigPath {}: {e}; fix the runtime's options.ConfigPath in containerd's config",
                path.display()
            ))
        })?;
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
            return Ok((from_runc_options(&o), ConfigSource::RuncOptions));
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

/// containerd's runc options carry a few keys that mean the same for runsc.
fn from_runc_options(o: &RuncOptions) -> ShimConfig {
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
    config
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
grouping = true
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
        assert!(c.grouping);
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
}
