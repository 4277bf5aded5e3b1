//! containerd's config.toml as the doctor reads it: its version, its runtime handlers, and which
//! of them run runsc.
//!
//! containerd 1.6/1.7 read config version 2, where CRI's runtimes live under
//! `plugins."io.containerd.grpc.v1.cri".containerd.runtimes`; containerd 2.x reads version 3,
//! where they moved to `plugins."io.containerd.cri.v1.runtime".containerd.runtimes` (2.x still
//! accepts version 2 and migrates it in memory). A file without `version` is version 1, whose
//! CRI plugin is `plugins.cri`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use toml::Value;

/// The runtime type of gVisor's shim (and of this one).
pub const RUNSC_RUNTIME_TYPE: &str = "io.containerd.runsc.v1";
/// The runtime types of runc's shim, which can run runsc through `BinaryName`.
const RUNC_RUNTIME_TYPES: [&str; 2] = ["io.containerd.runc.v2", "io.containerd.runc.v1"];

/// How a handler reaches runsc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandlerKind {
    /// `runtime_type = "io.containerd.runsc.v1"`: containerd runs `containerd-shim-runsc-v1`.
    RunscShim,
    /// runc's shim with `BinaryName` naming runsc: the shim passes `--systemd-cgroup` only when
    /// `SystemdCgroup = true`, and sizes nothing.
    RuncShim,
}

/// One runtime handler that runs runsc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handler {
    /// The handler name (what a RuntimeClass's `handler` names).
    pub name: String,
    pub kind: HandlerKind,
    pub runtime_type: String,
    /// `runtime_path`, when set (containerd 1.6+ runs it instead of looking the shim up on PATH).
    pub runtime_path: Option<String>,
    /// `options.TypeUrl`.
    pub type_url: Option<String>,
    /// `options.ConfigPath`: the runsc.toml the shim reads.
    pub config_path: Option<String>,
    /// `options.SystemdCgroup`.
    pub systemd_cgroup: Option<bool>,
    /// `options.BinaryName` (runc's shim).
    pub binary_name: Option<String>,
    /// The config file the handler was found in (the main file or an import).
    pub file: PathBuf,
}

/// What the doctor learned from containerd's config files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerdConfig {
    /// The config version (1, 2 or 3).
    pub version: i64,
    /// The CRI plugin's `default_runtime_name` (`runc` when unset).
    pub default_runtime: String,
    /// `SystemdCgroup` of the default runtime when it is runc's shim: the cgroup driver CRI
    /// reports to the kubelet.
    pub default_systemd_cgroup: Option<bool>,
    /// Every handler that runs runsc.
    pub handlers: Vec<Handler>,
    /// Files named by `imports`, resolved.
    pub imports: Vec<PathBuf>,
    /// The name of every runtime the files define, runsc or not.
    #[serde(skip)]
    pub runtime_names: Vec<String>,
}

/// The CRI plugin's table in each config version.
fn cri_table(version: i64) -> &'static [&'static str] {
    match version {
        3 => &["plugins", "io.containerd.cri.v1.runtime", "containerd"],
        2 => &["plugins", "io.containerd.grpc.v1.cri", "containerd"],
        _ => &["plugins", "cri", "containerd"],
    }
}

fn lookup<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// Parses the main config file's text. The error names the file and says what is wrong.
pub fn parse(text: &str, file: &Path) -> Result<ContainerdConfig, String> {
    let value: Value = toml::from_str(text).map_err(|e| {
        format!(
            "{} is not valid TOML: {}",
            file.display(),
            e.to_string().trim_end()
        )
    })?;
    let version = match value.get("version") {
        None => 1,
        Some(Value::Integer(v)) if (1..=3).contains(v) => *v,
        Some(other) => {
            return Err(format!(
                "{}: version = {other} is not a containerd config version (1, 2 or 3)",
                file.display()
            ))
        }
    };
    let mut config = ContainerdConfig {
        version,
        default_runtime: "runc".to_string(),
        default_systemd_cgroup: None,
        handlers: Vec::new(),
        imports: imports(&value, file)?,
        runtime_names: Vec::new(),
    };
    merge(&mut config, &value, file)?;
    Ok(config)
}

