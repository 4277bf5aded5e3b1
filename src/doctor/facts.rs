//! Reading the node: everything the audit judges, with each read that failed kept as a
//! sentence instead of stopping the audit.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::containerd::{self, ContainerdConfig, Handler, HandlerKind};
use super::{Probe, Sources};
use crate::cgroup::{
    Bytes, CgroupLayout, CgroupPath, CgroupTree, MemoryLimit, SpecCgroupsPath, SystemdPath,
};
use crate::guard::Observation;
use crate::options::ShimConfig;
use crate::runsc::version::RunscVersion;

/// containerd CRI: the pod's name and namespace, on every container of the pod.
const SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
const SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
const SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
const SHIM_BINARY: &str = "containerd-shim-runsc-v1";
const SANDBOX_PROCESS: &str = "runsc-sandbox";

/// Everything the audit judges.
#[derive(Debug, Clone, Serialize)]
pub struct NodeFacts {
    pub containerd: ContainerdFacts,
    pub config: ConfigFile,
    /// The `containerd-shim-runsc-v1` containerd would run.
    pub shim: ShimFacts,
    pub handlers: Vec<HandlerFacts>,
    /// Each distinct runsc binary the handlers run.
    pub runsc: Vec<RunscFacts>,
    pub cgroups: CgroupFacts,
    /// The host's memory (`MemTotal`).
    pub host_memory: Option<Bytes>,
    pub sandboxes: Vec<SandboxFacts>,
    /// The proc root could not be listed.
    pub proc_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContainerdFacts {
    pub binary: Option<PathBuf>,
    /// As `containerd --version` prints it (`v1.6.20`, `1.6.20~ds1`).
    pub version: Option<String>,
    /// Major and minor, when the version could be read.
    pub release: Option<(u32, u32)>,
    pub error: Option<String>,
}

/// containerd's config file.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// The file does not exist: containerd runs with its defaults (no runsc handler).
    pub missing: bool,
    pub parsed: Option<ContainerdConfig>,
    /// Why it could not be read or parsed (the main file or an import).
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShimFacts {
    /// Whose PATH it was looked up on: containerd's (from its environment) or the doctor's.
    pub searched: String,
    pub path: Option<PathBuf>,
    /// The first line of its `-v`.
    pub version: Option<String>,
    /// Whether it is this project's shim (its `-v` says runsc-guard).
    pub is_runsc_guard: bool,
    pub error: Option<String>,
}

/// The runsc.toml a handler's shim reads.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeConfig {
    /// None: no ConfigPath, the shim's defaults.
    pub path: Option<PathBuf>,
    pub guard_mode: Option<String>,
    pub binary_name: String,
    pub runsc_config: BTreeMap<String, String>,
    pub unknown_keys: Vec<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HandlerFacts {
    pub handler: Handler,
    /// For the runsc shim: the runsc.toml it reads.
    pub config: Option<RuntimeConfig>,
    /// The runsc binary it runs, as configured.
    pub runsc_binary: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunscFacts {
    /// As configured (`runsc`, `/usr/bin/runsc`).
    pub name: String,
    pub path: Option<PathBuf>,
    pub version: Option<RunscVersion>,
    pub error: Option<String>,
}

/// How the kubelet lays out its pods, as the kubepods tree shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KubeletDriver {
    /// `kubepods.slice`.
    Systemd,
    /// `kubepods/`.
    Cgroupfs,
    /// Both trees exist: one is left over from an earlier configuration.
    Both,
    /// No kubepods tree (no kubelet, or it has not started yet).
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct CgroupFacts {
    pub root: PathBuf,
    pub layout: Option<CgroupLayout>,
    /// PID 1 is systemd (`<proc>/1/comm`); None when unreadable.
    pub systemd: Option<bool>,
    pub kubelet_driver: KubeletDriver,
    pub error: Option<String>,
}

/// Who a sandbox belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PodIdentity {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
}

impl PodIdentity {
    /// `namespace/name`, else `pod <uid>`, else None.
    pub fn label(&self) -> Option<String> {
        match (&self.namespace, &self.name, &self.uid) {
            (Some(ns), Some(name), _) => Some(format!("{ns}/{name}")),
            (None, Some(name), _) => Some(name.clone()),
            (_, _, Some(uid)) => Some(format!("pod {uid}")),
            _ => None,
        }
    }
}

/// One running gVisor sandbox.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxFacts {
    pub pid: i32,
    /// The sandbox's id (the last argument of `runsc-sandbox boot`).
    pub container_id: Option<String>,
    pub bundle: Option<PathBuf>,
    /// runsc's `--root`: which shim created it (`/run/containerd/runsc/<ns>` is a runsc shim's
    /// default, `/run/containerd/runc/<ns>` runc's shim running runsc through BinaryName).
    pub runsc_root: Option<String>,
    pub pod: PodIdentity,
    /// Where it sits and the `--total-memory` it was booted with.
    pub observation: Observation,
    /// The spec's `linux.cgroupsPath`, when the bundle was readable.
    pub cgroups_path: Option<String>,
    /// The pod's cgroup: from the spec's cgroupsPath, else from the sandbox's own cgroup.
    pub pod_cgroup: Option<CgroupPath>,
    /// The pod cgroup's effective memory limit (the smallest up to the root).
    pub pod_limit: Option<MemoryLimitFact>,
    /// What could not be read (the bundle, the pod cgroup's limit).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryLimitFact {
    /// None: unlimited.
    pub bytes: Option<Bytes>,
    pub source: Option<PathBuf>,
}

