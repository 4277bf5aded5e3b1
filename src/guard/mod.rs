//! The memory guard: every gVisor sandbox bounded by its pod's cgroup.
//!
//! The decision is a pure function, [`decide`], of what the shim knows before `runsc create`:
//! the OCI spec, the container's role, runsc.toml's flags and guard mode, the runsc release, a
//! few host facts and a view of the cgroup tree. It returns a [`Plan`]: the runsc flags to add,
//! the spec edits to apply, the guest size runsc will compute, what to relax after boot, and a
//! verdict with its reasons. Everything with side effects sits at the edges: [`observe`] reads
//! `/proc` after create, [`verify`] compares that with the plan (pure), [`LeafRelaxation::run`]
//! widens the sandbox's leaf, and [`GuardRecord`] keeps the outcome in the bundle for
//! `runsc-guard` to show. [`Guard`] is the seam the shim's Create goes through: once before
//! anything is set up, once after `runsc create`.

mod plan;
mod predict;
mod record;
mod relax;
mod seam;
mod update;
mod verify;

use std::collections::BTreeMap;
use std::path::Path;

use oci_spec::runtime::Spec;

use crate::cgroup::{Bytes, CgroupTree};
use crate::options::GuardMode;
use crate::runsc::version::RunscVersion;

pub use crate::annotations::Role;
pub use plan::{decide, Driver, Plan, SpecEdit, Verdict};
pub use record::{GuardRecord, ResourceUpdate, RECORD_FILE};
pub use relax::{LeafRelaxation, RelaxAction, RelaxTarget};
pub use seam::{Guard, Guarded, CGROUP_ROOT_ENV, PROC_ROOT_ENV};
pub use update::{MemoryRequest, MemoryUpdate};
pub use verify::{observe, verify, Check, Observation, Verification};

/// What the guard needs to know about the host besides its cgroup tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostFacts {
    /// systemd is the init system (`/run/systemd/system` is a directory), so runsc's systemd
    /// driver can create scopes.
    pub systemd_running: bool,
    /// The host's memory (`MemTotal`), which runsc caps the guest at. None when unknown.
    pub host_memory: Option<Bytes>,
}

impl HostFacts {
    /// Reads the facts of the running host, its memory from the proc filesystem at `proc_root`
    /// (`/proc`, or a fixture directory).
    pub fn detect(proc_root: &Path) -> Self {
        HostFacts {
            systemd_running: Path::new("/run/systemd/system").is_dir(),
            host_memory: read_mem_total(proc_root),
        }
    }
}

/// The host's `MemTotal` from `<proc root>/meminfo`; None when it cannot be read or holds none.
pub fn read_mem_total(proc_root: &Path) -> Option<Bytes> {
    crate::fsread::read_regular_to_string(
        &proc_root.join("meminfo"),
        crate::fsread::MEMINFO_MAX,
        crate::fsread::Symlinks::Follow,
    )
    .ok()
    .and_then(|m| mem_total(&m))
}

/// `MemTotal:  16318504 kB` from /proc/meminfo.
pub fn mem_total(meminfo: &str) -> Option<Bytes> {
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

/// Everything the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct GuardInput<'a> {
    pub container_id: &'a str,
    pub role: Role,
    /// The bundle's config.json as containerd wrote it.
    pub spec: &'a Spec,
    /// runsc.toml's `[runsc_config]`: the operator's runsc global flags.
    pub runsc_config: &'a BTreeMap<String, String>,
    pub mode: GuardMode,
    pub runsc_version: &'a RunscVersion,
    pub host: HostFacts,
    pub tree: &'a CgroupTree,
}

#[cfg(test)]
mod tests;