/// Adds what an imported file says (containerd merges imports over the main file; a handler
/// defined again replaces the earlier one).
pub fn merge_import(config: &mut ContainerdConfig, text: &str, file: &Path) -> Result<(), String> {
    let value: Value = toml::from_str(text).map_err(|e| {
        format!(
            "{} (imported) is not valid TOML: {}",
            file.display(),
            e.to_string().trim_end()
        )
    })?;
    merge(config, &value, file)
}

fn merge(config: &mut ContainerdConfig, value: &Value, file: &Path) -> Result<(), String> {
    let Some(cri) = lookup(value, cri_table(config.version)) else {
        return Ok(());
    };
    if let Some(name) = cri.get("default_runtime_name").and_then(Value::as_str) {
        config.default_runtime = name.to_string();
    }
    let Some(runtimes) = cri.get("runtimes").and_then(Value::as_table) else {
        return Ok(());
    };
    for (name, runtime) in runtimes {
        if !config.runtime_names.contains(name) {
            config.runtime_names.push(name.clone());
        }
        let runtime_type = runtime
            .get("runtime_type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let options = runtime.get("options");
        let string_option = |key: &str| -> Result<Option<String>, String> {
            match options.and_then(|o| o.get(key)) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!(
                    "{}: runtimes.{name}.options.{key} = {other} must be a string",
                    file.display()
                )),
            }
        };
        let systemd_cgroup = match options.and_then(|o| o.get("SystemdCgroup")) {
            None => None,
            Some(Value::Boolean(b)) => Some(*b),
            Some(other) => {
                return Err(format!(
                    "{}: runtimes.{name}.options.SystemdCgroup = {other} must be true or false",
                    file.display()
                ))
            }
        };
        if *name == config.default_runtime && RUNC_RUNTIME_TYPES.contains(&runtime_type.as_str()) {
            config.default_systemd_cgroup = Some(systemd_cgroup.unwrap_or(false));
        }
        let binary_name = string_option("BinaryName")?;
        let runtime_path = runtime
            .get("runtime_path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        let kind = if runtime_type == RUNSC_RUNTIME_TYPE
            || runtime_type.ends_with("containerd-shim-runsc-v1")
        {
            HandlerKind::RunscShim
        } else if RUNC_RUNTIME_TYPES.contains(&runtime_type.as_str())
            && binary_name.as_deref().is_some_and(names_runsc)
        {
            HandlerKind::RuncShim
        } else {
            continue;
        };
        let handler = Handler {
            name: name.clone(),
            kind,
            runtime_type,
            runtime_path,
            type_url: string_option("TypeUrl")?,
            config_path: string_option("ConfigPath")?,
            systemd_cgroup,
            binary_name,
            file: file.to_path_buf(),
        };
        config.handlers.retain(|h| h.name != handler.name);
        config.handlers.push(handler);
    }
    Ok(())
}

/// Whether a binary name is runsc (`runsc`, `/usr/bin/runsc`, `runsc-debug`).
fn names_runsc(binary: &str) -> bool {
    Path::new(binary)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("runsc"))
}