impl MemoryLimitFact {
    pub fn limit(&self) -> MemoryLimit {
        self.bytes.into()
    }
}

/// Reads the node.
pub fn gather(sources: &Sources, probe: &dyn Probe) -> NodeFacts {
    let containerd = containerd_facts(probe);
    let config = config_file(&sources.containerd_config);
    let shim = shim_facts(probe, containerd_path(&sources.proc_root));
    let handlers: Vec<HandlerFacts> = config
        .parsed
        .iter()
        .flat_map(|c| c.handlers.iter())
        .map(|h| handler_facts(h, sources.runsc_config.as_deref()))
        .collect();
    let mut runsc: Vec<RunscFacts> = Vec::new();
    for h in &handlers {
        if !runsc.iter().any(|r| r.name == h.runsc_binary) {
            runsc.push(runsc_facts(&h.runsc_binary, probe));
        }
    }
    let tree = CgroupTree::detect(&sources.cgroup_root);
    let cgroups = cgroup_facts(sources, tree.as_ref().ok(), tree.as_ref().err());
    let host_memory = std::fs::read_to_string(sources.proc_root.join("meminfo"))
        .ok()
        .and_then(|m| mem_total(&m));
    let (sandboxes, proc_error) = match tree.as_ref() {
        Ok(tree) => sandboxes(&sources.proc_root, tree),
        Err(_) => (Vec::new(), None),
    };
    NodeFacts {
        containerd,
        config,
        shim,
        handlers,
        runsc,
        cgroups,
        host_memory,
        sandboxes,
        proc_error,
    }
}

