//! Reading the cgroup tree's shape and the host's memory.

use super::super::Sources;
use super::{CgroupFacts, KubeletDriver};
use crate::cgroup::{Bytes, CgroupPath, CgroupTree};

pub(super) fn cgroup_facts(
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
pub(super) fn mem_total(meminfo: &str) -> Option<Bytes> {
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