/// `imports = ["/etc/containerd/conf.d/*.toml"]`: paths relative to the main file's directory,
/// with `*` in the file name (the only glob drop-in configs use in practice).
fn imports(value: &Value, file: &Path) -> Result<Vec<PathBuf>, String> {
    let Some(list) = value.get("imports") else {
        return Ok(Vec::new());
    };
    let Some(list) = list.as_array() else {
        return Err(format!(
            "{}: imports must be a list of paths",
            file.display()
        ));
    };
    let base = file.parent().unwrap_or(Path::new("/"));
    let mut out = Vec::new();
    for entry in list {
        let Some(pattern) = entry.as_str() else {
            return Err(format!(
                "{}: imports entry {entry} is not a string",
                file.display()
            ));
        };
        let path = base.join(pattern);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some((prefix, suffix)) = name.split_once('*') {
            let dir = path.parent().unwrap_or(base);
            let mut matched: Vec<PathBuf> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
                })
                .collect();
            matched.sort();
            out.extend(matched);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}

/// The table a snippet for `handler` goes into, in this config's version (for "what to do").
pub fn runtime_table(version: i64, handler: &str) -> String {
    match version {
        3 => format!("[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.{handler}]"),
        2 => format!("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{handler}]"),
        _ => format!("[plugins.cri.containerd.runtimes.{handler}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2_INCIDENT: &str = include_str!("../../tests/fixtures/containerd/incident-v2.toml");

    #[test]
    fn finds_runsc_behind_the_runc_shim() {
        let c = parse(V2_INCIDENT, Path::new("/etc/containerd/config.toml")).unwrap();
        assert_eq!(c.version, 2);
        assert_eq!(c.default_systemd_cgroup, Some(true));
        assert_eq!(c.handlers.len(), 1);
        let h = &c.handlers[0];
        assert_eq!(h.name, "runsc");
        assert_eq!(h.kind, HandlerKind::RuncShim);
        assert_eq!(h.systemd_cgroup, None);
        assert_eq!(h.binary_name.as_deref(), Some("runsc"));
    }

    #[test]
    fn reads_version_3() {
        let text = r#"
version = 3
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.gvisor]
  runtime_type = "io.containerd.runsc.v1"
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.gvisor.options]
  TypeUrl = "io.containerd.runsc.v1.options"
  ConfigPath = "/etc/containerd/runsc.toml"
"#;
        let c = parse(text, Path::new("config.toml")).unwrap();
        assert_eq!(c.version, 3);
        let h = &c.handlers[0];
        assert_eq!(
            (h.name.as_str(), h.kind),
            ("gvisor", HandlerKind::RunscShim)
        );
        assert_eq!(h.config_path.as_deref(), Some("/etc/containerd/runsc.toml"));
        // A version 2 table in a version 3 file is not where containerd 2.x looks.
        let c = parse(
            &V2_INCIDENT.replace("version = 2", "version = 3"),
            Path::new("c"),
        )
        .unwrap();
        assert!(c.handlers.is_empty());
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let err = parse("version = 2\n[plugins\n", Path::new("/x/config.toml")).unwrap_err();
        assert!(
            err.contains("/x/config.toml") && err.contains("TOML"),
            "{err}"
        );
        let err = parse("version = 7\n", Path::new("c.toml")).unwrap_err();
        assert!(err.contains("version = 7"), "{err}");
        let bad = V2_INCIDENT.replace("SystemdCgroup = true", "SystemdCgroup = \"yes\"");
        let err = parse(&bad, Path::new("c.toml")).unwrap_err();
        assert!(err.contains("runtimes.runc.options.SystemdCgroup"), "{err}");
    }

    #[test]
    fn imports_are_resolved_and_merged() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        let drop_in = dir.path().join("conf.d/50-runsc.toml");
        std::fs::write(&drop_in, "").unwrap();
        std::fs::write(dir.path().join("conf.d/other.txt"), "").unwrap();
        let main = dir.path().join("config.toml");
        let mut c = parse("version = 2\nimports = [\"conf.d/*.toml\"]\n", &main).unwrap();
        assert_eq!(c.imports, vec![drop_in.clone()]);
        let snippet = r#"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc]
  runtime_type = "io.containerd.runsc.v1"
"#;
        merge_import(&mut c, snippet, &drop_in).unwrap();
        assert_eq!(c.handlers[0].file, drop_in);
    }
}
