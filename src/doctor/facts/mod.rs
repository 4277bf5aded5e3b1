//! Reading the node: everything the audit judges, with each read that failed kept as a
//! sentence instead of stopping the audit.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::containerd::{ContainerdConfig, Handler};
use super::{Probe, Sources};
use crate::cgroup::{Bytes, CgroupLayout, CgroupPath, CgroupTree, MemoryLimit};
use crate::guard::Observation;
use crate::runsc::version::RunscVersion;

mod cgroups;
mod containerd;
mod sandbox;

use cgroups::cgroup_facts;
use containerd::{
    config_file, containerd_facts, containerd_path, handler_facts, runsc_facts, shim_facts,
};
use sandbox::sandboxes;

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
    /// The Go toolchain that built it (`go1.26.2`), from its build information.
    pub go: Option<String>,
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
    let host_memory = crate::guard::read_mem_total(&sources.proc_root);
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
