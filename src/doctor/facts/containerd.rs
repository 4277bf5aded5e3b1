//! Reading containerd, its config, the shim it would run, and each handler's runsc.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::super::containerd::{self, Handler, HandlerKind};
use super::super::Probe;
use super::{ConfigFile, ContainerdFacts, HandlerFacts, RunscFacts, RuntimeConfig, ShimFacts};
use crate::fsread::{
    read_regular_file, read_regular_to_string, Symlinks, CONFIG_MAX, PROC_ARGS_MAX,
};
use crate::options::ShimConfig;
use crate::runsc::version::RunscVersion;

const SHIM_BINARY: &str = "containerd-shim-runsc-v1";

pub(super) fn containerd_facts(probe: &dyn Probe) -> ContainerdFacts {
    let Some(binary) = probe.find("containerd") else {
        return ContainerdFacts {
            binary: None,
            version: None,
            release: None,
            error: Some("containerd is not on PATH".to_string()),
        };
    };
    match probe.run(&binary, &["--version"]) {
        Ok(out) => {
            let (version, release) = containerd_version(&out);
            ContainerdFacts {
                binary: Some(binary),
                error: version
                    .is_none()
                    .then(|| format!("cannot read a version in {:?}", out.trim())),
                version,
                release,
            }
        }
        Err(e) => ContainerdFacts {
            binary: Some(binary),
            version: None,
            release: None,
            error: Some(e),
        },
    }
}

/// `containerd github.com/containerd/containerd v1.7.13 64b8a811...` or Debian's
/// `containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1`.
pub(in crate::doctor) fn containerd_version(output: &str) -> (Option<String>, Option<(u32, u32)>) {
    for token in output.split_whitespace() {
        let bare = token.strip_prefix('v').unwrap_or(token);
        let mut parts = bare.split(|c: char| !c.is_ascii_digit());
        let (Some(major), Some(minor)) = (parts.next(), parts.next()) else {
            continue;
        };
        let sep_ok = bare[major.len()..].starts_with('.');
        if let (true, Ok(ma), Ok(mi)) = (sep_ok, major.parse::<u32>(), minor.parse::<u32>()) {
            return (Some(token.to_string()), Some((ma, mi)));
        }
    }
    (None, None)
}

pub(super) fn config_file(path: &Path) -> ConfigFile {
    let mut file = ConfigFile {
        path: path.to_path_buf(),
        missing: false,
        parsed: None,
        errors: Vec::new(),
    };
    // A symlink is followed: /etc/containerd/config.toml is a link on some hosts.
    let text = match read_regular_to_string(path, CONFIG_MAX, Symlinks::Follow) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            file.missing = true;
            return file;
        }
        Err(e) => {
            file.errors
                .push(format!("cannot read {}: {e}", path.display()));
            return file;
        }
    };
    let mut config = match containerd::parse(&text, path) {
        Ok(c) => c,
        Err(e) => {
            file.errors.push(e);
            return file;
        }
    };
    for import in config.imports.clone() {
        match read_regular_to_string(&import, CONFIG_MAX, Symlinks::Follow) {
            Ok(text) => {
                if let Err(e) = containerd::merge_import(&mut config, &text, &import) {
                    file.errors.push(e);
                }
            }
            Err(e) => file
                .errors
                .push(format!("cannot read the import {}: {e}", import.display())),
        }
    }
    file.parsed = Some(config);
    file
}

/// The PATH of the running containerd (`<proc>/<pid>/environ`), where it looks shims up.
pub(super) fn containerd_path(proc_root: &Path) -> Option<(i32, String)> {
    let mut pids: Vec<i32> = std::fs::read_dir(proc_root)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find_map(|pid| {
        let dir = proc_root.join(pid.to_string());
        let cmdline =
            read_regular_file(&dir.join("cmdline"), PROC_ARGS_MAX, Symlinks::Follow).ok()?;
        let argv0 = cmdline.split(|b| *b == 0).next()?;
        if String::from_utf8_lossy(argv0).rsplit('/').next() != Some("containerd") {
            return None;
        }
        let environ =
            read_regular_file(&dir.join("environ"), PROC_ARGS_MAX, Symlinks::Follow).ok()?;
        environ
            .split(|b| *b == 0)
            .find_map(|kv| kv.strip_prefix(b"PATH="))
            .map(|p| (pid, String::from_utf8_lossy(p).into_owned()))
    })
}

