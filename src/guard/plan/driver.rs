//! Rule 1, the driver: how runsc must be told about cgroups so that the sandbox lands in its
//! pod. A systemd path on a systemd host means `--systemd-cgroup=true` for every container of
//! the pod; a systemd path without a usable systemd is handed over in its cgroupfs form; a
//! relative path is refused, because runsc would resolve it against its own cgroup.

use oci_spec::runtime::Spec;

use super::contract::{Driver, SpecEdit};
use super::draft::{Draft, FlagSetting, IGNORE_CGROUPS, SYSTEMD_CGROUP};
use crate::cgroup::SpecCgroupsPath;

/// How runsc will be told about cgroups.
pub(super) struct RunscCgroups {
    /// `linux.cgroupsPath` as runsc will read it (after the guard's edits).
    pub path: SpecCgroupsPath,
    /// Whether runsc runs with `--systemd-cgroup`.
    pub systemd_flag: bool,
    /// Whether runsc runs with `--ignore-cgroups`.
    pub ignore_cgroups: bool,
}

/// The spec's `linux.cgroupsPath`, validated before anything reads the tree. None when it is
/// refused outright and nothing else can be decided.
pub(super) fn read_path(d: &mut Draft<'_>) -> Option<SpecCgroupsPath> {
    match parse_cgroups_path(d.input.spec) {
        Ok(Some(path)) => Some(path),
        Ok(None) => {
            d.refuse(
                "the spec has no \"linux\" section, so it names no cgroup and runsc would place \
                 the sandbox at /<id>, outside any pod; containerd always writes one: check \
                 what produced this bundle's config.json",
            );
            Some(SpecCgroupsPath::Empty)
        }
        Err(message) => {
            d.refuse(message);
            None
        }
    }
}

/// Rule 1: the driver, the same for every container of the pod, and `--ignore-cgroups` kept
/// off for a pod's containers.
pub(super) fn decide(d: &mut Draft<'_>, path: &SpecCgroupsPath, in_pod: bool) -> RunscCgroups {
    let (path, systemd_flag) = decide_driver(d, path);
    let ignore_cgroups = if d.active() && in_pod {
        d.require_flag(
            IGNORE_CGROUPS,
            false,
            "with ignore-cgroups runsc leaves the sandbox in the shim's cgroup, outside its pod",
        )
    } else {
        FlagSetting::read(d.input.runsc_config, IGNORE_CGROUPS).effective()
    };
    RunscCgroups {
        path,
        systemd_flag,
        ignore_cgroups,
    }
}

/// `linux.cgroupsPath`, parsed. Ok(None) when the spec has no `linux` at all.
fn parse_cgroups_path(spec: &Spec) -> Result<Option<SpecCgroupsPath>, String> {
    let Some(linux) = spec.linux() else {
        return Ok(None);
    };
    let raw = match linux.cgroups_path() {
        None => "",
        Some(p) => p
            .to_str()
            .ok_or_else(|| format!("linux.cgroupsPath {p:?} is not UTF-8"))?,
    };
    SpecCgroupsPath::parse(raw)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The path as runsc will get it and whether runsc runs with `--systemd-cgroup`.
fn decide_driver(d: &mut Draft<'_>, path: &SpecCgroupsPath) -> (SpecCgroupsPath, bool) {
    let layout = d.input.tree.layout();
    let operator = FlagSetting::read(d.input.runsc_config, SYSTEMD_CGROUP);
    if !d.active() {
        return (path.clone(), operator.effective());
    }
    let systemd_usable = d.input.host.systemd_running && layout.is_unified();
    match path {
        SpecCgroupsPath::Systemd(sd) if systemd_usable => {
            let flag = d.require_flag(
                SYSTEMD_CGROUP,
                true,
                &format!(
                    "linux.cgroupsPath {:?} is systemd's slice:prefix:name form and the host runs \
                     systemd, so the sandbox's scope {} must be created in the slice {} (without \
                     the flag runsc reads the path as a relative cgroupfs path and creates it \
                     under its own cgroup, outside the pod)",
                    sd.as_spec_string(),
                    sd.unit_name(),
                    sd.slice
                ),
            );
            d.driver = if flag {
                Driver::Systemd
            } else {
                Driver::Cgroupfs
            };
            (path.clone(), flag)
        }
        SpecCgroupsPath::Systemd(sd) => {
            // runsc's systemd driver needs cgroup v2 and a running systemd; without them the
            // same cgroup is reachable through its cgroupfs path, the directory systemd gives the unit.
            let leaf = sd.leaf();
            d.edit(SpecEdit::SetCgroupsPath {
                from: sd.as_spec_string(),
                to: leaf.clone(),
            });
            d.reason(format!(
                "runsc's systemd driver needs cgroup v2 and a running systemd, and this host has \
                 {}: the systemd path is given to runsc in its cgroupfs form {leaf}, the cgroup \
                 systemd would have used",
                if layout.is_unified() {
                    "no systemd".to_string()
                } else {
                    layout.to_string()
                }
            ));
            let flag = if layout.is_unified() {
                d.require_flag(
                    SYSTEMD_CGROUP,
                    false,
                    "runsc's systemd driver cannot work on this host",
                )
            } else {
                operator.effective()
            };
            d.driver = Driver::Cgroupfs;
            (SpecCgroupsPath::Absolute(leaf), flag)
        }
        SpecCgroupsPath::Absolute(_) => {
            let flag = if layout.is_unified() {
                d.require_flag(
                    SYSTEMD_CGROUP,
                    false,
                    "linux.cgroupsPath is a cgroupfs path, which runsc's systemd driver rejects",
                )
            } else {
                operator.effective()
            };
            d.driver = Driver::Cgroupfs;
            (path.clone(), flag)
        }
        SpecCgroupsPath::Relative(raw) => {
            d.refuse(format!(
                "linux.cgroupsPath {raw:?} is a relative cgroupfs path: runsc would create it \
                 under the parent of its own cgroup (containerd's), outside any pod, which is \
                 how the incident's sandboxes escaped; containerd writes absolute or \
                 slice:prefix:name paths, so check the runtime's configuration"
            ));
            d.driver = Driver::Cgroupfs;
            (path.clone(), operator.effective())
        }
        SpecCgroupsPath::Empty => (path.clone(), operator.effective()),
    }
}