fn containerd_facts(probe: &dyn Probe) -> ContainerdFacts {
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
pub(super) fn containerd_version(output: &str) -> (Option<String>, Option<(u32, u32)>) {
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

fn config_file(path: &Path) -> ConfigFile {
    let mut file = ConfigFile {
        path: path.to_path_buf(),
        missing: false,
        parsed: None,
        errors: Vec::new(),
    };
    let text = match std::fs::read_to_string(path) {
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
        match std::fs::read_to_string(&import) {
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
fn containerd_path(proc_root: &Path) -> Option<(i32, String)> {
    let mut pids: Vec<i32> = std::fs::read_dir(proc_root)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find_map(|pid| {
        let dir = proc_root.join(pid.to_string());
        let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
        let argv0 = cmdline.split(|b| *b == 0).next()?;
        if String::from_utf8_lossy(argv0).rsplit('/').next() != Some("containerd") {
            return None;
        }
        let environ = std::fs::read(dir.join("environ")).ok()?;
        environ
            .split(|b| *b == 0)
            .find_map(|kv| kv.strip_prefix(b"PATH="))
            .map(|p| (pid, String::from_utf8_lossy(p).into_owned()))
    })
}

fn shim_facts(probe: &dyn Probe, containerd_path: Option<(i32, String)>) -> ShimFacts {
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

fn handler_facts(handler: &Handler, runsc_config: Option<&Path>) -> HandlerFacts {
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

fn runsc_facts(name: &str, probe: &dyn Probe) -> RunscFacts {
    let Some(path) = probe.find(name) else {
        return RunscFacts {
            name: name.to_string(),
            path: None,
            version: None,
            error: Some(if name.contains('/') {
                format!("{name} does not exist or is not executable")
            } else {
                format!("{name} is not on PATH")
            }),
        };
    };
    match probe.run(&path, &["--version"]) {
        Ok(out) => RunscFacts {
            name: name.to_string(),
            path: Some(path),
            version: Some(RunscVersion::from_version_output(&out)),
            error: None,
        },
        Err(e) => RunscFacts {
            name: name.to_string(),
            path: Some(path),
            version: None,
            error: Some(e),
        },
    }
}

fn cgroup_facts(
    sources: &Sources,
    tree: Option<&CgroupTree>,
    error: Option<&crate::cgroup::CgroupError>,
) -> CgroupFacts {
    let systemd = std::fs::read_to_string(sources.proc_root.join("1/comm"))
        .ok()
        .map(|c| c.trim() == "systemd");
    let exists = |name: &str| {
        tree.is_some_and(|t| {
            CgroupPath::parse(name)
                .ok()
                .is_some_and(|p| t.exists(&p).unwrap_or(false))
        })
    };
    let kubelet_driver = match (exists("/kubepods.slice"), exists("/kubepods")) {
        (true, true) => KubeletDriver::Both,
        (true, false) => KubeletDriver::Systemd,
        (false, true) => KubeletDriver::Cgroupfs,
        (false, false) => KubeletDriver::None,
    };
    CgroupFacts {
        root: sources.cgroup_root.clone(),
        layout: tree.map(CgroupTree::layout),
        systemd,
        kubelet_driver,
        error: error.map(ToString::to_string),
    }
}

/// `MemTotal:  16318504 kB` from /proc/meminfo.
fn mem_total(meminfo: &str) -> Option<Bytes> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024).map(Bytes)
}

/// Every `runsc-sandbox` process under the proc root, in pid order.
fn sandboxes(proc_root: &Path, tree: &CgroupTree) -> (Vec<SandboxFacts>, Option<String>) {
    let entries = match std::fs::read_dir(proc_root) {
        Ok(e) => e,
        Err(e) => {
            return (
                Vec::new(),
                Some(format!("cannot list {}: {e}", proc_root.display())),
            )
        }
    };
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let mut out = Vec::new();
    for pid in pids {
        let dir = proc_root.join(pid.to_string());
        // A process that exits while we look, or one we may not read, is not a sandbox we can
        // judge; a sandbox's cmdline is readable by everyone.
        let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        let name = String::from_utf8_lossy(argv0);
        if name.rsplit('/').next() != Some(SANDBOX_PROCESS) {
            continue;
        }
        out.push(sandbox(pid, &dir, &cmdline, tree));
    }
    (out, None)
}

fn sandbox(pid: i32, dir: &Path, cmdline: &[u8], tree: &CgroupTree) -> SandboxFacts {
    let mut problems = Vec::new();
    let cgroup_text = match std::fs::read_to_string(dir.join("cgroup")) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("cannot read {}: {e}", dir.join("cgroup").display()));
            String::new()
        }
    };
    let observation = Observation::parse(pid, tree.layout(), &cgroup_text, cmdline);
    let argv: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let container_id = argv
        .last()
        .filter(|a| argv.len() > 1 && !a.starts_with('-'))
        .cloned();
    let bundle = flag(&argv, "bundle").map(PathBuf::from).or_else(|| {
        flag(&argv, "log")
            .filter(|l| l.ends_with("/log.json"))
            .and_then(|l| Path::new(&l).parent().map(Path::to_path_buf))
    });
    let mut pod = PodIdentity::default();
    let mut cgroups_path = None;
    if let Some(bundle) = &bundle {
        let file = bundle.join("config.json");
        match std::fs::read_to_string(&file) {
            Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(spec) => {
                    let annotation = |key: &str| {
                        spec["annotations"][key]
                            .as_str()
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                    };
                    pod.namespace = annotation(SANDBOX_NAMESPACE);
                    pod.name = annotation(SANDBOX_NAME);
                    pod.uid = annotation(SANDBOX_UID);
                    cgroups_path = spec["linux"]["cgroupsPath"].as_str().map(str::to_string);
                }
                Err(e) => problems.push(format!("{} is not JSON: {e}", file.display())),
            },
            Err(e) => problems.push(format!(
                "cannot read {} (the pod's name comes from its annotations): {e}",
                file.display()
            )),
        }
    }
    let own = observation
        .cgroup
        .as_deref()
        .and_then(|c| CgroupPath::parse(c).ok());
    let pod_cgroup = cgroups_path
        .as_deref()
        .and_then(|p| SpecCgroupsPath::parse(p).ok())
        .and_then(|p| p.pod_cgroup())
        .or_else(|| own.as_ref().and_then(pod_cgroup_of));
    if pod.uid.is_none() {
        pod.uid = pod_cgroup.as_ref().and_then(pod_uid);
    }
    let pod_limit = pod_cgroup
        .as_ref()
        .and_then(|pc| match tree.effective_memory_limit(pc) {
            Ok(eff) => Some(MemoryLimitFact {
                bytes: eff.limit.bytes(),
                source: eff.source,
            }),
            Err(e) => {
                problems.push(format!("the pod's memory limit: {e}"));
                None
            }
        });
    SandboxFacts {
        pid,
        container_id,
        runsc_root: flag(&argv, "root"),
        bundle,
        pod,
        observation,
        cgroups_path,
        pod_cgroup,
        pod_limit,
        problems,
    }
}

/// The pod a sandbox belongs to, from where it sits: a pod cgroup among its ancestors, or, for a
/// sandbox that escaped, the systemd path runsc turned into a directory name
/// (`/system.slice/kubepods-burstable-pod<uid>.slice:cri-containerd:<id>`).
fn pod_cgroup_of(own: &CgroupPath) -> Option<CgroupPath> {
    if let Some(escaped) = own
        .components()
        .find_map(|c| SystemdPath::parse(c).ok().filter(SystemdPath::is_pod_slice))
    {
        return Some(escaped.slice_cgroup());
    }
    own.ancestors_to_root()
        .into_iter()
        .find(|c| c.name().is_some_and(is_pod_cgroup_name))
}

fn is_pod_cgroup_name(name: &str) -> bool {
    let stem = name.strip_suffix(".slice").unwrap_or(name);
    stem.rsplit('-')
        .next()
        .is_some_and(|last| last.starts_with("pod"))
}

/// `kubepods-burstable-pod<uid>.slice` or `pod<uid>`: the uid with dashes (the slice writes them
/// as underscores).
fn pod_uid(pod_cgroup: &CgroupPath) -> Option<String> {
    let name = pod_cgroup.name()?;
    let stem = name.strip_suffix(".slice").unwrap_or(name);
    let uid = stem.rsplit('-').next()?.strip_prefix("pod")?;
    (!uid.is_empty()).then(|| uid.replace('_', "-"))
}

/// The value of `--name=value`, `--name value`, `-name=value` or `-name value` (Go's flag forms).
fn flag(argv: &[String], name: &str) -> Option<String> {
    let mut it = argv.iter().skip(1);
    while let Some(arg) = it.next() {
        if !arg.starts_with('-') {
            continue;
        }
        let body = arg.trim_start_matches('-');
        if body == name {
            return it.next().cloned();
        }
        if let Some(v) = body.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            return Some(v.to_string());
        }
    }
    None
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
    fn finds_the_pod_of_an_escaped_sandbox() {
        let uid = "3f1c9a2e_5b7d_4c1e_9a0f_2d6e8b4c7a1f";
        let own = CgroupPath::parse(&format!(
            "/system.slice/kubepods-burstable-pod{uid}.slice:cri-containerd:abc"
        ))
        .unwrap();
        let pod = pod_cgroup_of(&own).unwrap();
        assert_eq!(
            pod.as_str(),
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice")
        );
        assert_eq!(
            pod_uid(&pod).as_deref(),
            Some("3f1c9a2e-5b7d-4c1e-9a0f-2d6e8b4c7a1f")
        );
        let cgroupfs = CgroupPath::parse("/kubepods/burstable/pod1234/abc").unwrap();
        assert_eq!(
            pod_cgroup_of(&cgroupfs).unwrap().as_str(),
            "/kubepods/burstable/pod1234"
        );
        assert_eq!(
            pod_cgroup_of(&CgroupPath::parse("/user.slice/x").unwrap()),
            None
        );
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

    #[test]
    fn reads_go_flags() {
        let argv: Vec<String> = ["runsc-sandbox", "--root=/r", "boot", "--bundle", "/b", "id"]
            .map(String::from)
            .to_vec();
        assert_eq!(flag(&argv, "bundle").as_deref(), Some("/b"));
        assert_eq!(flag(&argv, "root").as_deref(), Some("/r"));
        assert_eq!(flag(&argv, "log"), None);
    }
}