pub(super) fn shim_facts(probe: &dyn Probe, containerd_path: Option<(i32, String)>) -> ShimFacts {
    let (searched, found) = match &containerd_path {
        Some((pid, path)) => (
            format!("containerd's PATH (pid {pid}): {path}"),
            probe.find_on(SHIM_BINARY, path),
        ),
        None => (
            "the doctor's own PATH (containerd's environment is not readable)".to_string(),
            probe.find(SHIM_BINARY),
        ),
    };
    let Some(path) = found else {
        return ShimFacts {
            error: Some(format!("{SHIM_BINARY} is not on {searched}")),
            searched,
            path: None,
            version: None,
            is_runsc_guard: false,
        };
    };
    match probe.run(&path, &["-v"]) {
        Ok(out) => ShimFacts {
            searched,
            is_runsc_guard: out.contains("runsc-guard"),
            version: Some(out.lines().map(str::trim).collect::<Vec<_>>().join(" ")),
            path: Some(path),
            error: None,
        },
        Err(e) => ShimFacts {
            searched,
            path: Some(path),
            version: None,
            is_runsc_guard: false,
            error: Some(e),
        },
    }
}

pub(super) fn handler_facts(handler: &Handler, runsc_config: Option<&Path>) -> HandlerFacts {
    match handler.kind {
        HandlerKind::RuncShim => HandlerFacts {
            handler: handler.clone(),
            config: None,
            runsc_binary: handler.binary_name.clone().unwrap_or_default(),
        },
        HandlerKind::RunscShim => {
            let path = runsc_config
                .map(Path::to_path_buf)
                .or_else(|| handler.config_path.as_ref().map(PathBuf::from));
            let loaded = match &path {
                Some(p) => ShimConfig::from_file(p).map_err(|e| e.to_string()),
                None => Ok(ShimConfig::default()),
            };
            let config = match loaded {
                Ok(c) => RuntimeConfig {
                    path,
                    guard_mode: Some(c.guard_mode.to_string()),
                    binary_name: c.binary_name.clone(),
                    unknown_keys: c.unknown_keys().iter().map(|k| k.to_string()).collect(),
                    runsc_config: c.runsc_config,
                    error: None,
                },
                Err(e) => RuntimeConfig {
                    path,
                    guard_mode: None,
                    binary_name: crate::options::DEFAULT_BINARY.to_string(),
                    runsc_config: BTreeMap::new(),
                    unknown_keys: Vec::new(),
                    error: Some(e),
                },
            };
            HandlerFacts {
                handler: handler.clone(),
                runsc_binary: config.binary_name.clone(),
                config: Some(config),
            }
        }
    }
}

pub(super) fn runsc_facts(name: &str, probe: &dyn Probe) -> RunscFacts {
    let Some(path) = probe.find(name) else {
        return RunscFacts {
            name: name.to_string(),
            path: None,
            version: None,
            go: None,
            error: Some(if name.contains('/') {
                format!("{name} does not exist or is not executable")
            } else {
                format!("{name} is not on PATH")
            }),
        };
    };
    match probe.run(&path, &["--version"]) {
        Ok(out) => {
            let version = RunscVersion::from_version_output(&out);
            // An undated build: what runsc features answers dates it, as the shim does.
            let version = if version.is_known() {
                version
            } else {
                let features = probe.run(&path, &["features"]).ok();
                version.with_features_answer(features.as_deref().map(str::as_bytes))
            };
            RunscFacts {
                name: name.to_string(),
                go: probe.go_version(&path),
                path: Some(path),
                version: Some(version),
                error: None,
            }
        }
        Err(e) => RunscFacts {
            name: name.to_string(),
            path: Some(path),
            version: None,
            go: None,
            error: Some(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_containerd_versions() {
        let (v, r) = containerd_version(
            "containerd github.com/containerd/containerd v1.7.13 64b8a811b07ba6288238eefc14d898ee0b5b99ba\n",
        );
        assert_eq!((v.as_deref(), r), (Some("v1.7.13"), Some((1, 7))));
        let (v, r) = containerd_version(
            "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1\n",
        );
        assert_eq!((v.as_deref(), r), (Some("1.6.20~ds1"), Some((1, 6))));
        let (_, r) = containerd_version("containerd containerd.io 2.1.4 abcdef\n");
        assert_eq!(r, Some((2, 1)));
        assert_eq!(containerd_version("nothing here"), (None, None));
    }

    #[test]
    fn reads_containerds_path_from_its_environment() {
        let proc = tempfile::tempdir().unwrap();
        let write = |rel: &str, content: &[u8]| {
            let f = proc.path().join(rel);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, content).unwrap();
        };
        write("1/cmdline", b"/sbin/init\0");
        write("1/environ", b"PATH=/nope\0");
        write("812/cmdline", b"/usr/bin/containerd\0--config\0x\0");
        write("812/environ", b"LANG=C\0PATH=/usr/local/bin:/usr/bin\0");
        assert_eq!(
            containerd_path(proc.path()),
            Some((812, "/usr/local/bin:/usr/bin".to_string()))
        );
        std::fs::remove_file(proc.path().join("812/environ")).unwrap();
        assert_eq!(containerd_path(proc.path()), None);
    }
}
